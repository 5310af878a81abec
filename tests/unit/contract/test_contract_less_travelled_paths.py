"""The contract's less-travelled paths: multi-stage processing, losses and exits of batches, every procedure code,
extensions, controls, amendments and revocation, the schema's limits.

Multi-stage processing (a batch as the input of a further operation), losses and exits of batches (``DESTROYED``
counted as a discharge, waste, partial disposals, a lot consumed in several operations at several sites), exits
under every procedure code and their confirmation, extensions of lots and of the batches made from them,
controls, amendments and revocation while goods are under the procedure, and arithmetic at the schema's edges.
Each test states the rule of the domain specification it checks; a refusal leaves the ledger unchanged
(``Scenario.refused``). No defect was found on these paths: the tests stand as regression tests of them."""
from __future__ import annotations

import datetime as dt

import pytest

from ipledger.chaincode.contract import InwardProcessingContract
from ipledger.chaincode.testing.scenario import (AUTH_ID, PLACE_MRN_L1, RETREADED, SITE1, SITE2, USED_TYRES,
                                                 Scenario, authorisation_fields, iso, mrn, retreaded, waste)


def amend(s: Scenario, **changes) -> dict:
    return s.accepted(s.submit("AmendAuthorisation", {"authorisation_id": AUTH_ID,
                                                      **authorisation_fields(s.day, **changes)}, "CustomsMSP"))


def extend(s: Scenario, lot_ids: list[str], new_deadline: dt.datetime):
    return s.submit("ExtendDischargePeriod", {"authorisation_id": AUTH_ID, "lot_ids": lot_ids,
                                              "new_deadline": iso(new_deadline)}, "CustomsMSP")


def confirm(s: Scenario, mrn_: str, day: dt.date | None = None):
    return s.submit("ConfirmExit", {"authorisation_id": AUTH_ID, "mrn": mrn_,
                                    "exit_date": (day or s.ledger.now.date()).isoformat()}, "CustomsMSP")


def control(s: Scenario, site: str, counted: list[dict]):
    return s.submit("RecordControl", {"authorisation_id": AUTH_ID, "site": site, "counted": counted}, "CustomsMSP")


def conserved(s: Scenario, *lots: str, batches: tuple[str, ...] = ()) -> None:
    """docs/domain.md §5: lot placed = Σ stock + consumed + Σ exited + lost; batch produced = Σ stock + Σ exited +
    lost; every term ≥ 0."""
    for lot_id in lots:
        lot = s.lot(lot_id)
        assert all(q >= 0 for q in lot["stock"].values())
        assert lot["placed"] == sum(lot["stock"].values()) + lot["consumed"] + sum(lot["exited"].values()) + lot["lost"]
    for batch_id in batches:
        b = s.batch(batch_id)
        assert all(q >= 0 for q in b["stock"].values())
        assert b["produced"] == sum(b["stock"].values()) + sum(b["exited"].values()) + b["lost"]


# ---------------------------------------------------------------------------------------- multi-stage processing

def test_a_batch_as_the_input_of_a_further_processing_is_refused_by_name(s):
    """§4 RecordProcessing: ``inputs [{lot_id, qty}]`` — a further processing of a batch is not an act of the
    specification; naming one is refused, named, and writes nothing."""
    s.accepted(s.process("OP1", [("L1", 100)], [retreaded(100, "B1")]))
    ev = {"authorisation_id": AUTH_ID, "operation_id": "OP2", "site": SITE1,
          "inputs": [{"batch_id": "B1", "qty": 10}], "outputs": [retreaded(10)]}
    s.refused("InvalidEvent", s.submit, "RecordProcessing", ev, "OperatorMSP")
    # a batch id given as a lot id is no lot
    s.refused("NotFound", s.process, "OP2", [("B1", 10)], [retreaded(10)])
    conserved(s, "L1", batches=("B1",))


# ---------------------------------------------------------------------------------------- losses and exits of batches

def test_destroyed_batch_and_waste_discharge_the_lot_and_are_no_loss_rate(s):
    """§4 RecordLoss: ``DESTROYED`` (no waste left) counts as a discharge; §6 LossRateHigh counts losses, not
    destruction. A lot is discharged only when its products — waste included — have gone."""
    s.accepted(s.process("OP1", [("L1", 1000)], [retreaded(990, "B1"), waste(1200, "W1")]))
    s.accepted(s.lose(990, batch_id="B1", reason="DESTROYED"))
    assert s.lot("L1")["status"] == "OPEN"          # the waste is still under the procedure
    s.accepted(s.lose(1200, batch_id="W1", reason="DESTROYED"))
    assert s.lot("L1")["status"] == "DISCHARGED"
    alerts = s.query("GetAlerts", AUTH_ID)
    assert not [a for a in alerts["alerts"] if a["type"] == "LossRateHigh"]
    bill = s.query("GetBillOfDischargeData", AUTH_ID, None, iso(s.ledger.now))
    assert [(l["id"], l["discharge"]) for l in bill["losses"]] == [("B1", True), ("W1", True)]
    assert [g["quantity"] for l in bill["losses"] for g in l["input_goods"]] == [1000, 1000]
    conserved(s, "L1", batches=("B1", "W1"))


def test_partial_disposals_of_a_batch_from_lots_consumed_at_two_sites(s):
    """A lot consumed in several operations at different sites; each batch's partial exits and losses are
    attributed FIFO and together stand for exactly the input of each lot (docs: input_qty)."""
    s.accepted(s.place("L2", 300, site=SITE2))
    s.accepted(s.move(400, SITE1, SITE2, lot_id="L1"))
    s.accepted(s.process("OP1", [("L1", 300)], [retreaded(300, "B1")], site=SITE1))
    s.accepted(s.process("OP2", [("L2", 300), ("L1", 400)], [retreaded(693, "B2"), waste(70, "W2")], site=SITE2))
    b2 = s.batch("B2")
    assert [(sh["lot_id"], sh["qty"], sh["input_qty"]) for sh in b2["shares"]] == [("L1", 396, 400),
                                                                                  ("L2", 297, 300)]
    parts = []
    for qty, proc in ((100, "3151"), (300, "4051"), (3, "LOSS"), (290, "7151")):
        if proc == "LOSS":
            res = s.accepted(s.lose(qty, batch_id="B2", reason="FORCE_MAJEURE"))["loss"]
        else:
            res = s.accepted(s.exit(qty, batch_id="B2", procedure=proc))["exit"]
        parts += res["attribution"]
    assert sum(p["input_qty"] for p in parts if p["lot_id"] == "L1") == 400
    assert sum(p["input_qty"] for p in parts if p["lot_id"] == "L2") == 300
    assert s.lot("L2")["status"] == "OPEN"         # the waste W2 holds both lots
    s.accepted(s.exit(70, batch_id="W2", procedure="3151"))
    assert s.lot("L2")["status"] == "DISCHARGED"
    s.accepted(s.exit(300, batch_id="B1", procedure="5151"))
    s.accepted(s.exit(300, lot_id="L1", procedure="4051"))
    assert s.lot("L1")["status"] == "DISCHARGED"
    conserved(s, "L1", "L2", batches=("B1", "B2", "W2"))


# ---------------------------------------------------------------------------------------- exits and confirmations

@pytest.mark.parametrize("procedure", ["3151", "4051", "7151", "5151"])
def test_exit_under_every_procedure_code_and_its_confirmation(s, procedure):
    """§4 ExitGoods: procedure 3151 | 4051 | 7151 | 5151; ConfirmExit: "the re-export exists" — a re-export
    (3151) is confirmed, and a transfer (5151) received under an authorisation elsewhere (its reception is not on
    this ledger); the confirmation of another kind of exit is refused by name."""
    exit_mrn = mrn("E", 9100 + int(procedure[0]))
    s.accepted(s.exit(100, lot_id="L1", procedure=procedure, mrn_=exit_mrn))
    assert s.lot("L1")["exited"] == {procedure: 100}
    s.wait_until(s.D(1))
    if procedure in ("3151", "5151"):
        s.accepted(confirm(s, exit_mrn))
        s.refused("InvalidState", confirm, s, exit_mrn)
    else:
        s.refused("NotFound", confirm, s, exit_mrn)
    # the declaration cannot discharge again, under any code
    for other in ("3151", "4051", "7151", "5151"):
        s.refused("DuplicateDeclaration", s.exit, 1, lot_id="L1", procedure=other, mrn_=exit_mrn)
    conserved(s, "L1")


def test_confirm_exit_of_a_placement_declaration_is_refused(s):
    """ConfirmExit: "the re-export exists" — a placement's declaration is none."""
    s.refused("NotFound", confirm, s, PLACE_MRN_L1)


# ---------------------------------------------------------------------------------------- extensions

def test_extension_of_lots_reaches_their_batches_and_refuses_what_it_must(s):
    """§4 ExtendDischargePeriod: lot ids, a new deadline; lots open. A batch follows its lots (its deadline is
    the earliest of its source lots'); a batch id is no lot; an earlier date, a discharged lot are refused."""
    s.accepted(s.place("L2", 100))
    s.accepted(s.process("OP1", [("L1", 1000), ("L2", 100)], [retreaded(1100, "B1")]))
    lot_deadline = dt.datetime.fromisoformat(s.lot("L1")["deadline"].replace("Z", "+00:00"))
    new = lot_deadline + dt.timedelta(days=30)
    s.refused("NotFound", extend, s, ["B1"], new)
    s.refused("InvalidEvent", extend, s, ["L1"], lot_deadline - dt.timedelta(days=1))
    s.accepted(extend(s, ["L1"], new))
    # L2 (placed later) still holds B1 to its own deadline, one day ahead: the batch is the earliest
    assert s.batch("B1")["deadline"] == s.lot("L2")["deadline"]
    s.accepted(extend(s, ["L2"], new + dt.timedelta(days=1)))
    assert s.batch("B1")["deadline"] == s.lot("L1")["deadline"] < s.lot("L2")["deadline"]
    s.accepted(s.exit(1100, batch_id="B1"))
    assert s.lot("L1")["status"] == "DISCHARGED"
    s.refused("InvalidState", extend, s, ["L1"], new + dt.timedelta(days=60))
    s.refused("InvalidState", extend, s, ["L2", "L1"], new + dt.timedelta(days=60))


def test_overdue_goods_leave_but_do_nothing_else(s):
    """§4: after a lot's deadline only exits, losses and extensions are accepted for it and for batches made
    from it (DeadlinePassed)."""
    s.accepted(s.process("OP1", [("L1", 500)], [retreaded(500, "B1")]))
    s.wait_until(s.D(181))
    s.refused("DeadlinePassed", s.move, 1, SITE1, SITE2, batch_id="B1")
    s.refused("DeadlinePassed", s.move, 1, SITE1, SITE2, lot_id="L1")
    s.refused("DeadlinePassed", s.process, "OP2", [("L1", 10)], [retreaded(10)])
    s.accepted(s.lose(1, batch_id="B1", reason="DESTROYED"))
    s.accepted(s.exit(499, batch_id="B1", procedure="7151"))
    s.accepted(extend(s, ["L1"], s.D(400)))
    s.accepted(s.move(1, SITE1, SITE2, lot_id="L1"))


# ---------------------------------------------------------------------------------------- controls

def test_controls_count_batches_and_only_this_authorisations_goods(s):
    """§4 RecordControl: counted [{id, qty}]; a difference raises BalanceDiscrepancy; a batch is counted like a
    lot, in its unit; goods of another authorisation are not this authorisation's to count."""
    s.accepted(s.process("OP1", [("L1", 500)], [retreaded(500, "B1"), waste(800, "W1")]))
    res = s.accepted(control(s, SITE1, [{"batch_id": "B1", "qty": 500}, {"batch_id": "W1", "qty": 790, "unit": "kg"},
                                        {"lot_id": "L1", "qty": 500}]))
    assert [line["difference"] for line in res["lines"]] == [0, -10, 0]
    s.refused("UnitMismatch", control, s, SITE1, [{"batch_id": "W1", "qty": 800, "unit": "g"}])
    s.accepted(s.grant("FRIPO000002"))
    s.accepted(s.place("X1", 10, auth_id="FRIPO000002"))
    s.refused("NotFound", control, s, SITE1, [{"lot_id": "X1", "qty": 10}])


# ---------------------------------------------------------------------------------------- amendments and revocation

TRUCK_TYRES, TRUCK_RETREADED = "40122090", "40121300"


def test_amendment_removing_the_input_goods_and_products_of_goods_under_the_procedure(s):
    """Amendments apply forward only: goods already under the procedure keep their deadline and can still be
    discharged; what the amended authorisation no longer covers cannot be placed, processed or produced."""
    s.accepted(s.process("OP1", [("L1", 500)], [retreaded(500, "B1"), waste(600, "W1")]))
    amend(s, input_goods=[{"cn": TRUCK_TYRES, "description": "truck casings", "unit": "p/st", "max_qty": 10}],
          processed_products=[{"cn": TRUCK_RETREADED, "kind": "MAIN", "unit": "p/st"}],
          yield_rates=[{"input_cn": TRUCK_TYRES, "output_cn": TRUCK_RETREADED, "output_per_input": 1}],
          discharge_period_days=30)
    deadline = s.lot("L1")["deadline"]
    s.refused("GoodsNotCovered", s.process, "OP2", [("L1", 10)], [retreaded(10)])
    s.refused("GoodsNotCovered", s.place, "L9", 1)
    balances = s.query("GetBalances", AUTH_ID)
    assert [(c["cn"], c["quantity"]) for c in balances["ceilings"]] == [(TRUCK_TYRES, 0)]
    s.accepted(s.move(100, SITE1, SITE2, lot_id="L1"))
    s.accepted(s.exit(500, batch_id="B1"))
    s.accepted(s.lose(600, batch_id="W1", reason="DESTROYED"))
    s.accepted(s.exit(500, lot_id="L1", procedure="4051"))
    assert s.lot("L1")["deadline"] == deadline and s.lot("L1")["status"] == "DISCHARGED"


def test_amendment_shrinking_a_ceiling_below_what_is_under_the_procedure(s):
    s.accepted(s.place("L2", 3000))
    amend(s, input_goods=[{"cn": USED_TYRES, "description": "used tyres", "unit": "p/st", "max_qty": 2000}])
    ceiling = s.query("GetBalances", AUTH_ID)["ceilings"][0]
    assert (ceiling["quantity"], ceiling["max_qty"], ceiling["pct"]) == (4000, 2000, "200")
    s.refused("CeilingExceeded", s.place, "L3", 1)
    assert [a["details"]["quantity"] for a in s.query("GetAlerts", AUTH_ID)["alerts"] if a["type"] == "CeilingNear"] \
        == [4000]
    s.accepted(s.exit(2001, lot_id="L2"))
    s.refused("CeilingExceeded", s.place, "L3", 2)
    s.accepted(s.place("L3", 1))


def test_revoked_authorisation_with_goods_under_the_procedure(s):
    """§4: a suspended (revoked) authorisation blocks placement and processing, not discharge."""
    s.accepted(s.process("OP1", [("L1", 500)], [retreaded(500, "B1")]))
    s.accepted(s.submit("RevokeAuthorisation", {"authorisation_id": AUTH_ID, "reason": "fraud"}, "CustomsMSP"))
    s.refused("AuthorisationNotActive", s.process, "OP2", [("L1", 10)], [retreaded(10)])
    s.refused("AuthorisationNotActive", s.place, "L2", 1)
    s.accepted(s.exit(400, batch_id="B1", procedure="4051"))
    s.accepted(s.lose(100, batch_id="B1", reason="DESTROYED"))
    s.accepted(extend(s, ["L1"], s.D(400)))
    s.accepted(control(s, SITE1, [{"lot_id": "L1", "qty": 500}]))
    s.accepted(s.exit(500, lot_id="L1", procedure="4051"))
    assert s.lot("L1")["status"] == "DISCHARGED"
    conserved(s, "L1", batches=("B1",))


# ---------------------------------------------------------------------------------------- arithmetic edges

def test_quantities_at_the_schemas_limit_and_beyond():
    """Quantities are integers up to 10^15 (the schema's maximum); more, a fraction or zero is InvalidEvent."""
    big = 10 ** 15
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant(input_goods=[{"cn": USED_TYRES, "description": "t", "unit": "p/st", "max_qty": big}]))
    s.accepted(s.place("L1", big, net_mass_g=big))
    s.refused("CeilingExceeded", s.place, "L2", 1)
    for bad in (big + 1, 0, -1, 1.5):
        s.refused("InvalidEvent", s.exit, bad, lot_id="L1")
    s.accepted(s.process("OP1", [("L1", big)], [retreaded(big - big // 100 + 1, "B1"), waste(big, "W1")]))
    assert s.batch("B1")["shares"][0]["input_qty"] == big
    for _ in range(3):
        s.accepted(s.exit(big // 7, batch_id="B1", procedure="4051"))
    rest = s.batch("B1")["balance"]
    res = s.accepted(s.exit(rest, batch_id="B1"))
    bill = s.query("GetBillOfDischargeData", AUTH_ID, None, iso(s.ledger.now))
    assert sum(g["quantity"] for d in bill["disposals"] if d["id"] == "B1" for g in d["input_goods"]) == big
    assert res["batch"]["status"] == "DISCHARGED"
    conserved(s, "L1", batches=("B1", "W1"))


def test_lots_of_one_code_in_two_units_are_never_added(s):
    """§2b: never add or compare different units (UnitMismatch). An amendment may count a code in another unit
    from then on; the lots of each unit stay apart: processed together they are refused, by name."""
    amend(s, input_goods=[{"cn": USED_TYRES, "description": "used tyres", "unit": "kg", "max_qty": 10 ** 6}])
    s.refused("UnitMismatch", s.place, "L2", 500, unit="p/st")
    s.accepted(s.place("L2", 9000, unit="kg"))
    s.refused("UnitMismatch", s.process, "OP1", [("L1", 10), ("L2", 90)], [retreaded(100)])
    s.refused("UnitMismatch", s.exit, 10, lot_id="L2", unit="p/st")
    balances = {(b["cn"], b["unit"]): b["stock"] for b in s.query("GetBalances", AUTH_ID)["balances"]}
    assert balances == {(USED_TYRES, "p/st"): 1000, (USED_TYRES, "kg"): 9000}


def test_a_processed_product_goes_on_to_further_processing_only_through_a_5151_transfer(s):
    """Multi-stage processing across authorisations: IP after IP (5151) discharges the product from the first
    authorisation (input goods stated, FIFO) and places it under the second, the same goods, once."""
    s.accepted(s.process("OP1", [("L1", 500)], [retreaded(500, "B1")]))
    transfer = mrn("E", 9201)
    s.accepted(s.submit("GrantAuthorisation", {"authorisation_id": "FRIPO000002", **authorisation_fields(
        s.day, input_goods=[{"cn": RETREADED, "description": "retreaded", "unit": "p/st", "max_qty": 1000}],
        processed_products=[{"cn": "40121300", "kind": "MAIN", "unit": "p/st"}],
        yield_rates=[{"input_cn": RETREADED, "output_cn": "40121300", "output_per_input": 1}])}, "CustomsMSP"))
    out = s.accepted(s.exit(200, batch_id="B1", procedure="5151", mrn_=transfer))["exit"]
    assert out["attribution"] == [{"lot_id": "L1", "qty": 200, "input_qty": 200}]
    s.refused("TransferMismatch", s.place, "M1", 201, cn=RETREADED, procedure="5151", mrn_=transfer,
              auth_id="FRIPO000002")
    s.accepted(s.place("M1", 200, cn=RETREADED, procedure="5151", mrn_=transfer, auth_id="FRIPO000002"))
    s.refused("DuplicateDeclaration", s.place, "M2", 200, cn=RETREADED, procedure="5151", mrn_=transfer,
              auth_id="FRIPO000002")
    assert s.batch("B1")["exited"] == {"5151": 200} and s.lot("M1")["placed"] == 200
    conserved(s, "L1", "M1", batches=("B1",))
