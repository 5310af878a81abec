"""The many-holders layout: two holders' channels served by one gateway (customs', or a representative's mandated by
both), each the real contract in memory."""
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


PROBLEMS = "https://ipledger.example/problems/"


def test_one_import_declaration_item_is_not_placed_under_two_holders(two_holders, ledgers):
    """A representative mandated by A and B places the goods of one declaration item under A's authorisation, then
    under B's: each channel checks its own items, the gateway serving both looks at the other (refused as one shared
    channel would: 409 duplicate-declaration, nothing submitted)."""
    api = two_holders
    m = mrns.placement_mrn(1)
    assert api.post(place("FRIPOA000001", "L1", 100, m), "BrokerMSP")["channel"] == A
    before = len(ledgers.by_channel[B].events)
    r = api.post(place("FRIPOB000001", "L7", 100, m), "BrokerMSP", status=409)
    assert r["type"] == PROBLEMS + "duplicate-declaration" and r["channels"] == [A]
    assert len(ledgers.by_channel[B].events) == before
    api.post(place("FRIPOB000001", "L7", 100, m, item_no=2), "BrokerMSP")   # another item of it: its own


def test_one_export_declaration_item_does_not_discharge_two_holders_goods(two_holders):
    api = two_holders
    api.post(place("FRIPOA000001", "L1", 100, mrns.placement_mrn(1)), "BrokerMSP")
    api.post(place("FRIPOB000001", "L1", 100, mrns.placement_mrn(2)), "BrokerMSP")
    x = mrns.exit_mrn(7)
    api.post(body("ExitGoods", "exit-a", authorisation_id="FRIPOA000001", lot_id="L1", quantity=30,
                  procedure="4051", mrn=x), "BrokerMSP")
    r = api.post(body("ExitGoods", "exit-b", authorisation_id="FRIPOB000001", lot_id="L1", quantity=30,
                      procedure="4051", mrn=x), "BrokerMSP", status=409)
    assert r["type"] == PROBLEMS + "duplicate-declaration"


def test_a_5151_transfer_between_two_holders_channels_is_compared(two_holders):
    """A transfer from A to B: the exit on A's channel, the reception on B's — one declaration item, two sides, as on
    one channel; a reception naming other goods than the exit is 409 transfer-mismatch."""
    api = two_holders
    api.post(place("FRIPOA000001", "L1", 100, mrns.placement_mrn(1)), "BrokerMSP")
    t = mrns.exit_mrn(8)
    api.post(body("ExitGoods", "tr-a", authorisation_id="FRIPOA000001", lot_id="L1", quantity=20,
                  procedure="5151", mrn=t), "BrokerMSP")
    r = api.post(place("FRIPOB000001", "LT", 500, t, procedure="5151", event_id="tr-b"), "BrokerMSP", status=409)
    assert r["type"] == PROBLEMS + "transfer-mismatch" and r["differ"] == ["quantity"]
    assert api.post(place("FRIPOB000001", "LT", 20, t, procedure="5151", event_id="tr-b2"),
                    "BrokerMSP")["channel"] == B
    r = api.post(body("ExitGoods", "tr-a-again", authorisation_id="FRIPOA000001", lot_id="L1", quantity=20,
                      procedure="3151", mrn=t), "BrokerMSP", status=409)   # the item is taken on both channels
    assert r["type"] == PROBLEMS + "duplicate-declaration"


def test_an_item_of_a_holder_the_sender_does_not_stand_for_is_not_looked_at(two_holders, api):
    """The look at the other channels is as the sender may read them: A's own gateway key (OperatorMSP) reading B's
    channel finds nothing of B's (GetDeclaration shows the items of authorisations it stands for) — it is neither
    refused for B's item nor told of it."""
    api.post(place("FRIPOB000001", "L1", 100, mrns.placement_mrn(3)), "BrokerMSP")
    assert api.post(place("FRIPOA000001", "L9", 10, mrns.placement_mrn(3)), "OperatorMSP")["channel"] == A


def test_the_reception_of_an_exit_an_older_contract_recorded_without_its_goods_code_is_compared_on_the_rest(
        two_holders, ledgers):
    """An exit's declaration record written before records carried `cn` (the contract reads it from the goods):
    the gateway compares what the record holds, and a reception of the same quantity is accepted, as the contract
    accepts it."""
    import json
    api = two_holders
    api.post(place("FRIPOA000001", "L1", 100, mrns.placement_mrn(1)), "BrokerMSP")
    t = mrns.exit_mrn(8)
    api.post(body("ExitGoods", "tr-a", authorisation_id="FRIPOA000001", lot_id="L1", quantity=20,
                  procedure="5151", mrn=t), "BrokerMSP")
    committed = ledgers.by_channel[A].scenario.ledger._committed
    [key] = [k for k, v in committed.state.items() if t in k and b'"EXIT"' in v]
    record = json.loads(committed.state[key])
    del record["cn"]
    committed.put(key, json.dumps(record).encode())
    assert api.post(place("FRIPOB000001", "LT", 20, t, procedure="5151", event_id="tr-b"), "BrokerMSP")["channel"] == B
