"""How long the feed database keeps its copy of the ledger's events and the webhook delivery log
(``IPLEDGER_FEED_KEEP_DAYS``, ``IPLEDGER_WEBHOOK_LOG_KEEP_DAYS``): older rows go, the newest item of each
channel always stays (the listener's check that the database holds what its checkpoint stands for), pending
deliveries always stay, and a poller resuming from a pruned item starts at the oldest kept one."""
from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from ipledger.gateway.config import ConfigError, GatewayConfig
from ipledger.gateway.feed.retention import Retention
from ipledger.gateway.feed.store import FeedStore

from .conftest import AUTH

NOW = dt.datetime(2027, 3, 1, 12, 0, tzinfo=dt.timezone.utc)


def _stored(store, days_ago: float, block: int, channel=None, tx=None):
    payload = {"events": [{"event_type": "MoveGoods", "authorisation_id": AUTH}], "recorded_at": "2027-01-01T00:00:00Z"}
    store.add_events([(block, tx or f"tx-{channel}-{block}", payload, channel)])
    when = (NOW - dt.timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE events SET stored_at = ? WHERE tx_id = ?", (when, tx or f"tx-{channel}-{block}"))


def _delivery(store, days_ago: float, status: str, n: int):
    when = (NOW - dt.timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with sqlite3.connect(store.path) as db:
        db.execute("INSERT INTO deliveries (subscription_id, alert_id, org, body, status, next_attempt_at, created_at) "
                   "VALUES ('s1', ?, 'OperatorMSP', '{}', ?, 0, ?)", (f"a{n}", status, when))


def _ids(store):
    with sqlite3.connect(store.path) as db:
        return [r[0] for r in db.execute("SELECT id FROM events ORDER BY seq")]


def test_events_older_than_the_retention_go_the_newest_of_each_channel_stays(tmp_path):
    store = FeedStore(tmp_path / "db.sqlite")
    for block in range(1, 1201):                      # more than one chunk of old items
        _stored(store, 400 - block / 10, block, "ip-plant-a")
    _stored(store, 300, 7, "ip-plant-b")              # old, but the newest (only) item of its channel
    _stored(store, 5, 1201, "ip-plant-a")
    counts = Retention(store, feed_keep_days=90, clock=NOW.timestamp).run_once()
    assert counts == {"events": 1200, "deliveries": 0}
    assert _ids(store) == ["7:tx-ip-plant-b-7", "1201:tx-ip-plant-a-1201"]
    assert store.has_events("ip-plant-b") and store.has_events("ip-plant-a")
    # a poller whose position was pruned resumes at the oldest item kept, of any channel: ip-plant-b's item,
    # stored after the poller's position was given, is not skipped
    assert store.seq_of("ip-plant-a/500:") == store.seq_of("7:tx-ip-plant-b-7") - 1


def test_the_newest_item_stays_even_when_everything_is_old(tmp_path):
    store = FeedStore(tmp_path / "db.sqlite")
    for block in range(1, 5):
        _stored(store, 500, block)
    Retention(store, feed_keep_days=30, clock=NOW.timestamp).run_once()
    assert _ids(store) == ["4:tx-None-4"]


def test_pending_deliveries_stay_finished_ones_go_after_their_retention(tmp_path):
    store = FeedStore(tmp_path / "db.sqlite")
    for n, (days, status) in enumerate([(200, "DELIVERED"), (200, "FAILED"), (200, "PENDING"), (10, "DELIVERED")]):
        _delivery(store, days, status, n)
    counts = Retention(store, webhook_log_keep_days=90, clock=NOW.timestamp).run_once()
    assert counts == {"events": 0, "deliveries": 2}
    with sqlite3.connect(store.path) as db:
        assert sorted(r[0] for r in db.execute("SELECT alert_id FROM deliveries")) == ["a2", "a3"]


def test_zero_keeps_everything(tmp_path):
    store = FeedStore(tmp_path / "db.sqlite")
    _stored(store, 5000, 1)
    _stored(store, 4000, 2)
    _delivery(store, 5000, "DELIVERED", 0)
    assert Retention(store, clock=NOW.timestamp).run_once() == {"events": 0, "deliveries": 0}
    assert len(_ids(store)) == 2


@pytest.mark.parametrize("value", ["-1", "ten", "1.5"])
def test_a_retention_that_is_not_a_whole_number_of_days_is_refused(monkeypatch, value, tmp_path):
    monkeypatch.setenv("IPLEDGER_FEED_KEEP_DAYS", value)
    from ipledger.gateway import config as config_mod
    with pytest.raises(ConfigError, match="IPLEDGER_FEED_KEEP_DAYS"):
        config_mod._count("IPLEDGER_FEED_KEEP_DAYS", value)
    assert GatewayConfig().feed_keep_days == 0 and GatewayConfig().webhook_log_keep_days == 0
    assert ("feed_keep_days", "IPLEDGER_FEED_KEEP_DAYS") in config_mod.ENV_COUNTS
    assert "IPLEDGER_WEBHOOK_LOG_KEEP_DAYS" in config_mod.ENVIRONMENT


def test_the_process_that_leads_the_feed_prunes_at_once(config, ledger, keys):
    """A gateway configured with a retention prunes where its webhook dispatcher runs, from the moment it
    takes the lead (and stops with it); without one it starts no such thread."""
    import dataclasses

    from ipledger.gateway.app import create_app

    app = create_app(dataclasses.replace(config, feed_keep_days=30), ledger=ledger)
    live = app.extensions["ipledger_live"]
    try:
        old = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=40)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        payload = {"events": [{"event_type": "MoveGoods", "authorisation_id": AUTH}], "recorded_at": old}
        live.store.add_events([(1, "tx-old", payload, None), (2, "tx-new", payload, None)])
        with sqlite3.connect(live.store.path) as db:
            db.execute("UPDATE events SET stored_at = ? WHERE tx_id = 'tx-old'", (old,))
        live._start_dispatcher()
        for _ in range(200):
            if _ids(live.store) == ["2:tx-new"]:
                break
            live.stopping.wait(0.02)
        assert _ids(live.store) == ["2:tx-new"]
    finally:
        live.close()
    assert not live.retention._thread.is_alive()
    plain = create_app(config, ledger=ledger).extensions["ipledger_live"]
    plain._start_dispatcher()
    assert plain.retention._thread is None
    plain.close()
