"""Audit trails: GET /api/v1/lots/<id>/audit, /batches/<id>/audit, /authorisations/<id>/audit — every
transaction with its block, time, submitter and endorsers (:mod:`ipledger.gateway.audit`), as JSON or CSV."""
from __future__ import annotations

from flask import jsonify

from ipledger.gateway import audit as audit_mod
from ipledger.gateway.api.common import (API_PREFIX, channel_param, download, fmt_param, live, moment_param, path_id,
                                         require)
from ipledger.gateway.api.routes import AUTH_ID, Routes, format_parameter, id_parameter, moment_parameter

ROUTES = Routes(API_PREFIX)
_FORMATS = " Add `format=csv` for a CSV download"
FORMAT = format_parameter("json", "csv")


def _audit(data: dict, name: str):
    if fmt_param() == "csv":
        return download(audit_mod.to_csv(data["entries"]), "text/csv", f"audit-{name}.csv")
    return jsonify(data)


@ROUTES.get("/lots/<ident:lot_id>/audit", id="getLotAudit", permission="read", channel=True,
            downloads=("text/csv",),
            summary="Audit trail of a lot: tx id, block, time, submitter (org and certificate subject), endorsing "
                    "orgs." + _FORMATS, params=[id_parameter("lot_id", "lot id"), FORMAT])
def lot_audit(lot_id):
    principal = require("read")
    lot_id = path_id("lot_id", lot_id)
    return _audit(live().audit.lot(principal.org, lot_id, channel_param()), f"lot-{lot_id}")


@ROUTES.get("/batches/<ident:batch_id>/audit", id="getBatchAudit", permission="read", channel=True,
            downloads=("text/csv",),
            summary="Audit trail of a batch (as for lots)." + _FORMATS, params=[id_parameter("batch_id", "batch id"), FORMAT])
def batch_audit(batch_id):
    principal = require("read")
    batch_id = path_id("batch_id", batch_id)
    return _audit(live().audit.batch(principal.org, batch_id, channel_param()), f"batch-{batch_id}")


@ROUTES.get("/authorisations/<authorisation_id>/audit", id="getAuthorisationAudit", permission="read", channel=True,
            downloads=("text/csv",),
            summary="Audit trail of an authorisation: every event in [from, to)." + _FORMATS,
            params=[AUTH_ID, moment_parameter("from", "start (default: the grant)"),
                    moment_parameter("to", "end, exclusive"), FORMAT])
def authorisation_audit(authorisation_id):
    principal = require("read")
    auth_id = path_id("authorisation_id", authorisation_id)
    data = live().audit.authorisation(principal.org, auth_id, moment_param("from"), moment_param("to"), channel_param())
    return _audit(data, auth_id)
