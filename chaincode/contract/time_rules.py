"""Rules about time: ClockSkew, OutOfOrder, and late recording.

Ledger time is the transaction timestamp. The client sets it, so the endorsing
peers check it against their own clock; since customs endorses every write, no
party can backdate or pre-date an act to dodge a deadline by more than
``max_clock_skew_s`` (within it, the timestamp is the ledger time). Business time
(``occurred_at``) is when the act happened: never in the future, never before
the goods existed — but it may be long past. An ERP that was offline records
what happened when it is back: the event keeps both times (``occurred_at`` and
``recorded_at``), and recording more than ``late_recording_days`` after the act
raises the recorded alert ``LateRecording`` for customs (never a refusal: the
records must be complete).

Which time counts *(design)*: acceptance rules (ClockSkew, validity, suspension,
DeadlinePassed, the ordering of changes) are judged at ledger time, which no
party controls; the period for discharge runs from the legally relevant date,
when the goods were placed (:func:`legal_time`). So lateness can shorten a
period, never lengthen it.
"""
from __future__ import annotations

import datetime as dt

from ipledger.chaincode.contract import alerts, keys, timestamps
from ipledger.chaincode.contract.errors import ClockSkew, OutOfOrder

LATE_RECORDING = "LateRecording"


def no_clock_skew(tx, peer_now: dt.datetime) -> None:
    """ClockSkew: |transaction timestamp − endorsing peer's clock| ≤ ``max_clock_skew_s``."""
    limit = tx.params["max_clock_skew_s"]
    skew = abs((tx.now - peer_now.astimezone(timestamps.UTC)).total_seconds())
    if skew > limit:
        raise ClockSkew(f"transaction timestamp is {skew:.0f} s away from the peer's clock (limit {limit} s)",
                        tx_timestamp=tx.recorded_at, peer_time=timestamps.fmt(peer_now), max_clock_skew_s=limit)


def business_time(tx, event: dict) -> dt.datetime:
    """OutOfOrder: ``occurred_at`` later than the ledger time (beyond the tolerated clock skew). A past
    ``occurred_at`` is accepted however old (see :func:`review_lateness`)."""
    occurred = timestamps.parse_datetime(event["occurred_at"], "occurred_at")
    if occurred > tx.now + dt.timedelta(seconds=tx.params["max_clock_skew_s"]):
        raise OutOfOrder("occurred_at is in the future", occurred_at=event["occurred_at"],
                         ledger_time=tx.recorded_at, max_clock_skew_s=tx.params["max_clock_skew_s"])
    return occurred


def legal_time(tx) -> dt.datetime:
    """The legally relevant date of the act: when it occurred, never later than the ledger time — nor than when
    its declaration was accepted, where another record gives that (``tx.declared_at``: a 5151 transfer is one
    declaration, whose exit may be recorded before its reception)."""
    occurred = tx.occurred_at if tx.occurred_at is not None else tx.now
    legal = min(occurred, tx.now)
    return legal if tx.declared_at is None else min(legal, tx.declared_at)


def declared_at(occurred_at: str | None, recorded_at: str) -> str:
    """The legally relevant date of an act as its record gives it (:func:`legal_time` of the act that was
    recorded at ``recorded_at``): when it occurred, never later than its recording; a record without
    ``occurred_at``, its recording."""
    if occurred_at is None:
        return recorded_at
    return timestamps.fmt(min(timestamps.parse_datetime(occurred_at), timestamps.parse_datetime(recorded_at)))


def late_by(tx) -> dt.timedelta:
    """How long after it occurred the act is recorded (zero for an act recorded as it happens)."""
    return tx.now - legal_time(tx)


def review_lateness(tx, act: str, event: dict) -> None:
    """LateRecording (recorded alert, subject ``<msp_id>:<event_id>``): the act is recorded more than
    ``late_recording_days`` after its ``occurred_at`` — or, however soon, after a change of the authorisation's
    terms that it was declared before and that would have been less favourable to it (``tx.earlier_terms``: a
    placement keeps the period for discharge in force when its declaration was accepted, and a date the
    declarant gives could otherwise lengthen it unseen; or a placement or processing the terms an amendment
    replaced since it occurred would have refused: a site, goods code, product, rate of yield or tolerance it
    changed) — or, however soon, a placement or processing that occurred
    when the authorisation was not in force (``tx.not_in_force_then``: outside its validity, or suspended or revoked
    then; acts are judged at ledger time, and customs are told). It stays raised, a fact for customs to look at (the
    declaration's acceptance date is theirs to check). Events without an authorisation (SetParameters) raise none."""
    allowed = tx.params["late_recording_days"]
    lateness = late_by(tx)
    auth_id = event.get("authorisation_id")
    if auth_id is None or (lateness <= dt.timedelta(days=allowed) and tx.earlier_terms is None
                           and tx.not_in_force_then is None):
        return
    alerts.raise_alert(tx, auth_id, LATE_RECORDING, f"{tx.caller.msp_id}:{event['event_id']}", {
        "event_type": act, "event_id": event["event_id"], "submitted_by": tx.caller.msp_id,
        "occurred_at": event["occurred_at"], "recorded_at": tx.recorded_at,
        "late_by_s": lateness // dt.timedelta(seconds=1), "late_recording_days": allowed,
        **({"declared_at": timestamps.fmt(tx.declared_at)} if tx.declared_at is not None else {}),
        "lots": sorted(tx.lots), "batches": sorted(tx.batches),
        **({"earlier_terms": tx.earlier_terms} if tx.earlier_terms is not None else {}),
        **({"not_in_force_then": tx.not_in_force_then} if tx.not_in_force_then is not None else {}),
    })


def review_transfer_date(tx, event: dict, item_no: int, received: dict, lot_declared_at: str) -> None:
    """LateRecording on the receiving authorisation: a 5151 transfer's exit, recorded after its reception, is
    dated before the received lot's declaration (``lot_declared_at``: goods.declared_at). The transfer is one declaration,
    accepted once; the lot's period for discharge ran from the later date the reception gave, longer than the
    exit's date allows. Its period is not cut after the fact (a submitted bill may already show it): customs are
    told, the exit's date beside the lot's (subject: the transfer, ``TRANSFER:<mrn>/<item_no>``; of the exit, what
    the receiving side may read: the receiving authorisation's holder may be another company)."""
    exit_declared, lot_declared = legal_time(tx), timestamps.parse_datetime(lot_declared_at)
    if exit_declared >= lot_declared:
        return
    alerts.raise_alert(tx, received["authorisation_id"], LATE_RECORDING, f"TRANSFER:{event['mrn']}/{item_no}", {
        "event_type": tx.act, "occurred_at": event["occurred_at"], "recorded_at": tx.recorded_at,
        "late_by_s": (lot_declared - exit_declared) // dt.timedelta(seconds=1),
        "late_recording_days": tx.params["late_recording_days"], "lots": [received["id"]], "batches": [],
        "transfer": {"mrn": event["mrn"], "item_no": item_no, "declared_at": timestamps.fmt(exit_declared),
                     "received_lot_declared_at": lot_declared_at},
    })


def within_open_time(tx, auth: dict) -> None:
    """OutOfOrder: a transaction timestamped before the grant of the authorisation it concerns, at or before its
    last amendment or change of status, or before the cut-off of a bill of discharge already submitted for it
    (``closed_until``). An authorisation's event log, history and bills begin at its grant, and a submitted bill
    stands for its period: an act timestamped earlier would be in none of them. Every act is judged by the
    authorisation as it stands, so it must also come after the last change of it in ledger time: else the log
    would show, say, goods placed while the authorisation was suspended or at a site not yet authorised, or a
    reinstatement before the suspension it lifts. (Ledger time comes from the client, within
    ``max_clock_skew_s`` of the endorsing peers' clocks, so without this rule a slow client clock could
    place an act there.)"""
    if tx.recorded_at < auth["granted_at"]:
        raise OutOfOrder(f"{auth['authorisation_id']} was granted at {auth['granted_at']}, after this "
                         f"transaction's time", authorisation_id=auth["authorisation_id"],
                         granted_at=auth["granted_at"], ledger_time=tx.recorded_at)
    changed = max([auth.get("amended_at") or ""] + [h["recorded_at"] for h in auth["status_history"][1:]])
    if changed and tx.recorded_at <= changed:
        raise OutOfOrder(f"{auth['authorisation_id']} was last amended or changed status at {changed}, not before "
                         "this transaction's time", authorisation_id=auth["authorisation_id"],
                         last_change=changed, ledger_time=tx.recorded_at)
    after_bills(tx, auth)


def after_bills(tx, auth: dict) -> None:
    """OutOfOrder: a transaction timestamped before the cut-off of a bill of discharge ``auth`` submitted
    (``closed_until``) — its own authorisation's (:func:`within_open_time`) or another it writes to: a 5151
    transfer's other side (a reception ends the sender's wait; an exit recorded after its reception may write in
    the receiver's log). A submitted bill stands for its period and its hash: nothing may change it afterwards."""
    closed = auth.get("closed_until")
    if closed and tx.recorded_at < closed:
        raise OutOfOrder(f"a bill of discharge of {auth['authorisation_id']} covers the time up to {closed}, "
                         "after this transaction's time", authorisation_id=auth["authorisation_id"],
                         closed_until=closed, ledger_time=tx.recorded_at)


def after_every_act(tx, auth: dict) -> None:
    """OutOfOrder: a change of an authorisation (an amendment, a suspension, a reinstatement, a revocation)
    timestamped at or before an act already recorded on it. The converse of :func:`within_open_time`: an act
    recorded from a client whose clock runs ahead (within ``max_clock_skew_s``) sits later in ledger time than a
    change customs record just after it, and the log, the histories and the bill replay — all in ledger time —
    would show the act judged by the changed authorisation (a placement after the revocation, a processing
    checked at a rate of yield amended after it). A range read of the authorisation's log from this transaction's
    time on (empty but for such an act): an act committed first into it makes this change fail its read set."""
    later = tx.state.first_from(keys.LOG, (auth["authorisation_id"],), (timestamps.month_of(tx.now), tx.recorded_at))
    if later is not None:
        (_scope, _month, recorded_at, _tx_id), entry = later
        raise OutOfOrder(f"an act on {auth['authorisation_id']} ({entry.get('event_type')}) is recorded at "
                         f"{recorded_at}, not before this transaction's time: record the change after it",
                         authorisation_id=auth["authorisation_id"], last_act=recorded_at,
                         ledger_time=tx.recorded_at)


def not_before_goods(occurred: dt.datetime, record: dict, kind: str, goods_id: str) -> None:
    """OutOfOrder: an event's business time before the placement (or production) of its goods — their legal
    time: ``occurred_at``, never later than their recording (as :func:`legal_time`; an ``occurred_at`` a little
    ahead of the ledger time, within the clock skew, does not hold back the next events)."""
    since = timestamps.parse_datetime(declared_at(record["occurred_at"], record["accepted_at"]))
    if occurred < since:
        raise OutOfOrder(f"occurred_at is before the {'placement' if kind == 'LOT' else 'production'} "
                         f"of {goods_id}", occurred_at=timestamps.fmt(occurred), goods_since=record["occurred_at"],
                         goods=kind, id=goods_id)


def after_last_change(tx, record: dict, kind: str, goods_id: str) -> None:
    """OutOfOrder: a transaction timestamped before (or at) the last recorded change of the goods it
    changes. This keeps ledger-time order equal to causal order for every lot and batch, which the event
    log, the history and the bill of discharge rely on."""
    if record.get("updated_tx") != tx.tx_id and record.get("updated_at", "") >= tx.recorded_at:
        raise OutOfOrder(f"{goods_id} was last changed at {record['updated_at']}, not before this transaction",
                         goods=kind, id=goods_id, last_change=record["updated_at"], ledger_time=tx.recorded_at)
