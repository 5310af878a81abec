"""An act dated before an amendment is measured against the terms it occurred under, and customs are told.

Acts are judged at ledger time (docs/domain.md §4): a placement or processing recorded after an amendment that
widened the terms — a new site, a new goods code, a higher rate of yield — was accepted under the new terms even
when it occurred before them (up to ``late_recording_days`` without any alert): goods placed at a site not yet
authorised, an operation credited 20 % more products than the rate in force when it was made. It is still accepted
(the amendment is customs' own, and the act may be a genuine late record), and raises ``LateRecording`` naming what
the earlier terms would have refused (``earlier_terms``), however soon it is recorded — as a placement declared
before the period for discharge was shortened does (§9 item 25).
"""
from __future__ import annotations

import datetime as dt
import json

from ipledger.chaincode.contract import InwardProcessingContract, timestamps
from ipledger.chaincode.testing.scenario import (AUTH_ID, RETREADED, SITE1, SITE2, USED_TYRES, Scenario,
                                                 authorisation_fields, iso, retreaded)

TOURS = "TOURS-3"
NEW_CODE = "40121100"


def _widen(s: Scenario):
    """Customs add a site, an input code and raise the rate of yield to 1.2 (block at 2 %)."""
    fields = authorisation_fields(s.day)
    s.accepted(s.submit("AmendAuthorisation", {"authorisation_id": AUTH_ID, **authorisation_fields(
        s.day, sites=[SITE1, SITE2, TOURS],
        input_goods=[*fields["input_goods"], {"cn": NEW_CODE, "description": "new tyres", "unit": "p/st",
                                              "max_qty": 5000}],
        yield_rates=[{"input_cn": USED_TYRES, "output_cn": RETREADED, "output_per_input": 1.2}])}, "CustomsMSP"))


def _late(s: Scenario) -> dict:
    return {a["subject"].split(":", 1)[1]: a["details"] for a in s.query("GetAlerts", AUTH_ID)["alerts"]
            if a["type"] == "LateRecording"}


def test_acts_dated_before_the_terms_that_allow_them_are_accepted_and_told():
    s = Scenario.with_l1(InwardProcessingContract)                 # L1: 1,000 p/st at BOURGES-1, rate 1
    s.wait_until(s.D(1))
    _widen(s)
    amended = s.ledger.now
    s.wait_until(s.D(1.25))                                        # six hours later: not late in itself
    before = iso(amended - dt.timedelta(hours=12))
    s.accepted(s.place("AT-TOURS", 10, site=TOURS, occurred_at=before, event_id="p-tours"))
    s.accepted(s.place("NEW-CODE", 10, cn=NEW_CODE, occurred_at=before, event_id="p-code"))
    s.accepted(s.process("OP-12", [("L1", 10)], [retreaded(12)], occurred_at=before, event_id="op-12"))
    late = _late(s)
    assert late["p-tours"]["earlier_terms"] == {"terms_until": s.query("GetAuthorisation", AUTH_ID)["amended_at"],
                                                "site_not_authorised_then": TOURS}
    assert late["p-code"]["earlier_terms"]["goods_not_covered_then"] == {"cn": NEW_CODE, "unit": "p/st"}
    assert "site_not_authorised_then" not in late["p-code"]["earlier_terms"]
    op = late["op-12"]["earlier_terms"]
    assert op["refused_then"] == "YieldOutOfTolerance" and op["terms_until"] == late["p-tours"]["earlier_terms"][
        "terms_until"]
    assert late["op-12"]["lots"] == ["L1"]


def test_acts_the_earlier_terms_allowed_too_and_acts_after_the_amendment_raise_nothing():
    s = Scenario.with_l1(InwardProcessingContract)
    s.wait_until(s.D(1))
    _widen(s)
    amended = s.ledger.now
    s.wait_until(s.D(1.25))
    before, after = iso(amended - dt.timedelta(hours=12)), iso(amended + dt.timedelta(hours=1))
    s.accepted(s.place("AT-BOURGES", 10, occurred_at=before, event_id="p-old"))      # allowed then as now
    s.accepted(s.place("AT-TOURS", 10, site=TOURS, occurred_at=after, event_id="p-new"))
    s.accepted(s.process("OP-12", [("L1", 10)], [retreaded(12, "B12")], occurred_at=after, event_id="op-12"))
    assert _late(s) == {}
    # judged at ledger time: an operation at the earlier rate, dated before the amendment, is refused today (the
    # refusals are today's terms'; what the earlier terms would have refused is told, not enforced)
    s.refused("YieldOutOfTolerance", s.process, "OP-10", [("L1", 10)], [retreaded(10, "B10")], occurred_at=before)


AUTH_KEY = f"\x00auth\x00{AUTH_ID}\x00"


def _stored(s: Scenario) -> dict:
    return json.loads(s.ledger.state[AUTH_KEY])


def _amend(s: Scenario, **fields) -> str:
    s.accepted(s.submit("AmendAuthorisation", {"authorisation_id": AUTH_ID, **authorisation_fields(s.day, **fields)},
                        "CustomsMSP"))
    return s.query("GetAuthorisation", AUTH_ID)["amended_at"]


def _new_code(fields: dict) -> list[dict]:
    return [*fields["input_goods"], {"cn": NEW_CODE, "description": "new tyres", "unit": "p/st", "max_qty": 5000}]


def test_an_act_is_measured_against_the_terms_in_force_when_it_occurred_among_several_amendments():
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant())
    fields = authorisation_fields(s.day)
    s.wait_until(s.D(1))
    first = _amend(s, sites=[SITE1, SITE2, TOURS])                                   # a site
    s.wait_until(s.D(1.1))
    second = _amend(s, sites=[SITE1, SITE2, TOURS], input_goods=_new_code(fields))    # then a code
    s.wait_until(s.D(1.2))
    at = timestamps.parse_datetime
    s.accepted(s.place("P0", 1, site=TOURS, cn=NEW_CODE, occurred_at=iso(at(first) - dt.timedelta(hours=1)),
                       event_id="before-both"))
    s.accepted(s.place("P1", 1, site=TOURS, cn=NEW_CODE, occurred_at=iso(at(first) + dt.timedelta(hours=1)),
                       event_id="between"))
    s.accepted(s.place("P2", 1, site=TOURS, cn=NEW_CODE, occurred_at=second, event_id="at-the-second"))
    late = _late(s)
    assert late["before-both"]["earlier_terms"] == {
        "terms_until": first, "site_not_authorised_then": TOURS,
        "goods_not_covered_then": {"cn": NEW_CODE, "unit": "p/st"}}
    assert late["between"]["earlier_terms"] == {"terms_until": second,
                                                "goods_not_covered_then": {"cn": NEW_CODE, "unit": "p/st"}}
    assert "at-the-second" not in late                    # in force from the amendment's own moment


def test_an_amendment_keeps_what_it_changes_only_and_the_answer_does_not_show_it():
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant())
    s.wait_until(s.D(1))
    _amend(s, broker_mandates=[])                                    # mandates only: no term an act is judged by
    _amend(s, yield_block_pct=5)                                     # one tolerance
    stored = _stored(s)
    assert [sorted(change) for change in stored["former_terms"]] == [["until", "yield_block_pct"]]
    assert stored["former_terms"][0]["yield_block_pct"] == 2 and stored["former_terms_since"] is None
    view = s.query("GetAuthorisation", AUTH_ID)
    assert "former_terms" not in view and "former_terms_since" not in view


def test_a_period_shortened_and_a_site_added_at_once_are_both_told():
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant())                                                           # 180 days
    s.wait_until(s.D(1))
    amended = _amend(s, discharge_period_days=30, sites=[SITE1, SITE2, TOURS])
    s.wait_until(s.D(1.25))
    s.accepted(s.place("P", 1, site=TOURS, occurred_at=iso(timestamps.parse_datetime(amended)
                                                            - dt.timedelta(minutes=1)), event_id="p"))
    assert _late(s)["p"]["earlier_terms"] == {"discharge_period_days": 180, "in_force_days": 30,
                                              "terms_until": amended, "site_not_authorised_then": TOURS}


def test_before_an_amendment_that_kept_no_former_terms_the_earlier_terms_are_not_known():
    """A ledger amended by a contract that kept no former terms: an act dated before that amendment is not
    measured (its terms then are not known here), one dated after it is."""
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant())
    s.wait_until(s.D(1))
    old = _amend(s, sites=[SITE1])                                  # BOURGES-2 withdrawn, by the former contract:
    stored = _stored(s)
    del stored["former_terms"], stored["former_terms_since"]
    s.ledger._committed.state[AUTH_KEY] = json.dumps(stored, sort_keys=True, separators=(",", ":")).encode()
    s.wait_until(s.D(1.1))
    new = _amend(s, sites=[SITE1, SITE2])                           # BOURGES-2 back, by this one
    assert _stored(s)["former_terms_since"] == old
    s.wait_until(s.D(1.2))
    at = timestamps.parse_datetime
    s.accepted(s.place("P0", 1, site=SITE2, occurred_at=iso(at(old) - dt.timedelta(hours=1)), event_id="before-old"))
    s.accepted(s.place("P1", 1, site=SITE2, occurred_at=iso(at(old) + dt.timedelta(hours=1)), event_id="between"))
    late = _late(s)
    assert "before-old" not in late                                  # authorised then: nothing false is said
    assert late["between"]["earlier_terms"] == {"terms_until": new, "site_not_authorised_then": SITE2}
