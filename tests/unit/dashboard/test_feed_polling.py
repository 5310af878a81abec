"""Polling the JSON feed with ``after`` never sticks behind items the caller may not see, skips none it may see, and
names no transaction it may not see."""
from __future__ import annotations

from ipledger.gateway.feed.store import FeedStore

from .conftest import AUTH, AUTH2, SeesOnly


def _fill(store, blocks, auth, start):
    payload = {"events": [{"event_type": "MoveGoods", "authorisation_id": auth}], "recorded_at": "2026-12-03T10:00:00Z"}
    store.add_events([(b, f"tx-{auth}-{b}", payload, None) for b in range(start, start + blocks)])


def _poll(store, visibility, after, limit):
    """What a client polling GET /api/v1/feed?after=… gets, page after page: (every item, the requests made)."""
    from ipledger.gateway.feed.sse import feed_page
    seen, requests = [], 0
    while requests < 100:
        requests += 1
        items, after_next = feed_page(store, visibility, "OperatorMSP", store.seq_of(after), after, limit)
        seen.extend(i["id"] for i in items)
        if after_next == after:
            return seen, requests, after
        assert "tx-" + AUTH2 not in after_next        # never a transaction the caller may not see
        after = after_next
    raise AssertionError("the poll never caught up")


def test_polling_the_json_feed_gets_past_items_the_caller_may_not_see(tmp_path):
    store = FeedStore(tmp_path / "db.sqlite")
    _fill(store, 2, AUTH, 1)
    _fill(store, 700, AUTH2, 3)            # another holder's: more than a page of them
    _fill(store, 3, AUTH, 703)
    seen, requests, last = _poll(store, SeesOnly(AUTH), "0:", limit=2)
    assert seen == [f"1:tx-{AUTH}-1", f"2:tx-{AUTH}-2", f"703:tx-{AUTH}-703", f"704:tx-{AUTH}-704",
                    f"705:tx-{AUTH}-705"]
    assert requests < 10
    _fill(store, 1, AUTH, 706)             # a later item arrives: the next poll gets it, once
    assert _poll(store, SeesOnly(AUTH), last, limit=2)[0] == [f"706:tx-{AUTH}-706"]


def test_the_feed_answer_carries_the_position_to_poll_from(scenario, api, ledger):
    body = api.get("/api/v1/feed?after=0:", "BrokerMSP").get_json()
    assert {i["authorisation_id"] for i in body["items"]} == {AUTH}
    last = ledger.events[-1]                     # the other holder's grant: the broker may not see it
    assert body["next"] == f"{last.block_number + 1}:"
    assert api.get(f"/api/v1/feed?after={body['next']}", "BrokerMSP").get_json() == {"items": [],
                                                                                     "next": body["next"]}
    customs = api.get("/api/v1/feed?after=0:", "CustomsMSP").get_json()
    assert customs["next"] == f"{last.block_number}:{last.tx_id}"


def test_a_feed_database_rebuilt_under_an_old_checkpoint_is_filled_from_block_0(scenario, live, ledger, tmp_path):
    """The feed database moved away (or lost) while the checkpoint file stays: the listener would resume at
    the checkpoint and the feed — and the list of authorisations the inventory and the time-alert webhooks
    go through — would lack everything before it, for good. It reads the channel again from block 0."""
    from ipledger.gateway.client import FileCheckpointer
    from ipledger.gateway.feed.listener import FeedListener

    from .contract_ledger import ListSource, wait_for

    live.listener.stop()
    checkpoint = FileCheckpointer(live.directory / "feed.checkpoint.json")
    assert not checkpoint.empty
    store = FeedStore(tmp_path / "rebuilt.sqlite")
    source = ListSource(ledger)
    listener = FeedListener(store, checkpoint, source, lock_path=tmp_path / "feed.lock").start()
    try:
        wait_for(lambda: store.count() == len(ledger.events))
        assert source.opened[0].start == 0
        assert {a["authorisation_id"] for a in store.authorisation_ids()} == {AUTH, AUTH2}
    finally:
        listener.stop()
