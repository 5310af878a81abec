"""Reports: the bill of discharge of an authorisation and the inventory of goods under the procedure.

Both come from the contract's ``GetBillOfDischargeData`` (domain.md §7), evaluated as the caller's org
(so visibility and commercial data follow the contract's rules: the broker gets hashes only):

* **bill of discharge** — ``period_end`` (the formal bill: lots whose period for discharge ended in the
  period) or ``as_of`` (the audit view); the proof's transactions get their block numbers;
* **inventory** at a date — for each authorisation the caller may read (the ids the gateway knows, or the
  ones asked for): the goods still under the procedure at the end of that date (lots and processed
  products — waste included — with their balance, deadline and status), with totals per goods code.

Rendered as JSON, CSV (one table, a ``section`` column; text cells that a spreadsheet could take for a
formula are made inert, see :mod:`gateway.csvsafe`) or PDF (:class:`SimplePdf`: a small PDF 1.4
writer with the standard Courier/Helvetica fonts — no dependency; text is extractable, e.g. by
``pdftotext``).
"""
from __future__ import annotations

import csv
import datetime as dt
import io

from .csvsafe import cell as csv_cell
from .problems import Problem


# ------------------------------------------------------------------------------------------ data

def bill_of_discharge(service, org: str, authorisation_id: str, period_end: str | None = None,
                      as_of: str | None = None) -> dict:
    channel, data = service.evaluate_where(org, "GetBillOfDischargeData", authorisation_id, period_end, as_of)
    proof = data.get("proof") or {}
    if isinstance(proof.get("transactions"), list):
        proof["transactions"] = service.with_blocks(org, proof["transactions"], channel)
    return {"report": "bill-of-discharge", "generated_at": _now(), "generated_for": org, **data}


def inventory(service, org: str, authorisation_ids: list[str], as_of: str) -> dict:
    sections, lines, totals = [], [], {}
    for auth_id in authorisation_ids:
        try:
            data = service.evaluate_json(org, "GetBillOfDischargeData", auth_id, None, as_of)
        except Problem as p:
            if p.status in (403, 404):
                continue  # not the caller's to see (or not there)
            raise
        lots = {line["lot_id"]: line for line in data.get("lots", [])}
        rows = []
        for r in data.get("remaining", []):
            lot = lots.get(r["id"]) if r["goods"] == "LOT" else None
            rows.append({"authorisation_id": auth_id, "goods": r["goods"], "id": r["id"], "cn": r["cn"],
                         "description": lot.get("description") if lot else None,
                         "mrn": lot.get("mrn") if lot else None, "quantity": r["quantity"], "unit": r["unit"],
                         "deadline": r["deadline"], "status": r["status"]})
        for row in rows:
            key = (row["goods"], row["cn"], row["unit"])
            totals[key] = totals.get(key, 0) + row["quantity"]
        sections.append({"authorisation_id": auth_id, "holder_eori": data.get("holder_eori"),
                         "supervising_office": data.get("supervising_office"), "cutoff": data.get("cutoff"),
                         "lines": rows, "document_hash": data.get("document_hash")})
        lines.extend(rows)
    return {"report": "inventory", "as_of": as_of, "generated_at": _now(), "generated_for": org,
            "authorisations": sections, "lines": lines,
            "totals": [{"goods": g, "cn": cn, "unit": u, "quantity": q} for (g, cn, u), q in sorted(totals.items())]}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------------------ CSV

def _csv(rows: list[dict]) -> str:
    columns: list[str] = []
    for r in rows:
        for k in r:
            if k not in columns:
                columns.append(k)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([csv_cell(r.get(c)) for c in columns])
    return out.getvalue()


def _input_goods(line: dict) -> str:
    """The goods placed under the procedure that a disposal or loss stands for, e.g. ``L1 500 p/st``
    (what duty on a release for free circulation, 4051, is computed from)."""
    return "; ".join(f"{g['lot_id']} {g['quantity']} {g['unit']}" for g in line.get("input_goods") or [])


def bill_rows(data: dict) -> list[dict]:
    rows = []
    for lot in data.get("lots", []):
        rows.append({"section": "lot", "id": lot["lot_id"], "mrn": lot["mrn"], "date": lot["accepted_at"],
                     "cn": lot["cn"], "description": lot["description"], "quantity": lot["quantity"],
                     "unit": lot["unit"], "deadline": lot["deadline"], "remaining": lot["remaining"],
                     "customs_value": (lot.get("customs_value") or {}).get("amount") if lot.get("customs_value") else None,
                     "reference": lot.get("customs_value_hash")})
        for p in lot.get("products", []):
            rows.append({"section": "product", "id": p["batch_id"], "cn": p["cn"], "description": p["kind"],
                         "quantity": p["quantity"], "unit": p["unit"], "reference": lot["lot_id"]})
    for op in data.get("processing", []):
        for y in op.get("yield", []):
            rows.append({"section": "yield", "id": op["operation_id"], "date": op["recorded_at"], "cn": y.get("output_cn"),
                         "description": f"actual {y.get('actual_per_input')} / authorised {y.get('authorised_per_input')}",
                         "quantity": y.get("deviation_pct"), "unit": "%", "reference": op["tx_id"]})
    for d in data.get("disposals", []):
        rows.append({"section": "disposal", "id": d["id"], "mrn": d["mrn"], "date": d["recorded_at"], "cn": d["cn"],
                     "description": f"procedure {d['procedure']}", "quantity": d["quantity"], "unit": d["unit"],
                     "input_goods": _input_goods(d), "reference": d["tx_id"]})
    for x in data.get("losses", []):
        rows.append({"section": "loss", "id": x["id"], "date": x["recorded_at"], "cn": x["cn"], "description": x["reason"],
                     "quantity": x["quantity"], "unit": x["unit"], "input_goods": _input_goods(x),
                     "reference": x["evidence_hash"]})
    for w in data.get("waste", []):
        rows.append({"section": "waste", "id": w["batch_id"], "cn": w["cn"], "quantity": w["produced"], "unit": w["unit"],
                     "remaining": w["remaining"]})
    for r in data.get("remaining", []):
        rows.append({"section": "remaining", "id": r["id"], "cn": r["cn"], "description": r["status"],
                     "quantity": r["quantity"], "unit": r["unit"], "deadline": r["deadline"]})
    for name, totals in (data.get("totals") or {}).items():
        for t in totals:
            rows.append({"section": f"total-{name}", "id": t.get("procedure") or t.get("kind") or t.get("reason")
                         or t.get("goods"), "cn": t["cn"], "quantity": t["quantity"], "unit": t["unit"]})
    for t in (data.get("proof") or {}).get("transactions", []):
        rows.append({"section": "transaction", "id": t["event_id"], "date": t["recorded_at"],
                     "description": t["event_type"], "reference": t["tx_id"], "block_number": t.get("block_number")})
    rows.append({"section": "document_hash", "reference": data.get("document_hash")})
    return rows


def bill_csv(data: dict) -> str:
    return _csv(bill_rows(data))


def inventory_csv(data: dict) -> str:
    return _csv(data["lines"])


# ------------------------------------------------------------------------------------------ PDF

class SimplePdf:
    """Text-only PDF pages (A4, standard fonts, WinAnsi)."""

    WIDTH, HEIGHT, MARGIN = 595, 842, 40

    def __init__(self, title: str):
        self.title = title
        self.pages: list[list[str]] = []
        self._y = 0.0
        self._new_page()

    def _new_page(self) -> None:
        self.pages.append([])
        self._y = self.HEIGHT - self.MARGIN

    @staticmethod
    def _escape(text: str) -> str:
        raw = text.encode("cp1252", errors="replace").decode("latin-1")
        return raw.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    def text(self, text: str, size: float = 8, font: str = "F1", gap: float = 2) -> None:
        if self._y - size < self.MARGIN:
            self._new_page()
        self._y -= size
        self.pages[-1].append(f"BT /{font} {size} Tf {self.MARGIN} {self._y:.1f} Td ({self._escape(text)}) Tj ET")
        self._y -= gap

    def heading(self, text: str, size: float = 12) -> None:
        self._y -= 6
        self.text(text, size=size, font="F2", gap=4)

    def table(self, columns: list[tuple[str, int]], rows: list[list]) -> None:
        def fmt(values):
            return " ".join(str("" if v is None else v)[:w].ljust(w) for v, (_, w) in zip(values, columns)).rstrip()
        self.text(fmt([c for c, _ in columns]), font="F3")
        self.text("-" * min(110, sum(w + 1 for _, w in columns)))
        for r in rows:
            self.text(fmt(r))

    def render(self) -> bytes:
        objects: list[bytes] = []

        def add(body: bytes) -> int:
            objects.append(body)
            return len(objects)

        catalog = add(b"")  # placeholder, filled below
        pages_obj = add(b"")
        fonts = {"F1": add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>"),
                 "F2": add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>"),
                 "F3": add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier-Bold /Encoding /WinAnsiEncoding >>")}
        font_dict = " ".join(f"/{k} {v} 0 R" for k, v in fonts.items())
        page_ids = []
        total = len(self.pages)
        for n, ops in enumerate(self.pages, start=1):
            footer = (f"BT /F1 7 Tf {self.MARGIN} 20 Td ({self._escape(self.title)} - page {n} of {total}) Tj ET")
            stream = "\n".join([*ops, footer]).encode("latin-1")
            content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
            page_ids.append(add(f"<< /Type /Page /Parent {pages_obj} 0 R /MediaBox [0 0 {self.WIDTH} {self.HEIGHT}] "
                                f"/Resources << /Font << {font_dict} >> >> /Contents {content} 0 R >>".encode()))
        objects[catalog - 1] = f"<< /Type /Catalog /Pages {pages_obj} 0 R >>".encode()
        kids = " ".join(f"{p} 0 R" for p in page_ids)
        objects[pages_obj - 1] = f"<< /Type /Pages /Kids [{kids}] /Count {len(page_ids)} >>".encode()
        info = add(f"<< /Title ({self._escape(self.title)}) /Producer (ipledger gateway) >>".encode("latin-1"))
        out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for i, body in enumerate(objects, start=1):
            offsets.append(len(out))
            out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
        xref = len(out)
        out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
        for off in offsets:
            out += f"{off:010d} 00000 n \n".encode()
        out += (f"trailer\n<< /Size {len(objects) + 1} /Root {catalog} 0 R /Info {info} 0 R >>\n"
                f"startxref\n{xref}\n%%EOF\n").encode()
        return bytes(out)


def bill_pdf(data: dict) -> bytes:
    scope = data.get("scope") or {}
    title = f"Bill of discharge {data['authorisation_id']}"
    pdf = SimplePdf(title)
    pdf.heading(title, 14)
    what = (f"period ending {scope.get('period_end')} (from {scope.get('period_start') or 'the grant'}), "
            f"due {scope.get('due')}" if scope.get("mode") == "PERIOD" else f"audit view as of {scope.get('as_of')}")
    for line in (f"Holder {data.get('holder_eori')}  -  supervising office {data.get('supervising_office')}  -  "
                 f"authorisation version {data.get('authorisation_version')}",
                 f"Scope: {what}", f"Cut-off {data.get('cutoff')}  -  generated {data.get('generated_at')} for "
                 f"{data.get('generated_for')}"):
        pdf.text(line, size=9, font="F1")
    pdf.heading("1. Goods placed under the procedure")
    pdf.table([("lot", 8), ("MRN", 18), ("accepted", 10), ("CN", 8), ("qty", 8), ("unit", 4), ("remaining", 9),
               ("deadline", 10), ("value", 10)],
              [[lot["lot_id"], lot["mrn"], lot["accepted_at"][:10], lot["cn"], lot["quantity"], lot["unit"],
                lot["remaining"], lot["deadline"][:10],
                (lot.get("customs_value") or {}).get("amount") if lot.get("customs_value") else "(hash)"]
               for lot in data.get("lots", [])])
    pdf.heading("2. Products obtained")
    pdf.table([("lot", 8), ("batch", 10), ("CN", 8), ("kind", 9), ("qty", 8), ("unit", 4)],
              [[lot["lot_id"], p["batch_id"], p["cn"], p["kind"], p["quantity"], p["unit"]]
               for lot in data.get("lots", []) for p in lot.get("products", [])])
    rows = []
    for op in data.get("processing", []):
        for y in op.get("yield", []):
            rows.append([op["operation_id"], op["recorded_at"][:10], y.get("output_cn"), y.get("authorised_per_input"),
                         y.get("actual_per_input"), y.get("deviation_pct")])
    pdf.heading("Rates of yield")
    pdf.table([("operation", 10), ("date", 10), ("output", 8), ("authorised", 10), ("actual", 10), ("dev. %", 8)], rows)
    pdf.heading("3. Disposals")
    pdf.table([("goods", 10), ("procedure", 9), ("MRN", 18), ("date", 10), ("CN", 8), ("qty", 8), ("unit", 4),
               ("input goods it stands for", 26)],
              [[d["id"], d["procedure"], d["mrn"], d["recorded_at"][:10], d["cn"], d["quantity"], d["unit"],
                _input_goods(d)] for d in data.get("disposals", [])])
    pdf.heading("4. Losses and destructions")
    pdf.table([("goods", 10), ("reason", 13), ("date", 10), ("qty", 8), ("unit", 4), ("evidence", 24),
               ("input goods", 20)],
              [[x["id"], x["reason"], x["recorded_at"][:10], x["quantity"], x["unit"], x["evidence_hash"],
                _input_goods(x)] for x in data.get("losses", [])])
    pdf.heading("Waste and scrap (under the procedure until exited or destroyed; also in 5.)")
    pdf.table([("batch", 10), ("CN", 8), ("produced", 9), ("remaining", 9), ("unit", 4)],
              [[w["batch_id"], w["cn"], w["produced"], w["remaining"], w["unit"]] for w in data.get("waste", [])])
    pdf.heading("5. Remaining balances")
    pdf.table([("goods", 6), ("id", 10), ("CN", 8), ("qty", 8), ("unit", 4), ("deadline", 10), ("status", 15)],
              [[r["goods"], r["id"], r["cn"], r["quantity"], r["unit"], r["deadline"][:10], r["status"]]
               for r in data.get("remaining", [])])
    proof = data.get("proof") or {}
    pdf.heading("6. Proof")
    pdf.text(f"Conservation holds for every lot and batch: {'yes' if proof.get('conservation_holds') else 'NO'}")
    pdf.text(f"Alert changes in the period: {len(proof.get('alerts', []))}; controls: {len(proof.get('controls', []))}")
    pdf.table([("block", 6), ("event", 22), ("recorded", 20), ("tx id", 64)],
              [[t.get("block_number"), t["event_type"], t["recorded_at"][:19], t["tx_id"]]
               for t in proof.get("transactions", [])])
    pdf.text(f"Document hash: {data.get('document_hash')}", size=8)
    return pdf.render()


def inventory_pdf(data: dict) -> bytes:
    title = f"Inventory of goods under inward processing at {data['as_of']}"
    pdf = SimplePdf(title)
    pdf.heading(title, 13)
    pdf.text(f"Generated {data['generated_at']} for {data['generated_for']}", size=9)
    for section in data["authorisations"]:
        pdf.heading(f"Authorisation {section['authorisation_id']} - holder {section['holder_eori']}")
        pdf.table([("goods", 6), ("id", 10), ("CN", 8), ("description", 16), ("MRN", 18), ("qty", 8), ("unit", 4),
                   ("deadline", 10), ("status", 8)],
                  [[r["goods"], r["id"], r["cn"], r["description"], r["mrn"], r["quantity"], r["unit"],
                    (r["deadline"] or "")[:10], r["status"]] for r in section["lines"]])
    pdf.heading("Totals")
    pdf.table([("goods", 6), ("CN", 8), ("quantity", 10), ("unit", 4)],
              [[t["goods"], t["cn"], t["quantity"], t["unit"]] for t in data["totals"]])
    return pdf.render()
