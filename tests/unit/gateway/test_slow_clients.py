"""Slow clients cannot hold the gateway's threads (gateway/request_deadline.py), on a real gunicorn server.

gunicorn's threaded worker reads a request in one of its threads with no time limit once the request's first
bytes have arrived: a few connections sending part of a request and nothing more stopped a worker for good.
Each request must now arrive whole within ``request_read_timeout_s``; the commit that follows is not limited
by it. The servers run in subprocesses through this module's ``__main__`` (below): the production
``GatewayServer`` and ``gunicorn_options``, one worker of four threads, a 2-second read deadline, and an app
over a FakeLedger that waits before answering each submit and writes the event ids it was given to a file.
"""
from __future__ import annotations

import argparse
import http.client
import json
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ipledger.gateway.auth import KeyStore
from ipledger.gateway.config import ConfigError, GatewayConfig
from ipledger.gateway.request_deadline import RequestDeadlines, _WatchedInput
from ipledger.network.cli import gateway_daemon as daemon

from .test_mtls import Pki, free_port, stop_process_group

REPO = Path(__file__).resolve().parents[3]
THREADS, DEADLINE_S, SUBMIT_WAIT_S = 4, 2.0, 3.0


class SlowClientGateway:
    """A gunicorn gateway (this module's __main__) in its own process group; always stopped."""

    def __init__(self, tmp: Path, pki: Pki | None = None):
        store = KeyStore(tmp / "gateway" / "api-keys.json")
        _, self.key = store.create("OperatorMSP", "clerk", "slow clients")
        self.pki, self.port, self.submitted = pki, free_port(), tmp / "submitted.txt"
        self.log = tmp / "gateway.log"
        cmd = [sys.executable, "-m", "tests.unit.gateway.test_slow_clients", "--keys-file", str(store.path),
               "--bind", f"127.0.0.1:{self.port}", "--submitted", str(self.submitted)]
        if pki is not None:
            cmd += ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
        self.url = f"{'https' if pki else 'http'}://127.0.0.1:{self.port}"
        self._log = open(self.log, "w")
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while not daemon.healthy(self.url, pki.server_cert if pki else None):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the gateway did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=30)

    def request(self, method: str, path: str, body: dict | None = None, timeout: float = 15):
        """(status, JSON body) of one whole request, or raises on a timeout."""
        if self.pki is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        else:
            ctx = ssl.create_default_context(cafile=str(self.pki.server_ca))
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=data, headers={"Authorization": f"Bearer {self.key}",
                                                            "Content-Type": "application/json"})
            r = conn.getresponse()
            return r.status, json.loads(r.read() or b"null")
        finally:
            conn.close()

    def submitted_ids(self) -> list[str]:
        return self.submitted.read_text().split() if self.submitted.exists() else []

    def stop(self) -> int | None:
        self._log.close()
        return stop_process_group(self.proc)


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    gw = SlowClientGateway(tmp_path_factory.mktemp("slow"))
    yield gw
    assert gw.stop() == 0, gw.log.read_text()[-2000:]


@pytest.fixture(scope="module")
def tls_gw(tmp_path_factory):
    gw = SlowClientGateway(tmp_path_factory.mktemp("slow-tls"), Pki(tmp_path_factory.mktemp("pki")))
    yield gw
    assert gw.stop() == 0, gw.log.read_text()[-2000:]


def closed_by_server_within(sock: socket.socket, seconds: float) -> float | None:
    """How long until the server closed ``sock`` (None: still open after ``seconds``)."""
    start = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except socket.timeout:
        return None
    except OSError:
        pass
    return time.monotonic() - start


def event(event_id: str) -> dict:
    return {"type": "MoveGoods", "event_id": event_id, "occurred_at": "2026-12-03T10:00:00.000000Z",
            "authorisation_id": "FRIPO000001", "lot_id": "L1", "quantity": 1,
            "from_site": "BOURGES-1", "to_site": "BOURGES-2"}


# ------------------------------------------------------------------------------------- on a real server

def test_requests_that_stop_half_way_hold_no_thread_past_the_deadline(gw):
    """Twice as many connections as the worker has threads, each sending a request line and nothing more:
    every thread is taken, then freed at the deadline — the next request is answered, each stalled
    connection closed by the server (before the deadline, nothing stalled was closed)."""
    stalled = []
    for _ in range(2 * THREADS):
        s = gw.connect()
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        stalled.append(s)
    try:
        time.sleep(0.5)
        start = time.monotonic()
        status, body = gw.request("GET", "/healthz", timeout=20)
        assert status == 200, body
        assert time.monotonic() - start < 15
        for s in stalled:
            assert closed_by_server_within(s, 15) is not None, "a stalled connection stayed open"
    finally:
        for s in stalled:
            s.close()


def test_a_head_fed_a_byte_at_a_time_is_cut_at_its_deadline_not_after_each_pause(gw):
    """The deadline is for the whole request, not a pause between bytes: a byte every 0.3 s never pauses
    long, and is still cut about ``DEADLINE_S`` after its thread took it."""
    s = gw.connect()
    try:
        start = time.monotonic()
        closed = None
        for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 200:
            try:
                s.sendall(bytes([byte]))
            except OSError:
                closed = time.monotonic() - start
                break
            time.sleep(0.3)
            s.setblocking(False)
            try:
                if s.recv(1) == b"":
                    closed = time.monotonic() - start
                    break
            except BlockingIOError:
                pass
            finally:
                s.setblocking(True)
        assert closed is not None, "a request fed a byte every 0.3 s was never cut"
        assert DEADLINE_S - 0.5 <= closed <= DEADLINE_S + 5, closed
    finally:
        s.close()


def test_a_body_that_stops_is_cut_and_nothing_is_submitted(gw):
    """An event whose body stops before its Content-Length: the connection is closed at the deadline without
    an answer of success, and the ledger was given nothing; the same event sent whole is recorded."""
    body = json.dumps(event("slow-body-1")).encode()
    s = gw.connect()
    try:
        s.sendall(b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  + f"Authorization: Bearer {gw.key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                  + body[: len(body) // 2])
        s.settimeout(15)
        answer, ended = b"", False
        try:
            while chunk := s.recv(4096):
                answer += chunk
            ended = True
        except socket.timeout:
            pass
        except OSError:
            ended = True
        assert ended, "a body that stopped half way kept its connection (and thread)"
        assert not answer.startswith(b"HTTP/1.1 2"), answer[:200]
    finally:
        s.close()
    assert "slow-body-1" not in gw.submitted_ids()
    status, result = gw.request("POST", "/api/v1/events", event("slow-body-1"), timeout=30)
    assert status == 201, result
    assert gw.submitted_ids().count("slow-body-1") == 1


def test_a_commit_longer_than_the_deadline_is_not_cut(gw):
    """The deadline is for receiving the request: the ledger's answer may take longer (here
    ``SUBMIT_WAIT_S`` > ``DEADLINE_S``) and is given."""
    assert SUBMIT_WAIT_S > DEADLINE_S
    start = time.monotonic()
    status, result = gw.request("POST", "/api/v1/events", event("slow-commit-1"), timeout=30)
    assert status == 201, result
    assert time.monotonic() - start >= SUBMIT_WAIT_S
    assert "slow-commit-1" in gw.submitted_ids()


def test_stalled_tls_handshakes_hold_no_thread_past_the_deadline(tls_gw):
    """Before any client certificate or key is checked: connections that send the first bytes of a TLS
    record and stop took a thread each for good (the handshake is read in the thread). They are cut at
    the deadline, and an HTTPS request is answered."""
    stalled = []
    for _ in range(2 * THREADS):
        s = tls_gw.connect()
        s.sendall(b"\x16\x03\x01\x02\x00")   # a handshake record's header, its 512 bytes never sent
        stalled.append(s)
    try:
        time.sleep(0.5)
        status, body = tls_gw.request("GET", "/healthz", timeout=20)
        assert status == 200, body
        for s in stalled:
            assert closed_by_server_within(s, 15) is not None, "a stalled handshake stayed open"
    finally:
        for s in stalled:
            s.close()


# ----------------------------------------------------------------------------------------- the parts

class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class _Conn:
    def __init__(self):
        self.sock = socket.socket()
        self.client = ("192.0.2.7", 50000)


def test_a_request_is_watched_from_its_thread_until_it_has_arrived():
    clock, a, b = _Clock(), _Conn(), _Conn()
    deadlines = RequestDeadlines(30, clock=clock)
    try:
        fa, fb = deadlines.watch(a), deadlines.watch(b)
        clock.now += 29.9
        assert deadlines.expired() == []
        deadlines.release(fb)                 # b arrived whole
        clock.now += 0.1
        assert deadlines.expired() == [a]     # a did not: handed over once to be cut
        assert deadlines.expired() == []
        deadlines.release(fa)                 # its thread ends: nothing left
    finally:
        a.sock.close()
        b.sock.close()


def test_a_thread_done_with_one_connection_releases_only_that_one():
    """A descriptor is reused once its connection is closed: the old connection's thread must not release the
    new connection's deadline."""
    clock, old, new = _Clock(), _Conn(), _Conn()
    deadlines = RequestDeadlines(30, clock=clock)
    try:
        fd = deadlines.watch(new)
        deadlines.release(fd, old)
        clock.now += 31
        assert deadlines.expired() == [new]
    finally:
        old.sock.close()
        new.sock.close()


def test_cut_shuts_the_late_connection_and_logs_only_its_address(caplog):
    clock = _Clock()
    left, right = socket.socketpair()
    conn = _Conn()
    conn.sock.close()
    conn.sock = left
    deadlines = RequestDeadlines(5, clock=clock)
    try:
        deadlines.watch(conn)
        clock.now += 5
        with caplog.at_level("WARNING"):
            assert deadlines.cut() == 1
        right.settimeout(2)
        assert right.recv(1) == b""           # the peer sees the connection end
        assert "192.0.2.7" in caplog.text and "within 5 s" in caplog.text
    finally:
        left.close()
        right.close()


@pytest.mark.parametrize("reads, arrived", [
    (lambda s: s.read(), True),                                   # the whole rest at once
    (lambda s: (s.read(4), s.read(100)), False),                  # all bytes, the end not yet seen
    (lambda s: (s.read(4), s.read(100), s.read(100)), True),      # ... and then the end
    (lambda s: s.read(0), False),
    (lambda s: list(iter(s.readline, b"")), True),
    (lambda s: s.readlines(), False),                             # lines returned: the end may be further
    (lambda s: (s.readlines(), s.readlines()), True),
    (lambda s: list(s), True),
])
def test_the_body_has_arrived_when_a_read_finds_its_end(reads, arrived):
    import io
    seen = []
    stream = _WatchedInput(io.BytesIO(b"ab\ncdef\n"), lambda: seen.append(True))
    reads(stream)
    assert bool(seen) is arrived


def test_the_read_deadline_is_a_setting_of_more_than_0_seconds(monkeypatch, tmp_path):
    from tests.unit.consortium_state import with_default_consortium
    from ipledger.network import consortium
    from ipledger.network.consortium import DEFAULT_FILE
    from ipledger.network.layout import Layout
    from ipledger.network.org import generate
    state = with_default_consortium(tmp_path / "state")
    c = consortium.load(DEFAULT_FILE)
    generate.init_org(c, Layout(state), c.org("OperatorMSP"), log=lambda *_: None)
    assert GatewayConfig.from_state_dir(state, org="OperatorMSP").request_read_timeout_s == 30
    monkeypatch.setenv("IPLEDGER_REQUEST_READ_TIMEOUT_S", "12.5")
    assert GatewayConfig.from_state_dir(state, org="OperatorMSP").request_read_timeout_s == 12.5
    for bad in ("0", "-1", "soon"):
        monkeypatch.setenv("IPLEDGER_REQUEST_READ_TIMEOUT_S", bad)
        with pytest.raises(ConfigError, match="IPLEDGER_REQUEST_READ_TIMEOUT_S"):
            GatewayConfig.from_state_dir(state, org="OperatorMSP")
    with pytest.raises(ValueError):
        RequestDeadlines(0)


# ------------------------------------------------------------------------------------------- the server

def _serve(argv: list[str]) -> int:
    """``python -m tests.unit.gateway.test_slow_clients --keys-file F --bind ADDR --submitted FILE
    [--tls-cert C --tls-key K]``: the production server around an app over a FakeLedger that answers each
    submit after ``SUBMIT_WAIT_S`` and appends the event ids it is given to FILE."""
    from ipledger.gateway.app import create_app
    from ipledger.gateway.server import GatewayServer, gunicorn_options
    from ipledger.gateway.tls import TLSOptions

    from .fakes import FakeLedger

    parser = argparse.ArgumentParser()
    parser.add_argument("--keys-file", type=Path, required=True)
    parser.add_argument("--bind", required=True)
    parser.add_argument("--submitted", type=Path, required=True)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args(argv)

    class RecordingLedger(FakeLedger):
        def submit(self, org, function, call_args, transient=None):
            with open(args.submitted, "a") as f:
                f.write(json.loads(call_args[0])["event_id"] + "\n")
            time.sleep(SUBMIT_WAIT_S)
            return super().submit(org, function, call_args, transient)

    server_tls = TLSOptions(args.tls_cert, args.tls_key).load({}) if args.tls_cert else None
    config = GatewayConfig(keys_file=args.keys_file, nonce_key_file=args.keys_file.with_name("nonce.key"),
                           configure_logging=True, worker_threads=THREADS, request_read_timeout_s=DEADLINE_S)
    options = gunicorn_options(args.bind, workers=1, threads=THREADS, timeout=30, log_level="info", tls=server_tls)
    GatewayServer(config, options, tls=server_tls, app_factory=lambda c: create_app(c, ledger=RecordingLedger())).run()
    return 0


if __name__ == "__main__":
    sys.exit(_serve(sys.argv[1:]))
