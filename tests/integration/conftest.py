"""Real Fabric network fixtures, one network per test run.

``fabric_network`` brings the default consortium up in a temporary state
directory on free loopback ports and takes it down (leaving no process) at the
end of the session. Later suites (chaincode, gateway) build on it.
"""
from __future__ import annotations

import os
import random
import socket
from pathlib import Path

import pytest

from network.lifecycle import Network

PORTS_NEEDED = 200


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base_port() -> int:
    """A base port whose whole range is free right now."""
    rng = random.Random()
    for _ in range(50):
        base = rng.randrange(20000, 40000, 100)
        if all(port_free(p) for p in range(base, base + PORTS_NEEDED)):
            return base
    raise RuntimeError("no free range of loopback ports found")


def processes_using(state_dir: Path) -> list[int]:
    """PIDs of any process started with a config under ``state_dir``."""
    marker = f"FABRIC_CFG_PATH={state_dir}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker in (proc / "environ").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return [p for p in pids if p != os.getpid()]


@pytest.fixture(scope="session")
def fabric_network(tmp_path_factory) -> Network:
    state = tmp_path_factory.mktemp("fabric") / "state"
    net = Network.open(state, base_port=free_base_port())
    try:
        net.up(log=lambda *_: None)
        yield net
    finally:
        net.down(log=lambda *_: None)
    leftover = processes_using(net.layout.root)
    assert not leftover, f"processes left running after down: {leftover}"
