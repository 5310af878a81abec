"""Webhook deliveries FAILED after their attempts are queued again by an admin (``gateway webhooks resend``):
a subscriber down for longer than the attempts last (about 17 minutes by default) gets them once it is back,
in order, signed afresh, its organisation's right to read the authorisation asked again first."""
from __future__ import annotations

import json
import time

import pytest

from ipledger.gateway.feed.store import FeedStore
from ipledger.gateway.webhooks import Deliveries, Subscriptions, WebhookError
from ipledger.network import cli
from tests.unit.consortium_state import with_default_consortium

from .conftest import AUTH, body
from .contract_ledger import wait_for
from .test_alerts_webhooks import SECRET, Receiver


@pytest.fixture
def receiver():
    r = Receiver(fail=5)      # every attempt of the first series (webhook_max_attempts=5) fails
    yield r
    r.close()


@pytest.fixture
def state(tmp_path, monkeypatch):
    """A state directory holding the default consortium file only (no gateway ever started)."""
    monkeypatch.delenv("IPLEDGER_GATEWAY_ORG", raising=False)
    return with_default_consortium(tmp_path / "st")


def _failed(live, api, receiver, org="CustomsMSP", event_id="susp-r"):
    sub, _ = live.subscriptions.add(receiver.url, org, secret=SECRET)
    api.post(body("SuspendAuthorisation", event_id, authorisation_id=AUTH, reason="audit"), "CustomsMSP")
    wait_for(lambda: any(d["status"] == "FAILED" for d in live.deliveries.log()))
    (d,) = live.deliveries.log()
    assert d["attempts"] == 5 and len(receiver.requests) == 5
    return sub, d


def test_a_failed_delivery_sent_again_reaches_the_subscriber_once_it_is_back(scenario, live, api, receiver):
    sub, failed = _failed(live, api, receiver)
    assert live.deliveries.resend([failed["delivery_id"]], active=[sub["id"]]) == [failed["delivery_id"]]
    wait_for(lambda: live.deliveries.log()[0]["status"] == "DELIVERED")
    (d,) = live.deliveries.log()
    assert (d["attempts"], d["resent"], d["last_status"]) == (1, 1, 204) and len(receiver.requests) == 6
    again = receiver.requests[-1]
    assert again["body"] == receiver.requests[0]["body"]          # the same alert, the same body
    assert again["headers"]["X-Ipledger-Alert-Id"] == receiver.requests[0]["headers"]["X-Ipledger-Alert-Id"]
    assert again["headers"]["X-Ipledger-Attempt"] == "1"         # a new series of attempts


def test_only_failed_deliveries_of_active_subscriptions_are_sent_again_all_or_none(scenario, live, api, receiver):
    sub, failed = _failed(live, api, receiver)
    receiver.fail = 10**6
    with pytest.raises(WebhookError, match="no delivery 999"):
        live.deliveries.resend([failed["delivery_id"], 999], active=[sub["id"]])
    with pytest.raises(WebhookError, match="removed"):
        live.deliveries.resend([failed["delivery_id"]], active=[])
    with pytest.raises(WebhookError, match="not other-sub"):
        live.deliveries.resend([failed["delivery_id"]], subscription_id="other-sub", active=[sub["id"], "other-sub"])
    with pytest.raises(WebhookError, match="name the deliveries"):
        live.deliveries.resend([], active=[sub["id"]])
    assert live.deliveries.log()[0]["status"] == "FAILED"         # none of those queued anything
    live.deliveries.resend([failed["delivery_id"]], active=[sub["id"]])
    with pytest.raises(WebhookError, match="is PENDING: only FAILED"):
        live.deliveries.resend([failed["delivery_id"]], active=[sub["id"]])


def test_all_failed_deliveries_of_one_subscription(tmp_path):
    subs = Subscriptions(tmp_path / "webhooks.json")
    one, _ = subs.add("https://erp.example/a", "OperatorMSP")
    two, _ = subs.add("https://erp.example/b", "OperatorMSP")
    deliveries = Deliveries(FeedStore(tmp_path / "db.sqlite"))
    alert = {"alert": {"type": "CeilingNear", "authorisation_id": AUTH}}
    for sub in (one, two):
        for n in range(2):
            deliveries.enqueue(sub, f"{sub['id']}-{n}", alert)
    rows = {(d["subscription_id"], d["alert_id"]): d["delivery_id"] for d in deliveries.log()}
    for (sub_id, alert_id), delivery_id in rows.items():
        if not alert_id.endswith("-1") or sub_id == two["id"]:
            deliveries.record(delivery_id, delivered=False, status=503, error="HTTP 503", next_attempt_at=None,
                              failed=True)
    # one's first FAILED, its second still PENDING; both of two's FAILED
    queued = deliveries.resend(all_failed=True, subscription_id=two["id"], active=[one["id"], two["id"]], now=5.0)
    assert queued == sorted(rows[(two["id"], f"{two['id']}-{n}")] for n in range(2))
    assert [d["delivery_id"] for d in deliveries.due(5.0)] == [queued[0]]       # due at once, the oldest first
    assert [d["delivery_id"] for d in deliveries.due(time.time() + 1)] == [rows[(one["id"], f"{one['id']}-1")],
                                                                          queued[0]]
    assert deliveries.resend(all_failed=True, active=[one["id"], two["id"]]) == [rows[(one["id"], f"{one['id']}-0")]]
    assert deliveries.resend(all_failed=True, active=[one["id"], two["id"]]) == []
    assert {d["status"] for d in deliveries.log()} == {"PENDING"}


def test_a_delivery_sent_again_is_not_sent_once_the_organisation_may_no_longer_read(scenario, live, api, receiver):
    sub, failed = _failed(live, api, receiver, org="BrokerMSP", event_id="susp-b")
    receiver.fail = 0
    live.dispatcher.visibility.can_read = lambda org, authorisation_id, **_: org != "BrokerMSP"   # mandate ended
    live.deliveries.resend([failed["delivery_id"]], active=[sub["id"]])
    wait_for(lambda: live.deliveries.log()[0]["status"] == "FAILED")
    (d,) = live.deliveries.log()
    assert "no longer read" in d["last_error"] and len(receiver.requests) == 5


def test_the_resend_command(state, capsys):
    from ipledger.gateway.config import gateway_dir_of
    directory = gateway_dir_of(state, "OperatorMSP")
    sub, _ = Subscriptions(directory / "webhooks.json").add("https://erp.example/hook", "OperatorMSP")
    deliveries = Deliveries(FeedStore(directory / "dashboard.sqlite"))
    deliveries.enqueue(sub, "a1", {"alert": {"type": "CeilingNear", "authorisation_id": AUTH}})
    (d,) = deliveries.log()
    deliveries.record(d["delivery_id"], delivered=False, status=None, error="ConnectionRefusedError",
                      next_attempt_at=None, failed=True)
    run = lambda *args: cli.main(["--state-dir", str(state), "gateway", "webhooks", "--gateway",  # noqa: E731
                                  "OperatorMSP", "resend", *args])
    assert run() == 2 and "name the deliveries" in capsys.readouterr().err
    assert run(str(d["delivery_id"]), "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"queued": [d["delivery_id"]]}
    assert deliveries.log()[0]["status"] == "PENDING"
    assert run(str(d["delivery_id"])) == 2
    assert f"delivery {d['delivery_id']} is PENDING" in capsys.readouterr().err
    assert run("--all-failed") == 0 and "no FAILED delivery" in capsys.readouterr().out


def test_reading_the_log_of_a_gateway_never_started_makes_its_directory_its_own(state, capsys):
    """The delivery commands open the feed database, creating it (and the gateway's directory, which will hold its
    keys) when the gateway never ran: 0700 and 0600, not the umask's 0755 and 0644."""
    from ipledger.gateway.config import gateway_dir_of
    assert cli.main(["--state-dir", str(state), "gateway", "webhooks", "--gateway", "BrokerMSP", "deliveries",
                     "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    directory = gateway_dir_of(state, "BrokerMSP")
    assert directory.stat().st_mode & 0o777 == 0o700
    assert (directory / "dashboard.sqlite").stat().st_mode & 0o777 == 0o600
