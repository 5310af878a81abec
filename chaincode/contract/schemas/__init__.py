"""JSON Schemas (draft 2020-12) of the ipledger events, one file per event type.

The files ship inside the package and are read with :mod:`importlib.resources`,
so the gateway can validate requests with exactly the rules the chaincode
applies::

    from ipledger.chaincode.contract.schemas import EVENT_TYPES, load_schema, validator
    validator("PlaceUnderProcedure").iter_errors(body)

:func:`load_schema` returns a self-contained schema: the shared definitions of
``common.json`` are embedded (as a ``$defs`` entry with its own ``$id``), so any
draft 2020-12 validator resolves the ``common.json#/$defs/...`` references
without a registry.
"""
from __future__ import annotations

import datetime as _dt
import functools
import json
import math
import re
import threading
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, validators

from ipledger.chaincode.contract import acts, timestamps
from ipledger.chaincode.contract.schemas.compiled import Unsupported, compile_schema

__all__ = ["EVENT_TYPES", "TRANSIENT_SCHEMAS", "load_schema", "validator", "validate", "errors",
           "identifier_errors", "unstorable"]

# One schema per act of the act table (``acts.py``), in its order.
EVENT_TYPES: tuple[str, ...] = acts.NAMES
# Schemas of transient-map entries (not events): name -> schema file.
TRANSIENT_SCHEMAS: tuple[str, ...] = ("commercial",)


def _read(name: str) -> dict:
    return json.loads(resources.files(__name__).joinpath(f"{name}.json").read_text("utf-8"))


@functools.lru_cache(maxsize=None)
def _bundled(name: str) -> str:
    if name not in EVENT_TYPES and name not in TRANSIENT_SCHEMAS and name != "common":
        raise KeyError(f"no schema {name!r}")
    schema = _read(name)
    if name != "common":
        schema.setdefault("$defs", {})["common"] = _read("common")
    return json.dumps(schema)


def load_schema(event_type: str) -> dict[str, Any]:
    """The self-contained schema of ``event_type`` (or ``commercial``); a fresh copy."""
    return json.loads(_bundled(event_type))


# JSON numbers like 10.0 are "integers" for the JSON Schema spec; quantities must be exact
# integers here (Python's json gives float for 10.0), so the chaincode's checker is strict.
_strict_types = Draft202012Validator.TYPE_CHECKER.redefine(
    "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool))
StrictValidator = validators.extend(Draft202012Validator, type_checker=_strict_types)


# Dates must exist on the calendar (2026-02-30 matches the pattern but is refused), and come no later
# than timestamps.LAST_YEAR.
FORMATS = FormatChecker(formats=())
LAST_YEAR = timestamps.LAST_YEAR


@FORMATS.checks("date", raises=ValueError)
def _is_date(value: object) -> bool:
    return not isinstance(value, str) or _dt.date.fromisoformat(value).year <= LAST_YEAR


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parsed = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.tzinfo is not None and parsed.year <= LAST_YEAR


def _beyond(value: object) -> bool:
    """A date or date-time on the calendar, but after the year :data:`LAST_YEAR`."""
    try:
        return isinstance(value, str) and _dt.datetime.fromisoformat(value.replace("Z", "+00:00")).year > LAST_YEAR
    except ValueError:
        return False


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def unstorable(instance: Any, path: str = "") -> list[dict[str, str]]:
    """Values JSON can carry in Python but the ledger cannot store as JSON text, as violations: a number
    that is not finite (``NaN``, ``Infinity``) and a string — or a property name — holding an unpaired
    UTF-16 surrogate (``"\\ud800"``: not Unicode text). No schema keyword says so."""
    found: list[dict[str, str]] = []
    if isinstance(instance, float):
        if not math.isfinite(instance):
            found.append({"path": path, "message": "is not a finite number"})
    elif isinstance(instance, str):
        if _LONE_SURROGATE.search(instance):
            found.append({"path": path, "message": "holds an unpaired surrogate (not Unicode text)"})
    elif isinstance(instance, list):
        for i, item in enumerate(instance):
            found.extend(unstorable(item, f"{path}/{i}"))
    elif isinstance(instance, dict):
        for name, value in instance.items():
            if isinstance(name, str) and _LONE_SURROGATE.search(name):
                found.append({"path": path, "message": "a property name holds an unpaired surrogate"})
            found.extend(unstorable(value, f"{path}/{name}"))
    return found


_COMMON_REF = "common.json#/$defs/"
_LOCAL_COMMON_REF = "#/$defs/common/$defs/"


def _local_refs(node: Any) -> Any:
    """The schema with every ``common.json#/$defs/X`` reference made local
    (``#/$defs/common/$defs/X``). Same rules; but a local reference is a JSON pointer into the
    schema itself, while a ``common.json`` one sends the validator to its registry on every
    lookup, which was most of an event's validation time."""
    if isinstance(node, dict):
        return {k: (_LOCAL_COMMON_REF + v[len(_COMMON_REF):]
                    if k == "$ref" and isinstance(v, str) and v.startswith(_COMMON_REF)
                    else _local_refs(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_local_refs(v) for v in node]
    return node


@FORMATS.checks("mrn", raises=ValueError)
def _is_mrn(value: object) -> bool:
    """The EU MRN (UCC IA Annex B): the pattern says the shape, this the check digit."""
    from ipledger.chaincode.contract.identifiers import mrn_problem

    problem = mrn_problem(value) if isinstance(value, str) else None
    if problem:
        raise ValueError(problem)
    return True


def _once_per_type(build):
    """Cache ``build(event_type)`` forever, built once even when many threads ask at the same time.

    ``functools.lru_cache`` lets every thread that misses build its own copy: the first requests after a
    gateway worker starts, 128 threads at once under load, each spent some 30 ms of CPU checking and
    compiling the same schema. Here the others wait for the one building it."""
    built: dict[str, Any] = {}
    lock = threading.Lock()

    @functools.wraps(build)
    def cached(event_type: str):
        try:
            return built[event_type]
        except KeyError:
            pass
        with lock:
            if event_type not in built:
                built[event_type] = build(event_type)
            return built[event_type]
    return cached


@_once_per_type
def validator(event_type: str) -> Draft202012Validator:
    schema = load_schema(event_type)
    StrictValidator.check_schema(schema)
    if event_type != "common":
        schema = _local_refs(schema)
        schema["$defs"]["common"].pop("$id", None)
    return StrictValidator(schema, format_checker=FORMATS)


@_once_per_type
def _valid(event_type: str):
    """The compiled predicate of ``event_type``'s schema (``compiled.py``), or None when the schema uses
    a keyword the compiler does not mirror (then ``jsonschema`` alone decides)."""
    try:
        return compile_schema(validator(event_type).schema, FORMATS)
    except Unsupported:
        return None


_NEW_GOODS_ID = re.compile(_read("common")["$defs"]["newGoodsId"]["pattern"])


def is_new_goods_id(value: str) -> bool:
    """``value`` may name a new lot or batch (common.json's ``newGoodsId``): what a batch's default id, made by
    the contract rather than given, is held to as well."""
    return _NEW_GOODS_ID.match(value) is not None


def is_mrn_error(err) -> bool:
    """A violation of the MRN definition (its type, pattern or check digit)."""
    return isinstance(err.schema, dict) and err.schema.get("format") == "mrn"


def _text_patterns() -> dict[str, str]:
    """The patterns of common.json's ``text`` (one line) and ``longText`` (several lines), each with the control
    characters it allows."""
    defs = _read("common")["$defs"]
    return {defs["text"]["pattern"]: "", defs["longText"]["pattern"]: "\t\n\r"}


_TEXT_PATTERNS = _text_patterns()


def _control_problem(text: str, pattern: str) -> str:
    """What is wrong with a text its pattern refused: the first control character and where it is."""
    allowed = _TEXT_PATTERNS[pattern]
    for i, ch in enumerate(text, start=1):
        if (ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F) and ch not in allowed:
            kind = "one line of text" if not allowed else "text"
            return (f"holds the control character U+{ord(ch):04X} at character {i}: {kind} without control "
                    f"characters{' (tabs and line breaks allowed)' if allowed else ''}")
    return "holds a control character"


MAX_ERRORS = 20   # the violations a refusal lists (the contract's InvalidEvent, the gateway's 400)


def errors(event_type: str, instance: Any, limit: int | None = MAX_ERRORS) -> list[dict[str, str]]:
    """The violations as ``{"path": "/outputs/0/qty", "message": ...}``, in a stable order: the first ``limit``
    the walk finds (None: every one) — an event of a thousand wrong items is not walked to its end for a refusal
    that lists twenty. An MRN gets one violation saying what is wrong with it (length, a position, the check
    digit); ``mrn: True`` marks it."""
    from ipledger.chaincode.contract.identifiers import mrn_problem

    broken = unstorable(instance)
    valid = _valid(event_type)
    if not broken and valid is not None and valid(instance):  # the usual case, without jsonschema's walk
        return []
    found: dict[tuple[str, str], dict] = {(b["path"], b["message"]): b for b in broken}
    for err in validator(event_type).iter_errors(instance):
        path = "/" + "/".join(str(p) for p in err.absolute_path)
        extra = {}
        if is_mrn_error(err):
            message, extra = f"not an MRN: {mrn_problem(err.instance)}", {"mrn": True}
        elif err.validator == "format" and err.validator_value in ("date", "date-time") and _beyond(err.instance):
            message = f"is after {LAST_YEAR}-12-31, the last date the contract computes with"
        elif err.validator == "pattern" and err.validator_value in _TEXT_PATTERNS and isinstance(err.instance, str):
            message = _control_problem(err.instance, err.validator_value)
        elif err.validator == "pattern" and isinstance(err.instance, str):
            message = short_message(f"{err.instance!r} does not match {shown_pattern(err.validator_value)!r}")
        else:
            message = short_message(err.message)
        found.setdefault((path, message), {"path": path, "message": message, **extra})
        if limit is not None and len(found) >= limit:
            break
    return [found[k] for k in sorted(found)]


MAX_MESSAGE = 300


WHOLE_END = "$(?!\\n)"   # how every pattern ends: a whole-string match (Python's ``$`` also matches before a final \\n)


def shown_pattern(pattern: str) -> str:
    """A pattern as an error message shows it: without the guard of :data:`WHOLE_END`, which says nothing to the
    reader but ``$``."""
    return pattern.replace(WHOLE_END, "$")


# A page of GetEventsInPeriod: its ``limit`` and its cursor (``after``, the ``next`` of the page before), which the
# contract checks and the gateway's ``/events`` parameters follow — written once, in common.json.
_PAGES = _read("common")["$defs"]
EVENTS_PAGE_MAX: int = _PAGES["eventsPageLimit"]["maximum"]
EVENTS_PAGE_CURSOR: str = _PAGES["eventsPageCursor"]["pattern"]
# A 5151 transfer: its procedure code and the goods fields its two sides name alike, which the contract checks on
# one channel and customs' gateway across holders' channels (ipledger.gateway.declarations) — written once too.
TRANSFER_PROCEDURE: str = _PAGES["transferProcedure"]["const"]
TRANSFER_GOODS_FIELDS: tuple[str, ...] = tuple(_PAGES["transferGoodsField"]["enum"])


def short_message(message: str) -> str:
    """A validator's message cut to :data:`MAX_MESSAGE` characters (one naming every member of a large object
    would be as large as the object)."""
    return message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE - 3] + "..."


def identifier_errors(instance: Any, prefix: str = "") -> list[dict[str, str]]:
    """The contract's explicit check that every identifier is whole (``identifiers.require_whole``,
    InvalidIdentifier), as violations for the gateway: ``[]`` or one ``{"path", "message"}``."""
    from ipledger.chaincode.contract.errors import InvalidIdentifier
    from ipledger.chaincode.contract.identifiers import require_whole

    try:
        require_whole(instance, prefix)
    except InvalidIdentifier as err:
        return [{"path": err.details["path"], "message": str(err.message).split(": ", 1)[-1]}]
    return []


def validate(event_type: str, instance: Any) -> None:
    """Raise :class:`ipledger.chaincode.contract.errors.InvalidEvent` listing every violation —
    :class:`~ipledger.chaincode.contract.errors.InvalidMrn` when an MRN is the only thing wrong."""
    from ipledger.chaincode.contract.errors import InvalidEvent, InvalidMrn

    found = errors(event_type, instance)
    if found:
        first = found[0]
        rule = InvalidMrn if all(e.get("mrn") for e in found) else InvalidEvent
        raise rule(f"{event_type}: {first['path']}: {first['message']}",
                   errors=[{"path": e["path"], "message": e["message"]} for e in found[:MAX_ERRORS]])
