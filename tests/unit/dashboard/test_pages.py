"""The dashboard pages: login (session cookie), what each org sees, adding an authorisation, charts."""
from __future__ import annotations

import re

from ipledger.gateway.dashboard.ui import session_cookie_name

from .conftest import AUTH, AUTH2
from .signin import form_token, sign_in


def login(client, key):
    return sign_in(client, key)


def csrf(html: str) -> str:
    return form_token(html)


def test_login_sets_a_strict_httponly_session_and_never_the_key(scenario, app, keys):
    client = app.test_client()
    r = client.get("/dashboard/")
    assert r.status_code == 302 and r.headers["Location"].startswith("/dashboard/login")
    r = login(client, "ipk_000000000000_" + "x" * 43)
    assert r.status_code == 401 and "Unknown or revoked API key" in r.get_data(as_text=True)
    key = keys[("CustomsMSP", "viewer")]
    r = login(client, key)
    assert r.status_code == 302 and r.headers["Location"] == "/dashboard/"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert key.split("_", 2)[2] not in cookie  # the secret (base64url may contain "_")
    page = client.get("/dashboard/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "CustomsMSP" in html
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert f">{AUTH}</a>" in html and f">{AUTH2}</a>" in html
    assert "4700 / 5000 p/st (94 %)" in html      # the contract's decimal string, as the alerts show it


def test_lots_balances_alerts_and_charts_of_an_authorisation(scenario, app, keys):
    client = app.test_client()
    login(client, keys[("OperatorMSP", "viewer")])
    html = client.get(f"/dashboard/authorisations/{AUTH}").get_data(as_text=True)
    rows = re.findall(r'<tr data-lot="([^"]+)">.*?class="balance">([^<]+)<', html, re.S)
    assert rows == [("L1", "500 p/st"), ("L2", "4200 p/st")]
    assert "26FR000110000001R8" in html
    # balances per goods code: input 40122000 in stock 4700, product 40121200 exited 495 by 3151
    assert re.search(r"<td>INPUT</td><td>40122000</td><td>p/st</td><td>5200</td><td>4700</td>\s*<td>500</td>", html)
    assert "495 (3151)" in html
    # alerts
    assert "YieldDeviation" in html and "CeilingNear" in html
    # charts: quantity under the procedure (last point 4700, ceiling line) and yield 1 vs 0.99
    assert '<svg class="chart" role="img"' in html and "now 4700 p/st" in html and "ceiling 5000" in html
    assert re.search(r"<td>OP1/40121200</td><td>1(\.0)?</td><td>0\.99</td>", html)
    # the timeline shows the events of the authorisation
    assert html.count("<tr data-id=") == 6   # grant, place L1, move, process, exit, place L2


def test_broker_sees_only_what_it_may(scenario, app, keys):
    client = app.test_client()
    login(client, keys[("BrokerMSP", "viewer")])
    html = client.get("/dashboard/").get_data(as_text=True)
    assert f">{AUTH}</a>" in html and AUTH2 not in html
    assert client.get(f"/dashboard/authorisations/{AUTH2}").status_code == 404
    events = client.get("/dashboard/events").get_data(as_text=True)
    assert AUTH2 not in events and "place-L1" in events
    alerts = client.get("/dashboard/alerts").get_data(as_text=True)
    assert "CeilingNear" in alerts and AUTH2 not in alerts
    # the broker sees the lot but never the customs value
    lot = client.get("/dashboard/lots/L1").get_data(as_text=True)
    assert "25000" not in lot and "PlaceUnderProcedure" in lot
    # adding an authorisation it may not read is refused and nothing is added
    page = client.get("/dashboard/").get_data(as_text=True)
    r = client.post("/dashboard/authorisations", data={"authorisation_id": AUTH2, "csrf": csrf(page)})
    assert "add_error" in r.headers["Location"]


def test_add_authorisation_by_id_needs_csrf_and_read_access(app, keys, api, live):
    from .conftest import grant
    api.post(grant("FRIPO000077"), "CustomsMSP")   # no listener: the gateway has not seen it
    client = app.test_client()
    login(client, keys[("CustomsMSP", "viewer")])
    page = client.get("/dashboard/").get_data(as_text=True)
    assert "FRIPO000077" not in page
    assert client.post("/dashboard/authorisations", data={"authorisation_id": "FRIPO000077"}).status_code == 400
    r = client.post("/dashboard/authorisations", data={"authorisation_id": "FRIPO000077", "csrf": csrf(page)})
    assert r.status_code == 302
    assert ">FRIPO000077</a>" in client.get("/dashboard/").get_data(as_text=True)
    assert [a["source"] for a in live.store.authorisation_ids()] == ["manual"]


def test_revoked_key_ends_the_session(scenario, app, keys, keystore):
    client = app.test_client()
    key = keys[("OperatorMSP", "viewer")]
    login(client, key)
    assert client.get("/dashboard/").status_code == 200
    keystore.revoke(key.split("_")[1])
    assert client.get("/dashboard/").status_code == 302
    assert client.get("/dashboard/stream").status_code == 401


def test_logout(scenario, app, keys):
    client = app.test_client()
    login(client, keys[("OperatorMSP", "viewer")])
    page = client.get("/dashboard/").get_data(as_text=True)
    name = session_cookie_name(app.extensions["ipledger"].config.feed_org)
    kept = client.get_cookie(name, path="/dashboard").value   # a copy of the cookie, kept by whoever got it
    r = client.post("/dashboard/logout", data={"csrf": csrf(page)})
    assert r.status_code == 302
    assert client.get("/dashboard/").status_code == 302
    # the session is over on the gateway's side, not only in the browser that signed out
    other = app.test_client()
    other.set_cookie(name, kept, path="/dashboard")
    assert other.get("/dashboard/").status_code == 302
    assert other.get("/dashboard/stream").status_code == 401
    # a new sign-in is a new session
    login(other, keys[("OperatorMSP", "viewer")])
    assert other.get("/dashboard/").status_code == 200


def test_customs_sees_the_channel_members_and_no_one_else_does(app, keys):
    client = app.test_client()
    login(client, keys[("CustomsMSP", "viewer")])
    page = client.get("/dashboard/members")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert re.findall(r'<th scope="row">([A-Za-z]+MSP)</th>\s*<td>(\w+)</td>', html) == [
        ("BrokerMSP", "application"), ("CustomsMSP", "application"), ("OperatorMSP", "application"),
        ("OrdererMSP", "orderer")]
    assert '<strong data-testid="admins-policy">MAJORITY Admins</strong>' in html
    assert len(re.findall(r'<code class="fingerprint">[0-9a-f]{64}</code>', html)) == 4
    assert 'href="/dashboard/members"' in client.get("/dashboard/").get_data(as_text=True)
    for org in ("OperatorMSP", "BrokerMSP"):
        other = app.test_client()
        login(other, keys[(org, "viewer")])
        refused = other.get("/dashboard/members")
        assert refused.status_code == 403 and "shown to customs only" in refused.get_data(as_text=True)
        assert 'href="/dashboard/members"' not in other.get("/dashboard/").get_data(as_text=True)


def test_the_login_form_needs_its_own_token_so_another_site_cannot_sign_a_browser_in(app, keys):
    """Login CSRF: a page elsewhere posting its own key to the form would sign the user's browser in as
    another organisation. Without the token of the form this browser opened, the key is not even checked."""
    key = keys[("CustomsMSP", "viewer")]
    browser = app.test_client()
    forged = browser.post("/dashboard/login", data={"api_key": key})
    assert forged.status_code == 400 and "The sign-in form has expired" in forged.get_data(as_text=True)
    assert browser.get("/dashboard/").status_code == 302                        # not signed in
    victim, attacker = app.test_client(), app.test_client()
    victim.get("/dashboard/login")
    token = form_token(attacker.get("/dashboard/login").get_data(as_text=True))  # the attacker's own form
    r = victim.post("/dashboard/login", data={"api_key": key, "csrf": token})
    assert r.status_code == 400
    assert victim.get("/dashboard/").status_code == 302                         # still signed out
    # the refused page carries a fresh form: signing in from it works
    again = victim.post("/dashboard/login", data={"api_key": key, "csrf": form_token(r.get_data(as_text=True))})
    assert again.status_code == 302 and victim.get("/dashboard/").status_code == 200
    assert sign_in(app.test_client(), "not-a-key").status_code == 401


def test_the_session_cookie_is_secure_when_the_dashboard_is_served_over_https(app, keys):
    key = keys[("CustomsMSP", "viewer")]
    plain = sign_in(app.test_client(), key)
    assert "Secure" not in plain.headers["Set-Cookie"]
    tls = sign_in(app.test_client(), key, base_url="https://localhost")
    assert tls.status_code == 302 and "; Secure" in tls.headers["Set-Cookie"]


def test_signing_in_goes_on_to_a_dashboard_page_only_and_never_fails_on_a_crafted_next(app, keys):
    """``next`` is the caller's: a line break in it was a 500 after the session had been opened (the redirect's
    header value), and paths that a browser resolves elsewhere (``..``, ``%2e%2e``, ``//``, ``\\``) were sent on
    as they came. Only one of the dashboard's own paths is followed; anything else goes to the index."""
    key = keys[("CustomsMSP", "viewer")]

    def after(next_):
        browser = app.test_client()
        page = browser.get("/dashboard/login")
        r = browser.post("/dashboard/login", query_string={"next": next_},
                         data={"api_key": key, "csrf": form_token(page.get_data(as_text=True))})
        assert r.status_code == 302, (next_, r.status_code)
        assert browser.get("/dashboard/").status_code == 200   # signed in either way
        return r.headers["Location"]

    assert after("/dashboard/authorisations/FRIPO000001") == "/dashboard/authorisations/FRIPO000001"
    assert after("/dashboard/lots/OP1/2") == "/dashboard/lots/OP1/2"
    for crafted in ("/dashboard/\r\nX-Evil: 1", "/dashboard/\t/evil.example", "/dashboard/../..//evil.example",
                    "/dashboard/%2e%2e/%2E%2E//evil.example", "/dashboard//evil.example", "/dashboard/\\\\evil.example",
                    "https://evil.example/dashboard/", "//evil.example/dashboard/", "/dashboard/\u202e",
                    "/dashboard/alerts?x=1"):
        assert after(crafted) == "/dashboard/", crafted


def test_a_form_token_with_a_non_ascii_character_is_refused_not_a_500(app, keys, api, live):
    """``hmac.compare_digest`` raises TypeError on a text with a non-ASCII character: a forged form
    (``csrf=é``) was a 500 on the sign-in, sign-out and add forms. It is the stale-form answer (400), and
    nothing changes."""
    from .conftest import grant
    api.post(grant("FRIPO000077"), "CustomsMSP")
    browser = app.test_client()
    browser.get("/dashboard/login")
    r = browser.post("/dashboard/login", data={"api_key": keys[("CustomsMSP", "viewer")], "csrf": "é"})
    assert r.status_code == 400 and "The sign-in form has expired" in r.get_data(as_text=True)
    assert browser.get("/dashboard/").status_code == 302                       # not signed in
    login(browser, keys[("CustomsMSP", "viewer")])
    for forged in ("é", "\u2028" * 32, "\U0001f600"):
        r = browser.post("/dashboard/authorisations", data={"authorisation_id": "FRIPO000077", "csrf": forged})
        assert r.status_code == 400, forged
        assert browser.post("/dashboard/logout", data={"csrf": forged}).status_code == 400
    assert live.store.authorisation_ids() == []                                # nothing added
    assert browser.get("/dashboard/").status_code == 200                       # still signed in


def test_the_webhook_signature_check_of_receivers_refuses_any_header_without_raising():
    from ipledger.gateway.webhooks import sign, verify
    secret, body, now = "s" * 32, b'{"alert_id": "a"}', 1_800_000_000
    assert verify(secret, body, sign(secret, body, now), str(now), now=now)
    for header in ("sha256=é", "\U0001f600", "", None, sign(secret, body + b" ", now), sign(secret, body, now - 1)):
        assert not verify(secret, body, header, str(now), now=now)
    for stamp in (None, "", "-5", "1e9", "１８００００００００", "9" * 40, f"{now} ", now - 301):
        assert not verify(secret, body, sign(secret, body, now), stamp, now=now)
