"""Values no schema keyword refuses, refused all the same with a named error and nothing written: numbers
that are not finite, text that is not Unicode, dates past the calendar the contract computes with, an
item counted twice in one control, a yield tolerance that would let a processing turn its inputs into
nothing. Each of these used to end in an unnamed InternalError, or was accepted and did harm."""
from __future__ import annotations

import math

import pytest

from ipledger.chaincode.contract import schemas
from ipledger.chaincode.testing.scenario import AUTH_ID, RETREADED, SITE1, USED_TYRES, Scenario, waste
from ipledger.chaincode.contract import InwardProcessingContract


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_number_that_is_not_finite_is_an_invalid_event(value):
    sc = Scenario(InwardProcessingContract)
    details = sc.refused("InvalidEvent", sc.grant, yield_rates=[
        {"input_cn": USED_TYRES, "output_cn": RETREADED, "output_per_input": value}])
    assert {"path": "/yield_rates/0/output_per_input", "message": "is not a finite number"} in details["errors"]
    sc.refused("InvalidEvent", sc.set_parameters, yield_block_pct=value)


@pytest.mark.parametrize("text", ["\ud800", "tyres \udfff", "\udbff\udbff"])
def test_text_with_an_unpaired_surrogate_is_an_invalid_event(s, text):
    details = s.refused("InvalidEvent", s.place, "LX", 10, description=text)
    assert details["errors"] == [{"path": "/description",
                                  "message": "holds an unpaired surrogate (not Unicode text)"}]
    s.refused("InvalidEvent", s.submit, "SuspendAuthorisation", {"authorisation_id": AUTH_ID, "reason": text},
              "CustomsMSP")
    s.accepted(s.place("LX", 10, description="pneus usagés \U0001F6DE"))   # a real pair is text


def test_unstorable_names_each_place():
    assert schemas.unstorable({"a": [1.5, math.nan], "b": {"\ud800": "x"}, "c": "ok"}) == [
        {"path": "/a/1", "message": "is not a finite number"},
        {"path": "/b", "message": "a property name holds an unpaired surrogate"}]


def test_dates_after_the_year_8999_are_invalid_events(s):
    details = s.refused("InvalidEvent", Scenario(InwardProcessingContract).grant, valid_to="9999-12-31")
    assert details["errors"][0]["message"].startswith("is after 8999-12-31")
    s.refused("InvalidEvent", s.submit, "ExtendDischargePeriod",
              {"authorisation_id": AUTH_ID, "lot_ids": ["L1"], "new_deadline": "9999-12-31T00:00:00Z"}, "CustomsMSP")
    s.refused("InvalidEvent", s.submit, "SubmitBillOfDischarge",
              {"authorisation_id": AUTH_ID, "period_end": "9999-12-31", "document_hash": "0" * 64}, "OperatorMSP")
    assert s.query("GetAlerts", AUTH_ID)["authorisation_id"] == AUTH_ID   # still answers
    s.accepted(s.submit("ExtendDischargePeriod", {"authorisation_id": AUTH_ID, "lot_ids": ["L1"],
                                                  "new_deadline": "8999-12-31T00:00:00Z"}, "CustomsMSP"))
    assert s.query("GetAlerts", AUTH_ID)["authorisation_id"] == AUTH_ID


def test_an_item_counted_twice_in_one_control_is_an_invalid_event(s):
    details = s.refused("InvalidEvent", s.submit, "RecordControl", {
        "authorisation_id": AUTH_ID, "site": SITE1, "counted": [{"lot_id": "L1", "qty": 5}, {"lot_id": "L1", "qty": 1000}]},
        "CustomsMSP")
    assert details == {"goods": "LOT", "id": "L1"}
    result = s.accepted(s.submit("RecordControl", {"authorisation_id": AUTH_ID, "site": SITE1,
                                                   "counted": [{"lot_id": "L1", "qty": 5}]}, "CustomsMSP"))
    assert result["discrepancies"] == 1
    assert [a["type"] for a in s.query("GetAlerts", AUTH_ID)["alerts"]] == ["BalanceDiscrepancy"]


@pytest.mark.parametrize("pct", [100, 100.0, 150])
def test_a_yield_tolerance_of_100_percent_or_more_is_an_invalid_event(pct):
    sc = Scenario(InwardProcessingContract)
    sc.refused("InvalidEvent", sc.grant, yield_block_pct=pct, yield_warn_pct=1)
    sc.accepted(sc.grant(yield_block_pct=99.9, yield_warn_pct=1))
    sc.accepted(sc.place("L1", 1000))
    # an operation that yields nothing of its main product is refused even at the widest tolerance
    sc.refused("YieldOutOfTolerance", sc.process, "OP1", [("L1", 1000)], [waste(1, "W1")])


def test_a_query_for_a_date_after_8999_is_an_invalid_event(s):
    for fn, args in (("GetAlerts", [AUTH_ID, "9999-12-31"]), ("GetBillOfDischargeData", [AUTH_ID, None, "9999-12-31"]),
                     ("GetEventsInPeriod", [AUTH_ID, "2026-01-01", "9000-01-01T00:00:00Z"])):
        res = s.ledger.evaluate(s.contract, fn, args, "CustomsMSP")
        assert res.error_code == "InvalidEvent" and "8999-12-31" in res.message, (fn, res.message)
