"""The operator's REST gateway over HTTPS with client certificates, against the real Fabric network.

``gateway start --org OperatorMSP`` (in-process ``daemon.start``: it runs ``gateway serve`` detached and probes
/healthz over HTTPS) with a throwaway server certificate and ``--client-ca consortium``: the TLS CA of the
gateway's organisation, bound to it. Clients present the User1 TLS client certificate their own organisation's
TLS CA issued (``users/User1@<domain>/tls/client.crt``): the operator's are accepted, the broker's are not
(the broker has its own gateway), and the operator's gateway knows none of the broker's API keys.
"""
from __future__ import annotations

import http.client
import json
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ipledger.network.cli import gateway_daemon as daemon
from ipledger.gateway.auth import KeyStore
from ipledger.gateway.config import keys_file_of
from ipledger.gateway.tls import TLSOptions
from tests.integration.test_gateway_api import REPO, free_port, register_parties
from tests.unit.gateway.test_mtls import Pki

pytestmark = pytest.mark.fabric



class Client:
    """HTTPS calls to the gateway, trusting the test server CA, with an optional client certificate."""

    def __init__(self, port: int, server_ca: Path):
        self.port, self.server_ca = port, server_ca

    def get(self, path: str, *, cert: tuple[Path, Path] | None = None, key: str | None = None):
        ctx = ssl.create_default_context(cafile=str(self.server_ca))
        if cert:
            ctx.load_cert_chain(*map(str, cert))
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=30)
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {key}"} if key else {})
            r = conn.getresponse()
            data = r.read()
            return r.status, r.getheader("Content-Type") or "", json.loads(data) if data else None
        finally:
            conn.close()


@pytest.fixture(scope="module")
def network_state(fabric_network, ipledger_chaincode, clients):
    _register_parties(fabric_network, clients, ipledger_chaincode.name)
    return fabric_network.layout.root


def _register_parties(net, clients, chaincode: str) -> None:
    """Customs register the operator and the broker, as the modules before this one on the shared network do
    (re-registering replaces): the operator's queries here are refused until it is — whatever ran first."""
    for body, org in register_parties("mtls-parties"):
        event = {k: v for k, v in body.items() if k != "type"}
        block = clients.contract(org, chaincode).submit(body["type"], [json.dumps(event)]).block_number
        deadline = time.monotonic() + 30
        while any((net.peer_height(p) or 0) <= block for p in net.consortium.peers):
            assert time.monotonic() < deadline, f"the peers did not commit block {block}"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def user1_tls(fabric_network):
    """MSP id -> (client.crt, client.key) of the org's User1 (its TLS CA's client certificate)."""
    out = {}
    for org in fabric_network.consortium.orgs:
        tls = fabric_network.layout.user_tls(org, "User1")
        out[org.msp_id] = (tls / "client.crt", tls / "client.key")
    return out


@pytest.fixture(scope="module")
def mtls(network_state, tmp_path_factory):
    pki = Pki(tmp_path_factory.mktemp("pki"))
    keys = {org: KeyStore(keys_file_of(network_state, org)).create(org, "viewer", "mtls test")[1]
            for org in ("OperatorMSP", "BrokerMSP")}   # each in its own organisation's gateway
    port = free_port()
    options = TLSOptions(str(pki.server_cert), str(pki.server_key), ("consortium",))
    previous = os.environ.get("IPLEDGER_LIVE_FEED")
    os.environ["IPLEDGER_LIVE_FEED"] = "0"  # no chaincode-event listener: other modules' gateways own the feed
    try:
        url = daemon.start(network_state, bind=f"127.0.0.1:{port}", workers=1, tls=options, log=lambda *_: None,
                           org="OperatorMSP")
    finally:
        if previous is None:
            os.environ.pop("IPLEDGER_LIVE_FEED", None)
        else:
            os.environ["IPLEDGER_LIVE_FEED"] = previous
    try:
        assert url == f"https://127.0.0.1:{port}"
        yield Client(port, pki.server_ca), keys, pki
    finally:
        pid = (daemon.running(network_state, "OperatorMSP") or (None,))[0]
        assert daemon.stop(network_state, log=lambda *_: None, org="OperatorMSP")  # SIGTERM, then SIGKILL
        if pid is not None:
            leftover = subprocess.run(["pgrep", "-g", str(pid)], capture_output=True, text=True).stdout.split()
            assert not leftover, f"gateway processes left: {leftover}"


def test_readyz_and_a_query_with_the_operator_certificate_and_key(mtls, user1_tls):
    client, keys, _ = mtls
    status, _, body = client.get("/readyz", cert=user1_tls["OperatorMSP"])
    assert status == 200, body
    status, _, body = client.get("/api/v1/parameters", cert=user1_tls["OperatorMSP"], key=keys["OperatorMSP"])
    assert status == 200, body


def test_the_operator_certificate_with_a_broker_key_is_401(mtls, user1_tls):
    """The broker's keys live in the broker's own gateway: the operator's gateway does not know them."""
    client, keys, _ = mtls
    status, ctype, problem = client.get("/api/v1/parameters", cert=user1_tls["OperatorMSP"], key=keys["BrokerMSP"])
    assert status == 401 and ctype.startswith("application/problem+json"), problem


def test_the_broker_certificate_is_refused_by_the_operators_gateway(mtls, user1_tls):
    client, keys, _ = mtls
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)):
        client.get("/api/v1/parameters", cert=user1_tls["BrokerMSP"], key=keys["BrokerMSP"])


def test_without_a_client_certificate_the_handshake_is_refused(mtls):
    client, keys, _ = mtls
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)):
        client.get("/api/v1/parameters", key=keys["OperatorMSP"])


def test_a_certificate_of_a_ca_outside_the_consortium_is_refused(mtls):
    client, keys, pki = mtls
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)):
        client.get("/api/v1/parameters", cert=pki.client["rogue"], key=keys["OperatorMSP"])


def test_reload_replaces_the_workers_and_keeps_the_master_and_its_tls(mtls, network_state, fabric_network,
                                                                     user1_tls):
    """``ipledger gateway reload``: SIGHUP to the running gateway; it reads its configuration again and replaces
    its workers gracefully — the same master, new workers, the same mutual TLS afterwards."""
    client, keys, _ = mtls
    pid, _url = daemon.running(network_state, "OperatorMSP")
    before = set(daemon.worker_pids(pid))
    assert before, "the gateway has no workers"
    out = subprocess.run([sys.executable, "-m", "ipledger.network.cli", "--state-dir", str(network_state), "gateway",
                          "reload", "--org", "OperatorMSP"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "OperatorMSP's gateway reloaded" in out.stdout
    assert daemon.running(network_state, "OperatorMSP")[0] == pid
    after = set(daemon.worker_pids(pid))
    assert after and not before & after, f"workers not replaced: {before} → {after}"
    assert daemon.serving(network_state, "OperatorMSP") == [fabric_network.consortium.channel]
    status, _, body = client.get("/readyz", cert=user1_tls["OperatorMSP"])   # the new workers reach the peer
    assert status == 200, body
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)):
        client.get("/api/v1/parameters", key=keys["OperatorMSP"])


def test_an_unknown_org_in_client_ca_stops_serve_with_exit_2(network_state, fabric_network, mtls):
    _, _, pki = mtls
    ca = fabric_network.layout.tls_ca(fabric_network.consortium.org("OperatorMSP"))
    out = subprocess.run([sys.executable, "-m", "ipledger.network.cli", "--state-dir", str(network_state), "gateway", "serve",
                          "--org", "OperatorMSP", "--bind", "127.0.0.1:1", "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key),
                          "--client-ca", f"NopeMSP={ca}"], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "IPLEDGER_LIVE_FEED": "0"})
    assert out.returncode == 2, out.stderr
    assert "unknown organisation 'NopeMSP'" in out.stderr and "OperatorMSP" in out.stderr
