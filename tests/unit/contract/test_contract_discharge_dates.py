"""A bill's disposal and loss lines say when the act was declared (``declared_at``: its ``occurred_at``, never later
than its recording), as its lot lines do (docs/domain.md §7): the legal date is the contract's, computed once, and
the reports print it rather than deriving it again. A bill submitted before lines carried it keeps its lines and
its hash (bill format ``discharge_dates``)."""
from __future__ import annotations

from ipledger.chaincode.contract import InwardProcessingContract, time_rules, timestamps
from ipledger.chaincode.testing.scenario import AUTH_ID, Scenario, iso


def test_disposal_and_loss_lines_give_when_they_were_declared():
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant())
    s.accepted(s.place("L1", 10))
    s.wait_until(s.D(10))
    exited, lost = s.D(3), s.D(4)
    s.accepted(s.exit(6, lot_id="L1", occurred_at=iso(exited)))
    s.accepted(s.lose(1, lot_id="L1", occurred_at=iso(lost)))
    period_end = s.D(181).date().isoformat()             # the period the lot's deadline falls in
    s.wait_until(s.D(182))
    data = s.query("GetBillOfDischargeData", AUTH_ID, period_end, None)
    (disposal,), (loss,) = data["disposals"], data["losses"]
    assert disposal["declared_at"] == timestamps.fmt(exited) < disposal["recorded_at"]
    assert loss["declared_at"] == timestamps.fmt(lost) < loss["recorded_at"]
    stored = s.accepted(s.submit("SubmitBillOfDischarge", {"authorisation_id": AUTH_ID, "period_end": period_end,
                                                           "document_hash": data["document_hash"]}, "OperatorMSP"))
    assert stored["bill"]["discharge_dates"] is True
    s.ledger.as_recorded_before("discharge_dates")     # as a contract before this one recorded the bill
    then = s.query("GetBillOfDischargeData", AUTH_ID, period_end, None)
    assert "declared_at" not in then["disposals"][0] and "declared_at" not in then["losses"][0]
    assert then["document_hash"] != data["document_hash"]


def test_an_act_dated_after_its_recording_is_declared_when_recorded():
    recorded = "2026-03-02T09:00:00.000000Z"
    assert time_rules.declared_at("2026-03-02T09:00:01Z", recorded) == recorded
    assert time_rules.declared_at(None, recorded) == recorded
    assert time_rules.declared_at("2026-03-02T10:00:00+02:00", recorded) == "2026-03-02T08:00:00.000000Z"


def test_a_date_of_an_early_year_keeps_four_digits():
    assert time_rules.declared_at("0999-06-02T00:00:00Z", "2026-03-02T09:00:00.000000Z") == \
        "0999-06-02T00:00:00.000000Z"
