"""The benchmarks' keep-alive HTTP client (bench/http_client.py) against a loopback server."""
from __future__ import annotations

import http.server
import json
import threading

import pytest

from bench.http_client import HttpClient


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive
    seen: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append(("POST", self.path, json.loads(body), self.headers.get("Authorization"),
                          self.client_address[1]))
        self._answer(201, {"stored": json.loads(body)["n"]})

    def do_GET(self):  # noqa: N802
        self.seen.append(("GET", self.path, None, self.headers.get("Authorization"), self.client_address[1]))
        self._answer(404 if self.path.startswith("/missing") else 200, {"path": self.path})

    def _answer(self, status: int, doc: dict) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture
def server():
    _Handler.seen = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv, f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def test_posts_json_and_reads_the_answer_on_one_kept_connection(server):
    srv, url = server
    client = HttpClient()
    first = client.post(f"{url}/api/v1/events", json={"n": 1}, headers={"Authorization": "Bearer k"})
    second = client.post(f"{url}/api/v1/events", json={"n": 2}, headers={"Authorization": "Bearer k"})
    assert (first.status_code, first.json(), second.json()) == (201, {"stored": 1}, {"stored": 2})
    assert [s[:4] for s in _Handler.seen] == [("POST", "/api/v1/events", {"n": 1}, "Bearer k"),
                                             ("POST", "/api/v1/events", {"n": 2}, "Bearer k")]
    assert _Handler.seen[0][4] == _Handler.seen[1][4], "the second request did not reuse the connection"
    got = client.get(f"{url}/a/b?x=1")
    assert got.json() == {"path": "/a/b?x=1"}
    client.close()


def test_error_status_is_returned_and_raise_for_status_names_it(server):
    _, url = server
    answer = HttpClient().get(f"{url}/missing")
    assert answer.status_code == 404
    with pytest.raises(Exception, match="HTTP 404"):
        answer.raise_for_status()


def test_a_kept_connection_the_server_closed_is_replaced_and_the_request_sent_once(server):
    srv, url = server
    client = HttpClient()
    client.post(f"{url}/e", json={"n": 1})
    # the server drops the idle keep-alive connection (as gunicorn does after its keep-alive timeout)
    conn = next(iter(client._local.conns.values()))
    conn.sock.shutdown(2)   # what the client sees of a peer that closed: the next exchange fails
    answer = client.post(f"{url}/e", json={"n": 2})
    assert answer.json() == {"stored": 2}
    assert [s[2] for s in _Handler.seen] == [{"n": 1}, {"n": 2}]


def test_a_fresh_connection_that_fails_is_not_retried():
    client = HttpClient()
    with pytest.raises(OSError):
        client.get("http://127.0.0.1:9/")   # discard port: nothing listens
    with pytest.raises(ValueError, match="not an http"):
        client.get("ftp://127.0.0.1/x")
