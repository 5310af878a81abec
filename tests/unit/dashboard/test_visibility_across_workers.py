"""Each gunicorn worker caches "may this organisation read this authorisation", but the feed database is
shared: as soon as it holds an event that changes who may read (an amendment of the authorisation, a party
withdrawn...), stored by whichever worker's listener, no worker uses an answer older than that event."""
from __future__ import annotations

from ipledger.gateway.app import create_app
from ipledger.gateway.feed.store import FeedStore
from ipledger.gateway.feed.visibility import Visibility

from .conftest import AUTH, SITE1, SITE2, bearer, body, grant
from .contract_ledger import wait_for
from .test_party_visibility import Contract, item


def test_a_mandate_ended_is_seen_by_every_worker_at_once(scenario, app, keys, api, live, ledger, config):
    worker2 = create_app(config, ledger=ledger)    # another worker: the same feed database, no listener here
    try:
        broker = worker2.test_client()
        headers = bearer(keys[("BrokerMSP", "viewer")])
        before = broker.get("/api/v1/feed?limit=3", headers=headers).get_json()["items"]
        assert before and all(i["authorisation_id"] == AUTH for i in before)   # cached: the broker may read AUTH
        ended = {**grant(mandates=()), "type": "AmendAuthorisation", "event_id": "amend-no-broker",
                 "reason": "mandate ended"}
        api.post(ended, "CustomsMSP")              # customs ends the broker's mandate ...
        api.post(body("MoveGoods", "move-after-amend", authorisation_id=AUTH, lot_id="L2", quantity=7,
                      from_site=SITE1, to_site=SITE2), "OperatorMSP")   # ... and the holder goes on
        wait_for(lambda: live.store.count() == len(ledger.events))      # stored by the first worker's listener
        for limit in (1, 3, 100):   # whether or not the page shows the amendment itself
            items = broker.get(f"/api/v1/feed?limit={limit}", headers=headers).get_json()["items"]
            assert [i["event_id"] for i in items if i["authorisation_id"] == AUTH] == [], limit
        known = broker.get("/api/v1/dashboard/authorisations", headers=headers).get_json()["authorisations"]
        assert AUTH not in known
    finally:
        worker2.extensions["ipledger_live"].close()


class _CountingStore(FeedStore):
    looks = 0

    def events_of_types_after(self, seq, event_types):
        self.looks += 1
        return super().events_of_types_after(seq, event_types)


def _stored(store, *items_):
    store.add_events([(i["block_number"], i["tx_id"], {"recorded_at": i["recorded_at"], "events": i["events"]}, None)
                      for i in items_])


def test_a_cached_answer_is_asked_again_after_a_change_another_worker_stored(tmp_path):
    store = _CountingStore(tmp_path / "db.sqlite")
    contract = Contract({"BrokerMSP"})
    vis = Visibility(contract, store=store)
    moves = [item("MoveGoods", {"authorisation_id": "FRIPO1"}, org="PlantAMSP", n=n) for n in range(1, 51)]
    _stored(store, *moves)
    assert len(vis.filter("BrokerMSP", moves)) == 50
    assert contract.asked == 1 and store.looks == 1              # one question, one look at the store per call
    assert len(vis.filter("BrokerMSP", moves)) == 50 and contract.asked == 1
    # another worker's listener stores an amendment of FRIPO1: this reader never meets it
    contract.readers.discard("BrokerMSP")
    _stored(store, item("AmendAuthorisation", {"authorisation_id": "FRIPO1"}, n=51))
    assert vis.filter("BrokerMSP", moves[-1:]) == [] and contract.asked == 2
    assert vis.filter("BrokerMSP", moves[-1:]) == [] and contract.asked == 2     # the new answer is cached
    # a change of another authorisation leaves it; one of the whole channel (the register) does not
    _stored(store, item("AmendAuthorisation", {"authorisation_id": "FRIPO2"}, n=52))
    assert not vis.can_read("BrokerMSP", "FRIPO1") and contract.asked == 2
    _stored(store, item("WithdrawParty", {"msp_id": "PlantBMSP"}, n=53))
    assert not vis.can_read("BrokerMSP", "FRIPO1") and contract.asked == 3
    assert vis.readable("BrokerMSP", ["FRIPO1", "FRIPO1"]) == [] and contract.asked == 3
