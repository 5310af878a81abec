"""Goods under the procedure: lots, product batches and their balances (UCC art. 214 records).

A **lot** is what one declaration item placed under inward processing; a
**batch** holds the processed products of one operation — main, secondary or
waste, all under the procedure alike. Both keep their stock per site and what
left them, so that at every moment

    lot:    placed   = Σ stock + consumed + Σ exited + lost
    batch:  produced = Σ stock            + Σ exited + lost

and what a lot's consumed goods became is traced: each batch holds a **share**
per source lot (product units, and the lot's input units the operation
consumed), and each lot lists its share of every batch made from it. Every exit
or loss of a batch says which lots' shares it takes, and how many of their input
units it stands for; a share keeps count of both (``discharged``, ``input_discharged``;
its releases for free circulation apart too). A lot is discharged only when its stock
has left the procedure and, of every batch made from it, its share's units have gone
and their discharges stood for all the input units it gave — so also a share of 0 units
(a batch small for its number of lots) keeps its lot under the procedure until then.

Everything that changes goods is an **effect** (a small JSON posting). The
contract records the effects of each event in the event log and applies them
with :func:`apply`; the bill of discharge replays the same effects with the
same function to compute balances as of any date — one set of rules, two uses.

Effects::

    {"op": "place",   "lot": {...new lot record...}}
    {"op": "move",    "kind", "id", "qty", "from", "to"}
    {"op": "consume", "lot_id", "qty", "site", "operation_id"}
    {"op": "produce", "batch": {...new batch record...}}
    {"op": "exit",    "kind", "id", "qty", "sites": {site: qty}, "procedure", "mrn", "item_no",
                      "attribution": [{"lot_id", "qty", "input_qty"}]}   # attribution: batches only (FIFO;
                                                                        # qty 0 for a share of 0 units;
                                                                        # "ahead": one stated before the
                                                                        # batch's last units, spread)
    {"op": "lose",    "kind", "id", "qty", "sites", "reason", "evidence_hash", "attribution"}
    {"op": "extend",  "lots": {lot_id: deadline}, "batches": {batch_id: deadline}}

One file: the records, the effects above and the two books they are applied to (the ledger's and the replay's in
memory) are one model, and the conservation they keep is checked against all of it at once.
"""
from __future__ import annotations

import copy
import datetime as dt
from typing import Iterable

from ipledger.chaincode.contract import declarations, keys, shares, time_rules, timestamps
from ipledger.chaincode.contract.errors import LedgerInconsistent, NotFound, QuantityExceedsBalance, UnitMismatch

LOT, BATCH = "LOT", "BATCH"
INPUT, PRODUCT = "INPUT", "PRODUCT"
WASTE = "WASTE"


# ---------------------------------------------------------------------------------------- record reading

def balance(record: dict) -> int:
    """Quantity still under the procedure (Σ stock over sites)."""
    return sum(record["stock"].values())


def entered(kind: str, record: dict) -> int:
    return record["placed"] if kind == LOT else record["produced"]


def is_waste(record: dict) -> bool:
    return record.get("kind") == WASTE


def deadline(record: dict) -> dt.datetime:
    return timestamps.parse_datetime(record["deadline"])


def declared_at(lot: dict) -> str:
    """When a lot's declaration was accepted: its legally relevant date (``occurred_at``, never later than its
    recording, ``accepted_at``), which its deadline runs from (placement.place, time_rules.legal_time) — or the
    date its record states, when the declaration's acceptance came from elsewhere (a 5151 reception recorded
    after its exit: the exit's date)."""
    if "declared_at" in lot:
        return lot["declared_at"]
    return time_rules.declared_at(lot.get("occurred_at"), lot["accepted_at"])


def billed_at(lot: dict, when: dt.datetime) -> dt.datetime:
    """When a deadline ``when`` of ``lot`` counts for the bills of discharge: the deadline itself, unless the
    lot was recorded after it (``billed_from``, set at placement by :func:`billed_from`: a placement declared
    long before it was recorded) — then from its recording, so that it is in the bill of the period it was
    recorded in rather than in none: no bill's replay holds a lot before its recording."""
    if "billed_from" not in lot:
        return when
    return max(when, timestamps.parse_datetime(lot["billed_from"]))


def billed_from(lot: dict) -> str | None:
    """What a new lot stores as ``billed_from`` (read by :func:`billed_at`): its recording (``accepted_at``)
    when that is after its deadline, else nothing. Stored at placement rather than derived when a bill is
    computed, so that a lot recorded before this rule keeps the bills it was in (§7: a submitted bill and
    its hash never change)."""
    if deadline(lot) < timestamps.parse_datetime(lot["accepted_at"]):
        return lot["accepted_at"]
    return None


def first_bill_date(lot: dict) -> str:
    """The date a new lot's deadline counts at for the bills of discharge (:func:`billed_at`), as text: where
    its placement indexes it (``keys.auth_due``; each extension indexes it at its new deadline)."""
    return timestamps.fmt(billed_at(lot, deadline(lot)))


def is_discharged(kind: str, record: dict) -> bool:
    """A batch is discharged when nothing is left; a lot when nothing is left of it *and* of its share of
    every product made from it — main, secondary and waste alike: the discharges of each such batch have
    stood for all the input units the lot gave (:func:`shares.fifo_attribution`). Counted in product units *and* in
    input units: a share of 0 product units is not discharged before the batch's last units have gone (or, in a
    batch recorded before, its point), and a release's input goods, rounded up, may state the whole input while
    units of the share are still in the batch."""
    if balance(record) > 0:
        return False
    if kind == LOT:
        return not any(shares.share_remains({**p, "qty": p["share"]}) for p in record["products"].values())
    return True


def is_overdue(record: dict, now: dt.datetime) -> bool:
    """Goods left after their period for discharge (UCC art. 257)."""
    return balance(record) > 0 and now > deadline(record)


def status(kind: str, record: dict, now: dt.datetime) -> str:
    if is_discharged(kind, record):
        return "DISCHARGED"
    return "OVERDUE" if now > deadline(record) else "OPEN"


def conservation(kind: str, record: dict) -> dict:
    """The conservation equation of the record, with its terms."""
    terms = {
        "entered": entered(kind, record),
        "stock": balance(record),
        "consumed": record.get("consumed", 0),
        "exited": sum(record["exited"].values()),
        "lost": record["lost"],
    }
    out = terms["stock"] + terms["consumed"] + terms["exited"] + terms["lost"]
    non_negative = all(v >= 0 for v in terms.values()) and all(v >= 0 for v in record["stock"].values())
    return {**terms, "holds": terms["entered"] == out and non_negative}


def view(kind: str, record: dict, now: dt.datetime) -> dict:
    """A record as queries show it: with balance and status at ``now``."""
    out = {k: v for k, v in record.items() if k not in ("updated_tx",)}
    out["balance"] = balance(record)
    out["status"] = status(kind, record, now)
    if kind == LOT:
        out["declared_at"] = declared_at(record)   # the deadline runs from it; ``accepted_at`` is the recording
    return out


# ---------------------------------------------------------------------------------------- taking goods

def take_from_sites(record: dict, qty: int, site: str | None, kind: str, goods_id: str) -> dict[str, int]:
    """Which site gives how much: all from ``site`` if named, else from the sites in name order.
    QuantityExceedsBalance if there is not enough."""
    if site is not None:
        available = record["stock"].get(site, 0)
        if qty > available:
            raise QuantityExceedsBalance(f"{goods_id}: {qty} requested at {site}, {available} there",
                                         goods=kind, id=goods_id, site=site, requested=qty, available=available)
        return {site: qty}
    total = balance(record)
    if qty > total:
        raise QuantityExceedsBalance(f"{goods_id}: {qty} requested, balance {total}",
                                     goods=kind, id=goods_id, requested=qty, available=total)
    taken, rest = {}, qty
    for s in sorted(record["stock"]):
        part = min(rest, record["stock"][s])
        if part:
            taken[s] = part
            rest -= part
    return taken


def require_unit(record: dict, unit: str | None, goods_id: str) -> None:
    """UnitMismatch when an event states a unit other than the goods'."""
    if unit is not None and unit != record["unit"]:
        raise UnitMismatch(f"{goods_id} is counted in {record['unit']}, not {unit}",
                           id=goods_id, unit=record["unit"], given=unit)


def recording_order(lot: dict) -> tuple[str, str]:
    """Lots in the order they were recorded (the order of a bill's lot lines)."""
    return lot["accepted_at"], lot["lot_id"]


def placement_order(lot: dict) -> tuple[dt.datetime, str, str]:
    """Lots in placement order, first-in-first-out (docs/domain.md §5): by the placement's legally relevant
    time — when the declaration was accepted (:func:`declared_at`), the time its deadline runs from — then by
    recording time and lot id. The order of a new batch's shares
    (:func:`shares.shares_of`), so the order in which its discharges take them (:func:`shares.fifo_attribution`)."""
    return timestamps.parse_datetime(declared_at(lot)), lot["accepted_at"], lot["lot_id"]


# ---------------------------------------------------------------------------------------- books

class MemoryBook:
    """Records in a dict: used to replay effects (bill of discharge, balances as of a date).

    ``only``: the goods (``(kind, id)``) this book keeps, every other one left out — a bill reads a few goods of a
    long history. Each effect changes each record it names from that record and the effect alone (the FIFO
    attribution of a batch's discharge, an extension's new deadlines are in the effect; an extension finds the
    batches made from a lot in the lot's record, so a kept batch's lots are kept too), so replaying every entry of
    the kept goods' histories, applied to the kept records only, gives each of them exactly as the whole log does
    (tests/unit/contract/test_bill_from_its_period.py)."""

    def __init__(self, only: set[tuple[str, str]] | None = None):
        self.records: dict[tuple[str, str], dict] = {}
        self.only = only

    def holds(self, kind: str, goods_id: str) -> bool:
        return self.only is None or (kind, goods_id) in self.only

    def get(self, kind: str, goods_id: str) -> dict:
        return self.records[(kind, goods_id)]

    def put(self, kind: str, goods_id: str, record: dict) -> None:
        self.records[(kind, goods_id)] = record

    def account(self, kind: str, record: dict, **delta) -> None:
        pass

    def due(self, lot: dict, when: str) -> None:
        pass


def missing(kind: str, goods_id: str) -> NotFound:
    """The refusal of a lot or batch id not in use (also what a party may not read is: queries.py)."""
    return NotFound(f"no {'lot' if kind == LOT else 'batch'} {goods_id}", goods=kind, id=goods_id)


class StateBook:
    """Records in the world state, for the live transaction: keeps the per-code balances, the
    authorisation's goods indexes and the ledger-time order of changes."""

    def __init__(self, tx):
        self.tx = tx

    def holds(self, kind: str, goods_id: str) -> bool:
        return True

    def get(self, kind: str, goods_id: str) -> dict:
        record = self.tx.state.get(keys.goods(kind, goods_id))
        if record is None:
            raise missing(kind, goods_id)
        return record

    def put(self, kind: str, goods_id: str, record: dict) -> None:
        tx = self.tx
        if "updated_at" in record:
            time_rules.after_last_change(tx, record, kind, goods_id)
        else:  # a new lot or batch: index it under its authorisation
            index = keys.auth_lot if kind == LOT else keys.auth_batch
            tx.state.put(index(record["authorisation_id"], goods_id), {})
        record["updated_at"], record["updated_tx"] = tx.recorded_at, tx.tx_id
        tx.state.put(keys.goods(kind, goods_id), record)
        tx.refer(kind, goods_id)

    def due(self, lot: dict, when: str) -> None:
        """Index the lot under the date ``when`` its bills of discharge count it at (``keys.auth_due``): the bill of
        the period holding that date finds it there, not by replaying the authorisation's whole log."""
        self.tx.state.put(keys.auth_due(lot["authorisation_id"], when, lot["lot_id"]), {})

    def account(self, kind: str, record: dict, entered: int = 0, stock: int = 0, consumed: int = 0,
                exited: dict | None = None, lost: int = 0) -> None:
        """Keep the balance per (authorisation, category, cn, unit) in step, in the shard of this lot or batch
        (keys.balance_shard): a bounded read for queries, and no key every event of the authorisation writes. A
        shard whose stock is 0 is kept under ``bal.empty`` (keys.empty_balance): the ceiling's range read covers the
        shards holding goods, not the authorisation's history.

        ``bal`` is always read; ``bal.empty`` (:func:`shard_may_be_emptied`) only when the shard may be kept there
        or must go there: nothing under ``bal``, goods coming in (a placement, a processing's products: both keys
        in their read-ahead, :func:`balance_keys`), or the stock falling to 0. Goods taken from a shard that keeps
        some (most exits, losses and consumptions of a plant with many lots) read no absent key, which a peer's
        state database answers only after looking in every level, at endorsement and again at validation. Both
        keys hold parts of a shard only after a return to an earlier contract wrote ``bal`` again: the part under
        ``bal.empty`` (stock 0) is counted by ``GetBalances`` where it is and joins the other once read."""
        category = INPUT if kind == LOT else PRODUCT
        state = self.tx.state
        key, empty_key = balance_keys(kind, record)
        held = state.get(key)
        bal = {"authorisation_id": record["authorisation_id"], "category": category, "cn": record["cn"],
               "unit": record["unit"], "entered": 0, "stock": 0, "consumed": 0, "exited": {}, "lost": 0}
        posted = {"entered": entered, "stock": stock, "consumed": consumed, "lost": lost, "exited": exited or {}}
        for part in (held, posted):
            _add_flows(bal, part)
        emptied = None
        if shard_may_be_emptied(held, stock, bal["stock"]):
            emptied = state.get(empty_key)
            _add_flows(bal, emptied)   # its stock is 0: bal's stock is the same
        if bal["stock"]:
            state.put(key, bal)
            if emptied is not None:
                state.delete(empty_key)
        else:   # nothing of this shard under the procedure any more: out of the ceiling's read
            state.put(empty_key, bal)
            if held is not None:
                state.delete(key)
        if category == INPUT and stock > 0:
            self.tx.review_ceilings[(record["authorisation_id"], record["cn"])] = None
        elif category == INPUT and stock < 0:
            self.tx.ceilings_decreased[(record["authorisation_id"], record["cn"])] = None
        if lost:
            goods_id = record["lot_id"] if kind == LOT else record["batch_id"]
            self.tx.review_losses[(kind, goods_id)] = None
            self.tx.state.put(keys.auth_loss(record["authorisation_id"], kind, goods_id), {})


def _add_flows(bal: dict, part: dict | None) -> None:
    if part is not None:
        for field in ("entered", "stock", "consumed", "lost"):
            bal[field] += part[field]
        for proc, q in part["exited"].items():
            bal["exited"][proc] = bal["exited"].get(proc, 0) + q


def shard_may_be_emptied(held: dict | None, stock_posted: int, stock_after: int) -> bool:
    """Whether :meth:`StateBook.account` reads a shard's ``bal.empty`` key: when nothing is under ``bal``, when
    goods come in (the shard was likely emptied, or is new), or when its stock falls to 0."""
    return held is None or stock_posted > 0 or stock_after == 0


# ---------------------------------------------------------------------------------------- applying effects

def balance_keys(kind: str, record: dict) -> list[tuple]:
    """The two keys of the balance shard a lot's or batch's stock is counted in (its goods code, unit and own
    shard): under ``bal`` while its stock is not 0, else under ``bal.empty``. Both are read when goods come in
    (:meth:`StateBook.account`): the read-ahead of a placement and of a processing's products."""
    category = INPUT if kind == LOT else PRODUCT
    goods_id = record["lot_id"] if kind == LOT else record["batch_id"]
    shard = (record["authorisation_id"], category, record["cn"], record["unit"], goods_id)
    return [keys.balance(*shard), keys.empty_balance(*shard)]


def balance_key(kind: str, record: dict) -> tuple:
    """The key of the shard while it holds goods: all that taking goods from it reads, unless that empties it."""
    return balance_keys(kind, record)[0]


def reads_of_taking(kind: str, record: dict, attribution: list[dict] | None) -> list[tuple]:
    """The keys posting an exit or a loss of ``record`` reads besides the record itself: its balance shard
    (StateBook.account; ``bal.empty`` too only if the shard empties, read then) and, for a batch, the lots its
    attribution discharges (_discharge_shares)."""
    return [balance_key(kind, record), *(keys.lot(part["lot_id"]) for part in attribution or ())]


def _remove(record: dict, sites: dict[str, int], kind: str, goods_id: str) -> None:
    for site, qty in sites.items():
        have = record["stock"].get(site, 0)
        if qty > have:
            raise QuantityExceedsBalance(f"{goods_id}: {qty} requested at {site}, {have} there",
                                         goods=kind, id=goods_id, site=site, requested=qty, available=have)
        if have == qty:
            del record["stock"][site]
        else:
            record["stock"][site] = have - qty


def _add(record: dict, site: str, qty: int) -> None:
    record["stock"][site] = record["stock"].get(site, 0) + qty


def _discharge_shares(book, batch_id: str, batch: dict | None, attribution: list[dict], released: bool) -> None:
    """A batch discharge also discharges the source lots' shares of it (FIFO attribution): in product
    units and in the input units they stand for, on the batch (None: a book without it) and on each lot; a release
    for free circulation counts them in the share's ``released`` and ``input_released`` too
    (:func:`shares.input_of_part`)."""
    by_lot = {a["lot_id"]: a for a in attribution}
    if batch is not None:
        if released:
            batch["released"] = batch.get("released", 0) + sum(a["qty"] for a in attribution)
        for share in batch["shares"]:
            part = by_lot.get(share["lot_id"])
            if part is not None:
                _count_part(share, part, released)
    for lot_id, part in by_lot.items():
        if book.holds(LOT, lot_id):
            lot = book.get(LOT, lot_id)
            _count_part(lot["products"][batch_id], part, released)
            book.put(LOT, lot_id, lot)


def _count_part(entry: dict, part: dict, released: bool) -> None:
    """A part of a discharge counted on a batch's share, or on the lot's entry of that product (``share``
    units): a share of 0 units stated ahead of the batch's last units (:func:`shares.spread_parts`) counts in
    ``ahead`` what releases stated of it, and whether the last units have gone since (``reached``)."""
    entry["discharged"] += part["qty"]
    entry["input_discharged"] += part["input_qty"]
    if part.get("ahead"):
        entry["ahead"] = entry.get("ahead", 0) + (part["input_qty"] if released else 0)
    elif "ahead" in entry and part["qty"] == 0:
        entry["reached"] = True
    if released and part["qty"]:
        entry["released"] = entry.get("released", 0) + part["qty"]
        entry["input_released"] = entry.get("input_released", 0) + part["input_qty"]


def _place(book, effect: dict, _recorded_at: str, _tx_id: str) -> None:
    if not book.holds(LOT, effect["lot"]["lot_id"]):
        return
    lot = copy.deepcopy(effect["lot"])
    book.put(LOT, lot["lot_id"], lot)
    book.account(LOT, lot, entered=lot["placed"], stock=lot["placed"])
    book.due(lot, first_bill_date(lot))


def _move(book, effect: dict, _recorded_at: str, _tx_id: str) -> None:
    if not book.holds(effect["kind"], effect["id"]):
        return
    rec = book.get(effect["kind"], effect["id"])
    _remove(rec, {effect["from"]: effect["qty"]}, effect["kind"], effect["id"])
    _add(rec, effect["to"], effect["qty"])
    book.put(effect["kind"], effect["id"], rec)


def _consume(book, effect: dict, _recorded_at: str, _tx_id: str) -> None:
    if not book.holds(LOT, effect["lot_id"]):
        return
    lot = book.get(LOT, effect["lot_id"])
    _remove(lot, {effect["site"]: effect["qty"]}, LOT, effect["lot_id"])
    lot["consumed"] += effect["qty"]
    book.put(LOT, effect["lot_id"], lot)
    book.account(LOT, lot, stock=-effect["qty"], consumed=effect["qty"])


def _produce(book, effect: dict, _recorded_at: str, _tx_id: str) -> None:
    """A new batch, and on each of its source lots the product made from it (the lineage both ways)."""
    batch = copy.deepcopy(effect["batch"])
    if book.holds(BATCH, batch["batch_id"]):
        book.put(BATCH, batch["batch_id"], batch)
        book.account(BATCH, batch, entered=batch["produced"], stock=batch["produced"])
    for share in batch["shares"]:
        if not book.holds(LOT, share["lot_id"]):
            continue
        lot = book.get(LOT, share["lot_id"])
        lot["products"][batch["batch_id"]] = {"kind": batch["kind"], "cn": batch["cn"], "unit": batch["unit"],
                                              "share": share["qty"], "input_qty": share["input_qty"],
                                              "discharged": 0, "input_discharged": 0}
        book.put(LOT, share["lot_id"], lot)


def _take(book, effect: dict, _recorded_at: str, _tx_id: str) -> None:
    """An exit or a loss: from the sites it names; a batch's shares discharged as its FIFO attribution says."""
    kind, goods_id, qty = effect["kind"], effect["id"], effect["qty"]
    exit_ = effect["op"] == "exit"
    if not book.holds(kind, goods_id):   # a batch left out: the lots its discharge counts on, if kept
        if kind == BATCH:
            _discharge_shares(book, goods_id, None, effect["attribution"],
                              exit_ and effect["procedure"] == declarations.RELEASE)
        return
    rec = book.get(kind, goods_id)
    _remove(rec, effect["sites"], kind, goods_id)
    if exit_:
        rec["exited"][effect["procedure"]] = rec["exited"].get(effect["procedure"], 0) + qty
    else:
        rec["lost"] += qty
        rec["lost_by_reason"][effect["reason"]] = rec["lost_by_reason"].get(effect["reason"], 0) + qty
    if kind == BATCH:
        _discharge_shares(book, goods_id, rec, effect["attribution"],
                          exit_ and effect["procedure"] == declarations.RELEASE)
        rec["deadline"] = shares.batch_deadline(rec)
    book.put(kind, goods_id, rec)
    if exit_:
        book.account(kind, rec, stock=-qty, exited={effect["procedure"]: qty})
    else:
        book.account(kind, rec, stock=-qty, lost=qty)


def _extend(book, effect: dict, recorded_at: str, tx_id: str) -> None:
    """New deadlines of lots, and of every batch made from an extended lot: its share's deadline, and the
    batch's if it moves."""
    for lot_id, new in effect["lots"].items():
        if not book.holds(LOT, lot_id):
            continue
        lot = book.get(LOT, lot_id)
        lot["deadline"] = new
        lot["extensions"].append({"deadline": new, "recorded_at": recorded_at, "tx_id": tx_id})
        book.put(LOT, lot_id, lot)
        book.due(lot, new)
    extended = {batch_id for lot_id in effect["lots"] if book.holds(LOT, lot_id)
                for batch_id in book.get(LOT, lot_id)["products"]}
    for batch_id in sorted(extended | set(effect["batches"])):
        if not book.holds(BATCH, batch_id):
            continue
        batch = book.get(BATCH, batch_id)
        for share in batch["shares"]:
            if share["lot_id"] in effect["lots"] and "deadline" in share:
                share["deadline"] = effect["lots"][share["lot_id"]]
        batch["deadline"] = effect["batches"].get(batch_id, batch["deadline"])
        book.put(BATCH, batch_id, batch)


# each kind of effect (its ``op``) and how it changes the records
_APPLY = {"place": _place, "move": _move, "consume": _consume, "produce": _produce, "exit": _take, "lose": _take,
          "extend": _extend}


def apply(book, effect: dict, recorded_at: str, tx_id: str) -> None:
    """Apply one effect to the records in ``book`` (see the module docstring)."""
    step = _APPLY.get(effect["op"])
    if step is None:  # effects are written by this module: one it does not know was written by another contract
        raise LedgerInconsistent(f"the event log holds an effect this contract does not apply: {effect['op']!r}",
                                 op=effect["op"])
    step(book, effect, recorded_at, tx_id)


def post(tx, effect: dict) -> None:
    """Apply ``effect`` to the world state and remember it for the event log."""
    apply(StateBook(tx), effect, tx.recorded_at, tx.tx_id)
    tx.effects.append(effect)


def concerns(effect: dict, kind: str, goods_id: str) -> bool:
    """Does ``effect`` change (or create) the given lot or batch?"""
    op = effect["op"]
    if op == "place":
        return kind == LOT and effect["lot"]["lot_id"] == goods_id
    if op == "produce":
        b = effect["batch"]
        return (kind == BATCH and b["batch_id"] == goods_id) or \
            (kind == LOT and any(s["lot_id"] == goods_id for s in b["shares"]))
    if op == "consume":
        return kind == LOT and effect["lot_id"] == goods_id
    if op == "extend":
        return goods_id in (effect["lots"] if kind == LOT else effect["batches"])
    if effect["kind"] == kind and effect["id"] == goods_id:
        return True
    return kind == LOT and any(a["lot_id"] == goods_id for a in effect.get("attribution") or [])


def load(tx, kind: str, goods_id: str, authorisation_id: str) -> dict:
    """A lot or batch of this authorisation (NotFound otherwise)."""
    record = StateBook(tx).get(kind, goods_id)
    if record["authorisation_id"] != authorisation_id:
        raise NotFound(f"{goods_id} is not under authorisation {authorisation_id}", goods=kind, id=goods_id,
                       authorisation_id=authorisation_id)
    return record


def goods_ref(event: dict) -> tuple[str, str]:
    """(kind, id) of an event naming ``lot_id`` or ``batch_id``."""
    return (LOT, event["lot_id"]) if "lot_id" in event else (BATCH, event["batch_id"])


def earliest_deadline(lots: Iterable[dict]) -> str:
    return min((lot["deadline"] for lot in lots), key=timestamps.parse_datetime)
