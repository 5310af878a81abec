"""The dashboard's forms carry a key, a token and an id: a page takes a body of a few tens of kilobytes, so a
form of millions of empty fields is refused before it is parsed (it cost hundreds of MB under the API's 8 MiB cap).
The Members link follows the deployment's customs MSP, whatever it is named, as the page itself does."""
from __future__ import annotations

from ipledger.gateway.app import create_app
from ipledger.gateway.dashboard import PAGES_MAX_BODY_BYTES

from .signin import sign_in


def test_a_huge_sign_in_form_is_refused_before_it_is_read(app, keys):
    client = app.test_client()
    body = b"a=&" * (PAGES_MAX_BODY_BYTES // 3 + 1)
    r = client.post("/dashboard/login", data=body, content_type="application/x-www-form-urlencoded")
    assert r.status_code == 413
    assert sign_in(app.test_client(), keys[("OperatorMSP", "viewer")]).status_code == 302   # a real one still works


def test_the_members_link_follows_the_deployments_customs(config, ledger, keys):
    app = create_app(config.with_(customs_msp="OperatorMSP"), ledger=ledger)   # a deployment whose customs is it
    try:
        for org, shown in (("OperatorMSP", True), ("CustomsMSP", False)):
            client = app.test_client()
            sign_in(client, keys[(org, "viewer")])
            html = client.get("/dashboard/").get_data(as_text=True)
            assert ('href="/dashboard/members"' in html) is shown, org
            assert client.get("/dashboard/members").status_code == (200 if shown else 403)
    finally:
        app.extensions["ipledger_live"].close()
