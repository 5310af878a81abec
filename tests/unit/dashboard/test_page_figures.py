"""The figures the dashboard's pages show are the contract's, to the last digit, unit and sign. Expected figures come
from the contract's own answers (the REST API's GetLot, GetBalances, GetAlerts as the same organisation) or from a
hand calculation."""
from __future__ import annotations

import datetime as dt
import html as html_mod
import re

from ipledger.chaincode.contract.identifiers import mrn_check_digit

from .conftest import AUTH, HOLDER, RETREADED, SITE1, SITE2, USED, WASTE, body, day
from .signin import page

AUTH3 = "FRIPO000003"


def mrn(n: int) -> str:
    first = f"26FR{n:012d}R"
    return first + mrn_check_digit(first)


def lot_cells(html: str, lot_id: str) -> list[str]:
    """The text of the cells of a lot's row in the lots table (the lot id first)."""
    row = re.search(rf'<tr data-lot="{re.escape(lot_id)}">(.*?)</tr>', html, re.S).group(1)
    cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
    return [html_mod.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in cells]


def heading_index(html: str, name: str) -> int:
    table = re.search(r'<table id="lots".*?</thead>', html, re.S).group(0)
    heads = [re.sub(r"<[^>]+>", "", h).strip() for h in re.findall(r"<th scope=\"col\">(.*?)</th>", table, re.S)]
    return heads.index(name)


def destroy_rest_of_l1(api):
    """After the scenario L1 has 500 p/st left (its other 500 were processed into B1, exited, and B2, 1200 kg of
    waste still under the procedure): destroy those 500. L1's own stock is then 0 but its share of B2 remains."""
    api.post(body("RecordLoss", "loss-L1", authorisation_id=AUTH, lot_id="L1", quantity=500, reason="DESTROYED",
                  evidence_hash="ab" * 32), "OperatorMSP")


# -- a lot's status is the contract's --------------------------------------------------------------------------

def test_a_lot_whose_waste_is_still_under_the_procedure_is_not_shown_discharged(scenario, api, app, keys):
    """The lots table made its own status: a lot absent from the bill's remaining balances was "DISCHARGED" when
    its own stock was 0 — but the contract discharges a lot only when its share of every batch made from it has
    gone too (docs/domain.md §5): L1's share of the waste B2 is still there, GetLot says OPEN."""
    destroy_rest_of_l1(api)
    for org in ("CustomsMSP", "OperatorMSP", "BrokerMSP"):
        ledger_status = api.get("/api/v1/lots/L1", org).get_json()["status"]
        assert ledger_status == "OPEN"
        html = page(app, keys, f"/dashboard/authorisations/{AUTH}", org)
        assert lot_cells(html, "L1")[heading_index(html, "Status")] == ledger_status, org


def test_a_lot_all_gone_is_discharged_as_the_contract_says(scenario, api, app, keys):
    destroy_rest_of_l1(api)
    api.post(body("RecordLoss", "loss-B2", authorisation_id=AUTH, batch_id="B2", quantity=1200, reason="DESTROYED",
                  evidence_hash="cd" * 32), "OperatorMSP")
    assert api.get("/api/v1/lots/L1", "CustomsMSP").get_json()["status"] == "DISCHARGED"
    html = page(app, keys, f"/dashboard/authorisations/{AUTH}")
    assert lot_cells(html, "L1")[heading_index(html, "Status")] == "DISCHARGED"


# -- every quantity of a lot with its unit -----------------------------------------------------------------------

def test_the_lots_table_shows_every_quantity_with_its_unit(scenario, api, app, keys):
    """"Consumed" and "Lost" were bare numbers (500, 500) next to "1000 p/st"; and what left by exit was not shown
    at all, so placed − consumed − lost did not give the balance."""
    destroy_rest_of_l1(api)
    lot = api.get("/api/v1/lots/L1", "CustomsMSP").get_json()
    html = page(app, keys, f"/dashboard/authorisations/{AUTH}")
    cells = lot_cells(html, "L1")
    assert cells[heading_index(html, "Placed")] == f"{lot['placed']} p/st" == "1000 p/st"
    assert cells[heading_index(html, "Consumed")] == f"{lot['consumed']} p/st" == "500 p/st"
    assert cells[heading_index(html, "Lost")] == f"{lot['lost']} p/st" == "500 p/st"
    assert cells[heading_index(html, "Exited")] == "0 p/st"
    assert cells[heading_index(html, "Balance")] == f"{lot['balance']} p/st" == "0 p/st"


def test_an_exit_of_a_lot_is_shown_with_its_procedure_and_unit(scenario, api, app, keys):
    api.post(body("ExitGoods", "exit-L2", authorisation_id=AUTH, lot_id="L2", quantity=200, procedure="4051",
                  mrn=mrn(41)), "BrokerMSP")
    lot = api.get("/api/v1/lots/L2", "CustomsMSP").get_json()
    assert lot["exited"] == {"4051": 200}
    html = page(app, keys, f"/dashboard/authorisations/{AUTH}")
    cells = lot_cells(html, "L2")
    assert cells[heading_index(html, "Exited")] == "200 p/st (4051)"
    assert cells[heading_index(html, "Balance")] == f"{lot['balance']} p/st" == "4000 p/st"


# -- days left as the contract counts them -----------------------------------------------------------------------

def test_days_left_of_a_lot_are_whole_days_before_its_deadline_moment(scenario, api, app, keys, ledger):
    """The deadline is a moment (the placement's occurred_at + 180 days, to the microsecond); the table showed its
    date only and counted days between dates: 180 days left for a deadline 179 days and 23 hours away. The contract
    counts whole days before the moment ((deadline − as_of).days, DeadlineApproaching's days_left): 179. The page
    counts at the ledger time the contract answered at, so before and after are read on the ledger's clock."""
    lot = api.get("/api/v1/lots/L2", "CustomsMSP").get_json()
    deadline = dt.datetime.fromisoformat(lot["deadline"].replace("Z", "+00:00"))
    before = ledger.scenario.ledger.now
    html = page(app, keys, f"/dashboard/authorisations/{AUTH}")
    after = ledger.scenario.ledger.now
    cells = lot_cells(html, "L2")
    assert int(cells[heading_index(html, "Days left")]) in {(deadline - before).days, (deadline - after).days}
    assert (deadline - after).days == 179          # placed a moment ago with a period of 180 days
    # the deadline itself to the second, in UTC (the lot is overdue from that moment, not from the day's end)
    shown = cells[heading_index(html, "Deadline")]
    assert shown == deadline.strftime("%Y-%m-%d %H:%M:%S UTC")


def test_days_left_on_the_page_agree_with_the_contracts_deadline_alert(scenario, api, app, keys, ledger):
    """Looked at 170 days on (the ledger's time moved forward), the page's days left of a lot and its
    DeadlineApproaching alert's days_left (GetAlerts as of the ledger time) are the same number."""
    ledger.scenario.ledger.now = ledger.scenario.ledger.now + dt.timedelta(days=170, hours=3)
    alerts = api.get(f"/api/v1/authorisations/{AUTH}/alerts", "CustomsMSP").get_json()["alerts"]
    [alert] = [a for a in alerts if a["type"] == "DeadlineApproaching" and a["details"]["id"] == "L2"]
    html = page(app, keys, f"/dashboard/authorisations/{AUTH}")
    assert int(lot_cells(html, "L2")[heading_index(html, "Days left")]) == alert["details"]["days_left"] == 9


def test_the_validity_days_left_on_the_page_agree_with_the_contracts_expiry_alert(scenario, api, app, keys, ledger):
    """Looked at 300 days on (the ledger's time moved forward), the authorisation's "(N days left)" and its
    AuthorisationExpiring alert's days_left are one number: the page counts from the ledger time the contract
    answered at, as it does for lots, not from the gateway's clock (which would say 335 here)."""
    ledger.scenario.ledger.now = ledger.scenario.ledger.now + dt.timedelta(days=300, hours=3)
    alerts = api.get(f"/api/v1/authorisations/{AUTH}/alerts", "CustomsMSP").get_json()["alerts"]
    [alert] = [a for a in alerts if a["type"] == "AuthorisationExpiring"]
    html = page(app, keys, f"/dashboard/authorisations/{AUTH}")
    shown = re.search(r"\((\d+) days left\)", html)
    assert shown and int(shown.group(1)) == alert["details"]["days_left"] == 35


def test_the_index_counts_validity_days_from_the_ledger_time_too(scenario, api, app, keys, ledger):
    """The index's "Days left" of an authorisation's validity is the same number as its page's and as the
    AuthorisationExpiring alert's: counted from the ledger time GetBalances answered at, not the gateway's clock
    (335 here)."""
    ledger.scenario.ledger.now = ledger.scenario.ledger.now + dt.timedelta(days=300, hours=3)
    alerts = api.get(f"/api/v1/authorisations/{AUTH}/alerts", "CustomsMSP").get_json()["alerts"]
    [alert] = [a for a in alerts if a["type"] == "AuthorisationExpiring"]
    html = page(app, keys, "/dashboard/")
    row = re.search(rf'<tr>\s*<th scope="row"><a href="[^"]*">{AUTH}</a></th>(.*?)</tr>', html, re.S)
    assert row, html
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", row.group(1), re.S)]
    # holder, status, valid from, valid to, days left, …
    assert int(cells[4]) == alert["details"]["days_left"] == 35, cells


# -- one chart per ceiling, as GetBalances counts it --------------------------------------------------------------

def _two_ceilings(api):
    api.post(body("GrantAuthorisation", "grant-3", authorisation_id=AUTH3, holder_eori=HOLDER,
                  supervising_office="FR000110", valid_from=day(-30), valid_to=day(335), sites=[SITE1, SITE2],
                  input_goods=[{"cn": USED, "description": "used tyres", "unit": "p/st", "max_qty": 5000},
                               {"cn": "4012", "description": "other tyres", "unit": "p/st", "max_qty": 300}],
                  processed_products=[{"cn": RETREADED, "kind": "MAIN", "unit": "p/st"},
                                      {"cn": WASTE, "kind": "WASTE", "unit": "kg"}],
                  yield_rates=[{"input_cn": USED, "output_cn": RETREADED, "output_per_input": 1}],
                  discharge_period_days=180, broker_mandates=[]), "CustomsMSP")
    for lot_id, cn, qty, n in (("C1", USED, 1000, 31), ("C2", "40129000", 200, 32)):
        api.post(body("PlaceUnderProcedure", f"place-{lot_id}", authorisation_id=AUTH3, lot_id=lot_id, mrn=mrn(n),
                      item_no=1, procedure="5100", cn=cn, description="tyres", quantity=qty, unit="p/st",
                      origin="MA", site=SITE1, commercial={"customs_value": {"amount": "1.00", "currency": "EUR"}}),
                 "OperatorMSP")


def test_each_ceiling_has_its_own_chart_with_the_contracts_quantity(api, app, keys):
    """Two input-goods entries in p/st (40122000 up to 5000, the heading 4012 up to 300): the chart added both
    lots into one p/st series and drew the last entry's ceiling — "now 1200 p/st, ceiling 300 p/st", a use the
    contract never computed (GetBalances: 1000 of 5000 and 200 of 300)."""
    _two_ceilings(api)
    ceilings = api.get(f"/api/v1/authorisations/{AUTH3}/balances", "OperatorMSP").get_json()["ceilings"]
    assert sorted((c["cn"], c["quantity"], c["max_qty"]) for c in ceilings) == [("4012", 200, 300),
                                                                                ("40122000", 1000, 5000)]
    html = page(app, keys, f"/dashboard/authorisations/{AUTH3}", "OperatorMSP")
    descs = [html_mod.unescape(d) for d in re.findall(r'<desc id="[^"]*">(.*?)</desc>', html, re.S)]
    quantity_descs = [d for d in descs if d.startswith("Step chart")]
    assert len(quantity_descs) == len(ceilings)
    for c in ceilings:
        [d] = [d for d in quantity_descs if f"goods {c['cn']}, in " in d]
        assert d.endswith(f"now {c['quantity']} {c['unit']}, ceiling {c['max_qty']} {c['unit']}. Its data: the table after the chart."), d
    # every chart's ids are its own (aria-labelledby names one title and one description)
    ids = re.findall(r'<(?:title|desc) id="([^"]+)"', html)
    assert len(ids) == len(set(ids))


# -- rates of yield as the contract wrote them --------------------------------------------------------------------

def test_the_yield_chart_shows_the_rates_as_written_by_the_contract(scenario, app, keys, api):
    """The bars' titles showed float(text): "authorised 1.0" for the contract's "1" (and 5e-05 for "0.00005")."""
    bill = api.get(f"/api/v1/authorisations/{AUTH}/bill-of-discharge-data", "CustomsMSP").get_json()
    [line] = bill["processing"][0]["yield"]
    html = page(app, keys, f"/dashboard/authorisations/{AUTH}")
    titles = re.findall(r"<rect class=\"bar-[a-z]+\"[^>]*><title>(.*?)</title>", html)
    assert titles == [f"authorised {line['authorised_per_input']}", f"actual {line['actual_per_input']}"] \
        == ["authorised 1", "actual 0.99"]


def test_small_rates_are_not_written_in_scientific_notation():
    from ipledger.gateway.dashboard import charts
    svg = charts.yield_chart([{"label": "OP9/40040000", "authorised": "0.00005", "actual": "0.000049",
                               "deviation_pct": "2"}])
    assert "<title>authorised 0.00005</title>" in svg and "<title>actual 0.000049</title>" in svg
    assert "e-0" not in svg


# -- alert details as the contract gave them ----------------------------------------------------------------------

def test_a_list_in_an_alerts_details_is_not_shown_as_python(scenario, app, keys, api):
    """BillOfDischargeDue's ``lots`` (["L1", "L2"]) showed as ``['L1', 'L2']``, Python's repr."""
    as_of = day(201)
    alerts = api.get(f"/api/v1/alerts?as_of={as_of}", "CustomsMSP").get_json()["alerts"]
    [due] = [a for a in alerts if a["type"] == "BillOfDischargeDue"]
    assert due["details"]["lots"] == ["L1", "L2"]
    html = html_mod.unescape(page(app, keys, f"/dashboard/alerts?as_of={as_of}"))
    assert "lots: L1, L2;" in html
    assert "['" not in html


# -- the same figures for every party -----------------------------------------------------------------------------

def test_customs_the_holder_and_the_broker_see_the_same_figures(scenario, api, app, keys):
    pages = {org: page(app, keys, f"/dashboard/authorisations/{AUTH}", org)
             for org in ("CustomsMSP", "OperatorMSP", "BrokerMSP")}

    def figures(html):
        lots = [lot_cells(html, lot_id) for lot_id in ("L1", "L2")]
        balances = re.search(r'<table id="balances">.*?</table>', html, re.S).group(0)
        descs = re.findall(r"<desc[^>]*>(.*?)</desc>", html, re.S)
        return lots, balances, descs

    first = figures(pages["CustomsMSP"])
    assert first[0][1][heading_index(pages["CustomsMSP"], "Balance")] == "4200 p/st"
    for org in ("OperatorMSP", "BrokerMSP"):
        assert figures(pages[org]) == first, org
