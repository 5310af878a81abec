"""A webhook subscription narrowed to some channels or authorisations: on customs' gateway of several holders'
channels, one holder's alerts to that holder's supervising office — recorded alerts (from the feed) and time
alerts (polled) alike; a subscription made before the filters existed still gets everything."""
from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest

from ipledger.gateway.webhooks import AlertRouter, Deliveries, Subscriptions, WebhookError, wants
from ipledger.network import cli
from ipledger.network.consortium import DEFAULT_FILE
from ipledger.network.layout import Layout

from . import test_channels as channels
from .fakes import evaluate_error
from .test_channels import A, B, set_answers

HOOK = "https://office.example/hook"
# customs' gateway of two holders' channels: FRIPO000001 on both, FRIPO000002 on A's (test_channels.py)
ledgers, app, duplicate = channels.ledgers, channels.app, channels.duplicate


def router_of(app, tmp_path, channel=None):
    live = app.extensions["ipledger_live"]
    subs = Subscriptions(tmp_path / "webhooks.json")
    deliveries = Deliveries(live.store)
    return subs, deliveries, AlertRouter(subs, deliveries, live.visibility, app.extensions["ipledger"].service,
                                         live.store, channel=channel)


def queued(deliveries) -> list[tuple[str, str, str | None]]:
    """(subscription, authorisation, channel) of every queued delivery."""
    with deliveries.store.connection() as db:
        rows = db.execute("SELECT subscription_id, body FROM deliveries ORDER BY delivery_id").fetchall()
    return sorted((r["subscription_id"], json.loads(r["body"])["alert"]["authorisation_id"],
                   json.loads(r["body"])["alert"].get("channel") or json.loads(r["body"]).get("channel"))
                  for r in rows)


def item(channel, *auth_ids, tx="tx1"):
    return {"tx_id": tx, "block_number": 5, "recorded_at": "2026-03-02T09:00:00Z", "channel": channel,
            "events": [], "alerts": [{"type": "CeilingNear", "authorisation_id": a, "subject": "AUTH",
                                      "change": "RAISED", "details": {}} for a in auth_ids]}


def test_a_subscription_keeps_its_channels_and_authorisations_and_refuses_malformed_ones(tmp_path):
    subs = Subscriptions(tmp_path / "webhooks.json")
    record, _ = subs.add(HOOK, "CustomsMSP", channels=[B, A, B], authorisations=["FRIPO000002"])
    assert (record["channels"], record["authorisations"]) == ([A, B], ["FRIPO000002"])
    assert (subs.add(HOOK, "CustomsMSP")[0]["channels"], subs.add(HOOK, "CustomsMSP")[0]["authorisations"]) == ([], [])
    for bad in ({"channels": ["Plant A"]}, {"channels": ["-a"]}, {"authorisations": ["FR IPO"]},
                {"authorisations": ["x" * 129]}, {"authorisations": [7]}):
        with pytest.raises(WebhookError, match="invalid"):
            subs.add(HOOK, "CustomsMSP", **bad)
    assert len(subs.active()) == 3


def test_wants_each_list_empty_for_all_and_a_subscription_made_before_the_filters_for_everything():
    assert wants({"types": []}, "CeilingNear", "FRIPO000001", A)        # made before channels/authorisations
    narrowed = {"types": ["CeilingNear"], "channels": [B], "authorisations": ["FRIPO000001"]}
    assert wants(narrowed, "CeilingNear", "FRIPO000001", B)
    assert not wants(narrowed, "CeilingNear", "FRIPO000001", A)
    assert not wants(narrowed, "CeilingNear", "FRIPO000002", B)
    assert not wants(narrowed, "LossRateHigh", "FRIPO000001", B)


def test_recorded_alerts_go_to_the_subscriptions_of_their_channel_and_authorisation(duplicate, tmp_path):
    subs, deliveries, router = router_of(duplicate, tmp_path)
    everything = subs.add(HOOK, "CustomsMSP")[0]["id"]
    holder_b = subs.add(HOOK, "CustomsMSP", channels=[B])[0]["id"]
    one = subs.add(HOOK, "CustomsMSP", authorisations=["FRIPO000002"])[0]["id"]
    router.on_feed_item(item(A, "FRIPO000001", "FRIPO000002"))
    router.on_feed_item(item(B, "FRIPO000001", tx="tx2"))
    assert queued(deliveries) == sorted([
        (everything, "FRIPO000001", A), (everything, "FRIPO000002", A), (everything, "FRIPO000001", B),
        (holder_b, "FRIPO000001", B), (one, "FRIPO000002", A)])


def test_on_a_gateway_of_one_channel_its_items_are_of_that_channel(duplicate, tmp_path):
    """A gateway of one channel stores its feed items without a channel name: a subscription naming that channel
    still gets them (the router knows the gateway's channel), one naming another does not."""
    subs, deliveries, router = router_of(duplicate, tmp_path, channel=A)
    mine = subs.add(HOOK, "CustomsMSP", channels=[A])[0]["id"]
    subs.add(HOOK, "CustomsMSP", channels=[B])
    router.on_feed_item({**item(None, "FRIPO000002"), "channel": None})
    assert [(s, a) for s, a, _channel in queued(deliveries)] == [(mine, "FRIPO000002")]


def test_time_alerts_go_to_the_subscriptions_of_their_channel(duplicate, ledgers, tmp_path):
    """FRIPO000001 is on both holders' channels, FRIPO000002 on A's: each channel's time alerts reach the
    subscriptions of that channel only — when raised and when cleared."""
    state = {"alerts": True}

    for channel, ids in ((A, {"FRIPO000001", "FRIPO000002"}), (B, {"FRIPO000001"})):
        def get_alerts(org, args, channel=channel, ids=ids):
            if args[0] not in ids:
                raise evaluate_error("NotFound", "not found")
            return {"alerts": [{"type": "DeadlineOverdue", "subject": f"LOT:L-{channel}", "source": "DERIVED",
                                "authorisation_id": args[0], "details": {}}] if state["alerts"] else []}
        set_answers(ledgers, channel, GetAlerts=get_alerts)
    subs, deliveries, router = router_of(duplicate, tmp_path)
    holder_a = subs.add(HOOK, "CustomsMSP", channels=[A])[0]["id"]
    holder_b = subs.add(HOOK, "CustomsMSP", channels=[B])[0]["id"]
    with duplicate.app_context():
        assert router.poll_time_alerts() == 3
        assert queued(deliveries) == sorted([(holder_a, "FRIPO000001", A), (holder_a, "FRIPO000002", None),
                                             (holder_b, "FRIPO000001", B)])
        state["alerts"] = False
        assert router.poll_time_alerts() == 3                    # each cleared, to its own channel's subscription
    with deliveries.store.connection() as db:
        cleared = [(r["subscription_id"], json.loads(r["body"])["alert"]["authorisation_id"]) for r in db.execute(
            "SELECT subscription_id, body FROM deliveries WHERE body LIKE '%CLEARED%' ORDER BY delivery_id")]
    assert sorted(cleared) == sorted([(holder_a, "FRIPO000001"), (holder_a, "FRIPO000002"),
                                      (holder_b, "FRIPO000001")])


@pytest.fixture
def holders_state(tmp_path, monkeypatch):
    """A state directory holding the consortium of a channel per holder (customs on both)."""
    monkeypatch.delenv("IPLEDGER_GATEWAY_ORG", raising=False)
    target = Layout(tmp_path / "st").consortium_file
    target.parent.mkdir(parents=True)
    shutil.copyfile(DEFAULT_FILE.parent / "consortium-holders.yaml", target)
    return tmp_path / "st"


def test_the_command_line_narrows_to_channels_the_gateway_serves(holders_state, capsys):
    def webhooks(org, *words):
        return cli.main(["--state-dir", str(holders_state), "gateway", "webhooks", "--gateway", org, *words])

    assert webhooks("CustomsMSP", "add", HOOK, "--org", "CustomsMSP", "--channels", "ip-plant-b",
                    "--authorisations", "FRIPOB000001,FRIPOB000002", "--json") == 0
    record = json.loads(capsys.readouterr().out)
    assert (record["channels"], record["authorisations"]) == (["ip-plant-b"], ["FRIPOB000001", "FRIPOB000002"])
    assert webhooks("CustomsMSP", "list") == 0
    assert "channels=ip-plant-b authorisations=FRIPOB000001,FRIPOB000002" in capsys.readouterr().out
    # plant A's gateway serves its own channel only: B's is not its to name, and nothing is written
    assert webhooks("PlantAMSP", "add", HOOK, "--org", "PlantAMSP", "--channels", "ip-plant-b") == 2
    assert "PlantAMSP's gateway serves ip-plant-a, not ip-plant-b" in capsys.readouterr().err
    assert webhooks("PlantAMSP", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []
    assert webhooks("CustomsMSP", "add", HOOK, "--org", "CustomsMSP", "--authorisations", "FR IPO") == 2
    assert "invalid authorisation id 'FR IPO'" in capsys.readouterr().err


def test_a_subscription_made_with_a_moment_is_not_sent_the_alerts_of_older_transactions(duplicate, tmp_path):
    """The feed read again from block 0 (its database lost) sent a subscription made last week every recorded alert
    of the channel's past. One made with ``since`` (as the command line makes them) gets those of transactions
    recorded after it, less a margin for the ledger's clock; one made without gets every one, as before."""
    subs, deliveries, router = router_of(duplicate, tmp_path)
    new = subs.add(HOOK, "CustomsMSP", since="2026-12-06T10:00:00.000000Z")[0]["id"]
    old = subs.add(HOOK, "CustomsMSP")[0]["id"]
    for tx, recorded_at in (("past", "2026-12-06T08:59:59.000000Z"), ("skewed", "2026-12-06T09:40:00.000000Z"),
                            ("after", "2026-12-06T10:00:01.000000Z")):
        router.on_feed_item({**item(A, "FRIPO000002", tx=tx), "recorded_at": recorded_at})
    with deliveries.store.connection() as db:
        sent = sorted((r["subscription_id"], json.loads(r["body"])["tx_id"]) for r in db.execute(
            "SELECT subscription_id, body FROM deliveries"))
    assert sent == sorted([(new, "after"), (new, "skewed"), (old, "after"), (old, "past"), (old, "skewed")])


def test_the_command_line_makes_a_subscription_from_now_on(holders_state, capsys):
    assert cli.main(["--state-dir", str(holders_state), "gateway", "webhooks", "--gateway", "CustomsMSP", "add",
                     HOOK, "--org", "CustomsMSP", "--json"]) == 0
    since = dt.datetime.fromisoformat(json.loads(capsys.readouterr().out)["since"].replace("Z", "+00:00"))
    assert abs((since - dt.datetime.now(dt.timezone.utc)).total_seconds()) < 60


def test_the_feed_s_declaration_watch_loads_the_subscriptions_only():
    """The webhooks package gives each name from its module on first use: the feed's watch over declaration items,
    which needs the subscriptions' predicates, does not load the delivery queue or the dispatcher."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import sys, ipledger.gateway.feed.declarations\n"
                          "print(' '.join(sorted(m for m in sys.modules if 'webhooks' in m)))"],
                         check=True, capture_output=True, text=True).stdout.split()
    assert out == ["ipledger.gateway.webhooks", "ipledger.gateway.webhooks.subscriptions"]
    from ipledger.gateway import webhooks
    assert set(webhooks.__all__) <= set(dir(webhooks))
    assert webhooks.Dispatcher.__module__ == "ipledger.gateway.webhooks.dispatcher"
