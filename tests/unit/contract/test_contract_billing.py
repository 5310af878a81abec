"""Bill of discharge (DA art. 175): scope by period, submission with the ledger's hash, decision, alerts."""
from __future__ import annotations

import datetime as dt

import pytest

from ipledger.chaincode.contract import InwardProcessingContract
from ipledger.chaincode.testing.scenario import AUTH_ID, SITE1, SITE2, Scenario, iso, retreaded

DAY_S = 86400


@pytest.fixture
def s():
    """L1 placed at D (deadline D+180), L2 placed at D+10 (deadline D+190); customs allow proposal
    timestamps far from the peer clock so tests can act at later ledger times."""
    sc = Scenario(InwardProcessingContract)
    sc.accepted(sc.grant())
    sc.accepted(sc.set_parameters(max_clock_skew_s=400 * DAY_S))
    sc.accepted(sc.place("L1", 1000))
    sc.accepted(sc.place("L2", 300, ts=sc.D(10)))
    sc.accepted(sc.process("OP1", [("L1", 100)], [retreaded(100, "B1")], ts=sc.D(11)))
    return sc


def day(s, n: int) -> str:
    return s.D(n).date().isoformat()


def submit(s, period_end: str, ts: dt.datetime, document_hash: str | None = None):
    if document_hash is None:
        document_hash = s.query("GetBillOfDischargeData", AUTH_ID, period_end, msp="OperatorMSP", ts=ts)["document_hash"]
    return s.submit("SubmitBillOfDischarge", {"authorisation_id": AUTH_ID, "period_end": period_end,
                                              "document_hash": document_hash}, "OperatorMSP", ts=ts)


def test_bill_for_a_period_covers_lots_whose_deadline_falls_in_it(s):
    bill = s.query("GetBillOfDischargeData", AUTH_ID, day(s, 185), ts=s.D(186))
    assert [lot["lot_id"] for lot in bill["lots"]] == ["L1"]          # L2 is due D+190
    assert bill["scope"]["period_start"] is None and bill["scope"]["period_end"] == day(s, 185)
    assert bill["scope"]["due"].startswith(day(s, 216))               # period end + 30 days
    assert [(r["id"], r["quantity"], r["status"]) for r in bill["remaining"]] == [("L1", 900, "OVERDUE"),
                                                                                 ("B1", 100, "OVERDUE")]
    later = s.query("GetBillOfDischargeData", AUTH_ID, day(s, 200), ts=s.D(201))
    assert [lot["lot_id"] for lot in later["lots"]] == ["L1", "L2"]


def test_bill_counts_only_events_before_the_period_end(s):
    s.accepted(s.exit(900, lot_id="L1", ts=s.D(100)))
    s.accepted(s.exit(100, batch_id="B1", ts=s.D(190)))               # after the period end
    bill = s.query("GetBillOfDischargeData", AUTH_ID, day(s, 185), ts=s.D(200))
    assert [d["quantity"] for d in bill["disposals"]] == [900]
    assert [(r["id"], r["quantity"]) for r in bill["remaining"]] == [("B1", 100)]
    assert bill["proof"]["conservation_holds"]


def test_extended_lots_are_carried_forward(s):
    s.accepted(s.submit("ExtendDischargePeriod", {"authorisation_id": AUTH_ID, "lot_ids": ["L1"],
                                                  "new_deadline": iso(s.D(250))}, "CustomsMSP", ts=s.D(170)))
    bill = s.query("GetBillOfDischargeData", AUTH_ID, day(s, 185), ts=s.D(186))
    assert [(r["id"], r["status"]) for r in bill["remaining"]] == [("L1", "CARRIED_FORWARD"),
                                                                   ("B1", "CARRIED_FORWARD")]
    assert bill["lots"][0]["extended"] is True


def test_submit_accept_and_query(s):
    res = s.accepted(submit(s, day(s, 185), s.D(186)))
    bill = res["bill"]
    assert (bill["bill_id"], bill["status"], bill["revision"], bill["lots"], bill["late"]) == (
        f"BOD-{AUTH_ID}-{day(s, 185)}", "SUBMITTED", 1, ["L1"], False)
    s.refused("InvalidState", submit, s, day(s, 185), s.D(186) + dt.timedelta(hours=1))
    decide = {"authorisation_id": AUTH_ID, "bill_id": bill["bill_id"], "decision": "QUERIED", "note": "B1?"}
    s.refused("NotPermitted", s.submit, "DecideBillOfDischarge", decide, "OperatorMSP", ts=s.D(187))
    assert s.accepted(s.submit("DecideBillOfDischarge", decide, "CustomsMSP", ts=s.D(187)))["bill"]["status"] == "QUERIED"
    again = s.accepted(submit(s, day(s, 185), s.D(188)))["bill"]
    assert again["revision"] == 2 and again["status"] == "SUBMITTED"
    s.accepted(s.submit("DecideBillOfDischarge", {**decide, "decision": "ACCEPTED"}, "CustomsMSP", ts=s.D(189)))
    s.refused("InvalidState", s.submit, "DecideBillOfDischarge", decide, "CustomsMSP", ts=s.D(190))
    assert s.query("GetBillOfDischarge", bill["bill_id"], msp="BrokerMSP")["status"] == "ACCEPTED"


def test_submit_before_the_period_ends_refused(s):
    details = s.refused("PeriodNotEnded", submit, s, day(s, 185), s.D(185), "0" * 64)
    assert details["period_end"] == day(s, 185)


def test_submit_with_another_hash_refused(s):
    details = s.refused("HashMismatch", submit, s, day(s, 185), s.D(186), "0" * 64)
    assert len(details["computed"]) == 64 and details["submitted"] == "0" * 64


def test_decide_unknown_bill_refused(s):
    s.refused("NotFound", s.submit, "DecideBillOfDischarge", {"authorisation_id": AUTH_ID,
              "bill_id": f"BOD-{AUTH_ID}-2026-01-01", "decision": "ACCEPTED"}, "CustomsMSP")


def test_the_next_bill_starts_where_the_previous_ended(s):
    s.accepted(submit(s, day(s, 185), s.D(186)))
    nxt = s.query("GetBillOfDischargeData", AUTH_ID, day(s, 200), ts=s.D(201))
    assert [lot["lot_id"] for lot in nxt["lots"]] == ["L2"] and nxt["scope"]["period_start"] is not None
    s.accepted(submit(s, day(s, 200), s.D(201)))
    s.refused("OutOfOrder", submit, s, day(s, 190), s.D(202))


def test_bill_alerts_due_late_and_covered(s):
    def bill_alerts(as_of):
        return sorted((a["type"], a["subject"]) for a in s.query("GetAlerts", AUTH_ID, iso(as_of))["alerts"]
                      if a["type"].startswith("BillOfDischarge"))

    l1_day = day(s, 180)
    assert bill_alerts(s.D(195)) == []                                  # due D+211, warned from D+201
    assert bill_alerts(s.D(205)) == [("BillOfDischargeDue", l1_day)]
    assert bill_alerts(s.D(212)) == [("BillOfDischargeDue", day(s, 190)), ("BillOfDischargeLate", l1_day)]
    s.accepted(submit(s, day(s, 185), s.D(213)))
    assert bill_alerts(s.D(213) + dt.timedelta(hours=1)) == [("BillOfDischargeDue", day(s, 190))]
    late = s.query("GetBillOfDischarge", f"BOD-{AUTH_ID}-{day(s, 185)}")
    assert late["late"] is False  # period end D+185 → due D+215


def test_audit_view_balances_as_of_a_date(s):
    s.accepted(s.move(50, SITE1, SITE2, lot_id="L1", ts=s.D(20)))
    s.accepted(s.exit(30, lot_id="L1", ts=s.D(30)))
    before = s.query("GetBillOfDischargeData", AUTH_ID, None, iso(s.D(25)))
    after = s.query("GetBillOfDischargeData", AUTH_ID, None, iso(s.D(31)))
    assert [(r["id"], r["quantity"]) for r in before["remaining"]] == [("L1", 900), ("L2", 300), ("B1", 100)]
    assert [(r["id"], r["quantity"]) for r in after["remaining"]] == [("L1", 870), ("L2", 300), ("B1", 100)]
    early = s.query("GetBillOfDischargeData", AUTH_ID, None, iso(s.D(5)))
    assert [lot["lot_id"] for lot in early["lots"]] == ["L1"] and early["processing"] == []
    assert before["document_hash"] != after["document_hash"]
    assert s.query("GetBillOfDischargeData", AUTH_ID, None, iso(s.D(25)))["document_hash"] == before["document_hash"]


def test_no_act_is_recorded_in_a_period_whose_bill_was_submitted(s):
    """A submitted bill stands for its period: an act timestamped before its cut-off (a client's clock,
    within max_clock_skew_s) is refused, so no goods leave the period without being in its bill. The
    authorisation, which every act reads, carries the cut-off: an act endorsed before the submission
    and ordered after it fails Fabric's read-set check."""
    bill = s.accepted(submit(s, day(s, 185), s.D(186)))["bill"]
    cutoff = dt.datetime.fromisoformat(bill["cutoff"].replace("Z", "+00:00"))
    assert s.query("GetAuthorisation", AUTH_ID)["closed_until"] == bill["cutoff"]
    details = s.refused("OutOfOrder", s.exit, 900, lot_id="L1", ts=cutoff - dt.timedelta(seconds=60))
    assert details["closed_until"] == bill["cutoff"]
    s.refused("OutOfOrder", s.submit, "SuspendAuthorisation", {"authorisation_id": AUTH_ID, "reason": "audit"},
              "CustomsMSP", ts=cutoff - dt.timedelta(microseconds=1))
    # at or after the cut-off: accepted, and in the next period, not in the submitted bill
    s.accepted(s.exit(900, lot_id="L1", ts=cutoff))
    again = s.query("GetBillOfDischargeData", AUTH_ID, day(s, 185), msp="OperatorMSP", ts=s.D(187))
    assert again["document_hash"] == bill["document_hash"]


def test_an_act_timestamped_before_the_grant_of_its_authorisation_is_refused():
    """The authorisation's log, history and bills begin at its grant: a placement timestamped before it
    (a slow client clock, within max_clock_skew_s) would be in none of them."""
    sc = Scenario(InwardProcessingContract)
    grant = sc.accepted(sc.grant())
    granted_at = sc.query("GetAuthorisation", AUTH_ID)["granted_at"]
    details = sc.refused("OutOfOrder", sc.place, "L1", 1000, ts=sc.D(-100 / DAY_S))
    assert details["granted_at"] == granted_at and grant
    sc.accepted(sc.place("L1", 1000))
    bill = sc.query("GetBillOfDischargeData", AUTH_ID, None, iso(sc.D(1)))
    assert [lot["lot_id"] for lot in bill["lots"]] == ["L1"]
