"""A BFT ordering service spread over the members (issue 14): four consenters — customs runs two, the
operator and the broker one each — order the channel; kill -9 the one leading, and the three others
(a quorum: 2f+1 of 3f+1) elect a new leader and ordering goes on; the stopped consenter, restarted,
catches up. Nothing acknowledged is lost or doubled; unacknowledged events replayed are recorded once.

Own network (network/consortium-bft.yaml) in a temporary directory; no process left at the end.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fabric_protos.common import common_pb2

from ipledger.network.fabric.blocks import block_files
from ipledger.network.channel import founding
from ipledger.network.consortium import DEFAULT_FILE
from ipledger.network.org.identities import private_key_files

from .test_security import admin_endpoint_checks
from .support_faults import (QUIET, OrgGateways, Ledger, Load, check_outcome, create_keys, exits_of, kill9,
                             moves_of, node_pid, set_up_authorisation, start_network, stop_network,
                             wait_leader, wait_same_orderer_heights)

pytestmark = pytest.mark.fabric

REPO = Path(__file__).resolve().parents[2]
BFT_FILE = DEFAULT_FILE.with_name("consortium-bft.yaml")
LOT_QTY = 100_000
# the followers notice a silent leader after LeaderHeartbeatTimeout (10 s, network/channel/founding.py SMARTBFT),
# then change view; the peers' submits reach a live consenter meanwhile
MAX_PAUSE_S = 45.0


@pytest.fixture(scope="module")
def bft(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bft")
    net = start_network(tmp / "state", consortium_file=BFT_FILE)
    gw = ledger = None
    try:
        keys = create_keys(net.layout.root)
        gw = OrgGateways(net.layout.root, tmp)
        gw.start()
        set_up_authorisation(gw.urls, keys, {"B1": LOT_QTY, "B2": LOT_QTY, "BX": LOT_QTY})
        ledger = Ledger(net)
        yield net, gw, keys, ledger
    finally:
        if ledger:
            ledger.close()
        if gw:
            gw.stop()
        stop_network(net)


def test_the_channel_is_ordered_by_four_consenters_of_three_members(bft):
    net = bft[0]
    s = founding.summary(net.layout.genesis_block.read_bytes())
    assert s["consensus"] == "BFT"
    assert [(cs["msp_id"], cs["address"]) for cs in s["consenters"]] == [
        ("CustomsMSP", net.consortium.node("orderer0.customs").address),
        ("CustomsMSP", net.consortium.node("orderer1.customs").address),
        ("OperatorMSP", net.consortium.node("orderer0.operator").address),
        ("BrokerMSP", net.consortium.node("orderer0.broker").address)]
    # no ordering organisation of its own: every consenter's keys are its member's, and no member's directory
    # holds a key of another (compared by content: a copied key would have another path)
    assert net.consortium.orderer_org is None
    keys = {o.msp_id: {p.read_bytes() for p in private_key_files(net.layout.org_home(o))}
            for o in net.consortium.orgs}
    for a, mine in keys.items():
        for b, theirs in keys.items():
            assert a == b or not mine & theirs, f"{a}'s directory holds a key of {b}"
    # each consenter runs from its member's files only: every path in its orderer.yaml is in that member's
    # own directory or among the public files
    for n in net.consortium.orderers:
        text = (net.layout.node_dir(n) / "orderer.yaml").read_text()
        paths = re.findall(r"(%s/[^\s'\"]+)" % re.escape(str(net.layout.root)), text)
        assert paths, n.id
        for path in paths:
            assert Path(path).is_relative_to(net.layout.org_home(n.org)) or \
                Path(path).is_relative_to(net.layout.public), (n.id, path)
        # its signing key is its own member's
        [key] = private_key_files(net.layout.node_msp(n))
        assert key.read_bytes() in keys[n.org.msp_id]
    # every consenter is running and on the channel
    assert all(net.orderer_joined(o) for o in net.consortium.orderers)
    # and administered by its own organisation's admins alone (osnadmin certificates of its admin CA)
    admin_endpoint_checks(net)


def test_kill9_bft_leader_under_load(bft):
    net, gw, keys, ledger = bft
    ids = [o.id for o in net.consortium.orderers]
    load = Load(gw.urls, keys, [moves_of("B1", "bft"), moves_of("B2", "bft"), exits_of("BX", "bft")],
                client_timeout=30).start()
    try:
        time.sleep(2.0)
        before = sum(1 for s in load.sent.values() if s.acknowledged)
        assert before >= 3, f"no steady load before the fault: {load.summary()}"
        leader_id = wait_leader(net, ids, timeout=60)
        leader = net.consortium.node(leader_id)
        killed_at = time.monotonic()
        kill9(node_pid(net, leader))
        # fresh clients: those waiting on a transaction the dead leader held are blocked meanwhile
        load.add([moves_of("B1", "bft", start=100_000), moves_of("B2", "bft", start=100_000),
                  exits_of("BX", "bft", mrn_base=5000, start=100_000)])
        pause = load.first_success_after(killed_at + 0.5, timeout=MAX_PAUSE_S)
        assert pause is not None, f"no submit succeeded within {MAX_PAUSE_S} s of the leader's death: " \
                                  f"{load.summary()}"
        # three consenters of four keep ordering: several more blocks while the fourth is down
        height_down = net.peer_height(net.consortium.peers[0])
        deadline = time.monotonic() + 30
        while (net.peer_height(net.consortium.peers[0]) or 0) < height_down + 3:
            assert time.monotonic() < deadline, f"ordering stalled with {leader_id} down: {load.summary()}"
            time.sleep(0.5)
        new_leader = wait_leader(net, [i for i in ids if i != leader_id], timeout=60)
        # restart the stopped consenter; it catches up from the others
        net.up(log=QUIET, timeout=90)
        restarted_at = time.monotonic()
        time.sleep(2.0)
    finally:
        load.stop()
    after = [a for s in load.sent.values() for a in s.attempts if a.at > restarted_at and a.status == 201]
    assert after, "no submit succeeded after the restart"
    out = check_outcome(ledger, load, "bft", ["B1", "B2"], ["BX"], LOT_QTY)
    h = wait_same_orderer_heights(net)
    peer = net.consortium.peers[0]
    deadline = time.monotonic() + 30
    while (net.peer_height(peer) or 0) < h[leader_id] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert h[leader_id] == net.peer_height(peer), h
    print(f"bft: leader {leader_id} killed, new leader {new_leader}, first 2xx after {pause:.1f} s,",
          out["summary"], "replayed", out["replayed"], "heights", h)


def run_verify(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "ipledger.network.cli.verify", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=180)


def test_every_block_carries_a_quorum_of_consenter_signatures(bft, tmp_path):
    """``ipledger verify`` checks each block against the BFT block validation policy (3 of the 4
    consenters' identities, as configtxgen derives it); a block cut down to 2 signatures is refused."""
    net = bft[0]
    saved = tmp_path / "blocks"
    proc = run_verify("--state-dir", str(net.layout.root), "--peer", "peer0.customs", "--as", "CustomsMSP",
                      "--save", str(saved))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run_verify("--from-file", str(saved), "--state-dir", str(net.layout.root), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] and report["problems"] == []
    # every block after the genesis block carries at least a quorum (3) of consenter signatures, each checked
    assert report["blocks_verified"] >= 10
    assert report["checked"]["orderer_signatures"] >= 3 * (report["blocks_verified"] - 1)

    number, path = block_files(saved)[-1]
    block = common_pb2.Block.FromString(path.read_bytes())
    md = common_pb2.Metadata.FromString(block.metadata.metadata[common_pb2.SIGNATURES])
    assert len(md.signatures) >= 3, f"block {number} has {len(md.signatures)} consenter signatures"
    assert all(s.identifier_header and not s.signature_header for s in md.signatures)  # signers by consenter id
    del md.signatures[2:]
    block.metadata.metadata[common_pb2.SIGNATURES] = md.SerializeToString()
    path.write_bytes(block.SerializeToString())
    proc = run_verify("--from-file", str(saved), "--state-dir", str(net.layout.root), "--json")
    assert proc.returncode != 0, proc.stdout
    report = json.loads(proc.stdout)
    assert not report["ok"]
    assert [p["block"] for p in report["problems"]] == [number], report["problems"]
