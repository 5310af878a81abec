"""Every endorsing peer must compute byte-identical results: the same transactions, run in separate
processes whose string hashing differs (``PYTHONHASHSEED``), give the same responses, chaincode events
and write sets, byte for byte (the transactions: ``determinism_run.py``)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

RUNNER = Path(__file__).with_name("determinism_run.py")
ROOT = RUNNER.parents[3]
SEEDS = ("1", "2", "3", "4")


def _run(seed: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONHASHSEED": seed, "IPLEDGER_CUSTOMS_MSP": "CustomsMSP"}
    return subprocess.Popen([sys.executable, str(RUNNER)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def test_same_results_whatever_the_hash_seed():
    procs = {seed: _run(seed) for seed in SEEDS}
    outputs = {}
    for seed, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-3000:]
        outputs[seed] = out
    reference = outputs[SEEDS[0]]
    lines = reference.splitlines()
    assert len(lines) > 150  # the runner did run its transactions
    assert b"CeilingNear" in reference and b"SubmitBillOfDischarge" in reference
    assert b"EoriTaken" in reference and b"WithdrawParty" in reference
    for seed in SEEDS[1:]:
        if outputs[seed] != reference:
            other = outputs[seed].splitlines()
            first = next(i for i, (a, b) in enumerate(zip(lines, other)) if a != b)
            raise AssertionError(f"PYTHONHASHSEED={seed} differs from {SEEDS[0]} at transaction {first + 1}:\n"
                                 f"{lines[first][:1500]!r}\n{other[first][:1500]!r}")


def _computed_floats(transcript: bytes, queries: bool) -> set[str]:
    """Where a JSON float appears in what the contract computed: the submit transactions' write sets,
    chaincode events and responses (``queries`` False), or the evaluate transactions' answers (True).
    The event as submitted (and the authorisation fields it sets) keep the sender's numbers."""
    import json

    found = set()

    def walk(node, path, echo):
        if isinstance(node, float) and not echo:
            found.add(path)
        elif isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{path}/{k}", echo or k in ("event", "args", "yield_rates", "yield_warn_pct",
                                                       "yield_block_pct", "authorisation", "rates_of_yield"))
        elif isinstance(node, list):
            for v in node:
                walk(v, f"{path}/[]", echo)

    for line in transcript.splitlines():
        tx = json.loads(line)
        if tx["fn"].startswith("Get") != queries:
            continue
        texts = [tx["payload"], tx["message"]] + ([tx["event"][1]] if tx["event"] else []) + \
            [v for _k, v in tx["writes"] if v]
        for i, text in enumerate(texts):
            if text:
                try:
                    value = json.loads(text)
                except ValueError:
                    continue
                walk(value, f"{tx['fn']}#{i}", False)
    return found


def test_no_floats_in_what_is_endorsed():
    """Numbers the contract computes in a submit transaction — write set, chaincode event, response —
    are integers or decimal strings (JSON floats are neither exact nor a sound basis for identical
    bytes); the only floats are those an event itself carries, echoed as received."""
    proc = subprocess.run([sys.executable, str(RUNNER)], cwd=ROOT, capture_output=True, check=True, timeout=600)
    found = _computed_floats(proc.stdout, queries=False)
    assert not found, sorted(found)[:20]


def test_no_floats_in_query_answers():
    """Queries answer in the same numbers: ratios and percentages they compute (e.g. the use of each
    ceiling in GetBalances) are decimal strings too."""
    proc = subprocess.run([sys.executable, str(RUNNER)], cwd=ROOT, capture_output=True, check=True, timeout=600)
    assert b'"fn": "GetBalances"' in proc.stdout
    found = _computed_floats(proc.stdout, queries=True)
    assert not found, sorted(found)[:20]
