"""The example scenario of domain.md §8, step by step, with the expected balances, alerts and
bill-of-discharge data. Each test replays the steps before it on a fresh ledger (milliseconds)."""
from __future__ import annotations

import datetime as dt

import pytest

from ipledger.chaincode.contract import InwardProcessingContract
from ipledger.chaincode.testing.scenario import (AUTH_ID, EXIT_MRN_B1, PARTIES, PLACE_MRN_L1, RETREADED, RUBBER_WASTE, SITE1,
                                        SITE2, USED_TYRES, Scenario, iso, mrn, retreaded, waste)

DAY_S = 86400


def step1_event(s: Scenario) -> dict:
    return {"event_id": "broker-0001", "authorisation_id": AUTH_ID, "occurred_at": iso(s.D()), "lot_id": "L1",
            "mrn": PLACE_MRN_L1, "item_no": 1, "procedure": "5100", "cn": USED_TYRES,
            "description": "used pneumatic tyres for retreading", "quantity": 1000, "unit": "p/st",
            "net_mass_g": 9_500_000, "origin": "MA", "site": SITE1}


STEP1_VALUE = {"commercial": {"customs_value": {"amount": "25000.00", "currency": "EUR"}, "nonce": "nonce-of-step-1-L1"}}


def run(steps: int) -> tuple[Scenario, dict]:
    """The scenario up to and including ``steps``; returns the scenario and the results by step."""
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant())
    out = {}
    if steps >= 1:
        out[1] = s.accepted(s.submit("PlaceUnderProcedure", step1_event(s), "BrokerMSP", transient=STEP1_VALUE))
    if steps >= 2:
        out[2] = s.accepted(s.move(400, SITE1, SITE2, lot_id="L1"))
    if steps >= 3:
        out[3] = s.process("OP1", [("L1", 500)], [retreaded(495, "B1"), waste(1200, "B2")])
    if steps >= 4:
        out[4] = s.accepted(s.exit(495, batch_id="B1", procedure="3151", mrn_=EXIT_MRN_B1))
    if steps >= 6:
        out[6] = s.accepted(s.place("L2", 4200, mrn_=mrn("I", 2)))
    return s, out


def balance(s: Scenario, category: str, cn: str) -> dict:
    rows = [b for b in s.query("GetBalances", AUTH_ID)["balances"] if b["category"] == category and b["cn"] == cn]
    assert len(rows) == 1
    return rows[0]


def test_step1_broker_places_lot_L1():
    s, out = run(1)
    lot = s.lot("L1")
    assert (lot["balance"], lot["stock"], lot["mrn"], lot["status"]) == (1000, {SITE1: 1000}, PLACE_MRN_L1, "OPEN")
    assert lot["commercial"]["customs_value"] == {"amount": "25000.00", "currency": "EUR"}  # customs see it
    assert balance(s, "INPUT", USED_TYRES)["stock"] == 1000
    assert s.query("GetBalances", AUTH_ID)["ceilings"][0]["quantity"] == 1000
    assert dt.datetime.fromisoformat(lot["deadline"]).date() == s.D(180).date()
    assert out[1]["lot"]["deadline"] == lot["deadline"]


def test_step2_operator_moves_400_to_bourges2():
    s, _ = run(2)
    lot = s.lot("L1")
    assert lot["balance"] == 1000 and lot["stock"] == {SITE1: 600, SITE2: 400}


def test_step3_processing_refused_variant_writes_nothing():
    s, _ = run(2)
    details = s.refused("YieldOutOfTolerance", s.process, "OP1", [("L1", 500)], [retreaded(480, "B1"), waste(1200, "B2")])
    assert details["actual_per_input"] == "0.96"
    assert s.lot("L1")["stock"] == {SITE1: 600, SITE2: 400}


def test_step3_processing_500_gives_495_retreaded_and_1200_kg_waste():
    s, out = run(3)
    res = s.accepted(out[3])
    assert res["operation"]["yield"][0]["actual_per_input"] == "0.99"
    lot = s.lot("L1")
    assert lot["balance"] == 500 and lot["stock"] == {SITE1: 100, SITE2: 400} and lot["consumed"] == 500
    b1, b2 = s.batch("B1"), s.batch("B2")
    assert (b1["cn"], b1["balance"], b1["unit"]) == (RETREADED, 495, "p/st")
    assert (b2["cn"], b2["balance"], b2["unit"]) == (RUBBER_WASTE, 1200, "kg")
    assert b1["source_lots"] == [{"lot_id": "L1", "qty": 500}] and b1["deadline"] == lot["deadline"]
    alerts = [a for a in s.query("GetAlerts", AUTH_ID)["alerts"] if a["type"] == "YieldDeviation"]
    assert len(alerts) == 1 and alerts[0]["details"]["deviation_pct"] == "1"
    changes = out[3].event_json()["alerts"]
    assert [(c["change"], c["type"]) for c in changes] == [("RAISED", "YieldDeviation")]


def test_step4_broker_re_exports_B1():
    s, out = run(4)
    assert s.batch("B1")["balance"] == 0 and s.batch("B1")["exited"] == {"3151": 495}
    assert out[4]["exit"]["attribution"] == [{"lot_id": "L1", "qty": 495, "input_qty": 500}]
    assert balance(s, "PRODUCT", RETREADED)["exited"] == {"3151": 495}


def test_step5_exit_of_600_from_L1_refused():
    s, _ = run(4)
    details = s.refused("QuantityExceedsBalance", s.exit, 600, lot_id="L1", msp="OperatorMSP")
    assert details["available"] == 500
    assert s.lot("L1")["balance"] == 500


def test_step6_L2_accepted_with_ceiling_near_then_L3_exceeds_the_ceiling():
    s, out = run(6)
    assert out[6]["under_procedure"]["quantity"] == 4700
    ceiling = [a for a in s.query("GetAlerts", AUTH_ID)["alerts"] if a["type"] == "CeilingNear"]
    assert len(ceiling) == 1 and ceiling[0]["details"]["quantity"] == 4700 and ceiling[0]["details"]["pct"] == "94"
    details = s.refused("CeilingExceeded", s.place, "L3", 400)
    assert details["under_procedure"] + details["requested"] == 5100 and details["max_qty"] == 5000


def _deadline_alerts(s: Scenario, as_of: dt.datetime) -> list[tuple[str, str, int]]:
    return sorted((a["type"], a["details"]["id"], a["details"]["balance"])
                  for a in s.query("GetAlerts", AUTH_ID, iso(as_of))["alerts"] if a["type"].startswith("Deadline"))


def test_step7_deadline_alerts_as_of_D151_and_D181():
    s, _ = run(6)
    # the 1,200 kg of waste (B2, made from L1) are under the procedure too until they leave it
    assert _deadline_alerts(s, s.D(151)) == [("DeadlineApproaching", "B2", 1200), ("DeadlineApproaching", "L1", 500),
                                             ("DeadlineApproaching", "L2", 4200)]
    assert _deadline_alerts(s, s.D(181)) == [("DeadlineOverdue", "B2", 1200), ("DeadlineOverdue", "L1", 500),
                                             ("DeadlineOverdue", "L2", 4200)]
    assert _deadline_alerts(s, s.D(149)) == []  # 31 days before: not yet within warn_days (30)
    for lot_id in ("L1", "L2"):
        assert dt.datetime.fromisoformat(s.lot(lot_id)["deadline"]).date() == s.D(180).date()
    # §6 also applies: the re-export of step 4 has had no ConfirmExit for more than 90 days
    assert [a["subject"] for a in s.query("GetAlerts", AUTH_ID, iso(s.D(151)))["alerts"]
            if a["type"] == "ExitUnconfirmed"] == [f"{EXIT_MRN_B1}/1"]


def test_step7_after_the_deadline_exit_accepted_movement_refused():
    s, _ = run(6)
    s.accepted(s.set_parameters(max_clock_skew_s=200 * DAY_S))   # customs allow a far proposal timestamp
    later = s.D(181)
    details = s.refused("DeadlinePassed", s.move, 10, SITE1, SITE2, lot_id="L1", ts=later)
    assert details["id"] == "L1"
    res = s.accepted(s.exit(100, lot_id="L1", procedure="3151", ts=later + dt.timedelta(minutes=1)))
    assert res["lot"]["balance"] == 400 and res["lot"]["status"] == "OVERDUE"


def test_step8_bill_of_discharge_data_as_of_D1():
    s, _ = run(6)
    bill = s.query("GetBillOfDischargeData", AUTH_ID, None, iso(s.D(1)), msp="OperatorMSP")
    assert [(lot["lot_id"], lot["quantity"], lot["unit"]) for lot in bill["lots"]] == [("L1", 1000, "p/st"),
                                                                                    ("L2", 4200, "p/st")]
    assert bill["lots"][0]["mrn"] == PLACE_MRN_L1
    assert bill["lots"][0]["customs_value"] == {"amount": "25000.00", "currency": "EUR"}
    assert bill["lots"][0]["rates_of_yield"] == [{"output_cn": RETREADED, "output_per_input": 1}]
    assert bill["lots"][0]["products"] == [
        {"batch_id": "B1", "cn": RETREADED, "kind": "MAIN", "unit": "p/st", "quantity": 495, "input_qty": 500},
        {"batch_id": "B2", "cn": RUBBER_WASTE, "kind": "WASTE", "unit": "kg", "quantity": 1200, "input_qty": 500}]
    (op,) = bill["processing"]
    assert op["inputs"] == [{"lot_id": "L1", "qty": 500, "unit": "p/st"}]
    assert op["yield"][0]["input_qty"] == 500 and op["yield"][0]["output_qty"] == 495
    assert op["yield"][0]["actual_per_input"] == "0.99"
    assert [(d["procedure"], d["mrn"], d["quantity"], d["id"]) for d in bill["disposals"]] == [
        ("3151", EXIT_MRN_B1, 495, "B1")]
    assert bill["disposals"][0]["input_goods"] == [{"lot_id": "L1", "cn": USED_TYRES, "unit": "p/st", "quantity": 500}]
    assert bill["waste"] == [{"batch_id": "B2", "cn": RUBBER_WASTE, "unit": "kg", "produced": 1200, "exited": {},
                              "lost": 0, "remaining": 1200}]
    assert [(r["id"], r["quantity"], r["status"]) for r in bill["remaining"]] == [
        ("L1", 500, "OPEN"), ("L2", 4200, "OPEN"), ("B2", 1200, "OPEN")]   # the waste too, until it leaves
    assert bill["totals"]["placed"] == [{"cn": USED_TYRES, "unit": "p/st", "quantity": 5200}]
    assert bill["totals"]["exited"] == [{"procedure": "3151", "cn": RETREADED, "unit": "p/st", "quantity": 495}]
    assert bill["proof"]["conservation_holds"] is True
    assert [t["event_type"] for t in bill["proof"]["transactions"]] == [
        "GrantAuthorisation", "PlaceUnderProcedure", "MoveGoods", "RecordProcessing", "ExitGoods",
        "PlaceUnderProcedure"]
    assert sorted(a["type"] for a in bill["proof"]["alerts"]) == ["CeilingNear", "YieldDeviation"]
    assert len(bill["document_hash"]) == 64


def test_step9_replaying_step1():
    s, out = run(6)
    before = s.ledger.snapshot()
    replay = s.submit("PlaceUnderProcedure", step1_event(s), "BrokerMSP", transient=STEP1_VALUE)
    assert replay.ok and replay.json()["tx_id"] == out[1]["tx_id"] and replay.json() == out[1]
    assert s.ledger.snapshot() == before
    details = s.refused("DuplicateEvent", s.submit, "PlaceUnderProcedure", {**step1_event(s), "quantity": 999},
                        "BrokerMSP", transient=STEP1_VALUE)
    assert details["original_tx_id"] == out[1]["tx_id"]


def test_history_of_L1_with_tx_ids_and_timestamps():
    s, out = run(6)
    history = s.query("GetLotHistory", "L1", msp="BrokerMSP")["history"]
    assert [h["event_type"] for h in history] == ["PlaceUnderProcedure", "MoveGoods", "RecordProcessing", "ExitGoods"]
    assert history[0]["tx_id"] == out[1]["tx_id"] and history[0]["recorded_at"] == out[1]["recorded_at"]
    assert history[3]["effects"][0]["attribution"] == [{"lot_id": "L1", "qty": 495, "input_qty": 500}]  # via lineage
    assert history[0]["submitted_by"]["msp_id"] == "BrokerMSP"


def test_events_in_period():
    s, out = run(6)
    found = s.query("GetEventsInPeriod", AUTH_ID, iso(s.D()), iso(s.D(1)))["events"]
    assert [e["event_type"] for e in found] == ["GrantAuthorisation", "PlaceUnderProcedure", "MoveGoods",
                                                "RecordProcessing", "ExitGoods", "PlaceUnderProcedure"]
    assert found[1]["tx_id"] == out[1]["tx_id"]
    assert s.query("GetEventsInPeriod", AUTH_ID, iso(s.D(1)), iso(s.D(40)))["events"] == []
    only = s.query("GetEventsInPeriod", AUTH_ID, out[1]["recorded_at"], out[1]["recorded_at"][:-4] + "999Z")
    assert [e["tx_id"] for e in only["events"]] == [out[1]["tx_id"]]


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 6])
def test_one_chaincode_event_per_accepted_transaction(steps):
    s, _ = run(steps)
    names = [name for _tx, name, _p in s.ledger.events]
    assert names == ["ipledger.events"] * len(names)
    # the parties registered, the grant, one per accepted step (the step-3 variant is accepted in run())
    assert len(names) == len(PARTIES) + 1 + len([k for k in (1, 2, 3, 4, 6) if k <= steps])


def test_from_an_mrn_to_all_its_events():
    s, out = run(6)
    s.accepted(s.submit("ConfirmExit", {"authorisation_id": AUTH_ID, "mrn": EXIT_MRN_B1,
                                        "exit_date": s.day.date().isoformat()}, "CustomsMSP"))
    placement = s.query("GetDeclaration", PLACE_MRN_L1, msp="BrokerMSP")
    (item,) = placement["items"]
    assert (item["type"], item["id"], item["item_no"]) == ("PLACEMENT", "L1", 1)
    assert [e["event_type"] for e in item["events"]] == ["PlaceUnderProcedure", "MoveGoods", "RecordProcessing",
                                                         "ExitGoods"]
    export = s.query("GetDeclaration", EXIT_MRN_B1)
    (item,) = export["items"]
    assert (item["type"], item["id"], item["procedure"]) == ("EXIT", "B1", "3151")
    assert [e["event_type"] for e in item["events"]] == ["ExitGoods", "ConfirmExit"]
    assert item["events"][0]["tx_id"] == out[4]["tx_id"]
    assert s.ledger.evaluate(s.contract, "GetDeclaration", [mrn("E", 999)], "CustomsMSP").error_code == "NotFound"
    assert s.ledger.evaluate(s.contract, "GetDeclaration", [PLACE_MRN_L1], "BrokerMSP",
                             eori="DE1").error_code == "EoriNotRegistered"
    s.accepted(s.register("BrokerMSP", "representative", ["DE1"]))       # a representative without a mandate
    # it is shown none of the declaration's items: as if there were no such declaration
    assert s.ledger.evaluate(s.contract, "GetDeclaration", [PLACE_MRN_L1], "BrokerMSP").error_code == "NotFound"
