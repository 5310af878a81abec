"""Customs' watch over declaration items across the holders' channels its gateway serves (the rule, and why:
:mod:`ipledger.gateway.declarations`).

A hook of the feed listener (:meth:`DeclarationWatch.on_feed_item`): each placement and exit the feed stores is
indexed by item (table ``declaration_uses`` of the feed database), and an item used on two channels against the rule
raises a ``DeclarationAcrossChannels`` alert (table ``declaration_alerts``), queued for customs' webhook
subscriptions in the same database transaction. The ledger is not changed: customs decide (a control, a
revocation), as for the contract's alerts.

The watch reads what the feed stores; a 5151 pair across channels is compared on the goods the contract recorded
for each side (``GetDeclaration`` on each channel: code, unit, quantity), since an exit names its goods by lot or
batch. An item the ledger cannot be asked about now (a 5xx, or a peer that has not yet the state of a block its feed
delivered) stays to judge (``judged = 0``) and is tried again every :data:`RETRY_S` by the watch's own thread (one in
each process that listens to the channels), whether or not anything else happens on them; a pass stops at the first
item still unanswered. The feeds go on: one channel's peer failing holds a feed up by one
query at most, that of the item it delivers. Every start indexes the stored events not indexed yet
(those stored before the watch existed, or named with their channel when the gateway came to serve several).

One alert per set of uses: a further use of an item already reported (a third channel) raises an alert naming all
of them, its ``change`` ``UPDATED``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading

from ipledger.gateway.declarations import ALERT_TYPE, GOODS_FIELDS, SIDES, TRANSFER, conflict
from ipledger.gateway.feed.store import FeedStore, feed_item, now_text
from ipledger.gateway.problems import Problem
from ipledger.gateway.webhooks.subscriptions import recorded_since, wants

log = logging.getLogger("ipledger.gateway.declarations")


SCHEMA = """
CREATE TABLE IF NOT EXISTS declaration_uses (
    mrn TEXT NOT NULL,
    item_no INTEGER NOT NULL,
    tx_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    side TEXT NOT NULL,                   -- PLACEMENT or EXIT
    use TEXT NOT NULL,                    -- JSON: authorisation, procedure, goods named, event id, recorded_at
    judged INTEGER NOT NULL DEFAULT 0,    -- 0: its item not yet judged with it
    PRIMARY KEY (mrn, item_no, tx_id)
);
CREATE INDEX IF NOT EXISTS declaration_uses_unjudged ON declaration_uses(judged, mrn, item_no);
CREATE INDEX IF NOT EXISTS declaration_uses_tx ON declaration_uses(tx_id);
CREATE TABLE IF NOT EXISTS declaration_alerts (
    alert_id TEXT PRIMARY KEY,
    mrn TEXT NOT NULL,
    item_no INTEGER NOT NULL,
    alert TEXT NOT NULL,                  -- JSON: the alert as sent and listed
    raised_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS declaration_alerts_item ON declaration_alerts(mrn, item_no);
"""
_INSERT = ("INSERT OR IGNORE INTO declaration_uses (mrn, item_no, tx_id, channel, side, use) "
           "VALUES (?,?,?,?,?,?)")
RETRY_S = 30.0   # how often the items the ledger could not be asked about are tried again


def uses_in(item: dict) -> list[tuple]:
    """The declaration items a feed item's events use: ``(mrn, item_no, tx_id, channel, side, use JSON)`` rows —
    none for an item without a channel (a gateway of one channel has nothing to compare)."""
    channel = item.get("channel")
    if not channel:
        return []
    rows = []
    for event in item.get("events") or []:
        side = SIDES.get(event.get("event_type")) if isinstance(event, dict) else None
        body = event.get("event") if side else None
        if not isinstance(body, dict) or not isinstance(body.get("mrn"), str):
            continue
        item_no = body.get("item_no", 1)
        if type(item_no) is not int:
            continue
        use = {"authorisation_id": event.get("authorisation_id"), "event_type": event.get("event_type"),
               "event_id": event.get("event_id"), "procedure": body.get("procedure"),
               "recorded_at": item.get("recorded_at"), "tx_id": item["tx_id"], "channel": channel, "side": side,
               **{f: body[f] for f in GOODS_FIELDS if f in body}}
        rows.append((body["mrn"], item_no, item["tx_id"], channel, side, json.dumps(use, sort_keys=True)))
    return rows


class _OutOfDate(Exception):
    """A judgement another listener's new use made out of date before it was written."""


def _alert_id(mrn: str, item_no: int, uses: list[dict]) -> str:
    """The id of the alert of these uses of an item: the same whenever the same uses are judged."""
    return hashlib.sha256("\n".join([ALERT_TYPE, mrn, str(item_no), *sorted(u["tx_id"] for u in uses)])
                          .encode()).hexdigest()[:32]


class DeclarationWatch:
    """Customs' watch over declaration items across the holders' channels its gateway serves (module docstring).

    ``service``: the ledger, to read each side of a transfer as the contract recorded it (as ``org``: customs);
    ``deliveries`` and ``subscriptions``: the webhook queue, for customs' subscriptions (the alert names two
    holders' channels: no one else's)."""

    def __init__(self, store: FeedStore, service, org: str, deliveries=None, subscriptions=None):
        self.store, self.service, self.org = store, service, org
        self.deliveries, self.subscriptions = deliveries, subscriptions
        self._retrying = threading.Lock()   # one pass over the items left to judge at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        with self.store.transaction() as db:
            for statement in filter(str.strip, SCHEMA.split(";")):
                db.execute(statement)
        self.index_stored()

    def index_stored(self) -> None:
        """Index the uses of the stored events, named with their channel, that are not indexed yet — every start (a
        start cut short between naming a channel's events and indexing them leaves none out) and when a channel the
        gateway served alone is named. Items used on one channel only are judged at once, in one statement; the
        others by the watch's next pass (:meth:`judge_pending`)."""
        with self.store.transaction() as db:
            rows = db.execute("SELECT block, tx_id, payload, channel FROM events e WHERE channel IS NOT NULL "
                              "AND event_type IN (?, ?) AND NOT EXISTS (SELECT 1 FROM declaration_uses u "
                              "WHERE u.tx_id = e.tx_id) ORDER BY seq", tuple(SIDES)).fetchall()
            for block, tx_id, payload, channel in rows:
                db.executemany(_INSERT, uses_in(feed_item(block, tx_id, json.loads(payload), channel=channel)))
            # the pending uses alone, each looked up by its item (the primary key): not every use ever indexed
            db.execute("UPDATE declaration_uses SET judged = 1 WHERE judged = 0 AND NOT EXISTS (SELECT 1 FROM "
                       "declaration_uses o WHERE o.mrn = declaration_uses.mrn AND o.item_no = declaration_uses.item_no "
                       "AND o.channel != declaration_uses.channel)")

    # -- the feed's hook ----------------------------------------------------------------------------------------
    def on_feed_item(self, item: dict) -> None:
        """Index the declaration items ``item`` uses and judge them. The ledger failing leaves an item to judge later
        (:meth:`judge_pending`), never the feed waiting (a database error does, as for every hook). Idempotent: a
        transaction seen again adds nothing, the same uses judged again make the same alert."""
        rows = uses_in(item)
        spanning = []   # items now used on more than one channel: to judge
        if rows:
            with self.store.transaction() as db:   # one write: an item of one channel is judged as it is indexed
                db.executemany(_INSERT, rows)
                for mrn, item_no in sorted({(mrn, item_no) for mrn, item_no, *_rest in rows}):
                    if db.execute("SELECT COUNT(DISTINCT channel) FROM declaration_uses WHERE mrn = ? AND item_no = ?",
                                  (mrn, item_no)).fetchone()[0] > 1:
                        spanning.append((mrn, item_no))
                    else:
                        db.execute("UPDATE declaration_uses SET judged = 1 WHERE mrn = ? AND item_no = ? AND tx_id = ?",
                                   (mrn, item_no, item["tx_id"]))
        for mrn, item_no in spanning:
            self._try(mrn, item_no)

    # -- the items left to judge --------------------------------------------------------------------------------
    def judge_pending(self) -> int:
        """One pass over the items left to judge, in item order; it stops at the first the ledger cannot answer for
        (the others would wait on the same peer). One pass at a time: 0 at once when another is running. How many
        items were judged."""
        if not self._retrying.acquire(blocking=False):
            return 0
        try:
            with self.store.connection() as db:
                pending = db.execute("SELECT DISTINCT mrn, item_no FROM declaration_uses WHERE judged = 0 "
                                     "ORDER BY mrn, item_no").fetchall()
            judged = 0
            for mrn, item_no in pending:
                if self._stop.is_set() or not self._try(mrn, item_no):
                    break   # stopping (a worker's graceful stop waits for no ledger call), or the ledger failed
                judged += 1
            return judged
        finally:
            self._retrying.release()

    def start(self, every_s: float = RETRY_S) -> "DeclarationWatch":
        """Judge the items left to judge at once (those a start left), then every ``every_s``, in a thread of its
        own, until :meth:`stop`. Once per process; each process that listens runs one (two passes at once judge
        alike: each judgement is written under the database's write lock, an alert and its deliveries once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, args=(every_s,), name="ipledger-declarations",
                                            daemon=True)
            self._thread.start()
        return self

    def _run(self, every_s: float) -> None:
        while not self._stop.is_set():
            try:
                self.judge_pending()
            except Exception as exc:  # noqa: BLE001 - the database busy or gone: again at the next round
                log.warning("declaration watch: the items left to judge not read (%s): again in %.0f s",
                            type(exc).__name__, every_s, extra={"error_type": type(exc).__name__})
            self._stop.wait(every_s)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _try(self, mrn: str, item_no: int) -> bool:
        """Judge the item; False when the ledger could not be asked (the item stays to judge, the feed goes on)."""
        try:
            self._judge(mrn, item_no)
        except Problem as problem:
            log.warning("declaration %s item %d not judged yet across the channels (%s): tried again later", mrn,
                        item_no, problem.name)
            return False
        return True

    def _judge(self, mrn: str, item_no: int) -> None:
        """Judge the uses of one item stored now: each two on different channels against the rule (the first pair
        breaking it names the problem; uses on one channel are that channel's contract's to judge). An alert when
        one breaks it, queued for customs' subscriptions in the transaction that marks these uses judged. That
        transaction first reads the item's uses again under the database's write lock: when another channel's
        listener added one meanwhile (this judgement is out of date), nothing is written and the item is judged
        again; so is whether the alert is the item's first (``RAISED``) or follows an earlier one (``UPDATED``)."""
        for _attempt in range(3):
            if self._judged(mrn, item_no):
                return
        log.info("declaration %s item %d: its uses kept changing while judged; judged again later", mrn, item_no)

    def _judged(self, mrn: str, item_no: int) -> bool:
        """One judgement of the item; False when it was out of date by the time it was to be written."""
        uses = self._uses(mrn, item_no)
        found = None
        if len({u["channel"] for u in uses}) > 1:
            recorded = self._recorded_goods(mrn, item_no, uses)
            for i, one in enumerate(uses):
                for other in uses[i + 1:]:
                    if one["channel"] != other["channel"]:
                        found = found or conflict({**one, **recorded.get(one["tx_id"], {})},
                                                  {**other, **recorded.get(other["tx_id"], {})})
        alert_id = _alert_id(mrn, item_no, uses) if found else None
        reported = self._reported(mrn, item_no, alert_id) if found else False
        alert = self._alert(mrn, item_no, uses, *found, updated=reported) if found else None
        entries = [(sub, alert["alert_id"], alert) for sub in self._subscriptions(alert)] if alert else []

        def record(db: sqlite3.Connection) -> None:
            if self._uses(mrn, item_no, db) != uses or \
                    (found and self._reported(mrn, item_no, alert_id, db) != reported):
                raise _OutOfDate()   # rolls back the deliveries queued with it
            if alert is not None:
                db.execute("INSERT OR IGNORE INTO declaration_alerts (alert_id, mrn, item_no, alert, raised_at) "
                           "VALUES (?,?,?,?,?)", (alert["alert_id"], mrn, item_no, json.dumps(alert), now_text()))
            db.executemany("UPDATE declaration_uses SET judged = 1 WHERE mrn = ? AND item_no = ? AND tx_id = ?",
                           [(mrn, item_no, u["tx_id"]) for u in uses])

        try:
            if self.deliveries is not None:
                self.deliveries.enqueue_many(entries, also=record)   # the alert, its deliveries and the verdict at once
            else:
                with self.store.transaction() as db:
                    record(db)
        except _OutOfDate:
            return False
        if alert is not None:
            log.warning("declaration %s item %d is used on %d holders' channels (%s): alert %s", mrn, item_no,
                        len({u["channel"] for u in uses}), found[0], alert["alert_id"])
        return True

    def _uses(self, mrn: str, item_no: int, db: sqlite3.Connection | None = None) -> list[dict]:
        if db is None:
            with self.store.connection() as db:
                return self._uses(mrn, item_no, db)
        return [json.loads(u) for (u,) in db.execute(
            "SELECT use FROM declaration_uses WHERE mrn = ? AND item_no = ? ORDER BY tx_id", (mrn, item_no))]

    def _reported(self, mrn: str, item_no: int, alert_id: str | None, db: sqlite3.Connection | None = None) -> bool:
        """Whether an alert of the item other than ``alert_id`` (another set of its uses) was raised."""
        if db is None:
            with self.store.connection() as db:
                return self._reported(mrn, item_no, alert_id, db)
        return db.execute("SELECT 1 FROM declaration_alerts WHERE mrn = ? AND item_no = ? AND alert_id != ? LIMIT 1",
                          (mrn, item_no, alert_id)).fetchone() is not None

    def _recorded_goods(self, mrn: str, item_no: int, uses: list[dict]) -> dict[str, dict]:
        """For the uses of a 5151 transfer, the goods each side's contract recorded (code, unit, quantity), by
        transaction id: an exit names its goods by lot or batch, not by code."""
        if not any(u.get("procedure") == TRANSFER for u in uses):
            return {}
        out = {}
        for channel in sorted({u["channel"] for u in uses}):
            try:
                answer = self.service.evaluate_json(self.org, "GetDeclaration", mrn, channel=channel)
            except Problem as problem:
                if problem.status >= 500 or problem.status == 404:
                    # the ledger cannot answer now, or this peer has not the state of a block its feed delivered
                    # yet (the item has a use on this channel): judged again later
                    raise
                continue    # not customs' to read there (never expected): the uses as their events name them
            for decl in answer.get("items", []) if isinstance(answer, dict) else []:
                if not isinstance(decl, dict) or decl.get("item_no") != item_no:
                    continue
                goods = {f: decl[f] for f in GOODS_FIELDS if f in decl}
                for use in uses:
                    if use["channel"] == channel and use["side"] == decl.get("type"):
                        out[use["tx_id"]] = goods
        return out

    @staticmethod
    def _alert(mrn: str, item_no: int, uses: list[dict], problem: str, differ: list[str], *, updated: bool) -> dict:
        """The alert of an item used against the rule: the same id whenever the same uses are judged again;
        ``UPDATED`` when an earlier set of its uses was reported."""
        digest = _alert_id(mrn, item_no, uses)
        latest = max(uses, key=lambda u: (u.get("recorded_at") or "", u["tx_id"]))
        shown = [{k: u.get(k) for k in ("channel", "authorisation_id", "event_type", "event_id", "procedure",
                                        "tx_id", "recorded_at")} for u in uses]
        return {"alert_id": digest, "change": "UPDATED" if updated else "RAISED", "source": "CROSS_CHANNEL",
                "alert": {"type": ALERT_TYPE, "authorisation_id": latest.get("authorisation_id"),
                          "subject": f"DECL:{mrn}/{item_no}",
                          "details": {"mrn": mrn, "item_no": item_no, "problem": problem,
                                      **({"differ": differ} if differ else {}), "uses": shown}},
                "recorded_at": latest.get("recorded_at"), "channels": sorted({u["channel"] for u in uses})}

    def _subscriptions(self, alert: dict) -> list[dict]:
        """Customs' subscriptions that want the alert — of its type, of one of its uses' channels or authorisations
        when narrowed — and were made before its latest use was recorded (as for every alert: a new subscription is
        not sent the channels' past)."""
        if self.subscriptions is None:
            return []
        uses = alert["alert"]["details"]["uses"]
        return [sub for sub in self.subscriptions.active() if sub.get("org") == self.org
                and any(wants(sub, ALERT_TYPE, u["authorisation_id"], u["channel"]) for u in uses)
                and recorded_since(sub, alert.get("recorded_at"))]

    # -- what customs read ----------------------------------------------------------------------------------------
    def alerts(self, limit: int = 500) -> list[dict]:
        """The alerts raised, newest first."""
        with self.store.connection() as db:
            rows = db.execute("SELECT alert, raised_at FROM declaration_alerts ORDER BY raised_at DESC, alert_id "
                              "LIMIT ?", (limit,)).fetchall()
        return [{**json.loads(alert), "raised_at": raised_at} for alert, raised_at in rows]
