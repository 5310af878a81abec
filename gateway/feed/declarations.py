"""Customs' watch over declaration items across the holders' channels its gateway serves (the rule, and why:
:mod:`ipledger.gateway.declarations`).

A hook of the feed listener (:meth:`DeclarationWatch.on_feed_item`): each placement and exit the feed stores is
indexed by item (table ``declaration_uses`` of the feed database), and an item used on two channels against the rule
raises a ``DeclarationAcrossChannels`` alert (table ``declaration_alerts``), queued for customs' webhook
subscriptions in the same database transaction. The ledger is not changed: customs decide (a control, a
revocation), as for the contract's alerts.

The watch reads what the feed stores; a 5151 pair across channels is compared on the goods the contract recorded
for each side (``GetDeclaration`` on each channel: code, unit, quantity), since an exit names its goods by lot or
batch. An item whose uses reach the feed while the ledger cannot answer is judged when it can (the feed waits, as
for every hook: nothing is skipped). The uses of events stored before the watch existed are indexed when its tables
are made, and judged with the next item.
"""
from __future__ import annotations

import hashlib
import json
import logging
import sqlite3

from ipledger.gateway.declarations import ALERT_TYPE, GOODS_FIELDS, SIDES, TRANSFER, conflict
from ipledger.gateway.feed.store import FeedStore, feed_item, now_text
from ipledger.gateway.problems import Problem

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
CREATE TABLE IF NOT EXISTS declaration_alerts (
    alert_id TEXT PRIMARY KEY,
    mrn TEXT NOT NULL,
    item_no INTEGER NOT NULL,
    alert TEXT NOT NULL,                  -- JSON: the alert as sent and listed
    raised_at TEXT NOT NULL
);
"""


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


class DeclarationWatch:
    """Customs' watch over declaration items across the holders' channels its gateway serves (module docstring).

    ``service``: the ledger, to read each side of a transfer as the contract recorded it (as ``org``: customs);
    ``deliveries`` and ``subscriptions``: the webhook queue, for customs' subscriptions (the alert names two
    holders' channels: no one else's)."""

    def __init__(self, store: FeedStore, service, org: str, deliveries=None, subscriptions=None):
        self.store, self.service, self.org = store, service, org
        self.deliveries, self.subscriptions = deliveries, subscriptions
        self._set_up()

    def _set_up(self) -> None:
        """The tables; when they are new, the uses of the events the feed already holds (judged at the next item)."""
        with self.store.transaction() as db:
            new = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'declaration_uses'").fetchone() is None
            for statement in filter(str.strip, SCHEMA.split(";")):
                db.execute(statement)
            if new:
                self._index_stored(db)

    def index_stored(self) -> None:
        """Index the uses of every event the feed holds with its channel's name (those named since: a channel the
        gateway served alone); each item is judged with the next feed item."""
        with self.store.transaction() as db:
            self._index_stored(db)

    @staticmethod
    def _index_stored(db: sqlite3.Connection) -> None:
        rows = db.execute("SELECT block, tx_id, payload, channel FROM events WHERE channel IS NOT NULL "
                          "AND event_type IN (?, ?) ORDER BY seq", tuple(SIDES))
        for block, tx_id, payload, channel in rows.fetchall():
            db.executemany("INSERT OR IGNORE INTO declaration_uses (mrn, item_no, tx_id, channel, side, use) "
                           "VALUES (?,?,?,?,?,?)", uses_in(feed_item(block, tx_id, json.loads(payload),
                                                                      channel=channel)))

    # -- the feed's hook ----------------------------------------------------------------------------------------
    def on_feed_item(self, item: dict) -> None:
        """Index the declaration items ``item`` uses, then judge every item with a use not judged yet (this one's,
        and any left by an earlier failure or by the first indexing). Idempotent: a transaction seen again adds
        nothing, an alert raised again is the same alert."""
        rows = uses_in(item)
        with self.store.connection() as db:
            if rows:
                db.executemany("INSERT OR IGNORE INTO declaration_uses (mrn, item_no, tx_id, channel, side, use) "
                               "VALUES (?,?,?,?,?,?)", rows)
            pending = db.execute("SELECT DISTINCT mrn, item_no FROM declaration_uses WHERE judged = 0").fetchall()
        for mrn, item_no in pending:
            self._judge(mrn, item_no)

    def _judge(self, mrn: str, item_no: int) -> None:
        with self.store.connection() as db:
            uses = [json.loads(u) for (u,) in db.execute(
                "SELECT use FROM declaration_uses WHERE mrn = ? AND item_no = ? ORDER BY tx_id", (mrn, item_no))]
        found = None
        if len({u["channel"] for u in uses}) > 1:
            recorded = self._recorded_goods(mrn, item_no, uses)
            for i, one in enumerate(uses):
                for other in uses[i + 1:]:
                    if one["channel"] != other["channel"]:
                        found = found or conflict({**one, **recorded.get(one["tx_id"], {})},
                                                  {**other, **recorded.get(other["tx_id"], {})})
        alert = self._alert(mrn, item_no, uses, *found) if found else None
        entries = []
        if alert is not None:
            entries = [(sub, alert["alert_id"], alert) for sub in self._subscriptions(alert)]

        def record(db: sqlite3.Connection) -> None:
            if alert is not None:
                db.execute("INSERT OR IGNORE INTO declaration_alerts (alert_id, mrn, item_no, alert, raised_at) "
                           "VALUES (?,?,?,?,?)", (alert["alert_id"], mrn, item_no, json.dumps(alert), now_text()))
            # the uses judged here only: one another channel's listener adds meanwhile is judged with them next
            db.executemany("UPDATE declaration_uses SET judged = 1 WHERE mrn = ? AND item_no = ? AND tx_id = ?",
                           [(mrn, item_no, u["tx_id"]) for u in uses])

        if self.deliveries is not None:
            self.deliveries.enqueue_many(entries, also=record)   # the alert, its deliveries and the verdict at once
        else:
            with self.store.transaction() as db:
                record(db)
        if alert is not None:
            log.warning("declaration %s item %d is used on %d holders' channels (%s): alert %s", mrn, item_no,
                        len({u["channel"] for u in uses}), found[0], alert["alert_id"])

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
                if problem.status >= 500:
                    raise   # the ledger cannot answer now: judged again when it can (the feed waits)
                continue    # nothing recorded there to read: the uses as their events name them
            for decl in answer.get("items", []) if isinstance(answer, dict) else []:
                if not isinstance(decl, dict) or decl.get("item_no") != item_no:
                    continue
                goods = {f: decl[f] for f in GOODS_FIELDS if f in decl}
                for use in uses:
                    if use["channel"] == channel and use["side"] == decl.get("type"):
                        out[use["tx_id"]] = goods
        return out

    @staticmethod
    def _alert(mrn: str, item_no: int, uses: list[dict], problem: str, differ: list[str]) -> dict:
        """The alert of an item used against the rule: the same id whenever the same uses are judged again."""
        digest = hashlib.sha256("\n".join([ALERT_TYPE, mrn, str(item_no), *sorted(u["tx_id"] for u in uses)])
                                .encode()).hexdigest()[:32]
        latest = max(uses, key=lambda u: (u.get("recorded_at") or "", u["tx_id"]))
        shown = [{k: u.get(k) for k in ("channel", "authorisation_id", "event_type", "event_id", "procedure",
                                        "tx_id", "recorded_at")} for u in uses]
        return {"alert_id": digest, "change": "RAISED", "source": "CROSS_CHANNEL",
                "alert": {"type": ALERT_TYPE, "authorisation_id": latest.get("authorisation_id"),
                          "subject": f"DECL:{mrn}/{item_no}",
                          "details": {"mrn": mrn, "item_no": item_no, "problem": problem,
                                      **({"differ": differ} if differ else {}), "uses": shown}},
                "recorded_at": latest.get("recorded_at"), "channels": sorted({u["channel"] for u in uses})}

    def _subscriptions(self, alert: dict) -> list[dict]:
        from ipledger.gateway.webhooks import wants
        if self.subscriptions is None:
            return []
        uses = alert["alert"]["details"]["uses"]
        return [sub for sub in self.subscriptions.active() if sub.get("org") == self.org
                and any(wants(sub, ALERT_TYPE, u["authorisation_id"], u["channel"]) for u in uses)]

    # -- what customs read ----------------------------------------------------------------------------------------
    def alerts(self, limit: int = 500) -> list[dict]:
        """The alerts raised, newest first."""
        with self.store.connection() as db:
            rows = db.execute("SELECT alert, raised_at FROM declaration_alerts ORDER BY raised_at DESC, alert_id "
                              "LIMIT ?", (limit,)).fetchall()
        return [{**json.loads(alert), "raised_at": raised_at} for alert, raised_at in rows]
