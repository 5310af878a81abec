"""Benchmark: customs' own records while another member floods customs' peer with heavy proposals.

Any member may send proposals straight to any peer's endorser — customs' too, whose endorsement every record
needs. Here the operator keeps N proposals of ``GetEventsInPeriod`` (the authorisation's whole history, about a
megabyte each: 16 lots, 960 losses) in flight on customs' peer, signed with its own client identity, while
customs record controls through their own gateway (endorsed on their peer and the operator's, ordered,
committed). The table gives customs' submit latency and failures at each level, and what the flood got through.
Before the chaincode's fair admission (chaincode/shim/admission.py), the same flood made customs' endorsements
time out (docs/benchmarks.md, "A member's flood on customs' peer").

    .venv/bin/python bench/flood.py [--in-flight 256,1024,3000] [--seconds 8] [--submits 8]

A fresh network of its own (native nodes, loopback); nothing else should run meanwhile.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import fresh_network, now  # noqa: E402
from ipledger.chaincode.testing.scenario import USED_TYRES, evidence  # noqa: E402
from ipledger.gateway.client.proposal import build_proposal  # noqa: E402
from ipledger.network.channel.chaincode import Deployer  # noqa: E402
from ipledger.network.channel.package import ChaincodeSpec  # noqa: E402
from ipledger.network.fabric.connection import Endpoint, dial  # noqa: E402
from tests.integration.conftest import Clients  # noqa: E402
from tests.integration.realscenario import RealScenario  # noqa: E402

AUTH = "FRIPOFLOOD01"
LOTS, LOSSES_PER_LOT, LOT_QTY = 16, 60, 200


def history(s: RealScenario, clients: Clients) -> None:
    """An authorisation with 16 lots and 960 losses (far from its ceiling: no alert serialises them)."""
    s.accepted(s.grant(AUTH, input_goods=[{"cn": USED_TYRES, "description": "used pneumatic tyres", "unit": "p/st",
                                           "max_qty": 1_000_000}]))
    for i in range(LOTS):
        s.accepted(s.place(f"FLOOD-L{i}", LOT_QTY, auth_id=AUTH))
    operator = clients.contract("OperatorMSP", "ipledger")

    def losses(i: int) -> None:
        for j in range(LOSSES_PER_LOT):
            event = {"event_id": f"flood-loss-{i}-{j}", "authorisation_id": AUTH, "lot_id": f"FLOOD-L{i}",
                     "quantity": 1, "reason": "NATURE", "evidence_hash": evidence(f"{i}-{j}")}
            for _attempt in range(20):
                try:
                    operator.submit("RecordLoss", [json.dumps({**event, "occurred_at": now()})])
                    break
                except Exception:  # noqa: BLE001 - a conflict with another lot's loss (a shared shard): again
                    time.sleep(0.1)
    with ThreadPoolExecutor(LOTS) as pool:
        list(pool.map(losses, range(LOTS)))


class Flood:
    """The operator's proposals kept in flight on customs' peer (``ProcessProposal`` futures)."""

    def __init__(self, clients: Clients, in_flight: int):
        net = clients.net
        gateway = clients.gateway("OperatorMSP")
        customs_peer = net.consortium.node("peer0.customs")
        from fabric_protos.peer import peer_pb2_grpc
        self._channel = dial(Endpoint(customs_peer.address, tls_root_cert=net.layout.tls_ca(customs_peer.org)))
        self._stub = peer_pb2_grpc.EndorserStub(self._channel)
        tomorrow = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)).date().isoformat()
        args = [json.dumps(a) for a in (AUTH, "2000-01-01", tomorrow)]
        self._signed = [build_proposal(gateway.identity, net.consortium.channel, "ipledger", "GetEventsInPeriod",
                                       args).sign(gateway.signer) for _ in range(in_flight + 512)]
        self._slots = threading.Semaphore(in_flight)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._futures: set = set()
        self.answered = self.refused = 0
        self._thread = threading.Thread(target=self._pump, daemon=True)

    def _pump(self) -> None:
        n = 0
        while not self._stop.is_set():
            if not self._slots.acquire(timeout=0.5):
                continue
            future = self._stub.ProcessProposal.future(self._signed[n % len(self._signed)], timeout=120)
            with self._lock:
                self._futures.add(future)
            future.add_done_callback(self._done)
            n += 1

    def _done(self, future) -> None:
        self._slots.release()
        with self._lock:
            self._futures.discard(future)
            try:
                ok = future.result().response.status == 200
            except Exception:  # noqa: BLE001 - refused by the peer's limit, cancelled, timed out
                ok = False
            if ok:
                self.answered += 1
            else:
                self.refused += 1

    def __enter__(self) -> "Flood":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)
        with self._lock:
            pending = list(self._futures)
        for future in pending:
            future.cancel()
        self._channel.close()


def customs_records(s: RealScenario, submits: int, level: int) -> tuple[list[float], list[str]]:
    """Customs record ``submits`` controls (endorsed, ordered, committed): seconds each, and the failures."""
    times, failures = [], []
    for n in range(submits):
        event = {"event_id": f"flood-control-{level}-{n}", "authorisation_id": AUTH, "site": "BOURGES-1",
                 "counted": [{"lot_id": "FLOOD-L0", "qty": LOT_QTY - LOSSES_PER_LOT}]}
        start = time.monotonic()
        try:
            result = s.submit("RecordControl", event, s.customs_msp)
            failure = None if result.ok else result.message
        except Exception as exc:  # noqa: BLE001 - an endorsement past its deadline, a peer that refused it
            failure = repr(exc)
        times.append(time.monotonic() - start)
        if failure is not None:
            failures.append(failure[:160])
    return times, failures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--in-flight", default="256,1024,3000", help="the flood's levels, comma-separated")
    ap.add_argument("--seconds", type=float, default=8, help="the flood's time alone before customs record")
    ap.add_argument("--submits", type=int, default=8, help="customs' records at each level")
    args = ap.parse_args()
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731 - progress, apart from the table
    rows = []
    with fresh_network("ipledger-flood-", say) as net:
        Deployer(net, log=lambda *_: None).deploy(ChaincodeSpec.default())
        clients = Clients(net)
        s = RealScenario(clients, "ipledger")
        say(f"history: {LOTS} lots, {LOTS * LOSSES_PER_LOT} losses …")
        history(s, clients)
        baseline, _ = customs_records(s, args.submits, 0)
        rows.append({"in_flight": 0, "times": baseline, "failures": [], "answered": 0, "refused": 0})
        for level in (int(x) for x in args.in_flight.split(",")):
            say(f"{level} proposals in flight on customs' peer …")
            with Flood(clients, level) as flood:
                time.sleep(args.seconds)
                times, failures = customs_records(s, args.submits, level)
                rows.append({"in_flight": level, "times": times, "failures": failures,
                             "answered": flood.answered, "refused": flood.refused})
            time.sleep(5)   # the peer's and the chaincode's queues empty before the next level
        clients.close()
    print("| operator's proposals in flight on customs' peer | customs' records: p50 s | max s | failed | "
          "flood answered · refused |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['in_flight']} | {statistics.median(r['times']):.2f} | {max(r['times']):.2f} | "
              f"{len(r['failures'])} of {len(r['times'])} | {r['answered']} · {r['refused']} |")
    for r in rows:
        for failure in r["failures"][:2]:
            print(f"  {r['in_flight']} in flight: {failure}")
    return 0 if not any(r["failures"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
