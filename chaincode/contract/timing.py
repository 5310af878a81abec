"""Rules about time: ClockSkew and OutOfOrder.

Ledger time is the transaction timestamp. The client sets it, so the endorsing
peers check it against their own clock; since customs endorses every write, no
party can backdate or pre-date an act to dodge a deadline. Business time
(``occurred_at``) is informative but bounded: not in the future, not
backdated beyond ``backdate_max_days``, and not before the goods existed.
"""
from __future__ import annotations

import datetime as dt

from . import times
from .errors import ClockSkew, OutOfOrder


def no_clock_skew(tx, peer_now: dt.datetime) -> None:
    """ClockSkew: |transaction timestamp − endorsing peer's clock| ≤ ``max_clock_skew_s``."""
    limit = tx.params["max_clock_skew_s"]
    skew = abs((tx.now - peer_now.astimezone(times.UTC)).total_seconds())
    if skew > limit:
        raise ClockSkew(f"transaction timestamp is {skew:.0f} s away from the peer's clock (limit {limit} s)",
                        tx_timestamp=tx.recorded_at, peer_time=times.fmt(peer_now), max_clock_skew_s=limit)


def business_time(tx, event: dict) -> dt.datetime:
    """OutOfOrder: ``occurred_at`` backdated beyond ``backdate_max_days`` or later than the ledger time
    (beyond the tolerated clock skew)."""
    occurred = times.parse_datetime(event["occurred_at"], "occurred_at")
    earliest = tx.now - dt.timedelta(days=tx.params["backdate_max_days"])
    if occurred < earliest:
        raise OutOfOrder(f"occurred_at is backdated more than {tx.params['backdate_max_days']} day(s)",
                         occurred_at=event["occurred_at"], ledger_time=tx.recorded_at,
                         backdate_max_days=tx.params["backdate_max_days"])
    if occurred > tx.now + dt.timedelta(seconds=tx.params["max_clock_skew_s"]):
        raise OutOfOrder("occurred_at is in the future", occurred_at=event["occurred_at"],
                         ledger_time=tx.recorded_at)
    return occurred


def not_before_goods(occurred: dt.datetime, record: dict, kind: str, goods_id: str) -> None:
    """OutOfOrder: an event's business time before the placement (or production) of its goods."""
    since = times.parse_datetime(record["occurred_at"])
    if occurred < since:
        raise OutOfOrder(f"occurred_at is before the {'placement' if kind == 'LOT' else 'production'} "
                         f"of {goods_id}", occurred_at=times.fmt(occurred), goods_since=record["occurred_at"],
                         goods=kind, id=goods_id)


def after_last_change(tx, record: dict, kind: str, goods_id: str) -> None:
    """OutOfOrder: a transaction timestamped before (or at) the last recorded change of the goods it
    changes. This keeps ledger-time order equal to causal order for every lot and batch, which the event
    log, the history and the bill of discharge rely on."""
    if record.get("updated_tx") != tx.tx_id and record.get("updated_at", "") >= tx.recorded_at:
        raise OutOfOrder(f"{goods_id} was last changed at {record['updated_at']}, not before this transaction",
                         goods=kind, id=goods_id, last_change=record["updated_at"], ledger_time=tx.recorded_at)
