"""Processing operations and the rate of yield (UCC art. 255, 256).

One ``RecordProcessing`` event consumes lots at one site and produces batches of processed products
there. The rate of yield fixes how much of each processed product the consumed goods give, so the
operation is checked as a whole, against every authorised rate from the goods it consumes:

* every consumed input needs a rate of yield (GoodsNotCovered): goods consumed into nothing the
  authorisation names would leave the procedure without a trace;
* a main product needs a rate from the inputs, and so does a secondary product the authorisation gives
  a rate from other goods (GoodsNotCovered): it cannot come out of these unchecked;
* every main product comes out within its expected quantity ± ``yield_block_pct`` (YieldOutOfTolerance),
  expected = Σ input × ``output_per_input``; a main product the rates expect and the operation does not
  report counts as 0, so inputs cannot be consumed into a mere trace of a by-product;
* a secondary product (or waste) with a rate from the inputs is recorded without a block, as the
  specification has it, but measured like a main product: beyond ``yield_warn_pct`` — main or secondary,
  an unreported one counting as 0 — the operation is accepted with a ``YieldDeviation`` alert, so a
  by-product reported short is in front of customs, not silently gone — except where it is all that accounts
  for an input: an input with no rate to a main product (inner tubes that give only reclaimed rubber) is
  checked by the products it is rated to, within ``yield_block_pct`` like a main product;
* waste, and secondary products without any rate, are recorded without a check.

Every product — waste included — stays under the procedure, traced to its lots, until it leaves it
(``discharge.py``).
"""
from __future__ import annotations

from fractions import Fraction

from ipledger.chaincode.contract import alerts, authorisations, controls, goods, keys, schemas, shares, time_rules
from ipledger.chaincode.contract.decimals import PCT_PLACES, exact, text, text_beside
from ipledger.chaincode.contract.errors import (AlreadyExists, ChaincodeError, GoodsNotCovered, InvalidEvent,
                                                UnitMismatch, YieldOutOfTolerance)
from ipledger.chaincode.contract.placement import require_not_overdue

KIND_ORDER = ("MAIN", "SECONDARY", "WASTE")


def check_yield(auth: dict, params: dict, inputs: list[tuple[dict, int]], outputs: list[dict]) -> list[dict]:
    """The yield of the whole operation: one line per product that the inputs have a rate for, main
    products first, each kind in CN order. Refuses (before anything is written) an input without a rate, a main
    product without one, and a main product — or a product that alone accounts for an input with no main
    product — outside its rate ± ``yield_block_pct`` (the others' deviations are alerts)."""
    expected_from: dict[str, list[tuple[dict, int, Fraction]]] = {}   # product CN -> [(lot, qty, rate)]
    accounting: set[str] = set()   # products that alone account for an input: it has no rate to a main product
    for lot, qty in inputs:
        rates = authorisations.rates_for_input(auth, lot["cn"])
        if not rates:
            raise GoodsNotCovered(f"no rate of yield for the input goods {lot['cn']} of {lot['lot_id']}: what "
                                  f"they become could not be accounted for", lot_id=lot["lot_id"], input_cn=lot["cn"])
        authorisations.require_rate_unit(auth, lot)
        outputs_of_input = [rate["output_cn"] for rate in rates]
        if all(authorisations.product(auth, cn)["kind"] != "MAIN" for cn in outputs_of_input):
            accounting.update(outputs_of_input)
        for rate in rates:
            expected_from.setdefault(rate["output_cn"], []).append((lot, qty, exact(rate["output_per_input"])))
    rated = {rate["output_cn"] for rate in auth["yield_rates"]}
    for out in outputs:
        if out["cn"] not in expected_from and (out["kind"] == "MAIN" or out["cn"] in rated):
            raise GoodsNotCovered(f"no rate of yield authorises {out['cn']} from these inputs",
                                  output_cn=out["cn"], input_cns=sorted({lot["cn"] for lot, _ in inputs}))
    warn_pct, block_pct = authorisations.tolerances(auth, params)
    lines = []
    for cn in sorted(expected_from, key=lambda c: (KIND_ORDER.index(authorisations.product(auth, c)["kind"]), c)):
        product = authorisations.product(auth, cn)
        produced = sum(out["qty"] for out in outputs if out["cn"] == cn)
        line, deviation = _yield_line(product, expected_from[cn], produced, warn_pct, block_pct)
        if deviation > block_pct and (product["kind"] == "MAIN" or cn in accounting):
            raise YieldOutOfTolerance(
                f"{cn}: {produced} {product['unit']} obtained, {line['expected_output']} expected from the rate of "
                f"yield: {line['deviation_pct']} % off (limit {line['block_pct']} %)", **line)
        lines.append(line)
    return lines


def _yield_line(product: dict, contributing: list[tuple[dict, int, Fraction]], produced: int,
                warn_pct: Fraction, block_pct: Fraction) -> tuple[dict, Fraction]:
    """One product's yield: deviation = |produced / expected − 1| in %. Its inputs must share a unit."""
    units = sorted({lot["unit"] for lot, _, _ in contributing})
    if len(units) > 1:
        raise UnitMismatch(f"inputs of {product['cn']} are counted in different units", units=units)
    input_qty = sum(q for _, q, _ in contributing)
    expected = sum((q * rate for _, q, rate in contributing), Fraction(0))
    deviation = abs(Fraction(produced) / expected - 1) * 100
    return {
        "output_cn": product["cn"], "kind": product["kind"], "unit": product["unit"],
        "input_qty": input_qty, "input_unit": units[0], "output_qty": produced, "expected_output": text(expected),
        "authorised_per_input": text(expected / input_qty), "actual_per_input": text(Fraction(produced, input_qty)),
        "deviation_pct": text_beside(deviation, warn_pct, block_pct), "warn_pct": text(warn_pct, PCT_PLACES),
        "block_pct": text(block_pct, PCT_PLACES), "warning": deviation > warn_pct,
    }, deviation


def share_weights(auth: dict, inputs: list[tuple[dict, int]], output_cn: str) -> list[Fraction] | None:
    """How a batch of ``output_cn`` is shared over the lots consumed (``shares.shares_of``): by what each gives of
    it by its rate of yield (qty × rate, in the product's unit; 0 for a lot without a rate to it) — never by
    quantities added across units or lots that do not give the product. None (by the quantities consumed) for a
    product without a rate from these inputs (waste, an unrated secondary product) — UnitMismatch when those
    inputs are in different units: pieces and kilograms are not added to share it, as they are not for a rated
    product's yield (:func:`_yield_line`); the inputs of each unit are then recorded in an operation of their own."""
    rates = [next((exact(r["output_per_input"]) for r in authorisations.rates_for_input(auth, lot["cn"])
                   if r["output_cn"] == output_cn), None) for lot, _ in inputs]
    if all(rate is None for rate in rates):
        units = sorted({lot["unit"] for lot, _ in inputs})
        if len(units) > 1:
            raise UnitMismatch(f"{output_cn} has no rate of yield from these inputs, which are counted in different "
                               f"units ({', '.join(units)}): it cannot be shared over them by their quantities; "
                               "record the inputs of each unit in an operation of their own",
                               output_cn=output_cn, units=units)
        return None
    return [q * (rate or 0) for (_lot, q), rate in zip(inputs, rates)]


def _batch_id(op_id: str, n: int, output: dict) -> str:
    """The id of an operation's ``n``-th output batch: the one the event gives, else ``<operation>/<n>``."""
    return output.get("batch_id") or f"{op_id}/{n}"


def _reads_of_posting(auth: dict, op_id: str, inputs: list[tuple[dict, int]], batches: list[dict],
                      yields: list[dict]) -> list[tuple]:
    """What recording a processing reads once its lots are loaded: the balance shards of the lots and of the
    new batches (goods.StateBook.account), each lot's CeilingNear alert (its stock falls:
    alert_rules.review) and the YieldDeviation alerts it raises."""
    auth_id = auth["authorisation_id"]
    reads = [goods.balance_key(goods.LOT, lot) for lot, _qty in inputs]   # taken from: bal (goods.StateBook.account)
    reads += [key for out in batches for key in goods.balance_keys(goods.BATCH, {"authorisation_id": auth_id, **out})]
    reads += [key for lot, _qty in inputs if (key := authorisations.ceiling_alert_key(auth, lot["cn"]))]
    reads += [keys.alert(auth_id, "YieldDeviation", f"{op_id}/{y['output_cn']}") for y in yields if y["warning"]]
    return reads


def _require_product_once(outputs: list[dict], n: int) -> None:
    """An operation gives each product in one batch: each batch of a product states, for every lot it comes from,
    the whole input of the operation (its shares), so two batches of one product would each stand for all of it —
    the same input goods stated twice when they leave (import duty on a release computed on twice the casings, a
    bill discharging twice what was consumed). A batch leaves in parts (moves, exits) as it is."""
    cn = outputs[n - 1]["cn"]
    first = next(i for i, out in enumerate(outputs, start=1) if out["cn"] == cn)
    if first != n:
        raise InvalidEvent(f"RecordProcessing: /outputs/{n - 1}: {cn} is already an output of this operation "
                           f"(/outputs/{first - 1}): an operation gives each product in one batch, which may "
                           f"then leave in parts",
                           errors=[{"path": f"/outputs/{n - 1}/cn",
                                    "message": f"{cn} is given twice (also /outputs/{first - 1})"}])


def _require_authorised_product(auth: dict, out: dict) -> None:
    """An output is an authorised processed product (GoodsNotCovered), of its authorised kind (GoodsNotCovered)
    and unit (UnitMismatch)."""
    product = authorisations.product(auth, out["cn"])
    if product is None:
        raise GoodsNotCovered(f"processed product {out['cn']} is not authorised", cn=out["cn"])
    if product["kind"] != out["kind"]:
        raise GoodsNotCovered(f"{out['cn']} is authorised as {product['kind']}, not {out['kind']}",
                              cn=out["cn"], kind=product["kind"], given=out["kind"])
    if out["unit"] != product["unit"]:
        raise UnitMismatch(f"{out['cn']} is authorised in {product['unit']}, not {out['unit']}",
                           cn=out["cn"], unit=product["unit"], given=out["unit"])


def _refused_then(auth: dict, earlier: dict, params: dict, site: str, inputs: list[tuple[dict, int]],
                  batches: list[dict]) -> dict | None:
    """The rule the terms in force when the operation occurred (``earlier``: authorisations.terms_at) would have
    refused it by — its site, a product, its rate of yield —, for ``LateRecording``'s ``earlier_terms``; None
    when they would have taken it as today's do."""
    then = {**auth, **earlier}
    try:
        authorisations.require_site(then, site)
        for out in batches:
            _require_authorised_product(then, out)
        check_yield(then, params, inputs, batches)
    except ChaincodeError as refused:
        return {"terms_until": earlier["until"], "refused_then": refused.code, "why": refused.message}
    return None


def record_processing(tx, event: dict) -> dict:
    """RecordProcessing: inputs ≤ stock at the site; output CN codes authorised; the whole operation
    within the rates of yield ± ``yield_block_pct`` (:func:`check_yield`). Refused on a suspended,
    revoked or expired authorisation, and for overdue lots (DeadlinePassed)."""
    auth = authorisations.get(tx.state, event["authorisation_id"])
    authorisations.require_in_force(auth, tx.now)
    op_id, site = event["operation_id"], event["site"]
    # the operation, its lots and the batches it creates, and a control's difference standing for a lot at the
    # site (which its products carry), are all read when it succeeds: in one round trip
    tx.state.prefetch([keys.operation(op_id), *(keys.lot(item["lot_id"]) for item in event["inputs"]),
                       *(keys.batch(_batch_id(op_id, n, out)) for n, out in enumerate(event["outputs"], start=1)),
                       *(keys.alert(event["authorisation_id"], controls.DISCREPANCY,
                                    controls.subject(goods.LOT, item["lot_id"], site)) for item in event["inputs"])])
    if tx.state.exists(keys.operation(op_id)):
        raise AlreadyExists(f"processing operation {op_id} exists", operation_id=op_id)
    authorisations.require_site(auth, site)
    tx.not_in_force_then = authorisations.not_in_force_at(auth, time_rules.legal_time(tx))

    # inputs: the lots consumed, in placement order (FIFO for the lineage shares)
    needed: dict[str, int] = {}
    lots: dict[str, dict] = {}
    for item in event["inputs"]:
        lot = lots.get(item["lot_id"]) or goods.load(tx, goods.LOT, item["lot_id"], auth["authorisation_id"])
        goods.require_unit(lot, item.get("unit"), item["lot_id"])
        time_rules.not_before_goods(tx.occurred_at, lot, goods.LOT, item["lot_id"])
        require_not_overdue(tx, lot, goods.LOT, item["lot_id"])
        lots[item["lot_id"]] = lot
        needed[item["lot_id"]] = needed.get(item["lot_id"], 0) + item["qty"]
    for lot_id, qty in needed.items():
        goods.take_from_sites(lots[lot_id], qty, site, goods.LOT, lot_id)
    inputs = sorted(((lots[i], q) for i, q in needed.items()), key=lambda lq: goods.placement_order(lq[0]))

    # outputs: authorised products, in their authorised unit and kind, each product once
    batches = []
    for n, out in enumerate(event["outputs"], start=1):
        _require_product_once(event["outputs"], n)
        _require_authorised_product(auth, out)
        batch_id = _batch_id(op_id, n, out)
        if "batch_id" not in out and not schemas.is_new_goods_id(batch_id):
            # no act could name it (a batch id is at most 64 characters): its goods could never leave
            raise InvalidEvent(f"RecordProcessing: /outputs/{n - 1}: the output's default batch id {batch_id!r} "
                               "is longer than a batch id may be (64 characters): give it a batch_id",
                               errors=[{"path": f"/outputs/{n - 1}/batch_id",
                                        "message": f"required: the default {batch_id!r} is not a batch id"}])
        if tx.state.exists(keys.batch(batch_id)) or any(b["batch_id"] == batch_id for b in batches):
            raise AlreadyExists(f"batch {batch_id} exists", batch_id=batch_id)
        batches.append({**out, "batch_id": batch_id})

    yields = check_yield(auth, tx.params, inputs, batches)
    earlier = authorisations.terms_at(auth, time_rules.legal_time(tx))   # it occurred before an amendment
    if earlier is not None and (refused := _refused_then(auth, earlier, tx.params, site, inputs, batches)):
        tx.earlier_terms = refused
    tx.state.prefetch(_reads_of_posting(auth, op_id, inputs, batches, yields))

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
            "shares": shares.shares_of(out["qty"], inputs, share_weights(auth, inputs, out["cn"])),
            "deadline": deadline,
            "stock": {site: out["qty"]}, "exited": {}, "lost": 0, "lost_by_reason": {},
        }})
    operation = {"operation_id": op_id, "authorisation_id": auth["authorisation_id"], "site": site,
                 "inputs": [{"lot_id": lot["lot_id"], "qty": q, "unit": lot["unit"]} for lot, q in inputs],
                 "outputs": [{"batch_id": b["batch_id"], "cn": b["cn"], "kind": b["kind"], "qty": b["qty"],
                              "unit": b["unit"]} for b in batches],
                 "yield": yields, "recorded_at": tx.recorded_at, "occurred_at": event["occurred_at"],
                 "tx_id": tx.tx_id}
    tx.state.put(keys.operation(op_id), operation)
    for (lot, _qty), out in ((lq, out) for lq in inputs for out in batches):   # a difference goes with the goods
        controls.carry_discrepancy(tx, auth["authorisation_id"], (goods.LOT, lot["lot_id"], site),
                                   (goods.BATCH, out["batch_id"], site),
                                   {"processed_from": lot["lot_id"], "operation_id": op_id})
    for y in yields:
        if y["warning"]:
            alerts.raise_alert(tx, auth["authorisation_id"], "YieldDeviation", f"{op_id}/{y['output_cn']}",
                               {"operation_id": op_id, **{k: y[k] for k in (
                                   "output_cn", "kind", "authorised_per_input", "actual_per_input",
                                   "deviation_pct", "warn_pct")}})
    return {"operation": operation}
