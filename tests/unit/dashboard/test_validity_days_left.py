"""An authorisation revoked or expired shows no days of validity left — on its page and in the index — while one in
force does (tests/unit/dashboard/test_page_figures.py counts them)."""
from __future__ import annotations

import datetime as dt
import re

from .conftest import AUTH, body
from .signin import page


def _index_cells(html: str) -> list[str]:
    row = re.search(rf'<tr>\s*<th scope="row"><a href="[^"]*">{AUTH}</a></th>(.*?)</tr>', html, re.S)
    assert row, html
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", row.group(1), re.S)]


def test_a_revoked_authorisation_has_no_days_of_validity_left(scenario, api, app, keys):
    assert re.search(r"\(\d+ days left\)", page(app, keys, f"/dashboard/authorisations/{AUTH}"))   # in force
    api.post(body("RevokeAuthorisation", "revoke-1", authorisation_id=AUTH, reason="plant closed"), "CustomsMSP")
    html = page(app, keys, f"/dashboard/authorisations/{AUTH}")
    assert "REVOKED" in html and "days left" not in html
    cells = _index_cells(page(app, keys, "/dashboard/"))
    assert cells[1] == "REVOKED" and cells[4] == "", cells            # holder, status, from, to, days left


def test_an_expired_authorisation_has_no_days_of_validity_left(scenario, app, keys, ledger):
    ledger.scenario.ledger.now = ledger.scenario.ledger.now + dt.timedelta(days=400)      # valid to D+335
    html = page(app, keys, f"/dashboard/authorisations/{AUTH}")
    assert "EXPIRED" in html and "days left" not in html
    assert _index_cells(page(app, keys, "/dashboard/"))[4] == ""
