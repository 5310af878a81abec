"""Alerts into webhook deliveries: the alert changes of recorded transactions, and the time alerts polled."""
from __future__ import annotations

import hashlib
import json

from ipledger.gateway.feed.store import FeedStore, now_text
from ipledger.gateway.feed.visibility import Visibility
from ipledger.gateway.problems import Problem
from ipledger.gateway.webhooks.deliveries import Deliveries
from ipledger.gateway.webhooks.subscriptions import Subscriptions, recorded_since, wants

# What fixes a time alert in time, in the contract's own details (its deadline, the bill's due date, the declaration's
# acceptance, the end of validity): the same alert computed again gets the same alert id whenever this gateway first
# saw it — after its feed database was lost or put back from an older copy too.
_ANCHORS = ("deadline", "due", "declared_at", "valid_to")


def _moment_of(alert: dict, since: str) -> str:
    details = alert.get("details") or {}
    return next((f"{field}={details[field]}" for field in _ANCHORS if isinstance(details.get(field), str)), since)


def _hash_id(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


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
