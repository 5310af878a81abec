"""The reports print the ledger's figures whole: quantities on one line, times named UTC, CSVs that say which bill and
moment, totals per goods code and unit."""
from __future__ import annotations

import csv
import io
import json
import re
import subprocess

from ipledger.gateway import reports

from .test_report_pdf import bill, inventory

MAX_QTY = json.load(open(__import__("pathlib").Path(reports.__file__).parents[1] / "chaincode" / "contract" /
                         "schemas" / "common.json"))["$defs"]["quantity"]["maximum"]


def text_of(pdf: bytes, tmp_path, layout=False) -> str:
    path = tmp_path / "r.pdf"
    path.write_bytes(pdf)
    args = ["pdftotext"] + (["-layout"] if layout else []) + [str(path), "-"]
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def numbers(text: str) -> set[str]:
    return set(re.findall(r"(?<![0-9A-Za-z.])[0-9]+(?:\.[0-9]+)?(?![0-9A-Za-z])", text))


def test_the_largest_quantity_stays_one_figure_in_the_bill_pdf(tmp_path):
    """A lot of 10^15 m3 (the schema's maximum) printed "1000000", "0000000" and "00" on three lines of the
    8-character "qty" cell: three figures, none of them the ledger's."""
    assert MAX_QTY == 1000000000000000
    data = bill()
    lot = data["lots"][0]
    lot.update(quantity=MAX_QTY, remaining=MAX_QTY - 1, unit="m3")
    data["remaining"][0].update(quantity=MAX_QTY - 1, unit="m3")
    data["disposals"][0]["input_goods"][0]["quantity"] = MAX_QTY
    for layout in (False, True):
        found = numbers(text_of(reports.bill_pdf(data), tmp_path, layout))
        assert {"1000000000000000", "999999999999999"} <= found, layout
        assert not {"1000000", "0000000", "9999999"} & found
    # and nothing else was broken to make room: the MRN and the dates are whole
    text = text_of(reports.bill_pdf(data), tmp_path, True)
    assert "26FR000110000001R8" in text and "2026-01-05" in text


def test_an_inventory_total_beyond_the_largest_quantity_stays_one_figure(tmp_path):
    data = inventory()
    line = data["lines"][0]
    line["quantity"] = MAX_QTY
    data["authorisations"][0]["lines"] = [dict(line, id=f"L{i}") for i in range(3)]
    data["totals"][0]["quantity"] = 3 * MAX_QTY
    found = numbers(text_of(reports.inventory_pdf(data), tmp_path, True))
    assert {"1000000000000000", "3000000000000000"} <= found
    assert not {"1000000", "0000000", "3000000"} & found


def test_pdf_times_are_named_utc_and_a_deadline_is_its_moment(tmp_path):
    """The deadline printed its date only (2026-07-04) though the goods are overdue from 10:00 UTC that day; the
    proof's "recorded" times had neither zone nor marker."""
    data = bill()
    data["lots"][0]["deadline"] = data["remaining"][0]["deadline"] = "2026-07-04T10:00:00.000000Z"
    data["proof"]["transactions"][0]["recorded_at"] = "2026-01-05T10:00:00.123456Z"
    text = text_of(reports.bill_pdf(data), tmp_path, True)
    assert text.count("2026-07-04 10:00:00") == 2                 # the lot and its remaining balance
    assert "2026-01-05 10:00:00" in text
    assert "deadline (UTC)" in text and "recorded (UTC)" in text
    inv = inventory()
    inv["lines"][0]["deadline"] = "2026-07-04T10:00:00.000000Z"
    assert "2026-07-04 10:00:00" in text_of(reports.inventory_pdf(inv), tmp_path, True)


def rows_of(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_the_bill_csv_says_which_bill_and_which_moment(tmp_path):
    """The CSV had no authorisation id, no scope and no cut-off: two files of two authorisations or two dates
    could not be told apart. A ``scope`` row (before the document hash) names them as the ledger gave them."""
    data = bill()
    rows = rows_of(reports.bill_csv(data))
    [scope] = [r for r in rows if r["section"] == "scope"]
    assert (scope["id"], scope["date"], scope["reference"]) == ("FRIPO000001", data["cutoff"], "2")
    assert scope["description"] == "audit view as of 2026-03-01T00:00:00Z"
    assert rows[-1]["section"] == "document_hash"
    data["scope"] = {"mode": "PERIOD", "period_start": None, "period_end": "2026-02-28",
                     "due": "2026-03-31T00:00:00.000000Z"}
    [scope] = [r for r in rows_of(reports.bill_csv(data)) if r["section"] == "scope"]
    assert scope["description"] == "period ending 2026-02-28 (from the grant), due 2026-03-31T00:00:00.000000Z"


def test_the_inventory_csv_says_the_moment_it_holds_at():
    data = inventory()
    [row] = rows_of(reports.inventory_csv(data))
    assert row["as_of"] == data["as_of"] == "2026-03-01"


def test_csv_quantities_are_exact_and_dates_iso():
    data = bill()
    data["lots"][0].update(quantity=MAX_QTY, remaining=0)
    [lot] = [r for r in rows_of(reports.bill_csv(data)) if r["section"] == "lot"]
    assert (lot["quantity"], lot["remaining"], lot["unit"]) == ("1000000000000000", "0", "p/st")
    assert (lot["date"], lot["deadline"]) == ("2026-01-05T10:00:00Z", "2026-07-04T10:00:00Z")
    [y] = [r for r in rows_of(reports.bill_csv(data)) if r["section"] == "yield"]
    assert (y["quantity"], y["unit"], y["description"]) == ("1", "%", "actual 0.99 / authorised 1")


class _Service:
    """GetBillOfDischargeData answers of two authorisations (what the contract's ``remaining`` lists)."""

    def __init__(self, answers):
        self.answers = answers

    def evaluate_each(self, org, fn, auth_id, period_end, as_of, channel=None):
        assert fn == "GetBillOfDischargeData" and as_of == "2026-03-01"
        return [("ip-plant", self.answers[auth_id])]


def test_inventory_totals_add_exactly_per_goods_code_and_unit():
    def line(gid, cn, qty, unit, goods="LOT"):
        return {"goods": goods, "id": gid, "cn": cn, "quantity": qty, "unit": unit,
                "deadline": "2026-07-04T10:00:00Z", "status": "OPEN"}
    answers = {"FRIPO000001": {"lots": [], "remaining": [line("L1", "40122000", MAX_QTY, "p/st"),
                                                         line("B2", "40040000", 1200, "kg", "BATCH")]},
               "FRIPO000002": {"lots": [], "remaining": [line("L9", "40122000", MAX_QTY - 1, "p/st"),
                                                         line("B9", "40040000", 1, "kg", "BATCH")]}}
    data = reports.inventory(_Service(answers), "CustomsMSP", ["FRIPO000001", "FRIPO000002"], "2026-03-01")
    assert data["totals"] == [{"goods": "BATCH", "cn": "40040000", "unit": "kg", "quantity": 1201},
                              {"goods": "LOT", "cn": "40122000", "unit": "p/st", "quantity": 1999999999999999}]
