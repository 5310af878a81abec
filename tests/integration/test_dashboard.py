"""Dashboard, live feed, alerts, webhooks, audit trail and reports against the real Fabric network.

gunicorn (2 workers: one holds the feed lock and listens) in a subprocess; events go in through the REST
API (and, while the gateway is stopped, straight to Fabric), come out on the Server-Sent-Events stream;
a restart resumes from the stored checkpoint without a gap or a duplicate. Uses its own authorisation
ids, lots and MRNs, so it shares the session's ledger with the other modules.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from ipledger.gateway.auth import KeyStore
from ipledger.gateway.config import keys_file_of
from ipledger.gateway.webhooks import verify
from tests.integration.test_gateway_api import (wait_committed_everywhere, REPO, SITE1, SITE2, USED_TYRES, day, ev,
                                                free_port, grant, register_parties)
from tests.unit.dashboard.signin import form_token

pytestmark = pytest.mark.fabric

AUTH = "FRIPO000061"
MRN_A, MRN_B = "26FR000110000061R5", "26FR000110000062R4"
SECRET = "integration-webhook-secret-0123456789"
ORGS = ("CustomsMSP", "OperatorMSP", "BrokerMSP")


class Gateway:
    """One organisation's gateway (``gateway serve --org``), restartable."""

    def __init__(self, state, tmp, org):
        self.state, self.tmp, self.org = state, tmp, org
        self.proc = None
        self.url = None
        self.runs = 0

    def start(self):
        port = free_port()
        self.runs += 1
        self.log = self.tmp / f"gateway-{self.org}-{self.runs}.log"
        self._logf = open(self.log, "w")
        env = {**os.environ, "IPLEDGER_WEBHOOK_BACKOFF_S": "0.3", "IPLEDGER_SSE_MAX_SECONDS": "20"}
        self.proc = subprocess.Popen([sys.executable, "-m", "ipledger.network.cli", "--state-dir", str(self.state), "gateway",
                                      "serve", "--org", self.org, "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "8"],
                                     cwd=REPO, stdout=self._logf, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"gateway exited:\n{self.log.read_text()[-3000:]}")
            try:
                if requests.get(self.url + "/readyz", timeout=5).status_code == 200:
                    return
            except requests.RequestException:  # refused, or no answer in time on a loaded machine
                pass
            time.sleep(0.2)
        self.stop()
        pytest.fail("gateway not ready")

    def stop(self):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            code = None
        finally:
            self._logf.close()
        leftover = subprocess.run(["pgrep", "-g", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        pid, self.proc = self.proc.pid, None
        assert code == 0, f"gateway {pid} exit {code}:\n{self.log.read_text()[-2000:]}"
        assert not leftover, f"gateway processes left: {leftover}"


class Receiver:
    def __init__(self, fail=2):
        self.fail, self.requests = fail, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append({"headers": dict(self.headers), "body": raw})
                self.send_response(500 if len(outer.requests) <= outer.fail else 200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ipledger"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class SSE:
    """Reads an SSE response in a thread; ``messages`` gets every complete message (dict)."""

    def __init__(self, url, key, last_event_id=None):
        headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.response = requests.get(url + "/api/v1/events/stream", headers=headers, stream=True, timeout=60)
        assert self.response.status_code == 200, self.response.text
        self.messages: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        msg = {}
        try:
            for line in self.response.iter_lines(decode_unicode=True):
                if line == "":
                    if msg:
                        self.messages.put(msg)
                    msg = {}
                elif not line.startswith(":"):
                    name, _, value = line.partition(": ")
                    msg[name] = value
        except Exception:  # noqa: BLE001 - closed
            pass

    def events(self, n, timeout=60):
        out, deadline = [], time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            try:
                m = self.messages.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if m.get("event") == "ledger-event":
                out.append(m)
        return out

    def until(self, event_id, timeout=60):
        """Ledger events up to and including ``event_id`` (the stream starts at the newest event the
        gateway's feed had stored when it opened, which may be just before a transaction committed)."""
        out, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline and not (out and out[-1]["id"] == event_id):
            out += self.events(1, timeout=max(0.1, deadline - time.monotonic()))
        return out

    def close(self):
        self.response.close()


@pytest.fixture(scope="module")
def env(fabric_network, ipledger_chaincode, tmp_path_factory):
    state = fabric_network.layout.root
    keys = {org: KeyStore(keys_file_of(state, org)).create(org, "clerk", f"dashboard test {org}")[1]
            for org in ORGS}   # each in its own organisation's gateway
    receiver = Receiver(fail=2)
    out = subprocess.run([sys.executable, "-m", "ipledger.network.cli", "--state-dir", str(state), "gateway", "webhooks",
                          "--gateway", "OperatorMSP", "add", receiver.url, "--org", "OperatorMSP", "--secret", SECRET,
                          "--types", "CeilingNear", "--authorisations", AUTH, "--json"],   # not other modules' alerts
                         cwd=REPO, capture_output=True, text=True, check=True)
    sub = json.loads(out.stdout)
    tmp = tmp_path_factory.mktemp("dashboard")
    gws = {org: Gateway(state, tmp, org) for org in ORGS}
    try:
        for gw in gws.values():
            gw.start()
        yield {"gws": gws, "keys": keys, "receiver": receiver, "sub": sub, "state": state, "net": fabric_network}
    finally:
        for gw in gws.values():
            gw.stop()
        receiver.close()


def post(env, body, org, status=201):
    r = requests.post(env["gws"][org].url + "/api/v1/events", json=body,
                      headers={"Authorization": f"Bearer {env['keys'][org]}"}, timeout=120)
    assert r.status_code == status, r.text
    out = r.json()
    if out.get("block_number"):   # the next read may go through another organisation's gateway and peer
        wait_committed_everywhere(env["net"], out["block_number"])
    return out


def get(env, path, org="CustomsMSP", **kw):
    return requests.get(env["gws"][org].url + path, headers={"Authorization": f"Bearer {env['keys'][org]}"}, timeout=60, **kw)


def place(lot_id, qty, mrn):
    return ev("PlaceUnderProcedure", f"dash-place-{lot_id}", authorisation_id=AUTH, lot_id=lot_id, mrn=mrn, item_no=1,
              procedure="5100", cn=USED_TYRES, description="used tyres", quantity=qty, unit="p/st",
              net_mass_g=qty * 9000, origin="MA", site=SITE1,
              commercial={"customs_value": {"amount": "12345.00", "currency": "EUR"}})


def test_event_submitted_through_the_api_arrives_on_the_sse_stream(env):
    for body, org in register_parties("dash-parties"):
        post(env, body, org)
    post(env, grant(AUTH, event_id="dash-grant"), "CustomsMSP")
    stream = SSE(env["gws"]["CustomsMSP"].url, env["keys"]["CustomsMSP"])
    try:
        out = post(env, place("D1", 1000, MRN_A), "BrokerMSP")
        got = stream.until(f"{out['block_number']}:{out['tx_id']}")
        assert got and got[-1]["id"] == f"{out['block_number']}:{out['tx_id']}"
        # anything before it was committed before the placement, and nothing came twice
        assert all(int(m["id"].split(":")[0]) < out["block_number"] for m in got[:-1])
        assert len({m["id"] for m in got}) == len(got)
        got = got[-1:]
        data = json.loads(got[0]["data"])
        assert data["event_type"] == "PlaceUnderProcedure" and data["event_id"] == "dash-place-D1"
        assert data["submitting_org"] == "BrokerMSP" and data["lots"] == ["D1"]
        assert "12345" not in got[0]["data"]                           # never commercial data
    finally:
        stream.close()
    # the gateway learnt the authorisation from the events
    assert AUTH in get(env, "/api/v1/dashboard/authorisations", "BrokerMSP").json()["authorisations"]


def test_restart_resumes_without_gap_or_duplicate(env, clients):
    operator = env["gws"]["OperatorMSP"]
    feed = get(env, "/api/v1/feed?limit=1", "OperatorMSP").json()["items"]
    last_id = feed[0]["id"]
    operator.stop()
    # committed while the gateway is down, straight through Fabric
    contract = clients.contract("OperatorMSP", "ipledger")
    missed = []
    for i, qty in enumerate((100, 50)):
        body = {k: v for k, v in ev("MoveGoods", f"dash-move-{i}", authorisation_id=AUTH, lot_id="D1", quantity=qty,
                                    from_site=SITE1, to_site=SITE2).items() if k != "type"}
        r = contract.submit("MoveGoods", [json.dumps(body)])
        missed.append(f"{r.block_number}:{r.tx_id}")
    operator.start()
    stream = SSE(operator.url, env["keys"]["OperatorMSP"], last_event_id=last_id)
    try:
        got = stream.events(2)
        assert [m["id"] for m in got] == missed                         # no gap, in order
        out = post(env, ev("MoveGoods", "dash-move-live", authorisation_id=AUTH, lot_id="D1", quantity=1,
                           from_site=SITE1, to_site=SITE2), "OperatorMSP")
        more = stream.events(1)
        assert [m["id"] for m in more] == [f"{out['block_number']}:{out['tx_id']}"]   # not the missed ones again
    finally:
        stream.close()
    ids = [i["id"] for i in get(env, "/api/v1/feed?limit=1000", "OperatorMSP").json()["items"]]
    assert len(ids) == len(set(ids))                                   # stored once
    assert set(missed) <= set(ids)


def test_alerts_and_signed_webhook_with_retries(env):
    out = post(env, place("D2", 3700, MRN_B), "BrokerMSP")               # 1000 + 3700 = 4700 >= 90 % of 5000
    alerts = get(env, "/api/v1/alerts", "OperatorMSP").json()
    near = [a for a in alerts["alerts"] if a["authorisation_id"] == AUTH and a["type"] == "CeilingNear"]
    assert len(near) == 1 and near[0]["details"]["quantity"] == 4700
    receiver = env["receiver"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(r for r in receiver.requests[2:]):
        time.sleep(0.2)
    assert len(receiver.requests) == 3, receiver.requests
    bodies = {r["body"] for r in receiver.requests}
    assert len(bodies) == 1                                            # the same delivery, retried
    raw = receiver.requests[-1]["body"]
    sig = receiver.requests[-1]["headers"]["X-Ipledger-Signature-V2"]
    stamp = receiver.requests[-1]["headers"]["X-Ipledger-Timestamp"]
    assert sig == "sha256=" + hmac.new(SECRET.encode(), stamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
    assert verify(SECRET, raw, sig, stamp)
    assert receiver.requests[-1]["headers"]["X-Ipledger-Signature"] == \
        "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()   # the body-only one, kept
    payload = json.loads(raw)
    assert payload["alert"]["type"] == "CeilingNear" and payload["alert"]["authorisation_id"] == AUTH
    assert payload["tx_id"] == out["tx_id"] and payload["block_number"] == out["block_number"]
    assert len({r["headers"]["X-Ipledger-Alert-Id"] for r in receiver.requests}) == 1
    # the delivery log is written after the receiver answered: wait for it, not for a fixed time;
    # the subscription is the operator's, on the operator's own gateway
    deadline = time.monotonic() + 30
    while True:
        log = get(env, "/api/v1/webhooks/deliveries", "OperatorMSP").json()["deliveries"]
        mine = [d for d in log if d["subscription_id"] == env["sub"]["id"]]
        if (mine and mine[0]["status"] == "DELIVERED") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [(d["status"], d["attempts"], d["last_status"]) for d in mine] == [("DELIVERED", 3, 200)]
    assert get(env, "/api/v1/webhooks/deliveries", "BrokerMSP").json()["deliveries"] == []


def test_audit_trail_with_endorsers_from_the_blocks(env):
    r = get(env, "/api/v1/lots/D1/audit", "BrokerMSP")
    entries = r.json()["entries"]
    assert [e["event_type"] for e in entries] == ["PlaceUnderProcedure", "MoveGoods", "MoveGoods", "MoveGoods"]
    first = entries[0]
    assert first["submitting_org"] == "BrokerMSP" and "User1@broker" in first["submitter_subject"]
    assert "CustomsMSP" in first["endorsing_orgs"] and len(first["endorsing_orgs"]) == 2
    assert first["validation_code"] == "VALID" and first["block_number"] > 0
    csv_text = get(env, "/api/v1/lots/D1/audit?format=csv", "OperatorMSP").text
    assert csv_text.splitlines()[0].startswith("block_number,tx_id,recorded_at")
    assert len(csv_text.strip().splitlines()) == 5


def test_trail_block_numbers_come_from_the_feed_without_asking_the_peer(env):
    """A trail's block numbers were asked of the peer one transaction at a time (qscc GetBlockByTxID, a whole block
    each, at most 500 an answer): the gateway's feed holds every transaction of the contract with its block, and
    answers them — the same numbers, no look-up."""
    history = get(env, "/api/v1/lots/D1/history", "OperatorMSP").json()["history"]
    wanted = {e["tx_id"] for e in history}
    deadline = time.monotonic() + 30
    while True:
        items = get(env, "/api/v1/feed?limit=1000", "OperatorMSP").json()["items"]
        in_feed = {i["id"].split(":", 1)[1]: int(i["id"].split(":", 1)[0]) for i in items}
        if wanted <= in_feed.keys():
            break
        assert time.monotonic() < deadline, "the feed did not store the lot's transactions"
        time.sleep(0.2)

    def lookups() -> float:
        text = get(env, "/metrics", "OperatorMSP").text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("ipledger_gateway_fabric_call_duration_seconds_count{")
                   and 'call="block_lookup"' in line)

    before = lookups()
    for path in ("/api/v1/lots/D1/history", "/api/v1/lots/D1/audit"):
        key = "history" if path.endswith("history") else "entries"
        entries = get(env, path, "OperatorMSP").json()[key]
        assert [e["block_number"] for e in entries] == [in_feed[e["tx_id"]] for e in entries], path
    assert lookups() == before


def test_an_authorisations_events_in_pages_on_the_peers(env):
    """GetEventsInPeriod's pages on a real peer: together the whole period, in order, ``next`` while more follow."""
    path = f"/api/v1/authorisations/{AUTH}/events?from=2020-01-01"
    whole = [e["tx_id"] for e in get(env, path, "CustomsMSP").json()["events"]]
    seen, after = [], None
    while True:
        page = get(env, path + "&limit=3" + (f"&after={after}" if after else ""), "CustomsMSP").json()
        seen += [e["tx_id"] for e in page["events"]]
        after = page.get("next")
        if after is None:
            break
    assert len(whole) > 3 and seen == whole


def test_report_cli_pdf_and_dashboard_pages(env, tmp_path):
    pdf = tmp_path / "bill.pdf"
    run_env = {**os.environ, "IPLEDGER_GATEWAY_URL": env["gws"]["OperatorMSP"].url, "IPLEDGER_API_KEY": env["keys"]["OperatorMSP"]}
    subprocess.run([sys.executable, "-m", "ipledger.network.cli", "report", "bill-of-discharge", AUTH, "--as-of", day(1),
                    "--format", "pdf", "-o", str(pdf)], cwd=REPO, env=run_env, check=True, capture_output=True)
    assert pdf.stat().st_mode & 0o777 == 0o600   # a bill carries customs values: its owner's only, whatever the umask
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert f"Bill of discharge {AUTH}" in text and MRN_A in text and MRN_B in text and "12345.00" in text
    out = subprocess.run([sys.executable, "-m", "ipledger.network.cli", "report", "inventory", "--as-of", day(1),
                          "--authorisation", AUTH, "--format", "csv"], cwd=REPO, env=run_env, check=True,
                         capture_output=True, text=True).stdout
    assert "D1" in out and "D2" in out and "3700" in out
    # the dashboard, signed in as the broker
    s = requests.Session()
    broker = env["gws"]["BrokerMSP"].url
    token = form_token(s.get(broker + "/dashboard/login").text)
    r = s.post(broker + "/dashboard/login", data={"api_key": env["keys"]["BrokerMSP"], "csrf": token},
               allow_redirects=False)
    assert r.status_code == 302 and "SameSite=Strict" in r.headers["Set-Cookie"]
    html = s.get(broker + f"/dashboard/authorisations/{AUTH}").text
    assert 'data-lot="D1"' in html and 'data-lot="D2"' in html and "CeilingNear" in html
    # the chart of each ceiling's use (the contract's GetCeilingUse on the peers) ends at its use now
    ceilings = get(env, f"/api/v1/authorisations/{AUTH}/balances", "BrokerMSP").json()["ceilings"]
    assert '<svg class="chart" role="img"' in html
    for c in ceilings:
        assert f"Quantity of input goods {c['cn']} under the procedure over the last 90 days at most ({c['unit']}); " \
               f"now {c['quantity']} {c['unit']}." in html
