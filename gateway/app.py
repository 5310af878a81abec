"""The Flask app factory of the REST gateway.

    from ipledger.gateway.app import create_app
    from ipledger.gateway.config import GatewayConfig
    app = create_app(GatewayConfig.from_state_dir(".ipledger", org="OperatorMSP"))

Served by gunicorn (``ipledger gateway serve``), never by the Flask development
server. ``ledger`` lets tests inject a fake Fabric client; by default the app
connects lazily to each org's peer (see :mod:`ipledger.gateway.ledger`).
"""
from __future__ import annotations

import logging
import sqlite3
import time

from flask import Flask, g, redirect, request
from werkzeug.exceptions import HTTPException

from ipledger.gateway import headers, openapi, problems
from ipledger.gateway.api import docs, events, health, live, queries
from ipledger.gateway.config import NO_INSTANCE
from ipledger.gateway.api.common import (API_PREFIX, AppState, install_converters, refuse_repeated_parameters,
                                         refuse_unknown_parameters)
from ipledger.gateway.auth import KeyStore
from ipledger.gateway.config import GatewayConfig
from ipledger.gateway.dashboard import install as install_dashboard
from ipledger.gateway.ledger import FabricLedger, Ledger
from ipledger.gateway.observability import REQUEST_ID_HEADER, Metrics, configure_logging, request_id_from, route_label
from ipledger.gateway.problems import Problem
from ipledger.gateway.service import LedgerService

log = logging.getLogger("ipledger.gateway.access")
errlog = logging.getLogger("ipledger.gateway.error")

def create_app(config: GatewayConfig | None = None, *, ledger: Ledger | None = None,
               keys: KeyStore | None = None) -> Flask:
    config = config or GatewayConfig()
    if config.configure_logging:
        configure_logging(config.log_level)
    keys = keys or KeyStore(config.keys_file)
    keys.check()  # refuse to start with an unsafe key file
    app = Flask(__name__, instance_path=NO_INSTANCE)
    app.config.update(MAX_CONTENT_LENGTH=config.max_body_bytes)
    install_converters(app)   # before the blueprints: their rules use <ident:…>
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    metrics = Metrics()
    service = LedgerService(ledger if ledger is not None else FabricLedger(config), config, metrics)
    app.extensions["ipledger"] = AppState(config=config, keys=keys, service=service, metrics=metrics)
    app.extensions["ipledger_openapi"] = openapi  # the document the docs routes serve

    app.register_blueprint(events.bp)  # each blueprint carries its prefix (/api/v1; health: the root)
    app.register_blueprint(queries.bp)
    app.register_blueprint(docs.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(live.bp)  # the live feed, alerts across authorisations, webhooks, audit, reports
    install_dashboard(app)  # their live services, and the dashboard's pages under /dashboard
    headers.install(app)  # the security headers of every response of the API (the pages' app sets its own)

    @app.get("/")
    def index():
        return redirect(f"{API_PREFIX}/docs")

    @app.before_request
    def _begin():
        g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        g.started = time.perf_counter()
        g.log_extra = {}
        if request.path.startswith(API_PREFIX + "/"):
            refuse_repeated_parameters()   # ?as_of=…&as_of=… is a 400, not the first one's answer
            refuse_undocumented_parameters()   # ?period-end=… too, not the answer without it

    @app.after_request
    def _end(response):
        request_id = getattr(g, "request_id", None) or request_id_from(None)
        response.headers[REQUEST_ID_HEADER] = request_id
        route = route_label(request.url_rule)
        elapsed = time.perf_counter() - getattr(g, "started", time.perf_counter())
        metrics.observe_request(request.method, request.url_rule, response.status_code, elapsed)  # bounded labels
        principal = getattr(g, "principal", None)
        extra = {"request_id": request_id, "method": request.method[:32], "path": request.path[:256], "route": route,
                 "status": response.status_code, "duration_ms": round(elapsed * 1000, 1),
                 "remote_addr": request.remote_addr, "key_id": getattr(g, "key_id", None),
                 "org": principal.org if principal else None, "role": principal.role if principal else None,
                 "problem_type": getattr(g, "problem_type", None), "code": getattr(g, "problem_code", None),
                 **getattr(g, "log_extra", {})}
        if route not in ("/healthz", "/metrics"):
            log.info("%s %s %s", request.method[:32], route, response.status_code, extra=extra)
        return response

    def refuse_undocumented_parameters() -> None:
        """A query parameter the operation does not list in the OpenAPI document is refused (common)."""
        taken = openapi.query_parameters(request.method, request.url_rule.rule) if request.url_rule else None
        if taken is not None:
            refuse_unknown_parameters(taken)

    def problem_response(problem: Problem):
        g.problem_type = problem.name
        g.problem_code = problem.extra.get("code")
        return problems.response(problem, getattr(g, "request_id", None))

    @app.errorhandler(Problem)
    def _problem(problem: Problem):
        return problem_response(problem)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        detail = {404: f"no such resource: {request.path[:200]}",
                  405: f"{request.method} is not allowed on {request.path[:200]}",
                  413: f"the body exceeds {config.max_body_bytes} bytes"}.get(exc.code or 500)
        return problem_response(problems.from_http_exception(exc, detail))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc)):
            # the feed database held locked by another process past its busy timeout: a passing condition
            errlog.warning("the feed database is locked (%s) on %s %s", exc, request.method, request.path[:200],
                           extra={"request_id": getattr(g, "request_id", None)})
            return problem_response(Problem(503, "service-unavailable", "the gateway's feed database is busy; "
                                            "send the request again", headers={"Retry-After": "5"}))
        if isinstance(exc, sqlite3.OperationalError) and "unable to open database file" in str(exc):
            # dashboard.sqlite deleted or moved away while the gateway runs: said, not a new empty database
            errlog.error("the feed database cannot be opened (%s) on %s %s: restore it, or restart the gateway (it "
                         "then reads the ledger's events again)", exc, request.method, request.path[:200],
                         extra={"request_id": getattr(g, "request_id", None)})
            return problem_response(Problem(503, "service-unavailable", "the gateway's feed database cannot be "
                                            "opened; its administrator is told (the gateway's log)",
                                            headers={"Retry-After": "60"}))
        # the type and the frames go to the log; the caller gets no internals
        errlog.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.path[:200],
                     exc_info=(type(exc), exc, exc.__traceback__),
                     extra={"request_id": getattr(g, "request_id", None)})
        return problem_response(Problem(500, "internal-error", "an internal error occurred; quote the request id "
                                                               "when reporting it"))

    return app


def close_app(app: Flask) -> None:
    """Close the app's Fabric connections (worker exit)."""
    state: AppState = app.extensions["ipledger"]
    live = app.extensions.get("ipledger_live")
    if live is not None:
        live.close()
    state.service.ledger.close()
