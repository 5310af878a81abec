"""GET /api/v1/members: the channel's organisations from the config block, read as the key's org."""
from __future__ import annotations

import pytest

from ipledger.gateway.app import create_app

from .conftest import bearer

MEMBERS = "/api/v1/members"


@pytest.fixture
def app(config, ledger, keys):
    return create_app(config.with_(descriptions={"CustomsMSP": "customs authority, supervising office"}),
                      ledger=ledger)


@pytest.mark.parametrize("org,role", [("CustomsMSP", "clerk"), ("BrokerMSP", "viewer")])
def test_members_are_read_from_the_config_block_as_the_keys_org(client, keys, ledger, org, role):
    r = client.get(MEMBERS, headers=bearer(keys[(org, role)]))
    assert r.status_code == 200, r.json
    body = r.json
    assert (body["channel"], body["config_block"], body["admins_policy"]) == ("inward-processing", 2,
                                                                              "MAJORITY Admins")
    assert [(o["msp_id"], o["role"]) for o in body["organisations"]] == [
        ("BrokerMSP", "application"), ("CustomsMSP", "application"), ("OperatorMSP", "application"),
        ("OrdererMSP", "orderer")]
    customs = body["organisations"][1]
    assert customs["description"] == "customs authority, supervising office"
    assert body["organisations"][0]["description"] == ""
    assert len(customs["root_certificates"][0]["sha256"]) == 64
    assert ledger.evaluations[-1] == {"org": org, "function": "GetConfigBlock", "args": []}


def test_members_needs_a_key(client, ledger):
    r = client.get(MEMBERS)
    assert r.status_code == 401
    assert r.mimetype == "application/problem+json"
    assert not [e for e in ledger.evaluations if e["function"] == "GetConfigBlock"]


def test_unreachable_peer_is_503_with_retry_after(as_org, ledger):
    ledger.down = True
    r = as_org("OperatorMSP").get(MEMBERS)
    assert r.status_code == 503
    assert r.json["type"].endswith("/service-unavailable")
    assert r.headers["Retry-After"] == "7"


def test_an_unreadable_config_block_is_a_ledger_error(as_org, ledger):
    ledger._config_block = b"\x0a\x03abc"  # parses as a block with no transaction
    r = as_org("CustomsMSP").get(MEMBERS)
    assert r.status_code == 502
    assert r.json["type"].endswith("/ledger-error")
    assert "config block" in r.json["detail"]
