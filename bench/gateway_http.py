"""Benchmark: what the REST gateway's HTTP layer costs by itself, without Fabric.

The gateway app (Flask, the real routes, API keys, schema validation, metrics) served by gunicorn as
`ipledger gateway serve` serves it, but over a ledger that answers each submit after a fixed wait (a
commit's latency) and spends no CPU of its own. N client threads POST MoveGoods events (keep-alive
connections) for a while; the table gives the rate, the latency and the CPU milliseconds per request of
the gateway's processes and of the HTTP client. With the wait at 1 s, N in flight should give N requests a
second: less means requests queued for a worker thread.

    .venv/bin/python bench/gateway_http.py [--seconds 10] [--wait 1.0] [--in-flight 8,32,128]
                                           [--config 2x64,2x128]   # workers x threads per worker
                                           [--client stdlib,requests]

``--client``: the benchmarks' own keep-alive client (``bench/http_client.py``, ``stdlib``, the default) and/or
``requests``, to show what the load generator's HTTP client takes from the machine.

The loopback server and the client share the machine's cores; nothing else should run meanwhile.
"""
from __future__ import annotations

import argparse
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import process_cpu_seconds  # noqa: E402

PORT = 18555


def serve(workers: int, threads: int, port: int, keys: Path, nonce: Path, wait: float) -> None:
    """The gateway app over a ledger that waits ``wait`` seconds per submit (in the server process)."""
    from ipledger.gateway.app import create_app
    from ipledger.gateway.config import GatewayConfig
    from ipledger.gateway.server import GatewayServer, gunicorn_options
    from tests.unit.gateway.fakes import FakeLedger

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ipledger-bench-metrics-")
    from prometheus_client import values
    values.ValueClass = values.get_value_class()

    class WaitingLedger(FakeLedger):
        def submit(self, *args, **kwargs):
            time.sleep(wait)
            result = super().submit(*args, **kwargs)
            self.submits.clear()   # the fake keeps every submit; a benchmark run must not grow with it
            return result

    config = GatewayConfig(keys_file=keys, nonce_key_file=nonce, worker_threads=threads)
    options = gunicorn_options(f"127.0.0.1:{port}", workers, threads, 120, "warning")
    GatewayServer(config, options, app_factory=lambda c: create_app(c, ledger=WaitingLedger())).run()


def cpu_seconds(pids) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += process_cpu_seconds(pid)
        except OSError:
            continue
    return total


def measure(workers: int, threads: int, levels: list[int], seconds: float, wait: float,
            client: str = "stdlib") -> list[dict]:
    import requests

    from bench.chaincode_put import run_level
    from bench.http_client import HttpClient
    from ipledger.gateway.auth import KeyStore

    tmp = tempfile.TemporaryDirectory(prefix="ipledger-bench-http-")
    keys = KeyStore(Path(tmp.name) / "gateway" / "api-keys.json")
    _, key = keys.create("OperatorMSP", "clerk", "benchmark")
    server = subprocess.Popen([sys.executable, __file__, "--serve", f"{workers}x{threads}", "--wait", str(wait),
                               "--keys", str(keys.path), "--nonce", str(Path(tmp.name) / "gateway" / "nonce.key")],
                              start_new_session=True)
    url = f"http://127.0.0.1:{PORT}"
    rows = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{url}/healthz", timeout=1)
                break
            except requests.RequestException:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the benchmark's gateway did not start") from None
                time.sleep(0.2)
        if client == "requests":
            http = requests.Session()
            http.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=512))
        else:
            http = HttpClient()
        headers = {"Authorization": f"Bearer {key}"}
        numbers = itertools.count()
        lock = threading.Lock()

        def call(_i):
            with lock:
                n = next(numbers)
            event = {"type": "MoveGoods", "event_id": f"e-{n}", "occurred_at": "2026-12-03T10:00:00.000000Z",
                     "authorisation_id": "FRIPO000001", "lot_id": f"L{n % 1000}", "quantity": 1,
                     "from_site": "BOURGES-1", "to_site": "BOURGES-2"}
            r = http.post(f"{url}/api/v1/events", json=event, headers=headers, timeout=120)
            if r.status_code != 201:
                raise RuntimeError(f"{r.status_code}: {r.text[:200]}")

        pids = [int(p) for p in subprocess.run(["pgrep", "-g", str(server.pid)], capture_output=True,
                                               text=True).stdout.split()]
        for in_flight in levels:
            run_level(call, in_flight, min(3.0, seconds))    # connections opened, threads started
            server_before, client_before = cpu_seconds(pids), time.process_time()
            r = run_level(call, in_flight, seconds)
            done = max(r["n"], 1)
            rows.append({"config": f"{workers} × {threads}", "client": client, "in_flight": in_flight, "n": r["n"],
                         "errors": r["errors"], "tps": r["tps"], "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"],
                         "server_ms": (cpu_seconds(pids) - server_before) * 1000 / done,
                         "client_ms": (time.process_time() - client_before) * 1000 / done})
            print(f"  {rows[-1]['config']}, {client}, {in_flight} in flight: {r['tps']:.1f}/s", file=sys.stderr, flush=True)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        tmp.cleanup()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10, help="seconds per level (default 10)")
    ap.add_argument("--wait", type=float, default=1.0, help="the ledger's answer time per submit (default 1.0 s)")
    ap.add_argument("--in-flight", default="8,32,128", help="levels, comma-separated (default 8,32,128)")
    ap.add_argument("--config", default="2x64,2x128", help="gunicorn workers x threads per worker, comma-separated")
    ap.add_argument("--client", default="stdlib", help="HTTP clients, comma-separated: stdlib (bench/http_client.py), "
                    "requests (default stdlib)")
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--keys", help=argparse.SUPPRESS)
    ap.add_argument("--nonce", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        workers, threads = (int(x) for x in args.serve.split("x"))
        serve(workers, threads, PORT, Path(args.keys), Path(args.nonce), args.wait)
        return 0
    levels = [int(x) for x in args.in_flight.split(",")]
    rows = []
    clients = args.client.split(",")
    if set(clients) - {"stdlib", "requests"}:
        ap.error(f"--client: stdlib or requests, not {args.client}")
    for config in args.config.split(","):
        workers, threads = (int(x) for x in config.split("x"))
        for client in clients:
            rows += measure(workers, threads, levels, args.seconds, args.wait, client)
    print("| workers × threads | client | in flight | requests | errors | req/s | p50 ms | p99 ms | "
          "gateway CPU ms/request | client CPU ms/request |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['config']} | {r['client']} | {r['in_flight']} | {r['n']} | {r['errors']} | {r['tps']:.1f} | {r['p50_ms']:.0f} | "
              f"{r['p99_ms']:.0f} | {r['server_ms']:.2f} | {r['client_ms']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
