"""``ipledger import``: post ERP business events, line by line, through the REST API.

One file: reading the two input formats, the progress file and the posting loop share one
notion of a line and its outcome, and read best together (the CSV typing follows the event schemas).

Input formats
-------------
* **JSON lines** (``.jsonl``): one request body of ``POST /api/v1/events`` per
  line, e.g. ``{"type": "MoveGoods", "event_id": "erp-12", ...}``. Blank
  lines are skipped.
* **CSV** (``.csv``, UTF-8, header row, comma-separated): one event per row.
  Columns: ``type`` (required), then the event's fields by name
  (``event_id``, ``authorisation_id``, ``occurred_at``, ``lot_id``,
  ``quantity``...). Empty cells are left out, so one file can mix event types.
  A cell is typed by the event's JSON Schema: integers and numbers are
  converted, arrays and objects are written as JSON in the cell (e.g.
  ``inputs`` = ``[{"lot_id": "L1", "qty": 500}]``). Nested members may also be
  spread over dotted columns (``parameters.warn_days``). Commercial data go in
  the ``commercial`` column as JSON, or in dotted columns
  ``commercial.customs_value.amount`` / ``commercial.customs_value.currency``.
  Read strictly: a row with more or fewer cells than the header has columns, or a byte that is not UTF-8, makes
  its line invalid; a header naming a column twice, or a quote left open, stops the import before anything is
  sent.

Resuming
--------
The progress file (default ``FILE.progress``, JSON lines) starts with the
input file's SHA-256 and records every line that got a final answer
(committed, replayed, refused, invalid). Run the same command again after an
interruption: recorded lines are skipped; lines whose outcome was not final
(network failure) are sent again — which is safe, since ``event_id`` makes
every event idempotent. A changed input file is refused (use ``--restart``). Two imports using one
progress file at once are refused (the second stops, exit 2). A 408 or 429 answer (e.g. of a proxy) is
retried like a 503, never recorded as a refusal.

Lines refused for now
---------------------
An ERP catching up on a backlog may list an event before the one it depends on (a move before the lot's
placement, an exit before the processing that made the batch). The gateway marks the refusals other events can
cure (``"may_succeed_later": true``: the goods not recorded yet, a balance or a ceiling still to change, an
authorisation still suspended, a period still to be extended). Such lines are held back (in memory) and sent
again after the rest of the file, in the order of their ``occurred_at``, pass after pass while a pass records one
of them; only then are the rest recorded REFUSED. ``--retry-refused`` sends an earlier run's REFUSED lines again
(after their missing events arrived by another file, say); INVALID lines stay as they are.

HTTPS
-----
``tls`` (:mod:`ipledger.gateway.client_tls`): the CAs trusted for the gateway's certificate and the client
certificate for mutual TLS. A TLS failure retrying cannot cure (unknown CA, host name mismatch, the
gateway requiring or refusing the client certificate) stops the import like an authentication error.

Exit codes: 0 every line recorded (or replayed); 1 some lines refused or
invalid (see the report); 2 usage, file, TLS or authentication error (a 401, a
403 ``forbidden`` or ``client-certificate-mismatch``); 3 stopped because the
gateway stayed unreachable (resume later); 130 interrupted.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import fcntl
import hashlib
import io
import json
import math
import os
import re
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, TextIO

from ipledger.gateway import jsonread, moments
from ipledger.gateway.client_tls import ClientTLS, ClientTLSError, ClientTLSOptions, TLSFailure
from ipledger.gateway.csvsafe import cell as csv_cell
from ipledger.network import files

MAX_CELL = 16 * 1024 * 1024   # characters of a CSV cell (beyond the gateway's 8 MiB body: the gateway refuses it)
FINAL = frozenset({"COMMITTED", "REPLAYED", "REFUSED", "INVALID"})
REPORT_COLUMNS = ("line", "event_id", "type", "status", "outcome", "tx_id", "block_number", "problem_type", "detail")
PROBLEM_BASE = "https://ipledger.example/problems/"


class ImportError_(Exception):  # noqa: N801 - not the builtin ImportError
    """The import cannot run (file, format, progress file or authentication problem)."""


class GatewayUnreachable(Exception):
    """No answer from the gateway (connection refused, reset, timed out): the line is sent again later, never
    recorded as refused."""


@dataclass
class LineOutcome:
    line: int
    event_id: str | None
    type: str | None
    status: int | None
    outcome: str            # COMMITTED, REPLAYED, REFUSED, INVALID, FAILED (DEFERRED: refused for now, sent again)
    tx_id: str | None = None
    block_number: int | None = None
    problem_type: str | None = None
    detail: str | None = None


# ------------------------------------------------------------------------------------------ reading

def detect_format(path: Path, fmt: str | None) -> str:
    if fmt:
        return fmt
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise ImportError_(f"cannot tell the format of {path.name}: give --format csv or --format jsonl")


def _file_digest(path: Path) -> str:
    """SHA-256 of the file, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_records(path: Path, fmt: str) -> Iterator[tuple[int, Any]]:
    """(line number, request body) per record; the body is an ``InvalidLine`` when it cannot be read.

    A byte that is not UTF-8 makes its line (its CSV record) ``InvalidLine``, the others are read: the file is
    decoded with ``surrogateescape``, which turns each such byte into a lone surrogate no UTF-8 text holds."""
    if fmt == "jsonl":
        with open(path, encoding="utf-8-sig", errors="surrogateescape") as f:
            for number, text in enumerate(f, start=1):
                if not text.strip():
                    continue
                if (bad := _not_utf8(text)) is not None:
                    yield number, InvalidLine(bad)
                    continue
                try:
                    value = json.loads(text)
                except ValueError as exc:
                    yield number, InvalidLine(f"not JSON: {exc}")
                    continue
                # posted as written: parsed and written again, a member named twice would lose one of its
                # values and a number a float cannot hold would be rounded, which the gateway refuses
                yield number, JsonLine(value, text.strip()) if isinstance(value, dict) else value
        return
    if csv.field_size_limit() < MAX_CELL:
        csv.field_size_limit(MAX_CELL)   # 131,072 by default: a larger cell raised csv.Error, a traceback
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        # csv.reader, not DictReader: DictReader skips an empty line without a word, and the line numbers of the
        # records after it were one too small (the report named the wrong line of the ERP's file). strict: a
        # quote left open took the lines after it into its cell — events neither sent nor in the report
        reader = csv.reader(f, strict=True)
        start = 1
        try:
            fields = next((row for row in reader if row), None)
            _check_header(path, fields)
            start = reader.line_num + 1
            for row in reader:
                number = start                   # a record's first line (a quoted cell may hold newlines)
                start = reader.line_num + 1
                if not any(cell.strip() for cell in row):
                    continue
                yield number, _csv_record(fields, row)
        except csv.Error as exc:
            raise ImportError_(f"{path.name}, the record from line {start}: not CSV ({exc}; a quote left open?); "
                               f"nothing of the file can be read safely after it") from None


def _csv_record(fields: list[str], row: list[str]) -> Any:
    if (bad := _not_utf8("".join(row))) is not None:
        return InvalidLine(bad)
    if len(row) > len(fields):
        return InvalidLine("more cells than columns")
    if len(row) < len(fields):
        # a record cut short (a copy of a file still being written): sent without its last cells, an exit
        # would be recorded without its commercial data
        return InvalidLine(f"fewer cells than columns ({len(row)} of {len(fields)}): a record cut short?")
    try:
        return csv_row_to_body(dict(zip(fields, row)))
    except ValueError as exc:
        return InvalidLine(str(exc))


def _check_header(path: Path, fields: list[str] | None) -> None:
    names = [c.strip() for c in fields or ()]
    if "type" not in names:
        raise ImportError_(f"{path.name}: the CSV header must have a 'type' column")
    if _not_utf8("".join(names)) is not None:
        raise ImportError_(f"{path.name}: the CSV header is not UTF-8")
    # of a column named twice every row's last cell would be sent, the other silently dropped (the gateway
    # refuses a body naming a member twice)
    twice = sorted({n for n in names if n and names.count(n) > 1})
    if twice:
        raise ImportError_(f"{path.name}: the CSV header names column(s) {', '.join(twice)} more than once")


_UNDECODED = re.compile("[\udc80-\udcff]")


def _not_utf8(text: str) -> str | None:
    """Why ``text`` (read with ``surrogateescape``) is not UTF-8, or None."""
    match = _UNDECODED.search(text)
    if match is None:
        return None
    return (f"not UTF-8: byte 0x{ord(match.group()) - 0xDC00:02X} at character {match.start() + 1} (save the file "
            f"as UTF-8)")


@dataclass
class InvalidLine:
    reason: str


class JsonLine(dict):
    """A request body read from a JSON line, which is posted as the line's own text (:attr:`text`)."""

    def __init__(self, value: dict, text: str):
        super().__init__(value)
        self.text = text


def _resolve(schema: dict, node: dict) -> dict:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("common.json#/$defs/"):
        return schema["$defs"]["common"]["$defs"][ref.rsplit("/", 1)[-1]]
    return node


def _property_schema(root: dict, path: list[str]) -> dict | None:
    node: dict | None = root
    for part in path:
        if node is None:
            return None
        node = _resolve(root, node)
        props = node.get("properties") or {}
        if part in props:
            node = props[part]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return None
    return _resolve(root, node) if node is not None else None


_INT = re.compile(r"^[+-]?[0-9]+\Z")   # ASCII digits (\d takes other scripts' digits too)
_NUM = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\Z")


def _typed(cell: str, prop: dict | None) -> Any:
    types = prop.get("type") if prop else None
    types = types if isinstance(types, list) else [types]
    if "integer" in types and _INT.match(cell):
        return int(cell)
    if "number" in types and _NUM.match(cell):
        if _INT.match(cell):
            return int(cell)
        return jsonread.number(cell)  # refused if a float cannot hold it exactly, as in a body
    if "boolean" in types and cell.lower() in ("true", "false"):
        return cell.lower() == "true"
    if ("array" in types or "object" in types) or (prop is None and cell[:1] in "[{"):
        return _json_cell(cell)
    return cell


def _json_cell(cell: str) -> Any:
    """A cell holding JSON, read as the gateway reads a body (``jsonread``): no member named twice (which
    value would be meant?), no number rounded."""
    try:
        return jsonread.loads(cell)
    except jsonread.Unreadable as exc:
        raise ValueError(f"not JSON: {cell[:60]} ({exc})") from None


def csv_row_to_body(row: dict[str, str]) -> dict:
    """One CSV row as a request body (typed with the event's JSON Schema)."""
    from ipledger.chaincode.contract import schemas  # the contract's schemas (allowed import)

    cells = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
    event_type = cells.pop("type", "")
    if not event_type:
        raise ValueError("the 'type' cell is empty")
    body: dict[str, Any] = {"type": event_type}
    try:
        event_schema = schemas.load_schema(event_type)
    except KeyError:
        event_schema = None  # an unknown type: sent as is, the gateway explains
    commercial_schema = schemas.load_schema("commercial")
    for column, cell in cells.items():
        if not column or cell == "":
            continue
        path = column.split(".")
        if path[0] == "commercial":
            root, sub = commercial_schema, path[1:]
        else:
            root, sub = event_schema, path
        prop = _property_schema(root, sub) if root is not None else None
        if path[0] == "commercial" and not sub:
            value: Any = _json_cell(cell) if cell.startswith("{") else cell
        else:
            value = _typed(cell, prop)
        target = body
        for part in path[:-1]:
            nxt = target.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ValueError(f"column {column}: {part} is given twice")
            target = nxt
        _set_once(target, path[-1], value, column)
    return body


def _set_once(target: dict, name: str, value: Any, column: str) -> None:
    """``target[name] = value``, objects merged member by member; a member given twice — by a JSON cell and a
    dotted column, in either order — is refused, as everywhere else a member named twice is: which value is meant
    is not certain (the last one would silently win: a customs value changed on the way)."""
    if name not in target:
        target[name] = value
    elif isinstance(target[name], dict) and isinstance(value, dict):
        for member, inner in value.items():
            _set_once(target[name], member, inner, column)
    else:
        raise ValueError(f"column {column}: {name} is given twice")


# ------------------------------------------------------------------------------------------ progress

_HEADER_START = b'{"input_sha256": '   # how a progress file begins (its header, written first)


def _progress_file(raw: bytes) -> bool:
    """Whether ``raw`` (a file's bytes, not empty) is a progress file: its first line a header, or — no line
    complete — the beginning of one a crash cut short."""
    first, newline, _ = raw.partition(b"\n")
    if not newline:
        return first.startswith(_HEADER_START) or _HEADER_START.startswith(first)
    try:
        header = json.loads(first)
    except ValueError:
        return False
    return isinstance(header, dict) and "input_sha256" in header


class Progress:
    """The progress file: a header with the input's hash and the format it was read in, then one final outcome
    per line. Another version of the file, or the same file read in another format (``--format``: its lines are
    other records), is refused unless ``--restart``.

    One import at a time uses it: an exclusive ``flock`` on the file, held until :meth:`close` (a second
    ``ipledger import`` of the same file — or with ``--restart`` — is refused while the first runs, rather than
    both writing the record). A record cut by a crash (no newline) is dropped before anything is appended: its
    line is sent again (a replay), and the next record is not glued to it. The file is 0600."""

    def __init__(self, path: Path, input_hash: str, restart: bool, fmt: str | None = None):
        self.path = path
        self.done: dict[int, LineOutcome] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ImportError_(f"another import is using {path} (the same file being imported): wait for it to "
                               f"end, then run the command again to resume") from None
        try:
            raw = _read_all(fd)
            if raw and not _progress_file(raw):   # never truncate a file that is not ours, --restart or not
                raise ImportError_(f"{path} is not a progress file of ipledger import (it holds other data); give "
                                   f"another --progress file")
            if restart:
                raw = b""
            end = raw.rfind(b"\n") + 1        # complete lines only
            # split at "\n" only: str.splitlines also splits at U+2028, U+2029 and U+0085, which a record's text
            # (a detail quoting the ERP's) holds as written — the record was lost, its line sent again
            lines = [text for text in raw[:end].decode("utf-8", "replace").split("\n") if text]
            if not lines:   # new, --restart, or a header cut by a crash (nothing was recorded after it)
                os.ftruncate(fd, 0)
            else:
                try:
                    header = json.loads(lines[0])
                except ValueError:
                    header = None
                if not isinstance(header, dict) or "input_sha256" not in header:
                    raise ImportError_(f"{path} is not a progress file of ipledger import; give another "
                                       f"--progress file")
                if header.get("input_sha256") != input_hash:
                    raise ImportError_(f"{path} belongs to another version of the input file; use --restart "
                                       f"to import it from the beginning")
                if fmt is not None and header.get("format") not in (None, fmt):
                    raise ImportError_(f"{path} records an import of this file read as {header['format']}, not "
                                       f"{fmt}: its lines were other records; use --restart to import it as {fmt}")
                if end != len(raw):
                    os.ftruncate(fd, end)    # the record a crash cut short
                for text in lines[1:]:
                    try:
                        rec = json.loads(text)
                        self.done[rec["line"]] = LineOutcome(**rec)
                    except (ValueError, TypeError, KeyError):
                        continue  # not a whole record: that line is simply sent again
            self._f = os.fdopen(fd, "a", encoding="utf-8")
        except BaseException:
            os.close(fd)
            raise
        if not lines:
            self._write({"input_sha256": input_hash, "version": 1, **({"format": fmt} if fmt else {})})

    def _write(self, obj: dict) -> None:
        self._f.write(json.dumps(obj, ensure_ascii=False) + "\n")   # the header: _HEADER_START first
        self._f.flush()
        os.fsync(self._f.fileno())

    def record(self, outcome: LineOutcome) -> None:
        self.done[outcome.line] = outcome
        self._write(asdict(outcome))

    def close(self) -> None:
        self._f.close()


# ------------------------------------------------------------------------------------------ the run

class Importer:
    def __init__(self, base_url: str, api_key: str, *, timeout: float = 120.0, retries: int = 5,
                 progress: TextIO | None = sys.stderr, sleep=time.sleep, backoff: float = 1.0,
                 tls: ClientTLS | None = None):
        self.base_url = base_url.rstrip("/")
        try:
            self.tls = tls or ClientTLSOptions().load(self.base_url)
        except ClientTLSError as exc:
            raise ImportError_(str(exc)) from None
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.out = progress
        self.sleep = sleep
        self.backoff = backoff
        self.run_id = uuid.uuid4().hex[:8]

    # -- HTTP --------------------------------------------------------------------------------------------
    def _post(self, body: Any, line: int) -> tuple[int, dict, dict]:
        text = body.text if isinstance(body, JsonLine) else json.dumps(body, ensure_ascii=False)
        data = text.encode("utf-8")
        req = urllib.request.Request(f"{self.base_url}/api/v1/events", data=data, method="POST", headers={
            "Content-Type": "application/json", "Accept": "application/json, application/problem+json",
            "Authorization": f"Bearer {self.api_key}", "X-Request-Id": f"import-{self.run_id}-{line}"})
        try:
            with self.tls.urlopen(req, timeout=self.timeout) as resp:
                return resp.status, _json(resp.read()), dict(resp.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, _json(exc.read()), dict(exc.headers or {})
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise GatewayUnreachable(str(getattr(exc, "reason", exc))) from None

    def submit(self, line: int, body: Any) -> LineOutcome:
        event_id = body.get("event_id") if isinstance(body, dict) else None
        event_type = body.get("type") if isinstance(body, dict) else None
        attempt = 0
        while True:
            try:
                status, answer, headers = self._post(body, line)
            except TLSFailure as exc:  # retrying cannot cure it: stop, nothing recorded for this line
                raise ImportError_(f"TLS: {exc}. Stopped at line {line}, nothing recorded for it: fix this and "
                                   f"run the same command again to resume") from None
            except GatewayUnreachable as exc:
                status, answer, headers = None, {"detail": f"gateway unreachable: {exc}"}, {}
            problem_type = str(answer.get("type", "")).removeprefix(PROBLEM_BASE) or None
            # 408 and 429 (a proxy in front, a rate limit): the event was not taken, never a final refusal
            retryable = status is None or status in (408, 429, 502, 503, 504) or problem_type == "transaction-conflict"
            if retryable and attempt < self.retries:
                attempt += 1
                wait = _retry_after(headers) or min(30.0, self.backoff * 2 ** (attempt - 1))
                self.sleep(wait)
                continue
            break
        if status is not None and 300 <= status < 400:
            # not followed (the key would go to the host it names): the URL is not the gateway's API
            raise ImportError_(f"the gateway answered {status}, redirecting to {headers_get(headers, 'Location')!r}: "
                               f"give the URL of the gateway itself. Stopped at line {line}, nothing recorded for it")
        if status in (200, 201):
            if not isinstance(answer.get("tx_id"), str) or not answer["tx_id"]:
                # a page of something else at that URL (a proxy's sign-in page): recording the line COMMITTED
                # would never send it again
                raise ImportError_(f"the gateway answered {status} with no transaction id: not the answer of the "
                                   f"ipledger gateway's API (check --url). Stopped at line {line}, nothing recorded "
                                   f"for it")
            return LineOutcome(line, event_id, event_type, status, answer.get("status", "COMMITTED"),
                               tx_id=answer.get("tx_id"), block_number=answer.get("block_number"))
        if problem_type == "client-certificate-mismatch":
            raise ImportError_(f"the gateway refused the client certificate with this API key ({status} "
                               f"{problem_type}): {answer.get('detail', '')}")
        if status in (401,) or problem_type == "forbidden":
            raise ImportError_(f"the gateway refused the API key ({status} {problem_type}): "
                               f"{answer.get('detail', '')}")
        ours = str(answer.get("type", "")).startswith(PROBLEM_BASE)   # a problem+json of the gateway
        # no such route — a proxy's page, or the gateway's own 404/405 without a contract's code: the URL is not
        # the events' (a wrong path in --url). No ledger refused the event, and a line recorded REFUSED is never sent
        # again: every line of the file would be lost so. (A proxy's 413 for one large line refuses that line.)
        if status in (404, 405) and not (ours and answer.get("code")):
            raise ImportError_(f"the gateway answered {status}, no such route: not the events of the ipledger "
                               f"gateway's API (check --url). Stopped at line {line}, nothing recorded for it")
        if status is not None and 400 <= status < 500 and status != 413 and not ours:
            # a 4xx that is not the gateway's (a firewall's or a proxy's 403 page): no ledger refused the event
            raise ImportError_(f"the server answered {status} with something other than the ipledger gateway's "
                               f"problem+json (a proxy or firewall in front of it?). Stopped at line {line}, nothing "
                               f"recorded for it: fix this and run the same command again to resume")
        if retryable or status is None or status >= 500:
            outcome = "FAILED"
        else:   # refused: no transaction was ordered, the proposal's id names nothing on the ledger
            outcome = "DEFERRED" if ours and answer.get("may_succeed_later") is True else "REFUSED"
        return LineOutcome(line, event_id, event_type, status, outcome,
                           tx_id=answer.get("tx_id") if outcome == "FAILED" else None,
                           problem_type=problem_type, detail=answer.get("detail"))

    # -- the whole file ----------------------------------------------------------------------------------
    def run(self, path: Path, *, fmt: str | None = None, report: Path | None = None,
            progress_file: Path | None = None, restart: bool = False, retry_refused: bool = False) -> int:
        path = Path(path)
        if not path.is_file():
            raise ImportError_(f"no file {path}")
        fmt = detect_format(path, fmt)
        digest = _file_digest(path)
        # the file is read twice, record by record (a count for the progress bar, then the submits): a
        # file of any size takes the memory of one record, not of the whole file (and of the lines held back)
        total = sum(1 for _ in read_records(path, fmt))
        progress = Progress(progress_file or path.with_name(path.name + ".progress"), digest, restart, fmt)
        if retry_refused:   # an earlier run's refusals sent again (their events may have arrived since)
            for line in [n for n, o in progress.done.items() if o.outcome == "REFUSED"]:
                del progress.done[line]
        counts = {"ok": 0, "refused": 0, "failed": 0}
        for outcome in progress.done.values():
            counts["ok" if outcome.outcome in ("COMMITTED", "REPLAYED") else "refused"] += 1
        self._bar(len(progress.done), total, counts)
        held: list[tuple[tuple, int, Any, LineOutcome]] = []   # (business time, line, body, last outcome)
        code = 0
        try:
            for line, body in read_records(path, fmt):
                if line in progress.done:
                    continue
                if isinstance(body, InvalidLine):
                    outcome = LineOutcome(line, None, None, None, "INVALID", detail=body.reason)
                else:
                    outcome = self.submit(line, body)
                if outcome.outcome == "DEFERRED":
                    held.append((_business_time(body), line, body, outcome))
                    continue
                if not self._settle(progress, counts, outcome, total):
                    code = 3
                    break
                self._bar(len(progress.done), total, counts)
            else:
                code = self._send_held(progress, counts, held, total)
                self._bar(len(progress.done), total, counts, final=True)
        except KeyboardInterrupt:
            self._say("interrupted; run the same command again to resume")
            code = 130
        finally:
            progress.close()
            if report is not None:
                write_report(report, sorted(progress.done.values(), key=lambda o: o.line))
        if code:
            return code
        return 1 if counts["refused"] else 0

    def _settle(self, progress: Progress, counts: dict, outcome: LineOutcome, total: int) -> bool:
        """Record a final outcome; False (stop) for a line that got no final answer."""
        if outcome.outcome in FINAL:
            progress.record(outcome)
            counts["ok" if outcome.outcome in ("COMMITTED", "REPLAYED") else "refused"] += 1
            return True
        counts["failed"] += 1
        self._bar(len(progress.done), total, counts, final=True)
        self._say(f"line {outcome.line}: no final answer ({outcome.status or 'gateway unreachable'}: "
                  f"{outcome.detail}); stopped. Run the same command again to resume.")
        return False

    def _send_held(self, progress: Progress, counts: dict, held: list, total: int) -> int:
        """The lines refused for now — a refusal another event can cure (``may_succeed_later``: the goods not
        recorded yet, a balance still to come, …) — sent again after the rest of the file, in the order of their
        ``occurred_at``, pass after pass while a pass records one of them; then recorded REFUSED with their last
        answer. An ERP's backlog sent in another order than the goods moved is so recorded whole, each event once
        (every resend carries its ``event_id``). Returns 3 when the gateway gave no final answer (resume later)."""
        held.sort(key=lambda item: (item[0], item[1]))
        while held:
            self._say(f"{len(held)} line(s) refused for now, which other events of the file may allow (e.g. "
                      f"\"{held[0][3].detail}\", line {held[0][1]}): sending them again, by their occurred_at")
            waiting, recorded = [], False
            for when, line, body, _last in held:
                outcome = self.submit(line, body)
                if outcome.outcome == "DEFERRED":
                    waiting.append((when, line, body, outcome))
                    continue
                if not self._settle(progress, counts, outcome, total):
                    return 3
                recorded = recorded or outcome.outcome in ("COMMITTED", "REPLAYED")
                self._bar(len(progress.done), total, counts)
            held = waiting
            if not recorded:
                break
        for _when, _line, _body, last in held:   # nothing left in the file allows them: refused
            self._settle(progress, counts, dataclasses.replace(last, outcome="REFUSED"), total)
        return 0

    # -- progress bar --------------------------------------------------------------------------------------
    def _bar(self, done: int, total: int, counts: dict, final: bool = False) -> None:
        if self.out is None:
            return
        width = 30
        filled = int(width * done / total) if total else width
        text = (f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} lines  ok {counts['ok']}  "
                f"refused {counts['refused']}")
        if getattr(self.out, "isatty", lambda: False)():
            self.out.write("\r" + text + ("\n" if final else ""))
        elif final or total < 20 or done % max(1, total // 10) == 0:
            self.out.write(text + "\n")
        self.out.flush()

    def _say(self, text: str) -> None:
        if self.out is not None:
            self.out.write(text + "\n")
            self.out.flush()


def _business_time(body: Any) -> tuple:
    """The order held-back lines are sent again in: their ``occurred_at`` (:func:`moments.parse`), one that cannot
    be read last."""
    when = moments.parse(body.get("occurred_at") if isinstance(body, dict) else None)
    return (0, when) if when is not None else (1, _NO_MOMENT)


_NO_MOMENT = dt.datetime.min.replace(tzinfo=dt.timezone.utc)


def _read_all(fd: int) -> bytes:
    chunks, offset = [], 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _json(raw: bytes) -> dict:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {"detail": "the gateway answered with something that is not JSON"}
    return value if isinstance(value, dict) else {}


def headers_get(headers: dict, name: str) -> str | None:
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return None


def _retry_after(headers: dict) -> float | None:
    value = headers_get(headers, "Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    # a negative or non-finite value (a proxy's) is no wait: sleep(-5) raised, mid-file
    return min(60.0, seconds) if math.isfinite(seconds) and seconds >= 0 else None


def write_report(path: Path, outcomes: list[LineOutcome]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        text = "".join(json.dumps(asdict(o), ensure_ascii=False) + "\n" for o in outcomes)
    else:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=REPORT_COLUMNS, lineterminator="\n")
        w.writeheader()
        for o in outcomes:
            w.writerow({k: csv_cell(v) for k, v in asdict(o).items()})  # formula-like text made inert
        text = buf.getvalue()
    files.write_atomically(path, text.encode("utf-8"), 0o600)   # the outcomes, like the progress file: 0600
