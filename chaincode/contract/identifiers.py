"""Identifiers are matched whole: the explicit check behind the JSON Schemas, and the EU MRN.

The schemas' patterns end in ``$(?!\\n)``: Python's ``re.search`` (which jsonschema uses) lets ``$``
match before a trailing newline, so ``^…$`` alone accepted ``"26FR…R8\\n"`` as a second declaration and
``"erp-1\\n"`` as a second idempotency key. This module checks again, independently of the schemas,
that every identifier of an event is printable ASCII without spaces (``InvalidIdentifier``), and that
every key part the contract builds holds no control character (``keys.py``). It imports nothing but
``errors`` so that ``schemas`` (and through it the gateway) can use it.

MRN (UCC IA Annex B; docs/domain.md §2b): 18 characters — year (2 digits), country (2 letters), a unique
identifier (12 alphanumerics), the procedure-category letter (position 17) and the check digit
(position 18) computed over the first 17 as in ISO 6346.
"""
from __future__ import annotations

import re
from typing import Any

from ipledger.chaincode.contract.errors import InvalidIdentifier

__all__ = ["IDENTIFIER_FIELDS", "LIST_FIELDS", "is_identifier", "is_one_line_text", "require_whole",
           "require_key_part", "mrn_check_digit", "mrn_problem", "is_mrn"]

# Printable ASCII, no space: every identifier pattern of the schemas is a subset of this.
_WHOLE = re.compile(r"[!-~]+")
# Control characters (C0, DEL, C1), line and paragraph separators, the composite-key range limits, and lone
# surrogates (a JSON escape can make one; it is no Unicode text, so no key can hold it).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\U0010ffff]")

# What one line of text may not hold (the schemas' ``text``): control characters, line and paragraph separators,
# direction overrides and isolates (text that reads otherwise than it is stored), lone surrogates.
_NOT_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def is_one_line_text(value: Any, max_length: int) -> bool:
    """Whether ``value`` is one line of text of at most ``max_length`` characters, as the schemas' ``text``."""
    return isinstance(value, str) and len(value) <= max_length and not _NOT_ONE_LINE.search(value)


# Event fields whose string value is an identifier, a code or a timestamp (never free text).
IDENTIFIER_FIELDS = frozenset({
    "event_id", "authorisation_id", "lot_id", "batch_id", "operation_id", "mrn", "bill_id",
    "site", "from_site", "to_site", "holder_eori", "supervising_office", "cn", "input_cn", "output_cn",
    "origin", "unit", "kind", "procedure", "decision", "occurred_at", "valid_from", "valid_to", "until",
    "new_deadline", "period_end", "exit_date", "document_hash", "evidence_hash", "currency", "msp_id", "role",
})
# Event fields holding a list of identifiers.
LIST_FIELDS = frozenset({"sites", "lot_ids", "broker_mandates", "eoris"})


def is_identifier(value: Any) -> bool:
    return isinstance(value, str) and _WHOLE.fullmatch(value) is not None


def _refuse(path: str, value: Any) -> None:
    shown = value[:80] if isinstance(value, str) else value
    raise InvalidIdentifier(f"{path}: an identifier is printable ASCII without spaces, matched whole "
                            f"(no newline, no control character): {shown!r}", path=path)


def require_whole(event: Any, path: str = "") -> None:
    """InvalidIdentifier unless every identifier in ``event`` (at any depth) is printable ASCII
    without spaces. Values of other types are left to the schema."""
    if isinstance(event, list):
        for i, item in enumerate(event):
            require_whole(item, f"{path}/{i}")
        return
    if not isinstance(event, dict):
        return
    for name, value in event.items():
        where = f"{path}/{name}"
        if name in IDENTIFIER_FIELDS and isinstance(value, str):
            if not is_identifier(value):
                _refuse(where, value)
        elif name in LIST_FIELDS and isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, str) and not is_identifier(item):
                    _refuse(f"{where}/{i}", item)
        else:
            require_whole(value, where)


def require_key_part(value: str) -> str:
    """InvalidIdentifier if a part of a world-state key holds a control character (U+0000 is the
    composite-key separator: ``("a\\x00b",)`` and ``("a", "b")`` must never be one key) or a lone surrogate."""
    if not isinstance(value, str) or _CONTROL.search(value):
        raise InvalidIdentifier(f"a key part holds a control character: {str(value)[:80]!r}")
    return value


# ---------------------------------------------------------------------------------------------- MRN

# ISO 6346 values: digits keep theirs; A=10, B=12 … Z=38, skipping the multiples of 11.
_VALUES: dict[str, int] = {str(d): d for d in range(10)}
_next = 10
for _letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
    if _next % 11 == 0:
        _next += 1
    _VALUES[_letter] = _next
    _next += 1
del _next, _letter

_YEAR = re.compile(r"[0-9]{2}")
_COUNTRY = re.compile(r"[A-Z]{2}")
_UNIQUE = re.compile(r"[0-9A-Z]{12}")
_CATEGORY = re.compile(r"[A-Z]")
_DIGIT = re.compile(r"[0-9]")


def mrn_check_digit(first17: str) -> str:
    """The check digit of an MRN's first 17 characters: Σ value(c_i)·2^i mod 11, a result of 10 gives 0."""
    return str(sum(_VALUES[c] << i for i, c in enumerate(first17)) % 11 % 10)


def mrn_problem(value: Any) -> str | None:
    """Why ``value`` is not an MRN, or None when it is one."""
    if not isinstance(value, str):
        return "an MRN is a string"
    if _CONTROL.search(value):
        return "an MRN holds no control character (no newline)"
    if len(value) != 18:
        return f"an MRN has 18 characters, not {len(value)}"
    if not _YEAR.fullmatch(value[0:2]):
        return "positions 1-2 of an MRN are the year (2 digits)"
    if not _COUNTRY.fullmatch(value[2:4]):
        return "positions 3-4 of an MRN are the country (2 capital letters)"
    if not _UNIQUE.fullmatch(value[4:16]):
        return "positions 5-16 of an MRN are 12 alphanumerics (digits or capital letters)"
    if not _CATEGORY.fullmatch(value[16]):
        return "position 17 of an MRN is the procedure-category letter (e.g. R import, A export)"
    if not _DIGIT.fullmatch(value[17]):
        return "position 18 of an MRN is its check digit"
    expected = mrn_check_digit(value[:17])
    if value[17] != expected:
        return f"the check digit (position 18) of this MRN is {expected}, not {value[17]} (ISO 6346)"
    return None


def is_mrn(value: Any) -> bool:
    return mrn_problem(value) is None
