"""Real Fabric network fixtures, one network per test run.

``fabric_network`` brings the default consortium up in a temporary state
directory on free loopback ports and takes it down (leaving no process) at the
end of the session. Later suites (chaincode, gateway) build on it. One change
to the default: the broker's peer keeps a history database (off by default), so
the shim's GetHistoryForKey is exercised on a real peer, and its refusal on the
others.
"""
from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ipledger.network import consortium as consortium_mod
from ipledger.network.org.nodes import Nodes

PORTS_NEEDED = 200
HISTORY_ORG = "BrokerMSP"  # its peers keep a history database (GetHistoryForKey); the others do not


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base_port() -> int:
    """A base port whose whole range is free right now."""
    rng = random.Random()
    for _ in range(50):
        # below Linux's ephemeral range (32768-60999): a node restarted by a test must find its ports free,
        # not taken meanwhile as the local port of some client connection (seen: an orderer's operations port)
        base = rng.randrange(20000, 32768 - PORTS_NEEDED, 100)
        if all(port_free(p) for p in range(base, base + PORTS_NEEDED)):
            return base
    raise RuntimeError("no free range of loopback ports found")


# ----------------------------------------------------------------------------- no key in this process

@pytest.fixture(scope="package", autouse=True)
def this_process_holds_no_organisations_key():
    """The test process acts for every organisation — it starts their nodes and gateways, submits as each of
    them, runs their admins' commands —, so it must load none of their private keys: each identity signs in a
    child process of its own (network/fabric/signing_process.py), the CLI runs as a command of its own, and
    in-process gateway apps keep their key in a child (``key_in_child_process``). Every signing key (an identity's
    or a CA's) the code loads goes through ``local_msp.load_private_key``: counted here over the package, and
    fails if any. (TLS client keys a test presents to a gateway or a peer are read by the TLS stack, not counted.)"""
    from ipledger.network.fabric import local_msp
    from ipledger.network.org import identities
    loaded: list[str] = []
    real = local_msp.load_private_key

    def recorded(path):
        loaded.append(str(path))
        return real(path)
    for module in (local_msp, identities):   # identities (the organisations' CAs) imports it by name
        module.load_private_key = recorded
    try:
        yield
    finally:
        for module in (local_msp, identities):
            module.load_private_key = real
    assert not loaded, f"the test process loaded private keys itself: {sorted(set(loaded))[:5]}"


def processes_using(state_dir: Path) -> list[int]:
    """PIDs of any process started with a config under ``state_dir``."""
    marker = f"FABRIC_CFG_PATH={state_dir}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker in (proc / "environ").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return [p for p in pids if p != os.getpid()]


@pytest.fixture(scope="session")
def fabric_network(tmp_path_factory) -> Nodes:
    state = tmp_path_factory.mktemp("fabric") / "state"
    raw = yaml.safe_load(consortium_mod.DEFAULT_FILE.read_text())
    for org in raw["organisations"]:
        if org["msp_id"] == HISTORY_ORG:
            org["peers"] = [{"name": name, "history_database": True} for name in org["peers"]]
    consortium_file = state.parent / "consortium.yaml"
    consortium_file.write_text(yaml.safe_dump(raw))
    net = Nodes.open(state, consortium_file=consortium_file, base_port=free_base_port())
    try:
        net.up(log=lambda *_: None)
        yield net
    finally:
        net.down(log=lambda *_: None)
    leftover = processes_using(net.layout.root)
    assert not leftover, f"processes left running after down: {leftover}"


# ----------------------------------------------------------------------------- clients

class Clients:
    """Gateway clients of each org's identities (User1 by default, or Admin), each
    connected to its own org's peer. This process acts for several organisations and so
    holds none of their keys: each identity signs in a child process of its own
    (network/fabric/signing_process.py)."""

    def __init__(self, net: Nodes):
        self.net = net
        self._gateways = {}
        self._signers = []

    def gateway(self, msp_id: str, user: str = "User1"):
        from ipledger.gateway.client import Endpoint, Gateway
        from ipledger.network.fabric.signing_process import load_identity_apart
        if (msp_id, user) not in self._gateways:
            org = self.net.consortium.org(msp_id)
            identity, signer = load_identity_apart(self.net.layout.user_msp(org, user), org.msp_id)
            self._signers.append(signer)
            ep = Endpoint(org.peers[0].address, tls_root_cert=self.net.layout.tls_ca(org))
            self._gateways[(msp_id, user)] = Gateway.connect(ep, identity, signer)
        return self._gateways[(msp_id, user)]

    def contract(self, msp_id: str, chaincode: str, user: str = "User1"):
        return self.gateway(msp_id, user).network(self.net.consortium.channel).contract(chaincode)

    def close(self):
        for gw in self._gateways.values():
            gw.close()
        for signer in self._signers:
            signer.close()
        self._gateways, self._signers = {}, []


@pytest.fixture(scope="session")
def clients(fabric_network):
    c = Clients(fabric_network)
    yield c
    c.close()


STUBCHECK_DIR = Path(__file__).parent / "chaincodes" / "stubcheck"


@pytest.fixture(scope="session")
def stubcheck(fabric_network):
    """The stub-exercising test chaincode, deployed as 'stubcheck' and 'stubcheck2'."""
    from ipledger.network.channel.package import CHAINCODE_DIR, ChaincodeSpec
    from ipledger.network.channel.chaincode import Deployer
    deployer = Deployer(fabric_network, log=lambda *_: None)
    specs = []
    for name in ("stubcheck", "stubcheck2"):
        spec = ChaincodeSpec(
            name=name, version="1.0", contract="stubcheck:StubCheck",
            sources=[CHAINCODE_DIR, STUBCHECK_DIR],
            signature_policy="OR('CustomsMSP.peer','OperatorMSP.peer','BrokerMSP.peer')",
            collections_config=STUBCHECK_DIR / "collections.json")
        specs.append(spec)
    # Each name gets its own package: Fabric runs one process per package, and a
    # chaincode-to-chaincode call inside one process would reuse the caller's tx id.
    for spec in specs:
        deployer.deploy(spec)
    return deployer


@pytest.fixture(scope="session")
def ipledger_chaincode(fabric_network):
    """The inward-processing contract deployed as 'ipledger' with its shipped endorsement
    policy and private data collections (as `ipledger chaincode deploy` does)."""
    from ipledger.network.channel.package import ChaincodeSpec
    from ipledger.network.channel.chaincode import Deployer
    deployer = Deployer(fabric_network, log=lambda *_: None)
    spec = ChaincodeSpec.default()
    deployer.deploy(spec)
    return spec


STUBCHECK_POLICY = "OR('CustomsMSP.peer','OperatorMSP.peer','BrokerMSP.peer')"


@contextlib.contextmanager
def stubcheck_network(root: Path):
    """A network of its own in ``root / "state"`` (free ports), the test chaincode ``stubcheck`` deployed with
    its collection; taken down at the end (the consortium file read again: it may have gained or lost an
    organisation on the way), checking that no process is left. Yields the state directory."""
    from ipledger.network.channel.chaincode import Deployer
    from ipledger.network.channel.package import CHAINCODE_DIR, ChaincodeSpec

    def quiet(*_):
        pass

    state = root / "state"
    net = Nodes.open(state, base_port=free_base_port())
    try:
        net.up(log=quiet)
        Deployer(net, log=quiet).deploy(ChaincodeSpec(
            name="stubcheck", version="1.0", contract="stubcheck:StubCheck",
            sources=[CHAINCODE_DIR, STUBCHECK_DIR], signature_policy=STUBCHECK_POLICY,
            collections_config=STUBCHECK_DIR / "collections.json"))
        yield state
    finally:
        Nodes.open(state).down(log=quiet)
    assert not processes_using(state.resolve()), "processes left running after down"


def ipledger_command(state_dir: Path):
    """``ipledger --state-dir STATE ARGS…`` as a command of its own (each organisation's admin signs in its own
    process, never in the test's, which acts for all of them): ``run(*args)`` gives (exit code, stdout, stderr)."""
    def run(*args):
        done = subprocess.run([sys.executable, "-m", "ipledger.network.cli", "--state-dir", str(state_dir),
                               *[str(a) for a in args]], capture_output=True, text=True, timeout=900)
        return done.returncode, done.stdout, done.stderr
    return run

