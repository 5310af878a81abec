"""What the benchmarks share: the time stamp of an event, the authorisation customs grant, a process's CPU time."""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from ipledger.chaincode.testing import scenario

_TICK = os.sysconf("SC_CLK_TCK")


def now() -> str:
    """This moment in UTC, as an event's ``occurred_at``."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def grant(auth_id: str, event_id: str | None = None, max_qty: int = 100_000_000) -> dict:
    """GrantAuthorisation's fields (the chaincode's argument; through the REST API, add its ``type``): the
    authorisation of domain.md §8 (:func:`ipledger.chaincode.testing.scenario.authorisation_fields`) valid from
    30 days ago (the ledger judges validity in UTC), with room for a long run (``max_qty`` of input goods) and no
    representative."""
    fields = scenario.authorisation_fields(dt.datetime.now(dt.timezone.utc), broker_mandates=[])
    fields["input_goods"] = [{**goods, "max_qty": max_qty} for goods in fields["input_goods"]]
    return {"event_id": event_id or f"grant-{auth_id}", "occurred_at": now(), "authorisation_id": auth_id,
            **fields}


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) so far of process ``pid``, from /proc/<pid>/stat (OSError when it is gone)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK   # utime, stime
