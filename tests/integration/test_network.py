"""The real network: up, status, restart of a dead node, down."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ipledger.network.org import processes

pytestmark = pytest.mark.fabric


def ipledger(net, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ipledger.network.cli", "--state-dir",
                           str(net.layout.root), *args],
                          capture_output=True, text=True, timeout=120)


def test_every_peer_is_on_the_channel_for_each_org_admin(fabric_network):
    net = fabric_network
    for peer in net.consortium.peers:
        height = net.peer_height(peer)  # queried with the peer's own org admin identity
        assert height is not None and height >= 1, f"{peer.id} not on the channel"


def test_status_json_lists_four_healthy_nodes_and_three_peers_on_channel(fabric_network):
    out = ipledger(fabric_network, "network", "status", "--json")
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    assert status["channel"] == "inward-processing"
    nodes = {n["node"]: n for n in status["nodes"]}
    assert set(nodes) == {"orderer0.orderer", "peer0.customs", "peer0.operator",
                          "peer0.broker"}
    assert all(n["healthy"] and n["pid"] for n in nodes.values())
    assert all(nodes[p]["channel_height"] >= 1
               for p in ("peer0.customs", "peer0.operator", "peer0.broker"))
    assert nodes["orderer0.orderer"]["channel_joined"] is True
    # the orderer's own height too: an orderer behind its peers is one restored from an older copy
    assert nodes["orderer0.orderer"]["channel_height"] >= max(nodes[p]["channel_height"] for p in (
        "peer0.customs", "peer0.operator", "peer0.broker"))
    text = ipledger(fabric_network, "network", "status").stdout
    assert "joined, height " in text, text


def test_up_again_is_harmless_and_restarts_a_dead_node(fabric_network):
    net = fabric_network
    operator = net.consortium.node("peer0.operator")
    pids = {n.id: processes.running_pid(net.layout, n) for n in net.consortium.nodes}
    os.kill(pids[operator.id], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while processes.running_pid(net.layout, operator) and time.monotonic() < deadline:
        time.sleep(0.1)
    out = ipledger(net, "network", "status")
    assert out.returncode == 1 and "DOWN" in out.stdout

    out = ipledger(net, "network", "up")
    assert out.returncode == 0, out.stderr
    after = {n.id: processes.running_pid(net.layout, n) for n in net.consortium.nodes}
    assert after[operator.id] not in (None, pids[operator.id])
    assert {k: v for k, v in after.items() if k != operator.id} == \
           {k: v for k, v in pids.items() if k != operator.id}, "up restarted a healthy node"
    assert net.peer_height(operator) >= 1


def test_logs_command_shows_the_node_log(fabric_network):
    out = ipledger(fabric_network, "network", "logs", "peer0.customs", "-n", "5")
    assert out.returncode == 0
    assert len(out.stdout.splitlines()) == 5
    bad = ipledger(fabric_network, "network", "logs", "peer9.nowhere")
    assert bad.returncode == 2 and "unknown node 'peer9.nowhere'" in bad.stderr


def test_down_leaves_no_process_and_purge_removes_the_state(tmp_path):
    from tests.integration.conftest import free_base_port, processes_using
    from ipledger.network.org.nodes import Nodes
    net = Nodes.open(tmp_path / "state", base_port=free_base_port())
    net.up(log=lambda *_: None)
    assert len(processes_using(net.layout.root)) == 4
    out = ipledger(net, "network", "down", "--purge")
    assert out.returncode == 0, out.stderr
    assert processes_using(net.layout.root) == []
    assert not net.layout.root.exists()


def test_three_orderer_raft_cluster_orders_transactions(tmp_path):
    """consortium option `orderer.nodes: 3`: every orderer joins and the cluster orders."""
    import yaml
    from ipledger.gateway.client import CommitError, Endpoint, Gateway
    from ipledger.network.fabric.signing_process import load_identity_apart
    from ipledger.network import consortium
    from ipledger.network.org.nodes import Nodes
    from tests.integration.conftest import free_base_port, processes_using

    raw = yaml.safe_load(consortium.DEFAULT_FILE.read_text())
    raw["orderer"]["nodes"] = 3
    (tmp_path / "c3.yaml").write_text(yaml.safe_dump(raw))
    net = Nodes.open(tmp_path / "state", tmp_path / "c3.yaml", base_port=free_base_port())
    try:
        net.up(log=lambda *_: None)
        assert [n.id for n in net.consortium.orderers] == [
            "orderer0.orderer", "orderer1.orderer", "orderer2.orderer"]
        assert all(net.orderer_joined(o) for o in net.consortium.orderers)
        org = net.consortium.org("CustomsMSP")
        identity, signer = load_identity_apart(net.layout.user_msp(org, "User1"), org.msp_id)
        with signer, Gateway.connect(Endpoint(org.nodes[0].address, tls_root_cert=net.layout.tls_ca(org)),
                             identity, signer) as gw:
            # A system-chaincode transaction is ordered (a new block) though invalid.
            with pytest.raises(CommitError) as e:
                gw.network(net.consortium.channel).contract("qscc").submit(
                    "GetChainInfo", [net.consortium.channel], endorsing_orgs=["CustomsMSP"],
                    timeout=60)
        assert e.value.block_number >= 1
        deadline = time.monotonic() + 15  # the other peers commit the block a moment later
        while not all(net.peer_height(p) >= 2 for p in net.consortium.peers):
            assert time.monotonic() < deadline, "block not delivered to every peer"
            time.sleep(0.2)
    finally:
        net.down(purge=True, log=lambda *_: None)
    assert processes_using(tmp_path / "state") == []
