"""Alert webhooks are at least once for real: the feed checkpoint never moves past an alert whose webhook
delivery is neither done nor durably queued (issue 13, point 7)."""
from __future__ import annotations

import json
import threading
import time

from ipledger.gateway.app import create_app
from ipledger.gateway.client import ChaincodeEvent, FileCheckpointer
from ipledger.gateway.feed.listener import FeedListener
from ipledger.gateway.feed.store import FeedStore
from ipledger.gateway.problems import Problem

from .conftest import AUTH, AUTH2, body
from .contract_ledger import ListSource, wait_for
from .test_alerts_webhooks import SECRET, Receiver


class _FixedSource:
    """Chaincode events after the checkpoint, then waiting (like the peer) until closed."""

    def __init__(self, events):
        self.events = events
        self.opened = 0

    def open(self, checkpoint):
        self.opened += 1
        start = 0
        if checkpoint is not None and not checkpoint.empty:
            start = next((i + 1 for i, e in enumerate(self.events)
                          if (e.block_number, e.tx_id) == (checkpoint.block_number, checkpoint.tx_id)), 0)
        return _Stream(self.events[start:])

    def close(self):
        pass


class _Stream:
    def __init__(self, events):
        self.events = list(events)
        self.closed = threading.Event()

    def __iter__(self):
        return self

    def __next__(self):
        if self.events:
            return self.events.pop(0)
        self.closed.wait()
        raise StopIteration

    def close(self):
        self.closed.set()


def _event(block: int, n: int, alerts=()) -> ChaincodeEvent:
    payload = {"recorded_at": "2026-03-02T09:00:00Z", "alerts": list(alerts),
               "events": [{"event_type": "RecordProcessing", "event_id": f"e{n}", "authorisation_id": AUTH}]}
    return ChaincodeEvent(block_number=block, tx_id=f"{n:064x}", chaincode="ipledger", event_name="ipledger.events",
                          payload=json.dumps(payload).encode())


def test_the_checkpoint_waits_until_every_hook_has_succeeded(tmp_path):
    """A hook that fails (e.g. the disk is full, the queue cannot be written) is retried; until it succeeds the
    checkpoint stays before its transaction — a restart would bring the transaction again."""
    events = [_event(7, 1), _event(8, 2, alerts=[{"change": "RAISED", "type": "YieldDeviation"}]), _event(9, 3)]
    checkpointer = FileCheckpointer(tmp_path / "cp.json")
    seen, fails = [], {"left": 2}

    def hook(item):
        seen.append((item["tx_id"], checkpointer.block_number, checkpointer.tx_id))
        if item["block_number"] == 8 and fails["left"]:
            fails["left"] -= 1
            raise OSError("the queue cannot be written")

    listener = FeedListener(FeedStore(tmp_path / "db.sqlite"), checkpointer, _FixedSource(events), on_item=[hook],
                            retry_s=0.05)
    listener.start()
    try:
        wait_for(lambda: (checkpointer.block_number, checkpointer.tx_id) == (9, events[2].tx_id), timeout=15)
    finally:
        listener.stop()
    calls_8 = [s for s in seen if s[0] == events[1].tx_id]
    assert len(calls_8) == 3                                     # two failures, then success
    # while the hook of block 8 had not succeeded, the checkpoint stayed at block 7
    assert {(b, t) for _, b, t in calls_8} == {(7, events[0].tx_id)}
    # the next transaction's hook ran only after that
    assert [s[0] for s in seen] == [events[0].tx_id] + [events[1].tx_id] * 3 + [events[2].tx_id]


def test_an_alert_met_while_the_ledger_is_unreachable_is_delivered_when_it_is_back(scenario, live, api, ledger):
    """The recorded alert's webhook needs the ledger (may the subscriber's org read the authorisation?). When
    it cannot be asked, the delivery is queued durably and checked later — never dropped."""
    receiver = Receiver(fail=0)
    try:
        sub, _ = live.subscriptions.add(receiver.url, "OperatorMSP", secret=SECRET)
        broker_sub, _ = live.subscriptions.add(receiver.url + "/broker", "BrokerMSP", secret=SECRET)
        down = threading.Event()
        down.set()
        real = live.visibility.can_read

        def can_read(org, authorisation_id):
            if down.is_set():
                raise Problem(503, "service-unavailable", "the peer cannot be reached")
            return real(org, authorisation_id)

        live.visibility.can_read = can_read
        live.visibility.forget()
        # a yield deviation on AUTH (the operator and the broker may read it), a suspension of AUTH2 (neither may)
        api.post(body("RecordProcessing", "proc-2", authorisation_id=AUTH, operation_id="OP2", site="BOURGES-1",
                      inputs=[{"lot_id": "L1", "qty": 100}],
                      outputs=[{"batch_id": "B3", "cn": "40121200", "qty": 99, "unit": "p/st", "kind": "MAIN"}]),
                 "OperatorMSP")
        api.post(body("SuspendAuthorisation", "susp-2", authorisation_id=AUTH2, reason="audit"), "CustomsMSP")
        wait_for(lambda: live.store.count() == len(ledger.events))
        time.sleep(0.5)
        assert receiver.requests == []                            # nothing can be sent yet …
        # … and the broker's delivery log does not reveal AUTH2's alert while its visibility is unchecked
        own = api.get("/api/v1/webhooks/deliveries", "BrokerMSP").get_json()["deliveries"]
        assert AUTH2 not in {d["authorisation_id"] for d in own}
        down.clear()                                              # the ledger is back
        deliveries = lambda: api.get("/api/v1/webhooks/deliveries", "CustomsMSP").get_json()["deliveries"]  # noqa: E731
        wait_for(lambda: deliveries() and all(d["status"] != "PENDING" for d in deliveries()))
        types = [a["type"] for a in json.loads(ledger.events[-2].payload)["alerts"]]
        assert "YieldDeviation" in types
        got = sorted((json.loads(r["body"])["subscription_id"], json.loads(r["body"])["alert"]["type"],
                      json.loads(r["body"])["alert"]["authorisation_id"]) for r in receiver.requests)
        assert got == sorted((s["id"], t, AUTH) for s in (sub, broker_sub) for t in types)
        # AUTH2's alert was dropped for both (neither org may read AUTH2): never sent, never logged
        assert {(d["authorisation_id"], d["status"]) for d in deliveries()} == {(AUTH, "DELIVERED")}
    finally:
        receiver.close()


def test_a_queued_delivery_is_sent_after_a_restart(config, ledger, keys, api, scenario, live):
    """Deliveries are on disk (SQLite, synchronous=FULL) before the checkpoint moves: a gateway that stops
    (or crashes) with a delivery pending sends it after it starts again, with its back-off."""
    receiver = Receiver(fail=10 ** 6)
    try:
        sub, _ = live.subscriptions.add(receiver.url, "OperatorMSP", secret=SECRET)
        api.post(body("RecordProcessing", "proc-3", authorisation_id=AUTH, operation_id="OP3", site="BOURGES-1",
                      inputs=[{"lot_id": "L1", "qty": 100}],
                      outputs=[{"batch_id": "B4", "cn": "40121200", "qty": 99, "unit": "p/st", "kind": "MAIN"}]),
                 "OperatorMSP")
        wait_for(lambda: len(receiver.requests) >= 1)
        live.close()                                              # the gateway stops with the delivery pending
        pending = [d for d in live.deliveries.log() if d["status"] == "PENDING"]
        assert pending and {d["subscription_id"] for d in pending} == {sub["id"]}
        with live.store.connection() as db:
            assert db.execute("PRAGMA synchronous").fetchone()[0] == 2          # FULL: fsync at every commit
        receiver.fail = 0
        app2 = create_app(config, ledger=ledger)                  # the next start, same state directory
        try:
            live2 = app2.extensions["ipledger_live"]
            live2.start_listener(ListSource(ledger))
            wait_for(lambda: all(d["status"] == "DELIVERED" for d in live2.deliveries.log()
                                 if d["subscription_id"] == sub["id"]))
            bodies = {r["body"] for r in receiver.requests}
            assert len(bodies) == len(pending)                    # the same deliveries, attempted again
            assert "OP3/40121200" in {json.loads(b)["alert"]["subject"] for b in bodies}
        finally:
            app2.extensions["ipledger_live"].close()
    finally:
        receiver.close()


def test_a_time_alert_poll_that_fails_half_way_queues_nothing_twice(scenario, live):
    """A time alert's deliveries and the poll's memory of it are written together: after a failure the next
    poll finds the change again and queues it once, under one alert id."""
    import sqlite3

    from .conftest import day
    live.subscriptions.add("http://127.0.0.1:9/hook", "OperatorMSP", secret=SECRET, types=["DeadlineApproaching"])
    live.dispatcher.stop()                                        # keep the queue as it is
    with live.store.connection() as db:                           # the second change cannot be remembered
        db.execute("CREATE TRIGGER full_disk BEFORE INSERT ON time_alerts WHEN (SELECT count(*) FROM time_alerts) "
                   ">= 1 BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    as_of = day(151)
    try:
        live.router.poll_time_alerts(as_of)
        failed = False
    except sqlite3.Error:
        failed = True
    assert failed
    with live.store.connection() as db:
        db.execute("DROP TRIGGER full_disk")
    live.router.poll_time_alerts(as_of)
    with live.store.connection() as db:
        rows = db.execute("SELECT alert_id, body FROM deliveries WHERE alert_type = 'DeadlineApproaching'").fetchall()
    subjects = sorted(json.loads(r["body"])["alert"]["subject"] for r in rows)
    assert subjects == ["BATCH:B2", "LOT:L1", "LOT:L2"]            # each once (B2: L1's waste)
