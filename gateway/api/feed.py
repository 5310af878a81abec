"""The live feed: GET /api/v1/events/stream (Server-Sent Events), /api/v1/feed (JSON), and the
authorisations the gateway knows (/api/v1/dashboard/authorisations), all from the feed store the
chaincode-event listener fills (:mod:`ipledger.gateway.feed`)."""
from __future__ import annotations

import time
from typing import Callable

from flask import Response, jsonify, request

from ipledger.gateway.feed.sse import feed_page, peer_closed_check, sse_stream
from ipledger.gateway.feed.store import POSITION, parse_position
from ipledger.gateway.problems import Problem
from ipledger.gateway.api.common import (API_PREFIX, ID_PATTERNS, SMALL_BODY_BYTES, limit_param, live, path_id,
                                         read_json, require, state, visible_authorisations)
from ipledger.gateway.api.routes import READ_BODY, STREAM, Routes, parameter

ROUTES = Routes(API_PREFIX)
_EVENT_ID = {"type": "string", "pattern": f"^{POSITION.pattern}$"}


def caller_still_valid(principal, session_id: str | None = None,
                       session_ends_at: float | None = None) -> Callable[[], bool]:
    """Whether the caller of a stream may still read, asked on each poll of the feed: its API key still valid
    (a revoked key is refused on its next request; its open streams end too) and, for a stream of a
    dashboard session, the session neither signed out nor past its lifetime (``session_ends_at``, a
    ``time.time()``). Needs no request: the stream's body runs without one."""
    keys, store = state().keys, live().store

    def still_valid() -> bool:
        current = keys.active(principal.key_id)
        if current is None or current.org != principal.org:
            return False
        if session_ends_at is not None and time.time() >= session_ends_at:
            return False
        return session_id is None or not store.session_ended(session_id)
    return still_valid


def stream_response(principal, authorisation_id: str | None = None, session_id: str | None = None,
                    session_ends_at: float | None = None) -> Response:
    """The SSE response for ``principal`` (and dashboard session ``session_id``), within the caps on open
    streams (429 beyond: :mod:`ipledger.gateway.dashboard.streams`); its slot is freed when the response ends or is
    closed. It ends as soon as the key is revoked or the session signed out (:func:`caller_still_valid`)."""
    lv = live()
    if "text/event-stream" not in (request.headers.get("Accept") or ""):
        raise Problem(400, "bad-request", "this is a Server-Sent-Events stream: send 'Accept: text/event-stream'")
    last = request.headers.get("Last-Event-ID") or request.args.get("last_event_id") or None
    # a block number the feed can hold (signed 64 bits), as ?after= is checked: a larger one would not be a
    # position at all, and the stream would silently start at the newest item
    if last is not None and parse_position(last, POSITION) is None:
        raise Problem(400, "invalid-parameter", "Last-Event-ID must be a position of the feed, '<block>:<tx id>' or "
                      "'[<channel>/]<block>:' (a block number below 2^63)", extra={"parameter": "Last-Event-ID"})
    config = state().config
    lease = lv.streams.acquire(principal.key_id, session_id)
    try:
        body = sse_stream(lv.store, lv.visibility, principal.org, last, max_seconds=config.sse_max_seconds,
                          poll_seconds=config.sse_poll_seconds, stopping=lv.stopping,
                          authorisation_id=authorisation_id,
                          client_gone=peer_closed_check(request.environ.get("gunicorn.socket")),
                          still_valid=caller_still_valid(principal, session_id, session_ends_at))
        # no stream_with_context: the body needs nothing of the request, and must not hold its context
        response = Response(_releasing(body, lease), mimetype="text/event-stream")
        response.call_on_close(lease.release)  # the server closes the response, even one never read
    except BaseException:
        lease.release()
        raise
    response.headers["Cache-Control"] = "no-cache, no-store"
    response.headers["X-Accel-Buffering"] = "no"
    return response


def _releasing(body, lease):
    try:
        yield from body
    finally:
        lease.release()  # the stream ended (or the client went away)


@ROUTES.get(
    "/events/stream", id="streamEvents", permission="read",
    summary="Live ledger events (Server-Sent Events)",
    description="`text/event-stream` (send `Accept: text/event-stream`, else 400): one `ledger-event` per "
                "committed transaction of an authorisation the key's org may read, `id: <block>:<tx id>`, "
                "`data:` the chaincode event payload with its position. `Last-Event-ID` (header, or the "
                "`last_event_id` query parameter) resumes after that event; without it the stream starts "
                "at the newest event. Each response ends after a while; reconnect with Last-Event-ID. "
                "Open streams are capped (each holds a server thread): per API key (default 4, the key's "
                "dashboard sessions included), per dashboard session (2) and per server worker (half its "
                "threads); beyond, **429** `too-many-requests` (problem+json: `limit` = `api-key`, "
                "`session` or `worker`, `max_streams`) with `Retry-After`.",
    params=[parameter("authorisation_id", "query", {"type": "string", "pattern": ID_PATTERNS["authorisation_id"]},
                      "only this authorisation's events"),
            parameter("last_event_id", "query", _EVENT_ID, "resume after this event (as Last-Event-ID)")],
    ok={"200": ("the stream of ledger events", None)}, media="text/event-stream", problems=STREAM)
def events_stream():
    """Server-Sent Events: one ``ledger-event`` per transaction the caller's org may see."""
    principal = require("read")
    auth_id = request.args.get("authorisation_id")
    return stream_response(principal, path_id("authorisation_id", auth_id) if auth_id else None)


@ROUTES.get(
    "/feed", id="getFeed", permission="read",
    summary="Ledger events the gateway has received (JSON): the newest, or those after a position; `next` is the "
            "position to poll from (`after=<next>`), past the items the key's org may not see",
    params=[parameter("after", "query", _EVENT_ID, "events after this one (<block>:<tx id>), oldest first"),
            parameter("limit", "query", {"type": "string", "pattern": "^[0-9]{1,4}$"}, "at most this many (1-1000)")])
def feed():
    """The same items as JSON: newest first, or (``after=<block>:<tx>``) the ones after a position."""
    principal = require("read")
    lv = live()
    limit = limit_param()
    after = request.args.get("after")
    if after:
        seq = lv.store.seq_of(after.strip())
        if seq is None:
            raise Problem(400, "invalid-parameter", "'after' must be a position of the feed, '<block>:<tx id>' or "
                          "'[<channel>/]<block>:'", extra={"parameter": "after"})
        # past the items the caller may not see too: polling with ``next`` never sticks behind them
        items, position = feed_page(lv.store, lv.visibility, principal.org, seq, after.strip(), limit)
    else:
        items = lv.visibility.filter(principal.org, lv.store.latest(limit))
        position = items[0]["id"] if items else lv.store.end_position()
    return jsonify({"items": [{k: v for k, v in i.items() if k != "seq"} for i in items], "next": position})


@ROUTES.get(
    "/dashboard/authorisations", id="getKnownAuthorisations", permission="read",
    summary="Authorisation ids the gateway knows (seen in ledger events or added) that the key's org may read")
def known_authorisations():
    principal = require("read")
    return jsonify({"authorisations": visible_authorisations(principal.org)})


@ROUTES.post(
    "/dashboard/authorisations", id="addKnownAuthorisation", permission="read",
    summary="Make an authorisation id known to the gateway (`{\"authorisation_id\": …}`; it must be readable by "
            "the key's org)",
    body={"type": "object", "required": ["authorisation_id"], "additionalProperties": False,
          "properties": {"authorisation_id": {"type": "string", "pattern": ID_PATTERNS["authorisation_id"]}}},
    ok={"201": ("added", None), "200": ("already known", None)}, problems=READ_BODY)
def add_authorisation():
    """Make an authorisation id known to the gateway (if the caller may read it)."""
    principal = require("read")
    body = read_json(max_bytes=SMALL_BODY_BYTES)
    if not isinstance(body, dict) or not isinstance(body.get("authorisation_id"), str) or set(body) != {"authorisation_id"}:
        raise Problem(400, "bad-request", "the body must be {\"authorisation_id\": \"…\"} (no other member)")
    auth_id = path_id("authorisation_id", body["authorisation_id"])
    state().service.evaluate_json(principal.org, "GetAuthorisation", auth_id)  # 403/404 when not readable
    added = live().store.add_authorisation(auth_id, principal.org)
    return jsonify({"authorisation_id": auth_id, "added": added}), 201 if added else 200
