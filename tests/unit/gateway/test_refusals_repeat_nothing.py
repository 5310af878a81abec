"""What gunicorn refuses before the app sees it is answered and logged without the request's own text.

gunicorn's messages quote what they refuse: a header line without its colon (``X-API-Key ipk_…`` — an API key), an
``Expect`` or ``Transfer-Encoding`` value, a request line with its query string. They went whole into the gateway's
log (which the docs promise holds no key, header or body) and into the problem's ``detail``. On a real gunicorn
server (the production worker, :mod:`tests.unit.gateway.test_slow_clients`' gateway): every such refusal has its
status and problem type, and the secret appears neither in the answer nor in the log.
"""
from __future__ import annotations

import json
import socket

import pytest

from ipledger.gateway.problems import problem_types

from .test_slow_clients import SlowClientGateway

SECRET = "ipk_0123456789ab_NeverRepeatThisKeyAnywhere42"

REFUSED = [
    ("a header line without its colon", f"GET /api/v1/lots/L1 HTTP/1.1\r\nHost: x\r\nX-API-Key {SECRET}\r\n\r\n", 400),
    ("Authorization without its colon",
     f"GET /api/v1/lots/L1 HTTP/1.1\r\nHost: x\r\nAuthorization Bearer {SECRET}\r\n\r\n", 400),
    ("an Expect value", f"GET /api/v1/lots/L1 HTTP/1.1\r\nHost: x\r\nExpect: {SECRET}\r\n\r\n", 417),
    ("a transfer coding", f"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {SECRET}\r\n\r\n", 501),
    ("a request line with a query", f"GET /api/v1/lots/L1?api_key={SECRET} HTTP/9.9\r\nHost: x\r\n\r\n", 400),
    ("a header name", f"GET / HTTP/1.1\r\nHost: x\r\nX-{SECRET}\x01: 1\r\n\r\n", 400),
]


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    gw = SlowClientGateway(tmp_path_factory.mktemp("refusals"))
    yield gw
    assert gw.stop() == 0, gw.log.read_text()[-2000:]


def raw(gw, request: str) -> tuple[int, dict]:
    with socket.create_connection(("127.0.0.1", gw.port), timeout=15) as sock:
        sock.sendall(request.encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.decode("latin-1").partition("\r\n\r\n")
    assert SECRET not in data.decode("latin-1")
    return int(head.split()[1]), json.loads(body)


@pytest.mark.parametrize("what, request_text, status", REFUSED, ids=[r[0] for r in REFUSED])
def test_a_refused_request_is_answered_without_its_text(gw, what, request_text, status):
    got, problem = raw(gw, request_text)
    assert got == status and problem["status"] == status, what
    assert problem_types()[problem["type"]]["status"] == status
    assert problem["detail"] and "ipk_" not in problem["detail"]


def test_the_log_names_each_refusal_and_repeats_none_of_them(gw):
    for _what, request_text, _status in REFUSED:
        raw(gw, request_text)
    log = gw.log.read_text()
    assert SECRET not in log and "NeverRepeat" not in log
    assert log.count("Invalid request from ip=127.0.0.1") >= len(REFUSED)
    assert "InvalidHeader" in log and "ExpectationFailed" in log and "UnsupportedTransferCoding" in log


def test_the_refusals_of_an_older_gunicorn_and_the_apps_own_header_errors(monkeypatch):
    """`pyproject.toml` takes gunicorn from 23 on, whose errors module lacks classes 27 has: the table skips what is
    missing instead of failing on every refusal; a header the app itself sent wrong stays gunicorn's 500 (an app
    bug), though its class derives from the client's InvalidHeader."""
    import types

    from gunicorn.http import errors

    from ipledger.gateway import server
    assert server._refusal(errors.InvalidResponseHeader("X", "\x00")) is None
    assert server._refusal(errors.InvalidHeader("X-API-Key ipk_x"))[0] == 400
    assert server._refusal(ValueError("boom")) is None
    older = types.SimpleNamespace(**{name: getattr(errors, name) for name in (
        "InvalidRequestLine", "InvalidHeader", "InvalidHeaderName", "LimitRequestLine", "UnsupportedTransferCoding")})
    import gunicorn.http as http_pkg
    monkeypatch.setattr(http_pkg, "errors", older)       # `from gunicorn.http import errors` finds the older one
    assert server._refusal(errors.LimitRequestLine(9000, 8190))[0] == 414
    assert server._refusal(errors.UnsupportedTransferCoding("x"))[0] == 501
    assert server._refusal(errors.ExpectationFailed("x")) is None      # a class the older one lacks: gunicorn's way
