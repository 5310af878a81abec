"""The live feed: the contract's chaincode events, stored once, shown to whoever may see them.

One listener per gateway *installation* writes, any number of readers read:

* every gunicorn worker starts a :class:`FeedListener` thread; the one that holds the lock file
  ``<state>/gateway/feed.lock`` (``flock``) listens, the others wait for the lock (a worker that dies
  releases it, and another takes over);
* the listener reads ``ChaincodeEvents(channel, ipledger)`` (:mod:`gateway.fabric.events`) from the
  stored :class:`~gateway.fabric.FileCheckpointer` (``<state>/gateway/feed.checkpoint.json``), or from
  block 0 the first time, stores each transaction's ``ipledger.events`` payload in the feed database
  ``<state>/<org name>/gateway/dashboard.sqlite`` (``INSERT OR IGNORE`` on the tx id), runs the hooks (the webhook
  router queues its deliveries in the same database) and only then moves the checkpoint: after a crash
  in between the transaction comes again and is ignored — no event is missed, none stored twice. A hook
  that fails is retried with back-off and the checkpoint waits: nothing a hook should have done is lost;
* the Server-Sent-Events responses of every worker read the database (``seq`` order = block order);
  each item's SSE ``id`` is ``<block>:<tx id>`` and ``Last-Event-ID`` resumes after it.

Chaincode events reach every channel member's peer, so the store holds every authorisation's events
(never commercial data: the contract keeps those out of the payload). Whoever reads them gets only those
of authorisations its organisation may read: :class:`Visibility` asks the contract (``GetAuthorisation``
as that org, cached ``visibility_ttl_s``; an amendment, grant or status change of the authorisation
drops the cached answer when the reader meets it in the feed).

The database also keeps the **list of authorisation ids** the gateway has seen in chaincode events
(the contract has no "list authorisations" query), plus ids added by hand (dashboard form or
``POST /api/v1/dashboard/authorisations``).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import re
import socket
import sqlite3
import ssl
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol

from .problems import Problem

log = logging.getLogger("gateway.feed")

EVENT_NAME = "ipledger.events"
# events that can change who may read an authorisation (mandates, holder, status)
VISIBILITY_CHANGING = frozenset({"GrantAuthorisation", "AmendAuthorisation", "RevokeAuthorisation",
                                 "SuspendAuthorisation", "ReinstateAuthorisation", "SetParameters",
                                 "RegisterParty", "WithdrawParty"})
# events that change who may read across the channel (every cached answer is dropped)
CHANNEL_WIDE = frozenset({"SetParameters", "RegisterParty", "WithdrawParty"})
# the register of parties: an entry is shown to customs (who wrote it) and to the party it is about only, as
# GetParties does — another representative's or holder's EORIs are not everyone's business
PARTY_EVENTS = frozenset({"RegisterParty", "WithdrawParty"})


def now_text() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def gateway_dir(config) -> Path | None:
    return Path(config.state_dir) / "gateway" if getattr(config, "state_dir", None) else None


# ------------------------------------------------------------------------------------------ the store

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,              -- "<block>:<tx id>"
    block INTEGER NOT NULL,
    tx_id TEXT NOT NULL UNIQUE,
    authorisation_id TEXT,
    event_type TEXT,
    recorded_at TEXT,
    payload TEXT NOT NULL,                -- the chaincode event payload (JSON)
    stored_at TEXT NOT NULL,
    channel TEXT                          -- on a gateway of several channels: the transaction's
);
CREATE INDEX IF NOT EXISTS events_auth ON events(authorisation_id, seq);
CREATE TABLE IF NOT EXISTS authorisations (
    authorisation_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,                 -- "event" or "manual"
    added_by TEXT,
    first_seen TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS endorsements (
    tx_id TEXT PRIMARY KEY,
    info TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    delivery_id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    org TEXT NOT NULL,
    authorisation_id TEXT,
    alert_type TEXT,
    body TEXT NOT NULL,
    status TEXT NOT NULL,                 -- PENDING, DELIVERED, FAILED
    attempts INTEGER NOT NULL DEFAULT 0,
    needs_check INTEGER NOT NULL DEFAULT 0, -- 1: may the subscription's org read the authorisation? not asked yet
    checks INTEGER NOT NULL DEFAULT 0,    -- failed attempts to ask it (the ledger unreachable)
    next_attempt_at REAL NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    created_at TEXT NOT NULL,
    delivered_at TEXT,
    UNIQUE(subscription_id, alert_id)
);
CREATE TABLE IF NOT EXISTS time_alerts (
    org TEXT NOT NULL,
    authorisation_id TEXT NOT NULL,
    alert_key TEXT NOT NULL,              -- type/subject
    alert TEXT NOT NULL,
    since TEXT NOT NULL,
    PRIMARY KEY (org, authorisation_id, alert_key)
);
"""


MAX_BLOCK = 2**63 - 1  # the largest block number a position can name (SQLite INTEGER)


class FeedStore:
    """The feed database (SQLite, WAL): safe to use from several threads and processes.

    A new connection per operation: cheap for SQLite, and no connection crosses a fork or a thread."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.executescript(SCHEMA)
            columns = {r[1] for r in db.execute("PRAGMA table_info(deliveries)")}
            for column in ("needs_check", "checks"):  # a database of an earlier version
                if column not in columns:
                    with contextlib.suppress(sqlite3.OperationalError):  # another process added it meanwhile
                        db.execute(f"ALTER TABLE deliveries ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")
            if "channel" not in {r[1] for r in db.execute("PRAGMA table_info(events)")}:
                with contextlib.suppress(sqlite3.OperationalError):
                    db.execute("ALTER TABLE events ADD COLUMN channel TEXT")
        with contextlib.suppress(OSError):
            os.chmod(self.path, 0o600)

    @contextlib.contextmanager
    def _db(self):
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            # Switching a new database to WAL while another process (a sibling worker booting) does the
            # same answers "database is locked" at once, whatever the busy timeout: try again briefly.
            for attempt in range(50):
                try:
                    db.execute("PRAGMA journal_mode=WAL")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or attempt == 49:
                        raise
                    time.sleep(0.1)
            db.execute("PRAGMA synchronous=FULL")
            yield db
        finally:
            db.close()

    # -- events ---------------------------------------------------------------------------------------
    def add_event(self, block: int, tx_id: str, payload: dict, channel: str | None = None) -> bool:
        """Store one transaction's payload (and, on a gateway of several channels, its channel); False if it
        was already stored (a re-delivery)."""
        first = (payload.get("events") or [{}])[0]
        auth_id = first.get("authorisation_id")
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                cur = db.execute(
                    "INSERT OR IGNORE INTO events (id, block, tx_id, authorisation_id, event_type, recorded_at, "
                    "payload, stored_at, channel) VALUES (?,?,?,?,?,?,?,?,?)",
                    (f"{block}:{tx_id}", block, tx_id, auth_id, first.get("event_type"), payload.get("recorded_at"),
                     json.dumps(payload, separators=(",", ":"), ensure_ascii=False), now_text(), channel))
                added = cur.rowcount == 1
                if added:
                    for ev in payload.get("events") or []:
                        if ev.get("authorisation_id"):
                            db.execute("INSERT OR IGNORE INTO authorisations (authorisation_id, source, added_by, "
                                       "first_seen) VALUES (?, 'event', NULL, ?)",
                                       (ev["authorisation_id"], payload.get("recorded_at") or now_text()))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return added

    def _item(self, row) -> dict:
        return feed_item(row["block"], row["tx_id"], json.loads(row["payload"]), seq=row["seq"],
                         channel=row["channel"])

    def events_after(self, seq: int, limit: int = 500, authorisation_id: str | None = None) -> list[dict]:
        with self._db() as db:
            if authorisation_id:
                rows = db.execute("SELECT * FROM events WHERE seq > ? AND authorisation_id = ? ORDER BY seq LIMIT ?",
                                  (seq, authorisation_id, limit)).fetchall()
            else:
                rows = db.execute("SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)).fetchall()
        return [self._item(r) for r in rows]

    def latest(self, limit: int = 100, authorisation_id: str | None = None, before: int | None = None) -> list[dict]:
        """The newest items (before position ``before``), newest first."""
        before = before if before is not None else 2 ** 62
        with self._db() as db:
            if authorisation_id:
                rows = db.execute("SELECT * FROM events WHERE authorisation_id = ? AND seq < ? ORDER BY seq DESC "
                                  "LIMIT ?", (authorisation_id, before, limit)).fetchall()
            else:
                rows = db.execute("SELECT * FROM events WHERE seq < ? ORDER BY seq DESC LIMIT ?",
                                  (before, limit)).fetchall()
        return [self._item(r) for r in rows]

    def last_seq(self) -> int:
        with self._db() as db:
            row = db.execute("SELECT max(seq) FROM events").fetchone()
        return row[0] or 0

    def seq_of(self, event_id: str | None) -> int | None:
        """The position after which to resume for a ``Last-Event-ID`` (``<block>:<tx id>``); None if it
        is not one. An id the store does not know (e.g. a rebuilt store) resumes after its block."""
        if not event_id:
            return None
        block_text, sep, tx_id = event_id.strip().partition(":")
        # ASCII digits only (str.isdigit takes '²'), and a block number SQLite can hold (signed 64 bits)
        if not sep or not re.fullmatch(r"[0-9]{1,19}", block_text) or int(block_text) > MAX_BLOCK:
            return None
        block = int(block_text)
        with self._db() as db:
            if tx_id:
                row = db.execute("SELECT seq FROM events WHERE id = ?", (f"{block}:{tx_id}",)).fetchone()
                if row:
                    return row[0]
            row = db.execute("SELECT min(seq) FROM events WHERE block > ?", (block if tx_id else block - 1,)).fetchone()
            if row[0] is not None:
                return row[0] - 1
            row = db.execute("SELECT max(seq) FROM events").fetchone()
            return row[0] or 0

    def count(self) -> int:
        with self._db() as db:
            return db.execute("SELECT count(*) FROM events").fetchone()[0]

    # -- authorisations -------------------------------------------------------------------------------
    def authorisation_ids(self) -> list[dict]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM authorisations ORDER BY authorisation_id").fetchall()
        return [dict(r) for r in rows]

    def add_authorisation(self, authorisation_id: str, added_by: str) -> bool:
        with self._db() as db:
            cur = db.execute("INSERT OR IGNORE INTO authorisations (authorisation_id, source, added_by, first_seen) "
                             "VALUES (?, 'manual', ?, ?)", (authorisation_id, added_by, now_text()))
            return cur.rowcount == 1

    # -- endorsements (audit trail cache) ------------------------------------------------------------
    def endorsement(self, tx_id: str) -> dict | None:
        with self._db() as db:
            row = db.execute("SELECT info FROM endorsements WHERE tx_id = ?", (tx_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def save_endorsement(self, tx_id: str, info: dict) -> None:
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO endorsements (tx_id, info) VALUES (?, ?)", (tx_id, json.dumps(info)))

    # -- used by gateway.webhooks -----------------------------------------------------------------------
    @contextlib.contextmanager
    def connection(self):
        with self._db() as db:
            yield db


def feed_item(block: int, tx_id: str, payload: dict, seq: int | None = None, channel: str | None = None) -> dict:
    """One transaction as the feed shows it: the chaincode event payload plus its position (and its channel,
    on a gateway of several)."""
    events = payload.get("events") or []
    first = events[0] if events else {}
    submitted_by = first.get("submitted_by") or {}
    return {
        "id": f"{block}:{tx_id}", "seq": seq, "block_number": block, "tx_id": tx_id,
        "recorded_at": payload.get("recorded_at"), "event_type": first.get("event_type"),
        "event_id": first.get("event_id"), "authorisation_id": first.get("authorisation_id"),
        "occurred_at": first.get("occurred_at"), "submitting_org": submitted_by.get("msp_id"),
        "submitted_by": submitted_by, "lots": first.get("lots") or [], "batches": first.get("batches") or [],
        "event": first.get("event"), "events": events, "alerts": payload.get("alerts") or [],
        **({"channel": channel} if channel else {}),
    }


# ------------------------------------------------------------------------------------------ visibility

class Visibility:
    """May ``org`` read authorisation ``A``? The contract decides (``GetAuthorisation`` as ``org``)."""

    def __init__(self, service, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.service = service
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[tuple[str, str], tuple[bool, float]] = {}
        self._lock = threading.Lock()

    def can_read(self, org: str, authorisation_id: str | None) -> bool:
        if authorisation_id is None:
            return True  # channel-wide (SetParameters): GetParameters is open to every client
        key = (org, authorisation_id)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[1] > self.clock():
            return hit[0]
        try:
            self.service.evaluate_json(org, "GetAuthorisation", authorisation_id)
            allowed = True
        except Problem as p:
            if p.status not in (400, 403, 404):
                raise  # the ledger is unreachable: decide nothing, cache nothing
            allowed = False
        with self._lock:
            self._cache[key] = (allowed, self.clock() + self.ttl)
        return allowed

    def forget(self, authorisation_id: str | None = None) -> None:
        with self._lock:
            if authorisation_id is None:
                self._cache.clear()
            else:
                for key in [k for k in self._cache if k[1] == authorisation_id]:
                    del self._cache[key]

    def filter(self, org: str, items: Iterable[dict]) -> list[dict]:
        out = []
        for item in items:
            self.forget_for(item)
            if item.get("event_type") in PARTY_EVENTS:
                if org in (item.get("submitting_org"), (item.get("event") or {}).get("msp_id")):
                    out.append(item)
            elif self.can_read(org, item.get("authorisation_id")):
                out.append(item)
        return out

    def forget_for(self, item: dict) -> None:
        """Drop the cached answers ``item`` may have changed (its authorisation's, or all for a channel-wide
        change: parameters, the register of parties)."""
        if item.get("event_type") in VISIBILITY_CHANGING:
            self.forget(None if item.get("event_type") in CHANNEL_WIDE else item.get("authorisation_id"))


# ------------------------------------------------------------------------------------------ listening

class EventSource(Protocol):
    def open(self, checkpoint) -> Iterator:  # iterator of gateway.fabric.ChaincodeEvent with .close()
        ...

    def close(self) -> None: ...


class FabricEventSource:
    """Chaincode events of the contract from one org's peer (its own Gateway connection)."""

    def __init__(self, config, org: str | None = None, channel: str | None = None):
        self.config = config
        self.org = org or config.feed_org or sorted(config.orgs)[0]
        self.channel = channel or config.channel
        self._gateway = None

    def open(self, checkpoint):
        from gateway.fabric import Endpoint, Gateway, load_identity
        if self._gateway is None:
            conn = self.config.orgs[self.org]
            identity, signer = load_identity(conn.msp_dir, conn.msp_id)
            self._gateway = Gateway.connect(Endpoint(conn.peer_address, tls_root_cert=conn.tls_root_cert,
                                                     server_name=conn.server_name), identity, signer)
        network = self._gateway.network(self.channel)
        empty = checkpoint is None or checkpoint.empty
        return network.chaincode_events(self.config.chaincode, start_block=0 if empty else None,
                                        checkpoint=None if empty else checkpoint)

    def close(self) -> None:
        if self._gateway is not None:
            with contextlib.suppress(Exception):
                self._gateway.close()
            self._gateway = None


class FeedListener:
    """The background listener (one thread). Only the holder of ``lock_path`` listens."""

    def __init__(self, store: FeedStore, checkpointer, source: EventSource, lock_path: Path | str | None = None,
                 on_item: Iterable[Callable[[dict], None]] = (), retry_s: float = 2.0,
                 on_lead: Iterable[Callable[[], None]] = (), hook_backoff_s: float | None = None,
                 hook_max_backoff_s: float = 60.0, channel: str | None = None):
        self.store = store
        self.channel = channel  # stored with each event: set on a gateway of several channels
        self.checkpointer = checkpointer
        self.source = source
        self.lock_path = Path(lock_path) if lock_path else None
        # hooks must be idempotent: a transaction whose hooks ran may come again (restart before the checkpoint)
        self.on_item = list(on_item)
        self.on_lead = list(on_lead)  # run once this listener holds the lock (e.g. start the webhook dispatcher)
        self.retry_s = retry_s
        # a failing hook is retried after hook_backoff_s, doubled each time up to hook_max_backoff_s
        self.hook_backoff_s = min(retry_s, 0.5) if hook_backoff_s is None else hook_backoff_s
        self.hook_max_backoff_s = hook_max_backoff_s
        self._stop = threading.Event()
        self._stream = None
        self._thread: threading.Thread | None = None
        self._lock_fd: int | None = None
        self.leading = threading.Event()
        self.handled = 0

    # -- leadership -------------------------------------------------------------------------------------
    def _try_lock(self) -> bool:
        if self.lock_path is None:
            return True
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
            self._lock_fd = None
        self.leading.clear()

    # -- running ------------------------------------------------------------------------------------------
    def start(self) -> "FeedListener":
        self._thread = threading.Thread(target=self.run, name="ipledger-feed", daemon=True)
        self._thread.start()
        return self

    def run(self) -> None:
        try:
            while not self._stop.is_set():
                if self._try_lock():
                    break
                self._stop.wait(2.0)
            else:
                return
            self.leading.set()
            for callback in self.on_lead:
                callback()
            log.info("feed listener started (checkpoint block %s)", self.checkpointer.block_number)
            while not self._stop.is_set():
                try:
                    self._listen_once()
                except Exception as exc:  # noqa: BLE001 - reconnect from the checkpoint
                    if self._stop.is_set():
                        break
                    log.warning("feed listener: %s; reconnecting from the checkpoint", type(exc).__name__,
                                extra={"error_type": type(exc).__name__})
                    self._stop.wait(self.retry_s)
        finally:
            self._unlock()

    def _listen_once(self) -> None:
        stream = self.source.open(self.checkpointer.checkpoint)
        self._stream = stream
        try:
            for event in stream:
                if self._stop.is_set() or not self.handle(event):
                    break
            else:
                if not self._stop.is_set():
                    raise ConnectionError("the chaincode event stream ended")
        finally:
            self._stream = None
            with contextlib.suppress(Exception):
                stream.close()

    def handle(self, event) -> bool:
        """Store one chaincode event, run the hooks, then move the checkpoint past it.

        The checkpoint moves only once every hook has succeeded: a hook that raises is retried (back-off
        ``hook_backoff_s`` doubling to ``hook_max_backoff_s``) and the feed waits at this transaction. False
        (checkpoint not moved) when the listener was stopped meanwhile: the transaction comes again on the
        next start, so hooks must be idempotent."""
        if event.event_name == EVENT_NAME:
            try:
                payload = json.loads(event.payload)
            except ValueError:
                log.error("chaincode event of tx %s is not JSON; skipped", event.tx_id, extra={"tx_id": event.tx_id})
                payload = None
            if isinstance(payload, dict):
                self.store.add_event(event.block_number, event.tx_id, payload, self.channel)
                item = feed_item(event.block_number, event.tx_id, payload, channel=self.channel)
                for hook in self.on_item:
                    if not self._run_hook(hook, item):
                        return False
        self.checkpointer.checkpoint_event(event)
        self.handled += 1
        return True

    def _run_hook(self, hook: Callable[[dict], None], item: dict) -> bool:
        """Run ``hook`` until it succeeds (True) or the listener stops (False)."""
        delay, failures = self.hook_backoff_s, 0
        while True:
            try:
                hook(item)
                if failures:
                    log.info("feed hook %s succeeded after %d failure(s); the feed moves on",
                             getattr(hook, "__name__", hook), failures,
                             extra={"tx_id": item["tx_id"], "block_number": item["block_number"]})
                return True
            except Exception as exc:  # noqa: BLE001 - retried; the checkpoint waits
                failures += 1
                log.error("feed hook %s failed (%d): %s; the feed waits at block %s (retry in %.1f s)",
                          getattr(hook, "__name__", hook), failures, type(exc).__name__, item["block_number"], delay,
                          extra={"tx_id": item["tx_id"], "block_number": item["block_number"],
                                 "error_type": type(exc).__name__})
            if self._stop.wait(delay):
                return False
            delay = min(self.hook_max_backoff_s, max(delay, 0.01) * 2)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()
        if self._thread is not None:
            self._thread.join(timeout)
        with contextlib.suppress(Exception):
            self.source.close()


# ------------------------------------------------------------------------------------------ SSE

def sse_message(item: dict) -> str:
    data = json.dumps({k: v for k, v in item.items() if k != "seq"}, separators=(",", ":"), ensure_ascii=False)
    return f"id: {item['id']}\nevent: ledger-event\ndata: {data}\n\n"


def sse_stream(store: FeedStore, visibility: Visibility, org: str, last_event_id: str | None, *,
               max_seconds: float, poll_seconds: float, stopping: threading.Event | None = None,
               authorisation_id: str | None = None, clock=time.monotonic, sleep=time.sleep,
               client_gone: Callable[[], bool] | None = None, keepalive_seconds: float = 5.0) -> Iterator[str]:
    """The SSE body for ``org``: items after ``last_event_id`` (or, without one, from now on), visible
    to ``org``, each once, in block order. Ends after ``max_seconds`` (the client reconnects), or as soon
    as ``client_gone()`` says the client has closed the connection. A comment every ``keepalive_seconds``
    without an item: a client that went away is noticed at the latest on the second write after, so its
    worker thread (and its slot among the capped streams) is not held for the rest of ``max_seconds``."""
    start = store.seq_of(last_event_id)
    yield "retry: 1000\n\n"
    if start is None:
        start = store.last_seq()
        # give the client a position to resume from, so that a reconnection misses nothing — the newest
        # item it may see (never an invisible one), or the start of the feed
        visible = next(iter(visibility.filter(org, _newest_first(store, authorisation_id))), None)
        yield f"id: {visible['id'] if visible else '0:'}\n\n"
    seq = start
    deadline = clock() + max_seconds
    last_write = clock()
    while clock() < deadline and not (stopping is not None and stopping.is_set()):
        if client_gone is not None and client_gone():
            return
        items = store.events_after(seq, limit=200)
        for item in items:
            seq = item["seq"]
            if authorisation_id and item.get("authorisation_id") != authorisation_id:
                continue
            if visibility.filter(org, [item]):
                yield sse_message(item)
                last_write = clock()
        if not items:
            if clock() - last_write > keepalive_seconds:
                yield ": keep-alive\n\n"
                last_write = clock()
            sleep(poll_seconds)


def peer_closed_check(sock) -> Callable[[], bool] | None:
    """For a plain TCP socket (gunicorn passes it in ``environ["gunicorn.socket"]``): a check whether the
    client has closed the connection (EOF waiting, peeked without reading). None for a TLS socket (its
    bytes cannot be peeked at: the keep-alive writes notice the closed connection instead) or no socket."""
    if sock is None or not hasattr(sock, "recv") or isinstance(sock, ssl.SSLSocket):
        return None

    def gone() -> bool:
        try:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError):
            return False  # open, nothing sent: the usual case
        except OSError:
            return True   # reset, or closed on our side
    return gone


def _newest_first(store: FeedStore, authorisation_id: str | None, page: int = 200) -> Iterator[dict]:
    before = None
    while True:
        items = store.latest(page, authorisation_id, before=before)
        if not items:
            return
        yield from items
        before = items[-1]["seq"]
