"""REST routes of the dashboard work (API key, like every /api/v1 route): the live feed (SSE and JSON),
alerts across authorisations, known authorisations, webhook deliveries, audit trails, reports."""
from __future__ import annotations

import re

from flask import Blueprint, Response, current_app, jsonify, request

from .. import audit as audit_mod
from .. import reports
from ..api.common import moment_param, path_id, read_json, require, state
from ..feed.sse import peer_closed_check, sse_stream
from ..problems import Problem

bp = Blueprint("dashboard_api", __name__)



def live():
    return current_app.extensions["ipledger_live"]


def fmt_param(default: str = "json", allowed=("json", "csv")) -> str:
    value = (request.args.get("format") or default).lower()
    if value not in allowed:
        raise Problem(400, "invalid-parameter", f"'format' must be one of {', '.join(allowed)}",
                      extra={"parameter": "format"})
    return value


def limit_param(default: int = 100, maximum: int = 1000) -> int:
    value = request.args.get("limit")
    if value is None:
        return default
    if not value.isdigit() or not 1 <= int(value) <= maximum:
        raise Problem(400, "invalid-parameter", f"'limit' must be an integer from 1 to {maximum}",
                      extra={"parameter": "limit"})
    return int(value)


# ------------------------------------------------------------------------------------------ shared logic

def is_customs(org: str) -> bool:
    """Whether ``org`` is the customs authority of the consortium this gateway serves."""
    return org is not None and org == state().config.customs_msp


def visible_authorisations(org: str) -> list[str]:
    """Ids the gateway knows (seen in chaincode events or added by hand) that ``org`` may read."""
    lv = live()
    return [a["authorisation_id"] for a in lv.store.authorisation_ids()
            if lv.visibility.can_read(org, a["authorisation_id"])]


def alerts_across(org: str, as_of: str | None) -> dict:
    service = state().service
    out, authorisations = [], []
    for auth_id in visible_authorisations(org):
        try:
            data = service.evaluate_json(org, "GetAlerts", auth_id, as_of)
        except Problem as p:
            if p.status in (403, 404):
                continue
            raise
        authorisations.append(auth_id)
        out.extend(data.get("alerts", []))
    return {"as_of": as_of, "authorisations": authorisations, "alerts": out}


def stream_response(principal, authorisation_id: str | None = None, session_id: str | None = None) -> Response:
    """The SSE response for ``principal`` (and dashboard session ``session_id``), within the caps on open
    streams (429 beyond: :mod:`.streams`); its slot is freed when the response ends or is closed."""
    lv = live()
    if "text/event-stream" not in (request.headers.get("Accept") or ""):
        raise Problem(400, "bad-request", "this is a Server-Sent-Events stream: send 'Accept: text/event-stream'")
    last = request.headers.get("Last-Event-ID") or request.args.get("last_event_id") or None
    if last is not None and not re.fullmatch(r"[0-9]{1,20}:[0-9a-f]{0,64}", last):
        raise Problem(400, "invalid-parameter", "Last-Event-ID must be '<block>:<tx id>'",
                      extra={"parameter": "Last-Event-ID"})
    config = state().config
    lease = lv.streams.acquire(principal.key_id, session_id)
    try:
        body = sse_stream(lv.store, lv.visibility, principal.org, last, max_seconds=config.sse_max_seconds,
                          poll_seconds=config.sse_poll_seconds, stopping=lv.stopping,
                          authorisation_id=authorisation_id,
                          client_gone=peer_closed_check(request.environ.get("gunicorn.socket")))
        # no stream_with_context: the body needs nothing of the request, and must not hold its context
        response = Response(_releasing(body, lease), mimetype="text/event-stream")
        response.call_on_close(lease.release)  # the server closes the response, even one never read
    except BaseException:
        lease.release()
        raise
    response.headers["Cache-Control"] = "no-cache, no-store"
    response.headers["X-Accel-Buffering"] = "no"
    return response


def _releasing(body, lease):
    try:
        yield from body
    finally:
        lease.release()  # the stream ended (or the client went away)


def download(text_or_bytes, mimetype: str, filename: str) -> Response:
    response = Response(text_or_bytes, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# ------------------------------------------------------------------------------------------ feed

@bp.get("/events/stream")
def events_stream():
    """Server-Sent Events: one ``ledger-event`` per transaction the caller's org may see."""
    principal = require("read")
    auth_id = request.args.get("authorisation_id")
    return stream_response(principal, path_id("authorisation_id", auth_id) if auth_id else None)


@bp.get("/feed")
def feed():
    """The same items as JSON: newest first, or (``after=<block>:<tx>``) the ones after a position."""
    principal = require("read")
    lv = live()
    limit = limit_param()
    after = request.args.get("after")
    if after:
        seq = lv.store.seq_of(after)
        if seq is None:
            raise Problem(400, "invalid-parameter", "'after' must be '<block>:<tx id>'", extra={"parameter": "after"})
        items = lv.visibility.filter(principal.org, lv.store.events_after(seq, limit=limit))
    else:
        items = lv.visibility.filter(principal.org, lv.store.latest(limit))
    return jsonify({"items": [{k: v for k, v in i.items() if k != "seq"} for i in items]})


@bp.get("/dashboard/authorisations")
def known_authorisations():
    principal = require("read")
    return jsonify({"authorisations": visible_authorisations(principal.org)})


@bp.post("/dashboard/authorisations")
def add_authorisation():
    """Make an authorisation id known to the gateway (if the caller may read it)."""
    principal = require("read")
    body = read_json()
    if not isinstance(body, dict) or not isinstance(body.get("authorisation_id"), str):
        raise Problem(400, "bad-request", "the body must be {\"authorisation_id\": \"…\"}")
    auth_id = path_id("authorisation_id", body["authorisation_id"])
    state().service.evaluate_json(principal.org, "GetAuthorisation", auth_id)  # 403/404 when not readable
    added = live().store.add_authorisation(auth_id, principal.org)
    return jsonify({"authorisation_id": auth_id, "added": added}), 201 if added else 200


# ------------------------------------------------------------------------------------------ alerts, webhooks

@bp.get("/alerts")
def all_alerts():
    """Alerts (recorded and time alerts, at ``as_of``) of every authorisation the caller may read."""
    principal = require("read")
    return jsonify(alerts_across(principal.org, moment_param("as_of")))


@bp.get("/webhooks/deliveries")
def deliveries():
    """The webhook delivery log: every delivery for a customs key, the org's own subscriptions otherwise."""
    principal = require("read")
    status = request.args.get("status")
    if status is not None and status not in ("PENDING", "DELIVERED", "FAILED"):
        raise Problem(400, "invalid-parameter", "'status' must be PENDING, DELIVERED or FAILED",
                      extra={"parameter": "status"})
    org = None if is_customs(principal.org) else principal.org
    return jsonify({"deliveries": live().deliveries.log(org=org, limit=limit_param(200, 5000), status=status)})


# ------------------------------------------------------------------------------------------ audit trails

def _audit(data: dict, name: str):
    if fmt_param() == "csv":
        return download(audit_mod.to_csv(data["entries"]), "text/csv", f"audit-{name}.csv")
    return jsonify(data)


@bp.get("/lots/<lot_id>/audit")
def lot_audit(lot_id):
    principal = require("read")
    lot_id = path_id("lot_id", lot_id)
    return _audit(live().audit.lot(principal.org, lot_id), f"lot-{lot_id}")


@bp.get("/batches/<batch_id>/audit")
def batch_audit(batch_id):
    principal = require("read")
    batch_id = path_id("batch_id", batch_id)
    return _audit(live().audit.batch(principal.org, batch_id), f"batch-{batch_id}")


@bp.get("/authorisations/<authorisation_id>/audit")
def authorisation_audit(authorisation_id):
    principal = require("read")
    auth_id = path_id("authorisation_id", authorisation_id)
    data = live().audit.authorisation(principal.org, auth_id, moment_param("from"), moment_param("to"))
    return _audit(data, auth_id)


# ------------------------------------------------------------------------------------------ reports

@bp.get("/reports/bill-of-discharge/<authorisation_id>")
def bill_report(authorisation_id):
    principal = require("read")
    auth_id = path_id("authorisation_id", authorisation_id)
    period_end = moment_param("period_end", date_only=True)
    as_of = moment_param("as_of")
    if period_end is not None and as_of is not None:
        raise Problem(400, "invalid-parameter", "give period_end or as_of, not both", extra={"parameter": "as_of"})
    fmt = fmt_param(allowed=("json", "csv", "pdf"))
    data = reports.bill_of_discharge(state().service, principal.org, auth_id, period_end, as_of)
    name = f"bill-of-discharge-{auth_id}-{period_end or (as_of or 'now')[:10]}"
    if fmt == "csv":
        return download(reports.bill_csv(data), "text/csv", name + ".csv")
    if fmt == "pdf":
        return download(reports.bill_pdf(data), "application/pdf", name + ".pdf")
    return jsonify(data)


@bp.get("/reports/inventory")
def inventory_report():
    principal = require("read")
    as_of = moment_param("as_of", required=True)
    wanted = request.args.getlist("authorisation_id")
    ids = [path_id("authorisation_id", a) for a in wanted] if wanted else visible_authorisations(principal.org)
    fmt = fmt_param(allowed=("json", "csv", "pdf"))
    data = reports.inventory(state().service, principal.org, ids, as_of)
    name = f"inventory-{as_of[:10]}"
    if fmt == "csv":
        return download(reports.inventory_csv(data), "text/csv", name + ".csv")
    if fmt == "pdf":
        return download(reports.inventory_pdf(data), "application/pdf", name + ".pdf")
    return jsonify(data)
