"""Reloading a running gateway: what its master does on SIGHUP, and when ``chaincode deploy`` asks for it.

The real SIGHUP, on a real network: tests/integration/test_gateway_mtls.py (``gateway reload``) and
tests/integration/test_holders.py (a holder's channel added while customs' gateway runs).
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from ipledger.gateway.auth import KeyStoreError
from ipledger.gateway.config import ConfigError, GatewayConfig
from ipledger.gateway.server import SERVING_FILE, GatewayServer, gunicorn_options
from ipledger.network.cli import commands, gateway_daemon as daemon
from ipledger.network.org.containers.runtime import gunicorn_workers


def _config(home: Path, *channels: str) -> GatewayConfig:
    return GatewayConfig(channel=channels[0], channels=channels, home=home)


def _server(config: GatewayConfig, loader) -> GatewayServer:
    return GatewayServer(config, gunicorn_options("127.0.0.1:1", 1, 2, 30, "info"), config_loader=loader)


def test_reload_takes_the_configuration_read_again_and_records_its_channels(tmp_path):
    (tmp_path / "gateway").mkdir()
    server = _server(_config(tmp_path, "ip-plant-a"), lambda: _config(tmp_path, "ip-plant-a", "ip-plant-b"))
    server.reload()
    assert server.gateway_config.all_channels == ("ip-plant-a", "ip-plant-b")
    assert json.loads((tmp_path / "gateway" / SERVING_FILE).read_text()) == {"channels": ["ip-plant-a", "ip-plant-b"]}


@pytest.mark.parametrize("error", [ConfigError("the consortium file is unreadable"),
                                   KeyStoreError("the API key file is readable by others (mode 0644)"),
                                   PermissionError("the consortium file is unreadable")])
def test_a_configuration_that_cannot_be_read_keeps_the_current_one(tmp_path, caplog, error):
    """Whatever the loader raises (the API key file's check raises a RuntimeError), the master keeps serving:
    an exception out of gunicorn's reload would stop the whole gateway."""
    (tmp_path / "gateway").mkdir()
    current = _config(tmp_path, "ip-plant-a")

    def broken():
        raise error

    server = _server(current, broken)
    with caplog.at_level(logging.ERROR, logger="gunicorn.error"):
        server.reload()
    assert server.gateway_config is current
    assert str(error) in caplog.text
    assert json.loads((tmp_path / "gateway" / SERVING_FILE).read_text()) == {"channels": ["ip-plant-a"]}


class _Net:
    """What ``_reload_gateways`` reads of a network: its organisations, their channels, the state directory."""

    def __init__(self, tmp_path: Path, channels: dict[str, list[str]], remote: tuple[str, ...] = ()):
        orgs = [SimpleNamespace(msp_id=m, peers=[object()]) for m in channels]
        self.consortium = SimpleNamespace(orgs=orgs, channels_of=lambda msp_id: channels[msp_id])
        self.layout = SimpleNamespace(root=tmp_path, is_local=lambda org: org.msp_id not in remote)


@pytest.fixture
def gateways(monkeypatch):
    """Running gateways (MSP id → the channels it serves) and the reloads asked for."""
    state = {"serving": {}, "reloaded": []}
    monkeypatch.setattr(daemon, "running", lambda _s, org: (1, "http://x") if org in state["serving"] else None)
    monkeypatch.setattr(daemon, "serving", lambda _s, org: state["serving"].get(org, []))
    monkeypatch.setattr(daemon, "reload", lambda _s, org, **_kw: state["reloaded"].append(org) or True)
    return state


def test_deploy_reloads_a_gateway_missing_a_channel_where_the_contract_is_now_committed(tmp_path, gateways):
    gateways["serving"].update(CustomsMSP=["ip-plant-a", "ip-plant-b"], PlantAMSP=["ip-plant-a"])
    net = _Net(tmp_path, {"CustomsMSP": ["ip-plant-a", "ip-plant-b", "ip-plant-c"], "PlantAMSP": ["ip-plant-a"],
                          "PlantCMSP": ["ip-plant-c"]})
    commands._reload_gateways(net, {"ip-plant-a", "ip-plant-b", "ip-plant-c"})
    assert gateways["reloaded"] == ["CustomsMSP"]   # PlantA serves all it is on; PlantC's gateway does not run


def test_deploy_leaves_a_gateway_as_it_is_while_the_new_channel_awaits_approvals(tmp_path, gateways, capsys):
    """A channel without the contract would fail every event the gateway routes by asking each channel."""
    gateways["serving"].update(CustomsMSP=["ip-plant-a"])
    net = _Net(tmp_path, {"CustomsMSP": ["ip-plant-a", "ip-plant-c"]})
    commands._reload_gateways(net, {"ip-plant-a"})
    assert gateways["reloaded"] == []
    out = capsys.readouterr().out
    assert "CustomsMSP's gateway does not serve ip-plant-c yet" in out
    assert "'ipledger gateway reload --org CustomsMSP'" in out


def test_deploy_reloads_no_gateway_of_another_host(tmp_path, gateways):
    gateways["serving"].update(CustomsMSP=["ip-plant-a"])
    net = _Net(tmp_path, {"CustomsMSP": ["ip-plant-a", "ip-plant-c"]}, remote=("CustomsMSP",))
    commands._reload_gateways(net, {"ip-plant-a", "ip-plant-c"})
    assert gateways["reloaded"] == []


def test_reload_of_a_gateway_that_does_not_run_is_false(tmp_path, monkeypatch):
    monkeypatch.setattr(daemon, "_containers", lambda _s: None)
    monkeypatch.setattr(daemon, "running", lambda _s, _org: None)
    assert daemon.reload(tmp_path, org="OperatorMSP", log=lambda *_: None) is False


def test_the_workers_of_a_master_are_its_child_processes():
    children = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) for _ in range(2)]
    try:
        assert set(daemon.worker_pids(os.getpid())) >= {c.pid for c in children}
        assert daemon.worker_pids(children[0].pid) == []
    finally:
        for c in children:
            c.kill()
            c.wait()
    assert not {c.pid for c in children} & set(daemon.worker_pids(os.getpid()))


def test_a_containers_workers_are_the_gateway_processes_whose_parent_is_one_too():
    serve = "/usr/bin/python3 -m ipledger.network.cli --state-dir /s gateway serve --org OperatorMSP"
    # docker --init: the init process is the master's parent, inside the container
    rows = [["101", "90", "/sbin/docker-init -- python3 -m ipledger.network.cli"], ["120", "101", serve],
            ["131", "120", serve], ["132", "120", serve]]
    assert gunicorn_workers(rows) == [131, 132]
    assert gunicorn_workers([["120", "90", serve], ["131", "120", serve]]) == [131]
    assert gunicorn_workers([["120", "90", serve]]) == []


def test_the_gateway_credentials_file_is_0600_from_its_creation_and_keeps_a_live_key(tmp_path, monkeypatch):
    """credentials.json holds a clerk's API key: written through the project's file store (a temporary file
    created 0600, renamed over it), never with the umask's mode first; a second call keeps the key."""
    created = []
    real_open = os.open

    def spy(path, flags, mode=0o777, *args, **kwargs):
        if "credentials.json" in str(path) and flags & os.O_CREAT:
            created.append(mode)
        return real_open(path, flags, mode, *args, **kwargs)
    monkeypatch.setattr(os, "open", spy)
    old = os.umask(0)
    try:
        first = daemon.ensure_credentials(tmp_path, "https://127.0.0.1:1", "OperatorMSP")
    finally:
        os.umask(old)
    path = daemon.credentials_file(tmp_path, "OperatorMSP")
    assert created and all(mode == 0o600 for mode in created), created
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text()) == first and first["url"] == "https://127.0.0.1:1"
    again = daemon.ensure_credentials(tmp_path, "https://127.0.0.1:2", "OperatorMSP")
    assert again["keys"]["OperatorMSP"]["key"] == first["keys"]["OperatorMSP"]["key"] and again["url"].endswith(":2")


def test_gateway_start_shows_an_api_key_once_when_it_is_made(tmp_path, monkeypatch, capsys):
    """The key is printed when it is made; a later start (the gateway already running, or started again)
    names only its id and where it is kept: a terminal or CI log does not collect it at every start."""
    import argparse
    from ipledger.network.cli import gateway as gateway_cli
    from ipledger.network.cli import gateway_daemon as daemon
    monkeypatch.setattr(daemon, "start", lambda *a, **k: "http://127.0.0.1:8081")
    monkeypatch.setattr(gateway_cli, "_known_orgs", lambda state_dir: ["OperatorMSP"], raising=False)
    args = argparse.Namespace(state_dir=tmp_path, cmd="start", org="OperatorMSP", bind="127.0.0.1:8081", workers=2,
                              force=False, tls_cert=None, tls_key=None, client_ca=None, client_cert=None,
                              insecure_http=False)
    assert gateway_cli._daemon(args) == 0
    first = capsys.readouterr().out
    key = json.loads(daemon.credentials_file(tmp_path, "OperatorMSP").read_text())["keys"]["OperatorMSP"]
    assert f"API key: {key['key']}" in first
    assert gateway_cli._daemon(args) == 0
    again = capsys.readouterr().out
    assert key["key"] not in again and f"API key: {key['key_id']} (shown when it was made)" in again


def test_a_gateway_serves_plain_http_on_loopback_only_unless_told(tmp_path, capsys):
    from ipledger.gateway.server import plain_http_refused
    for bind in ("127.0.0.1:8080", "localhost:8080", "[::1]:8080", "127.0.0.2:80", "unix:/run/gw.sock"):
        assert plain_http_refused(bind, None, False) is None, bind
    for bind in ("0.0.0.0:8080", "192.0.2.7:8080", "[::]:8080", "gateway.example:443"):
        assert "clear text" in plain_http_refused(bind, None, False), bind
        assert plain_http_refused(bind, "cert.pem", False) is None
        assert plain_http_refused(bind, None, True) is None
    from ipledger.network import cli
    assert cli.main(["--state-dir", str(tmp_path), "gateway", "serve", "--org", "OperatorMSP",
                     "--bind", "0.0.0.0:18080"]) == 2
    assert "--bind 0.0.0.0:18080 without --tls-cert" in capsys.readouterr().err
