"""What one request may make a gateway worker hold or compute is bounded before the work starts: a body of
megabytes of ``[]`` is refused before it becomes millions of Python lists; a route whose body names one id takes a
few kilobytes; an event of a thousand wrong items is walked for the twenty violations a refusal lists, not to its
end; and the nonce key, like the session key, is a file of its own, never a link."""
from __future__ import annotations

import os

import pytest

from ipledger.chaincode.contract import schemas
from ipledger.gateway import jsonread
from ipledger.gateway.api.common import SMALL_BODY_BYTES

from .conftest import bearer

EVENTS = "/api/v1/events"


def test_a_body_of_more_arrays_and_objects_than_any_event_has_is_refused_before_it_is_parsed(as_org, ledger):
    many = b"[" + b"[]," * jsonread.MAX_CONTAINERS + b"[]]"          # 300 KB: far below the body limit
    r = as_org("OperatorMSP").post(EVENTS, data=many, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json["type"].endswith("/bad-request"), r.json
    assert f"more than {jsonread.MAX_CONTAINERS} arrays and objects" in r.json["detail"]
    assert ledger.submits == []
    with pytest.raises(jsonread.Unreadable, match="arrays and objects in one JSON text"):
        jsonread.loads("[" + "{}," * jsonread.MAX_CONTAINERS + "{}]")
    # a batch of usual events is far from the bound
    assert jsonread.loads("[" + ",".join(['{"inputs": [{"lot_id": "L1", "qty": 1}], "outputs": [{}, {}]}'] * 500)
                          + "]")


def test_a_route_whose_body_names_one_id_takes_a_few_kilobytes(client, keys, ledger):
    """POST /dashboard/authorisations needs only the read permission: its body, ``{"authorisation_id": …}``, is
    capped far below the events' 8 MiB, and refused before it is read when its length says so."""
    viewer = bearer(keys[("BrokerMSP", "viewer")])
    padded = b'{"authorisation_id": "FRIPO000001"' + b" " * SMALL_BODY_BYTES + b"}"
    r = client.post("/api/v1/dashboard/authorisations", data=padded,
                    headers={**viewer, "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json["type"].endswith("/payload-too-large"), r.json
    assert str(SMALL_BODY_BYTES) in r.json["detail"]
    r = client.post("/api/v1/dashboard/authorisations", json={"authorisation_id": "FR"},
                    headers=viewer)
    assert r.status_code == 400   # read and judged as before


def test_an_event_of_a_thousand_wrong_items_is_walked_for_the_violations_a_refusal_lists(as_org, ledger):
    grant = {"authorisation_id": "FRIPO000001", "holder_eori": "FR12345678901234", "supervising_office": "FR000110",
             "valid_from": "2026-01-01", "valid_to": "2027-01-01", "sites": ["S1"], "input_goods": [{}] * 200,
             "processed_products": [{}] * 200, "yield_rates": [{}] * 1000, "discharge_period_days": 180,
             "yield_warn_pct": 1, "yield_block_pct": 2, "broker_mandates": []}
    everything = schemas.errors("GrantAuthorisation", {"event_id": "g", "occurred_at": "2026-03-02T09:00:00Z",
                                                       **grant}, limit=None)
    assert len(everything) > 1000
    listed = schemas.errors("GrantAuthorisation", {"event_id": "g", "occurred_at": "2026-03-02T09:00:00Z", **grant})
    assert len(listed) == schemas.MAX_ERRORS and all(e in everything for e in listed)
    r = as_org("CustomsMSP").post(EVENTS, json={"type": "GrantAuthorisation", "event_id": "g",
                                                "occurred_at": "2026-03-02T09:00:00Z", **grant})
    assert r.status_code == 400 and len(r.json["errors"]) == schemas.MAX_ERRORS
    assert ledger.submits == []


def test_a_nonce_key_that_is_a_link_is_refused_as_the_session_key_is(tmp_path):
    from ipledger.gateway.dashboard.live import SessionKeyError, session_key
    from ipledger.gateway.validation import NonceKeyError, check_nonce_key
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    check_nonce_key(elsewhere / "nonce.key")                  # a key of its own: made, 0600
    session_key(elsewhere / "session.key")
    gateway = tmp_path / "gateway"
    gateway.mkdir(mode=0o700)
    for name in ("nonce.key", "session.key"):
        os.symlink(elsewhere / name, gateway / name)
    with pytest.raises(NonceKeyError, match="not a regular file"):
        check_nonce_key(gateway / "nonce.key")
    with pytest.raises(SessionKeyError, match="not a regular file"):
        session_key(gateway / "session.key")
    check_nonce_key(elsewhere / "nonce.key")                  # the file itself is still fine
