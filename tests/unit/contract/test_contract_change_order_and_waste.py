"""Customs' changes timestamped before an act already recorded are out of order, and waste without a rate is never
shared over inputs in two units."""
from __future__ import annotations

import datetime as dt

import pytest

from ipledger.chaincode.contract import InwardProcessingContract
from ipledger.chaincode.shim import keys as shim_keys
from ipledger.chaincode.testing.scenario import AUTH_ID, RETREADED, USED_TYRES, Scenario, authorisation_fields, \
    iso, retreaded, waste

SEC = dt.timedelta(seconds=1)


def _suspend(s, ts=None):
    return s.submit("SuspendAuthorisation", {"authorisation_id": AUTH_ID, "reason": "audit"}, "CustomsMSP", ts=ts)


def _amend_rate(s, rate, ts=None):
    fields = authorisation_fields(s.day, yield_rates=[{"input_cn": USED_TYRES, "output_cn": RETREADED,
                                                       "output_per_input": rate}])
    return s.submit("AmendAuthorisation", {"authorisation_id": AUTH_ID, **fields}, "CustomsMSP", ts=ts)


# -- a change of the authorisation is never recorded before an act already recorded on it -------------------------

@pytest.mark.parametrize("change", [
    _suspend,
    lambda s, ts=None: _amend_rate(s, 0.5, ts),
    lambda s, ts=None: s.submit("RevokeAuthorisation", {"authorisation_id": AUTH_ID, "reason": "fraud"},
                                "CustomsMSP", ts=ts),
])
def test_a_change_timestamped_before_an_act_already_recorded_is_out_of_order(change):
    """A holder's client 290 s ahead (within max_clock_skew_s) records a processing; customs, at their correct time,
    then suspended, amended (the rate of yield) or revoked, and the log showed the processing after the change —
    judged by a rule that did not apply to it (a placement after the revocation, a bill stating a rate of 0.5 for a
    processing checked at 1)."""
    s = Scenario.with_l1(InwardProcessingContract)
    now = s.ledger.now
    s.accepted(s.process("OP1", [("L1", 500)], [retreaded(495)], ts=now + 290 * SEC))
    details = s.refused("OutOfOrder", change, s)
    assert details["authorisation_id"] == AUTH_ID and details["last_act"] == iso(now + 290 * SEC)
    s.wait_until(now + 291 * SEC)
    s.accepted(change(s))                                   # after it: recorded, and after it in the log
    log = s.query("GetEventsInPeriod", AUTH_ID, iso(now - 10 * SEC), iso(now + 400 * SEC), ts=now + 400 * SEC)
    assert [e["event_type"] for e in log["events"]][-2] == "RecordProcessing"


def test_a_reinstatement_before_an_act_recorded_meanwhile_is_out_of_order():
    s = Scenario.with_l1(InwardProcessingContract)
    now = s.ledger.now
    s.accepted(_suspend(s))
    # an exit is allowed while suspended; recorded from a client ahead of the peers
    s.accepted(s.exit(10, lot_id="L1", ts=now + 200 * SEC))
    s.refused("OutOfOrder", s.submit, "ReinstateAuthorisation", {"authorisation_id": AUTH_ID, "reason": "ok"},
              "CustomsMSP")


def test_an_act_recorded_in_the_next_month_counts_too():
    """The log is kept in month buckets: an act just past the turn of the month, from a client ahead, is after a
    change recorded just before it."""
    s = Scenario.with_l1(InwardProcessingContract)
    turn = dt.datetime(s.day.year + (s.day.month == 12), s.day.month % 12 + 1, 1, tzinfo=dt.timezone.utc)
    s.wait_until(turn - 100 * SEC)
    s.accepted(s.move(10, "BOURGES-1", "BOURGES-2", lot_id="L1", ts=turn + 100 * SEC))
    s.refused("OutOfOrder", _suspend, s)
    s.wait_until(turn + 101 * SEC)
    s.accepted(_suspend(s))


def test_changes_recorded_in_order_are_taken_as_before():
    s = Scenario.with_l1(InwardProcessingContract)
    s.accepted(s.process("OP1", [("L1", 500)], [retreaded(495)]))
    s.accepted(_amend_rate(s, 0.9))
    s.accepted(_suspend(s))
    s.accepted(s.submit("ReinstateAuthorisation", {"authorisation_id": AUTH_ID, "reason": "ok"}, "CustomsMSP"))


def test_the_range_from_stays_within_the_prefix():
    start, end = shim_keys.partial_composite_key_range_from("log", ["A1"], ["2026-12", "2026-12-05T08:00:00Z"])
    assert start == "\x00log\x00A1\x002026-12\x002026-12-05T08:00:00Z\x00" and end == "\x00log\x00A1\x00\U0010ffff"
    inside = shim_keys.create_composite_key("log", ["A1", "2027-01", "2027-01-01T00:00:00Z", "t"])
    before = shim_keys.create_composite_key("log", ["A1", "2026-12", "2026-12-05T07:59:59Z", "t"])
    other = shim_keys.create_composite_key("log", ["A10", "2026-12", "2026-12-05T09:00:00Z", "t"])
    assert start <= inside < end and not start <= before < end and not start <= other < end
    with pytest.raises(TypeError):
        shim_keys.partial_composite_key_range_from("log", ["A1"], "2026-12")


# -- a product without a rate is not shared over inputs in different units ------------------------------------------

LATEX, MOULDED, RUBBER_WASTE = "40021100", "40169100", "40040000"


def _two_unit_plant() -> Scenario:
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant())
    fields = authorisation_fields(s.day)
    fields["input_goods"].append({"cn": LATEX, "description": "latex", "unit": "kg", "max_qty": 100000})
    fields["processed_products"].append({"cn": MOULDED, "kind": "MAIN", "unit": "p/st", "description": "moulded"})
    fields["yield_rates"].append({"input_cn": LATEX, "output_cn": MOULDED, "output_per_input": 0.1})
    s.accepted(s.submit("AmendAuthorisation", {"authorisation_id": AUTH_ID, **fields}, "CustomsMSP"))
    s.accepted(s.place("L1", 10))                                   # 10 p/st
    s.accepted(s.place("L2", 1000, cn=LATEX, unit="kg"))            # 1,000 kg
    return s


def _process(s):
    return s.process("OP1", [("L1", 10), ("L2", 1000)],
                     [retreaded(10, "B1"), {"cn": MOULDED, "qty": 100, "unit": "p/st", "kind": "MAIN", "batch_id": "B2"},
                      {"cn": RUBBER_WASTE, "qty": 110, "unit": "kg", "kind": "WASTE", "batch_id": "W"}])


def test_waste_without_a_rate_from_inputs_in_two_units_is_a_unit_mismatch():
    """Batch W (101 kg of waste) was shared L1 1 / L2 100 by the weights 10 (pieces) : 1000 (kilograms)."""
    s = _two_unit_plant()
    details = s.refused("UnitMismatch", _process, s)
    assert details["units"] == ["kg", "p/st"] and details["output_cn"] == RUBBER_WASTE


def test_the_inputs_of_each_unit_in_an_operation_of_their_own_share_their_waste():
    s = _two_unit_plant()
    s.accepted(s.process("OP1", [("L1", 10)], [retreaded(10, "B1"), waste(6, "W1")]))
    s.accepted(s.process("OP2", [("L2", 1000)], [{"cn": MOULDED, "qty": 100, "unit": "p/st", "kind": "MAIN",
                                                  "batch_id": "B2"}, waste(95, "W2")]))
    assert [(sh["lot_id"], sh["qty"]) for sh in s.query("GetBatch", "W1")["shares"]] == [("L1", 6)]
    assert [(sh["lot_id"], sh["qty"]) for sh in s.query("GetBatch", "W2")["shares"]] == [("L2", 95)]
