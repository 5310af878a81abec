"""Roles as data (issue 15, part 1): the contract names no organisation.

Customs is the organisation the deployment names (``IPLEDGER_CUSTOMS_MSP``); every other party is what
customs entered in the register of parties on the ledger (``RegisterParty``, ``WithdrawParty``,
``GetParties``). Each refusal is a named rule and writes nothing (``Scenario.refused``)."""
from __future__ import annotations

import json

import pytest

from ipledger.chaincode.contract import InwardProcessingContract, deployment
from ipledger.chaincode.testing.scenario import (AUTH_ID, BROKER_EORI, HOLDER, PLACE_MRN_L1, SITE1, SITE2, Scenario,
                                        authorisation_fields, iso)

AUTH_B = "FRIPO000002"
PLANT_B, PLANT_B_EORI = "PlantBMSP", "FR55555555555555"
BROKER_B, BROKER_B_EORI = "BrokerBMSP", "FR77777777777777"
MOVE = {"authorisation_id": AUTH_ID, "lot_id": "L1", "quantity": 1, "from_site": SITE1, "to_site": SITE2}


def entry_of(s: Scenario, msp_id: str) -> dict:
    key = s.ledger.stub().create_composite_key("party", [msp_id])
    return json.loads(s.ledger.state[key])


# ---------------------------------------------------------------------------------------- RegisterParty

def test_customs_register_a_party_sorted(s):
    res = s.accepted(s.register(PLANT_B, "holder", ["FR99999999999999", PLANT_B_EORI], name="Plant B"))
    party = res["party"]
    assert party == {"msp_id": PLANT_B, "role": "holder", "eoris": [PLANT_B_EORI, "FR99999999999999"],
                     "name": "Plant B", "status": "REGISTERED", "registered_at": res["recorded_at"],
                     "withdrawn_at": None, "version": 1}
    assert res["previous"] is None and entry_of(s, PLANT_B) == party
    assert s.ledger.validation_parameters() == {}     # judged by the chaincode policy, as every key
    (logged,) = json.loads(s.ledger.events[-1][2])["events"]
    assert logged["event_type"] == "RegisterParty" and logged["authorisation_id"] is None
    assert logged["event"]["msp_id"] == PLANT_B


def test_registering_again_replaces_the_entry_and_the_log_keeps_each_version(s):
    first = s.accepted(s.register(PLANT_B, "holder", [PLANT_B_EORI]))["party"]
    res = s.accepted(s.register(PLANT_B, "representative", ["FR99999999999999"]))
    assert res["previous"] == first
    assert res["party"]["role"] == "representative" and res["party"]["eoris"] == ["FR99999999999999"]
    assert res["party"]["version"] == 2 and entry_of(s, PLANT_B) == res["party"]
    registered = [json.loads(p)["events"][0]["event"] for _tx, _n, p in s.ledger.events
                  if json.loads(p)["events"][0]["event_type"] == "RegisterParty"
                  and json.loads(p)["events"][0]["event"]["msp_id"] == PLANT_B]
    assert [e["role"] for e in registered] == ["holder", "representative"]
    assert PLANT_B_EORI not in [e for p in s.query("GetParties")["parties"] for e in p["eoris"]]


def test_an_eori_belongs_to_one_registered_party_only(s):
    details = s.refused("EoriTaken", s.register, PLANT_B, "holder", [PLANT_B_EORI, HOLDER])
    assert details == {"eori": HOLDER, "msp_id": PLANT_B, "registered_to": "OperatorMSP"}
    s.refused("EoriTaken", s.register, BROKER_B, "representative", [BROKER_EORI])
    s.accepted(s.register("OperatorMSP", "holder", [HOLDER, "FR11111111111111"]))   # its own EORIs again: fine
    s.accepted(s.withdraw("OperatorMSP"))                                            # a withdrawn party holds none
    s.accepted(s.register(PLANT_B, "holder", [HOLDER]))


def test_customs_own_organisation_cannot_be_registered(s):
    for role in ("holder", "representative"):
        details = s.refused("CustomsNotRegistrable", s.register, "CustomsMSP", role, ["FR00000000000001"])
        assert details["msp_id"] == "CustomsMSP"


@pytest.mark.parametrize("event", [
    {"msp_id": PLANT_B, "role": "holder", "eoris": []},                                # none
    {"msp_id": PLANT_B, "role": "holder", "eoris": [PLANT_B_EORI, PLANT_B_EORI]},      # twice
    {"msp_id": PLANT_B, "role": "holder", "eoris": ["fr55555555555555"]},              # not an EORI
    {"msp_id": PLANT_B, "role": "holder", "eoris": ["FR1234567890123456"]},            # 18 characters
    {"msp_id": PLANT_B, "role": "customs", "eoris": [PLANT_B_EORI]},                   # not a party role
    {"msp_id": "Plant B", "role": "holder", "eoris": [PLANT_B_EORI]},                  # not an MSP id
    {"msp_id": PLANT_B, "role": "holder", "eoris": PLANT_B_EORI},                      # not a list
    {"msp_id": PLANT_B, "role": "holder"},                                             # missing
])
def test_a_register_entry_is_validated(s, event):
    s.refused("InvalidEvent", s.submit, "RegisterParty", event, "CustomsMSP")


@pytest.mark.parametrize("msp", ["OperatorMSP", "BrokerMSP"])
def test_only_customs_keep_the_register(s, msp):
    details = s.refused("NotPermitted", s.register, PLANT_B, "holder", [PLANT_B_EORI], msp=msp)
    assert details["allowed"] == ["customs"]
    s.refused("NotPermitted", s.withdraw, "BrokerMSP", msp=msp)
    s.refused("NotPermitted", s.register, msp, "holder", [HOLDER, PLANT_B_EORI], msp=msp)  # not even itself


# ---------------------------------------------------------------------------------------- roles from the register

def test_an_organisation_that_is_not_registered_is_refused():
    s = Scenario(InwardProcessingContract, register=False)
    details = s.refused("HolderNotRegistered", s.grant)
    assert details["holder_eori"] == HOLDER
    s.register_parties()
    s.accepted(s.grant())
    for msp in ("PlantCMSP", "OrdererMSP"):
        details = s.refused("UnknownParty", s.submit, "MoveGoods", MOVE, msp)
        assert details["msp_id"] == msp
        assert s.ledger.evaluate(s.contract, "GetAuthorisation", [AUTH_ID], msp).error_code == "UnknownParty"
        assert s.ledger.evaluate(s.contract, "GetParameters", [], msp).error_code == "UnknownParty"
        assert s.ledger.evaluate(s.contract, "GetParties", [], msp).error_code == "UnknownParty"


def test_a_withdrawn_party_is_refused_until_registered_again(s):
    s.accepted(s.move(1, SITE1, SITE2, lot_id="L1"))
    res = s.accepted(s.withdraw("OperatorMSP", reason="left the procedure"))
    assert res["party"]["status"] == "WITHDRAWN" and res["party"]["withdrawn_at"] == res["recorded_at"]
    details = s.refused("PartyWithdrawn", s.move, 1, SITE1, SITE2, lot_id="L1")
    assert details["withdrawn_at"] == res["recorded_at"]
    for query, args in (("GetLot", ["L1"]), ("GetAuthorisation", [AUTH_ID]), ("GetParties", [])):
        assert s.ledger.evaluate(s.contract, query, args, "OperatorMSP").error_code == "PartyWithdrawn"
    assert s.query("GetParties")["parties"][1]["status"] == "WITHDRAWN"   # customs still see the entry
    s.refused("InvalidState", s.withdraw, "OperatorMSP")
    s.refused("NotFound", s.withdraw, PLANT_B)
    # the representative declares for the holder: no new goods for a withdrawn holder, discharges go on
    s.refused("HolderNotRegistered", s.place, "L2", 1)
    s.accepted(s.exit(1, lot_id="L1"))
    s.accepted(s.register("OperatorMSP", "holder", [HOLDER]))
    s.accepted(s.move(1, SITE1, SITE2, lot_id="L1"))
    s.accepted(s.place("L2", 1))


def test_the_certificate_eori_narrows_an_identity_to_one_registered_eori(s):
    s.accepted(s.register("OperatorMSP", "holder", [HOLDER, "FR11111111111111"]))
    details = s.refused("EoriNotRegistered", s.submit, "MoveGoods", MOVE, "OperatorMSP", eori=PLANT_B_EORI)
    assert details["eori"] == PLANT_B_EORI and details["registered"] == ["FR11111111111111", HOLDER]
    assert s.ledger.evaluate(s.contract, "GetLot", ["L1"], "OperatorMSP",
                             eori=PLANT_B_EORI).error_code == "EoriNotRegistered"
    s.refused("NotPermitted", s.submit, "MoveGoods", MOVE, "OperatorMSP", eori="FR11111111111111")
    s.accepted(s.submit("MoveGoods", MOVE, "OperatorMSP", eori=HOLDER))
    s.accepted(s.submit("MoveGoods", MOVE, "OperatorMSP"))              # no attribute: every registered EORI


def test_get_parties_customs_see_all_a_party_its_own_entry(s):
    s.accepted(s.register(PLANT_B, "holder", [PLANT_B_EORI]))
    everything = s.query("GetParties")
    assert everything["customs_msp"] == "CustomsMSP"
    assert [p["msp_id"] for p in everything["parties"]] == ["BrokerMSP", "OperatorMSP", PLANT_B]
    for msp in ("OperatorMSP", "BrokerMSP", PLANT_B):
        own = s.query("GetParties", msp=msp)
        assert [p["msp_id"] for p in own["parties"]] == [msp]
    assert s.ledger.evaluate(s.contract, "GetParties", [], "OperatorMSP", role="admin").error_code == "NotPermitted"


def test_parameters_no_longer_name_parties(s):
    s.refused("InvalidEvent", s.set_parameters, party_eoris={"OperatorMSP": HOLDER})
    # a ledger whose parameters still hold party_eoris (set before the register existed): ignored
    key = s.ledger.stub().create_composite_key("params", [])
    s.ledger._committed.put(key, json.dumps({"party_eoris": {"OperatorMSP": PLANT_B_EORI}, "warn_days": 20}).encode())
    assert "party_eoris" not in s.query("GetParameters") and s.query("GetParameters")["warn_days"] == 20
    s.accepted(s.move(1, SITE1, SITE2, lot_id="L1"))                    # the register decides, not the leftover
    s.accepted(s.set_parameters(warn_days=25))
    assert "party_eoris" not in json.loads(s.ledger.state[key])


# ---------------------------------------------------------------------------------------- many holders

def two_holders() -> Scenario:
    """Holder A (OperatorMSP, §8) and holder B (PlantBMSP) with its own representative (BrokerBMSP), each
    with an authorisation and a lot; the commercial collection counts both holders (as each holder's channel
    would)."""
    s = Scenario.with_l1(InwardProcessingContract)
    s.ledger.collections["commercial"] = frozenset({"CustomsMSP", "OperatorMSP", PLANT_B})
    s.accepted(s.register(PLANT_B, "holder", [PLANT_B_EORI], name="Plant B"))
    s.accepted(s.register(BROKER_B, "representative", [BROKER_B_EORI]))
    s.accepted(s.grant(AUTH_B, holder_eori=PLANT_B_EORI, broker_mandates=[BROKER_B_EORI]))
    s.accepted(s.place("LB1", 100, auth_id=AUTH_B, msp=PLANT_B, value="777.00"))
    return s


def test_a_second_holder_acts_and_reads_on_its_own_authorisation_only():
    s = two_holders()
    # on A's authorisation: refused, acts and reads alike
    details = s.refused("NotPermitted", s.submit, "MoveGoods", MOVE, PLANT_B)
    assert details["eoris"] == [PLANT_B_EORI]
    s.refused("NotPermitted", s.place, "LX", 1, msp=PLANT_B)
    for query, args in (("GetAuthorisation", [AUTH_ID]), ("GetBalances", [AUTH_ID]), ("GetAlerts", [AUTH_ID])):
        assert s.ledger.evaluate(s.contract, query, args, PLANT_B).error_code == "NotPermitted", query
    # a lot asked for by its own id: as if there were none (no other holder's authorisation named)
    assert s.ledger.evaluate(s.contract, "GetLot", ["L1"], PLANT_B).error_code == "NotFound"
    # a declaration shows only the caller's items: none here, as if there were no such declaration
    assert s.ledger.evaluate(s.contract, "GetDeclaration", [PLACE_MRN_L1], PLANT_B).error_code == "NotFound"
    # ... and A on B's
    s.refused("NotPermitted", s.submit, "MoveGoods", {**MOVE, "authorisation_id": AUTH_B, "lot_id": "LB1"},
              "OperatorMSP")
    assert s.ledger.evaluate(s.contract, "GetLot", ["LB1"], "OperatorMSP").error_code == "NotFound"
    # on its own: every holder act, and the commercial data
    s.accepted(s.submit("MoveGoods", {**MOVE, "authorisation_id": AUTH_B, "lot_id": "LB1"}, PLANT_B))
    lot = s.query("GetLot", "LB1", msp=PLANT_B)
    assert lot["commercial"]["customs_value"] == {"amount": "777.00", "currency": "EUR"}
    assert s.query("GetAuthorisation", AUTH_B, msp=PLANT_B)["holder_eori"] == PLANT_B_EORI
    assert s.lot("L1")["stock"] == {SITE1: 1000}                          # A's goods untouched


def test_a_representative_of_another_holder_without_a_mandate_from_a_is_refused_on_a():
    s = two_holders()
    details = s.refused("NotPermitted", s.place, "LX", 1, msp=BROKER_B)
    assert details["role"] == "representative" and details["eoris"] == [BROKER_B_EORI]
    s.refused("NotPermitted", s.exit, 1, lot_id="L1", msp=BROKER_B)
    s.refused("NotPermitted", s.submit, "MoveGoods", {**MOVE, "authorisation_id": AUTH_B, "lot_id": "LB1"},
              BROKER_B)                                                   # a holder act: not a representative's
    assert s.ledger.evaluate(s.contract, "GetLot", ["L1"], BROKER_B).error_code == "NotFound"
    s.accepted(s.place("LB2", 5, auth_id=AUTH_B, msp=BROKER_B))
    lot = s.query("GetLot", "LB1", msp=BROKER_B)
    assert "commercial" not in lot and len(lot["commercial_hash"]) == 64  # a representative: the hash only
    # A's representative holds no mandate from B
    s.refused("NotPermitted", s.place, "LB3", 5, auth_id=AUTH_B, msp="BrokerMSP")


def test_an_authorisation_is_granted_to_a_registered_holder():
    s = two_holders()
    for eori in ("FR66666666666666", BROKER_EORI, BROKER_B_EORI):        # unknown, or a representative's
        details = s.refused("HolderNotRegistered", s.grant, "FRIPO000003", holder_eori=eori)
        assert details["holder_eori"] == eori
    s.accepted(s.withdraw(PLANT_B))
    s.refused("HolderNotRegistered", s.grant, "FRIPO000003", holder_eori=PLANT_B_EORI)
    # amendments keep the holder: a withdrawn holder's authorisation can still be amended by customs
    s.accepted(s.submit("AmendAuthorisation", {"authorisation_id": AUTH_B, **authorisation_fields(
        s.day, holder_eori=PLANT_B_EORI, broker_mandates=[])}, "CustomsMSP"))


# ---------------------------------------------------------------------------------------- the deployment

def test_without_a_customs_msp_every_act_and_query_fails_closed():
    s = Scenario.with_l1(InwardProcessingContract)
    s.contract = InwardProcessingContract(clock=s.ledger.peer_clock, customs_msp="")   # the same ledger, unset
    for msp in ("CustomsMSP", "OperatorMSP", "BrokerMSP"):
        details = s.refused("DeploymentNotConfigured", s.submit, "SetParameters",
                            {"parameters": {"warn_days": 1}}, msp)
        assert details == {"variable": "IPLEDGER_CUSTOMS_MSP"}
        s.refused("DeploymentNotConfigured", s.move, 1, SITE1, SITE2, lot_id="L1", msp=msp)
        s.refused("DeploymentNotConfigured", s.register, PLANT_B, "holder", [PLANT_B_EORI], msp=msp)
        for query, args in (("GetLot", ["L1"]), ("GetParameters", []), ("GetParties", [])):
            assert s.ledger.evaluate(s.contract, query, args, msp).error_code == "DeploymentNotConfigured"


@pytest.fixture
def environment(monkeypatch):
    """Set or unset IPLEDGER_CUSTOMS_MSP for a contract created as the shim creates it (read once per process:
    the cache is cleared around the test)."""
    deployment.customs_msp_from_environment.cache_clear()

    def set_to(value):
        if value is None:
            monkeypatch.delenv(deployment.ENV, raising=False)
        else:
            monkeypatch.setenv(deployment.ENV, value)
        deployment.customs_msp_from_environment.cache_clear()
    yield set_to
    deployment.customs_msp_from_environment.cache_clear()


@pytest.mark.parametrize("value", [None, "", "Customs MSP", "CustomsMSP\n"])
def test_the_contract_reads_customs_from_the_environment_and_fails_closed_without(environment, value):
    environment(value)
    s = Scenario(InwardProcessingContract, customs_msp=None, register=False)   # no customs_msp: the environment
    s.refused("DeploymentNotConfigured", s.register, "OperatorMSP", "holder", [HOLDER])
    assert s.ledger.evaluate(s.contract, "GetParameters", [], "CustomsMSP").error_code == "DeploymentNotConfigured"


def test_the_customs_msp_comes_from_the_deployment(environment):
    environment("DouaneMSP")
    s = Scenario(InwardProcessingContract, customs_msp=None, register=False,
                 collections={"commercial": {"DouaneMSP", "OperatorMSP"}})
    s.customs_msp = "DouaneMSP"
    # CustomsMSP is only a name: on this deployment it is no one until registered
    details = s.refused("UnknownParty", s.register, "OperatorMSP", "holder", [HOLDER], msp="CustomsMSP")
    assert details["msp_id"] == "CustomsMSP"
    s.refused("UnknownParty", s.submit, "SetParameters", {"parameters": {"warn_days": 1}}, "CustomsMSP")
    assert s.ledger.evaluate(s.contract, "GetParameters", [], "CustomsMSP").error_code == "UnknownParty"
    s.register_parties()
    s.accepted(s.grant())
    s.accepted(s.place("L1", 10))
    assert s.query("GetLot", "L1")["commercial"]["customs_value"]["amount"] == "1000.00"
    assert s.query("GetParties")["customs_msp"] == "DouaneMSP"
    s.refused("CustomsNotRegistrable", s.register, "DouaneMSP", "holder", ["FR00000000000001"])
    s.accepted(s.register("CustomsMSP", "representative", ["FR00000000000001"]))   # just another organisation
    s.refused("NotPermitted", s.submit, "SetParameters", {"parameters": {"warn_days": 1}}, "CustomsMSP")


def test_a_contract_configured_for_douane_refuses_customs_msp_acts():
    s = Scenario(InwardProcessingContract, customs_msp="DouaneMSP")
    assert s.customs_msp == "DouaneMSP"
    s.accepted(s.grant())
    event = {"authorisation_id": AUTH_ID, "reason": "audit"}
    details = s.refused("UnknownParty", s.submit, "SuspendAuthorisation", event, "CustomsMSP")
    assert details["act"] == "SuspendAuthorisation"
    s.accepted(s.submit("SuspendAuthorisation", event, "DouaneMSP"))


def test_the_contract_names_no_organisation():
    """No string in the contract's code (docstrings aside) is an MSP id: who customs is comes from the
    deployment, who the parties are from the register."""
    import ast
    import re
    from pathlib import Path

    import ipledger.chaincode.contract as package

    msp_id = re.compile(r"[A-Z][A-Za-z0-9]*MSP\b")
    found = []
    for path in Path(package.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body
                      and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings \
                    and msp_id.search(node.value):
                found.append((path.name, node.value[:60]))
    assert found == []


def test_a_withdrawn_party_resending_its_own_recorded_event_gets_the_original_result(s):
    """Idempotency comes before standing: the operator's ERP sends a move again after customs withdrew the
    operator (its first answer was lost). The move is on the ledger: the resend returns its original result and
    writes nothing; other content under that id is a DuplicateEvent; a new event is PartyWithdrawn."""
    event = {"authorisation_id": AUTH_ID, "lot_id": "L1", "quantity": 1, "from_site": SITE1, "to_site": SITE2,
             "event_id": "erp-move-1", "occurred_at": iso(s.ledger.now)}
    first = s.accepted(s.submit("MoveGoods", event, "OperatorMSP"))
    s.accepted(s.withdraw("OperatorMSP", reason="left the procedure"))
    before = s.ledger.snapshot()
    again = s.submit("MoveGoods", event, "OperatorMSP")
    assert again.ok and again.json() == first and again.event is None
    assert s.ledger.snapshot() == before
    s.refused("DuplicateEvent", s.submit, "MoveGoods", {**event, "quantity": 2}, "OperatorMSP")
    s.refused("PartyWithdrawn", s.submit, "MoveGoods", {**event, "event_id": "erp-move-2"}, "OperatorMSP")
