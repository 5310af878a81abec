"""bench/floor.py: the transactions it sends to Fabric's kvexecutor (no network here)."""
from __future__ import annotations

import base64
import json
import random
import types

from bench import floor


def decoded(arg: str) -> list[dict]:
    return json.loads(base64.b64decode(arg)) if arg else []


def test_a_transaction_reads_keys_written_before_and_absent_ones_and_writes_new_ones():
    sent = []
    args = types.SimpleNamespace(reads=3, absent=2, writes=4, value_bytes=800)
    load = floor.Load(lambda reads, writes: sent.append((decoded(reads), decoded(writes))), args)
    written = {}
    for n in range(200):
        load._transaction(n, random.Random(n))
        reads, writes = sent[-1]
        assert [w["key"] for w in writes] == [floor.key(n, j) for j in range(4)]
        assert all(len(w["value"]) == 800 for w in writes)
        before = [r["key"] for r in reads if not r["key"].startswith("absent-")]
        absent = [r["key"] for r in reads if r["key"].startswith("absent-")]
        assert len(absent) == 2 and not set(absent) & set(written)
        # keys of transactions at least IN_FLIGHT earlier (committed by then); none before there are any
        assert len(before) == (3 if n > floor.IN_FLIGHT else 0)
        assert all(written[k] < n - floor.IN_FLIGHT + 1 for k in before)
        written.update({w["key"]: n for w in writes})


def test_values_are_not_one_run_repeated():
    """A repeated run would let snappy shrink the values to almost nothing, unlike the contract's JSON."""
    v = floor.value(7, 1, 800)
    assert len(v) == 800 and len({v[i:i + 64] for i in range(0, 768, 64)}) == 12
    assert floor.value(7, 1, 800) == v and floor.value(7, 2, 800) != v
