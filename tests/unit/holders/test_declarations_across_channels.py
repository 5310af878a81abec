"""Customs' watch over declaration items across holders' channels (gateway/feed/declarations.py).

A gateway serving several channels refuses an item another of its channels uses (test_eighteenth_review_holders.py);
one serving one holder's channel cannot see the others. Here each holder's own gateway of one channel records a
use the other channel's contract never sees, and customs' gateway, whose feed holds both channels, raises a
``DeclarationAcrossChannels`` alert: listed by the API (customs keys only) and on customs' alerts page, queued for
customs' webhook subscriptions only, never twice; the two sides of a 5151 transfer naming the same goods raise none,
naming other goods (as each contract recorded them) do. Each channel is the real contract in memory."""
from __future__ import annotations

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


def test_an_item_judged_while_the_ledger_cannot_answer_is_judged_when_it_can(two_holders, listening, own_gateway,
                                                                               app):
    """A 5151 pair is compared on what each contract recorded: a ledger failing then makes the hook fail (the feed
    waits, as for every hook), and the item is judged once it answers — nothing skipped."""
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
    with pytest.raises(Problem):
        watch.on_feed_item(item)
    assert across(two_holders)["alerts"] == []
    watch.service = service
    watch.on_feed_item(item)
    [alert] = wait_for(lambda: across(two_holders)["alerts"])
    assert alert["alert"]["details"]["differ"] == ["quantity"]


def test_uses_stored_before_the_watch_existed_are_judged_with_the_next_item(two_holders, listening, own_gateway,
                                                                             app):
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
    fresh.on_feed_item(live.store.latest(1)[0])
    [alert] = fresh.alerts()
    assert alert["alert"]["details"]["mrn"] == m


def test_a_gateway_of_one_channel_does_not_watch(own_gateway):
    """Its contract checks each item of its channel; it sees no other. Customs keys read that it does not watch."""
    api = own_gateway(B)
    assert across(api) == {"watching": False, "alerts": []}
    assert api.get("/api/v1/declarations/across-channels", "PlantBMSP").status_code == 403
