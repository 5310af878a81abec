"""The dashboard, the live feed, alerts across authorisations, webhooks, audit trails and reports.

    from gateway.dashboard import install
    install(app)          # called by gateway.app.create_app

REST routes under ``/api/v1`` (API key; documented in the OpenAPI document, see :mod:`.openapi_ops`);
the pages are a separate small Flask app mounted at ``/dashboard`` (session cookie after logging in
with an API key). See gateway/README.md § Dashboard.
"""
from __future__ import annotations

from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from . import openapi_ops  # noqa: F401  (registers the REST operations in the OpenAPI document)
from .live import Live


def install(app: Flask, live: Live | None = None) -> Live:
    from ..api.common import API_PREFIX
    from . import api, ui
    state = app.extensions["ipledger"]
    live = live or Live(state.config, state.service)
    app.extensions["ipledger_live"] = live
    app.register_blueprint(api.bp, url_prefix=API_PREFIX)

    pages = Flask("gateway.dashboard")
    pages.extensions["ipledger"] = state
    pages.extensions["ipledger_live"] = live
    pages.json.sort_keys = False
    ui.install_session(pages, live)
    pages.register_blueprint(ui.bp)
    app.extensions["ipledger_dashboard"] = pages
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/dashboard": pages.wsgi_app})
    return live
