"""The append-only event log, idempotency, and the one chaincode event per transaction.

Every accepted event is written once under ``log/<authorisation>/<YYYY-MM>/<recorded_at>/<tx_id>``
(a period's events are a few range reads, one per month). The history of every lot and batch it
concerns gets a *reference* to that entry — ``lot.log/<lot>/<recorded_at>/<tx_id>`` holding only the
log entry's scope and month — and the history query reads the entries it names and keeps the
effects on that lot or batch. The event is written once, whatever the number of goods it touches
(a processing touches four): the peers' state database grows by the event, not by four copies of
it, and its reads slow down with its size (docs/benchmarks.md, goal 5). Ledgers written before this
layout hold a copy of the event in each history entry; the query reads both. Corrections are new
events, never edits.

Idempotency: ``event/<msp_id>/<event_id>`` keeps the SHA-256 of the event's
canonical content (type, event, hash of the commercial data, submitting MSP) and
the result. Event ids are per submitting organisation: each ERP numbers its own
events, and one organisation can neither take another's ids first nor learn,
through a ``DuplicateEvent``, that another used an id (or its transaction id).
From the same organisation, the same id with the same content returns the
original result — including the original tx id — and writes nothing; different
content is a ``DuplicateEvent``.
"""
from __future__ import annotations

import datetime as dt
import math
from typing import Iterator

from ipledger.chaincode.contract import decimals, goods, keys, timestamps
from ipledger.chaincode.contract.errors import DuplicateEvent, InvalidEvent, LedgerInconsistent
from ipledger.chaincode.contract.state import canonical_json, digest

EVENT_NAME = "ipledger.events"
PAYLOAD_VERSION = 1


def content_hash(tx, act: str, event: dict, normalised: bool = True, instants: bool = True) -> str:
    """SHA-256 of the event's canonical content. Its numbers are taken as the values the contract reads
    (:func:`same_numbers`): ``1.0`` and ``1`` are one content; and its date-times as the instants the contract
    reads (:func:`same_instants`): ``…T10:00:00Z`` and ``…T11:00:00.000+01:00`` are one content.
    ``instants=False``: the hash of events recorded before date-times were normalised; ``normalised=False``:
    before numbers were."""
    content = event
    if normalised:
        content = same_numbers(content)
        if instants:
            content = same_instants(content)
    return digest({"type": act, "event": content, "msp_id": tx.caller.msp_id,
                   "commercial": digest(tx.commercial) if tx.commercial is not None else None})


# the events' date-time members (the schemas' ``common.json#/$defs/dateTime``)
DATE_TIME_FIELDS = ("occurred_at", "new_deadline")


def same_instants(event: dict) -> dict:
    """``event`` with each date-time member written as the instant the contract reads (:func:`timestamps.fmt`:
    UTC, microseconds), so that an ERP writing one moment another way when it sends an event again — ``Z`` or
    ``+00:00``, with or without fractions — sends the same content. One it cannot read stays as it is."""
    out = dict(event)
    for name in DATE_TIME_FIELDS:
        if isinstance(out.get(name), str):
            try:
                out[name] = timestamps.fmt(timestamps.parse_datetime(out[name], name))
            except InvalidEvent:
                pass
    return out


def same_numbers(value):
    """``value`` with every whole number written as a fraction (``1.0``, ``2e0``) written as an integer. The
    contract reads every number by its exact value (``decimals.exact``: 1.0 and 1 are both 1) and counts
    quantities in integers only (the schemas refuse ``10.0``), so this changes no event's meaning. Other
    numbers are already one text per value (the shortest form of a JSON float); ``NaN`` and the infinities, which
    no schema takes, stay as they are."""
    if isinstance(value, float) and math.isfinite(value) and (exact := decimals.exact(value)).denominator == 1:
        return int(exact)   # the value the contract reads (1e+23 is 10**23, not the float's binary value)
    if isinstance(value, dict):
        return {k: same_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [same_numbers(v) for v in value]
    return value


def replay(tx, act: str, event: dict) -> dict | None:
    """The original result if this event was already recorded; DuplicateEvent if the id was used for
    other content; None for a new event. (An event recorded before its numbers, or its date-times, were
    normalised for the hash is known by the hash of its content so normalised then.)"""
    seen = tx.state.get(keys.event(tx.caller.msp_id, event["event_id"]))
    if seen is None:
        return None
    if seen["hash"] not in (content_hash(tx, act, event), content_hash(tx, act, event, instants=False),
                            content_hash(tx, act, event, normalised=False)):
        raise DuplicateEvent(f"event_id {event['event_id']} was already used for other content",
                             event_id=event["event_id"], original_tx_id=seen["result"]["tx_id"],
                             original_type=seen["result"]["event_type"])
    return seen["result"]


def record(tx, act: str, event: dict, result: dict) -> dict:
    """Write the log entry, the goods' history entries and the idempotency record; set the event."""
    final = {"event_type": act, "event_id": event["event_id"], "tx_id": tx.tx_id,
             "recorded_at": tx.recorded_at, "occurred_at": event["occurred_at"], **result}
    scope = event.get("authorisation_id", keys.CHANNEL_SCOPE)
    own, others = _alerts_by_log(scope, tx.alert_changes)
    entry = {
        "tx_id": tx.tx_id, "recorded_at": tx.recorded_at, "event_type": act, "event_id": event["event_id"],
        "authorisation_id": event.get("authorisation_id"), "occurred_at": event["occurred_at"],
        "submitted_by": tx.caller.public(), "event": event, "effects": tx.effects,
        "alerts": own, "lots": sorted(tx.lots), "batches": sorted(tx.batches),
    }
    month = timestamps.month_of(tx.now)
    tx.state.put(keys.log(scope, month, tx.recorded_at, tx.tx_id), entry)
    for other, changes in others.items():   # the act changed another authorisation's alerts: its log says so
        tx.state.put(keys.log(other, month, tx.recorded_at, tx.tx_id), _entry_for_another(entry, other, changes))
    for kind, ids, key in ((goods.LOT, tx.lots, keys.lot_log), (goods.BATCH, tx.batches, keys.batch_log)):
        for goods_id in sorted(ids):
            tx.state.put(key(goods_id, tx.recorded_at, tx.tx_id), {"scope": scope, "month": month})
    tx.state.put(keys.event(tx.caller.msp_id, event["event_id"]),
                 {"hash": content_hash(tx, act, event), "result": final})
    tx.stub.set_event(EVENT_NAME, canonical_json(chaincode_event(tx, act, event)))
    return final


def _alerts_by_log(scope: str, changes: list[dict]) -> tuple[list[dict], dict[str, list[dict]]]:
    """The alert changes of an act of ``scope`` (an authorisation) that go in its own log entry, and those of each
    other authorisation, by id in order: a 5151 transfer's exit recorded after its reception carries a control's
    difference to the receiving authorisation's goods (controls.carry_transfer), and that authorisation's log —
    what its past alerts and bills are replayed from — must hold the change. An act of the whole channel keeps
    every change in its one entry, and each authorisation's log the changes of its alerts (customs' new
    thresholds: alert_rules.review_thresholds)."""
    own, others = [], {}
    for change in changes:
        if scope == keys.CHANNEL_SCOPE:
            own.append(change)
            if change["authorisation_id"] is not None:
                others.setdefault(change["authorisation_id"], []).append(change)
        elif change["authorisation_id"] in (scope, None):
            own.append(change)
        else:
            others.setdefault(change["authorisation_id"], []).append(change)
    return own, dict(sorted(others.items()))


def _entry_for_another(entry: dict, authorisation_id: str, changes: list[dict]) -> dict:
    """The entry an act of one authorisation writes in another's log when it changed that one's alerts: the
    transaction, its time and type, the changes — and of the act itself only what the other side may read (the
    declaration item both recorded, for a 5151 transfer; never the act's goods, sites, event id or submitter:
    the other authorisation's holder may be another company)."""
    event = entry["event"]
    return {"tx_id": entry["tx_id"], "recorded_at": entry["recorded_at"], "event_type": entry["event_type"],
            "event_id": None, "authorisation_id": authorisation_id, "occurred_at": entry["occurred_at"],
            "submitted_by": {}, "event": {"mrn": event["mrn"], "item_no": event.get("item_no", 1),
                                          "procedure": event["procedure"]} if "mrn" in event else {},
            "effects": [], "alerts": changes, "lots": [], "batches": [], "by_authorisation": entry["authorisation_id"]}


def chaincode_event(tx, act: str, event: dict) -> dict:
    """The payload of the ``ipledger.events`` chaincode event (documented in EVENTS.md)."""
    return {
        "version": PAYLOAD_VERSION, "tx_id": tx.tx_id, "recorded_at": tx.recorded_at,
        "events": [{"event_type": act, "event_id": event["event_id"],
                    "authorisation_id": event.get("authorisation_id"), "occurred_at": event["occurred_at"],
                    "submitted_by": tx.caller.public(), "lots": sorted(tx.lots), "batches": sorted(tx.batches),
                    "event": event}],
        "alerts": tx.alert_changes,
    }


# ---------------------------------------------------------------------------------------- reading

MAX_MONTHS = 1200


def entries(state, scope: str, start: dt.datetime | None, end: dt.datetime, first: dt.datetime, *,
            after: tuple[str, str] | None = None, limit: int | None = None) -> list[dict]:
    """Log entries of ``scope`` with start ≤ recorded_at < end, in ledger-time order (then by transaction id, as
    their keys). ``first`` bounds the months to read (e.g. the grant of the authorisation). ``after``, the
    ``(recorded_at, tx_id)`` of an entry: only the entries past it; ``limit``: at most that many, the months
    past the one that completes them not read."""
    lo = max(start or first, first)
    if after is not None:
        lo = max(lo, timestamps.parse_datetime(after[0]))
    if end <= lo:
        return []
    months = timestamps.months_between(lo, end)
    if len(months) > MAX_MONTHS:
        raise InvalidEvent("the period is too long", months=len(months), max_months=MAX_MONTHS)
    lo_text, hi_text = timestamps.fmt(lo), timestamps.fmt(end)
    out = []
    for month in months:
        if month in (months[0], months[-1]):
            # the first and last months read from ``lo`` and up to ``end`` only: entries recorded after ``end`` (by
            # transactions committed meanwhile, in the current month) are outside this one's range reads
            found = state.scan_between(keys.LOG, (scope, month), (lo_text,) if month == months[0] else (),
                                       (hi_text,) if month == months[-1] else None)
        else:
            found = state.scan(keys.LOG, scope, month)
        for _attrs, entry in found:
            if lo_text <= entry["recorded_at"] < hi_text and (after is None
                                                              or (entry["recorded_at"], entry["tx_id"]) > after):
                out.append(entry)
                if limit is not None and len(out) == limit:
                    return out
    return out


def since(state, scope: str, start: dt.datetime) -> list[dict]:
    """Every log entry of ``scope`` recorded at or after ``start``, in ledger-time order, whenever recorded — those a
    client's clock put after the reader's moment too: one range read from ``start`` to the end of the scope's log."""
    lo_text = timestamps.fmt(start)
    return [entry for _attrs, entry in state.scan_between(keys.LOG, (scope,), (timestamps.month_of(start), lo_text))
            if entry["recorded_at"] >= lo_text]


def history(state, kind: str, goods_id: str) -> list[dict]:
    """Every event in the history of a lot or batch, oldest first: the log entries its references name
    (read in one round trip), each with only the effects on this lot or batch."""
    object_type = keys.LOT_LOG if kind == goods.LOT else keys.BATCH_LOG
    found = [(keys.log(ref["scope"], ref["month"], recorded_at, tx_id) if "event" not in ref else None, ref)
             for (_goods_id, recorded_at, tx_id), ref in state.scan(object_type, goods_id)]
    state.prefetch([log_key for log_key, _ref in found if log_key is not None])
    return [goods_entry(_referenced(state, log_key, kind, goods_id), kind, goods_id) if log_key is not None
            else ref for log_key, ref in found]


def history_from(state, kind: str, goods_id: str, start: str) -> Iterator[dict]:
    """The history of a lot or batch from ``start`` (a ledger time) on, oldest first, each entry read as it is
    asked for: a caller looking for the first event of a kind reads no further."""
    object_type = keys.LOT_LOG if kind == goods.LOT else keys.BATCH_LOG
    for (_goods_id, recorded_at, tx_id), ref in state.scan_from(object_type, (goods_id,), (start,)):
        yield goods_entry(_referenced(state, keys.log(ref["scope"], ref["month"], recorded_at, tx_id), kind,
                                      goods_id), kind, goods_id) if "event" not in ref else ref


def changes_before(state, scope: str, of: set[tuple[str, str]], before: str) -> list[dict] | None:
    """Every log entry of ``scope`` recorded before ``before`` (a ledger time) in the history of one of the goods
    ``of`` (``(kind, id)``): every entry that changed one of them, each read once — read through the goods'
    histories, not the whole log. None when a history holds a copy of an event (the layout of ledgers written before
    references), which cannot be replayed."""
    wanted: dict[tuple, tuple[str, str]] = {}
    for kind, goods_id in sorted(of):
        object_type = keys.LOT_LOG if kind == goods.LOT else keys.BATCH_LOG
        for (_goods_id, recorded_at, tx_id), ref in state.scan_between(object_type, (goods_id,), (), (before,)):
            if "event" in ref:
                return None
            if ref["scope"] == scope:
                wanted.setdefault(keys.log(scope, ref["month"], recorded_at, tx_id), (kind, goods_id))
    state.prefetch(list(wanted))
    return [_referenced(state, log_key, kind, goods_id) for log_key, (kind, goods_id) in wanted.items()]


def _referenced(state, log_key: tuple, kind: str, goods_id: str) -> dict:
    """The log entry a history reference names; both are written by the same transaction, so a missing
    entry is a damaged ledger (``LedgerInconsistent``), never a shorter audit trail."""
    entry = state.get(log_key)
    if entry is None:
        raise LedgerInconsistent(f"the history of {kind.lower()} {goods_id} names a log entry that is not on the "
                                 f"ledger: {list(log_key)}", goods=kind, id=goods_id)
    return entry


def goods_entry(entry: dict, kind: str, goods_id: str) -> dict:
    """A log entry as the history of one lot or batch shows it: who recorded which event when, and its
    effects on that lot or batch. (A history entry of the earlier layout is exactly this, stored.)"""
    return {**{k: entry[k] for k in ("tx_id", "recorded_at", "event_type", "event_id", "occurred_at",
                                     "submitted_by", "event")},
            "effects": [e for e in entry["effects"] if goods.concerns(e, kind, goods_id)]}


def book_before(state, auth: dict, cutoff: dt.datetime) -> tuple[list[dict], goods.MemoryBook]:
    """The authorisation's log entries recorded before ``cutoff``, in ledger order, and its lots and batches as
    they stood then: the recorded goods effects applied again (the same :func:`goods.apply`)."""
    granted = timestamps.parse_datetime(auth["granted_at"])
    log = sorted(entries(state, auth["authorisation_id"], None, cutoff, granted),
                 key=lambda e: (e["recorded_at"], e["tx_id"]))
    return log, apply_effects(log, goods.MemoryBook())


def apply_effects(log: list[dict], book: goods.MemoryBook) -> goods.MemoryBook:
    """``book`` with the goods effects of ``log`` (entries in ledger order) applied again (:func:`goods.apply`)."""
    for entry in log:
        for effect in entry["effects"]:
            goods.apply(book, effect, entry["recorded_at"], entry["tx_id"])
    return book
