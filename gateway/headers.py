"""The security headers of every response of the gateway: the API's, the dashboard's pages, the docs' files.

Every response gets them, error answers included (a 404 or 405 page of the dashboard shows the sign-out
form and its CSRF token: it must not be framed either), so they are set by each Flask app's own
``after_request`` — which runs for every response of the app — not by a blueprint's, which runs only
for the requests its routes matched:

* ``Content-Security-Policy``: the one a response set itself (a page's, the docs'), else :data:`API_CSP`:
  nothing to load, never framed (``frame-ancestors 'none'``);
* ``X-Frame-Options: DENY`` (browsers without ``frame-ancestors``), ``X-Content-Type-Options: nosniff``,
  ``Referrer-Policy: same-origin``;
* ``Strict-Transport-Security`` when the request came over HTTPS (the gateway's own TLS, or a TLS proxy
  on loopback that says so): the browser then uses HTTPS only for the gateway's host.
"""
from __future__ import annotations

from flask import Flask, Response, request

API_CSP = "default-src 'none'; frame-ancestors 'none'"
PUBLIC_API = frozenset({"/api/v1/openapi.json", "/api/v1/docs"})   # the API's description: the same for everyone
HSTS = "max-age=31536000"  # a year


def secure(response: Response, csp: str = API_CSP) -> Response:
    """``response`` with the security headers (those it set itself kept)."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", csp)
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", HSTS)
    if (request.path.startswith("/api/v1/") and request.path not in PUBLIC_API) or request.path == "/metrics":
        # one party's data (customs values too; /metrics: its business volumes): never kept by a shared cache,
        # never given to another key
        headers.setdefault("Cache-Control", "no-store")
        vary = [v.strip() for line in headers.get_all("Vary") for v in line.split(",") if v.strip()]
        headers["Vary"] = ", ".join(vary + [v for v in ("Authorization", "X-API-Key") if v not in vary])
    return response


def install(app: Flask, csp: str = API_CSP) -> None:
    """Every response of ``app`` gets the security headers, with ``csp`` unless it set its own."""
    app.after_request(lambda response: secure(response, csp))
