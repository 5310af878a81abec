"""Signing in to the dashboard as a browser does: open the form (its page starts the session holding the form's
token), then post the key with that token; a signed-in browser and a page as it reads it."""
from __future__ import annotations

import re


def form_token(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def sign_in(client, key: str, **kw):
    """POST the login form of a Flask test ``client`` (``kw``: e.g. ``base_url``) after loading it; the response."""
    page = client.get("/dashboard/login", **kw)
    return client.post("/dashboard/login", data={"api_key": key, "csrf": form_token(page.get_data(as_text=True))}, **kw)


def browser(app, keys, org="CustomsMSP"):
    """A test client of ``app`` signed in with ``org``'s viewer key (``keys`` as conftest.py's fixture)."""
    b = app.test_client()
    assert sign_in(b, keys[(org, "viewer")]).status_code == 302
    return b


def page(app, keys, path, org="CustomsMSP") -> str:
    """The HTML of ``path`` as ``org``'s signed-in viewer reads it (asserting a 200)."""
    r = browser(app, keys, org).get(path)
    assert r.status_code == 200, r.status_code
    return r.get_data(as_text=True)
