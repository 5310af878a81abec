"""The authorisation page shows the products that keep a lot of balance 0 open, and the lot page gives its declaration
as well as its recording."""
from __future__ import annotations

import html as html_mod
import re

from .conftest import AUTH, body
from .signin import page
from .test_page_figures import destroy_rest_of_l1


def product_rows(html: str) -> dict[str, list[str]]:
    rows = re.findall(r'<tr data-batch="([^"]+)">(.*?)</tr>', html, re.S)
    return {batch: [html_mod.unescape(re.sub(r"<[^>]+>", "", c)).strip()
                    for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)] for batch, row in rows}


def test_the_page_shows_the_products_that_keep_a_lot_open(scenario, api, app, keys):
    destroy_rest_of_l1(api)                                    # L1: stock 0, OPEN — its share of B2 is left
    batch = api.get("/api/v1/batches/B2", "OperatorMSP").get_json()
    for org in ("CustomsMSP", "OperatorMSP", "BrokerMSP"):
        html = page(app, keys, f"/dashboard/authorisations/{AUTH}", org)
        rows = product_rows(html)
        assert list(rows) == ["B2"], org                       # B1 has gone: not listed
        lot_input = api.get("/api/v1/lots/L1", org).get_json()["products"]["B2"]["input_qty"]
        assert rows["B2"][2] == f"{batch['balance']} {batch['unit']}" and rows["B2"][3] == f"L1 ({lot_input} p/st)", org
    api.post(body("RecordLoss", "loss-B2", authorisation_id=AUTH, batch_id="B2", quantity=batch["balance"],
                  reason="DESTROYED", evidence_hash="cd" * 32), "OperatorMSP")
    assert "No product under the procedure." in page(app, keys, f"/dashboard/authorisations/{AUTH}")


def test_the_lot_page_gives_the_declaration_and_the_recording(scenario, api, app, keys):
    lot = api.get("/api/v1/lots/L1", "OperatorMSP").get_json()
    assert lot["declared_at"] <= lot["accepted_at"]
    text = html_mod.unescape(re.sub(r"<[^>]+>", "", page(app, keys, "/dashboard/lots/L1")))
    assert f"declared {lot['declared_at'][:10]}" in text
