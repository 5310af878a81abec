"""Event ids are per organisation (issue 13, point 5): the idempotency record is keyed by the
submitting organisation, so one organisation can neither take another's ERP event ids first nor learn
another's transaction ids through ``DuplicateEvent``."""
from __future__ import annotations

from ipledger.chaincode.testing import mrns
from ipledger.chaincode.testing.scenario import AUTH_ID, SITE1, SITE2, Scenario, iso



def move(s: Scenario, event_id: str, qty: int = 10) -> dict:
    return {"event_id": event_id, "authorisation_id": AUTH_ID, "lot_id": "L1", "quantity": qty,
            "from_site": SITE1, "to_site": SITE2, "occurred_at": iso(s.ledger.now)}


def exit_(s: Scenario, event_id: str, n: int) -> dict:
    return {"event_id": event_id, "authorisation_id": AUTH_ID, "lot_id": "L1", "quantity": 1,
            "procedure": "3151", "mrn": mrns.exit_mrn(n), "occurred_at": iso(s.ledger.now)}


def test_another_org_cannot_take_an_event_id_first(s):
    """The broker knows (or guesses) the operator's next ERP id and uses it first: the operator's event is
    still recorded under its own id."""
    broker = s.accepted(s.submit("ExitGoods", exit_(s, "erp-4711", 1), "BrokerMSP"))
    operator = s.accepted(s.submit("MoveGoods", move(s, "erp-4711"), "OperatorMSP"))
    assert operator["event_type"] == "MoveGoods" and operator["tx_id"] != broker["tx_id"]
    assert s.lot("L1")["stock"] == {SITE1: 989, SITE2: 10}


def test_duplicate_event_never_reveals_another_orgs_transaction(s):
    first = s.accepted(s.submit("ExitGoods", exit_(s, "ex-1", 1), "OperatorMSP"))
    # the same id and the same content from the broker is the broker's own (new) event ...
    res = s.submit("ExitGoods", exit_(s, "ex-1", 1), "BrokerMSP")
    assert res.error_code == "DuplicateDeclaration"   # ... refused for its own reason (the MRN is used)
    assert first["tx_id"] not in res.message
    # ... and an event id of the operator with other content is the broker's, not a DuplicateEvent
    other = s.accepted(s.submit("ExitGoods", exit_(s, "ex-1", 2), "BrokerMSP"))
    assert first["tx_id"] not in str(other) and other["tx_id"] != first["tx_id"]


def test_replays_and_duplicates_within_one_org_are_unchanged(s):
    event = move(s, "mv-1")
    first = s.accepted(s.submit("MoveGoods", event, "OperatorMSP"))
    assert s.submit("MoveGoods", event, "OperatorMSP").json() == first
    details = s.refused("DuplicateEvent", s.submit, "MoveGoods", {**event, "quantity": 11}, "OperatorMSP")
    assert details["original_tx_id"] == first["tx_id"]   # its own transaction


def test_the_idempotency_record_is_keyed_by_the_submitting_org(s):
    s.accepted(s.submit("MoveGoods", move(s, "mv-7"), "OperatorMSP"))
    stub = s.ledger.stub()
    assert stub.create_composite_key("event", ["OperatorMSP", "mv-7"]) in s.ledger.state
    assert stub.create_composite_key("event", ["mv-7"]) not in s.ledger.state
    assert stub.create_composite_key("event", ["BrokerMSP", "mv-7"]) not in s.ledger.state
