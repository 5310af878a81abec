"""Helpers of the fault, Raft and security tests: an own network per test module, the REST gateway as a
gunicorn subprocess that can be killed and restarted, a steady event load through the REST API, and
exactly-once checks on the ledger.

Everything runs on loopback, every loop is bounded. The event bodies and helpers come from
``test_gateway_api`` (imported, not copied).

One file of some 600 lines: the fault, Raft and security modules share these helpers (the network, the
gunicorn subprocess, the load and the exactly-once checks), which depend on each other; splitting them would
spread one test harness over several files.
"""
from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from ipledger.chaincode.testing import mrns
from ipledger.gateway.auth import KeyStore
from ipledger.gateway.config import keys_file_of
from ipledger.network.channel.package import ChaincodeSpec
from ipledger.network.channel.chaincode import Deployer
from ipledger.network.org.nodes import Nodes
from ipledger.network.errors import NetworkError
from ipledger.network.org import processes

from .conftest import Clients, free_base_port, processes_using
from .test_gateway_api import AUTH, ORGS, PROBLEMS, SITE1, SITE2, day, exit_, free_port, grant, move, place

REPO = Path(__file__).resolve().parents[2]
QUIET = lambda *_: None  # noqa: E731

# what a client may get back for a transient condition (and then must send the same event again)
RETRYABLE_PROBLEMS = {
    503: {PROBLEMS + "service-unavailable"},
    504: {PROBLEMS + "gateway-timeout"},
    409: {PROBLEMS + "transaction-conflict"},
}


# ----------------------------------------------------------------------------------------------- network

def start_network(state: Path, consortium_file: Path | None = None) -> Nodes:
    """A fresh network in ``state`` on free loopback ports, the ipledger contract deployed."""
    net = Nodes.open(state, consortium_file=consortium_file, base_port=free_base_port())
    try:
        net.up(log=QUIET, timeout=120)
        Deployer(net, log=QUIET).deploy(ChaincodeSpec.default())
    except BaseException:
        stop_network(net, check=False)
        raise
    return net


def leftover_processes(root: Path) -> list[str]:
    """Nodes (FABRIC_CFG_PATH under ``root``) and any other process whose command line, working directory or
    environment names ``root`` (chaincode launched by the peers, gunicorn), as 'pid cmdline'."""
    root_b = str(root).encode()
    found = set(processes_using(root))
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if root_b in (proc / "cmdline").read_bytes() or root_b in (proc / "environ").read_bytes() \
                    or str(root) in os.readlink(proc / "cwd"):
                found.add(int(proc.name))
        except OSError:
            continue
    out = []
    for pid in sorted(found):
        try:
            if processes.is_zombie(pid):
                continue
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            out.append(f"{pid} {cmd[:200]}")
        except OSError:
            continue
    return out


def wait_no_leftovers(root: Path, timeout: float = 15.0) -> list[str]:
    deadline = time.monotonic() + timeout
    left = leftover_processes(root)
    while left and time.monotonic() < deadline:
        time.sleep(0.25)
        left = leftover_processes(root)
    return left


def stop_network(net: Nodes, check: bool = True) -> None:
    net.down(log=QUIET)
    if check:
        left = wait_no_leftovers(net.layout.root)
        assert not left, f"processes left running after down: {left}"


def kill9(pid: int, timeout: float = 10.0) -> None:
    """SIGKILL one process (not its group) and wait until it is gone (reaped or a zombie)."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        if not Path(f"/proc/{pid}").exists() or processes.is_zombie(pid):
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} still alive {timeout} s after SIGKILL")


def orderer_height(net: Nodes, node) -> int | None:
    """The channel height the orderer reports to osnadmin; None while it does not answer (a test killed it) or
    is not on the channel."""
    try:
        return net.orderer_height(node)
    except NetworkError:
        return None


def orderer_heights(net: Nodes) -> dict[str, int | None]:
    return {o.id: orderer_height(net, o) for o in net.consortium.orderers}


# The consensus metric saying whether an orderer leads: ``consensus_<type>_is_leader{channel=…}``.
LEADER_METRIC = {"etcdraft": "consensus_etcdraft_is_leader", "BFT": "consensus_BFT_is_leader"}


def leaders(net: Nodes) -> dict[str, bool | None]:
    """Whether each orderer leads, by its consensus metric (None when its metrics cannot be read)."""
    metric = LEADER_METRIC[net.consortium.consensus]
    pattern = re.compile(r'^%s\{channel="%s"\} (\S+)$' % (metric, re.escape(net.consortium.channel)), re.M)
    out = {}
    for o in net.consortium.orderers:
        try:
            m = pattern.search(net.metrics(o))
            out[o.id] = bool(float(m.group(1))) if m else None
        except OSError:
            out[o.id] = None
    return out


def wait_leader(net: Nodes, among: list[str], timeout: float = 30.0) -> str:
    """The one orderer among ``among`` that leads (AssertionError after ``timeout`` s without a single one)."""
    deadline = time.monotonic() + timeout
    while True:
        who = [nid for nid, yes in leaders(net).items() if yes and nid in among]
        if len(who) == 1:
            return who[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no single {net.consortium.consensus} leader among {among} after {timeout} s: "
                                 f"{leaders(net)}")
        time.sleep(0.25)


def wait_same_orderer_heights(net: Nodes, timeout: float = 60.0) -> dict[str, int | None]:
    """Until every orderer reports the same channel height (a restarted one has caught up)."""
    deadline = time.monotonic() + timeout
    h = orderer_heights(net)
    while (len(set(h.values())) != 1 or None in h.values()) and time.monotonic() < deadline:
        time.sleep(0.5)
        h = orderer_heights(net)
    assert None not in h.values() and len(set(h.values())) == 1, f"orderer heights differ: {h}"
    return h


def node_pid(net: Nodes, node) -> int:
    pid = processes.running_pid(net.layout, node)
    assert pid, f"{node.id} is not running"
    return pid


# ----------------------------------------------------------------------------------------------- gateway

def create_keys(state: Path) -> dict:
    """A clerk and a viewer key of each organisation, each in its own organisation's gateway."""
    return {(org, role): KeyStore(keys_file_of(state, org)).create(org, role, f"fault test {org} {role}")[1]
            for org in ORGS for role in ("clerk", "viewer")}


def url_of(url, org: str) -> str:
    """``url``: one URL, or the organisations' gateways by MSP id (each org posts through its own)."""
    return url if isinstance(url, str) else url[org]


class GatewayProcess:
    """``ipledger gateway serve --org ORG`` (gunicorn, gthread workers) on a fixed loopback port, restartable."""

    def __init__(self, state: Path, log: Path, org: str, port: int | None = None, workers: int = 2,
                 threads: int = 16, live_feed: bool = False, environment: dict[str, str] | None = None):
        self.state, self.log, self.workers, self.threads, self.org = state, log, workers, threads, org
        self.live_feed = live_feed  # the chaincode-event listener (dashboard feed, webhooks)
        self.environment = dict(environment or {})   # settings of gateway/config.py ENVIRONMENT
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.pgids: list[int] = []

    def start(self, timeout: float = 60.0) -> None:
        with open(self.log, "a") as logf:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ipledger.network.cli", "--state-dir", str(self.state), "gateway", "serve",
                 "--org", self.org, "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers), "--threads",
                 str(self.threads)], cwd=REPO, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, **self.environment, "IPLEDGER_LIVE_FEED": "1" if self.live_feed else "0"})
        self.pgids.append(self.proc.pid)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                last = requests.get(self.url + "/readyz", timeout=5)
                if last.status_code == 200:
                    return
            except requests.RequestException as e:
                last = e
            time.sleep(0.2)
        raise AssertionError(f"gateway not ready after {timeout} s: {last}\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def group(self) -> list[int]:
        """Live processes of every gunicorn started so far (master and workers share its process group)."""
        out = []
        for pgid in self.pgids:
            res = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True)
            out += [int(p) for p in res.stdout.split() if not processes.is_zombie(int(p))]
        return out

    def kill9_master(self) -> None:
        """SIGKILL the gunicorn master only, as a crash would; its workers are left to notice."""
        kill9(self.proc.pid)

    def wait_gone(self, timeout: float = 30.0) -> list[int]:
        deadline = time.monotonic() + timeout
        left = self.group()
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = self.group()
        return left

    def stop(self, timeout: float = 40.0) -> int | None:
        """SIGTERM the master; SIGKILL the group if it does not stop. Returns the master's exit code."""
        code = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        for pgid in self.pgids:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.wait_gone(10)
        return code


def stop_gateways(gateways: dict[str, GatewayProcess]) -> None:
    """Stop every organisation's gateway; fails if a process of one is left."""
    left = {}
    for org, gw in gateways.items():
        gw.stop()
        if gw.group():
            left[org] = gw.group()
    assert not left, f"gateway processes left: {left}"


class OrgGateways:
    """One gateway per organisation (``GatewayProcess`` each), logs side by side in ``log_dir``."""

    def __init__(self, state: Path, log_dir: Path, orgs=ORGS, workers: int = 1, threads: int = 16,
                 environment: dict[str, str] | None = None):
        self.by_org = {org: GatewayProcess(state, Path(log_dir) / f"gateway-{org}.log", org, workers=workers,
                                           threads=threads, environment=environment) for org in orgs}

    @property
    def urls(self) -> dict[str, str]:
        return {org: gw.url for org, gw in self.by_org.items()}

    @property
    def logs(self) -> list[Path]:
        return [gw.log for gw in self.by_org.values()]

    def __getitem__(self, org: str) -> GatewayProcess:
        return self.by_org[org]

    def start(self) -> "OrgGateways":
        for gw in self.by_org.values():
            gw.start()
        return self

    def stop(self) -> dict[str, int | None]:
        return {org: gw.stop() for org, gw in self.by_org.items()}

    def tail(self) -> str:
        return "\n".join(f"--- {org}\n{gw.tail(1500)}" for org, gw in self.by_org.items())


# ----------------------------------------------------------------------------------------------- load

@dataclass
class Attempt:
    status: int | None          # None: no HTTP answer (connection refused/reset, read timeout)
    problem_type: str | None = None
    retry_after: str | None = None
    content_type: str | None = None
    error: str | None = None
    at: float = 0.0


@dataclass
class Sent:
    body: dict
    org: str
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def acknowledged(self) -> bool:
        return any(a.status in (200, 201) for a in self.attempts)


def post_once(http: requests.Session, url: str, key: str, body: dict, timeout: float = 90) -> Attempt:
    t = time.monotonic()
    try:
        r = http.post(url + "/api/v1/events", json=body, headers={"Authorization": f"Bearer {key}"},
                      timeout=timeout)
    except requests.RequestException as e:
        return Attempt(None, error=type(e).__name__, at=t)
    a = Attempt(r.status_code, retry_after=r.headers.get("Retry-After"), content_type=r.headers.get("Content-Type"),
                at=t)
    if r.status_code >= 300:
        try:
            a.problem_type = r.json().get("type")
        except ValueError:
            a.problem_type = f"(not JSON) {r.text[:200]}"
    return a


def is_clear_retryable(a: Attempt) -> bool:
    """A connection failure, or a problem+json 503/504/409 transaction-conflict carrying Retry-After."""
    if a.status is None:
        return True
    return (a.status in RETRYABLE_PROBLEMS and a.problem_type in RETRYABLE_PROBLEMS[a.status]
            and bool(a.retry_after) and (a.content_type or "").startswith("application/problem+json"))


class Load:
    """Client threads posting events through the REST API, each with unique event ids, until stopped.

    ``makers``: one callable per thread, ``maker(i) -> (body, org)`` for the thread's i-th event."""

    def __init__(self, url: str | dict, keys: dict, makers: list, pause: float = 0.0, pause_after_error: float = 0.3,
                 client_timeout: float = 90.0):
        self.url, self.keys, self.makers, self.pause = url, keys, makers, pause
        self.client_timeout = client_timeout
        self.pause_after_error = pause_after_error
        self.sent: dict[str, Sent] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _run(self, maker) -> None:
        http = requests.Session()
        i = 0
        while not self._stop.is_set():
            body, org = maker(i)
            i += 1
            s = Sent(body, org)
            with self._lock:
                assert body["event_id"] not in self.sent
                self.sent[body["event_id"]] = s
            s.attempts.append(post_once(http, url_of(self.url, org), self.keys[(org, "clerk")], body,
                                        self.client_timeout))
            if s.attempts[-1].status is None:
                http.close()
                http = requests.Session()
                self._stop.wait(0.2)  # the gateway is down: do not spin
            elif s.attempts[-1].status not in (200, 201):
                self._stop.wait(self.pause_after_error)  # a real client honours Retry-After; shorter here
            elif self.pause:
                self._stop.wait(self.pause)

    def start(self) -> "Load":
        return self.add(self.makers)

    def add(self, makers: list) -> "Load":
        """More client threads (e.g. while others wait on a transaction the crash lost)."""
        for maker in makers:
            t = threading.Thread(target=self._run, args=(maker,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, timeout: float = 120.0) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
        assert not any(t.is_alive() for t in self._threads), "a client thread did not finish"

    def first_success_after(self, since: float, timeout: float) -> float | None:
        """Seconds from ``since`` (monotonic) to the first 2xx of a request sent after it; None if none came
        within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                ok = [a.at for s in self.sent.values() for a in s.attempts
                      if a.at >= since and a.status in (200, 201)]
            if ok:
                return min(ok) - since
            if time.monotonic() > deadline:
                return None
            time.sleep(0.2)

    # -- outcome ------------------------------------------------------------------------------------
    def acknowledged(self) -> list[str]:
        return [eid for eid, s in self.sent.items() if s.acknowledged]

    def failed(self) -> dict[str, Sent]:
        return {eid: s for eid, s in self.sent.items() if not s.acknowledged}

    def not_clear(self) -> list[tuple[str, Attempt]]:
        return [(eid, a) for eid, s in self.sent.items() for a in s.attempts
                if a.status not in (200, 201) and not is_clear_retryable(a)]

    def summary(self) -> dict:
        c = collections.Counter()
        for s in self.sent.values():
            for a in s.attempts:
                c[str(a.status or a.error)] += 1
        return dict(c)

    def replay_failed(self, deadline_s: float = 90.0) -> dict[str, Attempt]:
        """Send every not-acknowledged event again, same body, until 2xx or a non-retryable answer (bounded)."""
        http = requests.Session()
        out = {}
        deadline = time.monotonic() + deadline_s
        for eid, s in self.failed().items():
            while True:
                a = post_once(http, url_of(self.url, s.org), self.keys[(s.org, "clerk")], s.body)
                s.attempts.append(a)
                if a.status in (200, 201) or not is_clear_retryable(a) or time.monotonic() > deadline:
                    break
                time.sleep(min(float(a.retry_after or 1), 2.0))
            out[eid] = a
        return out


# ----------------------------------------------------------------------------------------------- events

def moves_of(lot_id: str, prefix: str, org: str = "OperatorMSP", start: int = 0):
    """1 p/st of ``lot_id`` from BOURGES-1 to BOURGES-2 per event (the lot needs enough stock)."""
    def make(i):
        return move(f"{prefix}-{lot_id}-{start + i}", 1, lot_id=lot_id), org
    return make


def mrn_of(n: int, category: str = mrns.IMPORT) -> str:
    """A valid MRN numbered ``n`` (any size: 12 digits of unique identifier), for placements (``R``) or
    re-exports (``A``)."""
    return mrns.from_unique(f"{n:012d}", category)


def exits_of(lot_id: str, prefix: str, org: str = "BrokerMSP", mrn_base: int = 0, start: int = 0):
    """Re-export of 1 p/st of ``lot_id`` per event, declared by the broker (no commercial data)."""
    def make(i):
        n = start + i
        return exit_(f"{prefix}-{lot_id}-{n}", 1, mrn_of(mrn_base + n, mrns.EXPORT), lot_id=lot_id), org
    return make


def placements(prefix: str, org: str = "BrokerMSP", value: str = "1234.56", mrn_base: int = 0):
    """New 1 p/st lots, each with a commercial customs value (private data)."""
    def make(i):
        n = mrn_base + i
        return place(f"{prefix}-{i}", 1, mrn_of(n), event_id=f"{prefix}-place-{i}", value=value), org
    return make


def set_up_authorisation(url: str | dict, keys: dict, lots: dict[str, int]) -> None:
    """The register of parties, authorisation FRIPO000001 (a large ceiling) and ``lots`` (id -> quantity) at
    BOURGES-1."""
    from .test_gateway_api import USED_TYRES, register_parties
    http = requests.Session()
    bodies = [*register_parties("parties-1"),
              (grant(input_goods=[{"cn": USED_TYRES, "description": "used pneumatic tyres", "unit": "p/st",
                                   "max_qty": 10_000_000}]), "CustomsMSP")]
    for n, (lot_id, qty) in enumerate(lots.items()):
        bodies.append((place(lot_id, qty, mrn_of(9_000_000 + n), event_id=f"setup-place-{lot_id}"), "OperatorMSP"))
    for body, org in bodies:
        a = post_once(http, url_of(url, org), keys[(org, "clerk")], body)
        assert a.status == 201, (body["type"], a)


class Ledger:
    """Reads the contract directly (Fabric Gateway client as customs User1), not through the REST gateway."""

    def __init__(self, net: Nodes):
        self.clients = Clients(net)

    def evaluate(self, function: str, *args, org: str = "CustomsMSP"):
        c = self.clients.contract(org, "ipledger")
        raw = c.evaluate(function, [json.dumps(a) for a in args], timeout=30)
        return json.loads(raw)

    def settle(self, org: str = "CustomsMSP", timeout: float = 60) -> None:
        """Wait until ``org``'s peer (the one these reads go to) has every block some peer has: an
        acknowledged submit was committed on the submitter's peer, not necessarily on this one yet."""
        net = self.clients.net
        target = max((net.peer_height(p) or 0) for p in net.consortium.peers)
        peer = net.consortium.org(org).peers[0]
        deadline = time.monotonic() + timeout
        while (net.peer_height(peer) or 0) < target:
            assert time.monotonic() < deadline, f"{peer.id} did not reach height {target}"
            time.sleep(0.05)

    def event_ids(self, auth: str = AUTH) -> collections.Counter:
        """How often each event_id appears in the authorisation's event log (once this peer caught up)."""
        self.settle()
        res = self.evaluate("GetEventsInPeriod", auth, day(-2), day(3))
        return collections.Counter(e["event_id"] for e in res["events"])

    def lot(self, lot_id: str) -> dict:
        return self.evaluate("GetLot", lot_id)

    def lot_history_ids(self, lot_id: str) -> collections.Counter:
        return collections.Counter(h["event_id"] for h in self.evaluate("GetLotHistory", lot_id)["history"])

    def close(self):
        self.clients.close()


def exactly_once_report(ledger: Ledger, load: Load) -> dict:
    """Event ids of ``load`` missing from the ledger, or there more than once."""
    counts = ledger.event_ids()
    missing = [eid for eid, s in load.sent.items() if s.acknowledged and counts[eid] == 0]
    dupes = {eid: n for eid, n in counts.items() if n > 1}
    unknown = [eid for eid in counts if eid in load.sent and not load.sent[eid].acknowledged]
    return {"missing": missing, "duplicated": dupes, "recorded_unacknowledged": unknown,
            "recorded": sum(1 for eid in load.sent if counts[eid] == 1)}


def check_outcome(ledger: Ledger, load: Load, label: str, move_lots=(), exit_lots=(), lot_qty: int = 0,
                  tolerate: frozenset = frozenset()) -> dict:
    """The assertions shared by every fault: exactly once, replays, balances, then clear retryable failures.

    ``tolerate``: (status, problem type) pairs of a known, reported product bug, left out of the last check and
    returned under "tolerated" (the exactly-once checks still apply to those events)."""
    sent = len(load.sent)
    assert sent >= 10, f"{label}: too little load to say anything ({load.summary()})"

    first = exactly_once_report(ledger, load)
    assert not first["missing"], f"{label}: acknowledged (2xx) but not on the ledger: {first['missing']}"
    assert not first["duplicated"], f"{label}: recorded more than once: {first['duplicated']}"

    unclear = load.not_clear()  # before the replays add attempts
    replays = load.replay_failed()
    bad = {eid: a for eid, a in replays.items() if a.status not in (200, 201)}
    assert not bad, f"{label}: replays that did not end in 2xx: {bad}"
    # a replay of an event that had been recorded despite the error answer must say so (200), not record it again
    for eid in first["recorded_unacknowledged"]:
        assert replays[eid].status == 200, f"{label}: {eid} was on the ledger, its replay got {replays[eid]}"

    final = exactly_once_report(ledger, load)
    assert not final["missing"] and not final["duplicated"], f"{label}: after replays: {final}"
    assert final["recorded"] == sent, f"{label}: {final['recorded']} of {sent} events recorded"
    # the goods add up: 1 p/st per recorded move (BOURGES-1 -> BOURGES-2) or exit
    for lot_id in (*move_lots, *exit_lots):
        history = ledger.lot_history_ids(lot_id)
        assert all(n == 1 for n in history.values()), f"{lot_id} history has duplicates: {history}"
        ours = sum(1 for eid in load.sent if eid.startswith(f"{label}-{lot_id}-"))
        assert len(history) == 1 + ours, (lot_id, len(history), ours)  # + the placement
        lot = ledger.lot(lot_id)
        if lot_id in move_lots:
            assert lot["stock"] == {SITE1: lot_qty - ours, SITE2: ours} and lot["balance"] == lot_qty, lot
        else:
            assert lot["stock"] == {SITE1: lot_qty - ours} and lot["balance"] == lot_qty - ours, lot

    tolerated = [(eid, a) for eid, a in unclear if (a.status, a.problem_type) in tolerate]
    unclear = [(eid, a) for eid, a in unclear if (a.status, a.problem_type) not in tolerate]
    assert not unclear, f"{label}: answers that are neither 2xx nor clearly retryable: {unclear[:10]}"
    return {"sent": sent, "summary": load.summary(), "replayed": len(replays), "first": first,
            "tolerated": tolerated}
