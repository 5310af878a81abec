"""A gateway restored from a backup whose feed database is older than its checkpoint file resumes after the newest event
the database holds; a feed item shows only the alerts its reader may read."""
from __future__ import annotations

import shutil

from ipledger.gateway.feed.store import FeedStore

from .conftest import AUTH, AUTH2


def test_a_feed_database_older_than_its_checkpoint_is_filled_from_its_newest_event(scenario, live, ledger, tmp_path):
    from ipledger.gateway.client import FileCheckpointer
    from ipledger.gateway.feed.listener import FeedListener

    from .contract_ledger import ListSource, wait_for

    live.listener.stop()
    checkpoint = FileCheckpointer(live.directory / "feed.checkpoint.json")
    events = ledger.events
    assert checkpoint.block_number == events[-1].block_number and len(events) >= 4
    # the database as it stood some events ago: a copy of it, with the later events taken out
    old = tmp_path / "restored.sqlite"
    shutil.copy(live.store.path, old)
    kept = events[:len(events) // 2]
    with FeedStore(old).connection() as db:
        db.execute("DELETE FROM events WHERE seq > ?", (len(kept),))
    store = FeedStore(old)
    assert store.count() == len(kept) and store.newest() == (kept[-1].block_number, kept[-1].tx_id)
    seen = []
    source = ListSource(ledger)
    listener = FeedListener(store, checkpoint, source, lock_path=tmp_path / "feed.lock", on_item=[seen.append])
    listener.start()
    try:
        wait_for(lambda: store.count() == len(events))
        assert source.opened[0].start == len(kept)          # after the newest stored event, not at the checkpoint
        assert [i["tx_id"] for i in seen] == [e.tx_id for e in events[len(kept):]]   # the hooks (webhooks) get them
        assert {a["authorisation_id"] for a in store.authorisation_ids()} == {AUTH, AUTH2}
    finally:
        listener.stop()


def test_the_checkpoint_moves_back_only_when_it_is_past_the_newest_stored_event(tmp_path):
    """At the newest stored event the checkpoint stays; past it (a database older than the checkpoint, or only
    blocks without an event of the contract since) it moves back to that event: those blocks are read again,
    and an event among them is stored then."""
    from ipledger.gateway.client import FileCheckpointer
    from ipledger.gateway.feed.listener import FeedListener

    store = FeedStore(tmp_path / "db.sqlite")
    payload = {"events": [{"event_type": "MoveGoods", "authorisation_id": AUTH}], "recorded_at": "2026-12-03T10:00:00Z"}
    store.add_events([(5, "tx-5", payload, None)])
    checkpoint = FileCheckpointer(tmp_path / "cp.json")
    checkpoint.checkpoint_transaction(5, "tx-5")
    listener = FeedListener(store, checkpoint, source=None, lock_path=tmp_path / "lock")
    listener._not_past_the_store()
    assert (checkpoint.block_number, checkpoint.tx_id) == (5, "tx-5")
    checkpoint.checkpoint_transaction(9, "")
    listener._not_past_the_store()
    assert (checkpoint.block_number, checkpoint.tx_id) == (5, "tx-5")


def test_an_item_shows_only_the_alerts_of_authorisations_the_reader_may_read(scenario, api, live, ledger, client,
                                                                            keystore):
    """Customs' new threshold changes the alerts of every authorisation in one channel-wide transaction: its feed
    item is everyone's (as GetParameters is), its alert changes only their own authorisations' readers'."""
    from .conftest import OTHER_HOLDER_MSP, bearer
    from .contract_ledger import body, wait_for

    api.post(body("SetParameters", "params-ceiling-1", parameters={"ceiling_warn_pct": 99}), "CustomsMSP")
    wait_for(lambda: live.store.count() == len(ledger.events))
    [stored] = [i for i in live.store.latest(5) if i["event_type"] == "SetParameters"]
    assert {a["authorisation_id"] for a in stored["alerts"]} == {AUTH}      # AUTH's CeilingNear cleared
    plant_b = keystore.create(OTHER_HOLDER_MSP, "viewer", "plant B viewer")[1]
    operator = keystore.create("OperatorMSP", "viewer", "operator viewer")[1]
    for path in ("/api/v1/feed?limit=1000", "/api/v1/feed?after=0:&limit=1000"):
        items = client.get(path, headers=bearer(plant_b)).get_json()["items"]
        [item] = [i for i in items if i["event_type"] == "SetParameters"]
        assert item["alerts"] == []
        assert all(a["authorisation_id"] == AUTH2 for i in items for a in i["alerts"])
        items = client.get(path, headers=bearer(operator)).get_json()["items"]
        [item] = [i for i in items if i["event_type"] == "SetParameters"]
        assert [a["authorisation_id"] for a in item["alerts"]] == [AUTH]
    assert [a["authorisation_id"] for a in live.store.latest(5)[0]["alerts"]] == [AUTH]   # the store keeps all


def test_the_stream_sends_an_item_with_the_alerts_the_reader_may_read(scenario, api, live, ledger):
    from ipledger.gateway.feed.sse import _shown

    from .conftest import OTHER_HOLDER_MSP
    from .contract_ledger import body, wait_for

    api.post(body("SetParameters", "params-ceiling-2", parameters={"ceiling_warn_pct": 99}), "CustomsMSP")
    wait_for(lambda: live.store.count() == len(ledger.events))
    items = live.store.latest(5)
    shown = _shown(live.visibility, OTHER_HOLDER_MSP, None, items)
    [item] = [i for i in shown.values() if i["event_type"] == "SetParameters"]
    assert item["alerts"] == []
