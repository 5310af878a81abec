"""The OpenAPI 3.1 document, generated from the contract's JSON Schemas and :data:`OPERATIONS` (the
operations each gateway/api module declares beside its routes, see :mod:`ipledger.gateway.api.routes`).

Event schemas come from ``chaincode/contract/schemas`` (the ones the chaincode
validates with): the shared definitions of ``common.json`` become
``components/schemas/<name>`` and every ``common.json#/$defs/<name>``
reference is rewritten to ``#/components/schemas/<name>``; each event's
request schema is its event schema plus ``type`` (and ``commercial`` for the
acts that carry commercial data).
"""
from __future__ import annotations

import copy
import functools
from typing import Any

from ipledger.chaincode.contract import acts, schemas  # the contract's act table and schemas (allowed imports)
from ipledger.gateway.api import alerts, audit, docs, events, feed, health, queries, reports
from ipledger.gateway.api.routes import openapi_path, parameter
from ipledger.gateway.auth import ROLES
from ipledger.gateway.problems import MEDIA_TYPE, problem_types
from ipledger.gateway.validation import COMMERCIAL_EVENTS, EVENT_TYPES

API_VERSION = "1.0.0"
_COMMON_REF = "common.json#/$defs/"

# who performs each act, by role, in words: the contract's act table (chaincode/contract/acts.py), which the
# contract checks (roles.ACTS) — customs is the organisation the deployment names, holders and
# representatives are in customs' register
PERFORMED_BY: dict[str, str] = {act.name: act.performed_by for act in acts.TABLE}


# a gateway serving several holders' channels (customs', with a channel per holder): which one a call is for
CHANNEL = parameter("channel", "query", {"type": "string", "pattern": "^[a-z][a-z0-9.-]{0,248}$"},
                    "With a channel per holder, on a gateway serving several (customs'): the holder's channel. "
                    "Without it an event goes to the channel of its authorisation (a grant: where its holder is "
                    "registered; else 400 channel-required) and a query to the channel that knows the item (409 "
                    "ambiguous-channel if several do); answers then name the channel. Another value than a "
                    "channel the gateway serves: 400 unknown-channel.")

#: Every operation of the gateway, in the document's order: each declared beside its route
#: (:mod:`ipledger.gateway.api.routes`), collected here from the modules in this order.
OPERATIONS: list[dict[str, Any]] = [
    *events.ROUTES.operations, *queries.ROUTES.operations, *health.ROUTES.operations, *docs.ROUTES.operations,
    *feed.ROUTES.operations, *alerts.ROUTES.operations, *audit.ROUTES.operations, *reports.ROUTES.operations,
]


@functools.lru_cache(maxsize=1)
def _query_parameters() -> dict[tuple[str, str], frozenset[str]]:
    """(method, path) -> the query parameters its operation documents (``channel`` where it takes one)."""
    out = {}
    for op in OPERATIONS:
        params = [p for p in _operation(op).get("parameters", []) if p.get("in") == "query"]
        out[(op["method"], op["path"])] = frozenset(p["name"] for p in params)
    return out


def query_parameters(method: str, rule: str) -> frozenset[str] | None:
    """The query parameters the operation of ``method`` on the Flask ``rule`` takes, or None when it is no
    operation of this document (the dashboard's pages, the docs' files): what the gateway checks a request's
    against, so that a misspelt one (``period-end``) is refused rather than answered as if it were absent."""
    return _query_parameters_of("get" if method.upper() == "HEAD" else method.lower(), rule)


@functools.lru_cache(maxsize=None)   # a route's rule is one of the app's few: the check is a lookup per request
def _query_parameters_of(method: str, rule: str) -> frozenset[str] | None:
    return _query_parameters().get((method, openapi_path(rule)))


def _rewrite_refs(node: Any) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith(_COMMON_REF):
                out[k] = "#/components/schemas/" + v[len(_COMMON_REF):]
            else:
                out[k] = _rewrite_refs(v)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v) for v in node]
    return node


def _plain(schema: dict) -> dict:
    schema = copy.deepcopy(schema)
    for k in ("$schema", "$id"):
        schema.pop(k, None)
    defs = schema.get("$defs")
    if isinstance(defs, dict):
        defs.pop("common", None)
        if not defs:
            schema.pop("$defs")
    return _rewrite_refs(schema)


def event_request_schema(event_type: str) -> dict:
    """The body of POST /events for ``event_type``: its event schema plus ``type`` (and ``commercial``)."""
    schema = _plain(schemas.load_schema(event_type))
    schema["properties"] = {"type": {"const": event_type, "description": "the event type"}, **schema["properties"]}
    schema["required"] = ["type", *schema.get("required", [])]
    if event_type in COMMERCIAL_EVENTS:
        schema["properties"]["commercial"] = {
            "$ref": "#/components/schemas/Commercial",
            "description": "confidential commercial data: sent in the transient map only, never in the transaction"
                           + (" (required: customs_value)" if event_type == "PlaceUnderProcedure" else "")}
        if event_type == "PlaceUnderProcedure":
            schema["required"].append("commercial")
    schema["description"] = f"{schema.get('description', '')} Performed by: {PERFORMED_BY.get(event_type, '?')}."
    return schema


def _problem_schema() -> dict:
    return {
        "type": "object", "description": "RFC 9457 problem details",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {"type": "string", "enum": sorted(problem_types())},
            "title": {"type": "string"}, "status": {"type": "integer"}, "detail": {"type": "string"},
            "instance": {"type": "string"}, "request_id": {"type": "string"},
            "code": {"type": "string", "description": "the contract's error code"},
            "details": {"description": "the contract's details of the error"},
            "errors": {"type": "array", "items": {"type": "object", "properties": {
                "path": {"type": "string"}, "message": {"type": "string"}}}},
            "tx_id": {"type": "string"},
            "may_succeed_later": {"type": "boolean", "const": True, "description": (
                "the contract's refusal is one another event can cure (the goods not recorded yet, a balance or "
                "ceiling still to change, an authorisation still suspended, a period still to be extended): send "
                "the event again after the ones it depends on. Absent: the refusal is final")},
        },
    }


def _components() -> dict:
    common = schemas.load_schema("common")["$defs"]
    comps: dict[str, Any] = {name: _rewrite_refs(s) for name, s in common.items()}
    # the pattern says the shape; the gateway (and the contract) also want a real calendar date
    comps["date"] = {**comps["date"], "format": "date"}
    comps["dateTime"] = {**comps["dateTime"], "format": "date-time"}
    comps["Commercial"] = _plain(schemas.load_schema("commercial"))
    for t in EVENT_TYPES:
        comps[t] = event_request_schema(t)
    comps["Event"] = {"oneOf": [{"$ref": f"#/components/schemas/{t}"} for t in EVENT_TYPES],
                      "discriminator": {"propertyName": "type",
                                        "mapping": {t: f"#/components/schemas/{t}" for t in EVENT_TYPES}}}
    comps["BatchRequest"] = {"oneOf": [
        {"type": "object", "required": ["events"], "additionalProperties": False, "properties": {
            "events": {"type": "array", "minItems": 1, "maxItems": 500,
                       "items": {"$ref": "#/components/schemas/Event"}},
            "stop_on_error": {"type": "boolean", "default": False}}},
        {"type": "array", "minItems": 1, "maxItems": 500, "items": {"$ref": "#/components/schemas/Event"}},
    ]}
    comps["SubmitOutcome"] = {
        "type": "object", "required": ["event_id", "type", "org", "status", "tx_id", "block_number"],
        "properties": {
            "event_id": {"type": "string"}, "type": {"type": "string", "enum": list(EVENT_TYPES)},
            "org": {"type": "string", "description": "the org the event was submitted as (the API key's)"},
            "status": {"type": "string", "enum": ["COMMITTED", "REPLAYED"]},
            "tx_id": {"type": "string", "description": "the transaction that recorded the event (for a replay: "
                                                      "the original one)"},
            "block_number": {"type": ["integer", "null"]},
            "recorded_at": {"type": ["string", "null"], "description": "ledger time of the recording"},
            "replay_tx_id": {"type": "string", "description": "replays only: the (no-op) transaction of this call "
                                                            "(absent when it conflicted and was not committed)"},
            "result": {"description": "the contract's result"},
        }}
    item = {"type": "object", "required": ["index", "outcome", "status"], "properties": {
        "index": {"type": "integer"}, "event_id": {"type": ["string", "null"]}, "type": {"type": ["string", "null"]},
        "status": {"type": ["integer", "null"], "description": "the HTTP status this item alone would have had"},
        "outcome": {"type": "string", "enum": ["COMMITTED", "REPLAYED", "REFUSED", "FAILED", "NOT_ATTEMPTED"]},
        "tx_id": {"type": "string"}, "block_number": {"type": ["integer", "null"]},
        "recorded_at": {"type": ["string", "null"]}, "replay_tx_id": {"type": "string"},
        "problem": {"$ref": "#/components/schemas/Problem"}}}
    counts = {k: {"type": "integer"} for k in ("total", "committed", "replayed", "refused", "failed", "not_attempted")}
    comps["BatchOutcome"] = {"type": "object", "required": ["summary", "results"], "properties": {
        "summary": {"type": "object", "required": list(counts), "properties": counts},
        "results": {"type": "array", "items": item}}}
    certificate = {"type": "object", "required": ["subject", "sha256", "not_after"], "properties": {
        "subject": {"type": ["string", "null"], "description": "RFC 4514 subject"},
        "sha256": {"type": "string", "description": "SHA-256 of the DER certificate, hex"},
        "not_after": {"type": ["string", "null"], "format": "date-time"}}}
    organisation = {"type": "object", "required": ["msp_id", "role", "admins", "root_certificates", "description"],
                    "properties": {
                        "msp_id": {"type": "string"}, "role": {"type": "string", "enum": ["application", "orderer"]},
                        "description": {"type": "string", "description": "from the consortium file ('' if none)"},
                        "anchor_peers": {"type": "array", "items": {"type": "string"},
                                         "description": "application orgs: host:port of the anchor peers"},
                        "endpoints": {"type": "array", "items": {"type": "string"},
                                      "description": "orderer orgs: host:port of the orderers"},
                        "admins": {"type": "string", "description": "the org's Admins policy"},
                        "root_certificates": {"type": "array", "items": certificate}}}
    comps["Members"] = {"type": "object", "required": ["channel", "config_block", "sequence", "admins_policy",
                                                       "organisations"], "properties": {
        "channel": {"type": "string"}, "config_block": {"type": "integer", "description": "number of the last "
                                                                                          "config block"},
        "sequence": {"type": "integer", "description": "config sequence (one per applied update)"},
        "admins_policy": {"type": "string", "description": "/Channel/Application/Admins: what adding or removing "
                                                          "an organisation needs"},
        "organisations": {"type": "array", "items": organisation}}}
    comps["Problem"] = _problem_schema()
    comps["Status"] = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}}
    comps["Alive"] = {"type": "object", "required": ["status", "orgs"], "properties": {
        "status": {"type": "string"},
        "orgs": {"type": "array", "items": {"type": "string"}, "description": "the MSP ids the gateway acts for"}}}
    comps["QueryResult"] = {"type": "object", "description": "the contract's answer (see the contract's queries)"}
    return comps


_PROBLEM_STATUSES = {
    "submit": ("400", "401", "403", "404", "409", "413", "415", "500", "502", "503", "504"),
    "read": ("400", "401", "403", "404", "409", "500", "502", "503", "504"),
    None: ("400", "500"),   # public: a query parameter it does not take
}

_STATUS_TEXT = {"400": "bad input (invalid-event, invalid-parameter, bad-request)", "401": "no valid API key",
                "403": "the key's role or org may not do this", "404": "not found",
                "409": "refused by a rule of the procedure, or a conflict", "413": "body or batch too large",
                "415": "the body is not JSON", "500": "internal error (no details)",
                "429": "too many open streams (too-many-requests: limit, max_streams; Retry-After)",
                "414": "the request line is too long (refused by the HTTP server, without X-Request-Id)",
                "431": "the request's headers are too large (refused by the HTTP server, without X-Request-Id)",
                "417": "an Expect header other than 100-continue (refused by the HTTP server, without X-Request-Id)",
                "501": "a Transfer-Encoding other than chunked (refused by the HTTP server, without X-Request-Id)",
                "502": "the ledger failed the request", "503": "the ledger network cannot be reached (Retry-After)",
                "504": "the ledger did not answer in time (Retry-After; replay with the same event_id)"}


def _operation(op: dict) -> dict:
    request_id_header = {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}
    responses: dict[str, Any] = {}
    for status, (text, schema_name) in op.get("ok", {"200": ("the contract's answer", "QueryResult")}).items():
        if op.get("media"):  # text: /metrics, the docs page
            content = {op["media"]: {"schema": {"type": "string"}}}
        elif schema_name is None:
            content = {"application/json": {"schema": {"type": "object"}}}
        else:
            content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}}
        for media in op.get("downloads", ()):   # with format=csv / pdf
            content[media] = {"schema": {"type": "string"}}
        responses[status] = {"description": text, "headers": request_id_header, "content": content}
    statuses = op.get("problems") or _PROBLEM_STATUSES[op["permission"]]
    for status in statuses:
        headers = dict(request_id_header)
        if status in ("503", "504", "409", "429"):
            headers["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
        responses[status] = {"description": _STATUS_TEXT[status], "headers": headers,
                             "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    for status in ("414", "417", "431", "501"):   # any request (gateway/server.py write_problem)
        responses[status] = {"description": _STATUS_TEXT[status],
                             "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    out: dict[str, Any] = {"operationId": op["id"], "summary": op["summary"], "responses": responses,
                           "tags": [_tag(op)]}
    description = op.get("description", "")
    if op.get("function"):
        description = (description + f" Contract query: `{op['function']}`.").strip()
    if op["permission"]:
        roles = [r for r, perms in ROLES.items() if op["permission"] in perms]
        description = (description + f" Roles: {', '.join(roles)}.").strip()
    else:
        out["security"] = []
    if description:
        out["description"] = description
    params = list(op.get("params") or [])
    if op.get("function") or op.get("channel"):
        params.append(CHANNEL)
    if params:
        out["parameters"] = params
    if op.get("body"):
        out["requestBody"] = {"required": True, "content": {"application/json": {"schema": op["body"]}}}
    return out


def _tag(op: dict) -> str:
    if op["path"].startswith("/api/v1/events"):
        return "events"
    if op["permission"] == "read":
        return "queries"
    return "service"


@functools.lru_cache(maxsize=1)
def _document() -> dict:
    paths: dict[str, dict] = {}
    for op in OPERATIONS:
        paths.setdefault(op["path"], {})[op["method"]] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ipledger gateway",
            "version": API_VERSION,
            "description": "REST gateway of the ipledger inward-processing ledger (Hyperledger Fabric). Business "
                           "events in, Fabric transactions out; queries of the audit view. Every error is "
                           "application/problem+json (RFC 9457). Authenticate with an API key of your "
                           "organisation: the key decides the org the gateway acts as.",
        },
        "tags": [{"name": "events", "description": "business events (Fabric submit transactions)"},
                 {"name": "queries", "description": "the audit view (Fabric evaluate transactions)"},
                 {"name": "service", "description": "health, metrics, documentation"}],
        "security": [{"bearerAuth": []}, {"apiKey": []}],
        "paths": paths,
        "components": {
            "schemas": _components(),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <API key>"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
            "headers": {
                "X-Request-Id": {"description": "the request id (the caller's if it sent a sane one)",
                                 "schema": {"type": "string"}},
                "Retry-After": {"description": "seconds to wait before trying again",
                                "schema": {"type": "string", "pattern": "^[0-9]+$"}},
            },
        },
        "x-problem-types": problem_types(),
    }


def openapi_document() -> dict:
    """The OpenAPI 3.1 document (a fresh copy)."""
    return copy.deepcopy(_document())

