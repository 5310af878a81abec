"""Security checks (issue 8), on an own network after a run of the REST gateway with commercial data:

* TLS on every link beyond what test_network_security covers: the peers' chaincode listeners and the orderers'
  admin endpoints require a client certificate; /metrics needs one; a chaincode service
  (``python -m ipledger.chaincode.shim.server``, CCaaS) configured with TLS refuses plaintext and certificate-less clients;
* modes: the state directory 0700, every private key 0600, the gateway's API key store and nonce key 0600;
* the logs of every process of the run (peers, orderer, chaincode output in the peers' logs, gunicorn) hold no
  private key, no API key, no customs value.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
import requests

from .support_faults import (REPO, OrgGateways, create_keys, mrn_of, url_of, placements, post_once,
                             set_up_authorisation, start_network, stop_network)
from .test_gateway_api import free_port
from .test_network_security import grpc_plaintext_connects

pytestmark = pytest.mark.fabric

SECRET_VALUE = "98765.43"       # the customs value posted (private data)
SECRET_INVOICE = "87654.31"     # the invoice price posted (private data)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Own network, the gateway, a flow of events with commercial data; yields after the gateway has stopped."""
    tmp = tmp_path_factory.mktemp("security")
    net = start_network(tmp / "state")
    gws = None
    try:
        keys = create_keys(net.layout.root)
        gws = OrgGateways(net.layout.root, tmp)
        gws.start()
        urls = gws.urls
        set_up_authorisation(urls, keys, {"S1": 1000})
        http = requests.Session()
        posted = []
        for i, org in enumerate(("OperatorMSP", "BrokerMSP", "OperatorMSP")):
            body, _ = placements("sec", org=org, value=SECRET_VALUE, mrn_base=7000)(i)
            body["commercial"]["invoice_price"] = {"amount": SECRET_INVOICE, "currency": "EUR"}
            a = post_once(http, url_of(urls, org), keys[(org, "clerk")], body)
            assert a.status == 201, a
            posted.append(body["event_id"])
        # a replay and a refused event too (their paths log differently)
        assert post_once(http, urls["OperatorMSP"], keys[("OperatorMSP", "clerk")], body).status == 200
        bad = dict(body, event_id="sec-bad", quantity=10**9, lot_id="sec-bad", mrn=mrn_of(7_999_999))
        assert post_once(http, urls["OperatorMSP"], keys[("OperatorMSP", "clerk")], bad).status == 409
        # customs reads the lot (the private value is readable by customs: the data did reach the ledger)
        r = http.get(urls["CustomsMSP"] + f"/api/v1/lots/{posted[0].replace('-place', '')}",
                     headers={"Authorization": f"Bearer {keys[('CustomsMSP', 'viewer')]}"}, timeout=30)
        assert r.status_code == 200, r.text
        assert set(gws.stop().values()) == {0}
        yield net, gws, keys, posted
    finally:
        if gws:
            gws.stop()
        stop_network(net)


# ------------------------------------------------------------------------------------------------ TLS

def tls_probe(host: str, port: int, cafile: Path | None = None, cert: tuple[Path, Path] | None = None,
              server_name: str | None = None) -> str:
    """'open' when a TLS client (with ``cert`` if given) gets an HTTP/2 server preface; otherwise why not
    ('refused …' when the handshake fails, 'closed …' when the server hangs up right after it, as a TLS 1.3
    server does on a client that sent no certificate)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    if cert:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    try:
        with socket.create_connection((host, port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=server_name or host) as s:
                s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
                s.settimeout(5)
                data = s.recv(9)
                return "open" if len(data) == 9 and data[3] == 0x04 else f"closed ({data!r})"
    except (ssl.SSLError, ConnectionError, socket.timeout, OSError) as e:
        return f"refused ({type(e).__name__}: {e})"


def test_chaincode_listeners_require_a_client_certificate(run):
    net, *_ = run
    for p in net.consortium.peers:
        # positive control: the peer's main listener (client auth optional) answers the same probe
        assert tls_probe(p.host, p.port) == "open", p.id
        got = tls_probe(p.host, p.chaincode_port)
        assert got != "open", f"{p.id} chaincode port {p.chaincode_port} accepted a TLS client " \
                                          f"without certificate: {got}"
        assert not grpc_plaintext_connects(f"{p.host}:{p.chaincode_port}")


def channel_participation(net, orderer, cert: tuple[Path, Path] | None) -> str:
    """GET the orderer's channel participation API (what osnadmin calls) with ``cert``: 'HTTP 200', or why not."""
    ctx = ssl.create_default_context(cafile=str(net.layout.tls_ca(orderer.org)))
    if cert:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    url = f"https://{orderer.host}:{orderer.admin_port}/participation/v1/channels"
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=10) as r:
            return f"HTTP {r.status}"
    except urllib.error.HTTPError as e:
        return f"HTTP {e.code}"
    except (urllib.error.URLError, OSError, ssl.SSLError) as e:
        return f"refused ({type(e).__name__}: {e})"


def admin_endpoint_checks(net) -> None:
    """Each orderer's admin endpoint answers its own organisation's admins' osnadmin certificate only: not a
    client without certificate, not the same admins' ordinary TLS certificate, not a user's or a peer's of that
    organisation, not another organisation's admin (all of them issued by TLS CAs the channel trusts)."""
    for o in net.consortium.orderers:
        admin = net.layout.user_tls(o.org)
        assert channel_participation(net, o, (admin / "osnadmin.crt", admin / "osnadmin.key")) == "HTTP 200", o.id
        refused = {"no certificate": None,
                   "the admin's TLS client certificate": (admin / "client.crt", admin / "client.key")}
        if o.org.peers:
            user = net.layout.user_tls(o.org, "User1")
            refused["a user's TLS certificate"] = (user / "client.crt", user / "client.key")
            peer = net.layout.node_tls(o.org.peers[0])
            refused["its peer's TLS certificate"] = (peer / "server.crt", peer / "server.key")
        for other in net.consortium.all_orgs:
            if other is not o.org:
                tls = net.layout.user_tls(other)
                refused[f"{other.msp_id}'s admin"] = (tls / "osnadmin.crt", tls / "osnadmin.key")
        for who, cert in refused.items():
            got = channel_participation(net, o, cert)
            assert got.startswith("refused"), f"{o.id} admin endpoint with {who}: {got}"


def test_orderer_admin_requires_its_organisations_admin_certificate(run):
    net, *_ = run
    for o in net.consortium.orderers:
        without = tls_probe(o.host, o.admin_port)
        assert without.startswith(("refused", "closed")), (o.id, without)
    admin_endpoint_checks(net)


def test_metrics_need_a_client_certificate(run):
    net, *_ = run
    for n in net.consortium.nodes:
        ctx = ssl.create_default_context(cafile=str(net.layout.node_tls(n) / "ca.crt"))
        try:
            with urllib.request.urlopen(f"https://{n.host}:{n.operations_port}/metrics", context=ctx,
                                        timeout=5) as r:
                status = r.status
        except urllib.error.HTTPError as e:
            status = e.code
        except (urllib.error.URLError, OSError):
            status = None
        assert status != 200, f"{n.id}: /metrics answered without a client certificate"
        assert "# TYPE" in net.metrics(n)  # with the org admin's TLS certificate


def _pki(tmp: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all made here."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    import ipaddress

    now = dt.datetime.now(dt.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key, path):
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        path.chmod(0o600)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("test ca")).issuer_name(name("test ca"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    out = {"ca": tmp / "ca.crt"}
    out["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for who, usage in (("server", ExtendedKeyUsageOID.SERVER_AUTH), ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name(who)).issuer_name(ca.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                               critical=False)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        out[f"{who}_crt"] = tmp / f"{who}.crt"
        out[f"{who}_crt"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        out[f"{who}_key"] = tmp / f"{who}.key"
        write_key(key, out[f"{who}_key"])
    return out


def test_chaincode_service_with_tls_refuses_plaintext_and_clients_without_certificate(tmp_path):
    """CCaaS as documented for Kubernetes: mutual TLS with CHAINCODE_CLIENT_CA_CERT_FILE."""
    pki = _pki(tmp_path)
    port = free_port()
    log = tmp_path / "ccaas.log"
    env = {**os.environ, "CHAINCODE_SERVER_ADDRESS": f"127.0.0.1:{port}", "CHAINCODE_ID": "ipledger_1.0:test",
           "CHAINCODE_CONTRACT": "ipledger.chaincode.contract:InwardProcessingContract",
           "CHAINCODE_TLS_CERT_FILE": str(pki["server_crt"]), "CHAINCODE_TLS_KEY_FILE": str(pki["server_key"]),
           "CHAINCODE_CLIENT_CA_CERT_FILE": str(pki["ca"])}
    with open(log, "w") as logf:
        proc = subprocess.Popen([sys.executable, "-m", "ipledger.chaincode.shim.server"], cwd=REPO, env=env, stdout=logf,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while "listening on" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        assert "(port %d, mutual TLS)" % port in log.read_text(), log.read_text()
        assert not grpc_plaintext_connects(f"127.0.0.1:{port}")
        without = tls_probe("127.0.0.1", port)
        assert without != "open", without
        # positive control: the client certificate the peer would present (issued by the client CA) gets in
        assert tls_probe("127.0.0.1", port, cert=(pki["client_crt"], pki["client_key"])) == "open"
        creds = grpc.ssl_channel_credentials(root_certificates=pki["ca"].read_bytes(),
                                             private_key=pki["client_key"].read_bytes(),
                                             certificate_chain=pki["client_crt"].read_bytes())
        ch = grpc.secure_channel(f"127.0.0.1:{port}", creds)
        try:
            grpc.channel_ready_future(ch).result(timeout=5)
        finally:
            ch.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "PRIVATE KEY" not in text and pki["server_key"].read_text().splitlines()[1] not in text


# ------------------------------------------------------------------------------------------------ files

def test_state_files_are_private(run):
    net, *_ = run
    root = net.layout.root
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    keys = [p for p in root.rglob("*") if p.is_file() and (p.parent.name == "keystore" or p.suffix == ".key"
                                                     or p.name == "priv_sk")]
    assert len(keys) > 10
    loose = {str(k.relative_to(root)): oct(stat.S_IMODE(k.stat().st_mode)) for k in keys
             if stat.S_IMODE(k.stat().st_mode) != 0o600}
    assert not loose, f"private keys not 0600: {loose}"
    for org in net.consortium.orgs:
        gwdir = net.layout.gateway_dir(org)
        assert stat.S_IMODE(gwdir.stat().st_mode) == 0o700
        assert (gwdir / "api-keys.json").exists()
        # every gateway that served made its nonce key when it started (gateway serve checks it before forking)
        assert (gwdir / "nonce.key").exists(), org.msp_id
        for f in (gwdir / "api-keys.json", gwdir / "nonce.key"):
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, (f, oct(stat.S_IMODE(f.stat().st_mode)))
    assert not (root / "gateway").exists(), "no gateway serves every organisation"
    # nothing under the state directory may be writable by others
    writable = [str(p.relative_to(root)) for p in root.rglob("*")
                if not p.is_symlink() and stat.S_IMODE(p.stat().st_mode) & 0o002]
    assert not writable, f"world-writable: {writable[:20]}"


# ------------------------------------------------------------------------------------------------ logs

def _log_files(net, gws) -> list[Path]:
    files = [net.layout.log_file(n) for n in net.consortium.nodes] + gws.logs
    # anything else that looks like a log or captured output under the state directory, except LevelDB's
    # write-ahead files (NNNNNN.log next to CURRENT): those are the ledger's databases, private data included
    files += [p for p in net.layout.root.rglob("*") if p.is_file() and re.search(r"\.(log|out|err)$", p.name)
              and not (p.parent / "CURRENT").exists()]
    return sorted(set(files))


def test_logs_hold_no_private_key_api_key_or_private_value(run):
    net, gws, keys, posted = run
    files = _log_files(net, gws)
    texts = {f: f.read_text(errors="replace") for f in files}
    # the logs did capture the run: the gateways logged each event id, a peer logged the chaincode's launch
    assert all(any(eid in texts[log] for log in gws.logs) for eid in posted)
    peer_logs = "".join(texts[net.layout.log_file(p)] for p in net.consortium.peers)
    assert "ipledger" in peer_logs
    # every private key body line of the state dir (keystores, TLS keys), at least 40 base64 characters
    key_lines = set()
    for k in net.layout.root.rglob("*"):
        if k.is_file() and (k.parent.name == "keystore" or k.suffix == ".key"):
            pem = k.read_bytes().decode("ascii", errors="replace")
            if pem.startswith("-----BEGIN"):
                key_lines |= {ln for ln in pem.splitlines() if len(ln) >= 40 and "-----" not in ln}
    assert key_lines
    secrets = {"API key": [k for k in keys.values()] + [k.split("_", 2)[2] for k in keys.values()],
               "customs value": [SECRET_VALUE, SECRET_INVOICE, "customs_value", "invoice_price"],
               "private key": ["PRIVATE KEY", *key_lines]}
    found = []
    for f, text in texts.items():
        for what, values in secrets.items():
            for v in values:
                if v in text:
                    i = text.index(v)
                    found.append(f"{f.relative_to(f.parents[2]) if len(f.parents) > 2 else f}: {what} "
                                 f"…{text[max(0, i - 80):i + 20]!r}")
    assert not found, "secrets in logs:\n" + "\n".join(found[:20])
