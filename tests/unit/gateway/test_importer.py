"""``ipledger import``: CSV/JSONL reading, posting through HTTP, report, resume after interruption."""
from __future__ import annotations

import csv
import io
import json

import pytest

from ipledger.gateway.importer import ImportError_, Importer, csv_row_to_body, read_records
from ipledger.network import cli

from tests.unit.loopback import served

from .fakes import grant_body, move_body, place_body, unavailable


@pytest.fixture
def server(app):
    with served(app) as url:
        yield url


@pytest.fixture
def operator_key(keys):
    return keys[("OperatorMSP", "clerk")]


def jsonl(path, bodies):
    path.write_text("".join(json.dumps(b) + "\n" for b in bodies))
    return path


def moves(n):
    return [move_body(f"mv-{i}", quantity=i + 1) for i in range(n)]


def test_csv_columns_are_typed_with_the_event_schema():
    row = {"type": "RecordProcessing", "event_id": "op-1", "authorisation_id": "FRIPO000001",
           "occurred_at": "2026-03-02T09:00:00Z", "operation_id": "OP1", "site": "BOURGES-1",
           "inputs": '[{"lot_id": "L1", "qty": 500}]',
           "outputs": '[{"cn": "40121200", "qty": 495, "unit": "p/st", "kind": "MAIN"}]',
           "quantity": "", "lot_id": ""}
    assert csv_row_to_body(row) == {
        "type": "RecordProcessing", "event_id": "op-1", "authorisation_id": "FRIPO000001",
        "occurred_at": "2026-03-02T09:00:00Z", "operation_id": "OP1", "site": "BOURGES-1",
        "inputs": [{"lot_id": "L1", "qty": 500}],
        "outputs": [{"cn": "40121200", "qty": 495, "unit": "p/st", "kind": "MAIN"}]}


def test_csv_commercial_and_dotted_columns():
    body = csv_row_to_body({"type": "PlaceUnderProcedure", "event_id": "p1", "quantity": "1000", "item_no": "1",
                            "net_mass_g": "9000000", "procedure": "5100", "mrn": "26FR000110000001R8",
                            "commercial.customs_value.amount": "25000.00",
                            "commercial.customs_value.currency": "EUR"})
    assert body["quantity"] == 1000 and body["item_no"] == 1 and body["net_mass_g"] == 9000000
    assert body["procedure"] == "5100" and body["mrn"] == "26FR000110000001R8"   # strings stay strings
    assert body["commercial"] == {"customs_value": {"amount": "25000.00", "currency": "EUR"}}
    body = csv_row_to_body({"type": "SetParameters", "event_id": "s", "parameters.warn_days": "45",
                            "parameters.yield_warn_pct": "0.5"})
    assert body["parameters"] == {"warn_days": 45, "yield_warn_pct": 0.5}
    body = csv_row_to_body({"type": "RegisterParty", "event_id": "r", "msp_id": "BrokerMSP", "role": "representative",
                            "eoris": '["FR98765432109876", "FR11111111111111"]'})
    assert body == {"type": "RegisterParty", "event_id": "r", "msp_id": "BrokerMSP", "role": "representative",
                    "eoris": ["FR98765432109876", "FR11111111111111"]}
    body = csv_row_to_body({"type": "ExitGoods", "commercial": '{"invoice_price": {"amount": "1", "currency": "EUR"}}'})
    assert body["commercial"] == {"invoice_price": {"amount": "1", "currency": "EUR"}}



@pytest.mark.parametrize("columns", [
    [("commercial.customs_value.amount", "999.00"),
     ("commercial", '{"customs_value": {"amount": "100.00", "currency": "EUR"}}')],
    [("commercial", '{"customs_value": {"amount": "100.00", "currency": "EUR"}}'),
     ("commercial.customs_value.amount", "999.00")],
    [("commercial.customs_value", '{"amount": "100.00", "currency": "EUR"}'),
     ("commercial.customs_value.amount", "999.00")]])
def test_a_member_given_by_a_json_cell_and_a_dotted_column_is_refused(columns):
    """The same customs value in a JSON cell and a dotted column: one of them silently won, by the columns' order —
    a customs value changed on the way. Refused, whichever comes first; members that differ still merge."""
    with pytest.raises(ValueError, match="given twice"):
        csv_row_to_body({"type": "PlaceUnderProcedure", **dict(columns)})
    body = csv_row_to_body({"type": "PlaceUnderProcedure", "commercial.customs_value.currency": "EUR",
                            "commercial": '{"customs_value": {"amount": "100.00"}}'})
    assert body["commercial"] == {"customs_value": {"currency": "EUR", "amount": "100.00"}}

def test_csv_file_lines_and_bad_rows(tmp_path):
    path = tmp_path / "events.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["type", "event_id", "authorisation_id", "lot_id", "quantity", "inputs"])
        w.writerow(["MoveGoods", "m1", "FRIPO000001", "L1", "5", ""])
        w.writerow(["", "", "", "", "", ""])                       # blank row: skipped
        w.writerow(["RecordProcessing", "op", "FRIPO000001", "", "", '[{"lot_id": "L1",\n "qty": 3}]'])  # 2 lines
        w.writerow(["", "m3", "FRIPO000001", "L1", "5", ""])       # no type
        w.writerow(["MoveGoods", "m4", "FRIPO000001", "L1", "5", "{broken"])
    records = list(read_records(path, "csv"))
    assert [n for n, _ in records] == [2, 4, 6, 7]
    assert records[0][1]["quantity"] == 5
    assert records[1][1]["inputs"] == [{"lot_id": "L1", "qty": 3}]
    assert records[2][1].reason == "the 'type' cell is empty"
    assert records[3][1].reason.startswith("not JSON")


def test_csv_needs_a_type_column(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("event_id,quantity\na,1\n")
    with pytest.raises(ImportError_, match="'type' column"):
        list(read_records(path, "csv"))


def test_import_posts_every_line_and_reports(server, operator_key, ledger, tmp_path):
    src = jsonl(tmp_path / "events.jsonl", moves(3) + [{**move_body("bad"), "quantity": 0}])
    src.write_text(src.read_text() + "\n{not json\n")  # line 6 (line 5 blank)
    err = io.StringIO()
    report = tmp_path / "report.csv"
    code = Importer(server, operator_key, progress=err).run(src, report=report)
    assert code == 1  # some lines refused
    rows = list(csv.DictReader(open(report)))
    assert [(r["line"], r["event_id"], r["status"], r["outcome"]) for r in rows] == [
        ("1", "mv-0", "201", "COMMITTED"), ("2", "mv-1", "201", "COMMITTED"), ("3", "mv-2", "201", "COMMITTED"),
        ("4", "bad", "400", "REFUSED"), ("6", "", "", "INVALID")]
    assert rows[0]["tx_id"] == ledger.recorded["mv-0"][1]["tx_id"] and rows[0]["block_number"]
    assert rows[3]["problem_type"] == "invalid-event" and "/quantity" in rows[3]["detail"]
    assert [s["event"]["event_id"] for s in ledger.submits] == ["mv-0", "mv-1", "mv-2"]
    assert {s["org"] for s in ledger.submits} == {"OperatorMSP"}
    assert "5/5 lines" in err.getvalue()


class Interrupted(Importer):
    """Ctrl-C while posting line ``at``."""

    def __init__(self, *a, at: int, **kw):
        super().__init__(*a, **kw)
        self.at = at

    def _post(self, body, line):
        if line == self.at:
            raise KeyboardInterrupt
        return super()._post(body, line)


def test_import_resumes_after_an_interruption(server, operator_key, ledger, tmp_path):
    src = jsonl(tmp_path / "events.jsonl", moves(6))
    report = tmp_path / "report.jsonl"
    assert Interrupted(server, operator_key, progress=None, at=4).run(src, report=report) == 130
    assert [s["event"]["event_id"] for s in ledger.submits] == ["mv-0", "mv-1", "mv-2"]
    progress = (tmp_path / "events.jsonl.progress").read_text().splitlines()
    assert len(progress) == 4 and "input_sha256" in progress[0]
    assert [json.loads(x)["line"] for x in report.read_text().splitlines()] == [1, 2, 3]

    assert Importer(server, operator_key, progress=None).run(src, report=report) == 0
    # only the remaining lines were posted
    assert [s["event"]["event_id"] for s in ledger.submits] == [f"mv-{i}" for i in range(6)]
    lines = [json.loads(x) for x in report.read_text().splitlines()]
    assert [(o["line"], o["outcome"]) for o in lines] == [(i, "COMMITTED") for i in range(1, 7)]
    assert lines[5]["tx_id"] == ledger.recorded["mv-5"][1]["tx_id"]


def test_a_lost_progress_file_is_harmless_replays_are_idempotent(server, operator_key, ledger, tmp_path):
    src = jsonl(tmp_path / "events.jsonl", moves(3))
    assert Importer(server, operator_key, progress=None).run(src) == 0
    first = {e: r["tx_id"] for e, (_, r) in ledger.recorded.items()}
    report = tmp_path / "again.csv"
    assert Importer(server, operator_key, progress=None).run(src, report=report, restart=True) == 0
    rows = list(csv.DictReader(open(report)))
    assert [r["outcome"] for r in rows] == ["REPLAYED"] * 3 and [r["status"] for r in rows] == ["200"] * 3
    assert [r["tx_id"] for r in rows] == [first["mv-0"], first["mv-1"], first["mv-2"]]


def test_unavailable_gateway_is_retried_then_stops_for_a_later_resume(server, operator_key, ledger, tmp_path):
    src = jsonl(tmp_path / "events.jsonl", moves(3))
    ledger.fail_submits_for["mv-1"] = unavailable()
    waits = []
    imp = Importer(server, operator_key, progress=None, retries=2, sleep=waits.append)
    assert imp.run(src) == 3
    assert waits == [7.0, 7.0]  # Retry-After of the 503 answers
    assert [s["event"]["event_id"] for s in ledger.submits] == ["mv-0", "mv-1", "mv-1", "mv-1"]
    # the network is back: resume posts line 2 and 3 only
    del ledger.fail_submits_for["mv-1"]
    assert Importer(server, operator_key, progress=None).run(src) == 0
    assert [s["event"]["event_id"] for s in ledger.submits][4:] == ["mv-1", "mv-2"]


def test_unreachable_url_retries_with_backoff_and_stops(operator_key, tmp_path):
    src = jsonl(tmp_path / "events.jsonl", moves(1))
    waits = []
    imp = Importer("http://127.0.0.1:9", operator_key, progress=None, retries=3, sleep=waits.append, backoff=0.5)
    assert imp.run(src) == 3
    assert waits == [0.5, 1.0, 2.0]
    assert len((tmp_path / "events.jsonl.progress").read_text().splitlines()) == 1  # header only


def test_bad_key_stops_the_import_at_once(server, ledger, tmp_path):
    src = jsonl(tmp_path / "events.jsonl", moves(3))
    with pytest.raises(ImportError_, match="refused the API key"):
        Importer(server, "ipk_000000000000_" + "A" * 43, progress=None).run(src)
    assert ledger.submits == []
    assert len((tmp_path / "events.jsonl.progress").read_text().splitlines()) == 1


def test_changed_input_is_refused_unless_restart(server, operator_key, tmp_path):
    src = jsonl(tmp_path / "events.jsonl", moves(2))
    assert Importer(server, operator_key, progress=None).run(src) == 0
    jsonl(src, moves(3))
    with pytest.raises(ImportError_, match="another version"):
        Importer(server, operator_key, progress=None).run(src)
    assert Importer(server, operator_key, progress=None).run(src, restart=True) == 0


def test_cli_import_command(server, keys, ledger, tmp_path, monkeypatch, capsys):
    src = tmp_path / "erp.csv"
    with open(src, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["type", "event_id", "authorisation_id", "occurred_at", "lot_id", "quantity", "from_site",
                    "to_site", "mrn", "item_no", "procedure", "cn", "description", "unit", "net_mass_g", "origin",
                    "site", "commercial.customs_value.amount", "commercial.customs_value.currency"])
        p = place_body()
        w.writerow(["PlaceUnderProcedure", p["event_id"], p["authorisation_id"], p["occurred_at"], p["lot_id"],
                    p["quantity"], "", "", p["mrn"], p["item_no"], p["procedure"], p["cn"], p["description"],
                    p["unit"], p["net_mass_g"], p["origin"], p["site"], "25000.00", "EUR"])
        m = move_body()
        w.writerow(["MoveGoods", m["event_id"], m["authorisation_id"], m["occurred_at"], m["lot_id"], m["quantity"],
                    m["from_site"], m["to_site"]] + [""] * 11)
    monkeypatch.setenv("IPLEDGER_GATEWAY_URL", server)
    monkeypatch.setenv("IPLEDGER_API_KEY", keys[("BrokerMSP", "clerk")])
    report = tmp_path / "r.csv"
    assert cli.main(["import", str(src), "--report", str(report), "--quiet"]) == 0
    assert [s["function"] for s in ledger.submits] == ["PlaceUnderProcedure", "MoveGoods"]
    assert ledger.submits[0]["event"] == {k: v for k, v in place_body().items() if k not in ("type", "commercial")}
    assert json.loads(ledger.submits[0]["transient"]["commercial"])["customs_value"]["amount"] == "25000.00"
    assert [r["outcome"] for r in csv.DictReader(open(report))] == ["COMMITTED", "COMMITTED"]
    monkeypatch.delenv("IPLEDGER_API_KEY")
    assert cli.main(["import", str(src)]) == 2
    assert "API key" in capsys.readouterr().err


def test_jsonl_grant_through_cli_with_explicit_options(server, keys, ledger, tmp_path):
    src = jsonl(tmp_path / "grant.ndjson", [grant_body()])
    assert cli.main(["import", str(src), "--url", server, "--api-key", keys[("CustomsMSP", "clerk")],
                     "--quiet"]) == 0
    assert ledger.submits[0]["org"] == "CustomsMSP"


def test_the_csv_example_of_the_readme_gives_valid_events(tmp_path):
    import re
    from pathlib import Path

    from ipledger.gateway.validation import parse_event
    readme = (Path(__file__).resolve().parents[3] / "gateway" / "README.md").read_text()
    block = re.search(r"```csv\n(.*?)```", readme, re.DOTALL).group(1)
    path = tmp_path / "example.csv"
    path.write_text(block)
    parsed = [parse_event(body) for _, body in read_records(path, "csv")]
    assert [(p.type, p.event_id) for p in parsed] == [("PlaceUnderProcedure", "erp-1"), ("MoveGoods", "erp-2")]
    assert parsed[0].commercial == {"customs_value": {"amount": "25000.00", "currency": "EUR"}}
    assert parsed[1].event["quantity"] == 400


def test_a_file_is_imported_record_by_record_not_held_in_memory(tmp_path, monkeypatch):
    """The import reads a record, submits it, then reads the next: however large the file, it holds one
    record at a time (it reads the file once before, only to count the records for the progress bar)."""
    from ipledger.gateway import importer as module

    src = jsonl(tmp_path / "events.jsonl", moves(200))
    read, ahead = [0], []
    real_read = module.read_records

    def counting(path, fmt):
        for record in real_read(path, fmt):
            read[0] += 1
            yield record

    def submit(self, line, body):
        ahead.append(read[0] - len(ahead) - 200)   # records read beyond those submitted (after the count)
        return module.LineOutcome(line, body.get("event_id"), body.get("type"), 201, "COMMITTED")

    monkeypatch.setattr(module, "read_records", counting)
    monkeypatch.setattr(module.Importer, "submit", submit)
    assert module.Importer("http://127.0.0.1:9", "k", progress=None).run(src, progress_file=tmp_path / "p") == 0
    assert len(ahead) == 200 and max(ahead) == 1


def test_a_json_line_is_posted_as_written_so_the_gateway_refuses_what_it_would_refuse_over_rest(
        server, operator_key, ledger, tmp_path):
    """The importer parsed each JSON line and wrote it again: of a member named twice the last value was
    sent (``"quantity": 400, "quantity": 4000`` recorded 4000), and a number a float cannot hold was rounded
    (``4.9999999999999999999`` recorded 5) — both of which the gateway refuses in a body (400 bad-request).
    The line is posted as written: refused, nothing recorded."""
    ok = json.dumps(move_body("mv-ok", quantity=7))
    twice = json.dumps(move_body("mv-twice", quantity=400))[:-1] + ', "quantity": 4000}'
    rounded = json.dumps(move_body("mv-rounded", quantity=1)).replace('"quantity": 1', '"quantity": 4.9999999999999999999')
    src = tmp_path / "events.jsonl"
    src.write_text("\n".join((ok, twice, rounded)) + "\n")
    report = tmp_path / "report.jsonl"
    assert Importer(server, operator_key, progress=None).run(src, report=report) == 1
    rows = [json.loads(line) for line in report.read_text().splitlines()]
    assert [(r["event_id"], r["status"], r["outcome"], r["problem_type"]) for r in rows] == [
        ("mv-ok", 201, "COMMITTED", None), ("mv-twice", 400, "REFUSED", "bad-request"),
        ("mv-rounded", 400, "REFUSED", "bad-request")]
    assert "more than once" in rows[1]["detail"] and "more digits" in rows[2]["detail"]
    assert [s["event"]["event_id"] for s in ledger.submits] == ["mv-ok"]


def test_csv_numbers_and_json_cells_are_never_silently_changed():
    """A CSV number cell was sent as a float, rounded when it has more digits than a float holds; a JSON cell
    naming a member twice kept the last one; digits of other scripts ('٣') were converted. Such a line is
    now invalid (refused before anything is sent) or left as text for the gateway to refuse."""
    base = {"type": "SetParameters", "event_id": "s"}
    assert csv_row_to_body({**base, "parameters.yield_warn_pct": "0.25"})["parameters"] == {"yield_warn_pct": 0.25}
    for cell in ("0.123456789012345678901", "4.9999999999999999999", "1e999"):
        with pytest.raises(ValueError, match="more digits|out of range"):
            csv_row_to_body({**base, "parameters.yield_warn_pct": cell})
    row = {"type": "RecordProcessing", "event_id": "op", "inputs": '[{"lot_id": "L1", "qty": 500, "qty": 5000}]'}
    with pytest.raises(ValueError, match="appears more than once"):
        csv_row_to_body(row)
    with pytest.raises(ValueError, match="more digits"):
        csv_row_to_body({**row, "inputs": '[{"lot_id": "L1", "qty": 4.9999999999999999999}]'})
    with pytest.raises(ValueError, match="appears more than once"):
        csv_row_to_body({"type": "ExitGoods", "commercial": '{"nonce": "a", "nonce": "b"}'})
    assert csv_row_to_body({"type": "MoveGoods", "quantity": "\u0663"})["quantity"] == "\u0663"   # not 3


def test_a_json_cell_is_read_by_the_rules_the_gateway_reads_a_body_by():
    """One reader for both (gateway/jsonread.py): the importer's own copy let NaN, nesting past the gateway's
    bound and unpaired surrogates through to the gateway; now the line is invalid before anything is sent,
    with the gateway's reason."""
    from ipledger.gateway.jsonread import MAX_DEPTH
    row = {"type": "RecordProcessing", "event_id": "op"}
    for cell, reason in (('[{"lot_id": "L1", "qty": NaN}]', "NaN is not a JSON number"),
                         ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), f"more than {MAX_DEPTH} levels deep"),
                         ('[{"lot_id": "L\\ud800", "qty": 1}]', "unpaired UTF-16 surrogate")):
        with pytest.raises(ValueError, match=reason):
            csv_row_to_body({**row, "inputs": cell})
    # integral numbers are ints, as in a body (JSON Schema's reading of 10.0)
    assert csv_row_to_body({**row, "inputs": '[{"lot_id": "L1", "qty": 10.0}]'})["inputs"] == [{"lot_id": "L1", "qty": 10}]


@pytest.fixture
def elsewhere():
    """Another host's server: answers every request 200 with a page, and keeps the headers it got."""
    seen = []

    def page(environ, start_response):
        seen.append({k: v for k, v in environ.items() if k.startswith("HTTP_")})
        start_response("200 OK", [("Content-Type", "text/html")])
        return [b"<html>sign in</html>"]
    with served(page) as url:
        yield url, seen


def test_a_redirect_is_not_followed_the_key_stays_home_and_the_line_is_not_counted_as_recorded(
        operator_key, ledger, tmp_path, elsewhere):
    """urllib follows a redirect and sends the Authorization header (the API key) on to the host it names; a
    page there answering 200 was taken for the gateway's answer and the line recorded COMMITTED, so never sent
    again. A redirect stops the import (exit 2 in the command), the key goes nowhere, nothing is recorded."""
    target, seen = elsewhere

    def redirect(environ, start_response):
        start_response("302 Found", [("Location", target + "/login")])
        return [b""]
    with served(redirect) as url:
        src = jsonl(tmp_path / "events.jsonl", moves(2))
        with pytest.raises(ImportError_, match="redirecting to .*/login"):
            Importer(url, operator_key, progress=None).run(src)
    assert seen == []                                        # the key went to no other host
    progress = (tmp_path / "events.jsonl.progress").read_text().splitlines()
    assert len(progress) == 1                                # the header only: no line counted as recorded


def test_a_success_that_is_not_the_gateways_answer_stops_the_import_and_records_nothing(
        operator_key, tmp_path, elsewhere):
    """A 200 page that is no answer of the gateway (a proxy's sign-in page at the URL given) was recorded
    COMMITTED, so the line was never sent again: an event lost. A 2xx without the transaction's id stops the
    import, nothing recorded for that line."""
    target, _ = elsewhere
    src = jsonl(tmp_path / "events.jsonl", moves(2))
    with pytest.raises(ImportError_, match="no transaction id") as caught:
        Importer(target, operator_key, progress=None).run(src)
    assert "line 1" in str(caught.value) and "nothing recorded" in str(caught.value)
    progress = (tmp_path / "events.jsonl.progress").read_text().splitlines()
    assert len(progress) == 1                                # the header only: no line counted as recorded
