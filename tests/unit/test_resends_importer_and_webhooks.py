"""Across the gateway, the contract and the network: webhook deadlines over https, resends of events recorded under
earlier rules, the importer behind a proxy, certificate renewals cut short. The last tests are points checked and
found right.

Fixtures are those of the gateway's and the contract's test packages.
"""
from __future__ import annotations

import datetime as dt
import json
import ssl
import threading
import time

import pytest
from werkzeug.serving import make_server

from ipledger.chaincode.contract import InwardProcessingContract, schemas
from ipledger.chaincode.testing.scenario import Scenario
from ipledger.gateway import webhooks
from ipledger.gateway.app import create_app
from ipledger.gateway.config import GatewayConfig
from ipledger.gateway.importer import Importer

from tests.unit.gateway.conftest import as_org, client, config, keys, keystore, ledger  # noqa: F401 (fixtures)
from tests.unit.gateway.conftest import app  # noqa: F401
from tests.unit.gateway.fakes import dripping_subscriber, move_body, place_body


@pytest.fixture
def s() -> Scenario:
    return Scenario.with_l1(InwardProcessingContract)


def _serve(wsgi):
    srv = make_server("127.0.0.1", 0, wsgi, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    return srv, thread, f"http://127.0.0.1:{srv.server_port}"


# ------------------------------------------------------------------------ webhooks: the whole-attempt deadline

def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "c.pem", tmp_path / "k.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.fixture
def dripping_https(tmp_path, monkeypatch):
    """An https:// subscriber (the only scheme allowed for a remote one) that answers its status line, then one
    header byte every 0.1 s for 6 s."""
    cert_file, key_file = _self_signed(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    monkeypatch.setattr(ssl, "_create_default_https_context", ssl._create_unverified_context)
    with dripping_subscriber(ctx) as url:
        yield url


def test_the_whole_attempt_deadline_also_bounds_an_https_subscriber(dripping_https):
    """_Deadline shuts the socket socket.create_connection returned; for https:// the TLS layer wraps it and
    *detaches* it (its fd becomes -1), so shutdown() raises EBADF, swallowed: the dripping https subscriber holds
    the dispatcher for its whole 6 s, the deadline only noticed afterwards (deadline.over)."""
    started = time.monotonic()
    with pytest.raises(OSError):
        webhooks.http_post(dripping_https, b"{}", {"Content-Type": "application/json"}, 0.5)
    assert time.monotonic() - started < 2.5


# ------------------------------------------------------------------------ contract: rules added before replay

def test_a_resend_of_an_event_recorded_before_the_text_rule_gets_its_original_result(s, monkeypatch):
    """A placement recorded yesterday with a tab in its description (allowed then) is sent again (the importer
    resumes after a timeout, the ERP re-sends): schemas.validate runs before eventlog.replay, so the resend is now
    InvalidEvent — the sender told that an event on the ledger was not recorded (contract.py's own comment at
    the replay says this must not happen)."""
    from ipledger.chaincode.testing.scenario import iso, mrn
    event = {"event_id": "place-old", "description": "used\ttyres", "occurred_at": iso(s.ledger.now),
             "mrn_": mrn("I", 777)}
    real = schemas.validate
    monkeypatch.setattr(schemas, "validate", lambda act, instance: None)   # yesterday's schema: no pattern
    first = s.accepted(s.place("L9", 10, **event))
    monkeypatch.setattr(schemas, "validate", real)
    again = s.place("L9", 10, **event)
    assert again.ok, again.message
    assert again.json()["tx_id"] == first["tx_id"]


def test_a_resend_of_a_move_recorded_with_transient_commercial_before_the_rule_gets_its_original_result(s):
    """Before e75958b a MoveGoods sent with a transient 'commercial' was recorded (the data dropped, its hash
    None). _commercial now refuses the transient before eventlog.replay: the same resend is InvalidEvent. (Here the
    old recording is made without the transient: what the old contract recorded for it.)"""
    from ipledger.chaincode.testing.scenario import AUTH_ID, SITE1, SITE2
    from ipledger.chaincode.testing.scenario import iso
    event = {"authorisation_id": AUTH_ID, "lot_id": "L1", "quantity": 1, "from_site": SITE1, "to_site": SITE2,
             "event_id": "mv-old", "occurred_at": iso(s.ledger.now)}
    first = s.accepted(s.submit("MoveGoods", event, "OperatorMSP"))
    again = s.submit("MoveGoods", event, "OperatorMSP",
                     transient={"commercial": {"invoice_price": {"amount": "1.00", "currency": "EUR"}}})
    assert again.ok, again.message
    assert again.json()["tx_id"] == first["tx_id"]


# ------------------------------------------------------------------------ gateway and contract: the nonce

def test_a_gateway_without_a_nonce_key_refuses_commercial_data_without_a_nonce_itself(tmp_path, keystore, keys,
                                                                                      ledger):
    """GatewayConfig.nonce_key_file defaults to None ("None disables it", config.py); NonceKey.apply then forwards
    the commercial data without a nonce, which the contract now refuses (InvalidEvent) after an endorsement round
    trip. The gateway validates events with the contract's schemas and should refuse it itself (400 naming
    commercial.nonce), before anything is sent."""
    cfg = GatewayConfig(keys_file=keystore.path, nonce_key_file=None, retry_after_s=7, max_batch=10,
                        race_retries=3)
    web = create_app(cfg, ledger=ledger).test_client()
    r = web.post("/api/v1/events", json=place_body("place-nn"),
                 headers={"Authorization": f"Bearer {keys[('BrokerMSP', 'clerk')]}"})
    assert r.status_code == 400, r.json
    assert "nonce" in json.dumps(r.json)
    assert ledger.submits == []


# ------------------------------------------------------------------------ importer

def test_a_proxys_413_for_one_oversized_line_does_not_stop_the_whole_import_forever(keys, tmp_path):
    """Before 84bc752 a proxy's 413 (nginx client_max_body_size, an HTML page) for one large line recorded that
    line REFUSED and the import went on. It is now 'not an answer of the ipledger gateway's API': the import stops
    at that line, and every resume stops there again — the lines after it can never be imported."""
    def proxy(environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        if len(body) > 2000:
            start_response("413 Request Entity Too Large", [("Content-Type", "text/html")])
            return [b"<html>413 Request Entity Too Large</html>"]
        start_response("201 Created", [("Content-Type", "application/json")])
        return [json.dumps({"status": "COMMITTED", "tx_id": "t" + str(len(body)), "block_number": 1}).encode()]
    srv, thread, url = _serve(proxy)
    try:
        path = tmp_path / "events.jsonl"
        lines = [move_body("mv-0"), move_body("mv-big", note="x" * 3000), move_body("mv-2")]
        path.write_text("".join(json.dumps(x) + "\n" for x in lines))
        report = tmp_path / "r.jsonl"
        Importer(url, keys[("OperatorMSP", "clerk")], progress=None).run(path, report=report)
        outcomes = [json.loads(x)["outcome"] for x in report.read_text().splitlines()]
        assert outcomes == ["COMMITTED", "REFUSED", "COMMITTED"]
    finally:
        srv.shutdown()
        thread.join()


def test_a_wrong_path_in_url_reaching_the_gateway_itself_does_not_record_every_line_refused(app, keys, tmp_path):
    """The 4xx check added in 84bc752 (for 'a wrong path in --url') only catches answers that are not a problem
    of the gateway. A --url with a wrong path that reaches the gateway itself gets the gateway's own 404
    problem+json (type …/not-found, a route, not a ledger refusal): every line is recorded REFUSED, final, never
    sent again."""
    srv, thread, url = _serve(app)
    try:
        path = tmp_path / "events.jsonl"
        path.write_text("".join(json.dumps(move_body(f"mv-{i}")) + "\n" for i in range(3)))
        report = tmp_path / "r.jsonl"
        try:
            Importer(url + "/ipledger", keys[("OperatorMSP", "clerk")], progress=None).run(path, report=report)
        except Exception:   # stopping (ImportError_) is the right answer
            return
        outcomes = [json.loads(x)["outcome"] for x in report.read_text().splitlines()]
        assert "REFUSED" not in outcomes
    finally:
        srv.shutdown()
        thread.join()


# ------------------------------------------------------------------------ webhooks: existing receivers

class _Log:
    def record(self, *args, **kwargs):
        pass


def test_a_receiver_written_to_the_previous_readme_still_accepts_deliveries():
    """Until 84bc752 a receiver checked ``X-Ipledger-Signature == sha256=HMAC(secret, body)`` (README, and
    ``verify(secret, body, header)``). The signed message is now ``"<t>." + body`` with no transition: every such
    receiver answers 401 to every delivery, each is retried 10 times and marked FAILED — the alerts lost, nothing
    in the README about migrating; and ``verify(secret, body, header)`` now raises TypeError. Suggested: keep the
    body-only signature under the old header for a deprecation period and put the timestamped one in a new header
    (or a versioned ``t=…,v1=…`` value), documented as a migration."""
    import hashlib
    import hmac
    sent = []
    dispatcher = webhooks.Dispatcher(None, _Log(), post=lambda url, body, headers, timeout: sent.append((body, headers)) or 204)
    secret = "s" * 16
    delivery = {"delivery_id": 1, "alert_id": "a", "attempts": 0, "body": '{"alert_id":"a"}'}
    dispatcher._send(delivery, {"id": "sub", "url": "https://example.org/hook", "secret": secret})
    body, headers = sent[0]
    legacy = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert legacy in headers.values()


# ------------------------------------------------------------------------ network: renew registers first

def test_a_renewal_cut_short_does_not_hide_that_the_certificate_in_use_expires(tmp_path, monkeypatch):
    """renew now saves the register (the new serial and its not_after) before writing the certificate. Cut
    short between the two, the identity keeps using the old certificate, but ``expiring()`` reads the newest
    register entry — the renewal that never reached the MSP — and no longer warns that the certificate in use
    ends. Suggested: ``expiring`` (and ``_find``) compare with the certificate in signcerts, or renew records
    the entry as pending until written."""
    from ipledger.network.org import identities
    ids = identities.OrgIdentities(tmp_path / "crypto", "OperatorMSP", "operator.example")
    ids.create()
    ids.add_user("clerk2")
    [cert_file] = (ids.identity_dir(ids.user_name("clerk2"), "client") / "msp" / "signcerts").glob("*.pem")
    in_use = identities.load_cert(cert_file)

    real_write = identities._write

    def disk_full(path, *args, **kwargs):
        if path == cert_file:
            raise OSError(28, "No space left on device")
        return real_write(path, *args, **kwargs)
    monkeypatch.setattr(identities, "_write", disk_full)
    with pytest.raises(OSError):
        ids.renew("clerk2", days=3650)
    monkeypatch.undo()
    assert identities.load_cert(cert_file).serial_number == in_use.serial_number   # still the old one in use
    soon_after = in_use.not_valid_after_utc - dt.timedelta(days=1)
    assert [e.name for e in ids.expiring(within_days=30, now=soon_after)] == [ids.user_name("clerk2")]


# ------------------------------------------------------------------------ docs

def test_the_contract_readme_act_table_no_longer_calls_the_nonce_optional():
    """chaincode/contract/README.md's act table still shows PlaceUnderProcedure's transient as
    ``{"customs_value": …, "nonce"?}`` — ``?`` marking an optional member — while the contract now refuses
    commercial data without a nonce (the README's own later paragraph says so)."""
    from pathlib import Path
    readme = (Path(__file__).resolve().parents[2] / "chaincode" / "contract" / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `PlaceUnderProcedure`"))
    assert '"nonce"?' not in row


# ------------------------------------------------------------------------ checked and judged correct

@pytest.mark.parametrize("description", ["used\x1b[2Jtyres", "used tyres\n", "used\rtyres", "used\x85tyres"])
def test_judged_correct_the_gateway_refuses_control_characters_with_a_clear_400(as_org, ledger, description):
    r = as_org("BrokerMSP").post("/api/v1/events", json=place_body("p-cc", description=description))
    assert r.status_code == 400 and ledger.submits == []
    assert "control character" in json.dumps(r.json)


def test_judged_correct_verify_takes_the_integer_timestamp_as_sent_and_refuses_others():
    secret, body, t = "s" * 16, b'{"a":1}', int(time.time())
    sig = webhooks.sign(secret, body, t)
    assert webhooks.verify(secret, body, sig, str(t)) and webhooks.verify(secret, body, sig, t)
    assert webhooks.verify(secret, body, sig, "0" + str(t))          # same value: nothing gained by an attacker
    assert not webhooks.verify(secret, body, sig, f" {t}") and not webhooks.verify(secret, body, sig, "-1")
    assert not webhooks.verify(secret, body, "sha256=\u00e9", str(t))


def test_a_subscribers_name_that_no_resolver_answers_does_not_hold_the_dispatcher(monkeypatch):
    """getaddrinfo cannot be interrupted and sat outside the attempt's deadline: a resolver that never answers held
    the one dispatcher thread — every subscription's deliveries waiting. The lookup is now waited for until the
    deadline only; other names are resolved as before."""
    import socket
    real = socket.getaddrinfo
    released = threading.Event()

    def getaddrinfo(host, *args, **kwargs):
        if host == "hung.example":
            released.wait(10)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    started = time.monotonic()
    try:
        with pytest.raises(OSError, match="not resolved"):   # urllib wraps it (URLError), a failed attempt
            webhooks.http_post("https://hung.example/hook", b"{}", {"Content-Type": "application/json"}, 0.5)
        assert time.monotonic() - started < 2
    finally:
        released.set()


def test_no_webhook_posts_to_a_link_local_address_named_or_resolved(tmp_path, monkeypatch):
    """The instance metadata service (169.254.169.254) and other link-local, unspecified or multicast addresses are
    refused as a subscription's URL, and a name that resolves only to one is never posted to; loopback and private
    addresses stay receivers (a local receiver, an ERP on the organisation's network)."""
    import socket

    from ipledger.gateway.webhooks import Subscriptions, WebhookError
    subs = Subscriptions(tmp_path / "webhooks.json")
    for url in ("https://169.254.169.254/latest/meta-data", "https://[fe80::1]/hook", "https://0.0.0.0/hook",
                "https://224.0.0.1/hook"):
        with pytest.raises(WebhookError, match="not a webhook receiver's"):
            subs.add(url, "OperatorMSP")
    for url in ("https://10.0.0.5/hook", "http://127.0.0.1:9/hook", "https://erp.example/hook"):
        subs.add(url, "OperatorMSP")
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host == "metadata.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(OSError, match="resolves to a link-local address only"):
        webhooks.http_post("https://metadata.example/hook", b"{}", {"Content-Type": "application/json"}, 2)
