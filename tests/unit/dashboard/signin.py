"""Signing in to the dashboard as a browser does: open the form (its page starts the session holding the form's
token), then post the key with that token."""
from __future__ import annotations

import re


def form_token(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def sign_in(client, key: str, **kw):
    """POST the login form of a Flask test ``client`` (``kw``: e.g. ``base_url``) after loading it; the response."""
    page = client.get("/dashboard/login", **kw)
    return client.post("/dashboard/login", data={"api_key": key, "csrf": form_token(page.get_data(as_text=True))}, **kw)
