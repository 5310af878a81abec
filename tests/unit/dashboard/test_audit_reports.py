"""Audit trails (with endorsers read from the block) and reports (JSON, CSV, PDF)."""
from __future__ import annotations

import csv
import io
import subprocess

from fabric_protos.common import common_pb2
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import proposal_response_pb2, transaction_pb2

from ipledger.chaincode.testing.memstub import identity_pem
from ipledger.gateway.audit import transaction_info

from .conftest import AUTH, AUTH2, day


def _sid(msp: str, cn: str) -> bytes:
    return identities_pb2.SerializedIdentity(mspid=msp, id_bytes=identity_pem(msp, "client", cn)).SerializeToString()


def fake_block(number: int, tx_ids: list[str], creator_msp="BrokerMSP") -> common_pb2.Block:
    """A block whose transactions carry a creator and two endorsements (customs and the creator's org)."""
    block = common_pb2.Block(header=common_pb2.BlockHeader(number=number))
    for tx_id in tx_ids:
        ch = common_pb2.ChannelHeader(type=common_pb2.ENDORSER_TRANSACTION, tx_id=tx_id, channel_id="ip")
        sh = common_pb2.SignatureHeader(creator=_sid(creator_msp, f"User1@{creator_msp.lower()}"))
        cap = transaction_pb2.ChaincodeActionPayload(action=transaction_pb2.ChaincodeEndorsedAction(endorsements=[
            proposal_response_pb2.Endorsement(endorser=_sid("CustomsMSP", "peer0.customs")),
            proposal_response_pb2.Endorsement(endorser=_sid(creator_msp, f"peer0.{creator_msp.lower()}"))]))
        tx = transaction_pb2.Transaction(actions=[transaction_pb2.TransactionAction(payload=cap.SerializeToString())])
        payload = common_pb2.Payload(header=common_pb2.Header(channel_header=ch.SerializeToString(),
                                                              signature_header=sh.SerializeToString()),
                                     data=tx.SerializeToString())
        block.data.data.append(common_pb2.Envelope(payload=payload.SerializeToString()).SerializeToString())
    while len(block.metadata.metadata) <= common_pb2.TRANSACTIONS_FILTER:
        block.metadata.metadata.append(b"")
    block.metadata.metadata[common_pb2.TRANSACTIONS_FILTER] = bytes([0] * len(tx_ids))
    return block


class FakeReader:
    def __init__(self, ledger):
        self.ledger, self.reads = ledger, []

    def block(self, org, number):
        self.reads.append((org, number))
        tx_id = next(t for t, b in self.ledger.blocks.items() if b == number)
        return fake_block(number, ["00" * 32, tx_id])


def test_transaction_info_reads_creator_and_endorsers():
    info = transaction_info(fake_block(7, ["ab" * 32, "cd" * 32]), "cd" * 32)
    assert info["block_number"] == 7 and info["validation_code"] == "VALID"
    assert info["creator"]["msp_id"] == "BrokerMSP" and "CN=User1@brokermsp" in info["creator"]["subject"]
    assert info["endorsing_orgs"] == ["BrokerMSP", "CustomsMSP"]
    assert transaction_info(fake_block(7, ["ab" * 32]), "ef" * 32) is None


def test_lot_audit_trail_json_and_csv_cached_per_tx(scenario, live, api, ledger):
    reader = FakeReader(ledger)
    live.audit.reader = reader
    r = api.get("/api/v1/lots/L1/audit", "BrokerMSP")
    entries = r.get_json()["entries"]
    assert [e["event_type"] for e in entries] == ["PlaceUnderProcedure", "MoveGoods", "RecordProcessing", "ExitGoods"]
    first = entries[0]
    assert first["block_number"] == ledger.blocks[first["tx_id"]] and first["submitting_org"] == "BrokerMSP"
    assert first["endorsing_orgs"] == ["BrokerMSP", "CustomsMSP"] and first["submitter_subject"].startswith("CN=")
    assert first["recorded_at"].endswith("Z")
    assert all(org == "BrokerMSP" for org, _ in reader.reads)        # read from the caller's own peer
    n = len(reader.reads)
    csv_r = api.get("/api/v1/lots/L1/audit?format=csv", "CustomsMSP")
    assert csv_r.mimetype == "text/csv" and "attachment" in csv_r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(csv_r.get_data(as_text=True))))
    assert [row["tx_id"] for row in rows] == [e["tx_id"] for e in entries]
    assert rows[0]["endorsing_orgs"] == "BrokerMSP;CustomsMSP" and rows[0]["block_number"] == str(first["block_number"])
    assert len(reader.reads) == n                                    # cached per transaction
    # authorisation trail; the broker may not read AUTH2's
    trail = api.get(f"/api/v1/authorisations/{AUTH}/audit", "OperatorMSP").get_json()["entries"]
    assert [e["event_type"] for e in trail][:2] == ["GrantAuthorisation", "PlaceUnderProcedure"] and len(trail) == 6
    assert api.get(f"/api/v1/authorisations/{AUTH2}/audit", "BrokerMSP").status_code == 403
    assert api.get("/api/v1/lots/L1/audit?format=xml", "BrokerMSP").status_code == 400


def test_bill_of_discharge_report_json_csv(scenario, api):
    data = api.get(f"/api/v1/reports/bill-of-discharge/{AUTH}?as_of={day(1)}", "OperatorMSP").get_json()
    assert [lot["lot_id"] for lot in data["lots"]] == ["L1", "L2"]
    assert data["lots"][0]["customs_value"] == {"amount": "25000.00", "currency": "EUR"}
    assert all(t["block_number"] for t in data["proof"]["transactions"])
    broker = api.get(f"/api/v1/reports/bill-of-discharge/{AUTH}?as_of={day(1)}", "BrokerMSP").get_json()
    assert "customs_value" not in broker["lots"][0] and broker["document_hash"] == data["document_hash"]
    text = api.get(f"/api/v1/reports/bill-of-discharge/{AUTH}?as_of={day(1)}&format=csv", "OperatorMSP").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    lot_rows = [(r["id"], r["mrn"], r["quantity"], r["remaining"]) for r in rows if r["section"] == "lot"]
    assert lot_rows == [("L1", "26FR000110000001R8", "1000", "500"), ("L2", "26FR000110000002R7", "4200", "4200")]
    assert [(r["id"], r["mrn"], r["quantity"]) for r in rows if r["section"] == "disposal"] == [
        ("B1", "26FR000110000007A7", "495")]
    # each disposal states the input goods it stands for (duty on a 4051 release is computed from them):
    # B1's 495 tyres came from 500 of L1's
    assert data["disposals"][0]["input_goods"] == [{"lot_id": "L1", "cn": "40122000", "unit": "p/st",
                                                    "quantity": 500}]
    assert [r["input_goods"] for r in rows if r["section"] == "disposal"] == ["L1 500 p/st"]
    assert rows[-1]["section"] == "document_hash" and rows[-1]["reference"] == data["document_hash"]
    assert api.get(f"/api/v1/reports/bill-of-discharge/{AUTH}?as_of={day(1)}&period_end={day(1)}",
                   "OperatorMSP").status_code == 400


def test_inventory_report_follows_visibility(scenario, api):
    data = api.get(f"/api/v1/reports/inventory?as_of={day(1)}", "CustomsMSP").get_json()
    assert [s["authorisation_id"] for s in data["authorisations"]] == [AUTH, AUTH2]
    lines = [(l["goods"], l["id"], l["quantity"], l["status"]) for l in data["lines"]]
    # waste is under the procedure like any processed product (issue 13): a batch line, not a separate one
    assert lines == [("LOT", "L1", 500, "OPEN"), ("LOT", "L2", 4200, "OPEN"), ("BATCH", "B2", 1200, "OPEN")]
    assert {(t["goods"], t["cn"], t["quantity"]) for t in data["totals"]} == {("LOT", "40122000", 4700),
                                                                            ("BATCH", "40040000", 1200)}
    broker = api.get(f"/api/v1/reports/inventory?as_of={day(1)}", "BrokerMSP").get_json()
    assert [s["authorisation_id"] for s in broker["authorisations"]] == [AUTH]
    asked = api.get(f"/api/v1/reports/inventory?as_of={day(1)}&authorisation_id={AUTH2}", "BrokerMSP").get_json()
    assert asked["authorisations"] == [] and asked["totals"] == []
    # named, so said to be left out — in the words a missing one gets (nothing more is told than GetAuthorisation)
    assert asked["not_included"] == [AUTH2] and broker["not_included"] == []
    missing = api.get(f"/api/v1/reports/inventory?as_of={day(1)}&authorisation_id={AUTH}"
                      "&authorisation_id=FRIPO999999", "BrokerMSP").get_json()
    assert [s["authorisation_id"] for s in missing["authorisations"]] == [AUTH]
    assert missing["not_included"] == ["FRIPO999999"]
    pdf = api.get(f"/api/v1/reports/inventory?as_of={day(1)}&authorisation_id={AUTH2}&format=pdf", "BrokerMSP")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert api.get("/api/v1/reports/inventory", "CustomsMSP").status_code == 400     # as_of required
    # an authorisation named twice is counted once
    twice = api.get(f"/api/v1/reports/inventory?as_of={day(1)}&authorisation_id={AUTH}&authorisation_id={AUTH}",
                    "CustomsMSP").get_json()
    assert [s["authorisation_id"] for s in twice["authorisations"]] == [AUTH]
    once = api.get(f"/api/v1/reports/inventory?as_of={day(1)}&authorisation_id={AUTH}", "CustomsMSP").get_json()
    assert twice["totals"] == once["totals"] and twice["lines"] == once["lines"] and once["totals"]
    # before anything was placed: nothing under the procedure
    assert api.get(f"/api/v1/reports/inventory?as_of={day(-1)}", "CustomsMSP").get_json()["lines"] == []


def test_pdf_reports_render_and_read_back(scenario, api, tmp_path):
    r = api.get(f"/api/v1/reports/bill-of-discharge/{AUTH}?as_of={day(1)}&format=pdf", "OperatorMSP")
    assert r.mimetype == "application/pdf" and r.data.startswith(b"%PDF-1.4")
    pdf = tmp_path / "bill.pdf"
    pdf.write_bytes(r.data)
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(pdf), str(tmp_path / "page")], check=True)
    assert (tmp_path / "page-1.png").stat().st_size > 1000
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    assert f"Bill of discharge {AUTH}" in text
    assert "26FR000110000001R8" in text and "26FR000110000007A7" in text and "25000.00" in text
    assert "Conservation holds for every lot and batch: yes" in text
    assert "input goods it stands for" in text and "L1 500 p/st" in text
    inv = api.get(f"/api/v1/reports/inventory?as_of={day(1)}&format=pdf", "BrokerMSP")
    (tmp_path / "inv.pdf").write_bytes(inv.data)
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "inv.pdf"), "-"], check=True, capture_output=True,
                          text=True).stdout
    assert f"Inventory of goods under inward processing at {day(1)}" in text
    assert "L2" in text and "4200" in text and AUTH2 not in text
