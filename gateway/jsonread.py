"""JSON as the gateway reads it: what a sender wrote, or a refusal — never a silent guess.

One rule set for every JSON the gateway takes in — a request body (``api.common.read_json``) and a cell or
line of an ERP file (``importer``):

* ``NaN``, ``Infinity`` are not JSON numbers;
* a member named twice in one object is refused: JSON does not say which value counts, and the last one
  silently winning would record what the sender may not have meant (``{"quantity": 400, "quantity": 4000}``);
* a number with a fraction or an exponent that a float cannot hold exactly is refused
  (``4.9999999999999999999`` would be recorded as 5.0); an integral one (``10.0``, ``1e3``) is an int, as
  JSON Schema reads it;
* an integer of more than :data:`INTEGER_DIGITS_MAX` digits is refused (the contract's bound);
* nesting deeper than :data:`MAX_DEPTH` levels is refused (an event needs about 6);
* more arrays and objects than a text of its length holds when it is made of events is refused before it is
  parsed (:func:`too_many_containers`: megabytes of ``[]`` would otherwise cost hundreds of MB to hold);
* an unpaired UTF-16 surrogate (``"\\ud800"``) is refused: no UTF-8 transaction can carry it.

:class:`Unreadable` carries the reason, written for the sender.
"""
from __future__ import annotations

import json
import math
from decimal import Decimal

MAX_DEPTH = 64  # levels of arrays and objects in a value; an event needs about 6, a batch of them one more
TOO_DEEP = f"arrays and objects nested more than {MAX_DEPTH} levels deep"
# Arrays and objects in a text, counted as its '[' and '{' (those inside strings too: never too few), at most one
# per CONTAINER_BYTES characters beyond the first CONTAINERS_FREE. The smallest item any event's arrays hold,
# {"lot_id":"A","qty":1}, takes 22 characters, and each array comes with its member's name: a text of events is
# never that dense, while megabytes of [] or {} (one per 2 or 3 characters) would cost some 45 bytes of memory per
# character to hold — the bound keeps any text to what events of its length cost.
CONTAINER_BYTES = 16
CONTAINERS_FREE = 1_000
_EXACT = 10 ** 18
# a decimal of at most this many significant digits always comes back from a float unchanged (DBL_DIG)
_ALWAYS_EXACT_DIGITS = 15


class Unreadable(ValueError):
    """JSON that the gateway does not read, because what it means is not certain (or it is not JSON); the
    message says why, for the sender."""


def number(text: str) -> int | float:
    """A JSON number with a fraction or exponent. JSON has one number type: 10.0 and 1e3 are the integers
    10 and 1000 (as JSON Schema says), so they become Python ints — the contract's validator accepts
    only ints where its schemas say "integer". Other numbers stay floats: the contract computes with the
    decimal a float's shortest text names (``decimals.exact``), so a number whose text does not come back
    from the float (``0.123456789012345678901``, ``4.9999999999999999999``: 5.0) is refused rather than
    silently rounded; non-finite ones are refused too."""
    try:
        value = Decimal(text)
        if value == value.to_integral_value() and abs(value) <= _EXACT:
            return int(value)
    except ArithmeticError:  # decimal.InvalidOperation: not a number, or an absurd exponent
        raise Unreadable(f"the number {text[:40]} is out of range") from None
    result = float(value)
    if not math.isfinite(result):
        raise Unreadable(f"the number {text[:40]} is out of range")
    if Decimal(repr(result)) != value:
        raise Unreadable(f"the number {text[:40]} has more digits than can be recorded exactly: it would be "
                         f"recorded as {result!r} (up to {_ALWAYS_EXACT_DIGITS} significant digits are always "
                         f"recorded exactly)")
    return result


# the most digits an integer may have: the contract's own bound (chaincode/shim/contract_api.py INTEGER_DIGITS_MAX),
# far beyond any quantity the schemas take, and below Python's own limit on reading digits (4,300 by default)
INTEGER_DIGITS_MAX = 30


def integer(text: str) -> int:
    """A JSON integer (``parse_int``), refused beyond :data:`INTEGER_DIGITS_MAX` digits."""
    if len(text.lstrip("-")) > INTEGER_DIGITS_MAX:
        raise Unreadable(f"the integer {text[:40]}… has more than {INTEGER_DIGITS_MAX} digits")
    return int(text)


def members(pairs: list[tuple[str, object]]) -> dict:
    """An object (``object_pairs_hook``): a member named twice is refused."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen = set()
        for name, _ in pairs:
            if name in seen:
                raise Unreadable(f"the member {name[:80]!r} appears more than once in one object")
            seen.add(name)
    return out


def _constant(name: str):
    raise Unreadable(f"{name} is not a JSON number")


def nesting_depth_exceeds(value, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests arrays and objects more than ``limit`` levels deep (the value itself is level
    1). Walked level by level, without recursion: a deep value costs no stack."""
    level = [value] if isinstance(value, (dict, list)) else []
    for _ in range(limit):
        below = []
        for node in level:
            below.extend(v for v in (node.values() if isinstance(node, dict) else node) if isinstance(v, (dict, list)))
        if not below:
            return False
        level = below
    return True


def too_many_containers(text: str) -> bool:
    """Whether ``text`` holds more arrays and objects than events of its length do (see :data:`CONTAINER_BYTES`)."""
    return text.count("[") + text.count("{") > CONTAINERS_FREE + len(text) // CONTAINER_BYTES


def loads(text: str):
    """``text`` read as JSON under the rules above; :class:`Unreadable` says what is wrong."""
    if too_many_containers(text):
        raise Unreadable(f"more arrays and objects than {len(text)} characters of events hold (at most one per "
                         f"{CONTAINER_BYTES} characters beyond the first {CONTAINERS_FREE})")
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=number, parse_int=integer,
                           object_pairs_hook=members)
    except Unreadable:
        raise
    except RecursionError:  # deeper than the parser itself goes
        raise Unreadable(TOO_DEEP) from None
    except ValueError as exc:
        raise Unreadable(f"not valid JSON: {exc}") from None
    if nesting_depth_exceeds(value):
        raise Unreadable(TOO_DEEP)
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise Unreadable("an unpaired UTF-16 surrogate (\\uD800-\\uDFFF), which is not a Unicode character") from None
    return value
