"""Alerts across authorisations; webhooks: signed, retried with back-off, at least once, logged."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ipledger.gateway.webhooks import Subscriptions, WebhookError, verify

from .conftest import AUTH, AUTH2, body, day
from .contract_ledger import wait_for

SECRET = "s3cret-for-the-receiver-0123456789"


class Receiver:
    """A webhook receiver on 127.0.0.1 that answers 503 to the first ``fail`` attempts."""

    def __init__(self, fail: int = 2):
        self.fail = fail
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"headers": dict(self.headers), "body": raw})
                self.send_response(503 if len(receiver.requests) <= receiver.fail else 204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_alerts_across_authorisations_follow_visibility(scenario, api):
    r = api.get("/api/v1/alerts", "CustomsMSP")
    data = r.get_json()
    assert r.status_code == 200 and data["authorisations"] == [AUTH, AUTH2]
    assert sorted((a["type"], a["subject"]) for a in data["alerts"]) == [
        ("CeilingNear", "40122000"), ("YieldDeviation", "OP1/40121200")]
    assert api.get("/api/v1/alerts", "BrokerMSP").get_json()["authorisations"] == [AUTH]
    # time alerts with as_of: D+151 deadline approaching for L1 (500), L2 (4200) and L1's waste B2 (1200 kg)
    ahead = api.get(f"/api/v1/alerts?as_of={day(151)}", "OperatorMSP").get_json()
    approaching = {a["details"]["id"]: a["details"]["balance"] for a in ahead["alerts"]
                   if a["type"] == "DeadlineApproaching"}
    assert approaching == {"L1": 500, "L2": 4200, "B2": 1200}
    assert api.get("/api/v1/alerts?as_of=2026-02-30", "OperatorMSP").status_code == 400
    # the per-authorisation route stays
    assert api.get(f"/api/v1/authorisations/{AUTH}/alerts", "OperatorMSP").status_code == 200


def test_subscriptions_file(tmp_path):
    subs = Subscriptions(tmp_path / "webhooks.json")
    with pytest.raises(WebhookError):
        subs.add("ftp://example", "CustomsMSP")
    with pytest.raises(WebhookError):
        subs.add("http://127.0.0.1/x", "CustomsMSP", types=["NoSuchAlert"])
    for elsewhere in ("http://192.0.2.7/x", "http://erp.example/hook", "http://[2001:db8::1]/x"):
        with pytest.raises(WebhookError, match="https:// URL for another host"):   # alerts in clear text
            subs.add(elsewhere, "OperatorMSP")
    with pytest.raises(WebhookError, match="not an http"):
        subs.add("http://[::1/x", "OperatorMSP")
    other = Subscriptions(tmp_path / "other.json")
    assert other.add("https://erp.example/hook", "OperatorMSP")[0]["url"] == "https://erp.example/hook"
    assert other.add("http://localhost:9/x", "OperatorMSP")[0]["url"] == "http://localhost:9/x"
    record, secret = subs.add("http://127.0.0.1/x", "OperatorMSP")
    assert len(secret) >= 40 and "secret" not in record and (tmp_path / "webhooks.json").stat().st_mode & 0o777 == 0o600
    assert [s["id"] for s in subs.list()] == [record["id"]]
    assert subs.remove(record["id"]) and not subs.active()


def test_webhook_signed_retried_until_delivered_with_a_stable_alert_id(scenario, live, api, ledger, receiver, keys):
    sub, _ = live.subscriptions.add(receiver.url, "OperatorMSP", secret=SECRET)
    broker_sub, _ = live.subscriptions.add(receiver.url + "/broker", "BrokerMSP", secret=SECRET, types=["YieldDeviation"])
    # an alert change: a second processing with a yield deviation (recorded alert, in the chaincode event)
    api.post(body("RecordProcessing", "proc-2", authorisation_id=AUTH, operation_id="OP2", site="BOURGES-1",
                  inputs=[{"lot_id": "L1", "qty": 100}],
                  outputs=[{"batch_id": "B3", "cn": "40121200", "qty": 99, "unit": "p/st", "kind": "MAIN"}]),
             "OperatorMSP")
    wait_for(lambda: len(receiver.requests) >= 3 and any(d["status"] == "DELIVERED" for d in live.deliveries.log()))
    wait_for(lambda: len([d for d in live.deliveries.log() if d["status"] == "DELIVERED"]) == 2)
    by_path = {}
    for req in receiver.requests:
        by_path.setdefault(req["headers"]["X-Ipledger-Alert-Id"] + req["body"].decode()[-40:], []).append(req)
    operator_reqs = [r for r in receiver.requests if json.loads(r["body"])["subscription_id"] == sub["id"]]
    # signed (V2): HMAC-SHA256 of the attempt's time, a dot and the exact body, with the subscription's secret
    for req in receiver.requests:
        stamp = req["headers"]["X-Ipledger-Timestamp"]
        expected = "sha256=" + hmac.new(SECRET.encode(), stamp.encode() + b"." + req["body"], hashlib.sha256).hexdigest()
        assert req["headers"]["X-Ipledger-Signature-V2"] == expected
        assert verify(SECRET, req["body"], req["headers"]["X-Ipledger-Signature-V2"], stamp)
        # and of the body alone, for receivers written before the time was signed
        legacy = "sha256=" + hmac.new(SECRET.encode(), req["body"], hashlib.sha256).hexdigest()
        assert req["headers"]["X-Ipledger-Signature"] == legacy and verify(SECRET, req["body"], legacy)
    payload = json.loads(operator_reqs[0]["body"])
    assert payload["change"] == "RAISED" and payload["alert"]["type"] == "YieldDeviation"
    assert payload["alert"]["subject"] == "OP2/40121200" and payload["tx_id"] == ledger.events[-1].tx_id
    # every attempt of one delivery carries the same alert id and body (receivers de-duplicate on it)
    first_alert = operator_reqs[0]["headers"]["X-Ipledger-Alert-Id"]
    same = [r for r in receiver.requests if r["headers"]["X-Ipledger-Alert-Id"] == first_alert]
    assert len({r["body"] for r in same if json.loads(r["body"])["subscription_id"] == sub["id"]}) == 1
    log = {d["subscription_id"]: d for d in live.deliveries.log()}
    assert log[sub["id"]]["status"] == "DELIVERED" and log[broker_sub["id"]]["status"] == "DELIVERED"
    assert sum(d["attempts"] for d in log.values()) == 4           # 2 failures (503) + 2 deliveries
    assert {d["last_status"] for d in log.values()} == {204}
    # the delivery log: customs sees all, the broker only its own subscription's
    all_ = api.get("/api/v1/webhooks/deliveries", "CustomsMSP").get_json()["deliveries"]
    assert {d["subscription_id"] for d in all_} == {sub["id"], broker_sub["id"]}
    own = api.get("/api/v1/webhooks/deliveries", "BrokerMSP").get_json()["deliveries"]
    assert [d["subscription_id"] for d in own] == [broker_sub["id"]]
    assert "body" not in own[0]


def test_webhook_never_tells_an_org_about_an_authorisation_it_may_not_read(scenario, live, api, receiver):
    receiver.fail = 0
    sub, _ = live.subscriptions.add(receiver.url, "BrokerMSP", secret=SECRET)
    api.post(body("SuspendAuthorisation", "susp-2", authorisation_id=AUTH2, reason="audit"), "CustomsMSP")
    api.post(body("SuspendAuthorisation", "susp-1", authorisation_id=AUTH, reason="audit"), "CustomsMSP")
    wait_for(lambda: len(receiver.requests) >= 1)
    import time
    time.sleep(0.5)
    subjects = [json.loads(r["body"])["alert"]["authorisation_id"] for r in receiver.requests]
    assert subjects == [AUTH]


def test_failed_after_max_attempts(scenario, live, api, receiver):
    receiver.fail = 100
    sub, _ = live.subscriptions.add(receiver.url, "CustomsMSP", secret=SECRET)
    api.post(body("SuspendAuthorisation", "susp-x", authorisation_id=AUTH, reason="audit"), "CustomsMSP")
    wait_for(lambda: any(d["status"] == "FAILED" for d in live.deliveries.log()))
    d = live.deliveries.log()[0]
    assert d["attempts"] == 5 and d["last_status"] == 503 and len(receiver.requests) == 5


def test_time_alerts_are_polled_and_delivered_once(scenario, live, receiver):
    receiver.fail = 0
    live.subscriptions.add(receiver.url, "OperatorMSP", secret=SECRET, types=["DeadlineApproaching"])
    as_of = day(151)
    # L1, L2 and L1's waste B2 approaching their deadline, and B1's re-export not confirmed after 90 days
    assert live.router.poll_time_alerts(as_of) == 4
    with live.store.connection() as db:
        assert sorted(r[0] for r in db.execute("SELECT alert_key FROM time_alerts")) == [
            "DeadlineApproaching/BATCH:B2", "DeadlineApproaching/LOT:L1", "DeadlineApproaching/LOT:L2",
            "ExitUnconfirmed/26FR000110000007A7/1"]
    assert live.router.poll_time_alerts(as_of) == 0    # nothing new: nothing sent again
    wait_for(lambda: len(receiver.requests) == 3)
    bodies = sorted((json.loads(r["body"])["change"], json.loads(r["body"])["alert"]["subject"]) for r in receiver.requests)
    assert bodies == [("RAISED", "BATCH:B2"), ("RAISED", "LOT:L1"), ("RAISED", "LOT:L2")]
    # a day after the deadline: approaching is gone (CLEARED), overdue RAISED (not subscribed: not sent)
    assert live.router.poll_time_alerts(day(181)) == 6
    wait_for(lambda: len(receiver.requests) == 6)
    assert sorted(json.loads(r["body"])["change"] for r in receiver.requests[3:]) == ["CLEARED"] * 3


def test_a_retry_is_not_sent_once_the_organisation_may_no_longer_read_the_authorisation(scenario, live, api,
                                                                                     receiver):
    """The broker's delivery fails once (503); before the retry customs end its mandate: the retry is not
    sent, and the delivery ends FAILED saying why."""
    receiver.fail = 1
    live.subscriptions.add(receiver.url, "BrokerMSP", secret=SECRET)
    asked = []

    def can_read(org, authorisation_id):   # the contract's answer: yes the first time, then the mandate ended
        asked.append(org)
        return org != "BrokerMSP" or asked.count("BrokerMSP") == 1

    live.dispatcher.visibility.can_read = can_read
    api.post(body("SuspendAuthorisation", "susp-m", authorisation_id=AUTH, reason="audit"), "CustomsMSP")
    wait_for(lambda: any(d["status"] == "FAILED" for d in live.deliveries.log()), timeout=10)
    (d,) = live.deliveries.log()
    assert d["attempts"] == 1 and "no longer read" in d["last_error"] and len(receiver.requests) == 1


def test_alerts_across_name_the_moment_the_contract_computed_them_for(scenario, api):
    """A date means that whole day to the contract (up to 23:59:59.999999 UTC): the answer names that moment, as
    each authorisation's own GetAlerts does, not the date as it was asked (which reads as its first instant)."""
    asked = day(151)
    across = api.get(f"/api/v1/alerts?as_of={asked}", "OperatorMSP").get_json()
    own = api.get(f"/api/v1/authorisations/{AUTH}/alerts?as_of={asked}", "OperatorMSP").get_json()
    assert across["as_of"] == own["as_of"] != asked
    assert across["as_of"] == f"{asked}T23:59:59.999999Z"
