"""Thirteenth review: a peer answers a range read with at most ``ledger.state.totalQueryLimit`` records and then
"no more", as at the true end of the range. The contract reads every range whole, in reads it closes itself after
``RANGE_READ_CHUNK`` records (fewer than any peer's limit) and reads on from after the last key, so a range past the
limit cannot pass a ceiling, leave an exit out of a bill or hide an alert. Emulated with a limit of 40 records (the
MemStub's ``range_limit``; the contract's own ``RANGE_READ_CUT_AT_LEAST`` and chunk lowered to match).

Twentieth review: the reads must also be the same on every peer, whatever its limit — Fabric compares the range
reads of the endorsements' read sets, and a read run to a peer's own limit ends where that limit is."""
from __future__ import annotations

import datetime as dt
import itertools

import pytest

from ipledger.chaincode.contract import InwardProcessingContract, state
from ipledger.chaincode.testing import memstub
from ipledger.chaincode.testing.scenario import AUTH_ID, RETREADED, Scenario, iso, retreaded

LIMIT = 40


@pytest.fixture
def peer_limit(monkeypatch):
    monkeypatch.setattr(memstub.MemStub, "range_limit", LIMIT)
    monkeypatch.setattr(state, "RANGE_READ_CUT_AT_LEAST", LIMIT)
    monkeypatch.setattr(state, "RANGE_READ_CHUNK", LIMIT - 1)


def _moves(s: Scenario, n: int, lot_id: str, **kw) -> None:
    for i in range(n):
        frm, to = ("BOURGES-1", "BOURGES-2") if i % 2 == 0 else ("BOURGES-2", "BOURGES-1")
        s.accepted(s.move(1, frm, to, lot_id=lot_id, **kw))


def test_the_memory_ledger_cuts_a_range_read_as_a_peer_does(peer_limit):
    """The emulation itself: a raw range read of more than the limit answers the limit's worth."""
    s = Scenario.with_l1(InwardProcessingContract)
    _moves(s, LIMIT + 5, "L1")
    stub = s.ledger.stub("GetLot", [])
    with stub.get_state_by_partial_composite_key("event", []) as it:
        assert len(list(it)) == LIMIT


def test_a_scan_reads_a_range_past_the_peers_limit_whole(peer_limit):
    s = Scenario.with_l1(InwardProcessingContract)
    _moves(s, 2 * LIMIT + 3, "L1")
    stub = s.ledger.stub("GetLot", [])
    every = sorted(k for k in s.ledger._committed.state if k.startswith("\x00event\x00"))
    assert len(every) > 2 * LIMIT
    assert [k for k, _ in ((stub.create_composite_key("event", a), v) for a, v in state.State(stub).scan("event"))] \
        == every


def test_late_recording_alerts_cannot_push_a_yield_deviation_out_of_customs_view(peer_limit):
    s = Scenario.with_l1(InwardProcessingContract)
    old = iso(s.ledger.now - dt.timedelta(days=10))
    s.accepted(s.place("L9", 100, occurred_at=old))                  # declared 10 days ago, recorded now
    _moves(s, LIMIT, "L9", occurred_at=old)                          # each one LateRecording alert
    s.accepted(s.process("OP1", [("L1", 100)], [retreaded(99)]))      # 1 % off: YieldDeviation recorded
    types = {a["type"] for a in s.query("GetAlerts", AUTH_ID)["alerts"]}
    assert "YieldDeviation" in types, sorted(types)


def test_a_busy_month_keeps_every_exit_in_the_bill(peer_limit):
    s = Scenario.with_l1(InwardProcessingContract)
    s.accepted(s.place("L2", 100))
    _moves(s, LIMIT, "L1")
    s.accepted(s.exit(100, lot_id="L2", procedure="3151"))            # L2 leaves the procedure
    bill = s.query("GetBillOfDischargeData", AUTH_ID, None, iso(s.ledger.now + dt.timedelta(seconds=1)))
    assert sum(d["quantity"] for d in bill["disposals"]) == 100


def test_a_ceiling_holds_however_many_balance_shards_there_are(peer_limit):
    """Lots of many goods codes under a 4-digit heading each add balance shards; the ceiling check of a code
    sorting last must still count all of them."""
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant(input_goods=[{"cn": "4012", "description": "tyres", "unit": "p/st", "max_qty": 100}],
                       yield_rates=[{"input_cn": "4012", "output_cn": RETREADED, "output_per_input": 1}]))
    for i in range(LIMIT):                                           # 40 lots of 1 piece, 40 goods codes
        s.accepted(s.place(f"S{i}", 1, cn=f"401200{i:02d}"))
    s.accepted(s.place("BIG1", 60, cn="40129999"))                  # 40 + 60 = 100: the ceiling reached
    s.refused("CeilingExceeded", s.place, "BIG2", 60, cn="40129998")


def test_ipledgers_peers_cut_no_range_read_the_contract_would_not_read_on_from(tmp_path):
    """The peers' configured limit (network/org/generate.py) is at least the contract's assumption, and the
    memory ledger emulates that same limit."""
    from ipledger.network import consortium
    from ipledger.network.layout import Layout
    from ipledger.network.org import generate
    c = consortium.load(base_port=21000)
    limits = {generate.peer_config(c, Layout(tmp_path), p)["ledger"]["state"]["totalQueryLimit"]
              for o in c.orgs for p in o.peers}
    assert limits == {memstub.MemStub.range_limit}
    assert min(limits) >= state.RANGE_READ_CUT_AT_LEAST
    # a read the contract closes after its chunk: the peer has read one record more, still below any peer's limit
    assert state.RANGE_READ_CHUNK + 1 < state.RANGE_READ_CUT_AT_LEAST


def _range_reads(monkeypatch, limit: int) -> list[tuple[int, bool]]:
    """Each range read of a SetParameters that re-reads every lot (``loss_warn_pct``), on a peer of ``limit``: how
    many records the contract took from it, and whether it ran to its end (what the read set records of it)."""
    reads: list[list] = []

    class Traced(memstub._Iter):
        def __iter__(self):
            entry = [0, False]
            reads.append(entry)
            for item in super().__iter__():
                entry[0] += 1
                yield item
            entry[1] = True

    monkeypatch.setattr(memstub.MemStub, "range_limit", limit)
    monkeypatch.setattr(memstub.MemStub, "_cut", lambda self, rows: Traced(itertools.islice(rows, self.range_limit)))
    s = Scenario.with_l1(InwardProcessingContract)
    for i in range(70):
        s.accepted(s.place(f"R{i:02d}", 1))
    s.accepted(s.lose(1, lot_id="R00", reason="NATURE"))
    del reads[:]
    s.accepted(s.set_parameters(loss_warn_pct=0.5))
    return [tuple(r) for r in reads]


def test_the_range_reads_are_the_same_on_peers_of_different_limits(monkeypatch):
    """A peer of limit 40 and one of 100,000 (both above the contract's chunk): the same reads, each taken to the
    same record — otherwise their endorsements' read sets differ and no write on the authorisation commits."""
    monkeypatch.setattr(state, "RANGE_READ_CHUNK", 30)
    low, high = _range_reads(monkeypatch, 40), _range_reads(monkeypatch, 100_000)
    assert low == high
    assert max(n for n, _ in low) == 30 and any(n == 30 and not ended for n, ended in low)   # a read closed at 30
