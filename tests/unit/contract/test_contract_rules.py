"""Every named rule of domain.md §5: an accepted case and a refused case, and a refused event
leaves the ledger exactly as it was (state, private data, history, validation parameters, events).

One file of some 590 lines: one test pair per rule, in the order of domain.md §5, so that the table and its
tests can be read side by side.
"""
from __future__ import annotations

import datetime as dt
import json

import pytest

from ipledger.chaincode.testing.scenario import (AUTH_ID, BROKER_EORI, HOLDER, PLACE_MRN_L1, RETREADED, SITE1,
                                        SITE2, USED_TYRES, authorisation_fields, evidence, iso, mrn,
                                        retreaded, waste)

DAY_S = 86400
NONCE = "nonce-of-the-rules-tests"



def late(s, days: float) -> dt.datetime:
    """A ledger time ``days`` after D: customs first widen max_clock_skew_s (a parameter) so that the
    proposal timestamp may be set that far from the peer's clock."""
    s.accepted(s.set_parameters(max_clock_skew_s=int((days + 2) * DAY_S)))
    return s.D(days)


# ---------------------------------------------------------------------------------------- InvalidEvent

@pytest.mark.parametrize("field, value", [
    ("cn", "4012200"),                   # 7 digits
    ("cn", "4012"),                      # a heading is not a goods code
    ("quantity", 0),
    ("quantity", -5),
    ("quantity", 10.0),                  # not an integer
    ("quantity", "10"),
    ("origin", "MAR"),
    ("procedure", "3151"),               # placement is 5100
])
def test_invalid_event_bad_field_refused(s, field, value):
    details = s.refused("InvalidEvent", s.place, "L9", 10, **{field: value} if field not in ("mrn",) else {"mrn_": value})
    assert details["errors"][0]["path"] == f"/{field}"


@pytest.mark.parametrize("value", ["26FR000110000001R", "26fr000110000001R8", "26FR000110000001R9"])
def test_invalid_mrn_refused(s, value):   # 17 characters, lower-case country, wrong check digit
    details = s.refused("InvalidMrn", s.place, "L9", 10, mrn_=value)
    assert details["errors"][0]["path"] == "/mrn"


def test_invalid_event_missing_field_and_unknown_field_refused(s):
    event = {"authorisation_id": AUTH_ID, "lot_id": "L1", "quantity": 1, "from_site": SITE1}  # no to_site
    details = s.refused("InvalidEvent", s.submit, "MoveGoods", event, "OperatorMSP")
    assert any("'to_site' is a required property" in e["message"] for e in details["errors"])
    event = {**event, "to_site": SITE2, "colour": "red"}
    s.refused("InvalidEvent", s.submit, "MoveGoods", event, "OperatorMSP")
    s.refused("InvalidEvent", s.submit, "MoveGoods", {**event, "batch_id": "B1"}, "OperatorMSP")  # lot AND batch
    s.accepted(s.move(1, SITE1, SITE2, lot_id="L1"))


def test_invalid_event_not_an_object(s):
    before = s.ledger.snapshot()
    res = s.ledger.invoke(s.contract, "MoveGoods", ["not an object"], "OperatorMSP")
    assert res.error_code == "InvalidEvent" and s.ledger.snapshot() == before


@pytest.mark.parametrize("override", [
    {"holder_eori": "FR1234567890123456"},                      # 18 characters
    {"supervising_office": "FR00011"},
    {"valid_from": "2026-13-01"},
    {"broker_mandates": ["fr123"]},
    {"valid_to": "2020-01-01"},                                  # before valid_from
    {"yield_rates": [{"input_cn": USED_TYRES, "output_cn": RETREADED, "output_per_input": 0}]},
    {"yield_rates": [{"input_cn": "99999999", "output_cn": RETREADED, "output_per_input": 1}]},
    {"yield_rates": []},                                          # a main product without a rate
    {"yield_warn_pct": 3, "yield_block_pct": 2},
])
def test_invalid_authorisation_refused(s, override):
    s.refused("InvalidEvent", s.grant, "FRIPO000002", **override)


def test_valid_authorisation_with_heading_accepted(s):
    res = s.accepted(s.grant("FRIPO000002", input_goods=[
        {"cn": "4012", "description": "tyres", "unit": "p/st", "max_qty": 10}],
        yield_rates=[{"input_cn": "4012", "output_cn": RETREADED, "output_per_input": 1}]))
    assert res["authorisation"]["status"] == "ACTIVE" and res["authorisation"]["version"] == 1


def test_invalid_event_customs_value_missing_or_malformed(s):
    ev = {"authorisation_id": AUTH_ID, "lot_id": "L9", "mrn": mrn("I", 900), "item_no": 1, "procedure": "5100",
          "cn": USED_TYRES, "description": "x", "quantity": 1, "unit": "p/st", "origin": "MA", "site": SITE1}
    details = s.refused("InvalidEvent", s.submit, "PlaceUnderProcedure", ev, "OperatorMSP")
    assert details["field"] == "commercial"
    s.refused("InvalidEvent", s.submit, "PlaceUnderProcedure", ev, "OperatorMSP",
              transient={"commercial": {"customs_value": {"amount": 25000, "currency": "EUR"}, "nonce": NONCE}})
    s.accepted(s.submit("PlaceUnderProcedure", ev, "OperatorMSP",
                        transient={"commercial": {"customs_value": {"amount": "25000", "currency": "EUR"}, "nonce": NONCE}}))


# ---------------------------------------------------------------------------------------- NotPermitted (see also the role matrix)

def test_not_permitted_broker_without_mandate(s):
    s.accepted(s.register("BrokerMSP", "representative", ["DE999"]))
    details = s.refused("NotPermitted", s.place, "L9", 10)
    assert details["eoris"] == ["DE999"] and details["role"] == "representative"
    s.accepted(s.register("BrokerMSP", "representative", [BROKER_EORI]))
    s.accepted(s.place("L9", 10))


# ---------------------------------------------------------------------------------------- AuthorisationNotActive

def test_suspended_authorisation_blocks_placement_and_processing_not_discharge(s):
    s.accepted(s.submit("SuspendAuthorisation", {"authorisation_id": AUTH_ID, "reason": "audit"}, "CustomsMSP"))
    details = s.refused("AuthorisationNotActive", s.place, "L2", 10)
    assert details["status"] == "SUSPENDED"
    s.refused("AuthorisationNotActive", s.process, "OP1", [("L1", 10)], [retreaded(10)])
    s.accepted(s.exit(10, lot_id="L1"))            # discharge continues
    s.accepted(s.lose(1, lot_id="L1"))
    s.accepted(s.move(5, SITE1, SITE2, lot_id="L1"))  # records continue
    s.accepted(s.submit("ReinstateAuthorisation", {"authorisation_id": AUTH_ID, "reason": "ok"}, "CustomsMSP"))
    s.accepted(s.place("L2", 10))


def test_revoked_authorisation_blocks_placement(s):
    s.accepted(s.submit("RevokeAuthorisation", {"authorisation_id": AUTH_ID, "reason": "fraud"}, "CustomsMSP"))
    s.refused("AuthorisationNotActive", s.place, "L2", 10)
    assert s.query("GetAuthorisation", AUTH_ID)["status"] == "REVOKED"
    s.accepted(s.exit(1000, lot_id="L1"))


# ---------------------------------------------------------------------------------------- AuthorisationExpired

def test_placement_outside_validity_refused(s):
    ts = late(s, 336)  # valid_to is D+335: the validity ends at the end of that day
    details = s.refused("AuthorisationExpired", s.place, "L2", 10, ts=ts)
    assert details["valid_to"] == (s.day + dt.timedelta(days=335)).date().isoformat()
    assert s.query("GetAuthorisation", AUTH_ID, ts=ts)["status"] == "EXPIRED"
    s.accepted(s.place("L2", 10, ts=s.D(335)))  # the last day of validity
    s.accepted(s.exit(10, lot_id="L1", ts=ts + dt.timedelta(hours=1)))  # discharge after expiry


def test_processing_before_validity_refused(s):
    s.accepted(s.grant("FRIPO000002", valid_from=(s.day + dt.timedelta(days=10)).date().isoformat()))
    s.refused("AuthorisationExpired", s.place, "L2", 10, auth_id="FRIPO000002")


# ---------------------------------------------------------------------------------------- GoodsNotCovered

def test_input_not_covered_refused(s):
    details = s.refused("GoodsNotCovered", s.place, "L2", 10, cn="40111000")
    assert details["cn"] == "40111000"
    s.accepted(s.place("L2", 10, cn=USED_TYRES))


def test_heading_covers_codes_below_it(s):
    s.accepted(s.grant("FRIPO000002", input_goods=[{"cn": "4012", "description": "tyres", "unit": "p/st",
                                                    "max_qty": 100}],
                       yield_rates=[{"input_cn": "4012", "output_cn": RETREADED, "output_per_input": 1}]))
    s.accepted(s.place("H1", 10, cn="40129000", auth_id="FRIPO000002"))
    s.refused("GoodsNotCovered", s.place, "H2", 10, cn="40130000", auth_id="FRIPO000002")


def test_output_not_authorised_or_wrong_kind_refused(s):
    s.refused("GoodsNotCovered", s.process, "OP1", [("L1", 10)],
              [retreaded(10), {"cn": "40110000", "qty": 1, "unit": "p/st", "kind": "SECONDARY"}])
    s.refused("GoodsNotCovered", s.process, "OP1", [("L1", 10)], [{**retreaded(10), "kind": "SECONDARY"}])
    s.accepted(s.process("OP1", [("L1", 10)], [retreaded(10), waste(5)]))


# ---------------------------------------------------------------------------------------- SiteNotAuthorised

def test_site_not_authorised_refused(s):
    s.refused("SiteNotAuthorised", s.place, "L2", 10, site="TOURS-1")
    s.refused("SiteNotAuthorised", s.move, 10, SITE1, "TOURS-1", lot_id="L1")
    s.refused("SiteNotAuthorised", s.process, "OP1", [("L1", 10)], [retreaded(10)], site="TOURS-1")
    s.accepted(s.move(10, SITE1, SITE2, lot_id="L1"))


# ---------------------------------------------------------------------------------------- CeilingExceeded

def test_ceiling_kept_exactly_accepted_then_exceeded_refused(s):
    s.accepted(s.place("L2", 4000))                       # 5000 = max_qty
    details = s.refused("CeilingExceeded", s.place, "L3", 1)
    assert details == {"cn": USED_TYRES, "under_procedure": 5000, "requested": 1, "max_qty": 5000}
    s.accepted(s.exit(1, lot_id="L1"))                    # discharge frees room under the ceiling
    s.accepted(s.place("L3", 1))


# ---------------------------------------------------------------------------------------- QuantityExceedsBalance

def test_movement_above_stock_at_site_refused(s):
    s.accepted(s.move(400, SITE1, SITE2, lot_id="L1"))
    details = s.refused("QuantityExceedsBalance", s.move, 401, SITE2, SITE1, lot_id="L1")
    assert details["available"] == 400 and details["site"] == SITE2
    s.accepted(s.move(400, SITE2, SITE1, lot_id="L1"))


def test_consumption_above_stock_at_the_site_refused(s):
    s.accepted(s.move(600, SITE1, SITE2, lot_id="L1"))
    s.refused("QuantityExceedsBalance", s.process, "OP1", [("L1", 401)], [retreaded(401)])  # 400 at SITE1
    s.refused("QuantityExceedsBalance", s.process, "OP1", [("L1", 300), ("L1", 101)], [retreaded(401)])
    s.accepted(s.process("OP1", [("L1", 400)], [retreaded(400)]))


def test_exit_and_loss_above_balance_refused(s):
    s.refused("QuantityExceedsBalance", s.exit, 1001, lot_id="L1")
    s.refused("QuantityExceedsBalance", s.lose, 1001, lot_id="L1")
    s.refused("QuantityExceedsBalance", s.exit, 1, lot_id="L1", site=SITE2)  # nothing at SITE2
    s.accepted(s.lose(1, lot_id="L1"))
    s.accepted(s.exit(999, lot_id="L1"))
    assert s.lot("L1")["status"] == "DISCHARGED"


# ---------------------------------------------------------------------------------------- UnitMismatch

def test_unit_mismatch_refused(s):
    details = s.refused("UnitMismatch", s.place, "L2", 10, unit="kg")
    assert details == {"cn": USED_TYRES, "unit": "p/st", "given": "kg"}
    s.refused("UnitMismatch", s.process, "OP1", [("L1", 10)], [{**retreaded(10), "unit": "kg"}])
    s.refused("UnitMismatch", s.exit, 10, lot_id="L1", unit="kg")
    s.refused("UnitMismatch", s.move, 10, SITE1, SITE2, lot_id="L1", unit="kg")
    s.accepted(s.exit(10, lot_id="L1", unit="p/st"))


def test_inputs_in_different_units_cannot_be_added_for_a_yield(s):
    s.accepted(s.grant("FRIPO000002", input_goods=[
        {"cn": USED_TYRES, "description": "tyres", "unit": "p/st", "max_qty": 100},
        {"cn": "40040000", "description": "rubber", "unit": "kg", "max_qty": 100}],
        processed_products=[{"cn": RETREADED, "kind": "MAIN", "unit": "p/st"}],
        yield_rates=[{"input_cn": USED_TYRES, "output_cn": RETREADED, "output_per_input": 1},
                     {"input_cn": "40040000", "output_cn": RETREADED, "output_per_input": 1}]))
    s.accepted(s.place("P1", 10, auth_id="FRIPO000002"))
    s.accepted(s.place("K1", 10, cn="40040000", unit="kg", auth_id="FRIPO000002"))
    ev = {"authorisation_id": "FRIPO000002", "operation_id": "OPX", "site": SITE1,
          "inputs": [{"lot_id": "P1", "qty": 5}, {"lot_id": "K1", "qty": 5}], "outputs": [retreaded(10)]}
    details = s.refused("UnitMismatch", s.submit, "RecordProcessing", ev, "OperatorMSP")
    assert details["units"] == ["kg", "p/st"]
    s.accepted(s.submit("RecordProcessing", {**ev, "inputs": [{"lot_id": "P1", "qty": 5}],
                                             "outputs": [retreaded(5)]}, "OperatorMSP"))


# ---------------------------------------------------------------------------------------- YieldOutOfTolerance

def test_yield_outside_block_tolerance_refused(s):
    details = s.refused("YieldOutOfTolerance", s.process, "OP1", [("L1", 500)], [retreaded(480), waste(1200)])
    assert (details["deviation_pct"], details["block_pct"], details["actual_per_input"]) == ("4", "2", "0.96")
    s.refused("YieldOutOfTolerance", s.process, "OP1", [("L1", 500)], [retreaded(511)])  # +2.2 %


@pytest.mark.parametrize("output, warned", [(500, False), (498, False), (497, True), (510, True), (490, True)])
def test_yield_within_tolerance_accepted_with_warning_beyond_warn_pct(s, output, warned):
    res = s.accepted(s.process("OP1", [("L1", 500)], [retreaded(output)]))
    assert res["operation"]["yield"][0]["warning"] is warned
    types = [a["type"] for a in s.query("GetAlerts", AUTH_ID)["alerts"]]
    assert ("YieldDeviation" in types) is warned


def test_secondary_and_waste_outputs_have_no_yield_check(s):
    res = s.accepted(s.process("OP1", [("L1", 500)], [retreaded(500), waste(999999)]))
    assert [y["output_cn"] for y in res["operation"]["yield"]] == [RETREADED]


def test_main_output_without_a_rate_for_its_inputs_refused(s):
    s.accepted(s.submit("AmendAuthorisation", {"authorisation_id": AUTH_ID, **authorisation_fields(
        s.day, processed_products=[{"cn": RETREADED, "kind": "MAIN", "unit": "p/st"},
                                   {"cn": "40110000", "kind": "MAIN", "unit": "p/st"}],
        yield_rates=[{"input_cn": USED_TYRES, "output_cn": RETREADED, "output_per_input": 1},
                     {"input_cn": "4011", "output_cn": "40110000", "output_per_input": 1}],
        input_goods=[{"cn": USED_TYRES, "description": "t", "unit": "p/st", "max_qty": 5000},
                     {"cn": "4011", "description": "n", "unit": "p/st", "max_qty": 5}])}, "CustomsMSP"))
    details = s.refused("GoodsNotCovered", s.process, "OP1", [("L1", 10)],
                        [{"cn": "40110000", "qty": 10, "unit": "p/st", "kind": "MAIN"}])
    assert details["output_cn"] == "40110000"


# ---------------------------------------------------------------------------------------- DeadlinePassed

def test_after_the_deadline_only_exit_loss_and_extension(s):
    s.accepted(s.process("OP1", [("L1", 100)], [retreaded(100, "B1")]))
    t = late(s, 181)  # L1 is due D+180
    s.refused("DeadlinePassed", s.move, 10, SITE1, SITE2, lot_id="L1", ts=t)
    s.refused("DeadlinePassed", s.move, 10, SITE1, SITE2, batch_id="B1", ts=t)
    details = s.refused("DeadlinePassed", s.process, "OP2", [("L1", 10)], [retreaded(10)], ts=t)
    assert details["id"] == "L1"
    assert s.lot("L1", ts=t)["status"] == "OVERDUE"
    s.accepted(s.exit(10, lot_id="L1", ts=t))
    s.accepted(s.lose(1, batch_id="B1", ts=t + dt.timedelta(minutes=1)))
    new = iso(s.D(240))
    res = s.accepted(s.submit("ExtendDischargePeriod", {"authorisation_id": AUTH_ID, "lot_ids": ["L1"],
                                                        "new_deadline": new}, "CustomsMSP",
                              ts=t + dt.timedelta(minutes=2)))
    assert res["batches"] == {"B1": res["lots"]["L1"]}  # the batch follows its lot
    s.accepted(s.move(10, SITE1, SITE2, lot_id="L1", ts=t + dt.timedelta(minutes=3)))
    s.accepted(s.move(10, SITE1, SITE2, batch_id="B1", ts=t + dt.timedelta(minutes=4)))
    assert s.lot("L1", ts=t + dt.timedelta(minutes=5))["status"] == "OPEN"


def test_extension_must_be_later_and_lots_open(s):
    deadline = s.lot("L1")["deadline"]
    s.refused("InvalidEvent", s.submit, "ExtendDischargePeriod",
              {"authorisation_id": AUTH_ID, "lot_ids": ["L1"], "new_deadline": deadline}, "CustomsMSP")
    s.accepted(s.exit(1000, lot_id="L1"))
    s.refused("InvalidState", s.submit, "ExtendDischargePeriod",
              {"authorisation_id": AUTH_ID, "lot_ids": ["L1"], "new_deadline": iso(s.D(400))}, "CustomsMSP")


# ---------------------------------------------------------------------------------------- DuplicateEvent (idempotency)

def test_same_event_id_same_content_returns_the_original_result(s):
    event = {"event_id": "mv-1", "authorisation_id": AUTH_ID, "lot_id": "L1", "quantity": 10,
             "from_site": SITE1, "to_site": SITE2, "occurred_at": iso(s.ledger.now)}
    first = s.accepted(s.submit("MoveGoods", event, "OperatorMSP"))
    before = s.ledger.snapshot()
    again = s.submit("MoveGoods", event, "OperatorMSP")
    assert again.ok and again.json() == first and again.json()["tx_id"] != again.tx_id
    assert again.event is None and s.ledger.snapshot() == before
    assert s.lot("L1")["stock"] == {SITE1: 990, SITE2: 10}  # moved once


def test_same_event_id_other_content_is_a_duplicate_event(s):
    event = {"event_id": "mv-1", "authorisation_id": AUTH_ID, "lot_id": "L1", "quantity": 10,
             "from_site": SITE1, "to_site": SITE2, "occurred_at": iso(s.ledger.now)}
    first = s.accepted(s.submit("MoveGoods", event, "OperatorMSP"))
    details = s.refused("DuplicateEvent", s.submit, "MoveGoods", {**event, "quantity": 11}, "OperatorMSP")
    assert details["original_tx_id"] == first["tx_id"]
    s.refused("DuplicateEvent", s.submit, "RecordLoss", {"event_id": "mv-1", "authorisation_id": AUTH_ID,
              "lot_id": "L1", "quantity": 10, "reason": "NATURE", "evidence_hash": evidence("x")}, "OperatorMSP")


def test_same_event_id_from_another_org_is_that_orgs_own_event(s):
    """Event ids are per organisation (see test_contract_event_ids.py): the broker's event is its own,
    refused here for its own reason."""
    event = {"event_id": "ex-1", "authorisation_id": AUTH_ID, "lot_id": "L1", "quantity": 10,
             "procedure": "3151", "mrn": mrn("E", 1), "occurred_at": iso(s.ledger.now)}
    s.accepted(s.submit("ExitGoods", event, "OperatorMSP"))
    s.refused("DuplicateDeclaration", s.submit, "ExitGoods", event, "BrokerMSP")


def test_replay_with_other_commercial_data_is_a_duplicate_event(s):
    event = {"event_id": "pl-9", "authorisation_id": AUTH_ID, "lot_id": "L9", "mrn": mrn("I", 9), "item_no": 1,
             "procedure": "5100", "cn": USED_TYRES, "description": "x", "quantity": 1, "unit": "p/st",
             "origin": "MA", "site": SITE1, "occurred_at": iso(s.ledger.now)}
    value = lambda amount: {"commercial": {"customs_value": {"amount": amount, "currency": "EUR"}, "nonce": NONCE}}  # noqa: E731
    first = s.accepted(s.submit("PlaceUnderProcedure", event, "OperatorMSP", transient=value("10")))
    assert s.submit("PlaceUnderProcedure", event, "OperatorMSP", transient=value("10")).json() == first
    s.refused("DuplicateEvent", s.submit, "PlaceUnderProcedure", event, "OperatorMSP", transient=value("11"))


def test_replay_still_returns_the_original_after_the_state_moved_on(s):
    event = {"event_id": "mv-1", "authorisation_id": AUTH_ID, "lot_id": "L1", "quantity": 10,
             "from_site": SITE1, "to_site": SITE2, "occurred_at": iso(s.ledger.now)}
    first = s.accepted(s.submit("MoveGoods", event, "OperatorMSP"))
    s.accepted(s.exit(990, lot_id="L1", site=SITE1))
    t = late(s, 5)  # occurred_at is now long past: the replay is still recognised (and raises nothing)
    assert s.submit("MoveGoods", event, "OperatorMSP", ts=t).json() == first


# ---------------------------------------------------------------------------------------- DuplicateDeclaration

def test_declaration_mrn_and_item_used_once(s):
    details = s.refused("DuplicateDeclaration", s.place, "L2", 10, mrn_=PLACE_MRN_L1)
    assert details == {"mrn": PLACE_MRN_L1, "item_no": 1}
    s.accepted(s.place("L2", 10, mrn_=PLACE_MRN_L1, item_no=2))
    s.refused("DuplicateDeclaration", s.exit, 1, lot_id="L1", mrn_=PLACE_MRN_L1)  # an import MRN
    s.accepted(s.exit(1, lot_id="L1", mrn_=mrn("E", 77)))
    s.refused("DuplicateDeclaration", s.exit, 1, lot_id="L1", mrn_=mrn("E", 77))
    s.accepted(s.exit(1, lot_id="L1", mrn_=mrn("E", 77), item_no=2))


# ---------------------------------------------------------------------------------------- OutOfOrder

def test_recorded_late_is_accepted_with_an_alert_not_refused(s):
    """Late recording (see test_contract_late_recording.py): beyond late_recording_days an event is
    accepted and raises LateRecording; it is no longer an OutOfOrder."""
    s.accepted(s.place("L2", 1, occurred_at=iso(s.ledger.now - dt.timedelta(days=1, hours=23))))
    s.accepted(s.place("L3", 1, occurred_at=iso(s.ledger.now - dt.timedelta(days=2, minutes=1))))
    alerts = s.query("GetAlerts", AUTH_ID)["alerts"]
    assert [a["details"]["event_type"] for a in alerts if a["type"] == "LateRecording"] == ["PlaceUnderProcedure"]


def test_business_time_in_the_future_refused(s):
    s.refused("OutOfOrder", s.move, 1, SITE1, SITE2, lot_id="L1",
              occurred_at=iso(s.ledger.now + dt.timedelta(hours=1)))


def test_business_time_before_the_placement_refused(s):
    placed = s.lot("L1")["occurred_at"]
    before = iso(dt.datetime.fromisoformat(placed) - dt.timedelta(minutes=1))
    details = s.refused("OutOfOrder", s.move, 1, SITE1, SITE2, lot_id="L1", occurred_at=before)
    assert details["goods_since"] == placed
    s.refused("OutOfOrder", s.exit, 1, lot_id="L1", occurred_at=before)
    s.accepted(s.move(1, SITE1, SITE2, lot_id="L1", occurred_at=placed))


def test_transaction_timestamped_before_the_last_change_of_the_goods_refused(s):
    # a client's timestamp may lag the peer's clock by up to max_clock_skew_s: two clients, one lagging
    now = s.ledger.now
    s.accepted(s.move(1, SITE1, SITE2, lot_id="L1", ts=now + dt.timedelta(seconds=100)))
    details = s.refused("OutOfOrder", s.move, 1, SITE1, SITE2, lot_id="L1", ts=now + dt.timedelta(seconds=50))
    assert details["id"] == "L1"
    s.accepted(s.move(1, SITE1, SITE2, lot_id="L1", ts=now + dt.timedelta(seconds=101)))


# ---------------------------------------------------------------------------------------- ClockSkew

def test_clock_skew_beyond_the_parameter_refused(s):
    peer = s.ledger.now
    details = s.refused("ClockSkew", s.move, 1, SITE1, SITE2, lot_id="L1", ts=peer + dt.timedelta(seconds=301))
    assert details["max_clock_skew_s"] == 300
    s.refused("ClockSkew", s.move, 1, SITE1, SITE2, lot_id="L1", ts=peer - dt.timedelta(seconds=301))
    s.accepted(s.move(1, SITE1, SITE2, lot_id="L1", ts=peer + dt.timedelta(seconds=299)))


def test_clock_skew_applies_to_customs_too(s):
    s.refused("ClockSkew", s.set_parameters, ts=s.ledger.now + dt.timedelta(hours=1), max_clock_skew_s=99999)


# ---------------------------------------------------------------------------------------- NotFound, AlreadyExists, InvalidState

def test_not_found(s):
    s.refused("NotFound", s.move, 1, SITE1, SITE2, lot_id="L404")
    s.refused("NotFound", s.exit, 1, batch_id="B404")
    s.refused("NotFound", s.submit, "SuspendAuthorisation", {"authorisation_id": "FRIPO404", "reason": "x"},
              "CustomsMSP")
    s.accepted(s.grant("FRIPO000002"))
    details = s.refused("NotFound", s.exit, 1, lot_id="L1", authorisation_id="FRIPO000002")  # another's lot
    assert details["authorisation_id"] == "FRIPO000002"
    res = s.ledger.evaluate(s.contract, "GetLot", ["L404"], "CustomsMSP")
    assert res.error_code == "NotFound"


def test_already_exists(s):
    s.refused("AlreadyExists", s.grant)
    s.refused("AlreadyExists", s.place, "L1", 1)
    s.accepted(s.process("OP1", [("L1", 10)], [retreaded(10, "B1")]))
    s.refused("AlreadyExists", s.process, "OP1", [("L1", 10)], [retreaded(10, "B2")])
    s.refused("AlreadyExists", s.process, "OP2", [("L1", 10)], [retreaded(10, "B1")])
    s.accepted(s.process("OP2", [("L1", 10)], [retreaded(10)]))
    assert s.batch("OP2/1")["produced"] == 10  # default batch id: operation/n


def test_authorisation_state_transitions(s):
    reinstate = {"authorisation_id": AUTH_ID, "reason": "r"}
    s.refused("InvalidState", s.submit, "ReinstateAuthorisation", reinstate, "CustomsMSP")
    s.accepted(s.submit("SuspendAuthorisation", {**reinstate, "until": "2026-12-31"}, "CustomsMSP"))
    s.refused("InvalidState", s.submit, "SuspendAuthorisation", reinstate, "CustomsMSP")
    s.accepted(s.submit("RevokeAuthorisation", reinstate, "CustomsMSP"))
    s.refused("InvalidState", s.submit, "RevokeAuthorisation", reinstate, "CustomsMSP")
    s.refused("InvalidState", s.submit, "ReinstateAuthorisation", reinstate, "CustomsMSP")
    s.refused("InvalidState", s.submit, "AmendAuthorisation",
              {"authorisation_id": AUTH_ID, **authorisation_fields(s.day, valid_to=s.D(100).date().isoformat())},
              "CustomsMSP")   # only the representatives' mandates of a revoked authorisation may change
    hist = [h["status"] for h in s.query("GetAuthorisation", AUTH_ID)["status_history"]]
    assert hist == ["ACTIVE", "SUSPENDED", "REVOKED"]


# ---------------------------------------------------------------------------------------- acts that need their own checks

def test_amendment_applies_forward_only(s):
    deadline = s.lot("L1")["deadline"]
    res = s.accepted(s.submit("AmendAuthorisation", {"authorisation_id": AUTH_ID, **authorisation_fields(
        s.day, discharge_period_days=30, input_goods=[
            {"cn": USED_TYRES, "description": "t", "unit": "p/st", "max_qty": 1200}])}, "CustomsMSP"))
    assert res["authorisation"]["version"] == 2
    assert s.lot("L1")["deadline"] == deadline                # existing lot keeps its deadline
    s.refused("CeilingExceeded", s.place, "L2", 201)          # the new ceiling applies to new placements
    new = s.accepted(s.place("L2", 200))
    assert new["lot"]["deadline"] < deadline and new["lot"]["authorisation_version"] == 2
    s.refused("InvalidEvent", s.submit, "AmendAuthorisation",
              {"authorisation_id": AUTH_ID, **authorisation_fields(s.day, holder_eori="DE123")}, "CustomsMSP")


def test_confirm_exit(s):
    s.accepted(s.exit(10, lot_id="L1", mrn_=mrn("E", 5), procedure="4051"))
    s.refused("NotFound", s.submit, "ConfirmExit", {"authorisation_id": AUTH_ID, "mrn": mrn("E", 5),
                                                    "exit_date": s.day.date().isoformat()}, "CustomsMSP")
    s.accepted(s.exit(10, lot_id="L1", mrn_=mrn("E", 6)))
    assert any(a["type"] == "ExitUnconfirmed" for a in s.query("GetAlerts", AUTH_ID, iso(s.D(91)))["alerts"])
    confirm = {"authorisation_id": AUTH_ID, "mrn": mrn("E", 6), "exit_date": s.day.date().isoformat()}
    s.refused("OutOfOrder", s.submit, "ConfirmExit", {**confirm, "exit_date": "2026-01-01"}, "CustomsMSP")
    res = s.accepted(s.submit("ConfirmExit", confirm, "CustomsMSP"))
    assert res["confirmed"] == [{"mrn": mrn("E", 6), "item_no": 1, "goods": "LOT", "id": "L1", "quantity": 10}]
    assert not any(a["type"] == "ExitUnconfirmed" for a in s.query("GetAlerts", AUTH_ID, iso(s.D(91)))["alerts"])
    s.refused("InvalidState", s.submit, "ConfirmExit", confirm, "CustomsMSP")


def test_record_control_raises_and_clears_balance_discrepancy(s):
    control = {"authorisation_id": AUTH_ID, "site": SITE1, "counted": [{"lot_id": "L1", "qty": 990}],
               "findings": "10 missing"}
    res = s.accepted(s.submit("RecordControl", control, "CustomsMSP"))
    assert res["lines"][0] == {"goods": "LOT", "id": "L1", "site": SITE1, "book": 1000, "counted": 990,
                               "difference": -10, "unit": "p/st"}
    change = res_event = s.ledger.events[-1]
    assert change and '"BalanceDiscrepancy"' in res_event[2].decode()
    alerts = [a for a in s.query("GetAlerts", AUTH_ID)["alerts"] if a["type"] == "BalanceDiscrepancy"]
    assert [a["subject"] for a in alerts] == [f"LOT:L1@{SITE1}"]
    assert s.lot("L1")["balance"] == 1000  # a control changes no balance
    s.accepted(s.lose(10, lot_id="L1"))
    s.accepted(s.submit("RecordControl", {**control, "findings": ""}, "CustomsMSP"))
    assert not [a for a in s.query("GetAlerts", AUTH_ID)["alerts"] if a["type"] == "BalanceDiscrepancy"]
    elsewhere = s.accepted(s.submit("RecordControl", {**control, "site": "TOURS-1"}, "CustomsMSP"))
    assert elsewhere["lines"][0]["book"] == 0 and elsewhere["discrepancies"] == 1   # goods found where none may be


def test_loss_rate_alert_ignores_destruction(s):
    res = s.accepted(s.lose(10, lot_id="L1", reason="DESTROYED"))
    assert s.ledger.events[-1][2] and "LossRateHigh" not in s.ledger.events[-1][2].decode()
    assert res["loss"]["reason"] == "DESTROYED"
    s.accepted(s.lose(10, lot_id="L1", reason="NATURE"))   # 1 % = the limit, not above
    assert not [a for a in s.query("GetAlerts", AUTH_ID)["alerts"] if a["type"] == "LossRateHigh"]
    s.accepted(s.lose(1, lot_id="L1", reason="FORCE_MAJEURE"))
    alerts = [a for a in s.query("GetAlerts", AUTH_ID)["alerts"] if a["type"] == "LossRateHigh"]
    assert alerts[0]["details"] == {"goods": "LOT", "id": "L1", "lost": 11, "entered": 1000, "unit": "p/st",
                                    "pct": "1.1"}


def test_ceiling_near_raised_and_cleared(s):
    raised = s.accepted(s.place("L2", 3500))   # 4500 = 90 %
    assert s.ledger.events[-1][2].decode().count('"CeilingNear"') == 1 and raised
    s.accepted(s.exit(1, lot_id="L2"))
    assert not [a for a in s.query("GetAlerts", AUTH_ID)["alerts"] if a["type"] == "CeilingNear"]


def test_balances_state_the_use_of_each_ceiling_as_a_decimal_string(s):
    (ceiling,) = s.query("GetBalances", AUTH_ID)["ceilings"]
    assert ceiling == {"cn": USED_TYRES, "unit": "p/st", "max_qty": 5000, "quantity": 1000, "pct": "20"}
    s.accepted(s.place("L2", 1))
    assert s.query("GetBalances", AUTH_ID)["ceilings"][0]["pct"] == "20.02"   # like the CeilingNear alert's


def test_fifo_attribution_of_a_batch_exit_across_lots(s):
    s.wait_until(s.D(0.1))
    s.accepted(s.place("L2", 1000))
    s.accepted(s.process("OP1", [("L2", 100), ("L1", 100)], [retreaded(200, "B1")]))
    l1, l2 = s.lot("L1")["deadline"], s.lot("L2")["deadline"]
    assert s.batch("B1")["shares"] == [                                                     # L1 first
        {"lot_id": "L1", "qty": 100, "input_qty": 100, "discharged": 0, "input_discharged": 0, "deadline": l1},
        {"lot_id": "L2", "qty": 100, "input_qty": 100, "discharged": 0, "input_discharged": 0, "deadline": l2}]
    assert s.batch("B1")["deadline"] == l1
    res = s.accepted(s.exit(150, batch_id="B1"))
    assert s.batch("B1")["deadline"] == l2      # L1's share has all left: L2's deadline holds what remains
    assert res["exit"]["attribution"] == [{"lot_id": "L1", "qty": 100, "input_qty": 100},
                                          {"lot_id": "L2", "qty": 50, "input_qty": 50}]
    assert s.lot("L1")["products"]["B1"]["discharged"] == 100
    assert s.lot("L2")["products"]["B1"]["input_discharged"] == 50
    res = s.accepted(s.lose(50, batch_id="B1", reason="DESTROYED"))
    assert res["loss"]["attribution"] == [{"lot_id": "L2", "qty": 50, "input_qty": 50}]
    assert [e["event_type"] for e in s.query("GetLotHistory", "L2")["history"]] == [
        "PlaceUnderProcedure", "RecordProcessing", "ExitGoods", "RecordLoss"]


def test_lot_is_discharged_only_when_its_products_are(s):
    s.accepted(s.process("OP1", [("L1", 1000)], [retreaded(1000, "B1"), waste(50, "W1")]))
    assert s.lot("L1")["status"] == "OPEN" and s.lot("L1")["balance"] == 0
    s.accepted(s.exit(1000, batch_id="B1"))
    assert s.lot("L1")["status"] == "OPEN"         # its waste is still under the procedure
    s.accepted(s.lose(50, batch_id="W1", reason="DESTROYED"))
    assert s.lot("L1")["status"] == "DISCHARGED" and s.batch("W1")["status"] == "DISCHARGED"


def amend(s):
    """AmendAuthorisation with the §8 fields and no mandate."""
    return s.submit("AmendAuthorisation", {"authorisation_id": AUTH_ID,
                                           **authorisation_fields(s.day, broker_mandates=[])}, "CustomsMSP")


def test_no_key_carries_a_key_level_policy_so_the_chaincode_policy_judges_every_write(s):
    """Under Fabric's v2 validation a key's own policy replaces the chaincode's for that key: a
    customs-only one would let customs' peer alone commit a transaction writing only that key."""
    s.accepted(s.set_parameters(warn_days=10))
    s.accepted(amend(s))
    s.accepted(s.register("OperatorMSP", "holder", [HOLDER], name="registered again"))
    assert s.ledger.state            # grant, register, placement, parameters, amendment written ...
    assert s.ledger.validation_parameters() == {}     # ... and no key-level policy on any of them


@pytest.mark.parametrize("act", ["amend", "set_parameters", "register"])
def test_a_key_level_policy_an_earlier_version_left_goes_when_the_key_is_written(s, act):
    from ipledger.chaincode.testing.policies import signature_policy

    stub = s.ledger.stub()
    key = {"amend": stub.create_composite_key("auth", [AUTH_ID]),
           "set_parameters": stub.create_composite_key("params", []),
           "register": stub.create_composite_key("party", ["OperatorMSP"])}[act]
    untouched = stub.create_composite_key("party", ["BrokerMSP"])
    for k in (key, untouched):
        stub.set_state_validation_parameter(k, signature_policy(["CustomsMSP"]))
    s.ledger.commit(stub)
    s.accepted({"amend": lambda: amend(s),
                "set_parameters": lambda: s.set_parameters(warn_days=10),
                "register": lambda: s.register("OperatorMSP", "holder", [HOLDER], name="again")}[act]())
    assert s.ledger.validation_parameters() == {untouched: signature_policy(["CustomsMSP"])}


def test_set_parameters(s):
    res = s.accepted(s.set_parameters(warn_days=10, ceiling_warn_pct=50))
    assert res["changed"] == ["ceiling_warn_pct", "warn_days"]
    params = s.query("GetParameters", msp="OperatorMSP")
    assert params["warn_days"] == 10 and params["max_clock_skew_s"] == 300
    stub = s.ledger.stub()
    stored = json.loads(s.ledger.state[stub.create_composite_key("params", [])])
    assert stored == {"warn_days": 10, "ceiling_warn_pct": 50}  # only customs' choices; defaults stay defaults
    s.refused("InvalidEvent", s.set_parameters, yield_warn_pct=9)   # above yield_block_pct 5
    s.refused("InvalidEvent", s.set_parameters, warn_days=-1)
    s.refused("InvalidEvent", s.set_parameters, colour="red")
    s.refused("NotPermitted", s.submit, "SetParameters", {"parameters": {"warn_days": 1}}, "OperatorMSP")


@pytest.mark.parametrize("field, value", [("until", "2026-02-30"), ("occurred_at", "2026-13-02T09:00:00Z"),
                                          ("occurred_at", "2026-03-02T25:00:00Z")])
def test_impossible_calendar_dates_are_invalid_events(field, value):
    from ipledger.chaincode.contract import InwardProcessingContract
    from ipledger.chaincode.testing.scenario import AUTH_ID, Scenario
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant())
    event = {"authorisation_id": AUTH_ID, "reason": "audit", "until": "2026-02-28", field: value}
    details = s.refused("InvalidEvent", s.submit, "SuspendAuthorisation", event, "CustomsMSP")
    assert details["errors"][0]["path"] == f"/{field}"


def test_customs_drop_every_key_level_policy_an_earlier_version_left_at_once(s):
    """After upgrading a ledger written before: one act, by customs, removes every policy left (a key not
    written since would have kept its customs-only policy, and customs' peer could write it alone)."""
    from ipledger.chaincode.testing.policies import signature_policy

    stub = s.ledger.stub()
    left = [stub.create_composite_key("auth", [AUTH_ID]), stub.create_composite_key("party", ["OperatorMSP"]),
            stub.create_composite_key("party", ["BrokerMSP"]), stub.create_composite_key("params", [])]
    s.accepted(s.set_parameters(warn_days=10))            # the parameters key exists, as on such a ledger
    for key in left:
        stub.set_state_validation_parameter(key, signature_policy(["CustomsMSP"]))
    s.ledger.commit(stub)
    before = dict(s.ledger.state)
    event = {"event_id": "drop-1", "occurred_at": iso(s.ledger.now)}
    s.refused("NotPermitted", s.submit, "DropKeyPolicies", event, "OperatorMSP")
    res = s.accepted(s.submit("DropKeyPolicies", event, "CustomsMSP"))
    assert res["dropped"] == [f"auth/{AUTH_ID}", "party/BrokerMSP", "party/OperatorMSP", "params"]
    assert s.ledger.validation_parameters() == {}
    assert {k: v for k, v in s.ledger.state.items() if k in left} == {k: v for k, v in before.items() if k in left}
    assert s.accepted(s.submit("DropKeyPolicies", {**event, "event_id": "drop-2"}, "CustomsMSP"))["dropped"] == []
