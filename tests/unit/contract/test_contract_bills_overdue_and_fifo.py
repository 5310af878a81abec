"""Bills of discharge over late placements, overdue goods, queried bills and amendments; FIFO by placement time; replays
of whole numbers written as fractions.

Bills already submitted keep their hash: every test recomputes the submitted bills after the later events, and
the "recorded by the previous contract" tests rewrite the records that version wrote (no ``billed_from`` on a
late lot, no ``overdue`` on a bill) to show that its bills are still computed as it computed them."""
from __future__ import annotations

import json
import types

import pytest

from ipledger.chaincode.contract import InwardProcessingContract, eventlog, keys
from ipledger.chaincode.contract.state import canonical_json
from ipledger.chaincode.testing.scenario import (AUTH_ID, SITE1, SITE2, Scenario, authorisation_fields, iso,
                                                 retreaded, waste)


@pytest.fixture
def sc():
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant())
    return s


def _data(sc, day) -> dict:
    return sc.query("GetBillOfDischargeData", AUTH_ID, day.date().isoformat(), msp="OperatorMSP")


def _submit_bill(sc, day) -> dict:
    data = _data(sc, day)
    sc.accepted(sc.submit("SubmitBillOfDischarge", {"authorisation_id": AUTH_ID, "period_end": day.date().isoformat(),
                                                    "document_hash": data["document_hash"]}, "OperatorMSP"))
    return data


def _decide(sc, day, decision: str) -> None:
    bill_id = f"BOD-{AUTH_ID}-{day.date().isoformat()}"
    sc.accepted(sc.submit("DecideBillOfDischarge", {"authorisation_id": AUTH_ID, "bill_id": bill_id,
                                                    "decision": decision, "note": "n"}, "CustomsMSP"))


def _bill_alerts(sc, ts=None) -> list[tuple[str, str, list[str]]]:
    return [(a["type"], a["details"]["period_end"], a["details"]["lots"])
            for a in sc.query("GetAlerts", AUTH_ID, ts=ts)["alerts"] if a["type"].startswith("BillOfDischarge")]


def _as_previous_contract_wrote_it(sc, field: str) -> None:
    """Remove ``field`` from every committed record holding it (lots and their log entries, bills): the ledger
    as an earlier contract wrote it."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != field}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value
    for key, raw in sc.ledger.state.items():
        if f'"{field}"'.encode() in raw:
            sc.ledger._committed.put(key, canonical_json(strip(json.loads(raw))))


# ---------------------------------------------------------------------------------------- F3

def test_a_placement_recorded_after_its_deadlines_period_but_before_its_bill_is_in_the_next_bill(sc):
    """L2, declared at D+0 (deadline D+180), is recorded at D+186 — after the period to D+185 ended, before its bill
    is submitted — and released for free circulation. The bill to D+185 (its replay ends at D+186 00:00) cannot
    hold it: it is in the next bill, and the bill alerts name it until then; both bills keep their hashes."""
    sc.accepted(sc.place("L1", 100))
    sc.wait_until(sc.D(186))
    sc.accepted(sc.place("L2", 500, occurred_at=iso(sc.D(0))))
    sc.accepted(sc.exit(500, lot_id="L2", procedure="4051"))
    assert sc.lot("L2")["billed_from"] == sc.lot("L2")["accepted_at"]
    first = _submit_bill(sc, sc.D(185))
    assert [lot["lot_id"] for lot in first["lots"]] == ["L1"]
    sc.wait_until(sc.D(210))
    assert _bill_alerts(sc) == [("BillOfDischargeDue", sc.D(186).date().isoformat(), ["L2"])]
    sc.wait_until(sc.D(401))
    second = _submit_bill(sc, sc.D(400))
    assert [lot["lot_id"] for lot in second["lots"]] == ["L2"]
    assert [(d["id"], d["procedure"], d["quantity"]) for d in second["disposals"]] == [("L2", "4051", 500)]
    assert _bill_alerts(sc) == []
    amended = authorisation_fields(sc.day, supervising_office="FR000220")   # later events change neither bill
    sc.accepted(sc.submit("AmendAuthorisation", {"authorisation_id": AUTH_ID, **amended}, "CustomsMSP"))
    assert _data(sc, sc.D(185))["document_hash"] == first["document_hash"]
    assert _data(sc, sc.D(400))["document_hash"] == second["document_hash"]


def test_a_lot_recorded_in_time_is_billed_by_its_deadline(sc):
    sc.accepted(sc.place("L1", 100, occurred_at=iso(sc.D(-1))))          # late, but before its deadline
    assert "billed_from" not in sc.lot("L1")
    sc.wait_until(sc.D(186))
    assert [lot["lot_id"] for lot in _data(sc, sc.D(185))["lots"]] == ["L1"]


def test_a_late_lot_recorded_by_the_previous_contract_keeps_its_bills_and_raises_a_late_alert(sc):
    """An earlier contract stored no ``billed_from`` for a late lot whose period had no bill yet, and
    billed it by its deadline: in a bill that did not hold it. Bills submitted since keep their hashes (the lot
    stays out of them); the bill alert says it is in no bill instead of keeping silent."""
    sc.accepted(sc.place("L1", 100))
    sc.wait_until(sc.D(186))
    sc.accepted(sc.place("L2", 500, occurred_at=iso(sc.D(0))))
    _as_previous_contract_wrote_it(sc, "billed_from")
    first = _submit_bill(sc, sc.D(185))
    sc.wait_until(sc.D(401))
    second = _submit_bill(sc, sc.D(400))
    assert [lot["lot_id"] for bill in (first, second) for lot in bill["lots"]] == ["L1"]
    assert _bill_alerts(sc) == [("BillOfDischargeLate", sc.D(180).date().isoformat(), ["L2"])]


# ---------------------------------------------------------------------------------------- F1

def _overdue_l1_with_products(sc):
    """L1 (1,000 p/st, due D+180): 500 processed into B1 (500 p/st) and W1 (100 kg of waste); billed to D+185
    with all of it left over, flagged OVERDUE."""
    sc.accepted(sc.place("L1", 1000))
    sc.accepted(sc.process("OP1", [("L1", 500)], [retreaded(500, "B1"), waste(100, "W1")]))
    sc.wait_until(sc.D(186))
    first = _submit_bill(sc, sc.D(185))
    assert [(r["id"], r["status"]) for r in first["remaining"]] == [("L1", "OVERDUE"), ("B1", "OVERDUE"),
                                                                    ("W1", "OVERDUE")]
    return first


def test_disposals_of_goods_an_earlier_bill_left_overdue_are_in_the_next_bill_carried_from_it(sc):
    first = _overdue_l1_with_products(sc)
    sc.wait_until(sc.D(190))
    sc.accepted(sc.exit(500, lot_id="L1", procedure="4051"))
    sc.accepted(sc.exit(500, batch_id="B1", procedure="3151"))
    sc.accepted(sc.lose(100, batch_id="W1", reason="DESTROYED"))
    sc.wait_until(sc.D(401))
    second = _submit_bill(sc, sc.D(400))
    carried = {"carried_from": sc.D(185).date().isoformat()}
    assert second["lots"] == []
    assert [(d["id"], d["procedure"], d["quantity"], d["carried_from"]) for d in second["disposals"]] == \
        [("L1", "4051", 500, carried["carried_from"]), ("B1", "3151", 500, carried["carried_from"])]
    assert second["disposals"][0]["input_goods"] == [{"lot_id": "L1", "cn": "40122000", "unit": "p/st",
                                                      "quantity": 500}]
    assert [(x["id"], x["reason"], x["quantity"], x["carried_from"]) for x in second["losses"]] == \
        [("W1", "DESTROYED", 100, carried["carried_from"])]
    assert second["remaining"] == []
    assert {(r["procedure"], r["quantity"]) for r in second["totals"]["exited"]} == {("4051", 500), ("3151", 500)}
    assert all(c["holds"] and c["carried_from"] == carried["carried_from"] for c in second["proof"]["conservation"])
    # none in two: the first bill is unchanged, and a later bill does not list them again
    assert _data(sc, sc.D(185))["document_hash"] == first["document_hash"]
    sc.wait_until(sc.D(601))
    third = _data(sc, sc.D(600))
    assert third["disposals"] == [] and third["losses"] == [] and third["remaining"] == []
    assert _data(sc, sc.D(400))["document_hash"] == second["document_hash"]
    # a bill of an earlier period's own goods lists no carried_from at all (documents of before keep their shape)
    assert "carried_from" not in json.dumps(first)


def test_goods_left_overdue_are_carried_from_bill_to_bill_until_they_leave(sc):
    _overdue_l1_with_products(sc)
    sc.wait_until(sc.D(401))
    second = _submit_bill(sc, sc.D(400))                                   # nothing happened to them
    assert second["disposals"] == []
    assert [(r["id"], r["quantity"], r["status"], r["carried_from"]) for r in second["remaining"]] == \
        [("L1", 500, "OVERDUE", sc.D(185).date().isoformat()), ("B1", 500, "OVERDUE", sc.D(185).date().isoformat()),
         ("W1", 100, "OVERDUE", sc.D(185).date().isoformat())]
    sc.accepted(sc.exit(500, batch_id="B1", procedure="3151"))
    sc.wait_until(sc.D(601))
    third = _submit_bill(sc, sc.D(600))
    assert [(d["id"], d["carried_from"]) for d in third["disposals"]] == [("B1", sc.D(400).date().isoformat())]
    assert [r["id"] for r in third["remaining"]] == ["L1", "W1"]
    assert _data(sc, sc.D(400))["document_hash"] == second["document_hash"]


def test_goods_extended_after_the_bill_that_left_them_overdue_are_in_the_bill_of_their_new_deadline(sc):
    """An extension moves the lot (and B1, made from it) into the bill of its new deadline, which lists all of
    them: they are not carried as well."""
    _overdue_l1_with_products(sc)
    sc.wait_until(sc.D(190))
    sc.accepted(sc.submit("ExtendDischargePeriod", {"authorisation_id": AUTH_ID, "lot_ids": ["L1"],
                                                    "new_deadline": iso(sc.D(500))}, "CustomsMSP"))
    sc.accepted(sc.exit(500, batch_id="B1", procedure="3151"))
    sc.wait_until(sc.D(401))
    second = _submit_bill(sc, sc.D(400))
    assert second["disposals"] == [] and second["remaining"] == []
    sc.wait_until(sc.D(601))
    third = _data(sc, sc.D(600))
    assert [lot["lot_id"] for lot in third["lots"]] == ["L1"]
    assert [(d["id"], "carried_from" in d) for d in third["disposals"]] == [("B1", False)]


def test_a_bill_submitted_by_the_previous_contract_carries_nothing_into_the_next(sc):
    """A bill recorded without ``overdue`` (an earlier contract): the next bill, possibly submitted
    by that contract too, is computed as it was — its hash does not change."""
    _overdue_l1_with_products(sc)
    _as_previous_contract_wrote_it(sc, "overdue")
    sc.wait_until(sc.D(190))
    sc.accepted(sc.exit(500, lot_id="L1", procedure="4051"))
    sc.wait_until(sc.D(401))
    second = _data(sc, sc.D(400))
    assert second["disposals"] == [] and "carried_from" not in json.dumps(second)


# ---------------------------------------------------------------------------------------- F6

def test_a_later_bill_is_refused_while_an_earlier_one_is_queried(sc):
    sc.accepted(sc.place("L1", 100))
    sc.wait_until(sc.D(186))
    first = _submit_bill(sc, sc.D(185))
    _decide(sc, sc.D(185), "QUERIED")
    sc.wait_until(sc.D(201))
    period = sc.D(200).date().isoformat()
    later = {"authorisation_id": AUTH_ID, "period_end": period, "document_hash": _data(sc, sc.D(200))["document_hash"]}
    details = sc.refused("InvalidState", sc.submit, "SubmitBillOfDischarge", later, "OperatorMSP")
    assert details["bill_id"] == f"BOD-{AUTH_ID}-{sc.D(185).date().isoformat()}" and details["status"] == "QUERIED"
    assert _submit_bill(sc, sc.D(185))["document_hash"] == first["document_hash"]   # answered: submitted again
    sc.accepted(sc.submit("SubmitBillOfDischarge", later, "OperatorMSP"))
    assert _bill_alerts(sc, ts=sc.D(300)) == []


def test_a_bill_queried_after_a_later_one_was_submitted_can_be_submitted_again(sc):
    sc.accepted(sc.place("L1", 100))
    sc.wait_until(sc.D(186))
    first = _submit_bill(sc, sc.D(185))
    sc.wait_until(sc.D(201))
    _submit_bill(sc, sc.D(200))
    _decide(sc, sc.D(185), "QUERIED")
    assert [t for t, _day, _lots in _bill_alerts(sc, ts=sc.D(300))] == ["BillOfDischargeLate"]
    again = _submit_bill(sc, sc.D(185))
    assert again["document_hash"] == first["document_hash"]
    assert _bill_alerts(sc, ts=sc.D(300)) == []
    # a new bill before the later one is still out of order
    between = {"authorisation_id": AUTH_ID, "period_end": sc.D(190).date().isoformat(),
               "document_hash": _data(sc, sc.D(190))["document_hash"]}
    sc.refused("OutOfOrder", sc.submit, "SubmitBillOfDischarge", between, "OperatorMSP")


# ---------------------------------------------------------------------------------------- F5

def test_a_bill_for_a_period_before_the_grant_keeps_its_hash_after_an_amendment(sc):
    before = _submit_bill(sc, sc.D(-5))
    assert before["authorisation_version"] == 1 and before["lots"] == []
    sc.accepted(sc.submit("AmendAuthorisation", {"authorisation_id": AUTH_ID,
                                                 **authorisation_fields(sc.day, supervising_office="FR000220")},
                          "CustomsMSP"))
    again = _data(sc, sc.D(-5))
    assert (again["authorisation_version"], again["supervising_office"]) == (1, before["supervising_office"])
    assert again["document_hash"] == before["document_hash"]


# ---------------------------------------------------------------------------------------- F2

def test_a_new_batch_takes_its_lots_first_in_first_out_by_placement_time(sc):
    """LB was declared at D-20 (deadline D+160) but recorded at D+1, after LA (declared and recorded at D): LB was
    placed first, so a batch made from both lets LB's share go first and, once it has, is held to LA's deadline."""
    sc.accepted(sc.place("LA", 100))
    sc.wait_until(sc.D(1))
    sc.accepted(sc.place("LB", 100, occurred_at=iso(sc.D(-20))))
    sc.accepted(sc.process("OP1", [("LA", 100), ("LB", 100)], [retreaded(200, "B1")]))
    assert [share["lot_id"] for share in sc.batch("B1")["shares"]] == ["LB", "LA"]
    res = sc.accepted(sc.exit(100, batch_id="B1"))
    assert res["exit"]["attribution"] == [{"lot_id": "LB", "qty": 100, "input_qty": 100}]
    assert sc.batch("B1")["deadline"] == sc.lot("LA")["deadline"]
    sc.wait_until(sc.D(165))
    sc.accepted(sc.move(50, SITE1, SITE2, batch_id="B1"))


def test_lots_placed_at_the_same_time_go_by_recording_time(sc):
    sc.accepted(sc.place("LX", 10))                                      # recorded first, placed last
    placed = iso(sc.D(-2))
    sc.accepted(sc.place("LZ", 10, occurred_at=placed))
    sc.accepted(sc.place("LY", 10, occurred_at=placed))
    sc.accepted(sc.process("OP1", [("LX", 10), ("LY", 10), ("LZ", 10)], [retreaded(30, "B1")]))
    assert [share["lot_id"] for share in sc.batch("B1")["shares"]] == ["LZ", "LY", "LX"]


# ---------------------------------------------------------------------------------------- F7a

def test_a_replay_writing_a_whole_number_as_a_fraction_returns_the_original_result(sc):
    event = {"event_id": "g2", "occurred_at": iso(sc.day), "authorisation_id": "FRIPO000002",
             **authorisation_fields(sc.day)}
    first = sc.ledger.invoke(sc.contract, "GrantAuthorisation", [event], "CustomsMSP")
    assert first.ok
    text = json.dumps(event).replace('"output_per_input": 1}', '"output_per_input": 1.0}')
    assert '"output_per_input": 1.0' in text
    replay = sc.ledger.invoke(sc.contract, "GrantAuthorisation", [text.encode()], "CustomsMSP")
    assert replay.ok and replay.json()["tx_id"] == first.json()["tx_id"]
    other = text.replace('"output_per_input": 1.0}', '"output_per_input": 1.5}')
    assert sc.ledger.invoke(sc.contract, "GrantAuthorisation", [other.encode()], "CustomsMSP").error_code == \
        "DuplicateEvent"


def test_an_event_hashed_as_sent_by_the_previous_contract_still_replays(sc):
    event = {"event_id": "g3", "occurred_at": iso(sc.day), "authorisation_id": "FRIPO000003",
             **authorisation_fields(sc.day)}
    text = json.dumps(event).replace('"output_per_input": 1}', '"output_per_input": 1.0}')
    first = sc.ledger.invoke(sc.contract, "GrantAuthorisation", [text.encode()], "CustomsMSP")
    assert first.ok
    key = sc.ledger.stub().create_composite_key(*(lambda k: (k[0], list(k[1:])))(keys.event("CustomsMSP", "g3")))
    record = json.loads(sc.ledger.state[key])
    as_sent = eventlog.content_hash(types.SimpleNamespace(caller=types.SimpleNamespace(msp_id="CustomsMSP"),
                                                          commercial=None),
                                    "GrantAuthorisation", json.loads(text), normalised=False)
    sc.ledger._committed.put(key, canonical_json({**record, "hash": as_sent}))
    replay = sc.ledger.invoke(sc.contract, "GrantAuthorisation", [text.encode()], "CustomsMSP")
    assert replay.ok and replay.json()["tx_id"] == first.json()["tx_id"]


def test_a_quantity_written_as_a_fraction_is_still_refused(sc):
    sc.accepted(sc.place("L1", 10))
    res = sc.place("L2", 10)
    assert res.ok
    event = {"authorisation_id": AUTH_ID, "lot_id": "L1", "quantity": 1.0, "from_site": SITE1, "to_site": SITE2,
             "event_id": "mv-1", "occurred_at": iso(sc.ledger.now)}
    assert sc.ledger.invoke(sc.contract, "MoveGoods", [event], "OperatorMSP").error_code == "InvalidEvent"


def test_the_replay_hash_reads_numbers_as_the_contract_does():
    from ipledger.chaincode.contract import eventlog
    assert eventlog.same_numbers({"a": 1e23, "b": [1.0, 0.5, -0.0], "c": True, "d": 2}) == \
        {"a": 10 ** 23, "b": [1, 0.5, 0], "c": True, "d": 2}
