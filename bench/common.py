"""What the benchmarks share: the time stamp of an event, the authorisation customs grant, a process's CPU time, a
network of their own."""
from __future__ import annotations

import datetime as dt
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from ipledger.chaincode.testing import scenario

TICKS_PER_S = os.sysconf("SC_CLK_TCK")   # /proc's clock ticks


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
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S   # utime, stime


@contextmanager
def fresh_network(prefix: str, say: Callable[[str], None]) -> Iterator:
    """A network of the benchmark's own (native nodes on loopback, the default consortium) in a temporary
    directory, up; taken down and deleted afterwards."""
    from ipledger.network.org.nodes import Nodes
    from tests.integration.conftest import free_base_port
    tmp = tempfile.TemporaryDirectory(prefix=prefix)
    net = Nodes.open(Path(tmp.name) / "state", base_port=free_base_port())
    try:
        say("network up …")
        net.up(log=lambda *_: None)
        yield net
    finally:
        net.down(log=lambda *_: None)
        tmp.cleanup()
