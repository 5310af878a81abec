"""The gateway's REST surface: unknown query parameters, key and authorisation-scheme refusals, 405s, and the audit CSV
and trail entries."""
from __future__ import annotations

import pytest

from ipledger.gateway import openapi

from .conftest import bearer


@pytest.mark.parametrize("url, parameter", [
    ("/api/v1/authorisations/FRIPO000001/bill-of-discharge-data?period-end=2026-12-04", "period-end"),
    ("/api/v1/authorisations/FRIPO000001/alerts?asof=2027-01-01", "asof"),
    ("/api/v1/reports/bill-of-discharge/FRIPO000001?fromat=pdf", "fromat"),
    ("/api/v1/lots/L1?org=CustomsMSP", "org"),
])
def test_a_query_parameter_the_operation_does_not_take_is_refused(client, keys, ledger, url, parameter):
    """A misspelt parameter was ignored and the question answered as if it were absent: the bill data as of now
    instead of the period's (a holder would hash the wrong document), today's alerts instead of those asked
    for, JSON instead of a PDF. It is a 400 naming it and those the operation takes; nothing is asked of the
    ledger."""
    r = client.get(url, headers=bearer(keys[("OperatorMSP", "clerk")]))
    assert r.status_code == 400 and r.mimetype == "application/problem+json", r.get_data(as_text=True)
    body = r.get_json()
    assert body["type"].endswith("/invalid-parameter") and body["parameter"] == parameter
    assert parameter in body["detail"] and "channel" in body["parameters"]
    assert ledger.evaluations == []


def test_every_parameter_an_operation_reads_is_in_the_document(client, keys):
    """What is refused as unknown is what the OpenAPI document does not list: the routes reading ``format``,
    ``limit`` and the inventory's ``authorisation_id`` list them (a route reading one it does not list would now
    refuse it)."""
    h = bearer(keys[("CustomsMSP", "viewer")])
    for url in ("/api/v1/lots/L1/audit?format=csv", "/api/v1/authorisations/FRIPO000001/audit?format=json",
                "/api/v1/reports/bill-of-discharge/FRIPO000001?format=csv",
                "/api/v1/reports/inventory?as_of=2026-03-03&format=json&authorisation_id=FRIPO000001",
                "/api/v1/webhooks/deliveries?limit=5&status=FAILED", "/api/v1/feed?limit=5"):
        r = client.get(url, headers=h)
        assert r.status_code != 400 or r.get_json().get("parameter") not in ("format", "limit", "authorisation_id"), url
    assert {"format", "authorisation_id", "as_of", "channel"} <= openapi.query_parameters("GET", "/api/v1/reports/inventory")
    assert openapi.query_parameters("GET", "/dashboard/") is None      # not an operation: not checked


def test_a_key_this_gateway_never_made_is_told_apart_from_a_revoked_one(client, keys, keystore):
    """The operator's key sent to customs' gateway (README's import example named customs' address) got "unknown
    or revoked API key", as if the key were bad. A key id this gateway never made says whose gateway it is and
    that keys work only on their own organisation's; a revoked key is still "unknown or revoked"."""
    elsewhere = "ipk_0123456789ab_" + "A" * 43
    r = client.get("/api/v1/lots/L1", headers=bearer(elsewhere))
    assert r.status_code == 401 and "works only on the gateway of the organisation it was made for" in r.json["detail"]
    assert "CustomsMSP" in r.json["detail"]
    key = keys[("OperatorMSP", "clerk")]
    keystore.revoke(key.split("_")[1])
    r = client.get("/api/v1/lots/L1", headers=bearer(key))
    assert r.status_code == 401 and r.json["detail"] == "unknown or revoked API key"


def test_a_pattern_in_an_error_reads_as_written(client, keys):
    """A refused value quoted its pattern with the guard every pattern ends with, escaped twice in JSON:
    ``'^[0-9a-f]{64}$(?!\\\\\\\\n)'``. The message shows ``^[0-9a-f]{64}$``."""
    from ipledger.chaincode.contract import schemas
    (error,) = schemas.errors("SubmitBillOfDischarge", {
        "event_id": "e1", "occurred_at": "2026-01-01T00:00:00Z", "authorisation_id": "FRIPO000001",
        "period_end": "2026-01-01", "document_hash": "00"})
    assert error == {"path": "/document_hash", "message": "'00' does not match '^[0-9a-f]{64}$'"}
    r = client.get("/api/v1/authorisations/not-one", headers=bearer(keys[("OperatorMSP", "clerk")]))
    assert r.status_code == 400 and r.json["detail"].endswith("(pattern ^[A-Z]{2}IPO[A-Z0-9]{1,29}$)")


def test_another_authorization_scheme_is_named_in_the_refusal(client, keys):
    """``Authorization: Basic …`` beside a valid ``X-API-Key`` was told "an API key is required", although one was
    sent: the refusal now says which header is not read and why."""
    r = client.get("/api/v1/lots/L1", headers={"Authorization": "Basic dXNlcjpwYXNz",
                                               "X-API-Key": keys[("OperatorMSP", "clerk")]})
    assert r.status_code == 401 and "names the scheme 'Basic'" in r.json["detail"]


def test_the_known_authorisations_take_no_other_member(client, keys, ledger):
    r = client.post("/api/v1/dashboard/authorisations", json={"authorisation_id": "FRIPO000001", "x": 1},
                    headers=bearer(keys[("CustomsMSP", "viewer")]))
    assert r.status_code == 400 and ledger.evaluations == []


def test_every_405_names_what_is_allowed(client):
    """The docs' files answered a 405 without ``Allow`` (each part built its problem+json answer itself, some
    without the problem's headers): one answer for every part now."""
    r = client.post("/api/v1/docs/assets/swagger-ui.css")
    assert r.status_code == 405 and r.mimetype == "application/problem+json"
    assert "GET" in r.headers["Allow"]


def test_an_audit_csv_gives_an_empty_list_as_an_empty_cell():
    """The audit CSV wrote one lot as ``S1`` but none as ``[]``: lists of ids are ``;``-separated, none empty."""
    from ipledger.gateway import audit
    entry = {"tx_id": "t", "lots": [], "batches": ["B1", "B2"], "endorsers": [], "endorsing_orgs": []}
    header, row = audit.to_csv([entry]).splitlines()
    cells = dict(zip(header.split(","), row.split(",")))
    assert cells["lots"] == "" and cells["batches"] == "B1;B2" and cells["endorsing_orgs"] == ""


def test_a_trail_entry_another_authorisations_act_wrote_names_no_submitter_nor_endorsers():
    """The entry a sender's 5151 exit writes in the receiving authorisation's log carries no submitter (another
    company's clerk); the audit trail put it back from the block — creator subject, endorsers. It leaves it out."""
    from ipledger.gateway.audit import AuditTrail

    class Service:
        def with_blocks(self, org, raw, channel):
            return [{**e, "block_number": 7} for e in raw]

    class Store:
        def endorsements_of(self, tx_ids):
            return {tx_id: {"creator": {"msp_id": "OperatorMSP", "subject": "CN=User1@operatormsp"},
                            "endorsing_orgs": ["CustomsMSP", "OperatorMSP"], "endorsers": [{"msp_id": "OperatorMSP"}]}
                    for tx_id in tx_ids}

    trail = AuditTrail(Service(), Store(), reader=None)
    own = {"tx_id": "a" * 64, "event_type": "PlaceUnderProcedure", "submitted_by": {"msp_id": "PlantBMSP"}}
    foreign = {"tx_id": "b" * 64, "event_type": "ExitGoods", "submitted_by": {}, "by_authorisation": "FRIPO000001",
               "event": {"mrn": "m", "item_no": 1, "procedure": "5151"}}
    mine, theirs = trail._entries("PlantBMSP", [own, foreign])
    assert mine["submitter_subject"] == "CN=User1@operatormsp" and mine["endorsing_orgs"]
    assert theirs["submitting_org"] is None and theirs["submitter_subject"] is None
    assert theirs["endorsers"] is None and theirs["endorsing_orgs"] is None



def test_the_gateway_reads_the_saved_consortium_as_the_network_commands_do(tmp_path):
    """The gateway read the consortium file saved in the state directory by a copy of the network's reader without
    its check: the saved file gone, organisations made from it present, it quietly took the shipped file (other
    ports, hosts). Both read it through one function and refuse it."""
    from ipledger.gateway.config import ConfigError, gateway_dir_of
    from ipledger.network import consortium
    from ipledger.network.layout import Layout
    lay = Layout(tmp_path)
    org = consortium.load().org("OperatorMSP")
    (lay.org_dir(org) / "ca").mkdir(parents=True)   # the operator's own CA key: an organisation made here
    (lay.org_dir(org) / "ca" / "priv_sk").write_bytes(b"")
    with pytest.raises(ConfigError, match="is missing, but"):
        gateway_dir_of(tmp_path, "OperatorMSP")
