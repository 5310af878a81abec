"""More than one host: every node in its own network namespace, with its own address; a network partition.

The test creates one network namespace per node (``tests/integration/netns.py``: addresses in 198.18.0.0/15,
a bridge in a namespace of its own), writes a consortium file naming those hosts (``host:`` = the namespace's
address, ``netns:`` = the namespace, the same ports on every host), brings the network up from that file and
deploys the real ipledger contract. The test process and the Fabric CLIs stay in the root namespace and reach
every node through the bridge, like clients on another machine.

Then the operator's peer is cut off (its switch port down) and healed:

* customs keeps reading through its own peer;
* the operator's submissions fail clearly (UNAVAILABLE or DEADLINE_EXCEEDED, within the client's deadline):
  its client's gateway peer is its own, unreachable, peer;
* once gossip has noticed (alive expiration, 10 s), customs and the broker go on submitting: the endorsement
  policy AND(customs, OR(operator, broker)) is met without the operator's peer;
* the cut lasts 30 s, longer than a TCP connection with unacknowledged data survives (gRPC's TCP user timeout,
  20 s): the orderer drops its deliver stream to the peer, which has to notice and reconnect;
* healed, the operator's peer catches up to the others' height, shows what was committed while it was cut off,
  and the operator's submissions succeed again.

Everything is torn down at the end (processes, namespaces, links), also when the test fails.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import yaml

from chaincode.testing.scenario import SITE1, SITE2, iso
from gateway.fabric import Endpoint, Gateway, GatewayError, Timeouts, load_identity
from network import consortium, fabric, processes
from network.chaincode import ChaincodeSpec, Deployer
from network.lifecycle import Network

from .conftest import Clients
from .netns import NETNS_DIR, TestHosts, require_netns, run_in
from .realscenario import RealScenario
from .support_faults import QUIET, wait_no_leftovers

pytestmark = pytest.mark.fabric

AUTH, AUTH2 = "FRIPO000081", "FRIPO000082"
LOT, LOT2 = "M81-1", "M81-2"
PLACED, EXITED, MOVED = 100, 10, 5
ORDERER_PORT, PEER_PORT = 7050, 7051     # the same on every host: each has its own address
# Client deadlines (seconds): short enough to keep the test bounded, long enough for a 2-core machine.
TIMEOUTS = Timeouts(evaluate=10.0, endorse=15.0, submit=10.0, commit_status=30.0)
PARTITION_S = 30.0                       # longer than a connection with unacknowledged data survives (20 s)
CUT_OFF_SUBMIT_S = 6.0                   # the operator's whole submit call while its peer is cut off
GOSSIP_NOTICE_S = 40.0                   # gossip alive expiration is 10 s (network/generate.py)
# heal -> the operator's peer at the others' height; with Fabric's default deliver keepalive (60 s) it took
# 30 s and more, with the generated 10 s (network/generate.py) a few seconds
CATCH_UP_S = 30.0
RESUME_S = 60.0                          # heal -> an operator submission succeeds


# ----------------------------------------------------------------------------------------------- the lab

def lab_consortium(hosts: TestHosts) -> dict:
    """The default consortium, every node at its test host's address and in its namespace."""
    c = consortium.load()
    raw = consortium.to_dict(c)
    groups = [(raw["orderer"]["nodes"], c.orderer_org)] + \
        [(entry["peers"], org) for entry, org in zip(raw["organisations"], c.orgs)]
    for specs, org in groups:
        for spec, node in zip(specs, org.nodes):
            host = hosts[node.id]
            spec.update(host=host.address, netns=host.netns,
                        port=ORDERER_PORT if node.kind == "orderer" else PEER_PORT)
    return raw


def write_consortium(path: Path, hosts: TestHosts) -> Path:
    path.write_text("# Written by tests/integration/test_multihost.py: one network namespace (test host)\n"
                    "# per node, see docs/deployment.md.\n"
                    + yaml.safe_dump(lab_consortium(hosts), sort_keys=False))
    return path


class LabClients(Clients):
    """Gateway clients (User1 of each org) connected to their own org's peer, with bounded deadlines."""

    def gateway(self, msp_id: str, user: str = "User1") -> Gateway:
        if (msp_id, user) not in self._gateways:
            self._gateways[(msp_id, user)] = self.connect(msp_id, user)
        return self._gateways[(msp_id, user)]

    def connect(self, msp_id: str, user: str = "User1") -> Gateway:
        """A new connection (the caller closes it)."""
        org = self.net.consortium.org(msp_id)
        identity, signer = load_identity(self.net.layout.user_msp(org, user), org.msp_id)
        ep = Endpoint(org.nodes[0].address, tls_root_cert=self.net.layout.tls_ca(org))
        return Gateway.connect(ep, identity, signer, timeouts=TIMEOUTS)


class LabScenario(RealScenario):
    """RealScenario that waits for the commit only on the peers that are not cut off."""

    def __init__(self, clients, chaincode: str):
        self.cut_off: set[str] = set()
        super().__init__(clients, chaincode)

    def wait_committed_everywhere(self, block_number: int, timeout: float = 30) -> None:
        net = self.clients.net
        deadline = time.monotonic() + timeout
        for peer in net.consortium.peers:
            if peer.id in self.cut_off:
                continue
            while (net.peer_height(peer) or 0) <= block_number:
                assert time.monotonic() < deadline, f"{peer.id} did not commit block {block_number}"
                time.sleep(0.1)


@dataclass
class Lab:
    net: Network
    hosts: TestHosts
    clients: LabClients


@contextlib.contextmanager
def lab_network(tmp_path: Path):
    """Test hosts, the network on them with the ipledger contract; everything gone afterwards."""
    require_netns()
    hosts = TestHosts([n.id for n in consortium.load().nodes])
    net = clients = None
    ok = False
    try:
        hosts.create()
        net = Network.open(tmp_path / "state",
                           consortium_file=write_consortium(tmp_path / "consortium.yaml", hosts))
        net.up(log=QUIET, timeout=120)
        Deployer(net, log=QUIET).deploy(ChaincodeSpec.default())
        clients = LabClients(net)
        yield Lab(net, hosts, clients)
        ok = True
    finally:
        if clients:
            clients.close()
        if net:
            net.down(log=QUIET)
        problems = hosts.teardown()
        left = wait_no_leftovers(net.layout.root) if net else []
        if ok:
            assert not problems, f"test hosts not torn down: {problems}"
            assert not left, f"processes left running: {left}"
        elif problems or left:
            print(f"teardown after failure: {problems} {left}", file=sys.stderr)


def wait_for(condition, timeout: float, what: str, interval: float = 0.5) -> float:
    """Poll ``condition`` until true; the seconds it took. Fails the test after ``timeout``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - started


def net_namespace(pid: int) -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def evaluate_reconnecting(contract, fn: str, *args, timeout: float = 30.0, timings: dict | None = None):
    """``contract.evaluate`` as a client would do it after a network failure: an UNAVAILABLE answer (a
    connection that did not survive, gRPC's TCP user timeout being its keepalive timeout, 20 s) is
    retried on a new connection, within ``timeout``."""
    deadline = time.monotonic() + timeout
    failures = 0
    while True:
        try:
            result = json.loads(contract.evaluate(fn, [json.dumps(a) for a in args]))
            break
        except GatewayError as e:
            if e.code != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            failures += 1
            print(f"  {fn} after healing: {e}".splitlines()[0])
            time.sleep(0.5)
    if timings is not None:
        timings[f"{fn} through the healed peer: UNAVAILABLE answers before success"] = failures
    return result


def height_inside(net: Network, peer) -> int | None:
    """The channel height as the peer's own namespace sees it (``peer channel getinfo`` run there, as
    its org admin): reachable while the peer is cut off from everything else."""
    lay = net.layout
    env = dict(os.environ, FABRIC_CFG_PATH=str(lay.node_dir(peer)), FABRIC_LOGGING_SPEC="warning",
               CORE_PEER_LOCALMSPID=peer.org.msp_id, CORE_PEER_MSPCONFIGPATH=str(lay.user_msp(peer.org)),
               CORE_PEER_ADDRESS=peer.address, CORE_PEER_TLS_ENABLED="true",
               CORE_PEER_TLS_ROOTCERT_FILE=str(lay.tls_ca(peer.org)))
    out = run_in(peer.netns, [fabric.binary("peer"), "channel", "getinfo", "-c", net.consortium.channel],
                 env=env)
    text = out.stdout + out.stderr
    if out.returncode != 0 or "{" not in text:
        return None
    return int(json.loads(text[text.find("{"):text.rfind("}") + 1])["height"])


# ----------------------------------------------------------------------------------------------- the test

def test_partitioned_operator_peer_fails_clearly_and_catches_up(tmp_path):
    timings: dict[str, float | int] = {}
    started = time.monotonic()
    with lab_network(tmp_path) as lab:
        net, hosts = lab.net, lab.hosts
        timings["network up + contract deployed"] = time.monotonic() - started
        customs, operator, broker = (net.consortium.org(m).nodes[0]
                                     for m in ("CustomsMSP", "OperatorMSP", "BrokerMSP"))

        # Every node runs in its own namespace, at its own address.
        for n in net.consortium.nodes:
            assert n.host == hosts[n.id].address and n.netns == hosts[n.id].netns
            pid = processes.running_pid(net.layout, n)
            assert pid and net_namespace(pid) == os.stat(NETNS_DIR / n.netns).st_ino, n.id
        assert len({n.host for n in net.consortium.nodes}) == len(net.consortium.nodes)

        # --- connected: customs grants the authorisation, the operator places a lot (with private data,
        # so endorsed by customs and the operator).
        sc = LabScenario(lab.clients, "ipledger")
        sc.accepted(sc.grant(AUTH))
        sc.accepted(sc.place(LOT, PLACED, msp="OperatorMSP", auth_id=AUTH))
        assert sum(sc.lot(LOT)["stock"].values()) == PLACED
        # The chaincode the operator's peer launched (external builder) runs in the peer's namespace.
        peer_pid = processes.running_pid(net.layout, operator)
        in_ns = [p for p in hosts.pids() if net_namespace(p) == net_namespace(peer_pid) and p != peer_pid]
        assert any(b"python" in Path(f"/proc/{p}/cmdline").read_bytes() for p in in_ns), \
            f"no chaincode process in {operator.netns}: {in_ns}"

        move = {"event_id": "multihost-move-1", "occurred_at": iso(dt.datetime.now(dt.timezone.utc)),
                "authorisation_id": AUTH, "lot_id": LOT, "quantity": MOVED, "from_site": SITE1,
                "to_site": SITE2}
        operator_contract = lab.clients.contract("OperatorMSP", "ipledger")
        operator_contract.evaluate("GetLot", [json.dumps(LOT)])  # the connection is established

        # --- partition: the operator's peer is cut off.
        t = time.monotonic()
        hosts.partition(operator.id)
        sc.cut_off.add(operator.id)
        height_at_cut = net.peer_height(customs)
        assert not hosts.can_connect(operator.id, customs.host, customs.port), "the partition leaks"

        # customs keeps reading through its own peer
        t0 = time.monotonic()
        assert sum(sc.lot(LOT)["stock"].values()) == PLACED
        timings["customs read, cut off"] = time.monotonic() - t0

        # the operator's submissions fail clearly, within the deadline: on the connection its client holds,
        # and on a new one (an ERP client that reconnects)
        fresh = lab.clients.connect("OperatorMSP")
        try:
            for label, contract in (("held connection", operator_contract),
                                    ("new connection", fresh.network(net.consortium.channel).contract("ipledger"))):
                t0 = time.monotonic()
                with pytest.raises(GatewayError) as failure:
                    contract.submit("MoveGoods", [json.dumps(move)], timeout=CUT_OFF_SUBMIT_S)
                elapsed = time.monotonic() - t0
                err = failure.value
                assert err.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), str(err)
                assert elapsed < CUT_OFF_SUBMIT_S + 3, f"{label}: failed only after {elapsed:.1f} s"
                assert err.code.name in str(err) and err.step in str(err)
                timings[f"operator submit fails ({label}, {err.code.name})"] = elapsed
        finally:
            fresh.close()

        # Gossip notices the partition (alive expiration); from then on the gateways of customs and the
        # broker plan endorsements without the operator's peer.
        timings["gossip drops the operator's peer"] = wait_for(
            lambda: net.gossip_peers_known(customs) == 1 and net.gossip_peers_known(broker) == 1,
            GOSSIP_NOTICE_S, "customs' and the broker's peers to drop the operator's peer from gossip")

        # customs and the broker go on: customs + broker endorse
        t0 = time.monotonic()
        sc.accepted(sc.grant(AUTH2))
        sc.accepted(sc.exit(EXITED, lot_id=LOT, msp="BrokerMSP", authorisation_id=AUTH))
        timings["customs grant + broker exit, cut off"] = time.monotonic() - t0
        assert sum(sc.lot(LOT)["stock"].values()) == PLACED - EXITED
        assert net.peer_height(customs) >= height_at_cut + 2
        # the operator's peer is alive in its namespace, stuck at the height of the cut
        assert height_inside(net, operator) == height_at_cut
        # the cut lasts longer than connections with unacknowledged data survive (TCP user timeout = gRPC
        # keepalive timeout, 20 s): the peers' connections have to be re-established, not just resumed
        time.sleep(max(0.0, PARTITION_S - (time.monotonic() - t)))
        timings["partition lasted"] = time.monotonic() - t

        # --- heal
        t = time.monotonic()
        hosts.heal(operator.id)
        sc.cut_off.clear()
        wait_for(lambda: hosts.can_connect(operator.id, customs.host, customs.port), 10,
                 "the operator's namespace to reach customs' peer again")
        target = net.peer_height(customs)
        wait_for(lambda: (net.peer_height(operator) or 0) >= target, CATCH_UP_S,
                 f"the operator's peer to reach height {target} (it reconnects to the orderer when a "
                 "keepalive ping of its deliver stream fails: peer.keepalive.deliveryClient)")
        timings["operator's peer caught up (after healing)"] = time.monotonic() - t
        heights = {p.id: net.peer_height(p) for p in net.consortium.peers}
        assert len(set(heights.values())) == 1, heights

        # what was committed while it was cut off is on the operator's peer (read through it; the
        # connection the client held across the partition may have been reset: the next call reconnects)
        lot = evaluate_reconnecting(operator_contract, "GetLot", LOT, timings=timings)
        assert sum(lot["stock"].values()) == PLACED - EXITED, lot
        assert evaluate_reconnecting(operator_contract, "GetAuthorisation", AUTH2)["authorisation_id"] == AUTH2

        # the operator's submissions succeed again, once gossip has reconnected (the same event, so a
        # retry can never record it twice)
        deadline = time.monotonic() + RESUME_S
        attempts, last = 0, None
        while True:
            attempts += 1
            try:
                result = operator_contract.submit("MoveGoods", [json.dumps(move)], timeout=20)
                break
            except GatewayError as e:
                last = e
                print(f"  operator submit after healing, attempt {attempts}: {e}".splitlines()[0])
                if time.monotonic() > deadline:
                    pytest.fail(f"no operator submission succeeded {RESUME_S:.0f} s after healing "
                                f"({attempts} attempts); last error: {last}")
                time.sleep(1.0)
        timings[f"operator submits again ({attempts} attempt(s), after healing)"] = time.monotonic() - t
        sc.wait_committed_everywhere(result.block_number)
        lot = sc.lot(LOT)
        assert lot["stock"].get(SITE2) == MOVED and sum(lot["stock"].values()) == PLACED - EXITED, lot
        # and a placement with private data (customs + the operator's peer) goes through again
        sc.accepted(sc.place(LOT2, 1, msp="OperatorMSP", auth_id=AUTH))
        assert sc.lot(LOT2, msp="OperatorMSP")["commercial"] is not None

    timings["total"] = time.monotonic() - started
    print("\n".join(f"  {k}: {v:.1f} s" if isinstance(v, float) else f"  {k}: {v}" for k, v in timings.items()))
