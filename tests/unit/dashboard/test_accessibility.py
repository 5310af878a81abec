"""The dashboard's accessibility findings of the twenty-second review (WCAG 2.1 AA, RGAA 4.1), each reproduced here
first: errors tied to their fields and named in the title (3.3.1, 3.3.2), a session's end announced and its lost
form not a 405 (2.2.1), the current page named in the navigation, wide tables scrolling by themselves (1.4.10),
a visible focus on the light page (1.4.11), download links that say what they download (2.4.4), charts whose text
names their data (1.1.1), a PDF that states its language. (The live timeline's pause, "New" mark and grouped
announcements run in a real browser: tests/browser/test_dashboard_browser.py.)"""
from __future__ import annotations

import re
import time
from pathlib import Path

from ipledger.gateway import reports

from .conftest import AUTH
from .signin import browser, form_token, page, sign_in

STATIC = Path(__file__).resolve().parents[3] / "gateway" / "dashboard" / "static"


def test_a_refused_sign_in_is_tied_to_the_key_field_and_named_in_the_title(app):
    client = app.test_client()
    form = client.get("/dashboard/login").get_data(as_text=True)
    assert 'autocomplete="current-password"' in form and 'size="60"' not in form
    r = client.post("/dashboard/login", data={"api_key": "ipk_wrong", "csrf": form_token(form)})
    html = r.get_data(as_text=True)
    assert r.status_code == 401 and "<title>Error: Sign in" in html
    assert 'id="api_key-error"' in html and 'aria-invalid="true"' in html and 'aria-describedby="api_key-error"' in html


def test_a_session_that_ended_says_so_and_never_sends_back_to_a_forms_address(app, keys, monkeypatch):
    clock = [time.time()]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    b = browser(app, keys, "OperatorMSP")
    header = b.get("/dashboard/").get_data(as_text=True)
    assert re.search(r"the session ends \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", header)
    index = b.get("/dashboard/").get_data(as_text=True)
    clock[0] += 9 * 3600                        # past the 8 hours: the add form posted now lands on the sign-in page
    r = b.post("/dashboard/authorisations", data={"authorisation_id": AUTH, "csrf": form_token(index)})
    assert r.status_code == 302 and r.headers["Location"].startswith("/dashboard/login?next=")
    login = b.get(r.headers["Location"]).get_data(as_text=True)
    assert "your session has ended (a session lasts 8 hours" in login and 'aria-describedby="api_key-error"' in login
    again = sign_in(b, keys[("OperatorMSP", "viewer")], query_string={"next": "/dashboard/authorisations"})
    assert again.status_code == 302 and again.headers["Location"] == "/dashboard/"     # not a GET of a POST: a 405
    assert b.get(again.headers["Location"]).status_code == 200


def test_the_add_form_states_its_format_and_ties_its_error(app, keys):
    b = browser(app, keys, "OperatorMSP")
    index = b.get("/dashboard/").get_data(as_text=True)
    assert 'aria-describedby="authorisation_id-hint"' in index and "e.g. FRIPO000123" in index
    r = b.post("/dashboard/authorisations", data={"authorisation_id": "FRIPO000099", "csrf": form_token(index)})
    html = b.get(r.headers["Location"]).get_data(as_text=True)
    assert "<title>Error: Authorisations" in html and 'aria-invalid="true"' in html and 'value="FRIPO000099"' in html
    assert 'aria-describedby="authorisation_id-hint authorisation_id-error"' in html


def test_the_navigation_names_the_current_page_and_tables_scroll_by_themselves(scenario, app, keys):
    html = page(app, keys, f"/dashboard/authorisations/{AUTH}", "OperatorMSP")
    assert "<title>Authorisation " + AUTH in html
    assert html.count("<table") == len(re.findall(r'<div class="table-wrap">\s*<table', html)) >= 5
    assert "audit trail (CSV)</a>" in html and "bill of discharge data (PDF)</a>" in html
    assert 'role="figure"' in html and "Its data: the table after the chart." in html
    events = page(app, keys, "/dashboard/events", "OperatorMSP")
    assert re.search(r'<a href="/dashboard/events" aria-current="page">Event timeline</a>', events)
    assert 'aria-current="page">Authorisations' not in events


def test_the_focus_is_visible_on_the_light_page_and_the_layout_reflows():
    css = (STATIC / "dashboard.css").read_text()
    assert re.search(r"a:focus[^{]*\{[^}]*outline: 3px solid #0b2e4f", css)       # dark on white: ≥ 3:1
    assert "flex-wrap: wrap" in css.split("header nav ul", 1)[1].split("}", 1)[0]
    assert ".table-wrap { overflow-x: auto; }" in css and "font: 100%/1.45" in css
    # the yield chart's two series differ by more than colour (1.4.1): authorised hollow, actual filled
    assert re.search(r"svg \.bar-authorised \{ fill: #fff; stroke: #4a4a4a", css)


def test_a_pdf_report_states_its_language():
    pdf = reports.ReportPdf("Bill of discharge")
    pdf.heading("Lots")
    assert b"/Lang" in bytes(pdf.output())
