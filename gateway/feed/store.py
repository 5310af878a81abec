"""The feed database (``<state>/<org name>/gateway/dashboard.sqlite``, SQLite in WAL mode) and the feed item.

It holds each transaction's ``ipledger.events`` payload once (``INSERT OR IGNORE`` on the tx id; ``seq``
order = block order), the **list of authorisation ids** the gateway has seen in chaincode events (the
contract has no "list authorisations" query) plus ids added by hand (dashboard form or
``POST /api/v1/dashboard/authorisations``), the endorsement cache of the audit trail, and the tables of
:mod:`ipledger.gateway.webhooks` (the delivery queue and log, the time alerts last polled). See :mod:`ipledger.gateway.feed`
for how the listener fills it and who reads it.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import sqlite3
import time
import urllib.parse
from pathlib import Path
from typing import Iterable


def now_text() -> str:
    """Now, UTC, to the microsecond (the timestamps of the feed database and the webhook files)."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def gateway_dir(config) -> Path | None:
    """Where the feed's files live (database, listener locks and checkpoints, webhook subscriptions):
    ``<config.home>/gateway``, i.e. ``<state>/<org name>/gateway``; None without a state directory."""
    return Path(config.home) / "gateway" if getattr(config, "home", None) else None


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
CREATE INDEX IF NOT EXISTS events_type ON events(event_type, seq);
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
    resent INTEGER NOT NULL DEFAULT 0,    -- times queued again after FAILED ('gateway webhooks resend')
    next_attempt_at REAL NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    created_at TEXT NOT NULL,
    delivered_at TEXT,
    UNIQUE(subscription_id, alert_id)
);
CREATE TABLE IF NOT EXISTS ended_sessions (
    sid TEXT PRIMARY KEY,                 -- a dashboard session signed out before its cookie expires
    until REAL NOT NULL                   -- when its cookie would expire anyway (Unix time): kept until then
);
CREATE TABLE IF NOT EXISTS time_alerts (
    org TEXT NOT NULL,
    authorisation_id TEXT NOT NULL,
    alert_key TEXT NOT NULL,              -- type/subject
    alert TEXT NOT NULL,
    since TEXT NOT NULL,
    PRIMARY KEY (org, authorisation_id, alert_key)
);
CREATE TABLE IF NOT EXISTS time_alert_raises (
    org TEXT NOT NULL,
    authorisation_id TEXT NOT NULL,
    alert_key TEXT NOT NULL,              -- type/subject
    moment TEXT NOT NULL,                 -- what the alert is about (webhooks/router.py, _moment_of)
    raised INTEGER NOT NULL,              -- how often it was raised: each raise its own alert id
    PRIMARY KEY (org, authorisation_id, alert_key, moment)
);
"""


SCHEMA_VERSION = 1     # PRAGMA user_version of the database (0: made before the version was recorded)
BUSY_TIMEOUT_S = 30.0  # how long an operation waits for a database another process holds locked
MAX_BLOCK = 2**63 - 1  # the largest block number a position can name (SQLite INTEGER)
# A position in the feed: an item's id ``<block>:<tx id>``, or a block position ``<block>:`` (past every item of
# the blocks before it), which on a gateway of several holders' channels names its channel: ``<channel>/<block>:``
# — the channels' block numbers are separate chains (channel A at block 1,000, channel B at block 10).
# POSITION is what a client may send (a transaction id is hex); the store reads any text after the ':' as one.
POSITION = re.compile(r"(?:([a-z][a-z0-9.-]{0,248})/)?([0-9]{1,19}):([0-9a-f]{0,64})")
_STORED_POSITION = re.compile(r"(?:([a-z][a-z0-9.-]{0,248})/)?([0-9]{1,19}):(.*)")


def parse_position(text: str | None, pattern: re.Pattern = _STORED_POSITION) -> tuple[str | None, int, str] | None:
    """``(channel or None, block, tx id or "")`` of a position matched whole by ``pattern`` (:data:`POSITION` for
    what a client sends); None if it is not one: a block number SQLite cannot hold (signed 64 bits), or a channel
    named with a transaction (an item's id names none)."""
    match = pattern.fullmatch(text) if text else None
    if match is None or int(match.group(2)) > MAX_BLOCK or (match.group(1) and match.group(3)):
        return None
    return match.group(1), int(match.group(2)), match.group(3)


def block_position(block: int, channel: str | None = None) -> str:
    """The position past every item of ``channel``'s blocks before ``block`` (and of the items stored before
    them): names no transaction, so it can be given to a caller who may not see the items passed."""
    return f"{channel}/{block}:" if channel else f"{block}:"


def position_after(item: dict) -> str:
    """The block position past ``item``'s block (a block is stored whole)."""
    return block_position(item["block_number"] + 1, item.get("channel"))


class FeedStoreError(ValueError):
    """The feed database cannot be used (not one, or of a newer version); the message names the file."""


class FeedStore:
    """The feed database (SQLite, WAL): safe to use from several threads and processes.

    A new connection per operation: cheap for SQLite, and no connection crosses a fork or a thread."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)   # the gateway's own directory: 0700
        # 0600 from its creation (SQLite gives its -wal and -shm files the database's mode)
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600))
        # from now on opened, never created: a database deleted (or moved away) while the gateway runs is an error
        # to say, not a new empty one SQLite would make in its place without its schema
        self._uri = f"file:{urllib.parse.quote(str(self.path.resolve()))}?mode=rw"
        try:
            self._set_up()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):   # locked, busy: a passing condition, said as it is
                raise
            raise FeedStoreError(f"{self.path} is not a feed database ({exc}): restore it from a backup or move it "
                                 "away (the gateway then reads the ledger's events again)") from None
        with contextlib.suppress(OSError):
            os.chmod(self.path, 0o600)

    def _set_up(self) -> None:
        """The tables and indexes, those an earlier version lacks added; the schema version recorded."""
        with self._db() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise FeedStoreError(f"{self.path} was written by a newer ipledger (feed database version {version}; "
                                     f"this one reads {SCHEMA_VERSION} and earlier)")
            db.executescript(SCHEMA)
            columns = {r[1] for r in db.execute("PRAGMA table_info(deliveries)")}
            for column in ("needs_check", "checks", "resent"):  # a database of an earlier version
                if column not in columns:
                    with contextlib.suppress(sqlite3.OperationalError):  # another process added it meanwhile
                        db.execute(f"ALTER TABLE deliveries ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")
            if "channel" not in {r[1] for r in db.execute("PRAGMA table_info(events)")}:
                with contextlib.suppress(sqlite3.OperationalError):
                    db.execute("ALTER TABLE events ADD COLUMN channel TEXT")
            # after the column, which a database of an earlier version gains just above
            db.execute("CREATE INDEX IF NOT EXISTS events_channel_block ON events(channel, block)")
            if version < SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextlib.contextmanager
    def _db(self):
        db = sqlite3.connect(self._uri, timeout=BUSY_TIMEOUT_S, isolation_level=None, uri=True)
        try:
            db.row_factory = sqlite3.Row
            # Switching a new database to WAL while another process (a sibling worker booting) does the
            # same answers "database is locked" at once, whatever the busy timeout: try again briefly — but
            # within the busy timeout in all (a database another process holds locked made each try wait the
            # whole timeout, fifty times over): then "database is locked" (the API's 503).
            deadline = time.monotonic() + BUSY_TIMEOUT_S
            while True:
                try:
                    db.execute("PRAGMA journal_mode=WAL")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() >= deadline:
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
        return self.add_events([(block, tx_id, payload, channel)])[0]

    def add_events(self, rows: list[tuple[int, str, dict, str | None]]) -> list[bool]:
        """Store the payloads of several transactions ``(block, tx_id, payload, channel)`` — a block's — in
        one database transaction; for each, False if it was already stored (a re-delivery)."""
        added: list[bool] = []
        with self.transaction() as db:
            for block, tx_id, payload, channel in rows:
                first = (payload.get("events") or [{}])[0]
                cur = db.execute(
                    "INSERT OR IGNORE INTO events (id, block, tx_id, authorisation_id, event_type, recorded_at, "
                    "payload, stored_at, channel) VALUES (?,?,?,?,?,?,?,?,?)",
                    (f"{block}:{tx_id}", block, tx_id, first.get("authorisation_id"), first.get("event_type"),
                     payload.get("recorded_at"), json.dumps(payload, separators=(",", ":"), ensure_ascii=False),
                     now_text(), channel))
                added.append(cur.rowcount == 1)
                if not added[-1] and channel is not None:
                    # stored by this gateway's listener while it served one channel (no name then):
                    # the listener of the channel that delivers it again names it
                    db.execute("UPDATE events SET channel = ? WHERE id = ? AND channel IS NULL",
                               (channel, f"{block}:{tx_id}"))
                if added[-1]:
                    for ev in payload.get("events") or []:
                        if ev.get("authorisation_id"):
                            db.execute("INSERT OR IGNORE INTO authorisations (authorisation_id, source, added_by, "
                                       "first_seen) VALUES (?, 'event', NULL, ?)",
                                       (ev["authorisation_id"], payload.get("recorded_at") or now_text()))
        return added

    def name_channel(self, channel: str) -> int:
        """Give ``channel`` to every stored event without one: those a listener stored while its gateway
        served that one channel only (see ``Live.start_listener``). How many were named."""
        with self._db() as db:
            return db.execute("UPDATE events SET channel = ? WHERE channel IS NULL", (channel,)).rowcount

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

    def has_events(self, channel: str | None = None) -> bool:
        """Whether an event of ``channel`` is stored (None: of the channel a gateway serves alone, stored without
        a name; a name it got when a second channel came counts too)."""
        with self._db() as db:
            if channel is None:
                return db.execute("SELECT 1 FROM events LIMIT 1").fetchone() is not None
            return db.execute("SELECT 1 FROM events WHERE channel = ? OR channel IS NULL LIMIT 1",
                              (channel,)).fetchone() is not None

    def newest(self, channel: str | None = None) -> tuple[int, str] | None:
        """(block, tx id) of the newest event stored of ``channel`` (as :meth:`has_events` counts them), or None."""
        with self._db() as db:
            if channel is None:
                row = db.execute("SELECT block, tx_id FROM events ORDER BY block DESC, seq DESC LIMIT 1").fetchone()
            else:
                row = db.execute("SELECT block, tx_id FROM events WHERE channel = ? OR channel IS NULL "
                                 "ORDER BY block DESC, seq DESC LIMIT 1", (channel,)).fetchone()
        return (row[0], row[1]) if row else None

    def last_seq(self) -> int:
        with self._db() as db:
            row = db.execute("SELECT max(seq) FROM events").fetchone()
        return row[0] or 0

    def seq_of(self, event_id: str | None) -> int | None:
        """The position after which to resume for a ``Last-Event-ID`` (:data:`POSITION`: ``<block>:<tx id>``,
        ``<block>:`` or ``<channel>/<block>:``); None if it is not one. An id the store does not know (e.g. a
        rebuilt store) resumes after its block — on a store of several channels, from the oldest item kept (an
        item id names no channel, and its block number says nothing of the others').

        Each answer is an index lookup (``events_channel_block``, per channel), as cheap at 100,000 items as at
        ten: a channel's blocks are stored in order, so its item with the greatest (block, seq) before a block is
        the last one stored before it, and its first item by (block, seq) after a block the first stored after it."""
        position = parse_position(event_id)
        if position is None:
            return None
        channel, block, tx_id = position
        with self._db() as db:
            if tx_id:
                row = db.execute("SELECT seq FROM events WHERE id = ?", (f"{block}:{tx_id}",)).fetchone()
                if row:
                    return row[0]
            if channel:
                # past the last item of that channel's blocks before ``block``: the items of other channels stored
                # before it were passed too, those stored after it were not
                row = db.execute("SELECT seq FROM events WHERE channel = ? AND block < ? ORDER BY block DESC, seq DESC "
                                 "LIMIT 1", (channel, block)).fetchone()
                if row:
                    return row[0]
                # none of that channel's items before it is stored (removed by the retention, or a position the
                # client made): from the oldest item kept, of any channel — an item again rather than one lost
                row = db.execute("SELECT min(seq) FROM events").fetchone()
                return row[0] - 1 if row[0] is not None else 0
            channels = self._channels(db)
            if tx_id and len(channels) > 1:
                # an item id the store no longer holds (removed by the retention) names no channel: its block number
                # says nothing of the other channels' blocks, whose items stored after it would be skipped — from the
                # oldest item kept, as for a channel's position above
                row = db.execute("SELECT min(seq) FROM events").fetchone()
                return row[0] - 1 if row[0] is not None else 0
            # the first item stored in a block after it, of whichever channel (a gateway of several channels given
            # a position without one, e.g. ``0:``): each channel's first, the earliest of them
            after = block if tx_id else block - 1
            firsts = [row[0] for channel in channels for row in db.execute(
                "SELECT seq FROM events WHERE channel IS ? AND block > ? ORDER BY block, seq LIMIT 1", (channel, after))]
            if firsts:
                return min(firsts) - 1
            row = db.execute("SELECT max(seq) FROM events").fetchone()
            return row[0] or 0

    @staticmethod
    def _channels(db) -> list[str | None]:
        """The channels of the stored items (None: items stored without one), one index lookup each."""
        channels: list[str | None] = [None] if db.execute("SELECT 1 FROM events WHERE channel IS NULL LIMIT 1").fetchone() else []
        row = db.execute("SELECT min(channel) FROM events WHERE channel IS NOT NULL").fetchone()
        while row[0] is not None:
            channels.append(row[0])
            row = db.execute("SELECT min(channel) FROM events WHERE channel > ?", (row[0],)).fetchone()
        return channels

    def prune(self, events_before: str | None, deliveries_before: str | None, chunk: int = 1000) -> tuple[int, int]:
        """Delete the feed's items stored before ``events_before`` — except the newest of each channel, which
        tells the listener that the database holds what its checkpoint stands for — and the webhook deliveries
        DELIVERED or FAILED before ``deliveries_before`` (PENDING ones never); None: nothing of that kind.
        Timestamps as :func:`now_text` writes them. In chunks, each its own transaction (writers wait briefly,
        never for the whole pruning). How many items and deliveries went."""
        events = deliveries = 0
        if events_before is not None:
            with self._db() as db:
                keep = {row[0] for channel in self._channels(db) for row in db.execute(
                    "SELECT seq FROM events WHERE channel IS ? ORDER BY block DESC, seq DESC LIMIT 1", (channel,))}
            last = 0
            while True:
                with self._db() as db:
                    seqs = [r[0] for r in db.execute("SELECT seq FROM events WHERE seq > ? AND stored_at < ? "
                                                     "ORDER BY seq LIMIT ?", (last, events_before, chunk))]
                    gone = [q for q in seqs if q not in keep]
                    if gone:
                        db.execute(f"DELETE FROM events WHERE seq IN ({','.join('?' * len(gone))})", gone)
                events += len(gone)
                if len(seqs) < chunk:
                    break
                last = seqs[-1]
        if deliveries_before is not None:
            with self._db() as db:
                deliveries = db.execute("DELETE FROM deliveries WHERE status IN ('DELIVERED', 'FAILED') "
                                        "AND created_at < ?", (deliveries_before,)).rowcount
        return events, deliveries

    def end_position(self) -> str:
        """The block position past the newest stored item (``0:`` for an empty store)."""
        with self._db() as db:
            row = db.execute("SELECT block, channel FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        return block_position(row[0] + 1, row[1]) if row else "0:"

    def events_of_types_after(self, seq: int, event_types: Iterable[str]) -> list[tuple[int, str, str | None]]:
        """``(seq, event_type, authorisation_id)`` of the stored events of ``event_types`` after position
        ``seq``, oldest first (index ``events_type``: as cheap as the events found)."""
        types = sorted(event_types)
        with self._db() as db:
            rows = db.execute(f"SELECT seq, event_type, authorisation_id FROM events WHERE event_type IN "
                              f"({','.join('?' * len(types))}) AND seq > ? ORDER BY seq", (*types, seq)).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

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

    # -- dashboard sessions signed out ---------------------------------------------------------------
    def end_session(self, sid: str, until: float) -> None:
        """The session ``sid`` is signed out: its cookie, valid until ``until``, is refused from now on by
        every worker (the cookie itself cannot be taken back from the browser that holds it)."""
        with self._db() as db:
            db.execute("DELETE FROM ended_sessions WHERE until < ?", (time.time(),))
            db.execute("INSERT OR REPLACE INTO ended_sessions (sid, until) VALUES (?, ?)", (sid, until))

    def session_ended(self, sid: str) -> bool:
        with self._db() as db:
            return db.execute("SELECT 1 FROM ended_sessions WHERE sid = ?", (sid,)).fetchone() is not None

    # -- where each transaction is (the trails' block numbers) -------------------------------------------------
    def blocks_of(self, tx_ids: list[str]) -> dict[str, tuple[str | None, int]]:
        """``{tx id: (channel, block)}`` of those of ``tx_ids`` the feed holds (its channel None on a gateway of
        one channel): every transaction of the contract carries a chaincode event, stored with its block — so a
        trail's block numbers are read here rather than asked of the peer one transaction at a time
        (:meth:`ipledger.gateway.service.LedgerService.with_blocks`)."""
        return {tx_id: (channel, int(block))
                for tx_id, channel, block in self._rows_of("SELECT tx_id, channel, block FROM events", tx_ids)}

    # -- endorsements (audit trail cache) ------------------------------------------------------------
    def endorsements_of(self, tx_ids: list[str]) -> dict[str, dict]:
        """``{tx id: creator, endorsers, validation code}`` of those of ``tx_ids`` the audit trail has cached."""
        return {tx_id: json.loads(info) for tx_id, info in self._rows_of("SELECT tx_id, info FROM endorsements", tx_ids)}

    def _rows_of(self, select: str, tx_ids: list[str]) -> list[tuple]:
        """The rows of ``select`` (a table keyed by ``tx_id``) for those of ``tx_ids`` it holds, in one connection,
        500 ids a statement (SQLite's bound on a statement's parameters)."""
        wanted, rows = sorted(set(tx_ids)), []
        with self._db() as db:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                rows += db.execute(f"{select} WHERE tx_id IN ({','.join('?' * len(chunk))})", chunk).fetchall()
        return rows

    def save_endorsement(self, tx_id: str, info: dict) -> None:
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO endorsements (tx_id, info) VALUES (?, ?)", (tx_id, json.dumps(info)))

    # -- used by ipledger.gateway.webhooks and the other users of this database ---------------------------------
    @contextlib.contextmanager
    def connection(self):
        with self._db() as db:
            yield db

    @contextlib.contextmanager
    def transaction(self):
        """A connection in one write transaction (``BEGIN IMMEDIATE``: the database's write lock from the start, so
        what it reads is not changed before it writes), committed when the block ends, rolled back if it raises."""
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")


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

