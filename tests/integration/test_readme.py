"""The README's promises to a newcomer, run as written: `scripts/up`, then the
curl walkthrough block, then stopping everything."""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import free_base_port, port_free, processes_using

pytestmark = pytest.mark.fabric
ROOT = Path(__file__).resolve().parents[2]


def walkthrough_block() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- walkthrough:[^>]*-->\s*```sh\n(.*?)```", text, re.S)
    assert match, "the README lost its walkthrough block"
    return match.group(1)


def test_scripts_up_then_the_readme_walkthrough(tmp_path):
    base = free_base_port()
    gateway_port = next(p for p in range(base + 150, base + 200) if all(port_free(p + i) for i in range(3)))
    env = dict(os.environ, IPLEDGER_STATE_DIR=str(tmp_path / "state"),
               IPLEDGER_BASE_PORT=str(base), IPLEDGER_GATEWAY_PORT=str(gateway_port))
    try:
        up = subprocess.run(["bash", "scripts/up"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=600)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        state = tmp_path / "state"
        for i, (org, name) in enumerate((("CustomsMSP", "customs"), ("OperatorMSP", "operator"),
                                         ("BrokerMSP", "broker"))):
            url = f"http://127.0.0.1:{gateway_port + i}"
            assert f"{org}'s gateway: {url}" in up.stdout
            assert f"Dashboard:  {url}/dashboard/" in up.stdout
            assert re.search(rf"{org}\s+API key: ipk_\S+", up.stdout), org
            # each gateway's credentials in its own organisation's directory, for that organisation only
            creds = state / name / "gateway" / "credentials.json"
            assert oct(creds.stat().st_mode & 0o777) == "0o600"
            written = json.loads(creds.read_text())
            assert written["url"] == url and list(written["keys"]) == [org]
        assert not (state / "gateway").exists()

        import datetime as dt
        env["NOW"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        run = subprocess.run(["bash", "-euo", "pipefail", "-c", walkthrough_block()], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        answers = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
        events = 6  # two parties registered, the grant, placement, processing, exit
        assert [a.get("status") for a in answers[:events]] == ["COMMITTED"] * events, answers
        assert all(len(a["tx_id"]) == 64 and a["block_number"] > 0 for a in answers[:events])
        balances = {(b["category"], b["cn"]): b for b in answers[events]["balances"]}
        assert balances[("INPUT", "40122000")]["stock"] == 500
        assert balances[("INPUT", "40122000")]["consumed"] == 500
        assert balances[("PRODUCT", "40121200")]["exited"] == {"3151": 498}

        again = subprocess.run(["bash", "-euo", "pipefail", "-c", walkthrough_block()],
                               cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        replays = [json.loads(line) for line in again.stdout.splitlines() if line.strip()][:events]
        # Same event ids, same content: the original transactions, nothing recorded twice.
        assert [r["tx_id"] for r in replays] == [a["tx_id"] for a in answers[:events]]
        assert [r["status"] for r in replays] == ["REPLAYED"] * events, replays

        env["NOW"] = "2026-01-01T00:00:00Z"  # same event ids, other content
        changed = subprocess.run(["bash", "-euo", "pipefail", "-c", walkthrough_block()],
                                 cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        first = json.loads(changed.stdout.splitlines()[0])
        assert first["status"] == 409 and first["type"].endswith("/duplicate-event"), first

        # The machine restarts: everything stopped as the README's `scripts/up` says (the state kept), then
        # `scripts/up` again. The ledger, the contract's idempotency records and the balances are all there.
        cli = [str(ROOT / ".venv" / "bin" / "ipledger")]
        for org in ("CustomsMSP", "OperatorMSP", "BrokerMSP"):
            stop = subprocess.run(cli + ["gateway", "stop", "--org", org], env=env, cwd=ROOT, capture_output=True,
                                  text=True)
            assert stop.returncode == 0, stop.stderr
        down = subprocess.run(cli + ["network", "down"], env=env, cwd=ROOT, capture_output=True, text=True)
        assert down.returncode == 0, down.stderr
        assert processes_using(state) == []
        up = subprocess.run(["bash", "scripts/up"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        env["NOW"] = answers[0]["result"]["occurred_at"]
        # Just after a restart the peers are still finding each other (gossip): an event may be answered 503
        # with Retry-After for a few seconds (the README says so). Sent again, as an ERP does, until it is not.
        deadline = time.monotonic() + 120
        while True:
            after = subprocess.run(["bash", "-euo", "pipefail", "-c", walkthrough_block()], cwd=tmp_path, env=env,
                                   capture_output=True, text=True, timeout=300)
            assert after.returncode == 0, after.stderr
            again = [json.loads(line) for line in after.stdout.splitlines() if line.strip()]
            if not any(a.get("status") == 503 for a in again[:events]) or time.monotonic() > deadline:
                break
            time.sleep(3)
        assert [(r["status"], r["tx_id"]) for r in again[:events]] == \
               [("REPLAYED", a["tx_id"]) for a in answers[:events]], again
        assert again[events]["balances"] == answers[events]["balances"]
    finally:
        cli = [str(ROOT / ".venv" / "bin" / "ipledger")]
        for org in ("CustomsMSP", "OperatorMSP", "BrokerMSP"):
            subprocess.run(cli + ["gateway", "stop", "--org", org], env=env, cwd=ROOT, capture_output=True)
        subprocess.run(cli + ["network", "down", "--purge"], env=env, cwd=ROOT, capture_output=True)
    assert processes_using(tmp_path / "state") == []
