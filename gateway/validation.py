"""Early validation of business events, with the JSON Schemas the chaincode itself applies.

Request body of ``POST /api/v1/events`` (and of each batch item)::

    {"type": "PlaceUnderProcedure",              # the event type = the contract's submit function
     "event_id": "erp-4711", ...event fields..., # exactly the schema's fields
     "commercial": {"customs_value": {...}}}     # PlaceUnderProcedure / ExitGoods only: transient map

Everything but ``type`` and ``commercial`` is the event, validated against
``chaincode/contract/schemas/<type>.json`` and passed as the transaction's one
argument; ``commercial`` is validated against ``commercial.json`` and travels
only in the transient map (key ``commercial``), never in the transaction.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import itertools
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ipledger.chaincode.contract import acts, schemas  # the contract's act table and schemas (allowed imports)
from ipledger.gateway import filestore
from ipledger.gateway.problems import Problem

log = logging.getLogger("ipledger.gateway.validation")

EVENT_TYPES: tuple[str, ...] = schemas.EVENT_TYPES
# Acts whose commercial data travel in the transient map (the contract's act table, acts.py).
COMMERCIAL_EVENTS = frozenset(acts.COMMERCIAL)
# ... and those for which the contract requires a customs value.
CUSTOMS_VALUE_REQUIRED = frozenset({"PlaceUnderProcedure"})
MAX_ERRORS = schemas.MAX_ERRORS   # the violations a 400 lists: the contract's own number


@dataclass(frozen=True)
class ParsedEvent:
    type: str
    event: dict
    commercial: dict | None

    @property
    def event_id(self) -> str:
        return self.event["event_id"]

    def argument(self) -> str:
        """The transaction argument: the event as compact JSON."""
        return json.dumps(self.event, separators=(",", ":"), sort_keys=True, ensure_ascii=False)

    def transient(self) -> dict[str, bytes] | None:
        if self.commercial is None:
            return None
        return {"commercial": json.dumps(self.commercial, separators=(",", ":"), sort_keys=True,
                                         ensure_ascii=False).encode("utf-8")}


def invalid(errors: list[dict], event_type: str | None = None) -> Problem:
    """400 ``invalid-event`` listing the violations (the first :data:`MAX_ERRORS`) — or ``invalid-mrn`` (code
    ``InvalidMrn``, as the contract answers) when an MRN is the only thing wrong: its 18 characters,
    procedure-category letter (position 17) or ISO 6346 check digit (position 18)."""
    only_mrn = all(e.get("mrn") for e in errors)
    errors = sorted(({"path": e["path"], "message": e["message"]} for e in errors),
                    key=lambda e: (e["path"], e["message"]))[:MAX_ERRORS]
    first = errors[0]
    where = f"{event_type}: " if event_type else ""
    name, code = ("invalid-mrn", "InvalidMrn") if only_mrn else ("invalid-event", "InvalidEvent")
    return Problem(400, name, f"{where}{first['path'] or '/'}: {first['message']}",
                   extra={"code": code, "errors": errors})


# ----------------------------------------------------------------------------- arrays beyond maxItems

@dataclass(frozen=True)
class _ArrayLimits:
    """Where a schema caps arrays: ``max_items`` here (None: no array here, or no cap), and below it, by
    property name and for the items of an array."""
    max_items: int | None = None
    properties: tuple[tuple[str, "_ArrayLimits"], ...] = ()
    items: "_ArrayLimits | None" = None


def _resolve(root: dict, node: dict) -> dict:
    """``node`` with its ``$ref`` followed: a JSON pointer into ``root`` (the validator's schema, whose
    references to ``common.json`` are all local)."""
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return node
    target = root
    for part in ref.removeprefix("#").strip("/").split("/"):
        target = target[part]
    return _resolve(root, target)


def _limits_of(root: dict, node: Any) -> _ArrayLimits | None:
    """The array caps of schema ``node`` (None when nothing below it is an array)."""
    if not isinstance(node, dict):
        return None
    node = _resolve(root, node)
    properties = tuple((name, limits) for name, sub in (node.get("properties") or {}).items()
                       if (limits := _limits_of(root, sub)) is not None)
    items = _limits_of(root, node.get("items"))
    max_items = node.get("maxItems")
    if max_items is None and not properties and items is None:
        return None
    return _ArrayLimits(max_items, properties, items)


@functools.lru_cache(maxsize=None)
def array_limits(schema_name: str) -> _ArrayLimits | None:
    """The ``maxItems`` of schema ``schema_name`` (an event type or ``commercial``), where they apply: read
    from the schema the contract's validator applies."""
    root = schemas.validator(schema_name).schema
    return _limits_of(root, root)


def oversized_arrays(schema_name: str, instance: Any, prefix: str = "") -> list[dict]:
    """Arrays of ``instance`` longer than the ``maxItems`` of their place in the schema, as violations.
    Looked at before the schema's full walk: ``jsonschema`` describes every item of an array whatever its
    length, and a 4 MB body holds a million items. Only arrays are counted here (their items are not
    looked at), so the cost is that of the array lengths."""
    found: list[dict] = []
    pending = [(array_limits(schema_name), instance, prefix)]
    while pending:
        limits, value, path = pending.pop()
        if limits is None:
            continue
        if isinstance(value, list):
            if limits.max_items is not None and len(value) > limits.max_items:
                found.append({"path": path or "/", "message": f"has {len(value)} items, more than the "
                                                             f"{limits.max_items} allowed (maxItems)"})
            elif limits.items is not None:
                pending.extend((limits.items, item, f"{path}/{i}") for i, item in enumerate(value))
        elif isinstance(value, dict):
            pending.extend((sub, value[name], f"{path}/{name}") for name, sub in limits.properties if name in value)
    return sorted(found, key=lambda e: e["path"])


def _commercial_errors(data: Any) -> list[dict]:
    """Violations of commercial.json (the first :data:`MAX_ERRORS`: the walk stops there), with messages
    that never repeat the (confidential) values."""
    found = []
    for err in itertools.islice(schemas.validator("commercial").iter_errors(data), MAX_ERRORS):
        path = "/commercial" + "".join(f"/{p}" for p in err.absolute_path)
        if err.validator in ("required", "additionalProperties", "minProperties"):
            message = schemas.short_message(err.message)  # names properties, not values
        else:
            message = f"invalid value ({err.validator}"
            if err.validator == "pattern":
                message += f" {err.validator_value}"
            message += ")"
        found.append({"path": path, "message": message})
    return found


def parse_event(body: Any) -> ParsedEvent:
    """The event of a request body, or a 400 ``invalid-event`` problem listing every violation (the first
    :data:`MAX_ERRORS`). A value nested too deeply for the validators to walk is refused the same way."""
    try:
        return _parse_event(body)
    except RecursionError:
        raise invalid([{"path": "/", "message": "is nested too deeply to be validated"}]) from None


def _parse_event(body: Any) -> ParsedEvent:
    if not isinstance(body, dict):
        raise invalid([{"path": "", "message": "the body must be a JSON object"}])
    event_type = body.get("type")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        message = "is required" if event_type is None else "is not an event type"
        raise invalid([{"path": "/type", "message": f"{message}; one of: {', '.join(EVENT_TYPES)}"}])
    event = {k: v for k, v in body.items() if k not in ("type", "commercial")}
    commercial = body.get("commercial")
    oversized = oversized_arrays(event_type, event) + \
        (oversized_arrays("commercial", commercial, "/commercial") if event_type in COMMERCIAL_EVENTS else [])
    if oversized:
        raise invalid(oversized, event_type)
    # The contract's own schemas, calendar checks of dates and MRN check digits included: one source of
    # truth. Identifiers are matched whole (no trailing newline, no control character): the schemas'
    # patterns say so, and the contract's explicit check runs here too.
    errors = list(schemas.errors(event_type, event)) or schemas.identifier_errors(event)
    if "commercial" in body:
        if event_type not in COMMERCIAL_EVENTS:
            errors.append({"path": "/commercial",
                           "message": f"{event_type} takes no commercial data (only "
                                      f"{', '.join(sorted(COMMERCIAL_EVENTS))})"})
        else:
            errors.extend(_commercial_errors(commercial) or schemas.identifier_errors(commercial, "/commercial"))
            if isinstance(commercial, dict) and event_type in CUSTOMS_VALUE_REQUIRED \
                    and "customs_value" not in commercial:
                errors.append({"path": "/commercial/customs_value", "message": "is required"})
    elif event_type in CUSTOMS_VALUE_REQUIRED:
        errors.append({"path": "/commercial", "message": "is required (the customs value, e.g. "
                                                         "{\"customs_value\": {\"amount\": \"25000.00\", "
                                                         "\"currency\": \"EUR\"}})"})
    if errors:
        raise invalid(errors, event_type)
    return ParsedEvent(event_type, event, commercial if "commercial" in body else None)


# ----------------------------------------------------------------------------- commercial nonce

class NonceKey:
    """A secret of the gateway from which it derives the ``nonce`` of commercial data the caller sent
    without one: ``HMAC-SHA256(secret, event_id)``. The broker sees only the hash of the commercial
    record; without a nonce a customs value could be found by trying amounts. Being derived from the
    event_id, the nonce is the same on a replay, so replays stay idempotent."""

    def __init__(self, path: Path | None, make: bool = True):
        self.path = path
        self.make = make       # False under `gateway serve`, whose start made it (check_nonce_key)
        self._secret: bytes | None = None

    def secret(self) -> bytes | None:
        if self.path is None:
            return None
        if self._secret is None:
            try:
                self._secret = _read_or_create_secret(self.path) if self.make else _read_secret(self.path)
            except (NonceKeyError, OSError) as exc:
                # checked at start (check_nonce_key); changed since: nothing is submitted without the nonce
                log.error("commercial-data nonce key unusable: %s", exc)
                raise Problem(503, "service-unavailable", "the gateway cannot protect commercial data right now "
                              "(its nonce key is unusable); nothing was recorded: try again later") from None
        return self._secret

    def apply(self, parsed: ParsedEvent) -> ParsedEvent:
        if parsed.commercial is None or "nonce" in parsed.commercial:
            return parsed
        secret = self.secret()
        if secret is None:   # the contract refuses commercial data without a nonce: say so before a round trip
            raise invalid([{"path": "/commercial/nonce", "message": "required: commercial data need a nonce (16 to 128 "
                            "characters, random for each event, the same on a resend), and this gateway has no "
                            "nonce key to derive one from"}], parsed.type)
        nonce = hmac.new(secret, parsed.event_id.encode("utf-8"), hashlib.sha256).hexdigest()[:32]
        return ParsedEvent(parsed.type, parsed.event, {**parsed.commercial, "nonce": nonce})


def _read_or_create_secret(path: Path) -> bytes:
    """Read the secret; create it first if missing (atomically: concurrent workers agree on one)."""
    return _secret_of(path, filestore.read_or_create(path, lambda: (os.urandom(32).hex() + "\n").encode("ascii")))


def _read_secret(path: Path) -> bytes:
    """Read the secret, which must be there (NonceKeyError when it is not)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NonceKeyError(f"{path} is missing: restore it from a backup (a new key makes the replay of an event "
                            f"with commercial data a duplicate-event), then restart the gateway") from None
    return _secret_of(path, raw)


def _secret_of(path: Path, raw: bytes) -> bytes:
    text = raw.decode("ascii", errors="replace").strip()
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise NonceKeyError(f"{path} does not hold a nonce key (64 hex digits); restore it from a backup (a new "
                            f"key makes the replay of an event with commercial data a duplicate-event)")
    return bytes.fromhex(text)


class NonceKeyError(ValueError):
    """The nonce key file cannot be used (its content or its mode)."""


def check_nonce_key(path: Path | None) -> None:
    """At start: make the nonce key if there is none, and refuse one that is readable by others or is not a
    key, or is a link or anything but a regular file (NonceKeyError) — before any request, not at the first event
    with commercial data."""
    if path is None:
        return
    if os.path.lexists(path):   # a link is refused before it is followed (a dangling one too)
        filestore.require_regular_file(path, "nonce key file", NonceKeyError)
    _read_or_create_secret(path)
    filestore.require_owner_only(path, "nonce key file", NonceKeyError)
