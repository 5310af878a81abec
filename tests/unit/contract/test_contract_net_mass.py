"""Goods counted in a unit of mass are their net mass: a placement of 1,000 kg declared with a net mass of 1 kg
(or 9,000 t) is refused (``InvalidEvent``), within a kilogram of rounding (docs/domain.md §9 item 27)."""
from __future__ import annotations

from ipledger.chaincode.contract import InwardProcessingContract
from ipledger.chaincode.testing.scenario import USED_TYRES, Scenario


def _entry(unit: str, cn: str = USED_TYRES, max_qty: int = 5000) -> dict:
    return {"cn": cn, "description": "used pneumatic tyres", "unit": unit, "max_qty": max_qty}


def test_goods_counted_by_mass_are_their_net_mass():
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant(input_goods=[_entry("kg", max_qty=10_000_000)]))
    for net in (1000, 9_000_000_000, 999_000):
        refused = s.refused("InvalidEvent", s.place, f"M{net}", 1000, unit="kg", net_mass_g=net)
        assert refused["field"] == "net_mass_g"
    s.accepted(s.place("M1", 1000, unit="kg", net_mass_g=1_000_000))
    s.accepted(s.place("M2", 1000, unit="kg", net_mass_g=1_000_400))      # 1,000.4 kg counted as 1,000
    s.accepted(s.place("M3", 1000, unit="kg", net_mass_g=999_001))
    assert [s.lot(lot_id)["placed"] for lot_id in ("M1", "M2", "M3")] == [1000, 1000, 1000]


def test_goods_counted_in_grams_are_their_net_mass_exactly():
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant(input_goods=[_entry("g", max_qty=10_000_000)]))
    s.refused("InvalidEvent", s.place, "G1", 500, unit="g", net_mass_g=501)
    s.accepted(s.place("G2", 500, unit="g", net_mass_g=500))
