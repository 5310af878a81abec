"""Ceiling alerts after an amendment, the audit view as of a date, the rates of yield a bill shows and shares products
by, and alerts as of a past moment.

F1 — an amendment that removed or replaced an input-goods entry (e.g. the code ``40122000`` widened to the heading
``4012``) left that entry's ``CeilingNear`` alert raised for good: nothing reviews an entry the authorisation no
longer has, so the alert stated a use of a ceiling that no longer exists.

F2 — the audit view ``GetBillOfDischargeData(as_of=<date>)`` took the date as the instant 24:00 and included it, so
an event recorded at 00:00:00.000000 of the next day counted as of the day before (``GetEventsInPeriod`` up to the
same date, ``[from, to)``, leaves it out).

F3 — a bill's lot line showed as its ``rates_of_yield`` the rates in force at the cut-off, also for a lot processed
under earlier rates an amendment has since replaced: not the rate of yield applied (docs/domain.md §7 item 1).

F4 — a batch's units were shared over its source lots in proportion to the quantities they gave, added up across
units (10 p/st of tyres + 1,000 kg of latex) and whether or not a lot has a rate of yield to that product: 9 of 10
retreaded tyres were the latex lot's share, so a release of them for free circulation (4051) stated latex as the
goods it stands for (docs/domain.md §2b: never add different units). A product the inputs have rates for is now
shared in proportion to what each lot gives of it by its rate (quantity × rate, in the product's unit; 0 units for
a lot without a rate to it, which still stands for its input as a joint product, after the lots that give it: its
input goes with the batch's last units, not with the first disposal).

F5 — ``GetAlerts`` with an ``as_of`` before the ledger time judged today's records at that date: goods overdue then
and gone since had no ``DeadlineOverdue`` (while ``GetBillOfDischargeData`` as of the same moment shows them
``OVERDUE``), lots placed later and bills submitted later counted, and recorded alerts raised later (or cleared
since) were shown as they are now. A past ``as_of`` now answers from the ledger as it stood then (the replay of the
event log, as the audit view); ``as_of`` at or after the ledger time is unchanged (looking ahead).
"""
from __future__ import annotations

import datetime as dt

import pytest

from ipledger.chaincode.contract import InwardProcessingContract
from ipledger.chaincode.testing.scenario import (AUTH_ID, RETREADED, SITE1, USED_TYRES, Scenario, authorisation_fields,
                                                 iso, retreaded)

DAY_S = 86400


@pytest.fixture
def sc():
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant())
    s.accepted(s.set_parameters(max_clock_skew_s=400 * DAY_S))   # acts at later ledger times
    return s


def _amend(sc, ts=None, **fields):
    return sc.submit("AmendAuthorisation", {"authorisation_id": AUTH_ID, **authorisation_fields(sc.day, **fields)},
                     "CustomsMSP", ts=ts)


def _alerts(sc, alert_type: str, ts=None) -> list[dict]:
    return [a for a in sc.query("GetAlerts", AUTH_ID, ts=ts)["alerts"] if a["type"] == alert_type]


# ---------------------------------------------------------------------------------------- F1

def test_an_amendment_replacing_an_input_entry_clears_its_ceiling_alert(sc):
    sc.accepted(sc.place("L1", 4800))                                 # 96 % of 5,000: CeilingNear
    assert [a["subject"] for a in _alerts(sc, "CeilingNear")] == [USED_TYRES]
    heading = [{"cn": "4012", "description": "tyres", "unit": "p/st", "max_qty": 100000}]
    result = sc.accepted(_amend(sc, input_goods=heading,
                                yield_rates=[{"input_cn": "4012", "output_cn": RETREADED, "output_per_input": 1}]))
    assert _alerts(sc, "CeilingNear") == []                           # 4,800 of 100,000 under the new entry
    assert sc.query("GetBalances", AUTH_ID)["ceilings"][0]["quantity"] == 4800
    assert result["authorisation"]["version"] == 2


def test_an_amendment_keeping_the_entry_still_reviews_its_ceiling_alert(sc):
    sc.accepted(sc.place("L1", 4800))
    entry = [{"cn": USED_TYRES, "description": "used tyres", "unit": "p/st", "max_qty": 4900}]
    sc.accepted(_amend(sc, input_goods=entry))
    assert [(a["subject"], a["details"]["max_qty"]) for a in _alerts(sc, "CeilingNear")] == [(USED_TYRES, 4900)]
    entry = [{"cn": USED_TYRES, "description": "used tyres", "unit": "p/st", "max_qty": 10000}]
    sc.accepted(_amend(sc, input_goods=entry))
    assert _alerts(sc, "CeilingNear") == []


# ---------------------------------------------------------------------------------------- F2

def test_the_audit_view_as_of_a_date_leaves_out_events_of_the_next_day(sc):
    sc.accepted(sc.place("L1", 100))
    midnight = dt.datetime.combine(sc.D(5).date(), dt.time(), tzinfo=dt.timezone.utc)
    sc.accepted(sc.exit(40, lot_id="L1", ts=midnight))                # the first instant of D+5
    day_before = sc.D(4).date().isoformat()
    view = sc.query("GetBillOfDischargeData", AUTH_ID, None, day_before, ts=sc.D(6))
    assert view["disposals"] == [] and [(r["id"], r["quantity"]) for r in view["remaining"]] == [("L1", 100)]
    events = sc.query("GetEventsInPeriod", AUTH_ID, sc.D(0).date().isoformat(), day_before, ts=sc.D(6))["events"]
    assert "ExitGoods" not in [e["event_type"] for e in events]       # the same day as GetEventsInPeriod's
    same_day = sc.query("GetBillOfDischargeData", AUTH_ID, None, sc.D(5).date().isoformat(), ts=sc.D(6))
    assert [d["quantity"] for d in same_day["disposals"]] == [40]
    # a date-time as_of still includes that instant
    at = sc.query("GetBillOfDischargeData", AUTH_ID, None, iso(midnight), ts=sc.D(6))
    assert [d["quantity"] for d in at["disposals"]] == [40]


# ---------------------------------------------------------------------------------------- F3

def test_a_bill_shows_the_rate_of_yield_applied_to_a_lot_not_a_later_one(sc):
    sc.accepted(sc.place("L1", 100))
    sc.accepted(sc.place("L2", 100))
    sc.accepted(sc.process("OP1", [("L1", 100)], [retreaded(100, "B1")], ts=sc.D(1)))
    half = [{"input_cn": USED_TYRES, "output_cn": RETREADED, "output_per_input": 0.5}]
    sc.accepted(_amend(sc, ts=sc.D(2), yield_rates=half))
    bill = sc.query("GetBillOfDischargeData", AUTH_ID, sc.D(185).date().isoformat(), ts=sc.D(186))
    rates = {line["lot_id"]: line["rates_of_yield"] for line in bill["lots"]}
    assert rates["L1"] == [{"output_cn": RETREADED, "output_per_input": 1}]      # what OP1 applied
    assert rates["L2"] == [{"output_cn": RETREADED, "output_per_input": 0.5}]    # not processed: the terms in force
    assert bill["processing"][0]["yield"][0]["authorised_per_input"] == "1"


def test_a_lot_processed_under_two_rates_shows_both(sc):
    sc.accepted(sc.place("L1", 100))
    sc.accepted(sc.process("OP1", [("L1", 50)], [retreaded(50, "B1")], ts=sc.D(1)))
    half = [{"input_cn": USED_TYRES, "output_cn": RETREADED, "output_per_input": 0.5}]
    sc.accepted(_amend(sc, ts=sc.D(2), yield_rates=half))
    sc.accepted(sc.process("OP2", [("L1", 50)], [retreaded(25, "B2")], ts=sc.D(3)))
    bill = sc.query("GetBillOfDischargeData", AUTH_ID, sc.D(185).date().isoformat(), ts=sc.D(186))
    assert bill["lots"][0]["rates_of_yield"] == [{"output_cn": RETREADED, "output_per_input": 1},
                                                 {"output_cn": RETREADED, "output_per_input": 0.5}]


def test_a_bill_without_an_amendment_between_keeps_its_rates_and_hash(sc):
    """The rates applied are those in force at the cut-off when no amendment came between: such bills (every
    bill submitted so far) compute as before."""
    sc.accepted(sc.place("L1", 100))
    sc.accepted(sc.process("OP1", [("L1", 100)], [retreaded(100, "B1")], ts=sc.D(1)))
    bill = sc.query("GetBillOfDischargeData", AUTH_ID, sc.D(185).date().isoformat(), ts=sc.D(186))
    assert bill["lots"][0]["rates_of_yield"] == [{"output_cn": RETREADED, "output_per_input": 1}]


# ---------------------------------------------------------------------------------------- F4

LATEX, MOULDED = "40021100", "40169100"


def _with_latex(sc, **rates):
    fields = authorisation_fields(sc.day)
    fields["input_goods"].append({"cn": LATEX, "description": "latex", "unit": "kg", "max_qty": 100000})
    fields["processed_products"].append({"cn": MOULDED, "kind": "MAIN", "unit": "p/st"})
    fields["yield_rates"].append({"input_cn": LATEX, "output_cn": MOULDED, "output_per_input": 0.1})
    fields["yield_rates"] += [{"input_cn": LATEX, "output_cn": cn, "output_per_input": r} for cn, r in rates.items()]
    sc.accepted(sc.submit("AmendAuthorisation", {"authorisation_id": AUTH_ID, **fields}, "CustomsMSP"))


def test_a_product_is_shared_over_the_lots_that_give_it_not_over_quantities_in_other_units(sc):
    _with_latex(sc)
    sc.accepted(sc.place("L1", 10))                                     # p/st
    sc.accepted(sc.place("L2", 1000, cn=LATEX, unit="kg"))
    moulded = {"cn": MOULDED, "qty": 100, "unit": "p/st", "kind": "MAIN", "batch_id": "B2"}
    sc.accepted(sc.process("OP1", [("L1", 10), ("L2", 1000)], [retreaded(10, "B1"), moulded]))
    assert [(s["lot_id"], s["qty"], s["input_qty"]) for s in sc.batch("B1")["shares"]] == [("L1", 10, 10),
                                                                                           ("L2", 0, 1000)]
    assert [(s["lot_id"], s["qty"], s["input_qty"]) for s in sc.batch("B2")["shares"]] == [("L2", 100, 1000),
                                                                                           ("L1", 0, 10)]
    released = sc.accepted(sc.exit(9, batch_id="B1", procedure="4051"))["exit"]["attribution"]
    assert released == [{"lot_id": "L1", "qty": 9, "input_qty": 9}]    # tyres, not latex
    sc.accepted(sc.exit(1, batch_id="B1"))                              # the last one: L2's share of 0 goes with it
    bill = sc.query("GetBillOfDischargeData", AUTH_ID, None, iso(sc.D(1)), ts=sc.D(1))
    stood_for = [(g["lot_id"], g["quantity"]) for d in bill["disposals"] for g in d["input_goods"]]
    assert stood_for == [("L1", 9), ("L1", 1), ("L2", 1000)]
    assert bill["proof"]["conservation_holds"]


def test_lots_of_one_product_at_different_rates_share_it_by_what_each_gives(sc):
    _with_latex(sc, **{RETREADED: 0.005})                               # 1,000 kg of latex give 5 tyres too
    sc.accepted(sc.place("L1", 10))
    sc.accepted(sc.place("L2", 1000, cn=LATEX, unit="kg"))
    refused = sc.refused("UnitMismatch", sc.process, "OP1", [("L1", 10), ("L2", 1000)],
                         [retreaded(15, "B1"), {"cn": MOULDED, "qty": 100, "unit": "p/st", "kind": "MAIN"}])
    assert refused["units"] == ["kg", "p/st"]                          # one product's inputs in one unit (unchanged)
    fields = authorisation_fields(sc.day)
    fields["input_goods"] = [{"cn": "4012", "description": "tyres", "unit": "p/st", "max_qty": 5000}]
    fields["yield_rates"] = [{"input_cn": "4012", "output_cn": RETREADED, "output_per_input": 0.5},
                             {"input_cn": USED_TYRES, "output_cn": RETREADED, "output_per_input": 1}]
    sc.accepted(sc.submit("AmendAuthorisation", {"authorisation_id": AUTH_ID, **fields}, "CustomsMSP"))
    sc.accepted(sc.place("L3", 20, cn="40122010"))                     # below the heading, at the lower rate
    sc.accepted(sc.process("OP2", [("L1", 10), ("L3", 20)], [retreaded(20, "B3")]))
    assert [(s["lot_id"], s["qty"]) for s in sc.batch("B3")["shares"]] == [("L1", 10), ("L3", 10)]


def test_a_product_without_a_rate_is_still_shared_by_the_inputs(sc):
    sc.accepted(sc.place("L1", 30))
    sc.accepted(sc.place("L2", 10))
    sc.accepted(sc.process("OP1", [("L1", 30), ("L2", 10)], [retreaded(40, "B1"),
                                                             {"cn": "40040000", "qty": 7, "unit": "kg",
                                                              "kind": "WASTE", "batch_id": "W1"}]))
    assert [(s["lot_id"], s["qty"]) for s in sc.batch("B1")["shares"]] == [("L1", 30), ("L2", 10)]
    assert [(s["lot_id"], s["qty"]) for s in sc.batch("W1")["shares"]] == [("L1", 6), ("L2", 1)]


# ---------------------------------------------------------------------------------------- F5

def _at(sc, as_of, ts) -> list[tuple]:
    return [(a["type"], a["subject"], a["source"]) for a in sc.query("GetAlerts", AUTH_ID, iso(as_of), ts=ts)["alerts"]]


def test_alerts_as_of_a_past_moment_are_those_that_held_then(sc):
    sc.accepted(sc.place("L1", 4600))                                   # CeilingNear (92 %)
    sc.accepted(sc.exit(100, lot_id="L1", ts=sc.D(95)))                 # a re-export, never confirmed
    sc.accepted(sc.exit(4500, lot_id="L1", procedure="4051", ts=sc.D(200)))   # overdue since D+180; clears it
    sc.accepted(sc.place("L2", 100, ts=sc.D(201)))
    now = sc.D(202)
    assert [t for t, _s, _o in _at(sc, sc.D(190), now)] == ["CeilingNear", "DeadlineOverdue", "ExitUnconfirmed"]
    found = {a["type"]: a for a in sc.query("GetAlerts", AUTH_ID, iso(sc.D(190)), ts=now)["alerts"]}
    assert found["DeadlineOverdue"]["details"]["balance"] == 4500        # as the audit view of that moment
    view = sc.query("GetBillOfDischargeData", AUTH_ID, None, iso(sc.D(190)), ts=now)
    assert [(r["id"], r["quantity"], r["status"]) for r in view["remaining"]] == [("L1", 4500, "OVERDUE")]
    assert found["CeilingNear"]["details"]["quantity"] == 4500 and found["CeilingNear"]["source"] == "RECORDED"
    assert "ExitUnconfirmed" in found and "DeadlineApproaching" not in found
    assert not any(a["details"].get("id") == "L2" for a in found.values())   # placed later
    # today (unchanged): L1 has gone, the ceiling alert is cleared; the re-export is still unconfirmed, and L1's
    # bill is due within 10 days
    assert {a["type"] for a in sc.query("GetAlerts", AUTH_ID, ts=now)["alerts"]} == {"BillOfDischargeDue",
                                                                                      "ExitUnconfirmed"}
    # before anything happened: nothing
    assert sc.query("GetAlerts", AUTH_ID, iso(sc.D(-1)), ts=now)["alerts"] == []


def test_bill_alerts_as_of_a_past_moment_follow_the_bills_submitted_and_decided_by_then(sc):
    sc.accepted(sc.place("L1", 100))
    period_end = sc.D(180).date().isoformat()
    day = dt.datetime.combine(sc.D(181).date(), dt.time(), tzinfo=dt.timezone.utc)
    document_hash = sc.query("GetBillOfDischargeData", AUTH_ID, period_end, ts=day)["document_hash"]
    submit = {"authorisation_id": AUTH_ID, "period_end": period_end, "document_hash": document_hash}
    sc.accepted(sc.submit("SubmitBillOfDischarge", submit, "OperatorMSP", ts=day + dt.timedelta(days=22)))
    decide = {"authorisation_id": AUTH_ID, "bill_id": f"BOD-{AUTH_ID}-{period_end}", "decision": "QUERIED"}
    sc.accepted(sc.submit("DecideBillOfDischarge", decide, "CustomsMSP", ts=day + dt.timedelta(days=24)))
    sc.accepted(sc.submit("SubmitBillOfDischarge", submit, "OperatorMSP", ts=day + dt.timedelta(days=27)))
    now = day + dt.timedelta(days=28)
    bill_alerts = lambda days: [t for t, _s, _o in _at(sc, day + dt.timedelta(days=days), now)  # noqa: E731
                                if t.startswith("BillOfDischarge")]
    assert bill_alerts(21) == ["BillOfDischargeDue"]                    # due within 10 days, not submitted yet
    assert bill_alerts(23) == []                                        # submitted
    assert bill_alerts(25) == ["BillOfDischargeDue"]                    # queried
    assert bill_alerts(27.5) == []                                      # submitted again
    assert bill_alerts(28) == []                                        # today (as before)


def test_alerts_as_of_a_past_moment_equal_those_asked_at_that_moment(sc):
    """Asked later about a past moment, GetAlerts answers what it answered at that moment (both ways of
    reading: the records as they are, and as they stood), recorded alerts raised, updated and cleared included."""
    moments, answers = [], []

    def ask(ts):
        moments.append(ts)
        answers.append(sc.query("GetAlerts", AUTH_ID, iso(ts), ts=ts)["alerts"])

    sc.accepted(sc.place("L1", 4600, ts=sc.D(1)))                          # CeilingNear raised
    ask(sc.D(2))
    sc.accepted(sc.place("L2", 200, ts=sc.D(3)))                           # CeilingNear updated
    sc.accepted(sc.process("OP1", [("L1", 100)], [retreaded(99, "B1")], ts=sc.D(4)))   # YieldDeviation
    sc.accepted(sc.submit("RecordControl", {"authorisation_id": AUTH_ID, "site": SITE1,
                                            "counted": [{"lot_id": "L2", "qty": 190}]}, "CustomsMSP", ts=sc.D(5)))
    sc.accepted(sc.submit("SuspendAuthorisation", {"authorisation_id": AUTH_ID, "reason": "r"}, "CustomsMSP",
                          ts=sc.D(6)))
    sc.accepted(sc.exit(50, lot_id="L2", ts=sc.D(7), occurred_at=iso(sc.D(3.5))))      # LateRecording
    ask(sc.D(8))
    sc.accepted(sc.exit(4000, lot_id="L1", procedure="4051", ts=sc.D(9)))  # CeilingNear cleared
    sc.accepted(sc.submit("RecordControl", {"authorisation_id": AUTH_ID, "site": SITE1,
                                            "counted": [{"lot_id": "L2", "qty": 150}]}, "CustomsMSP", ts=sc.D(10)))
    sc.accepted(sc.submit("ReinstateAuthorisation", {"authorisation_id": AUTH_ID, "reason": "r"}, "CustomsMSP",
                          ts=sc.D(11)))
    ask(sc.D(150))
    ask(sc.D(185))                                                         # overdue, the bill due
    later = sc.D(300)
    for moment, answer in zip(moments, answers):
        assert sc.query("GetAlerts", AUTH_ID, iso(moment), ts=later)["alerts"] == answer, moment
    assert {a["type"] for a in answers[1]} >= {"CeilingNear", "YieldDeviation", "BalanceDiscrepancy",
                                               "AuthorisationSuspended", "LateRecording"}


def test_a_lot_giving_nothing_of_a_product_is_not_discharged_by_its_first_units(sc):
    """A lot without a rate to the product (0 units of it) comes after the lots that give it, whatever its placement
    time: its input goes with the batch's last units, not with the first disposal."""
    _with_latex(sc)
    sc.accepted(sc.place("L1", 1000, cn=LATEX, unit="kg"))             # placed first
    sc.accepted(sc.place("L2", 10))
    moulded = {"cn": MOULDED, "qty": 100, "unit": "p/st", "kind": "MAIN", "batch_id": "B2"}
    sc.accepted(sc.process("OP1", [("L1", 1000), ("L2", 10)], [retreaded(10, "B1"), moulded]))
    assert [(s["lot_id"], s["qty"]) for s in sc.batch("B1")["shares"]] == [("L2", 10), ("L1", 0)]
    assert [(s["lot_id"], s["qty"]) for s in sc.batch("B2")["shares"]] == [("L1", 100), ("L2", 0)]
    first = sc.accepted(sc.exit(1, batch_id="B1", procedure="4051"))["exit"]["attribution"]
    assert first == [{"lot_id": "L2", "qty": 1, "input_qty": 1}]
    last = sc.accepted(sc.exit(9, batch_id="B1"))["exit"]["attribution"]
    assert last == [{"lot_id": "L2", "qty": 9, "input_qty": 9}, {"lot_id": "L1", "qty": 0, "input_qty": 1000}]


def test_a_submitted_bill_keeps_its_hash_and_one_of_the_previous_contract_its_rates(sc):
    sc.accepted(sc.place("L1", 100))
    sc.accepted(sc.process("OP1", [("L1", 100)], [retreaded(100, "B1")], ts=sc.D(1)))
    half = [{"input_cn": USED_TYRES, "output_cn": RETREADED, "output_per_input": 0.5}]
    sc.accepted(_amend(sc, ts=sc.D(2), yield_rates=half))
    period_end = sc.D(185).date().isoformat()
    data = sc.query("GetBillOfDischargeData", AUTH_ID, period_end, ts=sc.D(186))
    bill = sc.accepted(sc.submit("SubmitBillOfDischarge", {"authorisation_id": AUTH_ID, "period_end": period_end,
                                                           "document_hash": data["document_hash"]}, "OperatorMSP",
                                 ts=sc.D(186)))["bill"]
    assert bill["rates_applied"] is True
    again = sc.query("GetBillOfDischargeData", AUTH_ID, period_end, ts=sc.D(190))
    assert again["document_hash"] == bill["document_hash"]
    assert again["lots"][0]["rates_of_yield"] == [{"output_cn": RETREADED, "output_per_input": 1}]
    # the same bill as the previous contract recorded it (no rates_applied): computed as then, at the cut-off's rates
    sc.ledger.as_recorded_before("rates_applied")
    before = sc.query("GetBillOfDischargeData", AUTH_ID, period_end, ts=sc.D(190))
    assert before["lots"][0]["rates_of_yield"] == [{"output_cn": RETREADED, "output_per_input": 0.5}]
