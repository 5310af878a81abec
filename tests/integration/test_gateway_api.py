"""The REST gateways against the real Fabric network: one gunicorn per organisation, each with its own
organisation's identity only (customs', the operator's, the broker's), HTTP only; every org posts and
reads through its own gateway.

Follows domain.md §8 (authorisation FRIPO000001, lot L1 placed by the broker, moved and processed by the
operator, B1 re-exported by the broker...), then replays, refusals, the org/role matrix, 50 concurrent
submissions on one lot, an import, metrics aggregated over the gunicorn workers, and a bounded
schemathesis run over the OpenAPI document. The tests of this module run in order and share the ledger.

One file of some 650 lines because of that: its tests are the steps of one story on one ledger, each building
on the state the one before left; split, the order and the shared network would be hidden in fixtures.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from ipledger.chaincode.testing import mrns
from ipledger.gateway.auth import KeyStore
from ipledger.gateway.config import keys_file_of

pytestmark = pytest.mark.fabric

REPO = Path(__file__).resolve().parents[2]
AUTH = "FRIPO000001"
AUTH2 = "FRIPO000002"
HOLDER = "FR12345678901234"
BROKER_EORI = "FR98765432109876"
SITE1, SITE2 = "BOURGES-1", "BOURGES-2"
USED_TYRES, RETREADED, WASTE = "40122000", "40121200", "40040000"
MRN_L1 = "26FR000110000001R8"
MRN_EXIT_B1 = "26FR000110000007A7"
PROBLEMS = "https://ipledger.example/problems/"
ORGS = ("CustomsMSP", "OperatorMSP", "BrokerMSP")

D = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
BODIES: dict[str, dict] = {}  # events sent, by event_id (to replay them exactly)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def day(days: int) -> str:
    return (D + dt.timedelta(days=days)).date().isoformat()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_committed_everywhere(net, block: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    for peer in net.consortium.peers:
        while (net.peer_height(peer) or 0) <= block:
            assert time.monotonic() < deadline, f"{peer.id} did not commit block {block}"
            time.sleep(0.05)


class Api:
    """The three organisations' gateways: ``urls`` and ``logs`` by MSP id; ``url`` is customs'."""

    def __init__(self, urls: dict, keys: dict, logs: dict, procs: dict, net=None):
        self.urls, self.keys, self.logs, self.procs, self.net = urls, keys, logs, procs, net
        self.url = urls["CustomsMSP"]
        self.http = requests.Session()
        self.counts = {org: 0 for org in ORGS}   # events recorded (201) through each gateway, for its metrics

    def headers(self, org, role="clerk"):
        return {"Authorization": f"Bearer {self.keys[(org, role)]}"}

    def post(self, body, org, role="clerk", path="/api/v1/events", **kw) -> requests.Response:
        r = self.http.post(self.urls[org] + path, json=body, headers=self.headers(org, role), timeout=120, **kw)
        if path == "/api/v1/events" and r.status_code == 201:
            self.counts[org] += 1
        if r.status_code in (200, 201) and self.net is not None:
            # the answer means committed on the submitter's own peer; the next read may go through another
            # organisation's gateway and peer: wait until every peer has the block
            block = (r.json() if path == "/api/v1/events" else {}).get("block_number")
            if block:
                wait_committed_everywhere(self.net, block)
        return r

    def get(self, path, org="CustomsMSP", role="viewer", **kw) -> requests.Response:
        headers = {**self.headers(org, role), **kw.pop("headers", {})}
        return self.http.get(self.urls[org] + path, headers=headers, timeout=60, **kw)

    def ok(self, body, org, status=201) -> dict:
        r = self.post(body, org)
        assert r.status_code == status, f"{body['type']} as {org}: {r.status_code} {r.text}"
        return r.json()

    def refused(self, body, org, status, problem, role="clerk") -> dict:
        r = self.post(body, org, role)
        assert r.status_code == status, f"{body.get('type')} as {org}: {r.status_code} {r.text}"
        assert r.headers["Content-Type"].startswith("application/problem+json")
        p = r.json()
        assert p["type"] == PROBLEMS + problem, p
        assert p["request_id"] == r.headers["X-Request-Id"]
        return p


def _start_gateway(state: Path, org: str, log: Path) -> tuple[str, subprocess.Popen]:
    port = free_port()
    logf = open(log, "w")
    proc = subprocess.Popen([sys.executable, "-m", "ipledger.network.cli", "--state-dir", str(state), "gateway", "serve",
                             "--org", org, "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "16"],
                            cwd=REPO, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    logf.close()
    return f"http://127.0.0.1:{port}", proc


def _wait_ready(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    ready = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"gateway exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            ready = requests.get(url + "/readyz", timeout=5)
            if ready.status_code == 200:
                return
        except requests.RequestException:  # refused, or no answer in time on a loaded machine
            pass
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"gateway not ready: {ready and ready.text}\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen, log: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail("gunicorn did not stop on SIGTERM")
    assert code == 0, log.read_text()[-2000:]
    leftover = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert not leftover, f"gateway processes left: {leftover}"


@pytest.fixture(scope="module")
def api(fabric_network, ipledger_chaincode, tmp_path_factory):
    state = fabric_network.layout.root
    keys = {}
    for org in ORGS:   # each organisation's keys in its own gateway's store
        store = KeyStore(keys_file_of(state, org))
        for role in ("clerk", "viewer"):
            keys[(org, role)] = store.create(org, role, f"test {org} {role}")[1]
    # one key through the real command line
    out = subprocess.run([sys.executable, "-m", "ipledger.network.cli", "--state-dir", str(state), "gateway", "keys",
                          "--gateway", "OperatorMSP", "create", "--org", "OperatorMSP", "--role", "viewer", "--json"],
                         cwd=REPO, capture_output=True, text=True, check=True)
    keys[("OperatorMSP", "cli-viewer")] = json.loads(out.stdout)["key"]

    logs_dir = tmp_path_factory.mktemp("gateway")
    urls, procs, logs = {}, {}, {}
    try:
        for org in ORGS:
            logs[org] = logs_dir / f"gateway-{org}.log"
            urls[org], procs[org] = _start_gateway(state, org, logs[org])
        for org in ORGS:
            _wait_ready(urls[org], procs[org], logs[org])
        yield Api(urls, keys, logs, procs, fabric_network)
    finally:
        problems = []
        for org, proc in procs.items():   # stop every one, then report
            try:
                _stop(proc, logs[org])
            except (AssertionError, pytest.fail.Exception) as exc:
                problems.append(f"{org}: {exc}")
        assert not problems, "\n".join(problems)


def test_members_come_from_the_live_config_block(api, fabric_network):
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    r = api.get("/api/v1/members", "BrokerMSP", "viewer")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["channel"] == fabric_network.consortium.channel
    assert body["admins_policy"] == "AND('CustomsMSP.admin', 'OperatorMSP.admin')"
    by_id = {o["msp_id"]: o for o in body["organisations"]}
    assert sorted(by_id) == sorted([*ORGS, "OrdererMSP"])
    for org in fabric_network.consortium.orgs:
        entry = by_id[org.msp_id]
        assert entry["role"] == "application" and entry["description"] == org.description
        assert entry["anchor_peers"] == [org.nodes[0].address]
        ca_pem = next((fabric_network.layout.org_msp(org) / "cacerts").glob("*.pem")).read_bytes()
        ca = x509.load_pem_x509_certificate(ca_pem)
        assert entry["root_certificates"][0]["sha256"] == hashlib.sha256(ca.public_bytes(Encoding.DER)).hexdigest()
    assert by_id["OrdererMSP"]["endpoints"] == [n.address for n in fabric_network.consortium.orderers]


# ------------------------------------------------------------------------------------------ events

def ev(event_type: str, event_id: str, **fields) -> dict:
    return {"type": event_type, "event_id": event_id, "occurred_at": now(), **fields}


def register_parties(prefix: str) -> list[tuple[dict, str]]:
    """(body, org): customs register the operator as the holder of HOLDER and the broker as a representative
    with BROKER_EORI — the contract refuses organisations customs did not register."""
    return [(ev("RegisterParty", f"{prefix}-operator", msp_id="OperatorMSP", role="holder", eoris=[HOLDER]),
             "CustomsMSP"),
            (ev("RegisterParty", f"{prefix}-broker", msp_id="BrokerMSP", role="representative", eoris=[BROKER_EORI]),
             "CustomsMSP")]


def grant(auth_id=AUTH, event_id="grant-1", **overrides) -> dict:
    body = ev("GrantAuthorisation", event_id, authorisation_id=auth_id, holder_eori=HOLDER,
              supervising_office="FR000110", valid_from=day(-30), valid_to=day(335), sites=[SITE1, SITE2],
              input_goods=[{"cn": USED_TYRES, "description": "used pneumatic tyres", "unit": "p/st",
                            "max_qty": 5000}],
              processed_products=[{"cn": RETREADED, "kind": "MAIN", "unit": "p/st", "description": "retreaded"},
                                  {"cn": WASTE, "kind": "WASTE", "unit": "kg", "description": "rubber waste"}],
              yield_rates=[{"input_cn": USED_TYRES, "output_cn": RETREADED, "output_per_input": 1}],
              yield_warn_pct=0.5, yield_block_pct=2, discharge_period_days=180, broker_mandates=[BROKER_EORI])
    body.update(overrides)
    return body


def place(lot_id, qty, mrn, event_id=None, value="25000.00", auth_id=AUTH, site=SITE1, item_no=1) -> dict:
    return ev("PlaceUnderProcedure", event_id or f"place-{lot_id}", authorisation_id=auth_id, lot_id=lot_id,
              mrn=mrn, item_no=item_no, procedure="5100", cn=USED_TYRES, description="used tyres", quantity=qty,
              unit="p/st", net_mass_g=qty * 9000, origin="MA", site=site,
              commercial={"customs_value": {"amount": value, "currency": "EUR"}})


def move(event_id, qty, lot_id="L1", frm=SITE1, to=SITE2) -> dict:
    return ev("MoveGoods", event_id, authorisation_id=AUTH, lot_id=lot_id, quantity=qty, from_site=frm, to_site=to)


def process(event_id, op_id, lot_qty, main_qty, waste_kg=1200, lot_id="L1", batches=("B1", "B2")) -> dict:
    return ev("RecordProcessing", event_id, authorisation_id=AUTH, operation_id=op_id, site=SITE1,
              inputs=[{"lot_id": lot_id, "qty": lot_qty}],
              outputs=[{"batch_id": batches[0], "cn": RETREADED, "qty": main_qty, "unit": "p/st", "kind": "MAIN"},
                       {"batch_id": batches[1], "cn": WASTE, "qty": waste_kg, "unit": "kg", "kind": "WASTE"}])


def exit_(event_id, qty, mrn, lot_id=None, batch_id=None, procedure="3151") -> dict:
    ref = {"lot_id": lot_id} if lot_id else {"batch_id": batch_id}
    return ev("ExitGoods", event_id, authorisation_id=AUTH, **ref, quantity=qty, procedure=procedure, mrn=mrn)


def lot(api, lot_id, org="CustomsMSP") -> dict:
    r = api.get(f"/api/v1/lots/{lot_id}", org)
    assert r.status_code == 200, r.text
    return r.json()


def events_of(api, auth_id=AUTH) -> list:
    r = api.get(f"/api/v1/authorisations/{auth_id}/events", params={"from": day(-1), "to": day(2)})
    assert r.status_code == 200, r.text
    return r.json()["events"]


# ------------------------------------------------------------------------------------------ tests

def test_service_endpoints(api):
    # each gateway acts for its own organisation only, and is ready before customs register it: the contract's
    # refusal of an unknown organisation is an answer (another suite of the session may have registered it)
    for org in ORGS:
        r = requests.get(api.urls[org] + "/readyz", timeout=10)
        assert r.status_code == 200 and r.json()["status"] == "ready", r.text
        assert r.json()["orgs"][org] in (("ok",) if org == "CustomsMSP" else ("ok", "ok (UnknownParty)")), r.text
    for body, org in register_parties("parties-0"):
        assert api.ok(body, org)["result"]["party"]["status"] == "REGISTERED"
    for org in ORGS:
        assert requests.get(api.urls[org] + "/readyz", timeout=10).json() == {"status": "ready", "orgs": {org: "ok"}}
    for org in ORGS:   # each gateway names its own organisation, and only it
        assert requests.get(api.urls[org] + "/healthz").json() == {"status": "ok", "orgs": [org]}
    doc = requests.get(api.url + "/api/v1/openapi.json").json()
    assert doc["openapi"] == "3.1.0" and "/api/v1/events" in doc["paths"]
    assert "PlaceUnderProcedure" in requests.get(api.url + "/api/v1/docs").text
    r = api.get("/api/v1/parameters", "OperatorMSP", "cli-viewer", headers={"X-Request-Id": "it-req-1"})
    assert r.status_code == 200 and r.json()["max_clock_skew_s"] == 300
    assert r.headers["X-Request-Id"] == "it-req-1"
    assert len(requests.get(api.url + "/healthz").headers["X-Request-Id"]) == 32


def test_happy_path_every_event_type(api):
    """domain.md §8 through HTTP, one event type after the other, each as the org that performs it."""
    blocks = []

    def done(out):
        assert out["status"] == "COMMITTED" and len(out["tx_id"]) == 64 and out["block_number"] > 0
        blocks.append(out["block_number"])
        return out

    # customs: the register of parties (the holder, its broker), the authorisation
    for body, org in register_parties("parties-1"):
        r = done(api.ok(body, org))
        assert r["result"]["party"]["status"] == "REGISTERED"
    g = done(api.ok(grant(), "CustomsMSP"))
    assert g["org"] == "CustomsMSP" and g["result"]["authorisation"]["status"] == "ACTIVE"

    # 1. the broker places L1: 1,000 p/st at BOURGES-1, customs value 25,000 EUR (private)
    BODIES["place-L1"] = place("L1", 1000, MRN_L1)
    p = done(api.ok(BODIES["place-L1"], "BrokerMSP"))
    assert p["org"] == "BrokerMSP"
    assert lot(api, "L1")["balance"] == 1000
    # 2. the operator moves 400 to BOURGES-2
    done(api.ok(move("move-1", 400), "OperatorMSP"))
    assert lot(api, "L1")["stock"] == {SITE1: 600, SITE2: 400}
    # 3. the operator processes 500 of L1 -> B1 495 retreaded + B2 1,200 kg waste
    op = done(api.ok(process("proc-1", "OP1", 500, 495), "OperatorMSP"))
    assert op["result"]["operation"]["yield"][0]["actual_per_input"] == "0.99"
    l1 = lot(api, "L1")
    assert l1["balance"] == 500 and l1["stock"] == {SITE1: 100, SITE2: 400}
    b1 = api.get("/api/v1/batches/B1").json()
    assert b1["balance"] == 495 and b1["source_lots"] == [{"lot_id": "L1", "qty": 500}]
    # 4. the broker re-exports B1's 495
    done(api.ok({**exit_("exit-B1", 495, MRN_EXIT_B1, batch_id="B1"),
                 "commercial": {"invoice_price": {"amount": "61875.00", "currency": "EUR"}}}, "BrokerMSP"))
    assert api.get("/api/v1/batches/B1").json()["balance"] == 0
    # customs confirm the exit, dated today (not day(0): D is the module's import time, and a date before the
    # re-export's declaration is OutOfOrder when the suite has passed midnight UTC since)
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    p = api.refused(ev("ConfirmExit", "confirm-0", authorisation_id=AUTH, mrn=MRN_EXIT_B1, exit_date=today,
                       items=[{"item_no": 1, "quantity": 500}]), "CustomsMSP", 409, "exit-mismatch")
    assert p["details"]["recorded"] == 495
    done(api.ok(ev("ConfirmExit", "confirm-1", authorisation_id=AUTH, mrn=MRN_EXIT_B1, exit_date=today,
                   items=[{"item_no": 1, "quantity": 495}]), "CustomsMSP"))
    # the operator records a loss of 1 p/st of L1 (by nature)
    done(api.ok(ev("RecordLoss", "loss-1", authorisation_id=AUTH, lot_id="L1", quantity=1, reason="NATURE",
                   site=SITE1, evidence_hash=hashlib.sha256(b"loss report 1").hexdigest()), "OperatorMSP"))
    assert lot(api, "L1")["stock"] == {SITE1: 99, SITE2: 400}
    # customs count L1 at BOURGES-1: as booked
    done(api.ok(ev("RecordControl", "control-1", authorisation_id=AUTH, site=SITE1,
                   counted=[{"lot_id": "L1", "qty": 99}], findings="as booked"), "CustomsMSP"))
    # customs extend L1's period
    new_deadline = (D + dt.timedelta(days=200)).isoformat().replace("+00:00", "Z")
    done(api.ok(ev("ExtendDischargePeriod", "extend-1", authorisation_id=AUTH, lot_ids=["L1"],
                   new_deadline=new_deadline, reason="repair backlog"), "CustomsMSP"))
    assert lot(api, "L1")["deadline"].startswith(day(200))
    # customs amend (a higher ceiling), suspend and reinstate the authorisation
    amended = grant(event_id="amend-1", type="AmendAuthorisation", reason="ceiling raised")
    amended["input_goods"][0]["max_qty"] = 5000
    done(api.ok(amended, "CustomsMSP"))
    done(api.ok(ev("SuspendAuthorisation", "suspend-1", authorisation_id=AUTH, reason="audit"), "CustomsMSP"))
    assert api.get(f"/api/v1/authorisations/{AUTH}").json()["status"] == "SUSPENDED"
    done(api.ok(ev("ReinstateAuthorisation", "reinstate-1", authorisation_id=AUTH, reason="audit closed"),
                "CustomsMSP"))
    auth = api.get(f"/api/v1/authorisations/{AUTH}").json()
    assert auth["status"] == "ACTIVE" and auth["version"] == 2
    # a second authorisation, revoked
    done(api.ok(grant(AUTH2, "grant-2", broker_mandates=[]), "CustomsMSP"))
    done(api.ok(ev("RevokeAuthorisation", "revoke-2", authorisation_id=AUTH2, reason="holder request"), "CustomsMSP"))
    assert api.get(f"/api/v1/authorisations/{AUTH2}").json()["status"] == "REVOKED"
    # the bill of discharge for the period that ended yesterday: hash from the ledger's own data
    data = api.get(f"/api/v1/authorisations/{AUTH}/bill-of-discharge-data", "OperatorMSP",
                   params={"period_end": day(-1)}).json()
    bill = done(api.ok(ev("SubmitBillOfDischarge", "bill-1", authorisation_id=AUTH, period_end=day(-1),
                          document_hash=data["document_hash"]), "OperatorMSP"))
    bill_id = bill["result"]["bill"]["bill_id"]
    assert bill_id == f"BOD-{AUTH}-{day(-1)}"
    done(api.ok(ev("DecideBillOfDischarge", "decide-1", authorisation_id=AUTH, bill_id=bill_id,
                   decision="ACCEPTED", note="ok"), "CustomsMSP"))
    assert api.get(f"/api/v1/bills-of-discharge/{bill_id}").json()["status"] == "ACCEPTED"
    assert blocks == sorted(blocks)
    # every event type went through
    types = {e["event_type"] for e in events_of(api)} | {e["event_type"] for e in events_of(api, AUTH2)}
    assert types >= {"GrantAuthorisation", "AmendAuthorisation", "SuspendAuthorisation", "ReinstateAuthorisation",
                     "ExtendDischargePeriod", "PlaceUnderProcedure", "MoveGoods", "RecordProcessing", "RecordLoss",
                     "ExitGoods", "ConfirmExit", "RecordControl", "SubmitBillOfDischarge", "DecideBillOfDischarge",
                     "RevokeAuthorisation"}


def test_queries_and_audit_trail(api):
    # customs and the holder read the customs value; the broker only its hash
    assert lot(api, "L1", "OperatorMSP")["commercial"]["customs_value"] == {"amount": "25000.00", "currency": "EUR"}
    broker_view = lot(api, "L1", "BrokerMSP")
    assert "commercial" not in broker_view and len(broker_view["commercial_hash"]) == 64
    trail = api.get("/api/v1/lots/L1/history", "CustomsMSP").json()["history"]
    assert [e["event_type"] for e in trail][:3] == ["PlaceUnderProcedure", "MoveGoods", "RecordProcessing"]
    first = trail[0]
    assert first["submitting_org"] == "BrokerMSP" and first["event_id"] == "place-L1"
    assert isinstance(first["block_number"], int) and first["block_number"] > 0
    assert first["recorded_at"].startswith(day(0)) or first["recorded_at"].startswith(day(1))
    assert [e["block_number"] for e in trail] == sorted(e["block_number"] for e in trail)
    alerts = api.get(f"/api/v1/authorisations/{AUTH}/alerts", "OperatorMSP").json()["alerts"]
    assert "YieldDeviation" in {a["type"] for a in alerts}
    ahead = api.get(f"/api/v1/authorisations/{AUTH}/alerts", params={"as_of": day(190)}).json()["alerts"]
    assert "DeadlineApproaching" in {a["type"] for a in ahead}
    balances = api.get(f"/api/v1/authorisations/{AUTH}/balances", "BrokerMSP").json()
    assert balances["ceilings"][0]["quantity"] >= 499
    b1_trail = api.get("/api/v1/batches/B1/history").json()["history"]
    assert [(e["event_type"], e["submitting_org"]) for e in b1_trail] == [
        ("RecordProcessing", "OperatorMSP"), ("ExitGoods", "BrokerMSP"), ("ConfirmExit", "CustomsMSP"),
        ("ExtendDischargePeriod", "CustomsMSP")]  # L1's extension moves B1's deadline too
    # from a declaration to all its events: the placement's item carries L1's trail, with blocks and orgs
    decl = api.get(f"/api/v1/declarations/{MRN_L1}", "OperatorMSP").json()
    assert [(i["item_no"], i["id"]) for i in decl["items"]] == [(1, "L1")]
    assert [(e["event_id"], e["block_number"]) for e in decl["items"][0]["events"]] == [
        (e["event_id"], e["block_number"]) for e in trail]
    exit_decl = api.get(f"/api/v1/declarations/{MRN_EXIT_B1}", "BrokerMSP").json()
    assert [e["event_type"] for e in exit_decl["items"][0]["events"]] == ["ExitGoods", "ConfirmExit"]
    assert exit_decl["items"][0]["events"][0]["submitting_org"] == "BrokerMSP"
    # the exit's invoice price (private data): customs and the holder read it, the broker its hash
    assert "commercial" not in exit_decl["items"][0] and len(exit_decl["items"][0]["commercial_hash"]) == 64
    for org in ("CustomsMSP", "OperatorMSP"):
        item = api.get(f"/api/v1/declarations/{MRN_EXIT_B1}", org).json()["items"][0]
        assert item["commercial"]["invoice_price"] == {"amount": "61875.00", "currency": "EUR"}, org
    r = api.get("/api/v1/declarations/26FR000110000099R1", "CustomsMSP")
    assert r.status_code == 404 and r.json()["type"].endswith("/not-found")
    # the register of parties: customs see every entry, a registered party its own
    assert {p["msp_id"] for p in api.get("/api/v1/parties").json()["parties"]} >= {"OperatorMSP", "BrokerMSP"}
    own = api.get("/api/v1/parties", "BrokerMSP").json()["parties"]
    assert [(p["msp_id"], p["role"], p["eoris"]) for p in own] == [("BrokerMSP", "representative", [BROKER_EORI])]


def test_replay_is_idempotent_and_other_content_is_duplicate_event(api):
    original = next(e for e in events_of(api) if e["event_id"] == "place-L1")
    r = api.post(BODIES["place-L1"], "BrokerMSP")   # the same event, the same content
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "REPLAYED" and out["tx_id"] == original["tx_id"]
    assert out["block_number"] == original["block_number"] and out["replay_tx_id"] != original["tx_id"]
    p = api.refused({**BODIES["place-L1"], "quantity": 999}, "BrokerMSP", 409, "duplicate-event")
    assert p["code"] == "DuplicateEvent" and p["details"]["original_tx_id"] == original["tx_id"]
    assert lot(api, "L1")["placed"] == 1000


def test_refusals_leave_the_ledger_unchanged(api):
    before_lot, before_events = lot(api, "L1"), events_of(api)
    bad_mrn = place("L9", 10, mrns.placement_mrn(9)[:17])      # 17 characters
    p = api.refused(bad_mrn, "BrokerMSP", 400, "invalid-mrn")
    assert p["code"] == "InvalidMrn" and p["errors"][0]["path"] == "/mrn"
    p = api.refused(place("L9", 10, mrns.with_bad_check_digit(mrns.placement_mrn(9))), "BrokerMSP", 400,
                    "invalid-mrn")
    assert "check digit" in p["errors"][0]["message"]
    api.refused(place("L9", 10, mrns.placement_mrn(9) + "\n"), "BrokerMSP", 400, "invalid-mrn")
    api.refused({"type": "Teleport", "event_id": "t1"}, "OperatorMSP", 400, "invalid-event")
    r = api.http.post(api.urls["OperatorMSP"] + "/api/v1/events", data="{oops", headers={**api.headers("OperatorMSP"),
                                                                        "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["type"] == PROBLEMS + "bad-request"
    r = api.http.post(api.urls["OperatorMSP"] + "/api/v1/events", data=json.dumps(move("m-ct", 1)),
                      headers={**api.headers("OperatorMSP"), "Content-Type": "text/plain"})
    assert r.status_code == 415 and r.json()["type"] == PROBLEMS + "unsupported-media-type"
    r = api.http.post(api.urls["OperatorMSP"] + "/api/v1/events", json=move("m-x", 1))
    assert r.status_code == 401 and r.json()["type"] == PROBLEMS + "unauthenticated"
    api.refused(move("m-viewer", 1), "OperatorMSP", 403, "forbidden", role="viewer")
    api.refused(grant("FRIPO000009", "grant-by-op"), "OperatorMSP", 403, "not-permitted")
    api.refused(place("L9", 10, "26FR000110000099R1", auth_id="FRIPO999999"), "OperatorMSP", 404, "not-found")
    # 5. exit 600 of L1 (499 left) -> QuantityExceedsBalance
    p = api.refused(exit_("exit-600", 600, "26FR000110000600A7", lot_id="L1", procedure="4051"), "OperatorMSP",
                    409, "quantity-exceeds-balance")
    assert p["code"] == "QuantityExceedsBalance" and p["details"]
    # 3'. yield 500 -> 480 -> YieldOutOfTolerance (L1 has only 99 at BOURGES-1: process 90 -> 80)
    p = api.refused(process("proc-bad", "OPX", 90, 80, batches=("BX1", "BX2")), "OperatorMSP", 409,
                    "yield-out-of-tolerance")
    assert float(p["details"]["deviation_pct"]) > 2   # a decimal string
    api.refused(move("move-site", 1, to="LYON-9"), "OperatorMSP", 409, "site-not-authorised")
    assert lot(api, "L1") == before_lot
    assert events_of(api) == before_events
    assert api.get("/api/v1/lots/L9").status_code == 404


def test_ceiling(api):
    # 6. L2 of 4,200 accepted (CeilingNear), L3 of 400 -> CeilingExceeded
    api.ok(place("L2", 4200, "26FR000110000002R7"), "BrokerMSP")
    alerts = api.get(f"/api/v1/authorisations/{AUTH}/alerts").json()["alerts"]
    assert "CeilingNear" in {a["type"] for a in alerts}
    p = api.refused(place("L3", 400, "26FR000110000003R6"), "BrokerMSP", 409, "ceiling-exceeded")
    assert p["details"]["max_qty"] == 5000
    assert api.get("/api/v1/lots/L3").status_code == 404


def test_a_kept_balance_answer_is_never_older_than_the_peer(api, clients):
    """Customs' gateway gives a balance answer again while its peer's height is unchanged (gateway/answers.py):
    an exit committed without any gateway — the Fabric client, as the operator — shows in the next answer of
    either gunicorn worker, and the repeated queries before it were answers given again."""
    path = f"/api/v1/authorisations/{AUTH}/balances"

    def input_stock() -> int:   # a new connection each time: gunicorn hands it to either worker
        r = requests.get(api.url + path, headers={**api.headers("CustomsMSP", "viewer"), "Connection": "close"},
                         timeout=60)
        assert r.status_code == 200, r.text
        return next(b["stock"] for b in r.json()["balances"] if b["category"] == "INPUT" and b["cn"] == USED_TYRES)

    def reused() -> float:
        text = requests.get(api.urls["CustomsMSP"] + "/metrics", headers=api.headers("CustomsMSP"), timeout=10).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith('ipledger_gateway_query_answers_total{function="GetBalances",outcome="reused"}'))

    before = input_stock()
    reused_before = reused()
    assert {input_stock() for _ in range(8)} == {before}
    assert reused() > reused_before
    body = exit_("cache-exit", 1, mrns.exit_mrn(777), lot_id="L2", procedure="4051")
    event = {k: v for k, v in body.items() if k != "type"}
    done = clients.contract("OperatorMSP", "ipledger").submit("ExitGoods", [json.dumps(event)])
    wait_committed_everywhere(api.net, done.block_number)
    assert [input_stock() for _ in range(8)] == [before - 1] * 8


def test_org_and_role_matrix(api):
    """Who may do what, through HTTP: the key's org and role decide; the contract has the last word."""
    acts = {
        "customs act": lambda i: ev("SetParameters", f"mx-param-{i}", parameters={"warn_days": 30}),
        "holder act": lambda i: move(f"mx-move-{i}", 1, lot_id="L2"),
        "declaration": lambda i: exit_(f"mx-exit-{i}", 1, mrns.exit_mrn(900 + i), lot_id="L2", procedure="4051"),
    }
    expected = {  # (org, act) -> status for a clerk
        ("CustomsMSP", "customs act"): 201, ("OperatorMSP", "customs act"): 403, ("BrokerMSP", "customs act"): 403,
        ("CustomsMSP", "holder act"): 403, ("OperatorMSP", "holder act"): 201, ("BrokerMSP", "holder act"): 403,
        ("CustomsMSP", "declaration"): 403, ("OperatorMSP", "declaration"): 201, ("BrokerMSP", "declaration"): 201,
    }
    got = {}
    for n, ((org, act), status) in enumerate(expected.items()):
        r = api.post(acts[act](n), org)
        got[(org, act)] = r.status_code
        if r.status_code == 403:
            assert r.json()["type"] == PROBLEMS + "not-permitted"
        rv = api.post(acts[act](100 + n), org, "viewer")
        assert rv.status_code == 403 and rv.json()["type"] == PROBLEMS + "forbidden"
    assert got == expected
    # reads: the broker sees only mandated authorisations; everybody reads the parameters
    assert api.get(f"/api/v1/authorisations/{AUTH2}", "BrokerMSP").status_code == 403
    assert api.get(f"/api/v1/authorisations/{AUTH}", "BrokerMSP").status_code == 200
    assert api.get(f"/api/v1/authorisations/{AUTH2}", "OperatorMSP").status_code == 200
    for org in ORGS:
        assert api.get("/api/v1/parameters", org, "viewer").status_code == 200


def test_50_concurrent_submissions_on_one_lot(api):
    """50 clerks move 1 p/st each of a lot holding 30 at BOURGES-1, all at once: every answer is a 201 or a
    clear 409, and the balances are exact."""
    api.ok(place("L4", 30, "26FR000110000004R5"), "BrokerMSP")
    bodies = [move(f"race-{i}", 1, lot_id="L4") for i in range(50)]
    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(lambda b: api.post(b, "OperatorMSP"), bodies))
    statuses = [r.status_code for r in answers]
    assert set(statuses) <= {201, 409}, [(r.status_code, r.text[:200]) for r in answers if r.status_code not in
                                         (201, 409)]
    moved = statuses.count(201)
    problems = {r.json()["type"] for r in answers if r.status_code == 409}
    assert problems <= {PROBLEMS + "quantity-exceeds-balance", PROBLEMS + "transaction-conflict",
                        PROBLEMS + "out-of-order"}, problems
    l4 = lot(api, "L4")
    assert l4["stock"].get(SITE1, 0) == 30 - moved and l4["stock"].get(SITE2, 0) == moved
    assert moved == 30 or problems - {PROBLEMS + "quantity-exceeds-balance"}
    if moved < 30:
        # what was refused for a conflict can simply be sent again (same event_id): no double counting
        for b, r in zip(bodies, answers):
            if r.status_code == 409:
                again = api.post(b, "OperatorMSP")
                assert again.status_code in (201, 409)
        l4 = lot(api, "L4")
        assert l4["stock"].get(SITE1, 0) + l4["stock"].get(SITE2, 0) == 30
    moved_events = [e for e in events_of(api) if e["event_id"].startswith("race-")]
    assert len(moved_events) == lot(api, "L4")["stock"].get(SITE2, 0)


def test_batch_endpoint(api):
    items = [move("batch-1", 1, lot_id="L2"), move("batch-2", 10_000, lot_id="L2"),
             {**move("batch-3", 1, lot_id="L2"), "quantity": 0}, move("batch-1", 1, lot_id="L2")]
    items[3]["occurred_at"] = items[0]["occurred_at"]  # identical content: a replay
    r = api.post({"events": items}, "OperatorMSP", path="/api/v1/events/batch")
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert [(x["outcome"], x["status"]) for x in res] == [("COMMITTED", 201), ("REFUSED", 409), ("REFUSED", 400),
                                                          ("REPLAYED", 200)]
    assert res[1]["problem"]["type"] == PROBLEMS + "quantity-exceeds-balance"
    assert res[3]["tx_id"] == res[0]["tx_id"]


def test_erp_import(api, tmp_path):
    path = tmp_path / "erp.csv"
    lines = ["type,event_id,authorisation_id,occurred_at,lot_id,quantity,from_site,to_site"]
    for i in range(3):
        lines.append(f"MoveGoods,erp-{i},{AUTH},{now()},L2,1,{SITE1},{SITE2}")
    lines.append(f"MoveGoods,erp-bad,{AUTH},{now()},L2,100000,{SITE1},{SITE2}")
    path.write_text("\n".join(lines) + "\n")
    report = tmp_path / "report.csv"
    env = {**os.environ, "IPLEDGER_GATEWAY_URL": api.urls["OperatorMSP"],
           "IPLEDGER_API_KEY": api.keys[("OperatorMSP", "clerk")]}
    run = subprocess.run([sys.executable, "-m", "ipledger.network.cli", "import", str(path), "--report", str(report)],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stderr  # one line refused
    assert "4/4 lines" in run.stderr
    import csv
    rows = list(csv.DictReader(open(report)))
    assert [(r["line"], r["status"], r["outcome"]) for r in rows] == [
        ("2", "201", "COMMITTED"), ("3", "201", "COMMITTED"), ("4", "201", "COMMITTED"), ("5", "409", "REFUSED")]
    assert rows[3]["problem_type"] == "quantity-exceeds-balance"
    tx_ids = {e["event_id"]: e["tx_id"] for e in events_of(api)}
    assert [r["tx_id"] for r in rows[:3]] == [tx_ids[f"erp-{i}"] for i in range(3)]
    # running it again: everything is already done (progress file); with --restart: replays
    again = subprocess.run([sys.executable, "-m", "ipledger.network.cli", "import", str(path), "--restart", "--quiet",
                            "--report", str(report)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 1
    assert [r["outcome"] for r in csv.DictReader(open(report))] == ["REPLAYED"] * 3 + ["REFUSED"]


def test_metrics_aggregate_the_workers_and_logs_hold_no_secrets(api):
    import_201 = 3  # the import above posted 3 events through the operator's gateway, recorded the first time
    for org in ORGS:
        text = requests.get(api.urls[org] + "/metrics", headers=api.headers(org), timeout=10).text
        total = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                    if line.startswith('ipledger_gateway_requests_total{method="POST",route="/api/v1/events",'
                                       'status="201"}'))
        assert total == api.counts[org] + (import_201 if org == "OperatorMSP" else 0), org
    text = requests.get(api.urls["OperatorMSP"] + "/metrics", headers=api.headers("OperatorMSP"), timeout=10).text
    assert 'ipledger_gateway_fabric_call_duration_seconds_bucket{call="submit",function="MoveGoods"' in text
    log = "".join(f.read_text() for f in api.logs.values())
    lines = [json.loads(x) for x in log.splitlines() if x.startswith("{")]
    assert any(x.get("route") == "/api/v1/events" and x.get("status") == 201 for x in lines)
    for key in api.keys.values():
        assert key not in log and key.split("_", 2)[2] not in log
    assert "25000.00" not in log and "customs_value" not in log


def test_unreachable_peer_is_503_with_retry_after(fabric_network):
    """A gateway whose peer address answers nothing (a closed port): 503 + Retry-After, also on /readyz."""
    from dataclasses import replace

    from ipledger.gateway.app import create_app
    from ipledger.gateway.config import GatewayConfig
    cfg = GatewayConfig.from_state_dir(fabric_network.layout.root, org="OperatorMSP", evaluate_timeout=3,
                                       submit_timeout=5, ready_timeout=3, key_in_child_process=True)
    dead = f"127.0.0.1:{free_port()}"
    cfg = cfg.with_(orgs={o: replace(c, peer_address=dead) for o, c in cfg.orgs.items()})
    app = create_app(cfg)
    client = app.test_client()
    key = KeyStore(cfg.keys_file).create("OperatorMSP", "clerk")[1]
    r = client.get("/api/v1/lots/L1", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 503 and r.headers["Retry-After"] == "5", r.json
    assert r.json["type"] == PROBLEMS + "service-unavailable"
    r = client.post("/api/v1/events", json=move("dead-1", 1), headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    r = client.get("/readyz")
    assert r.status_code == 503 and set(r.json["orgs"].values()) == {"unavailable (UNAVAILABLE)"}


def test_schemathesis_finds_no_server_error(api):
    """A bounded run over the OpenAPI document against the real gateway: every GET operation and
    POST /api/v1/events (as the operator: its random events are refused by the contract, never 5xx)."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

    schema = schemathesis.openapi.from_url(api.urls["OperatorMSP"] + "/api/v1/openapi.json")
    checks = [not_a_server_error, status_code_conformance, content_type_conformance]
    headers = api.headers("OperatorMSP")
    statuses = {}
    for result in schema.get_all_operations():
        op = result.ok()
        if op.method != "get" and op.path != "/api/v1/events":
            continue
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            if op.path in ("/healthz", "/readyz", "/metrics", "/api/v1/docs", "/api/v1/openapi.json") and \
                    mode == schemathesis.GenerationMode.NEGATIVE:
                continue

            @settings(max_examples=8 if op.method == "post" else 4, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
            @given(case=op.as_strategy(generation_mode=mode))
            def run(case):
                response = case.call(headers=headers, timeout=120)
                statuses.setdefault(op.path, set()).add(response.status_code)
                case.validate_response(response, checks=checks)

            run()
    assert all(s < 500 for v in statuses.values() for s in v), statuses
    assert {400} <= statuses["/api/v1/events"]
