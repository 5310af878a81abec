"""A rate of yield is a quantity per one unit of input goods: it is never applied to goods counted in another.

An authorisation's rate ``{input_cn, output_cn, output_per_input}`` has no unit of its own: it is per unit of
the input-goods entry it is written against. Applied to a lot counted otherwise — placed in pieces before an
amendment counted the goods in kilograms, or an 8-digit entry in pieces under its heading's per-kilogram rate —
1,000 casings would "yield" 100 retreaded tyres exactly, and the re-export of those 100 would discharge all
1,000: 900 casings off the books without a trace.
"""
from __future__ import annotations

from ipledger.chaincode.contract import InwardProcessingContract
from ipledger.chaincode.testing.scenario import (AUTH_ID, RETREADED, USED_TYRES, Scenario, authorisation_fields,
                                                retreaded)

BY_PIECE = {"cn": USED_TYRES, "description": "used tyres by piece", "unit": "p/st", "max_qty": 5000}


def by_mass(cn: str) -> dict:
    return {"cn": cn, "description": "tyres by mass", "unit": "kg", "max_qty": 100000}


def rate(input_cn: str, per_input) -> dict:
    return {"input_cn": input_cn, "output_cn": RETREADED, "output_per_input": per_input}


PER_KG = [rate(USED_TYRES, 0.1)]


def amend_to_kilograms(s) -> None:
    s.accepted(s.submit("AmendAuthorisation", {"authorisation_id": AUTH_ID, **authorisation_fields(
        s.day, input_goods=[{"cn": USED_TYRES, "description": "used tyres", "unit": "kg", "max_qty": 50000}],
        yield_rates=PER_KG)}, "CustomsMSP"))


def test_a_lot_placed_in_pieces_is_not_processed_at_a_rate_per_kilogram_an_amendment_brought(s):
    amend_to_kilograms(s)                                   # L1: 1,000 p/st, placed under the first version
    details = s.refused("UnitMismatch", s.process, "OP1", [("L1", 1000)], [retreaded(100, "B1")])
    assert details == {"lot_id": "L1", "unit": "p/st", "rate_units": ["kg"], "input_cn": USED_TYRES,
                       "output_cn": RETREADED}
    assert s.lot("L1")["balance"] == 1000 and s.lot("L1")["status"] == "OPEN"
    s.accepted(s.exit(1000, lot_id="L1"))                   # it can still leave the procedure as it is
    assert s.lot("L1")["status"] == "DISCHARGED"


def test_a_lot_placed_in_the_amended_unit_is_processed_at_its_rate(s):
    amend_to_kilograms(s)
    s.accepted(s.place("K1", 5000, unit="kg", mrn_=None, item_no=2))
    res = s.accepted(s.process("OP1", [("K1", 5000)], [retreaded(500, "B1")]))
    [line] = res["operation"]["yield"]
    assert (line["input_qty"], line["input_unit"], line["expected_output"]) == (5000, "kg", "500")


def test_a_headings_rate_may_not_reach_an_entry_counted_in_another_unit():
    s = Scenario(InwardProcessingContract)
    inputs = [by_mass("4012"), BY_PIECE]
    details = s.refused("InvalidEvent", s.grant, input_goods=inputs, yield_rates=[rate("4012", 0.1)])
    assert details == {"input_cn": "4012", "output_cn": RETREADED, "units": ["kg", "p/st"]}
    # with a rate of its own the 8-digit entry is rated per piece, the heading's others per kilogram
    s.accepted(s.grant(input_goods=inputs, yield_rates=[rate("4012", 0.1), rate(USED_TYRES, 1)]))
    s.accepted(s.place("L1", 1000))
    s.accepted(s.process("OP1", [("L1", 1000)], [retreaded(1000, "B1")]))


def test_a_headings_rate_without_an_entry_of_its_own_applies_to_one_unit():
    s = Scenario(InwardProcessingContract)
    details = s.refused("InvalidEvent", s.grant, input_goods=[by_mass("40121000"), BY_PIECE],
                        yield_rates=[rate("4012", 1)])
    assert details["units"] == ["kg", "p/st"]
    s.accepted(s.grant(input_goods=[BY_PIECE], yield_rates=[rate("4012", 1)]))


def test_an_amendment_is_held_to_the_same_rule(s):
    details = s.refused("InvalidEvent", s.submit, "AmendAuthorisation", {
        "authorisation_id": AUTH_ID, **authorisation_fields(s.day, input_goods=[by_mass("4012"), BY_PIECE],
                                                            yield_rates=[rate("4012", 0.1)])}, "CustomsMSP")
    assert details["units"] == ["kg", "p/st"]


def test_an_authorisation_granted_before_the_rule_keeps_its_rates_until_customs_change_them(monkeypatch):
    """Granted by a contract before this rule (stood in for by switching the rule off for the grant), its
    mandates may still change — even revoked — and its rates are held to the rule only when they change; a lot
    its heading's rate would reach in another unit is refused at processing."""
    from ipledger.chaincode.contract import authorisations

    s = Scenario(InwardProcessingContract)
    inputs, rates = [by_mass("4012"), BY_PIECE], [rate("4012", 0.1)]
    with monkeypatch.context() as m:
        m.setattr(authorisations, "rate_units", lambda auth, rate: ["kg"])
        s.accepted(s.grant(input_goods=inputs, yield_rates=rates))
    s.accepted(s.place("L1", 1000))
    s.refused("UnitMismatch", s.process, "OP1", [("L1", 1000)], [retreaded(100, "B1")])
    s.accepted(s.submit("RevokeAuthorisation", {"authorisation_id": AUTH_ID, "reason": "closed"}, "CustomsMSP"))
    s.accepted(s.submit("AmendAuthorisation", {"authorisation_id": AUTH_ID, **authorisation_fields(
        s.day, input_goods=inputs, yield_rates=rates, broker_mandates=[])}, "CustomsMSP"))
