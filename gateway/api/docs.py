"""/api/v1/openapi.json and a server-rendered documentation page (no CDN, no JavaScript)."""
from __future__ import annotations

import json

from flask import Blueprint, Response, jsonify, render_template_string

from ..auth import ROLES
from ..openapi import OPERATIONS, PERFORMED_BY, openapi_document
from ..problems import problem_types
from ..validation import COMMERCIAL_EVENTS, EVENT_TYPES

bp = Blueprint("docs", __name__)


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(openapi_document())


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
<style>
body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}th,td{border:1px solid #ccc;padding:.3rem .5rem;
text-align:left;vertical-align:top;font-size:.9rem}th{background:#f2f2f2}code,pre{font-family:ui-monospace,monospace}
pre{background:#f7f7f7;padding:.5rem;overflow:auto;font-size:.8rem}.m{font-weight:bold;text-transform:uppercase}
</style></head><body>
<h1>ipledger gateway API <small>v{{ version }}</small></h1>
<p>Business events of the inward-processing procedure in, Fabric transactions out. Machine-readable
description: <a href="{{ prefix }}/openapi.json">OpenAPI 3.1 document</a>.</p>
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
</body></html>"""


@bp.get("/docs")
def docs_page():
    doc = openapi_document()
    components = doc["components"]["schemas"]
    events = []
    for t in EVENT_TYPES:
        schema = components[t]
        events.append({"type": t, "description": schema.get("description", ""), "rows": _field_rows(schema, components),
                       "schema": json.dumps(schema, indent=2)})
    html = render_template_string(
        _PAGE, version=doc["info"]["version"], prefix="/api/v1", roles=ROLES, operations=OPERATIONS,
        events=events, commercial=sorted(COMMERCIAL_EVENTS), problems=problem_types(), performed_by=PERFORMED_BY)
    return Response(html, mimetype="text/html")
