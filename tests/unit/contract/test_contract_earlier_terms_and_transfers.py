"""A placement declared under earlier terms keeps them and customs are told; a control's difference follows goods
transferred under 5151; bills give the declaration date; an exit's invoice price can be read.

* A placement declared before customs shortened the period for discharge and recorded after keeps the longer period
  in force when its declaration was accepted — but that date is the declarant's to give, so a
  placement dated a minute before the amendment got the old period and nobody was told. It keeps that period, and
  raises ``LateRecording`` stating the terms it was declared under (``earlier_terms``), however soon it is recorded:
  the declaration's acceptance is customs' own record to check.
* A control's difference followed goods moved or processed on paper, but not goods transferred under 5151 to an
  authorisation on this ledger: the reception there ended the exit's wait, the next count where the goods had been
  matched the book, and the difference stood nowhere. The receiving lot now gets it (``transferred_from``), whether
  the exit or the reception is recorded first.
"""
from __future__ import annotations

import datetime as dt

from ipledger.chaincode.contract import InwardProcessingContract, timestamps
from ipledger.chaincode.testing.scenario import AUTH_ID, SITE1, SITE2, Scenario, authorisation_fields, iso, mrn

AUTH_B = "FRIPO000002"


def _amend_period(s: Scenario, days: int) -> None:
    s.accepted(s.submit("AmendAuthorisation", {"authorisation_id": AUTH_ID,
                                               **authorisation_fields(s.day, discharge_period_days=days)}, "CustomsMSP"))


def _late_recordings(s: Scenario, auth_id: str = AUTH_ID) -> list[dict]:
    return [a for a in s.query("GetAlerts", auth_id)["alerts"] if a["type"] == "LateRecording"]


def test_a_placement_dated_before_the_period_was_shortened_keeps_it_and_customs_are_told():
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant())                                       # 180 days
    s.wait_until(s.D(1))
    _amend_period(s, 30)
    amended = s.ledger.now
    s.wait_until(s.D(1.5))
    before = s.accepted(s.place("L9", 10, occurred_at=iso(amended - dt.timedelta(minutes=1))))["lot"]
    after = s.accepted(s.place("L10", 10, occurred_at=iso(amended + dt.timedelta(minutes=1))))["lot"]
    assert before["deadline"] == timestamps.fmt(amended - dt.timedelta(minutes=1) + dt.timedelta(days=180))
    assert after["deadline"] == timestamps.fmt(amended + dt.timedelta(minutes=1) + dt.timedelta(days=30))
    (alert,) = _late_recordings(s)                              # half a day late: below late_recording_days (2)
    assert alert["details"]["lots"] == ["L9"]
    assert alert["details"]["earlier_terms"] == {"discharge_period_days": 180, "in_force_days": 30}


def test_a_placement_declared_before_the_period_was_lengthened_raises_nothing():
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant())
    declared = s.D(0.5)
    s.wait_until(s.D(1))
    _amend_period(s, 365)
    s.wait_until(s.D(1.25))
    s.accepted(s.place("C", 10, occurred_at=iso(declared)))     # the shorter period it was declared under
    assert _late_recordings(s) == []


def _control(s: Scenario, auth_id: str, site: str, counted: list[tuple[str, int]]):
    return s.accepted(s.submit("RecordControl", {"authorisation_id": auth_id, "site": site,
                                                 "counted": [{"lot_id": lot, "qty": q} for lot, q in counted]},
                               "CustomsMSP"))


def _differences(s: Scenario, auth_id: str) -> list[dict]:
    return [a for a in s.query("GetAlerts", auth_id)["alerts"] if a["type"] == "BalanceDiscrepancy"]


def _short_at_site1(s: Scenario) -> None:
    s.accepted(s.grant(AUTH_B))
    _control(s, AUTH_ID, SITE1, [("L1", 960)])                 # 40 of L1's 1000 missing at BOURGES-1
    assert len(_differences(s, AUTH_ID)) == 1


def test_a_difference_goes_with_goods_transferred_under_5151_to_an_authorisation_here(s):
    _short_at_site1(s)
    transfer = mrn("I", 777)
    s.accepted(s.exit(40, lot_id="L1", procedure="5151", mrn_=transfer, site=SITE1))
    s.accepted(s.place("LB", 40, mrn_=transfer, procedure="5151", auth_id=AUTH_B, site=SITE2))
    _control(s, AUTH_ID, SITE1, [("L1", 960)])                 # the book now matches where the goods were
    assert _differences(s, AUTH_ID) == []
    (carried,) = _differences(s, AUTH_B)
    assert carried["subject"] == f"LOT:LB@{SITE2}"
    assert {k: carried["details"][k] for k in ("transferred_from", "mrn", "item_no", "found_site",
                                               "difference_found", "found_unit")} == \
        {"transferred_from": AUTH_ID, "mrn": transfer, "item_no": 1, "found_site": SITE1, "difference_found": -40,
         "found_unit": "p/st"}
    _control(s, AUTH_B, SITE2, [("LB", 40)])                   # a count where the received goods are booked
    assert _differences(s, AUTH_B) == []


def test_a_difference_goes_with_the_transfer_when_the_reception_was_recorded_first(s):
    _short_at_site1(s)
    transfer = mrn("I", 778)
    s.accepted(s.place("LB", 40, mrn_=transfer, procedure="5151", auth_id=AUTH_B, site=SITE2))
    s.accepted(s.exit(40, lot_id="L1", procedure="5151", mrn_=transfer, site=SITE1))
    (carried,) = _differences(s, AUTH_B)
    assert carried["subject"] == f"LOT:LB@{SITE2}" and carried["details"]["transferred_from"] == AUTH_ID


def test_received_first_and_moved_since_the_difference_goes_where_the_goods_are(s):
    """The reception recorded first, its goods moved on before the exit came: the difference goes to where they are
    now (a count of 0 at the reception's site, where nothing is booked, would clear it there)."""
    _short_at_site1(s)
    transfer = mrn("I", 780)
    s.accepted(s.place("LB", 40, mrn_=transfer, procedure="5151", auth_id=AUTH_B, site=SITE2))
    s.accepted(s.submit("MoveGoods", {"authorisation_id": AUTH_B, "lot_id": "LB", "quantity": 40,
                                      "from_site": SITE2, "to_site": SITE1}, "OperatorMSP"))
    s.accepted(s.exit(40, lot_id="L1", procedure="5151", mrn_=transfer, site=SITE1))
    assert [a["subject"] for a in _differences(s, AUTH_B)] == [f"LOT:LB@{SITE1}"]


def test_a_transfer_from_a_site_without_a_difference_carries_none(s):
    s.accepted(s.grant(AUTH_B))
    _control(s, AUTH_ID, SITE1, [("L1", 1000)])                # counted, matching
    transfer = mrn("I", 779)
    s.accepted(s.exit(40, lot_id="L1", procedure="5151", mrn_=transfer, site=SITE1))
    s.accepted(s.place("LB", 40, mrn_=transfer, procedure="5151", auth_id=AUTH_B, site=SITE2))
    assert _differences(s, AUTH_B) == [] and _differences(s, AUTH_ID) == []


def test_a_bill_says_when_a_lot_was_declared_not_only_when_it_was_recorded():
    """A placement declared twelve days before it was recorded: the bill's lot line gave the recording
    (``accepted_at``) alone — the report printed it as the acceptance, and the deadline (which runs from the
    declaration) did not follow from it. The line now says ``declared_at``; a bill submitted before keeps its
    lines and hash."""
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant())
    s.wait_until(s.D(12))
    declared = s.D(0.5)
    lot = s.accepted(s.place("L1", 10, occurred_at=iso(declared)))["lot"]
    assert lot["deadline"] == timestamps.fmt(declared + dt.timedelta(days=180))
    period_end = s.D(181).date().isoformat()             # the period its deadline falls in
    s.wait_until(s.D(182))
    data = s.query("GetBillOfDischargeData", AUTH_ID, period_end, None)
    (line,) = data["lots"]
    assert line["declared_at"] == timestamps.fmt(declared) and line["accepted_at"] > line["declared_at"]
    stored = s.accepted(s.submit("SubmitBillOfDischarge", {"authorisation_id": AUTH_ID, "period_end": period_end,
                                                           "document_hash": data["document_hash"]}, "OperatorMSP"))
    assert stored["bill"]["declared_dates"] is True
    s.ledger.as_recorded_before("declared_dates")      # as a contract before this one recorded the bill
    then = s.query("GetBillOfDischargeData", AUTH_ID, period_end, None)
    assert "declared_at" not in then["lots"][0] and then["document_hash"] != data["document_hash"]


def test_the_invoice_price_given_with_an_exit_can_be_read(s):
    """An exit's invoice price (transient ``commercial``) was stored and never returned by any query. The
    declaration view gives it to customs and the holder, its hash alone to the representative."""
    m = mrn("E", 881)
    commercial = {"invoice_price": {"amount": "1234.50", "currency": "EUR"}, "nonce": "n" * 32}
    s.accepted(s.submit("ExitGoods", {"authorisation_id": AUTH_ID, "lot_id": "L1", "quantity": 10, "procedure": "3151",
                                      "mrn": m}, "OperatorMSP", transient={"commercial": commercial}))
    for msp in ("CustomsMSP", "OperatorMSP"):
        (item,) = s.query("GetDeclaration", m, msp=msp)["items"]
        assert item["commercial"]["invoice_price"] == {"amount": "1234.50", "currency": "EUR"}, msp
    (item,) = s.query("GetDeclaration", m, msp="BrokerMSP")["items"]
    assert "commercial" not in item and len(item["commercial_hash"]) == 64
