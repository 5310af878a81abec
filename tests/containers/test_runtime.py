"""``--runtime docker`` on a real engine (issue 17): the consortium's nodes, chaincode services and
gateways as containers, from one state directory as on separate hosts.

One network for the module: ``Nodes.open(..., runtime="docker")``, ``up``, the contract deployed
(each organisation its own chaincode service), each application organisation's REST gateway started
as a container. Then:

* every container holds only its own organisation's keys, read-only, and no CA key at all;
* domain.md §8, every step, through the three containerised gateways;
* the operator's peer container is killed under load and ``network up`` replaces it: same ledger
  volume, no acknowledged event lost or doubled, caught up with the others;
* ``network down`` then ``up``: the ledgers kept on their volumes, the chaincode services back;
* an upgrade of the contract: the new version's services on the other slot, the old ones retired once
  it is committed;
* ``network status|logs`` read the containers; another runtime is refused for the state directory;
* the broker's part run from its compose file with Debian's docker-compose (same names and volume:
  its peer resumes its ledger), recognised by ``network up``.

Torn down at the end with ``network down --purge``: no container or volume of the state directory left.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from ipledger.network.cli import gateway_daemon as daemon
from ipledger.network.channel.package import ChaincodeSpec
from ipledger.network.channel.chaincode import Deployer, service_packages
from ipledger.network.org.containers import services
from ipledger.network.org.containers.services import LABEL
from ipledger.network.org.nodes import Nodes

from tests.integration.conftest import free_base_port
from tests.integration.support_faults import (QUIET, Attempt, Ledger, Load, check_outcome, create_keys, free_port,
                                              is_clear_retryable, moves_of, post_once)
from tests.integration.test_gateway_api import ORGS, Api, move
from tests.integration.test_multihost import section8_through_gateways

pytestmark = pytest.mark.fabric

CA_KEYS = ("ca/priv_sk", "tlsca/priv_sk", "admintlsca/priv_sk")
L2_QTY = 4200   # §8 places L2 (4,200 p/st at BOURGES-1) and leaves it untouched


@dataclass
class Env:
    net: Nodes
    state: Path
    urls: dict
    keys: dict
    ledger: Ledger

    def containers(self) -> list:
        return self.net.runtime.containers()

    def cli(self, *args: str, runtime: str | None = None) -> subprocess.CompletedProcess:
        extra = ["--runtime", runtime] if runtime else []
        return subprocess.run([sys.executable, "-m", "ipledger.network.cli", "--state-dir", str(self.state), *extra, *args],
                              capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    state = tmp_path_factory.mktemp("docker") / "state"
    net = Nodes.open(state, base_port=free_base_port(), runtime="docker")
    ledger = None
    try:
        net.up(log=QUIET, timeout=180)
        Deployer(net, log=QUIET).deploy(ChaincodeSpec.default())
        keys = create_keys(state)
        urls = {org: daemon.start(state, bind=f"127.0.0.1:{free_port()}", org=org, log=QUIET, timeout=120)
                for org in ORGS}
        ledger = Ledger(net)
        yield Env(net, state, urls, keys, ledger)
    finally:
        if ledger:
            ledger.close()
        rt = net.runtime
        scope = f"{LABEL}.scope={services.scope(net.layout)}"   # before its record goes with the state
        net.down(purge=True, log=QUIET)
        left = [c.name for c in rt.client.containers.list(all=True, filters={"label": scope})]
        volumes = [v.name for v in rt.client.volumes.list(filters={"label": scope})]
        assert not left and not volumes, f"left after 'network down --purge': {left} {volumes}"


def mounts(ctr) -> list[dict]:
    return ctr.attrs["Mounts"]


def test_every_container_holds_only_its_own_organisations_keys_read_only(env):
    net = env.net
    ctrs = env.containers()
    roles = sorted(c.labels[f"{LABEL}.role"] for c in ctrs)
    # an orderer, three peers, three chaincode services, three gateways
    assert services.scope_file(net.layout).read_text().strip() == services.scope(net.layout)   # chosen at 'up'
    assert roles == ["chaincode"] * 3 + ["gateway"] * 3 + ["orderer"] + ["peer"] * 3, roles
    for ctr in ctrs:
        org = net.consortium.org(ctr.labels[f"{LABEL}.org"])
        own = net.layout.org_home(org)
        for m in mounts(ctr):
            if m["Type"] == "volume":
                assert ctr.labels[f"{LABEL}.role"] in ("peer", "orderer"), (ctr.name, m)
                assert m["Name"] == services.volume_name(net.layout, net.consortium.node(ctr.labels[f"{LABEL}.node"]))
                continue
            src = Path(m["Source"])
            assert m["Destination"] == m["Source"], m
            assert src.is_relative_to(own) or src.is_relative_to(net.layout.public), (ctr.name, src)
            if m["RW"]:  # the only writable host directory: the gateway's own (API keys, feed)
                assert src == net.layout.gateway_dir(org), (ctr.name, src)
            files = [src] if src.is_file() else [p for p in src.rglob("*") if p.is_file()]
            assert not [p for p in files if any(str(p).endswith(k) for k in CA_KEYS)], (ctr.name, src)
            if src.is_relative_to(net.layout.org_dir(org)):
                assert not m["RW"], (ctr.name, src)
    # the peer cannot write into its own keys: mounted read-only
    peer = net.consortium.node("peer0.operator")
    ctr = net.runtime.client.containers.get(services.container_name(net.layout, peer.id))
    target = net.layout.node_msp(peer) / "keystore" / "planted"
    code, out = ctr.exec_run(["sh", "-c", f"echo x > {target}"])
    assert code != 0 and b"Read-only file system" in out, (code, out)
    # no container holds a Linux capability or can gain one (root in it, as the engine's user here, reads
    # only root's files and cannot change owners, trace processes or bind low ports)
    for ctr in ctrs:
        host = ctr.attrs["HostConfig"]
        assert host["CapDrop"] == ["ALL"] and not host["CapAdd"], (ctr.name, host["CapDrop"], host["CapAdd"])
        assert host["SecurityOpt"] == ["no-new-privileges:true"], (ctr.name, host["SecurityOpt"])
        code, out = ctr.exec_run(["sh", "-c", "grep -E '^(CapEff|CapPrm|NoNewPrivs)' /proc/1/status"])
        assert code == 0 and out.decode().split() == ["CapPrm:", "0" * 16, "CapEff:", "0" * 16, "NoNewPrivs:", "1"], \
            (ctr.name, out)
    # no container of another organisation sees the operator's directory
    operator_home = str(net.layout.org_home(peer.org))
    strangers = [c.name for c in ctrs if c.labels[f"{LABEL}.org"] != "OperatorMSP"
                 and any(m.get("Source", "").startswith(operator_home) for m in mounts(c))]
    assert not strangers


def test_section8_through_the_containerised_gateways(env):
    api = Api(env.urls, env.keys, {}, {}, env.net)
    section8_through_gateways(api)


def test_gateway_reload_replaces_the_containers_workers_not_the_container(env):
    """``ipledger gateway reload`` on a containerised gateway: SIGHUP to its gunicorn master; the same container
    (and master) serves on, with new workers, and answers as before."""
    org = env.net.consortium.org("OperatorMSP")
    rt = env.net.runtime
    container, workers = rt.gateway_running(org), set(rt.gateway_workers(org))
    assert container and workers
    out = env.cli("gateway", "reload", "--org", "OperatorMSP")
    assert out.returncode == 0, out.stderr
    assert f"OperatorMSP's gateway reloaded (container {container})" in out.stdout
    assert rt.gateway_running(org) == container
    now = set(rt.gateway_workers(org))
    assert now and not workers & now, f"workers not replaced: {workers} → {now}"
    r = requests.get(f"{env.urls['OperatorMSP']}/readyz", timeout=30)
    assert r.status_code == 200, r.text


def test_a_killed_peer_container_is_replaced_and_no_acknowledged_event_is_lost(env):
    net = env.net
    peer = net.consortium.node("peer0.operator")
    name = services.container_name(net.layout, peer.id)
    before = net.runtime.running(peer)
    assert before
    load = Load(env.urls, env.keys, [moves_of("L2", "ctr"), moves_of("L2", "ctr", start=100_000)]).start()
    try:
        time.sleep(3)
        net.runtime.client.containers.get(name).kill()   # SIGKILL, as a crash would
        deadline = time.monotonic() + 20
        while net.runtime.running(peer) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert net.runtime.running(peer) is None
        time.sleep(3)
        net.up(log=QUIET, timeout=120)
        time.sleep(3)
    finally:
        load.stop()
    after = net.runtime.running(peer)
    assert after and after != before, (before, after)
    ctr = net.runtime.client.containers.get(name)
    assert [m["Name"] for m in mounts(ctr) if m["Type"] == "volume"] == [services.volume_name(net.layout, peer)]
    check_outcome(env.ledger, load, "ctr", ["L2"], [], L2_QTY)
    assert load.acknowledged, load.summary()
    heights = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        heights = {p.id: net.peer_height(p) for p in net.consortium.peers}
        if len(set(heights.values())) == 1:
            break
        time.sleep(0.5)
    assert len(set(heights.values())) == 1, f"the replaced peer did not catch up: {heights}"


def post_until_committed(env, body: dict, org: str, timeout: float = 90) -> Attempt:
    """One event, sent again (same body) while the answer is a clear retryable one (a gateway whose peer
    has just come back may need a moment to reconnect)."""
    http = requests.Session()
    deadline = time.monotonic() + timeout
    while True:
        a = post_once(http, env.urls[org], env.keys[(org, "clerk")], body)
        if a.status in (200, 201) or not is_clear_retryable(a) or time.monotonic() > deadline:
            return a
        time.sleep(1)


def test_down_and_up_again_keep_the_ledgers_and_bring_the_chaincode_services_back(env):
    net, rt = env.net, env.net.runtime
    before = {p.id: net.peer_height(p) for p in net.consortium.peers}
    net.down(log=QUIET)
    left = [c.labels[f"{LABEL}.role"] for c in env.containers()]
    assert sorted(left) == ["gateway"] * 3, left                # 'network down' leaves the gateways to 'gateway stop'
    scope = f"{LABEL}.scope={services.scope(net.layout)}"
    assert len(rt.client.volumes.list(filters={"label": scope})) == len(net.consortium.nodes)
    up = env.cli("network", "up")   # the command: the nodes, then the chaincode services
    assert up.returncode == 0, up.stderr
    after = {p.id: net.peer_height(p) for p in net.consortium.peers}
    assert all(after[k] >= before[k] for k in before), (before, after)
    assert all(rt.chaincode_services(o) for o in net.consortium.orgs)
    a = post_until_committed(env, move("ctr-after-up", 1, lot_id="L2"), "OperatorMSP")
    assert a.status == 201, a


def test_an_upgrade_runs_the_new_service_beside_the_old_one_until_it_is_committed(env):
    net, rt = env.net, env.net.runtime
    operator = net.consortium.org("OperatorMSP")
    [(old_label, old_address)] = rt.chaincode_services(operator).items()
    spec = dataclasses.replace(ChaincodeSpec.default(), version="1.1")
    Deployer(net, log=QUIET).deploy(spec, upgrade=True)
    # committed: the new services only, on the other slot; the old packages are gone
    [(label, address)] = rt.chaincode_services(operator).items()
    assert (old_label, label) == ("ipledger_1.0", "ipledger_1.1") and address != old_address
    assert address in services.chaincode_service_addresses(operator)
    assert [p.name for p in service_packages(net, operator)] == ["ipledger_1.1.ccaas.tar.gz"]
    a = post_until_committed(env, move("ctr-after-upgrade", 1, lot_id="L2"), "OperatorMSP")
    assert a.status == 201, a
    st = env.cli("network", "status", "--json")
    peer = [n for n in json.loads(st.stdout)["nodes"] if n["node"] == "peer0.operator"][0]
    assert peer["chaincode_address"] == address


def test_status_and_logs_read_the_containers_and_another_runtime_is_refused(env):
    st = env.cli("network", "status", "--json")
    assert st.returncode == 0, st.stderr
    nodes = json.loads(st.stdout)["nodes"]
    assert {n["runtime"] for n in nodes} == {"docker"}
    assert all(n["container"] and n["pid"] is None and n["healthy"] for n in nodes), nodes
    logs = env.cli("network", "logs", "peer0.customs", "-n", "5")
    assert logs.returncode == 0 and len(logs.stdout.splitlines()) == 5, logs
    refused = env.cli("network", "status", runtime="native")
    assert refused.returncode == 2 and "runs its nodes as docker" in refused.stderr, refused.stderr


def test_the_brokers_part_runs_from_its_compose_file(env, tmp_path):
    assert shutil.which("docker-compose"), "Debian's docker-compose is needed (scripts/_env.sh installs it)"
    net, rt = env.net, env.net.runtime
    broker = net.consortium.org("BrokerMSP")
    peer = broker.peers[0]
    bind = env.urls["BrokerMSP"].removeprefix("http://")
    # the broker's host stops what --runtime docker started there; its ledger stays on its volume
    assert daemon.stop(env.state, org="BrokerMSP", log=QUIET)
    rt.stop(peer)
    for label in rt.chaincode_services(broker):
        rt.remove(services.chaincode_service_name(net.layout, broker, label))
    gen = env.cli("network", "compose", "--org", "BrokerMSP", "--gateway-bind", bind, "--out",
                  str(tmp_path / "broker.yaml"))
    assert gen.returncode == 0, gen.stderr
    project = ["docker-compose", "-p", f"ipledger-{services.scope(net.layout)}-broker", "-f",
               str(tmp_path / "broker.yaml")]
    up = subprocess.run([*project, "up", "-d"], capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stderr
    try:
        # 'network up' finds the broker's peer running (compose started it) and starts nothing
        lines = []
        net.up(log=lines.append, timeout=120)
        assert not [line for line in lines if "started" in line], lines
        assert rt.running(peer)
        # the peer resumed its ledger from the volume and the chaincode service and gateway answer
        deadline = time.monotonic() + 60
        customs = net.consortium.node("peer0.customs")
        while net.peer_height(peer) != net.peer_height(customs) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert net.peer_height(peer) == net.peer_height(customs)
        daemon_url = env.urls["BrokerMSP"]
        deadline = time.monotonic() + 90
        while not daemon.healthy(daemon_url) and time.monotonic() < deadline:
            time.sleep(0.5)
        r = requests.get(f"{daemon_url}/api/v1/lots/L1",
                         headers={"Authorization": f"Bearer {env.keys[('BrokerMSP', 'viewer')]}"}, timeout=60)
        assert r.status_code == 200 and r.json()["balance"] == 500, r.text
    finally:
        down = subprocess.run([*project, "down"], capture_output=True, text=True, timeout=300)
        assert down.returncode == 0, down.stderr
    assert rt.running(peer) is None
