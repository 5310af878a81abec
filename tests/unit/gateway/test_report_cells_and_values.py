"""Reports: a cell too long for one page continues on the next rows instead of failing the PDF; a lot's customs value
keeps its currency in the CSV and the PDF."""
from __future__ import annotations

import csv
import io
import re
import subprocess

import pytest

from ipledger.gateway import reports

from ..dashboard.test_report_pdf import bill, inventory


def text_of(pdf: bytes, tmp_path) -> str:
    path = tmp_path / "r.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", str(path), "-"], check=True, capture_output=True, text=True).stdout


@pytest.fixture(params=["dejavu", "standard fonts"])
def fonts(request, monkeypatch, tmp_path):
    if request.param != "dejavu":
        monkeypatch.setattr(reports, "FONT_DIRS", (tmp_path / "no-fonts",))
    return request.param


def test_a_cell_longer_than_a_page_continues_on_the_next_rows(fonts, tmp_path):
    data = bill()
    data["disposals"][0]["input_goods"] = [{"lot_id": f"LOT{i:06d}", "quantity": i + 1, "unit": "p/st"}
                                           for i in range(600)]
    pdf = reports.bill_pdf(data)             # ValueError: the row ... is too high ... on a single page
    found = re.findall(r"LOT\d{6}", text_of(pdf, tmp_path))
    assert found == [f"LOT{i:06d}" for i in range(600)]                              # nothing cut, in order
    inv = inventory()
    inv["lines"][0]["description"] = "W" * 6000
    assert text_of(reports.inventory_pdf(inv), tmp_path).count("W") == 6000


def test_short_cells_stay_one_row():
    pdf = reports.ReportPdf("t")
    pdf.set_font(pdf.face, "", 7)
    assert pdf._row_parts([("a", 8), ("b", 26)], ["L1", "L1 500 p/st; L7 12 p/st"], 300, 7) == \
        [["L1", "L1 500 p/st; L7 12 p/st"]]


def test_customs_value_keeps_its_currency(tmp_path):
    data = bill()
    data["lots"][0]["customs_value"] = {"amount": "25000.00", "currency": "USD"}
    [lot] = [r for r in csv.DictReader(io.StringIO(reports.bill_csv(data))) if r["section"] == "lot"]
    assert (lot["customs_value"], lot["currency"]) == ("25000.00", "USD")
    assert "25000.00 USD" in text_of(reports.bill_pdf(data), tmp_path)


def test_customs_value_hidden_or_missing(tmp_path):
    data = bill()
    del data["lots"][0]["customs_value"]                       # a representative: the hash only
    assert "(hash)" in text_of(reports.bill_pdf(data), tmp_path)
    data["lots"][0]["customs_value"] = None                     # customs, no commercial data recorded
    assert "(hash)" not in text_of(reports.bill_pdf(data), tmp_path)
    [lot] = [r for r in csv.DictReader(io.StringIO(reports.bill_csv(data))) if r["section"] == "lot"]
    assert (lot["customs_value"], lot["currency"]) == ("", "")


def test_a_download_name_holds_only_safe_characters():
    """A lot id may hold '"', '/' or '\\' (printable ASCII): put as it is into ``filename="…"`` it ended the
    quoted string early or named a path. The name keeps letters, digits, '.', '-' and '_' (others become '_')."""
    from ipledger.gateway.api.common import download
    r = download("x", "text/csv", 'audit-L"1/../x\\y;z.csv')
    assert r.headers["Content-Disposition"] == 'attachment; filename="audit-L_1_.._x_y_z.csv"'
    assert download("x", "text/csv", "bill-of-discharge-FRIPO000001-2026-03-02.csv").headers[
        "Content-Disposition"] == 'attachment; filename="bill-of-discharge-FRIPO000001-2026-03-02.csv"'


def test_a_disposal_shows_its_exit_confirmation_and_a_transfers_reception(tmp_path):
    """The bill's CSV and PDF say when a re-export's exit was confirmed and when a transfer was received on the
    ledger (the contract's ``exit_confirmed`` and ``received``), not only the procedure code."""
    data = bill()
    data["disposals"] = [
        {**data["disposals"][0], "exit_confirmed": {"exit_date": "2026-05-04", "tx_id": "ab" * 32}},
        {**data["disposals"][0], "id": "B2", "procedure": "5151", "mrn": "26FR000110000008A6", "exit_confirmed": None,
         "received": {"recorded_at": "2026-05-06T10:00:00.000000Z", "tx_id": "cd" * 32}},
        {**data["disposals"][0], "id": "B3", "procedure": "5151", "mrn": "26FR000110000009A5", "exit_confirmed": None,
         "received": None}]
    rows = [r for r in csv.DictReader(io.StringIO(reports.bill_csv(data))) if r["section"] == "disposal"]
    assert [r["description"] for r in rows] == ["procedure 3151, exit confirmed 2026-05-04",
                                                "procedure 5151, received 2026-05-06", "procedure 5151"]
    text = re.sub(r"\s+", "", text_of(reports.bill_pdf(data), tmp_path))   # a cell may wrap
    assert "3151,exitconfirmed2026-05-04" in text and "5151,received2026-05-06" in text
