"""The dashboard's download links: the authorisation page's audit trail (CSV, JSON) and bill of discharge (PDF, CSV),
the lot page's audit trail (CSV, JSON). They pointed at ``/api/v1/…``, which takes API keys only: a signed-in
browser got 401 "an API key is required". They are now routes of the dashboard, under ``/dashboard`` (where the
session cookie is sent), answering with the API's own documents for the session's organisation — the same
visibility, the same content — as attachments; the API still takes keys only."""
from __future__ import annotations

import csv
import io
import re
import subprocess

import pytest

from ipledger.chaincode.testing import mrns

from .conftest import AUTH, AUTH2, OTHER_HOLDER_MSP, day, names, place
from .signin import browser, sign_in

AUTH_PAGE = f"/dashboard/authorisations/{AUTH}"
CUSTOMS_VALUE = "25000.00"   # of each lot placed in the scenario (conftest.place)


def links(html: str) -> list[str]:
    """The download links of a page (its ``href``s ending in a document's suffix, query included)."""
    hrefs = [h.replace("&amp;", "&") for h in re.findall(r'href="([^"]+)"', html)]
    return [h for h in hrefs if re.search(r"\.(csv|json|pdf)(\?|$)", h)]


def rows(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_the_pages_link_downloads_of_the_dashboard_not_of_the_api(scenario, app, keys):
    b = browser(app, keys, "OperatorMSP")
    html = b.get(AUTH_PAGE).get_data(as_text=True)
    assert "/api/v1/" not in html and "API key needed" not in html
    assert links(html) == [f"{AUTH_PAGE}/audit.csv", f"{AUTH_PAGE}/audit.json",
                           f"{AUTH_PAGE}/bill-of-discharge.pdf", f"{AUTH_PAGE}/bill-of-discharge.csv"]
    html = b.get("/dashboard/lots/L1").get_data(as_text=True)
    assert "/api/v1/" not in html and "API key needed" not in html
    assert links(html) == ["/dashboard/lots/L1/audit.csv", "/dashboard/lots/L1/audit.json"]


@pytest.mark.parametrize("org", ["CustomsMSP", "OperatorMSP", "BrokerMSP"])
def test_every_link_of_the_pages_downloads_the_apis_document_with_the_session(scenario, app, keys, api, org):
    """Each link, followed with the session cookie of a viewer (who may read): the document the API gives that
    organisation's key — the same, bar the ledger's time of each answer —, saved as the API names it."""
    b = browser(app, keys, org)
    found = links(b.get(AUTH_PAGE).get_data(as_text=True)) + links(b.get("/dashboard/lots/L1").get_data(as_text=True))
    same_as = {f"{AUTH_PAGE}/audit.csv": (f"/api/v1/authorisations/{AUTH}/audit?format=csv", f"audit-{AUTH}.csv"),
               f"{AUTH_PAGE}/audit.json": (f"/api/v1/authorisations/{AUTH}/audit", f"audit-{AUTH}.json"),
               f"{AUTH_PAGE}/bill-of-discharge.pdf": (f"/api/v1/reports/bill-of-discharge/{AUTH}?format=pdf",
                                                      f"bill-of-discharge-{AUTH}-now.pdf"),
               f"{AUTH_PAGE}/bill-of-discharge.csv": (f"/api/v1/reports/bill-of-discharge/{AUTH}?format=csv",
                                                      f"bill-of-discharge-{AUTH}-now.csv"),
               "/dashboard/lots/L1/audit.csv": ("/api/v1/lots/L1/audit?format=csv", "audit-lot-L1.csv"),
               "/dashboard/lots/L1/audit.json": ("/api/v1/lots/L1/audit", "audit-lot-L1.json")}
    assert sorted(found) == sorted(same_as)
    for link in found:
        r = b.get(link)
        assert r.status_code == 200, (link, r.get_data(as_text=True)[:300])
        assert r.headers["Content-Disposition"] == f'attachment; filename="{same_as[link][1]}"', link
        assert r.headers["Cache-Control"] == "no-store" and r.headers["X-Content-Type-Options"] == "nosniff", link
        by_key = api.get(same_as[link][0], org)
        assert by_key.status_code == 200 and r.mimetype == by_key.mimetype, link
        if "bill-of-discharge" in link:   # compared at one moment (its hash covers the moment it is as of)
            r = b.get(link, query_string={"as_of": day(1)})
            by_key = api.get(f"{same_as[link][0]}&as_of={day(1)}", org)
            assert r.headers["Content-Disposition"] == \
                f'attachment; filename="{same_as[link][1].replace("-now.", f"-{day(1)}.")}"', link
        if r.mimetype == "application/json":
            def without_moments(data):   # the ledger's time of the answer ("to" of a trail up to now)
                return {k: v for k, v in data.items() if k not in ("to", "generated_at")}
            assert without_moments(r.get_json()) == without_moments(by_key.get_json()), link
        elif r.mimetype == "text/csv":
            assert r.get_data(as_text=True) == by_key.get_data(as_text=True), link
        else:
            assert r.mimetype == "application/pdf" and r.data.startswith(b"%PDF-"), link


def test_a_brokers_downloads_hold_no_customs_value(scenario, app, keys, tmp_path):
    holder, broker = browser(app, keys, "OperatorMSP"), browser(app, keys, "BrokerMSP")
    bill_csv = f"{AUTH_PAGE}/bill-of-discharge.csv"
    assert [r["customs_value"] for r in rows(holder.get(bill_csv)) if r["section"] == "lot"] == [CUSTOMS_VALUE] * 2
    for link in (bill_csv, f"{AUTH_PAGE}/audit.csv", f"{AUTH_PAGE}/audit.json", "/dashboard/lots/L1/audit.csv",
                 "/dashboard/lots/L1/audit.json"):
        r = broker.get(link)
        assert r.status_code == 200 and CUSTOMS_VALUE not in r.get_data(as_text=True), link
    assert not any(r["customs_value"] for r in rows(broker.get(bill_csv)))
    def pdf_text(b, name):   # the PDF's text as a reader sees it (its streams are compressed)
        r = b.get(f"{AUTH_PAGE}/bill-of-discharge.pdf")
        assert r.status_code == 200 and r.mimetype == "application/pdf"
        (tmp_path / name).write_bytes(r.data)
        return subprocess.run(["pdftotext", "-layout", str(tmp_path / name), "-"], check=True, capture_output=True,
                              text=True).stdout
    assert CUSTOMS_VALUE in pdf_text(holder, "holder.pdf")
    brokers = pdf_text(broker, "broker.pdf")
    assert f"Bill of discharge {AUTH}" in brokers and CUSTOMS_VALUE not in brokers


def test_another_holders_authorisation_is_refused_as_the_api_refuses_it(scenario, app, keys, api):
    """The broker holds no mandate of AUTH2, the operator is not its holder: each download of it is refused — the
    API says 403 or 404 to their keys, the dashboard 404 as its authorisation page does, an unknown id alike —, on
    the dashboard's page (signed in, a way back), naming nothing of it."""
    for org in ("BrokerMSP", "OperatorMSP"):
        b = browser(app, keys, org)
        for link, by_key in ((f"/dashboard/authorisations/{AUTH2}/audit.csv", f"/api/v1/authorisations/{AUTH2}/audit"),
                             (f"/dashboard/authorisations/{AUTH2}/audit.json", f"/api/v1/authorisations/{AUTH2}/audit"),
                             (f"/dashboard/authorisations/{AUTH2}/bill-of-discharge.pdf",
                              f"/api/v1/reports/bill-of-discharge/{AUTH2}?format=pdf"),
                             (f"/dashboard/authorisations/{AUTH2}/bill-of-discharge.csv",
                              f"/api/v1/reports/bill-of-discharge/{AUTH2}?format=csv")):
            refused = api.get(by_key, org)
            assert refused.status_code in (403, 404), (org, by_key)
            r = b.get(link)
            html = r.get_data(as_text=True)
            assert r.status_code == 404 and r.mimetype == "text/html", (org, link, r.status_code)
            assert b.get(link.replace(AUTH2, "FRIPO999999")).status_code == 404
            assert "Content-Disposition" not in r.headers and "Back to the authorisations" in html, (org, link)
            assert not names(html, "L2") and "26FR000110000002R7" not in html
    customs = browser(app, keys, "CustomsMSP")   # customs read every holder's
    assert customs.get(f"/dashboard/authorisations/{AUTH2}/audit.json").get_json()["authorisation_id"] == AUTH2
    assert customs.get(f"/dashboard/authorisations/{AUTH2}/bill-of-discharge.csv").status_code == 200


def test_a_lot_of_another_holder_is_refused_as_the_api_refuses_it(scenario, app, keys, keystore, api):
    """AUTH2's lot: to the broker and the operator the same refusal as an unknown lot's, as the API gives it."""
    keys[(OTHER_HOLDER_MSP, "clerk")] = keystore.create(OTHER_HOLDER_MSP, "clerk")[1]
    api.post(place("L9", 10, mrns.from_unique("000000000909", mrns.IMPORT), auth_id=AUTH2), OTHER_HOLDER_MSP)
    for org in ("BrokerMSP", "OperatorMSP"):
        b = browser(app, keys, org)
        for lot_id in ("L9", "L404"):
            refused = api.get(f"/api/v1/lots/{lot_id}/audit", org)
            assert refused.status_code == 404, (org, lot_id)
            for fmt in ("csv", "json"):
                r = b.get(f"/dashboard/lots/{lot_id}/audit.{fmt}")
                html = r.get_data(as_text=True)
                assert r.status_code == 404 and r.mimetype == "text/html", (org, lot_id, fmt)
                assert AUTH2 not in html and "Content-Disposition" not in r.headers
    customs = browser(app, keys, "CustomsMSP")
    r = customs.get("/dashboard/lots/L9/audit.json")
    assert r.status_code == 200 and [e["event_type"] for e in r.get_json()["entries"]] == ["PlaceUnderProcedure"]


def test_downloads_need_a_session(scenario, app, keys):
    """Not signed in (or signed out): the sign-in page, then back to the document — never the document."""
    anonymous = app.test_client()
    for link in (f"{AUTH_PAGE}/audit.csv", f"{AUTH_PAGE}/audit.json", f"{AUTH_PAGE}/bill-of-discharge.pdf",
                 f"{AUTH_PAGE}/bill-of-discharge.csv", "/dashboard/lots/L1/audit.csv", "/dashboard/lots/L1/audit.json"):
        r = anonymous.get(link)
        assert r.status_code == 302 and "Content-Disposition" not in r.headers, link
        assert r.headers["Location"].startswith("/dashboard/login?next="), link
        # signing in from there comes back to the same document (its format is in the path, which `next` keeps)
        signed = sign_in(anonymous, keys[("OperatorMSP", "viewer")], query_string={"next": link})
        assert signed.status_code == 302 and signed.headers["Location"] == link, link
        assert anonymous.get(link).status_code == 200, link
        anonymous = app.test_client()
    # an API key is no dashboard session, and the API takes no cookie
    b = browser(app, keys, "OperatorMSP")
    assert b.get(f"/api/v1/authorisations/{AUTH}/audit?format=csv").status_code == 401
    assert b.get(f"/api/v1/reports/bill-of-discharge/{AUTH}?format=pdf").status_code == 401
    signed_out = browser(app, keys, "OperatorMSP")
    token = re.search(r'name="csrf" value="([^"]+)"', signed_out.get("/dashboard/").get_data(as_text=True)).group(1)
    assert signed_out.post("/dashboard/logout", data={"csrf": token}).status_code == 302
    assert signed_out.get(f"{AUTH_PAGE}/audit.csv").status_code == 302


def test_a_download_checks_its_parameters_as_the_api_does(scenario, app, keys):
    b = browser(app, keys, "OperatorMSP")
    assert b.get(f"{AUTH_PAGE}/audit.xml").status_code == 404                      # no such document
    assert b.get(f"{AUTH_PAGE}/bill-of-discharge.pdf?as_of=garbage").status_code == 400
    assert b.get(f"{AUTH_PAGE}/bill-of-discharge.csv?channel=Bad").status_code == 400
    assert b.get(f"{AUTH_PAGE}/audit.csv?from=2026-01-01&from=2027-01-01").status_code == 400   # given twice
    r = b.get("/dashboard/authorisations/not-an-id/audit.csv")
    assert r.status_code == 400 and r.mimetype == "text/html"
    assert b.post(f"{AUTH_PAGE}/audit.csv").status_code == 405


@pytest.mark.parametrize("url", [f"/dashboard/authorisations/{AUTH}/bill-of-discharge.csv?period-end=2026-01-31",
                                 f"/dashboard/authorisations/{AUTH}/audit.csv?form=2026-01-01",
                                 "/dashboard/lots/L1/audit.json?format=csv"])
def test_a_misspelt_parameter_of_a_download_is_refused_as_the_api_refuses_it(scenario, app, keys, url):
    """The API refuses ``?period-end=`` (a 400, not the bill as of now); a download of the same document answered
    it as the bill as of now, saved under that name."""
    r = browser(app, keys, "OperatorMSP").get(url)
    assert r.status_code == 400 and "Content-Disposition" not in r.headers
