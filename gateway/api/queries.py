"""GET endpoints: the contract's evaluate queries, as the caller's org (the contract applies the
visibility rules of domain.md §2: a broker reads only mandated authorisations, commercial values only
for customs and the holder)."""
from __future__ import annotations

from flask import Blueprint, jsonify

from ..problems import Problem
from .common import channel_param, moment_param, path_id, require, state

bp = Blueprint("queries", __name__)


def _evaluate(function: str, *args):
    org, _channel, data = _evaluate_where(function, *args)
    return org, data


def _evaluate_where(function: str, *args):
    """(org, channel, answer): the caller's org, the channel that answered, the answer."""
    principal = require("read")
    channel, data = state().service.evaluate_where(principal.org, function, *args, channel=channel_param())
    return principal.org, channel, data


@bp.get("/authorisations/<authorisation_id>")
def get_authorisation(authorisation_id):
    _, data = _evaluate("GetAuthorisation", path_id("authorisation_id", authorisation_id))
    return jsonify(data)


@bp.get("/authorisations/<authorisation_id>/balances")
def get_balances(authorisation_id):
    _, data = _evaluate("GetBalances", path_id("authorisation_id", authorisation_id))
    return jsonify(data)


@bp.get("/authorisations/<authorisation_id>/alerts")
def get_alerts(authorisation_id):
    auth_id = path_id("authorisation_id", authorisation_id)
    _, data = _evaluate("GetAlerts", auth_id, moment_param("as_of"))
    return jsonify(data)


@bp.get("/authorisations/<authorisation_id>/events")
def get_events(authorisation_id):
    auth_id = path_id("authorisation_id", authorisation_id)
    start = moment_param("from", required=True)
    end = moment_param("to")
    org, channel, data = _evaluate_where("GetEventsInPeriod", auth_id, start, end)
    if isinstance(data, dict) and isinstance(data.get("events"), list):
        data["events"] = state().service.with_blocks(org, data["events"], channel)
    return jsonify(data)


@bp.get("/authorisations/<authorisation_id>/bill-of-discharge-data")
def get_bill_data(authorisation_id):
    auth_id = path_id("authorisation_id", authorisation_id)
    period_end = moment_param("period_end", date_only=True)
    as_of = moment_param("as_of")
    if period_end is not None and as_of is not None:
        raise Problem(400, "invalid-parameter", "give period_end or as_of, not both", extra={"parameter": "as_of"})
    _, data = _evaluate("GetBillOfDischargeData", auth_id, period_end, as_of)
    return jsonify(data)


@bp.get("/bills-of-discharge/<bill_id>")
def get_bill(bill_id):
    _, data = _evaluate("GetBillOfDischarge", path_id("bill_id", bill_id))
    return jsonify(data)


@bp.get("/lots/<lot_id>")
def get_lot(lot_id):
    _, data = _evaluate("GetLot", path_id("lot_id", lot_id))
    return jsonify(data)


@bp.get("/lots/<lot_id>/history")
def get_lot_history(lot_id):
    return jsonify(_trail(*_evaluate_where("GetLotHistory", path_id("lot_id", lot_id))))


@bp.get("/batches/<batch_id>")
def get_batch(batch_id):
    _, data = _evaluate("GetBatch", path_id("batch_id", batch_id))
    return jsonify(data)


@bp.get("/batches/<batch_id>/history")
def get_batch_history(batch_id):
    return jsonify(_trail(*_evaluate_where("GetBatchHistory", path_id("batch_id", batch_id))))


@bp.get("/members")
def get_members():
    """The channel's organisations (read-only; membership changes are `ipledger admin`'s)."""
    principal = require("read")
    return jsonify(state().service.channel_members(principal.org, channel_param()))


@bp.get("/parameters")
def get_parameters():
    _, data = _evaluate("GetParameters")
    return jsonify(data)


def _trail(org: str, channel: str, data):
    """The audit trail: every history entry with its block number and submitting org."""
    if isinstance(data, dict) and isinstance(data.get("history"), list):
        entries = state().service.with_blocks(org, data["history"], channel)
        for entry in entries:
            if isinstance(entry, dict) and isinstance(entry.get("submitted_by"), dict):
                entry.setdefault("submitting_org", entry["submitted_by"].get("msp_id"))
        data["history"] = entries
    return data

