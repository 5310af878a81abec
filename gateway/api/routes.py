"""Routes declared together with their OpenAPI operations, and the parameter objects those use.

    ROUTES = Routes(API_PREFIX)                      # this module's routes

    @ROUTES.get("/lots/<lot_id>", id="getLot", permission="read", summary="A lot",
                params=[id_parameter("lot_id", "lot id")], function="GetLot")
    def get_lot(lot_id): ...

    bp = blueprint("queries", __name__, ROUTES)      # at the end of the module: its Flask blueprint

Each module keeps its own :class:`Routes`; :mod:`ipledger.gateway.openapi` collects their operations in a fixed,
explicit order, and nothing adds to another module's table. An operation's ``path`` is the rule's under
the prefix (``<lot_id>`` becomes ``{lot_id}``); its other members are those
:func:`ipledger.gateway.openapi._operation` reads: ``id``, ``permission`` (``None``: public), ``summary``, and
optionally ``description``, ``params``, ``body``, ``ok``, ``function`` (the contract query), ``channel``
(takes the ``channel`` parameter without being a contract query), ``media`` (of the ok responses when not
JSON), ``downloads`` (the media types of the ok responses besides JSON, with the ``format`` parameter),
``problems`` (the problem statuses, when not the permission's).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from flask import Blueprint

from ipledger.chaincode.contract import schemas  # the contract's schemas (allowed import)
from ipledger.gateway.api.common import EVENTS_PAGE_MAX, ID_PATTERNS, MOMENT_PATTERN, PAGE_CURSOR


# problem statuses of operations other than their permission's (an operation's ``problems``)
READ_BODY = ("400", "401", "403", "404", "409", "413", "415", "500", "502", "503", "504")   # a read that takes a body
STREAM = ("400", "401", "403", "404", "409", "429", "500", "502", "503", "504")   # the live stream: capped


@dataclass(frozen=True)
class Route:
    method: str          # "get", "post"
    rule: str            # the Flask rule, under the prefix: "/lots/<lot_id>"
    view: Callable
    operation: dict[str, Any]


def openapi_path(rule: str) -> str:
    """``/api/v1/lots/<lot_id>`` -> ``/api/v1/lots/{lot_id}``."""
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


class Routes:
    """One module's routes, in declaration order, each with its OpenAPI operation."""

    def __init__(self, prefix: str = ""):
        self.prefix = prefix
        self.routes: list[Route] = []

    def get(self, rule: str, **operation) -> Callable:
        return self._route("get", rule, operation)

    def post(self, rule: str, **operation) -> Callable:
        return self._route("post", rule, operation)

    def _route(self, method: str, rule: str, operation: dict) -> Callable:
        def declare(view: Callable) -> Callable:
            op = {"method": method, "path": openapi_path(self.prefix + rule), **operation}
            self.routes.append(Route(method, rule, view, op))
            return view
        return declare

    @property
    def operations(self) -> list[dict[str, Any]]:
        return [route.operation for route in self.routes]


def blueprint(name: str, import_name: str, *tables: Routes) -> Blueprint:
    """A Flask blueprint of the routes of ``tables`` (one prefix), in their order; each view's endpoint is
    ``<name>.<function name>``, as ``@bp.get(rule)`` makes it."""
    prefixes = {t.prefix for t in tables}
    assert len(prefixes) == 1, prefixes
    bp = Blueprint(name, import_name, url_prefix=prefixes.pop() or None)
    for table in tables:
        for route in table.routes:
            bp.add_url_rule(route.rule, view_func=route.view, methods=[route.method.upper()])
    return bp


# ------------------------------------------------------------------------------------------ parameters

def parameter(name: str, where: str, schema: dict, description: str, required: bool | None = None) -> dict:
    return {"name": name, "in": where, "required": True if where == "path" else bool(required),
            "description": description, "schema": schema}


def id_parameter(name: str, description: str) -> dict:
    """The path parameter ``name`` (an identifier of :data:`ID_PATTERNS`)."""
    return parameter(name, "path", {"type": "string", "pattern": ID_PATTERNS[name]}, description)


def moment_parameter(name: str, description: str, required: bool = False, date_only: bool = False) -> dict:
    """A query parameter that is a date, or a date or date-time (as :func:`.common.moment_param` reads it)."""
    pattern = schemas.load_schema("common")["$defs"]["date"]["pattern"] if date_only else MOMENT_PATTERN
    return parameter(name, "query", {"type": "string", "pattern": pattern}, description, required)


def format_parameter(*formats: str) -> dict:
    """The ``format`` query parameter of a route answering JSON or a download (as :func:`.common.fmt_param`)."""
    return parameter("format", "query", {"type": "string", "enum": list(formats), "default": formats[0]},
                     f"the answer's format: {', '.join(formats)} (default {formats[0]})")


def page_parameters() -> list[dict]:
    """``limit`` and ``after`` of a page of an authorisation's events (as :func:`.common.page_params`)."""
    return [parameter("limit", "query", {"type": "string", "pattern": "^[0-9]{1,7}$"},
                      f"at most this many events (1-{EVENTS_PAGE_MAX}); the answer's `next`, present while more "
                      f"follow, is the `after` of the next page (default: the whole period in one answer)"),
            parameter("after", "query", {"type": "string", "pattern": PAGE_CURSOR},
                      "the `next` of the page before (`recorded_at/tx_id` of its last event)")]


def limit_parameter(default: int, maximum: int) -> dict:
    """The ``limit`` query parameter (as :func:`.common.limit_param` reads it)."""
    return parameter("limit", "query", {"type": "string", "pattern": "^[0-9]{1,7}$"},
                     f"at most this many (1-{maximum}, default {default})")


AUTH_ID = id_parameter("authorisation_id", "authorisation id, e.g. FRIPO000001")
