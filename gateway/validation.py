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

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ipledger.chaincode.contract import acts, schemas  # the contract's act table and schemas (allowed imports)
from ipledger.gateway.problems import Problem

EVENT_TYPES: tuple[str, ...] = schemas.EVENT_TYPES
# Acts whose commercial data travel in the transient map (the contract's act table, acts.py).
COMMERCIAL_EVENTS = frozenset(acts.COMMERCIAL)
# ... and those for which the contract requires a customs value.
CUSTOMS_VALUE_REQUIRED = frozenset({"PlaceUnderProcedure"})
MAX_ERRORS = 20


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
    """400 ``invalid-event`` listing every violation — or ``invalid-mrn`` (code ``InvalidMrn``, as the
    contract answers) when an MRN is the only thing wrong: its 18 characters, procedure-category letter
    (position 17) or ISO 6346 check digit (position 18)."""
    only_mrn = all(e.get("mrn") for e in errors)
    errors = sorted(({"path": e["path"], "message": e["message"]} for e in errors),
                    key=lambda e: (e["path"], e["message"]))[:MAX_ERRORS]
    first = errors[0]
    where = f"{event_type}: " if event_type else ""
    name, code = ("invalid-mrn", "InvalidMrn") if only_mrn else ("invalid-event", "InvalidEvent")
    return Problem(400, name, f"{where}{first['path'] or '/'}: {first['message']}",
                   extra={"code": code, "errors": errors})


def _commercial_errors(data: Any) -> list[dict]:
    """Violations of commercial.json, with messages that never repeat the (confidential) values."""
    found = []
    for err in schemas.validator("commercial").iter_errors(data):
        path = "/commercial" + "".join(f"/{p}" for p in err.absolute_path)
        if err.validator in ("required", "additionalProperties", "minProperties"):
            message = err.message  # names properties, not values
        else:
            message = f"invalid value ({err.validator}"
            if err.validator == "pattern":
                message += f" {err.validator_value}"
            message += ")"
        found.append({"path": path, "message": message})
    return found


def parse_event(body: Any) -> ParsedEvent:
    """The event of a request body, or a 400 ``invalid-event`` problem listing every violation."""
    if not isinstance(body, dict):
        raise invalid([{"path": "", "message": "the body must be a JSON object"}])
    event_type = body.get("type")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        message = "is required" if event_type is None else "is not an event type"
        raise invalid([{"path": "/type", "message": f"{message}; one of: {', '.join(EVENT_TYPES)}"}])
    event = {k: v for k, v in body.items() if k not in ("type", "commercial")}
    # The contract's own schemas, calendar checks of dates and MRN check digits included: one source of
    # truth. Identifiers are matched whole (no trailing newline, no control character): the schemas'
    # patterns say so, and the contract's explicit check runs here too.
    errors = list(schemas.errors(event_type, event)) or schemas.identifier_errors(event)
    commercial = body.get("commercial")
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

    def __init__(self, path: Path | None):
        self.path = path
        self._secret: bytes | None = None

    def secret(self) -> bytes | None:
        if self.path is None:
            return None
        if self._secret is None:
            self._secret = _read_or_create_secret(self.path)
        return self._secret

    def apply(self, parsed: ParsedEvent) -> ParsedEvent:
        if parsed.commercial is None or "nonce" in parsed.commercial:
            return parsed
        secret = self.secret()
        if secret is None:
            return parsed
        nonce = hmac.new(secret, parsed.event_id.encode("utf-8"), hashlib.sha256).hexdigest()[:32]
        return ParsedEvent(parsed.type, parsed.event, {**parsed.commercial, "nonce": nonce})


def _read_or_create_secret(path: Path) -> bytes:
    """Read the secret; create it first if missing (atomically: concurrent workers agree on one)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(os.urandom(32).hex() + "\n")
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)  # fails if another process created it first: theirs wins
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    return bytes.fromhex(path.read_text().strip())
