"""Text one party writes on the ledger, shown to another by the dashboard and the reports. Free text of the events (a
lot's description, a suspension's reason, a control's findings; a certificate subject in the members page) may carry
HTML, SVG, bidi overrides (U+202E), terminal sequences or spreadsheet formulas; identifiers, codes and quantities are
matched by the contract's schemas. Each test names what it shows; the pages come from the contract-backed ledger of
conftest.py, signed in as a browser does."""
from __future__ import annotations

import csv
import io
import re
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from markupsafe import escape

from ipledger.chaincode.testing.mrns import placement_mrn
from ipledger.gateway import audit, csvsafe, reports
from ipledger.gateway.dashboard import charts, ui
from ipledger.gateway.feed.sse import sse_message

from .conftest import AUTH, SITE1, body, day, place
from .signin import browser, form_token, page, sign_in

TEMPLATES = Path(ui.__file__).parent / "templates" / "dashboard"
RLO, LRI = "\u202e", "\u2066"   # right-to-left override, left-to-right isolate
# The contract refuses direction controls in an event's text; right-to-left letters
# still reorder what follows them on screen, and ledgers recorded before may hold the controls
ALEF = "\u05d0"
HOSTILE = '<script>alert(1)</script><svg onload=alert(2)>"\'><img src=x onerror=alert(3)>'


def isolated(html: str, char: str) -> bool:
    """Whether every ``char`` of the page is inside a ``<bdi>`` element (its direction kept from its neighbours)."""
    found = False
    for m in re.finditer(re.escape(char), html):
        found = True
        before = html[:m.start()]
        if before.rfind("<bdi>") <= before.rfind("</bdi>"):
            return False
    return found


def suspend(api, reason):
    api.post(body("SuspendAuthorisation", "suspend-1", authorisation_id=AUTH, reason=reason, until=day(30)),
             "CustomsMSP")


def control(api, findings):
    api.post(body("RecordControl", "control-1", authorisation_id=AUTH, site=SITE1, findings=findings,
                  counted=[{"lot_id": "L2", "qty": 4100}]), "CustomsMSP")


# -- HTML and SVG from the ledger ------------------------------------------------------------------------------

def test_hostile_free_text_is_escaped_on_every_page(scenario, api, app, keys):
    lot = place("LH1", 5, placement_mrn(9301))
    lot["description"] = HOSTILE
    api.post(lot, "OperatorMSP")
    control(api, HOSTILE)
    suspend(api, HOSTILE)
    for org in ("CustomsMSP", "OperatorMSP"):
        for path in ("/dashboard/", f"/dashboard/authorisations/{AUTH}", "/dashboard/lots/LH1", "/dashboard/alerts",
                     "/dashboard/events"):
            html = page(app, keys, path, org)
            assert "<script>alert" not in html and "<svg onload" not in html and "<img src=x" not in html, path
    lot_page = page(app, keys, "/dashboard/lots/LH1")
    assert str(escape(HOSTILE)) in lot_page                          # shown, as text
    assert str(escape(HOSTILE)) in page(app, keys, "/dashboard/alerts")


def test_charts_escape_every_text_they_draw():
    hostile = '"/><script>alert(1)</script>'
    svg = charts.quantity_chart([("2026-01-01T00:00:00Z", 5)], hostile, 10, "2026-02-01T00:00:00Z", goods=hostile,
                                ident=hostile)
    assert "<script" not in svg and 'aria-labelledby="&quot;' in svg
    svg = charts.yield_chart([{"label": hostile, "authorised": "1", "actual": hostile.replace(hostile, "0.5")}])
    assert "<script" not in svg


def test_the_templates_have_no_inline_script_style_or_handler_and_no_unescaped_output():
    """What the CSP allows is enough for the pages, so it need not be loosened: no inline script, no style attribute,
    no event handler; the only ``|safe`` is the charts' SVG (escaped by charts.py); no link built from data but the
    dashboard's own ``url_for`` and fixed ``/api/v1/…`` paths."""
    for path in TEMPLATES.glob("*.html"):
        text = path.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), path.name
        assert not re.search(r"\sstyle=|<style|\son[a-z]+=", text), path.name
        for m in re.finditer(r"\|\s*safe", text):
            assert text[max(0, m.start() - 12):m.start()].strip().endswith(("c.svg", "yield_svg")), path.name
        for m in re.finditer(r'(?:href|src)="([^"]*)"', text):
            assert m.group(1).startswith(("{{ url_for(", "/api/v1/", "#", "{{ c.href }}")), (path.name, m.group(1))


# -- bidi: text that reorders what is next to it -----------------------------------------------------------------

def test_a_bidi_override_in_an_alert_detail_does_not_reorder_the_other_details(scenario, api, app, keys):
    """A suspension's reason (customs' text) and a control's findings are details of alerts shown in one cell with
    the other details — a date, a book and counted quantity. An unterminated U+202E (or RTL letters) in the text
    reversed what followed it on screen ("until: 2027-01-04" read "40-10-7202 :litnu"): each value is isolated."""
    suspend(api, f"see {ALEF}letter")
    control(api, f"recount {ALEF}pending")
    for path in ("/dashboard/alerts", f"/dashboard/authorisations/{AUTH}"):
        for org in ("CustomsMSP", "OperatorMSP"):
            assert isolated(page(app, keys, path, org), ALEF), (path, org)


def test_right_to_left_text_in_a_lot_description_stays_in_the_description(scenario, api, app, keys):
    lot = place("LB1", 5, placement_mrn(9302))
    lot["description"] = f"tyres {ALEF} 5000 kg"
    api.post(lot, "OperatorMSP")
    html = page(app, keys, "/dashboard/lots/LB1")
    assert isolated(html, ALEF)


def test_a_bidi_control_in_a_certificate_subject_does_not_reorder_its_fingerprint(app, keys, monkeypatch):
    """Customs' members page: an organisation's root CA subject (the organisation's own text, in the channel
    configuration) is shown above its fingerprint and expiry, in one block."""
    members = {"channel": "ipchannel", "config_block": 3, "sequence": 7, "admins_policy": "MAJORITY Admins",
               "organisations": [{"msp_id": "OperatorMSP", "role": "application", "description": f"plant {RLO}B",
                                  "anchor_peers": ["peer0:7051"], "admins": "OR(...)",
                                  "root_certificates": [{"subject": f"CN=ca {RLO}x", "sha256": "ab" * 32,
                                                         "not_after": "2030-01-01T00:00:00Z"}]}]}
    monkeypatch.setattr(app.extensions["ipledger"].service, "channel_members", lambda org: members)
    html = page(app, keys, "/dashboard/members")
    assert html.count(RLO) == 2 and isolated(html, RLO)


def test_identifiers_shown_next_to_quantities_cannot_hold_bidi_or_invisible_characters(scenario, api):
    """Lot, batch, operation and event ids, MRNs, codes, sites and units are matched by the schemas (ASCII): an id
    with U+202E, a zero-width space or a newline is refused before it reaches the ledger."""
    for lot_id in (f"L{RLO}9", "L\u200b9", "L9\n", "L\u0661"):
        r = api.client.post("/api/v1/events", json=place(lot_id, 1, placement_mrn(9303)),
                            headers={"Authorization": f"Bearer {api.keys[('OperatorMSP', 'clerk')]}"})
        assert r.status_code == 400, lot_id


# -- CSP, CSRF, the session cookie -------------------------------------------------------------------------------

def test_every_dashboard_response_carries_the_strict_csp(scenario, app, keys):
    b = browser(app, keys)
    anonymous = app.test_client()
    responses = [b.get(p) for p in ("/dashboard/", f"/dashboard/authorisations/{AUTH}", "/dashboard/lots/L1",
                                    "/dashboard/events", "/dashboard/alerts", "/dashboard/members",
                                    "/dashboard/nowhere", "/dashboard/static/live.js", "/dashboard/alerts?as_of=x")]
    responses += [b.post("/dashboard/authorisations", data={"authorisation_id": AUTH}),   # no token: 400
                  b.get("/dashboard/logout"), anonymous.get("/dashboard/login"), anonymous.get("/dashboard/"),
                  anonymous.get("/dashboard/stream", headers={"Accept": "text/event-stream"}),
                  anonymous.post("/dashboard/login", data={"api_key": "x", "csrf": "y"})]
    for r in responses:
        csp = r.headers.get("Content-Security-Policy")
        assert csp == ui.CSP, (r.request.path, r.status_code, csp)
        assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["X-Frame-Options"] == "DENY"
    directives = dict(d.strip().split(" ", 1) for d in ui.CSP.split(";"))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["default-src"] == "'none'" and directives["base-uri"] == "'none'"
    assert "unsafe" not in ui.CSP and "data:" not in ui.CSP and "*" not in ui.CSP


def test_what_the_same_origin_serves_from_ledger_text_is_never_a_script(scenario, api):
    """With ``script-src 'self'`` an injected ``<script src=…>`` could load a same-origin answer holding ledger text:
    the API's JSON, CSV and problem answers are typed and ``nosniff`` (a browser refuses them as scripts)."""
    for path in (f"/api/v1/reports/bill-of-discharge/{AUTH}?as_of={day(1)}&format=csv",
                 f"/api/v1/reports/inventory?as_of={day(1)}&format=csv", "/api/v1/lots/L1/audit?format=csv",
                 "/api/v1/feed", "/api/v1/lots/L1/audit"):
        r = api.get(path, "CustomsMSP")
        assert r.status_code == 200 and r.headers["X-Content-Type-Options"] == "nosniff", path
        assert r.mimetype in ("text/csv", "application/json"), path
        assert "javascript" not in r.mimetype and r.headers["Content-Security-Policy"].startswith("default-src 'none'")


def test_every_state_change_of_the_pages_needs_the_sessions_token(scenario, app, keys, live):
    b = browser(app, keys, "OperatorMSP")
    before = live.store.authorisation_ids()
    assert b.post("/dashboard/authorisations", data={"authorisation_id": AUTH}).status_code == 400
    assert b.post("/dashboard/authorisations", data={"authorisation_id": AUTH, "csrf": "x" * 32}).status_code == 400
    assert live.store.authorisation_ids() == before
    assert b.post("/dashboard/logout").status_code == 400            # a forged sign-out: refused
    assert b.get("/dashboard/").status_code == 200                    # still signed in
    for path in ("/dashboard/logout", "/dashboard/authorisations"):
        assert b.get(path).status_code == 405                         # no GET changes state
    token = form_token(b.get("/dashboard/").get_data(as_text=True))
    assert b.post("/dashboard/logout", data={"csrf": token}).status_code == 302
    assert b.get("/dashboard/").status_code == 302                    # signed out


def test_the_session_cookie_is_httponly_strict_and_secure_over_https(app, keys):
    for base, secure in (("http://localhost", False), ("https://localhost", True)):
        b = app.test_client()
        r = sign_in(b, keys[("CustomsMSP", "viewer")], base_url=base)
        cookie = next(v for v in r.headers.getlist("Set-Cookie") if v.startswith("ipledger_session="))
        attrs = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
        assert {"httponly", "path", "samesite"} <= attrs and "SameSite=Strict" in cookie
        assert ("secure" in attrs) == secure, base
        assert (r.headers.get("Strict-Transport-Security") is not None) == secure


def test_sign_in_never_goes_on_to_a_script_url(app, keys):
    for target in ("javascript:alert(1)", "/dashboard/\r\nX:1", "//evil.example/dashboard/", "data:text/html,x",
                   "/dashboard/\\evil.example"):
        b = app.test_client()
        r = sign_in(b, keys[("CustomsMSP", "viewer")], query_string={"next": target})
        assert r.status_code == 302 and r.headers["Location"] in ("/dashboard/", "http://localhost/dashboard/"), target


# -- the live feed ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["a\n\nevent: forged\ndata: {}", "a\r\nid: 9:x\r\n\r\n", "a\rretry: 1",
                                  "a\u2028b\x85c"])
def test_a_line_break_in_an_event_cannot_start_a_field_or_a_message_of_the_stream(text):
    item = {"id": "7:" + "ab" * 32, "seq": 3, "block_number": 7, "event_type": "PlaceUnderProcedure",
            "event_id": "e1", "lots": ["L1"], "payload": {"description": text}}
    message = sse_message(item)
    lines = re.split(r"\r\n|\r|\n", message)                 # the line ends of the SSE format
    assert lines == ["id: 7:" + "ab" * 32, "event: ledger-event", lines[2], "", ""]
    assert lines[2].startswith("data: {") and lines[2].endswith("}")


# -- CSV -------------------------------------------------------------------------------------------------------

def cells_as_a_semicolon_spreadsheet_reads_them(text: str) -> list[str]:
    """Excel opening a .csv in a locale whose list separator is ';' (France, Germany…) splits each line on ';' —
    honouring double quotes — not on ','."""
    return [c for row in csv.reader(io.StringIO(text, newline=""), delimiter=";") for c in row]


def test_a_semicolon_in_a_text_cell_does_not_make_a_formula_cell_in_a_semicolon_locale(scenario, api):
    """A cell ``x;=cmd|' /C calc'!A0;`` starts with no formula character; Excel opening the comma-separated file in a
    locale whose list separator is ';' (France, most of the EU) split it into a cell ``=cmd|…`` and ran it. An
    apostrophe now goes after such a ';' too (gateway/csvsafe.py)."""
    payload = "x;=cmd|' /C calc'!A0;"
    lot = place("LS1", 5, placement_mrn(9304))
    lot["description"] = payload
    api.post(lot, "OperatorMSP")
    entry = {"block_number": 7, "tx_id": "ab" * 32, "recorded_at": "2026-03-02T09:00:00Z",
             "event_type": "PlaceUnderProcedure", "event_id": "erp-1", "authorisation_id": AUTH,
             "submitting_org": "OperatorMSP", "submitter_subject": "CN=" + payload, "endorsing_orgs": [],
             "endorsers": [], "lots": ["L1"], "batches": [], "event": {"d": "x"}}
    texts = [api.get(f"/api/v1/reports/bill-of-discharge/{AUTH}?as_of={day(1)}&format=csv", "OperatorMSP"),
             api.get(f"/api/v1/reports/inventory?as_of={day(1)}&format=csv", "CustomsMSP")]
    for text in [t.get_data(as_text=True) for t in texts] + [audit.to_csv([entry])]:
        cells = cells_as_a_semicolon_spreadsheet_reads_them(text)
        assert not [c for c in cells if c.startswith(csvsafe.FORMULA_STARTS)]
        assert "x;'=cmd|' /C calc'!A0;" in text


def test_the_contracts_negative_decimals_stay_numbers_in_the_bill_csv(scenario, api):
    """A negative yield deviation is the contract's decimal text (``"-1"``): csvsafe took it for text that starts with
    '-' and wrote ``'-1`` — in a spreadsheet the text "'-1", not the number the README says it stays."""
    data = {"authorisation_id": AUTH, "lots": [], "processing": [
        {"operation_id": "OP1", "recorded_at": "2026-01-10T09:00:00Z", "tx_id": "ab" * 32,
         "yield": [{"output_cn": "40121200", "authorised_per_input": "1", "actual_per_input": "0.99",
                    "deviation_pct": "-1"}, {"output_cn": "40040000", "authorised_per_input": "0.00000005",
                                             "actual_per_input": "0", "deviation_pct": "-100.0000001"}]}]}
    rows = [r for r in csv.DictReader(io.StringIO(reports.bill_csv(data), newline="")) if r["section"] == "yield"]
    assert [r["quantity"] for r in rows] == ["-1", "-100.0000001"]
    assert csvsafe.cell(Decimal("-0.00000005")) == "-0.00000005"     # never 5E-8
    # a party's text that looks like a number is still text
    assert csvsafe.cell("-5") == "'-5"
    bill = api.get(f"/api/v1/reports/bill-of-discharge/{AUTH}?as_of={day(1)}&format=csv", "OperatorMSP")
    live_rows = [r for r in csv.DictReader(io.StringIO(bill.get_data(as_text=True), newline=""))
                 if r["section"] == "yield"]
    assert live_rows and all(not r["quantity"].startswith("'") for r in live_rows)


def test_terminal_sequences_in_a_description_do_not_reach_a_terminal_printing_the_csv(scenario, api):
    """A description is one line of text: an escape sequence or a carriage return in it is refused (400, nothing on
    the ledger), so no report carries it; text of several lines (a control's findings, a bill's note) may hold line
    breaks, and ``ipledger report`` escapes every control character when it prints to a terminal."""
    from ipledger.network.cli.gateway import for_terminal
    lot = place("LT1", 5, placement_mrn(9305))
    lot["description"] = "tyres\x1b]0;owned\x07\x1b[2K\r9999 kg"
    refused = api.post(lot, "OperatorMSP", status=400)
    assert refused["errors"][0]["path"] == "/description" and "U+001B at character 6" in refused["errors"][0]["message"]
    text = api.get(f"/api/v1/reports/inventory?as_of={day(1)}&format=csv", "CustomsMSP").get_data(as_text=True)
    assert "LT1" not in text and not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", text.replace("\r\n", ""))
    shown = for_terminal("id,findings\r\nL1,\"counted\r\x1b[2K 9999\"\r\n")
    assert shown == 'id,findings\nL1,"counted\\r\\x1b[2K 9999"\n'


# -- PDF -------------------------------------------------------------------------------------------------------

def test_pdf_text_is_drawn_in_the_order_written_and_long_text_wraps(tmp_path):
    """fpdf2 reorders text only with text shaping on (the reports never turn it on): a bidi override is drawn in the
    order written, never reversing the figures beside it; 512 characters without a space wrap in their column, and
    PDF syntax in a text is text."""
    assert not reports.ReportPdf("t").text_shaping
    line = {"authorisation_id": AUTH, "goods": "LOT", "id": "L1", "cn": "40122000", "mrn": "26FR000110000001R8",
            "quantity": 500, "unit": "p/st", "deadline": "2026-07-04T10:00:00Z", "status": "OPEN"}
    for description, shown in ((f"{RLO}005 gk", "005 gk"), ("A" * 512, "A" * 512), ("a\n" * 256, "a"),
                               (") Tj ET (\\", ") Tj ET (\\")):
        data = {"report": "inventory", "as_of": "2026-03-01", "generated_at": "2026-03-01T08:30:00Z",
                "generated_for": "CustomsMSP", "lines": [], "totals": [],
                "authorisations": [{"authorisation_id": AUTH, "holder_eori": "FR1",
                                    "lines": [{**line, "description": description}]}]}
        path = tmp_path / "r.pdf"
        path.write_bytes(reports.inventory_pdf(data))
        text = subprocess.run(["pdftotext", "-raw", str(path), "-"], check=True, capture_output=True,
                              text=True).stdout
        drawn = re.sub(r"[\s\u202a-\u202e]", "", text)
        assert re.sub(r"\s", "", shown) in drawn, description[:20]
        assert "500p/st2026-07-0410:00:00OPEN" in drawn          # the figures beside it, in order
        if description.startswith("a\n"):                     # 256 lines, over pages: every one of them printed
            assert len(re.findall(r"(?m)(?:^| )a$", text)) == 256
