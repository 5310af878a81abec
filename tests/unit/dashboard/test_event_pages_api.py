"""An authorisation's events and audit trail in pages through the REST API (``?limit=&after=``): the contract's
``GetEventsInPeriod`` pages (tests/unit/contract/test_contract_event_pages.py) carried through — the pages together
are the whole period, ``next`` while more follow, a malformed page a 400 naming its parameter — and, without them,
the whole period in one answer as before."""
from __future__ import annotations

from .conftest import AUTH


def test_events_and_the_audit_trail_in_pages_are_the_whole_period(scenario, api):
    path = f"/api/v1/authorisations/{AUTH}/events?from=2020-01-01"
    whole = api.get(path, "CustomsMSP").get_json()
    assert "next" not in whole and len(whole["events"]) >= 5
    for route, key in ((path, "events"), (f"/api/v1/authorisations/{AUTH}/audit?from=2020-01-01", "entries")):
        seen, after, pages = [], None, 0
        while True:
            r = api.get(route + "&limit=2" + (f"&after={after}" if after else ""), "OperatorMSP")
            assert r.status_code == 200, r.get_data(as_text=True)
            page = r.get_json()
            seen += [e["tx_id"] for e in page[key]]
            pages += 1
            after = page.get("next")
            if after is None:
                break
            assert len(page[key]) == 2
        assert seen == [e["tx_id"] for e in whole["events"]], route
        assert pages == -(-len(whole["events"]) // 2)


def test_the_csv_trail_names_the_next_page_in_a_header(scenario, api):
    r = api.get(f"/api/v1/authorisations/{AUTH}/audit?from=2020-01-01&limit=1&format=csv", "CustomsMSP")
    assert r.status_code == 200 and r.headers["X-Next-Page"].count("/") == 1
    assert len(r.get_data(as_text=True).strip().splitlines()) == 2          # the header and one event


def test_a_malformed_page_is_a_400_naming_its_parameter(scenario, api):
    for query, parameter in (("limit=0", "limit"), ("limit=10001", "limit"), ("limit=x", "limit"),
                             ("after=yesterday", "after"), ("limit=2&after=2026-01-01T00:00:00Z/ab", "after")):
        r = api.get(f"/api/v1/authorisations/{AUTH}/events?from=2020-01-01&{query}", "CustomsMSP")
        assert r.status_code == 400, query
        assert r.get_json()["parameter"] == parameter, query
