"""A restart of the whole consortium after the channel's configuration changed, on a real network.

A newcomer followed docs/admin.md ("Revoke a certificate": a CRL in the operator's definition, put in the
channel by a config update its admin signs), then ``network down`` and ``network up``: the restart failed
for everyone, each organisation checking the immutable genesis block against its definition as it is now.
Likewise after ``org definition --anchor-peer … --output F``, which rewrote the broker's own definition.
The genesis block is checked before an organisation's nodes first join; after that, a restart brings the
ledger back as it was (README), the configuration as the updates left it.

This module runs its own network (the updates would disturb the shared session network); the tests are
steps of one story: they run in file order.
"""
from __future__ import annotations

import json

import pytest

from ipledger.network.org.nodes import Nodes
from tests.integration.conftest import ipledger_command, stubcheck_network

pytestmark = pytest.mark.fabric
J = json.dumps


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    root = tmp_path_factory.mktemp("restart")
    with stubcheck_network(root) as state:
        opened: list = []
        yield {"root": root, "state": state, "opened": opened}
        for client in opened:   # gateways and signing processes
            client.close()


@pytest.fixture
def ipledger(state):
    return ipledger_command(state["state"])


def contract(state, msp_id: str, user: str = "User1"):
    """A Gateway client of ``msp_id``'s ``user`` on that org's own peer (signing in a child process)."""
    from ipledger.gateway.client import Endpoint, Gateway
    from ipledger.network.fabric.signing_process import load_identity_apart
    net = Nodes.open(state["state"])
    org = net.consortium.org(msp_id)
    identity, signer = load_identity_apart(net.layout.user_msp(org, user), msp_id)
    gw = Gateway.connect(Endpoint(org.peers[0].address, tls_root_cert=net.layout.tls_ca(org)), identity, signer)
    state["opened"] += [gw, signer]
    return gw.network(net.consortium.channel).contract("stubcheck")


def heights(state) -> dict[str, int | None]:
    net = Nodes.open(state["state"])
    return {n.id: net.peer_height(n) for n in net.consortium.peers}


def settled_heights(state, timeout: float = 30.0) -> dict[str, int | None]:
    """The peers' heights once every peer has committed the last block (one may still be committing the update
    just submitted: its height then is one less for a moment)."""
    import time
    deadline = time.monotonic() + timeout
    last = None
    while True:
        now = heights(state)
        if (len(set(now.values())) == 1 and now == last) or time.monotonic() > deadline:
            return now   # every peer at one height, the same a second ago
        last = now
        time.sleep(1.0)


def restart(state, ipledger) -> None:
    """``network down`` then ``network up`` (what scripts/up does first); the ledger is as it was."""
    before = settled_heights(state)
    rc, out, err = ipledger("network", "down")
    assert rc == 0, out + err
    rc, out, err = ipledger("network", "up")
    assert rc == 0, out + err
    assert "Network up" in out and "refuses the genesis block" not in out + err
    assert heights(state) == before


def test_data_written_before_the_updates(state):
    assert contract(state, "OperatorMSP").submit("Put", [J("before"), J("lot L-17")]).block_number > 0


def test_the_consortium_restarts_after_a_revocation_put_in_the_channel(state, ipledger):
    """docs/admin.md, "Revoke a certificate", then a restart of every organisation's nodes."""
    from ipledger.gateway.client import GatewayError
    assert ipledger("org", "add-user", "--org", "OperatorMSP", "--name", "clerk2")[0] == 0
    rc, out, err = ipledger("org", "revoke", "--org", "OperatorMSP", "--name", "clerk2")
    assert rc == 0, err
    update = state["root"] / "revoke.pb"
    definition = Nodes.open(state["state"]).layout.definition_file("OperatorMSP")
    rc, out, err = ipledger("admin", "propose", "update-org", "--definition", definition, "--output", update)
    assert rc == 0, err
    assert ipledger("admin", "sign", update, "--as", "OperatorMSP")[0] == 0
    rc, out, err = ipledger("admin", "submit", update)
    assert rc == 0, err

    restart(state, ipledger)
    assert json.loads(contract(state, "BrokerMSP").evaluate("Get", [J("before")])) == "lot L-17"
    with pytest.raises(GatewayError):
        contract(state, "OperatorMSP", "clerk2").submit("Put", [J("by-clerk2"), J("after the restart")])
    assert contract(state, "OperatorMSP").submit("Put", [J("after"), J("restart")]).block_number > 0


def test_a_definition_written_to_a_file_changes_nothing_of_the_org(state, ipledger):
    """docs/admin.md's table: ``org definition --anchor-peer H:P --output F`` writes F; the broker's own
    definition and its public copy stay as they are, and the next restart goes through."""
    net = Nodes.open(state["state"])
    broker = net.consortium.org("BrokerMSP")
    own, public = net.layout.org_home(broker) / "definition.json", net.layout.definition_file("BrokerMSP")
    before = own.read_bytes(), public.read_bytes()
    out_file = state["root"] / "x.json"
    anchor = f"localhost:{broker.peers[0].port}"
    rc, out, err = ipledger("org", "definition", "--org", "BrokerMSP", "--anchor-peer", anchor, "--output", out_file)
    assert rc == 0, err
    assert json.loads(out_file.read_text())["anchor_peers"] == [anchor]
    assert (own.read_bytes(), public.read_bytes()) == before
    restart(state, ipledger)


def test_the_consortium_restarts_after_an_org_moved_its_anchor_peer(state, ipledger):
    """The broker rewrites its definition with another anchor peer (``org definition`` without
    ``--output``) and puts that anchor peer in the channel (its admin alone); the genesis block still holds
    the founding one, and the restart goes through."""
    net = Nodes.open(state["state"])
    anchor = f"localhost:{net.consortium.org('BrokerMSP').peers[0].port}"
    assert ipledger("org", "definition", "--org", "BrokerMSP", "--anchor-peer", anchor)[0] == 0
    assert json.loads(net.layout.definition_file("BrokerMSP").read_text())["anchor_peers"] == [anchor]
    update = state["root"] / "anchors.pb"
    rc, out, err = ipledger("admin", "propose", "update-anchors", "--org", "BrokerMSP", "--peer", anchor,
                            "--output", update)
    assert rc == 0, err
    assert ipledger("admin", "sign", update, "--as", "BrokerMSP")[0] == 0
    rc, out, err = ipledger("admin", "submit", update)
    assert rc == 0, err
    rc, out, _ = ipledger("admin", "members", "--json")
    [broker] = [o for o in json.loads(out)["organisations"] if o["msp_id"] == "BrokerMSP"]
    assert broker["anchor_peers"] == [anchor]

    restart(state, ipledger)
    assert json.loads(contract(state, "CustomsMSP").evaluate("Get", [J("after")])) == "restart"
