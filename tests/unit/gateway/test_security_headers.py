"""The security headers are on every response of the gateway — the API's, the dashboard's pages, their error
pages (which show the sign-out form and its CSRF token) and static files —, with HSTS over HTTPS."""
from __future__ import annotations

import pytest

from ipledger.gateway.dashboard.ui import CSP as PAGES_CSP
from ipledger.gateway.headers import API_CSP

from ..dashboard.signin import sign_in


def _secured(response, csp: str) -> None:
    headers = response.headers
    assert headers.get("Content-Security-Policy") == csp, (response.status_code, dict(headers))
    assert "frame-ancestors 'none'" in csp
    assert headers.get("X-Frame-Options") == "DENY"
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert headers.get("Referrer-Policy") == "same-origin"


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/api/v1/openapi.json", 200),
    ("GET", "/healthz", 200),
    ("GET", "/api/v1/feed", 401),
    ("GET", "/api/v1/no-such-thing", 404),
    ("DELETE", "/api/v1/events", 405),
    ("GET", "/", 302),
])
def test_every_api_response_is_neither_sniffed_nor_framed(client, method, path, status):
    r = client.open(path, method=method)
    assert r.status_code == status
    _secured(r, API_CSP)


def test_the_docs_keep_their_own_policy(client):
    from ipledger.gateway.api import docs
    _secured(client.get("/api/v1/docs"), docs.CSP)
    _secured(client.get("/api/v1/docs/assets/docs.js"), docs.CSP)
    _secured(client.get("/api/v1/docs/assets/nothing.js"), docs.CSP)


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/dashboard/login", 200),
    ("GET", "/dashboard/no-such-page", 404),
    ("PUT", "/dashboard/login", 405),
    ("GET", "/dashboard/static/live.js", 200),
])
def test_every_dashboard_response_has_the_pages_policy_error_pages_too(client, keys, method, path, status):
    assert sign_in(client, keys[("OperatorMSP", "viewer")]).status_code == 302
    r = client.open(path, method=method)
    assert r.status_code == status
    if r.mimetype == "text/html" and status >= 400:
        assert 'name="csrf"' in r.get_data(as_text=True)   # the sign-out form: a page worth framing
    _secured(r, PAGES_CSP)


@pytest.mark.parametrize("path", ["/api/v1/openapi.json", "/api/v1/no-such-thing", "/dashboard/login",
                                  "/dashboard/no-such-page", "/api/v1/docs/assets/docs.js"])
def test_hsts_over_https_only(client, path):
    assert client.get(path, base_url="https://localhost").headers.get("Strict-Transport-Security") \
        == "max-age=31536000"
    assert "Strict-Transport-Security" not in client.get(path).headers
