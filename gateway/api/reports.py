"""Reports: GET /api/v1/reports/bill-of-discharge/<authorisation_id> and /api/v1/reports/inventory, as
JSON, CSV or PDF (:mod:`ipledger.gateway.reports`)."""
from __future__ import annotations

from flask import jsonify, request

from ipledger.gateway import reports
from ipledger.gateway.auth import Principal
from ipledger.gateway.problems import Problem
from ipledger.gateway.api.common import (API_PREFIX, ID_PATTERNS, attachment, channel_param, download, fmt_param,
                                         moment_param, path_id, require, state, visible_authorisations)
from ipledger.gateway.api.routes import AUTH_ID, Routes, format_parameter, moment_parameter, parameter

ROUTES = Routes(API_PREFIX)
MAX_AUTHORISATIONS = 500   # authorisation_id parameters of one inventory report
FORMATS = ("json", "csv", "pdf")   # of a report
_FORMATS = " Add `format=csv` for a CSV download, `format=pdf` for a PDF"
FORMAT = format_parameter(*FORMATS)


@ROUTES.get("/reports/bill-of-discharge/<authorisation_id>", id="getBillOfDischargeReport", permission="read",
            channel=True, downloads=("text/csv", "application/pdf"),
            summary="Bill of discharge for a period end (or the audit view as of a date)." + _FORMATS,
            params=[AUTH_ID, moment_parameter("period_end", "period end (date)", date_only=True),
                    moment_parameter("as_of", "audit view as of this date or date-time (not with period_end)"),
                    FORMAT])
def bill_report(authorisation_id):
    principal = require("read")
    return bill_document(principal, authorisation_id, fmt_param(allowed=FORMATS))


def bill_document(principal: Principal, authorisation_id: str, fmt: str, *, attach_json: bool = False):
    """The bill of discharge of ``authorisation_id`` as ``principal``'s organisation reads it (``?period_end=`` or
    ``?as_of=``, ``?channel=``), as ``fmt`` (one of :data:`FORMATS`): the API's answer above, and the dashboard's
    download (gateway/dashboard/downloads.py; ``attach_json``: the JSON too is a file to save)."""
    auth_id = path_id("authorisation_id", authorisation_id)
    period_end = moment_param("period_end", date_only=True)
    as_of = moment_param("as_of")
    if period_end is not None and as_of is not None:
        raise Problem(400, "invalid-parameter", "give period_end or as_of, not both", extra={"parameter": "as_of"})
    data = reports.bill_of_discharge(state().service, principal.org, auth_id, period_end, as_of, channel_param())
    name = f"bill-of-discharge-{auth_id}-{period_end or (as_of or 'now')[:10]}"
    return _answer(fmt, data, name, reports.bill_csv, reports.bill_pdf, attach_json)


@ROUTES.get("/reports/inventory", id="getInventoryReport", permission="read", channel=True,
            downloads=("text/csv", "application/pdf"),
            summary="Inventory of goods under the procedure at a date, for the authorisations the key's org may "
                    "read." + _FORMATS + "; `authorisation_id` (repeatable) to choose",
            params=[moment_parameter("as_of", "date or date-time", required=True), FORMAT,
                    parameter("authorisation_id", "query",
                              {"type": "array", "maxItems": MAX_AUTHORISATIONS,
                               "items": {"type": "string", "pattern": ID_PATTERNS["authorisation_id"]}},
                              "only these authorisations, in this order (repeat the parameter; default: every one the "
                              "key's org may read)")])
def inventory_report():
    principal = require("read")
    as_of = moment_param("as_of", required=True)
    wanted = request.args.getlist("authorisation_id")
    if len(wanted) > MAX_AUTHORISATIONS:
        raise Problem(400, "invalid-parameter", f"at most {MAX_AUTHORISATIONS} 'authorisation_id' parameters",
                      extra={"parameter": "authorisation_id"})
    fmt = fmt_param(allowed=FORMATS)
    channel = channel_param()
    if channel is not None:
        state().service.channels(channel)   # 400 unknown-channel, even when no authorisation is asked about
    # each named once (a repeated one would be counted twice in the totals), in the order given; the parameters
    # checked first: a bad one asks the ledger nothing
    ids = list(dict.fromkeys(path_id("authorisation_id", a) for a in wanted)) if wanted \
        else visible_authorisations(principal.org, channel)   # on that channel only: not another holder's
    data = reports.inventory(state().service, principal.org, ids, as_of, channel)
    return _answer(fmt, data, f"inventory-{as_of[:10]}", reports.inventory_csv, reports.inventory_pdf)


def _answer(fmt: str, data: dict, name: str, to_csv, to_pdf, attach_json: bool = False):
    """A report as JSON (a file named ``name`` too with ``attach_json``), or as a CSV or PDF download named ``name``."""
    if fmt == "csv":
        return download(to_csv(data), "text/csv", name + ".csv")
    if fmt == "pdf":
        return download(to_pdf(data), "application/pdf", name + ".pdf")
    response = jsonify(data)
    return attachment(response, name + ".json") if attach_json else response
