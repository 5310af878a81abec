"""Benchmark: one-key put through the Python chaincode, via the peer Gateway.

Brings up a throw-away network (or uses --state-dir), deploys the stub-exercising
test chaincode with endorsement AND(customs peer, operator peer), then measures
submit throughput and p50/p99 latency at 1, 8 and 32 transactions in flight
(500-byte values), evaluate at 32 in flight, and chaincode process memory.
Prints a Markdown table for docs/benchmarks.md.

    .venv/bin/python bench/chaincode_put.py [--state-dir DIR] [--seconds 20]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import TICKS_PER_S, process_cpu_seconds  # noqa: E402
from ipledger.network.channel.package import CHAINCODE_DIR, ChaincodeSpec  # noqa: E402

from ipledger.network.channel.chaincode import Deployer  # noqa: E402
from ipledger.network.org.nodes import Nodes  # noqa: E402
from tests.integration.conftest import STUBCHECK_DIR, Clients, free_base_port  # noqa: E402

VALUE = json.dumps("x" * 500)


def run_level(call, in_flight: int, seconds: float, warmup: float = 0.0) -> dict:
    """``in_flight`` threads calling ``call(i)`` for ``seconds``: committed calls, errors, tx/s, p50/p99 and the
    CPU milliseconds each role spent per successful call (:func:`summary` of one :func:`measure`)."""
    return summary([measure(call, in_flight, seconds, warmup)])


def measure(call, in_flight: int, seconds: float, warmup: float = 0.0) -> dict:
    """One level's raw sample: the latencies of the successful calls, the errors, the seconds they are counted
    over and the CPU seconds each role spent meanwhile.

    Without ``warmup`` every call counts, from the threads' start to the last one's end (the ramp up and the
    drain included). With it the level is measured in its steady state: the load runs ``warmup`` seconds
    before a window of ``seconds`` opens, only the calls that end inside the window count, the CPU is read at
    its edges, and the calls still running when it closes end uncounted."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    if not warmup:   # read before the clock starts: the reading's own time is no part of the level
        cpu_before, ticks_before = cpu_seconds(), machine_ticks()
    started = time.monotonic()
    opens, closes = started + warmup, started + warmup + seconds
    counter = iter(range(10**9))

    def counted(end: float) -> bool:
        return not warmup or opens <= end <= closes

    def worker():
        while time.monotonic() < closes:
            i = next(counter)
            t = time.perf_counter()
            try:
                call(i)
            except Exception:  # noqa: BLE001 — counted and reported
                if counted(time.monotonic()):
                    errors[0] += 1
                continue
            latency, end = time.perf_counter() - t, time.monotonic()
            if counted(end):
                with lock:
                    latencies.append(latency)

    threads = [threading.Thread(target=worker) for _ in range(in_flight)]
    for t in threads:
        t.start()
    if warmup:
        time.sleep(max(0.0, opens - time.monotonic()))
        cpu_before, ticks_before = cpu_seconds(), machine_ticks()
        time.sleep(max(0.0, closes - time.monotonic()))
        cpu_after, ticks_after, elapsed = cpu_seconds(), machine_ticks(), seconds
    for t in threads:
        t.join()
    if not warmup:
        cpu_after, ticks_after, elapsed = cpu_seconds(), machine_ticks(), time.monotonic() - started
    return {"in_flight": in_flight, "latencies": latencies, "errors": errors[0], "seconds": elapsed,
            "cpu_s": {r: cpu_after[r] - cpu_before[r] for r in CPU_ROLES},
            "ticks": [b - a for a, b in zip(ticks_before, ticks_after)]}


def summary(samples: list[dict]) -> dict:
    """Samples of one level taken in turns, as one: their calls and seconds added up, their latencies pooled."""
    latencies = sorted(x for s in samples for x in s["latencies"])
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else (latencies or [0.0]) * 99
    done = max(1, len(latencies))
    ticks = [sum(column) for column in zip(*(s["ticks"] for s in samples))]
    roles_s = sum(s["cpu_s"][r] for s in samples for r in CPU_ROLES)
    busy_s = sum(ticks[i] for i in BUSY_TICKS) / TICKS_PER_S
    return {"in_flight": samples[0]["in_flight"], "n": len(latencies), "errors": sum(s["errors"] for s in samples),
            "tps": len(latencies) / sum(s["seconds"] for s in samples), "p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000,
            # CPU milliseconds each role spent per successful call during the level
            "cpu_ms": {r: sum(s["cpu_s"][r] for s in samples) * 1000 / done for r in CPU_ROLES},
            # ... and the machine's other processes (and the kernel's interrupts); its share stolen and left idle
            "other_ms": max(0.0, busy_s - roles_s) * 1000 / done, **machine_shares([0] * len(ticks), ticks)}


CPU_ROLES = ("peers", "orderer", "chaincode", "gateways", "client")


def _role(pid: int) -> str | None:
    """Which part of the benchmarked network a process is (the machine runs nothing else meanwhile)."""
    if pid == os.getpid():
        return "client"
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    exe = cmd[0].rsplit(b"/", 1)[-1] if cmd and cmd[0] else b""
    text = b" ".join(cmd)
    if exe == b"peer":
        return "peers"
    if exe == b"orderer":
        return "orderer"
    if exe == b"chaincode" or b"ipledger.chaincode.shim" in text:
        return "chaincode"
    if b"gunicorn" in text or b"ipledger.network.cli" in text and b"gateway" in cmd:  # gateway serve, its workers
        return "gateways"
    if b"ipledger.network.fabric.signing_process" in text:
        # an identity's signer: a gateway app's, or this client's (which holds no organisation's key itself)
        return "gateways" if _parent_role(pid) == "gateways" else "client"
    return None


def _parent_role(pid: int) -> str | None:
    try:
        ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return _role(ppid) if ppid > 1 else None


BUSY_TICKS = (0, 1, 2, 5, 6)   # machine_ticks' user, nice, system, irq and softirq


def machine_ticks() -> list[int]:
    """The machine's CPU time so far by state (/proc/stat: user, nice, system, idle, iowait, irq,
    softirq, steal), to tell what share of a measurement the hypervisor took (steal) or nobody used."""
    return [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def machine_shares(before: list[int], after: list[int]) -> dict[str, float]:
    """Percent of the machine's CPU time between two ``machine_ticks``: stolen by the hypervisor, and idle
    (waiting for input/output included)."""
    delta = [b - a for a, b in zip(before, after)]
    total = sum(delta) or 1
    return {"steal_pct": 100 * delta[7] / total, "idle_pct": 100 * (delta[3] + delta[4]) / total}


def cpu_seconds() -> dict[str, float]:
    """CPU time (user + system) so far of every benchmarked process, summed by role."""
    total = dict.fromkeys(CPU_ROLES, 0.0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        role = _role(int(entry.name))
        if role is None:
            continue
        try:
            total[role] += process_cpu_seconds(int(entry.name))
        except OSError:
            continue
    return total


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def memory_breakdown(pid: int) -> str:
    """VmRSS split into anonymous and file-backed (shared libraries) pages, and the thread count."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "Threads"):
            fields[key] = value.split()[0]
    mb = lambda k: int(fields.get(k, 0)) / 1024  # noqa: E731
    return (f"{mb('VmRSS'):.1f} MB (anonymous {mb('RssAnon'):.1f}, files {mb('RssFile'):.1f}), "
            f"{fields.get('Threads', '?')} threads")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--state-dir", type=Path)
    ap.add_argument("--seconds", type=float, default=20)
    args = ap.parse_args()
    tmp = None
    if args.state_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="ipledger-bench-")
        args.state_dir = Path(tmp.name) / "state"
    net = Nodes.open(args.state_dir, base_port=free_base_port())
    try:
        net.up(log=lambda *_: None)
        spec = ChaincodeSpec(name="benchput", version="1.0", contract="stubcheck:StubCheck",
                             sources=[CHAINCODE_DIR, STUBCHECK_DIR],
                             signature_policy="AND('CustomsMSP.peer','OperatorMSP.peer')")
        Deployer(net, log=lambda *_: None).deploy(spec)
        clients = Clients(net)
        contract = clients.contract("OperatorMSP", "benchput")
        contract.submit("Put", [json.dumps("warm"), VALUE])
        cc_pid = json.loads(contract.evaluate("Pid", []))
        idle = memory_breakdown(cc_pid)
        rows = []
        for in_flight in (1, 8, 32):
            rows.append(("submit", run_level(
                lambda i: contract.submit("Put", [json.dumps(f"k{i}"), VALUE]),
                in_flight, args.seconds)))
        rows.append(("evaluate", run_level(
            lambda i: contract.evaluate("Get", [json.dumps("warm")]), 32, args.seconds / 2)))
        memory = rss_mb(cc_pid)
        loaded = memory_breakdown(cc_pid)
        clients.close()
    finally:
        net.down(log=lambda *_: None)
        if tmp:
            tmp.cleanup()
    print("| operation | in flight | tx | errors | tx/s | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for op, r in rows:
        print(f"| {op} | {r['in_flight']} | {r['n']} | {r['errors']} | {r['tps']:.1f} | "
              f"{r['p50_ms']:.0f} | {r['p99_ms']:.0f} |")
    print(f"\nPython chaincode process RSS after the run (operator peer): {memory:.0f} MB")
    print(f"  after the first transaction: {idle}\n  after the run: {loaded}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
