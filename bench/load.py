"""Benchmark: a large load of business events through the REST API, and what queries cost as it grows.

A throw-away network with the ipledger contract and one REST gateway per organisation that posts
(gunicorn, 2 workers each) on loopback: customs' and the operator's, each with its own
organisation's identity and API key only, each organisation posting through its own. Customs grants a *probe* authorisation, where the operator records the example
scenario of domain.md §8 once (one lot: place, move, process, exit), and ``--authorisations``
*load* authorisations (default: one per client thread — many plants sharing the channel). Then
client threads (``--in-flight``) send events through ``POST /api/v1/events`` in the proportions
of that scenario, thread i on load authorisation i mod N, each working through its own lots one
after another:

    PlaceUnderProcedure (100 p/st) → MoveGoods (40 to the second site) →
    RecordProcessing (50 in → 50 retreaded + 60 kg waste) → ExitGoods (the 50 retreaded) →
    ExitGoods (the 50 p/st of the lot left unprocessed)

At each checkpoint (``--checkpoints``, default 1k, 10k, 100k events) the load pauses and the
benchmark times, 20 times each: the probe lot's history (audit trail), the probe
authorisation's bill-of-discharge data, the probe lot itself — which must cost the same
whatever the size of the ledger — and, for contrast, the bill-of-discharge data of a load
authorisation, which grows with that authorisation. It records throughput and latency of the
phase, the RSS of every peer, the orderer, the chaincode processes and the gateway, the
channel height, the size of the peers' ledgers, and the share of the machine's CPU time the
hypervisor took (steal) or nobody used during the phase: a phase slowed by a busy host shows it.

An event changes the balance shard of its lot or batch only (chaincode/contract/keys.py), so events
of one authorisation on different lots seldom meet in one block (MVCC); a placement reads every
input-goods shard of its authorisation for the ceiling, so it conflicts with a concurrent change to
that authorisation's input stock and is retried. Run with ``--authorisations 1`` to measure one plant alone.

A rejected event is retried (same event_id: idempotent) when the answer says it may be
(409 transaction-conflict, 503, 504), at most 5 times; anything else counts as an error and
ends that lot's chain. Bounded in time by ``--max-minutes``.

    .venv/bin/python bench/load.py [--events 100000] [--in-flight 64] [--checkpoints 1000,10000,100000]
                                   [--json-out FILE] [--max-minutes 120] [--consortium FILE]

Prints Markdown tables for docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ipledger.chaincode.testing import mrns  # noqa: E402
from bench import common  # noqa: E402
from bench.chaincode_put import CPU_ROLES, cpu_seconds, machine_shares, machine_ticks, rss_mb  # noqa: E402
from bench.common import now  # noqa: E402
from ipledger.network.cli import gateway_daemon as daemon  # noqa: E402
from ipledger.network.channel.package import ChaincodeSpec  # noqa: E402
from ipledger.network.channel.chaincode import Deployer  # noqa: E402
from ipledger.network.org.nodes import Nodes  # noqa: E402
from tests.integration.conftest import free_base_port, port_free  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ORGS = ("CustomsMSP", "OperatorMSP")  # the organisations that post: one gateway each
PROBE = "FRIPOPROBE1"
LOAD_AUTHS: list[str] = []  # set by main(): --authorisations of them
SITES = ("BOURGES-1", "BOURGES-2")
USED, RETREADED, WASTE = "40122000", "40121200", "40040000"
RETRYABLE = {409: "transaction-conflict", 503: None, 504: None}


def parties() -> dict:
    """Customs register the operator as the holder (the contract refuses organisations not in its register)."""
    return {"type": "RegisterParty", "event_id": "parties", "occurred_at": now(),
            "msp_id": "OperatorMSP", "role": "holder", "eoris": ["FR12345678901234"]}


class Numbers:
    """Unique declaration references (MRNs) for placements (I) and exits (E)."""

    def __init__(self):
        self._n = itertools.count(1)

    def mrn(self, kind: str) -> str:
        """A valid MRN (check digit and all): ``I`` an import declaration's, ``E`` an export's."""
        return mrns.from_unique(f"{next(self._n):012d}", mrns.IMPORT if kind == "I" else mrns.EXPORT)


def chain(auth_id: str, lot: str, numbers: Numbers) -> list[dict]:
    """The five events of one lot's life in the load (built one by one: occurred_at is 'now')."""
    common = {"authorisation_id": auth_id}
    return [
        lambda: {"type": "PlaceUnderProcedure", "event_id": f"place-{lot}", "occurred_at": now(), **common,
                 "lot_id": lot, "mrn": numbers.mrn("I"), "item_no": 1, "procedure": "5100", "cn": USED,
                 "description": "used tyres", "quantity": 100, "unit": "p/st", "net_mass_g": 900_000,
                 "origin": "MA", "site": SITES[0],
                 "commercial": {"customs_value": {"amount": "2500.00", "currency": "EUR"}}},
        lambda: {"type": "MoveGoods", "event_id": f"move-{lot}", "occurred_at": now(), **common, "lot_id": lot,
                 "quantity": 40, "from_site": SITES[0], "to_site": SITES[1]},
        lambda: {"type": "RecordProcessing", "event_id": f"process-{lot}", "occurred_at": now(), **common,
                 "operation_id": f"OP-{lot}", "site": SITES[0], "inputs": [{"lot_id": lot, "qty": 50}],
                 "outputs": [{"batch_id": f"{lot}-M", "cn": RETREADED, "qty": 50, "unit": "p/st", "kind": "MAIN"},
                             {"batch_id": f"{lot}-W", "cn": WASTE, "qty": 60, "unit": "kg", "kind": "WASTE"}]},
        lambda: {"type": "ExitGoods", "event_id": f"exit-{lot}-M", "occurred_at": now(), **common,
                 "batch_id": f"{lot}-M", "quantity": 50, "procedure": "3151", "mrn": numbers.mrn("E")},
        lambda: {"type": "ExitGoods", "event_id": f"exit-{lot}", "occurred_at": now(), **common,
                 "lot_id": lot, "quantity": 50, "procedure": "3151", "mrn": numbers.mrn("E")},
    ]


def quantiles(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    if len(values) == 1:
        return values[0], values[0]
    q = statistics.quantiles(values, n=100)
    return q[49], q[98]


class Api:
    """Each organisation's own gateway (``urls``) and its API key there (``keys``)."""

    def __init__(self, urls: dict[str, str], keys: dict[str, str]):
        self.urls, self.keys = urls, keys
        self.local = threading.local()

    @property
    def http(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        return self.local.session

    def post(self, org: str, body: dict) -> requests.Response:
        return self.http.post(f"{self.urls[org]}/api/v1/events", json=body, timeout=120,
                              headers={"Authorization": f"Bearer {self.keys[org]}"})

    def get(self, path: str, org: str = "CustomsMSP") -> requests.Response:
        return self.http.get(f"{self.urls[org]}{path}", timeout=120,
                             headers={"Authorization": f"Bearer {self.keys[org]}"})

    def must(self, org: str, body: dict, retry_s: float = 0) -> dict:
        """``retry_s``: retry a 4xx answer for that long (until ``org``'s peer has the block of another
        organisation's earlier event)."""
        deadline = time.monotonic() + retry_s
        while True:
            r = self.post(org, body)
            if r.status_code in (200, 201):
                return r.json()
            if time.monotonic() > deadline or r.status_code >= 500:
                raise RuntimeError(f"{body['type']} {body['event_id']}: {r.status_code} {r.text[:300]}")
            time.sleep(0.5)


class Load:
    """Client threads sending the events of their own lots, paused at each checkpoint."""

    def __init__(self, api: Api, in_flight: int, deadline: float):
        self.api, self.in_flight, self.deadline = api, in_flight, deadline
        self.numbers = Numbers()
        self.lock = threading.Lock()
        self.issued = 0                 # events taken by a thread (successful or not)
        self.target = 0
        self.resume = threading.Condition(self.lock)
        self.phase: list[tuple[str, float, int]] = []   # (type, latency s, status) of this phase
        self.totals = collections.Counter()
        self.retries = 0
        self.retry_kinds: collections.Counter = collections.Counter()
        self.errors: collections.Counter = collections.Counter()
        self.stopped = False
        self.started = False
        self.idle = 0
        self.threads = [threading.Thread(target=self._worker, args=(i,), daemon=True) for i in range(in_flight)]

    def _take(self) -> bool:
        """Wait until this thread may send one more event; False when the load ends."""
        with self.lock:
            while self.issued >= self.target and not self.stopped:
                self.idle += 1
                self.resume.notify_all()
                self.resume.wait()
                self.idle -= 1
            if self.stopped:
                return False
            self.issued += 1
            return True

    def _send(self, body: dict) -> bool:
        for attempt in range(6):
            started = time.perf_counter()
            try:
                r = self.api.post("OperatorMSP", body)
                status, kind = r.status_code, (r.json().get("type", "") if r.status_code >= 400 else "")
            except requests.RequestException as e:
                status, kind = 0, type(e).__name__
            elapsed = time.perf_counter() - started
            with self.lock:
                self.phase.append((body["type"], elapsed, status))
            if status in (200, 201):
                with self.lock:
                    self.totals[body["type"]] += 1
                return True
            retryable = status == 0 or (status in RETRYABLE and
                                        (RETRYABLE[status] is None or kind.endswith(RETRYABLE[status])))
            if not retryable or attempt == 5 or time.monotonic() > self.deadline:
                with self.lock:
                    self.errors[f"{body['type']} {status} {kind.rsplit('/', 1)[-1]}"] += 1
                return False
            with self.lock:
                self.retries += 1
            self.retry_kinds[f"{status} {kind.rsplit('/', 1)[-1]}"] += 1
            time.sleep(0.2 * (attempt + 1))
        return False

    def _worker(self, index: int) -> None:
        auth_id = LOAD_AUTHS[index % len(LOAD_AUTHS)]
        for n in itertools.count():
            for make in chain(auth_id, f"T{index:03d}-{n:05d}", self.numbers):
                if not self._take():
                    return
                if not self._send(make()):
                    break  # this lot's chain cannot go on; the next lot starts fresh

    def run_to(self, target: int) -> dict:
        """Let the threads send until ``target`` events were issued; return the phase's figures."""
        with self.lock:
            self.target = target
            self.phase = []
            self.resume.notify_all()
        started, ticks, cpu = time.monotonic(), machine_ticks(), cpu_seconds()
        if not self.started:
            self.started = True
            for t in self.threads:
                t.start()
        with self.lock:
            while not (self.issued >= self.target and self.idle == len(self.threads)):
                if time.monotonic() > self.deadline:
                    self.stopped = True
                    self.resume.notify_all()
                    break
                self.resume.wait(timeout=1.0)
            phase = list(self.phase)
        elapsed = time.monotonic() - started
        cpu_after = cpu_seconds()
        ok = [lat for _, lat, status in phase if status in (200, 201)]
        p50, p99 = quantiles(ok)
        return {"events": len(ok), "attempts": len(phase), "seconds": elapsed, "tps": len(ok) / elapsed,
                "p50_ms": p50 * 1000, "p99_ms": p99 * 1000, **machine_shares(ticks, machine_ticks()),
                # CPU milliseconds each role spent per event committed in the phase: which part grows
                "cpu_ms": {r: (cpu_after[r] - cpu[r]) * 1000 / max(1, len(ok)) for r in CPU_ROLES}}

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
            self.resume.notify_all()
        for t in self.threads:
            t.join(timeout=130)


def timed(api: Api, path: str, repeat: int = 20) -> dict:
    latencies, statuses = [], collections.Counter()
    for _ in range(repeat):
        started = time.perf_counter()
        r = api.get(path)
        latencies.append(time.perf_counter() - started)
        statuses[r.status_code] += 1
    p50, p99 = quantiles(latencies)
    return {"p50_ms": p50 * 1000, "p99_ms": p99 * 1000, "statuses": dict(statuses), "bytes": len(r.content)}


def processes_of(net: Nodes, gateway_pids: dict[str, int]) -> dict[str, list[int]]:
    def group(pid: int) -> list[int]:
        out = subprocess.run(["pgrep", "-s", str(pid)], capture_output=True, text=True).stdout.split()
        return [int(p) for p in out]
    procs: dict[str, list[int]] = {}
    for node in [*net.consortium.orderers, *net.consortium.peers]:
        pid = int(net.layout.pid_file(node).read_text())
        procs[node.id] = [pid]
        if node.kind == "peer":
            procs[f"chaincode@{node.id}"] = [p for p in group(pid) if p != pid]
    for org, pid in gateway_pids.items():
        procs[f"gateway@{org}"] = group(pid)
    return procs


class Memory:
    """Peak RSS per process group, sampled every few seconds."""

    def __init__(self, procs: dict[str, list[int]]):
        self.procs = procs
        self.peak: dict[str, float] = collections.defaultdict(float)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self) -> dict[str, float]:
        out = {}
        for name, pids in self.procs.items():
            total = 0.0
            for pid in pids:
                try:
                    total += rss_mb(pid)
                except OSError:
                    pass
            out[name] = total
        return out

    def _run(self) -> None:
        while not self._stop.wait(5):
            for name, mb in self.now().items():
                self.peak[name] = max(self.peak[name], mb)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def du_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def start_gateway(state: Path, org: str, threads: int) -> tuple[subprocess.Popen, str]:
    """``org``'s own gateway (``gateway serve --org``): its identity only, its files in its own directory."""
    port = next(p for p in range(18200, 18400) if port_free(p))
    log_path = state / f"bench-gateway-{org}.log"
    log = open(log_path, "w")
    env = {**os.environ, "IPLEDGER_LIVE_FEED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ipledger.network.cli", "--state-dir", str(state), "gateway", "serve",
                             "--org", org, "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", str(threads)],
                            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while not daemon.healthy(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_gateway(proc)
            raise RuntimeError(f"{org}'s gateway did not start: {log_path.read_text()[-2000:]}")
        time.sleep(0.25)
    return proc, url


def stop_gateway(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=40)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--checkpoints", default="1000,10000,100000",
                    help="comma-separated event counts where queries are timed (the last is --events)")
    ap.add_argument("--in-flight", type=int, default=64)
    ap.add_argument("--authorisations", type=int, default=0, help="load authorisations (default: --in-flight)")
    ap.add_argument("--max-minutes", type=float, default=120)
    ap.add_argument("--json-out", type=Path)
    ap.add_argument("--consortium", type=Path, help="consortium file (default: network/consortium.yaml), e.g. "
                                                    "one whose peers keep a history database")
    args = ap.parse_args()
    LOAD_AUTHS[:] = [f"FRIPOLOAD{i:03d}" for i in range(args.authorisations or args.in_flight)]
    checkpoints = sorted({int(c) for c in args.checkpoints.split(",") if int(c) < args.events} | {args.events})
    deadline = time.monotonic() + args.max_minutes * 60
    tmp = tempfile.TemporaryDirectory(prefix="ipledger-load-")
    state = Path(tmp.name) / "state"
    net = Nodes.open(state, consortium_file=args.consortium, base_port=free_base_port())
    report: dict = {"events": args.events, "in_flight": args.in_flight, "authorisations": len(LOAD_AUTHS),
                    "checkpoints": [], "started": now(), "load_average_start": os.getloadavg()}
    gateways: dict[str, subprocess.Popen] = {}
    load = memory = None
    try:
        print(f"network up in {state} …", file=sys.stderr, flush=True)
        net.up(log=lambda *_: None)
        Deployer(net, log=lambda *_: None).deploy(ChaincodeSpec.default())
        from ipledger.gateway.auth import KeyStore
        from ipledger.gateway.config import keys_file_of
        urls, keys = {}, {}
        for org in ORGS:  # each organisation posts through its own gateway, with its own API key
            threads = args.in_flight // 2 + 4 if org == "OperatorMSP" else 8
            gateways[org], urls[org] = start_gateway(state, org, threads=threads)
            keys[org] = KeyStore(keys_file_of(state, org)).create(org, "clerk", "bench")[1]
        api = Api(urls, keys)
        api.must("CustomsMSP", parties())
        for auth_id in [PROBE, *LOAD_AUTHS]:
            api.must("CustomsMSP", {"type": "GrantAuthorisation", **common.grant(auth_id)})
        load = Load(api, args.in_flight, deadline)
        for n, make in enumerate(chain(PROBE, "PL1", load.numbers)):
            # the operator's first event waits until its own peer has customs' grants
            api.must("OperatorMSP", make(), retry_s=30 if n == 0 else 0)
        memory = Memory(processes_of(net, {org: proc.pid for org, proc in gateways.items()}))
        for checkpoint in checkpoints:
            print(f"load to {checkpoint} events …", file=sys.stderr, flush=True)
            phase = load.run_to(checkpoint)
            queries = {
                "probe lot history": timed(api, "/api/v1/lots/PL1/history"),
                "probe lot": timed(api, "/api/v1/lots/PL1"),
                "probe bill of discharge": timed(api, f"/api/v1/authorisations/{PROBE}/bill-of-discharge-data"),
                "load authorisation bill of discharge": timed(
                    api, f"/api/v1/authorisations/{LOAD_AUTHS[0]}/bill-of-discharge-data", repeat=5),
            }
            row = {"checkpoint": checkpoint, "committed": sum(load.totals.values()), "phase": phase,
                   "queries": queries, "rss_mb": memory.now(), "height": net.peer_height(net.consortium.peers[0]),
                   "ledger_mb": du_mb(net.layout.data_dir(net.consortium.peers[0])),
                   "retries": load.retries, "retry_kinds": dict(load.retry_kinds), "errors": dict(load.errors)}
            report["checkpoints"].append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
            if load.stopped:
                print("stopped: --max-minutes reached", file=sys.stderr)
                break
        load.stop()
        memory.stop()
        report["peak_rss_mb"] = dict(memory.peak)
        report["load_average_end"] = os.getloadavg()
        report["totals"] = dict(load.totals)
    finally:
        if load is not None:
            load.stop()
        if memory is not None:
            memory.stop()
        for proc in gateways.values():
            stop_gateway(proc)
        net.down(log=lambda *_: None)
        tmp.cleanup()
    report["finished"] = now()
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")
    print_tables(report)
    return 0 if not report["checkpoints"] or report["checkpoints"][-1]["committed"] else 1


def print_tables(report: dict) -> None:
    print("| events on the ledger | phase events | phase tx/s | p50 ms | p99 ms | retries | errors | height | "
          "peer ledger MB | CPU stolen / idle % |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in report["checkpoints"]:
        ph = row["phase"]
        print(f"| {row['committed']} | {ph['events']} | {ph['tps']:.1f} | {ph['p50_ms']:.0f} | {ph['p99_ms']:.0f} | "
              f"{row['retries']} | {sum(row['errors'].values())} | {row['height']} | {row['ledger_mb']:.0f} | "
              f"{ph['steal_pct']:.1f} / {ph['idle_pct']:.1f} |")
    print()
    print("| events on the ledger | CPU ms per event: " + " · ".join(CPU_ROLES) + " | total |")
    print("|---|---|---|")
    for row in report["checkpoints"]:
        cpu = row["phase"]["cpu_ms"]
        print(f"| {row['committed']} | " + " · ".join(f"{cpu[r]:.2f}" for r in CPU_ROLES) +
              f" | {sum(cpu.values()):.2f} |")
    print()
    names = list(report["checkpoints"][0]["queries"]) if report["checkpoints"] else []
    print("| query (p50 / p99 ms) | " + " | ".join(str(r["committed"]) for r in report["checkpoints"]) + " |")
    print("|---|" + "---|" * len(report["checkpoints"]))
    for name in names:
        cells = [f"{r['queries'][name]['p50_ms']:.0f} / {r['queries'][name]['p99_ms']:.0f}"
                 for r in report["checkpoints"]]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()
    if report.get("peak_rss_mb"):
        print("| process | RSS at the end (MB) | peak (MB) |")
        print("|---|---|---|")
        last = report["checkpoints"][-1]["rss_mb"]
        for name, peak in sorted(report["peak_rss_mb"].items()):
            print(f"| {name} | {last.get(name, 0):.0f} | {peak:.0f} |")
    if report["checkpoints"] and report["checkpoints"][-1]["errors"]:
        print("\nerrors:", json.dumps(report["checkpoints"][-1]["errors"]))


if __name__ == "__main__":
    sys.exit(main())
