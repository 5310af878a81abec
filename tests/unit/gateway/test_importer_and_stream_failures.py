"""The ERP importer and the feed under failure: a page of something in front of the gateway, a progress file of another
format, a resume past retention, a ledger outage during a stream."""
from __future__ import annotations

import json
import threading

import pytest
from werkzeug.serving import make_server

from ipledger.gateway.importer import ImportError_, Importer

KEY = "ipk_0123456789ab_" + "A" * 43


class Front:
    """201 + tx_id for every event; while ``status`` is set, a page of something in front of the gateway."""

    def __init__(self):
        self.status = None
        self.posted = []

    def __call__(self, environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        if self.status:
            start_response(self.status, [("Content-Type", "text/html")])
            return [b"<html>Request blocked</html>"]
        event = json.loads(body)
        self.posted.append(event["event_id"])
        start_response("201 Created", [("Content-Type", "application/json")])
        return [json.dumps({"status": "COMMITTED", "tx_id": "tx-" + event["event_id"], "block_number": 3}).encode()]


@pytest.fixture
def front():
    app = Front()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    app.url = f"http://127.0.0.1:{server.server_port}"
    yield app
    server.shutdown()
    thread.join()


def moves(n: int) -> str:
    return "".join(json.dumps({"type": "MoveGoods", "event_id": f"mv-{i}", "authorisation_id": "FRIPO000001",
                               "occurred_at": "2026-03-02T10:00:00Z", "lot_id": "L1", "quantity": 1,
                               "from_site": "BOURGES-1", "to_site": "BOURGES-2"}) + "\n" for i in range(n))


@pytest.mark.parametrize("status", ["403 Forbidden", "400 Bad Request", "409 Conflict", "422 Unprocessable Entity"])
def test_a_4xx_page_of_something_in_front_of_the_gateway_stops_the_import_and_records_nothing(tmp_path, front, status):
    """A firewall's 403 page was recorded REFUSED for every line: the run after the firewall was fixed sent
    nothing (the lines were "done"), and the events were lost unless one knew to use --restart."""
    src = tmp_path / "events.jsonl"
    src.write_text(moves(3))
    front.status = status
    with pytest.raises(ImportError_, match="nothing recorded for it"):
        Importer(front.url, KEY, progress=None).run(src)
    front.status = None
    assert Importer(front.url, KEY, progress=None).run(src) == 0
    assert front.posted == ["mv-0", "mv-1", "mv-2"]


def test_the_progress_of_a_file_read_in_one_format_is_not_taken_for_another(tmp_path, front):
    """A CSV export imported once as JSON lines by mistake (every line INVALID) was "done": the run with
    --format csv sent nothing."""
    src = tmp_path / "export.txt"
    src.write_text("type,event_id,authorisation_id,occurred_at,lot_id,quantity,from_site,to_site\n" +
                   "".join(f"MoveGoods,mv-{i},FRIPO000001,2026-03-02T10:00:00Z,L1,1,BOURGES-1,BOURGES-2\n"
                           for i in range(3)))
    assert Importer(front.url, KEY, progress=None).run(src, fmt="jsonl") == 1
    with pytest.raises(ImportError_, match="read as jsonl, not csv.*--restart"):
        Importer(front.url, KEY, progress=None).run(src, fmt="csv")
    assert front.posted == []
    assert Importer(front.url, KEY, progress=None).run(src, fmt="csv", restart=True) == 0
    assert front.posted == ["mv-0", "mv-1", "mv-2"]
    assert Importer(front.url, KEY, progress=None).run(src, fmt="csv") == 0   # resumed: nothing sent again
    assert front.posted == ["mv-0", "mv-1", "mv-2"]


# -- the live feed ------------------------------------------------------------------------------------------------

def _store_item(store, block, channel, tx=None):
    tx = tx or f"tx-{channel}-{block}"
    store.add_events([(block, tx, {"events": [{"event_type": "MoveGoods", "authorisation_id": "FRIPO000001"}],
                                   "recorded_at": "2027-01-01T00:00:00Z"}, channel)])
    return f"{block}:{tx}"


def test_resuming_from_an_item_the_retention_removed_skips_no_other_channels_items(tmp_path):
    """An item id names no channel: once it was removed, its block number (1001 on one holder's channel) was
    compared with another channel's block numbers (5–7), and that channel's items stored after it were skipped."""
    import sqlite3
    from ipledger.gateway.feed.store import FeedStore
    store = FeedStore(tmp_path / "feed.sqlite")
    _store_item(store, 1000, "ip-plant-a")
    seen = _store_item(store, 1001, "ip-plant-a")
    kept = [_store_item(store, b, "ip-plant-b") for b in (5, 6, 7)]
    _store_item(store, 1002, "ip-plant-a")
    with sqlite3.connect(store.path) as db:   # the retention's work: the client's item is gone
        db.execute("DELETE FROM events WHERE id IN (?, ?)", ("1000:tx-ip-plant-a-1000", seen))
    got = [i["id"] for i in store.events_after(store.seq_of(seen))]
    assert got[:3] == kept and got[3] == "1002:tx-ip-plant-a-1002"


def test_a_ledger_outage_during_a_stream_keeps_it_alive_and_loses_no_item(tmp_path):
    """The visibility check's Problem (the peer unreachable) escaped the SSE body: the server logged a traceback and
    cut the connection, again on every reconnection."""
    from ipledger.gateway.feed.sse import sse_stream
    from ipledger.gateway.feed.store import FeedStore
    from ipledger.gateway.feed.visibility import Visibility
    from ipledger.gateway.problems import Problem

    class Ledger:
        down = True

        def evaluate_json(self, org, function, *args, **kw):
            if self.down:
                raise Problem(503, "service-unavailable", "the peer cannot be reached")
            return {"authorisation_id": args[0], "holder_eori": "FR12345678901234", "broker_mandates": []}

    store = FeedStore(tmp_path / "feed.sqlite")
    item = _store_item(store, 5, None, "tx-a")
    ledger, now = Ledger(), [0.0]

    def sleep(s):
        now[0] += s
        if now[0] > 3:
            ledger.down = False   # the peer answers again
    body = list(sse_stream(store, Visibility(ledger, store=store), "CustomsMSP", "4:", max_seconds=10,
                           poll_seconds=0.5, clock=lambda: now[0], sleep=sleep, keepalive_seconds=1))
    assert body[0] == "retry: 1000\n\n" and ": keep-alive\n\n" in body[1:body.index(next(
        b for b in body if b.startswith("id: " + item)))]
    assert sum(b.startswith(f"id: {item}\n") for b in body) == 1


# -- webhooks -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("answer", [(409, "ambiguous-channel"), (422, "unprocessable")])
def test_an_access_check_that_answers_a_4xx_ends_its_delivery_and_blocks_no_other(tmp_path, answer):
    """A check answered 409 ambiguous-channel (an authorisation id on two holders' channels, asked without one)
    was taken for an outage and asked again for good, every later delivery of the subscription waiting behind it.
    Any other 4xx still ends the delivery; ambiguous-channel now answers the check itself — the id answered the
    subscription's organisation on each channel, so it may read it — and the time alert goes out."""
    import time
    from ipledger.gateway.feed.store import FeedStore
    from ipledger.gateway.feed.visibility import Visibility
    from ipledger.gateway.problems import Problem
    from ipledger.gateway.webhooks import Deliveries, Dispatcher, Subscriptions

    class TwoHolders:
        def evaluate_json(self, org, function, *args, channel=None):
            if channel is None:
                raise Problem(*answer, f"{function}: answered on the channels ip-a, ip-b")
            return {"authorisation_id": args[0]}

    store = FeedStore(tmp_path / "dashboard.sqlite")
    subs = Subscriptions(tmp_path / "webhooks.json")
    sub, _ = subs.add("http://127.0.0.1:9/hook", "CustomsMSP")
    sub = {**sub, "secret": "x" * 32}
    deliveries = Deliveries(store)
    deliveries.enqueue(sub, "time-1", {"alert_id": "time-1", "change": "RAISED", "source": "DERIVED",
                                       "alert": {"type": "DeadlineOverdue", "authorisation_id": "FRIPO000001"}})
    deliveries.enqueue(sub, "rec-1", {"alert_id": "rec-1", "change": "RAISED", "source": "RECORDED", "channel": "ip-b",
                                      "alert": {"type": "CeilingNear", "authorisation_id": "FRIPO000009"}},
                       needs_check=True)
    sent, now = [], [time.time() + 1]
    dispatcher = Dispatcher(subs, deliveries, visibility=Visibility(TwoHolders()), clock=lambda: now[0],
                            post=lambda url, body, headers, timeout: sent.append(headers["X-Ipledger-Alert-Id"]) or 200)
    for _ in range(3):
        dispatcher.run_once()
        now[0] += 60
    rows = {r["alert_id"]: r for r in deliveries.log()}
    if answer[1] == "ambiguous-channel":
        assert sorted(sent) == ["rec-1", "time-1"]
        return
    assert sent == ["rec-1"]
    assert rows["time-1"]["status"] == "FAILED" and "unprocessable" in rows["time-1"]["last_error"]
