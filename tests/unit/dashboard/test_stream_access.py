"""An open live-feed stream lasts only as long as what opened it: revoking the API key, or signing the
dashboard session out, ends the caller's open streams at their next poll — nothing more is sent."""
from __future__ import annotations

from .conftest import AUTH, SITE1, SITE2, bearer, body
from .contract_ledger import wait_for
from .signin import form_token, sign_in
from .test_feed import sse_events

SSE = {"Accept": "text/event-stream"}


def _opened(response):
    """The stream's body, read past its opening (the retry delay and the position to resume from)."""
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    body = iter(response.response)
    assert next(body).startswith(b"retry:") and next(body).startswith(b"id:")
    return body


def _delivered(body) -> list[str]:
    text = b"".join(body).decode("utf-8")
    return [m["id"] for m in sse_events(text) if m.get("event") == "ledger-event"]


def _move(api, live, ledger, event_id: str) -> str:
    out = api.post(body("MoveGoods", event_id, authorisation_id=AUTH, lot_id="L2", quantity=7, from_site=SITE1,
                        to_site=SITE2), "OperatorMSP")
    wait_for(lambda: live.store.count() == len(ledger.events))
    return f"{out['block_number']}:{out['tx_id']}"


def _key_id(keystore, org: str, role: str) -> str:
    return next(k["key_id"] for k in keystore.list() if k["org"] == org and k["role"] == role)


def test_revoking_the_key_ends_its_open_streams(scenario, app, keys, keystore, api, live, ledger):
    client = app.test_client()
    revoked = _opened(client.get("/api/v1/events/stream", headers={**bearer(keys[("BrokerMSP", "viewer")]), **SSE}))
    kept = _opened(client.get("/api/v1/events/stream", headers={**bearer(keys[("CustomsMSP", "viewer")]), **SSE}))
    assert keystore.revoke(_key_id(keystore, "BrokerMSP", "viewer"))
    moved = _move(api, live, ledger, "move-after-revocation")
    assert _delivered(revoked) == []
    assert _delivered(kept) == [moved]           # another key's stream goes on


def test_signing_out_ends_the_sessions_open_streams(scenario, app, keys, api, live, ledger):
    browser = app.test_client()
    sign_in(browser, keys[("BrokerMSP", "viewer")])
    page = browser.get("/dashboard/events").get_data(as_text=True)
    stream = _opened(browser.get("/dashboard/stream", headers=SSE))
    other = app.test_client()                    # another session of the same key, still signed in
    sign_in(other, keys[("BrokerMSP", "viewer")])
    kept = _opened(other.get("/dashboard/stream", headers=SSE))
    assert browser.post("/dashboard/logout", data={"csrf": form_token(page)}).status_code == 302
    moved = _move(api, live, ledger, "move-after-sign-out")
    assert _delivered(stream) == []
    assert _delivered(kept) == [moved]
