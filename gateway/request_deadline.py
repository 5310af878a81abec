"""Every request must arrive whole within a deadline: slow clients cannot hold the gateway's threads.

gunicorn's threaded worker gives a connection one of its threads as soon as the connection's first bytes
arrive, and then reads the TLS handshake, the request head and the body in that thread with no time limit.
A client that sends part of a request and stops — or one byte every few seconds — holds that thread for as
long as it keeps the connection open; a few hundred such connections (``--threads`` per worker), opened
before any API key or client certificate is checked, leave no thread for the ERP's events and the
dashboard. Measured on gunicorn 27: twelve connections each sending ``GET /healthz HTTP/1.1\\r\\n`` and
nothing more stopped a worker of eight threads for good.

So each request — handshake, head and body — must be received within ``request_read_timeout_s`` (env
``IPLEDGER_REQUEST_READ_TIMEOUT_S``, default 30 s) of the moment a thread takes it. :class:`RequestDeadlines`
keeps, per worker process, the requests being read and their deadlines; a watchdog thread shuts the
connection of every request past its deadline, and the thread reading it sees the connection end and is free
again. A request stops being watched when the app has read its body to the end, or answers without reading
it (:func:`RequestDeadlines.wrap`, WSGI middleware): what follows — endorsement, ordering, the commit, a
live-feed stream — takes as long as it takes. A request cut short never reaches the ledger: its body is
incomplete, and the app refuses an incomplete body before anything is submitted.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Callable

log = logging.getLogger("ipledger.gateway.server")


class RequestDeadlines:
    """The connections whose request is being received, each with the moment it must have arrived by.

    Keyed by the connection's file descriptor, which stays the same when gunicorn wraps the socket for TLS and
    is what the app sees of the connection (``environ["gunicorn.socket"]``)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        if seconds <= 0:
            raise ValueError("the request read timeout must be more than 0 seconds")
        self.seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._reading: dict[int, tuple[float, object]] = {}   # fd -> (deadline, the gunicorn connection)
        self._stopped = threading.Event()

    # ----------------------------------------------------------------------------------- the worker's side

    def watch(self, conn) -> int | None:
        """A thread took ``conn`` to read a request from it (gunicorn's ``handle``): its deadline starts now.
        Returns the key to :meth:`release` it by (None for a connection already closed)."""
        try:
            fd = conn.sock.fileno()
        except OSError:
            return None
        if fd < 0:
            return None
        with self._lock:
            self._reading[fd] = (self._clock() + self.seconds, conn)
        return fd

    def release(self, fd: int | None, conn=None) -> None:
        """The request on ``fd`` has arrived (or its thread is done with the connection): no longer watched.
        With ``conn``, only if ``fd`` is still that connection's."""
        if fd is None:
            return
        with self._lock:
            entry = self._reading.get(fd)
            if entry is not None and (conn is None or entry[1] is conn):
                del self._reading[fd]

    def expired(self) -> list:
        """The connections past their deadline, no longer watched (:meth:`cut` shuts them)."""
        now = self._clock()
        with self._lock:
            late = [fd for fd, (deadline, _conn) in self._reading.items() if deadline <= now]
            return [self._reading.pop(fd)[1] for fd in late]

    def cut(self) -> int:
        """Shut the connection of every request past its deadline; how many were cut."""
        late = self.expired()
        for conn in late:
            client = getattr(conn, "client", None)
            log.warning("a request was not received whole within %s s: its connection from %s is closed",
                        _seconds(self.seconds), _address(client))
            try:
                # the base class's shutdown, also for a TLS socket: the reading thread's recv returns at once
                socket.socket.shutdown(conn.sock, socket.SHUT_RDWR)
            except OSError:
                pass   # already closed by its thread
        return len(late)

    def start(self) -> threading.Thread:
        """The watchdog thread of this worker process (a daemon: it ends with the worker)."""
        interval = min(1.0, self.seconds / 4)

        def run() -> None:
            while not self._stopped.wait(interval):
                try:
                    self.cut()
                except Exception:  # noqa: BLE001 - the watchdog must outlive any one failure
                    log.exception("the request-deadline watchdog failed; it goes on")

        thread = threading.Thread(target=run, name="request-deadlines", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stopped.set()

    # -------------------------------------------------------------------------------------- the app's side

    def wrap(self, app):
        """WSGI middleware: the request on this connection has arrived once the app has read its body to the
        end (or when it answers, for a body it does not read)."""

        def wrapped(environ, start_response):
            sock = environ.get("gunicorn.socket")
            try:
                fd = sock.fileno() if sock is not None else None
            except OSError:
                fd = None

            def arrived() -> None:
                self.release(fd)

            if _has_body(environ):
                environ["wsgi.input"] = _WatchedInput(environ["wsgi.input"], arrived)
            else:
                arrived()

            def start(status, headers, exc_info=None):
                arrived()
                return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

            return app(environ, start)

        return wrapped


def _has_body(environ) -> bool:
    if environ.get("HTTP_TRANSFER_ENCODING"):
        return True
    try:
        return int(environ.get("CONTENT_LENGTH") or 0) > 0
    except ValueError:
        return True


class _WatchedInput:
    """``wsgi.input`` that calls ``arrived`` when a read finds the body's end (gunicorn returns ``b""`` there,
    Content-Length or chunked alike)."""

    def __init__(self, stream, arrived: Callable[[], None]):
        self._stream = stream
        self._arrived = arrived

    def _seen(self, data: bytes, size) -> bytes:
        if size == 0:
            return data
        if not data or size is None or size < 0:   # the end found, or the whole rest read
            self._arrived()
        return data

    def read(self, size=None):
        return self._seen(self._stream.read(size), size)

    def readline(self, size=None):
        data = self._stream.readline(size)
        if not data:
            self._arrived()
        return data

    def readlines(self, hint=None):
        lines = self._stream.readlines(hint)
        if not lines:
            self._arrived()
        return lines

    def __iter__(self):
        for line in self._stream:
            yield line
        self._arrived()


def _seconds(value: float) -> str:
    return f"{value:g}"


def _address(client) -> str:
    if isinstance(client, (tuple, list)) and client:
        return str(client[0])
    return str(client) if client else "?"
