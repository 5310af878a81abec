"""The batch page: a batch of processed products (main, secondary, waste) had no page — an alert naming BATCH:B2, the
authorisation page's products still under the procedure, the lot page's products and the timeline named batches
that linked nowhere. Now /dashboard/batches/<id> shows a batch as the lot page shows a lot (the contract's GetBatch,
its operation with the yield lines, its shares — the lots it was made from —, its disposals and losses, its alerts
and its audit trail with the downloads), with the lot page's visibility, and every page links the batches it names."""
from __future__ import annotations

import html as html_mod
import re

from ipledger.chaincode.testing import mrns

from .conftest import AUTH, AUTH2, OTHER_HOLDER_MSP, SITE1, body, names, place
from .signin import browser, page


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", html_mod.unescape(re.sub(r"<[^>]+>", " ", html)))


def rows(html: str, table_id: str) -> list[list[str]]:
    """The cells' text of each body row of the table ``table_id``."""
    table = re.search(rf'<table[^>]* id="{table_id}".*?</table>', html, re.S).group(0)
    body_ = re.search(r"<tbody>(.*?)</tbody>", table, re.S).group(1)
    return [[text_of(c).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body_, re.S)]


def lose_some_waste(api):
    """100 kg of B2 lost by nature: more than loss_warn_pct (1 %) of its 1200 kg — LossRateHigh, subject BATCH:B2."""
    api.post(body("RecordLoss", "loss-B2", authorisation_id=AUTH, batch_id="B2", quantity=100, reason="NATURE",
                  evidence_hash="cd" * 32), "OperatorMSP")


def control_waste(api):
    """Customs count 1000 kg of B2 where the books say 1100: BalanceDiscrepancy, subject BATCH:B2@BOURGES-1."""
    api.post(body("RecordControl", "control-B2", authorisation_id=AUTH, site=SITE1,
                  counted=[{"batch_id": "B2", "qty": 1000}]), "CustomsMSP")


def test_the_batch_page_shows_the_batch_its_operation_lineage_history_and_alerts(scenario, api, app, keys):
    lose_some_waste(api)
    for org in ("CustomsMSP", "OperatorMSP", "BrokerMSP"):
        batch = api.get("/api/v1/batches/B2", org).get_json()
        html = page(app, keys, "/dashboard/batches/B2", org)
        text = text_of(html)
        assert "<h1>Batch B2</h1>" in html, org
        assert "40040000" in text and "WASTE" in text and "kg" in text, org
        assert "Produced 1200 kg" in text, org
        assert f"Balance {batch['balance']} kg ({batch['status']})" in text and f"{SITE1}: 1100 kg" in text, org
        assert "Lost 100 kg (NATURE: 100)" in text, org
        assert f'href="/dashboard/authorisations/{AUTH}"' in html, org
        # the operation that made it, with its yield lines and the batches it made
        assert "OP1" in text and rows(html, "yield")[0][:4] == ["40121200", "MAIN", "1", "0.99"], org
        assert 'href="/dashboard/batches/B1"' in html, org
        # its shares: the lots it was made from, the batch's units and the lot's input each stands for
        share = batch["shares"][0]
        assert rows(html, "shares") == [["L1", "1200 kg", "500 p/st", f"{share['discharged']} kg",
                                         f"{share['input_discharged']} p/st", share["deadline"][:10] + " "
                                         + share["deadline"][11:19] + " UTC"]], org
        assert 'href="/dashboard/lots/L1"' in html, org
        # its disposals and losses
        assert [r[:4] for r in rows(html, "disposals")] == [["loss", "NATURE", "", "100 kg"]], org
        # its alerts
        assert "LossRateHigh" in text and "BATCH:B2" in text, org
        # its audit trail and the downloads
        assert [r[2] for r in rows(html, "trail")] == ["RecordProcessing", "RecordLoss"], org
        assert 'href="/dashboard/batches/B2/audit.csv"' in html and 'href="/dashboard/batches/B2/audit.json"' in html
    # an exit of a main product, and the yield alert of its operation
    html = page(app, keys, "/dashboard/batches/B1", "OperatorMSP")
    assert [r[:4] for r in rows(html, "disposals")] == [["exit", "3151", "26FR000110000007A7 item 1", "495 p/st"]]
    assert "YieldDeviation" in text_of(html) and "Balance 0 p/st (DISCHARGED)" in text_of(html)


def test_the_batch_page_downloads_its_audit_trail_with_the_session(scenario, app, keys):
    b = browser(app, keys, "BrokerMSP")
    r = b.get("/dashboard/batches/B1/audit.json")
    assert r.status_code == 200 and r.headers["Content-Disposition"].startswith("attachment;")
    assert [e["event_type"] for e in r.get_json()["entries"]] == ["RecordProcessing", "ExitGoods"]
    csv_ = b.get("/dashboard/batches/B1/audit.csv")
    assert csv_.status_code == 200 and csv_.mimetype == "text/csv" and "ExitGoods" in csv_.get_data(as_text=True)
    anonymous = app.test_client().get("/dashboard/batches/B1")
    assert anonymous.status_code == 302 and anonymous.headers["Location"].startswith("/dashboard/login?next=")


def test_another_holders_batch_is_a_404_like_an_unknown_one(scenario, api, app, keys, keystore):
    keys[(OTHER_HOLDER_MSP, "clerk")] = keystore.create(OTHER_HOLDER_MSP, "clerk")[1]
    api.post(place("L9", 10, mrns.from_unique("000000000909", mrns.IMPORT), auth_id=AUTH2), OTHER_HOLDER_MSP)
    api.post(body("RecordProcessing", "proc-9", authorisation_id=AUTH2, operation_id="OP9", site=SITE1,
                  inputs=[{"lot_id": "L9", "qty": 10}],
                  outputs=[{"batch_id": "B9", "cn": "40121200", "qty": 10, "unit": "p/st", "kind": "MAIN"}]),
             OTHER_HOLDER_MSP)
    for org in ("OperatorMSP", "BrokerMSP"):
        b = browser(app, keys, org)
        for batch_id in ("B9", "B404"):
            r = b.get(f"/dashboard/batches/{batch_id}")
            html = r.get_data(as_text=True)
            assert r.status_code == 404 and r.mimetype == "text/html", (org, batch_id)
            assert AUTH2 not in html and not names(html, "L9")
            assert b.get(f"/dashboard/batches/{batch_id}/audit.csv").status_code == 404, (org, batch_id)
        assert b.get("/dashboard/batches/not%20an%20id").status_code == 404
    customs = page(app, keys, "/dashboard/batches/B9", "CustomsMSP")
    assert "<h1>Batch B9</h1>" in customs and f'href="/dashboard/authorisations/{AUTH2}"' in customs


def test_the_pages_link_the_batches_they_name(scenario, api, app, keys, live, ledger):
    from .contract_ledger import wait_for
    lose_some_waste(api)
    control_waste(api)
    wait_for(lambda: live.store.count() == len(ledger.events))
    b = browser(app, keys, "OperatorMSP")
    auth_page = b.get(f"/dashboard/authorisations/{AUTH}").get_data(as_text=True)
    # the products still under the procedure
    row = re.search(r'<tr data-batch="B2">(.*?)</tr>', auth_page, re.S).group(1)
    assert '<a href="/dashboard/batches/B2">B2</a>' in row
    # the alerts naming the batch: LossRateHigh (BATCH:B2) and BalanceDiscrepancy (BATCH:B2@BOURGES-1)
    for page_html in (auth_page, b.get("/dashboard/alerts").get_data(as_text=True)):
        alerts = re.search(r'<table class="alerts">.*?</table>', page_html, re.S).group(0)
        assert '<a href="/dashboard/batches/B2">BATCH:B2</a>' in alerts
        assert f'<a href="/dashboard/batches/B2">BATCH:B2@{SITE1}</a>' in alerts
        assert "<td>40122000</td>" in alerts      # a CeilingNear's subject (a goods code) is no link
    # the lot page: the products made from it
    lot_page = b.get("/dashboard/lots/L1").get_data(as_text=True)
    assert [r[:3] for r in rows(lot_page, "products")] == [["B1", "MAIN", "40121200"], ["B2", "WASTE", "40040000"]]
    assert 'href="/dashboard/batches/B1"' in lot_page and 'href="/dashboard/batches/B2"' in lot_page
    # the timeline's goods
    timeline = re.search(r'<table class="timeline".*?</table>', auth_page, re.S).group(0)
    assert '<a href="/dashboard/batches/B2">B2</a>' in timeline and '<a href="/dashboard/lots/L1">L1</a>' in timeline


def test_a_batch_id_of_dot_segments_is_linked_as_one_segment(scenario, api, app, keys):
    """A batch id may hold '/' and '.' (its default is <operation>/<n>): linked as one path segment, as a lot's."""
    api.post(place("L7", 20, mrns.from_unique("000000000707", mrns.IMPORT)), "OperatorMSP")
    api.post(body("RecordProcessing", "proc-7", authorisation_id=AUTH, operation_id="X/..", site=SITE1,
                  inputs=[{"lot_id": "L7", "qty": 20}],
                  outputs=[{"cn": "40121200", "qty": 20, "unit": "p/st", "kind": "MAIN"}]), "OperatorMSP")
    b = browser(app, keys, "CustomsMSP")
    auth_page = b.get(f"/dashboard/authorisations/{AUTH}").get_data(as_text=True)
    assert '<a href="/dashboard/batches/X%2F..%2F1">X/../1</a>' in auth_page
    r = b.get("/dashboard/batches/X%2F..%2F1")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "<h1>Batch X/../1</h1>" in html
    assert 'href="/dashboard/batches/X%2F..%2F1/audit.csv"' in html
