"""HTTPS and client certificates (gateway/tls.py) on a real gunicorn server, with a fake ledger.

A throwaway PKI (a server CA, one client CA per organisation, a rogue CA) is made with ``cryptography``.
The servers run in subprocesses through this module's ``__main__`` (below): the production
``GatewayServer``, ``gunicorn_options`` and ``TLSOptions.load``, only the app has a FakeLedger (whose
``GetParameters`` answers which org it was evaluated as). Option errors go through the real CLI.
"""
from __future__ import annotations

import argparse
import datetime as dt
import http.client
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ipledger.network.cli import gateway_daemon as daemon
from ipledger.gateway.auth import KeyStore
from ipledger.gateway.tls import ServerTLS, TLSError, TLSOptions
from tests.unit.dashboard.signin import form_token

REPO = Path(__file__).resolve().parents[3]
ORGS = ("CustomsMSP", "OperatorMSP", "BrokerMSP")
MISMATCH = "https://ipledger.example/problems/client-certificate-mismatch"


# ------------------------------------------------------------------------------------------ a throwaway PKI

def _write_key(key, path: Path) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return path


def _issue(subject_cn: str, issuer=None, *, ca=False, server=False, path_len=None):
    """(certificate, key); self-signed when ``issuer`` (certificate, key) is None."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ipledger test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)])
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    now = dt.datetime.now(dt.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(name)
         .issuer_name(issuer_cert.subject if issuer_cert else name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=path_len), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if issuer_cert is not None:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                            critical=False)
    if ca:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                          content_commitment=False, key_encipherment=False, data_encipherment=False,
                                          key_agreement=False, encipher_only=False, decipher_only=False),
                            critical=True)
    elif server:
        b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                         x509.DNSName("localhost")]), critical=False)
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return b.sign(issuer_key, hashes.SHA256()), key


class Pki:
    """Files in ``directory``: server.crt/.key (for 127.0.0.1), server-ca.crt, <org>-ca.crt and
    <org>-client.crt/.key per org, rogue-ca.crt, rogue-client.crt/.key, other.key."""

    def __init__(self, directory: Path):
        self.dir = directory
        server_ca = _issue("test server CA", ca=True)
        self.server_ca = self._cert("server-ca.crt", server_ca[0])
        cert, key = _issue("127.0.0.1", server_ca, server=True)
        self.server_cert, self.server_key = self._cert("server.crt", cert), _write_key(key, directory / "server.key")
        self.other_key = _write_key(ec.generate_private_key(ec.SECP256R1()), directory / "other.key")
        self.ca, self.client, self.ca_pair = {}, {}, {}
        for org in (*ORGS, "rogue"):
            pair = _issue(f"tlsca.{org}", ca=True)
            self.ca_pair[org] = pair
            self.ca[org] = self._cert(f"{org}-ca.crt", pair[0])
            cert, key = _issue(f"User1@{org}", pair)
            self.client[org] = (self._cert(f"{org}-client.crt", cert), _write_key(key, directory / f"{org}-client.key"))

    def _cert(self, name: str, cert) -> Path:
        path = self.dir / name
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def api_keys(tmp_path_factory) -> tuple[Path, dict]:
    store = KeyStore(tmp_path_factory.mktemp("state") / "gateway" / "api-keys.json")
    return store.path, {org: store.create(org, "clerk", f"{org} test")[1] for org in ORGS}


# ------------------------------------------------------------------------------------------ servers

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TLSGateway:
    """A gunicorn gateway (this module's __main__) in its own process group; always stopped."""

    def __init__(self, pki: Pki, keys_file: Path, log: Path, tls_args: list[str]):
        self.pki, self.port, self.log = pki, free_port(), log
        self.url = f"https://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "tests.unit.gateway.test_mtls", "--keys-file", str(keys_file),
               "--bind", f"127.0.0.1:{self.port}", *[a for org in ORGS for a in ("--org-ca", f"{org}={pki.ca[org]}")],
               "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key), *tls_args]
        self._log = open(log, "w")
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        # the daemon's probe: trusts the server's own certificate; a "certificate required" alert counts
        while not daemon.healthy(self.url, pki.server_cert):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the TLS gateway did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> int | None:
        self._log.close()
        return stop_process_group(self.proc)


def stop_process_group(proc: subprocess.Popen) -> int:
    """SIGTERM to a server started in its own process group, SIGKILL after 30 s; its exit code."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


@pytest.fixture(scope="module")
def required_gw(pki, api_keys, tmp_path_factory):
    """Client certificates required; OperatorMSP's and BrokerMSP's CAs given as ORG=FILE."""
    gw = TLSGateway(pki, api_keys[0], tmp_path_factory.mktemp("gw") / "required.log",
                    ["--client-ca", f"OperatorMSP={pki.ca['OperatorMSP']}",
                     "--client-ca", f"BrokerMSP={pki.ca['BrokerMSP']}"])
    yield gw
    assert gw.stop() == 0, gw.log.read_text()[-2000:]


@pytest.fixture(scope="module")
def optional_gw(pki, api_keys, tmp_path_factory):
    """Client certificates optional; every org's CA through 'consortium'."""
    gw = TLSGateway(pki, api_keys[0], tmp_path_factory.mktemp("gw") / "optional.log",
                    ["--client-ca", "consortium", "--client-cert", "optional"])
    yield gw
    assert gw.stop() == 0, gw.log.read_text()[-2000:]


def call(gw: TLSGateway, path: str, *, cert: tuple[Path, Path] | None = None, key: str | None = None,
         method: str = "GET", body: bytes | None = None, headers: dict | None = None):
    """(status, content type, JSON body or None) over HTTPS, verifying the server with the test server CA."""
    ctx = ssl.create_default_context(cafile=str(gw.pki.server_ca))
    if cert:
        ctx.load_cert_chain(*map(str, cert))
    headers = dict(headers or {})
    if key:
        headers["Authorization"] = f"Bearer {key}"
    conn = http.client.HTTPSConnection("127.0.0.1", gw.port, context=ctx, timeout=15)
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        ctype = r.getheader("Content-Type") or ""
        return r.status, ctype, json.loads(data) if "json" in ctype else None
    finally:
        conn.close()


REFUSED = (ssl.SSLError, ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)


# ------------------------------------------------------------------------------------------ required mode

def test_plain_http_to_the_tls_port_gets_no_answer(required_gw, api_keys):
    conn = http.client.HTTPConnection("127.0.0.1", required_gw.port, timeout=10)
    try:
        with pytest.raises((http.client.HTTPException, OSError)):
            conn.request("GET", "/api/v1/parameters", headers={"Authorization": f"Bearer {api_keys[1]['OperatorMSP']}"})
            conn.getresponse().read()
    finally:
        conn.close()


def test_no_client_certificate_is_refused_in_the_handshake(required_gw, api_keys):
    with pytest.raises(REFUSED):
        call(required_gw, "/api/v1/parameters", key=api_keys[1]["OperatorMSP"])


def test_certificate_from_an_unknown_ca_is_refused(required_gw, pki, api_keys):
    with pytest.raises(REFUSED):
        call(required_gw, "/api/v1/parameters", cert=pki.client["rogue"], key=api_keys[1]["OperatorMSP"])


def test_a_ca_not_given_is_unknown_too(required_gw, pki, api_keys):
    # CustomsMSP's CA exists in the network but was not passed with --client-ca
    with pytest.raises(REFUSED):
        call(required_gw, "/api/v1/parameters", cert=pki.client["CustomsMSP"], key=api_keys[1]["CustomsMSP"])


def test_certificate_and_key_of_the_same_org_act_as_that_org(required_gw, pki, api_keys):
    status, _, body = call(required_gw, "/api/v1/parameters", cert=pki.client["OperatorMSP"],
                           key=api_keys[1]["OperatorMSP"])
    assert status == 200 and body == {"acting_org": "OperatorMSP"}
    status, _, body = call(required_gw, "/api/v1/parameters", cert=pki.client["BrokerMSP"],
                           headers={"X-API-Key": api_keys[1]["BrokerMSP"]})
    assert status == 200 and body == {"acting_org": "BrokerMSP"}


@pytest.mark.parametrize("method,path,body", [
    ("GET", "/api/v1/parameters", None),
    ("POST", "/api/v1/events", b'{"type": "SetParameters"}'),
])
def test_certificate_of_one_org_with_the_key_of_another_is_403(required_gw, pki, api_keys, method, path, body):
    status, ctype, problem = call(required_gw, path, method=method, body=body, cert=pki.client["OperatorMSP"],
                                  key=api_keys[1]["BrokerMSP"], headers={"Content-Type": "application/json"})
    assert status == 403 and ctype.startswith("application/problem+json")
    assert problem["type"] == MISMATCH and problem["status"] == 403
    assert problem["certificate_org"] == "OperatorMSP" and problem["credential_org"] == "BrokerMSP"
    assert problem["request_id"]


def test_the_api_key_stays_required_with_a_certificate(required_gw, pki):
    status, _, problem = call(required_gw, "/api/v1/parameters", cert=pki.client["OperatorMSP"])
    assert status == 401 and problem["type"].endswith("/unauthenticated")


def _login_form(gw: TLSGateway, cert) -> tuple[str, str]:
    """(session cookie, form token) of the dashboard's sign-in page, opened over mutual TLS."""
    ctx = ssl.create_default_context(cafile=str(gw.pki.server_ca))
    ctx.load_cert_chain(*map(str, cert))
    conn = http.client.HTTPSConnection("127.0.0.1", gw.port, context=ctx, timeout=15)
    try:
        conn.request("GET", "/dashboard/login")
        r = conn.getresponse()
        html = r.read().decode()
        cookie = r.getheader("Set-Cookie").split(";")[0]
    finally:
        conn.close()
    return cookie, form_token(html)


def test_dashboard_login_with_a_key_of_another_org_is_403(required_gw, pki, api_keys):
    cookie, token = _login_form(required_gw, pki.client["OperatorMSP"])
    form = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie}
    status, _, problem = call(required_gw, "/dashboard/login", method="POST", cert=pki.client["OperatorMSP"],
                              body=f"api_key={api_keys[1]['BrokerMSP']}&csrf={token}".encode(), headers=form)
    assert status == 403 and problem["type"] == MISMATCH
    status, _, _ = call(required_gw, "/dashboard/login", method="POST", cert=pki.client["OperatorMSP"],
                        body=f"api_key={api_keys[1]['OperatorMSP']}&csrf={token}".encode(), headers=form)
    assert status == 302  # signed in, redirected to the dashboard


def test_the_log_names_the_certificate_org_never_the_certificate(required_gw, pki, api_keys):
    call(required_gw, "/api/v1/parameters", cert=pki.client["OperatorMSP"], key=api_keys[1]["OperatorMSP"],
         headers={"X-Request-Id": "mtls-log-check"})
    deadline = time.monotonic() + 10
    while True:
        text = required_gw.log.read_text()
        lines = [json.loads(x) for x in text.splitlines() if "mtls-log-check" in x and x.startswith("{")]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert lines, text[-2000:]
    assert lines[0]["client_cert_org"] == "OperatorMSP" and "User1@OperatorMSP" in lines[0]["client_cert_subject"]
    assert "BEGIN CERTIFICATE" not in text and api_keys[1]["OperatorMSP"] not in text


def test_the_start_probe_checks_the_server_certificate(required_gw, pki):
    assert daemon.healthy(required_gw.url, pki.server_cert)
    assert not daemon.healthy(required_gw.url, pki.ca["rogue"])  # another anchor: the server is not trusted


# ------------------------------------------------------------------------------------------ optional mode

def test_optional_mode_without_a_certificate_uses_the_key_only(optional_gw, api_keys):
    status, _, body = call(optional_gw, "/api/v1/parameters", key=api_keys[1]["OperatorMSP"])
    assert status == 200 and body == {"acting_org": "OperatorMSP"}


def test_optional_mode_binds_consortium_certificates_to_their_org(optional_gw, pki, api_keys):
    status, _, body = call(optional_gw, "/api/v1/parameters", cert=pki.client["CustomsMSP"],
                           key=api_keys[1]["CustomsMSP"])
    assert status == 200 and body == {"acting_org": "CustomsMSP"}
    status, _, problem = call(optional_gw, "/api/v1/parameters", cert=pki.client["BrokerMSP"],
                              key=api_keys[1]["OperatorMSP"])
    assert status == 403 and problem["type"] == MISMATCH and problem["certificate_org"] == "BrokerMSP"


def test_optional_mode_still_refuses_a_certificate_it_cannot_verify(optional_gw, pki, api_keys):
    with pytest.raises(REFUSED):
        call(optional_gw, "/api/v1/parameters", cert=pki.client["rogue"], key=api_keys[1]["OperatorMSP"])


# ------------------------------------------------------------------------------------------ no server

def _load(pki: Pki, *client_cas: str, client_cert: str | None = None) -> ServerTLS:
    return TLSOptions(str(pki.server_cert), str(pki.server_key), client_cas, client_cert).load(
        {org: pki.ca[org] for org in ORGS})


def test_context_is_tls_1_2_or_newer_and_requires_a_certificate_by_default(pki):
    server = _load(pki, f"OperatorMSP={pki.ca['OperatorMSP']}")
    ctx = server.context()
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_REQUIRED and server.client_cert == "required"
    assert _load(pki, str(pki.ca["OperatorMSP"]), client_cert="optional").context().verify_mode == ssl.CERT_OPTIONAL
    plain_https = _load(pki)
    assert plain_https.context().verify_mode == ssl.CERT_NONE and not plain_https.client_cas
    assert TLSOptions().load({}) is None  # no option: plain HTTP


def test_a_certificate_from_an_intermediate_ca_not_given_is_not_attributed(pki, tmp_path):
    intermediate = _issue("operator intermediate", pki.ca_pair["OperatorMSP"], ca=True, path_len=0)
    leaf, _ = _issue("User2@OperatorMSP", intermediate)
    server = _load(pki, f"OperatorMSP={pki.ca['OperatorMSP']}")
    cert = server.identify(leaf.public_bytes(serialization.Encoding.DER))
    assert cert.org is None and not cert.known_issuer
    assert "intermediate" in server.refusal(cert, "OperatorMSP")
    direct = server.identify(x509.load_pem_x509_certificate(pki.client["OperatorMSP"][0].read_bytes())
                             .public_bytes(serialization.Encoding.DER))
    assert direct.org == "OperatorMSP" and server.refusal(direct, "OperatorMSP") is None
    assert "BrokerMSP" in server.refusal(direct, "BrokerMSP")


def test_one_ca_cannot_vouch_for_two_orgs(pki):
    with pytest.raises(TLSError, match="one organisation only"):
        _load(pki, f"OperatorMSP={pki.ca['OperatorMSP']}", f"BrokerMSP={pki.ca['OperatorMSP']}")


def test_start_passes_absolute_paths_to_serve(pki, monkeypatch):
    monkeypatch.chdir(pki.dir)
    argv = TLSOptions("server.crt", "server.key", ("OperatorMSP=OperatorMSP-ca.crt", "consortium"), "optional").argv()
    assert argv == ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key),
                    "--client-ca", f"OperatorMSP={pki.ca['OperatorMSP']}", "--client-ca", "consortium",
                    "--client-cert", "optional"]


def test_the_problem_type_is_in_the_openapi_document(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["x-problem-types"][MISMATCH]["status"] == 403
    assert MISMATCH in doc["components"]["schemas"]["Problem"]["properties"]["type"]["enum"]


# ------------------------------------------------------------------------------------------ CLI errors

@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    """A state directory holding the operator's own directory with its client identity (enough for the
    operator's 'serve' to get to TLS)."""
    from ipledger.network.org.nodes import Nodes
    monkeypatch.setenv("IPLEDGER_LIVE_FEED", "0")
    state = tmp_path / "state"
    net = Nodes.open(state)
    net.layout.user_msp(net.consortium.org("OperatorMSP"), "User1").mkdir(parents=True)  # its client identity
    return state


def _cli(state: Path, *argv: str, monkeypatch) -> int:
    from ipledger.gateway.server import GatewayServer
    from ipledger.network import cli

    def never(self):
        raise AssertionError("gunicorn must not start with these options")
    monkeypatch.setattr(GatewayServer, "run", never)
    return cli.main(["--state-dir", str(state), *argv[:2], "--org", "OperatorMSP", *argv[2:]])


def _bad_options(pki: Pki, tmp: Path) -> list[tuple[list[str], str]]:
    loose_key = tmp / "loose.key"
    loose_key.write_bytes(pki.server_key.read_bytes())
    loose_key.chmod(0o644)
    tls = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    return [
        (["--tls-cert", str(pki.server_cert)], "--tls-cert and --tls-key go together"),
        (["--client-ca", str(pki.ca["OperatorMSP"])], "--client-ca needs HTTPS"),
        ([*tls, "--client-cert", "optional"], "--client-cert needs --client-ca"),
        (["--tls-cert", str(tmp / "missing.crt"), "--tls-key", str(pki.server_key)],
         f"--tls-cert: no such file: {tmp / 'missing.crt'}"),
        (["--tls-cert", str(pki.server_cert), "--tls-key", str(loose_key)], "has mode 0644"),
        (["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.other_key)], "does not match the private key"),
        (["--tls-cert", str(pki.server_key), "--tls-key", str(pki.server_key)], "holds no PEM certificate"),
        ([*tls, "--client-ca", f"NopeMSP={pki.ca['OperatorMSP']}"],
         "unknown organisation 'NopeMSP' in --client-ca NopeMSP="),
        ([*tls, "--client-ca", f"OperatorMSP={pki.client['OperatorMSP'][0]}"], "is not a CA certificate"),
        ([*tls, "--client-ca", "consortium"], "--client-ca consortium: no such file"),  # no crypto material here
    ]


def test_bad_options_stop_serve_with_exit_2_and_a_clear_message(state_dir, pki, tmp_path, capsys, monkeypatch):
    for argv, message in _bad_options(pki, tmp_path):
        code = _cli(state_dir, "gateway", "serve", "--bind", "127.0.0.1:1", *argv, monkeypatch=monkeypatch)
        err = capsys.readouterr().err
        assert code == 2 and message in err, (argv, err)


def test_bad_options_stop_start_before_anything_is_started(state_dir, pki, tmp_path, capsys, monkeypatch):
    def no_process(*a, **kw):
        raise AssertionError("nothing may be started with these options")
    monkeypatch.setattr(daemon.subprocess, "Popen", no_process)
    for argv, message in _bad_options(pki, tmp_path)[:6]:
        code = _cli(state_dir, "gateway", "start", "--bind", "127.0.0.1:1", *argv, monkeypatch=monkeypatch)
        err = capsys.readouterr().err
        assert code == 2 and message in err, (argv, err)
    assert not (state_dir / "operator" / "gateway" / "gateway.pid").exists()
    assert not (state_dir / "gateway").exists()


def test_an_unknown_client_cert_mode_is_a_usage_error(state_dir, pki, capsys, monkeypatch):
    with pytest.raises(SystemExit) as exc:
        _cli(state_dir, "gateway", "serve", "--client-cert", "sometimes", monkeypatch=monkeypatch)
    assert exc.value.code == 2 and "--client-cert" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ the test server


@pytest.mark.parametrize("path, headers, status, name", [
    ("/api/v1/lots/L1?" + "x=1&" * 1200, {}, 414, "uri-too-long"),
    ("/api/v1/lots/L1", {f"X-Filler-{n}": "y" * 100 for n in range(120)}, 431, "request-header-fields-too-large"),
    ("/api/v1/lots/L1", {"X-Filler": "y" * 9000}, 431, "request-header-fields-too-large")])
def test_what_the_http_server_refuses_itself_is_problem_json(optional_gw, api_keys, path, headers, status, name):
    """A request line over gunicorn's limit was answered with gunicorn's HTML page (414, found by the OpenAPI
    fuzzing on a real gateway), as were headers it refuses: problem+json like every other error, documented."""
    got, ctype, body = call(optional_gw, path, key=api_keys[1]["OperatorMSP"], headers=headers)
    assert (got, ctype) == (status, "application/problem+json"), (got, ctype)
    assert body["type"].endswith("/" + name) and body["status"] == status and body["title"]

def _serve_with_fake_ledger(argv: list[str]) -> int:
    """``python -m tests.unit.gateway.test_mtls --keys-file F --bind ADDR --org-ca ORG=CA … <TLS options>``:
    the production server and TLS code around an app with a FakeLedger."""
    from ipledger.gateway.app import create_app
    from ipledger.network.cli.gateway import add_tls_arguments
    from ipledger.gateway.config import GatewayConfig
    from ipledger.gateway.server import GatewayServer, gunicorn_options

    from .fakes import FakeLedger

    parser = argparse.ArgumentParser()
    parser.add_argument("--keys-file", type=Path, required=True)
    parser.add_argument("--bind", required=True)
    parser.add_argument("--org-ca", action="append", default=[], help="ORG=FILE: the network's TLS CA of ORG")
    add_tls_arguments(parser)
    args = parser.parse_args(argv)
    try:
        server_tls = TLSOptions.from_args(args).load(dict(spec.split("=", 1) for spec in args.org_ca))
    except TLSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    config = GatewayConfig(keys_file=args.keys_file, nonce_key_file=args.keys_file.with_name("nonce.key"),
                           configure_logging=True)

    def app_factory(config):
        return create_app(config, ledger=FakeLedger(answers={"GetParameters": lambda org, _: {"acting_org": org}}))

    options = gunicorn_options(args.bind, workers=1, threads=4, timeout=30, log_level="info", tls=server_tls)
    GatewayServer(config, options, tls=server_tls, app_factory=app_factory).run()
    return 0


if __name__ == "__main__":
    sys.exit(_serve_with_fake_ledger(sys.argv[1:]))
