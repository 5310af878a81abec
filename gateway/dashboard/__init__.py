"""The dashboard, and the live services behind it and behind the live feed, alerts across authorisations,
webhooks, audit trails and reports.

    from ipledger.gateway.dashboard import install
    install(app)          # called by ipledger.gateway.app.create_app

The REST routes of those services are under ``/api/v1`` in :mod:`ipledger.gateway.api` (feed, alerts, audit,
reports: API key, documented in the OpenAPI document); the pages are a separate small Flask app mounted
at ``/dashboard`` (session cookie after logging in with an API key; the pages of lots and batches are
:mod:`ipledger.gateway.dashboard.goods`), with the downloads they link — the API's
documents, for the session (:mod:`ipledger.gateway.dashboard.downloads`). See gateway/README.md § Dashboard.
"""
from __future__ import annotations

from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from ipledger.gateway.api.common import install_converters
from ipledger.gateway.dashboard.live import Live
from ipledger.gateway.config import NO_INSTANCE

# the most a page's form may send: a key, a CSRF token and an id are a few hundred bytes
PAGES_MAX_BODY_BYTES = 64 * 1024


def install(app: Flask, live: Live | None = None) -> Live:
    """The app's live services (``app.extensions["ipledger_live"]``, read by the routes of
    :mod:`ipledger.gateway.api.live`) and the pages at ``/dashboard``."""
    from ipledger.gateway.dashboard import downloads, goods, ui
    state = app.extensions["ipledger"]
    live = live or Live(state.config, state.service)
    app.extensions["ipledger_live"] = live

    pages = Flask(__name__, instance_path=NO_INSTANCE)
    # the pages' forms carry a key, a token, an id: a cap far below the API's (a url-encoded form of millions of
    # empty fields would otherwise cost hundreds of MB to parse, before any check); without a cap a chunked body
    # (no Content-Length) would be read whole
    pages.config.update(MAX_CONTENT_LENGTH=min(PAGES_MAX_BODY_BYTES, state.config.max_body_bytes))
    install_converters(pages)
    pages.url_map.converters["ident"] = ui.SegmentIdentifier   # its links: an id's '/' as %2F (one segment)
    pages.extensions["ipledger"] = state
    pages.extensions["ipledger_live"] = live
    pages.json.sort_keys = False
    pages.json.ensure_ascii = False   # as the API's app: a download's JSON is the API's, byte for byte
    ui.install_session(pages, live)
    ui.install_access_log(pages)
    pages.register_blueprint(ui.bp)
    pages.register_blueprint(goods.bp)       # the lot and batch pages
    pages.register_blueprint(downloads.bp)   # the documents the pages link, for the session (not the API's routes)
    app.extensions["ipledger_dashboard"] = pages
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/dashboard": pages.wsgi_app})
    return live
