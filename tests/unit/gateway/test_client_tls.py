"""HTTPS for the gateway's own clients (gateway/client_tls.py): ``ipledger import`` and ``ipledger report``
with ``--ca-cert`` / ``--client-cert`` / ``--client-key`` (or their environment variables).

Against real gunicorn gateways with TLS, through test_mtls.py's helpers (throwaway PKI, the production
``GatewayServer`` around a FakeLedger): ``required_gw`` wants client certificates from OperatorMSP's and
BrokerMSP's CAs; ``misnamed_gw`` serves plain HTTPS with a certificate for another host name. The fake
ledger records the submitted events (a second run replays them) and answers ``GetBillOfDischargeData``
with its default answer, which the report route renders.
"""
from __future__ import annotations

import datetime as dt
import json
import threading
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from werkzeug.serving import make_server

from ipledger.gateway import client_tls
from ipledger.gateway.client_tls import ClientTLSOptions, TLSFailure
from ipledger.gateway.importer import ImportError_, Importer
from ipledger.network import cli

from .fakes import move_body
from . import test_mtls
from .test_mtls import TLSGateway, _write_key

# test_mtls's module-scoped fixtures, used here too (this module gets its own PKI and gateway)
pki, api_keys, required_gw = test_mtls.pki, test_mtls.api_keys, test_mtls.required_gw

ENV_VARS = ("IPLEDGER_GATEWAY_CA_CERT", "IPLEDGER_CLIENT_CERT", "IPLEDGER_CLIENT_KEY", "IPLEDGER_GATEWAY_URL",
            "IPLEDGER_API_KEY")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def jsonl(path: Path, n: int = 3) -> Path:
    path.write_text("".join(json.dumps(move_body(f"tls-{i}", quantity=i + 1)) + "\n" for i in range(n)))
    return path


def done_lines(src: Path) -> list[dict]:
    """The lines the progress file records as done (its first line is the header)."""
    progress = src.with_name(src.name + ".progress")
    return [json.loads(x) for x in progress.read_text().splitlines()[1:]] if progress.exists() else []


def tls_args(pki, org: str | None = "OperatorMSP", ca: Path | None = None) -> list[str]:
    args = ["--ca-cert", str(ca or pki.server_ca)]
    if org:
        args += ["--client-cert", str(pki.client[org][0]), "--client-key", str(pki.client[org][1])]
    return args


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------------------ import over mTLS

def test_import_over_mutual_tls_reaches_the_ledger(required_gw, pki, api_keys, tmp_path, monkeypatch, capsys):
    src = jsonl(tmp_path / "events.jsonl")
    report = tmp_path / "report.jsonl"
    monkeypatch.setenv("IPLEDGER_API_KEY", api_keys[1]["OperatorMSP"])
    code, _, err = run(["import", str(src), "--url", required_gw.url, "--report", str(report), "--quiet",
                        *tls_args(pki)], capsys)
    assert code == 0, err
    rows = [json.loads(x) for x in report.read_text().splitlines()]
    assert [(r["event_id"], r["status"], r["outcome"]) for r in rows] == [
        (f"tls-{i}", 201, "COMMITTED") for i in range(3)]
    assert all(r["tx_id"] and r["block_number"] for r in rows)
    assert [r["line"] for r in done_lines(src)] == [1, 2, 3]

    # the same file again, options from the environment this time: the fake ledger knows the events
    monkeypatch.setenv("IPLEDGER_GATEWAY_URL", required_gw.url)
    monkeypatch.setenv("IPLEDGER_GATEWAY_CA_CERT", str(pki.server_ca))
    monkeypatch.setenv("IPLEDGER_CLIENT_CERT", str(pki.client["OperatorMSP"][0]))
    monkeypatch.setenv("IPLEDGER_CLIENT_KEY", str(pki.client["OperatorMSP"][1]))
    code, _, err = run(["import", str(src), "--report", str(report), "--quiet", "--restart"], capsys)
    assert code == 0, err
    again = [json.loads(x) for x in report.read_text().splitlines()]
    assert [(r["outcome"], r["tx_id"]) for r in again] == [("REPLAYED", r["tx_id"]) for r in rows]


def test_the_command_line_wins_over_the_environment(required_gw, pki, api_keys, tmp_path, monkeypatch, capsys):
    src = jsonl(tmp_path / "events.jsonl", 1)
    monkeypatch.setenv("IPLEDGER_GATEWAY_CA_CERT", str(tmp_path / "nowhere.pem"))
    monkeypatch.setenv("IPLEDGER_CLIENT_CERT", str(pki.client["BrokerMSP"][0]))  # would be a mismatch
    monkeypatch.setenv("IPLEDGER_CLIENT_KEY", str(pki.client["BrokerMSP"][1]))
    code, _, err = run(["import", str(src), "--url", required_gw.url, "--api-key", api_keys[1]["OperatorMSP"],
                        "--quiet", *tls_args(pki)], capsys)
    assert code == 0, err


def test_import_without_a_client_certificate_stops_with_exit_2(required_gw, pki, api_keys, tmp_path, capsys):
    src = jsonl(tmp_path / "events.jsonl")
    code, _, err = run(["import", str(src), "--url", required_gw.url, "--api-key", api_keys[1]["OperatorMSP"],
                        "--quiet", *tls_args(pki, org=None)], capsys)
    assert code == 2
    assert "requires a client certificate (TLS alert: certificate required)" in err
    assert "--client-cert FILE and --client-key FILE" in err and "Traceback" not in err
    assert done_lines(src) == []  # nothing recorded as done: the next run starts at line 1


def test_import_trusting_another_ca_stops_with_exit_2(required_gw, pki, api_keys, tmp_path, capsys):
    src = jsonl(tmp_path / "events.jsonl")
    code, _, err = run(["import", str(src), "--url", required_gw.url, "--api-key", api_keys[1]["OperatorMSP"],
                        "--quiet", *tls_args(pki, ca=pki.ca["rogue"])], capsys)
    assert code == 2 and "its certificate is not issued by a CA trusted here" in err
    assert str(pki.ca["rogue"]) in err and "unable to get local issuer certificate" in err
    assert done_lines(src) == []
    # no --ca-cert: the system's CAs, which do not know the test CA either; the message says what to do
    code, _, err = run(["import", str(src), "--url", required_gw.url, "--api-key", api_keys[1]["OperatorMSP"],
                        "--quiet"], capsys)
    assert code == 2 and "the system's CAs" in err and "--ca-cert FILE (or IPLEDGER_GATEWAY_CA_CERT)" in err


def test_a_tls_failure_is_not_retried(required_gw, pki, api_keys, tmp_path):
    waits = []
    tls = ClientTLSOptions(ca_cert=(str(pki.server_ca), "--ca-cert")).load(required_gw.url)
    importer = Importer(required_gw.url, api_keys[1]["OperatorMSP"], progress=None, retries=5, sleep=waits.append,
                        tls=tls)
    with pytest.raises(ImportError_, match="requires a client certificate.*Stopped at line 1"):
        importer.run(jsonl(tmp_path / "events.jsonl"))
    assert waits == []


def test_a_client_certificate_from_an_unknown_ca_is_named(required_gw, pki, api_keys, tmp_path, capsys):
    src = jsonl(tmp_path / "events.jsonl")
    code, _, err = run(["import", str(src), "--url", required_gw.url, "--api-key", api_keys[1]["CustomsMSP"],
                        "--quiet", *tls_args(pki, org="CustomsMSP")], capsys)  # CustomsMSP's CA was not given
    assert code == 2
    assert f"refused the client certificate {pki.client['CustomsMSP'][0]}" in err and "unknown ca" in err
    assert done_lines(src) == []


def test_a_certificate_of_another_org_than_the_key_stops_the_import(required_gw, pki, api_keys, tmp_path, capsys):
    src = jsonl(tmp_path / "events.jsonl")
    code, _, err = run(["import", str(src), "--url", required_gw.url, "--api-key", api_keys[1]["OperatorMSP"],
                        "--quiet", *tls_args(pki, org="BrokerMSP")], capsys)
    assert code == 2
    assert "refused the client certificate with this API key (403 client-certificate-mismatch)" in err
    assert "belongs to BrokerMSP, the credential to OperatorMSP" in err
    assert done_lines(src) == []


def test_a_reset_that_hides_the_alert_is_diagnosed_by_a_probe(required_gw, pki, api_keys, monkeypatch):
    """TLS 1.3: the gateway judges the client certificate after the client sent its request; a reset can
    then lose the alert. The client probes with a bare handshake to learn the cause."""
    def reset(*a, **kw):
        raise ConnectionResetError(104, "Connection reset by peer")
    monkeypatch.setattr(urllib.request.OpenerDirector, "open", reset)   # every request the client sends
    request = urllib.request.Request(required_gw.url + "/api/v1/parameters")
    without = ClientTLSOptions(ca_cert=(str(pki.server_ca), "--ca-cert")).load(required_gw.url)
    with pytest.raises(TLSFailure, match="requires a client certificate"):
        without.urlopen(request, timeout=5)
    with_cert = ClientTLSOptions.from_args(SimpleNamespace(ca_cert=None, client_cert=None, client_key=None), {
        "IPLEDGER_GATEWAY_CA_CERT": str(pki.server_ca), "IPLEDGER_CLIENT_CERT": str(pki.client["OperatorMSP"][0]),
        "IPLEDGER_CLIENT_KEY": str(pki.client["OperatorMSP"][1])}).load(required_gw.url)
    with pytest.raises(ConnectionResetError):  # the handshake is fine: a transient failure, left to the retries
        with_cert.urlopen(request, timeout=5)


# ------------------------------------------------------------------------------------------ host name

def _server_cert_for(name: str, issuer) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(issuer[0].subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(issuer[1], hashes.SHA256()))
    return cert, key


@pytest.fixture(scope="module")
def misnamed_gw(pki, api_keys, tmp_path_factory):
    """Plain HTTPS (no client certificates) with a certificate for gateway.example, issued by the rogue CA."""
    from cryptography.hazmat.primitives import serialization
    directory = tmp_path_factory.mktemp("misnamed")
    cert, key = _server_cert_for("gateway.example", pki.ca_pair["rogue"])
    (directory / "server.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files = SimpleNamespace(server_cert=directory / "server.crt", server_key=_write_key(key, directory / "server.key"),
                            ca=pki.ca, server_ca=pki.ca["rogue"])
    gw = TLSGateway(files, api_keys[0], directory / "gateway.log", [])
    yield gw
    assert gw.stop() == 0, gw.log.read_text()[-2000:]


def test_a_host_name_mismatch_is_named(misnamed_gw, pki, api_keys, tmp_path, capsys):
    src = jsonl(tmp_path / "events.jsonl")
    code, _, err = run(["import", str(src), "--url", misnamed_gw.url, "--api-key", api_keys[1]["OperatorMSP"],
                        "--quiet", "--ca-cert", str(pki.ca["rogue"])], capsys)
    assert code == 2 and "its certificate is not valid for '127.0.0.1'" in err and "mismatch" in err
    assert done_lines(src) == []
    code, _, err = run(["report", "inventory", "--as-of", "2026-03-02", "--url", misnamed_gw.url,
                        "--api-key", api_keys[1]["OperatorMSP"], "--ca-cert", str(pki.ca["rogue"])], capsys)
    assert code == 2 and "its certificate is not valid for '127.0.0.1'" in err


def test_https_to_a_plain_http_gateway_is_named(app, keys, tmp_path, capsys):
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        src = jsonl(tmp_path / "events.jsonl")
        code, _, err = run(["import", str(src), "--url", f"https://127.0.0.1:{srv.server_port}", "--quiet",
                            "--api-key", keys[("OperatorMSP", "clerk")]], capsys)
    finally:
        srv.shutdown()
        thread.join()
    assert code == 2 and "does not answer TLS" in err and "use an http:// URL" in err


# ------------------------------------------------------------------------------------------ report over mTLS

def test_report_over_mutual_tls(required_gw, pki, api_keys, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IPLEDGER_API_KEY", api_keys[1]["OperatorMSP"])
    code, out, err = run(["report", "bill-of-discharge", "FRIPO000001", "--as-of", "2026-03-02",
                          "--url", required_gw.url, *tls_args(pki)], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["report"] == "bill-of-discharge" and report["generated_for"] == "OperatorMSP"
    assert report["function"] == "GetBillOfDischargeData"  # the fake ledger's answer, passed through

    monkeypatch.setenv("IPLEDGER_GATEWAY_CA_CERT", str(pki.server_ca))
    monkeypatch.setenv("IPLEDGER_CLIENT_CERT", str(pki.client["OperatorMSP"][0]))
    monkeypatch.setenv("IPLEDGER_CLIENT_KEY", str(pki.client["OperatorMSP"][1]))
    output = tmp_path / "inventory.json"
    code, _, err = run(["report", "inventory", "--as-of", "2026-03-02", "--authorisation", "FRIPO000001",
                        "-o", str(output), "--url", required_gw.url], capsys)
    assert code == 0, err
    inventory = json.loads(output.read_text())
    assert inventory["report"] == "inventory" and inventory["generated_for"] == "OperatorMSP"
    assert [a["authorisation_id"] for a in inventory["authorisations"]] == ["FRIPO000001"]


def test_report_to_a_file_that_cannot_be_written_is_an_error_not_a_traceback(required_gw, pki, api_keys, tmp_path,
                                                                               monkeypatch, capsys):
    monkeypatch.setenv("IPLEDGER_API_KEY", api_keys[1]["OperatorMSP"])
    output = tmp_path / "no-such-dir" / "inventory.json"
    code, out, err = run(["report", "inventory", "--as-of", "2026-03-02", "-o", str(output),
                          "--url", required_gw.url, *tls_args(pki)], capsys)
    assert code == 1 and "could not be written" in err and str(output) in err and "Traceback" not in err, err
    assert not output.exists()


def test_report_tls_failures_exit_2_with_the_cause(required_gw, pki, api_keys, monkeypatch, capsys):
    monkeypatch.setenv("IPLEDGER_API_KEY", api_keys[1]["OperatorMSP"])
    base = ["report", "inventory", "--as-of", "2026-03-02", "--url", required_gw.url]
    code, out, err = run([*base, *tls_args(pki, org=None)], capsys)
    assert code == 2 and out == "" and "requires a client certificate" in err and "Traceback" not in err
    code, _, err = run([*base, *tls_args(pki, ca=pki.ca["rogue"])], capsys)
    assert code == 2 and "not issued by a CA trusted here" in err
    code, _, err = run([*base, *tls_args(pki, org="BrokerMSP")], capsys)
    assert code == 2 and "403 Client certificate mismatch" in err and "belongs to BrokerMSP" in err


# ------------------------------------------------------------------------------------------ usage errors

COMMANDS = {
    "import": lambda tmp: ["import", str(jsonl(tmp / "events.jsonl")), "--api-key", "ipk_x", "--quiet"],
    "report": lambda tmp: ["report", "inventory", "--as-of", "2026-03-02", "--api-key", "ipk_x"],
}


def _usage_cases(pki, tmp: Path) -> list[tuple[str, list[str], dict, str]]:
    loose = tmp / "loose.key"
    loose.write_bytes(pki.client["OperatorMSP"][1].read_bytes())
    loose.chmod(0o640)
    not_a_key = tmp / "not-a-key.pem"
    not_a_key.write_bytes(pki.client["OperatorMSP"][0].read_bytes())
    not_a_key.chmod(0o600)
    https = "https://127.0.0.1:1"  # nothing listens: every case must stop before connecting
    op_cert, op_key = map(str, pki.client["OperatorMSP"])
    return [
        ("http://127.0.0.1:1", ["--ca-cert", str(pki.server_ca)], {},
         "--ca-cert given, but the gateway URL http://127.0.0.1:1 is plain HTTP"),
        ("http://127.0.0.1:1", [], {"IPLEDGER_CLIENT_CERT": op_cert, "IPLEDGER_CLIENT_KEY": op_key},
         "IPLEDGER_CLIENT_CERT, IPLEDGER_CLIENT_KEY given, but the gateway URL http://127.0.0.1:1 is plain HTTP"),
        (https, ["--client-cert", op_cert], {}, "--client-cert needs --client-key (or IPLEDGER_CLIENT_KEY)"),
        (https, [], {"IPLEDGER_CLIENT_KEY": op_key}, "IPLEDGER_CLIENT_KEY needs --client-cert"),
        (https, ["--ca-cert", str(tmp / "missing.pem")], {}, f"--ca-cert: no such file: {tmp / 'missing.pem'}"),
        (https, [], {"IPLEDGER_GATEWAY_CA_CERT": str(tmp)}, f"IPLEDGER_GATEWAY_CA_CERT: {tmp} is a directory"),
        (https, ["--ca-cert", op_key], {}, "holds no PEM certificate"),
        (https, ["--client-cert", op_cert, "--client-key", str(tmp / "missing.key")], {},
         "--client-key: no such file"),
        (https, ["--client-cert", op_cert, "--client-key", str(loose)], {},
         f"--client-key: private key {loose} has mode 0640, wider than 0600: it must be readable by its owner only"),
        (https, ["--client-cert", op_cert, "--client-key", str(pki.client["BrokerMSP"][1])], {},
         "does not match the private key"),
        (https, ["--client-cert", op_cert, "--client-key", str(not_a_key)], {}, "holds no PEM private key"),
        ("gateway:8080", [], {}, "is not an http:// or https:// URL"),
    ]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_bad_tls_options_are_usage_errors(command, pki, tmp_path, monkeypatch, capsys):
    for url, argv, env, message in _usage_cases(pki, tmp_path):
        with monkeypatch.context() as m:
            for name, value in env.items():
                m.setenv(name, value)
            code, out, err = run([*COMMANDS[command](tmp_path), "--url", url, *argv], capsys)
        assert code == 2 and message in err, (url, argv, env, err)
        assert out == "" and "Traceback" not in err
    assert not (tmp_path / "events.jsonl.progress").exists()


def test_an_expired_client_certificate_is_refused_before_connecting(pki, tmp_path):
    from cryptography.hazmat.primitives import serialization
    ca_cert, ca_key = pki.ca_pair["OperatorMSP"]
    key = ec.generate_private_key(ec.SECP256R1())
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=10)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(past).not_valid_after(past + dt.timedelta(days=1)).sign(ca_key, hashes.SHA256()))
    (tmp_path / "old.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    options = ClientTLSOptions(client_cert=(str(tmp_path / "old.crt"), "--client-cert"),
                               client_key=(str(_write_key(key, tmp_path / "old.key")), "--client-key"))
    with pytest.raises(client_tls.ClientTLSError, match="expired on"):
        options.load("https://127.0.0.1:1")


def test_plain_http_without_options_is_unchanged():
    tls = ClientTLSOptions().load("http://127.0.0.1:8080")
    assert tls.context is None


@pytest.mark.parametrize("url", ["http://192.0.2.10:8080", "http://gateway.example:8080", "http://[2001:db8::1]:80"])
def test_plain_http_to_another_host_is_refused_before_anything_is_sent(url):
    """The gateway refuses plain HTTP beyond loopback, and a webhook's http:// to another host; its own clients
    sent the API key (and an import's customs values) in clear text to any host. Now refused, named."""
    with pytest.raises(client_tls.ClientTLSError, match="plain HTTP to another host"):
        ClientTLSOptions().load(url)
    with pytest.raises(ImportError_, match="clear text"):
        Importer(url, "ipk_0123456789ab_" + "A" * 43)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080",
                                 "http://127.0.0.2:8080"])
def test_plain_http_to_this_host_is_accepted(url):
    assert ClientTLSOptions().load(url).context is None


def test_plain_http_to_another_host_only_when_said_out_loud():
    """A gateway behind a cluster's ingress serves plain HTTP inside the cluster (docs/deployment.md): a client there
    says so with --insecure-http."""
    args = SimpleNamespace(ca_cert=None, client_cert=None, client_key=None, insecure_http=True)
    assert ClientTLSOptions.from_args(args, environ={}).load("http://ipledger-gateway.ipledger.svc:8080").context is None
    args.insecure_http = False
    with pytest.raises(client_tls.ClientTLSError, match="--insecure-http"):
        ClientTLSOptions.from_args(args, environ={}).load("http://ipledger-gateway.ipledger.svc:8080")
