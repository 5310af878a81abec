"""One webhook sender per gateway directory (``webhooks.lock``), whichever process's feed listener leads.

A worker ending (reload, max-requests, graceful stop) released its feed lock before its dispatcher stopped, and
a reload from one channel to several gave the new workers other feed locks while the old ones still ran: two
dispatchers then posted one delivery twice, and polled the time alerts twice.
"""
from __future__ import annotations

import threading
import time

from ipledger.gateway.feed.store import FeedStore
from ipledger.gateway.webhooks import Deliveries, Dispatcher, Subscriptions

from .contract_ledger import wait_for


def test_a_second_dispatcher_sends_nothing_until_the_first_has_stopped(tmp_path):
    store = FeedStore(tmp_path / "dashboard.sqlite")
    subs = Subscriptions(tmp_path / "webhooks.json")
    subs.add("https://erp.example/hook", "OperatorMSP", secret="s" * 20)
    deliveries = Deliveries(store)
    deliveries.enqueue(subs.active()[0], "alert-1", {"alert": {"type": "YieldDeviation"}})
    deliveries.enqueue(subs.active()[0], "alert-2", {"alert": {"type": "YieldDeviation"}})
    posts, answer = [], threading.Event()

    def dispatcher(name):
        def slow_post(url, body, headers, timeout):       # the subscriber answers when told to
            posts.append((name, headers["X-Ipledger-Alert-Id"]))
            answer.wait(10)
            return 200
        return Dispatcher(subs, deliveries, post=slow_post, lock_path=tmp_path / "webhooks.lock").start()

    first = dispatcher("first")
    wait_for(lambda: posts)                                # alert-1 in flight
    second = dispatcher("second")
    first._stop.set()                                      # the first is stopping, its delivery still in flight
    time.sleep(2.5)                                        # the second has tried the lock again meanwhile
    assert posts == [("first", "alert-1")]
    answer.set()
    first.stop()
    wait_for(lambda: len(posts) == 2)
    second.stop()
    # the first sent what it had begun and stopped there; the second sent the rest: each once
    assert posts == [("first", "alert-1"), ("second", "alert-2")]
    assert sorted((d["alert_id"], d["status"], d["attempts"]) for d in deliveries.log()) == [
        ("alert-1", "DELIVERED", 1), ("alert-2", "DELIVERED", 1)]
