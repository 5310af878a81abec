"""The bill of discharge (DA art. 175) and the audit view of balances as of a date.

The ledger computes the bill from the event log: it replays the recorded goods
effects (the same :func:`goods.apply` the transactions used) up to a cut-off,
so the result depends only on the ledger, never on when or by whom it is asked.
Two scopes:

* ``period_end`` — the formal bill: lots whose period for discharge ended
  (original or extended deadline) between the previous bill's period end and
  this one — for a lot recorded after its deadline, when it was recorded
  (``goods.billed_at``); events up to the end of ``period_end`` (UTC). Due 30
  days later. It also carries the goods the previous bill flagged overdue
  (:func:`carried_goods`): their disposals and losses in the period, and what remains
  of them, marked ``carried_from``.
* ``as_of`` — the audit view: every lot placed up to ``as_of``, events up to it.

What a period's bill replays (:func:`_replayed`): the whole log from the grant for an authorisation's first bill;
for a later one, when the previous bill says the indexes were whole at its cut-off (:data:`INDEXED`), its own
period's log and the histories of the goods it lists — the same bill, at the cost of its period.

Waste and secondary products are processed products like the main ones: under
the procedure until exited or destroyed, so they stay in ``remaining`` (waste is
also listed under ``waste``), and a lot counts as discharged only when they have
gone too. Every disposal and loss states the ``input_goods`` it stands for —
the placed goods from which import duty on a release for free circulation
(4051) is computed.

``document_hash`` is the SHA-256 of the canonical JSON of the bill, in which
commercial data appear only as the hash of their private-data record (so every
org computes the same hash); customs and the holder additionally receive the
customs values outside the hashed document. Block numbers are not visible to
chaincode: the proof lists transaction ids, which the gateway can map to blocks.

One file: the bill's computation (its window, lines, balances and proof) and its life (submit, decide) read the
same records and formats, and the hash a bill is submitted with is computed by the same code that checks it.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from ipledger.chaincode.contract import authorisations, declarations, eventlog, goods, keys, time_rules, timestamps
from ipledger.chaincode.contract.decimals import exact
from ipledger.chaincode.contract.errors import (HashMismatch, InvalidState, LedgerInconsistent, NotFound, OutOfOrder,
                                                PeriodNotEnded)
from ipledger.chaincode.contract.params import BILL_DUE_DAYS
from ipledger.chaincode.contract.state import digest

SUBMITTED, ACCEPTED, QUERIED = "SUBMITTED", "ACCEPTED", "QUERIED"


def bill_id_of(authorisation_id: str, period_end: str) -> str:
    return f"BOD-{authorisation_id}-{period_end}"


def parse_bill_id(bill_id: str) -> tuple[str, str]:
    """(authorisation_id, period_end) of ``BOD-<authorisation>-<YYYY-MM-DD>``."""
    return bill_id[4:-11], bill_id[-10:]


def bills(state, authorisation_id: str) -> list[dict]:
    return [b for _k, b in state.scan(keys.BILL, authorisation_id)]


def _previous_bill(state, authorisation_id: str, period_end: str) -> dict | None:
    """The bill of the latest period before ``period_end``: its cut-off is where this period starts."""
    earlier = [b for b in bills(state, authorisation_id) if b["period_end"] < period_end]
    return max(earlier, key=lambda b: b["period_end"]) if earlier else None


def carried_goods(previous: dict | None, lots: dict, batches: dict, start: dt.datetime | None) -> set[tuple[str, str]]:
    """The goods a period's bill carries from the previous bill (§7 item 5): those the previous bill flagged
    OVERDUE (its record's ``overdue``, the goods it left under the procedure after their period for discharge;
    so not discharged at this period's start) and that no bill of this period or a later one lists as its
    own — every deadline of each of their lots (the lot, or a batch's source lots) counted before this period
    (``goods.billed_at``; an extension moves a lot into the bill of its new deadline, which lists all of it).
    This bill lists their disposals and losses recorded in the period, and what remains of them, so that
    no disposal of goods already billed is left out of every later bill (docs/domain.md §7 item 5 says when
    a line is repeated). A bill recorded before bills kept ``overdue`` carries nothing
    (the bills after it keep their hashes)."""
    if previous is None or start is None:
        return set()

    def billed_before(lot_id: str) -> bool:
        lot = lots[lot_id]
        return goods.billed_at(lot, goods.deadline(lot)) < start

    carried = set()
    for item in previous.get("overdue", ()):
        kind, gid = item["goods"], item["id"]
        lot_ids = [gid] if kind == goods.LOT else [share["lot_id"] for share in batches[gid]["shares"]]
        if all(billed_before(lot_id) for lot_id in lot_ids):
            carried.add((kind, gid))
    return carried


def _add(totals: dict, key: tuple, qty: int) -> None:
    totals[key] = totals.get(key, 0) + qty


def _rows(totals: dict, names: tuple[str, ...]) -> list[dict]:
    return [{**dict(zip(names, k)), "quantity": q} for k, q in sorted(totals.items())]


def _input_goods(lots: dict, effect: dict) -> list[dict]:
    """The goods placed under the procedure that an exit or loss stands for — what import duty on a
    release for free circulation (4051) is computed from (UCC art. 86(3)): the lot itself, or for a
    batch the input units of each source lot its FIFO attribution takes (``shares.fifo_attribution``; a
    share of 0 units with the disposal that reaches it), so that a batch's lines state every lot's input."""
    if effect["kind"] == goods.LOT:
        parts = [(effect["id"], effect["qty"])]
    else:
        parts = [(a["lot_id"], a["input_qty"]) for a in effect["attribution"]]
    return [{"lot_id": lot_id, "cn": lots[lot_id]["cn"], "unit": lots[lot_id]["unit"], "quantity": qty}
            for lot_id, qty in parts]


@dataclass(frozen=True)
class _Window:
    """What one computation covers: a period's bill (``period_end``; it starts at the previous bill's cut-off,
    ``start``) or the audit view as of a moment (``as_of``); events recorded before ``cutoff``."""
    period_end: dt.date | None
    as_of: dt.datetime | None
    cutoff: dt.datetime
    start: dt.datetime | None
    previous: dict | None
    scope: dict
    formats: set[str]

    def covers(self, lot: dict) -> bool:
        """A deadline of the lot (the original, an extension's) falls in the period, as it counts for bills
        (``goods.billed_at``: a lot recorded after its deadline counts from its recording); every lot as of."""
        if self.period_end is None:
            return True
        deadlines = [lot["original_deadline"]] + [x["deadline"] for x in lot["extensions"]]
        billed = (goods.billed_at(lot, timestamps.parse_datetime(d)) for d in deadlines)
        return any((self.start is None or when >= self.start) and when < self.cutoff for when in billed)


def _window(state, auth_id: str, period_end: dt.date | None, as_of: dt.datetime | None) -> _Window:
    if period_end is None:
        return _Window(None, as_of, as_of + dt.timedelta(microseconds=1),   # as_of itself included
                       None, None, {"mode": "AS_OF", "as_of": timestamps.fmt(as_of)}, set(FORMATS))
    cutoff = timestamps.end_of(period_end)
    previous = _previous_bill(state, auth_id, period_end.isoformat())
    start_text = previous["cutoff"] if previous else None
    # a bill submitted by an earlier contract is computed as it was then (its hash): see FORMATS
    stored = state.get(keys.bill(auth_id, period_end.isoformat()))
    return _Window(period_end, None, cutoff, timestamps.parse_datetime(start_text) if start_text else None, previous,
                   {"mode": "PERIOD", "period_start": start_text, "period_end": period_end.isoformat(),
                    "due": timestamps.fmt(cutoff + dt.timedelta(days=BILL_DUE_DAYS))}, _formats(stored))


@dataclass(frozen=True)
class _Goods:
    """The lots and batches as they stood at the cut-off (``lots``, ``batches``: id -> record), those the bill
    lists as its own (``lot_ids``, the batches made from them ``batch_ids``) and those it carries from the previous
    bill (``carried``: (kind, id); their lines marked ``carried_from``)."""
    lots: dict
    batches: dict
    lot_ids: set
    batch_ids: set
    carried: set
    carried_mark: dict

    def own(self, kind: str, gid: str) -> bool:
        return gid in (self.lot_ids if kind == goods.LOT else self.batch_ids)

    def mark(self, kind: str, gid: str) -> dict:
        return self.carried_mark if (kind, gid) in self.carried else {}


def _goods_of(book: goods.MemoryBook, window: _Window) -> _Goods:
    lots = {gid: r for (kind, gid), r in book.records.items() if kind == goods.LOT}
    batches = {gid: r for (kind, gid), r in book.records.items() if kind == goods.BATCH}
    lot_ids = {gid for gid, lot in lots.items() if window.covers(lot)}
    batch_ids = {gid for gid, b in batches.items() if any(s["lot_id"] in lot_ids for s in b["shares"])}
    carried = carried_goods(window.previous, lots, batches, window.start)
    return _Goods(lots, batches, lot_ids, batch_ids, carried,
                  {"carried_from": window.previous["period_end"]} if carried else {})


def compute(state, auth: dict, *, period_end: dt.date | None = None, as_of: dt.datetime | None = None) -> dict:
    """The bill-of-discharge data (docs/domain.md §7) for ``period_end`` or ``as_of`` (exactly one)."""
    return _computed(state, auth, period_end, as_of)[0]


def _computed(state, auth: dict, period_end: dt.date | None, as_of: dt.datetime | None) -> tuple[dict, bool]:
    """The data, and whether every lot's bill dates and every grant and amendment up to the cut-off are indexed
    (:data:`INDEXED`, which a submitted bill records for the next period's)."""
    auth_id = auth["authorisation_id"]
    window = _window(state, auth_id, period_end, as_of)
    log, book, indexed = _replayed(state, auth, window)
    auth = _terms_at_cutoff(state, auth, log)
    held = _goods_of(book, window)
    totals = {"placed": {}, "consumed": {}, "produced": {}, "exited": {}, "lost": {}, "remaining": {}}
    lots = _lot_lines(state, auth, window, log, held, totals)
    listed = _log_lines(state, window, log, book, held, totals)
    remaining, waste, conservation = _balances(window, held, totals)
    data = {
        "authorisation_id": auth_id, "authorisation_version": auth["version"], "holder_eori": auth["holder_eori"],
        "supervising_office": auth["supervising_office"], "scope": window.scope, "cutoff": timestamps.fmt(window.cutoff),
        "lots": lots, "processing": listed["processing"], "disposals": listed["disposals"], "losses": listed["losses"],
        "waste": waste, "remaining": remaining,
        "totals": {
            "placed": _rows(totals["placed"], ("cn", "unit")),
            "consumed": _rows(totals["consumed"], ("cn", "unit")),
            "produced": _rows(totals["produced"], ("kind", "cn", "unit")),
            "exited": _rows(totals["exited"], ("procedure", "cn", "unit")),
            "lost": _rows(totals["lost"], ("reason", "cn", "unit")),
            "remaining": _rows(totals["remaining"], ("goods", "cn", "unit")),
        },
        "proof": {"conservation": conservation, "conservation_holds": all(c["holds"] for c in conservation),
                  "transactions": listed["transactions"], "alerts": listed["alerts"], "controls": listed["controls"]},
    }
    data["document_hash"] = digest(data)
    return data, indexed


# A submitted bill's record says so (``goods_indexed``) when every placement, extension, grant and amendment recorded
# up to its cut-off wrote its index key (``keys.auth_due``, ``keys.auth_terms``): the bill of the next period can then
# be computed from that period's log and the histories of the goods it lists — every lot whose bill date falls in it,
# the goods the previous bill carries, the batches made from them and those batches' lots — instead of the whole log
# from the grant, which grows with the authorisation's history. Both give the same bill, to the byte (a differential test:
# tests/unit/contract/test_bill_from_its_period.py); a period for which the chain is broken (an authorisation granted
# before the indexes, or events recorded by a contract that did not write them) is computed from the whole log. A
# submission computed from its period has read the period's index: an extension recorded meanwhile to a deadline in
# that period (customs regularising late) makes it fail Fabric's read-set check — the same bill, sent again.
INDEXED = "goods_indexed"


def _replayed(state, auth: dict, window: _Window) -> tuple[list[dict], goods.MemoryBook, bool]:
    """The log entries the bill reads and the goods as they stood at the cut-off (replayed from those entries), and
    whether the indexes are whole up to the cut-off: from the period's own log and goods when the previous bill
    says the indexes were whole at its cut-off and the period's entries all wrote theirs, else from the whole log."""
    auth_id, granted = auth["authorisation_id"], timestamps.parse_datetime(auth["granted_at"])
    chained = window.period_end is not None and (window.previous is None or window.previous.get(INDEXED, False))
    if chained and window.previous is not None and window.formats == set(FORMATS):
        period = eventlog.entries(state, auth_id, window.start, window.cutoff, granted)
        if _indexed(state, auth_id, period):
            found = _from_the_period(state, auth_id, window, period, granted)
            if found is not None:
                return (*found, True)
    log, book = eventlog.book_before(state, auth, window.cutoff)   # every goods effect up to the cut-off
    start = timestamps.fmt(window.start) if window.start else ""
    return log, book, chained and _indexed(state, auth_id, [entry for entry in log if entry["recorded_at"] >= start])


def _indexed(state, auth_id: str, entries: list[dict]) -> bool:
    """Whether each placement and extension among ``entries`` indexed the lots' bill dates, and each grant and
    amendment itself (what the contract writes with them since these indexes exist; a contract before did not)."""
    terms, due = [], []
    for entry in entries:
        if entry["event_type"] in ("GrantAuthorisation", "AmendAuthorisation"):
            terms.append(keys.auth_terms(auth_id, entry["recorded_at"], entry["tx_id"]))
        for effect in entry["effects"]:
            if effect["op"] == "place":
                due.append(keys.auth_due(auth_id, goods.first_bill_date(effect["lot"]), effect["lot"]["lot_id"]))
            elif effect["op"] == "extend":
                due.extend(keys.auth_due(auth_id, new, lot_id) for lot_id, new in sorted(effect["lots"].items()))
    for wanted in (terms, due):   # the grant's first: an authorisation granted before the indexes reads no more
        state.prefetch(wanted)
        if not all(state.exists(key) for key in wanted):
            return False
    return True


# What reading one good's history costs, in log entries read from the whole log (about three range reads a lot —
# the lot and the batches made from it —, a round trip each, against a page of 100 entries): a bill is computed from
# its period's goods when that costs less than the whole log would (measured: docs/benchmarks.md, bench/history.py).
HISTORY_READ = 15


def _worth_it(goods_read: int, period: list[dict], window: _Window, granted: dt.datetime) -> bool:
    """Whether reading ``goods_read`` goods' histories and the period's entries (read twice: in the period's log and
    in the goods' histories) costs less than the whole log, whose size is judged from the period's at its pace —
    integers only, the same answer on every peer."""
    whole_us, period_us = _micros(window.cutoff - granted), _micros(window.cutoff - window.start)
    return (HISTORY_READ * goods_read + 2 * len(period)) * period_us <= len(period) * whole_us


def _micros(span: dt.timedelta) -> int:
    return (span.days * 86400 + span.seconds) * 1_000_000 + span.microseconds


def _from_the_period(state, auth_id: str, window: _Window, period: list[dict],
                     granted: dt.datetime) -> tuple[list[dict], goods.MemoryBook] | None:
    """What :func:`eventlog.book_before` gives a bill, for the goods it reads: the lots indexed under a date of the
    period (``keys.auth_due``: those a deadline of which the period holds are among them), the goods the previous bill
    carries, the batches made from any of them and the lots each such batch was made from — replayed from their own
    histories up to the cut-off into a book that keeps them alone (:class:`goods.MemoryBook`); with the period's
    entries and the grant and amendments (``keys.auth_terms``), in ledger order. None when a history holds a copy of
    an event (the earlier layout), or when the whole log costs less to read (:func:`_worth_it`)."""
    start, cutoff = timestamps.fmt(window.start), timestamps.fmt(window.cutoff)
    seeds = {(goods.LOT, lot_id) for (_a, _when, lot_id), _ in
             state.scan_between(keys.AUTH_DUE, (auth_id,), (start,), (cutoff,))}
    seeds |= {(item["goods"], item["id"]) for item in window.previous.get("overdue", ())}
    if not _worth_it(len(seeds), period, window, granted):
        return None
    first = eventlog.changes_before(state, auth_id, seeds, cutoff)
    if first is None:
        return None
    kept = set(seeds)
    for entry in first:   # every production in those histories made a batch from one of them (or is a kept batch's)
        for effect in entry["effects"]:
            if effect["op"] == "produce":
                kept.add((goods.BATCH, effect["batch"]["batch_id"]))
                kept |= {(goods.LOT, share["lot_id"]) for share in effect["batch"]["shares"]}
    if not _worth_it(len(kept), period, window, granted):   # their batches and lots too many after all
        return None
    second = eventlog.changes_before(state, auth_id, kept - seeds, cutoff)
    if second is None:
        return None
    changes = {(e["recorded_at"], e["tx_id"]): e for e in [*first, *second]}   # an entry in two histories: once
    terms = [keys.log(auth_id, timestamps.month_of(timestamps.parse_datetime(recorded_at)), recorded_at, tx_id)
             for (_a, recorded_at, tx_id), _ in state.scan_between(keys.AUTH_TERMS, (auth_id,), (), (cutoff,))]
    state.prefetch(terms)
    granted_and_amended = [state.get(key) for key in terms]
    if None in granted_and_amended:
        raise LedgerInconsistent(f"the index of the terms of {auth_id} names a log entry that is not on the ledger",
                                 authorisation_id=auth_id)
    book = eventlog.apply_effects([changes[k] for k in sorted(changes)], goods.MemoryBook(only=kept))
    log = {**changes, **{(e["recorded_at"], e["tx_id"]): e for e in [*period, *granted_and_amended]}}
    return [log[k] for k in sorted(log)], book


def _lot_lines(state, auth: dict, window: _Window, log: list[dict], held: _Goods, totals: dict) -> list[dict]:
    """§7 items 1 and 2: the bill's lots (the rate of yield applied: that of each operation processing it, else
    the one in force) with their products through the lineage; the totals placed, consumed and produced."""
    applied = _rates_applied(log, held.lots) if "rates_applied" in window.formats else {}
    declared_dates = "declared_dates" in window.formats
    lines = []
    for lot in sorted((held.lots[i] for i in held.lot_ids), key=goods.recording_order):
        private_key = state.key(keys.commercial_lot(lot["lot_id"]))
        value_hash = state.stub.get_private_data_hash(keys.COMMERCIAL_COLLECTION, private_key)
        lines.append({
            "lot_id": lot["lot_id"], "mrn": lot["mrn"], "item_no": lot["item_no"], "accepted_at": lot["accepted_at"],
            "cn": lot["cn"], "description": lot["description"], "origin": lot["origin"], "quantity": lot["placed"],
            "unit": lot["unit"], "net_mass_g": lot["net_mass_g"], "deadline": lot["deadline"],
            "original_deadline": lot["original_deadline"], "extended": bool(lot["extensions"]),
            "customs_value_hash": value_hash.hex() if value_hash else None,
            "rates_of_yield": applied.get(lot["lot_id"]) or authorisations.rates_for_input(auth, lot["cn"]),
            "products": [{"batch_id": b_id, "cn": p["cn"], "kind": p["kind"], "unit": p["unit"], "quantity": p["share"],
                          "input_qty": p["input_qty"]} for b_id, p in sorted(lot["products"].items())],
            "consumed": lot["consumed"], "exited": lot["exited"], "lost": lot["lost"], "remaining": goods.balance(lot),
            "discharged": goods.is_discharged(goods.LOT, lot),
            **({"declared_at": goods.declared_at(lot)} if declared_dates else {}),
        })
        _add(totals["placed"], (lot["cn"], lot["unit"]), lot["placed"])
        if lot["consumed"]:
            _add(totals["consumed"], (lot["cn"], lot["unit"]), lot["consumed"])
    for batch in sorted((held.batches[i] for i in held.batch_ids), key=lambda b: (b["accepted_at"], b["batch_id"])):
        _add(totals["produced"], (batch["kind"], batch["cn"], batch["unit"]), batch["produced"])
    return lines


def _processes(entry: dict, held: _Goods) -> bool:
    """Whether the log entry is a processing operation consuming one of the bill's lots."""
    return entry["event_type"] == "RecordProcessing" and any(
        e["op"] == "consume" and e["lot_id"] in held.lot_ids for e in entry["effects"])


def _log_lines(state, window: _Window, log: list[dict], book: goods.MemoryBook, held: _Goods,
               totals: dict) -> dict[str, list[dict]]:
    """From the log: the operations processing the bill's lots, §7 items 3 and 4 — disposals and losses of its
    goods (with their FIFO attribution) and of the goods it carries, recorded in the period — and item 6's
    transactions, alert changes and controls of the period; the totals exited and lost."""
    show_receptions = "receptions_shown" in window.formats
    discharge_dates = "discharge_dates" in window.formats
    window_start = timestamps.fmt(window.start) if window.start else ""
    out = {name: [] for name in ("processing", "disposals", "losses", "controls", "alerts", "transactions")}
    confirmations = declarations.exit_confirmations(state, log, "confirmations_recorded" in window.formats)
    processing = [entry for entry in log if _processes(entry, held)]
    state.prefetch([keys.operation(entry["event"]["operation_id"]) for entry in processing])   # one round trip
    for entry in log:
        in_window = entry["recorded_at"] >= window_start
        if in_window:
            out["transactions"].append({"tx_id": entry["tx_id"], "recorded_at": entry["recorded_at"],
                                        "event_type": entry["event_type"], "event_id": entry["event_id"]})
            out["alerts"].extend({**a, "recorded_at": entry["recorded_at"], "tx_id": entry["tx_id"]}
                                 for a in entry["alerts"])
            if entry["event_type"] == "RecordControl":
                out["controls"].append({"recorded_at": entry["recorded_at"], "tx_id": entry["tx_id"],
                                        "site": entry["event"]["site"], "counted": entry["event"]["counted"],
                                        "findings": entry["event"].get("findings", "")})
        if _processes(entry, held):
            op = state.get(keys.operation(entry["event"]["operation_id"]))
            out["processing"].append({k: op[k] for k in ("operation_id", "site", "inputs", "outputs", "yield",
                                                         "recorded_at", "tx_id")})
        for e in entry["effects"]:
            if e["op"] not in ("exit", "lose"):
                continue
            if held.own(e["kind"], e["id"]):
                mark = {}
            elif in_window and (e["kind"], e["id"]) in held.carried:
                mark = held.carried_mark
            else:
                continue
            rec = book.get(e["kind"], e["id"])
            line = {"goods": e["kind"], "id": e["id"], "cn": rec["cn"], "quantity": e["qty"], "unit": rec["unit"],
                    "attribution": e["attribution"], "input_goods": _input_goods(held.lots, e),
                    "recorded_at": entry["recorded_at"], "occurred_at": entry["occurred_at"], "tx_id": entry["tx_id"],
                    **({"declared_at": time_rules.declared_at(entry["occurred_at"], entry["recorded_at"])}
                       if discharge_dates else {}),
                    **mark}
            if e["op"] == "exit":
                if show_receptions and e["procedure"] == declarations.TRANSFER:
                    line["received"] = _received_before(state, e["mrn"], e["item_no"], window.cutoff)
                out["disposals"].append({"procedure": e["procedure"], "mrn": e["mrn"], "item_no": e["item_no"], **line,
                                         "exit_confirmed": confirmations.get((e["mrn"], e["item_no"]))
                                         if declarations.awaits_confirmation(e) else None})
                _add(totals["exited"], (e["procedure"], rec["cn"], rec["unit"]), e["qty"])
            else:
                out["losses"].append({"reason": e["reason"], "evidence_hash": e["evidence_hash"],
                                      "discharge": e["reason"] == "DESTROYED", **line})
                _add(totals["lost"], (e["reason"], rec["cn"], rec["unit"]), e["qty"])
    return out


def _balances(window: _Window, held: _Goods, totals: dict) -> tuple[list[dict], list[dict], list[dict]]:
    """§7 item 5, the remaining balances (waste included: it is under the procedure until it leaves), and item 6,
    the conservation proof — of the bill's goods and of those it carries; the totals remaining."""
    remaining, waste, conservation = [], [], []
    for kind, ids, records in ((goods.LOT, held.lot_ids, held.lots), (goods.BATCH, held.batch_ids, held.batches)):
        for gid in sorted(ids | {g for k, g in held.carried if k == kind}):
            rec = records[gid]
            mark = held.mark(kind, gid)
            conservation.append({"goods": kind, "id": gid, **goods.conservation(kind, rec), **mark})
            if goods.is_waste(rec):
                waste.append({"batch_id": gid, "cn": rec["cn"], "unit": rec["unit"], "produced": rec["produced"],
                              "exited": rec["exited"], "lost": rec["lost"], "remaining": goods.balance(rec), **mark})
            qty = goods.balance(rec)
            if not qty:
                continue
            deadline = goods.deadline(rec)
            if window.period_end is not None:
                status = "CARRIED_FORWARD" if deadline >= window.cutoff else "OVERDUE"
            else:
                status = "OVERDUE" if window.as_of > deadline else "OPEN"
            remaining.append({"goods": kind, "id": gid, "cn": rec["cn"], "unit": rec["unit"], "quantity": qty,
                              "deadline": rec["deadline"], "status": status, **mark})
            _add(totals["remaining"], (kind, rec["cn"], rec["unit"]), qty)
    return remaining, waste, conservation


def with_commercial_values(state, data: dict) -> dict:
    """Add the customs value of each lot (for members of the ``commercial`` collection only)."""
    for line in data["lots"]:
        raw = state.stub.get_private_data(keys.COMMERCIAL_COLLECTION, state.key(keys.commercial_lot(line["lot_id"])))
        line["customs_value"] = json.loads(raw).get("customs_value") if raw else None
    return data


# ---------------------------------------------------------------------------------------- acts

def _terms_at_cutoff(state, auth: dict, log: list[dict]) -> dict:
    """The authorisation as it stood at the cut-off: the fields of its grant or of its last amendment
    before it (an amendment replaces them all), and that version. A bill is the ledger's as of its cut-off:
    an amendment recorded later changes neither what it shows (rates of yield, office) nor its hash. A
    cut-off before the grant (a bill for a period that ended before it: no goods) shows the terms granted."""
    terms, version = None, 0
    for entry in log or _grant_entries(state, auth):
        if entry["event_type"] in ("GrantAuthorisation", "AmendAuthorisation"):
            terms, version = entry["event"], version + 1
    if terms is None:  # the grant is always in the log; kept for safety
        return auth
    return {**auth, **authorisations.fields_of(terms), "version": version}


def _rates_applied(log: list[dict], lots: dict) -> dict[str, list[dict]]:
    """The rates of yield applied to each processed lot (docs/domain.md §7 item 1): for every operation that
    consumed it, the rates from its goods code in the terms in force then (the grant's or the last amendment's
    before it, as ``processing.check_yield`` read them), in ledger order, each value once. A lot processed only
    under the terms in force at the cut-off shows those, as before; one processed before an amendment changed its
    rates shows the rates it was processed under, not the later ones."""
    terms, applied = None, {}
    for entry in log:
        if entry["event_type"] in ("GrantAuthorisation", "AmendAuthorisation"):
            terms = entry["event"]
        elif entry["event_type"] == "RecordProcessing" and terms is not None:
            for e in entry["effects"]:
                if e["op"] != "consume" or e["lot_id"] not in lots:   # a lot the bill does not read (_replayed)
                    continue
                rates = applied.setdefault(e["lot_id"], [])
                for rate in authorisations.rates_for_input(terms, lots[e["lot_id"]]["cn"]):
                    if all((r["output_cn"], exact(r["output_per_input"])) !=
                           (rate["output_cn"], exact(rate["output_per_input"])) for r in rates):
                        rates.append(rate)
    return applied


def _grant_entries(state, auth: dict) -> list[dict]:
    """The log entry of the authorisation's grant (the first of its log)."""
    granted = timestamps.parse_datetime(auth["granted_at"])
    return eventlog.entries(state, auth["authorisation_id"], granted, granted + dt.timedelta(microseconds=1), granted)


# What a bill shows that earlier contracts did not, each marked on the bills submitted since (a bill submitted
# before, and its later revisions, are computed without it: their hashes stay reproducible):
# ``rates_applied`` — a lot's rates of yield are those its operations applied, not those at the cut-off;
# ``receptions_shown`` — a 5151 transfer's line says whether it was ``received`` on this ledger;
# ``confirmations_recorded`` — which items a ConfirmExit confirmed is read from their records;
# ``declared_dates`` — a lot's line says when its declaration was accepted (``declared_at``, its legally relevant
# date, which its deadline runs from), not only when it was recorded (``accepted_at``);
# ``discharge_dates`` — so does a disposal's or loss's line (its ``occurred_at``, never later than its recording).
FORMATS = ("rates_applied", "receptions_shown", "confirmations_recorded", "declared_dates", "discharge_dates")


def _formats(stored: dict | None) -> set[str]:
    """The FORMATS a bill is computed with: all for a bill not submitted yet, else those its record carries."""
    return set(FORMATS) if stored is None else {name for name in FORMATS if stored.get(name)}


def _received_before(state, mrn: str, item_no: int, cutoff: dt.datetime) -> dict | None:
    """A transfer's reception recorded on this ledger (under the receiving authorisation) before the bill's
    cut-off — when and in which transaction, not the other authorisation's record —, or None: a transfer
    received elsewhere shows its ``exit_confirmed`` instead, one not received yet neither. (A reception is never
    recorded before a submitted bill's cut-off: placement.receive_transfer.)"""
    received = declarations.received_before(state, mrn, item_no, timestamps.fmt(cutoff))
    return {"recorded_at": received["recorded_at"], "tx_id": received["tx_id"]} if received else None


def submit(tx, event: dict) -> dict:
    """SubmitBillOfDischarge (DA art. 175): the period must have ended; the ledger computes the bill and
    the submitted ``document_hash`` must equal its hash. A QUERIED bill may be submitted again (also after a
    later period's bill; OutOfOrder at or before the decision that queried it); no bill while an earlier period's
    is QUERIED. The record keeps the goods the bill flags overdue (``overdue``), which the next bill carries, and
    the FORMATS it was computed with (a bill first submitted without one keeps its hash)."""
    auth = authorisations.get(tx.state, event["authorisation_id"])
    period_end = timestamps.parse_date(event["period_end"], "period_end")
    cutoff = timestamps.end_of(period_end)
    if tx.now < cutoff:
        raise PeriodNotEnded(f"the period ending {event['period_end']} has not ended", period_end=event["period_end"],
                             ledger_time=tx.recorded_at)
    key = keys.bill(auth["authorisation_id"], event["period_end"])
    existing = tx.state.get(key)
    if existing is not None and existing["status"] != QUERIED:
        raise InvalidState(f"the bill for {event['period_end']} is {existing['status']}", bill_id=existing["bill_id"],
                           status=existing["status"])
    if existing is not None and tx.recorded_at <= existing["decision"]["recorded_at"]:
        raise OutOfOrder("a bill submitted again is timestamped at or before the decision that queried it",
                         bill_id=existing["bill_id"], last_change=existing["decision"]["recorded_at"],
                         ledger_time=tx.recorded_at)
    if existing is None:
        _require_no_later_bill(tx.state, auth["authorisation_id"], event["period_end"])
    _require_no_earlier_bill_queried(tx.state, auth["authorisation_id"], event["period_end"])
    data, indexed = _computed(tx.state, auth, period_end, None)
    if data["document_hash"] != event["document_hash"]:
        raise HashMismatch("the submitted hash differs from the bill the ledger computes",
                           submitted=event["document_hash"], computed=data["document_hash"])
    due = timestamps.parse_datetime(data["scope"]["due"])
    bill = {
        "bill_id": bill_id_of(auth["authorisation_id"], event["period_end"]), "authorisation_id": auth["authorisation_id"],
        "period_start": data["scope"]["period_start"], "period_end": event["period_end"], "cutoff": data["cutoff"],
        "due": data["scope"]["due"], "late": tx.now > due, "status": SUBMITTED, "document_hash": data["document_hash"],
        "revision": (existing["revision"] + 1) if existing else 1, "submitted_at": tx.recorded_at, "tx_id": tx.tx_id,
        "lots": [line["lot_id"] for line in data["lots"]], "totals": data["totals"], "decision": None,
    }
    bill.update(dict.fromkeys(sorted(_formats(existing)), True))   # as its earlier revisions computed it
    if indexed:
        bill[INDEXED] = True
    if existing is None or "overdue" in existing:   # a bill first submitted without it keeps its successors' hashes
        bill["overdue"] = [{"goods": r["goods"], "id": r["id"]} for r in data["remaining"] if r["status"] == "OVERDUE"]
    tx.state.put(key, bill)
    authorisations.close_until(tx, auth, data["cutoff"])
    return {"bill": bill}


def _require_no_later_bill(state, authorisation_id: str, period_end: str) -> None:
    """OutOfOrder: a new bill for a period before one already billed (the bills' periods follow each other;
    a QUERIED bill may be submitted again, whatever came after it)."""
    later = [b["period_end"] for b in bills(state, authorisation_id) if b["period_end"] > period_end]
    if later:
        raise OutOfOrder("a bill for a later period exists", period_end=period_end, later=max(later))


def _require_no_earlier_bill_queried(state, authorisation_id: str, period_end: str) -> None:
    """InvalidState: a bill while the bill of an earlier period is QUERIED by customs — that one is answered
    (submitted again) first, so the periods are billed in order."""
    queried = [b["bill_id"] for b in bills(state, authorisation_id)
               if b["period_end"] < period_end and b["status"] == QUERIED]
    if queried:
        raise InvalidState(f"the bill {queried[0]} of an earlier period is QUERIED: submit it again first",
                           bill_id=queried[0], status=QUERIED, period_end=period_end)


def missing_bill(bill_id: str) -> NotFound:
    """The refusal of a bill id not in use (also what a party may not read is: queries.py)."""
    return NotFound(f"no bill of discharge {bill_id}", bill_id=bill_id)


def get_bill(state, bill_id: str) -> dict:
    auth_id, period_end = parse_bill_id(bill_id)
    bill = state.get(keys.bill(auth_id, period_end)) if auth_id else None
    if bill is None:
        raise missing_bill(bill_id)
    return bill


def decide(tx, event: dict) -> dict:
    """DecideBillOfDischarge: customs accept or query a submitted bill (OutOfOrder: timestamped at or before its
    submission)."""
    bill = get_bill(tx.state, event["bill_id"])
    if bill["authorisation_id"] != event["authorisation_id"]:
        raise NotFound(f"bill {event['bill_id']} is not a bill of {event['authorisation_id']}", bill_id=event["bill_id"])
    if bill["status"] != SUBMITTED:
        raise InvalidState(f"bill {event['bill_id']} is {bill['status']}, not SUBMITTED", bill_id=event["bill_id"],
                           status=bill["status"])
    if tx.recorded_at <= bill["submitted_at"]:   # the audit views replay the decision after the submission
        raise OutOfOrder("the decision is timestamped at or before the submission it decides", bill_id=event["bill_id"],
                         last_change=bill["submitted_at"], ledger_time=tx.recorded_at)
    bill["status"] = event["decision"]
    bill["decision"] = {"decision": event["decision"], "note": event.get("note", ""), "recorded_at": tx.recorded_at,
                        "tx_id": tx.tx_id}
    tx.state.put(keys.bill(bill["authorisation_id"], bill["period_end"]), bill)
    return {"bill": bill}
