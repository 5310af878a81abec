"""Fixtures of `ipledger gateway serve` without gunicorn: an operator's state directory, and the command run up
to the server's start. Test modules import them (``from .serving import serve_run, state``)."""
from __future__ import annotations

import os
import shutil

import pytest

from ipledger.gateway import server
from ipledger.network import cli, consortium
from ipledger.network.consortium import DEFAULT_FILE
from ipledger.network.layout import Layout
from ipledger.network.org import generate
from tests.unit.consortium_state import with_default_consortium


@pytest.fixture
def state(tmp_path):
    """A state directory with the default consortium file and the operator's own identities (its host)."""
    state = with_default_consortium(tmp_path / "state")
    c, lay = consortium.load(DEFAULT_FILE), Layout(state)
    generate.init_org(c, lay, c.org("OperatorMSP"), log=lambda *_: None)
    return state


@pytest.fixture
def serve_run(state, monkeypatch):
    """`ipledger gateway serve …` up to gunicorn's start: (exit code, the GatewayServer or None)."""
    seen = {}
    monkeypatch.setattr(server.GatewayServer, "run", lambda self: seen.update(app=self))
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)

    def run(*args):
        seen.clear()
        code = cli.main(["--state-dir", str(state), "gateway", "serve", "--org", "OperatorMSP",
                         "--bind", "127.0.0.1:18080", *args])
        return code, seen.get("app")

    yield run
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    from prometheus_client import values
    values.ValueClass = values.get_value_class()
    shutil.rmtree(state / "operator" / "gateway", ignore_errors=True)
