"""Real Fabric network fixtures, one network per test run.

``fabric_network`` brings the default consortium up in a temporary state
directory on free loopback ports and takes it down (leaving no process) at the
end of the session. Later suites (chaincode, gateway) build on it. One change
to the default: the broker's peer keeps a history database (off by default), so
the shim's GetHistoryForKey is exercised on a real peer, and its refusal on the
others.
"""
from __future__ import annotations

import os
import random
import socket
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
    connected to its own org's peer."""

    def __init__(self, net: Nodes):
        self.net = net
        self._gateways = {}

    def gateway(self, msp_id: str, user: str = "User1"):
        from ipledger.gateway.client import Endpoint, Gateway, load_identity
        if (msp_id, user) not in self._gateways:
            org = self.net.consortium.org(msp_id)
            identity, signer = load_identity(self.net.layout.user_msp(org, user), org.msp_id)
            ep = Endpoint(org.peers[0].address, tls_root_cert=self.net.layout.tls_ca(org))
            self._gateways[(msp_id, user)] = Gateway.connect(ep, identity, signer)
        return self._gateways[(msp_id, user)]

    def contract(self, msp_id: str, chaincode: str, user: str = "User1"):
        return self.gateway(msp_id, user).network(self.net.consortium.channel).contract(chaincode)

    def close(self):
        for gw in self._gateways.values():
            gw.close()


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
