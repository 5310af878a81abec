"""The REST API against its own OpenAPI document (the real contract in memory, tests/unit/dashboard/conftest.py): what
an operation answers is what the document lists."""
from __future__ import annotations

import pytest

from .conftest import AUTH, SITE1, SITE2, bearer, body


def _op(client, method, path):
    return client.get("/api/v1/openapi.json").get_json()["paths"][path][method]


def test_the_stream_is_documented_as_an_event_stream_with_its_cap(client, keys, scenario):
    r = client.get("/api/v1/events/stream", headers={**bearer(keys[("OperatorMSP", "viewer")]),
                                                     "Accept": "text/event-stream"}, buffered=False)
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    r.close()
    responses = _op(client, "get", "/api/v1/events/stream")["responses"]
    assert list(responses["200"]["content"]) == ["text/event-stream"]
    assert "Retry-After" in responses["429"]["headers"]


def test_posting_a_known_authorisation_documents_its_body_refusals(client, keys, scenario):
    r = client.post("/api/v1/dashboard/authorisations", data=b'{"authorisation_id": "FRIPO000001"}',
                    content_type="text/plain", headers=bearer(keys[("OperatorMSP", "viewer")]))
    assert r.status_code == 415
    assert {"413", "415"} <= set(_op(client, "post", "/api/v1/dashboard/authorisations")["responses"])


@pytest.mark.parametrize("path", ["/api/v1/openapi.json", "/api/v1/docs"])
def test_a_public_operation_documents_the_400_of_an_unknown_parameter(client, path):
    assert client.get(path + "?x=1").status_code == 400
    assert "400" in _op(client, "get", path)["responses"]


def test_every_operation_documents_what_the_http_server_refuses(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert all({"414", "417", "431", "501"} <= set(op["responses"]) for ops in paths.values() for op in ops.values())


def test_the_inventory_refuses_a_bad_format_before_asking_the_ledger(client, keys, scenario, ledger):
    asked = []
    real = ledger.evaluate

    def spy(org, function, args, **kw):
        asked.append(function)
        return real(org, function, args, **kw)
    ledger.evaluate = spy
    r = client.get("/api/v1/reports/inventory?as_of=2030-01-01&format=xml",
                   headers=bearer(keys[("CustomsMSP", "viewer")]))
    assert r.status_code == 400 and r.get_json()["parameter"] == "format"
    assert asked == []


def test_a_batch_for_a_channel_not_served_is_refused_whole_not_item_by_item(client, keys, scenario, ledger):
    """A channel the gateway does not serve is 400 unknown-channel (gateway/README.md): for a batch too — each item
    reported REFUSED would be a final answer an ERP records for events it must send again."""
    ev = body("MoveGoods", "rb-bc-1", authorisation_id=AUTH, lot_id="L1", quantity=1, from_site=SITE2, to_site=SITE1)
    r = client.post("/api/v1/events/batch?channel=other", json=[ev, dict(ev, event_id="rb-bc-2")],
                    headers=bearer(keys[("OperatorMSP", "clerk")]))
    assert r.status_code == 400 and r.get_json()["type"].endswith("/unknown-channel"), r.get_json()
