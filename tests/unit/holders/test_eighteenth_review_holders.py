"""The eighteenth review's red team of the many-holders layout: two holders' channels served by one gateway
(customs', or a representative's mandated by both), each the real contract in memory."""
from __future__ import annotations

import hashlib
import re

from ipledger.chaincode.testing import mrns
from tests.unit.dashboard.contract_ledger import ledger_now
from tests.unit.dashboard.signin import sign_in

from .conftest import place
from .harness import A, B, body


def test_an_inventory_of_one_channel_lists_that_channels_authorisations_only(two_holders, listening):
    """GET /reports/inventory?channel=B without naming authorisations: B's, not every holder's with A's listed as
    'not included' (holder A's ids in a document for holder B, and B's report said to be incomplete)."""
    api = two_holders
    api.post(place("FRIPOA000001", "L1", 100, mrns.placement_mrn(1)), "BrokerMSP")
    api.post(place("FRIPOB000001", "L1", 70, mrns.placement_mrn(2)), "BrokerMSP")
    listening.caught_up()
    for org in ("CustomsMSP", "BrokerMSP"):
        r = api.get("/api/v1/reports/inventory", org, as_of=ledger_now().date().isoformat(), channel=B)
        assert r.status_code == 200, r.get_data(as_text=True)
        data = r.get_json()
        assert [s["authorisation_id"] for s in data["authorisations"]] == ["FRIPOB000001"]
        assert data["not_included"] == [], (org, data["not_included"])
        csv = api.get("/api/v1/reports/inventory", org, as_of=ledger_now().date().isoformat(), channel=B,
                      format="csv").get_data(as_text=True)
        assert "FRIPOB000001" in csv and "FRIPOA000001" not in csv


def test_the_alerts_page_links_a_lot_on_the_channel_of_its_alert(two_holders, listening, app, keys):
    """Customs' alerts page: A's LossRateHigh on its lot L1 links L1's page on A's channel — with the channel chosen
    or without (each alert names its channel on a gateway of several), not the 409 page B's own L1 would give."""
    api = two_holders
    api.post(place("FRIPOA000001", "L1", 100, mrns.placement_mrn(1)), "BrokerMSP")
    api.post(place("FRIPOB000001", "L1", 70, mrns.placement_mrn(2)), "BrokerMSP")
    api.post(body("RecordLoss", "loss-1", authorisation_id="FRIPOA000001", lot_id="L1", quantity=10, reason="NATURE",
                  evidence_hash=hashlib.sha256(b"x").hexdigest()), "OperatorMSP")
    listening.caught_up()
    browser = app.test_client()
    assert sign_in(browser, keys[("CustomsMSP", "viewer")]).status_code == 302
    for query in ({"channel": A}, {}):
        html = browser.get("/dashboard/alerts", query_string=query).get_data(as_text=True)
        links = re.findall(r'href="(/dashboard/lots/L1[^"]*)"', html)
        assert links, html
        assert all(browser.get(link.replace("&amp;", "&")).status_code == 200 for link in links), (query, links)
    alerts = api.get("/api/v1/alerts", "CustomsMSP").get_json()["alerts"]
    assert {(a["authorisation_id"], a["channel"]) for a in alerts if a["type"] == "LossRateHigh"} == \
        {("FRIPOA000001", A)}
