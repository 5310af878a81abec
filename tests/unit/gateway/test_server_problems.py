"""gunicorn's own refusals as the gateway's worker writes them (gateway/server.py write_problem): the problem type
of their status, as gateway/problems.py documents it."""
import json
import socket
import types

import pytest
from gunicorn import util as gunicorn_util
from gunicorn.http.errors import ExpectationFailed, UnsupportedTransferCoding
from gunicorn.workers.base import Worker

from ipledger.gateway.problems import problem_types
from ipledger.gateway.server import write_problem


@pytest.mark.parametrize("exc, status", [(UnsupportedTransferCoding("foo"), 501), (ExpectationFailed("100-nope"), 417)])
def test_a_refusal_of_the_http_server_has_the_type_of_its_status(monkeypatch, exc, status):
    monkeypatch.setattr(gunicorn_util, "write_error", write_problem)   # as GatewayWorker.init_process does
    a, b = socket.socketpair()
    worker = types.SimpleNamespace(log=types.SimpleNamespace(warning=lambda *a, **k: None), cfg=None)
    Worker.handle_error(worker, None, a, ("127.0.0.1", 1), exc)
    a.close()
    head, _, text = b.recv(65536).decode("latin-1").partition("\r\n\r\n")
    b.close()
    problem = json.loads(text)
    assert head.startswith(f"HTTP/1.1 {status} ") and problem["status"] == status
    assert problem_types()[problem["type"]]["status"] == status
