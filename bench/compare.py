"""Benchmark pairs of issue 16, side by side on one fresh network, in one run.

    .venv/bin/python bench/compare.py [--seconds 10] [--rounds 2]

One network (1 Raft orderer, 3 peers, BatchTimeout 250 ms), the ipledger contract and the Python test
chaincode (one-key ``Put``, endorsement AND(customs, operator)), customs' and the operator's REST gateways
(their defaults: 2 gunicorn workers x 128 threads). Customs grants 1 + 128 authorisations; the operator places
32 lots under the first ("one authorisation") and one lot under each of the others ("many"). Every client
thread then works on its own lot, alternating MoveGoods and ExitGoods (1 p/st re-exported, a new MRN each
time: an exit changes the authorisation's balances, a move does not) — the mix an ERP catching up sends.

Each side of a pair is measured in its steady state — its load runs 2 s before a window of ``--seconds``
opens, and only the calls that end inside the window count (the ramp up and the drain do not) — and the
sides take turns and back, ``--rounds`` times (A B, B A, …), their windows added up: a single 10 s window at
128 in flight swung by ±15 % from run to run on the same code, and whatever drifts during a run (the machine,
the ledger's size) now weighs on both sides of a pair alike. Nothing else should run meanwhile.

Pairs:

* one_auth/many — the mix on 32 lots of one authorisation against 32 lots of 32 other authorisations, one lot
  each (client; each round takes the next 32 of the 128);
* contract/put  — the mix on many authorisations against the one-key put, same client, 32 and 128 in flight;
* rest/client   — the mix through the operator's REST gateway against the client, 8, 32 and 128 in flight,
  both measured while customs' and the operator's gateways run (their live feeds store every event), once
  the feeds have caught up with the channel; and the REST balance query at 1 in flight (p50: its answer is
  given again while the channel's height is unchanged, gateway/answers.py), beside the authorisation query,
  which the gateway evaluates every time. The REST load is posted with ``bench/http_client.py`` (the
  standard library's keep-alive connections), which takes 0.5–0.8 ms of the machine's CPU per request
  where ``requests`` took 2.0–2.3: an ERP runs on its own host, the benchmark's stand-in for it should take
  as little as it can from the cores it measures;
* python/go     — the same one-key put (and get) through Fabric's own Go test chaincode
  (``integration/chaincode/kvexecutor`` of the pinned Fabric module, built here with Go once and cached
  beside the Fabric binaries, launched by the peers through the ipledger builder as an ``ipledger-binary``
  package, exactly like the Python chaincode): submit at 32 and 128, evaluate at 32, and the RSS of both
  chaincode processes on the operator's peer.

Prints a Markdown table and, as its last line,
``ratios: one_auth/many=X contract/put=X python/go_submit=X python/go_evaluate=X rest/client=X`` (at 32 in
flight). Rates are committed transactions per second as the client saw them (2xx / successful submit);
errors are counted and shown, never retried.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.chaincode_put import CPU_ROLES, VALUE, measure, rss_mb, run_level, summary  # noqa: E402
from bench.common import grant, now  # noqa: E402
from bench.http_client import HttpClient  # noqa: E402
from bench.rest_submit import start_gateways  # noqa: E402
from ipledger.network.org import binaries  # noqa: E402
from ipledger.chaincode.testing import mrns  # noqa: E402
from ipledger.network.cli import gateway_daemon as daemon  # noqa: E402
from ipledger.network.channel.package import CHAINCODE_DIR, ChaincodeSpec, build_binary_package  # noqa: E402
from ipledger.network.channel.chaincode import Deployer  # noqa: E402
from ipledger.network.org.nodes import Nodes  # noqa: E402
from tests.integration.conftest import STUBCHECK_DIR, Clients, free_base_port  # noqa: E402

ONE = "FRIPO000000"
MANY = [f"FRIPO{n:06d}" for n in range(1, 129)]
SITES = ("BOURGES-1", "BOURGES-2")
HOLDER = "FR12345678901234"
LOT_QTY = 1_000_000
QUIET = lambda *_: None  # noqa: E731
MRNS_PER_MIX = 100_000   # a test MRN's number has 6 digits (chaincode/testing/mrns.py): 9 mixes of 100,000
WARMUP_S = 2.0   # each level's load runs this long before its measured window opens (bench/chaincode_put.py)


def place(auth: str, lot: str, n: int) -> tuple[dict, dict]:
    event = {"event_id": f"place-{lot}", "occurred_at": now(), "authorisation_id": auth, "lot_id": lot,
             "mrn": mrns.placement_mrn(n), "item_no": 1, "procedure": "5100", "cn": "40122000",
             "description": "used tyres", "quantity": LOT_QTY, "unit": "p/st", "origin": "MA", "site": SITES[0]}
    commercial = {"customs_value": {"amount": "1000.00", "currency": "EUR"}, "nonce": f"nonce-of-{lot}-{n:06d}"}
    return event, {"commercial": json.dumps(commercial).encode()}


class Mix:
    """Per client thread: its own (authorisation, lot), and its next event — MoveGoods and ExitGoods in turn.
    A level's threads take the lots in turn, the next level's threads the following ones (round the list again
    once every lot has had its turn): one thread at a time on a lot, as long as a level has no more threads
    than there are lots."""

    def __init__(self, tag: str, lots: list[tuple[str, str]], mrn_base: int):
        self.tag, self.lots, self.mrn_base = tag, itertools.cycle(lots), mrn_base
        self.local = threading.local()
        self.lock = threading.Lock()
        self.exits = iter(range(10**9))
        self.events = iter(range(10**9))

    def next(self) -> tuple[str, dict]:
        if not hasattr(self.local, "lot"):
            with self.lock:
                self.local.auth, self.local.lot = next(self.lots)
            self.local.n = 0
        self.local.n += 1
        auth, lot, n = self.local.auth, self.local.lot, self.local.n
        with self.lock:
            k = next(self.events)
        base = {"event_id": f"{self.tag}-{lot}-{k}", "occurred_at": now(), "authorisation_id": auth, "lot_id": lot}
        if n % 2:
            frm, to = (SITES[0], SITES[1]) if n % 4 == 1 else (SITES[1], SITES[0])
            return "MoveGoods", {**base, "quantity": 1, "from_site": frm, "to_site": to}
        with self.lock:
            e = next(self.exits)
        if e >= MRNS_PER_MIX:   # the next mix's MRNs: its exits would be refused as declared already
            raise RuntimeError(f"{self.tag}: {MRNS_PER_MIX} exits made, no MRN left")
        # the goods to re-export are at BOURGES-1 (the moves bring each unit back there)
        return "ExitGoods", {**base, "quantity": 1, "procedure": "3151",
                             "mrn": mrns.exit_mrn(self.mrn_base + e)}


def kvexecutor(log) -> Path:
    """Fabric's Go test chaincode from the pinned module (checksum verified as for the Fabric commands),
    built once and cached beside the Fabric binaries; never part of the product."""
    import shutil
    target = binaries.cache_dir() / "bench" / "kvexecutor"
    if target.exists():
        return target
    go = shutil.which("go")
    if not go:
        raise SystemExit("Go is needed to build Fabric's kvexecutor chaincode for the Python/Go pair")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        env = binaries.go_environment(go)
        binaries.fetch_module(go, env, cwd=tmp, log=log)
        # built inside the module (its own go.mod and go.sum pick every dependency): 'go install path@version'
        # would first probe the proxy for .../kvexecutor/cmd as a module of its own, which the proxy refuses
        module = Path(binaries._go_env(go, env, "GOMODCACHE")) / f"{binaries.MODULE}@{binaries.PSEUDO_VERSION}"
        log("building Fabric's kvexecutor (Go) …")
        binaries._run([go, "build", "-mod=mod", "-o", str(Path(tmp) / "kvexecutor"),
                     "./integration/chaincode/kvexecutor/cmd"], env, cwd=str(module), log=log)
        Path(tmp, "kvexecutor").replace(target)
    return target


def kv_args(key: str, value: str | None) -> list[str]:
    """kvexecutor's readWriteKVs arguments: base64 JSON lists of reads and of writes."""
    import base64
    kv = [{"key": key, **({"value": value} if value is not None else {})}]
    encoded = base64.b64encode(json.dumps(kv).encode()).decode()
    return ["", encoded] if value is not None else [encoded, ""]


def chaincode_pid(net: Nodes, executable_suffix: str, peer) -> int | None:
    """The chaincode process the peer launched whose program ends with ``executable_suffix`` and which dials
    the peer's chaincode listener."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].decode(errors="replace").endswith(executable_suffix) and \
                f"-peer.address={peer.host}:{peer.chaincode_port}".encode() in args:
            return int(proc.name)
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10,
                    help="seconds each side of a pair is measured in each round (default 10)")
    ap.add_argument("--rounds", type=int, default=2,
                    help="rounds of each pair, in turn and back: A B, B A, … (default 2)")
    args = ap.parse_args()
    if args.rounds < 1 or not 0 < args.seconds * args.rounds <= 300:
        ap.error("--rounds at least 1, --seconds above 0, and at most 300 s of each side in all (each mix's "
                 f"exits take MRNs of a range of {MRNS_PER_MIX})")
    tmp = tempfile.TemporaryDirectory(prefix="ipledger-compare-")
    state = Path(tmp.name) / "state"
    net = Nodes.open(state, base_port=free_base_port())
    rows: list[tuple[str, dict]] = []
    started: list[str] = []
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731 — progress, apart from the table
    try:
        say("network up …")
        net.up(log=QUIET)
        go_exe = kvexecutor(say)
        say("deploying the contract, the Python one-key put chaincode and Fabric's Go kvexecutor …")
        deployer = Deployer(net, log=QUIET)
        deployer.deploy(ChaincodeSpec.default())
        policy = "AND('CustomsMSP.peer','OperatorMSP.peer')"
        deployer.deploy(ChaincodeSpec(name="benchput", version="1.0", contract="stubcheck:StubCheck",
                                      sources=[CHAINCODE_DIR, STUBCHECK_DIR], signature_policy=policy))
        go_spec = ChaincodeSpec(name="benchgo", version="1.0", signature_policy=policy)
        deployer.deploy(go_spec, pkg=build_binary_package(go_spec.label, go_exe, Path(tmp.name) / "benchgo.tar.gz"))
        clients = Clients(net)
        customs = clients.contract("CustomsMSP", "ipledger")
        operator = clients.contract("OperatorMSP", "ipledger")
        put = clients.contract("OperatorMSP", "benchput")
        go = clients.contract("OperatorMSP", "benchgo")

        say("customs grants 129 authorisations, the operator places 160 lots …")
        customs.submit("RegisterParty", [json.dumps({"event_id": "parties", "occurred_at": now(),
                                                     "msp_id": "OperatorMSP", "role": "holder", "eoris": [HOLDER]})])
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda a: customs.submit("GrantAuthorisation", [json.dumps(grant(a))]), [ONE, *MANY]))
        one_lots = [(ONE, f"ONE{i:03d}") for i in range(32)]
        many_lots = [(auth, f"M{auth[-3:]}") for auth in MANY]
        wait_for_peer(net, "OperatorMSP")
        for n, (auth, lot) in enumerate(one_lots, start=1):   # one authorisation: its ceiling, one at a time
            event, transient = place(auth, lot, n)
            operator.submit("PlaceUnderProcedure", [json.dumps(event)], transient=transient)
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda item: operator.submit(
                "PlaceUnderProcedure", [json.dumps(place(item[1][0], item[1][1], 1000 + item[0])[0])],
                transient=place(item[1][0], item[1][1], 1000 + item[0])[1]), enumerate(many_lots)))

        def client_mix(mix: Mix):
            def call(_i):
                fn, event = mix.next()
                operator.submit(fn, [json.dumps(event)])
            return call

        mrn_base = iter(range(MRNS_PER_MIX, 1_000_000, MRNS_PER_MIX))   # each mix its own exit MRNs
        put_keys, go_keys = iter(range(10**9)), iter(range(10**9))   # new keys every time: k0, k1, … and g0, …
        for in_flight in (32, 128):
            say(f"measuring at {in_flight} in flight: "
                + ("one authorisation against many, " if in_flight == 32 else "")
                + "the contract against a one-key put, the Python chaincode against Fabric's Go chaincode …")
            level = [("many authorisations, client", client_mix(Mix(f"many{in_flight}", many_lots, next(mrn_base)))),
                     ("one-key put, client", lambda _i: put.submit("Put", [json.dumps(f"k{next(put_keys)}"), VALUE])),
                     ("one-key put, Go kvexecutor",
                      lambda _i: go.submit("readWriteKVs", kv_args(f"g{next(go_keys)}", VALUE)))]
            if in_flight == 32:
                level.insert(0, ("one authorisation, client", client_mix(Mix("one32", one_lots, next(mrn_base)))))
            rows += alternate(level, in_flight, args.seconds, args.rounds, say)
        say("measuring: the Python chaincode against Fabric's Go chaincode, evaluate, 32 in flight …")
        rows += alternate([("one-key get (evaluate), client",
                            lambda i: put.evaluate("Get", [json.dumps(f"k{i % 100}")])),
                           ("one-key get (evaluate), Go kvexecutor",
                            lambda i: go.evaluate("readWriteKVs", kv_args(f"g{i % 100}", None)))],
                          32, args.seconds, args.rounds, say)
        operator_peer = net.consortium.org("OperatorMSP").peers[0]
        go_pid = chaincode_pid(net, "/bin/chaincode", operator_peer)
        memory = {"Python": rss_mb(json.loads(put.evaluate("Pid", []))),
                  "Go": rss_mb(go_pid) if go_pid else float("nan")}

        say("starting customs' and the operator's REST gateways …")
        url, key = start_gateways(state, ("CustomsMSP", "OperatorMSP"), started)
        http = HttpClient()   # the ERP's side, lean: bench/http_client.py says why

        def rest_mix(mix: Mix):
            def call(_i):
                fn, event = mix.next()
                r = http.post(f"{url['OperatorMSP']}/api/v1/events", json={"type": fn, **event},
                              headers=key["OperatorMSP"], timeout=120)
                if r.status_code != 201:
                    raise RuntimeError(f"{r.status_code}: {r.text[:200]}")
            return call

        # the gateways' feeds read the channel from block 0: measure once they have caught up, as in service
        last = operator.submit("MoveGoods", [json.dumps(Mix("feed", many_lots[:1], 0).next()[1])])
        say("waiting for the gateways' live feeds to catch up with the channel …")
        wait_for_feeds(net, ("CustomsMSP", "OperatorMSP"), last.block_number, last.tx_id)
        for in_flight in (8, 32, 128):
            say(f"measuring: REST against the client (gateways running), {in_flight} in flight …")
            rows += alternate([
                ("many authorisations, REST", rest_mix(Mix(f"rest{in_flight}", many_lots, next(mrn_base)))),
                ("many authorisations, client, gateways running",
                 client_mix(Mix(f"client{in_flight}", many_lots, next(mrn_base))))],
                in_flight, args.seconds, args.rounds, say)

        def balances(_i):
            r = http.get(f"{url['CustomsMSP']}/api/v1/authorisations/{ONE}/balances", headers=key["CustomsMSP"],
                         timeout=30)
            r.raise_for_status()
        rows.append(("REST balance query", run_level(balances, 1, args.seconds / 2, warmup=WARMUP_S)))

        def authorisation(_i):   # the same path, evaluated every time (gateway/answers.py keeps balances only)
            r = http.get(f"{url['CustomsMSP']}/api/v1/authorisations/{ONE}", headers=key["CustomsMSP"], timeout=30)
            r.raise_for_status()
        rows.append(("REST authorisation query (never kept)",
                     run_level(authorisation, 1, args.seconds / 2, warmup=WARMUP_S)))
        clients.close()
    finally:
        for org in started:
            daemon.stop(state, log=QUIET, org=org)
        net.down(log=QUIET)
        tmp.cleanup()

    print("| measurement | in flight | tx | errors | tx/s | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['in_flight']} | {r['n']} | {r['errors']} | {r['tps']:.1f} | {r['p50_ms']:.1f} | "
              f"{r['p99_ms']:.1f} |")
    print("\nCPU milliseconds per committed transaction (user + system, every process of each role; then the "
          "machine's other processes, and its time stolen by the hypervisor or left idle):\n")
    print("| measurement | in flight | " + " | ".join(CPU_ROLES) + " | total | other processes | stolen % | idle % |")
    print("|---|---|" + "---|" * (len(CPU_ROLES) + 4))
    for name, r in rows:
        cpu = r["cpu_ms"]
        print(f"| {name} | {r['in_flight']} | " + " | ".join(f"{cpu[role]:.1f}" for role in CPU_ROLES)
              + f" | {sum(cpu.values()):.1f} | {r['other_ms']:.1f} | {r['steal_pct']:.1f} | {r['idle_pct']:.1f} |")
    rate = {(name, r["in_flight"]): r["tps"] for name, r in rows}
    many32 = rate[("many authorisations, client", 32)]
    print(f"\nChaincode process RSS on the operator's peer after the run: Python {memory['Python']:.0f} MB, "
          f"Go {memory['Go']:.0f} MB")
    print()
    print(f"ratios: one_auth/many={rate[('one authorisation, client', 32)] / many32:.2f} "
          f"contract/put={many32 / rate[('one-key put, client', 32)]:.2f} "
          f"python/go_submit={rate[('one-key put, client', 32)] / rate[('one-key put, Go kvexecutor', 32)]:.2f} "
          f"python/go_evaluate={rate[('one-key get (evaluate), client', 32)] / rate[('one-key get (evaluate), Go kvexecutor', 32)]:.2f} "
          f"rest/client={rate[('many authorisations, REST', 32)] / rate[('many authorisations, client, gateways running', 32)]:.2f}")
    return 0


def alternate(levels: list[tuple[str, Callable[[int], None]]], in_flight: int, seconds: float, rounds: int,
              say: Callable[[str], None]) -> list[tuple[str, dict]]:
    """Each of ``levels`` measured ``rounds`` times in its steady state, in turn and back (A B, B A, A B, …):
    whatever drifts over a run (the machine, the ledger's size) weighs on every side of a pair alike. Each
    side's windows are added up (bench/chaincode_put.py, ``summary``)."""
    samples: dict[str, list[dict]] = {name: [] for name, _ in levels}
    for r in range(rounds):
        for name, call in (levels if r % 2 == 0 else levels[::-1]):
            samples[name].append(measure(call, in_flight, seconds, warmup=WARMUP_S))
        if rounds > 1:
            say(f"  round {r + 1} of {rounds} done")
    return [(name, summary(samples[name])) for name, _ in levels]


def wait_for_feeds(net: Nodes, orgs, block: int, tx_id: str, timeout: float = 300) -> None:
    """Until the live feed of every gateway of ``orgs`` has stored transaction ``tx_id`` of ``block`` (its
    checkpoint file, ``<org>/gateway/feed*.checkpoint.json``, is at or past it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        behind = []
        for org in orgs:
            files = net.layout.gateway_dir(net.consortium.org(org)).glob("feed*.checkpoint.json")
            marks = [json.loads(f.read_text()) for f in files]
            if not any(m.get("blockNumber", -1) > block or (m.get("blockNumber") == block and m.get("transactionId")
                                                              == tx_id) for m in marks):
                behind.append(org)
        if not behind:
            return
        time.sleep(0.5)
    raise SystemExit(f"the live feed of {', '.join(behind)} did not catch up within {timeout:.0f} s")


def wait_for_peer(net: Nodes, msp_id: str, timeout: float = 30) -> None:
    """Until ``msp_id``'s peer has every block customs' peer has (the grants, before the placements)."""
    peer = net.consortium.org(msp_id).peers[0]
    target = net.peer_height(net.consortium.org("CustomsMSP").peers[0]) or 0
    deadline = time.monotonic() + timeout
    while (net.peer_height(peer) or 0) < target and time.monotonic() < deadline:
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
