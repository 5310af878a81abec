"""Audit trails: GET /api/v1/lots/<id>/audit, /batches/<id>/audit, /authorisations/<id>/audit — every
transaction with its block, time, submitter and endorsers (:mod:`ipledger.gateway.audit`), as JSON or CSV; the
dashboard's downloads of them are these same documents (:func:`lot_trail`, :func:`batch_trail`,
:func:`authorisation_trail`)."""
from __future__ import annotations

from flask import jsonify

from ipledger.gateway import audit as audit_mod
from ipledger.gateway.auth import Principal
from ipledger.gateway.api.common import (API_PREFIX, attachment, channel_param, download, fmt_param, live, moment_param,
                                         page_args, page_params, path_id, require)
from ipledger.gateway.api.routes import AUTH_ID, Routes, format_parameter, id_parameter, moment_parameter, page_parameters

ROUTES = Routes(API_PREFIX)
_FORMATS = " Add `format=csv` for a CSV download"
FORMAT = format_parameter("json", "csv")


def _audit(data: dict, name: str, fmt: str, attach_json: bool):
    if fmt == "csv":
        return download(audit_mod.to_csv(data["entries"]), "text/csv", f"audit-{name}.csv")
    response = jsonify(data)
    return attachment(response, f"audit-{name}.json") if attach_json else response


# The documents, for the API's routes below and the dashboard's downloads (gateway/dashboard/downloads.py): one
# answer for both — ``principal``'s organisation reads what the contract lets it, on ``?channel=``; ``fmt`` is
# "json" or "csv"; ``attach_json``: the JSON too is a file to save (the dashboard's), not an answer to read.

def lot_trail(principal: Principal, lot_id: str, fmt: str, *, attach_json: bool = False):
    lot_id = path_id("lot_id", lot_id)
    return _audit(live().audit.lot(principal.org, lot_id, channel_param()), f"lot-{lot_id}", fmt, attach_json)


def batch_trail(principal: Principal, batch_id: str, fmt: str, *, attach_json: bool = False):
    batch_id = path_id("batch_id", batch_id)
    return _audit(live().audit.batch(principal.org, batch_id, channel_param()), f"batch-{batch_id}", fmt, attach_json)


def authorisation_trail(principal: Principal, authorisation_id: str, fmt: str, *, attach_json: bool = False):
    """Every event in [``?from=``, ``?to=``) (from the grant by default), or a page of them (``?limit=&after=``:
    the answer's ``next`` — in the CSV, the ``X-Next-Page`` header — is the ``after`` of the next)."""
    auth_id = path_id("authorisation_id", authorisation_id)
    data = live().audit.authorisation(principal.org, auth_id, moment_param("from"), moment_param("to"), channel_param(),
                                      page_args(*page_params()))
    response = _audit(data, auth_id, fmt, attach_json)
    if data.get("next"):
        response.headers["X-Next-Page"] = data["next"]
    return response


@ROUTES.get("/lots/<ident:lot_id>/audit", id="getLotAudit", permission="read", channel=True,
            downloads=("text/csv",),
            summary="Audit trail of a lot: tx id, block, time, submitter (org and certificate subject), endorsing "
                    "orgs." + _FORMATS, params=[id_parameter("lot_id", "lot id"), FORMAT])
def lot_audit(lot_id):
    return lot_trail(require("read"), lot_id, fmt_param())


@ROUTES.get("/batches/<ident:batch_id>/audit", id="getBatchAudit", permission="read", channel=True,
            downloads=("text/csv",),
            summary="Audit trail of a batch (as for lots)." + _FORMATS, params=[id_parameter("batch_id", "batch id"), FORMAT])
def batch_audit(batch_id):
    return batch_trail(require("read"), batch_id, fmt_param())


@ROUTES.get("/authorisations/<authorisation_id>/audit", id="getAuthorisationAudit", permission="read", channel=True,
            downloads=("text/csv",),
            summary="Audit trail of an authorisation: every event in [from, to)." + _FORMATS,
            params=[AUTH_ID, moment_parameter("from", "start (default: the grant)"),
                    moment_parameter("to", "end, exclusive"), FORMAT, *page_parameters()])
def authorisation_audit(authorisation_id):
    return authorisation_trail(require("read"), authorisation_id, fmt_param())
