"""Reports: the bill of discharge of an authorisation and the inventory of goods under the procedure.

Both come from the contract's ``GetBillOfDischargeData`` (domain.md §7), evaluated as the caller's org
(so visibility and commercial data follow the contract's rules: the broker gets hashes only):

* **bill of discharge** — ``period_end`` (the formal bill: lots whose period for discharge ended in the
  period) or ``as_of`` (the audit view); the proof's transactions get their block numbers;
* **inventory** at a date — for each authorisation the caller may read (the ids the gateway knows, or the
  ones asked for): the goods still under the procedure at the end of that date (lots and processed
  products — waste included — with their balance, deadline and status), with totals per goods code.

Rendered as JSON, CSV (one table, a ``section`` column; text cells that a spreadsheet could take for a
formula are made inert, see :mod:`ipledger.gateway.csvsafe`) or PDF (:class:`ReportPdf`, written with fpdf2:
A4, tables whose long cells wrap, text extractable e.g. by ``pdftotext``; the Unicode font DejaVu Sans
when the system has it, else the standard fonts — see :data:`FONT_DIRS`). A PDF is a function of the
report's data: its creation date is the report's ``generated_at``.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
from decimal import Decimal
from pathlib import Path

from fpdf import FPDF

from ipledger.gateway import moments
from ipledger.gateway.csvsafe import cell as csv_cell
from ipledger.gateway.problems import Problem


# ------------------------------------------------------------------------------------------ data

def bill_of_discharge(service, org: str, authorisation_id: str, period_end: str | None = None,
                      as_of: str | None = None, channel: str | None = None) -> dict:
    """``channel``: on a gateway of several holders' channels, the one asked about (None: the one that knows it)."""
    channel, data = service.evaluate_where(org, "GetBillOfDischargeData", authorisation_id, period_end, as_of,
                                           channel=channel)
    proof = data.get("proof") or {}
    if isinstance(proof.get("transactions"), list):
        proof["transactions"] = service.with_blocks(org, proof["transactions"], channel)
    return {"report": "bill-of-discharge", "generated_at": moments.now_text(), "generated_for": org, **data}


def inventory(service, org: str, authorisation_ids: list[str], as_of: str, channel: str | None = None) -> dict:
    """``channel``: on a gateway of several holders' channels, only that one's authorisations (None: every one).
    An authorisation that is not there or not the caller's to see is left out and named in ``not_included`` (one
    list for both, as the contract answers both alike): the totals are then those of the others, and say so."""
    sections, lines, totals, not_included = [], [], {}, []
    for auth_id in authorisation_ids:
        try:
            answers = service.evaluate_each(org, "GetBillOfDischargeData", auth_id, None, as_of, channel=channel)
        except Problem as p:
            if p.status in (403, 404):
                not_included.append(auth_id)
                continue
            raise
        for on, data in answers:   # an id on several holders' channels: a section for each, naming its channel
            _inventory_section(sections, lines, totals, auth_id, data, on if len(answers) > 1 else None)
    return {"report": "inventory", "as_of": as_of, "generated_at": moments.now_text(), "generated_for": org,
            "authorisations": sections, "lines": lines, "not_included": not_included,
            "totals": [{"goods": g, "cn": cn, "unit": u, "quantity": q} for (g, cn, u), q in sorted(totals.items())]}


def _inventory_section(sections: list, lines: list, totals: dict, auth_id: str, data: dict,
                       channel: str | None) -> None:
    """One authorisation's section of the inventory, its lines and their totals, from its bill-of-discharge data."""
    lots = {line["lot_id"]: line for line in data.get("lots", [])}
    on = {"channel": channel} if channel else {}
    rows = []
    for r in data.get("remaining", []):
        lot = lots.get(r["id"]) if r["goods"] == "LOT" else None
        rows.append({"authorisation_id": auth_id, **on, "goods": r["goods"], "id": r["id"], "cn": r["cn"],
                     "description": lot.get("description") if lot else None,
                     "mrn": lot.get("mrn") if lot else None, "quantity": r["quantity"], "unit": r["unit"],
                     "deadline": r["deadline"], "status": r["status"]})
    for row in rows:
        key = (row["goods"], row["cn"], row["unit"])
        totals[key] = totals.get(key, 0) + row["quantity"]
    sections.append({"authorisation_id": auth_id, **on, "holder_eori": data.get("holder_eori"),
                     "supervising_office": data.get("supervising_office"), "cutoff": data.get("cutoff"),
                     "lines": rows, "document_hash": data.get("document_hash")})
    lines.extend(rows)


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


#: The contract's decimal text (a rate of yield, a deviation in %): a number of the CSV, written as the contract did.
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def _decimal(text):
    """``text`` as a number when it is the contract's decimal text (``-2.5`` stays a number, not the text ``'-2.5``);
    anything else as it is."""
    return Decimal(text) if isinstance(text, str) and _DECIMAL.fullmatch(text) else text


def _input_goods(line: dict) -> str:
    """The goods placed under the procedure that a disposal or loss stands for, e.g. ``L1 500 p/st``
    (what duty on a release for free circulation, 4051, is computed from)."""
    return "; ".join(f"{g['lot_id']} {g['quantity']} {g['unit']}" for g in line.get("input_goods") or [])


def _declared(line: dict) -> str:
    """When a disposal's or loss's declaration was accepted, its legally relevant date (the bill's ``declared_at``:
    ``occurred_at``, never later than its recording) — not the recording alone, which can be days later (an exit
    confirmed before it was recorded would read as confirmed before it was declared); a bill computed before
    lines carried it: its recording."""
    return line.get("declared_at") or line["recorded_at"]


def _lot_declared(lot: dict) -> str:
    """When a lot's declaration was accepted (the bill's ``declared_at``, from which its deadline runs); a bill
    computed before lines carried it: its recording."""
    return lot.get("declared_at") or lot["accepted_at"]


def _date_header(lines: list[dict] | None, what: str) -> str:
    """The PDF's date column of a section: ``what`` (declared, occurred) when its lines carry ``declared_at``;
    in a bill computed before they did, each line's recording."""
    return f"{what} (UTC)" if all("declared_at" in line for line in lines or []) else "recorded (UTC)"


def _procedure(line: dict) -> str:
    """A disposal's procedure code with its follow-up where there is one: the confirmation of a re-export's
    (or a transfer's) exit, or a transfer's reception on the ledger — e.g. ``3151, exit confirmed 2026-05-04``."""
    follow_up = []
    if line.get("exit_confirmed"):
        follow_up.append(f"exit confirmed {line['exit_confirmed']['exit_date']}")
    if line.get("received"):
        follow_up.append(f"received {line['received']['recorded_at'][:10]}")
    return ", ".join([line["procedure"], *follow_up])


def bill_rows(data: dict) -> list[dict]:
    rows = []
    for lot in data.get("lots", []):
        rows.append({"section": "lot", "id": lot["lot_id"], "mrn": lot["mrn"], "date": _lot_declared(lot),
                     "cn": lot["cn"], "description": lot["description"], "quantity": lot["quantity"],
                     "unit": lot["unit"], "deadline": lot["deadline"], "remaining": lot["remaining"],
                     "customs_value": (lot.get("customs_value") or {}).get("amount"),
                     "currency": (lot.get("customs_value") or {}).get("currency"),
                     "reference": lot.get("customs_value_hash")})
        for p in lot.get("products", []):
            rows.append({"section": "product", "id": p["batch_id"], "cn": p["cn"], "description": p["kind"],
                         "quantity": p["quantity"], "unit": p["unit"], "reference": lot["lot_id"],
                         # the lot's input it stands for (a share of 0 units stands for some all the same)
                         "input_goods": f"{lot['lot_id']} {p['input_qty']} {lot['unit']}" if "input_qty" in p else None})
    for op in data.get("processing", []):
        for y in op.get("yield", []):
            rows.append({"section": "yield", "id": op["operation_id"], "date": op["recorded_at"], "cn": y.get("output_cn"),
                         "description": f"actual {y.get('actual_per_input')} / authorised {y.get('authorised_per_input')}",
                         "quantity": _decimal(y.get("deviation_pct")), "unit": "%", "reference": op["tx_id"]})
    for d in data.get("disposals", []):
        rows.append({"section": "disposal", "id": d["id"], "mrn": d["mrn"], "date": _declared(d), "cn": d["cn"],
                     "description": f"procedure {_procedure(d)}", "quantity": d["quantity"], "unit": d["unit"],
                     "input_goods": _input_goods(d), "reference": d["tx_id"]})
    for x in data.get("losses", []):
        rows.append({"section": "loss", "id": x["id"], "date": _declared(x), "cn": x["cn"], "description": x["reason"],
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
    scope = data.get("scope") or {}
    what = (f"period ending {scope.get('period_end')} (from {scope.get('period_start') or 'the grant'}), due "
            f"{scope.get('due')}" if scope.get("mode") == "PERIOD" else f"audit view as of {scope.get('as_of')}")
    # which bill the file is: the authorisation, its version, the scope and the cut-off (the moment it holds at)
    rows.append({"section": "scope", "id": data.get("authorisation_id"), "date": data.get("cutoff"),
                 "description": what, "reference": data.get("authorisation_version")})
    rows.append({"section": "document_hash", "reference": data.get("document_hash")})
    return rows


def bill_csv(data: dict) -> str:
    return _csv(bill_rows(data))


def inventory_csv(data: dict) -> str:
    """The lines, each with the moment the inventory holds at (``as_of``, as asked: a date is its whole day)."""
    return _csv([{**line, "as_of": data.get("as_of")} for line in data["lines"]])


# ------------------------------------------------------------------------------------------ PDF

#: Where the Unicode font is looked for: DejaVu Sans (regular and bold), as Debian's ``fonts-dejavu-core``
#: installs it (other distributions: the second and third places). Without it — a minimal system, e.g.
#: the gateway's container image — the reports fall back to the PDF standard fonts (Helvetica), which
#: cover Windows-1252 only (Western European letters and €): any other character prints as ``?``.
FONT_DIRS: tuple[Path, ...] = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"),
                               Path("/usr/share/fonts/TTF"))
_FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf"}
#: A number in a cell, a word of its own (a quantity, a rate, an amount, a block number): never broken over
#: lines. Digits within an identifier (an MRN, a date) are not one.
_NUMBER = re.compile(r"(?<!\S)-?[0-9]+(?:\.[0-9]+)?(?=[;,]?(?:\s|$))")


def unicode_font_files() -> dict[str, Path] | None:
    """The DejaVu Sans files by style (``""``, ``"B"``) from the first of :data:`FONT_DIRS` that has both."""
    for d in FONT_DIRS:
        files = {style: d / name for style, name in _FONT_FILES.items()}
        if all(f.is_file() for f in files.values()):
            return files
    return None


def _creation_date(stamp: str | None) -> dt.datetime:
    """The PDF's creation date: the report's ``generated_at`` — so one report's bytes are always the same."""
    return moments.parse(stamp) or dt.datetime(1970, 1, 1, tzinfo=moments.UTC)


class ReportPdf(FPDF):
    """An A4 report (fpdf2): headings, lines of text (wrapped), tables whose header row repeats on each
    page, and a footer ``<title> - page n of N``. Text is extractable (``pdftotext``)."""

    MARGIN = 40  # pt
    FAMILY = "DejaVu"

    def __init__(self, title: str, generated_at: str | None = None):
        super().__init__(orientation="portrait", unit="pt", format="A4")
        self.pdf_version = max(self.pdf_version, "1.4")
        self.report_title = title
        self.set_title(title)
        self.set_producer("ipledger gateway (fpdf2)")
        self.set_lang("en")   # the language of its text, for a screen reader (RGAA 13.3)
        self.set_creation_date(_creation_date(generated_at))
        self.set_margins(self.MARGIN, self.MARGIN, self.MARGIN)
        self.set_auto_page_break(True, margin=self.MARGIN)
        files = unicode_font_files()
        if files:
            for style, path in files.items():
                self.add_font(self.FAMILY, style, str(path))
            self.face = self.FAMILY
        else:
            self.face = "Helvetica"
            self.core_fonts_encoding = "windows-1252"
        self.add_page()

    def normalize_text(self, text: str) -> str:
        if not self.is_ttf_font and self.core_fonts_encoding:
            # the standard fonts: what Windows-1252 lacks prints as "?" (as the hand-written writer did)
            text = text.encode(self.core_fonts_encoding, errors="replace").decode(self.core_fonts_encoding)
        return super().normalize_text(text)

    def footer(self) -> None:
        self.set_y(-self.MARGIN + 12)
        self.set_font(self.face, "", 7)
        self.cell(0, 8, f"{self.report_title} - page {self.page_no()} of {{nb}}")

    def heading(self, text: str, size: float = 12) -> None:
        self.ln(6)
        self.set_font(self.face, "B", size)
        self.multi_cell(0, size * 1.25, text, align="L", new_x="LMARGIN", new_y="NEXT")
        self.ln(2)

    def para(self, text: str, size: float = 8) -> None:
        self.set_font(self.face, "", size)
        self.multi_cell(0, size * 1.3, text, align="L", new_x="LMARGIN", new_y="NEXT")

    def grid(self, columns: list[tuple[str, int]], rows: list[list], size: float = 7) -> None:
        """A table: ``columns`` are (heading, width in characters, a proportion); ``None`` prints as an empty
        cell; a cell too long for its column wraps (nothing is cut); the heading row repeats on each page."""
        self.set_font(self.face, "", size)
        texts = [["" if v is None else str(v) for v in r] for r in rows]
        columns, size = self._fit_numbers(columns, texts, size)
        self.set_font(self.face, "", size)
        width = min(self.epw, sum(w + 2 for _, w in columns) * size * 0.62)
        with self.table(col_widths=tuple(w for _, w in columns), width=width, align="LEFT", text_align="LEFT",
                        line_height=size * 1.3, borders_layout="HORIZONTAL_LINES", padding=(1, 2),
                        v_align="TOP") as table:
            table.row([c for c, _ in columns])
            for cells in texts:
                for part in self._row_parts(columns, cells, width, size):
                    table.row(part)
        self.ln(2)

    def _fit_numbers(self, columns: list[tuple[str, int]], texts: list[list[str]], size: float
                     ) -> tuple[list[tuple[str, int]], float]:
        """(columns, font size) such that the longest number of each column's cells (a quantity up to the contract's
        10^15, a total beyond it) fits on one line of it: a number too long for its column was broken over two or
        three lines ("1000000" above "0000000" above "00"), read as several figures. A column grows to its longest
        number; when the table would then be wider than the page, its font gets smaller — so every other column
        keeps the room it had (an MRN, a date are not broken either)."""
        char = size * 0.62                                   # what one unit of a column's width is, in points
        need = []
        for i, (_, w) in enumerate(columns):
            longest = max((self.get_string_width(token) for cells in texts if i < len(cells)
                           for token in _NUMBER.findall(cells[i])), default=0.0)
            need.append(max(w, math.ceil((longest + 6) / char)))    # + the cell's padding and a little room
        if need == [w for _, w in columns]:
            return columns, size
        wide = sum(n + 2 for n in need) * char
        if wide > self.epw:
            size = size * self.epw / wide
        return [(name, need[i]) for i, (name, _) in enumerate(columns)], size

    #: The most lines of one cell in one table row: a row taller than a page cannot be drawn (fpdf2 raises), so a
    #: longer cell — the input goods of a batch made from hundreds of lots — goes on in the rows below it.
    ROW_LINES = 40

    def _row_parts(self, columns: list[tuple[str, int]], cells: list[str], width: float, size: float) -> list[list[str]]:
        """``cells`` as one table row, or as several when a cell wraps to more than :data:`ROW_LINES` lines (the
        other cells empty in the rows that continue it): every character is printed, in order."""
        total = sum(w for _, w in columns)
        wrapped = []
        for (_, w), text in zip(columns, cells):
            if len(text) < 2 * w:     # shorter than two lines of its column: one line or two, never a page
                wrapped.append([text])
                continue
            lines = self.multi_cell(width * w / total - 4, size * 1.3, text, dry_run=True, output="LINES")
            wrapped.append(["\n".join(lines[i:i + self.ROW_LINES]) for i in range(0, len(lines), self.ROW_LINES)]
                           or [""])
        return [[parts[i] if i < len(parts) else "" for parts in wrapped]
                for i in range(max(len(parts) for parts in wrapped))]

    def render(self) -> bytes:
        return bytes(self.output())


def _value(lot: dict) -> str | None:
    """A lot's customs value with its currency (``25000.00 EUR``); ``(hash)`` for a reader shown only its hash."""
    if "customs_value" not in lot:
        return "(hash)"
    value = lot["customs_value"] or {}
    return " ".join(str(value[k]) for k in ("amount", "currency") if value.get(k) is not None) or None


def bill_pdf(data: dict) -> bytes:
    scope = data.get("scope") or {}
    title = f"Bill of discharge {data['authorisation_id']}"
    pdf = ReportPdf(title, data.get("generated_at"))
    pdf.heading(title, 14)
    what = (f"period ending {scope.get('period_end')} (from {scope.get('period_start') or 'the grant'}), "
            f"due {scope.get('due')}" if scope.get("mode") == "PERIOD" else f"audit view as of {scope.get('as_of')}")
    for line in (f"Holder {data.get('holder_eori')}  -  supervising office {data.get('supervising_office')}  -  "
                 f"authorisation version {data.get('authorisation_version')}",
                 f"Scope: {what}", f"Cut-off {data.get('cutoff')}  -  generated {data.get('generated_at')} for "
                 f"{data.get('generated_for')}"):
        pdf.para(line, size=9)
    pdf.heading("1. Goods placed under the procedure")
    pdf.grid([("lot", 8), ("MRN", 18), (_date_header(data.get("lots"), "declared"), 10), ("CN", 8), ("qty", 8), ("unit", 4), ("remaining", 9),
               ("deadline (UTC)", 19), ("value", 13)],
              [[lot["lot_id"], lot["mrn"], _lot_declared(lot)[:10], lot["cn"], lot["quantity"], lot["unit"],
                lot["remaining"], moments.to_second(lot["deadline"]), _value(lot)]
               for lot in data.get("lots", [])])
    pdf.heading("2. Products obtained")
    pdf.grid([("lot", 8), ("batch", 10), ("CN", 8), ("kind", 9), ("qty", 8), ("unit", 4), ("of the lot's input", 14)],
              [[lot["lot_id"], p["batch_id"], p["cn"], p["kind"], p["quantity"], p["unit"],
                f"{p['input_qty']} {lot['unit']}" if "input_qty" in p else ""]
               for lot in data.get("lots", []) for p in lot.get("products", [])])
    rows = []
    for op in data.get("processing", []):
        for y in op.get("yield", []):
            rows.append([op["operation_id"], op["recorded_at"][:10], y.get("output_cn"), y.get("authorised_per_input"),
                         y.get("actual_per_input"), y.get("deviation_pct")])
    pdf.heading("Rates of yield")
    pdf.grid([("operation", 10), ("date (UTC)", 10), ("output", 8), ("authorised", 10), ("actual", 10), ("dev. %", 8)], rows)
    pdf.heading("3. Disposals")
    pdf.grid([("goods", 9), ("procedure", 14), ("MRN", 18), (_date_header(data.get("disposals"), "declared"), 10), ("CN", 8), ("qty", 6), ("unit", 4),
               ("input goods it stands for", 24)],
              [[d["id"], _procedure(d), d["mrn"], _declared(d)[:10], d["cn"], d["quantity"], d["unit"],
                _input_goods(d)] for d in data.get("disposals", [])])
    pdf.heading("4. Losses and destructions")
    pdf.grid([("goods", 10), ("reason", 13), (_date_header(data.get("losses"), "occurred"), 10), ("qty", 8), ("unit", 4), ("evidence", 24),
               ("input goods", 20)],
              [[x["id"], x["reason"], _declared(x)[:10], x["quantity"], x["unit"], x["evidence_hash"],
                _input_goods(x)] for x in data.get("losses", [])])
    pdf.heading("Waste and scrap (under the procedure until exited or destroyed; also in 5.)")
    pdf.grid([("batch", 10), ("CN", 8), ("produced", 9), ("remaining", 9), ("unit", 4)],
              [[w["batch_id"], w["cn"], w["produced"], w["remaining"], w["unit"]] for w in data.get("waste", [])])
    pdf.heading("5. Remaining balances")
    pdf.grid([("goods", 6), ("id", 10), ("CN", 8), ("qty", 8), ("unit", 4), ("deadline (UTC)", 19), ("status", 15)],
              [[r["goods"], r["id"], r["cn"], r["quantity"], r["unit"], moments.to_second(r["deadline"]), r["status"]]
               for r in data.get("remaining", [])])
    proof = data.get("proof") or {}
    pdf.heading("6. Proof")
    pdf.para(f"Conservation holds for every lot and batch: {'yes' if proof.get('conservation_holds') else 'NO'}")
    pdf.para(f"Alert changes in the period: {len(proof.get('alerts', []))}; controls: {len(proof.get('controls', []))}")
    pdf.grid([("block", 6), ("event", 22), ("recorded (UTC)", 20), ("tx id", 64)],
              [[t.get("block_number"), t["event_type"], moments.to_second(t["recorded_at"]), t["tx_id"]]
               for t in proof.get("transactions", [])])
    pdf.para(f"Document hash: {data.get('document_hash')}", size=8)
    return pdf.render()


def inventory_pdf(data: dict) -> bytes:
    title = f"Inventory of goods under inward processing at {data['as_of']}"
    pdf = ReportPdf(title, data.get("generated_at"))
    pdf.heading(title, 13)
    pdf.para(f"Generated {data['generated_at']} for {data['generated_for']}", size=9)
    if data.get("not_included"):
        pdf.para("Not included (not found, or not readable by this organisation): " +
                 ", ".join(data["not_included"]), size=9)
    for section in data["authorisations"]:
        pdf.heading(f"Authorisation {section['authorisation_id']} - holder {section['holder_eori']}")
        pdf.grid([("goods", 6), ("id", 10), ("CN", 8), ("description", 16), ("MRN", 18), ("qty", 8), ("unit", 4),
                   ("deadline (UTC)", 19), ("status", 8)],
                  [[r["goods"], r["id"], r["cn"], r["description"], r["mrn"], r["quantity"], r["unit"],
                    moments.to_second(r["deadline"]), r["status"]] for r in section["lines"]])
    pdf.heading("Totals")
    pdf.grid([("goods", 6), ("CN", 8), ("quantity", 10), ("unit", 4)],
              [[t["goods"], t["cn"], t["quantity"], t["unit"]] for t in data["totals"]])
    return pdf.render()
