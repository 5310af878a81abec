"""Test hosts in network namespaces: one network stack and one address per Fabric node, on one machine.

    hosts = TestHosts(["orderer0.orderer", "peer0.customs", ...])
    try:
        hosts.create()
        hosts["peer0.customs"].address        # 198.18.<n>.11
        hosts["peer0.customs"].netns          # ipl-<run>-peer0.customs  (the consortium file's `netns:`)
        hosts.partition("peer0.operator")     # its cable is pulled ...
        hosts.heal("peer0.operator")          # ... and plugged back in
    finally:
        problems = hosts.teardown()           # processes, namespaces, links: everything, even after a failure

Topology (every name carries a random per-run tag, so parallel runs do not collide)::

    root namespace                 switch namespace ipl-<run>-sw          node namespaces ipl-<run>-<node id>
    ipl<run>h 198.18.<n>.1/24 ---- uplink -- br0 -- p0 ------------------- eth0 198.18.<n>.10/24, lo
    (test process, Fabric CLIs)                 +-- p1 ------------------- eth0 198.18.<n>.11/24, lo
                                                +-- ...

The bridge lives in a namespace of its own, not in the root namespace: on a machine where ``br_netfilter`` is
loaded (any host running Docker) bridged frames go through the root namespace's iptables FORWARD chain, whose
policy Docker sets to DROP; a fresh namespace has no rules. Node-to-node traffic is bridged there; traffic
between the test process and a node is local traffic of the root namespace (no forwarding).

Addresses come from 198.18.0.0/15, the benchmarking range (RFC 2544), never from a real network. Nothing is
forwarded or NATed to the outside and no namespace has a default route: a node reaches the other nodes and
the root namespace's bridge address, nothing else.

A partition takes the node's switch port down (``ip link set p<i> down`` in the switch namespace): its
namespace keeps its address and its processes keep running, but no frame crosses in either direction.

Needs root (``CAP_NET_ADMIN`` and ``CAP_SYS_ADMIN``) and iproute2's ``ip``: :func:`require_netns` fails the
test (it does not skip) when they are missing.
"""
from __future__ import annotations

import ipaddress
import os
import random
import secrets
import shutil
import signal
import socket
import sys
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

TEST_RANGE = ipaddress.ip_network("198.18.0.0/15")  # RFC 2544 benchmarking range
NETNS_DIR = Path("/var/run/netns")                  # where `ip netns` keeps its named namespaces
IP_TIMEOUT = 15.0                                   # seconds, for any one `ip` command
FIRST_HOST = 10                                     # node i gets 198.18.<n>.(10 + i); .1 is the root side


class NetnsError(RuntimeError):
    """An `ip` command failed; the message holds the command and its output."""


def ip(*args: str, check: bool = True, timeout: float = IP_TIMEOUT) -> subprocess.CompletedProcess:
    """Run ``ip <args>``."""
    out = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)} failed (exit {out.returncode}): "
                         f"{(out.stderr or out.stdout).strip()}")
    return out


def run_in(netns: str, argv: list[str], *, timeout: float = 30.0, check: bool = False,
           **kwargs) -> subprocess.CompletedProcess:
    """Run ``argv`` inside the network namespace ``netns`` (``ip netns exec``)."""
    return subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True, text=True,
                          timeout=timeout, check=check, **kwargs)


def require_netns() -> None:
    """Fail the calling test, with the reason, unless this process may create network namespaces."""
    if os.geteuid() != 0:
        pytest.fail("the multi-host test needs root (it creates network namespaces, veth pairs and a "
                    f"bridge with `ip`); running as uid {os.geteuid()}")
    if shutil.which("ip") is None:
        pytest.fail("the multi-host test needs iproute2's `ip` command (apt-get install iproute2)")
    probe = f"ipl-probe-{secrets.token_hex(3)}"
    try:
        ip("netns", "add", probe)
    except (NetnsError, OSError, subprocess.TimeoutExpired) as e:
        pytest.fail(f"cannot create a network namespace here: {e}")
    ip("netns", "del", probe, check=False)


@dataclass(frozen=True)
class Host:
    """One node's test host: its namespace, its address, and its port on the switch."""
    node: str       # the node id it is for, e.g. "peer0.operator"
    netns: str      # the network namespace's name (the consortium file's `netns:`)
    address: str    # its address on eth0 (the consortium file's `host:`)
    port: str       # its veth end in the switch namespace (down = partitioned)


class TestHosts:
    """Namespaces, links and addresses for ``nodes``; see the module docstring."""

    __test__ = False  # not a pytest test class despite its name

    def __init__(self, nodes: list[str]):
        self.nodes = list(nodes)
        self.run_id = secrets.token_hex(3)
        self.prefix = f"ipl-{self.run_id}"
        self.switch = f"{self.prefix}-sw"
        self.uplink = f"ipl{self.run_id}h"       # root-namespace interface (<= 15 characters)
        self.subnet: ipaddress.IPv4Network | None = None
        self.hosts: dict[str, Host] = {}
        self._namespaces: list[str] = []         # created so far, for the teardown
        self._uplink_created = False

    def __getitem__(self, node: str) -> Host:
        return self.hosts[node]

    @property
    def gateway_address(self) -> str:
        """The root namespace's address on the test network (where the test process's traffic comes from)."""
        return str(self.subnet.network_address + 1)

    # ------------------------------------------------------------------ create

    def create(self) -> "TestHosts":
        self.subnet = _free_subnet()
        prefixlen = self.subnet.prefixlen
        self._add_netns(self.switch)
        ip("-n", self.switch, "link", "set", "lo", "up")
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        ip("link", "add", self.uplink, "type", "veth", "peer", "name", "uplink", "netns", self.switch)
        self._uplink_created = True
        ip("-n", self.switch, "link", "set", "uplink", "master", "br0")
        ip("addr", "add", f"{self.gateway_address}/{prefixlen}", "dev", self.uplink)
        for i, node in enumerate(self.nodes):
            ns = f"{self.prefix}-{node}"
            address = str(self.subnet.network_address + FIRST_HOST + i)
            port = f"p{i}"
            self._add_netns(ns)
            ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
            ip("-n", self.switch, "link", "set", port, "master", "br0")
            ip("-n", self.switch, "link", "set", port, "up")
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "addr", "add", f"{address}/{prefixlen}", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            self.hosts[node] = Host(node, ns, address, port)
        for link in ("br0", "uplink"):
            ip("-n", self.switch, "link", "set", link, "up")
        ip("link", "set", self.uplink, "up")
        self._wait_reachable()
        return self

    def _add_netns(self, name: str) -> None:
        ip("netns", "add", name)
        self._namespaces.append(name)

    def _wait_reachable(self, timeout: float = 15.0) -> None:
        """IPv4 addresses are usable at once, but the bridge ports pass frames only once they are
        forwarding: wait until the root namespace reaches every host."""
        deadline = time.monotonic() + timeout
        pending = list(self.hosts.values())
        while pending:
            pending = [h for h in pending if not _reachable(h.address)]
            if pending and time.monotonic() > deadline:
                raise NetnsError(f"test hosts unreachable {timeout:.0f} s after creation: "
                                 f"{', '.join(h.node for h in pending)}")
            if pending:
                time.sleep(0.2)

    # ------------------------------------------------------------------ faults

    def partition(self, node: str) -> None:
        """Cut ``node`` off the network (its switch port down); its processes keep running."""
        ip("-n", self.switch, "link", "set", self.hosts[node].port, "down")

    def heal(self, node: str) -> None:
        ip("-n", self.switch, "link", "set", self.hosts[node].port, "up")

    def can_connect(self, from_node: str, address: str, port: int, timeout: float = 2.0) -> bool:
        """Whether a TCP connection from inside ``from_node``'s namespace to ``address:port`` succeeds."""
        code = ("import socket, sys\n"
                "try:\n"
                f"    socket.create_connection(({address!r}, {port}), timeout={timeout}).close()\n"
                "except OSError:\n"
                "    sys.exit(1)\n")
        out = run_in(self.hosts[from_node].netns, [sys.executable, "-c", code], timeout=timeout + 10)
        return out.returncode == 0

    # ------------------------------------------------------------------ teardown

    def pids(self) -> list[int]:
        """Processes living in any of this run's namespaces."""
        found: set[int] = set()
        for ns in self._namespaces:
            out = ip("netns", "pids", ns, check=False)
            found.update(int(p) for p in out.stdout.split() if p.isdigit())
        return sorted(found)

    def teardown(self, timeout: float = 15.0) -> list[str]:
        """Kill every process inside this run's namespaces, delete the namespaces (with every veth
        end and the bridge in them) and the root-namespace interface. Returns what could not be
        removed (empty when all is gone); never raises, so it is safe in a ``finally``."""
        problems: list[str] = []
        deadline = time.monotonic() + timeout
        pids = self.pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if _alive(p)]
            if pids:
                time.sleep(0.1)
        if pids:
            problems.append(f"processes still alive in the test namespaces: {pids}")
        for ns in reversed(self._namespaces):
            out = ip("netns", "del", ns, check=False)
            if out.returncode != 0 and (NETNS_DIR / ns).exists():
                problems.append(f"namespace {ns}: {out.stderr.strip()}")
        # The root end of the uplink disappears with the switch namespace (once no process holds it).
        if self._uplink_created:
            while _link_exists(self.uplink) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _link_exists(self.uplink):
                out = ip("link", "del", self.uplink, check=False)
                if out.returncode != 0 and _link_exists(self.uplink):
                    problems.append(f"link {self.uplink}: {out.stderr.strip()}")
        problems += [f"namespace {ns} still listed" for ns in self.leftover_namespaces()]
        return problems

    def leftover_namespaces(self) -> list[str]:
        out = ip("netns", "list", check=False).stdout
        return [line.split()[0] for line in out.splitlines()
                if line.split() and line.split()[0].startswith(self.prefix + "-")]


# ---------------------------------------------------------------------------------------------- helpers

def _free_subnet(attempts: int = 50) -> ipaddress.IPv4Network:
    """A random /24 of the test range that no address or route of the root namespace touches."""
    used = []
    for line in ip("-4", "-o", "addr", "show").stdout.splitlines() + \
            ip("-4", "route", "show", "table", "all").stdout.splitlines():
        for token in line.split():
            try:
                used.append(ipaddress.ip_network(token, strict=False))
            except ValueError:
                continue
    subnets = list(TEST_RANGE.subnets(new_prefix=24))
    rng = random.Random()
    for _ in range(attempts):
        candidate = rng.choice(subnets)
        if not any(candidate.overlaps(u) for u in used if u.prefixlen > 0):
            return candidate
    raise NetnsError("no free /24 left in 198.18.0.0/15 on this machine")


def _reachable(address: str) -> bool:
    """Whether ``address`` is reachable from the root namespace (a TCP connect to a closed port is
    answered with a reset by a live host: refused = reachable)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect((address, 9))  # discard: nothing listens there
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
    return True


def _link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state == "Z":
        try:  # reap it if it is our child
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return False
    return True
