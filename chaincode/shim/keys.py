"""Key rules shared by the real stub and in-memory stubs (Go shim semantics).

* A composite key is ``"\\x00" + object_type + "\\x00" + attr1 + "\\x00" + ...``
  (every component, the object type included, is followed by U+0000).
* Object type and attributes must be valid Unicode text without U+0000 and
  U+10FFFF (the range delimiters); empty strings are allowed.
* Simple keys (and the bounds of a range query) must not start with U+0000,
  which is the composite key namespace.
* An empty range start key is replaced by ``"\\x01"``; a partial composite
  key query ranges from ``partial`` to ``partial + U+10FFFF``.
"""
from __future__ import annotations

from typing import Sequence

__all__ = [
    "COMPOSITE_KEY_NAMESPACE",
    "MIN_UNICODE_RUNE",
    "MAX_UNICODE_RUNE",
    "EMPTY_KEY_SUBSTITUTE",
    "create_composite_key",
    "split_composite_key",
    "validate_composite_key_attribute",
    "validate_simple_keys",
    "partial_composite_key_range",
    "partial_composite_key_range_from",
    "range_start_key",
    "check_bookmark",
]

MIN_UNICODE_RUNE = "\x00"
MAX_UNICODE_RUNE = "\U0010ffff"
COMPOSITE_KEY_NAMESPACE = "\x00"
EMPTY_KEY_SUBSTITUTE = "\x01"


def validate_composite_key_attribute(value: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"composite key components must be str, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"not a valid utf8 string: {value!r}") from None
    if MIN_UNICODE_RUNE not in value and MAX_UNICODE_RUNE not in value:  # the usual case, without a loop in Python
        return
    for index, ch in enumerate(value):
        if ch == MIN_UNICODE_RUNE or ch == MAX_UNICODE_RUNE:
            raise ValueError(
                f"input contains unicode U+{ord(ch):04X} starting at position [{index}]. "
                "U+0000 and U+10FFFF are not allowed in the input attribute of a composite key"
            )


def create_composite_key(object_type: str, attributes: Sequence[str]) -> str:
    if isinstance(attributes, str):
        raise TypeError("attributes must be a sequence of str, not a str")
    validate_composite_key_attribute(object_type)
    parts = [COMPOSITE_KEY_NAMESPACE, object_type, MIN_UNICODE_RUNE]
    for attr in attributes:
        validate_composite_key_attribute(attr)
        parts.append(attr)
        parts.append(MIN_UNICODE_RUNE)
    return "".join(parts)


def split_composite_key(key: str) -> tuple[str, list[str]]:
    """Inverse of :func:`create_composite_key`."""
    if not key.startswith(COMPOSITE_KEY_NAMESPACE) or len(key) < 2 or not key.endswith(MIN_UNICODE_RUNE):
        raise ValueError("not a composite key")
    components = key[1:-1].split(MIN_UNICODE_RUNE)
    return components[0], components[1:]


def validate_simple_keys(*keys: str) -> None:
    for key in keys:
        if not isinstance(key, str):
            raise TypeError(f"keys must be str, not {type(key).__name__}")
        if key.startswith(COMPOSITE_KEY_NAMESPACE):
            raise ValueError(
                f"first character of the key [{key!r}] contains a null character which is not allowed"
            )


def range_start_key(start_key: str) -> str:
    return start_key if start_key else EMPTY_KEY_SUBSTITUTE


def partial_composite_key_range(object_type: str, attributes: Sequence[str]) -> tuple[str, str]:
    """The keys of ``(object_type, *attributes, ...)``: the composite key's prefix and its end."""
    return partial_composite_key_range_from(object_type, attributes, [])


def partial_composite_key_range_from(object_type: str, attributes: Sequence[str], start_attributes: Sequence[str],
                                     end_attributes: Sequence[str] | None = None) -> tuple[str, str]:
    """The keys of ``(object_type, *attributes)`` from ``(*attributes, *start_attributes)`` on — and, with
    ``end_attributes``, before ``(*attributes, *end_attributes)``: the range of :func:`partial_composite_key_range`
    with a later start (and an earlier end), never outside the composite key's prefix."""
    if isinstance(start_attributes, str) or isinstance(end_attributes, str):
        raise TypeError("start_attributes and end_attributes must be sequences of str, not a str")
    prefix = create_composite_key(object_type, attributes)
    start = create_composite_key(object_type, [*attributes, *start_attributes])
    if end_attributes is None:
        return start, prefix + MAX_UNICODE_RUNE
    return start, max(start, create_composite_key(object_type, [*attributes, *end_attributes]))


def check_bookmark(bookmark: str, start: str, end: str) -> None:
    """ValueError unless ``bookmark`` (a page's first key; "" for the first page) lies within the queried range
    ``[start, end)`` (an empty ``end``: no end)."""
    if bookmark and (bookmark < start or (end and bookmark >= end)):
        raise ValueError("the bookmark is not a key of the queried range")
