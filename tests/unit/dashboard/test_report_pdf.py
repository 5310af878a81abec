"""The report PDFs (gateway/reports.py, written with fpdf2): content read back with poppler's pdftotext,
non-Latin-1 text, long tables over several pages, the same bytes for the same report, and the fallback to
the standard fonts where the system has no DejaVu Sans."""
from __future__ import annotations

import re
import subprocess

import pytest

from ipledger.gateway import reports

TX = [f"{n:064x}" for n in range(1, 81)]


def bill(holder_name="Opérateur Łódź", **extra) -> dict:
    lot = {"lot_id": "L1", "mrn": "26FR000110000001R8", "accepted_at": "2026-01-05T10:00:00Z", "cn": "40122000",
           "description": "pneus usagés", "quantity": 1000, "unit": "p/st", "remaining": 500,
           "deadline": "2026-07-04T10:00:00Z", "customs_value": {"amount": "25000.00", "currency": "EUR"},
           "products": [{"batch_id": "B1", "cn": "40121200", "kind": "MAIN", "quantity": 495, "unit": "p/st"}]}
    return {"report": "bill-of-discharge", "generated_at": "2026-03-01T08:30:00Z",
            "generated_for": f"OperatorMSP ({holder_name}, fee 12 €)", "authorisation_id": "FRIPO000001",
            "authorisation_version": 2, "holder_eori": "FR12345678901234", "supervising_office": "FR000110",
            "cutoff": "2026-03-01T00:00:00Z", "scope": {"mode": "AS_OF", "as_of": "2026-03-01T00:00:00Z"},
            "lots": [lot],
            "processing": [{"operation_id": "OP1", "recorded_at": "2026-01-10T09:00:00Z", "tx_id": TX[0],
                            "yield": [{"output_cn": "40121200", "authorised_per_input": "1", "actual_per_input": "0.99",
                                       "deviation_pct": "1"}]}],
            "disposals": [{"id": "B1", "procedure": "3151", "mrn": "26FR000110000007A7",
                           "recorded_at": "2026-02-01T09:00:00Z", "cn": "40121200", "quantity": 495, "unit": "p/st",
                           "tx_id": TX[1], "input_goods": [{"lot_id": "L1", "quantity": 500, "unit": "p/st"},
                                                           {"lot_id": "L7", "quantity": 12, "unit": "p/st"}]}],
            "losses": [], "waste": [{"batch_id": "B2", "cn": "40040000", "produced": 1200, "remaining": 1200,
                                     "unit": "kg"}],
            "remaining": [{"goods": "LOT", "id": "L1", "cn": "40122000", "quantity": 500, "unit": "p/st",
                           "deadline": "2026-07-04T10:00:00Z", "status": "OPEN"}],
            "proof": {"conservation_holds": True, "alerts": [], "controls": [],
                      "transactions": [{"block_number": 7 + n, "event_type": "PlaceUnderProcedure",
                                        "recorded_at": "2026-01-05T10:00:00Z", "tx_id": tx, "event_id": f"e{n}"}
                                       for n, tx in enumerate(TX)]},
            "document_hash": "ab" * 32, **extra}


def inventory() -> dict:
    line = {"authorisation_id": "FRIPO000001", "goods": "LOT", "id": "L1", "cn": "40122000",
            "description": "pneus rechapés — qualité « A »", "mrn": "26FR000110000001R8", "quantity": 500,
            "unit": "p/st", "deadline": "2026-07-04T10:00:00Z", "status": "OPEN"}
    return {"report": "inventory", "as_of": "2026-03-01", "generated_at": "2026-03-01T08:30:00Z",
            "generated_for": "CustomsMSP",
            "authorisations": [{"authorisation_id": "FRIPO000001", "holder_eori": "FR12345678901234",
                                "lines": [line]}],
            "lines": [line], "totals": [{"goods": "LOT", "cn": "40122000", "unit": "p/st", "quantity": 500}]}


def text_of(pdf: bytes, tmp_path, name="r.pdf") -> str:
    path = tmp_path / name
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True,
                          text=True).stdout


def pages_of(pdf: bytes, tmp_path) -> int:
    path = tmp_path / "p.pdf"
    path.write_bytes(pdf)
    info = subprocess.run(["pdfinfo", str(path)], check=True, capture_output=True, text=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))


@pytest.fixture
def no_system_font(monkeypatch, tmp_path):
    monkeypatch.setattr(reports, "FONT_DIRS", (tmp_path / "no-fonts",))


@pytest.fixture
def dejavu():
    """The reports' Unicode font: Debian's fonts-dejavu-core (scripts/test installs it; so does the gateway image)."""
    files = reports.unicode_font_files()
    assert files is not None, "no DejaVu Sans on this system: install Debian's fonts-dejavu-core"
    return files


def test_bill_with_the_unicode_font(dejavu, tmp_path):
    pdf = reports.bill_pdf(bill())
    assert pdf.startswith(b"%PDF-1.4") and b"/FontFile2" in pdf        # DejaVu Sans, embedded (a subset)
    text = text_of(pdf, tmp_path)
    assert "Bill of discharge FRIPO000001" in text and "Opérateur Łódź, fee 12 €" in text
    assert "26FR000110000001R8" in text and "25000.00" in text and "input goods it stands for" in text
    assert "L1 500 p/st; L7 12 p/st" in text        # not cut to the column's width: the cell wraps if need be
    assert "Conservation holds for every lot and batch: yes" in text
    # 80 proof transactions: several pages, every tx id whole, the table's heading row on each page
    assert all(tx in text for tx in TX)
    n = pages_of(pdf, tmp_path)
    assert n >= 2 and f"Bill of discharge FRIPO000001 - page {n} of {n}" in text
    assert text.count("tx id") == n - text.split("6. Proof")[0].count("\f")


def test_inventory_with_the_unicode_font(dejavu, tmp_path):
    text = text_of(reports.inventory_pdf(inventory()), tmp_path)
    assert "Inventory of goods under inward processing at 2026-03-01" in text
    assert "pneus rechapés" in text and "« A »" in text and "500" in text


def test_same_report_same_bytes_dated_by_generated_at():
    data = bill()
    first = reports.bill_pdf(data)
    assert reports.bill_pdf(data) == first
    assert b"/CreationDate (D:20260301083000Z" in first
    assert reports.bill_pdf({**data, "generated_at": "2026-03-02T08:30:00Z"}) != first


def test_standard_fonts_when_the_system_has_no_dejavu(no_system_font, tmp_path):
    assert reports.unicode_font_files() is None
    pdf = reports.bill_pdf(bill())
    assert pdf.startswith(b"%PDF-1.4") and b"/FontFile2" not in pdf and b"/Helvetica" in pdf
    text = text_of(pdf, tmp_path)
    # Windows-1252 has é and €; not Ł, which prints as "?" (no error)
    assert "Opérateur ?ód?, fee 12 €" in text and "L1 500 p/st; L7 12 p/st" in text
    assert all(tx in text for tx in TX) and "Document hash: " + "ab" * 32 in text
    inv = text_of(reports.inventory_pdf(inventory()), tmp_path, "inv.pdf")
    assert "pneus rechapés —" in inv and "qualité « A »" in inv       # a long cell wraps in its column


def test_font_dirs_need_regular_and_bold(monkeypatch, tmp_path):
    half = tmp_path / "half"
    half.mkdir()
    (half / "DejaVuSans.ttf").write_bytes(b"")
    monkeypatch.setattr(reports, "FONT_DIRS", (half,))
    assert reports.unicode_font_files() is None
    assert reports._creation_date("not a date").year == 1970
    assert reports._creation_date("2026-03-01T08:30:00").tzinfo is not None
