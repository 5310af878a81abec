"""The contract called directly by a member (no gateway in front): a resent event holding NaN is a named refusal; text
fields and the submitter's certificate name are one line of text."""
from __future__ import annotations

import json

import pytest

from ipledger.chaincode.contract import InwardProcessingContract
from ipledger.chaincode.testing.scenario import AUTH_ID, Scenario, iso


def _move(s: Scenario) -> dict:
    return {"event_id": "mv-1", "occurred_at": iso(s.ledger.now), "authorisation_id": AUTH_ID, "lot_id": "L1",
            "quantity": 10, "from_site": "BOURGES-1", "to_site": "BOURGES-2"}


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_resent_event_holding_a_number_no_schema_takes_is_a_named_refusal(number):
    s = Scenario.with_l1(InwardProcessingContract)
    ev = _move(s)
    s.accepted(s.ledger.invoke(s.contract, "MoveGoods", [ev], "OperatorMSP"))
    raw = json.dumps(ev).replace('"quantity": 10', f'"quantity": {number}').encode()
    before = s.ledger.snapshot()
    res = s.ledger.invoke(s.contract, "MoveGoods", [raw], "OperatorMSP")
    assert res.error_code in ("InvalidEvent", "DuplicateEvent"), res.message
    assert s.ledger.snapshot() == before


@pytest.mark.parametrize("name", ["op\x1b[2J\nclick", "clerk\u202egnp.exe", "a\u2028b"])
def test_a_certificate_name_the_records_cannot_hold_is_refused(name):
    s = Scenario.with_l1(InwardProcessingContract)
    before = s.ledger.snapshot()
    res = s.submit("MoveGoods", {"authorisation_id": AUTH_ID, "lot_id": "L1", "quantity": 10,
                                 "from_site": "BOURGES-1", "to_site": "BOURGES-2"}, "OperatorMSP", common_name=name)
    assert res.error_code == "NotPermitted", res.message
    assert s.ledger.snapshot() == before


def test_a_plain_certificate_name_of_64_characters_is_recorded():
    s = Scenario.with_l1(InwardProcessingContract)
    name = "User1@operator.ipledger.example-" + "x" * 32
    s.accepted(s.submit("MoveGoods", {"authorisation_id": AUTH_ID, "lot_id": "L1", "quantity": 10,
                                      "from_site": "BOURGES-1", "to_site": "BOURGES-2"}, "OperatorMSP",
                        common_name=name))
    assert s.query("GetLotHistory", "L1")["history"][-1]["submitted_by"]["name"] == name


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\u202a", "\u202e", "\u2066", "\u2069"])
def test_a_description_holds_no_separator_or_direction_control(char):
    s = Scenario.with_l1(InwardProcessingContract)
    before = s.ledger.snapshot()
    res = s.place("L7", 5, description=f"used tyres{char}gnp.exe")
    assert res.error_code == "InvalidEvent", res.message
    assert s.ledger.snapshot() == before


def test_a_description_in_another_script_is_still_text():
    s = Scenario.with_l1(InwardProcessingContract)
    s.accepted(s.place("L7", 5, description="pneus usagés — إطارات مستعملة"))


def test_a_name_longer_than_a_common_name_may_be_is_not_one_the_records_hold():
    """(cryptography refuses to build a certificate with a longer common name; another CA's may not)"""
    from ipledger.chaincode.contract import identifiers, roles
    assert identifiers.is_one_line_text("x" * roles.CALLER_NAME_MAX, roles.CALLER_NAME_MAX)
    assert not identifiers.is_one_line_text("x" * (roles.CALLER_NAME_MAX + 1), roles.CALLER_NAME_MAX)


def test_an_event_recorded_before_the_name_rule_is_answered_as_recorded_when_sent_again(monkeypatch):
    """The rule applies to what is about to be recorded: a sender who never got its answer and sends the event
    again gets the original result, as for any rule added since (contract._record)."""
    from ipledger.chaincode.contract import roles
    s = Scenario.with_l1(InwardProcessingContract)
    move = {"event_id": "mv-old", "occurred_at": iso(s.ledger.now), "authorisation_id": AUTH_ID, "lot_id": "L1",
            "quantity": 10, "from_site": "BOURGES-1", "to_site": "BOURGES-2"}
    name = "clerk\u202egnp.exe"
    rule = roles.require_recordable_name
    monkeypatch.setattr(roles, "require_recordable_name", lambda caller, act: None)   # before the rule
    first = s.submit("MoveGoods", move, "OperatorMSP", common_name=name)
    assert first.ok, first.message
    monkeypatch.setattr(roles, "require_recordable_name", rule)
    again = s.submit("MoveGoods", move, "OperatorMSP", common_name=name)
    assert again.ok and json.loads(again.payload)["tx_id"] == json.loads(first.payload)["tx_id"], again.message
    new = s.submit("MoveGoods", {**move, "event_id": "mv-new"}, "OperatorMSP", common_name=name)
    assert new.error_code == "NotPermitted"
