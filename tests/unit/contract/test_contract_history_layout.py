"""The audit trail of a lot or batch: references to the event log, and ledgers of the earlier layout.

An event is stored once, in the event log; each lot's or batch's history holds a reference to it
(chaincode/contract/eventlog.py). Histories written by the earlier layout — a copy of the event per
lot and batch — must read exactly as before, alongside entries of the new one.
"""
from __future__ import annotations

import json

from ipledger.chaincode.contract import InwardProcessingContract
from ipledger.chaincode.contract import keys as K
from ipledger.chaincode.testing.scenario import AUTH_ID, SITE1, SITE2, Scenario, retreaded, waste


def _values(s: Scenario, object_type: str, goods_id: str) -> dict[str, dict]:
    stub = s.ledger.stub()
    prefix = stub.create_composite_key(object_type, [goods_id])
    return {k: json.loads(v) for k, v in s.ledger.state.items() if k.startswith(prefix)}


def _log_entries(s: Scenario) -> list[dict]:
    stub = s.ledger.stub()
    prefix = stub.create_composite_key(K.LOG, [AUTH_ID])
    return [json.loads(v) for k, v in sorted(s.ledger.state.items()) if k.startswith(prefix)]


def _processed() -> tuple[Scenario, dict]:
    s = Scenario.with_l1(InwardProcessingContract)
    s.accepted(s.move(100, SITE1, SITE2, lot_id="L1"))
    out = s.accepted(s.process("OP1", [("L1", 500)], [retreaded(495, "B1"), waste(300, "W1")]))
    return s, out


def test_a_processing_is_stored_once_and_each_goods_history_holds_a_reference():
    s, out = _processed()
    (entry,) = [e for e in _log_entries(s) if e["tx_id"] == out["tx_id"]]
    assert entry["event_type"] == "RecordProcessing" and entry["batches"] == ["B1", "W1"]
    for object_type, goods_id in ((K.LOT_LOG, "L1"), (K.BATCH_LOG, "B1"), (K.BATCH_LOG, "W1")):
        refs = [v for k, v in _values(s, object_type, goods_id).items() if out["tx_id"] in k]
        assert refs == [{"scope": AUTH_ID, "month": out["recorded_at"][:7]}], (goods_id, refs)


def test_a_goods_history_shows_the_referenced_event_with_only_its_own_effects():
    s, out = _processed()
    (entry,) = [e for e in _log_entries(s) if e["tx_id"] == out["tx_id"]]
    lot = s.query("GetLotHistory", "L1")["history"]
    batch = s.query("GetBatchHistory", "W1")["history"]
    assert [h["event_type"] for h in lot] == ["PlaceUnderProcedure", "MoveGoods", "RecordProcessing"]
    assert [h["event_type"] for h in batch] == ["RecordProcessing"]
    for shown in (lot[-1], batch[0]):
        assert shown["event"] == entry["event"] and shown["tx_id"] == entry["tx_id"]
        assert shown["submitted_by"] == entry["submitted_by"] and shown["recorded_at"] == entry["recorded_at"]
    # the lot is consumed by the processing and shares in both batches; W1 sees its own production only
    assert {e["op"] for e in lot[-1]["effects"]} == {"consume", "produce"}
    assert [e["batch"]["batch_id"] for e in batch[0]["effects"]] == ["W1"]
    assert len(entry["effects"]) == 3


def test_histories_written_by_the_earlier_layout_read_as_before_among_new_entries():
    s = Scenario.with_l1(InwardProcessingContract)
    placed = s.query("GetLotHistory", "L1")["history"]
    # the earlier layout: the history entry of the placement is a copy of the event, not a reference
    (key,) = _values(s, K.LOT_LOG, "L1")
    earlier = {**placed[0], "event_id": "as-stored-earlier"}   # shows that the stored copy is what is read
    s.ledger._committed.put(key, json.dumps(earlier).encode())
    s.accepted(s.move(100, SITE1, SITE2, lot_id="L1"))
    history = s.query("GetLotHistory", "L1")["history"]
    assert history[0] == earlier
    assert [h["event_type"] for h in history] == ["PlaceUnderProcedure", "MoveGoods"]
    assert history[1]["effects"] == [{"op": "move", "kind": "LOT", "id": "L1", "qty": 100,
                                      "from": SITE1, "to": SITE2}]


def test_a_reference_to_a_missing_log_entry_is_not_silently_skipped():
    """The log entry a reference names is on the same ledger, written by the same transaction; if it
    were missing the ledger is damaged and the query fails by name rather than show a shorter audit trail."""
    s = Scenario.with_l1(InwardProcessingContract)
    (key,) = _values(s, K.LOT_LOG, "L1")
    s.ledger._committed.put(key, json.dumps({"scope": AUTH_ID, "month": "1999-01"}).encode())
    res = s.ledger.evaluate(s.contract, "GetLotHistory", ["L1"], "CustomsMSP")
    assert not res.ok and res.error_code == "LedgerInconsistent"
    assert "names a log entry that is not on the ledger" in res.message and "1999-01" in res.message


def test_a_processing_of_two_lots_shows_each_lot_its_own_consumption_only():
    """One log entry for the processing, three histories reading it: each lot's entry keeps its own
    consumption and the productions it has a share in, never the other lot's consumption."""
    s = Scenario.with_l1(InwardProcessingContract)
    s.accepted(s.place("L2", 1000))
    out = s.accepted(s.process("OP1", [("L1", 100), ("L2", 200)], [retreaded(295, "B1"), waste(300, "W1")]))
    (entry,) = [e for e in _log_entries(s) if e["tx_id"] == out["tx_id"]]
    consumed = {lot_id: [e for e in s.query("GetLotHistory", lot_id)["history"][-1]["effects"]
                         if e["op"] == "consume"] for lot_id in ("L1", "L2")}
    assert [(e["lot_id"], e["qty"]) for e in consumed["L1"]] == [("L1", 100)]
    assert [(e["lot_id"], e["qty"]) for e in consumed["L2"]] == [("L2", 200)]
    assert len([e for e in entry["effects"] if e["op"] == "consume"]) == 2
    for lot_id in ("L1", "L2"):
        produced = [e["batch"]["batch_id"] for e in s.query("GetLotHistory", lot_id)["history"][-1]["effects"]
                    if e["op"] == "produce"]
        assert produced == ["B1", "W1"]
