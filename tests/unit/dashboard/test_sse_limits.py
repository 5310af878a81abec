"""Live-feed (SSE) responses are capped per API key, per dashboard session and per worker process, so that
viewers cannot take every worker thread and starve submits (issue 13, point 7)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from ipledger.gateway.app import create_app

from .conftest import AUTH, bearer, body
from .signin import sign_in

STREAM = {"Accept": "text/event-stream"}
PROBLEM_TYPE = "https://ipledger.example/problems/too-many-requests"


def open_stream(client, key=None, path="/api/v1/events/stream"):
    """Start a stream response and keep it open (not read, not closed)."""
    headers = {**STREAM, **(bearer(key) if key else {})}
    return client.get(path, headers=headers, buffered=False)


def assert_429(r, limit: str):
    assert r.status_code == 429, r.get_data(as_text=True)
    assert r.mimetype == "application/problem+json"
    problem = r.get_json()
    assert problem["type"] == PROBLEM_TYPE and problem["status"] == 429 and problem["limit"] == limit
    assert isinstance(problem["max_streams"], int) and problem["detail"]
    assert r.headers["Retry-After"].isdigit() and int(r.headers["Retry-After"]) >= 1
    return problem


def login(app, key):
    client = app.test_client()
    r = sign_in(client, key)
    assert r.status_code == 302
    return client


def test_streams_per_api_key_are_capped_with_a_problem_and_retry_after(scenario, app, keys):
    client = app.test_client()
    key = keys[("BrokerMSP", "viewer")]
    held = [open_stream(client, key) for _ in range(4)]            # default: 4 per API key
    assert [r.status_code for r in held] == [200] * 4
    problem = assert_429(open_stream(client, key), "api-key")
    assert problem["max_streams"] == 4 and "API key" in problem["detail"]
    assert key not in str(problem)                                  # no secret in the answer
    held.pop().close()                                              # a stream ends: its slot is free again
    again = open_stream(client, key)
    assert again.status_code == 200
    held.append(again)
    for r in held:
        r.close()


def test_dashboard_sessions_are_capped_per_session_and_count_for_their_key(scenario, app, keys):
    key = keys[("OperatorMSP", "viewer")]
    first, second = login(app, key), login(app, key)
    held = [open_stream(first, path="/dashboard/stream") for _ in range(2)]   # default: 2 per session
    assert [r.status_code for r in held] == [200, 200]
    assert_429(open_stream(first, path="/dashboard/stream"), "session")
    held += [open_stream(second, path="/dashboard/stream") for _ in range(2)]  # another session of the key
    assert [r.status_code for r in held] == [200] * 4
    assert_429(open_stream(app.test_client(), key), "api-key")       # the key's 4 are taken
    for r in held:
        r.close()
    assert open_stream(first, path="/dashboard/stream").status_code == 200


def test_the_worker_cap_keeps_threads_for_submits(config, ledger, keys, api):
    app = create_app(config.with_(sse_max_per_worker=2), ledger=ledger)
    try:
        client = app.test_client()
        held = [open_stream(client, keys[("CustomsMSP", "viewer")]), open_stream(client, keys[("BrokerMSP", "viewer")])]
        assert [r.status_code for r in held] == [200, 200]
        problem = assert_429(open_stream(client, keys[("OperatorMSP", "viewer")]), "worker")
        assert problem["max_streams"] == 2
        # submits are still served
        r = client.post("/api/v1/events", json=body("SetParameters", "params-x", parameters={"warn_days": 30}),
                        headers=bearer(keys[("CustomsMSP", "clerk")]))
        assert r.status_code == 201, r.get_data(as_text=True)
        held.pop().close()
        held.append(open_stream(client, keys[("OperatorMSP", "viewer")]))
        assert held[-1].status_code == 200
        for r in held:
            r.close()
    finally:
        app.extensions["ipledger_live"].close()


def test_a_stream_that_ended_frees_its_slot_even_if_never_closed(scenario, app, keys):
    client = app.test_client()
    key = keys[("CustomsMSP", "viewer")]
    for _ in range(6):                       # each response runs to its end (sse_max_seconds) and is read
        r = open_stream(client, key, path=f"/api/v1/events/stream?authorisation_id={AUTH}")
        assert r.status_code == 200
        r.get_data()


def test_slots_of_a_dead_process_or_an_expired_stream_do_not_count(scenario, app, live, keys):
    """The count is shared by the workers (the feed database); a worker killed with streams open, or a stream
    whose time is long past, must not hold slots."""
    import os
    import time
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    key = keys[("BrokerMSP", "viewer")]
    key_id = key.split("_")[1]
    with live.store.connection() as db:
        for n in range(4):
            db.execute("INSERT INTO sse_streams (lease_id, key_id, session, pid, expires_at) VALUES (?,?,?,?,?)",
                       (f"stale-{n}", key_id, None, int(dead.stdout) if n % 2 else os.getpid(),
                        time.time() + (3600 if n % 2 else -1)))
    r = open_stream(app.test_client(), key)
    assert r.status_code == 200, r.get_data(as_text=True)
    r.close()


@pytest.mark.parametrize("path", ["/api/v1/events/stream", "/dashboard/stream"])
def test_refusals_of_a_stream_are_problems(app, path):
    r = app.test_client().get(path, headers=STREAM)
    assert r.status_code == 401 and r.mimetype == "application/problem+json"


def test_a_stream_ends_as_soon_as_its_client_has_gone(config, ledger, keys):
    """A browser that navigates away closes the connection: the response ends at once (not after
    sse_max_seconds), freeing its worker thread and its slot."""
    import socket
    import time

    from ipledger.gateway.feed.sse import peer_closed_check

    assert peer_closed_check(None) is None
    app = create_app(config.with_(sse_max_seconds=30.0, sse_max_per_key=1), ledger=ledger)
    try:
        client = app.test_client()
        key = keys[("CustomsMSP", "viewer")]
        server_side, browser_side = socket.socketpair()
        r = client.get("/api/v1/events/stream", headers={**STREAM, **bearer(key)}, buffered=False,
                       environ_overrides={"gunicorn.socket": server_side})
        assert r.status_code == 200
        assert peer_closed_check(server_side)() is False           # open, nothing to read
        assert_429(open_stream(client, key), "api-key")
        browser_side.close()
        started = time.monotonic()
        r.get_data()                                                # the body ends …
        assert time.monotonic() - started < 5                       # … long before 30 s
        second = open_stream(client, key)                           # and the slot is free
        assert second.status_code == 200
        second.close()
        server_side.close()
    finally:
        app.extensions["ipledger_live"].close()


def test_a_slot_freed_while_the_next_stream_waits_is_taken_not_refused(tmp_path):
    """Leaving a page for another: the old page's stream frees its slot when its response notices the client
    has gone (within a poll of the feed); the new page's request waits that long instead of a 429."""
    from ipledger.gateway.dashboard.streams import StreamLimits
    from ipledger.gateway.feed.store import FeedStore
    from ipledger.gateway.problems import Problem

    store = FeedStore(tmp_path / "db.sqlite")
    waits = []

    def sleep(seconds):
        waits.append(seconds)
        if len(waits) == 2:
            old.release()             # the old page's response noticed its client left

    limits = StreamLimits(store, per_key=0, per_session=1, per_worker=0, stream_seconds=60, settle_seconds=5,
                          sleep=sleep)
    old = limits.acquire("key1", "session-a")
    new = limits.acquire("key1", "session-a")
    assert len(waits) == 2
    new.release()
    # still over the cap when the wait is over: refused, as without the wait
    held = limits.acquire("key1", "session-a")
    strict = StreamLimits(store, per_key=0, per_session=1, per_worker=0, stream_seconds=60, settle_seconds=0)
    with pytest.raises(Problem) as refused:
        strict.acquire("key1", "session-a")
    assert refused.value.status == 429 and refused.value.extra["limit"] == "session"
    held.release()


def test_a_request_still_over_its_cap_waits_the_settle_time_in_steps_then_is_refused(tmp_path):
    """The settle wait is counted in the limiter's own sleeps (injectable): with a sleep that returns at once
    (and a clock that does not move), it is the same number of steps and ends without real time passing."""
    from ipledger.gateway.dashboard.streams import SETTLE_STEP_S, StreamLimits
    from ipledger.gateway.feed.store import FeedStore
    from ipledger.gateway.problems import Problem

    waits = []
    limits = StreamLimits(FeedStore(tmp_path / "db.sqlite"), per_key=0, per_session=1, per_worker=0,
                          stream_seconds=60, settle_seconds=1.5, sleep=waits.append, clock=lambda: 1_000_000.0)
    held = limits.acquire("key1", "session-a")
    with pytest.raises(Problem) as refused:
        limits.acquire("key1", "session-a")
    assert refused.value.status == 429 and refused.value.extra["limit"] == "session"
    assert waits == [SETTLE_STEP_S] * 15
    held.release()


def test_the_settle_wait_also_ends_when_its_time_is_over(tmp_path):
    """Each look at the shared store can itself be slow (its lock): the wait ends at settle_seconds of the
    limiter's clock even if fewer steps were slept."""
    from ipledger.gateway.dashboard.streams import SETTLE_STEP_S, StreamLimits
    from ipledger.gateway.feed.store import FeedStore
    from ipledger.gateway.problems import Problem

    now = [1_000_000.0]

    def clock():
        now[0] += 0.25            # every reading of the clock finds a quarter of a second gone
        return now[0]

    waits = []
    limits = StreamLimits(FeedStore(tmp_path / "db.sqlite"), per_key=0, per_session=1, per_worker=0,
                          stream_seconds=60, settle_seconds=1.5, sleep=waits.append, clock=clock)
    held = limits.acquire("key1", "session-a")
    with pytest.raises(Problem) as refused:
        limits.acquire("key1", "session-a")
    assert refused.value.status == 429
    assert 0 < len(waits) < 15 and set(waits) == {SETTLE_STEP_S}
    held.release()
