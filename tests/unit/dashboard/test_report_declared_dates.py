"""The bill's reports give the date a lot, a disposal or a loss was declared, not the ledger's recording time."""
from __future__ import annotations

from ipledger.gateway import reports

from .test_report_figures import text_of


def _bill() -> dict:
    return {"report": "bill-of-discharge", "authorisation_id": "FRIPO000001", "scope": {"mode": "AS_OF", "as_of": "2026-12-07T10:00:00Z"},
            "cutoff": "2026-12-07T10:00:00.000001Z", "generated_at": "2026-12-07T10:00:00Z", "generated_for": "CustomsMSP",
            "lots": [{"lot_id": "L1", "mrn": "26FR000110000001R8", "item_no": 1,
                      "accepted_at": "2026-12-07T09:00:00.000000Z", "declared_at": "2026-11-25T09:00:00.000000Z",
                      "cn": "40122000", "description": "used tyres", "quantity": 100, "unit": "p/st", "remaining": 0,
                      "deadline": "2027-05-24T09:00:00.000000Z", "customs_value_hash": "ab" * 32,
                      "products": [{"batch_id": "B2", "cn": "40040000", "kind": "WASTE", "unit": "kg", "quantity": 0,
                                    "input_qty": 100}]}],
            "disposals": [{"id": "L1", "goods": "LOT", "mrn": "26FR000110000002A5", "procedure": "3151",
                           "occurred_at": "2026-11-27T09:00:00+01:00", "recorded_at": "2026-12-07T09:00:00.000000Z",
                           "declared_at": "2026-11-27T08:00:00.000000Z",
                           "exit_confirmed": {"exit_date": "2026-11-28", "tx_id": "t2"}, "cn": "40122000",
                           "quantity": 100, "unit": "p/st", "input_goods": [], "tx_id": "t1"}],
            "losses": [{"id": "B2", "goods": "BATCH", "reason": "DESTROYED", "occurred_at": "2026-11-30T00:00:00Z",
                        "recorded_at": "2026-12-07T09:30:00.000000Z", "declared_at": "2026-11-30T00:00:00.000000Z", "cn": "40040000", "quantity": 1, "unit": "kg",
                        "evidence_hash": "cd" * 32, "input_goods": [{"lot_id": "L1", "quantity": 100, "unit": "p/st"}]}],
            "remaining": [], "waste": [], "processing": [], "totals": {}}


def test_the_bill_rows_give_the_declared_dates():
    rows = {r["section"]: r for r in reports.bill_rows(_bill())}
    assert rows["lot"]["date"] == "2026-11-25T09:00:00.000000Z"        # not the recording, twelve days later
    assert rows["disposal"]["date"] == "2026-11-27T08:00:00.000000Z"   # declared before its confirmation
    assert rows["loss"]["date"] == "2026-11-30T00:00:00.000000Z"
    assert rows["product"]["input_goods"] == "L1 100 p/st" and rows["product"]["quantity"] == 0


def test_a_bill_computed_before_lots_carried_their_declaration_gives_the_recording(tmp_path):
    data = _bill()
    del data["lots"][0]["declared_at"]
    rows = {r["section"]: r for r in reports.bill_rows(data)}
    assert rows["lot"]["date"] == "2026-12-07T09:00:00.000000Z"
    assert "recorded" in text_of(reports.bill_pdf(data), tmp_path, layout=True)   # and its column says so


def test_a_bill_computed_before_discharges_carried_their_declaration_gives_the_recording(tmp_path):
    """The dates of disposals and losses are the contract's (``declared_at``, bill format ``discharge_dates``);
    a bill computed before gives each line's recording, and its columns say so."""
    data = _bill()
    for line in (*data["disposals"], *data["losses"]):
        del line["declared_at"]
    rows = {r["section"]: r for r in reports.bill_rows(data)}
    assert rows["disposal"]["date"] == "2026-12-07T09:00:00.000000Z"
    assert rows["loss"]["date"] == "2026-12-07T09:30:00.000000Z"
    text = text_of(reports.bill_pdf(data), tmp_path, layout=True)
    assert "occurred" not in text and text.count("recorded") >= 2


def test_the_bill_pdf_names_the_dates_it_gives(tmp_path):
    text = text_of(reports.bill_pdf(_bill()), tmp_path, layout=True)
    assert "declared" in text and "occurred" in text and "accepted" not in text   # (headers wrap)
    assert "2026-11-25" in text and "2026-11-27" in text
