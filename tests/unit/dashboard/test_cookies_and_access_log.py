"""The dashboard's sessions and access log: one session cookie per organisation's gateway, sent to the pages only; every
request logged; a stream ends with its session's lifetime."""
from __future__ import annotations

import logging
import re
import time

from ipledger.gateway.app import create_app
from ipledger.gateway.auth import KeyStore
from ipledger.gateway.config import GatewayConfig
from ipledger.gateway.dashboard.ui import session_cookie_name

from .contract_ledger import ContractLedger
from .signin import form_token, sign_in


def test_two_organisations_gateways_on_one_host_keep_their_sessions(tmp_path):
    """scripts/up serves every organisation's gateway on 127.0.0.1, one port each: one browser, one cookie jar."""
    apps, keys = {}, {}
    for org in ("CustomsMSP", "BrokerMSP"):
        store = KeyStore(tmp_path / org / "api-keys.json")
        keys[org] = store.create(org, "viewer")[1]
        apps[org] = create_app(GatewayConfig(keys_file=store.path, nonce_key_file=tmp_path / org / "nonce.key",
                                             customs_msp="CustomsMSP", feed_org=org), ledger=ContractLedger())
    try:
        customs, broker = apps["CustomsMSP"].test_client(), apps["BrokerMSP"].test_client()
        broker._cookies = customs._cookies        # one browser, one host, two ports
        assert sign_in(customs, keys["CustomsMSP"]).status_code == 302
        assert customs.get("/dashboard/events").status_code == 200
        assert sign_in(broker, keys["BrokerMSP"]).status_code == 302
        assert customs.get("/dashboard/events").status_code == 200, "signing in to one gateway signed the other out"
        assert broker.get("/dashboard/events").status_code == 200
        # (the browser still sends both cookies to both ports of the host: gateway/README.md asks for a host name
        # per organisation's dashboard; each gateway reads its own cookie only)
        assert session_cookie_name("CustomsMSP") != session_cookie_name("BrokerMSP")
    finally:
        for app in apps.values():
            app.extensions["ipledger_live"].close()


def test_the_session_cookie_goes_to_the_pages_only(app, keys):
    r = sign_in(app.test_client(), keys[("CustomsMSP", "viewer")])
    cookie = next(v for v in r.headers.getlist("Set-Cookie") if v.startswith("ipledger_session"))
    assert "Path=/dashboard" in cookie and "Path=/;" not in cookie + ";"


def _access(caplog) -> list[dict]:
    return [r.__dict__ for r in caplog.records if r.name == "ipledger.gateway.access"]


def test_sign_ins_sign_outs_and_page_reads_are_logged_without_the_key(client, keys, caplog):
    caplog.set_level(logging.INFO)
    key = keys[("OperatorMSP", "viewer")]
    page = client.get("/dashboard/login")
    bad = client.post("/dashboard/login", data={"api_key": "ipk_0123456789ab_" + "A" * 43,
                                                "csrf": form_token(page.get_data(as_text=True))})
    assert bad.status_code == 401
    assert sign_in(client, key).status_code == 302
    page = client.get("/dashboard/events")
    assert page.status_code == 200
    client.post("/dashboard/logout", data={"csrf": form_token(page.get_data(as_text=True))})
    lines = _access(caplog)
    outcomes = [(r.get("outcome"), r["status"]) for r in lines if r.get("outcome")]
    assert outcomes == [("sign-in refused", 401), ("signed in", 302), ("signed out", 302)]
    key_id = key.split("_")[1]
    signed_in = next(r for r in lines if r.get("outcome") == "signed in")
    assert signed_in["key_id"] and signed_in["key_id"] in key and signed_in["route"] == "/dashboard/login"
    read = next(r for r in lines if r["route"].startswith("/dashboard/events"))
    assert (read["org"], read["status"]) == ("OperatorMSP", 200) and read["request_id"]
    assert all(key not in caplog.text for key in [key]) and key_id   # never the key itself


def test_signing_in_again_ends_the_session_the_browser_had(app, keys):
    b = app.test_client()
    sign_in(b, keys[("OperatorMSP", "viewer")])
    name = session_cookie_name(app.extensions["ipledger"].config.feed_org)
    old = b.get_cookie(name, path="/dashboard").value
    sign_in(b, keys[("OperatorMSP", "viewer")])
    assert b.get("/dashboard/events").status_code == 200
    copy = app.test_client()
    copy.set_cookie(name, old, path="/dashboard")
    assert copy.get("/dashboard/events").status_code == 302, "a copy of the earlier session's cookie still opens"


def test_a_dashboard_stream_ends_with_its_sessions_lifetime(app, keys, monkeypatch):
    from ipledger.gateway.api import feed
    b = app.test_client()
    sign_in(b, keys[("OperatorMSP", "viewer")])
    seen = {}
    real = feed.caller_still_valid

    def spy(principal, session_id=None, session_ends_at=None):
        seen["ends_at"] = session_ends_at
        return real(principal, session_id, session_ends_at)
    monkeypatch.setattr(feed, "caller_still_valid", spy)
    r = b.get("/dashboard/stream", headers={"Accept": "text/event-stream"})
    r.close()
    hours = app.extensions["ipledger"].config.session_hours
    assert abs(seen["ends_at"] - (time.time() + hours * 3600)) < 60
    with app.app_context():
        principal = app.extensions["ipledger"].keys.authenticate(keys[("OperatorMSP", "viewer")])
        assert real(principal, None, time.time() + 60)() is True
        assert real(principal, None, time.time() - 1)() is False


def test_metrics_are_never_kept_by_a_shared_cache(client, keys):
    r = client.get("/metrics", headers={"X-API-Key": keys[("OperatorMSP", "viewer")]})
    assert r.status_code == 200
    assert r.headers.get("Cache-Control") == "no-store"
    assert "X-API-Key" in r.headers.get("Vary", "") and "Authorization" in r.headers.get("Vary", "")


def test_a_keys_requests_over_its_cap_do_not_hold_the_workers_threads(tmp_path):
    """A request over its key's cap may wait a moment for a page being left to free its slot — one request of a
    key at a time, and only while the worker's streams and waiters leave it threads; the others are refused at
    once instead of each holding a thread for the settle time."""
    import threading

    from ipledger.gateway.dashboard.streams import StreamLimits
    from ipledger.gateway.feed.store import FeedStore
    from ipledger.gateway.problems import Problem
    limits = StreamLimits(FeedStore(tmp_path / "f.sqlite"), per_key=1, per_session=0, per_worker=2,
                          stream_seconds=25, settle_seconds=1.5)
    limits.acquire("k1")                      # the key's one stream
    held, lock = [], threading.Lock()

    def one():
        started = time.monotonic()
        try:
            limits.acquire("k1")
        except Problem:
            pass
        with lock:
            held.append(time.monotonic() - started)
    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(held) == 20 and sum(h > 1.0 for h in held) <= 1, sorted(held)[-3:]
    assert limits._waiting == set()


def test_every_msp_id_gets_a_cookie_of_its_own():
    names = {org: session_cookie_name(org) for org in ("CustomsMSP", "Org_1MSP", "Org 1;MSP", "Org 2;MSP")}
    assert names["CustomsMSP"] == "ipledger_session_CustomsMSP" and names["Org_1MSP"] == "ipledger_session_Org_1MSP"
    assert len(set(names.values())) == 4
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", n) for n in names.values())
