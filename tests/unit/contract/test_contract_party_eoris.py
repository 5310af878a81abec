"""Fail closed (issue 13, point 4): an operator or broker whose EORI is unknown may neither act nor
read (``UnknownParty``, a NotPermitted); the party EORIs customs set on the ledger (``party_eoris``) win over the ``eori`` attribute a
party's own CA writes into its certificates."""
from __future__ import annotations

from chaincode.testing.scenario import AUTH_ID, BROKER_EORI, HOLDER, SITE1, SITE2

OTHER = "DE55555555555555"


def test_an_operator_whose_eori_is_unknown_is_refused(s):
    s.operator_eori = None  # no certificate attribute, nothing in party_eoris
    details = s.refused("UnknownParty", s.submit, "MoveGoods", {
        "authorisation_id": AUTH_ID, "lot_id": "L1", "quantity": 1, "from_site": SITE1, "to_site": SITE2},
        "OperatorMSP", eori=None)
    assert details["msp_id"] == "OperatorMSP" and details["eori"] is None
    res = s.ledger.evaluate(s.contract, "GetLot", ["L1"], "OperatorMSP")
    assert res.error_code == "UnknownParty"           # reads fail closed too
    s.accepted(s.set_parameters(party_eoris={"OperatorMSP": HOLDER}))
    s.accepted(s.submit("MoveGoods", {"authorisation_id": AUTH_ID, "lot_id": "L1", "quantity": 1,
                                      "from_site": SITE1, "to_site": SITE2}, "OperatorMSP", eori=None))


def test_a_broker_whose_eori_is_unknown_is_refused(s):
    s.broker_eori = None
    details = s.refused("UnknownParty", s.place, "L2", 1)
    assert details["eori"] is None
    assert s.ledger.evaluate(s.contract, "GetLot", ["L1"], "BrokerMSP").error_code == "UnknownParty"


def test_the_ledger_register_wins_over_the_operators_certificate(s):
    s.accepted(s.set_parameters(party_eoris={"OperatorMSP": OTHER}))
    move = {"authorisation_id": AUTH_ID, "lot_id": "L1", "quantity": 1, "from_site": SITE1, "to_site": SITE2}
    # the operator's CA claims the holder's EORI; customs registered another one
    s.refused("NotPermitted", s.submit, "MoveGoods", move, "OperatorMSP", eori=HOLDER)
    assert s.ledger.evaluate(s.contract, "GetLot", ["L1"], "OperatorMSP", eori=HOLDER).error_code == "NotPermitted"
    s.accepted(s.set_parameters(party_eoris={"OperatorMSP": HOLDER}))
    s.accepted(s.submit("MoveGoods", move, "OperatorMSP", eori=OTHER))


def test_the_ledger_register_wins_over_the_brokers_certificate(s):
    s.accepted(s.set_parameters(party_eoris={"BrokerMSP": OTHER}))   # a broker without a mandate
    details = s.refused("NotPermitted", s.place, "L2", 1)           # its certificate says BROKER_EORI
    assert details["eori"] == OTHER
    s.accepted(s.set_parameters(party_eoris={"BrokerMSP": BROKER_EORI}))
    s.broker_eori = OTHER
    s.accepted(s.place("L2", 1))


def test_the_certificate_attribute_counts_when_customs_registered_nothing(s):
    assert s.accepted(s.place("L2", 1))  # the broker's certificate carries its EORI
    move = {"authorisation_id": AUTH_ID, "lot_id": "L1", "quantity": 1, "from_site": SITE1, "to_site": SITE2}
    s.accepted(s.submit("MoveGoods", move, "OperatorMSP", eori=HOLDER))
    s.refused("NotPermitted", s.submit, "MoveGoods", move, "OperatorMSP", eori=OTHER)
