"""A failed poll of the time alerts is tried again soon, not an hour later."""
from __future__ import annotations

import time

from ipledger.gateway.feed.store import FeedStore
from ipledger.gateway.webhooks import Deliveries, Dispatcher, Subscriptions


class _Router:
    def __init__(self):
        self.polls, self.fail = 0, 1

    def poll_time_alerts(self):
        self.polls += 1
        if self.fail:
            self.fail -= 1
            raise ConnectionError("the ledger cannot be reached")


def test_a_failed_time_alert_poll_is_tried_again_after_a_back_off_not_a_poll_interval(tmp_path):
    now = [1000.0]
    router = _Router()
    dispatcher = Dispatcher(Subscriptions(tmp_path / "webhooks.json"), Deliveries(FeedStore(tmp_path / "db.sqlite")),
                            router=router, poll_alerts_s=3600.0, backoff_s=2.0, clock=lambda: now[0])
    dispatcher.start()
    try:
        deadline = time.monotonic() + 5
        while router.polls < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert router.polls == 1                      # failed: the ledger was down
        now[0] += 30                                  # half a minute later, not an hour
        deadline = time.monotonic() + 5
        while router.polls < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert router.polls == 2
        now[0] += 60                                  # it succeeded: the next one is an hour after it
        time.sleep(1.2)
        assert router.polls == 2
    finally:
        dispatcher.stop()


def test_one_authorisation_the_ledger_fails_on_does_not_stop_the_time_alerts_of_the_others(tmp_path):
    import pytest

    from ipledger.gateway.problems import Problem
    from ipledger.gateway.webhooks import AlertRouter

    store = FeedStore(tmp_path / "db.sqlite")
    for auth_id in ("FRIPO000001", "FRIPO000002"):
        store.add_authorisation(auth_id, "CustomsMSP")
    subs = Subscriptions(tmp_path / "webhooks.json")
    subs.add("https://erp.example/hook", "OperatorMSP")
    deliveries = Deliveries(store)

    class Service:
        def evaluate_each(self, org, function, auth_id, as_of):
            if auth_id == "FRIPO000001":   # e.g. the contract failing on this one authorisation (InternalError)
                raise Problem(502, "internal-error", "the contract failed to process the request")
            return [("ip-plant", {"alerts": [{"type": "DeadlineOverdue", "subject": "L7", "source": "DERIVED",
                                              "authorisation_id": auth_id, "details": {}}]})]

    router = AlertRouter(subs, deliveries, visibility=None, service=Service(), store=store)
    with pytest.raises(Problem):           # the poll is reported failed (tried again after a back-off) ...
        router.poll_time_alerts()
    queued = [d for d in deliveries.log() if d["alert_type"] == "DeadlineOverdue"]
    assert [d["authorisation_id"] for d in queued] == ["FRIPO000002"]   # ... after the others were polled
