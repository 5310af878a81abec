"""Benchmark: business events through the REST gateway vs the Python Gateway client.

A throw-away network with the ipledger contract and one REST gateway per
organisation that posts (gunicorn, 2 workers each) on loopback: customs' and the
operator's, each with its own organisation's identity and API key only. After
customs grants an authorisation (through its gateway) and the operator places a
lot (through its own), MoveGoods events go back and forth between the two
sites of their own lot (one lot per client thread, so no two transactions in
flight touch the same keys), at 8 and 32 in flight:

* through the REST API (HTTP POST /api/v1/events to the operator's gateway, its API key);
* the same contract call directly with the Python client (`gateway/client`);

then balance queries (GET /api/v1/authorisations/{id}/balances, customs' gateway) at 32 in flight.
Prints a Markdown table for docs/benchmarks.md.

    .venv/bin/python bench/rest_submit.py [--seconds 15]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ipledger.chaincode.testing import mrns  # noqa: E402
from bench import common  # noqa: E402
from bench.chaincode_put import rss_mb, run_level  # noqa: E402
from bench.common import now  # noqa: E402
from bench.http_client import HttpClient  # noqa: E402
from ipledger.network.cli import gateway_daemon as daemon  # noqa: E402
from ipledger.network.channel.package import ChaincodeSpec  # noqa: E402
from ipledger.network.channel.chaincode import Deployer  # noqa: E402
from ipledger.network.org.nodes import Nodes  # noqa: E402
from tests.integration.conftest import Clients, free_base_port, port_free  # noqa: E402

AUTH = "FRIPO000001"
ORGS = ("CustomsMSP", "OperatorMSP")  # the organisations that post: one gateway each
SITES = ("BOURGES-1", "BOURGES-2")


def place(lot: str, n: int) -> dict:
    return {"type": "PlaceUnderProcedure", "event_id": f"bench-place-{lot}", "occurred_at": now(),
            "authorisation_id": AUTH, "lot_id": lot, "mrn": mrns.from_unique(f"{n:012d}"), "item_no": 1,
            "procedure": "5100", "cn": "40122000", "description": "used tyres",
            "quantity": 100_000, "unit": "p/st", "origin": "MA", "site": SITES[0],
            "commercial": {"customs_value": {"amount": "1000.00", "currency": "EUR"}}}


def move(lot_and_count: tuple[str, int], tag: str) -> dict:
    lot, n = lot_and_count
    frm, to = (SITES[0], SITES[1]) if n % 2 == 1 else (SITES[1], SITES[0])
    return {"type": "MoveGoods", "event_id": f"bench-{tag}-{lot}-{n}", "occurred_at": now(),
            "authorisation_id": AUTH, "lot_id": lot, "quantity": 1, "from_site": frm,
            "to_site": to}


def start_gateways(state: Path, orgs, started: list[str]) -> tuple[dict[str, str], dict[str, dict]]:
    """Each organisation's own REST gateway (its own identity and API key only) on a free loopback port:
    (URL, Authorization header) by MSP id. ``started`` collects the organisations to stop afterwards."""
    url, key = {}, {}
    for org in orgs:
        port = next(p for p in range(18080, 18180) if port_free(p))
        started.append(org)
        url[org] = daemon.start(state, bind=f"127.0.0.1:{port}", log=lambda *_: None, org=org)
        creds = daemon.ensure_credentials(state, url[org], org)
        key[org] = {"Authorization": f"Bearer {creds['keys'][org]['key']}"}
    return url, key


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=15, help="seconds per measured level (default 15)")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="ipledger-bench-")
    state = Path(tmp.name) / "state"
    net = Nodes.open(state, base_port=free_base_port())
    rows = []
    started: list[str] = []  # the organisations whose gateway was started
    try:
        net.up(log=lambda *_: None)
        Deployer(net, log=lambda *_: None).deploy(ChaincodeSpec.default())
        url, key = start_gateways(state, ORGS, started)
        http = HttpClient()   # the ERP's side, lean: bench/http_client.py says why

        def post(org: str, body: dict, retry_s: float = 0) -> None:
            """POST an event through ``org``'s own gateway (``retry_s``: retry a 4xx for that long, until
            ``org``'s peer has the block of another organisation's earlier event)."""
            deadline = time.monotonic() + retry_s
            while True:
                r = http.post(f"{url[org]}/api/v1/events", json=body, headers=key[org], timeout=60)
                if r.status_code in (200, 201):
                    return
                if time.monotonic() > deadline or r.status_code >= 500:
                    raise RuntimeError(f"{r.status_code}: {r.text[:300]}")
                time.sleep(0.5)

        post("CustomsMSP", {"type": "RegisterParty", "event_id": "bench-parties", "occurred_at": now(),
                            "msp_id": "OperatorMSP", "role": "holder", "eoris": ["FR12345678901234"]})
        post("CustomsMSP", {"type": "GrantAuthorisation", **common.grant(AUTH, "bench-grant", max_qty=10_000_000)})
        lots = [f"LOT{i:03d}" for i in range(64)]
        for n, lot in enumerate(lots, start=1):
            post("OperatorMSP", place(lot, n), retry_s=30 if n == 1 else 0)
        clients = Clients(net)
        contract = clients.contract("OperatorMSP", "ipledger")

        import threading
        local = threading.local()
        lot_of = iter(lots)
        lock = threading.Lock()

        def my_lot() -> tuple[str, int]:
            """This thread's own lot, and how many moves it made (moves alternate per lot)."""
            if not hasattr(local, "lot"):
                with lock:
                    local.lot, local.moves = next(lot_of), 0
            local.moves += 1
            return local.lot, local.moves

        for in_flight in (8, 32):
            lot_of = iter(lots)
            local = threading.local()
            rows.append(("REST submit", run_level(
                lambda i: post("OperatorMSP", move(my_lot(), f"rest{in_flight}")),
                in_flight, args.seconds)))
            lot_of = iter(lots)
            local = threading.local()

            def direct(i, in_flight=in_flight):
                event = move(my_lot(), f"direct{in_flight}")
                event.pop("type")
                contract.submit("MoveGoods", [json.dumps(event)])
            rows.append(("client submit", run_level(direct, in_flight, args.seconds)))

        def balances(_i):
            r = http.get(f"{url['CustomsMSP']}/api/v1/authorisations/{AUTH}/balances", headers=key["CustomsMSP"],
                         timeout=30)
            r.raise_for_status()
        rows.append(("REST balances", run_level(balances, 32, args.seconds / 2)))
        gw_pid = daemon.running(state, "OperatorMSP")[0]  # the gateway under the submit load
        import subprocess
        children = subprocess.run(["pgrep", "-g", str(gw_pid)], capture_output=True,
                                  text=True).stdout.split()
        gateway_mb = sum(rss_mb(int(p)) for p in children)
        peer_mb = rss_mb(int(net.layout.pid_file(net.consortium.node("peer0.customs")).read_text()))
        clients.close()
    finally:
        for org in started:
            daemon.stop(state, log=lambda *_: None, org=org)
        net.down(log=lambda *_: None)
        tmp.cleanup()
    print("| path | in flight | tx | errors | tx/s | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['in_flight']} | {r['n']} | {r['errors']} | {r['tps']:.1f} | "
              f"{r['p50_ms']:.0f} | {r['p99_ms']:.0f} |")
    print(f"\nOperator's gateway RSS (gunicorn master + workers): {gateway_mb:.0f} MB; "
          f"customs peer RSS: {peer_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
