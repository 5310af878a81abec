"""Late recording through the gateway (issue 13, point 6): an ERP that was offline records a placement
three days after the declaration was accepted; the gateway commits it (201), and the contract's LateRecording alert
reaches customs in GetAlerts, in the live feed and by webhook — the alert handling needs nothing new."""
from __future__ import annotations

import datetime as dt
import json

from ipledger.chaincode.testing import mrns

from .conftest import place
from .contract_ledger import ledger_now, wait_for
from .test_alerts_webhooks import SECRET, receiver  # noqa: F401  (the receiver fixture)


def late_placement(lot_id: str, n: int, days: float) -> dict:
    occurred = (ledger_now() - dt.timedelta(days=days)).replace(microsecond=0)
    return {**place(lot_id, 10, mrns.placement_mrn(n)), "event_id": f"erp-{lot_id}",
            "occurred_at": occurred.isoformat().replace("+00:00", "Z")}


def test_a_late_event_is_committed_and_its_alert_reaches_customs(scenario, live, api, ledger, receiver):  # noqa: F811
    receiver.fail = 0
    sub, _ = live.subscriptions.add(receiver.url, "CustomsMSP", secret=SECRET)
    move = late_placement("L7", 7007, 3)
    out = api.post(move, "OperatorMSP")
    assert out["status"] == "COMMITTED"
    assert out["result"]["occurred_at"] == move["occurred_at"] and out["result"]["recorded_at"] > move["occurred_at"]
    # GetAlerts, across authorisations
    alerts = api.get("/api/v1/alerts", "CustomsMSP").get_json()["alerts"]
    (late,) = [a for a in alerts if a["type"] == "LateRecording"]
    assert late["subject"] == "OperatorMSP:erp-L7" and late["details"]["occurred_at"] == move["occurred_at"]
    # the live feed: the item of the transaction carries the alert change
    wait_for(lambda: live.store.count() == len(ledger.events))
    item = live.store.latest(1)[0]
    assert item["tx_id"] == out["tx_id"]
    assert ("RAISED", "LateRecording") in [(a["change"], a["type"]) for a in item["alerts"]]
    # the webhook: signed, delivered once
    wait_for(lambda: any(d["status"] == "DELIVERED" for d in live.deliveries.log()))
    (req,) = [r for r in receiver.requests if json.loads(r["body"])["alert"]["type"] == "LateRecording"]
    payload = json.loads(req["body"])
    assert payload["subscription_id"] == sub["id"] and payload["change"] == "RAISED"
    assert payload["alert"]["details"]["event_id"] == "erp-L7" and payload["tx_id"] == out["tx_id"]


def test_an_event_within_the_allowance_raises_nothing(scenario, api):
    out = api.post(late_placement("L8", 7008, 1), "OperatorMSP")
    assert out["status"] == "COMMITTED"
    alerts = api.get("/api/v1/alerts", "CustomsMSP").get_json()["alerts"]
    assert [a for a in alerts if a["type"] == "LateRecording"] == []


def test_a_future_dated_event_is_still_refused(scenario, api):
    ahead = (ledger_now() + dt.timedelta(hours=1)).replace(microsecond=0)
    move = {**late_placement("L9", 7009, 0), "occurred_at": ahead.isoformat().replace("+00:00", "Z")}
    p = api.post(move, "OperatorMSP", status=409)
    assert p["code"] == "OutOfOrder" and "future" in p["detail"]
