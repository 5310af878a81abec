"""Helpers shared by the blueprints: the caller, permissions, JSON bodies, parameters, the live services."""
from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal

from flask import Response, current_app, g, request
from werkzeug.routing import PathConverter

from ipledger.chaincode.contract import schemas  # the contract's schemas (allowed import)
from ipledger.gateway.auth import KeyStore, Principal, key_id_of
from ipledger.gateway.config import GatewayConfig
from ipledger.gateway.observability import Metrics
from ipledger.gateway.problems import Problem, gateway_problem
from ipledger.gateway.service import LedgerService

API_PREFIX = "/api/v1"


@dataclass
class AppState:
    config: GatewayConfig
    keys: KeyStore
    service: LedgerService
    metrics: Metrics


def state() -> AppState:
    return current_app.extensions["ipledger"]


def presented_key() -> str | None:
    auth = request.headers.get("Authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return ""  # another scheme, or an empty bearer: not accepted
    return request.headers.get("X-API-Key")


def authenticate() -> Principal:
    """The caller of this request (401 without a valid, unrevoked key)."""
    principal = getattr(g, "principal", None)
    if principal is not None:
        return principal
    presented = presented_key()
    challenge = {"WWW-Authenticate": 'Bearer realm="ipledger"'}
    if not presented:
        raise Problem(401, "unauthenticated", "an API key is required: 'Authorization: Bearer <key>' or "
                                              "'X-API-Key: <key>'", headers=challenge)
    g.key_id = key_id_of(presented)
    principal = state().keys.authenticate(presented)
    if principal is None:
        raise Problem(401, "unauthenticated", "unknown or revoked API key", headers=challenge)
    g.principal = principal
    return principal


def require(permission: str) -> Principal:
    principal = authenticate()
    if not principal.may(permission):
        raise Problem(403, "forbidden", f"the role '{principal.role}' may not {permission} "
                                        f"({'submitting events needs the clerk role' if permission == 'submit' else permission})",
                      extra={"role": principal.role, "org": principal.org})
    return principal


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


class _Unreadable(ValueError):
    """A body that is JSON but that the gateway does not read, because what it means is not certain; the
    message is the whole detail of the 400 answer."""


_EXACT = 10 ** 18
# a decimal of at most this many significant digits always comes back from a float unchanged (DBL_DIG)
_ALWAYS_EXACT_DIGITS = 15


def _number(text: str):
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
    except ArithmeticError:  # decimal.InvalidOperation: an absurd exponent
        raise ValueError(f"{text[:40]} is out of range") from None
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{text[:40]} is out of range")
    if Decimal(repr(number)) != value:
        raise _Unreadable(f"the number {text[:40]} has more digits than can be recorded exactly: it would be "
                          f"recorded as {number!r} (up to {_ALWAYS_EXACT_DIGITS} significant digits are always "
                          f"recorded exactly)")
    return number


def _members(pairs: list[tuple[str, object]]) -> dict:
    """An object of the body (``object_pairs_hook``): a member named twice is refused — JSON does not say
    which of the two values counts, and the last one silently winning would record what the sender may
    not have meant (``{"quantity": 400, "quantity": 4000}``)."""
    members = dict(pairs)
    if len(members) != len(pairs):
        seen = set()
        for name, _ in pairs:
            if name in seen:
                raise _Unreadable(f"the member {name[:80]!r} appears more than once in one object of the body")
            seen.add(name)
    return members


MAX_DEPTH = 64  # levels of arrays and objects in a body; an event needs about 6, a batch of them one more
_TOO_DEEP = f"the body nests arrays and objects more than {MAX_DEPTH} levels deep"


def nesting_depth_exceeds(value, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests arrays and objects more than ``limit`` levels deep (the body itself is level
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


def read_json():
    """The request body as JSON (415 unless JSON, 400 if malformed; NaN/Infinity, a member named twice in an
    object, a number a float cannot hold exactly and a body nested more than :data:`MAX_DEPTH` levels
    deep refused)."""
    mimetype = request.mimetype or ""
    if not (mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))):
        raise gateway_problem("unsupported-media-type", "the body must be JSON (Content-Type: application/json)")
    data = request.get_data(cache=True)
    if not data:
        raise gateway_problem("bad-request", "the body is empty")
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit is not None and len(data) >= limit:
        # a body without Content-Length (chunked) is read up to the limit only: what came was cut short
        raise Problem(413, "payload-too-large", f"the body reaches the limit of {limit} bytes")
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=_reject_constant, parse_float=_number,
                           object_pairs_hook=_members)
        if nesting_depth_exceeds(value):
            raise _Unreadable(_TOO_DEEP)
        # "\ud800"-style escapes decode to lone surrogates, which no UTF-8 transaction can carry
        json.dumps(value, ensure_ascii=False).encode("utf-8")
        return value
    except UnicodeEncodeError:
        raise gateway_problem("bad-request", "the body holds an unpaired UTF-16 surrogate (\\uD800-\\uDFFF), "
                                             "which is not a Unicode character") from None
    except UnicodeDecodeError:
        raise gateway_problem("bad-request", "the body is not UTF-8") from None
    except _Unreadable as exc:
        raise gateway_problem("bad-request", str(exc)) from None
    except ValueError as exc:
        raise gateway_problem("bad-request", f"the body is not valid JSON: {exc}") from None
    except RecursionError:  # deeper than the parser itself goes
        raise gateway_problem("bad-request", _TOO_DEEP) from None


# ------------------------------------------------------------------------------------------ parameters

_COMMON = schemas.load_schema("common")["$defs"]
BILL_ID_PATTERN = schemas.load_schema("DecideBillOfDischarge")["properties"]["bill_id"]["pattern"]
ID_PATTERNS = {
    "authorisation_id": _COMMON["authorisationId"]["pattern"],
    "lot_id": _COMMON["lotId"]["pattern"],
    "batch_id": _COMMON["batchId"]["pattern"],
    "bill_id": BILL_ID_PATTERN,
}
DATE_PATTERN = _COMMON["date"]["pattern"]
DATETIME_PATTERN = _COMMON["dateTime"]["pattern"]
_WHOLE_END = "$(?!\\n)"  # how the schemas end a pattern: a whole-string match (no trailing newline)


def _body(pattern: str) -> str:
    """A schema pattern without its anchors: ``^X$(?!\\n)`` -> ``X``."""
    assert pattern.startswith("^") and pattern.endswith(_WHOLE_END), pattern
    return pattern[1:-len(_WHOLE_END)]


MOMENT_PATTERN = f"^(({_body(DATE_PATTERN)})|({_body(DATETIME_PATTERN)})){_WHOLE_END}"  # a date or a date-time


def whole(pattern: str, value: str) -> bool:
    """``value`` matches ``pattern`` as a whole string (``re.fullmatch``: ``$`` of ``re.match`` would let
    a trailing newline through) and is printable ASCII without control characters."""
    return isinstance(value, str) and value.isascii() and value.isprintable() and \
        re.fullmatch(pattern, value) is not None


class IdentifierConverter(PathConverter):
    """``<ident:lot_id>``: an identifier in a URL path, which may hold ``/`` (a batch's default id is
    ``<operation>/<n>``; sent as ``/`` or ``%2F``, which the server decodes first) and, so that
    :func:`path_id` can refuse it with a 400, any other character (a newline too)."""
    regex = "[^/][\\s\\S]*?"


def install_converters(app) -> None:
    app.url_map.converters["ident"] = IdentifierConverter


def path_id(name: str, value: str) -> str:
    if not whole(ID_PATTERNS[name], value):
        raise Problem(400, "invalid-parameter", f"{name} {value[:80]!r} is not well formed "
                                                f"(pattern {ID_PATTERNS[name]})", extra={"parameter": name})
    return value


def moment_param(name: str, *, date_only: bool = False, required: bool = False) -> str | None:
    """A date (``YYYY-MM-DD``) or RFC 3339 date-time query parameter, checked."""
    value = request.args.get(name)
    if value is None or value == "":
        if required:
            raise Problem(400, "invalid-parameter", f"the query parameter '{name}' is required",
                          extra={"parameter": name})
        return None
    ok = False
    if whole(DATE_PATTERN, value):
        try:
            ok = dt.date.fromisoformat(value).year <= schemas.LAST_YEAR
        except ValueError:
            ok = False
    elif not date_only and whole(DATETIME_PATTERN, value):
        try:
            moment = dt.datetime.fromisoformat(value)
            ok = moment.tzinfo is not None and moment.year <= schemas.LAST_YEAR
        except ValueError:
            ok = False
    if not ok:
        what = "a date (YYYY-MM-DD)" if date_only else "a date (YYYY-MM-DD) or an RFC 3339 date-time with a zone"
        raise Problem(400, "invalid-parameter", f"'{name}' must be {what}, up to {schemas.LAST_YEAR}-12-31",
                      extra={"parameter": name})
    return value


def channel_param() -> str | None:
    """The optional ``channel`` query parameter: which holder's channel a call is for, on a gateway
    serving several (the service checks it is one of them)."""
    value = request.args.get("channel")
    if value is None or value == "":
        return None
    if not whole(r"[a-z][a-z0-9.-]{0,248}", value):
        raise Problem(400, "invalid-parameter", "'channel' must be a channel name (lower-case letters, "
                      "digits, '.', '-')", extra={"parameter": "channel"})
    return value


def fmt_param(default: str = "json", allowed=("json", "csv")) -> str:
    """The ``format`` query parameter: one of ``allowed``."""
    value = (request.args.get("format") or default).lower()
    if value not in allowed:
        raise Problem(400, "invalid-parameter", f"'format' must be one of {', '.join(allowed)}",
                      extra={"parameter": "format"})
    return value


def limit_param(default: int = 100, maximum: int = 1000) -> int:
    """The ``limit`` query parameter: an integer from 1 to ``maximum``."""
    value = request.args.get("limit")
    if value is None:
        return default
    if not re.fullmatch(r"[0-9]{1,7}", value) or not 1 <= int(value) <= maximum:   # ASCII digits ('²' is a digit)
        raise Problem(400, "invalid-parameter", f"'limit' must be an integer from 1 to {maximum}",
                      extra={"parameter": "limit"})
    return int(value)


def download(text_or_bytes, mimetype: str, filename: str) -> Response:
    """A response the browser saves as ``filename`` — of which letters, digits, '.', '-' and '_' are kept, any
    other character (an id's '"', '/', '\\') written '_': the name stays one quoted string and names no path."""
    response = Response(text_or_bytes, mimetype=mimetype)
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", filename)
    response.headers["Content-Disposition"] = f'attachment; filename="{safe}"'
    return response


# ------------------------------------------------------------------------------------------ the live services

def live():
    """The app's live services (:class:`ipledger.gateway.dashboard.live.Live`: the feed store, visibility, webhook
    deliveries, the audit trail, the caps on open streams), which :func:`ipledger.gateway.dashboard.install` sets up."""
    return current_app.extensions["ipledger_live"]


def is_customs(org: str) -> bool:
    """Whether ``org`` is the customs authority of the consortium this gateway serves."""
    return org is not None and org == state().config.customs_msp


def visible_authorisations(org: str) -> list[str]:
    """Ids the gateway knows (seen in chaincode events or added by hand) that ``org`` may read."""
    lv = live()
    return lv.visibility.readable(org, [a["authorisation_id"] for a in lv.store.authorisation_ids()])
