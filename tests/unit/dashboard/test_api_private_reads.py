"""Who may read what through the REST API: another holder's object is a 404 word for word an unknown id's, and private
answers are not kept by shared caches.

* A lot of another holder's authorisation, asked for by its id, was a 403 naming that authorisation (and a 404
  for an id not in use: whether the id was taken showed too). Now both are the same 404.
* No ``/api/v1`` answer said ``Cache-Control``/``Vary``: a shared proxy could keep a holder's lot or bill (its
  customs values) and give it to another caller.
"""
from __future__ import annotations

from ipledger.chaincode.testing import mrns

from .conftest import AUTH2, OTHER_HOLDER_MSP, place


def test_another_holders_lot_is_a_404_word_for_word_an_unknown_ids(scenario, api, keys, keystore):
    keys[(OTHER_HOLDER_MSP, "clerk")] = keystore.create(OTHER_HOLDER_MSP, "clerk")[1]
    api.post(place("L9", 10, mrns.from_unique("000000000909", mrns.IMPORT), auth_id=AUTH2), OTHER_HOLDER_MSP)
    for org in ("OperatorMSP", "BrokerMSP"):
        for path in ("/api/v1/lots/{}", "/api/v1/lots/{}/history"):
            taken, free = api.get(path.format("L9"), org), api.get(path.format("L404"), org)
            assert taken.status_code == free.status_code == 404, (org, path, taken.get_data(as_text=True))
            body, other = taken.get_json(), free.get_json()
            assert AUTH2 not in taken.get_data(as_text=True)
            assert body["detail"] == other["detail"].replace("L404", "L9")
            assert {k for k in body if k not in ("detail", "instance", "request_id")} == \
                {k for k in other if k not in ("detail", "instance", "request_id")}


def test_private_api_answers_are_not_kept_by_shared_caches(scenario, api):
    for path in ("/api/v1/lots/L1", "/api/v1/authorisations/FRIPO000001/balances",
                 "/api/v1/reports/bill-of-discharge/FRIPO000001?format=csv", "/api/v1/lots/L404"):
        r = api.get(path, "OperatorMSP")
        assert r.headers.get("Cache-Control") == "no-store", (path, r.status_code, dict(r.headers))
        assert {"Authorization", "X-API-Key"} <= {v.strip() for v in r.headers.get("Vary", "").split(",")}, path
    assert "no-store" not in (api.client.get("/api/v1/openapi.json").headers.get("Cache-Control") or "")
