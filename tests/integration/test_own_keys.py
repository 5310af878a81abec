"""Each organisation holds only its own keys, on the real network.

* no organisation's directory holds another organisation's private key, and the
  consortium's public directory none;
* an organisation's gateway holds its own identity only and cannot act as another;
* the command line reads no organisation's private key in its own process (network/org/own_process.py);
* a transaction endorsed by one organisation alone is refused by the endorsement policy
  AND(customs, operator|broker);
* another chaincode on the channel calling the contract is refused by the contract, endorsed by whoever.
"""
from __future__ import annotations

import datetime as dt
import json

import pytest

from ipledger.chaincode.testing.scenario import Scenario
from ipledger.network.org.identities import private_key_files

from tests.unit.network.opened_files import opened_here, private_keys

from .realscenario import RealScenario

pytestmark = pytest.mark.fabric


def test_no_org_directory_holds_another_orgs_private_key(fabric_network):
    net = fabric_network
    lay = net.layout
    keys = {o.msp_id: {p.read_bytes() for p in private_key_files(lay.org_home(o))}
            for o in net.consortium.all_orgs}
    for a, mine in keys.items():
        assert mine, f"{a} holds its own keys"
        for b, theirs in keys.items():
            assert a == b or not mine & theirs, f"{a}'s directory holds a key of {b}"
    assert private_key_files(lay.public) == []


def test_the_command_line_reads_no_private_key_in_its_own_process(fabric_network):
    """``network status`` on the machine running every organisation reads each peer's metrics with its
    organisation's admin TLS key: in a child process of that organisation, never in this one."""
    with opened_here() as paths:
        rows = fabric_network.status()
    peers = [r for r in rows if r["kind"] == "peer"]
    assert peers and all(r["healthy"] and (r["gossip_peers_known"] or 0) >= 1 for r in peers), peers
    assert private_keys(paths) == []


def test_an_org_gateway_holds_its_own_identity_and_cannot_act_as_another(fabric_network, ipledger_chaincode):
    from ipledger.gateway.app import close_app, create_app
    from ipledger.gateway.auth import KeyStore
    from ipledger.gateway.config import GatewayConfig
    root = fabric_network.layout.root
    config = GatewayConfig.from_state_dir(root, org="OperatorMSP", live_feed=False, key_in_child_process=True)
    assert list(config.orgs) == ["OperatorMSP"]
    assert config.keys_file == root / "operator" / "gateway" / "api-keys.json"
    # a key claiming customs, slipped into the operator's gateway: it has no customs identity to sign with
    _, key = KeyStore(config.keys_file).create("CustomsMSP", "clerk", "forged")
    app = create_app(config)
    try:
        height = fabric_network.peer_height(fabric_network.consortium.node("peer0.customs"))
        r = app.test_client().post("/api/v1/events", headers={"Authorization": f"Bearer {key}"}, json={
            "type": "GrantAuthorisation", "event_id": "forged-1", "authorisation_id": "FRIPO000999",
            "occurred_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")})
        assert r.status_code >= 400, r.get_json()
        assert fabric_network.peer_height(fabric_network.consortium.node("peer0.customs")) == height
    finally:
        close_app(app)


class OneOrgEndorsed(RealScenario):
    """Submits endorsed by the submitting organisation's peer alone."""

    def submit(self, fn, event, msp, ts=None, transient=None, user="User1", **_):
        event = dict(event, event_id=f"alone-{fn}-{id(event)}",
                     occurred_at=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        contract = self.clients.contract(msp, self.chaincode, user)
        return contract.submit(fn, [json.dumps(event)], endorsing_orgs=[msp])


def test_a_transaction_endorsed_by_one_org_alone_is_refused(clients, ipledger_chaincode):
    from ipledger.gateway.client import GatewayError
    RealScenario(clients, ipledger_chaincode.name)   # customs register the holder (both endorse): any test order
    s = OneOrgEndorsed.__new__(OneOrgEndorsed)
    s.clients, s.chaincode, s.customs_msp = clients, ipledger_chaincode.name, "CustomsMSP"
    s.day = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    with pytest.raises(GatewayError, match="ENDORSEMENT_POLICY_FAILURE"):
        Scenario.grant(s, "FRIPO000998")


def test_another_chaincode_calling_the_contract_is_refused(clients, ipledger_chaincode, stubcheck):
    """The stub-exercising chaincode calls the contract (chaincode to chaincode) with an act customs and the holder
    both endorse: the contract refuses it (it would see the state without the transaction's own earlier calls, and
    its chaincode event would be dropped), the calling transaction commits without a write in the contract's
    namespace, and a proposal made to the contract itself still records the act."""
    s = RealScenario(clients, ipledger_chaincode.name)
    event = _grant_event(s, "FRIPO000997")
    via = clients.contract("CustomsMSP", "stubcheck").submit(
        "Call", [json.dumps(ipledger_chaincode.name), json.dumps(["GrantAuthorisation", json.dumps(event)])],
        endorsing_orgs=["CustomsMSP", "OperatorMSP"])
    answer = json.loads(via.result)
    assert answer["status"] == 500 and json.loads(answer["message"])["code"] == "NotPermitted", answer
    customs = clients.contract("CustomsMSP", ipledger_chaincode.name)
    from ipledger.gateway.client import EvaluateError
    with pytest.raises(EvaluateError, match="NotFound"):
        customs.evaluate("GetAuthorisation", [json.dumps("FRIPO000997")])
    customs.submit("GrantAuthorisation", [json.dumps(event)])
    assert json.loads(customs.evaluate("GetAuthorisation", [json.dumps("FRIPO000997")]))["version"] == 1


def _grant_event(s, auth_id: str) -> dict:
    from ipledger.chaincode.testing.scenario import authorisation_fields
    return {"event_id": f"c2c-{auth_id}", "authorisation_id": auth_id,
            "occurred_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            **authorisation_fields(s.day)}
