"""The live feed: chaincode events stored once, resumed from the checkpoint, streamed as SSE with visibility."""
from __future__ import annotations

import json

from ipledger.gateway.client import FileCheckpointer
from ipledger.gateway.client.checkpoint import Checkpoint
from ipledger.gateway.feed.listener import FeedListener
from ipledger.gateway.feed.store import FeedStore

from .conftest import AUTH, AUTH2, SeesOnly, bearer, body, place
from .contract_ledger import ListSource, wait_for


def sse_events(text: str) -> list[dict]:
    """Parse an SSE body: [{'id':…, 'event':…, 'data':…}] (id-only messages included)."""
    out = []
    for block in text.split("\n\n"):
        msg = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            msg[name] = value
        if msg:
            out.append(msg)
    return out


def test_listener_stores_every_event_once_in_block_order(scenario, live, ledger):
    items = list(reversed(live.store.latest(100)))
    assert [i["block_number"] for i in items] == [e.block_number for e in ledger.events]
    assert [i["id"] for i in items] == [f"{e.block_number}:{e.tx_id}" for e in ledger.events]
    assert [i["event_type"] for i in items] == ["RegisterParty", "GrantAuthorisation", "PlaceUnderProcedure",
                                                "MoveGoods", "RecordProcessing", "ExitGoods", "PlaceUnderProcedure",
                                                "GrantAuthorisation"]
    # the alerts of the transaction are in the item: the processing's yield deviation, L2's ceiling
    proc = items[4]
    assert [(a["change"], a["type"]) for a in proc["alerts"]] == [("RAISED", "YieldDeviation")]
    assert ("RAISED", "CeilingNear") in [(a["change"], a["type"]) for a in items[6]["alerts"]]
    # authorisations seen in the events are known
    assert [a["authorisation_id"] for a in live.store.authorisation_ids()] == [AUTH, AUTH2]
    # checkpoint = the last transaction handled
    cp = live.listener.checkpointer.checkpoint
    assert (cp.block_number, cp.tx_id) == (ledger.events[-1].block_number, ledger.events[-1].tx_id)


def test_restart_resumes_from_checkpoint_no_gap_no_duplicate(scenario, live, ledger, api, tmp_path):
    live.listener.stop()
    stored = live.store.count()
    # events committed while the gateway is down
    api.post(place("L9", 10, "26FR000110000009R0"), "BrokerMSP")
    api.post(body("MoveGoods", "move-9", authorisation_id=AUTH, lot_id="L9", quantity=5, from_site="BOURGES-1",
                  to_site="BOURGES-2"), "OperatorMSP")
    assert live.store.count() == stored
    source = ListSource(ledger)
    listener = live.start_listener(source)
    wait_for(lambda: live.store.count() == stored + 2)
    # it started from the checkpoint, not from block 0
    assert source.opened[0].start == stored
    listener.stop()
    # a crash after storing but before the checkpoint moved: the event comes again and is ignored
    cp_file = live.directory / "feed.checkpoint.json"
    prior = ledger.events[-3]
    FileCheckpointer(cp_file).checkpoint_event(prior)
    listener = live.start_listener(ListSource(ledger))
    wait_for(lambda: listener.handled == 2)
    listener.stop()
    ids = [i["id"] for i in live.store.latest(1000)]
    assert len(ids) == len(set(ids)) == len(ledger.events) == stored + 2


def test_only_one_listener_per_installation(tmp_path, scenario, ledger):
    store = FeedStore(tmp_path / "db.sqlite")
    first = FeedListener(store, FileCheckpointer(tmp_path / "cp.json"), ListSource(ledger), lock_path=tmp_path / "lock")
    second = FeedListener(store, FileCheckpointer(tmp_path / "cp.json"), ListSource(ledger), lock_path=tmp_path / "lock")
    first.start()
    wait_for(first.leading.is_set)
    second.start()
    import time
    time.sleep(0.3)
    assert not second.leading.is_set()
    wait_for(lambda: FileCheckpointer(tmp_path / "cp.json").tx_id == ledger.events[-1].tx_id)
    first.stop()
    wait_for(second.leading.is_set, timeout=5)   # takes over when the first lets go ...
    wait_for(lambda: second.source.opened)
    second.stop()
    # ... from where the first got to, not from the checkpoint file as it stood when the second was made
    assert second.source.opened[0].start == len(ledger.events) and second.handled == 0


def test_a_new_leader_removes_the_temporary_files_of_interrupted_saves(tmp_path):
    cp = FileCheckpointer(tmp_path / "cp.json")
    cp.checkpoint_transaction(3, "t")
    (tmp_path / ".cp.json.abc123.tmp").write_text('{"blockNumber": 9')    # a save killed before its rename
    assert FileCheckpointer(tmp_path / "cp.json").reload() == Checkpoint(3, "t")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cp.json"]


def test_sse_resumes_after_last_event_id_and_filters_by_visibility(scenario, client, keys, live, ledger, api):
    ids = [f"{e.block_number}:{e.tx_id}" for e in ledger.events]
    headers = {**bearer(keys[("CustomsMSP", "viewer")]), "Accept": "text/event-stream", "Last-Event-ID": ids[3]}
    r = client.get("/api/v1/events/stream", headers=headers)
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    msgs = [m for m in sse_events(r.get_data(as_text=True)) if m.get("event") == "ledger-event"]
    assert [m["id"] for m in msgs] == ids[4:]                      # after the given event, each once, in order
    assert json.loads(msgs[0]["data"])["event_type"] == "RecordProcessing"
    # the broker: the same request shows nothing of AUTH2 (no mandate), nor does the operator (not the holder)
    for org in ("BrokerMSP", "OperatorMSP"):
        r = client.get("/api/v1/events/stream", headers={**headers, **bearer(keys[(org, "viewer")])})
        got = [m["id"] for m in sse_events(r.get_data(as_text=True)) if m.get("event") == "ledger-event"]
        assert got == ids[4:7], org
    # without Last-Event-ID: a position to resume from (the newest visible item), then only new events
    r = client.get("/api/v1/events/stream", headers={**bearer(keys[("BrokerMSP", "viewer")]),
                                                     "Accept": "text/event-stream"})
    msgs = sse_events(r.get_data(as_text=True))
    assert msgs[0] == {"retry": "1000"} and msgs[1] == {"id": ids[6]}
    assert not [m for m in msgs if m.get("event")]


def test_sse_live_event_arrives(scenario, app, keys, live, ledger, api):
    import threading
    client = app.test_client()
    got = {}

    def read():
        r = client.get("/api/v1/events/stream", headers={**bearer(keys[("OperatorMSP", "viewer")]),
                                                         "Accept": "text/event-stream"})
        got["text"] = r.get_data(as_text=True)

    t = threading.Thread(target=read)
    t.start()
    import time
    time.sleep(0.3)
    out = api.post(body("MoveGoods", "move-live", authorisation_id=AUTH, lot_id="L1", quantity=1,
                        from_site="BOURGES-1", to_site="BOURGES-2"), "OperatorMSP")
    t.join(5)
    msgs = [m for m in sse_events(got["text"]) if m.get("event") == "ledger-event"]
    assert [m["id"] for m in msgs] == [f"{out['block_number']}:{out['tx_id']}"]
    assert json.loads(msgs[0]["data"])["event_id"] == "move-live"


def test_sse_refusals(scenario, client, keys):
    r = client.get("/api/v1/events/stream", headers=bearer(keys[("CustomsMSP", "viewer")]))
    assert r.status_code == 400                      # not asked for text/event-stream
    r = client.get("/api/v1/events/stream", headers={"Accept": "text/event-stream"})
    assert r.status_code == 401
    r = client.get("/api/v1/events/stream", headers={**bearer(keys[("CustomsMSP", "viewer")]),
                                                     "Accept": "text/event-stream", "Last-Event-ID": "x'; drop"})
    assert r.status_code == 400
    # a position is matched whole: a trailing newline (query parameter) is not a position
    r = client.get("/api/v1/events/stream?last_event_id=3:ab%0A", headers={**bearer(keys[("CustomsMSP", "viewer")]),
                                                                         "Accept": "text/event-stream"})
    assert r.status_code == 400 and r.get_json()["type"].endswith("invalid-parameter")


def test_feed_positions_beyond_a_64_bit_block_number_or_with_other_digits_are_refused(scenario, api):
    # found by schemathesis: a 20-digit block number overflowed SQLite's integer (500)
    for after in ("27505789895572627350:0e", "9223372036854775808:ab", "\u00b2:ab"):
        r = api.get(f"/api/v1/feed?after={after}", "CustomsMSP")
        assert r.status_code == 400, (after, r.status_code)
    assert api.get("/api/v1/feed?after=9223372036854775807:ab", "CustomsMSP").status_code == 200


def test_a_stream_resume_position_beyond_a_64_bit_block_number_is_refused_not_taken_as_none(scenario, client, keys):
    # the stream would have started at the newest item, silently skipping what the client asked to resume after
    headers = {**bearer(keys[("CustomsMSP", "viewer")]), "Accept": "text/event-stream"}
    for position in ("9223372036854775808:ab", "27505789895572627350:0e"):
        r = client.get("/api/v1/events/stream", headers={**headers, "Last-Event-ID": position})
        assert r.status_code == 400 and r.get_json()["type"].endswith("invalid-parameter"), position
        r = client.get(f"/api/v1/events/stream?last_event_id={position}", headers=headers)
        assert r.status_code == 400, position


def test_feed_json_and_known_authorisations(scenario, api, ledger):
    r = api.get("/api/v1/feed", "BrokerMSP")
    # not the other holder's register entry: only customs and that party see it
    assert {i["authorisation_id"] for i in r.get_json()["items"]} == {AUTH}
    r = api.get("/api/v1/feed", "CustomsMSP")
    assert "RegisterParty" in {i["event_type"] for i in r.get_json()["items"]}
    assert api.get("/api/v1/dashboard/authorisations", "BrokerMSP").get_json() == {"authorisations": [AUTH]}
    assert api.get("/api/v1/dashboard/authorisations", "CustomsMSP").get_json() == {"authorisations": [AUTH, AUTH2]}
    after = f"{ledger.events[5].block_number}:{ledger.events[5].tx_id}"
    r = api.get(f"/api/v1/feed?after={after}", "CustomsMSP")
    assert [i["event_id"] for i in r.get_json()["items"]] == ["place-L2", "grant-FRIPO000002"]


def test_a_blocks_events_are_stored_in_one_database_transaction_and_one_checkpoint(tmp_path):
    """The peer sends a block's events together: the listener stores them together and moves its checkpoint
    once, past the block's last transaction (per event it cost a database transaction and a checkpoint file
    written and synced each)."""
    import types

    from ipledger.gateway.client.events import ChaincodeEvent

    def ev(block, n):
        payload = {"recorded_at": "2026-12-02T10:00:00Z",
                   "events": [{"authorisation_id": AUTH, "event_type": "MoveGoods", "event_id": f"m{block}-{n}"}]}
        return ChaincodeEvent(block, f"tx{block}-{n}", "ipledger", "ipledger.events", json.dumps(payload).encode())

    blocks = [[ev(5, n) for n in range(3)], [ev(6, 0)], [ev(7, n) for n in range(4)]]

    class BlockStream:
        """Like the Gateway's stream: one response per block, its events handed out one by one."""
        def __init__(self):
            self.pending, self.blocks = [], [list(b) for b in blocks]

        @property
        def buffered(self):
            return len(self.pending)

        def __iter__(self):
            return self

        def __next__(self):
            if not self.pending:
                if not self.blocks:
                    raise StopIteration
                self.pending = self.blocks.pop(0)
            return self.pending.pop(0)

        def close(self):
            pass

    store = FeedStore(tmp_path / "db.sqlite")
    checkpointer = FileCheckpointer(tmp_path / "cp.json")
    writes, saves = [], []
    add_events, checkpoint_event = store.add_events, checkpointer.checkpoint_event
    store.add_events = lambda rows: writes.append([r[1] for r in rows]) or add_events(rows)
    checkpointer.checkpoint_event = lambda e: saves.append(e.tx_id) or checkpoint_event(e)
    listener = FeedListener(store, checkpointer, types.SimpleNamespace(open=lambda cp: BlockStream()))
    try:
        listener._listen_once()
    except ConnectionError:   # the stream ended: the listener would reconnect from the checkpoint
        pass
    assert writes == [[e.tx_id for e in b] for b in blocks]
    assert saves == [b[-1].tx_id for b in blocks]
    assert [i["tx_id"] for i in reversed(store.latest(100))] == [e.tx_id for b in blocks for e in b]
    cp = checkpointer.checkpoint
    assert (cp.block_number, cp.tx_id) == (7, "tx7-3")


def test_a_channel_served_alone_goes_on_from_its_checkpoint_when_a_second_channel_comes(scenario, live, ledger,
                                                                                      api):
    """Customs' gateway served one channel; a second holder's channel is added (gateway reload): the first
    channel's listener goes on from the checkpoint it had, not from block 0, and the events stored meanwhile
    get the channel's name, as a gateway of several channels stores them."""
    import dataclasses

    from ipledger.gateway.dashboard.live import Live

    live.listener.stop()
    stored = live.store.count()
    channel = live.config.channel
    assert json.loads((live.directory / "feed.json").read_text()) == {"single_channel": channel}
    assert {i.get("channel") for i in live.store.latest(1000)} == {None}
    api.post(place("L9", 10, "26FR000110000009R0"), "BrokerMSP")   # committed while the gateway reloads
    several = dataclasses.replace(live.config, channels=(channel, "holder-b"))
    reloaded = Live(several, live.service, store=live.store, start=False)
    source = ListSource(ledger)
    listener = reloaded.start_listener(source, channel)
    try:
        wait_for(lambda: live.store.count() == stored + 1)
        assert source.opened[0].start == stored   # from the checkpoint, not from block 0
        items = live.store.latest(1000)
        assert len(items) == stored + 1 and {i.get("channel") for i in items} == {channel}
        # the checkpoint moves once the item's hooks have run, after it is stored
        def own():
            cp = FileCheckpointer(live.directory / f"feed.{channel}.checkpoint.json").checkpoint
            return cp.block_number, cp.tx_id
        wait_for(lambda: own() == (ledger.events[-1].block_number, ledger.events[-1].tx_id))
    finally:
        listener.stop()
    # the other channel has no checkpoint of its own yet: it is read from its first block
    other = Live(several, live.service, store=live.store, start=False)
    other._take_over_single_channel_feed("holder-b")
    assert not (live.directory / "feed.holder-b.checkpoint.json").exists()


def test_an_event_stored_without_a_channel_is_named_when_its_channel_delivers_it_again(tmp_path):
    store = FeedStore(tmp_path / "db.sqlite")
    payload = {"events": [{"event_type": "MoveGoods", "authorisation_id": AUTH}], "recorded_at": "2026-12-03T10:00:00Z"}
    assert store.add_events([(7, "tx-a", payload, None)]) == [True]
    assert store.add_events([(7, "tx-a", payload, "ch-1")]) == [False]   # not stored twice, but named
    assert [i["channel"] for i in store.latest(10)] == ["ch-1"]
    assert store.add_events([(7, "tx-a", payload, "ch-2")]) == [False]   # a name once given stays
    assert [i["channel"] for i in store.latest(10)] == ["ch-1"]


def _fill(store, blocks, auth="FRIPO000009", start=1):
    payload = {"events": [{"event_type": "MoveGoods", "authorisation_id": auth}], "recorded_at": "2026-12-03T10:00:00Z"}
    store.add_events([(b, f"tx-{auth}-{b}", payload, None) for b in range(start, start + blocks)])


def test_a_stream_without_last_event_id_finds_its_position_without_reading_the_whole_feed(tmp_path):
    """A party that may see none of the feed's items is given the end of the feed as a block position
    (naming no transaction it may not see), found among the newest items only; one that may see the
    newest of its own gets that item's id."""
    from ipledger.gateway.feed.sse import sse_stream

    store = FeedStore(tmp_path / "db.sqlite")
    _fill(store, 3, auth=AUTH2)
    _fill(store, 5000, start=4)
    hidden = SeesOnly("FRIPO000404")
    stream = sse_stream(store, hidden, "BrokerMSP", None, max_seconds=0, poll_seconds=0)
    assert [next(stream), next(stream)] == ["retry: 1000\n\n", "id: 5004:\n\n"]
    assert hidden.asked <= 1000
    assert store.seq_of("5004:") == store.last_seq()          # the client resumes after everything stored
    sees_auth2 = SeesOnly(AUTH2)
    stream = sse_stream(store, sees_auth2, "OperatorMSP", None, max_seconds=0, poll_seconds=0)
    next(stream)
    assert next(stream) == "id: 5004:\n\n"                     # its items are older than the newest 1,000
    _fill(store, 1, auth=AUTH2, start=5004)
    stream = sse_stream(store, SeesOnly(AUTH2), "OperatorMSP", None, max_seconds=0, poll_seconds=0)
    next(stream)
    assert next(stream) == f"id: 5004:tx-{AUTH2}-5004\n\n"


def test_the_keep_alive_moves_the_position_past_items_the_client_may_not_see(tmp_path):
    """Items the client may not see pass without a message; once caught up, the keep-alive is a position
    after them, so a reconnection does not read them again."""
    from ipledger.gateway.feed.sse import sse_stream

    store = FeedStore(tmp_path / "db.sqlite")
    _fill(store, 2, auth=AUTH)
    start = f"2:tx-{AUTH}-2"
    _fill(store, 300, start=3)   # not the client's
    now = [0.0]

    def sleep(s):
        now[0] += s

    out = list(sse_stream(store, SeesOnly(AUTH), "OperatorMSP", start, max_seconds=12, poll_seconds=1,
                          clock=lambda: now[0], sleep=sleep, keepalive_seconds=5))
    assert out[0] == "retry: 1000\n\n" and "id: 303:\n\n" in out
    assert not [m for m in out if m.startswith("id: ") and "tx-" in m]
    assert store.seq_of("303:") == store.last_seq()


def test_a_feed_database_deleted_underneath_is_said_not_made_again_empty(tmp_path):
    """SQLite made a new empty database in its place (no schema: every feed request an unnamed 500, the file 0644
    under a usual umask); now the request is a 503 naming the condition, and nothing is created."""
    from ipledger.gateway.app import create_app
    from ipledger.gateway.auth import KeyStore
    from ipledger.gateway.config import GatewayConfig
    from tests.unit.gateway.fakes import FakeLedger

    ks = KeyStore(tmp_path / "gateway" / "api-keys.json")
    _, key = ks.create("CustomsMSP", "viewer")
    app = create_app(GatewayConfig(keys_file=ks.path, nonce_key_file=tmp_path / "gateway" / "nonce.key"),
                     ledger=FakeLedger())
    try:
        for p in tmp_path.glob("gateway/dashboard.sqlite*"):
            p.unlink()
        r = app.test_client().get("/api/v1/feed", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 503 and r.headers["Retry-After"] == "60"
        assert "feed database cannot be opened" in r.get_json()["detail"]
        assert not (tmp_path / "gateway" / "dashboard.sqlite").exists()
    finally:
        app.extensions["ipledger_live"].close()
