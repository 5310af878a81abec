"""Native Fabric processes: start with a log file and a PID file, find, stop.

A PID file alone is not trusted: a node counts as running only if the process
with that PID is alive and its command line names this node's config
directory (PIDs get reused after a reboot).

A node with a ``netns`` in the consortium file (a test/lab feature, see
docs/deployment.md) is started with ``ip netns exec <netns>``, which enters the
namespace and then execs the node in place: the PID is the node's, and the
chaincode processes the peer launches inherit the namespace.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from ipledger.network.org import binaries
from ipledger.network.consortium import Node
from ipledger.network.layout import Layout

# Fabric's gRPC transport logs every closed connection at INFO; keep it to warnings.
LOGGING_SPEC = "grpc=warning:info"
LOGGING_FORMAT = "%{time:2006-01-02 15:04:05.000 MST} [%{module}] %{shortfunc} -> %{level:.4s} %{message}"
NETNS_DIR = Path("/var/run/netns")  # where `ip netns add` puts named network namespaces


class StartError(RuntimeError):
    """A node cannot be started; the message says why."""


def running_pid(lay: Layout, node: Node) -> int | None:
    pid_file = lay.pid_file(node)
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    marker = f"FABRIC_CFG_PATH={lay.node_dir(node)}".encode()
    if not cmdline or Path(cmdline[0].decode()).name != node.kind or marker not in environ:
        return None
    if is_zombie(pid):
        return None
    return pid


def _stat(pid: int | str) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (state, parent pid, …); [] if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def is_zombie(pid: int) -> bool:
    """Whether ``pid`` has ended, its parent not having collected it yet (or is gone altogether)."""
    fields = _stat(pid)
    return not fields or fields[0] == "Z"


def start_time(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, /proc/<pid>/stat field 22): with its pid, it names
    one process for good, where a pid alone may be reused. None if it is gone."""
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else None


def children(pid: int) -> list[int]:
    """The live (not zombie) child processes of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(entry.name)
            if len(fields) > 1 and fields[1] == str(pid) and fields[0] != "Z":
                found.append(int(entry.name))
    return sorted(found)


# Names of variables that hold secrets (an API key, a webhook's secret, a password, a token)
_SECRET_NAME = re.compile(r"KEY|SECRET|PASSW|TOKEN|CREDENTIAL", re.I)


def fabric_environment(environ) -> dict[str, str]:
    """The environment a Fabric process (a node, the peer CLI) is given: this one's, without the variables
    whose names say they hold a secret — an API key or webhook secret an administrator exported for this
    command is not handed to every organisation's nodes on the machine (nor to the chaincode they launch).
    Fabric's own settings (``CORE_*``, ``ORDERER_*``, ``FABRIC_*``: file paths, never key material) pass here;
    the nodes and the peer CLI get the command's ``CORE_*``/``ORDERER_*`` not at all (:func:`node_environment`)."""
    return {k: v for k, v in environ.items()
            if k.startswith(("CORE_", "ORDERER_", "FABRIC_")) or not _SECRET_NAME.search(k)}


def node_environment(environ) -> dict[str, str]:
    """The environment a node or the peer CLI is given: :func:`fabric_environment` without this command's
    ``CORE_*`` and ``ORDERER_*`` variables. Fabric reads those as overrides of the node's configuration file,
    and on one machine the command acts for every organisation: settings an administrator exported for one
    (``CORE_PEER_MSPCONFIGPATH``, ``CORE_PEER_TLS_CLIENTKEY_FILE`` …, as fabric-samples teach) would make
    another organisation's peer sign with, or read, that organisation's keys. A node's settings are its own
    config file's; the peer CLI's those :meth:`~ipledger.network.org.nodes.Nodes.peer_cli` sets."""
    return {k: v for k, v in fabric_environment(environ).items() if not k.startswith(("CORE_", "ORDERER_"))}


# The chaincode's own settings an administrator gives a peer (IPLEDGER_CHAINCODE_<X>): the peer hands them to the
# external builder (propagateEnvironment, generate.py), which starts the chaincode with them as CHAINCODE_<X>
# (chaincode/shim/README.md). The builder runs alone on the peer's host and keeps its own copy of the names
# (chaincode/builder/ccbuilder.py, CHAINCODE_SETTINGS; tests/unit/shim/test_admission_settings.py compares them).
CHAINCODE_SETTINGS = ("LOG_LEVEL", "ADMISSION_PER_ORG", "ADMISSION_WAIT_S")


def chaincode_settings_given(environ) -> dict[str, str]:
    """The ``IPLEDGER_CHAINCODE_<X>`` settings given in ``environ``, as given (what a peer is started with)."""
    return {f"IPLEDGER_CHAINCODE_{name}": environ[f"IPLEDGER_CHAINCODE_{name}"] for name in CHAINCODE_SETTINGS
            if f"IPLEDGER_CHAINCODE_{name}" in environ}


def chaincode_settings(environ) -> dict[str, str]:
    """The ``IPLEDGER_CHAINCODE_<X>`` settings given in ``environ``, under the names the chaincode reads."""
    return {name.removeprefix("IPLEDGER_"): value for name, value in chaincode_settings_given(environ).items()}

def start(lay: Layout, node: Node) -> int:
    """Start one node detached from this process; returns its PID."""
    d = lay.node_dir(node)
    args = command(node)
    log = open(lay.log_file(node), "ab")
    env = dict(node_environment(os.environ), FABRIC_CFG_PATH=str(d), FABRIC_LOGGING_SPEC=LOGGING_SPEC,
               FABRIC_LOGGING_FORMAT=LOGGING_FORMAT, TMPDIR=str(_private_tmp(d)))
    # The peer launches chaincode through the external builder with this environment.
    env.setdefault("IPLEDGER_PYTHON", _python())
    proc = subprocess.Popen(args, cwd=d, env=env, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    lay.pid_file(node).write_text(f"{proc.pid}\n")
    return proc.pid


def _private_tmp(node_dir: Path) -> Path:
    """The node's own temporary directory (0700, inside its organisation's directory), emptied of what an
    earlier run left: a peer writes each chaincode launch's ``chaincode.json`` — the chaincode's TLS key
    among it — to a temporary directory and removes it only when the chaincode stops, so a killed peer
    would leave keys behind in a /tmp shared with the other organisations' nodes."""
    tmp = node_dir / "tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o700)
    return tmp


def command(node: Node) -> list[str]:
    """The command line that runs ``node``, inside its network namespace if it names one."""
    args = [binaries.binary(node.kind)] + (["node", "start"] if node.kind == "peer" else [])
    if node.netns is None:
        return args
    ip = shutil.which("ip")
    if ip is None:
        raise StartError(f"{node.id} runs in network namespace {node.netns!r}, but iproute2's "
                         "'ip' command is not installed")
    if not (NETNS_DIR / node.netns).exists():
        raise StartError(f"{node.id}: network namespace {node.netns!r} does not exist "
                         f"(create it with 'ip netns add {node.netns}' and give it the "
                         f"address {node.host})")
    if os.geteuid() != 0:
        raise StartError(f"{node.id}: entering network namespace {node.netns!r} needs root")
    return [ip, "netns", "exec", node.netns, *args]


def stop(lay: Layout, node: Node, timeout: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL after ``timeout``. True if a process was stopped."""
    pid = running_pid(lay, node)
    if pid is None:
        lay.pid_file(node).unlink(missing_ok=True)
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            break
        time.sleep(0.1)
    else:
        _signal_group(pid, signal.SIGKILL)
        for _ in range(50):
            if not _alive(pid):
                break
            time.sleep(0.1)
    lay.pid_file(node).unlink(missing_ok=True)
    return True


def _signal_group(pid: int, sig: int) -> None:
    # Each node leads its own session, so its process group also holds the
    # chaincode processes it launched.
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # Reap it if it is our child (only in tests that start nodes in-process).
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    return not is_zombie(pid)


def _python() -> str:
    """The base interpreter (not this virtualenv's): chaincode must run on its own wheels."""
    import sys
    return getattr(sys, "_base_executable", None) or sys.executable
