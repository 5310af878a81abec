"""The REST routes of gateway/dashboard/api.py, added to the gateway's OpenAPI document
(:data:`gateway.openapi.OPERATIONS`) when this package is imported — before the document is first built."""
from __future__ import annotations

from .. import openapi
from ..api.common import ID_PATTERNS
from ..api.routes import AUTH_ID, id_parameter, moment_parameter, parameter

_AUTH = AUTH_ID
_LOT = id_parameter("lot_id", "lot id")
_BATCH = id_parameter("batch_id", "batch id")
_FORMATS = " Add `format=csv` for a CSV download"
_EVENT_ID = {"type": "string", "pattern": "^[0-9]{1,20}:[0-9a-f]{0,64}$"}

OPERATIONS = [
    {"method": "get", "path": "/api/v1/events/stream", "id": "streamEvents", "permission": "read",
     "summary": "Live ledger events (Server-Sent Events)",
     "description": "`text/event-stream` (send `Accept: text/event-stream`, else 400): one `ledger-event` per "
                    "committed transaction of an authorisation the key's org may read, `id: <block>:<tx id>`, "
                    "`data:` the chaincode event payload with its position. `Last-Event-ID` (header, or the "
                    "`last_event_id` query parameter) resumes after that event; without it the stream starts "
                    "at the newest event. Each response ends after a while; reconnect with Last-Event-ID. "
                    "Open streams are capped (each holds a server thread): per API key (default 4, the key's "
                    "dashboard sessions included), per dashboard session (2) and per server worker (half its "
                    "threads); beyond, **429** `too-many-requests` (problem+json: `limit` = `api-key`, "
                    "`session` or `worker`, `max_streams`) with `Retry-After`.",
     "params": [parameter("authorisation_id", "query", {"type": "string", "pattern": ID_PATTERNS["authorisation_id"]},
                               "only this authorisation's events"),
                parameter("last_event_id", "query", _EVENT_ID, "resume after this event (as Last-Event-ID)")]},
    {"method": "get", "path": "/api/v1/feed", "id": "getFeed", "permission": "read",
     "summary": "Ledger events the gateway has received (JSON): the newest, or those after a position",
     "params": [parameter("after", "query", _EVENT_ID, "events after this one (<block>:<tx id>), oldest first"),
                parameter("limit", "query", {"type": "string", "pattern": "^[0-9]{1,4}$"}, "at most this many (1-1000)")]},
    {"method": "get", "path": "/api/v1/dashboard/authorisations", "id": "getKnownAuthorisations", "permission": "read",
     "summary": "Authorisation ids the gateway knows (seen in ledger events or added) that the key's org may read"},
    {"method": "post", "path": "/api/v1/dashboard/authorisations", "id": "addKnownAuthorisation", "permission": "read",
     "summary": "Make an authorisation id known to the gateway (`{\"authorisation_id\": …}`; it must be readable by the key's org)",
     "body": {"type": "object", "required": ["authorisation_id"],
              "properties": {"authorisation_id": {"type": "string", "pattern": ID_PATTERNS["authorisation_id"]}}},
     "ok": {"201": ("added", None), "200": ("already known", None)}},
    {"method": "get", "path": "/api/v1/alerts", "id": "getAllAlerts", "permission": "read",
     "summary": "Alerts of every authorisation the key's org may read (recorded and time alerts at `as_of`)",
     "params": [moment_parameter("as_of", "date or date-time the alerts are computed for")]},
    {"method": "get", "path": "/api/v1/webhooks/deliveries", "id": "getWebhookDeliveries", "permission": "read",
     "summary": "Webhook delivery log (a customs key: every delivery; another org: its own subscriptions')",
     "params": [parameter("status", "query", {"type": "string", "enum": ["PENDING", "DELIVERED", "FAILED"]}, "only this status")]},
    {"method": "get", "path": "/api/v1/lots/{lot_id}/audit", "id": "getLotAudit", "permission": "read",
     "summary": "Audit trail of a lot: tx id, block, time, submitter (org and certificate subject), endorsing orgs." + _FORMATS,
     "params": [_LOT]},
    {"method": "get", "path": "/api/v1/batches/{batch_id}/audit", "id": "getBatchAudit", "permission": "read",
     "summary": "Audit trail of a batch (as for lots)." + _FORMATS, "params": [_BATCH]},
    {"method": "get", "path": "/api/v1/authorisations/{authorisation_id}/audit", "id": "getAuthorisationAudit",
     "permission": "read", "summary": "Audit trail of an authorisation: every event in [from, to)." + _FORMATS,
     "params": [_AUTH, moment_parameter("from", "start (default: the grant)"), moment_parameter("to", "end, exclusive")]},
    {"method": "get", "path": "/api/v1/reports/bill-of-discharge/{authorisation_id}", "id": "getBillOfDischargeReport",
     "permission": "read", "summary": "Bill of discharge for a period end (or the audit view as of a date)."
                                      + _FORMATS + ", `format=pdf` for a PDF",
     "params": [_AUTH, moment_parameter("period_end", "period end (date)", date_only=True),
                moment_parameter("as_of", "audit view as of this date or date-time (not with period_end)")]},
    {"method": "get", "path": "/api/v1/reports/inventory", "id": "getInventoryReport", "permission": "read",
     "summary": "Inventory of goods under the procedure at a date, for the authorisations the key's org may read."
                + _FORMATS + ", `format=pdf` for a PDF; `authorisation_id` (repeatable) to choose",
     "params": [moment_parameter("as_of", "date or date-time", required=True)]},
]


def register() -> None:
    known = {(op["method"], op["path"]) for op in openapi.OPERATIONS}
    for op in OPERATIONS:
        if (op["method"], op["path"]) not in known:
            openapi.OPERATIONS.append(op)
    openapi._document.cache_clear()


register()
