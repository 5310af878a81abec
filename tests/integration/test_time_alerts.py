"""Time alerts to a webhook against the real Fabric network.

A time alert (``DeadlineApproaching`` …) comes from no transaction and no chaincode event: the gateway polls
``GetAlerts`` every ``alert_poll_s`` (here IPLEDGER_ALERT_POLL_S=1) for each subscribed organisation and known
authorisation and sends what changed — a new alert RAISED, a vanished one CLEARED — signed, to the
subscription's URL. Authorisation FRIPO000093 has a 10-day period for discharge, so a lot placed today is
already within ``warn_days`` (30) of its deadline; exiting the whole lot clears the alert.
Uses its own authorisation id, lot and MRNs: the session's ledger is shared.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import time

import pytest
import requests

from ipledger.gateway.auth import KeyStore
from ipledger.gateway.config import keys_file_of
from ipledger.gateway.webhooks import verify
from tests.integration.test_dashboard import Gateway, Receiver
from tests.integration.test_gateway_api import REPO, SITE1, ev, grant, register_parties, wait_committed_everywhere

pytestmark = pytest.mark.fabric

AUTH = "FRIPO000093"
LOT = "TA93-L1"
MRN_IN, MRN_EXIT = "26FR000110000094R6", "26FR000110000094A0"
SECRET = "time-alert-webhook-secret-0123456789"
POLL_S = 1
WAIT_S = 30                                    # a change must be delivered within this


def cli(state, *args) -> str:
    """``gateway webhooks`` of the operator's own gateway."""
    return subprocess.run([sys.executable, "-m", "ipledger.network.cli", "--state-dir", str(state), "gateway", "webhooks",
                           "--gateway", "OperatorMSP", *args], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture(scope="module")
def env(fabric_network, ipledger_chaincode, tmp_path_factory):
    state = fabric_network.layout.root
    orgs = ("CustomsMSP", "OperatorMSP")
    keys = {org: KeyStore(keys_file_of(state, org)).create(org, "clerk", f"time alerts {org}")[1] for org in orgs}
    receiver = Receiver(fail=0)
    sub = json.loads(cli(state, "add", receiver.url, "--org", "OperatorMSP", "--secret", SECRET,
                         "--types", "DeadlineApproaching", "--json"))
    tmp = tmp_path_factory.mktemp("time-alerts")
    gws = {org: Gateway(state, tmp, org) for org in orgs}   # customs' and the operator's own gateways
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("IPLEDGER_ALERT_POLL_S", str(POLL_S))
            for gw in gws.values():
                gw.start()
        yield {"urls": {org: gw.url for org, gw in gws.items()}, "keys": keys, "receiver": receiver, "sub": sub,
               "net": fabric_network}
    finally:
        for gw in gws.values():
            gw.stop()
        cli(state, "remove", sub["id"])            # later gateways on this state send it nothing more
        receiver.close()


def post(env, body, org) -> dict:
    r = requests.post(env["urls"][org] + "/api/v1/events", json=body,
                      headers={"Authorization": f"Bearer {env['keys'][org]}"}, timeout=120)
    assert r.status_code == 201, f"{body['type']}: {r.status_code} {r.text}"
    out = r.json()
    wait_committed_everywhere(env["net"], out["block_number"])   # the next event may go through another gateway
    return out


def deliveries(env, change: str) -> list[dict]:
    """Deliveries of this module's authorisation with ``change``: [{headers, body (bytes), payload}]."""
    out = []
    for req in list(env["receiver"].requests):
        payload = json.loads(req["body"])
        if payload["alert"]["authorisation_id"] == AUTH and payload["change"] == change:
            out.append({**req, "payload": payload})
    return out


def wait_for(env, change: str) -> dict:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = deliveries(env, change)
        if found:
            return found[0]
        time.sleep(0.2)
    pytest.fail(f"no {change} delivery for {AUTH} within {WAIT_S} s; received: "
                f"{[r['body'][:200] for r in env['receiver'].requests]}")


def assert_signed(delivery: dict) -> None:
    stamp = delivery["headers"]["X-Ipledger-Timestamp"]
    expected = "sha256=" + hmac.new(SECRET.encode(), stamp.encode() + b"." + delivery["body"], hashlib.sha256).hexdigest()
    assert delivery["headers"]["X-Ipledger-Signature-V2"] == expected
    assert verify(SECRET, delivery["body"], expected, stamp)
    assert delivery["headers"]["X-Ipledger-Alert-Id"] == delivery["payload"]["alert_id"]


def test_deadline_approaching_is_raised_then_cleared_by_polling(env):
    for body, org in register_parties("ta-parties"):
        post(env, body, org)
    post(env, grant(AUTH, event_id="ta-grant", discharge_period_days=10), "CustomsMSP")
    placed = post(env, ev("PlaceUnderProcedure", "ta-place", authorisation_id=AUTH, lot_id=LOT, mrn=MRN_IN,
                          item_no=1, procedure="5100", cn="40122000", description="used tyres", quantity=100,
                          unit="p/st", net_mass_g=900000, origin="MA", site=SITE1,
                          commercial={"customs_value": {"amount": "2500.00", "currency": "EUR"}}), "OperatorMSP")
    # the contract itself reports it as a time alert (no transaction recorded it)
    alerts = requests.get(env["urls"]["OperatorMSP"] + f"/api/v1/authorisations/{AUTH}/alerts",
                          headers={"Authorization": f"Bearer {env['keys']['OperatorMSP']}"}, timeout=60).json()
    assert [(a["type"], a["subject"], a["source"]) for a in alerts["alerts"]] == [
        ("DeadlineApproaching", f"LOT:{LOT}", "DERIVED")]

    raised = wait_for(env, "RAISED")
    assert_signed(raised)
    body = raised["payload"]
    assert body["source"] == "DERIVED" and "tx_id" not in body                # no transaction behind it
    assert body["alert"]["type"] == "DeadlineApproaching" and body["alert"]["subject"] == f"LOT:{LOT}"
    details = body["alert"]["details"]
    assert details["id"] == LOT and details["balance"] == 100 and 0 < details["days_left"] <= 10
    assert details["deadline"] == placed["result"]["lot"]["deadline"]
    time.sleep(3 * POLL_S + 1)                                                 # more polls: nothing new
    assert len(deliveries(env, "RAISED")) == 1

    post(env, ev("ExitGoods", "ta-exit", authorisation_id=AUTH, lot_id=LOT, quantity=100, procedure="3151",
                 mrn=MRN_EXIT), "OperatorMSP")                                 # balance 0: the alert vanishes
    cleared = wait_for(env, "CLEARED")
    assert_signed(cleared)
    assert cleared["payload"]["alert"]["subject"] == f"LOT:{LOT}"
    assert cleared["payload"]["since"] == body["detected_at"]                  # the same alert, now gone
    assert cleared["payload"]["alert_id"] != body["alert_id"]

    log = requests.get(env["urls"]["OperatorMSP"] + "/api/v1/webhooks/deliveries",
                       headers={"Authorization": f"Bearer {env['keys']['OperatorMSP']}"}, timeout=60).json()
    mine = [d for d in log["deliveries"] if d["subscription_id"] == env["sub"]["id"]
            and d["alert_id"] in (body["alert_id"], cleared["payload"]["alert_id"])]
    assert sorted((d["status"], d["attempts"]) for d in mine) == [("DELIVERED", 1), ("DELIVERED", 1)]
