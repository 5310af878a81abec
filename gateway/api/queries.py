"""GET endpoints: the contract's evaluate queries, as the caller's org (the contract applies the
visibility rules of domain.md §2: a broker reads only mandated authorisations, commercial values only
for customs and the holder)."""
from __future__ import annotations

from flask import jsonify

from ipledger.gateway.problems import Problem
from ipledger.gateway.api.common import (API_PREFIX, channel_param, moment_param, page_args, page_params, path_id,
                                         require, state)
from ipledger.gateway.api.routes import AUTH_ID, Routes, blueprint, id_parameter, moment_parameter, page_parameters

ROUTES = Routes(API_PREFIX)
_LOT = id_parameter("lot_id", "lot id")
_BATCH = id_parameter("batch_id", "batch id")


def _evaluate(function: str, *args):
    org, _channel, data = _evaluate_where(function, *args)
    return org, data


def _evaluate_where(function: str, *args):
    """(org, channel, answer): the caller's org, the channel that answered, the answer."""
    principal = require("read")
    channel, data = state().service.evaluate_where(principal.org, function, *args, channel=channel_param())
    return principal.org, channel, data


@ROUTES.get("/authorisations/<authorisation_id>", id="getAuthorisation", permission="read",
            summary="An authorisation and its status at the ledger time", params=[AUTH_ID],
            function="GetAuthorisation")
def get_authorisation(authorisation_id):
    _, data = _evaluate("GetAuthorisation", path_id("authorisation_id", authorisation_id))
    return jsonify(data)


@ROUTES.get("/authorisations/<authorisation_id>/balances", id="getBalances", permission="read",
            summary="Balances by goods code and unit, and the use of each ceiling", params=[AUTH_ID],
            function="GetBalances")
def get_balances(authorisation_id):
    _, data = _evaluate("GetBalances", path_id("authorisation_id", authorisation_id))
    return jsonify(data)


@ROUTES.get("/authorisations/<authorisation_id>/alerts", id="getAlerts", permission="read",
            summary="Recorded and time alerts at `as_of` (default: the ledger time)",
            params=[AUTH_ID, moment_parameter("as_of", "date or date-time the alerts are computed for")],
            function="GetAlerts")
def get_alerts(authorisation_id):
    auth_id = path_id("authorisation_id", authorisation_id)
    _, data = _evaluate("GetAlerts", auth_id, moment_param("as_of"))
    return jsonify(data)


@ROUTES.get("/authorisations/<authorisation_id>/events", id="getEventsInPeriod", permission="read",
            summary="Events recorded in [from, to) (ledger time), with block numbers",
            params=[AUTH_ID, moment_parameter("from", "start (a date means 00:00 UTC)", required=True),
                    moment_parameter("to", "end, exclusive (a date includes that whole day; default: the "
                                           "ledger time)"), *page_parameters()],
            function="GetEventsInPeriod")
def get_events(authorisation_id):
    auth_id = path_id("authorisation_id", authorisation_id)
    start = moment_param("from", required=True)
    end = moment_param("to")
    org, channel, data = _evaluate_where("GetEventsInPeriod", auth_id, start, end, *page_args(*page_params()))
    if isinstance(data, dict) and isinstance(data.get("events"), list):
        data["events"] = state().service.with_blocks(org, data["events"], channel)
    return jsonify(data)


@ROUTES.get("/authorisations/<authorisation_id>/bill-of-discharge-data", id="getBillOfDischargeData",
            permission="read",
            summary="The bill-of-discharge data for a period end, or the audit view as of a date",
            params=[AUTH_ID, moment_parameter("period_end", "period end (date)", date_only=True),
                    moment_parameter("as_of", "audit view as of this date or date-time (not with period_end)")],
            function="GetBillOfDischargeData")
def get_bill_data(authorisation_id):
    auth_id = path_id("authorisation_id", authorisation_id)
    period_end = moment_param("period_end", date_only=True)
    as_of = moment_param("as_of")
    if period_end is not None and as_of is not None:
        raise Problem(400, "invalid-parameter", "give period_end or as_of, not both", extra={"parameter": "as_of"})
    _, data = _evaluate("GetBillOfDischargeData", auth_id, period_end, as_of)
    return jsonify(data)


@ROUTES.get("/bills-of-discharge/<bill_id>", id="getBillOfDischarge", permission="read",
            summary="A submitted bill of discharge and its decision",
            params=[id_parameter("bill_id", "bill id, BOD-<authorisation>-<period end>")],
            function="GetBillOfDischarge")
def get_bill(bill_id):
    _, data = _evaluate("GetBillOfDischarge", path_id("bill_id", bill_id))
    return jsonify(data)


@ROUTES.get("/lots/<ident:lot_id>", id="getLot", permission="read",
            summary="A lot: balances per site, status, deadline (customs value for customs and the holder, "
                    "its hash for the broker)", params=[_LOT], function="GetLot")
def get_lot(lot_id):
    _, data = _evaluate("GetLot", path_id("lot_id", lot_id))
    return jsonify(data)


@ROUTES.get("/lots/<ident:lot_id>/history", id="getLotHistory", permission="read",
            summary="Audit trail of a lot: every event with tx id, block number, timestamp and submitting org",
            params=[_LOT], function="GetLotHistory")
def get_lot_history(lot_id):
    return jsonify(_trail(*_evaluate_where("GetLotHistory", path_id("lot_id", lot_id))))


@ROUTES.get("/batches/<ident:batch_id>", id="getBatch", permission="read",
            summary="A batch of processed products with its lineage", params=[_BATCH], function="GetBatch")
def get_batch(batch_id):
    _, data = _evaluate("GetBatch", path_id("batch_id", batch_id))
    return jsonify(data)


@ROUTES.get("/batches/<ident:batch_id>/history", id="getBatchHistory", permission="read",
            summary="Audit trail of a batch (as for lots)", params=[_BATCH], function="GetBatchHistory")
def get_batch_history(batch_id):
    return jsonify(_trail(*_evaluate_where("GetBatchHistory", path_id("batch_id", batch_id))))


@ROUTES.get(
    "/members", id="getMembers", permission="read", channel=True,
    summary="The channel's organisations, from its current config block",
    description="Read-only membership view: every application and orderer organisation of the channel with "
                "its anchor peers or orderer endpoints, its admins policy and its root CA certificates "
                "(subject, SHA-256 fingerprint, expiry), and the policy a membership change needs. Read "
                "from the key's organisation's peer (cscc GetConfigBlock, which every channel member may "
                "call). Changes go through `ipledger admin` with the signatures of the org admins.",
    ok={"200": ("the channel's organisations", "Members")})
def get_members():
    """The channel's organisations (read-only; membership changes are `ipledger admin`'s)."""
    principal = require("read")
    return jsonify(state().service.channel_members(principal.org, channel_param()))


@ROUTES.get("/parameters", id="getParameters", permission="read", summary="The customs parameters in force",
            function="GetParameters")
def get_parameters():
    _, data = _evaluate("GetParameters")
    return jsonify(data)


@ROUTES.get("/declarations/<mrn>", id="getDeclaration", permission="read",
            summary="A declaration (MRN): its items under the authorisations the caller stands for, each with "
                    "the events of its goods that concern it (for a placement, the lot's whole history)",
            description="The audit view from a declaration (docs/domain.md §7): a placement's item with the "
                        "lot's trail, an exit's item with the events naming this MRN; a 5151 transfer's two "
                        "sides (its exit and its reception). Each event carries its block number and "
                        "submitting organisation, as the lots' trails do; an exit's item its `commercial` data "
                        "(the invoice price) for customs and the holder, its `commercial_hash` for a "
                        "representative. 404 when no item is the caller's.",
            params=[id_parameter("mrn", "declaration reference (MRN, check digit included), e.g. "
                                        "26FR000110000001R8")],
            function="GetDeclaration")
def get_declaration(mrn):
    org, channel, data = _evaluate_where("GetDeclaration", path_id("mrn", mrn))
    items = data.get("items") if isinstance(data, dict) else None
    if isinstance(items, list):
        trails = [item["events"] if isinstance(item, dict) and isinstance(item.get("events"), list) else []
                  for item in items]
        entries = iter(_with_blocks(org, channel, [entry for trail in trails for entry in trail]))
        for item, trail in zip(items, trails):
            if trail:
                item["events"] = [next(entries) for _ in trail]
    return jsonify(data)


@ROUTES.get("/parties", id="getParties", permission="read",
            summary="The register of parties: every entry (withdrawn ones too) for customs, its own for a "
                    "registered party", function="GetParties")
def get_parties():
    _, data = _evaluate("GetParties")
    return jsonify(data)


def _trail(org: str, channel: str, data):
    """The audit trail: every history entry with its block number and submitting org."""
    if isinstance(data, dict) and isinstance(data.get("history"), list):
        data["history"] = _with_blocks(org, channel, data["history"])
    return data


def _with_blocks(org: str, channel: str, entries: list) -> list:
    """Trail entries with their block numbers (one budget of look-ups for them all) and submitting org."""
    entries = state().service.with_blocks(org, entries, channel)
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("submitted_by"), dict):
            entry.setdefault("submitting_org", entry["submitted_by"].get("msp_id"))
    return entries


bp = blueprint("queries", __name__, ROUTES)


@bp.before_request
def _authenticated_first() -> None:
    """Every query needs a readable key before anything of the request is looked at: without one the answer
    is 401, never a 400 about a parameter the route checks first (the views' arguments are built before they
    ask for the key)."""
    require("read")
