"""More than one host: every organisation on its own host, every node in its own network namespace with its
own address; the founding from public files only; domain.md §8 through the three gateways; a network partition.

The test creates one network namespace per node (``tests/integration/netns.py``: addresses in 198.18.0.0/15,
a bridge in a namespace of its own) and writes a consortium file naming those hosts (``host:`` = the
namespace's address, ``netns:`` = the namespace, the same ports on every host). Each organisation (the orderer
organisation, customs, the operator, the broker) then works in its own state directory, its "host":

* it runs ``ipledger org init`` there: its CA, TLS CA, identities, node configurations, public definition;
* the test carries only public files between the host directories (each checked to hold no private key):
  the definitions to the founder (the orderer organisation), which builds the genesis block
  (``ipledger channel found``), then the founder's public ``consortium/`` directory (block, definitions,
  public MSPs) to every host;
* each organisation checks the block (``ipledger channel inspect --org``) and brings up its own nodes
  (``network up`` acts only for the organisations whose directory is present), the orderer first;
* customs packages the contract and sends the package (public code); the operator and the broker each install
  and approve it for themselves, customs approves and commits;
* no host directory holds another organisation's private key.

Each application organisation then starts its own REST gateway on its own host directory, and every step of
domain.md §8 goes through them (refusals, ceiling, deadlines, bill of discharge data and replay included), each
event through the gateway of the organisation that performs it. The test
process and the Fabric CLIs stay in the root namespace and reach every node through the bridge, like clients
on another machine.

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

One file of some 580 lines for one test: building the hosts (namespaces, per-host state directories, the
carrying of public files) and the story run on them are one scenario, read from top to bottom.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import yaml

from ipledger.chaincode.testing import mrns
from ipledger.chaincode.testing.scenario import SITE1, SITE2, iso
from ipledger.gateway.auth import KeyStore
from ipledger.gateway.config import keys_file_of
from ipledger.gateway.client import Endpoint, Gateway, GatewayError, Timeouts
from ipledger.network.fabric.signing_process import load_identity_apart
from ipledger.network import consortium
from ipledger.network.org import binaries
from ipledger.network.org import identities
from ipledger.network.org import processes
from ipledger.network.channel.package import ChaincodeSpec
from ipledger.network.channel.chaincode import Deployer
from ipledger.network.layout import Layout
from ipledger.network.org.nodes import Nodes

from .conftest import Clients
from .netns import NETNS_DIR, TestHosts, require_netns, run_in
from .realscenario import RealScenario
from .support_faults import QUIET, GatewayProcess, stop_gateways, wait_no_leftovers
from .test_gateway_api import (AUTH as S8_AUTH, ORGS, Api, day, ev, exit_, grant, move, place, process,
                               register_parties)

pytestmark = pytest.mark.fabric

AUTH, AUTH2 = "FRIPO000081", "FRIPO000082"
LOT, LOT2 = "M81-1", "M81-2"
PLACED, EXITED, MOVED = 100, 10, 5
# §8 through the gateways: declarations of its own (the partition part's scenario numbers its own from 1)
MRN_L1, MRN_EXIT_B1 = mrns.placement_mrn(8101), mrns.exit_mrn(8107)
MRN_L2, MRN_L3, MRN_EXIT_600 = mrns.placement_mrn(8102), mrns.placement_mrn(8103), mrns.exit_mrn(8105)
ORDERER_PORT, PEER_PORT = 7050, 7051     # the same on every host: each has its own address
# Client deadlines (seconds): short enough to keep the test bounded, long enough for a 2-core machine.
TIMEOUTS = Timeouts(evaluate=10.0, endorse=15.0, submit=10.0, commit_status=30.0)
PARTITION_S = 30.0                       # longer than a connection with unacknowledged data survives (20 s)
CUT_OFF_SUBMIT_S = 6.0                   # the operator's whole submit call while its peer is cut off
GOSSIP_NOTICE_S = 40.0                   # gossip alive expiration is 10 s (network/org/generate.py)
# heal -> the operator's peer at the others' height; with Fabric's default deliver keepalive (60 s) it took
# 30 s and more, with the generated 10 s (network/org/generate.py) a few seconds
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


ORG_MSPS = ("OrdererMSP", "CustomsMSP", "OperatorMSP", "BrokerMSP")


def ipledger(state: Path, consortium_file: Path, *args: str) -> str:
    """``ipledger --state-dir STATE ...`` as the organisation running on that host would run it."""
    out = subprocess.run([sys.executable, "-m", "ipledger.network.cli", "--state-dir", str(state),
                          "--consortium", str(consortium_file), *args],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"ipledger {' '.join(args)} (in {state}): {out.stdout}{out.stderr}"
    return out.stdout


def copy_public(src: Path, dst: Path) -> list[Path]:
    """Copy public files ``src`` (a file or a directory) to ``dst``, as one host sends them to another;
    what is sent holds no private key."""
    assert not identities.private_key_files(src), f"{src} holds a private key: {identities.private_key_files(src)}"
    if src.is_dir():
        shutil.copytree(src, dst, dirs_exist_ok=True)
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    return [dst]


class Hosts:
    """The organisations' hosts: one state directory (and Nodes) per organisation. Reads a node's
    state with its own organisation's identities, on its own host."""

    def __init__(self, nets: dict[str, Nodes]):
        self.nets = nets
        self.consortium = next(iter(nets.values())).consortium

    def of(self, node) -> Nodes:
        return self.nets[node.org.msp_id]

    def peer_height(self, node) -> int | None:
        return self.of(node).peer_height(node)

    def gossip_peers_known(self, node) -> int | None:
        return self.of(node).gossip_peers_known(node)


class LabClients(Clients):
    """Gateway clients (User1 of each org, from its own host directory) connected to their own org's
    peer, with bounded deadlines."""

    def gateway(self, msp_id: str, user: str = "User1") -> Gateway:
        if (msp_id, user) not in self._gateways:
            self._gateways[(msp_id, user)] = self.connect(msp_id, user)
        return self._gateways[(msp_id, user)]

    def connect(self, msp_id: str, user: str = "User1") -> Gateway:
        """A new connection (the caller closes it)."""
        own = self.net.nets[msp_id]
        org = own.consortium.org(msp_id)
        identity, signer = load_identity_apart(own.layout.user_msp(org, user), org.msp_id)
        self._signers.append(signer)   # ended by close(), with the connections
        ep = Endpoint(org.nodes[0].address, tls_root_cert=own.layout.tls_ca(org))
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
    net: Hosts
    hosts: TestHosts
    clients: LabClients
    dirs: dict[str, Path]


def found_on_separate_hosts(tmp_path: Path, consortium_file: Path, log=QUIET) -> dict[str, Nodes]:
    """Each organisation on its own host directory, exchanging only public files:

    * each runs ``ipledger org init`` there (its CA, identities, node configs, public definition);
    * the founder (the orderer organisation) gets the definitions, builds the genesis block
      (``ipledger channel found``) and sends the public consortium directory back to every host;
    * each checks the block (``ipledger channel inspect``) and brings up its own nodes."""
    c = consortium.load(consortium_file)
    dirs = {m: tmp_path / f"{c.org(m).name}-host" for m in ORG_MSPS}
    for msp_id, d in dirs.items():
        ipledger(d, consortium_file, "org", "init", "--org", msp_id)
        # nothing of another organisation on this host
        assert [o.msp_id for o in Nodes.open(d).local_orgs] == [msp_id]
    founder = dirs["OrdererMSP"]
    inbox = tmp_path / "founder-inbox"
    sent = []
    for msp_id, d in dirs.items():
        if msp_id != "OrdererMSP":
            sent += copy_public(Layout(d).definition_file(msp_id), inbox / f"{msp_id}.json")
    ipledger(founder, consortium_file, "channel", "found", *[a for f in sent for a in ("--definition", str(f))])
    assert Layout(founder).genesis_block.is_file()
    for msp_id, d in dirs.items():
        if msp_id != "OrdererMSP":
            copy_public(Layout(founder).public, Layout(d).public)
        out = ipledger(d, consortium_file, "channel", "inspect", "--org", msp_id)
        assert "its own definition is in the block as it wrote it" in out, out
    nets = {m: Nodes.open(d) for m, d in dirs.items()}
    for msp_id in ORG_MSPS:           # the orderer first: the peers join through it
        nets[msp_id].up(log=log, timeout=120)
    return nets


def deploy_on_each_host(nets: dict[str, Nodes], log=QUIET) -> None:
    """Customs packages the contract (public code) and sends the package to the others; the operator and
    the broker each install and approve for themselves; customs approves last and commits."""
    customs = nets["CustomsMSP"]
    spec = ChaincodeSpec.default()
    pkg = Deployer(customs, log=log).package(spec)
    for msp_id in ("OperatorMSP", "BrokerMSP"):
        received = copy_public(pkg, nets[msp_id].layout.root.parent / "inbox" / pkg.name)[0]
        # what the organisation runs on its host: install and approve the package it received
        out = ipledger(nets[msp_id].layout.root, nets[msp_id].consortium.source, "chaincode", "deploy",
                       "--package", str(received))
        assert f"approved by {msp_id}" in out, out
        assert not Deployer(nets[msp_id], log=log).committed(spec.name)
    committed = Deployer(customs, log=log).deploy(spec, pkg)
    assert committed and all(committed["approvals"].values()), committed


@contextlib.contextmanager
def lab_network(tmp_path: Path):
    """Test hosts, the network founded on them from public files, the ipledger contract; everything
    gone afterwards."""
    require_netns()
    hosts = TestHosts([n.id for n in consortium.load().nodes])
    nets: dict[str, Nodes] = {}
    clients = None
    ok = False
    try:
        hosts.create()
        consortium_file = write_consortium(tmp_path / "consortium.yaml", hosts)
        nets = found_on_separate_hosts(tmp_path, consortium_file)
        lab_hosts = Hosts(nets)
        peers = list(lab_hosts.consortium.peers)
        wait_for(lambda: all((lab_hosts.gossip_peers_known(p) or 0) >= len(peers) - 1 for p in peers), 60,
                 "every peer to know every other peer through gossip")
        deploy_on_each_host(nets)
        clients = LabClients(lab_hosts)
        yield Lab(lab_hosts, hosts, clients, {m: n.layout.root for m, n in nets.items()})
        ok = True
    finally:
        if clients:
            clients.close()
        for net in nets.values():
            net.down(log=QUIET)
        problems = hosts.teardown()
        left = [p for net in nets.values() for p in wait_no_leftovers(net.layout.root)]
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


def height_inside(net: Nodes, peer) -> int | None:
    """The channel height as the peer's own namespace sees it (``peer channel getinfo`` run there, as
    its org admin): reachable while the peer is cut off from everything else."""
    lay = net.layout
    env = dict(os.environ, FABRIC_CFG_PATH=str(lay.node_dir(peer)), FABRIC_LOGGING_SPEC="warning",
               CORE_PEER_LOCALMSPID=peer.org.msp_id, CORE_PEER_MSPCONFIGPATH=str(lay.user_msp(peer.org)),
               CORE_PEER_ADDRESS=peer.address, CORE_PEER_TLS_ENABLED="true",
               CORE_PEER_TLS_ROOTCERT_FILE=str(lay.tls_ca(peer.org)))
    out = run_in(peer.netns, [binaries.binary("peer"), "channel", "getinfo", "-c", net.consortium.channel],
                 env=env)
    text = out.stdout + out.stderr
    if out.returncode != 0 or "{" not in text:
        return None
    return int(json.loads(text[text.find("{"):text.rfind("}") + 1])["height"])


@contextlib.contextmanager
def org_gateways(lab: Lab, log_dir: Path):
    """One REST gateway per organisation, each from its own host directory (its own identities and API
    keys only); a clerk and a viewer key of each org in its own gateway's store."""
    keys = {(org, role): KeyStore(keys_file_of(lab.dirs[org], org)).create(org, role, f"multihost {org} {role}")[1]
            for org in ORGS for role in ("clerk", "viewer")}
    gateways = {org: GatewayProcess(lab.dirs[org], log_dir / f"gateway-{org}.log", org, workers=1, threads=4)
                for org in ORGS}
    try:
        for gw in gateways.values():
            gw.start(timeout=90)
        yield Api({org: gw.url for org, gw in gateways.items()}, keys, {org: gw.log for org, gw in gateways.items()},
                  {}, lab.net)
    finally:
        stop_gateways(gateways)


def section8_through_gateways(api: Api) -> None:
    """domain.md §8, every step, each event through the gateway of the organisation that performs it, on its
    own host directory: customs grants, the broker places L1, the operator moves and processes (and is refused
    a yield out of tolerance), the broker re-exports B1, customs confirm the exit, the operator is refused an
    exit beyond the balance, the ceiling is neared then refused, the deadlines come and pass, the bill of
    discharge data add up, a replay returns the original transaction; everyone reads through its own gateway."""
    def done(body, org):
        out = api.ok(body, org)
        assert out["status"] == "COMMITTED" and out["org"] == org, out
        return out

    for body, org in register_parties("mh-parties"):
        done(body, org)
    done(grant(), "CustomsMSP")
    placement_l1 = place("L1", 1000, MRN_L1)
    done(placement_l1, "BrokerMSP")
    done(move("mh-move-1", 400), "OperatorMSP")
    done(process("mh-proc-1", "OP1", 500, 495), "OperatorMSP")
    done(exit_("mh-exit-B1", 495, MRN_EXIT_B1, batch_id="B1"), "BrokerMSP")
    done(ev("ConfirmExit", "mh-confirm-1", authorisation_id=S8_AUTH, mrn=MRN_EXIT_B1,
            exit_date=dt.datetime.now(dt.timezone.utc).date().isoformat()), "CustomsMSP")
    for org in ORGS:
        r = api.get("/api/v1/lots/L1", org)
        assert r.status_code == 200, r.text
        assert r.json()["balance"] == 500 and r.json()["stock"] == {SITE1: 100, SITE2: 400}, r.json()
        b1 = api.get("/api/v1/batches/B1", org)
        assert b1.status_code == 200 and b1.json()["balance"] == 0, b1.text
    # the customs value is private to customs and the holder: the broker's gateway shows only its hash
    assert api.get("/api/v1/lots/L1", "OperatorMSP").json()["commercial"]["customs_value"]["amount"] == "25000.00"
    assert "commercial" not in api.get("/api/v1/lots/L1", "BrokerMSP").json()

    # 3'. and 5. refused, nothing written: a yield of 0.96 (L1 has 100 left at BOURGES-1), an exit of 600 (500 left)
    before = api.get("/api/v1/lots/L1", "CustomsMSP").json()
    p = api.refused(process("mh-proc-bad", "OPX", 100, 96, batches=("BX1", "BX2")), "OperatorMSP", 409,
                    "yield-out-of-tolerance")
    assert p["code"] == "YieldOutOfTolerance"
    p = api.refused(exit_("mh-exit-600", 600, MRN_EXIT_600, lot_id="L1", procedure="4051"), "OperatorMSP", 409,
                    "quantity-exceeds-balance")
    assert p["code"] == "QuantityExceedsBalance"
    assert api.get("/api/v1/lots/L1", "CustomsMSP").json() == before
    assert api.get("/api/v1/batches/BX1", "CustomsMSP").status_code == 404
    # 6. L2 of 4,200 accepted with CeilingNear (4,700 of 5,000), L3 of 400 refused with CeilingExceeded
    done(place("L2", 4200, MRN_L2), "BrokerMSP")
    for org in ("CustomsMSP", "OperatorMSP"):
        alerts = api.get(f"/api/v1/authorisations/{S8_AUTH}/alerts", org).json()["alerts"]
        assert "CeilingNear" in {a["type"] for a in alerts}, (org, alerts)
    p = api.refused(place("L3", 400, MRN_L3), "BrokerMSP", 409, "ceiling-exceeded")
    assert p["details"]["max_qty"] == 5000
    assert api.get("/api/v1/lots/L3", "CustomsMSP").status_code == 404

    # 7. the period for discharge (180 days): approaching at D+151, overdue at D+181, for L1, L2 and the waste B2
    def deadlines(as_of: str, org: str) -> list:
        alerts = api.get(f"/api/v1/authorisations/{S8_AUTH}/alerts", org, params={"as_of": as_of}).json()["alerts"]
        return sorted((a["type"], a["details"]["id"], a["details"]["balance"]) for a in alerts
                      if a["type"].startswith("Deadline"))
    for org in ("CustomsMSP", "OperatorMSP"):
        assert deadlines(day(151), org) == [("DeadlineApproaching", "B2", 1200), ("DeadlineApproaching", "L1", 500),
                                            ("DeadlineApproaching", "L2", 4200)]
        assert deadlines(day(181), org) == [("DeadlineOverdue", "B2", 1200), ("DeadlineOverdue", "L1", 500),
                                            ("DeadlineOverdue", "L2", 4200)]
    # 8. the bill of discharge data as of D+1, the same document hash through the holder's and customs' gateways
    bills = {org: api.get(f"/api/v1/authorisations/{S8_AUTH}/bill-of-discharge-data", org,
                          params={"as_of": day(1)}).json() for org in ("CustomsMSP", "OperatorMSP")}
    bill = bills["OperatorMSP"]
    assert [(lot["lot_id"], lot["quantity"]) for lot in bill["lots"]] == [("L1", 1000), ("L2", 4200)]
    assert [op["yield"][0]["actual_per_input"] for op in bill["processing"]] == ["0.99"]
    assert [(d["procedure"], d["mrn"], d["quantity"]) for d in bill["disposals"]] == [("3151", MRN_EXIT_B1, 495)]
    assert [(w["batch_id"], w["produced"]) for w in bill["waste"]] == [("B2", 1200)]
    assert [(r["id"], r["quantity"]) for r in bill["remaining"]] == [("L1", 500), ("L2", 4200), ("B2", 1200)]
    assert bill["proof"]["conservation_holds"] is True
    assert bills["CustomsMSP"]["document_hash"] == bill["document_hash"]
    # 9. the broker's placement of L1 again: the original transaction; with 999 p/st: DuplicateEvent
    first = api.ok(placement_l1, "BrokerMSP", status=200)
    assert first["status"] == "REPLAYED", first
    p = api.refused({**placement_l1, "quantity": 999}, "BrokerMSP", 409, "duplicate-event")
    assert p["details"]["original_tx_id"] == first["tx_id"]
    assert api.get("/api/v1/lots/L1", "CustomsMSP").json()["placed"] == 1000


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
            pid = processes.running_pid(net.of(n).layout, n)
            assert pid and net_namespace(pid) == os.stat(NETNS_DIR / n.netns).st_ino, n.id
        assert len({n.host for n in net.consortium.nodes}) == len(net.consortium.nodes)

        # Each organisation's host directory holds its own private keys and no other organisation's:
        # the founding exchanged public files only.
        for msp_id, d in lab.dirs.items():
            own = d / net.consortium.org(msp_id).name
            keys = identities.private_key_files(d)
            assert keys, f"no private key in {d}"
            strangers = [k for k in keys if own not in k.parents]
            assert not strangers, f"{msp_id}'s host holds keys outside its own directory: {strangers}"
            assert not identities.private_key_files(Layout(d).public)

        # --- domain.md §8 through the three organisations' REST gateways, each on its own host directory
        t0 = time.monotonic()
        with org_gateways(lab, tmp_path) as api:
            section8_through_gateways(api)
        timings["§8 through the three gateways (start, scenario, stop)"] = time.monotonic() - t0

        # --- connected: customs grants the authorisation, the operator places a lot (with private data,
        # so endorsed by customs and the operator).
        sc = LabScenario(lab.clients, "ipledger")
        sc.accepted(sc.grant(AUTH))
        sc.accepted(sc.place(LOT, PLACED, msp="OperatorMSP", auth_id=AUTH))
        assert sum(sc.lot(LOT)["stock"].values()) == PLACED
        # The chaincode the operator's peer launched (external builder) runs in the peer's namespace.
        peer_pid = processes.running_pid(net.of(operator).layout, operator)
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
        assert height_inside(net.of(operator), operator) == height_at_cut
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
