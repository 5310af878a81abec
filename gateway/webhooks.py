"""Alert webhooks: subscriptions (admins, CLI), signed deliveries, retries, a delivery log.

Subscriptions live in the organisation's own ``<state>/<org name>/gateway/webhooks.json`` (mode 0600:
it holds the signing secrets), managed with ``ipledger gateway webhooks --gateway MSP add URL --org MSP
[--secret S] [--types T,…] [--channels C,…] [--authorisations A,…]`` / ``list`` /
``remove ID`` / ``deliveries`` / ``resend``. A subscription receives the alerts its organisation may read (the
contract decides, as for every query): a broker's subscription never hears of an authorisation the
broker has no mandate for. It may narrow them (:func:`wants`): to some alert types, to some of its gateway's
channels (on customs' gateway, one holder's), to some authorisations.

What is sent:

* **recorded alerts** — every alert change (RAISED / UPDATED / CLEARED) inside a chaincode event, as
  the feed listener stores it (:mod:`ipledger.gateway.feed.listener`); ``alert_id`` = hash of (tx id, position);
* **time alerts** (``DeadlineApproaching`` … ``AuthorisationExpiring``: no transaction, no event) —
  ``GetAlerts`` polled every ``alert_poll_s`` for each subscribed org and authorisation; a new one is
  RAISED, a vanished one CLEARED; ``alert_id`` = hash of (org, authorisation, type, subject, change, the moment
  the alert is about — its deadline, due date, declaration or end of validity — and which raise of it this is),
  the same if the gateway's database is lost and the alert found again.

Each delivery is ``POST URL`` with the JSON body, ``Content-Type: application/json``,
``X-Ipledger-Timestamp: <Unix seconds of this attempt>``,
``X-Ipledger-Signature-V2: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>``,
``X-Ipledger-Signature: sha256=<hex HMAC-SHA256(secret, body)>`` (kept for receivers written before the
timestamp was signed), ``X-Ipledger-Alert-Id``, ``X-Ipledger-Delivery`` and ``X-Ipledger-Attempt``. Receivers
check the V2 signature and its timestamp with :func:`verify` (within 5 minutes of their clock): a delivery
captured on its way cannot be played to them again later — the body-only signature does not protect against
that. A 2xx answer delivers it; anything else (or no
whole answer within ``webhook_timeout_s`` — the whole attempt, however slowly the subscriber answers) is
retried after ``webhook_backoff_s`` × 2^(attempt−1) (capped), at most ``webhook_max_attempts`` times, then
marked FAILED; ``ipledger gateway webhooks resend`` queues FAILED ones again (:meth:`Deliveries.resend`).
Deliveries to one subscription go in order (the oldest pending first). **At least once**: a delivery can arrive
twice (e.g. the gateway stopped after the receiver answered but before the result was stored) — de-duplicate on
``alert_id``.

One file: subscriptions, the delivery queue, the router that turns alerts into deliveries
and the dispatcher that sends them are the four steps of one delivery, sharing its record and its states.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import http.client
import json
import logging
import re
import secrets
import socket
import sqlite3
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, Iterable

from ipledger.gateway.feed.store import FeedStore, now_text
from ipledger.gateway.feed.visibility import Visibility
from ipledger.gateway import moments
from ipledger.gateway.client_tls import NoRedirect, is_loopback
from ipledger.gateway.filestore import CorruptFileError, JsonFile, LeadLock, require_owner_only
from ipledger.gateway.problems import Problem

log = logging.getLogger("ipledger.gateway.webhooks")

SIGNATURE_HEADER = "X-Ipledger-Signature"         # of the body alone: receivers written before the time was signed
SIGNATURE_V2_HEADER = "X-Ipledger-Signature-V2"   # of "<timestamp>." + body
TIMESTAMP_HEADER = "X-Ipledger-Timestamp"
CHANNEL_NAME = re.compile(r"[a-z][a-z0-9.-]{0,248}")   # Fabric's channel names
AUTHORISATION_ID = re.compile(r"[!-~]{1,128}")          # the contract's identifiers: printable ASCII, no space
SIGNATURE_TOLERANCE_S = 300   # what `verify` accepts between the delivery's time and the receiver's clock
ALERT_TYPES = ("DeadlineApproaching", "DeadlineOverdue", "BillOfDischargeDue", "BillOfDischargeLate",
               "YieldDeviation", "BalanceDiscrepancy", "CeilingNear", "LossRateHigh", "ExitUnconfirmed",
               "AuthorisationSuspended", "AuthorisationExpiring", "LateRecording",
               "DeclarationAcrossChannels")   # the last: customs' gateway's own (gateway/feed/declarations.py)



class WebhookError(RuntimeError):
    """A subscription cannot be added or changed as asked (its URL, secret or filters refused)."""


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """``sha256=`` and the hex HMAC-SHA256, with the subscription's secret, of the timestamp's digits (Unix
    seconds), a dot and the exact body — :data:`SIGNATURE_V2_HEADER`: the time is signed with the body, so a
    delivery captured on its way cannot be sent to the receiver again later, once it has forgotten the alert id
    (receivers refuse a timestamp outside their tolerance). Without a timestamp: of the body alone, the
    :data:`SIGNATURE_HEADER` receivers written before the timestamped one check (kept for them; no protection
    against a replay)."""
    message = body if timestamp is None else str(int(timestamp)).encode("ascii") + b"." + body
    return "sha256=" + hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None, timestamp: str | int | None = None, *,
           tolerance_s: float = SIGNATURE_TOLERANCE_S, now: float | None = None) -> bool:
    """For receivers: with ``timestamp`` (``X-Ipledger-Timestamp``), does ``header`` (``X-Ipledger-Signature-V2``)
    sign it and ``body`` with ``secret``, and was it sent within ``tolerance_s`` seconds of ``now`` (the receiver's
    clock)? Without: does ``header`` (``X-Ipledger-Signature``) sign ``body`` alone — the check of receivers
    written before the timestamp, which a captured delivery sent again also passes. Any header, however
    malformed, is a plain False."""
    if not header:
        return False
    if timestamp is None:
        expected = sign(secret, body)
    else:
        stamp = str(timestamp)
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
            return False
        if abs((time.time() if now is None else now) - int(stamp)) > tolerance_s:
            return False
        expected = sign(secret, body, int(stamp))
    # as bytes: compare_digest refuses (TypeError) a text with a non-ASCII character, which anyone may send
    return hmac.compare_digest(expected.encode("ascii"), str(header).encode("utf-8", "surrogatepass"))


# What fixes a time alert in time, in the contract's own details (its deadline, the bill's due date, the declaration's
# acceptance, the end of validity): the same alert computed again gets the same alert id whenever this gateway first
# saw it — after its feed database was lost or put back from an older copy too.
_ANCHORS = ("deadline", "due", "declared_at", "valid_to")


def _moment_of(alert: dict, since: str) -> str:
    details = alert.get("details") or {}
    return next((f"{field}={details[field]}" for field in _ANCHORS if isinstance(details.get(field), str)), since)


def _hash_id(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


# ------------------------------------------------------------------------------------------ subscriptions

class Subscriptions:
    """The subscription file (like the API key file, a :class:`~ipledger.gateway.filestore.JsonFile`: locked, atomic
    writes, mode 0600)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        # kept: lost after it was written, it is an error, not "no subscriptions" (their deliveries would fail)
        self._file = JsonFile(self.path, empty=lambda: {"version": 1, "subscriptions": {}}, check=self._check_shape,
                              kept=True)

    def _check_shape(self, data) -> None:
        subs = data.get("subscriptions") if isinstance(data, dict) else None
        if not isinstance(subs, dict) or not all(isinstance(r, dict) and r.get("id") == k for k, r in subs.items()):
            raise CorruptFileError(self.path, "not an ipledger webhook file")

    def _read(self) -> dict:
        return self._file.read()

    def check(self) -> None:
        """At start: the file, when there is one, readable by its owner only (it holds the signing secrets) and
        of this shape (WebhookError, CorruptFileError — each naming it)."""
        if self.path.exists():
            require_owner_only(self.path, "webhook file", WebhookError)   # it holds the signing secrets
        self._read()

    def add(self, url: str, org: str, secret: str | None = None, types: list[str] | None = None,
            label: str = "", *, channels: list[str] | None = None,
            authorisations: list[str] | None = None, since: str | None = None) -> tuple[dict, str]:
        """A new subscription: (its public record, its secret). ``types``, ``channels``, ``authorisations``: the
        alerts it wants, each list empty for all (:func:`wants`); whether the gateway serves those channels is the
        caller's to check (the command line does). ``since`` (the command line: when it is made): the recorded
        alerts of transactions recorded before it (less :data:`SINCE_MARGIN_S`) are not sent — the feed read again
        from block 0 (its database lost) would otherwise send a new subscription the channel's whole past."""
        if not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", url or ""):
            raise WebhookError(f"not an http(s) URL: {url!r}")
        try:
            parts = urllib.parse.urlsplit(url)
            host = parts.hostname or ""
        except ValueError as exc:   # e.g. an unclosed IPv6 bracket
            raise WebhookError(f"not an http(s) URL: {url!r} ({exc})") from None
        if parts.username is not None or parts.password is not None:
            raise WebhookError("a webhook URL carries no user name or password (the URL is kept, listed and backed up "
                               "as it is): the receiver checks each delivery's signature with the subscription's secret")
        if url.startswith("http://") and not is_loopback(host):
            raise WebhookError(f"alerts carry the authorisations' data: an https:// URL for another host than this "
                               f"one, not {url!r}")
        if not re.fullmatch(r"[A-Za-z0-9.-]{1,64}", org or ""):
            raise WebhookError(f"invalid org (MSP id) {org!r}")
        unknown = sorted(set(types or ()) - set(ALERT_TYPES))
        if unknown:
            raise WebhookError(f"unknown alert type(s) {', '.join(unknown)}; types are: {', '.join(ALERT_TYPES)}")
        for what, names, pattern in (("channel", channels, CHANNEL_NAME),
                                     ("authorisation id", authorisations, AUTHORISATION_ID)):
            bad = [name for name in names or () if not isinstance(name, str) or not pattern.fullmatch(name)]
            if bad:
                raise WebhookError(f"invalid {what} {str(bad[0])[:80]!r}")
        secret = secret or base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
        if len(secret) < 16:
            raise WebhookError("the secret must have at least 16 characters")
        with self._file.update() as data:
            sub_id = secrets.token_hex(6)
            record = {"id": sub_id, "url": url, "org": org, "secret": secret, "types": sorted(set(types or [])),
                      "channels": sorted(set(channels or [])), "authorisations": sorted(set(authorisations or [])),
                      **({"since": since} if since else {}),
                      "label": label, "created_at": now_text(), "removed_at": None}
            data["subscriptions"][sub_id] = record
        return public(record), secret

    def remove(self, sub_id: str) -> bool:
        """Mark the subscription removed (its record stays, for the delivery log) and forget its secret — nothing is
        sent to a removed subscription —, and those of any removed before (an earlier version kept them)."""
        with self._file.update() as data:
            rec = data["subscriptions"].get(sub_id)
            if rec is None or rec.get("removed_at"):
                return False
            rec["removed_at"] = now_text()
            for other in data["subscriptions"].values():
                if other.get("removed_at"):
                    other.pop("secret", None)
            return True

    def active(self) -> list[dict]:
        return [s for s in self._read()["subscriptions"].values() if not s.get("removed_at")]

    def list(self) -> list[dict]:
        return [public(s) for s in sorted(self._read()["subscriptions"].values(), key=lambda s: s["created_at"])]


def public(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "secret"}


# how long before a subscription was made a transaction may have been recorded and still have its alerts sent to it:
# a transaction's ledger time is its proposal's, which the peers accept up to 15 minutes either side of their
# clocks, and it may commit some time after that
SINCE_MARGIN_S = 1800


def recorded_since(sub: dict, recorded_at: str | None) -> bool:
    """Whether a transaction recorded at ``recorded_at`` is one subscription ``sub`` is sent the alerts of: any,
    for a subscription made without ``since``; else one recorded after it (less :data:`SINCE_MARGIN_S`)."""
    since, when = moments.parse(sub.get("since")), moments.parse(recorded_at)
    return since is None or when is None or when >= since - dt.timedelta(seconds=SINCE_MARGIN_S)


def wants(sub: dict, alert_type: str | None, authorisation_id: str | None = None, channel: str | None = None) -> bool:
    """Whether subscription ``sub`` asked for an alert of this type, authorisation and channel: each of its
    lists (``types``, ``authorisations``, ``channels``; absent in subscriptions made before them) empty for
    all. Whether its organisation may read the alert is asked apart, before sending."""
    return all(not sub.get(field) or value in sub[field]
               for field, value in (("types", alert_type), ("authorisations", authorisation_id),
                                    ("channels", channel)))


# ------------------------------------------------------------------------------------------ deliveries

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

class AlertRouter:
    """Turns alert changes into deliveries for every subscription that may see them."""

    def __init__(self, subscriptions: Subscriptions, deliveries: Deliveries, visibility: Visibility,
                 service=None, store: FeedStore | None = None, channel: str | None = None):
        self.subscriptions = subscriptions
        # the gateway's only channel: its feed items carry no channel name (those of a gateway of several do)
        self.channel = channel
        self.deliveries = deliveries
        self.visibility = visibility
        self.service = service
        self.store = store

    def on_feed_item(self, item: dict) -> None:
        """Hook of the feed listener: queue the recorded alert changes of one transaction for every
        subscription that wants their type — durably, in one transaction, before the listener moves its
        checkpoint. Only local files are used here (no ledger call that could fail): whether each
        subscription's org may read the authorisation is asked by the :class:`Dispatcher` before sending.
        Idempotent (a transaction may come again after a restart)."""
        self.visibility.forget_for(item)  # mandates, holder, status, the register: ask the contract again
        alerts = item.get("alerts") or []
        if not alerts:
            return
        subs = self.subscriptions.active()
        channel = item.get("channel") or self.channel
        entries = []
        for index, change in enumerate(alerts):
            alert = {k: change.get(k) for k in ("type", "authorisation_id", "subject", "details")}
            alert_id = _hash_id("tx", item["tx_id"], str(index))
            body = {"alert_id": alert_id, "change": change.get("change"), "source": "RECORDED", "alert": alert,
                    "tx_id": item["tx_id"], "block_number": item["block_number"], "recorded_at": item["recorded_at"],
                    # a gateway of several holders' channels: the transaction's (who may read is asked there)
                    **({"channel": item["channel"]} if item.get("channel") else {})}
            entries.extend((sub, alert_id, body) for sub in subs
                           if wants(sub, alert["type"], alert["authorisation_id"], channel)
                           and recorded_since(sub, item.get("recorded_at")))
        self.deliveries.enqueue_many(entries, needs_check=True)

    def poll_time_alerts(self, as_of: str | None = None) -> int:
        """Compare each subscribed org's time alerts with the last poll; enqueue the changes."""
        subs = self.subscriptions.active()
        if not subs or self.service is None or self.store is None:
            return 0
        changes = 0
        failed: Exception | None = None
        auth_ids = [a["authorisation_id"] for a in self.store.authorisation_ids()]
        for org in sorted({s["org"] for s in subs}):
            org_subs = [s for s in subs if s["org"] == org]
            for auth_id in auth_ids:
                try:
                    answers = self.service.evaluate_each(org, "GetAlerts", auth_id, as_of)
                except Problem as p:
                    if p.status in (400, 403, 404):
                        continue
                    # this one is polled again later (the poll is reported failed); the others go on now
                    failed = failed or p
                    continue
                current = {}
                for channel, data in answers:   # an id on several holders' channels: each one's, naming its channel
                    on = {"channel": channel} if len(answers) > 1 else {}
                    current.update({f"{channel + '/' if on else ''}{a['type']}/{a['subject']}": {**a, **on}
                                    for a in data.get("alerts", []) if a.get("source") == "DERIVED"})
                # an alert's channel: the one answer's, or (the id on several) the one the alert names
                changes += self._diff(org, auth_id, current, org_subs, answers[0][0] if len(answers) == 1 else None)
        if failed is not None:
            raise failed
        return changes

    def _diff(self, org: str, auth_id: str, current: dict, subs: list[dict], channel: str | None = None) -> int:
        with self.store.connection() as db:
            rows = {r["alert_key"]: dict(r) for r in db.execute(
                "SELECT * FROM time_alerts WHERE org = ? AND authorisation_id = ?", (org, auth_id)).fetchall()}
            raises = {(r["alert_key"], r["moment"]): r["raised"] for r in db.execute(
                "SELECT * FROM time_alert_raises WHERE org = ? AND authorisation_id = ?", (org, auth_id)).fetchall()}
        events = []
        detected = now_text()
        for key, alert in current.items():
            if key not in rows:
                events.append(("RAISED", key, alert, detected))
        for key, row in rows.items():
            if key not in current:
                events.append(("CLEARED", key, json.loads(row["alert"]), row["since"]))
        for change, key, alert, since in events:
            on = {"channel": alert["channel"]} if alert.get("channel") else {}
            alert = {**{k: alert.get(k) for k in ("type", "authorisation_id", "subject", "details")}, **on}
            # the moment the alert is about, and which raise of it this is (a bill queried after it was submitted is
            # due again, with the same due date): the same alert found again after the database was lost keeps its id
            moment = _moment_of(alert, since)
            episode = raises.get((key, moment), 0) - (change == "CLEARED")
            alert_id = _hash_id("time", org, auth_id, key, change, moment, str(max(episode, 0)))
            body = {"alert_id": alert_id, "change": change, "source": "DERIVED", "alert": alert,
                    "detected_at": detected, "since": since, **on}   # its channel: where access is checked
            # the deliveries and the remembered state in one transaction: a poll that fails half-way leaves
            # neither, and the next poll finds the same change again (no second alert id for it)
            self.deliveries.enqueue_many(
                [(sub, alert_id, body) for sub in subs if wants(sub, alert["type"], auth_id,
                                                                  alert.get("channel") or channel)],
                also=lambda db, change=change, key=key, alert=alert, since=since, moment=moment:
                    self._remember(db, org, auth_id, change, key, alert, since, moment))
        return len(events)

    @staticmethod
    def _remember(db, org: str, auth_id: str, change: str, key: str, alert: dict, since: str, moment: str) -> None:
        if change == "RAISED":
            db.execute("INSERT OR REPLACE INTO time_alerts (org, authorisation_id, alert_key, alert, since) "
                       "VALUES (?,?,?,?,?)", (org, auth_id, key, json.dumps(alert), since))
            db.execute("INSERT INTO time_alert_raises (org, authorisation_id, alert_key, moment, raised) "
                       "VALUES (?,?,?,?,1) ON CONFLICT (org, authorisation_id, alert_key, moment) "
                       "DO UPDATE SET raised = raised + 1", (org, auth_id, key, moment))
        else:
            db.execute("DELETE FROM time_alerts WHERE org = ? AND authorisation_id = ? AND alert_key = ?",
                       (org, auth_id, key))


# ------------------------------------------------------------------------------------------ sending

class _Deadline:
    """The whole time of one attempt. The socket timeout bounds each read only: a subscriber sending its answer
    a byte at a time held the one dispatcher thread — every subscription's deliveries waiting — as long as it
    liked. When the time is up the attempt's connections are shut down (their read fails: a failed attempt): the
    socket each connection reads from now — for ``https://`` the TLS socket, which takes the plain one over —
    and any plain socket made for it."""

    def __init__(self, seconds: float):
        self._connections: list[http.client.HTTPConnection] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._over = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> "_Deadline":
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()

    def watch(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            self._connections.append(connection)

    def create_connection(self, *args, **kwargs) -> socket.socket:
        sock = socket.create_connection(*args, **kwargs)
        with self._lock:
            self._sockets.append(sock)
            over = self._over
        if over:
            self._shut(sock)
        return sock

    @property
    def over(self) -> bool:
        with self._lock:
            return self._over

    def _expire(self) -> None:
        with self._lock:
            self._over = True
            sockets = [c.sock for c in self._connections if c.sock is not None] + list(self._sockets)
        for sock in sockets:
            self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:   # closed already, or a plain socket a TLS one has taken over (shut through that one)
            pass

    def handlers(self) -> list[urllib.request.BaseHandler]:
        """urllib's HTTP and HTTPS handlers, their connections watched (proxies of the environment still apply)."""
        deadline = self

        def watched(base):
            class Connection(base):
                def __init__(self, *args, **kwargs):
                    super().__init__(*args, **kwargs)
                    self._create_connection = deadline.create_connection
                    deadline.watch(self)
            return Connection

        class HTTP(urllib.request.HTTPHandler):
            def http_open(self, req):
                return self.do_open(watched(http.client.HTTPConnection), req)

        class HTTPS(urllib.request.HTTPSHandler):
            def https_open(self, req):
                return self.do_open(watched(http.client.HTTPSConnection), req, context=self._context,
                                    check_hostname=self._check_hostname)
        return [HTTP(), HTTPS()]


def http_post(url: str, body: bytes, headers: dict, timeout: float) -> int:
    """POST; the HTTP status (raises OSError when there is no answer within ``timeout`` seconds in all)."""
    with _Deadline(timeout) as deadline:
        opener = urllib.request.build_opener(NoRedirect, *deadline.handlers())   # a redirect: a failed delivery
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with opener.open(request, timeout=timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except http.client.HTTPException as exc:   # an answer cut by the deadline, or not HTTP at all
            raise OSError(f"no HTTP answer: {type(exc).__name__}") from None
        if deadline.over:   # the headers cut short read as complete: no whole answer in time
            raise TimeoutError(f"no whole answer within {timeout:g} s")
        return status


def _channel_of(delivery: dict) -> str | None:
    """The channel a queued delivery's alert came from (named in its body on a gateway of several channels)."""
    try:
        channel = json.loads(delivery.get("body") or "{}").get("channel")
    except (ValueError, AttributeError):
        return None
    return channel if isinstance(channel, str) else None


class Dispatcher:
    """Sends due deliveries (one thread, started where a feed listener leads; it sends while it holds the
    dispatcher's own lock, ``webhooks.lock``: one sender per gateway directory).

    A delivery queued by the feed listener is first checked: may the subscription's org read the alert's
    authorisation (:class:`Visibility`, i.e. the contract)? Yes: it is sent; no: it is dropped, unsent and
    unlogged; the ledger cannot be asked: asked again after a back-off (at most ``max_check_backoff_s``),
    the subscription's later deliveries waiting behind it (they go in order). Every other attempt of a delivery
    of an authorisation — a time alert's first (its poll asked, but it may have waited in the queue since), any
    retry — is checked the same way: no longer allowed, it ends FAILED, unsent. On a gateway of several
    holders' channels a recorded alert is checked on its own channel (named in its body)."""

    def __init__(self, subscriptions: Subscriptions, deliveries: Deliveries, *, backoff_s: float = 2.0,
                 max_backoff_s: float = 3600.0, max_attempts: int = 10, timeout_s: float = 10.0,
                 router: AlertRouter | None = None, poll_alerts_s: float | None = None,
                 post: Callable[[str, bytes, dict, float], int] = http_post, clock=time.time,
                 visibility: Visibility | None = None, max_check_backoff_s: float = 60.0,
                 lock_path: Path | str | None = None):
        self.subscriptions = subscriptions
        # one sender per gateway directory, whichever feed listener leads and however its channels change
        self._lead = LeadLock(lock_path) if lock_path else None
        self.deliveries = deliveries
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.max_attempts, self.timeout_s = max_attempts, timeout_s
        self.router, self.poll_alerts_s = router, poll_alerts_s
        self.visibility = visibility if visibility is not None else getattr(router, "visibility", None)
        self.max_check_backoff_s = max_check_backoff_s
        self.post, self.clock = post, clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_poll = 0.0
        self._poll_failures = 0

    def delay(self, attempts: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * (2 ** max(0, attempts - 1)))

    def run_once(self) -> int:
        """Attempt every due delivery once; how many were attempted. A delivery dropped by its check lets
        the subscription's next one through at once."""
        attempted = 0
        for _ in range(100):
            subs = {s["id"]: s for s in self.subscriptions.active()}
            dropped = 0
            for d in self.deliveries.due(self.clock()):
                if self._stop.is_set():   # stopping: what is left is sent by the next holder of the lock
                    return attempted
                sub = subs.get(d["subscription_id"])
                if sub is None:  # removed: nothing more is sent to it
                    self.deliveries.record(d["delivery_id"], delivered=False, status=None,
                                           error="subscription removed", next_attempt_at=None, failed=True)
                    continue
                # asked before every attempt, the first one too (a time alert waits in the queue after the
                # poll that found it): a mandate may have ended
                if d.get("needs_check") or d.get("authorisation_id"):
                    verdict = self._check(d, sub)
                    if verdict is not True:
                        dropped += verdict is False
                        continue
                self._send(d, sub)
                attempted += 1
            if not dropped:
                break
        return attempted

    def _check(self, d: dict, sub: dict) -> bool | None:
        """May ``sub``'s org read the delivery's authorisation? True: send it; False: dropped; None: unknown
        for now (asked again later)."""
        if self.visibility is None:
            self.deliveries.checked(d["delivery_id"])
            return True
        channel = _channel_of(d)
        try:
            # on the alert's own channel (a gateway of several holders'), else where the authorisation is
            allowed = self.visibility.can_read(sub["org"], d["authorisation_id"],
                                               **({"channel": channel} if channel else {}))
        except Problem as problem:
            if 400 <= problem.status < 500:
                # an answer, not an outage: asking again gives the same, and the subscription's later deliveries
                # would wait behind it for good (an id on two holders' channels is no such answer: readable on each)
                self.deliveries.end(d["delivery_id"], f"the subscription's access cannot be checked: {problem.name}")
                log.warning("webhook delivery %s: its access check answers %s %s; the delivery ends FAILED",
                            d["delivery_id"], problem.status, problem.name,
                            extra={"outcome": "check refused", "problem_type": problem.name})
                return False
            return self._check_later(d, problem)
        except Exception as exc:  # noqa: BLE001 - the ledger cannot say now: ask again later, drop nothing
            return self._check_later(d, exc)
        if not allowed:
            if d.get("needs_check"):   # never sent: as if it had never been queued
                self.deliveries.drop(d["delivery_id"])
            else:                      # sent and failed before: it ends here, in the log
                self.deliveries.end(d["delivery_id"], "the subscription's organisation may no longer read the "
                                                      "authorisation")
            return False
        self.deliveries.checked(d["delivery_id"])
        return True

    def _check_later(self, d: dict, exc: Exception) -> None:
        """The ledger cannot say now whether the subscription may read the delivery's authorisation: ask again
        after a back-off, drop nothing."""
        checks = (d.get("checks") or 0) + 1
        wait = min(self.max_check_backoff_s, self.delay(checks))
        self.deliveries.check_failed(d["delivery_id"], f"visibility check: {type(exc).__name__}", self.clock() + wait)
        log.warning("webhook delivery %s: cannot check the subscription's access (%s); again in %.0f s",
                    d["delivery_id"], type(exc).__name__, wait,
                    extra={"outcome": "check failed", "error_type": type(exc).__name__})
        return None

    def _send(self, d: dict, sub: dict) -> None:
        body = d["body"].encode("utf-8")
        attempt = d["attempts"] + 1
        sent_at = int(self.clock())   # each attempt signed with its own time
        headers = {"Content-Type": "application/json", "User-Agent": "ipledger-gateway",
                   TIMESTAMP_HEADER: str(sent_at), SIGNATURE_V2_HEADER: sign(sub["secret"], body, sent_at),
                   SIGNATURE_HEADER: sign(sub["secret"], body),
                   "X-Ipledger-Alert-Id": d["alert_id"],
                   "X-Ipledger-Delivery": str(d["delivery_id"]), "X-Ipledger-Attempt": str(attempt)}
        status, error = None, None
        try:
            status = self.post(sub["url"], body, headers, self.timeout_s)
        except Exception as exc:  # noqa: BLE001 - any failure to deliver is retried
            error = type(exc).__name__
        delivered = status is not None and 200 <= status < 300
        if not delivered and error is None:
            error = f"HTTP {status}"
        failed = not delivered and attempt >= self.max_attempts
        self.deliveries.record(d["delivery_id"], delivered=delivered, status=status, error=error,
                               next_attempt_at=None if delivered or failed else self.clock() + self.delay(attempt),
                               failed=failed)
        log.info("webhook delivery %s attempt %d: %s", d["delivery_id"], attempt,
                 "delivered" if delivered else ("failed" if failed else "will retry"),
                 extra={"outcome": "delivered" if delivered else error, "status": status})

    def start(self) -> "Dispatcher":
        self._thread = threading.Thread(target=self._run, name="ipledger-webhooks", daemon=True)
        self._thread.start()
        return self

    def tick(self) -> None:
        """One round of the dispatcher's thread: poll the time alerts when it is time, send what is due. A poll
        that fails (the ledger unreachable) is tried again after a back-off, not a whole ``poll_alerts_s`` later
        (an hour by default: an overdue deadline would be told that much later)."""
        if self.router is not None and self.poll_alerts_s and self.clock() >= self._next_poll:
            self._next_poll = self.clock() + self.poll_alerts_s
            try:
                self.router.poll_time_alerts()
                self._poll_failures = 0
            except Exception as exc:  # noqa: BLE001 - the deliveries still go; the poll is tried again soon
                self._poll_failures += 1
                wait = min(self.poll_alerts_s, self.delay(self._poll_failures))   # doubling, at most an interval
                self._next_poll = self.clock() + wait
                log.warning("webhook dispatcher: polling the time alerts failed (%s); again in %.0f s",
                            type(exc).__name__, wait, extra={"error_type": type(exc).__name__})
        self.run_once()

    def _run(self) -> None:
        """Send while holding the dispatcher's lock (with ``lock_path``): another process of the gateway — a
        worker still ending, or one of before a reload that changed the channels — may still be sending, and
        two senders would post one delivery twice and poll the time alerts twice. The lock goes when this
        thread ends (or its process): never while a delivery is in flight."""
        while self._lead is not None and not self._lead.try_acquire():
            if self._stop.wait(2.0):
                return
        try:
            while not self._stop.is_set():
                try:
                    self.tick()
                except Exception as exc:  # noqa: BLE001 - keep going
                    # a file's problem names the file and never its content: said whole; anything else by its type
                    log.warning("webhook dispatcher: %s", str(exc) if isinstance(exc, CorruptFileError) else
                                type(exc).__name__, extra={"error_type": type(exc).__name__})
                self._stop.wait(0.5)
        finally:
            if self._lead is not None:
                self._lead.release()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
