"""The feed of a gateway serving several holders' channels: a position past items the caller may not see names
the channel whose block it is, so that resuming from it neither skips nor repeats the items of another channel
stored in between (their block numbers are another chain's: channel A may be at block 1,000 while channel B is
at block 10)."""
from __future__ import annotations

import pytest

from ipledger.gateway.feed.sse import feed_page, sse_stream
from ipledger.gateway.feed.store import FeedStore

from .conftest import AUTH, AUTH2, SeesOnly


def _add(store, channel, block, auth):
    payload = {"events": [{"event_type": "MoveGoods", "authorisation_id": auth}], "recorded_at": "2026-12-04T10:00:00Z"}
    store.add_events([(block, f"tx-{channel}-{block}", payload, channel)])


def _poll(store, after, limit=50):
    seen = []
    for _ in range(50):
        items, after_next = feed_page(store, SeesOnly(AUTH), "BrokerMSP", store.seq_of(after), after, limit)
        seen.extend(i["id"] for i in items)
        if after_next == after:
            return seen, after
        after = after_next
    raise AssertionError("the poll never caught up")


def test_polling_past_hidden_items_of_one_channel_skips_nothing_of_another(tmp_path):
    store = FeedStore(tmp_path / "db.sqlite")
    _add(store, "ip-plant-a", 1000, AUTH2)      # hidden from the caller, a channel far ahead
    seen, after = _poll(store, "0:")
    assert seen == []
    _add(store, "ip-plant-b", 10, AUTH)         # the caller's, on a channel at block 10
    _add(store, "ip-plant-a", 1001, AUTH2)
    _add(store, "ip-plant-b", 11, AUTH)
    seen, after = _poll(store, after)
    assert seen == ["10:tx-ip-plant-b-10", "11:tx-ip-plant-b-11"]
    _add(store, "ip-plant-a", 1002, AUTH2)      # hidden again: the position moves past it ...
    seen, after = _poll(store, after)
    assert seen == []
    _add(store, "ip-plant-b", 12, AUTH)         # ... and the caller's next item still comes, once
    assert _poll(store, after)[0] == ["12:tx-ip-plant-b-12"]


def test_a_position_past_a_low_block_of_one_channel_does_not_repeat_another_channels_items(tmp_path):
    store = FeedStore(tmp_path / "db.sqlite")
    _add(store, "ip-plant-a", 500, AUTH)        # the caller's
    _add(store, "ip-plant-b", 3, AUTH2)         # hidden
    seen, after = _poll(store, "0:")
    assert seen == ["500:tx-ip-plant-a-500"]
    assert "tx-ip-plant-b" not in after         # names no transaction the caller may not see
    _add(store, "ip-plant-a", 501, AUTH)
    assert _poll(store, after)[0] == ["501:tx-ip-plant-a-501"]   # not 500 again


def test_the_stream_resumes_from_its_keep_alive_position_on_another_channel(tmp_path):
    store = FeedStore(tmp_path / "db.sqlite")
    _add(store, "ip-plant-a", 1000, AUTH2)      # hidden
    first = list(sse_stream(store, SeesOnly(AUTH), "BrokerMSP", None, max_seconds=0, poll_seconds=0))
    position = [m for m in first if m.startswith("id: ")][0][4:].strip()
    assert "tx-" not in position
    _add(store, "ip-plant-b", 10, AUTH)         # the caller's, stored after it connected
    now = [0.0]

    def sleep(s):
        now[0] += s

    out = list(sse_stream(store, SeesOnly(AUTH), "BrokerMSP", position, max_seconds=3, poll_seconds=1,
                          clock=lambda: now[0], sleep=sleep))
    assert [m.split("\n")[0] for m in out if m.startswith("id: ") and "tx-" in m] == ["id: 10:tx-ip-plant-b-10"]



def _work_of_seq_of(store, positions, monkeypatch):
    """SQLite virtual-machine steps ``seq_of`` runs for each of ``positions`` (counted by a progress handler)."""
    import sqlite3

    counts, current = [], [0]
    connect = sqlite3.connect

    def counting_connect(*args, **kwargs):
        db = connect(*args, **kwargs)
        db.set_progress_handler(lambda: current.__setitem__(0, current[0] + 1), 1)
        return db

    monkeypatch.setattr(sqlite3, "connect", counting_connect)
    try:
        for position in positions:
            current[0] = 0
            assert isinstance(store.seq_of(position), int)
            counts.append(current[0])
    finally:
        monkeypatch.undo()
    return counts



@pytest.mark.parametrize("channels", [(None,), ("ip-plant-a", "ip-plant-a", "ip-plant-a", "ip-plant-b")],
                         ids=["one channel", "two channels"])
def test_resuming_from_a_position_costs_the_same_whatever_the_feed_holds(tmp_path, monkeypatch, channels):
    """``seq_of`` runs at every poll and every stream reconnection: it is answered through indexes, not by
    reading the events table from its first item (block positions did: milliseconds at 100,000 items)."""
    payload = {"events": [{"event_type": "MoveGoods", "authorisation_id": AUTH}], "recorded_at": "2026-12-04T10:00:00Z"}

    def work_at(blocks):
        store = FeedStore(tmp_path / f"{blocks}.sqlite")
        store.add_events([(b, f"tx-{b}", payload, channels[b % len(channels)]) for b in range(1, blocks)])
        positions = [f"{blocks - 10}:", f"{blocks - 10}:tx-unknown", f"{blocks - 9}:tx-{blocks - 9}", "0:",
                     f"{blocks + 10}:", f"ip-plant-a/{blocks - 10}:", f"ip-plant-b/{blocks - 10}:", "ip-plant-b/1:",
                     f"ip-plant-c/{blocks}:"]
        return positions, _work_of_seq_of(store, positions, monkeypatch)

    positions, few = work_at(100)
    _, many = work_at(4000)
    for position, small, large in zip(positions, few, many):
        assert large <= 2 * small + 100, (position, small, large)
