"""How long the feed database keeps what it holds (``<state>/<org name>/gateway/dashboard.sqlite``).

The feed is a copy of the ledger's chaincode events for the dashboard's timeline, the live stream and the
webhooks; the ledger keeps every event for good, and the audit trails, reports and bills are read from it.
So the copy may be bounded: ``IPLEDGER_FEED_KEEP_DAYS`` (``GatewayConfig.feed_keep_days``) drops the items
stored more than that many days ago — the timeline and the feed then start at the oldest kept item, a poller
or stream resuming from a dropped one starts there — and ``IPLEDGER_WEBHOOK_LOG_KEEP_DAYS``
(``webhook_log_keep_days``) the webhook deliveries DELIVERED or FAILED that long ago (the delivery log;
pending deliveries stay until they are sent or fail). 0, the default, keeps everything.

One thread per gateway runs it, in the process that holds the feed listener's lock (with the webhook
dispatcher): at its start, then every ``every_s`` (an hour).
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time

from ipledger.gateway.feed.store import FeedStore

log = logging.getLogger("ipledger.gateway.feed")

DAY_S = 86400


class Retention:
    def __init__(self, store: FeedStore, *, feed_keep_days: int = 0, webhook_log_keep_days: int = 0,
                 every_s: float = 3600.0, clock=time.time):
        self.store = store
        self.feed_keep_days, self.webhook_log_keep_days = feed_keep_days, webhook_log_keep_days
        self.every_s, self.clock = every_s, clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        return bool(self.feed_keep_days or self.webhook_log_keep_days)

    def _before(self, days: int) -> str | None:
        if not days:
            return None
        moment = dt.datetime.fromtimestamp(self.clock() - days * DAY_S, dt.timezone.utc)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")     # as store.now_text writes stored_at and created_at

    def run_once(self) -> dict:
        """Prune once; how many feed items and deliveries went."""
        events, deliveries = self.store.prune(self._before(self.feed_keep_days),
                                              self._before(self.webhook_log_keep_days))
        if events or deliveries:
            log.info("feed retention: %d item(s) and %d webhook deliveries older than the retention removed",
                     events, deliveries, extra={"outcome": "pruned"})
        return {"events": events, "deliveries": deliveries}

    def start(self) -> "Retention":
        self._thread = threading.Thread(target=self._run, name="ipledger-retention", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # noqa: BLE001 - the database busy or gone: again at the next round
                log.warning("feed retention: %s", type(exc).__name__, extra={"error_type": type(exc).__name__})
            self._stop.wait(self.every_s)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
