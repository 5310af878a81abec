"""Customs' cost of supervising many holders, each on a channel of its own (issue 15): 1 holder against N.

    .venv/bin/python bench/holders.py [--holders 10] [--seconds 20] [--in-flight 32]

For 1 holder, then for ``--holders``: a fresh network of customs (one peer), the ordering organisation (one
Raft orderer, BatchTimeout 250 ms) and the holders (one peer each), a channel per holder with customs on every
one (as network/consortium-holders.yaml, without brokers); the contract deployed on every channel. On each
channel customs register the holder and grant it one authorisation; the holders place ``--in-flight`` lots in
all, spread evenly. Then ``--in-flight`` client threads, each on its own lot through its holder's own peer,
alternate MoveGoods and ExitGoods (the mix of bench/compare.py) for ``--seconds``: every transaction is
endorsed by customs' peer and its holder's, so customs' peer carries the whole load whatever the number of
holders.

Measured per run: bringing the network up and deploying the contract (seconds), committed transactions per
second and p50 as the clients saw them, and on customs' host: its peer's RSS and CPU seconds during the load,
the RSS of the chaincode process(es) its peer launched, its peer's ledger on disk, the orderer's RSS. Prints a
Markdown table; progress goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.chaincode_put import rss_mb, run_level  # noqa: E402
from bench.common import grant, now, process_cpu_seconds  # noqa: E402
from bench.compare import SITES, place  # noqa: E402
from ipledger.chaincode.testing import mrns  # noqa: E402
from ipledger.network.org import processes  # noqa: E402
from ipledger.network.channel.package import ChaincodeSpec  # noqa: E402
from ipledger.network.channel.chaincode import deploy_on_channels  # noqa: E402
from ipledger.network.org.nodes import Nodes  # noqa: E402
from tests.integration.conftest import Clients, free_base_port  # noqa: E402

CUSTOMS = "CustomsMSP"
QUIET = lambda *_: None  # noqa: E731
say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731 - progress, apart from the table


def consortium(holders: int) -> dict:
    """customs, the ordering organisation and ``holders`` holders, a channel each."""
    names = [f"{n:02d}" for n in range(1, holders + 1)]
    return {
        "customs": CUSTOMS,
        "channels": [{"name": f"ip-plant{n}", "holder": f"Plant{n}MSP", "representatives": []} for n in names],
        "host": "127.0.0.1", "ports_per_node": 10,
        "orderer": {"consensus": "raft", "msp_id": "OrdererMSP", "nodes": 1, "batch_timeout": "250ms",
                    "max_message_count": 500},
        "organisations": [{"msp_id": CUSTOMS, "name": "customs", "peers": ["peer0"]},
                          *({"msp_id": f"Plant{n}MSP", "name": f"plant{n}", "peers": ["peer0"]} for n in names)],
    }


def children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (the chaincode processes a peer launched through the builder)."""
    out, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                if ppid == parent:
                    out.append(int(proc.name))
                    todo.append(int(proc.name))
    return out


def du_mb(path: Path) -> float:
    return int(subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True).stdout.split()[0]) / 1024


class Lots:
    """Per client thread: its own (contract, authorisation, lot), and its next event, MoveGoods and ExitGoods
    in turn (as bench/compare.py's mix)."""

    def __init__(self, lots: list[tuple[object, str, str]]):
        self.lots = iter(lots)
        self.local = threading.local()
        self.lock = threading.Lock()
        self.exits = iter(range(500_000, 10**9))

    def call(self, _i: int) -> None:
        if not hasattr(self.local, "lot"):
            with self.lock:
                self.local.contract, self.local.auth, self.local.lot = next(self.lots)
            self.local.n = 0
        self.local.n += 1
        n, lot = self.local.n, self.local.lot
        base = {"event_id": f"load-{lot}-{n}", "occurred_at": now(), "authorisation_id": self.local.auth,
                "lot_id": lot}
        if n % 2:
            frm, to = (SITES[0], SITES[1]) if n % 4 == 1 else (SITES[1], SITES[0])
            fn, event = "MoveGoods", {**base, "quantity": 1, "from_site": frm, "to_site": to}
        else:
            with self.lock:
                e = next(self.exits)
            fn, event = "ExitGoods", {**base, "quantity": 1, "procedure": "3151", "mrn": mrns.exit_mrn(e)}
        self.local.contract.submit(fn, [json.dumps(event)])


def run(holders: int, in_flight: int, seconds: float) -> dict:
    tmp = tempfile.TemporaryDirectory(prefix=f"ipledger-holders{holders}-")
    root = Path(tmp.name)
    (root / "consortium.yaml").write_text(yaml.safe_dump(consortium(holders), sort_keys=False))
    net = Nodes.open(root / "state", root / "consortium.yaml", base_port=free_base_port())
    try:
        say(f"{holders} holder(s): network up and the contract on {holders} channel(s) …")
        t0 = time.monotonic()
        net.up(log=QUIET, timeout=180)
        up_s = time.monotonic() - t0
        deploy_on_channels(net, ChaincodeSpec.default(), log=QUIET)
        deploy_s = time.monotonic() - t0 - up_s
        clients = Clients(net)
        channels = net.consortium.channels
        per_holder = [in_flight // holders + (1 if i < in_flight % holders else 0) for i in range(holders)]
        lots: list[tuple[object, str, str]] = []

        def set_up(i: int) -> None:
            ch = channels[i]
            eori = f"FR{i + 1:014d}"
            auth = f"FRIPO{i + 1:06d}"
            customs = clients.gateway(CUSTOMS).network(ch.name).contract("ipledger")
            holder = clients.gateway(ch.holder).network(ch.name).contract("ipledger")
            customs.submit("RegisterParty", [json.dumps({"event_id": f"party-{ch.holder}", "occurred_at": now(),
                                                         "msp_id": ch.holder, "role": "holder", "eoris": [eori]})])
            customs.submit("GrantAuthorisation", [json.dumps({**grant(auth), "holder_eori": eori})])
            time.sleep(1.0)  # the holder's peer has the grant's block (gossip from the orderer)
            for k in range(max(per_holder[i], 1)):
                lot = f"P{i + 1:02d}L{k:02d}"
                event, transient = place(auth, lot, (i + 1) * 100 + k)
                for attempt in range(10):
                    try:
                        holder.submit("PlaceUnderProcedure", [json.dumps(event)], transient=transient)
                        break
                    except Exception:  # noqa: BLE001 - the holder's peer may not have the grant yet
                        if attempt == 9:
                            raise
                        time.sleep(1.0)
                if k < per_holder[i]:
                    lots.append((holder, auth, lot))

        say(f"{holders} holder(s): registering, granting and placing {in_flight} lots …")
        with ThreadPoolExecutor(min(holders, 8)) as pool:
            list(pool.map(set_up, range(holders)))

        customs_peer = net.consortium.org(CUSTOMS).peers[0]
        peer_pid = processes.running_pid(net.layout, customs_peer)
        orderer_pid = processes.running_pid(net.layout, net.consortium.orderers[0])
        cpu0 = process_cpu_seconds(peer_pid)
        say(f"{holders} holder(s): measuring {in_flight} in flight for {seconds:.0f} s …")
        result = run_level(Lots(lots).call, in_flight, seconds)
        cpu = process_cpu_seconds(peer_pid) - cpu0
        chaincodes = [pid for pid in children(peer_pid) if "python" in Path(f"/proc/{pid}/exe").resolve().name]
        clients.close()
        return {"holders": holders, "up_s": up_s, "deploy_s": deploy_s, **result,
                "customs_peer_rss_mb": rss_mb(peer_pid), "customs_peer_cpu_s": cpu,
                "customs_peer_cpu_per_tx_ms": 1000 * cpu / max(result["n"], 1),
                "customs_chaincode_rss_mb": sum(rss_mb(p) for p in chaincodes), "chaincode_processes": len(chaincodes),
                "customs_ledger_mb": du_mb(net.layout.data_dir(customs_peer)), "orderer_rss_mb": rss_mb(orderer_pid)}
    finally:
        net.down(log=QUIET)
        tmp.cleanup()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--holders", type=int, default=10, help="holders of the second run (default 10)")
    ap.add_argument("--seconds", type=float, default=20, help="seconds of load per run (default 20)")
    ap.add_argument("--in-flight", type=int, default=32, help="client threads in all (default 32)")
    args = ap.parse_args()
    rows = [run(n, args.in_flight, args.seconds) for n in (1, args.holders)]
    columns = [("holders", "holders", "{}"), ("network up s", "up_s", "{:.1f}"),
               ("deploy s", "deploy_s", "{:.1f}"), ("tx/s", "tps", "{:.1f}"), ("p50 ms", "p50_ms", "{:.0f}"),
               ("errors", "errors", "{}"), ("customs peer RSS MB", "customs_peer_rss_mb", "{:.0f}"),
               ("customs peer CPU ms/tx", "customs_peer_cpu_per_tx_ms", "{:.1f}"),
               ("customs chaincode RSS MB", "customs_chaincode_rss_mb", "{:.0f}"),
               ("chaincode processes", "chaincode_processes", "{}"),
               ("customs ledger MB", "customs_ledger_mb", "{:.1f}"), ("orderer RSS MB", "orderer_rss_mb", "{:.0f}")]
    print("| " + " | ".join(c[0] for c in columns) + " |")
    print("|" + "---|" * len(columns))
    for r in rows:
        print("| " + " | ".join(fmt.format(r[key]) for _, key, fmt in columns) + " |")
    one, many = rows
    print(f"\n{many['holders']} holders against 1: throughput x{many['tps'] / one['tps']:.2f}, customs' peer RSS "
          f"x{many['customs_peer_rss_mb'] / one['customs_peer_rss_mb']:.2f}, CPU per transaction "
          f"x{many['customs_peer_cpu_per_tx_ms'] / one['customs_peer_cpu_per_tx_ms']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
