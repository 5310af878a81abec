"""Conservation of goods (issue 13, point 1): every unit placed under the procedure is, at every moment,
in exactly one place — under the procedure (a lot, or a processed product: main, secondary or waste),
discharged by an exit, or lost/destroyed with evidence.

* The rate-of-yield check covers the whole operation: every authorised rate from the consumed inputs,
  main and secondary products alike (UCC art. 255).
* Waste stays under the procedure until it is exited or destroyed.
* A lot is DISCHARGED only when everything derived from it has left.
* The bill shows, for every disposal, the input goods it stands for.

The random-sequence version of these rules, against an independent model: ``test_contract_model.py``.
"""
from __future__ import annotations

import pytest

from ipledger.chaincode.contract import InwardProcessingContract
from ipledger.chaincode.testing.scenario import (AUTH_ID, RETREADED, RUBBER_WASTE, USED_TYRES, Scenario, iso,
                                        retreaded, waste)
from ipledger.chaincode.testing.mrns import mrn as valid_mrn

RECLAIMED = "40030000"   # reclaimed rubber: a secondary product, 2.5 kg per used tyre
TUBES = "40131000"       # inner tubes: a second input, 0.5 kg of reclaimed rubber each, no main product


def secondary(qty_kg: int, batch_id: str | None = None) -> dict:
    out = {"cn": RECLAIMED, "qty": qty_kg, "unit": "kg", "kind": "SECONDARY"}
    return {**out, "batch_id": batch_id} if batch_id else out


@pytest.fixture
def s():
    """The authorisation of §8 with a secondary product that has a rate of yield, and a second input."""
    sc = Scenario(InwardProcessingContract)
    sc.accepted(sc.grant(
        input_goods=[{"cn": USED_TYRES, "description": "used tyres", "unit": "p/st", "max_qty": 5000},
                     {"cn": TUBES, "description": "inner tubes", "unit": "p/st", "max_qty": 5000}],
        processed_products=[{"cn": RETREADED, "kind": "MAIN", "unit": "p/st"},
                            {"cn": RECLAIMED, "kind": "SECONDARY", "unit": "kg"},
                            {"cn": RUBBER_WASTE, "kind": "WASTE", "unit": "kg"}],
        yield_rates=[{"input_cn": USED_TYRES, "output_cn": RETREADED, "output_per_input": 1},
                     {"input_cn": USED_TYRES, "output_cn": RECLAIMED, "output_per_input": 2.5},
                     {"input_cn": TUBES, "output_cn": RECLAIMED, "output_per_input": 0.5}]))
    sc.accepted(sc.place("L1", 1000, mrn_=valid_mrn(1)))
    return sc


def remaining(s: Scenario, as_of) -> list[tuple[str, str, int]]:
    bill = s.query("GetBillOfDischargeData", AUTH_ID, None, iso(as_of))
    return [(r["goods"], r["id"], r["quantity"]) for r in bill["remaining"]]


# ---------------------------------------------------------------------------------------- what was measured on main

def test_an_operation_without_its_main_product_is_refused_and_the_lot_stays(s):
    """Measured on main: 500 tyres consumed, 1 kg of reclaimed rubber reported (2.5 kg per tyre are
    authorised) and no retreaded tyre; committed, and the bill said conservation holds."""
    details = s.refused("YieldOutOfTolerance", s.process, "OP1", [("L1", 500)], [secondary(1, "S1")])
    assert details["output_cn"] == RETREADED and details["output_qty"] == 0 and details["expected_output"] == "500"
    assert details["deviation_pct"] == "100"
    assert s.lot("L1")["balance"] == 1000 and s.lot("L1")["status"] == "OPEN"
    assert remaining(s, s.ledger.now) == [("LOT", "L1", 1000)]


def test_a_secondary_product_far_below_its_rate_is_recorded_with_a_deviation_alert(s):
    """The specification: "every main output within the rate of yield ± yield_block_pct (secondary outputs and
    waste: recorded, no block)". A by-product reported short (or not at all, counted as 0) is accepted, and its
    deviation is a YieldDeviation alert in front of customs — not silently gone."""
    res = s.accepted(s.process("OP1", [("L1", 500)], [retreaded(500, "B1"), secondary(1, "S1")]))
    (line,) = [y for y in res["operation"]["yield"] if y["output_cn"] == RECLAIMED]
    assert (line["kind"], line["expected_output"], line["actual_per_input"], line["warning"]) == \
        ("SECONDARY", "1250", "0.002", True)
    res = s.accepted(s.process("OP2", [("L1", 100)], [retreaded(100, "B2")]))                   # none reported
    (line,) = [y for y in res["operation"]["yield"] if y["output_cn"] == RECLAIMED]
    assert (line["output_qty"], line["deviation_pct"], line["warning"]) == (0, "100", True)
    alerts = {a["subject"]: a["details"]["deviation_pct"] for a in s.query("GetAlerts", AUTH_ID)["alerts"]
              if a["type"] == "YieldDeviation"}
    assert alerts == {f"OP1/{RECLAIMED}": "99.92", f"OP2/{RECLAIMED}": "100"}


# ---------------------------------------------------------------------------------------- the whole operation

def test_every_main_product_within_tolerance_both_ways_and_every_rated_product_measured(s):
    s.refused("YieldOutOfTolerance", s.process, "OP1", [("L1", 500)], [retreaded(511), secondary(1250)])  # +2.2 %
    s.refused("YieldOutOfTolerance", s.process, "OP1", [("L1", 500)], [retreaded(489), secondary(1250)])  # -2.2 %
    res = s.accepted(s.process("OP1", [("L1", 500)], [retreaded(500, "B1"), secondary(1240, "S1"), waste(30, "W1")]))
    lines = {y["output_cn"]: y for y in res["operation"]["yield"]}
    assert list(lines) == [RETREADED, RECLAIMED]     # main products first; waste has no rate: not checked
    assert lines[RECLAIMED] == {
        "output_cn": RECLAIMED, "kind": "SECONDARY", "unit": "kg", "input_qty": 500, "input_unit": "p/st",
        "output_qty": 1240, "expected_output": "1250", "authorised_per_input": "2.5", "actual_per_input": "2.48",
        "deviation_pct": "0.8", "warn_pct": "0.5", "block_pct": "2", "warning": True}
    assert lines[RETREADED]["warning"] is False
    alerts = [a for a in s.query("GetAlerts", AUTH_ID)["alerts"] if a["type"] == "YieldDeviation"]
    assert [(a["subject"], a["details"]["deviation_pct"]) for a in alerts] == [(f"OP1/{RECLAIMED}", "0.8")]


def test_inputs_of_several_codes_add_up_per_product(s):
    s.accepted(s.place("T1", 400, cn=TUBES, mrn_=valid_mrn(2)))
    # tyres 100 → 100 retreaded and 250 kg; tubes 400 → 200 kg: 450 kg of reclaimed rubber expected
    res = s.accepted(s.process("OP1", [("L1", 100), ("T1", 400)], [retreaded(100, "B1"), secondary(450, "S1")]))
    (line,) = [y for y in res["operation"]["yield"] if y["output_cn"] == RECLAIMED]
    assert (line["input_qty"], line["expected_output"], line["authorised_per_input"]) == (500, "450", "0.9")
    assert line["warning"] is False
    # with tubes among the inputs, reclaimed rubber is all that accounts for them: checked like a main product
    s.accepted(s.place("T2", 100, cn=TUBES, mrn_=valid_mrn(3)))
    details = s.refused("YieldOutOfTolerance", s.process, "OP2", [("L1", 100), ("T2", 100)],
                        [retreaded(100, "B2"), secondary(250, "S2")])
    assert (details["output_cn"], details["expected_output"], details["deviation_pct"]) == (RECLAIMED, "300", "16.6667")


def test_an_input_the_operation_uses_without_a_main_product_is_fine_when_no_rate_asks_for_one(s):
    s.accepted(s.place("T1", 400, cn=TUBES, mrn_=valid_mrn(2)))
    s.accepted(s.process("OP1", [("T1", 300)], [secondary(150, "S1")]))   # tubes give only reclaimed rubber
    s.refused("GoodsNotCovered", s.process, "OP2", [("T1", 10)], [retreaded(10), secondary(5)])  # no rate to it


def test_an_input_with_no_main_product_is_accounted_for_by_its_secondary_ones_within_tolerance(s):
    """Inner tubes give only reclaimed rubber (0.5 kg each): no main product checks what became of them, so
    that by-product does — 400 tubes consumed into 1 kg (200 expected) would leave the procedure without a
    trace. Refused outside yield_block_pct; with the tyres' main product beside it, the same by-product is an
    alert only."""
    s.accepted(s.place("T1", 400, cn=TUBES, mrn_=valid_mrn(2)))
    details = s.refused("YieldOutOfTolerance", s.process, "OP1", [("T1", 400)], [secondary(1, "S1")])
    assert (details["output_cn"], details["expected_output"], details["output_qty"]) == (RECLAIMED, "200", 1)
    assert s.lot("T1")["balance"] == 400
    res = s.accepted(s.process("OP1", [("T1", 400)], [secondary(196, "S1")]))          # -2 %: within
    assert [y["warning"] for y in res["operation"]["yield"]] == [True]


def test_a_secondary_product_rated_only_from_other_goods_cannot_come_out_of_these():
    """Reclaimed rubber has a rate from inner tubes only: reported from used tyres it would be goods of
    the procedure made from nothing the rates account for."""
    sc = Scenario(InwardProcessingContract)
    sc.accepted(sc.grant(
        input_goods=[{"cn": USED_TYRES, "description": "used tyres", "unit": "p/st", "max_qty": 5000},
                     {"cn": TUBES, "description": "inner tubes", "unit": "p/st", "max_qty": 5000}],
        processed_products=[{"cn": RETREADED, "kind": "MAIN", "unit": "p/st"},
                            {"cn": RECLAIMED, "kind": "SECONDARY", "unit": "kg"}],
        yield_rates=[{"input_cn": USED_TYRES, "output_cn": RETREADED, "output_per_input": 1},
                     {"input_cn": TUBES, "output_cn": RECLAIMED, "output_per_input": 0.5}]))
    sc.accepted(sc.place("L1", 1000, mrn_=valid_mrn(1)))
    details = sc.refused("GoodsNotCovered", sc.process, "OP1", [("L1", 100)], [retreaded(100), secondary(5000)])
    assert details == {"output_cn": RECLAIMED, "input_cns": [USED_TYRES]}
    sc.accepted(sc.process("OP1", [("L1", 100)], [retreaded(100)]))


def test_an_input_without_any_rate_of_yield_cannot_be_consumed(s):
    s.accepted(s.submit("AmendAuthorisation", {"authorisation_id": AUTH_ID, **{
        k: v for k, v in s.query("GetAuthorisation", AUTH_ID).items() if k in (
            "holder_eori", "supervising_office", "valid_from", "valid_to", "sites", "processed_products",
            "yield_warn_pct", "yield_block_pct", "discharge_period_days", "broker_mandates")},
        "input_goods": [{"cn": USED_TYRES, "description": "t", "unit": "p/st", "max_qty": 5000},
                        {"cn": "4011", "description": "new tyres", "unit": "p/st", "max_qty": 100}],
        "yield_rates": [{"input_cn": USED_TYRES, "output_cn": RETREADED, "output_per_input": 1}]}, "CustomsMSP"))
    s.accepted(s.place("N1", 10, cn="40111000", mrn_=valid_mrn(3)))
    details = s.refused("GoodsNotCovered", s.process, "OP1", [("N1", 10)], [waste(5)])
    assert details == {"lot_id": "N1", "input_cn": "40111000"}


# ---------------------------------------------------------------------------------------- waste stays under the procedure

def test_waste_keeps_its_lot_open_until_it_leaves(s):
    s.accepted(s.process("OP1", [("L1", 1000)], [retreaded(1000, "B1"), secondary(2500, "S1"), waste(50, "W1")]))
    s.accepted(s.exit(1000, batch_id="B1", mrn_=valid_mrn(10, "A")))
    s.accepted(s.exit(2500, batch_id="S1", procedure="4051", mrn_=valid_mrn(11, "A")))
    lot = s.lot("L1")
    assert lot["balance"] == 0 and lot["status"] == "OPEN"           # W1 came from it and is still here
    balances = {(b["category"], b["cn"]): b["stock"] for b in s.query("GetBalances", AUTH_ID)["balances"]}
    assert balances[("PRODUCT", RUBBER_WASTE)] == 50
    alerts = s.query("GetAlerts", AUTH_ID, iso(s.D(175)))["alerts"]
    assert [(a["type"], a["subject"]) for a in alerts if a["type"].startswith("Deadline")] == [
        ("DeadlineApproaching", "BATCH:W1")]
    assert remaining(s, s.ledger.now) == [("BATCH", "W1", 50)]
    s.accepted(s.lose(20, batch_id="W1", reason="DESTROYED"))
    assert s.lot("L1")["status"] == "OPEN"
    s.accepted(s.exit(30, batch_id="W1", procedure="4051", mrn_=valid_mrn(12, "A")))
    assert s.lot("L1")["status"] == "DISCHARGED" and remaining(s, s.ledger.now) == []
    s.refused("InvalidState", s.submit, "ExtendDischargePeriod", {
        "authorisation_id": AUTH_ID, "lot_ids": ["L1"], "new_deadline": iso(s.D(300))}, "CustomsMSP")


def test_a_lot_whose_only_remainder_is_waste_can_be_extended(s):
    s.accepted(s.process("OP1", [("L1", 1000)], [retreaded(1000, "B1"), secondary(2500, "S1"), waste(50, "W1")]))
    s.accepted(s.exit(1000, batch_id="B1", mrn_=valid_mrn(10, "A")))
    s.accepted(s.exit(2500, batch_id="S1", mrn_=valid_mrn(11, "A")))
    res = s.accepted(s.submit("ExtendDischargePeriod", {"authorisation_id": AUTH_ID, "lot_ids": ["L1"],
                                                        "new_deadline": iso(s.D(300))}, "CustomsMSP"))
    assert "W1" in res["batches"]


# ---------------------------------------------------------------------------------------- the input goods of a disposal

def test_every_disposal_states_the_input_goods_it_stands_for(s):
    s.wait_until(s.D(0.1))
    s.accepted(s.place("L2", 1000, mrn_=valid_mrn(2)))
    s.accepted(s.process("OP1", [("L1", 500)], [retreaded(495, "B1"), secondary(1250, "S1"), waste(1200, "W1")]))
    s.accepted(s.process("OP2", [("L2", 100), ("L1", 100)], [retreaded(196, "B2"), secondary(500, "S2")]))
    res = s.accepted(s.exit(200, batch_id="B1", procedure="4051", mrn_=valid_mrn(20, "A")))
    # 200 × 500 / 495 = 202.02: a release for free circulation states 203 (duty is due on its input goods)
    assert res["exit"]["attribution"] == [{"lot_id": "L1", "qty": 200, "input_qty": 203}]
    s.accepted(s.exit(295, batch_id="B1", procedure="3151", mrn_=valid_mrn(21, "A")))      # the rest: 297
    s.accepted(s.exit(150, batch_id="B2", procedure="4051", mrn_=valid_mrn(22, "A")))      # L1 first (FIFO)
    s.accepted(s.exit(600, batch_id="W1", procedure="4051", mrn_=valid_mrn(23, "A")))
    s.accepted(s.lose(100, lot_id="L1", reason="DESTROYED"))
    s.accepted(s.lose(5, batch_id="S2", reason="DESTROYED"))
    bill = s.query("GetBillOfDischargeData", AUTH_ID, None, iso(s.ledger.now))
    lines = [(d["procedure"], d["id"], d["quantity"], [(i["lot_id"], i["cn"], i["unit"], i["quantity"])
                                                       for i in d["input_goods"]]) for d in bill["disposals"]]
    assert lines == [
        ("4051", "B1", 200, [("L1", USED_TYRES, "p/st", 203)]),
        ("3151", "B1", 295, [("L1", USED_TYRES, "p/st", 297)]),                  # 203 + 297 = the 500 consumed
        ("4051", "B2", 150, [("L1", USED_TYRES, "p/st", 100), ("L2", USED_TYRES, "p/st", 54)]),  # 98 + 52 of 98
        ("4051", "W1", 600, [("L1", USED_TYRES, "p/st", 250)]),                  # 600 of 1200 kg from 500 tyres
    ]
    losses = [(x["id"], x["quantity"], [(i["lot_id"], i["quantity"]) for i in x["input_goods"]])
              for x in bill["losses"]]
    assert losses == [("L1", 100, [("L1", 100)]), ("S2", 5, [("L1", 2)])]      # S2: 250 kg of it from 100 tyres of L1
    products = {p["batch_id"]: p for p in bill["lots"][0]["products"]}
    assert products["B1"] == {"batch_id": "B1", "cn": RETREADED, "kind": "MAIN", "unit": "p/st", "quantity": 495,
                              "input_qty": 500}
    assert bill["proof"]["conservation_holds"] is True


# ---------------------------------------------------------------------------------------- zero shares

def _input_goods_by_lot(bill: dict, batch_id: str) -> dict[str, int]:
    """Σ input goods over every disposal and loss of a batch, per source lot."""
    total: dict[str, int] = {}
    for line in bill["disposals"] + bill["losses"]:
        if line["id"] == batch_id:
            for g in line["input_goods"]:
                total[g["lot_id"]] = total.get(g["lot_id"], 0) + g["quantity"]
    return total


def test_a_lot_with_a_zero_share_stays_open_until_the_batch_leaves(s):
    """1 kg of waste from two lots: L2's share of it is 0 kg. L2 is still under the procedure through
    that waste (its 100 tyres are among the inputs the kilo stands for); it is discharged with the
    disposal that takes the waste's last units, which states L2's input goods."""
    s.wait_until(s.D(0.1))
    s.accepted(s.place("L2", 1000, mrn_=valid_mrn(2)))
    s.accepted(s.process("OP1", [("L1", 100), ("L2", 100)],
                         [retreaded(200, "B1"), secondary(500, "S1"), waste(1, "W1")]))
    assert [(sh["lot_id"], sh["qty"], sh["input_qty"]) for sh in s.batch("W1")["shares"]] == [
        ("L1", 1, 100), ("L2", 0, 100)]
    s.accepted(s.exit(200, batch_id="B1", mrn_=valid_mrn(10, "A")))
    s.accepted(s.exit(500, batch_id="S1", procedure="4051", mrn_=valid_mrn(11, "A")))
    s.accepted(s.lose(900, lot_id="L2", reason="DESTROYED"))
    lot = s.lot("L2")
    assert lot["balance"] == 0 and lot["status"] == "OPEN"          # W1 is made from it and still here
    s.accepted(s.submit("ExtendDischargePeriod", {"authorisation_id": AUTH_ID, "lot_ids": ["L2"],
                                                  "new_deadline": iso(s.D(300))}, "CustomsMSP"))
    res = s.accepted(s.exit(1, batch_id="W1", procedure="4051", mrn_=valid_mrn(12, "A")))
    assert res["exit"]["attribution"] == [{"lot_id": "L1", "qty": 1, "input_qty": 100},
                                          {"lot_id": "L2", "qty": 0, "input_qty": 100}]
    assert s.lot("L2")["status"] == "DISCHARGED"
    assert [e["event_type"] for e in s.query("GetLotHistory", "L2")["history"]][-1] == "ExitGoods"
    bill = s.query("GetBillOfDischargeData", AUTH_ID, None, iso(s.ledger.now))
    (line,) = [d for d in bill["disposals"] if d["id"] == "W1"]
    assert [(g["lot_id"], g["quantity"]) for g in line["input_goods"]] == [("L1", 100), ("L2", 100)]
    for batch_id in ("B1", "S1", "W1"):
        assert _input_goods_by_lot(bill, batch_id) == {"L1": 100, "L2": 100}, batch_id
    assert bill["proof"]["conservation_holds"] is True


def test_a_zero_share_between_two_lots_goes_with_the_disposal_that_reaches_it(s):
    """Shares in placement order L1 1, L2 0, L3 1: FIFO takes L1's unit first; L2's zero share is
    reached by the disposal that goes on into L3's."""
    s.wait_until(s.D(0.1))
    s.accepted(s.place("L2", 10, mrn_=valid_mrn(2)))
    s.wait_until(s.D(0.2))
    s.accepted(s.place("L3", 1000, mrn_=valid_mrn(3)))
    s.accepted(s.process("OP1", [("L1", 1), ("L2", 1), ("L3", 100)],
                         [retreaded(102, "B1"), secondary(255, "S1"), waste(2, "W1")]))
    assert [(sh["lot_id"], sh["qty"]) for sh in s.batch("W1")["shares"]] == [("L1", 1), ("L2", 0), ("L3", 1)]
    s.accepted(s.exit(102, batch_id="B1", mrn_=valid_mrn(10, "A")))
    s.accepted(s.exit(255, batch_id="S1", mrn_=valid_mrn(11, "A")))
    s.accepted(s.lose(9, lot_id="L2", reason="DESTROYED"))
    # a release before the zero share's point states its part of that input ahead (half of L2's 1, rounded up)
    first = s.accepted(s.exit(1, batch_id="W1", procedure="4051", mrn_=valid_mrn(12, "A")))
    assert first["exit"]["attribution"] == [{"lot_id": "L1", "qty": 1, "input_qty": 1},
                                            {"lot_id": "L2", "qty": 0, "input_qty": 1, "ahead": True}]
    assert s.lot("L2")["status"] == "OPEN"                   # its point is not reached yet
    last = s.accepted(s.lose(1, batch_id="W1", reason="DESTROYED"))
    assert last["loss"]["attribution"] == [{"lot_id": "L2", "qty": 0, "input_qty": 0},
                                           {"lot_id": "L3", "qty": 1, "input_qty": 100}]
    assert s.lot("L2")["status"] == "DISCHARGED"
    bill = s.query("GetBillOfDischargeData", AUTH_ID, None, iso(s.ledger.now))
    assert _input_goods_by_lot(bill, "W1") == {"L1": 1, "L2": 1, "L3": 100}
