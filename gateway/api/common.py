"""Helpers shared by the blueprints: the caller, permissions, JSON bodies, parameters, the live services."""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from flask import Response, current_app, g, request
from werkzeug.routing import PathConverter

from ipledger.chaincode.contract import schemas  # the contract's schemas (allowed import)
from ipledger.gateway import jsonread
from ipledger.gateway.auth import KeyStore, Principal, key_id_of
from ipledger.gateway.config import GatewayConfig
from ipledger.gateway.observability import Metrics
from ipledger.gateway.problems import Problem, gateway_problem
from ipledger.gateway.service import LedgerService

API_PREFIX = "/api/v1"
SMALL_BODY_BYTES = 4096   # the cap of a route whose body names an id or two (read_json's max_bytes)


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
        scheme = (request.headers.get("Authorization") or "").partition(" ")[0]
        if scheme and scheme.lower() != "bearer":   # a key is never taken from a header that names something else
            raise Problem(401, "unauthenticated", f"the Authorization header names the scheme {scheme[:20]!r}: send "
                          "'Authorization: Bearer <key>' (an X-API-Key beside another Authorization is not read)",
                          headers=challenge)
        raise Problem(401, "unauthenticated", "an API key is required: 'Authorization: Bearer <key>' or "
                                              "'X-API-Key: <key>'", headers=challenge)
    g.key_id = key_id_of(presented)
    principal = state().keys.authenticate(presented)
    if principal is None:
        if g.key_id and not state().keys.made_here(g.key_id):   # the key's id is public (it names it in logs)
            orgs = ", ".join(sorted(state().service.ledger.orgs()))
            raise Problem(401, "unauthenticated", f"unknown API key: this is {orgs}'s gateway, and a key works only "
                          "on the gateway of the organisation it was made for — or this gateway's key file was put "
                          "back from a copy older than the key (a restore): ask for a new key", headers=challenge)
        raise Problem(401, "unauthenticated", "unknown or revoked API key", headers=challenge)
    g.principal = principal
    return principal


def require(permission: str) -> Principal:
    return permitted(authenticate(), permission)


def permitted(principal: Principal, permission: str) -> Principal:
    """``principal`` when its role may ``permission`` (403 otherwise): the API's key, a dashboard session's key."""
    if not principal.may(permission):
        raise Problem(403, "forbidden", f"the role '{principal.role}' may not {permission} "
                                        f"({'submitting events needs the clerk role' if permission == 'submit' else permission})",
                      extra={"role": principal.role, "org": principal.org})
    return principal


def _beyond(max_bytes: int) -> Problem:
    return Problem(413, "payload-too-large", f"the body of this request is at most {max_bytes} bytes")


def read_json(max_bytes: int | None = None):
    """The request body as JSON (415 unless JSON, or when it declares a charset other than UTF-8; 400 if malformed
    or refused by the rules of :mod:`ipledger.gateway.jsonread`: NaN/Infinity, a member named twice in an object,
    a number a float cannot hold exactly, nesting deeper than its ``MAX_DEPTH``, more arrays and objects than
    events of its length hold, unpaired surrogates). ``max_bytes``: a route's own cap, below the app's (413 beyond it,
    refused before the body is read when its length is declared)."""
    if max_bytes is not None and (request.content_length or 0) > max_bytes:
        raise _beyond(max_bytes)
    mimetype = request.mimetype or ""
    if not (mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))):
        raise gateway_problem("unsupported-media-type", "the body must be JSON (Content-Type: application/json)")
    charset = request.mimetype_params.get("charset")
    if charset is not None and charset.strip().lower() not in ("utf-8", "utf8"):
        # JSON is UTF-8 (RFC 8259 §8.1): bytes of another charset read as UTF-8 could record other text
        raise gateway_problem("unsupported-media-type", f"the body must be JSON in UTF-8, not {charset[:40]!r}")
    data = request.get_data(cache=True)
    if not data:
        raise gateway_problem("bad-request", "the body is empty")
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if max_bytes is not None and len(data) > max_bytes:   # a chunked body: its length known once read
        raise _beyond(max_bytes)
    if limit is not None and len(data) >= limit:
        # a body without Content-Length (chunked) is read up to the limit only: what came was cut short
        raise Problem(413, "payload-too-large", f"the body reaches the limit of {limit} bytes")
    try:
        return jsonread.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise gateway_problem("bad-request", "the body is not UTF-8") from None
    except jsonread.Unreadable as exc:
        raise gateway_problem("bad-request", f"the body is refused: {exc}") from None


# ------------------------------------------------------------------------------------------ parameters

_COMMON = schemas.load_schema("common")["$defs"]
BILL_ID_PATTERN = schemas.load_schema("DecideBillOfDischarge")["properties"]["bill_id"]["pattern"]
ID_PATTERNS = {
    "authorisation_id": _COMMON["authorisationId"]["pattern"],
    "lot_id": _COMMON["lotId"]["pattern"],
    "batch_id": _COMMON["batchId"]["pattern"],
    "bill_id": BILL_ID_PATTERN,
    "mrn": _COMMON["mrn"]["pattern"],
}
DATE_PATTERN = _COMMON["date"]["pattern"]
DATETIME_PATTERN = _COMMON["dateTime"]["pattern"]
_WHOLE_END = schemas.WHOLE_END  # how the schemas end a pattern: a whole-string match (no trailing newline)


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


# the query parameters a route takes more than once (by its URL rule); any other given twice is a 400
REPEATABLE = {f"{API_PREFIX}/reports/inventory": frozenset({"authorisation_id"})}


def refuse_repeated_parameters() -> None:
    """A query parameter given more than once is refused (400 ``invalid-parameter`` naming it), as a body member
    named twice is: which value is meant is not certain, and taking the first would answer another question than
    the one asked (``?as_of=2026-01-01&as_of=2027-01-01``). Only :data:`REPEATABLE` ones may repeat."""
    allowed = REPEATABLE.get(request.url_rule.rule if request.url_rule else "", frozenset())
    for name, values in request.args.lists():
        if name not in allowed and len(values) > 1:
            raise Problem(400, "invalid-parameter", f"the query parameter '{name[:80]}' is given "
                          f"{len(values)} times; give it once", extra={"parameter": name[:80]})


def refuse_unknown_parameters(taken) -> None:
    """A query parameter not in ``taken`` (those the operation reads) is refused (400 ``invalid-parameter`` naming
    it and those taken), as an unknown body member is: a misspelt ``period-end`` or ``asof`` was ignored and
    answered as if absent — a bill as of now instead of the period's, today's alerts instead of those asked
    for. The API's operations take what the OpenAPI document lists; the dashboard's downloads what they pass on."""
    unknown = sorted(set(request.args) - set(taken))
    if unknown:
        takes = f"it takes {', '.join(sorted(taken))}" if taken else "it takes none"
        raise Problem(400, "invalid-parameter", f"unknown query parameter '{unknown[0][:80]}': {takes}",
                      extra={"parameter": unknown[0][:80], "parameters": sorted(taken)})


def path_id(name: str, value: str) -> str:
    if not whole(ID_PATTERNS[name], value):
        raise Problem(400, "invalid-parameter", f"{name} {value[:80]!r} is not well formed "
                                                f"(pattern {schemas.shown_pattern(ID_PATTERNS[name])})",
                      extra={"parameter": name})
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


def limit_param(default: int | None = 100, maximum: int = 1000) -> int | None:
    """The ``limit`` query parameter: an integer from 1 to ``maximum`` (``default`` when absent)."""
    value = request.args.get("limit")
    if value is None:
        return default
    if not re.fullmatch(r"[0-9]{1,7}", value) or not 1 <= int(value) <= maximum:   # ASCII digits ('²' is a digit)
        raise Problem(400, "invalid-parameter", f"'limit' must be an integer from 1 to {maximum}",
                      extra={"parameter": "limit"})
    return int(value)


EVENTS_PAGE_MAX = schemas.EVENTS_PAGE_MAX   # a page of GetEventsInPeriod, as the contract bounds it (common.json)
PAGE_CURSOR = schemas.EVENTS_PAGE_CURSOR


def page_params() -> tuple[int | None, str | None]:
    """``limit`` and ``after`` of a page of an authorisation's events (``GetEventsInPeriod``): neither, the whole
    period; ``after`` is the ``next`` of the page before."""
    limit, after = limit_param(None, EVENTS_PAGE_MAX), request.args.get("after")
    if after is not None and not re.search(PAGE_CURSOR, after):
        raise Problem(400, "invalid-parameter", "'after' must be the 'next' of an earlier page (recorded_at/tx_id)",
                      extra={"parameter": "after"})
    return limit, after


def page_args(limit: int | None, after: str | None) -> tuple:
    """The contract's trailing arguments of a page: none when the whole period is asked (as before pages)."""
    return () if limit is None and after is None else (limit, after)


def download(text_or_bytes, mimetype: str, filename: str) -> Response:
    """A response the browser saves as ``filename`` — of which letters, digits, '.', '-' and '_' are kept, any
    other character (an id's '"', '/', '\\') written '_': the name stays one quoted string and names no path."""
    return attachment(Response(text_or_bytes, mimetype=mimetype), filename)


def attachment(response: Response, filename: str) -> Response:
    """``response`` to be saved as ``filename`` (as :func:`download` names it)."""
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


def visible_authorisations(org: str, channel: str | None = None) -> list[str]:
    """Ids the gateway knows (seen in chaincode events or added by hand) that ``org`` may read (on ``channel``
    only, when given)."""
    lv = live()
    return lv.visibility.readable(org, [a["authorisation_id"] for a in lv.store.authorisation_ids()], channel)
