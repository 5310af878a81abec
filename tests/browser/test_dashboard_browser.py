"""The dashboard in a real headless Chromium, against the real Fabric network.

A gunicorn gateway in a subprocess (tests/integration/test_dashboard.py's ``Gateway``); the scenario goes in
through the REST API: customs grant FRIPO000091 (the broker holds a mandate) and FRIPO000092 (no mandate),
the operator places three lots and processes part of one. Then, in Chromium:

* customs sign in, see both authorisations and every lot with its balance, open FRIPO000091; an event
  submitted through the REST API appears in the live timeline without a reload (Server-Sent Events);
* the broker signs in and sees FRIPO000091 and its lots, but not FRIPO000092 — not in the list, not in
  the live timeline, not by direct URL (404) — and never a customs value, not in the page's downloads either;
* a key revoked while its page is open: the live feed stops, the page says so, the session is over.

No page may log a console error (a CSP violation would be one). Screenshots go to the artefact directory
(see conftest.py). Uses its own authorisation ids, lots and MRNs: the session's ledger is shared.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import requests

from ipledger.gateway.auth import KeyStore
from ipledger.gateway.config import keys_file_of
from tests.browser.conftest import Console, screenshot
from tests.integration.test_dashboard import Gateway
from tests.integration.test_gateway_api import (HOLDER, RETREADED, SITE1, SITE2, ev, grant, register_parties,
                                                wait_committed_everywhere)

try:
    from playwright.sync_api import expect
except ImportError:  # the chromium fixture fails every test with instructions; collection must not break
    expect = None

pytestmark = [pytest.mark.fabric, pytest.mark.browser]

ORGS = ("CustomsMSP", "OperatorMSP", "BrokerMSP")
AUTH_MANDATED, AUTH_OTHER = "FRIPO000091", "FRIPO000092"
CUSTOMS_VALUE = "31415.92"          # private: customs and the holder read it, the broker only its hash
LOTS = {  # lot: (authorisation, MRN, placed)
    "BRW91-A": (AUTH_MANDATED, "26FR000110000091R9", 1000),
    "BRW91-B": (AUTH_MANDATED, "26FR000110000092R8", 600),
    "BRW92-A": (AUTH_OTHER, "26FR000110000093R7", 700),
}
PROCESSED = 200                     # of BRW91-A, into batch BRW91-P1
LIVE_WAIT_MS = 30_000               # an event must reach the open page within this


def post(env, body, org, status=201) -> dict:
    r = requests.post(env["urls"][org] + "/api/v1/events", json=body,
                      headers={"Authorization": f"Bearer {env['keys'][org]}"}, timeout=120)
    assert r.status_code == status, f"{body['type']} as {org}: {r.status_code} {r.text}"
    out = r.json()
    if out.get("block_number"):   # the next read or event may go through another organisation's gateway and peer
        wait_committed_everywhere(env["net"], out["block_number"])
    return out


def get(env, path, org="CustomsMSP") -> requests.Response:
    return requests.get(env["urls"][org] + path, headers={"Authorization": f"Bearer {env['keys'][org]}"}, timeout=60)


def place(lot_id) -> dict:
    auth_id, mrn, qty = LOTS[lot_id]
    return ev("PlaceUnderProcedure", f"brw-place-{lot_id}", authorisation_id=auth_id, lot_id=lot_id, mrn=mrn,
              item_no=1, procedure="5100", cn="40122000", description="used tyres", quantity=qty, unit="p/st",
              net_mass_g=qty * 9000, origin="MA", site=SITE1,
              commercial={"customs_value": {"amount": CUSTOMS_VALUE, "currency": "EUR"}})


def move(event_id, auth_id, lot_id, qty) -> dict:
    return ev("MoveGoods", event_id, authorisation_id=auth_id, lot_id=lot_id, quantity=qty, from_site=SITE1,
              to_site=SITE2)


def wait_for_feed(env, tx_id, org="CustomsMSP", timeout=30) -> None:
    """Until the gateway's feed listener has stored the transaction (what the pages list comes from it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = get(env, "/api/v1/feed?limit=50", org).json()["items"]
        if any(i["tx_id"] == tx_id for i in items):
            return
        time.sleep(0.3)
    pytest.fail(f"transaction {tx_id} not in the gateway's feed after {timeout} s")


@pytest.fixture(scope="module")
def env(fabric_network, ipledger_chaincode, tmp_path_factory):
    state = fabric_network.layout.root
    keys = {org: KeyStore(keys_file_of(state, org)).create(org, "clerk", f"browser test {org}")[1]
            for org in ORGS}   # each organisation's key in its own gateway
    tmp = tmp_path_factory.mktemp("browser-gateway")
    gws = {org: Gateway(state, tmp, org) for org in ORGS}
    try:
        for gw in gws.values():
            gw.start()
        env = {"urls": {org: gw.url for org, gw in gws.items()}, "keys": keys, "gws": gws, "state": state,
               "net": fabric_network}
        for body, org in register_parties("brw-parties"):
            post(env, body, org)
        post(env, grant(AUTH_MANDATED, event_id="brw-grant-91"), "CustomsMSP")
        post(env, grant(AUTH_OTHER, event_id="brw-grant-92", broker_mandates=[]), "CustomsMSP")
        for lot_id in LOTS:
            post(env, place(lot_id), "OperatorMSP")
        last = post(env, ev("RecordProcessing", "brw-proc-1", authorisation_id=AUTH_MANDATED, operation_id="BRW-OP1",
                            site=SITE1, inputs=[{"lot_id": "BRW91-A", "qty": PROCESSED}],
                            outputs=[{"batch_id": "BRW91-P1", "cn": RETREADED, "qty": PROCESSED, "unit": "p/st",
                                      "kind": "MAIN"}]), "OperatorMSP")
        for org in ORGS:   # each gateway's own feed listener
            wait_for_feed(env, last["tx_id"], org)
        yield env
    finally:
        for gw in gws.values():
            gw.stop()


def sign_in(context, env, org, key=None):
    """A new page of ``context`` signed in as ``org`` through the login form; (page, console)."""
    page = context.new_page()
    console = Console(page)
    page.goto(env["urls"][org] + "/dashboard")                               # as typed: no trailing slash
    expect(page).to_have_url(re.compile(r"/dashboard/login\?next="))        # not signed in: the login form
    page.fill("#api_key", key or env["keys"][org])
    page.click("form.login button[type=submit]")
    expect(page).to_have_url(env["urls"][org] + "/dashboard/")
    expect(page.get_by_test_id("org")).to_have_text(org)
    return page, console


def row_of(page, table, text):
    return page.locator(f"#{table} tbody tr").filter(has_text=text)


def test_customs_see_both_authorisations_and_every_lot_with_its_balance(browser_context, env, artefacts):
    page, console = sign_in(browser_context, env, "CustomsMSP")

    auths = page.locator("#authorisations tbody tr")
    mandated, other = row_of(page, "authorisations", AUTH_MANDATED), row_of(page, "authorisations", AUTH_OTHER)
    expect(mandated).to_have_count(1)
    expect(other).to_have_count(1)
    # under the procedure: 1,000 + 600 placed, 200 processed; FRIPO000092: 700 — of a 5,000 p/st ceiling
    expect(mandated).to_contain_text(HOLDER)
    expect(mandated).to_contain_text("ACTIVE")
    expect(mandated).to_contain_text("180 days")
    expect(mandated).to_contain_text("40122000: 1400 / 5000 p/st (28 %)")
    expect(other).to_contain_text("40122000: 700 / 5000 p/st (14 %)")
    assert auths.count() >= 2
    screenshot(page, artefacts, "customs-authorisations")

    mandated.get_by_role("link", name=AUTH_MANDATED).click()
    expect(page).to_have_url(env["urls"]["CustomsMSP"] + f"/dashboard/authorisations/{AUTH_MANDATED}")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Authorisation {AUTH_MANDATED}")
    lots = page.locator("#lots tbody tr")
    expect(lots).to_have_count(2)
    a, b = page.locator('#lots tr[data-lot="BRW91-A"]'), page.locator('#lots tr[data-lot="BRW91-B"]')
    expect(a.locator("td.balance")).to_have_text("800 p/st")
    expect(a).to_contain_text(LOTS["BRW91-A"][1])
    expect(a).to_contain_text("OPEN")
    expect(b.locator("td.balance")).to_have_text("600 p/st")
    expect(page.locator("#lots")).not_to_contain_text("BRW92-A")
    expect(page.locator("#balances")).to_contain_text("1400")          # in stock, goods code 40122000
    expect(page.locator("#timeline")).to_contain_text("brw-proc-1")    # the event timeline, from the feed
    expect(page.locator("svg.chart").first).to_be_visible()
    screenshot(page, artefacts, "customs-authorisation")

    a.get_by_role("link", name="BRW91-A").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Lot BRW91-A")
    trail = page.locator("#trail tbody tr")                             # (the products made from it are a table too)
    expect(trail).to_have_count(2)                                     # placement, processing
    expect(trail.first).to_contain_text("PlaceUnderProcedure")
    expect(trail.first).to_contain_text("CustomsMSP")                  # an endorser, read from the block
    screenshot(page, artefacts, "customs-lot")
    with page.expect_download() as download:                           # the page's link, with the session
        page.get_by_role("link", name="CSV", exact=True).click()
    assert download.value.suggested_filename == "audit-lot-BRW91-A.csv"
    trail_csv = Path(download.value.path()).read_text()
    assert "PlaceUnderProcedure" in trail_csv and "RecordProcessing" in trail_csv

    page.goto(env["urls"]["CustomsMSP"] + f"/dashboard/authorisations/{AUTH_OTHER}")
    expect(page.locator('#lots tr[data-lot="BRW92-A"] td.balance')).to_have_text("700 p/st")
    page.get_by_role("link", name="Event timeline").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Event timeline")
    expect(page.locator("#timeline")).to_contain_text("brw-place-BRW92-A")
    expect(page.locator("#live-badge")).to_have_text("live")
    page.get_by_role("link", name="Open alerts").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Open alerts")
    assert console.unexpected() == []


def test_an_event_submitted_through_the_api_appears_live_without_reload(browser_context, env, artefacts):
    page, console = sign_in(browser_context, env, "CustomsMSP")
    streams = []                                                       # the EventSource's requests
    page.on("request", lambda r: streams.append(r) if "/dashboard/stream" in r.url else None)
    page.goto(env["urls"]["CustomsMSP"] + f"/dashboard/authorisations/{AUTH_MANDATED}")
    expect(page.locator("#live-badge")).to_have_text("live")           # the EventSource is connected
    page.evaluate("window.__ipledgerNoReload = 'still here'")
    rows_before = page.locator("#timeline tbody tr").count()

    out = post(env, move("brw-move-live", AUTH_MANDATED, "BRW91-B", 100), "OperatorMSP")
    row = page.locator(f'#timeline tbody tr[data-id="{out["block_number"]}:{out["tx_id"]}"]')
    expect(row).to_have_count(1, timeout=LIVE_WAIT_MS)
    expect(row).to_have_class(re.compile(r"\bnew\b"))                  # added by live.js, not by the server
    expect(row).to_contain_text("MoveGoods brw-move-live")
    expect(row).to_contain_text("BRW91-B")
    expect(row).to_contain_text("OperatorMSP")
    expect(row.locator("td").nth(1)).to_have_text(str(out["block_number"]))
    assert page.locator("#timeline tbody tr").first.get_attribute("data-id") == f"{out['block_number']}:{out['tx_id']}"
    assert page.locator("#timeline tbody tr").count() == rows_before + 1
    assert page.evaluate("window.__ipledgerNoReload") == "still here"  # the same document: no navigation
    expect(row.locator("td").first).to_contain_text("New")               # in words, not by its colour alone
    # told to a screen reader once for the burst (grouped, never moving the focus)
    expect(page.locator("#live-status")).to_have_text("1 new event", timeout=LIVE_WAIT_MS)
    screenshot(page, artefacts, "customs-live-timeline")

    # each stream response ends after IPLEDGER_SSE_MAX_SECONDS (20 s here): the browser reconnects by itself,
    # resumes after the last event it got (Last-Event-ID), and the next event still arrives, once
    # (a reconnection before that event, which a loaded machine may cause, resumes from the page's position)
    resumed = f"{out['block_number']}:{out['tx_id']}"
    deadline = time.monotonic() + 45
    while not any(r.all_headers().get("last-event-id") == resumed for r in streams) and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    assert any(r.all_headers().get("last-event-id") == resumed for r in streams), \
        f"the EventSource did not reconnect from the event it got: {[(r.url, r.all_headers().get('last-event-id')) for r in streams]}"
    expect(page.locator("#live-badge")).to_have_text("live")
    again = post(env, move("brw-move-live-2", AUTH_MANDATED, "BRW91-B", 50), "OperatorMSP")
    expect(page.locator(f'#timeline tbody tr[data-id="{again["block_number"]}:{again["tx_id"]}"]')).to_have_count(
        1, timeout=LIVE_WAIT_MS)
    assert page.locator("#timeline tbody tr").count() == rows_before + 2        # nothing twice
    assert page.evaluate("window.__ipledgerNoReload") == "still here"

    # paused (WCAG 2.2.2): the rows wait, counted, and come on resuming
    toggle = page.get_by_role("button", name="Pause live updates")
    toggle.click()
    expect(page.get_by_role("button", name="Resume live updates")).to_have_attribute("aria-pressed", "true")
    third = post(env, move("brw-move-live-3", AUTH_MANDATED, "BRW91-B", 25), "OperatorMSP")
    expect(page.locator("#live-badge")).to_have_text("live updates paused: 1 new event waits", timeout=LIVE_WAIT_MS)
    assert page.locator("#timeline tbody tr").count() == rows_before + 2
    page.get_by_role("button", name="Resume live updates").click()
    expect(page.locator(f'#timeline tbody tr[data-id="{third["block_number"]}:{third["tx_id"]}"]')).to_have_count(1)
    expect(page.locator("#live-badge")).to_have_text("live")
    assert console.unexpected() == []


def test_broker_sees_only_the_mandated_authorisation_and_no_customs_value(browser_context, env, artefacts):
    # what the contract answers the broker through the REST API: the hash of the commercial data, no value
    assert get(env, "/api/v1/lots/BRW91-A").json()["commercial"]["customs_value"]["amount"] == CUSTOMS_VALUE
    as_broker = get(env, "/api/v1/lots/BRW91-A", "BrokerMSP").json()
    assert "commercial" not in as_broker and len(as_broker["commercial_hash"]) == 64
    assert get(env, "/api/v1/lots/BRW92-A", "BrokerMSP").status_code == 404   # as if there were none

    page, console = sign_in(browser_context, env, "BrokerMSP")
    expect(row_of(page, "authorisations", AUTH_MANDATED)).to_have_count(1)
    expect(row_of(page, "authorisations", AUTH_MANDATED)).to_contain_text("40122000: 1400 / 5000 p/st")
    expect(page.locator("#authorisations")).not_to_contain_text(AUTH_OTHER)
    expect(page.locator("#timeline")).to_contain_text("brw-proc-1")
    body = page.locator("body")
    expect(body).not_to_contain_text(AUTH_OTHER)                      # nor in the latest events
    expect(body).not_to_contain_text("BRW92-A")

    # live: an event of FRIPO000092 never reaches the broker's page; the next one of FRIPO000091 does
    expect(page.locator("#live-badge")).to_have_text("live")
    hidden = post(env, move("brw-move-hidden", AUTH_OTHER, "BRW92-A", 50), "OperatorMSP")
    shown = post(env, move("brw-move-shown", AUTH_MANDATED, "BRW91-A", 10), "OperatorMSP")
    expect(page.locator(f'#timeline tr[data-id="{shown["block_number"]}:{shown["tx_id"]}"]')).to_have_count(
        1, timeout=LIVE_WAIT_MS)
    expect(page.locator(f'#timeline tr[data-id="{hidden["block_number"]}:{hidden["tx_id"]}"]')).to_have_count(0)
    expect(body).not_to_contain_text("brw-move-hidden")
    screenshot(page, artefacts, "broker-authorisations")

    page.goto(env["urls"]["BrokerMSP"] + f"/dashboard/authorisations/{AUTH_MANDATED}")
    expect(page.locator('#lots tr[data-lot="BRW91-A"] td.balance')).to_have_text("800 p/st")
    expect(page.locator('#lots tr[data-lot="BRW91-B"] td.balance')).to_have_text("600 p/st")
    expect(body).not_to_contain_text(CUSTOMS_VALUE)
    screenshot(page, artefacts, "broker-authorisation")
    # the page's downloads, with the session: the broker's documents (the API's for its key), no customs value
    here = f"/dashboard/authorisations/{AUTH_MANDATED}"
    for document, saved_as in (("bill-of-discharge.csv", f"bill-of-discharge-{AUTH_MANDATED}-now.csv"),
                               ("bill-of-discharge.pdf", f"bill-of-discharge-{AUTH_MANDATED}-now.pdf"),
                               ("audit.csv", f"audit-{AUTH_MANDATED}.csv")):
        with page.expect_download() as download:
            page.locator(f'a[href="{here}/{document}"]').click()
        assert download.value.suggested_filename == saved_as
        data = Path(download.value.path()).read_bytes()
        assert data and CUSTOMS_VALUE.encode() not in data, document
        if document == "bill-of-discharge.csv":
            assert b"BRW91-A" in data and b"BRW92-A" not in data
    page.goto(env["urls"]["BrokerMSP"] + "/dashboard/lots/BRW91-A")
    expect(page.get_by_role("heading", level=1)).to_have_text("Lot BRW91-A")
    expect(body).not_to_contain_text(CUSTOMS_VALUE)
    expect(body).not_to_contain_text("31415")
    assert console.unexpected() == []

    # by direct URL: not found (the broker cannot tell it from an authorisation that does not exist)
    refused = {}
    for path in (f"/dashboard/authorisations/{AUTH_OTHER}", "/dashboard/lots/BRW92-A"):
        response = page.goto(env["urls"]["BrokerMSP"] + path)
        refused[path] = response.status
        expect(page.get_by_role("heading", level=1)).to_have_text("Not found")   # a dashboard page,
        expect(page.get_by_test_id("org")).to_have_text("BrokerMSP")               # still signed in,
        expect(page.get_by_role("link", name="Back to the authorisations")).to_be_visible()  # a way back
        expect(body).not_to_contain_text("BRW92-A")
        expect(body).not_to_contain_text(CUSTOMS_VALUE)
    screenshot(page, artefacts, "broker-other-lot-refused")
    for document in ("bill-of-discharge.pdf", "audit.csv"):          # its downloads: refused, as the API refuses
        response = page.request.get(env["urls"]["BrokerMSP"] + f"/dashboard/authorisations/{AUTH_OTHER}/{document}")
        assert response.status in (403, 404) and "content-disposition" not in response.headers, document
        assert CUSTOMS_VALUE not in response.text() and "BRW92-A" not in response.text(), document
    assert refused == {f"/dashboard/authorisations/{AUTH_OTHER}": 404, "/dashboard/lots/BRW92-A": 404}
    assert console.unexpected(allowed=[env["urls"]["BrokerMSP"] + p for p in refused]) == []

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/dashboard/login$"))
    page.goto(env["urls"]["BrokerMSP"] + f"/dashboard/authorisations/{AUTH_MANDATED}")
    expect(page).to_have_url(re.compile(r"/dashboard/login\?next="))      # signed out: the session is gone


def test_a_revoked_key_ends_the_session_and_the_open_page_says_live_updates_stopped(browser_context, env):
    store = KeyStore(keys_file_of(env["state"], "OperatorMSP"))
    key_id, key = store.create("OperatorMSP", "viewer", "browser test, revoked while signed in")
    page, console = sign_in(browser_context, env, "OperatorMSP", key)
    page.goto(env["urls"]["OperatorMSP"] + f"/dashboard/authorisations/{AUTH_MANDATED}")
    expect(page.locator('#lots tr[data-lot="BRW91-A"] td.balance')).to_have_text(re.compile(r" p/st$"))
    badge = page.locator("#live-badge")
    expect(badge).to_have_text("live")
    assert store.revoke(key_id)
    # the stream response ends within IPLEDGER_SSE_MAX_SECONDS (20 s); the reconnection is refused (401) and
    # the browser gives up: the page must say so rather than "reconnecting…" for ever
    expect(badge).to_have_text("live updates stopped: reload the page", timeout=45_000)
    page.reload()
    expect(page).to_have_url(re.compile(r"/dashboard/login\?next="))         # the session ended with the key
    assert console.unexpected(allowed=[env["urls"]["OperatorMSP"] + "/dashboard/stream"]) == []
