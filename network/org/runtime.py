"""How this host runs its organisations' nodes: native processes or containers.

A state directory runs its nodes one way, chosen at the first ``network up``
(``ipledger --runtime docker network up``, or ``IPLEDGER_RUNTIME``) and recorded in
``<state>/runtime``; every later command (status, logs, down, add-org, chaincode deploy,
gateway start) reads the record, so the two runtimes are used the same way. A ledger lives
in the nodes' data directories (native) or in named volumes (docker): switching a state
directory from one runtime to the other would start empty nodes beside the old ledgers, so
it is refused until ``network down --purge``.

A runtime answers for one node at a time (:class:`Runtime`); ``network/org/nodes.py``
decides what to start and when.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Protocol

from ipledger.network import files
from ipledger.network.org import processes
from ipledger.network.consortium import Node
from ipledger.network.layout import Layout

NATIVE = "native"
DOCKER = "docker"
RUNTIMES = (NATIVE, DOCKER)
ENV = "IPLEDGER_RUNTIME"


class RuntimeChoiceError(RuntimeError):
    """The runtime asked for cannot be used for this state directory; the message says why."""


class Runtime(Protocol):
    name: str

    def running(self, node: Node) -> str | None:
        """The running node's process id or container id, None if it does not run."""

    def start(self, node: Node) -> str:
        """Start the node detached; returns what :meth:`running` will answer."""

    def stop(self, node: Node) -> bool:
        """Stop the node; whether it was running."""

    def log_lines(self, node: Node, lines: int) -> list[str]:
        """The last ``lines`` lines of the node's log (empty: no log yet)."""

    def follow(self, node: Node, lines: int) -> None:
        """Print the node's last lines, then what it logs, until interrupted."""

    def where(self, node: Node) -> str:
        """Where the node's log is, for messages."""


class NativeRuntime:
    """Fabric binaries as processes of this host (network/org/processes.py)."""

    name = NATIVE

    def __init__(self, layout: Layout):
        self.layout = layout

    def running(self, node: Node) -> str | None:
        pid = processes.running_pid(self.layout, node)
        return None if pid is None else str(pid)

    def start(self, node: Node) -> str:
        return str(processes.start(self.layout, node))

    def stop(self, node: Node) -> bool:
        return processes.stop(self.layout, node)

    def log_lines(self, node: Node, lines: int) -> list[str]:
        try:
            return files.last_lines(self.layout.log_file(node), lines)
        except OSError:
            return []

    def follow(self, node: Node, lines: int) -> None:
        path = self.layout.log_file(node)
        with open(path, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            for line in files.last_lines(path, lines, end=end, keepends=True):   # a line being written: the rest follows
                sys.stdout.write(line)
            sys.stdout.flush()
            while True:
                line = f.readline()
                if line:
                    sys.stdout.write(line.decode("utf-8", errors="replace"))
                    sys.stdout.flush()
                else:
                    time.sleep(0.3)

    def where(self, node: Node) -> str:
        return str(self.layout.log_file(node))


def record_file(layout: Layout) -> Path:
    return layout.root / "runtime"


def recorded(layout: Layout) -> str | None:
    try:
        name = record_file(layout).read_text().strip()
    except OSError:
        return None
    return name or None


def choose(layout: Layout, requested: str | None) -> str:
    """The runtime of ``layout``'s state directory: the one recorded, else the one asked for
    (``--runtime`` or ``IPLEDGER_RUNTIME``), else native. Asking for another than the recorded
    one is refused (see the module's docstring)."""
    requested = requested or os.environ.get(ENV) or None
    if requested is not None and requested not in RUNTIMES:
        raise RuntimeChoiceError(f"unknown runtime {requested!r}: one of {', '.join(RUNTIMES)}")
    current = recorded(layout)
    if current is not None and current not in RUNTIMES:
        raise RuntimeChoiceError(f"{record_file(layout)} names an unknown runtime {current!r}")
    if current is None and any(layout.root.glob("*/nodes/*/data/*")):
        current = NATIVE   # made before the record existed: its ledgers are in its data directories
    if requested and current and requested != current:
        raise RuntimeChoiceError(
            f"{layout.root} runs its nodes as {current} (recorded in {record_file(layout)}); its "
            f"ledgers are there. Running them as {requested} would start empty nodes: take it down "
            f"with 'ipledger network down --purge' (this deletes its ledgers) first")
    return current or requested or NATIVE


def record(layout: Layout, name: str) -> None:
    layout.root.mkdir(parents=True, exist_ok=True)
    files.write_atomically(record_file(layout), f"{name}\n".encode())   # a power cut leaves the old record or this


def open_runtime(layout: Layout, name: str) -> Runtime:
    if name == DOCKER:
        from ipledger.network.org.containers.runtime import DockerRuntime  # the Docker SDK only when asked for
        return DockerRuntime(layout)
    return NativeRuntime(layout)
