"""Channel membership administration on a live network: docs/admin.md, step by step.

A fourth organisation, AuditMSP (an auditing customs office), joins the channel
with the signatures of customs' and the holder's admins (the channel's rules change
by customs and the holder, never by a majority without customs), its peer
catches up and serves data written before it joined; an update with too few
signatures is refused, by ``submit`` and (``--force``) by the orderer itself;
a change signed by every member but the holder is refused too; then AuditMSP is
removed again by customs and the holder, after which its client can no longer
submit while the others continue.

This module runs its own network (membership changes would disturb the shared
session network) and the tests are steps of one story: they run in file order.
"""
from __future__ import annotations

import json
import subprocess
import time

import pytest

from ipledger.network.org import processes
from ipledger.network.org.nodes import Nodes
from tests.integration.conftest import ipledger_command, stubcheck_network

pytestmark = pytest.mark.fabric
J = json.dumps
DESCRIPTION = "auditing customs office (post-clearance audit)"


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    root = tmp_path_factory.mktemp("admin")
    with stubcheck_network(root) as state:
        yield {"root": root, "state": state}


@pytest.fixture
def ipledger(state):
    return ipledger_command(state["state"])


def net_of(state) -> Nodes:
    return Nodes.open(state["state"])


def client(state, msp_id: str, chaincode: str = "stubcheck"):
    """A Gateway client of ``msp_id``'s User1, connected to that org's own peer."""
    from ipledger.gateway.client import Endpoint, Gateway
    from ipledger.network.fabric.signing_process import load_identity_apart
    net = net_of(state)
    org = net.consortium.org(msp_id)
    identity, signer = load_identity_apart(net.layout.user_msp(org, "User1"), msp_id)
    state.setdefault("signers", []).append(signer)
    gw = Gateway.connect(Endpoint(org.nodes[0].address, tls_root_cert=net.layout.tls_ca(org)),
                         identity, signer)
    state.setdefault("gateways", []).append(gw)
    return gw.network(net.consortium.channel).contract(chaincode)


@pytest.fixture(scope="module", autouse=True)
def _close_gateways(state):
    yield
    for gw in state.get("gateways", []):
        gw.close()
    for signer in state.get("signers", []):
        signer.close()


def gateway_members(state, org: str = "CustomsMSP") -> dict:
    """GET /api/v1/members of ``org``'s own gateway app on this network (real Fabric client, in-process Flask)."""
    from ipledger.gateway.app import close_app, create_app
    from ipledger.gateway.auth import KeyStore
    from ipledger.gateway.config import GatewayConfig
    config = GatewayConfig.from_state_dir(state["state"], org=org, live_feed=False, key_in_child_process=True)
    _, key = KeyStore(config.keys_file).create(org, "viewer", "members test")
    app = create_app(config)
    try:
        r = app.test_client().get("/api/v1/members", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.get_json()
        return r.get_json()
    finally:
        close_app(app)


def test_data_written_before_the_new_org_exists(state):
    r = client(state, "OperatorMSP").submit("Put", [J("before-audit"), J("stock of lot L-17")])
    assert r.block_number > 0


def _tree(path):
    return {f: f.read_bytes() for f in path.rglob("*") if f.is_file()}


def test_step1_new_org_gets_crypto_and_a_peer_config_but_is_left_out(state, ipledger):
    before = net_of(state)
    customs = before.layout.org_dir(before.consortium.org("CustomsMSP"))
    customs_files = _tree(customs)
    rc, out, _ = ipledger("network", "add-org", "--msp-id", "AuditMSP", "--name", "audit",
                          "--description", DESCRIPTION)
    assert rc == 0, out
    net = net_of(state)
    audit = net.consortium.org("AuditMSP")
    assert audit.description == DESCRIPTION and [n.id for n in audit.nodes] == ["peer0.audit"]
    assert (net.layout.user_msp(audit, "User1") / "signcerts").is_dir()
    assert (net.layout.node_dir(audit.nodes[0]) / "core.yaml").exists()
    # The new org created its identities in its own directory; the others' are untouched.
    assert _tree(customs) == customs_files
    assert net.layout.org_home(audit) == state["state"].resolve() / "audit"
    assert (net.layout.org_dir(audit) / "ca" / "priv_sk").exists()
    rc, out, _ = ipledger("network", "up")
    assert rc == 0, out
    assert "AuditMSP is not in the channel configuration (yet): peer0.audit left out" in out
    assert processes.running_pid(net.layout, audit.nodes[0]) is None


def test_step2_3_definition_and_proposal(state, ipledger):
    root = state["root"]
    rc, out, _ = ipledger("org", "definition", "--org", "AuditMSP",
                          "--output", root / "AuditMSP-definition.json")
    assert rc == 0, out
    definition = json.loads((root / "AuditMSP-definition.json").read_text())
    assert definition["msp_id"] == "AuditMSP" and definition["format"] == "ipledger-org-definition/1"
    assert "PRIVATE KEY" not in (root / "AuditMSP-definition.json").read_text()
    rc, out, err = ipledger("admin", "propose", "add-org",
                            "--definition", root / "AuditMSP-definition.json",
                            "--as", "CustomsMSP", "--output", root / "add-audit.pb")
    assert rc == 0, err
    assert "add application organisation AuditMSP" in out
    assert "/Channel/Application/Admins: AND('CustomsMSP.admin', 'OperatorMSP.admin')" in out
    assert (root / "add-audit.pb").exists() and (root / "add-audit.json").exists()


def test_step4_6_one_signature_is_refused_by_submit_and_by_the_orderer(state, ipledger):
    update = state["root"] / "add-audit.pb"
    rc, out, _ = ipledger("admin", "sign", update, "--as", "CustomsMSP")
    assert rc == 0 and "Signed by CustomsMSP" in out
    assert "add application organisation AuditMSP" in out  # shown before signing
    rc, out, _ = ipledger("admin", "status", update, "--json")
    status = json.loads(out)
    assert rc == 1 and not status["satisfied"]
    assert [(s["msp_id"], s["admin"]) for s in status["signatures"]] == [("CustomsMSP", True)]
    assert [(p["policy"], p["have"], p["needed"]) for p in status["policies"]] == [
        ("/Channel/Application/Admins", 1, 2)]
    rc, _, err = ipledger("admin", "submit", update)
    assert rc == 1 and "refused" in err and "1 of 2" in err
    rc, _, err = ipledger("admin", "submit", update, "--force")
    assert rc == 2
    assert "the orderer refused the update" in err
    assert "/Channel/Application not satisfied" in err and "signature set did not satisfy policy" in err, err
    rc, out, _ = ipledger("admin", "members", "--json")
    assert "AuditMSP" in json.loads(out)["not_in_channel"]


def test_step4_6_the_holder_signs_too_and_the_update_goes_through(state, ipledger):
    update = state["root"] / "add-audit.pb"
    # As on the operator admin's own machine: only its MSP directory is needed.
    net = net_of(state)
    msp_dir = net.layout.user_msp(net.consortium.org("OperatorMSP"))
    rc, out, _ = ipledger("admin", "sign", update, "--as", "OperatorMSP", "--msp-dir", msp_dir)
    assert rc == 0 and "Ready to submit." in out
    rc, out, _ = ipledger("admin", "status", update, "--live")
    assert rc == 0 and "same as the base config" in out
    rc, out, err = ipledger("admin", "submit", update)
    assert rc == 0, err
    rc, out, _ = ipledger("admin", "members", "--json")
    members = json.loads(out)
    audit = [o for o in members["organisations"] if o["msp_id"] == "AuditMSP"]
    assert audit and audit[0]["description"] == DESCRIPTION
    assert audit[0]["anchor_peers"] == [net_of(state).consortium.node("peer0.audit").address]
    assert members["not_in_channel"] == []
    # the gateway's read-only view reads the same config block
    seen = gateway_members(state, "BrokerMSP")
    assert seen["config_block"] == members["config_block"]
    assert [o["msp_id"] for o in seen["organisations"]] == [o["msp_id"] for o in members["organisations"]]
    assert "AuditMSP" in [o["msp_id"] for o in seen["organisations"]]


def test_step7_its_peer_starts_joins_and_catches_up(state, ipledger):
    rc, out, _ = ipledger("network", "up")
    assert rc == 0, out
    assert "peer0.audit joined channel" in out
    net = net_of(state)
    audit, customs = net.consortium.node("peer0.audit"), net.consortium.node("peer0.customs")
    deadline = time.monotonic() + 30
    while net.peer_height(audit) != net.peer_height(customs):
        assert time.monotonic() < deadline, "peer0.audit did not catch up"
        time.sleep(0.5)
    assert net.peer_height(audit) > 3


def test_step8_its_client_reads_data_from_before_it_joined_on_its_own_peer(state, ipledger):
    rc, out, err = ipledger("admin", "chaincode-approve", "--org", "AuditMSP",
                            "--name", "stubcheck")
    assert rc == 0, err
    auditor = client(state, "AuditMSP")
    assert json.loads(auditor.evaluate("Get", [J("before-audit")])) == "stock of lot L-17"
    # The evaluation ran in the chaincode process that AuditMSP's own peer launched.
    net = net_of(state)
    peer_pid = int(net.layout.pid_file(net.consortium.node("peer0.audit")).read_text())
    launched = subprocess.run(["pgrep", "-s", str(peer_pid), "-f", "ipledger.chaincode.shim.client"],
                              capture_output=True, text=True).stdout.split()
    assert json.loads(auditor.evaluate("Pid", [])) in [int(p) for p in launched]
    r = auditor.submit("Put", [J("audit-note"), J("checked")])
    assert json.loads(r.result) == r.tx_id
    assert json.loads(client(state, "CustomsMSP").evaluate("Get", [J("audit-note")])) == "checked"


def test_the_admins_let_its_peer_endorse_through_a_new_chaincode_sequence(state, ipledger):
    from ipledger.gateway.client import GatewayError
    auditor = client(state, "AuditMSP")
    with pytest.raises(GatewayError, match="ENDORSEMENT_POLICY_FAILURE"):
        auditor.submit("Put", [J("endorsed-by-audit"), J("x")], endorsing_orgs=["AuditMSP"])
    # a policy under which one party writes alone is refused before any organisation approves it
    rc, out, err = ipledger("admin", "chaincode-policy", "--name", "stubcheck", "--policy",
                            "OR('CustomsMSP.peer','OperatorMSP.peer','BrokerMSP.peer','AuditMSP.peer')")
    assert rc != 0 and "lets CustomsMSP write alone" in err, (rc, out, err)
    rc, out, err = ipledger("admin", "chaincode-policy", "--name", "stubcheck", "--policy",
                            "AND('CustomsMSP.peer', OR('OperatorMSP.peer','BrokerMSP.peer','AuditMSP.peer'))")
    assert rc == 0, err
    assert "at sequence 2" in out
    r = auditor.submit("Put", [J("endorsed-by-audit"), J("y")], endorsing_orgs=["CustomsMSP", "AuditMSP"])
    assert json.loads(r.result) == r.tx_id
    with pytest.raises(GatewayError, match="ENDORSEMENT_POLICY_FAILURE"):   # the auditor's peer alone: no more
        auditor.submit("Put", [J("endorsed-by-audit"), J("z")], endorsing_orgs=["AuditMSP"])


def test_an_org_revokes_a_users_certificate_and_the_channel_refuses_it(state, ipledger):
    """A revocation is the org's own business: its CA writes a CRL, its definition carries it, and
    a config update signed by its admin alone puts it in the channel; the revoked user's
    transactions are then refused while the org's other users go on."""
    from ipledger.gateway.client import Endpoint, Gateway, GatewayError
    from ipledger.network.fabric.signing_process import load_identity_apart
    rc, out, err = ipledger("org", "add-user", "--org", "OperatorMSP", "--name", "clerk2")
    assert rc == 0, err
    net = net_of(state)
    operator = net.consortium.org("OperatorMSP")
    identity, signer = load_identity_apart(net.layout.user_msp(operator, "clerk2"), "OperatorMSP")
    state.setdefault("signers", []).append(signer)
    gw = Gateway.connect(Endpoint(operator.nodes[0].address, tls_root_cert=net.layout.tls_ca(operator)),
                         identity, signer)
    state.setdefault("gateways", []).append(gw)
    clerk2 = gw.network(net.consortium.channel).contract("stubcheck")
    assert clerk2.submit("Put", [J("by-clerk2"), J("before revocation")]).block_number > 0
    rc, out, err = ipledger("org", "revoke", "--org", "OperatorMSP", "--name", "clerk2")
    assert rc == 0, err
    assert "admin propose update-org" in out
    update = state["root"] / "revoke.pb"
    rc, out, err = ipledger("admin", "propose", "update-org", "--definition",
                            net.layout.definition_file("OperatorMSP"), "--output", update)
    assert rc == 0, err
    assert "/Channel/Application/OperatorMSP" in out
    rc, out, _ = ipledger("admin", "sign", update, "--as", "OperatorMSP")
    assert rc == 0 and "Ready to submit." in out
    rc, out, err = ipledger("admin", "submit", update)
    assert rc == 0, err
    rc, out, _ = ipledger("admin", "members", "--json")
    with pytest.raises(GatewayError):
        clerk2.submit("Put", [J("by-clerk2"), J("after revocation")])
    r = client(state, "OperatorMSP").submit("Put", [J("by-user1"), J("after revocation")])
    assert json.loads(r.result) == r.tx_id
    # the clerk's key was compromised: a new key under the same name, on no CRL — no channel update needed
    rc, out, err = ipledger("org", "reissue", "--org", "OperatorMSP", "--name", "clerk2")
    assert rc == 0, err
    identity2, signer2 = load_identity_apart(net.layout.user_msp(operator, "clerk2"), "OperatorMSP")
    state["signers"].append(signer2)
    assert identity2.certificate_pem != identity.certificate_pem
    gw2 = Gateway.connect(Endpoint(operator.nodes[0].address, tls_root_cert=net.layout.tls_ca(operator)),
                          identity2, signer2)
    state["gateways"].append(gw2)
    new_clerk2 = gw2.network(net.consortium.channel).contract("stubcheck")
    assert new_clerk2.submit("Put", [J("by-clerk2"), J("with its new key")]).block_number > 0
    with pytest.raises(GatewayError):   # the old key stays refused
        clerk2.submit("Put", [J("by-clerk2"), J("old key again")])


def test_an_org_changes_its_own_anchor_peers_alone(state, ipledger):
    update = state["root"] / "anchors.pb"
    port = net_of(state).consortium.node("peer0.audit").port
    rc, out, err = ipledger("admin", "propose", "update-anchors", "--org", "AuditMSP",
                            "--peer", f"localhost:{port}", "--output", update)
    assert rc == 0, err
    assert f"AnchorPeers of /Channel/Application/AuditMSP: 127.0.0.1:{port} → localhost:{port}" \
        in out
    rc, out, _ = ipledger("admin", "sign", update, "--as", "AuditMSP")
    assert rc == 0 and "Ready to submit." in out
    rc, out, _ = ipledger("admin", "status", update, "--json")
    assert [p["policy"] for p in json.loads(out)["policies"]] == [
        "/Channel/Application/AuditMSP/Admins"]
    rc, out, err = ipledger("admin", "submit", update)
    assert rc == 0, err
    rc, out, _ = ipledger("admin", "members", "--json")
    audit = [o for o in json.loads(out)["organisations"] if o["msp_id"] == "AuditMSP"][0]
    assert audit["anchor_peers"] == [f"localhost:{port}"]


def test_a_channel_policy_change_signed_by_everyone_but_the_holder_is_refused(state, ipledger):
    update = state["root"] / "endorsement.pb"
    rc, out, err = ipledger("admin", "propose", "set-policy", "Application/Endorsement",
                            "--rule", "ANY Endorsement", "--as", "AuditMSP", "--output", update)
    assert rc == 0, err
    assert ("policy /Channel/Application/Endorsement: AND('CustomsMSP.peer', OR('OperatorMSP.peer', "
            "'BrokerMSP.peer')) → ANY Endorsement") in out, out
    for org in ("AuditMSP", "BrokerMSP", "CustomsMSP"):
        assert ipledger("admin", "sign", update, "--as", org)[0] == 0
    rc, out, _ = ipledger("admin", "status", update, "--json")
    [policy] = json.loads(out)["policies"]
    assert rc == 1 and (policy["have"], policy["needed"]) == (1, 2), policy
    assert policy["detail"] == "missing 'OperatorMSP.admin'"
    rc, _, err = ipledger("admin", "submit", update, "--force")
    assert rc == 2 and "the orderer refused the update" in err, err
    assert ipledger("admin", "sign", update, "--as", "OperatorMSP")[0] == 0
    rc, out, err = ipledger("admin", "submit", update)
    assert rc == 0, err


def test_removal_needs_customs_and_the_holder(state, ipledger):
    rc, _, err = ipledger("network", "remove-org", "--msp-id", "AuditMSP")
    assert rc == 2 and "still in the channel configuration" in err
    update = state["root"] / "remove-audit.pb"
    rc, out, err = ipledger("admin", "propose", "remove-org", "--org", "AuditMSP",
                            "--as", "OperatorMSP", "--output", update)
    assert rc == 0, err
    assert "remove application organisation AuditMSP" in out
    assert "/Channel/Application/Admins: AND('CustomsMSP.admin', 'OperatorMSP.admin')" in out
    for org in ("BrokerMSP", "CustomsMSP"):
        assert ipledger("admin", "sign", update, "--as", org)[0] == 0
    rc, _, err = ipledger("admin", "submit", update)
    assert rc == 1 and "1 of 2" in err
    assert ipledger("admin", "sign", update, "--as", "OperatorMSP")[0] == 0
    rc, out, err = ipledger("admin", "submit", update)
    assert rc == 0, err
    rc, out, _ = ipledger("admin", "members", "--json")
    assert json.loads(out)["not_in_channel"] == ["AuditMSP"]
    seen = gateway_members(state)
    assert [o["msp_id"] for o in seen["organisations"]] == ["BrokerMSP", "CustomsMSP", "OperatorMSP", "OrdererMSP"]
    assert seen["config_block"] == json.loads(out)["config_block"]


def test_an_update_whose_base_is_not_the_live_config_is_not_signed(state, ipledger):
    """The endorsement update went through two config blocks ago: its X.json's base config is no longer the
    channel's, so the changes it shows are not those a signature would approve. Signing fetches the live
    config and refuses; offline (--offline, or an admin's MSP directory alone) it signs, and says so."""
    update = state["root"] / "endorsement.pb"
    rc, out, err = ipledger("admin", "sign", update, "--as", "BrokerMSP")
    assert rc == 1 and "not signed: the channel's config (block" in err, out + err
    assert "is not the base config this update was computed against" in err
    rc, out, err = ipledger("admin", "sign", update, "--as", "BrokerMSP", "--offline")
    assert rc == 0 and "NOT checked against the channel's live config (offline)" in out, out + err
    fresh = state["root"] / "endorsement-back.pb"
    rc, out, err = ipledger("admin", "propose", "set-policy", "Application/Endorsement", "--rule",
                            "MAJORITY Endorsement", "--as", "BrokerMSP", "--output", fresh)
    assert rc == 0, err
    rc, out, err = ipledger("admin", "sign", fresh, "--as", "BrokerMSP")
    assert rc == 0 and "Checked against the channel's live config (block" in out, out + err


def test_after_removal_its_client_fails_and_the_others_continue(state, ipledger):
    from ipledger.gateway.client import GatewayError
    with pytest.raises(GatewayError):
        client(state, "AuditMSP").submit("Put", [J("after-removal"), J("not allowed")])
    r = client(state, "OperatorMSP").submit("Put", [J("after-removal"), J("still working")])
    assert json.loads(r.result) == r.tx_id
    assert json.loads(client(state, "BrokerMSP").evaluate("Get", [J("after-removal")])) == \
        "still working"
    rc, out, _ = ipledger("network", "remove-org", "--msp-id", "AuditMSP")
    assert rc == 0 and "stopped peer0.audit" in out
    net = net_of(state)
    assert [o.msp_id for o in net.consortium.orgs] == ["CustomsMSP", "OperatorMSP", "BrokerMSP"]
    rc, out, _ = ipledger("network", "status")
    assert rc == 0 and "peer0.audit" not in out


def test_a_removed_organisations_msp_id_is_not_given_to_another_ca(state, ipledger):
    """The channel's records name organisations by MSP id: AuditMSP, removed, may come back (its own CA), but another
    organisation proposed under that id — another CA — is refused, found in the channel's earlier configs."""
    root = state["root"]
    rc, out, err = ipledger("admin", "propose", "add-org", "--definition", root / "AuditMSP-definition.json",
                            "--as", "CustomsMSP", "--output", root / "readd-audit.pb")
    assert rc == 0, err
    rc, _, err = ipledger("org", "definition", "--org", "BrokerMSP", "--output", root / "BrokerMSP-definition.json")
    assert rc == 0, err
    other = json.loads((root / "AuditMSP-definition.json").read_text())
    broker = json.loads((root / "BrokerMSP-definition.json").read_text())
    other.update({k: broker[k] for k in ("ca_certs", "tls_ca_certs", "crls")})   # another organisation's CA
    (root / "other-audit.json").write_text(json.dumps(other))
    rc, out, err = ipledger("admin", "propose", "add-org", "--definition", root / "other-audit.json",
                            "--as", "CustomsMSP", "--output", root / "other-audit.pb")
    assert rc != 0 and "AuditMSP was an organisation of channel" in err and "another root CA" in err, out + err
    assert not (root / "other-audit.pb").exists()
