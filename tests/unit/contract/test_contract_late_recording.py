"""Late recording (issue 13, point 6): an ERP that was offline still records what happened, without
backdating the ledger. The event keeps when it occurred (``occurred_at``) and when it was recorded
(``recorded_at``, the ledger time); the period for discharge runs from the legally relevant date;
recording later than ``late_recording_days`` (a customs parameter) raises the recorded alert
``LateRecording``; future-dated events stay refused (OutOfOrder)."""
from __future__ import annotations

import datetime as dt

import pytest

from ipledger.chaincode.contract import InwardProcessingContract
from ipledger.chaincode.testing import mrns
from ipledger.chaincode.testing.scenario import AUTH_ID, SITE1, SITE2, Scenario, iso

DAY = dt.timedelta(days=1)


@pytest.fixture
def s():
    sc = Scenario.with_l1(InwardProcessingContract)
    sc.wait_until(sc.D(5))   # five days later
    return sc


def late_alerts(s: Scenario, msp: str = "CustomsMSP") -> list[dict]:
    return [a for a in s.query("GetAlerts", AUTH_ID, msp=msp)["alerts"] if a["type"] == "LateRecording"]


def test_an_event_recorded_days_after_it_occurred_is_accepted_and_alerts_customs(s):
    occurred = s.ledger.now - 3 * DAY - dt.timedelta(hours=2)  # the ERP was offline; default allowance 2 days
    res = s.submit("MoveGoods", {"event_id": "erp-late-1", "authorisation_id": AUTH_ID, "lot_id": "L1",
                                 "quantity": 10, "from_site": SITE1, "to_site": SITE2, "occurred_at": iso(occurred)},
                   "OperatorMSP")
    out = s.accepted(res)
    # when it occurred and when it was recorded: both kept, the ledger time is not backdated
    assert out["occurred_at"] == iso(occurred) and out["recorded_at"] == res.json()["recorded_at"]
    assert dt.datetime.fromisoformat(out["recorded_at"]) > occurred + 3 * DAY
    (entry,) = [h for h in s.query("GetLotHistory", "L1")["history"] if h["event_id"] == "erp-late-1"]
    assert entry["occurred_at"] == iso(occurred) and entry["recorded_at"] == out["recorded_at"]
    # the alert: in GetAlerts (customs, the holder) and in the chaincode event
    (alert,) = late_alerts(s)
    assert alert["subject"] == "OperatorMSP:erp-late-1" and alert["source"] == "RECORDED"
    d = alert["details"]
    assert (d["event_type"], d["event_id"], d["submitted_by"]) == ("MoveGoods", "erp-late-1", "OperatorMSP")
    assert (d["occurred_at"], d["recorded_at"], d["late_recording_days"]) == (iso(occurred), out["recorded_at"], 2)
    assert d["late_by_s"] == int((dt.datetime.fromisoformat(out["recorded_at"]) - occurred).total_seconds())
    assert isinstance(d["late_by_s"], int) and d["lots"] == ["L1"]
    assert late_alerts(s, "OperatorMSP") == late_alerts(s)
    event = res.event_json()
    assert [(a["change"], a["type"], a["subject"]) for a in event["alerts"]] == [
        ("RAISED", "LateRecording", "OperatorMSP:erp-late-1")]
    assert event["events"][0]["occurred_at"] == iso(occurred) and event["recorded_at"] == out["recorded_at"]


def test_within_the_allowance_no_alert(s):
    s.accepted(s.move(10, SITE1, SITE2, lot_id="L1", occurred_at=iso(s.ledger.now - 2 * DAY + dt.timedelta(minutes=1))))
    assert late_alerts(s) == []


def test_the_allowance_is_a_customs_parameter(s):
    s.accepted(s.set_parameters(late_recording_days=5))
    assert s.query("GetParameters")["late_recording_days"] == 5
    s.accepted(s.move(10, SITE1, SITE2, lot_id="L1", occurred_at=iso(s.ledger.now - 4 * DAY)))
    assert late_alerts(s) == []
    s.accepted(s.set_parameters(late_recording_days=0))
    s.accepted(s.move(10, SITE1, SITE2, lot_id="L1", occurred_at=iso(s.ledger.now - dt.timedelta(hours=1))))
    assert len(late_alerts(s)) == 1
    s.refused("InvalidEvent", s.set_parameters, backdate_max_days=5)   # the old name is gone


def test_the_old_backdating_limit_stored_on_a_ledger_still_counts():
    from ipledger.chaincode.contract import params

    class Stored:
        def get(self, key):
            return {"backdate_max_days": 7}

    assert params.load(Stored())["late_recording_days"] == 7


def test_future_dated_events_stay_refused(s):
    details = s.refused("OutOfOrder", s.move, 1, SITE1, SITE2, lot_id="L1",
                        occurred_at=iso(s.ledger.now + dt.timedelta(minutes=6)))
    assert "future" in s.move(1, SITE1, SITE2, lot_id="L1",
                              occurred_at=iso(s.ledger.now + dt.timedelta(hours=1))).message
    assert details["occurred_at"]


def test_the_period_for_discharge_runs_from_when_the_goods_were_placed(s):
    """A placement recorded a day late: the discharge deadline counts from the acceptance of the
    declaration (occurred_at), not from the day the ERP got round to recording it."""
    occurred = s.ledger.now - DAY
    out = s.accepted(s.place("L2", 10, occurred_at=iso(occurred)))
    assert dt.datetime.fromisoformat(out["lot"]["deadline"]) == occurred + 180 * DAY
    lot = s.lot("L2")
    assert dt.datetime.fromisoformat(lot["deadline"]) == occurred + 180 * DAY
    assert lot["occurred_at"] == iso(occurred) and lot["accepted_at"] == out["recorded_at"]
    assert late_alerts(s) == []   # within the allowance


def test_lateness_never_buys_time(s):
    """Acceptance rules stay on ledger time (which customs endorse): an act on overdue goods is refused
    even when it claims to have occurred before the deadline."""
    deadline = dt.datetime.fromisoformat(s.lot("L1")["deadline"])
    after = deadline + dt.timedelta(hours=1)
    s.wait_until(after)
    s.refused("DeadlinePassed", s.move, 1, SITE1, SITE2, lot_id="L1",
              occurred_at=iso(deadline - dt.timedelta(hours=1)))
    out = s.accepted(s.exit(1, lot_id="L1", occurred_at=iso(deadline - dt.timedelta(days=3))))
    assert out["occurred_at"] == iso(deadline - dt.timedelta(days=3))
    assert len(late_alerts(s)) == 1


def test_a_replay_of_a_late_event_raises_nothing_new(s):
    occurred = iso(s.ledger.now - 3 * DAY)
    event = {"event_id": "erp-late-2", "authorisation_id": AUTH_ID, "lot_id": "L1", "quantity": 10,
             "from_site": SITE1, "to_site": SITE2, "occurred_at": occurred}
    first = s.accepted(s.submit("MoveGoods", event, "OperatorMSP"))
    again = s.submit("MoveGoods", event, "OperatorMSP")
    assert again.json() == first and again.event is None and len(late_alerts(s)) == 1


def _unconfirmed(s: Scenario, as_of: dt.datetime) -> list[dict]:
    return [a for a in s.query("GetAlerts", AUTH_ID, iso(as_of))["alerts"] if a["type"] == "ExitUnconfirmed"]


def test_an_unconfirmed_exit_counts_from_when_the_re_export_was_declared(s):
    """ExitUnconfirmed counts ``exit_confirm_days`` (90) from the re-export's legally relevant date — when
    its declaration was accepted (occurred_at), never later than the ledger time — like the period for
    discharge: an exit recorded four days late is due for confirmation four days sooner, not later."""
    occurred = s.ledger.now - 4 * DAY
    out = s.accepted(s.exit(10, lot_id="L1", mrn_=mrns.mrn(90, mrns.EXPORT), occurred_at=iso(occurred)))
    assert _unconfirmed(s, occurred + 90 * DAY) == []
    (alert,) = _unconfirmed(s, occurred + 90 * DAY + dt.timedelta(hours=1))   # recorded only 86 days before
    assert alert["subject"] == f"{mrns.mrn(90, mrns.EXPORT)}/1"
    d = alert["details"]
    assert dt.datetime.fromisoformat(d["declared_at"]) == occurred
    assert (d["occurred_at"], d["recorded_at"]) == (iso(occurred), out["recorded_at"])
    assert (d["goods"], d["id"], d["quantity"]) == ("LOT", "L1", 10)


def test_an_unconfirmed_exit_never_counts_from_after_the_ledger_time(s):
    """An ``occurred_at`` a little ahead of the ledger time (within the tolerated clock skew) does not
    postpone the alert: the count starts at the ledger time."""
    out = s.accepted(s.exit(10, lot_id="L1", mrn_=mrns.mrn(91, mrns.EXPORT),
                            occurred_at=iso(s.ledger.now + dt.timedelta(minutes=2))))
    recorded = dt.datetime.fromisoformat(out["recorded_at"])
    assert _unconfirmed(s, recorded + 90 * DAY) == []
    (alert,) = _unconfirmed(s, recorded + 90 * DAY + dt.timedelta(seconds=60))
    assert alert["details"]["declared_at"] == out["recorded_at"]
