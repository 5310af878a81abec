"""The caps on live-feed (SSE) streams: settings from the environment, and a per-worker cap that always
leaves threads for submits (gateway serve refuses one that would not)."""
from __future__ import annotations

import pytest

from ipledger.gateway.config import ConfigError, GatewayConfig

from .serving import serve_run, state  # noqa: F401 - fixtures


def test_defaults_and_environment(state, monkeypatch):
    cfg = GatewayConfig.from_state_dir(state, org="OperatorMSP")
    assert (cfg.sse_max_per_key, cfg.sse_max_per_session, cfg.sse_max_per_worker) == (4, 2, 0)
    assert cfg.worker_threads == 8 and cfg.sse_streams_per_worker == 4          # half the worker's threads
    assert GatewayConfig(worker_threads=3).sse_streams_per_worker == 1
    monkeypatch.setenv("IPLEDGER_SSE_MAX_PER_KEY", "10")
    monkeypatch.setenv("IPLEDGER_SSE_MAX_PER_SESSION", "0")
    monkeypatch.setenv("IPLEDGER_SSE_MAX_PER_WORKER", "12")
    cfg = GatewayConfig.from_state_dir(state, org="OperatorMSP", worker_threads=16)
    assert (cfg.sse_max_per_key, cfg.sse_max_per_session, cfg.sse_streams_per_worker) == (10, 0, 12)
    monkeypatch.setenv("IPLEDGER_SSE_MAX_PER_KEY", "lots")
    with pytest.raises(ConfigError, match="IPLEDGER_SSE_MAX_PER_KEY"):
        GatewayConfig.from_state_dir(state, org="OperatorMSP")


def test_serve_gives_the_workers_their_thread_count_and_keeps_threads_for_submits(serve_run, monkeypatch, capsys):
    code, app = serve_run("--threads", "6")
    assert code == 0
    assert app.gateway_config.worker_threads == 6 and app.gateway_config.sse_streams_per_worker == 3
    monkeypatch.setenv("IPLEDGER_SSE_MAX_PER_WORKER", "6")
    code, app = serve_run("--threads", "6")
    assert code == 2 and app is None
    assert "starve submits" in capsys.readouterr().err
    monkeypatch.setenv("IPLEDGER_SSE_MAX_PER_WORKER", "5")
    assert serve_run("--threads", "6")[0] == 0
    monkeypatch.delenv("IPLEDGER_SSE_MAX_PER_WORKER")
    assert serve_run("--threads", "1")[0] == 2
    assert "at least 2 threads" in capsys.readouterr().err
    monkeypatch.setenv("IPLEDGER_SSE_MAX_PER_SESSION", "-1")
    assert serve_run()[0] == 2
    assert "IPLEDGER_SSE_MAX_PER_SESSION" in capsys.readouterr().err


def test_a_gateway_container_is_given_every_setting_the_gateway_reads_and_nothing_else():
    """One list of the gateway's environment settings (gateway/config.py); the container of a gateway is
    given those (network/cli/gateway_daemon.py), so a setting added to the gateway reaches it in a container
    too, and nothing else of the starting shell's environment (its secrets) does."""
    import re
    from pathlib import Path

    from ipledger.gateway import config

    read = set(re.findall(r'"(IPLEDGER_[A-Z_]+)"', Path(config.__file__).read_text()))
    assert read and read == set(config.ENVIRONMENT)
    given = config.gateway_environment({"IPLEDGER_QUERY_CACHE_S": "0", "IPLEDGER_LIVE_FEED": "1",
                                        "IPLEDGER_API_TOKEN": "secret", "HOME": "/root"})
    assert given == {"IPLEDGER_QUERY_CACHE_S": "0", "IPLEDGER_LIVE_FEED": "1"}


def test_gateway_start_in_containers_hands_the_container_those_settings_only(tmp_path, monkeypatch):
    """What ``gateway start`` on a containerised state directory gives the gateway's container: the settings
    of its own environment the gateway reads (a changed answer cache reaches it), never the rest (a token, a
    cloud credential: ``docker inspect`` would show them)."""
    from types import SimpleNamespace

    from ipledger.gateway.config import ENVIRONMENT
    from ipledger.gateway.tls import TLSOptions
    from ipledger.network.cli import gateway_daemon as daemon

    given = []

    class Runtime:   # the Docker runtime's gateway calls, recorded
        def gateway_bind(self, org):
            return None

        def start_gateway(self, org, bind, workers, environ, tls_args, tls_files):
            given.append(environ)
            return "c0ffee"

        def gateway_running(self, org):
            return "c0ffee"

    net = SimpleNamespace(consortium=SimpleNamespace(org=lambda msp_id: msp_id))
    monkeypatch.setattr(daemon, "container_file", lambda state, org: tmp_path / "gateway.container")
    monkeypatch.setattr(daemon, "healthy", lambda url, cert=None, **probe: True)
    monkeypatch.setenv("IPLEDGER_QUERY_CACHE_S", "0")
    monkeypatch.setenv("IPLEDGER_SSE_MAX_PER_KEY", "3")
    monkeypatch.setenv("IPLEDGER_API_TOKEN", "secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    url = daemon._start_container(tmp_path, (net, Runtime()), "OperatorMSP", "127.0.0.1:18999", 2,
                                  "http://127.0.0.1:18999", TLSOptions(), 5, lambda *_: None)
    assert url == "http://127.0.0.1:18999"
    [environ] = given
    assert environ["IPLEDGER_QUERY_CACHE_S"] == "0" and environ["IPLEDGER_SSE_MAX_PER_KEY"] == "3"
    assert set(environ) <= set(ENVIRONMENT)
    assert "secret" not in environ.values()
