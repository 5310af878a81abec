"""bench/chaincode_put.py's levels and bench/compare.py's turns: what a measured window counts (no network)."""
from __future__ import annotations

import threading
import time

from bench import chaincode_put, compare

CALL_S = 0.02


def test_a_steady_window_counts_only_the_calls_that_end_inside_it():
    started = time.monotonic()
    ends: list[float] = []
    lock = threading.Lock()

    def call(_i):
        time.sleep(CALL_S)
        with lock:
            ends.append(time.monotonic() - started)

    sample = chaincode_put.measure(call, 2, 0.4, warmup=0.3)
    # the load ran through the warm-up and into the drain; the window is 0.4 s long and counts what ended in it
    assert sample["seconds"] == 0.4
    assert len(ends) > len(sample["latencies"])
    inside = [e for e in ends if 0.3 <= e <= 0.7 + 0.01]
    assert abs(len(sample["latencies"]) - len(inside)) <= 2
    assert 3 <= len(sample["latencies"]) <= 0.4 / CALL_S * 2 + 2


def test_errors_of_the_warm_up_are_not_counted_those_of_the_window_are():
    started = time.monotonic()

    def call(_i):
        time.sleep(CALL_S)
        elapsed = time.monotonic() - started
        if elapsed < 0.25 or 0.4 < elapsed < 0.7:
            raise RuntimeError("refused")

    sample = chaincode_put.measure(call, 1, 0.6, warmup=0.3)
    assert 1 <= sample["errors"] <= 0.3 / CALL_S + 2   # those between 0.4 and 0.7 s only
    assert sample["latencies"]


def test_without_warm_up_every_call_counts_from_start_to_the_last_ones_end():
    calls = []

    def call(i):
        calls.append(i)
        time.sleep(CALL_S)

    sample = chaincode_put.measure(call, 3, 0.2)
    assert len(sample["latencies"]) == len(calls)
    assert sample["seconds"] >= 0.2


def test_a_summary_adds_up_the_windows_and_pools_the_latencies():
    tick = 1 / chaincode_put.TICKS_PER_S
    # /proc/stat's ticks: user, nice, system, idle, iowait, irq, softirq, steal
    a = {"in_flight": 4, "latencies": [0.1] * 30, "errors": 1, "seconds": 10.0,
         "cpu_s": dict.fromkeys(chaincode_put.CPU_ROLES, 0.3), "ticks": [round(2.0 / tick), 0, 0, 0, 0, 0, 0, 0]}
    b = {"in_flight": 4, "latencies": [0.3] * 10, "errors": 2, "seconds": 10.0,
         "cpu_s": dict.fromkeys(chaincode_put.CPU_ROLES, 0.1), "ticks": [0, 0, round(0.4 / tick), round(1.0 / tick),
                                                                        0, 0, 0, round(0.6 / tick)]}
    s = chaincode_put.summary([a, b])
    assert (s["n"], s["errors"], s["in_flight"]) == (40, 3, 4)
    assert s["tps"] == 2.0
    assert round(s["p50_ms"]) == 100 and round(s["p99_ms"]) == 300
    assert all(round(v, 6) == 10.0 for v in s["cpu_ms"].values())   # 0.4 s of each role over 40 calls
    # 2.4 s busy, of which the roles' 2.0 s: 0.4 s of other processes over 40 calls; of 4.0 s, 0.6 stolen, 1.0 idle
    assert round(s["other_ms"], 6) == 10.0
    assert (round(s["steal_pct"], 6), round(s["idle_pct"], 6)) == (15.0, 25.0)


def test_the_sides_of_a_pair_take_turns_and_back(monkeypatch):
    order = []
    monkeypatch.setattr(compare, "measure", lambda call, in_flight, seconds, warmup: (
        order.append(call), {"in_flight": in_flight, "latencies": [0.01], "errors": 0, "seconds": seconds,
                             "cpu_s": dict.fromkeys(chaincode_put.CPU_ROLES, 0.0), "ticks": [0] * 8})[1])
    rows = compare.alternate([("A", "a"), ("B", "b")], 32, 5.0, 3, lambda _text: None)
    assert order == ["a", "b", "b", "a", "a", "b"]
    assert [name for name, _ in rows] == ["A", "B"]
    assert all(r["n"] == 3 and r["tps"] == 3 / 15.0 for _, r in rows)


def test_the_mix_gives_each_thread_of_a_level_its_own_lot_and_every_event_its_own_id():
    lots = [(f"AUTH{n}", f"LOT{n}") for n in range(4)]
    mix = compare.Mix("t", lots, 100_000)
    events: list[tuple[str, dict]] = []
    lock = threading.Lock()
    level_lots: list[set[str]] = []
    for _level in range(3):   # three levels of 2 threads, 3 events each: lots 0-1, 2-3, 0-1 again
        taken: list[str] = []

        def thread():
            for _ in range(3):
                fn, event = mix.next()
                with lock:
                    events.append((fn, event))
            with lock:
                taken.append(mix.local.lot)

        threads = [threading.Thread(target=thread) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        level_lots.append(set(taken))
    assert level_lots == [{"LOT0", "LOT1"}, {"LOT2", "LOT3"}, {"LOT0", "LOT1"}]
    ids = [e["event_id"] for _, e in events]
    assert len(ids) == len(set(ids)) == 18
    mrns = [e["mrn"] for fn, e in events if fn == "ExitGoods"]
    assert len(mrns) == len(set(mrns)) == 6
    assert [fn for fn, _ in events].count("MoveGoods") == 12
