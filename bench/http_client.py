"""The benchmarks' HTTP client: the ERP's side of the REST path, kept as lean as the standard library allows.

The REST benchmarks run their load generator on the machine they measure, beside the peers, the orderer, the
chaincode and the gateways; whatever CPU the generator spends is taken from them. ``requests`` spends
2.0–2.4 ms of CPU per request here (``bench/gateway_http.py``, change 13 of docs/benchmarks.md), as much as a
gateway's HTTP layer, which would charge the REST path for an ERP that in service runs on its own host. This
client keeps one ``http.client`` connection per thread and server (keep-alive) and does nothing else: no
cookies, no redirects, no proxies, no retries of its own but one.

That one: a connection that sat idle may have been closed by the server (the gateway's keep-alive is 5 s),
which shows when the next request is sent on it. Such a request is sent once more on a new connection —
safe for the events posted here, which the gateway and the contract deduplicate by ``event_id``.
"""
from __future__ import annotations

import http.client
import json as jsonlib
import ssl
import threading
from urllib.parse import urlsplit

#: what a request on an idle keep-alive connection the server has closed raises
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class Response:
    """What the benchmarks read of an answer (the names of ``requests.Response``)."""

    def __init__(self, status_code: int, content: bytes):
        self.status_code = status_code
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self):
        return jsonlib.loads(self.content)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise http.client.HTTPException(f"HTTP {self.status_code}: {self.text[:300]}")


class HttpClient:
    """Keep-alive JSON requests, one connection per thread and server; thread-safe."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None):
        self._local = threading.local()
        self._ssl_context = ssl_context

    def get(self, url: str, headers: dict | None = None, timeout: float = 60) -> Response:
        return self.request("GET", url, None, headers, timeout)

    def post(self, url: str, json=None, headers: dict | None = None, timeout: float = 60) -> Response:
        return self.request("POST", url, jsonlib.dumps(json).encode(), headers, timeout)

    def request(self, method: str, url: str, body: bytes | None, headers: dict | None, timeout: float) -> Response:
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        send = {"Accept": "application/json", **(headers or {})}
        if body is not None:
            send["Content-Type"] = "application/json"
        conn, reused = self._connection(parts.scheme, parts.netloc, timeout)
        try:
            return self._exchange(conn, method, target, body, send)
        except _STALE:
            self._drop(parts.scheme, parts.netloc)
            if not reused:
                raise
        conn, _ = self._connection(parts.scheme, parts.netloc, timeout)
        try:
            return self._exchange(conn, method, target, body, send)
        except BaseException:
            self._drop(parts.scheme, parts.netloc)
            raise

    def close(self) -> None:
        """Close this thread's connections (the others close with their threads)."""
        for conn in getattr(self._local, "conns", {}).values():
            conn.close()
        self._local.conns = {}

    # -- connections ---------------------------------------------------------------------------------
    def _connection(self, scheme: str, netloc: str, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        conns = self._local.__dict__.setdefault("conns", {})
        conn = conns.get((scheme, netloc))
        if conn is not None:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            return conn, True
        if scheme == "https":
            conn = http.client.HTTPSConnection(netloc, timeout=timeout, context=self._ssl_context)
        elif scheme == "http":
            conn = http.client.HTTPConnection(netloc, timeout=timeout)
        else:
            raise ValueError(f"not an http(s) URL: {scheme}://{netloc}")
        conns[(scheme, netloc)] = conn
        return conn, False

    def _drop(self, scheme: str, netloc: str) -> None:
        conn = self._local.__dict__.get("conns", {}).pop((scheme, netloc), None)
        if conn is not None:
            conn.close()

    @staticmethod
    def _exchange(conn: http.client.HTTPConnection, method: str, target: str, body: bytes | None,
                  headers: dict) -> Response:
        conn.request(method, target, body=body, headers=headers)
        answer = conn.getresponse()
        content = answer.read()
        if answer.will_close:
            conn.close()   # the next request opens a new connection (http.client reconnects on its own)
        return Response(answer.status, content)
