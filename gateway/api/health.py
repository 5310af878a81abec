"""/healthz (the process answers), /readyz (each org's peer answers an evaluate), /metrics."""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from flask import Response, jsonify

from ipledger.gateway.observability import CONTENT_TYPE_LATEST
from ipledger.gateway.problems import Problem, contract_not_running
from ipledger.gateway.api.common import require, state
from ipledger.gateway.api.routes import Routes, blueprint

log = logging.getLogger("ipledger.gateway.health")
ROUTES = Routes()  # at the root, not under /api/v1

# The contract answered, refusing the organisation itself (customs have not registered it yet, or withdrew
# it): its peer and the chaincode are up, so the gateway is ready — the organisation's standing is the
# ledger's business, and customs register it through their own gateway after start-up.
PARTY_REFUSALS = frozenset({"UnknownParty", "PartyWithdrawn", "EoriNotRegistered"})


@ROUTES.get("/healthz", id="healthz", permission=None, summary="Liveness: the process answers, naming the "
            "organisation(s) it acts for", ok={"200": ("alive", "Alive")})
def healthz():
    """Alive, and whose: ``ipledger gateway start`` checks that what answers at the address it started a gateway
    on is that organisation's (another gateway already bound there answers too)."""
    return jsonify({"status": "ok", "orgs": sorted(state().service.ledger.orgs())})


@ROUTES.get("/readyz", id="readyz", permission=None,
            summary="Readiness: the peer of every org answers an evaluate (GetParameters)",
            ok={"200": ("ready", "Status")}, problems=("500", "503"))
def readyz():
    """Ready when the peer of every org this gateway acts for answers ``GetParameters`` on every channel it
    serves — with the parameters, or with the contract's refusal of an organisation it does not (yet) count
    as a party."""
    st = state()
    ledger = st.service.ledger
    orgs = ledger.orgs()
    if not orgs:
        raise Problem(503, "service-unavailable", "the gateway acts for no organisation (no identities configured)",
                      headers={"Retry-After": str(st.config.retry_after_s)})

    channels = st.config.all_channels
    several = len(channels) > 1

    def probe(target: tuple[str, str]) -> tuple[str, str]:
        org, channel = target
        name = f"{org} on {channel}" if several else org  # a gateway of several channels: each of them
        try:
            ledger.evaluate(org, "GetParameters", [], timeout=st.config.ready_timeout,
                            **({"channel": channel} if several else {}))
            return name, "ok"
        except Exception as exc:  # noqa: BLE001 - any other failure means not ready
            refused = (getattr(exc, "chaincode_error", None) or {}).get("code")
            if refused in PARTY_REFUSALS:
                log.info("readiness: the contract on the peer of %s answers, refusing it (%s)", name, refused,
                         extra={"org": org})
                return name, f"ok ({refused})"
            code = getattr(getattr(exc, "code", None), "name", None) or type(exc).__name__
            if contract_not_running(exc):
                # the peer answered: the contract on it did not (stopped, hung, or a package it cannot start)
                log.warning("readiness: the contract on the peer of %s does not answer (%s); every time: a package "
                            "its peer cannot start (see the peer's log)", name, code, extra={"org": org})
                return name, "unavailable (the contract does not answer)"
            log.warning("readiness: the peer of %s does not answer (%s)", name, code, extra={"org": org})
            return name, f"unavailable ({code})"

    targets = [(org, channel) for org in orgs for channel in channels]
    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        checks = dict(pool.map(probe, targets))
    if all(v == "ok" or v.startswith("ok (") for v in checks.values()):
        return jsonify({"status": "ready", "orgs": checks})
    raise Problem(503, "service-unavailable", "the peer of at least one organisation, or the contract on it, does "
                  "not answer",
                  extra={"orgs": checks}, headers={"Retry-After": str(st.config.retry_after_s)})


@ROUTES.get("/metrics", id="metrics", permission="read", summary="Prometheus metrics (text exposition format); an "
            "API key of the gateway's organisation (the counts tell its business volumes)",
            ok={"200": ("metrics", None)}, media="text/plain")
def metrics():
    require("read")
    return Response(state().metrics.exposition(), mimetype=CONTENT_TYPE_LATEST.split(";")[0],
                    headers={"Content-Type": CONTENT_TYPE_LATEST})


bp = blueprint("health", __name__, ROUTES)
