"""A placement recorded after its deadline in a billed period is in the next bill; a representative places nothing for a
holder customs withdrew; a batch keeps the deadlines of the lots whose share is in it."""
from __future__ import annotations

import json

import pytest

from ipledger.chaincode.contract import InwardProcessingContract
from ipledger.chaincode.testing.scenario import AUTH_ID, SITE1, SITE2, Scenario, iso, retreaded


@pytest.fixture
def sc():
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant())
    return s


def _submit_bill(sc, day) -> dict:
    period_end = day.date().isoformat()
    data = sc.query("GetBillOfDischargeData", AUTH_ID, period_end, msp="OperatorMSP")
    sc.accepted(sc.submit("SubmitBillOfDischarge", {"authorisation_id": AUTH_ID, "period_end": period_end,
                                                    "document_hash": data["document_hash"]}, "OperatorMSP"))
    return data


def test_a_placement_recorded_after_its_deadline_in_a_billed_period_is_in_the_next_bill(sc):
    """L1's bill (period to D+185) is submitted; then the broker records L2, declared at D+0 (deadline D+180,
    inside that period), and releases it for free circulation. L2 must be in the next bill — the bill of the
    period it was recorded in — and the bill's due alert must name it until that bill is submitted."""
    sc.accepted(sc.place("L1", 100))
    sc.wait_until(sc.D(186))
    first = _submit_bill(sc, sc.D(185))
    assert [lot["lot_id"] for lot in first["lots"]] == ["L1"]
    sc.accepted(sc.place("L2", 500, occurred_at=iso(sc.D(0))))
    assert sc.lot("L2")["deadline"] < first["scope"]["period_end"]
    sc.accepted(sc.exit(500, lot_id="L2", procedure="4051"))
    sc.wait_until(sc.D(210))
    due = [a for a in sc.query("GetAlerts", AUTH_ID)["alerts"] if a["type"] == "BillOfDischargeDue"]
    assert [a["details"]["lots"] for a in due] == [["L2"]]
    assert due[0]["details"]["period_end"] == sc.D(186).date().isoformat()      # the day it was recorded
    sc.wait_until(sc.D(401))
    second = _submit_bill(sc, sc.D(400))
    assert [lot["lot_id"] for lot in second["lots"]] == ["L2"]
    assert any(d["procedure"] == "4051" and d["quantity"] == 500 for d in second["disposals"]), second["disposals"]
    # the first bill, asked again, is unchanged: L2 is in exactly one bill
    again = sc.query("GetBillOfDischargeData", AUTH_ID, sc.D(185).date().isoformat(), msp="OperatorMSP")
    assert again["document_hash"] == first["document_hash"]
    assert not [a for a in sc.query("GetAlerts", AUTH_ID)["alerts"] if a["type"].startswith("BillOfDischarge")]


def test_a_representative_places_nothing_for_a_holder_customs_withdrew_but_may_still_discharge(sc):
    sc.accepted(sc.place("L1", 100))
    sc.accepted(sc.withdraw("OperatorMSP"))
    details = sc.refused("HolderNotRegistered", sc.place, "L2", 400)
    assert details == {"authorisation_id": AUTH_ID, "holder_eori": sc.query("GetAuthorisation", AUTH_ID)["holder_eori"]}
    sc.refused("PartyWithdrawn", sc.move, 10, SITE1, SITE2, lot_id="L1")
    sc.accepted(sc.exit(100, lot_id="L1", procedure="4051"))      # what is under the procedure can still leave
    assert sc.lot("L1")["status"] == "DISCHARGED"


def test_a_representative_places_nothing_for_a_holder_re_registered_under_other_eoris(sc):
    sc.accepted(sc.register("OperatorMSP", "holder", ["FR11111111111111"]))
    sc.refused("HolderNotRegistered", sc.place, "L9", 10)


def test_a_batch_is_held_to_the_deadlines_of_the_lots_whose_share_is_still_in_it(sc):
    """B1 is made from L1 (due D+180) and L2 (due D+190). Once L1's share has left (FIFO), what is left is L2's:
    B1 is not overdue, and may still be moved, between the two deadlines."""
    sc.accepted(sc.place("L1", 100))
    sc.wait_until(sc.D(10))
    sc.accepted(sc.place("L2", 100))
    sc.accepted(sc.process("OP1", [("L1", 100), ("L2", 100)], [retreaded(200, "B1")]))
    l1, l2 = sc.lot("L1")["deadline"], sc.lot("L2")["deadline"]
    assert sc.batch("B1")["deadline"] == l1
    sc.accepted(sc.exit(100, batch_id="B1"))                     # L1's whole share
    assert sc.batch("B1")["deadline"] == l2
    sc.wait_until(sc.D(185))
    assert sc.batch("B1")["status"] == "OPEN"
    assert not [a for a in sc.query("GetAlerts", AUTH_ID)["alerts"] if a["type"] == "DeadlineOverdue"]
    sc.accepted(sc.move(10, SITE1, SITE2, batch_id="B1"))
    # extending L2 moves its share's deadline, and the batch's with it
    later = iso(sc.D(400))
    sc.accepted(sc.submit("ExtendDischargePeriod", {"authorisation_id": AUTH_ID, "lot_ids": ["L2"],
                                                    "new_deadline": later}, "CustomsMSP"))
    b1 = sc.batch("B1")
    assert b1["deadline"] == sc.lot("L2")["deadline"] and [s["deadline"] for s in b1["shares"]] == [l1, b1["deadline"]]
    sc.wait_until(sc.D(195))
    assert sc.batch("B1")["status"] == "OPEN"


def test_a_batch_whose_earliest_lot_still_has_a_share_in_it_stays_held_to_that_lots_deadline(sc):
    sc.accepted(sc.place("L1", 100))
    sc.wait_until(sc.D(10))
    sc.accepted(sc.place("L2", 100))
    sc.accepted(sc.process("OP1", [("L1", 100), ("L2", 100)], [retreaded(200, "B1")]))
    sc.accepted(sc.exit(99, batch_id="B1"))                      # one unit of L1's share is left
    assert sc.batch("B1")["deadline"] == sc.lot("L1")["deadline"]
    sc.wait_until(sc.D(185))
    assert sc.batch("B1")["status"] == "OVERDUE"
    sc.refused("DeadlinePassed", sc.move, 10, SITE1, SITE2, batch_id="B1")


def test_an_extension_to_a_deadline_inside_a_billed_period_is_refused(sc):
    """Customs extend L1 at D+260 to D+240, a day inside the period of a bill already submitted: the new deadline
    would be in no bill."""
    sc.accepted(sc.place("L1", 100))
    sc.wait_until(sc.D(251))
    _submit_bill(sc, sc.D(250))
    sc.wait_until(sc.D(260))
    details = sc.refused("OutOfOrder", sc.submit, "ExtendDischargePeriod",
                         {"authorisation_id": AUTH_ID, "lot_ids": ["L1"], "new_deadline": iso(sc.D(240))}, "CustomsMSP")
    assert details["new_deadline"] < details["closed_until"]
    sc.accepted(sc.submit("ExtendDischargePeriod", {"authorisation_id": AUTH_ID, "lot_ids": ["L1"],
                                                    "new_deadline": iso(sc.D(300))}, "CustomsMSP"))


def test_a_late_placement_counts_for_bills_from_its_recording_and_is_overdue_from_its_deadline(sc):
    """Recorded late (declared D+0, deadline D+180, recorded D+300), before any bill: it counts for the bills from
    its recording (``billed_from``; a bill of the period of its deadline, submitted later,
    would not hold it), so the bill alerts count from then — but the goods are overdue from their deadline."""
    sc.wait_until(sc.D(300))
    sc.accepted(sc.place("L1", 100, occurred_at=iso(sc.D(0))))
    assert sc.lot("L1")["billed_from"] == sc.lot("L1")["accepted_at"]
    alerts = sc.query("GetAlerts", AUTH_ID)["alerts"]
    assert [a["details"]["deadline"] for a in alerts if a["type"] == "DeadlineOverdue"] == [sc.lot("L1")["deadline"]]
    assert not [a for a in alerts if a["type"].startswith("BillOfDischarge")]
    late = [a for a in sc.query("GetAlerts", AUTH_ID, ts=sc.D(331))["alerts"] if a["type"] == "BillOfDischargeLate"]
    assert [(a["details"]["period_end"], a["details"]["lots"]) for a in late] == \
        [(sc.D(300).date().isoformat(), ["L1"])]


def test_an_extension_moves_a_batch_written_before_shares_carried_deadlines(sc):
    """A batch of the earlier layout (shares without their lot's deadline): an extension of its earliest lot
    takes the other lot's deadline from that lot's record, as shares.batch_deadline's rule says."""
    sc.accepted(sc.place("L1", 100))
    sc.wait_until(sc.D(10))
    sc.accepted(sc.place("L2", 100))
    sc.accepted(sc.process("OP1", [("L1", 100), ("L2", 100)], [retreaded(200, "B1")]))
    key = next(k for k in sc.ledger.state if k.startswith("\x00batch\x00B1\x00"))
    earlier = json.loads(sc.ledger.state[key])
    for share in earlier["shares"]:
        del share["deadline"]
    sc.ledger._committed.put(key, json.dumps(earlier).encode())
    l1, l2 = sc.lot("L1")["deadline"], sc.lot("L2")["deadline"]
    assert sc.batch("B1")["deadline"] == l1
    sc.accepted(sc.submit("ExtendDischargePeriod", {"authorisation_id": AUTH_ID, "lot_ids": ["L1"],
                                                    "new_deadline": iso(sc.D(400))}, "CustomsMSP"))
    assert sc.batch("B1")["deadline"] == l2
    assert all("deadline" not in share for share in sc.batch("B1")["shares"])
