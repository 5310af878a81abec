"""Alerts across authorisations: GET /api/v1/alerts (every authorisation the caller may read), the log of their
webhook deliveries, /api/v1/webhooks/deliveries (:mod:`ipledger.gateway.webhooks`), and customs' alerts of
declaration items used on two holders' channels, /api/v1/declarations/across-channels
(:mod:`ipledger.gateway.feed.declarations`)."""
from __future__ import annotations

from flask import jsonify, request

from ipledger.gateway.problems import Problem
from ipledger.gateway.api.common import (API_PREFIX, channel_param, is_customs, limit_param, live, moment_param,
                                         require, state, visible_authorisations)
from ipledger.gateway.api.routes import Routes, limit_parameter, moment_parameter, parameter

ROUTES = Routes(API_PREFIX)


def alerts_across(org: str, as_of: str | None, channel: str | None = None) -> dict:
    """The alerts at ``as_of`` of every authorisation the gateway knows that ``org`` may read (on ``channel`` only,
    when given: a gateway of several holders' channels; 400 unknown-channel for one it does not serve; an id on
    several holders' channels gives each one's alerts); on a gateway of several channels each alert names its
    ``channel``. The answer's
    ``as_of`` is the moment the contract computed them for (a date: the end of that day), None for now."""
    service = state().service
    if channel is not None:
        service.channels(channel)   # checked even when no authorisation is known
    out, authorisations, moment = [], [], as_of
    for auth_id in visible_authorisations(org, channel):
        try:
            answers = service.evaluate_each(org, "GetAlerts", auth_id, as_of, channel=channel)
        except Problem as p:
            if p.status in (403, 404):
                continue
            raise
        authorisations.append(auth_id)
        for on, data in answers:   # on a gateway of several holders' channels each alert names its channel
            out.extend(data.get("alerts", []) if on is None or len(service.channels()) == 1 else
                       [{**alert, "channel": on} for alert in data.get("alerts", [])])
            if as_of is not None:
                # the moment as the contract read it: a date is that whole day (to 23:59:59.999999 UTC)
                moment = data.get("as_of", moment)
    return {"as_of": moment, "authorisations": authorisations, "alerts": out}


@ROUTES.get("/alerts", id="getAllAlerts", permission="read", channel=True,
            summary="Alerts of every authorisation the key's org may read (recorded and time alerts at `as_of`)",
            params=[moment_parameter("as_of", "date or date-time the alerts are computed for")])
def all_alerts():
    """Alerts (recorded and time alerts, at ``as_of``) of every authorisation the caller may read."""
    principal = require("read")
    return jsonify(alerts_across(principal.org, moment_param("as_of"), channel_param()))


@ROUTES.get("/webhooks/deliveries", id="getWebhookDeliveries", permission="read",
            summary="Webhook delivery log (a customs key: every delivery; another org: its own subscriptions')",
            params=[parameter("status", "query", {"type": "string", "enum": ["PENDING", "DELIVERED", "FAILED"]},
                              "only this status"), limit_parameter(200, 5000)])
def deliveries():
    """The webhook delivery log: every delivery for a customs key, the org's own subscriptions otherwise."""
    principal = require("read")
    status = request.args.get("status")
    if status is not None and status not in ("PENDING", "DELIVERED", "FAILED"):
        raise Problem(400, "invalid-parameter", "'status' must be PENDING, DELIVERED or FAILED",
                      extra={"parameter": "status"})
    org = None if is_customs(principal.org) else principal.org
    return jsonify({"deliveries": live().deliveries.log(org=org, limit=limit_param(200, 5000), status=status)})


@ROUTES.get("/declarations/across-channels", id="getDeclarationsAcrossChannels", permission="read",
            summary="Declaration items used on two holders' channels against the rule (customs keys only)",
            description="Customs' gateway of several holders' channels watches the declaration items (MRN + item) "
                        "its feed shows: an item used on two channels — twice, or by the two sides of a 5151 "
                        "transfer naming other goods — raises a `DeclarationAcrossChannels` alert (also sent to "
                        "customs' webhook subscriptions), newest first. `watching` is false on a gateway that is "
                        "not customs' or serves one channel (its contract checks each item itself), or runs no "
                        "live feed (IPLEDGER_LIVE_FEED=0). Another organisation's key: 403.",
            params=[limit_parameter(500, 5000)])
def declarations_across_channels():
    """Customs' alerts of declaration items used on two holders' channels."""
    principal = require("read")
    if not is_customs(principal.org):
        raise Problem(403, "forbidden", "declaration items across holders' channels are customs' to see (each "
                                        "alert names two holders' authorisations)")
    limit = limit_param(500, 5000)
    lv = live()
    watch = lv.declarations
    # watching: a watch fed by a listener (none with IPLEDGER_LIVE_FEED=0: an empty list would read as all clear)
    return jsonify({"watching": watch is not None and bool(lv.listeners),
                    "alerts": watch.alerts(limit) if watch is not None else []})
