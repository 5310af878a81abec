"""The webhook delivery queue and log, in the feed database."""
from __future__ import annotations

import json
import sqlite3
import time
from typing import Callable, Iterable

from ipledger.gateway import moments
from ipledger.gateway.feed.store import FeedStore, now_text
from ipledger.gateway.webhooks.subscriptions import WebhookError

class Deliveries:
    """The delivery queue and log (table ``deliveries`` of the feed database: WAL, ``synchronous=FULL``, so a
    queued delivery is on disk — fsynced — when :meth:`enqueue_many` returns)."""

    def __init__(self, store: FeedStore):
        self.store = store

    def enqueue(self, sub: dict, alert_id: str, body: dict, *, needs_check: bool = False) -> bool:
        return self.enqueue_many([(sub, alert_id, body)], needs_check=needs_check) == 1

    def enqueue_many(self, entries: list[tuple[dict, str, dict]], *, needs_check: bool = False,
                     also: Callable[[sqlite3.Connection], None] | None = None) -> int:
        """Queue ``(subscription, alert id, body)`` deliveries in one transaction (all or none), with what
        ``also(db)`` writes; how many were new (one per subscription and alert id: queuing again is
        harmless). ``needs_check``: whether the subscription's org may read the alert's authorisation is
        asked before sending (:class:`Dispatcher`)."""
        if not entries and also is None:
            return 0
        queued_at, created = time.time(), now_text()
        with self.store.transaction() as db:
            added = 0
            for sub, alert_id, body in entries:
                alert = body.get("alert") or {}
                text = json.dumps({**body, "subscription_id": sub["id"]}, separators=(",", ":"), sort_keys=True,
                                  ensure_ascii=False)
                cur = db.execute(
                    "INSERT OR IGNORE INTO deliveries (subscription_id, alert_id, org, authorisation_id, "
                    "alert_type, body, status, attempts, needs_check, next_attempt_at, created_at) "
                    "VALUES (?,?,?,?,?,?, 'PENDING', 0, ?, ?, ?)",
                    (sub["id"], alert_id, sub["org"], alert.get("authorisation_id"), alert.get("type"), text,
                     1 if needs_check else 0, queued_at, created))
                added += cur.rowcount
            if also is not None:
                also(db)
        return added

    def checked(self, delivery_id: int) -> None:
        """The subscription's org may read the authorisation: the delivery can be sent."""
        with self.store.connection() as db:
            db.execute("UPDATE deliveries SET needs_check = 0, last_error = NULL WHERE delivery_id = ?", (delivery_id,))

    def drop(self, delivery_id: int) -> None:
        """The subscription's org may not read the authorisation: the delivery is never sent, nor logged."""
        with self.store.connection() as db:
            db.execute("DELETE FROM deliveries WHERE delivery_id = ? AND needs_check = 1", (delivery_id,))

    def check_failed(self, delivery_id: int, error: str, next_attempt_at: float) -> None:
        """The check could not be made (the ledger unreachable): ask again at ``next_attempt_at``."""
        with self.store.connection() as db:
            db.execute("UPDATE deliveries SET checks = checks + 1, last_error = ?, next_attempt_at = ? "
                       "WHERE delivery_id = ?", (error, next_attempt_at, delivery_id))

    def due(self, now: float, limit: int = 20) -> list[dict]:
        """The oldest pending delivery of each subscription, if its time has come."""
        with self.store.connection() as db:
            rows = db.execute(
                "SELECT * FROM deliveries WHERE delivery_id IN (SELECT min(delivery_id) FROM deliveries "
                "WHERE status = 'PENDING' GROUP BY subscription_id) AND next_attempt_at <= ? ORDER BY delivery_id "
                "LIMIT ?", (now, limit)).fetchall()
        return [dict(r) for r in rows]

    def record(self, delivery_id: int, *, delivered: bool, status: int | None, error: str | None,
               next_attempt_at: float | None, failed: bool) -> None:
        new_status = "DELIVERED" if delivered else ("FAILED" if failed else "PENDING")
        with self.store.connection() as db:
            db.execute("UPDATE deliveries SET status = ?, attempts = attempts + 1, last_status = ?, last_error = ?, "
                       "next_attempt_at = coalesce(?, next_attempt_at), delivered_at = ? WHERE delivery_id = ?",
                       (new_status, status, error, next_attempt_at, now_text() if delivered else None, delivery_id))

    def end(self, delivery_id: int, error: str) -> None:
        """No more attempts: FAILED for ``error``, without an attempt of its own."""
        with self.store.connection() as db:
            db.execute("UPDATE deliveries SET status = 'FAILED', last_error = ? WHERE delivery_id = ?",
                       (error, delivery_id))

    def resend(self, delivery_ids: Iterable[int] = (), *, all_failed: bool = False,
               subscription_id: str | None = None, active: Iterable[str], now: float | None = None) -> list[int]:
        """Queue FAILED deliveries again (``ipledger gateway webhooks resend``), e.g. once a subscriber that was
        down longer than the attempts last is back: PENDING at once, with a new series of attempts (``attempts``
        from 0, ``resent`` + 1); the subscription's organisation's right to read the authorisation is asked again
        before the first. ``delivery_ids``: those deliveries — each must exist, be FAILED and belong to an
        ``active`` subscription (else a :class:`WebhookError` naming it, and none is queued); ``all_failed``: every
        FAILED delivery of the active subscriptions (of ``subscription_id`` only, if given). The ids queued, in
        order (a subscription's deliveries still go oldest first); ``now``: when they are due (default: now)."""
        ids, active = sorted(set(int(i) for i in delivery_ids)), set(active)
        if not ids and not all_failed:
            raise WebhookError("name the deliveries to send again, or all FAILED ones")
        if subscription_id is not None and subscription_id not in active:
            raise WebhookError(f"no active subscription {subscription_id}: the deliveries of a removed "
                               f"subscription are not sent again")
        with self.store.transaction() as db:
            rows = {r["delivery_id"]: r for r in db.execute(
                f"SELECT delivery_id, subscription_id, status FROM deliveries WHERE delivery_id IN "
                f"({','.join('?' * len(ids))})", ids)} if ids else {}
            for delivery_id in ids:
                row = rows.get(delivery_id)
                if row is None:
                    raise WebhookError(f"no delivery {delivery_id}")
                if row["status"] != "FAILED":
                    raise WebhookError(f"delivery {delivery_id} is {row['status']}: only FAILED deliveries are "
                                       f"sent again")
                if row["subscription_id"] not in active:
                    raise WebhookError(f"delivery {delivery_id} is to subscription {row['subscription_id']}, "
                                       f"removed: its deliveries are not sent again")
                if subscription_id is not None and row["subscription_id"] != subscription_id:
                    raise WebhookError(f"delivery {delivery_id} is to subscription {row['subscription_id']}, "
                                       f"not {subscription_id}")
            subs = ([subscription_id] if subscription_id is not None else sorted(active)) if all_failed else []
            if subs:
                ids = sorted(set(ids) | {r["delivery_id"] for r in db.execute(
                    f"SELECT delivery_id FROM deliveries WHERE status = 'FAILED' AND subscription_id IN "
                    f"({','.join('?' * len(subs))})", subs)})
            for delivery_id in ids:
                db.execute("UPDATE deliveries SET status = 'PENDING', attempts = 0, checks = 0, "
                           "resent = resent + 1, next_attempt_at = ? WHERE delivery_id = ? AND status = 'FAILED'",
                           (time.time() if now is None else now, delivery_id))
        return ids

    def log(self, org: str | None = None, limit: int = 200, status: str | None = None) -> list[dict]:
        """The delivery log, newest first (``org``: only that org's subscriptions)."""
        sql, args = "SELECT * FROM deliveries WHERE 1=1", []
        if org:  # not before the org is known to may read the authorisation (the row may yet be dropped)
            sql += " AND org = ? AND needs_check = 0"
            args.append(org)
        if status:
            sql += " AND status = ?"
            args.append(status)
        sql += " ORDER BY delivery_id DESC LIMIT ?"
        args.append(limit)
        with self.store.connection() as db:
            rows = db.execute(sql, args).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d.pop("body", None)
            d.pop("needs_check", None)
            d.pop("checks", None)
            d["next_attempt_at"] = moments.text(d["next_attempt_at"]) if d["status"] == "PENDING" else None
            out.append(d)
        return out


# ------------------------------------------------------------------------------------------ producing alerts
