"""Findings of a third adversarial review of the contract (2026-12-03): a placement recorded after its deadline
that fell in a period already billed was in no bill of discharge; a representative kept placing goods under the
authorisation of a holder customs had withdrawn."""
from __future__ import annotations

import pytest

from ipledger.chaincode.contract import InwardProcessingContract
from ipledger.chaincode.testing.scenario import AUTH_ID, SITE1, SITE2, Scenario, iso


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
