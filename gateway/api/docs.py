"""/api/v1/openapi.json and the documentation page /api/v1/docs: Swagger UI (interactive: every
operation, "Try it out" with an API key) above a server-rendered reference (roles, operations, each event
type's fields, problem types — readable without JavaScript too).

Swagger UI's files come from the PyPI package flask-swagger-ui (its ``dist/``: Swagger UI 5, which reads
OpenAPI 3.1) and are served by the gateway itself under ``/api/v1/docs/assets/`` — no CDN, no request
leaves for another host. They are served by a small separate WSGI app mounted there (as the dashboard's
pages are), not by routes of the API: the OpenAPI document describes the API, not these files. The page
and the files carry a strict Content-Security-Policy (scripts and styles from the gateway only, no
inline script or style)."""
from __future__ import annotations

import json
from pathlib import Path

import flask_swagger_ui
from flask import Flask, Response, abort, current_app, jsonify, render_template_string, request, send_from_directory
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from ipledger.gateway.auth import ROLES
from ipledger.gateway.config import NO_INSTANCE
from ipledger.gateway.headers import secure
from ipledger.gateway import problems
from ipledger.gateway.problems import problem_types
from ipledger.gateway.validation import COMMERCIAL_EVENTS, EVENT_TYPES
from ipledger.gateway.api.common import API_PREFIX
from ipledger.gateway.api.routes import Routes, blueprint

#: Swagger UI's distribution, as the package ships it.
SWAGGER_UI_DIR = Path(flask_swagger_ui.__file__).resolve().parent / "dist"
#: This page's own script and style sheet (next to this module).
OWN_DIR = Path(__file__).resolve().parent
ASSETS_PATH = f"{API_PREFIX}/docs/assets"
#: The only files served under ASSETS_PATH, and where each comes from.
ASSETS = {"swagger-ui-bundle.js": SWAGGER_UI_DIR, "swagger-ui.css": SWAGGER_UI_DIR,
          "favicon-32x32.png": SWAGGER_UI_DIR, "favicon-16x16.png": SWAGGER_UI_DIR,
          "docs.js": OWN_DIR, "docs.css": OWN_DIR}
#: Swagger UI sets styles through the DOM (allowed), its style sheet uses data: images; "Try it out"
#: calls the gateway itself (connect-src 'self').
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'none'; frame-ancestors 'none'; base-uri 'none'")


def _secure(response: Response) -> Response:
    """The security headers (:mod:`ipledger.gateway.headers`), with this page's CSP."""
    return secure(response, CSP)


def assets_app() -> Flask:
    """The WSGI app of ASSETS_PATH: the files of :data:`ASSETS`, nothing else (404)."""
    assets = Flask(__name__, static_folder=None, instance_path=NO_INSTANCE)

    @assets.get("/<name>")
    def asset(name: str):
        folder = ASSETS.get(name)
        if folder is None:
            abort(404)
        return send_from_directory(folder, name, max_age=3600)

    @assets.errorhandler(HTTPException)
    def _error(exc: HTTPException):   # problem+json, as every error of the gateway
        return problems.response(problems.from_http_exception(
            exc, f"{request.method} {ASSETS_PATH}{request.path[:200]}: {exc.description or exc.name}"))

    assets.after_request(_secure)
    return assets


# ipledger.gateway.openapi collects ROUTES' operations (these two among them) into the document; the views
# below read that document from the app (``app.extensions["ipledger_openapi"]``, put there by
# ipledger.gateway.app), so this module does not import the one that imports it
ROUTES = Routes(API_PREFIX)


def _openapi():
    """The app's OpenAPI module: its document, operations and who performs each act."""
    return current_app.extensions["ipledger_openapi"]


def _mount_assets(setup) -> None:
    """Serve ASSETS_PATH beside the app (registered once, with this blueprint)."""
    app = setup.app
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {ASSETS_PATH: assets_app().wsgi_app})


@ROUTES.get("/openapi.json", id="openapi", permission=None, summary="This document",
            ok={"200": ("the OpenAPI 3.1 document", None)})
def openapi_json():
    return jsonify(_openapi().openapi_document())


def _field_rows(schema: dict, components: dict) -> list[dict]:
    rows = []
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        ref = prop.get("$ref", "")
        target = components.get(ref.rsplit("/", 1)[-1], {}) if ref else prop
        kind = target.get("type") or ("const " + json.dumps(target["const"]) if "const" in target else "")
        if "enum" in target:
            kind = f"{kind or 'string'}: {' | '.join(map(str, target['enum']))}"
        constraint = target.get("pattern") or ""
        if target.get("type") == "integer" and ("minimum" in target or "maximum" in target):
            constraint = f"{target.get('minimum', '')} … {target.get('maximum', '')}"
        rows.append({"name": name, "required": name in required, "type": kind or "object",
                     "ref": ref.rsplit("/", 1)[-1] if ref else "", "constraint": constraint,
                     "description": prop.get("description") or target.get("description") or ""})
    return rows


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ipledger gateway API</title>
<link rel="stylesheet" href="{{ assets }}/swagger-ui.css">
<link rel="stylesheet" href="{{ assets }}/docs.css">
<link rel="icon" type="image/png" href="{{ assets }}/favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="{{ assets }}/favicon-16x16.png" sizes="16x16">
</head><body>
<header>
<h1>ipledger gateway API <small>v{{ version }}</small></h1>
<p>Business events of the inward-processing procedure in, Fabric transactions out. Machine-readable
description: <a href="{{ prefix }}/openapi.json">OpenAPI 3.1 document</a>. Below: every operation, to try
with an API key of your organisation (<em>Authorize</em>, then <em>Try it out</em>: real calls to this
gateway, as your organisation), then <a href="#reference">the reference</a> (roles, event fields, problems).</p>
</header>
<div id="swagger-ui" data-openapi-url="{{ prefix }}/openapi.json"></div>
<noscript><p>Without JavaScript: the reference below.</p></noscript>
<main id="reference">
<h2>Authentication</h2>
<p>Send an API key of your organisation: <code>Authorization: Bearer &lt;key&gt;</code> or
<code>X-API-Key: &lt;key&gt;</code>. The key decides the organisation the gateway acts as (its Fabric
identity); nothing in a request can change it. Roles:</p>
<table><tr><th>role</th><th>may</th></tr>
{% for role, perms in roles.items() %}<tr><td><code>{{ role }}</code></td><td>{{ perms|sort|join(', ') }}</td></tr>{% endfor %}
</table>
<h2>Operations</h2>
<table><tr><th>method</th><th>path</th><th>what</th><th>needs</th></tr>
{% for op in operations %}<tr><td class="m">{{ op.method }}</td><td><code>{{ op.path }}</code></td>
<td>{{ op.summary }}{% if op.function %} <small>(contract: <code>{{ op.function }}</code>)</small>{% endif %}</td>
<td>{{ op.permission or 'public' }}</td></tr>{% endfor %}
</table>
<h2>Events</h2>
<p><code>POST {{ prefix }}/events</code> with <code>{"type": "&lt;EventType&gt;", "event_id": …, …fields…}</code>.
Commercial data (customs value, prices) go in a separate <code>commercial</code> member (only for
{{ commercial|join(', ') }}): the gateway sends them in the transient map, never in the transaction.
Replaying an event (same <code>event_id</code>, same content) answers 200 with the original transaction.</p>
{% for ev in events %}<h3 id="{{ ev.type }}">{{ ev.type }}</h3>
<p>{{ ev.description }}</p>
<table><tr><th>field</th><th>required</th><th>type</th><th>constraint</th><th>description</th></tr>
{% for f in ev.rows %}<tr><td><code>{{ f.name }}</code></td><td>{{ 'yes' if f.required else '' }}</td>
<td>{{ f.type }}{% if f.ref %} <small>({{ f.ref }})</small>{% endif %}</td><td><code>{{ f.constraint }}</code></td>
<td>{{ f.description }}</td></tr>{% endfor %}</table>
<details><summary>JSON Schema</summary><pre>{{ ev.schema }}</pre></details>
{% endfor %}
<h2>Problems</h2>
<p>Every error is <code>application/problem+json</code> (RFC 9457) with <code>type</code>, <code>title</code>,
<code>status</code>, <code>detail</code>, <code>instance</code> (the request id), and for refusals by the contract
its <code>code</code> and <code>details</code>.</p>
<table><tr><th>type</th><th>status</th><th>contract code</th></tr>
{% for uri, p in problems.items() %}<tr><td><code>{{ uri }}</code></td><td>{{ p.status }}</td><td>{{ p.code or '' }}</td></tr>{% endfor %}
</table>
</main>
<script src="{{ assets }}/swagger-ui-bundle.js"></script>
<script src="{{ assets }}/docs.js"></script>
</body></html>"""


@ROUTES.get("/docs", id="docs", permission=None, summary="Browsable documentation (HTML)",
            ok={"200": ("HTML page", None)}, media="text/html")
def docs_page():
    openapi = _openapi()
    doc = openapi.openapi_document()
    components = doc["components"]["schemas"]
    events = []
    for t in EVENT_TYPES:
        schema = components[t]
        events.append({"type": t, "description": schema.get("description", ""), "rows": _field_rows(schema, components),
                       "schema": json.dumps(schema, indent=2)})
    html = render_template_string(
        _PAGE, version=doc["info"]["version"], prefix=API_PREFIX, assets=ASSETS_PATH, roles=ROLES,
        operations=openapi.OPERATIONS, events=events, commercial=sorted(COMMERCIAL_EVENTS), problems=problem_types(),
        performed_by=openapi.PERFORMED_BY)
    return _secure(Response(html, mimetype="text/html"))


bp = blueprint("docs", __name__, ROUTES)
bp.record_once(_mount_assets)
