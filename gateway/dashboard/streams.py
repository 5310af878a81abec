"""Caps on open live-feed (Server-Sent Events) responses, so that viewers cannot starve submits.

An SSE response holds one gunicorn worker thread for as long as it lasts (up to ``sse_max_seconds``, then
the browser reconnects). Three caps, each answered **429** ``too-many-requests`` (problem+json, with
``limit``, ``max_streams`` and ``Retry-After``: when the oldest stream in the way ends at the latest):

* ``sse_max_per_worker`` — per worker process, exact (an in-process count): by default half the worker's
  threads, so the other half always serves submits and queries whatever the viewers do;
* ``sse_max_per_key`` — per API key, over every worker, its dashboard sessions included;
* ``sse_max_per_session`` — per dashboard session (its browser tabs).

The per-key and per-session counts are shared by the workers through the feed database (table
``sse_streams``: key id, a hash of the session id, worker pid, end time — never a key or a session
cookie). A stream's row is deleted when the response closes; a row whose worker died (killed, crashed)
or whose time is past (``sse_max_seconds`` + a grace) no longer counts, so a crash never leaves a slot
taken. The workers of one gateway run on one host (one pid namespace), like the feed listener's lock.

A stream whose client went away (a page left for another) frees its slot only when its response notices,
within one poll of the feed (``sse_poll_seconds``): a request over the key's or the session's cap waits up
to ``settle_seconds`` for such a slot before it is refused, so moving from page to page never trips the cap.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import secrets
import sqlite3
import threading
import time
from typing import Callable

from ipledger.gateway.problems import Problem

log = logging.getLogger("ipledger.gateway.dashboard")

TABLE = """
CREATE TABLE IF NOT EXISTS sse_streams (
    lease_id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,                 -- the API key's public id
    session TEXT,                         -- sha256 of the dashboard session's id; NULL for an API-key stream
    pid INTEGER NOT NULL,                 -- the worker process serving it
    expires_at REAL NOT NULL              -- the stream has ended by then at the latest
);
CREATE INDEX IF NOT EXISTS sse_streams_key ON sse_streams(key_id);
CREATE INDEX IF NOT EXISTS sse_streams_session ON sse_streams(session);
"""
GRACE_S = 10.0  # beyond sse_max_seconds: a response still writing its last message
SETTLE_STEP_S = 0.1  # how often a request over a cap looks again during its settle wait


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Lease:
    """One open stream's slot; :meth:`release` (idempotent) frees it."""

    def __init__(self, release: Callable[[], None]):
        self._release = release
        self._lock = threading.Lock()
        self._done = False

    def release(self) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        self._release()


class StreamLimits:
    def __init__(self, store, *, per_key: int, per_session: int, per_worker: int, stream_seconds: float,
                 clock: Callable[[], float] = time.time, settle_seconds: float = 0.0,
                 sleep: Callable[[float], None] = time.sleep):
        self.store = store
        self.per_key, self.per_session, self.per_worker = per_key, per_session, per_worker
        self.stream_seconds = stream_seconds
        self.clock = clock
        self.settle_seconds = settle_seconds  # how long a request over the key's or session's cap waits
        self.sleep = sleep
        self._lock = threading.Lock()
        self._local: dict[str, float] = {}  # this process's open streams: lease id -> latest end
        self._waiting: set[str] = set()    # keys with a request of this process waiting for a slot to settle
        with store.connection() as db:
            db.executescript(TABLE)

    def acquire(self, key_id: str, session_id: str | None = None) -> Lease:
        """A slot for one more stream of ``key_id`` (and dashboard session ``session_id``), or Problem 429.
        The caps the caller can act on (its key's, its session's) are checked first."""
        lease_id = secrets.token_hex(12)
        # counted in steps (sleep is injectable), and bounded by the clock too: a look at the shared store can
        # itself wait on its lock, and the thread this request holds is never kept past settle_seconds
        waits = math.ceil(self.settle_seconds / SETTLE_STEP_S)
        deadline = self.clock() + self.settle_seconds
        waiting = False
        try:
            for waited in range(waits + 1):
                now = self.clock()
                refusal = self._take(lease_id, key_id, session_id, now)
                if refusal is None:
                    break
                # still over the cap at the end: not a page being left. Only one request of a key waits at a time,
                # and only while the worker has threads to spare beyond its streams and waiters: a key's many
                # requests over its cap must not hold the threads submits need (refused at once instead)
                if not waiting and waited != waits:
                    waiting = self._start_waiting(key_id)
                if not waiting or waited == waits or self.clock() >= deadline:
                    log.info("live-feed stream refused: %s cap", refusal.extra["limit"],
                             extra={"key_id": key_id, "outcome": "too-many-requests"})
                    raise refusal
                self.sleep(SETTLE_STEP_S)
        finally:
            if waiting:
                with self._lock:
                    self._waiting.discard(key_id)
        with self._lock:
            full = bool(self.per_worker) and len(self._local) >= self.per_worker
            if not full:
                self._local[lease_id] = now + self.stream_seconds
            wait = min(self._local.values()) - now if full else 0.0
        if full:
            self._forget(lease_id)
            raise _refusal("worker", self.per_worker, wait,
                           f"this gateway process already serves {self.per_worker} live-feed streams, the most it "
                           f"serves at once so that other requests keep threads")
        return Lease(lambda: self._release(lease_id))

    def _start_waiting(self, key_id: str) -> bool:
        """Whether a request of ``key_id`` may wait for a slot to settle (no other of its requests waits here,
        and the worker's streams and waiters leave it threads); noted as waiting if so."""
        with self._lock:
            busy = len(self._local) + len(self._waiting)
            if key_id in self._waiting or (self.per_worker and busy >= self.per_worker):
                return False
            self._waiting.add(key_id)
            return True

    def _take(self, lease_id: str, key_id: str, session_id: str | None, now: float) -> Problem | None:
        """Record the stream's slot; the refusal instead when its key or session is at its cap."""
        session = hashlib.sha256(session_id.encode("utf-8")).hexdigest()[:32] if session_id else None
        refusal = None
        with self.store.transaction() as db:
            db.execute("DELETE FROM sse_streams WHERE expires_at < ?", (now,))
            for (pid,) in db.execute("SELECT DISTINCT pid FROM sse_streams").fetchall():
                if not _alive(pid):  # a worker killed with streams open
                    db.execute("DELETE FROM sse_streams WHERE pid = ?", (pid,))
            for limit, column, value, maximum, what in (
                    ("session", "session", session, self.per_session, "this dashboard session (e.g. its other tabs)"),
                    ("api-key", "key_id", key_id, self.per_key, "this API key (its dashboard sessions included)")):
                if value is None or not maximum:
                    continue
                ends = [r[0] - GRACE_S for r in db.execute(
                    f"SELECT expires_at FROM sse_streams WHERE {column} = ?", (value,)).fetchall()]
                if len(ends) >= maximum:
                    refusal = _refusal(limit, maximum, min(ends) - now,
                                       f"{what} already has {len(ends)} live-feed streams open, the most allowed "
                                       f"(close one)")
                    break
            if refusal is None:
                db.execute("INSERT INTO sse_streams (lease_id, key_id, session, pid, expires_at) "
                           "VALUES (?,?,?,?,?)",
                           (lease_id, key_id, session, os.getpid(), now + self.stream_seconds + GRACE_S))
        return refusal

    def _release(self, lease_id: str) -> None:
        with self._lock:
            self._local.pop(lease_id, None)
        self._forget(lease_id)

    def _forget(self, lease_id: str) -> None:
        try:
            with self.store.connection() as db:
                db.execute("DELETE FROM sse_streams WHERE lease_id = ?", (lease_id,))
        except sqlite3.Error as exc:  # the row expires anyway
            log.warning("live-feed stream slot not freed: %s", type(exc).__name__,
                        extra={"error_type": type(exc).__name__})


def _refusal(limit: str, maximum: int, wait_s: float, why: str) -> Problem:
    retry = max(1, math.ceil(wait_s))
    return Problem(429, "too-many-requests", f"{why}; retry after {retry} s",
                   extra={"limit": limit, "max_streams": maximum}, headers={"Retry-After": str(retry)})
