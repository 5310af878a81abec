"""Crash faults under load (issue 8): kill -9 the operator's peer, the orderer, the gateway's gunicorn master,
while client threads post events through the REST API; restart what died.

After each fault: every event acknowledged with a 2xx is on the ledger exactly once; every other answer was a
clear retryable one (problem+json 503/504/409 transaction-conflict with Retry-After, or no HTTP answer while
the gateway was down); replaying the unacknowledged events (same bodies) records each exactly once.

Last, the operator's peer loses its disk and is rebuilt from the channel (docs/deployment.md, section 3).

The module runs its own network (not the session one) in a temporary directory and leaves no process.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass

import pytest
import requests

from ipledger.gateway.problems import type_uri
from ipledger.network.channel.chaincode import Deployer
from ipledger.network.channel.package import ChaincodeSpec
from ipledger.network.org.nodes import Nodes

from .support_faults import (QUIET, Ledger, Load, OrgGateways, url_of, check_outcome, create_keys, exits_of,
                             is_clear_retryable, kill9, moves_of, node_pid, placements, post_once,
                             set_up_authorisation, start_network, stop_network, wait_no_leftovers)

pytestmark = pytest.mark.fabric

LOT_QTY = 100_000
LOTS = {lot: LOT_QTY for lot in ("F1", "F2", "F3", "F4", "F5", "F6", "X1", "X2", "X3")}
BEFORE_S, OUTAGE_S, AFTER_S = 2.0, 3.0, 3.0
# the gateways' whole-submit timeout here (60 s by default): a client whose transaction a fault lost gets its 504
# after this long, and sends the event again
SUBMIT_TIMEOUT_S = 20


@dataclass
class Env:
    net: Nodes
    gws: OrgGateways
    keys: dict
    ledger: Ledger


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    state = tmp_path_factory.mktemp("faults") / "state"
    net = start_network(state)
    gws = ledger = None
    try:
        keys = create_keys(state)
        gws = OrgGateways(state, state.parent, environment={"IPLEDGER_SUBMIT_TIMEOUT_S": str(SUBMIT_TIMEOUT_S)})
        gws.start()
        set_up_authorisation(gws.urls, keys, LOTS)
        ledger = Ledger(net)
        yield Env(net, gws, keys, ledger)
    finally:
        if ledger:
            ledger.close()
        if gws:
            codes = gws.stop()
        stop_network(net, check=False)
        left = wait_no_leftovers(net.layout.root)
        assert not left, f"processes left after the fault tests: {left}"
        if gws:
            assert set(codes.values()) == {0}, f"gunicorn did not stop cleanly on SIGTERM ({codes}):\n{gws.tail()}"


def heights(net: Nodes) -> dict[str, int | None]:
    return {p.id: net.peer_height(p) for p in net.consortium.peers}


def wait_heights_equal(net: Nodes, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    h = heights(net)
    while len(set(h.values())) != 1 and time.monotonic() < deadline:
        time.sleep(0.5)
        h = heights(net)
    return h


def test_kill9_operator_peer_under_load(env):
    """The operator's peer dies (SIGKILL) and comes back: the operator's submits are 503 meanwhile, the broker's
    exits go on (customs + broker satisfy the endorsement policy), nothing is lost or doubled; the restarted
    peer catches up."""
    net = env.net
    peer = net.consortium.org("OperatorMSP").nodes[0]
    load = Load(env.gws.urls, env.keys, [moves_of("F1", "peer"), moves_of("F2", "peer"),
                                   exits_of("X1", "peer", mrn_base=1000)]).start()
    try:
        time.sleep(BEFORE_S)
        killed_at = time.monotonic()
        kill9(node_pid(net, peer))
        time.sleep(OUTAGE_S)
        restarted_at = time.monotonic()
        net.up(log=QUIET, timeout=90)
        time.sleep(AFTER_S)
    finally:
        load.stop()
    during = [a for s in load.sent.values() for a in s.attempts
              if s.org == "OperatorMSP" and killed_at + 0.5 < a.at < restarted_at]
    assert during and all(a.status == 503 for a in during), [a for a in during if a.status != 503][:5]
    broker = [a.status for s in load.sent.values() for a in s.attempts
              if s.org == "BrokerMSP" and killed_at + 0.5 < a.at < restarted_at]
    # customs + broker satisfy the endorsement policy: the broker's declarations go on
    assert broker and set(broker) == {201}, f"broker exits while the operator's peer was down: {broker}"
    after = [a for s in load.sent.values() for a in s.attempts if a.at > restarted_at + 1]
    assert any(a.status == 201 for a in after), "no submit succeeded after the restart"
    out = check_outcome(env.ledger, load, "peer", ["F1", "F2"], ["X1"], LOT_QTY)
    h = wait_heights_equal(net)
    assert len(set(h.values())) == 1, f"the restarted peer did not catch up: {h}"
    print("peer fault:", out["summary"], "replayed", out["replayed"])


def test_placement_with_private_data_while_operator_peer_down_is_retryable(env):
    """The 'commercial' collection belongs to customs and the operator: with the operator's peer down no
    endorsement plan protects the transient data, so nothing can be recorded — the answer must say 'try again'."""
    net = env.net
    peer = net.consortium.org("OperatorMSP").nodes[0]
    kill9(node_pid(net, peer))
    try:
        http = requests.Session()
        body, org = placements("down-lot", mrn_base=4000)(0)
        a = post_once(http, url_of(env.gws.urls, org), env.keys[(org, "clerk")], body)
    finally:
        net.up(log=QUIET, timeout=90)
    # sent again as an ERP does, honouring Retry-After: the restarted peer may answer "try again" a few seconds
    # more (its gateway's connection coming back, its chaincode starting) — each answer a clear "try again"
    http, deadline = requests.Session(), time.monotonic() + 60
    replay = post_once(http, url_of(env.gws.urls, org), env.keys[(org, "clerk")], body)
    while replay.status != 201 and is_clear_retryable(replay) and time.monotonic() < deadline:
        time.sleep(min(float(replay.retry_after or 1), 5.0))
        replay = post_once(http, url_of(env.gws.urls, org), env.keys[(org, "clerk")], body)
    assert replay.status == 201, replay
    assert is_clear_retryable(a) and a.status == 503, a


def test_kill9_orderer_under_load(env):
    """The (single) orderer dies and comes back: submits fail with 503/504 meanwhile, then succeed again.

    A transaction the orderer had accepted but not yet written to a block when it died is lost: its client
    waits for the commit until the gateway's submit timeout (SUBMIT_TIMEOUT_S) and gets 504; the replay records
    it."""
    net = env.net
    orderer = net.consortium.orderers[0]
    load = Load(env.gws.urls, env.keys, [moves_of("F3", "orderer"), moves_of("F4", "orderer"),
                                   exits_of("X2", "orderer", mrn_base=2000),
                                   placements("orderer-lot", mrn_base=2000)]).start()
    try:
        time.sleep(BEFORE_S)
        kill9(node_pid(net, orderer))
        time.sleep(OUTAGE_S)
        net.up(log=QUIET, timeout=90)
        restarted_at = time.monotonic()
        # fresh clients next to any still waiting on a transaction the crash lost
        load.add([moves_of("F3", "orderer", start=100_000), moves_of("F4", "orderer", start=100_000),
                  exits_of("X2", "orderer", mrn_base=2000, start=100_000)])
        recovered_s = load.first_success_after(restarted_at, timeout=60)
        time.sleep(AFTER_S)
    finally:
        load.stop()
    assert recovered_s is not None, f"no submit succeeded within 60 s of the restart: {load.summary()}"
    out = check_outcome(env.ledger, load, "orderer", ["F3", "F4"], ["X2"], LOT_QTY)
    print("orderer fault:", out["summary"], "replayed", out["replayed"], f"first 2xx {recovered_s:.1f} s after up")


def test_kill9_gateway_master_under_load(env):
    """The operator's gunicorn master dies (SIGKILL): its workers must go too (no orphan keeps the port), a new
    gunicorn serves the same port; its clients meanwhile get connection errors, never a lost acknowledged event."""
    gw = env.gws["OperatorMSP"]
    load = Load(env.gws.urls, env.keys, [moves_of("F5", "gateway"), moves_of("F6", "gateway"),
                                   exits_of("X3", "gateway", mrn_base=3000),
                                   placements("gateway-lot", mrn_base=3000)]).start()
    try:
        time.sleep(BEFORE_S)
        workers = [p for p in gw.group() if p != gw.proc.pid]
        assert len(workers) == gw.workers, workers
        gw.kill9_master()
        left = gw.wait_gone(timeout=40)
        assert not left, f"gunicorn workers still alive 40 s after their master was killed: {left}"
        gw.start()
        time.sleep(AFTER_S)
    finally:
        load.stop()
    assert any(a.status is None for s in load.sent.values() for a in s.attempts), \
        "no client saw the gateway down: the fault did not happen"
    out = check_outcome(env.ledger, load, "gateway", ["F5", "F6"], ["X3"], LOT_QTY)
    print("gateway fault:", out["summary"], "replayed", out["replayed"])


def test_request_in_flight_when_the_worker_closes_its_connections_is_retryable(env):
    """What a gunicorn worker does at exit (close_app), with a submit still waiting on a frozen peer."""
    import signal
    import threading

    from ipledger.gateway.app import close_app, create_app
    from ipledger.gateway.auth import KeyStore
    from ipledger.gateway.config import GatewayConfig
    from .test_gateway_api import move

    net = env.net
    peer = net.consortium.org("OperatorMSP").nodes[0]
    cfg = GatewayConfig.from_state_dir(net.layout.root, org="OperatorMSP", live_feed=False,
                                       key_in_child_process=True)
    app = create_app(cfg)
    key = KeyStore(cfg.keys_file).create("OperatorMSP", "clerk")[1]
    answer = {}
    pid = node_pid(net, peer)
    os.kill(pid, signal.SIGSTOP)
    try:
        t = threading.Thread(target=lambda: answer.update(r=app.test_client().post(
            "/api/v1/events", json=move("inflight-1", 1, lot_id="F1"), headers={"Authorization": f"Bearer {key}"})))
        t.start()
        time.sleep(1.5)
        assert t.is_alive(), f"the submit did not wait for the frozen peer: {answer}"
        close_app(app)
        t.join(20)
        assert not t.is_alive()
    finally:
        os.kill(pid, signal.SIGCONT)
    r = answer["r"]
    assert r.status_code == 503 and r.headers.get("Retry-After"), (r.status_code, r.json)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (its children, theirs, ...), from /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    parents[int(entry)] = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    out, todo = [], [pid]
    while todo:
        below = todo.pop()
        kids = [p for p, parent in parents.items() if parent == below]
        out += kids
        todo += kids
    return out


def cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:   # gone meanwhile
        return b""


def test_a_contract_process_killed_during_an_invoke_is_503_then_recorded_once(env):
    """The operator's contract process dies while it simulates a move: nothing was ordered, so the answer is a
    503 to send again (not a 502 that reads as final); the peer starts the contract again and the same event,
    sent again, is recorded once."""
    import signal

    net = env.net
    peer = net.consortium.org("OperatorMSP").nodes[0]
    contract = [p for p in descendants(node_pid(net, peer)) if b"chaincode" in cmdline(p)]
    assert contract, "the operator's peer runs no contract process"
    body, org = moves_of("F6", "cc-killed")(0)
    url, key = url_of(env.gws.urls, org), env.keys[(org, "clerk")]
    for p in contract:
        os.kill(p, signal.SIGSTOP)     # held in the middle of the simulation ...
    answer = {}
    t = threading.Thread(target=lambda: answer.update(r=requests.post(
        url + "/api/v1/events", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=120)))
    t.start()
    time.sleep(5)                      # the proposal reaches the peer in milliseconds; the peer waits up to 30 s
    assert t.is_alive(), f"answered while the contract was stopped: {answer}"
    for p in contract:
        kill9(p)                        # ... and killed there
    t.join(120)
    first = answer["r"]
    assert (first.status_code, first.json()["type"], first.json().get("reason"), bool(
        first.headers.get("Retry-After"))) == (503, type_uri("service-unavailable"), "contract-unavailable", True), \
        first.text
    http, deadline = requests.Session(), time.monotonic() + 90
    again = post_once(http, url, key, body)
    while again.status != 201 and is_clear_retryable(again) and time.monotonic() < deadline:
        time.sleep(min(float(again.retry_after or 1), 5.0))
        again = post_once(http, url, key, body)
    assert again.status == 201, again
    assert env.ledger.event_ids()[body["event_id"]] == 1


def chain_info(net: Nodes, peer) -> dict:
    """``peer channel getinfo`` of ``peer``: its height and the hash of its last block."""
    out = net.peer_cli(peer, ["channel", "getinfo", "-c", net.consortium.channel]).stdout
    return json.loads(out[out.index("{"):])


def test_an_orderer_behind_the_peers_or_without_its_ledger_is_not_let_order(env):
    """docs/operations.md §1: the single orderer put back from a copy older than the channel would order new blocks
    under numbers the peers already hold (they refuse them: nothing could be recorded again), and one that lost its
    ledger would start another chain from the genesis block. `network up` refuses both, names why, and leaves the
    orderer stopped; with its newest ledger back the channel goes on."""
    from ipledger.network.errors import NetworkError
    net = env.net
    [orderer] = net.consortium.orderers
    data = net.layout.data_dir(orderer)
    older, newest = data.parent / "ledger-older-copy", data.parent / "ledger-newest"
    http = requests.Session()

    def record(n: int) -> None:
        body, org = placements(f"orderer-copy-{n}", org="OperatorMSP", value="1.00", mrn_base=7000 + 100 * n)(0)
        assert post_once(http, url_of(env.gws.urls, org), env.keys[(org, "clerk")], body).status == 201

    assert net.runtime.stop(orderer)
    shutil.copytree(data, older, symlinks=True)          # the backup, taken stopped
    net.up(log=QUIET, timeout=90)
    record(1)                                            # a block the copy does not hold
    assert len(set(wait_heights_equal(net).values())) == 1
    assert net.runtime.stop(orderer)
    data.rename(newest)
    older.rename(data)                                   # the copy put back
    with pytest.raises(NetworkError, match="restored from an older copy") as refused:
        net.up(log=QUIET, timeout=90)
    assert "docs/operations.md" in str(refused.value) and net.runtime.running(orderer) is None
    shutil.rmtree(data)                                  # its ledger lost
    with pytest.raises(NetworkError, match="holds no ledger of channel"):
        net.up(log=QUIET, timeout=90)
    assert net.runtime.running(orderer) is None
    shutil.rmtree(data, ignore_errors=True)
    newest.rename(data)                                  # its newest ledger back
    net.up(log=QUIET, timeout=90)
    record(2)


def test_operator_peer_that_lost_its_disk_is_rebuilt_from_the_channel(env):
    """The operator's only peer loses its disk (its data directory: ledger, private data, installed contract),
    keys intact. `network up` joins it to the channel again and says what recovery takes; it takes every block
    from the ordering service and the commercial private data from customs' peer; `chaincode deploy` installs
    the contract on it again. Then it holds the same chain as the others, answers from its own ledger with the
    commercial data recorded before the loss, and the operator records again, before and after an upgrade of
    the contract. (Runs last: it rebuilds a peer
    of the module's network.)"""
    net = env.net
    peer = net.consortium.org("OperatorMSP").nodes[0]
    http = requests.Session()
    body, org = placements("disk-lot", org="OperatorMSP", value="4321.09", mrn_base=6000)(0)
    assert post_once(http, url_of(env.gws.urls, org), env.keys[(org, "clerk")], body).status == 201
    before = wait_heights_equal(net)
    assert len(set(before.values())) == 1, before

    assert net.runtime.stop(peer)
    shutil.rmtree(net.layout.data_dir(peer))
    lines: list[str] = []
    net.up(log=lines.append, timeout=90)
    notes = [line for line in lines if "had no ledger" in line]
    assert len(notes) == 1 and peer.id in notes[0] and "ipledger chaincode deploy" in notes[0], lines

    # blocks carrying only the operator's own private data (its chaincode approval) wait up to a minute each
    after = wait_heights_equal(net, timeout=180)
    assert len(set(after.values())) == 1 and after[peer.id] >= before[peer.id], after
    infos = {p.id: chain_info(net, p) for p in net.consortium.peers}
    assert len({i["currentBlockHash"] for i in infos.values()}) == 1, infos

    Deployer(net, log=QUIET).deploy(ChaincodeSpec.default())
    # the operator's own peer (the evaluation's target organisation) runs the contract and reads the commercial
    # data it took from customs' peer
    contract = env.ledger.clients.contract("OperatorMSP", "ipledger")
    lot = json.loads(contract.evaluate("GetLot", [json.dumps("disk-lot-0")], endorsing_orgs=["OperatorMSP"],
                                       timeout=30))
    assert lot["commercial"]["customs_value"] == {"amount": "4321.09", "currency": "EUR"}, lot
    assert lot["balance"] == 1

    body, org = placements("disk-lot-after", org="OperatorMSP", value="10.00", mrn_base=6100)(0)
    a = post_once(http, url_of(env.gws.urls, org), env.keys[(org, "clerk")], body)
    assert a.status == 201, a

    # the lost approval does not stand in the way of the next definition: an upgrade, approved by every member
    committed = Deployer(net, log=QUIET).deploy(dataclasses.replace(ChaincodeSpec.default(), version="1.1"),
                                                upgrade=True)
    assert committed["version"] == "1.1" and all(committed["approvals"].values()), committed
    body, org = placements("disk-lot-upgraded", org="OperatorMSP", value="11.00", mrn_base=6200)(0)
    a = post_once(http, url_of(env.gws.urls, org), env.keys[(org, "clerk")], body)
    assert a.status == 201, a
