"""The Server-Sent-Events body of the live feed.

The SSE responses of every worker read the feed database (``seq`` order = block order); each item's SSE
``id`` is ``<block>:<tx id>`` and ``Last-Event-ID`` resumes after it. Each response shows only the items
its organisation may see (:class:`~ipledger.gateway.feed.visibility.Visibility`).
"""
from __future__ import annotations

import itertools
import json
import logging
import socket
import ssl
import threading
import time
from typing import Callable, Iterator

from ipledger.gateway.feed.store import FeedStore, position_after
from ipledger.gateway.feed.visibility import Visibility
from ipledger.gateway.problems import Problem

log = logging.getLogger("ipledger.gateway.feed")


def sse_message(item: dict) -> str:
    data = json.dumps({k: v for k, v in item.items() if k != "seq"}, separators=(",", ":"), ensure_ascii=False)
    return f"id: {item['id']}\nevent: ledger-event\ndata: {data}\n\n"


def sse_stream(store: FeedStore, visibility: Visibility, org: str, last_event_id: str | None, *,
               max_seconds: float, poll_seconds: float, stopping: threading.Event | None = None,
               authorisation_id: str | None = None, clock=time.monotonic, sleep=time.sleep,
               client_gone: Callable[[], bool] | None = None, keepalive_seconds: float = 5.0,
               still_valid: Callable[[], bool] | None = None) -> Iterator[str]:
    """The SSE body for ``org``: items after ``last_event_id`` (or, without one, from now on), visible
    to ``org``, each once, in block order. Ends after ``max_seconds`` (the client reconnects), or as soon
    as ``client_gone()`` says the client has closed the connection, or ``still_valid()`` that the caller
    may no longer read (its API key revoked, its dashboard session signed out): both are asked on each
    poll, before anything more is sent. A comment every ``keepalive_seconds``
    without an item: a client that went away is noticed at the latest on the second write after, so its
    worker thread (and its slot among the capped streams) is not held for the rest of ``max_seconds``.
    While the ledger cannot say what ``org`` may see (its peer unreachable: a Problem from the visibility check),
    nothing is sent and the position does not move: the stream keeps alive and asks again at the next poll (the
    response has begun; an exception out of it would cut the connection with a traceback, on every reconnection)."""
    start = store.seq_of(last_event_id)
    yield "retry: 1000\n\n"
    if start is None:
        start = store.last_seq()
        # give the client a position to resume from, so that a reconnection misses nothing
        try:
            resume = _resume_position(store, visibility, org, authorisation_id)
        except Problem as problem:
            _unavailable(org, problem)
            resume = store.end_position()   # names no transaction: after what is stored now, where this starts
        yield f"id: {resume}\n\n"
    seq = start
    deadline = clock() + max_seconds
    last_write = clock()
    passed = None   # the last item passed over unseen since the last position written
    warned = False  # the ledger's unavailability logged once per stream
    while clock() < deadline and not (stopping is not None and stopping.is_set()):
        if (client_gone is not None and client_gone()) or (still_valid is not None and not still_valid()):
            return
        items = store.events_after(seq, limit=200)
        try:
            shown = _shown(visibility, org, authorisation_id, items)
        except Problem as problem:   # the same items again at the next poll, once the ledger answers
            warned = warned or _unavailable(org, problem)
            if clock() - last_write > keepalive_seconds:
                yield ": keep-alive\n\n"
                last_write = clock()
            sleep(poll_seconds)
            continue
        for item in items:
            seq = item["seq"]
            if item["id"] in shown:
                yield sse_message(shown[item["id"]])
                last_write, passed = clock(), None
            else:
                passed = item
        if not items:
            if clock() - last_write > keepalive_seconds:
                # caught up (a block is stored whole): the keep-alive moves the client's position past
                # the items it may not see, so that a reconnection does not read them again
                yield f"id: {position_after(passed)}\n\n" if passed is not None else ": keep-alive\n\n"
                last_write, passed = clock(), None
            sleep(poll_seconds)


def _unavailable(org: str, problem: Problem) -> bool:
    log.warning("live feed: what %s may see cannot be read now (%s); the stream waits", org, problem.name,
                extra={"org": org, "problem_type": problem.name})
    return True


def _shown(visibility: Visibility, org: str, authorisation_id: str | None, items: list[dict]) -> dict[str, dict]:
    """The ``items`` the stream sends, by id, as ``org`` may see them: of its authorisation (if it has one),
    visible to ``org`` — judged together, one look at the feed store's permission changes for the whole page."""
    wanted = [i for i in items if not authorisation_id or i.get("authorisation_id") == authorisation_id]
    return {i["id"]: i for i in visibility.filter(org, wanted)} if wanted else {}


def _resume_position(store: FeedStore, visibility: Visibility, org: str, authorisation_id: str | None,
                     scan: int = 1000, page: int = 200) -> str:
    """Where a client that came without ``Last-Event-ID`` resumes: the newest item it may see, looked for
    among the newest ``scan`` items only (a page at a time); else the end of the feed as a block position
    (``<block>:``, which names no transaction it may not see); ``0:`` for an empty feed. The cost does not
    grow with the feed."""
    newest = itertools.islice(_newest_first(store, authorisation_id, page), scan)
    while batch := list(itertools.islice(newest, page)):
        visible = visibility.filter(org, batch)
        if visible:
            return visible[0]["id"]
    return store.end_position()


def feed_page(store: FeedStore, visibility: Visibility, org: str, seq: int, after: str, limit: int,
              scan: int = 5000) -> tuple[list[dict], str]:
    """(items, next) of ``GET /api/v1/feed?after=…``: the first ``limit`` items after position ``seq`` that
    ``org`` may see, and the position to ask from next. Items it may not see are passed over — at most about
    ``scan`` of them per call, then up to the end of their block — and ``next`` is then a block position
    (``<block>:``, naming no transaction it may not see) after them: a poller never sticks behind a page of
    them, nor misses an item. ``after`` unchanged when nothing follows."""
    shown: list[dict] = []
    last: dict | None = None    # the last item passed (shown or not)
    scanned = 0
    while len(shown) < limit:
        items = store.events_after(seq, limit=200)
        if not items:
            break
        visible = {i["id"]: i for i in visibility.filter(org, items)}   # as org may see them
        for item in items:
            if scanned >= scan and last is not None and \
                    (item["block_number"], item.get("channel")) != (last["block_number"], last.get("channel")):
                break
            seq, last, scanned = item["seq"], item, scanned + 1
            if item["id"] in visible:
                shown.append(visible[item["id"]])
                if len(shown) == limit:
                    break
        else:
            continue
        break
    if last is None:
        return shown, after
    if shown and last["id"] == shown[-1]["id"]:
        return shown, last["id"]
    return shown, position_after(last)   # a block is stored whole: past every item of it


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
