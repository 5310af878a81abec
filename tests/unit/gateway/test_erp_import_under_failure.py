"""The ERP's integration under failure and at scale: ``ipledger import``, batches, webhooks.

Each test was written first, failing, to show a lost, doubled or misreported event (or a dispatcher held up);
the ones still marked ``xfail`` are reported, not changed (debatable or larger than a contained fix).
"""
from __future__ import annotations

import csv
import json
import threading
import time

import pytest
from werkzeug.serving import make_server

from ipledger.gateway import webhooks
from ipledger.gateway.importer import ImportError_, Importer, LineOutcome, Progress, read_records

from .fakes import dripping_subscriber, endorse_error, move_body, mvcc_conflict, place_body
from .test_importer import operator_key, server  # noqa: F401 (fixtures)


def _serve(wsgi):
    srv = make_server("127.0.0.1", 0, wsgi, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    return srv, thread, f"http://127.0.0.1:{srv.server_port}"


CSV_HEADER = ["type", "event_id", "authorisation_id", "occurred_at", "lot_id", "quantity", "from_site", "to_site"]


def _csv_row(event_id: str, quantity: int = 5) -> list:
    m = move_body(event_id, quantity=quantity)
    return [m["type"], m["event_id"], m["authorisation_id"], m["occurred_at"], m["lot_id"], m["quantity"],
            m["from_site"], m["to_site"]]


# -- reading the file ---------------------------------------------------------------------------------------

def test_a_csv_row_after_an_empty_line_is_reported_with_its_own_line_number(tmp_path):
    """csv.DictReader skips an empty line silently; the importer numbered the next row with the empty line's
    number, so the report (and the progress file) named the wrong line of the ERP's file for every row after."""
    path = tmp_path / "events.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_HEADER)
        w.writerow(_csv_row("m1"))
        f.write("\r\n")                                    # an empty line (line 3)
        w.writerow(_csv_row("m2"))                        # line 4
        f.write("\n\n")                                    # lines 5, 6
        w.writerow(_csv_row("m3"))                        # line 7
    assert [(n, body["event_id"]) for n, body in read_records(path, "csv")] == [(2, "m1"), (4, "m2"), (7, "m3")]


def test_a_csv_header_naming_a_column_twice_is_refused_before_anything_is_sent(tmp_path):
    """A header naming a column twice (``quantity`` … ``quantity``, or `` quantity`` and ``quantity``) kept the last
    cell of each row silently: 4000 recorded where the ERP also wrote 400 — the gateway refuses a body naming a
    member twice. The file is refused (exit 2), nothing sent."""
    for header in (CSV_HEADER + ["quantity"], CSV_HEADER[:5] + [" quantity"] + CSV_HEADER[5:]):
        path = tmp_path / "events.csv"
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerow(_csv_row("m1", 400) + ["4000"] if header[-1] == "quantity" else
                       _csv_row("m1", 400)[:5] + ["4000"] + _csv_row("m1", 400)[5:])
        with pytest.raises(ImportError_, match="more than once"):
            list(read_records(path, "csv"))


def test_a_csv_row_with_fewer_cells_than_columns_is_invalid_not_sent_without_them(tmp_path):
    """A row cut short (a file copied while the ERP was writing it, a crash of its export) had its missing cells
    taken as empty: sent without them — an exit recorded without its commercial data. Such a row is INVALID,
    as one with more cells than columns is."""
    path = tmp_path / "events.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_HEADER)
        w.writerow(_csv_row("m1"))
        f.write(",".join(str(c) for c in _csv_row("m2")[:6]))       # cut after the quantity, no newline
    records = list(read_records(path, "csv"))
    assert records[0][1]["event_id"] == "m1"
    assert records[1][0] == 3 and "fewer cells" in records[1][1].reason


@pytest.mark.parametrize("tail", ["", 'MoveGoods,m4,FRIPO000001,,,"[1]",,\n'])
def test_a_csv_quote_left_open_stops_the_import_before_anything_is_sent(server, operator_key, ledger, tmp_path, tail):
    """A quote left open in one cell took the lines after it into that cell — to the end of the file, or to the
    next quote: those events were never sent, and the report had no row for them (they were no record). The
    file is refused (exit 2) before anything is sent, naming where."""
    path = tmp_path / "events.csv"
    rows = [",".join(map(str, _csv_row(f"m{i}"))) for i in range(4)]
    rows[1] = rows[1].replace("BOURGES-1", '"BOURGES-1')               # the quote left open, line 3
    path.write_text(",".join(CSV_HEADER) + "\n" + "\n".join(rows) + "\n" + tail)
    with pytest.raises(ImportError_, match="line 3") as caught:
        Importer(server, operator_key, progress=None).run(path)
    assert "quote" in str(caught.value)
    assert ledger.submits == []


def test_a_csv_cell_larger_than_csvs_default_field_limit_is_read(tmp_path):
    """A cell over 131,072 characters (``inputs`` of a disposal from thousands of lots) raised csv.Error out of
    the count of the records: a traceback, nothing imported. Cells are read up to the gateway's body limit."""
    inputs = json.dumps([{"lot_id": f"L{i}", "qty": 1} for i in range(8000)])
    path = tmp_path / "events.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["type", "event_id", "inputs"])
        w.writerow(["RecordProcessing", "op", inputs])
    [(line, body)] = list(read_records(path, "csv"))
    assert line == 2 and len(body["inputs"]) == 8000


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_byte_that_is_not_utf8_makes_its_line_invalid_and_the_others_go_on(server, operator_key, ledger,
                                                                               tmp_path, fmt):
    """A single byte that is not UTF-8 (a Latin-1 'é' in a description) raised UnicodeDecodeError out of the
    count of the records: a traceback, nothing imported, and no line named. The line is INVALID, the others go
    on, and the report names it."""
    bad = move_body("mv-bad")
    if fmt == "jsonl":
        path = tmp_path / "events.jsonl"
        good = [json.dumps(move_body(f"mv-{i}")).encode() for i in range(2)]
        path.write_bytes(good[0] + b"\n" + json.dumps(bad).encode()[:-1] + b', "x": "caf\xe9"}\n' + good[1] + b"\n")
    else:
        path = tmp_path / "events.csv"
        text = ",".join(CSV_HEADER) + "\r\n" + ",".join(map(str, _csv_row("mv-0"))) + "\r\n"
        path.write_bytes(text.encode() + ",".join(map(str, _csv_row("mv-bad"))).encode() + b"\xe9\r\n"
                         + ",".join(map(str, _csv_row("mv-1"))).encode() + b"\r\n")
    report = tmp_path / "report.jsonl"
    assert Importer(server, operator_key, progress=None).run(path, report=report) == 1
    rows = [json.loads(x) for x in report.read_text().splitlines()]
    assert [r["outcome"] for r in rows] == ["COMMITTED", "INVALID", "COMMITTED"]
    assert "UTF-8" in rows[1]["detail"]
    assert [s["event"]["event_id"] for s in ledger.submits] == ["mv-0", "mv-1"]


# -- answers -------------------------------------------------------------------------------------------------

def test_a_4xx_that_is_not_the_gateways_answer_stops_the_import_and_records_nothing(operator_key, ledger, tmp_path):
    """A proxy's 404 page (a wrong path in --url, a route not published) was recorded REFUSED for every line of the
    file: each line final, never sent again on a resume — the whole file lost, though no ledger refused anything.
    A 404 or 405 that is not the contract's refusal stops the import (exit 2), nothing recorded."""
    def not_found(environ, start_response):
        start_response("404 Not Found", [("Content-Type", "text/html")])
        return [b"<html>no such page</html>"]
    srv, thread, url = _serve(not_found)
    try:
        path = tmp_path / "events.jsonl"
        path.write_text("".join(json.dumps(move_body(f"mv-{i}")) + "\n" for i in range(3)))
        with pytest.raises(ImportError_, match="no such route: not the events of the ipledger gateway") as caught:
            Importer(url, operator_key, progress=None).run(path)
        assert "line 1" in str(caught.value) and "nothing recorded" in str(caught.value)
    finally:
        srv.shutdown()
        thread.join()
    assert len((tmp_path / "events.jsonl.progress").read_text().splitlines()) == 1    # the header only


def test_the_gateways_own_refusals_are_still_recorded_refused(server, operator_key, ledger, tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({**move_body("mv-0"), "quantity": 0}) + "\n")
    report = tmp_path / "r.jsonl"
    assert Importer(server, operator_key, progress=None).run(path, report=report) == 1
    assert json.loads(report.read_text())["outcome"] == "REFUSED"


@pytest.mark.parametrize("value", ["-5", "nan", "inf", "-inf", "1e999"])
def test_a_retry_after_that_is_negative_or_not_finite_is_not_a_crash(value):
    """``Retry-After: -5`` (a proxy's) made the importer sleep(-5): ValueError, a traceback mid-file. It is
    ignored (the importer's own back-off), as a date is."""
    waits = []
    importer = Importer("http://127.0.0.1:9", "ipk_x", progress=None, sleep=waits.append, backoff=1.0)
    answers = [(503, {"type": "https://ipledger.example/problems/service-unavailable"}, {"Retry-After": value}),
               (201, {"status": "COMMITTED", "tx_id": "t1", "block_number": 9}, {})]
    importer._post = lambda body, line: answers.pop(0)
    assert importer.submit(1, move_body("mv-1")).outcome == "COMMITTED"
    assert waits == [1.0]


def test_a_progress_record_holding_a_line_separator_is_read_back_whole(tmp_path):
    """The progress file is read with ``str.splitlines``, which also splits at U+2028, U+2029 and U+0085 —
    characters ``json.dumps(ensure_ascii=False)`` writes as they are (a gateway's detail quoting the ERP's text):
    the record was lost, its line counted as not done."""
    progress_file = tmp_path / "p"
    p = Progress(progress_file, "ab" * 32, restart=False)
    p.record(LineOutcome(1, "e1", "MoveGoods", 400, "REFUSED", detail="description 'a\u2028b\x85c' refused"))
    p.record(LineOutcome(2, "e2", "MoveGoods", 201, "COMMITTED", tx_id="t2"))
    p.close()
    p = Progress(progress_file, "ab" * 32, restart=False)
    assert set(p.done) == {1, 2} and p.done[1].detail == "description 'a\u2028b\x85c' refused"
    p.close()


def test_duplicate_lines_are_replays_of_the_first_and_a_rerun_sends_nothing(server, operator_key, ledger, tmp_path):
    """Judged correct: a line repeated is the original (REPLAYED, its transaction); once every line has a final
    answer, the same command sends nothing."""
    path = tmp_path / "events.jsonl"
    line = json.dumps(move_body("mv-0"))
    path.write_text(line + "\n" + line + "\n")
    report = tmp_path / "r.jsonl"
    assert Importer(server, operator_key, progress=None).run(path, report=report) == 0
    rows = [json.loads(x) for x in report.read_text().splitlines()]
    assert [r["outcome"] for r in rows] == ["COMMITTED", "REPLAYED"] and rows[0]["tx_id"] == rows[1]["tx_id"]
    sent = len(ledger.submits)
    assert Importer(server, operator_key, progress=None).run(path) == 0 and len(ledger.submits) == sent


# -- batches -------------------------------------------------------------------------------------------------

def test_a_batch_naming_one_event_id_twice_records_it_once_and_says_so(as_org, ledger):
    """Judged correct: the same event twice in a batch is committed, then replayed (the same transaction); other
    content under that event_id is refused (duplicate-event)."""
    r = as_org("OperatorMSP").post("/api/v1/events/batch", json=[move_body("m"), move_body("m"),
                                                                  move_body("m", quantity=7)])
    results = r.json["results"]
    assert [x["outcome"] for x in results] == ["COMMITTED", "REPLAYED", "REFUSED"]
    assert results[0]["tx_id"] == results[1]["tx_id"]
    assert results[2]["problem"]["code"] == "DuplicateEvent" and len(ledger.recorded) == 1


def test_after_an_item_to_send_again_the_items_that_may_depend_on_it_are_not_attempted(as_org, ledger, no_sleep):
    """A placement answered 409 transaction-conflict (FAILED: send it again) did not stop the batch: the move of
    its lot after it was attempted and REFUSED (404, the lot not recorded yet) — a final answer, untrue once the
    placement is sent again as told; an ERP resending the FAILED item only lost the move. The batch stops at an
    item to send again, the rest NOT_ATTEMPTED, with Retry-After, as at a 503."""
    ledger.fail_submits_for["place"] = mvcc_conflict()
    ledger.fail_submits_for["move"] = endorse_error("NotFound", "no lot L1")     # what the contract answers then
    r = as_org("OperatorMSP").post("/api/v1/events/batch", json=[move_body("before"), place_body("place"),
                                                                  move_body("move")])
    assert [x["outcome"] for x in r.json["results"]] == ["COMMITTED", "FAILED", "NOT_ATTEMPTED"]
    assert r.headers["Retry-After"] == "7"
    assert [s["event"]["event_id"] for s in ledger.submits].count("move") == 0


@pytest.fixture
def no_sleep(app):
    app.extensions["ipledger"].service.sleep = lambda s: None


# -- webhooks ------------------------------------------------------------------------------------------------

@pytest.fixture
def dripping():
    """A subscriber that answers its status line, then one header byte every 0.1 s for 6 s."""
    with dripping_subscriber() as url:
        yield url


def test_a_subscriber_answering_a_byte_at_a_time_does_not_hold_the_dispatcher_beyond_the_timeout(dripping):
    """``webhook_timeout_s`` bounded each read, not the attempt: a subscriber sending a byte of its answer every few
    seconds held the one dispatcher thread — every other subscriber's alerts waiting — for as long as it liked.
    An attempt ends after ``timeout`` seconds in all (a failed attempt, retried later)."""
    started = time.monotonic()
    with pytest.raises(OSError):
        webhooks.http_post(dripping, b"{}", {"Content-Type": "application/json"}, 0.5)
    assert time.monotonic() - started < 2.5


def test_a_subscriber_answering_in_time_is_delivered():
    def ok(environ, start_response):
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("204 No Content", [])
        return [b""]
    srv, thread, url = _serve(ok)
    try:
        assert webhooks.http_post(url + "/hook", b"{}", {"Content-Type": "application/json"}, 5) == 204
    finally:
        srv.shutdown()
        thread.join()


class _Log:
    def record(self, *args, **kwargs):
        pass


def test_a_delivery_signature_covers_when_it_was_sent():
    sent = []
    dispatcher = webhooks.Dispatcher(None, _Log(), post=lambda url, body, headers, timeout: sent.append(headers) or 204)
    secret = "s" * 16
    delivery = {"delivery_id": 1, "alert_id": "a", "attempts": 0, "body": '{"alert_id":"a"}'}
    dispatcher._send(delivery, {"id": "sub", "url": "https://example.org/hook", "secret": secret})
    stamp = sent[0].get(webhooks.TIMESTAMP_HEADER)
    assert stamp is not None and stamp.isdigit() and abs(int(stamp) - time.time()) < 60
    body, signature = delivery["body"].encode(), sent[0][webhooks.SIGNATURE_V2_HEADER]
    assert webhooks.verify(secret, body, sent[0][webhooks.SIGNATURE_HEADER])    # the body-only one, kept
    assert webhooks.verify(secret, body, signature, stamp)
    # the time is signed: the captured delivery, played again later with a fresh timestamp, is refused, and as it
    # was once the receiver's tolerance has passed
    assert not webhooks.verify(secret, body, signature, str(int(stamp) + 600), now=int(stamp) + 600)
    assert not webhooks.verify(secret, body, signature, stamp, now=int(stamp) + webhooks.SIGNATURE_TOLERANCE_S + 1)
    assert webhooks.verify(secret, body, signature, stamp, now=int(stamp) + webhooks.SIGNATURE_TOLERANCE_S)
