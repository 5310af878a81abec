"""The network's commands: a new organisation's keys are made in a child process of its own, and a gateway running on
this host is stopped before its organisation's files go."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from ipledger.network import consortium as consortium_mod
from ipledger.network.cli import gateway_daemon as daemon
from ipledger.network.cli.commands import main
from ipledger.network.layout import Layout
from ipledger.network.org import identities, processes
from ipledger.network.org.nodes import Nodes
from tests.unit.network.opened_files import opened_here, private_keys


def _generated_state(tmp_path):
    """A state directory with the consortium file and a genesis block stand-in (counts as generated)."""
    c = consortium_mod.load(base_port=21000)
    lay = Layout((tmp_path / "state").resolve())
    lay.public.mkdir(parents=True)
    consortium_mod.save(c, lay.consortium_file)
    lay.genesis_block.parent.mkdir(parents=True, exist_ok=True)
    lay.genesis_block.write_bytes(b"stand-in: the network counts as generated")
    return lay


def test_network_add_org_makes_the_new_organisations_keys_outside_this_process(tmp_path):
    from ipledger.network.cli import consortium as consortium_cli
    lay = _generated_state(tmp_path)
    net = Nodes.open(lay.root)
    assert net.generated
    with opened_here() as paths:
        org = consortium_cli.network_add_org(net, "AuditMSP", name="audit", log=lambda *_: None)
    assert identities.private_key_files(lay.org_home(org)), "the organisation was made"
    assert private_keys(paths) == [], "the command's own process opened the new organisation's private keys"


@contextlib.contextmanager
def _process(argv: list[str]):
    """A process of its own session (a child of the test, as a gateway is of the process that started it), killed at
    the end of the block if it still runs."""
    proc = subprocess.Popen(argv, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _gateway_argv(state, org: str) -> list[str]:
    """A process with a running gateway's command line (gateway_daemon.running recognises it)."""
    return [sys.executable, "-c", "import time; time.sleep(120)", "--state-dir", str(state), "gateway", "serve",
            "--org", org]


@contextlib.contextmanager
def _stand_in_gateway(state, org: str):
    """A stand-in gateway and its pid file."""
    with _process(_gateway_argv(state, org)) as gw:
        daemon.pid_file(state, org).write_text(f"{gw.pid} http://127.0.0.1:8081\n")
        assert daemon.running(state, org) == (gw.pid, "http://127.0.0.1:8081")
        yield gw


def _gone(gw: subprocess.Popen) -> bool:
    deadline = time.monotonic() + 5
    while gw.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return gw.poll() is not None


def test_network_down_purge_stops_the_gateways_whose_pid_files_it_removes(tmp_path):
    lay = _generated_state(tmp_path)
    with _stand_in_gateway(lay.root, "OperatorMSP") as gw:
        assert main(["--state-dir", str(lay.root), "network", "down", "--purge"]) == 0
        assert not lay.root.exists()
        assert _gone(gw), "OperatorMSP's gateway still runs after 'network down --purge', its pid file gone"


def test_network_down_without_purge_leaves_the_gateways_running(tmp_path):
    """Without --purge the files stay, and a gateway reconnects when the nodes come back."""
    lay = _generated_state(tmp_path)
    with _stand_in_gateway(lay.root, "OperatorMSP") as gw:
        assert main(["--state-dir", str(lay.root), "network", "down"]) == 0
        time.sleep(0.3)
        assert gw.poll() is None and daemon.running(lay.root, "OperatorMSP")


def test_network_remove_org_stops_its_gateway(tmp_path):
    lay = _generated_state(tmp_path)
    with _stand_in_gateway(lay.root, "BrokerMSP") as gw:
        assert main(["--state-dir", str(lay.root), "network", "remove-org", "--msp-id", "BrokerMSP", "--force"]) == 0
        assert _gone(gw), "BrokerMSP's gateway still runs after 'network remove-org'"
        assert "BrokerMSP" not in [o.msp_id for o in Nodes.open(lay.root).consortium.orgs]


def test_stopping_a_gateway_that_never_ran_creates_nothing(tmp_path):
    lay = _generated_state(tmp_path)
    org = Nodes.open(lay.root).consortium.org("BrokerMSP")
    assert daemon.stop_native(lay.root, log=lambda *_: None, org="BrokerMSP") is False
    assert not lay.gateway_dir(org).exists()


@contextlib.contextmanager
def _renamed_master(lay):
    """The operator's gateway as gunicorn's renamed master reads in ``ps`` (setproctitle), its pid file written as
    ``gateway start`` writes it (with when it started)."""
    with _process(["bash", "-c", 'exec -a "gunicorn: master [ipledger-gateway]" sleep 120']) as gw:
        time.sleep(0.3)
        daemon.pid_file(lay.root, "OperatorMSP").write_text(
            f"{gw.pid} http://127.0.0.1:8081 {processes.start_time(gw.pid)}\n")
        yield gw


def test_gateway_stop_finds_a_gateway_whose_master_renamed_its_process(tmp_path):
    """gunicorn renames its master ('gunicorn: master [ipledger-gateway]') when setproctitle is installed: the
    command line then names neither the gateway nor the state directory. The pid file records when the process
    started, which names it whatever it calls itself."""
    lay = _generated_state(tmp_path)
    with _renamed_master(lay) as gw:
        assert daemon.running(lay.root, "OperatorMSP") == (gw.pid, "http://127.0.0.1:8081")
        assert daemon.stop(lay.root, log=lambda *_: None, org="OperatorMSP")
        # collected by the command that stopped it (its child here): no zombie kept its group in being while the
        # command waited for it to go
        with pytest.raises(ChildProcessError):
            os.waitpid(gw.pid, os.WNOHANG)
        assert _gone(gw)


def test_a_gateway_killed_and_not_yet_collected_is_not_running(tmp_path):
    """A gateway started by a long-running process (an admin script, a test) and killed stays a zombie until that
    process collects it: it serves nothing, so it is not running and ``gateway start`` starts one."""
    lay = _generated_state(tmp_path)
    with _renamed_master(lay) as gw:
        assert daemon.running(lay.root, "OperatorMSP") == (gw.pid, "http://127.0.0.1:8081")
        os.killpg(gw.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while not processes.is_zombie(gw.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert processes.is_zombie(gw.pid) and processes.start_time(gw.pid) is not None   # not collected yet
        assert daemon.running(lay.root, "OperatorMSP") is None
        # stopping it collects it (this process started it) and forgets it
        assert daemon.stop(lay.root, log=lambda *_: None, org="OperatorMSP") is False
        with pytest.raises(ChildProcessError):
            os.waitpid(gw.pid, os.WNOHANG)
        assert not daemon.pid_file(lay.root, "OperatorMSP").exists()


def test_a_pid_reused_by_another_process_is_not_the_gateway(tmp_path):
    lay = _generated_state(tmp_path)
    with _process(_gateway_argv(lay.root, "OperatorMSP")) as other:
        started = int(processes.start_time(other.pid))
        daemon.pid_file(lay.root, "OperatorMSP").write_text(f"{other.pid} http://127.0.0.1:8081 {started - 1}\n")
        assert daemon.running(lay.root, "OperatorMSP") is None, "a process started at another time was taken"
