"""The documentation page /api/v1/docs: Swagger UI from the PyPI package (flask-swagger-ui), its files
served by the gateway itself, nothing fetched from another host, a strict Content-Security-Policy."""
from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from ipledger.gateway.api import docs

ASSETS = "/api/v1/docs/assets/"


class Refs(HTMLParser):
    """Every URL the page refers to (by tag and attribute), inline scripts and inline styles."""

    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.inline_scripts, self.inline_styles = 0, 0
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href", "action", "data-openapi-url"):
            if attrs.get(name) is not None:
                self.refs.append((tag, name, attrs[name]))
        if "style" in attrs or tag == "style":
            self.inline_styles += 1
        self._in_script = tag == "script"
        if tag == "script" and "src" not in attrs:
            self.inline_scripts += 1

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag):
        self._in_script = False


@pytest.fixture
def page(client):
    r = client.get("/api/v1/docs")
    assert r.status_code == 200 and r.mimetype == "text/html"
    refs = Refs()
    refs.feed(r.get_data(as_text=True))
    return r, refs


def test_the_page_loads_swagger_ui_and_its_own_script_from_the_gateway(page, client):
    r, refs = page
    scripts = [url for tag, _, url in refs.refs if tag == "script"]
    styles = [url for tag, name, url in refs.refs if tag == "link" and name == "href"]
    assert scripts == [ASSETS + "swagger-ui-bundle.js", ASSETS + "docs.js"]
    assert ASSETS + "swagger-ui.css" in styles and ASSETS + "docs.css" in styles
    for url, mimetype in [*((u, "text/javascript") for u in scripts), *((u, "text/css") for u in styles
                                                                          if u.endswith(".css"))]:
        asset = client.get(url)
        assert asset.status_code == 200 and asset.mimetype == mimetype and len(asset.data) > 100, url
        assert asset.headers["Content-Security-Policy"] == docs.CSP
        assert asset.headers["X-Content-Type-Options"] == "nosniff"
    assert b"SwaggerUIBundle" in client.get(ASSETS + "swagger-ui-bundle.js").data
    # the page reads the OpenAPI document from its usual URL
    assert ("div", "data-openapi-url", "/api/v1/openapi.json") in refs.refs
    assert client.get("/api/v1/openapi.json").json["openapi"].startswith("3.1")


def test_the_html_refers_to_no_other_host(page):
    r, refs = page
    html = r.get_data(as_text=True)
    for tag, name, url in refs.refs:
        assert url.startswith(("/", "#")) and not url.startswith("//"), (tag, name, url)
    # the only absolute URLs: the problem types' identifiers, printed as text in the reference
    assert {u.split("/problems/")[0] for u in re.findall(r"https?://[^\s\"'<>]+", html)} == {"https://ipledger.example"}
    assert "cdn" not in html.lower() and "unpkg" not in html and "jsdelivr" not in html


def test_a_strict_csp_that_swagger_ui_works_under(page):
    r, refs = page
    csp = dict(part.strip().split(" ", 1) for part in r.headers["Content-Security-Policy"].split(";"))
    assert csp["default-src"] == "'none'" and csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
    assert csp["connect-src"] == "'self'" and csp["frame-ancestors"] == "'none'"   # "Try it out" calls the gateway
    assert "unsafe" not in r.headers["Content-Security-Policy"]
    assert refs.inline_scripts == 0 and refs.inline_styles == 0      # all of it from files under ASSETS
    own = docs.OWN_DIR / "docs.js"
    assert "http" not in own.read_text()                             # the script names no host either


def test_only_the_listed_files_are_served(client, app):
    for name in ("index.html", "oauth2-redirect.html", "swagger-initializer.js", "..%2Fdocs.py", "../docs.py",
                 "swagger-ui-standalone-preset.js", "docs.py"):
        assert client.get(ASSETS + name).status_code == 404, name
    assert client.get(ASSETS).status_code == 404
    # not routes of the API: the OpenAPI document stays the API's description (test_openapi.py checks the rest)
    assert not [rule.rule for rule in app.url_map.iter_rules() if rule.rule.startswith(ASSETS)]


def test_the_package_ships_swagger_ui_5_which_reads_openapi_3_1():
    version = (docs.SWAGGER_UI_DIR / "VERSION").read_text().strip()
    assert int(version.lstrip("v").split(".")[0]) >= 5, version      # Swagger UI 4 refuses "openapi: 3.1.0"
    for name, folder in docs.ASSETS.items():
        assert (folder / name).is_file(), name


def test_errors_of_the_docs_assets_are_problem_json(client):
    for method, path, status in (("get", ASSETS + "nope.js", 404), ("post", ASSETS + "docs.js", 405)):
        r = getattr(client, method)(path)
        assert r.status_code == status and r.mimetype == "application/problem+json", (path, r.mimetype)
