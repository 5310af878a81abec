"""On a gateway of two holders' channels, a resend whose own transaction conflicted is answered as the replay of the
event on its own channel."""
from __future__ import annotations

from ipledger.chaincode.testing import mrns
from tests.unit.gateway.fakes import mvcc_conflict

from .conftest import place
from .harness import B


def test_a_resend_that_conflicted_is_the_replay_on_the_events_own_channel(two_holders, ledgers, monkeypatch):
    api = two_holders
    event = place("FRIPOB000001", "L1", 70, mrns.placement_mrn(2))
    first = api.post(event, "BrokerMSP")
    assert first["channel"] == B
    ledger_b = ledgers.by_channel[B]
    real_submit = ledger_b.submit

    def conflicting(*args, **kwargs):
        monkeypatch.setattr(ledger_b, "submit", real_submit)
        raise mvcc_conflict("ab" * 32)

    monkeypatch.setattr(ledger_b, "submit", conflicting)
    again = api.post(event, "BrokerMSP", status=200)
    assert (again["status"], again["tx_id"], again["block_number"], again["channel"]) == (
        "REPLAYED", first["tx_id"], first["block_number"], B)
