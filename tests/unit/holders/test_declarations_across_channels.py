"""Customs' watch over declaration items across holders' channels (gateway/feed/declarations.py).

A gateway serving several channels refuses an item another of its channels uses (test_many_holders_layout.py);
one serving one holder's channel cannot see the others. Here each holder's own gateway of one channel records a
use the other channel's contract never sees, and customs' gateway, whose feed holds both channels, raises a
``DeclarationAcrossChannels`` alert: listed by the API (customs keys only) and on customs' alerts page, queued for
customs' webhook subscriptions only, never twice; the two sides of a 5151 transfer naming the same goods raise none,
naming other goods (as each contract recorded them) do. Each channel is the real contract in memory."""
from __future__ import annotations

import time

import pytest

from ipledger.chaincode.testing import mrns
from ipledger.gateway.app import create_app
from ipledger.gateway.auth import KeyStore
from ipledger.gateway.config import GatewayConfig
from ipledger.gateway.declarations import DUPLICATE, EXIT, MISMATCH, PLACEMENT, conflict
from ipledger.gateway.feed.declarations import DeclarationWatch
from ipledger.gateway.problems import Problem
from tests.unit.dashboard.signin import sign_in

from .conftest import Api, place
from .harness import A, B, body, wait_for

PROBLEMS = "https://ipledger.example/problems/"


class OneChannel:
    """The ledgers as a gateway of one holder's channel sees them: that channel only."""

    def __init__(self, ledgers, channel):
        self.ledgers, self.channel = ledgers, channel

    def __getattr__(self, name):
        method = getattr(self.ledgers, name)
        if name == "orgs":
            return method
        return lambda *args, channel=None, **kw: method(*args, channel=self.channel, **kw)


@pytest.fixture
def own_gateway(tmp_path, ledgers):
    """A holder's (or its representative's) own gateway, of one channel: ``own_gateway(B)`` posts there."""
    made = []

    def make(channel):
        keystore = KeyStore(tmp_path / channel / "gateway" / "api-keys.json")
        keys = {(org, role): keystore.create(org, role, f"{org} {role}")[1]
                for org in ("CustomsMSP", "OperatorMSP", "BrokerMSP", "PlantBMSP") for role in ("clerk", "viewer")}
        config = GatewayConfig(keys_file=keystore.path, nonce_key_file=tmp_path / channel / "gateway" / "nonce.key",
                               channel=channel, customs_msp="CustomsMSP")
        app = create_app(config, ledger=OneChannel(ledgers, channel))
        made.append(app)
        return Api(app.test_client(), keys)
    yield make
    for app in made:
        app.extensions["ipledger_live"].close()


@pytest.fixture
def subscribed(app, tmp_path):
    """A webhook subscription of customs and one of holder B, both for every alert type."""
    live = app.extensions["ipledger_live"]
    customs = live.subscriptions.add("https://customs.example/hook", "CustomsMSP")
    plant_b = live.subscriptions.add("https://plant-b.example/hook", "PlantBMSP")
    return live, customs, plant_b


def across(api, org="CustomsMSP"):
    r = api.get("/api/v1/declarations/across-channels", org)
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()


def queued(live, alert_id):
    with live.store.connection() as db:
        return sorted(org for (org,) in db.execute("SELECT org FROM deliveries WHERE alert_id = ?", (alert_id,)))


# ---------------------------------------------------------------------------------------------------- the rule

@pytest.mark.parametrize("one, other, verdict", [
    ({"side": PLACEMENT, "procedure": "5100"}, {"side": PLACEMENT, "procedure": "5100"}, (DUPLICATE, [])),
    ({"side": EXIT, "procedure": "3151"}, {"side": EXIT, "procedure": "4051"}, (DUPLICATE, [])),
    ({"side": PLACEMENT, "procedure": "5100"}, {"side": EXIT, "procedure": "3151"}, (DUPLICATE, [])),
    ({"side": EXIT, "procedure": "5151"}, {"side": EXIT, "procedure": "5151"}, (DUPLICATE, [])),
    ({"side": EXIT, "procedure": "5151", "cn": "40122000", "unit": "p/st", "quantity": 20},
     {"side": PLACEMENT, "procedure": "5151", "cn": "40122000", "unit": "p/st", "quantity": 20}, None),
    ({"side": EXIT, "procedure": "5151", "quantity": 20},     # a field one side does not name is not compared
     {"side": PLACEMENT, "procedure": "5151", "cn": "40122000", "quantity": 20}, None),
    ({"side": EXIT, "procedure": "5151", "cn": "40122000", "quantity": 20},
     {"side": PLACEMENT, "procedure": "5151", "cn": "40121200", "quantity": 25}, (MISMATCH, ["cn", "quantity"])),
])
def test_the_rule_of_two_uses_of_one_item(one, other, verdict):
    assert conflict(one, other) == verdict and conflict(other, one) == verdict


# ---------------------------------------------------------------------------------------------------- the watch

def test_one_import_item_placed_by_each_holders_own_gateway_raises_customs_alert(
        two_holders, listening, own_gateway, subscribed, app, keys):
    live, customs_sub, plant_b_sub = subscribed
    m = mrns.placement_mrn(1)
    assert two_holders.post(place("FRIPOA000001", "L1", 100, m), "BrokerMSP")["channel"] == A
    listening.caught_up()
    assert across(two_holders) == {"watching": True, "alerts": []}     # one channel's use: nothing to say
    own_gateway(B).post(place("FRIPOB000001", "L7", 100, m), "PlantBMSP")   # B's gateway cannot see A's channel
    listening.caught_up()
    [alert] = wait_for(lambda: across(two_holders)["alerts"])
    details = alert["alert"]["details"]
    assert alert["alert"]["type"] == "DeclarationAcrossChannels" and alert["source"] == "CROSS_CHANNEL"
    assert (details["mrn"], details["item_no"], details["problem"]) == (m, 1, "duplicate-declaration")
    assert sorted((u["channel"], u["authorisation_id"], u["event_type"]) for u in details["uses"]) == [
        (A, "FRIPOA000001", "PlaceUnderProcedure"), (B, "FRIPOB000001", "PlaceUnderProcedure")]
    assert alert["alert"]["subject"] == f"DECL:{m}/1" and alert["channels"] == [A, B]
    # customs' subscription only: the alert names two holders' authorisations
    assert queued(live, alert["alert_id"]) == ["CustomsMSP"]
    # seen again (a restart before the checkpoint moved): the same alert, no second delivery
    for item in live.store.latest(10):
        live.declarations.on_feed_item(item)
    assert len(across(two_holders)["alerts"]) == 1 and queued(live, alert["alert_id"]) == ["CustomsMSP"]
    # another organisation's key may not read it, even one standing for one of the two authorisations
    for org in ("PlantBMSP", "BrokerMSP", "OperatorMSP"):
        r = two_holders.get("/api/v1/declarations/across-channels", org)
        assert r.status_code == 403 and r.get_json()["type"] == PROBLEMS + "forbidden", org
    # customs' alerts page lists it
    browser = app.test_client()
    assert sign_in(browser, keys[("CustomsMSP", "viewer")]).status_code == 302
    html = browser.get("/dashboard/alerts").get_data(as_text=True)
    assert "Declaration items on two holders' channels" in html and f"{m} / 1" in html
    assert "duplicate-declaration" in html and "FRIPOB000001" in html
    other = app.test_client()
    assert sign_in(other, keys[("PlantBMSP", "viewer")]).status_code == 302
    assert m not in other.get("/dashboard/alerts").get_data(as_text=True)


def test_one_export_item_discharging_goods_of_both_holders_raises_it(two_holders, listening, own_gateway):
    two_holders.post(place("FRIPOA000001", "L1", 100, mrns.placement_mrn(1)), "BrokerMSP")
    two_holders.post(place("FRIPOB000001", "L1", 100, mrns.placement_mrn(2)), "BrokerMSP")
    x = mrns.exit_mrn(7)
    own_gateway(A).post(body("ExitGoods", "exit-a", authorisation_id="FRIPOA000001", lot_id="L1", quantity=30,
                             procedure="3151", mrn=x), "BrokerMSP")
    own_gateway(B).post(body("ExitGoods", "exit-b", authorisation_id="FRIPOB000001", lot_id="L1", quantity=30,
                             procedure="3151", mrn=x), "BrokerMSP")
    listening.caught_up()
    [alert] = wait_for(lambda: across(two_holders)["alerts"])
    assert alert["alert"]["details"]["problem"] == "duplicate-declaration"
    assert {u["event_type"] for u in alert["alert"]["details"]["uses"]} == {"ExitGoods"}


def test_a_5151_transfer_between_holders_raises_nothing_unless_its_sides_name_other_goods(
        two_holders, listening, own_gateway):
    api = two_holders
    api.post(place("FRIPOA000001", "L1", 100, mrns.placement_mrn(1)), "BrokerMSP")
    good, bad = mrns.exit_mrn(8), mrns.exit_mrn(9)
    for t, received in ((good, 20), (bad, 25)):
        own_gateway(A).post(body("ExitGoods", f"tr-a-{received}", authorisation_id="FRIPOA000001", lot_id="L1",
                                 quantity=20, procedure="5151", mrn=t), "BrokerMSP")
        own_gateway(B).post(place("FRIPOB000001", f"LT{received}", received, t, procedure="5151",
                                  event_id=f"tr-b-{received}"), "PlantBMSP")
    listening.caught_up()
    [alert] = wait_for(lambda: across(api)["alerts"])
    details = alert["alert"]["details"]
    assert (details["mrn"], details["problem"], details["differ"]) == (bad, "transfer-mismatch", ["quantity"])


def test_an_item_the_ledger_cannot_be_asked_about_is_judged_when_it_can(two_holders, listening, own_gateway, app):
    """A 5151 pair is compared on what each contract recorded: the ledger failing leaves the item to judge — the
    feed goes on (no hook error) — and the watch's next pass over the items left, once the ledger answers, judges it."""
    live = app.extensions["ipledger_live"]
    watch = live.declarations
    service = watch.service

    class Failing:
        def evaluate_json(self, *args, **kw):
            raise Problem(503, "ledger-unavailable", "the peer does not answer")
    two_holders.post(place("FRIPOA000001", "L1", 100, mrns.placement_mrn(1)), "BrokerMSP")
    listening.caught_up()
    watch.service = Failing()
    t = mrns.exit_mrn(8)
    two_holders.post(body("ExitGoods", "tr-a", authorisation_id="FRIPOA000001", lot_id="L1", quantity=20,
                          procedure="5151", mrn=t), "BrokerMSP")
    own_gateway(B).post(place("FRIPOB000001", "LT", 21, t, procedure="5151", event_id="tr-b"), "PlantBMSP")
    item = wait_for(lambda: next((i for i in live.store.latest(10)
                                  if i.get("channel") == B and i["event_type"] == "PlaceUnderProcedure"), None))
    watch.on_feed_item(item)   # does not raise: the feed is not held up
    assert across(two_holders)["alerts"] == []
    with live.store.connection() as db:
        assert db.execute("SELECT COUNT(*) FROM declaration_uses WHERE mrn = ? AND judged = 0", (t,)).fetchone()[0]
    watch.service = service
    # the watch's own thread runs where the first channel's listener leads (every RETRY_S: here one pass, at once)
    wait_for(lambda: watch._thread is not None and watch._thread.is_alive())
    assert watch.judge_pending() == 1
    [alert] = across(two_holders)["alerts"]
    assert alert["alert"]["details"]["differ"] == ["quantity"]


def test_uses_stored_before_the_watch_existed_are_judged_by_its_next_pass(two_holders, listening, own_gateway, app):
    """An upgraded gateway: the feed already holds both uses when the watch's tables are made."""
    live = app.extensions["ipledger_live"]
    m = mrns.placement_mrn(1)
    two_holders.post(place("FRIPOA000001", "L1", 100, m), "BrokerMSP")
    own_gateway(B).post(place("FRIPOB000001", "L7", 100, m), "PlantBMSP")
    listening.caught_up()
    for listener in live.listeners:   # the gateway stopped; then upgraded to a version with the watch
        listener.stop()
    with live.store.connection() as db:
        db.execute("DROP TABLE declaration_uses")
        db.execute("DROP TABLE declaration_alerts")
    fresh = DeclarationWatch(live.store, live.service, "CustomsMSP")
    assert fresh.alerts() == []
    assert fresh.judge_pending() == 1
    [alert] = fresh.alerts()
    assert alert["alert"]["details"]["mrn"] == m


def test_a_gateway_of_one_channel_does_not_watch(own_gateway):
    """Its contract checks each item of its channel; it sees no other. Customs keys read that it does not watch."""
    api = own_gateway(B)
    assert across(api) == {"watching": False, "alerts": []}
    assert api.get("/api/v1/declarations/across-channels", "PlantBMSP").status_code == 403


# ------------------------------------------------------------------------------------------- the watch alone
# A feed database and fake ledgers: the watch's own rules (which uses, which subscriptions, when), fast.

class Ledger:
    """GetDeclaration as customs reads it: each channel's recorded goods of one transfer side, or a 503 on the
    channels in ``down``; ``asked`` counts the calls."""

    def __init__(self, recorded=None, down=()):
        self.recorded, self.down, self.asked = recorded or {}, set(down), 0

    def evaluate_json(self, org, function, mrn, channel=None):
        self.asked += 1
        if channel in self.down:
            raise Problem(503, "ledger-unavailable", "the peer does not answer")
        items = self.recorded.get((channel, mrn))
        if items is None:
            raise Problem(404, "not-found", f"no declaration {mrn}")
        return {"mrn": mrn, "items": items}


def use(tx, channel, act, mrn, procedure="5100", recorded_at="2026-01-01T00:00:00.000000Z", **goods):
    return {"tx_id": tx, "channel": channel, "recorded_at": recorded_at, "block_number": 1,
            "events": [{"event_type": act, "authorisation_id": f"AUTH-{channel}", "event_id": f"e-{tx}",
                        "event": {"mrn": mrn, "item_no": 1, "procedure": procedure, **goods}}]}


@pytest.fixture
def feed(tmp_path):
    from ipledger.gateway.feed.store import FeedStore
    from ipledger.gateway.webhooks import Deliveries, Subscriptions
    store = FeedStore(tmp_path / "feed.sqlite")
    return store, Deliveries(store), Subscriptions(tmp_path / "webhooks.json")


def deliveries_of(store):
    with store.connection() as db:
        return [(org, alert_id) for org, alert_id in db.execute("SELECT org, alert_id FROM deliveries")]


def test_one_channels_ledger_failing_holds_up_no_feed(feed):
    store, deliveries, subs = feed
    watch = DeclarationWatch(store, Ledger(down={"a"}), "CustomsMSP", deliveries, subs)
    watch.on_feed_item(use("t1", "a", "ExitGoods", "M1", "5151", quantity=20))
    watch.on_feed_item(use("t2", "b", "PlaceUnderProcedure", "M1", "5151", quantity=20))   # 503 on a: to judge later
    watch.on_feed_item(use("t3", "c", "PlaceUnderProcedure", "M9"))                        # another channel, item
    with store.connection() as db:
        pending = [tuple(r) for r in db.execute("SELECT DISTINCT mrn FROM declaration_uses WHERE judged = 0")]
    assert pending == [("M1",)] and watch.alerts() == []


def test_a_subscription_narrowed_to_the_type_gets_it_and_one_made_after_the_uses_does_not(feed):
    store, deliveries, subs = feed
    typed, _secret = subs.add("https://customs.example/typed", "CustomsMSP", types=["DeclarationAcrossChannels"])
    other_type, _secret = subs.add("https://customs.example/other", "CustomsMSP", types=["CeilingNear"])
    later, _secret = subs.add("https://customs.example/later", "CustomsMSP", since="2026-06-01T00:00:00Z")
    watch = DeclarationWatch(store, Ledger(), "CustomsMSP", deliveries, subs)
    watch.on_feed_item(use("t1", "a", "PlaceUnderProcedure", "M1"))
    watch.on_feed_item(use("t2", "b", "PlaceUnderProcedure", "M1", recorded_at="2026-01-02T00:00:00.000000Z"))
    [alert] = watch.alerts()
    assert deliveries_of(store) == [("CustomsMSP", alert["alert_id"])]
    with store.connection() as db:
        [(sub_id,)] = db.execute("SELECT subscription_id FROM deliveries").fetchall()
    assert sub_id == typed["id"] and sub_id not in (other_type["id"], later["id"])


def test_a_further_use_of_a_reported_item_updates_its_alert(feed):
    store, deliveries, subs = feed
    watch = DeclarationWatch(store, Ledger(), "CustomsMSP", deliveries, subs)
    for tx, channel in (("t1", "a"), ("t2", "b"), ("t3", "c")):
        watch.on_feed_item(use(tx, channel, "PlaceUnderProcedure", "M1"))
    newest, first = watch.alerts()
    assert (first["change"], len(first["alert"]["details"]["uses"])) == ("RAISED", 2)
    assert (newest["change"], len(newest["alert"]["details"]["uses"])) == ("UPDATED", 3)
    assert newest["alert_id"] != first["alert_id"]


def test_items_of_one_channel_indexed_at_start_are_judged_without_asking_the_ledger(feed):
    """An upgraded gateway's feed: thousands of placements, each item on one channel — judged in one statement at
    start (no ledger call, no transaction per item); an item on two channels by the watch's next pass."""
    store, deliveries, subs = feed
    rows = [(1000 + i, f"tx{i}", {"recorded_at": "2026-01-01T00:00:00.000000Z",
                                  "events": [{"event_type": "PlaceUnderProcedure", "authorisation_id": "A",
                                              "event_id": f"p{i}", "event": {"mrn": f"M{i:05d}", "item_no": 1,
                                                                            "procedure": "5100"}}]},
             "a" if i else "b") for i in range(2000)]
    rows.append((5000, "tx-dup", {"recorded_at": "2026-01-02T00:00:00.000000Z",
                                  "events": [{"event_type": "PlaceUnderProcedure", "authorisation_id": "B",
                                              "event_id": "dup", "event": {"mrn": "M00001", "item_no": 1,
                                                                           "procedure": "5100"}}]}, "b"))
    store.add_events(rows)
    ledger = Ledger()
    watch = DeclarationWatch(store, ledger, "CustomsMSP", deliveries, subs)
    with store.connection() as db:
        assert db.execute("SELECT COUNT(*) FROM declaration_uses").fetchone()[0] == 2001
        assert [tuple(r) for r in db.execute("SELECT DISTINCT mrn FROM declaration_uses WHERE judged = 0")] == \
            [("M00001",)]
    assert watch.judge_pending() == 1
    [alert] = watch.alerts()
    assert alert["alert"]["details"]["mrn"] == "M00001" and ledger.asked == 0


def test_events_named_with_their_channel_later_are_indexed_at_the_next_start(feed):
    """A gateway that served one channel stores its events without a channel name; when it comes to serve several
    they are named (Live._take_over_single_channel_feed). A start cut short after the naming, before the indexing,
    leaves nothing out: every start indexes what is not indexed yet."""
    store, deliveries, subs = feed
    store.add_events([(7, "tx-a", {"recorded_at": "2026-01-01T00:00:00.000000Z",
                                   "events": [{"event_type": "ExitGoods", "authorisation_id": "A", "event_id": "x",
                                               "event": {"mrn": "X1", "item_no": 1, "procedure": "3151"}}]}, None)])
    DeclarationWatch(store, Ledger(), "CustomsMSP", deliveries, subs)
    store.name_channel("a")   # then the process stops before indexing
    watch = DeclarationWatch(store, Ledger(), "CustomsMSP", deliveries, subs)   # the next start
    watch.on_feed_item(use("tx-b", "b", "ExitGoods", "X1", "3151"))
    [alert] = watch.alerts()
    assert sorted(u["channel"] for u in alert["alert"]["details"]["uses"]) == ["a", "b"]


def test_two_channels_listeners_at_once_raise_each_alert_once(feed):
    import threading
    store, deliveries, subs = feed
    subs.add("https://customs.example/hook", "CustomsMSP")
    watch = DeclarationWatch(store, Ledger(), "CustomsMSP", deliveries, subs)
    errors = []

    def listen(channel):
        try:
            for i in range(40):
                watch.on_feed_item(use(f"{channel}{i}", channel, "PlaceUnderProcedure", f"M{i}"))
        except Exception as exc:   # noqa: BLE001 - reported below
            errors.append(exc)
    threads = [threading.Thread(target=listen, args=(c,)) for c in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(watch.alerts(1000)) == 40 and len(deliveries_of(store)) == 40


RECORDED = {("a", "M1"): [{"item_no": 1, "type": "EXIT", "cn": "X", "unit": "kg", "quantity": 20}],
            ("b", "M1"): [{"item_no": 1, "type": "PLACEMENT", "cn": "X", "unit": "kg", "quantity": 25}],
            ("c", "M1"): [{"item_no": 1, "type": "PLACEMENT", "cn": "X", "unit": "kg", "quantity": 5}]}


def test_a_judgement_made_out_of_date_by_another_listener_is_not_written(feed):
    """Listener of channel b judges {t1, t2} and asks the ledger; meanwhile the listener of channel c stores t3 and
    judges {t1, t2, t3}. The older judgement is not written after the newer: one alert, of the three uses, sent
    once."""
    store, deliveries, subs = feed
    subs.add("https://customs.example/hook", "CustomsMSP")
    state = {"fired": False}

    class Meanwhile(Ledger):
        def evaluate_json(self, org, function, mrn, channel=None):
            if not state["fired"]:
                state["fired"] = True   # channel c's listener runs while this one waits on the peer
                watch.on_feed_item(use("t3", "c", "PlaceUnderProcedure", "M1",
                                       recorded_at="2026-01-03T00:00:00.000000Z"))
            return super().evaluate_json(org, function, mrn, channel)
    watch = DeclarationWatch(store, Meanwhile(RECORDED), "CustomsMSP", deliveries, subs)
    watch.on_feed_item(use("t1", "a", "ExitGoods", "M1", "5151", quantity=20))
    watch.on_feed_item(use("t2", "b", "PlaceUnderProcedure", "M1", "5151", cn="X", unit="kg", quantity=25,
                           recorded_at="2026-01-02T00:00:00.000000Z"))
    [alert] = watch.alerts()
    assert (alert["change"], len(alert["alert"]["details"]["uses"])) == ("RAISED", 3)
    assert deliveries_of(store) == [("CustomsMSP", alert["alert_id"])]


def test_a_peer_without_the_state_of_a_use_yet_leaves_the_transfer_to_judge(feed):
    """The feed delivered the exit's block; the peer answering GetDeclaration on that channel has not its state yet
    (404): the pair is not judged on the events alone (the exit names no goods code) but later, on what each
    contract recorded — here another code."""
    store, deliveries, subs = feed
    recorded = {("a", "M1"): [{"item_no": 1, "type": "EXIT", "cn": "X", "unit": "kg", "quantity": 20}],
                ("b", "M1"): [{"item_no": 1, "type": "PLACEMENT", "cn": "Y", "unit": "kg", "quantity": 20}]}
    ledger = Ledger(recorded)
    lagging = dict(recorded)
    del ledger.recorded[("a", "M1")]
    watch = DeclarationWatch(store, ledger, "CustomsMSP", deliveries, subs)
    watch.on_feed_item(use("t1", "b", "PlaceUnderProcedure", "M1", "5151", cn="Y", unit="kg", quantity=20))
    watch.on_feed_item(use("t2", "a", "ExitGoods", "M1", "5151", quantity=20))
    assert watch.alerts() == []
    ledger.recorded = lagging   # the peer caught up
    assert watch.judge_pending() == 1
    [alert] = watch.alerts()
    assert (alert["alert"]["details"]["problem"], alert["alert"]["details"]["differ"]) == ("transfer-mismatch", ["cn"])


def test_a_pass_over_the_items_left_stops_at_the_first_the_ledger_cannot_answer_for(feed):
    """Fifty transfers left to judge while channel a's peer times out: the next pass (run by a listener of another
    channel) asks once, not fifty times — its own feed waits one query at most."""
    store, deliveries, subs = feed
    ledger = Ledger(down={"a"})
    watch = DeclarationWatch(store, ledger, "CustomsMSP", deliveries, subs)
    for i in range(50):
        watch.on_feed_item(use(f"x{i}", "a", "ExitGoods", f"T{i}", "5151", quantity=1))
        watch.on_feed_item(use(f"p{i}", "b", "PlaceUnderProcedure", f"T{i}", "5151", quantity=1))
    ledger.asked = 0
    assert watch.judge_pending() == 0
    assert ledger.asked == 1
