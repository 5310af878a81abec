"""What one request may make a gateway worker hold or compute is bounded before the work starts: a body of
megabytes of ``[]`` is refused before it becomes millions of Python lists; a route whose body names one id takes a
few kilobytes; an event of a thousand wrong items is walked for the twenty violations a refusal lists, not to its
end; and the nonce key, like the session key, is a file of its own, never a link."""
from __future__ import annotations

import json
import os

import pytest

from ipledger.chaincode.contract import schemas
from ipledger.gateway import jsonread
from ipledger.gateway.api.common import SMALL_BODY_BYTES

from .conftest import bearer

EVENTS = "/api/v1/events"
WRONG = {"description": "an item of nothing it needs"}


def test_a_body_denser_in_arrays_and_objects_than_events_is_refused_before_it_is_parsed(as_org, ledger):
    many = b"[" + b"[]," * 100_000 + b"[]]"                          # 300 KB: far below the body limit
    r = as_org("OperatorMSP").post(EVENTS, data=many, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json["type"].endswith("/bad-request"), r.json
    assert "more arrays and objects than" in r.json["detail"]
    assert ledger.submits == []
    for flood in ("[" + "{}," * 10_000 + "{}]", "[" * 5_000 + "]" * 5_000):
        with pytest.raises(jsonread.Unreadable, match="more arrays and objects than"):
            jsonread.loads(flood)


def test_the_densest_events_the_schemas_allow_are_read(as_org):
    """The bound never refuses events: a grant with every array at its maxItems, and a batch of 500 operations of
    200 inputs each (3 MB), compact JSON."""
    compact = {"separators": (",", ":")}
    grant = {"type": "GrantAuthorisation", "event_id": "g", "sites": ["S"] * 100, "broker_mandates": ["FR1"] * 100,
             "input_goods": [{"cn": "4012", "unit": "kg", "max_qty": 1, "description": "d"}] * 200,
             "processed_products": [{"cn": "4012", "kind": "MAIN", "unit": "kg"}] * 200,
             "yield_rates": [{"input_cn": "4012", "output_cn": "4012", "output_per_input": 1}] * 1000}
    assert not jsonread.too_many_containers(json.dumps(grant, **compact))
    batch = {"events": [{"type": "RecordProcessing", "event_id": f"op-{i}", "authorisation_id": "FRIPO000001",
                         "operation_id": f"OP-{i}", "site": "S", "inputs": [{"lot_id": "A", "qty": 1}] * 200,
                         "outputs": [{"cn": "40121200", "qty": 200, "unit": "p/st", "kind": "MAIN"}]}
                        for i in range(500)]}
    text = json.dumps(batch, **compact)
    assert len(text) > 2_000_000 and not jsonread.too_many_containers(text)
    assert len(jsonread.loads(text)["events"]) == 500


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
             "valid_from": "2026-01-01", "valid_to": "2027-01-01", "sites": ["S1"], "input_goods": [WRONG] * 200,
             "processed_products": [WRONG] * 200, "yield_rates": [WRONG] * 1000, "discharge_period_days": 180,
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
    for name in ("nonce.key", "session.key"):                  # a link to nothing: named, not a traceback
        (elsewhere / name).unlink()
    with pytest.raises(NonceKeyError, match="not a regular file"):
        check_nonce_key(gateway / "nonce.key")
    with pytest.raises(SessionKeyError, match="not a regular file"):
        session_key(gateway / "session.key")
