"""Processing operations and the rate of yield (UCC art. 255, 256).

One ``RecordProcessing`` event consumes lots at one site and produces batches
of processed products there. Every main processed product must come out
within the authorised rate of yield ± ``yield_block_pct``; beyond
``yield_warn_pct`` the operation is accepted with a ``YieldDeviation`` alert.
Secondary products and waste are recorded (and traced to their lots) without
a yield check.
"""
from __future__ import annotations

from fractions import Fraction

from . import alerts, authorisations, goods, keys, timing
from .errors import AlreadyExists, GoodsNotCovered, UnitMismatch, YieldOutOfTolerance
from .placement import require_not_overdue


def _ratio(value: Fraction) -> float:
    return round(float(value), 6)


def check_yield(auth: dict, params: dict, inputs: list[tuple[dict, int]], output_cn: str,
                output_qty: int) -> dict:
    """The yield of one main product against the authorised rate(s).

    expected output = Σ over the input lots with a rate to this product of qty × output_per_input;
    deviation = |actual / expected − 1|. YieldOutOfTolerance above ``yield_block_pct``.
    """
    contributing = []
    for lot, qty in inputs:
        rate = authorisations.rate_of_yield(auth, lot["cn"], output_cn)
        if rate is not None:
            contributing.append((lot, qty, rate))
    if not contributing:
        raise GoodsNotCovered(f"no rate of yield authorises {output_cn} from these inputs",
                              output_cn=output_cn, input_cns=sorted({lot["cn"] for lot, _ in inputs}))
    units = sorted({lot["unit"] for lot, _, _ in contributing})
    if len(units) > 1:
        raise UnitMismatch(f"inputs of {output_cn} are counted in different units", units=units)
    input_qty = sum(q for _, q, _ in contributing)
    expected = sum((q * rate for _, q, rate in contributing), Fraction(0))
    deviation = abs(Fraction(output_qty) / expected - 1) * 100
    warn_pct, block_pct = authorisations.tolerances(auth, params)
    result = {
        "output_cn": output_cn, "input_qty": input_qty, "input_unit": units[0], "output_qty": output_qty,
        "authorised_per_input": _ratio(expected / input_qty), "actual_per_input": _ratio(Fraction(output_qty, input_qty)),
        "expected_output": _ratio(expected), "deviation_pct": _ratio(deviation),
        "warn_pct": _ratio(warn_pct), "block_pct": _ratio(block_pct), "warning": deviation > warn_pct,
    }
    if deviation > block_pct:
        raise YieldOutOfTolerance(f"yield of {output_cn} deviates {result['deviation_pct']} % from the authorised "
                                  f"rate (limit {result['block_pct']} %)", **result)
    return result


def record_processing(tx, event: dict) -> dict:
    """RecordProcessing: inputs ≤ stock at the site; output CN codes authorised; every main output
    within the rate of yield ± ``yield_block_pct``. Refused on a suspended, revoked or expired
    authorisation, and for overdue lots (DeadlinePassed)."""
    auth = authorisations.get(tx.state, event["authorisation_id"])
    authorisations.require_in_force(auth, tx.now)
    op_id, site = event["operation_id"], event["site"]
    if tx.state.exists(keys.operation(op_id)):
        raise AlreadyExists(f"processing operation {op_id} exists", operation_id=op_id)
    authorisations.require_site(auth, site)

    # inputs: the lots consumed, in placement order (FIFO for the lineage shares)
    needed: dict[str, int] = {}
    lots: dict[str, dict] = {}
    for item in event["inputs"]:
        lot = lots.get(item["lot_id"]) or goods.load(tx, goods.LOT, item["lot_id"], auth["authorisation_id"])
        goods.require_unit(lot, item.get("unit"), item["lot_id"])
        timing.not_before_goods(tx.occurred_at, lot, goods.LOT, item["lot_id"])
        require_not_overdue(tx, lot, goods.LOT, item["lot_id"])
        lots[item["lot_id"]] = lot
        needed[item["lot_id"]] = needed.get(item["lot_id"], 0) + item["qty"]
    for lot_id, qty in needed.items():
        goods.take_from_sites(lots[lot_id], qty, site, goods.LOT, lot_id)
    inputs = sorted(((lots[i], q) for i, q in needed.items()), key=lambda lq: goods.placement_order(lq[0]))

    # outputs: authorised products, in their authorised unit and kind
    batches, main_qty = [], {}
    for n, out in enumerate(event["outputs"], start=1):
        product = authorisations.product(auth, out["cn"])
        if product is None:
            raise GoodsNotCovered(f"processed product {out['cn']} is not authorised", cn=out["cn"])
        if product["kind"] != out["kind"]:
            raise GoodsNotCovered(f"{out['cn']} is authorised as {product['kind']}, not {out['kind']}",
                                  cn=out["cn"], kind=product["kind"], given=out["kind"])
        if out["unit"] != product["unit"]:
            raise UnitMismatch(f"{out['cn']} is authorised in {product['unit']}, not {out['unit']}",
                               cn=out["cn"], unit=product["unit"], given=out["unit"])
        batch_id = out.get("batch_id") or f"{op_id}/{n}"
        if tx.state.exists(keys.batch(batch_id)) or any(b["batch_id"] == batch_id for b in batches):
            raise AlreadyExists(f"batch {batch_id} exists", batch_id=batch_id)
        if out["kind"] == "MAIN":
            main_qty[out["cn"]] = main_qty.get(out["cn"], 0) + out["qty"]
        batches.append({**out, "batch_id": batch_id})

    yields = [check_yield(auth, tx.params, inputs, cn, qty) for cn, qty in sorted(main_qty.items())]

    # record: consumption, then one batch per output traced to its lots
    for lot, qty in inputs:
        goods.post(tx, {"op": "consume", "lot_id": lot["lot_id"], "qty": qty, "site": site, "operation_id": op_id})
    deadline = goods.earliest_deadline(lot for lot, _ in inputs)
    for out in batches:
        goods.post(tx, {"op": "produce", "batch": {
            "batch_id": out["batch_id"], "authorisation_id": auth["authorisation_id"], "operation_id": op_id,
            "cn": out["cn"], "kind": out["kind"], "unit": out["unit"], "produced": out["qty"], "site": site,
            "accepted_at": tx.recorded_at, "occurred_at": event["occurred_at"], "tx_id": tx.tx_id,
            "source_lots": [{"lot_id": lot["lot_id"], "qty": q} for lot, q in inputs],
            "shares": goods.shares_of(out["qty"], inputs), "deadline": deadline,
            "stock": {site: out["qty"]}, "exited": {}, "lost": 0, "lost_by_reason": {},
        }})
    operation = {"operation_id": op_id, "authorisation_id": auth["authorisation_id"], "site": site,
                 "inputs": [{"lot_id": lot["lot_id"], "qty": q, "unit": lot["unit"]} for lot, q in inputs],
                 "outputs": [{"batch_id": b["batch_id"], "cn": b["cn"], "kind": b["kind"], "qty": b["qty"],
                              "unit": b["unit"]} for b in batches],
                 "yield": yields, "recorded_at": tx.recorded_at, "occurred_at": event["occurred_at"],
                 "tx_id": tx.tx_id}
    tx.state.put(keys.operation(op_id), operation)
    for y in yields:
        if y["warning"]:
            alerts.raise_alert(tx, auth["authorisation_id"], "YieldDeviation", f"{op_id}/{y['output_cn']}",
                               {"operation_id": op_id, **{k: y[k] for k in (
                                   "output_cn", "authorised_per_input", "actual_per_input", "deviation_pct",
                                   "warn_pct")}})
    return {"operation": operation}
