"""With the real contract in memory: the ERP's resend of an event that was recorded comes back as the original result,
also when the caller's standing changed in between. A 403 would tell the ERP "refused, nothing changed" about an
event that is on the ledger."""
from __future__ import annotations

import pytest

from ipledger.gateway.app import create_app

from tests.unit.dashboard.conftest import AUTH, BROKER_EORI, grant, place
from tests.unit.dashboard.contract_ledger import ContractLedger

from .conftest import bearer

EVENTS = "/api/v1/events"


@pytest.fixture
def contract_app(tmp_path, keys, config):
    import dataclasses
    return create_app(dataclasses.replace(config, customs_msp="CustomsMSP"), ledger=ContractLedger())


def test_a_placement_is_recorded_then_its_resend_is_the_original(contract_app, keys):
    client = contract_app.test_client()
    assert client.post(EVENTS, json=grant(), headers=bearer(keys[("CustomsMSP", "clerk")])).status_code == 201
    placement = place("L1", 1000, "26FR000110000001R8")
    first = client.post(EVENTS, json=placement, headers=bearer(keys[("BrokerMSP", "clerk")]))
    assert first.status_code == 201, first.json
    again = client.post(EVENTS, json=placement, headers=bearer(keys[("BrokerMSP", "clerk")]))
    assert again.status_code == 200 and again.json["tx_id"] == first.json["tx_id"]


def test_the_resend_of_a_recorded_placement_is_the_original_after_the_mandate_ended(contract_app, keys):
    client = contract_app.test_client()
    customs, broker = bearer(keys[("CustomsMSP", "clerk")]), bearer(keys[("BrokerMSP", "clerk")])
    granted = grant()
    assert client.post(EVENTS, json=granted, headers=customs).status_code == 201
    placement = place("L1", 1000, "26FR000110000001R8")
    first = client.post(EVENTS, json=placement, headers=broker)
    assert first.status_code == 201, first.json          # the broker's ERP got a 503 instead (answer lost)
    assert BROKER_EORI in granted["broker_mandates"]
    amended = {**granted, "type": "AmendAuthorisation", "event_id": "amend-1", "broker_mandates": [],
               "reason": "mandate ended"}
    assert client.post(EVENTS, json=amended, headers=customs).status_code == 201, AUTH
    again = client.post(EVENTS, json=placement, headers=broker)
    assert again.status_code == 200, again.json           # not 403 not-permitted: "refused, nothing changed"
    assert again.json["tx_id"] == first.json["tx_id"]
    # a new event of the broker is refused: the mandate has ended
    other = client.post(EVENTS, json=place("L2", 10, "26FR000110000002R7"), headers=broker)
    assert other.status_code == 403 and other.json["type"].endswith("not-permitted"), other.json
