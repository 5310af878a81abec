"""The dashboard, and the live services behind it and behind the live feed, alerts across authorisations,
webhooks, audit trails and reports.

    from gateway.dashboard import install
    install(app)          # called by gateway.app.create_app

The REST routes of those services are under ``/api/v1`` in :mod:`gateway.api` (feed, alerts, audit,
reports: API key, documented in the OpenAPI document); the pages are a separate small Flask app mounted
at ``/dashboard`` (session cookie after logging in with an API key). See gateway/README.md § Dashboard.
"""
from __future__ import annotations

from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from .live import Live


def install(app: Flask, live: Live | None = None) -> Live:
    """The app's live services (``app.extensions["ipledger_live"]``, read by the routes of
    :mod:`gateway.api.live`) and the pages at ``/dashboard``."""
    from . import ui
    state = app.extensions["ipledger"]
    live = live or Live(state.config, state.service)
    app.extensions["ipledger_live"] = live

    pages = Flask("gateway.dashboard")
    pages.extensions["ipledger"] = state
    pages.extensions["ipledger_live"] = live
    pages.json.sort_keys = False
    ui.install_session(pages, live)
    pages.register_blueprint(ui.bp)
    app.extensions["ipledger_dashboard"] = pages
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/dashboard": pages.wsgi_app})
    return live
