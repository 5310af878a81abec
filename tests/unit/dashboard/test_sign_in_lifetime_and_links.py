"""The dashboard's web security: a session ends with its lifetime however busy it is, no text of a page's address is
shown as the gateway's own, links stay on their lot, bad query parameters are clear 400s."""
from __future__ import annotations

import re
import time

from .conftest import AUTH, AUTH2, place
from .contract_ledger import wait_for
from .signin import form_token, sign_in

SSE = {"Accept": "text/event-stream"}


def _signed_in(app, keys, org="BrokerMSP"):
    browser = app.test_client()
    assert sign_in(browser, keys[(org, "viewer")]).status_code == 302
    return browser


def _notices(html: str) -> list[str]:
    return re.findall(r'<p class="(?:ok|error)"(?: id="[^"]*")? role="(?:status|alert)">(.*?)</p>', html, re.S)


# -- a session lasts session_hours from signing in ---------------------------------------------------------------

def test_a_session_ends_its_lifetime_after_signing_in_however_often_it_is_used(app, keys, monkeypatch):
    """Each request re-issued the cookie, signed anew (Flask's default refresh of a permanent session): a session
    in use — an open page's live timeline reconnects every ``sse_max_seconds`` — never reached its 8 hours (the
    README: "lasts 8 h"). It ends ``session_hours`` after signing in, whatever happened since."""
    clock = [time.time()]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    start = clock[0]
    browser = _signed_in(app, keys)
    for hours in (1, 3, 5, 7, 7.9):
        clock[0] = start + hours * 3600
        assert browser.get("/dashboard/events").status_code == 200, hours
    clock[0] = start + 8.1 * 3600
    r = browser.get("/dashboard/events")
    assert r.status_code == 302 and r.headers["Location"].startswith("/dashboard/login")
    assert browser.get("/dashboard/stream", headers=SSE).status_code == 401
    # signing in again is a new session of a full lifetime
    assert sign_in(browser, keys[("BrokerMSP", "viewer")]).status_code == 302
    assert browser.get("/dashboard/events").status_code == 200


def test_a_page_view_does_not_extend_the_cookie(app, keys):
    browser = _signed_in(app, keys)
    r = browser.get("/dashboard/events")
    assert r.status_code == 200 and "Set-Cookie" not in r.headers


# -- no words of the address on the index ------------------------------------------------------------------------

def test_the_index_shows_no_text_taken_from_its_address(app, keys):
    """``?added=`` and ``?add_error=`` were shown as they came, in the page's status and alert lines: a link to the
    genuine dashboard could make it say anything ("your key leaked: mail it to …")."""
    browser = _signed_in(app, keys)
    html = browser.get("/dashboard/", query_string={
        "added": "Call the helpdesk on +33 1 00 00 00 00", "add_error": "Your key leaked: send it to x@evil.example"}
    ).get_data(as_text=True)
    assert "helpdesk" not in html and "evil.example" not in html
    assert _notices(html) == []


def test_adding_an_authorisation_still_says_what_happened_and_not_whether_a_hidden_one_exists(scenario, app, keys):
    """The add form answered "FRIPO000002: Not permitted" for another holder's authorisation and "Not found" for
    none: what the authorisation page hides (404 for both). One answer for both now."""
    browser = _signed_in(app, keys)
    page = browser.get("/dashboard/").get_data(as_text=True)

    def add(auth_id):
        r = browser.post("/dashboard/authorisations", data={"authorisation_id": auth_id, "csrf": form_token(page)})
        assert r.status_code == 302, r.status_code
        return _notices(browser.get(r.headers["Location"]).get_data(as_text=True))

    assert add("not an id") == ["not a well-formed authorisation id (a country code of 2 capital letters, IPO, then 1 "
                                "to 29 capital letters or digits, e.g. FRIPO000123)"]
    hidden, missing = add(AUTH2), add("FRIPO000099")
    assert hidden == [f"{AUTH2}: not found, or BrokerMSP may not read it"]
    assert missing == ["FRIPO000099: not found, or BrokerMSP may not read it"]
    assert add(AUTH) == [f"{AUTH} added."]


# -- a lot id is one path segment in every link ------------------------------------------------------------------

def test_a_lot_id_of_dot_segments_links_to_its_own_lot(scenario, app, keys, api, live, ledger):
    """The contract's lot id pattern allows '/' and '.': a broker's lot "X/../../alerts" was linked as
    ``/dashboard/lots/X/../../alerts``, which a browser resolves to ``/dashboard/alerts`` (the download links on the
    lot's page likewise). The '/' of an id is sent as %2F: the link names that lot, and reaches it."""
    lot_id = "X/../../alerts"
    api.post(place(lot_id, 5, "26FR000110000003R6"), "BrokerMSP")
    wait_for(lambda: live.store.count() == len(ledger.events))
    browser = _signed_in(app, keys, "CustomsMSP")
    html = browser.get(f"/dashboard/authorisations/{AUTH}").get_data(as_text=True)
    links = re.findall(r'<a href="(/dashboard/lots/[^"]*)"', html)
    assert "/dashboard/lots/L1" in links and "/dashboard/lots/X%2F..%2F..%2Falerts" in links
    assert not any("/../" in link for link in links)
    lot = browser.get("/dashboard/lots/X%2F..%2F..%2Falerts")
    text = lot.get_data(as_text=True)
    assert lot.status_code == 200 and f"<h1>Lot {lot_id}</h1>" in text
    downloads = re.findall(r'href="(/dashboard/lots/[^"]*/audit\.[a-z]+)"', text)
    assert downloads == ["/dashboard/lots/X%2F..%2F..%2Falerts/audit.csv",
                         "/dashboard/lots/X%2F..%2F..%2Falerts/audit.json"]
    trail = browser.get(downloads[1])
    assert trail.status_code == 200 and trail.get_json()["lot_id"] == lot_id


# -- bad query parameters ----------------------------------------------------------------------------------------

def test_a_malformed_as_of_is_a_400_page_not_todays_alerts(app, keys):
    """``/dashboard/alerts?as_of=garbage`` showed today's alerts as if nothing had been asked; ``as_of=20240101``
    (which ``date.fromisoformat`` takes) went to the contract and came back as an "Invalid event"."""
    browser = _signed_in(app, keys)
    for bad in ("garbage", "20240101", "2024-W01-1", "2024-02-30", "9999-12-31"):
        r = browser.get("/dashboard/alerts", query_string={"as_of": bad})
        html = r.get_data(as_text=True)
        assert r.status_code == 400 and r.mimetype == "text/html", bad
        assert "<h1>Invalid parameter</h1>" in html and "as_of" in html, bad
    assert browser.get("/dashboard/alerts", query_string={"as_of": ""}).status_code == 200   # the empty form
    ok = browser.get("/dashboard/alerts", query_string={"as_of": "2026-06-01"}).get_data(as_text=True)
    assert "as of 2026-06-01" in ok


def test_a_malformed_authorisation_id_of_the_stream_is_a_400_problem(app, keys):
    """It was a 404 "The requested URL was not found on the server"; the API's stream answers 400."""
    browser = _signed_in(app, keys)
    r = browser.get("/dashboard/stream", query_string={"authorisation_id": "fripo<1>"}, headers=SSE)
    assert r.status_code == 400 and r.mimetype == "application/problem+json"
    assert r.get_json()["parameter"] == "authorisation_id"


def test_a_405_page_says_which_methods_the_page_allows(app, keys):
    """The dashboard's 405 page dropped the ``Allow`` header every 405 must carry (RFC 9110 §15.5.6)."""
    browser = _signed_in(app, keys)
    r = browser.delete("/dashboard/logout")
    assert r.status_code == 405
    assert {m.strip() for m in r.headers.get("Allow", "").split(",")} >= {"POST"}, dict(r.headers)
