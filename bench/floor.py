"""Benchmark: the platform's own rate as the ledger grows — no contract, Fabric's Go ``kvexecutor`` (goal 5).

What the peers alone do with a growing state database, as a floor for ``bench/load.py``'s event rate: a fresh
network, Fabric's own Go test chaincode (``integration/chaincode/kvexecutor`` of the pinned module, built and
cached as ``bench/compare.py`` does, endorsement AND(customs, operator) as the contract's), and 64 client threads
(the load's) sending transactions through the Python Gateway client. Each transaction reads ``--reads`` keys
written before (chosen at random over the whole ledger: the worst case for the peers' block cache), reads
``--absent`` keys that do not exist (as the contract's uniqueness checks do: an event id, a declaration, a lot
id), and writes ``--writes`` new keys of ``--value-bytes`` each. At each checkpoint it prints the phase's rate and
the CPU milliseconds per transaction by role, then a Markdown table.

    .venv/bin/python bench/floor.py [--events 100000] [--reads 3] [--absent 1] [--writes 4] [--value-bytes 800]
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import fresh_network  # noqa: E402
from bench.chaincode_put import CPU_ROLES, cpu_seconds, machine_shares, machine_ticks  # noqa: E402
from bench.compare import kvexecutor  # noqa: E402
from ipledger.network.channel.chaincode import Deployer  # noqa: E402
from ipledger.network.channel.package import ChaincodeSpec, build_binary_package  # noqa: E402
from tests.integration.conftest import Clients  # noqa: E402

IN_FLIGHT = 64
CHECKPOINTS = (2000, 10000, 25000, 50000, 75000, 100000)


def encoded(items: list[dict]) -> str:
    """kvexecutor's argument: a base64 JSON list of ``{"key", "value"}``."""
    return base64.b64encode(json.dumps(items).encode()).decode() if items else ""


def key(n: int, j: int) -> str:
    """The ``j``-th key transaction ``n`` writes: 24 hex digits, spread over the whole key range."""
    return hashlib.sha256(f"{n}/{j}".encode()).hexdigest()[:24]


def value(n: int, j: int, size: int) -> str:
    """``size`` hex digits, no run repeated (snappy cannot shrink it much, as it cannot shrink the contract's JSON
    a great deal either)."""
    out, i = [], 0
    while sum(map(len, out)) < size:
        out.append(hashlib.sha256(f"{n}/{j}/{i}".encode()).hexdigest())
        i += 1
    return "".join(out)[:size]


class Load:
    """``IN_FLIGHT`` threads taking transaction numbers until the phase's target."""

    def __init__(self, call, args):
        self.call, self.args = call, args
        self.lock = threading.Lock()
        self.next = 0
        self.errors = 0
        self.last_error = ""

    def _transaction(self, n: int, rng: random.Random) -> None:
        a = self.args
        reads = [{"key": key(rng.randrange(n - IN_FLIGHT), rng.randrange(a.writes))}
                 for _ in range(a.reads if n > IN_FLIGHT else 0)]
        reads += [{"key": f"absent-{key(n, 1000 + j)}"} for j in range(a.absent)]
        writes = [{"key": key(n, j), "value": value(n, j, a.value_bytes)} for j in range(a.writes)]
        self.call(encoded(reads), encoded(writes))

    def _worker(self, target: int, seed: int) -> None:
        rng = random.Random(seed)
        while True:
            with self.lock:
                if self.next >= target:
                    return
                n = self.next
                self.next += 1
            try:
                self._transaction(n, rng)
            except Exception as exc:  # noqa: BLE001 — counted and reported
                with self.lock:
                    self.errors += 1
                    self.last_error = str(exc)[:200]

    def run_to(self, target: int) -> dict:
        first, started, ticks, cpu = self.next, time.monotonic(), machine_ticks(), cpu_seconds()
        threads = [threading.Thread(target=self._worker, args=(target, target * IN_FLIGHT + i))
                   for i in range(IN_FLIGHT)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed, after = time.monotonic() - started, cpu_seconds()
        done = max(1, target - first)
        return {"checkpoint": target, "tps": (target - first) / elapsed, "errors": self.errors,
                "last_error": self.last_error, **machine_shares(ticks, machine_ticks()),
                "cpu_ms": {r: (after[r] - cpu[r]) * 1000 / done for r in CPU_ROLES}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--reads", type=int, default=3, help="keys written before read by each transaction")
    ap.add_argument("--absent", type=int, default=1, help="keys that do not exist read by each transaction")
    ap.add_argument("--writes", type=int, default=4, help="new keys each transaction writes")
    ap.add_argument("--value-bytes", type=int, default=800)
    args = ap.parse_args()
    checkpoints = [c for c in CHECKPOINTS if c < args.events] + [args.events]
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731 — progress, apart from the table
    rows = []
    with fresh_network("ipledger-floor-", say) as net, tempfile.TemporaryDirectory(prefix="ipledger-floor-pkg-") as tmp:
        executable = kvexecutor(say)
        spec = ChaincodeSpec(name="benchgo", version="1.0", signature_policy="AND('CustomsMSP.peer','OperatorMSP.peer')")
        Deployer(net, log=lambda *_: None).deploy(
            spec, pkg=build_binary_package(spec.label, executable, Path(tmp) / "benchgo.tar.gz"))
        clients = Clients(net)
        contract = clients.contract("OperatorMSP", "benchgo")
        load = Load(lambda reads, writes: contract.submit("readWriteKVs", [reads, writes]), args)
        for checkpoint in checkpoints:
            say(f"to {checkpoint} transactions …")
            rows.append(load.run_to(checkpoint))
            say(json.dumps(rows[-1]))
        clients.close()
    print(f"reads {args.reads} written before + {args.absent} absent, writes {args.writes} × {args.value_bytes} bytes, "
          f"{IN_FLIGHT} in flight\n")
    print("| transactions on the ledger | phase tx/s | errors | CPU ms per transaction: " + " · ".join(CPU_ROLES) +
          " | CPU idle % |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['checkpoint']} | {r['tps']:.1f} | {r['errors']} | " +
              " · ".join(f"{r['cpu_ms'][role]:.2f}" for role in CPU_ROLES) + f" | {r['idle_pct']:.1f} |")
    return 0 if rows and not rows[-1]["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
