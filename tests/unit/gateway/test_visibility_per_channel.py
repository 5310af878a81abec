"""No data leaks between parties or between holders' channels: deliveries, feed items, reports and pages answer for who
may read what on the channel asked about. Each test failed on the code before its fix, except
``test_a_time_alert_the_organisation_may_read_is_sent`` (what the fix must keep).

* a time alert's webhook delivery was sent on its first attempt without asking whether the subscription's
  organisation may still read the authorisation (a recorded alert is asked before its first attempt, every
  delivery before a retry): queued while the broker held a mandate, sent after customs had ended it;
* on a gateway of several holders' channels, who may see a feed item or a recorded alert was asked of
  whichever channel knows the authorisation id, not of the item's own channel: the same id on two holders'
  channels (the gateway refuses such a grant, but only for the channels it serves at that moment, and two
  grants at once both pass the check) showed one holder's events and alerts to the broker of the other;
* the reports and the alerts across authorisations ignored ``?channel=``: asked about one holder's channel
  they answered with another's data (unlabelled), and a channel the gateway does not serve was not refused;
  the dashboard's authorisation page too (its 409 page's links to each channel led back to the same 409).
"""
from __future__ import annotations

import json

import pytest

from ipledger.gateway.app import create_app
from ipledger.gateway.feed.store import FeedStore, feed_item
from ipledger.gateway.problems import Problem
from ipledger.gateway.webhooks import AlertRouter, Deliveries, Dispatcher, Subscriptions

from tests.unit.dashboard.signin import sign_in

from .conftest import bearer
from .fakes import evaluate_error
from .test_channels import ChannelLedgers

A, B = "ip-plant-a", "ip-plant-b"
AUTH = "FRIPOA000001"
PROBLEMS = "https://ipledger.example/problems/"


# -- a time alert is not sent once the subscription's organisation may no longer read ------------------------

class _Visibility:
    """The contract's answer to "may org read authorisation A" (the broker's mandate can be ended)."""

    def __init__(self):
        self.readers = {"BrokerMSP"}
        self.asked = []

    def can_read(self, org, authorisation_id, **kw):
        self.asked.append((org, authorisation_id))
        return org in self.readers

    def forget_for(self, item):
        pass


class _Service:
    """GetAlerts of one authorisation: a deadline overdue (a time alert)."""

    def evaluate_each(self, org, function, auth_id, as_of):
        return [("ip-plant", {"alerts": [{"type": "DeadlineOverdue", "subject": "LOT:L1", "source": "DERIVED",
                                          "authorisation_id": auth_id, "details": {"balance": 500}}]})]


def _broker_time_alerts(tmp_path):
    """A broker's webhook subscription, the alert router over one authorisation with a time alert, and the
    dispatcher: (router, dispatcher, deliveries, visibility, the bodies sent)."""
    store = FeedStore(tmp_path / "db.sqlite")
    store.add_authorisation(AUTH, "CustomsMSP")
    subs = Subscriptions(tmp_path / "webhooks.json")
    subs.add("https://broker.example/hook", "BrokerMSP")
    deliveries = Deliveries(store)
    visibility = _Visibility()
    router = AlertRouter(subs, deliveries, visibility, service=_Service(), store=store)
    sent = []
    dispatcher = Dispatcher(subs, deliveries, router=router, visibility=visibility,
                            post=lambda url, body, headers, timeout: sent.append(json.loads(body)) or 204)
    return router, dispatcher, deliveries, visibility, sent


def test_a_time_alert_is_not_sent_once_the_mandate_has_ended(tmp_path):
    """Polled while the broker held a mandate, queued behind deliveries its receiver refused (they go in order);
    customs end the mandate; the receiver comes back: the queued time alert was sent on its first attempt, the
    one attempt nobody checked."""
    router, dispatcher, deliveries, visibility, sent = _broker_time_alerts(tmp_path)
    assert router.poll_time_alerts() == 1           # the broker may read the authorisation: queued
    visibility.readers.clear()                      # customs end the broker's mandate before it is sent
    dispatcher.run_once()
    assert sent == []
    (d,) = deliveries.log()
    assert d["status"] == "FAILED" and "no longer read" in d["last_error"]
    assert ("BrokerMSP", AUTH) in visibility.asked


def test_a_time_alert_the_organisation_may_read_is_sent(tmp_path):
    router, dispatcher, deliveries, visibility, sent = _broker_time_alerts(tmp_path)
    router.poll_time_alerts()
    dispatcher.run_once()
    assert [(b["alert"]["type"], b["alert"]["authorisation_id"]) for b in sent] == [("DeadlineOverdue", AUTH)]


# -- a gateway of several holders' channels: an item is judged on its own channel ------------------------------

def _reads(readers_by_channel: dict[str, set[str]], ids: set[str]):
    """GetAuthorisation on one channel: the authorisation for the orgs in ``readers``, NotPermitted for the
    others; NotFound for an id the channel does not have."""
    def on(channel):
        def answer(org, args):
            if args[0] not in ids:
                raise evaluate_error("NotFound", f"no authorisation {args[0]}")
            if org not in readers_by_channel[channel]:
                raise evaluate_error("NotPermitted", "holds no mandate for this authorisation")
            return {"authorisation_id": args[0], "granted_at": "2026-03-01T00:00:00Z", "input_goods": []}
        return answer
    return on


@pytest.fixture
def ledgers():
    """The same authorisation id on both holders' channels: on A the broker holds a mandate, on B it does not."""
    ledgers = ChannelLedgers((A, B))
    on = _reads({A: {"CustomsMSP", "BrokerMSP"}, B: {"CustomsMSP"}}, {AUTH})
    for channel in (A, B):
        ledgers.by_channel[channel].answers["GetAuthorisation"] = on(channel)
    return ledgers


@pytest.fixture
def app(config, ledgers, keys):
    app = create_app(config.with_(channel=A, channels=(A, B), customs_msp="CustomsMSP"), ledger=ledgers)
    yield app
    app.extensions["ipledger_live"].close()


def _payload(n: int, event_type="RecordProcessing", alerts=()):
    return {"recorded_at": "2026-03-02T09:00:00Z", "alerts": list(alerts), "events": [
        {"event_type": event_type, "event_id": f"e{n}", "authorisation_id": AUTH,
         "submitted_by": {"msp_id": "PlantMSP", "name": "User1", "role": "client"}, "lots": ["L1"],
         "event": {"authorisation_id": AUTH, "operation_id": f"OP-{n}"}}]}


def test_the_feed_shows_an_item_only_to_who_may_read_it_on_its_own_channel(app, keys):
    store = app.extensions["ipledger_live"].store
    store.add_event(10, f"{1:064x}", _payload(1), channel=A)
    store.add_event(11, f"{2:064x}", _payload(2), channel=B)
    broker = bearer(keys[("BrokerMSP", "viewer")])
    items = app.test_client().get("/api/v1/feed", headers=broker).get_json()["items"]
    assert [(i["channel"], i["event_id"]) for i in items] == [(A, "e1")]      # not holder B's event
    customs = bearer(keys[("CustomsMSP", "viewer")])
    items = app.test_client().get("/api/v1/feed", headers=customs).get_json()["items"]
    assert sorted((i["channel"], i["event_id"]) for i in items) == [(A, "e1"), (B, "e2")]


def test_a_recorded_alert_of_another_holders_channel_is_not_sent_to_the_broker(app):
    live = app.extensions["ipledger_live"]
    live.subscriptions.add("https://broker.example/hook", "BrokerMSP")
    sent = []
    live.dispatcher.post = lambda url, body, headers, timeout: sent.append(json.loads(body)) or 204
    alert = {"change": "RAISED", "type": "CeilingNear", "authorisation_id": AUTH, "subject": "40122000",
             "details": {"pct": "94"}}
    for n, channel in ((1, B), (2, A)):
        payload = _payload(n, "PlaceUnderProcedure", alerts=[alert])
        live.store.add_event(20 + n, f"{n:064x}", payload, channel=channel)
        live.router.on_feed_item(feed_item(20 + n, f"{n:064x}", payload, channel=channel))
    live.dispatcher.run_once()
    assert [b["tx_id"] for b in sent] == [f"{2:064x}"]       # holder A's alert only, not holder B's
    assert sent[0]["channel"] == A                           # and the body names its channel
    assert [d["delivery_id"] for d in live.deliveries.log(org="BrokerMSP")] == [2]


# -- ?channel= is honoured (or refused) by the reports, the alerts and the authorisation page ----------------

@pytest.fixture
def customs(app, keys):
    client = app.test_client()
    headers = bearer(keys[("CustomsMSP", "viewer")])
    return lambda path, **params: client.get(path, headers=headers, query_string=params)


def _on_a_only(ledgers):
    """The authorisation is holder A's only (B has no such id); its bill, alerts and balances on A."""
    on = _reads({A: {"CustomsMSP", "BrokerMSP"}, B: set()}, set())
    def not_found(org, args):
        raise evaluate_error("NotFound", f"no authorisation {args[0]}")

    ledgers.by_channel[B].answers.update(GetAuthorisation=on(B), **{
        f: not_found for f in ("GetBillOfDischargeData", "GetAlerts", "GetBalances", "GetEventsInPeriod")})
    ledgers.by_channel[A].answers.update(
        GetBillOfDischargeData={"authorisation_id": AUTH, "holder_eori": "FR12345678901234", "lots": [],
                                "remaining": [{"goods": "LOT", "id": "L1", "cn": "40122000", "quantity": 500,
                                               "unit": "p/st", "deadline": "2026-09-01", "status": "OPEN"}]},
        GetAlerts={"authorisation_id": AUTH, "alerts": [{"type": "CeilingNear", "subject": "40122000",
                                                         "authorisation_id": AUTH}]},
        GetBalances={"balances": [], "ceilings": []}, GetEventsInPeriod={"events": []})


def _problem(r, status, name):
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.get_json()["type"] == PROBLEMS + name, r.get_json()
    return r.get_json()


def test_the_bill_of_discharge_report_answers_for_the_channel_asked_about(app, ledgers, customs):
    _on_a_only(ledgers)
    path = f"/api/v1/reports/bill-of-discharge/{AUTH}"
    assert customs(path, channel=A).get_json()["authorisation_id"] == AUTH
    _problem(customs(path, channel=B), 404, "not-found")               # holder A's bill, asked about B
    _problem(customs(path, channel="ip-plant-z"), 400, "unknown-channel")
    assert customs(path).status_code == 200                            # without it: the channel that knows it


def test_the_inventory_report_answers_for_the_channel_asked_about(app, ledgers, customs):
    _on_a_only(ledgers)
    r = customs("/api/v1/reports/inventory", as_of="2026-03-02", authorisation_id=AUTH, channel=B)
    assert r.status_code == 200 and r.get_json()["authorisations"] == [] and r.get_json()["lines"] == []
    r = customs("/api/v1/reports/inventory", as_of="2026-03-02", authorisation_id=AUTH, channel=A)
    assert [s["authorisation_id"] for s in r.get_json()["authorisations"]] == [AUTH]
    _problem(customs("/api/v1/reports/inventory", as_of="2026-03-02", channel="ip-plant-z"), 400, "unknown-channel")


def test_the_alerts_across_authorisations_answer_for_the_channel_asked_about(app, ledgers, customs):
    _on_a_only(ledgers)
    app.extensions["ipledger_live"].store.add_authorisation(AUTH, "CustomsMSP")
    assert customs("/api/v1/alerts", channel=B).get_json()["alerts"] == []
    assert [a["type"] for a in customs("/api/v1/alerts", channel=A).get_json()["alerts"]] == ["CeilingNear"]
    _problem(customs("/api/v1/alerts", channel="ip-plant-z"), 400, "unknown-channel")


def test_the_authorisation_page_shows_the_channel_asked_about(app, ledgers, keys):
    _on_a_only(ledgers)
    browser = app.test_client()
    assert sign_in(browser, keys[("CustomsMSP", "viewer")]).status_code == 302
    assert browser.get(f"/dashboard/authorisations/{AUTH}?channel={A}").status_code == 200
    assert browser.get(f"/dashboard/authorisations/{AUTH}?channel={B}").status_code == 404
    assert browser.get(f"/dashboard/authorisations/{AUTH}?channel=ip-plant-z").status_code == 400


def test_the_openapi_document_lists_the_channel_parameter_of_these_routes(app):
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    for path in ("/api/v1/reports/bill-of-discharge/{authorisation_id}", "/api/v1/reports/inventory",
                 "/api/v1/alerts"):
        assert "channel" in [p["name"] for p in doc["paths"][path]["get"]["parameters"]], path


def test_a_visibility_answer_is_kept_per_channel():
    """The cache of "may org read A" is per channel: an answer of one holder's channel is never used for an item
    of the other's."""
    from ipledger.gateway.feed.visibility import Visibility

    class Service:
        asked = []

        def evaluate_json(self, org, function, auth_id, channel=None):
            self.asked.append(channel)
            if channel == B:
                raise Problem(403, "not-permitted")
            return {"authorisation_id": auth_id}

    vis = Visibility(Service())
    item_a = feed_item(1, f"{1:064x}", _payload(1), channel=A)
    item_b = feed_item(2, f"{2:064x}", _payload(2), channel=B)
    assert vis.filter("BrokerMSP", [item_a, item_b]) == [item_a]
    assert vis.filter("BrokerMSP", [item_b, item_a]) == [item_a]
    assert Service.asked == [A, B]
