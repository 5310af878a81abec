"""Changing ``loss_warn_pct`` judges LossRateHigh again for the lots and batches that lost goods, read from their
index (``auth.loss``, keys.py) — not from every lot and batch of the channel, which every event of a busy channel
changes: customs' transaction would conflict with them on every retry (MVCC and phantom reads) and could not
commit. A ledger written before the index is indexed once, by the first such change."""
from ipledger.chaincode.contract import InwardProcessingContract, keys
from ipledger.chaincode.shim.keys import create_composite_key
from ipledger.chaincode.testing.scenario import AUTH_ID, Scenario, retreaded

from tests.unit.contract.test_contract_read_ahead import counting


def _loss_alerts(s):
    return sorted(a["subject"] for a in s.query("GetAlerts", AUTH_ID)["alerts"] if a["type"] == "LossRateHigh")


def _plant(lots: int = 40) -> Scenario:
    s = Scenario.with_l1(InwardProcessingContract)
    for i in range(lots):
        s.accepted(s.place(f"R{i:02d}", 100))
    s.accepted(s.lose(1, lot_id="R07", reason="NATURE"))      # 1 % of 100
    s.accepted(s.lose(2, lot_id="L1", reason="DESTROYED"))    # destruction is no loss for the rate
    return s


def ck(key: tuple) -> str:
    return create_composite_key(key[0], [str(a) for a in key[1:]])


def _records_read(calls, object_type: str) -> set[str]:
    read = set(calls["get_state"]) | {k for batch in calls["get_multiple_states"] for k in batch}
    return {k for k in read if k.startswith(ck((object_type,)))}


def test_a_change_reads_the_lots_that_lost_goods_and_no_other(monkeypatch):
    s = _plant()
    s.accepted(s.set_parameters(loss_warn_pct=0.5))           # the first change after the index: it is complete
    assert _loss_alerts(s) == ["LOT:R07"]
    calls = counting(monkeypatch)
    s.accepted(s.set_parameters(loss_warn_pct=2))
    assert _records_read(calls, keys.LOT) == {ck(keys.lot("R07")), ck(keys.lot("L1"))}
    assert _loss_alerts(s) == []
    s.accepted(s.set_parameters(loss_warn_pct=0.5))
    assert _loss_alerts(s) == ["LOT:R07"]


def test_a_ledger_written_before_the_index_is_indexed_by_the_first_change(monkeypatch):
    s = _plant()
    committed = s.ledger._committed
    for key in [k for k in committed.sorted_keys if k.startswith(ck((keys.AUTH_LOSSES,)))]:
        committed.delete(key)                                  # as a ledger written before the index holds
    assert not any(k.startswith(ck((keys.AUTH_LOSSES,))) for k in committed.sorted_keys)
    calls = counting(monkeypatch)
    s.accepted(s.set_parameters(loss_warn_pct=0.5))
    assert len(_records_read(calls, keys.LOT)) == 41                 # every lot, once
    assert _loss_alerts(s) == ["LOT:R07"]
    assert ck(keys.auth_loss(AUTH_ID, "LOT", "R07")) in committed.state
    assert ck(keys.loss_index_built()) in committed.state
    monkeypatch.undo()
    calls = counting(monkeypatch)
    s.accepted(s.set_parameters(loss_warn_pct=2))
    assert len(_records_read(calls, keys.LOT)) == 2
    assert _loss_alerts(s) == []


def test_a_batch_that_lost_goods_is_judged_again_too(monkeypatch):
    s = Scenario.with_l1(InwardProcessingContract)
    s.accepted(s.process("OP1", [("L1", 500)], [retreaded(495, "B1")]))
    s.accepted(s.lose(4, batch_id="B1", reason="NATURE"))     # 0.8 % of 495
    assert _loss_alerts(s) == []
    s.accepted(s.set_parameters(loss_warn_pct=0.5))
    assert _loss_alerts(s) == ["BATCH:B1"]
    calls = counting(monkeypatch)
    s.accepted(s.set_parameters(loss_warn_pct=1))
    assert _records_read(calls, keys.BATCH) == {ck(keys.batch("B1"))}
    assert _records_read(calls, keys.LOT) == set()
    assert _loss_alerts(s) == []
