"""The role matrix of domain.md §2: each org × role × act, allowed or NotPermitted (and a refusal
writes nothing). The expected table is written out here, independently of roles.py.

The organisations' roles come from the deployment (customs: ``CustomsMSP``, the Scenario's contract) and
the register of parties (``OperatorMSP`` holder, ``BrokerMSP`` representative, registered by the
Scenario); ``OrdererMSP`` is on no register (UnknownParty)."""
from __future__ import annotations

import copy
import datetime as dt

import pytest

from ipledger.chaincode.contract import InwardProcessingContract, timestamps
from ipledger.chaincode.testing.scenario import (AUTH_ID, SITE1, SITE2, Scenario, authorisation_fields, evidence, iso, mrn,
                                        retreaded)

AUTH2 = "FRIPO000002"
EXPORT_MRN = mrn("E", 4242)

# (msp, NodeOU, broker has a mandate)
IDENTITIES = {
    "customs-client": ("CustomsMSP", "client", None),
    "customs-admin": ("CustomsMSP", "admin", None),
    "operator-client": ("OperatorMSP", "client", None),
    "operator-admin": ("OperatorMSP", "admin", None),
    "broker-client": ("BrokerMSP", "client", True),
    "broker-client-no-mandate": ("BrokerMSP", "client", False),
    "broker-admin": ("BrokerMSP", "admin", True),
    "orderer-client": ("OrdererMSP", "client", None),
}

C, O, B = "customs-client", "operator-client", "broker-client"
ALLOWED = {  # domain.md §2 and §4: who performs each act (client identities only)
    "GrantAuthorisation": {C},
    "AmendAuthorisation": {C},
    "SuspendAuthorisation": {C},
    "ReinstateAuthorisation": {C},
    "RevokeAuthorisation": {C},
    "ExtendDischargePeriod": {C},
    "PlaceUnderProcedure": {O, B},
    "MoveGoods": {O},
    "RecordProcessing": {O},
    "RecordLoss": {O},
    "ExitGoods": {O, B},
    "ConfirmExit": {C},
    "RecordControl": {C},
    "SubmitBillOfDischarge": {O},
    "DecideBillOfDischarge": {C},
    "SetParameters": {C},
    "RegisterParty": {C},
    "WithdrawParty": {C},
    "DropKeyPolicies": {C},
}
UNREGISTERED = {"orderer-client"}   # refused as UnknownParty; every other refusal is a NotPermitted


def refusal(who: str) -> str:
    return "UnknownParty" if who in UNREGISTERED else "NotPermitted"


def setup() -> Scenario:
    """A fresh copy of the prepared ledger (built once: the matrix has ~200 cases)."""
    global _TEMPLATE
    if _TEMPLATE is None:
        _TEMPLATE = _prepare()
    return copy.deepcopy(_TEMPLATE)


_TEMPLATE = None


def _prepare() -> Scenario:
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant())
    s.accepted(s.grant(AUTH2))
    s.accepted(s.submit("SuspendAuthorisation", {"authorisation_id": AUTH2, "reason": "audit"}, "CustomsMSP"))
    s.accepted(s.place("L1", 1000, msp="OperatorMSP"))
    s.accepted(s.process("OP0", [("L1", 100)], [retreaded(100, "B1")]))
    s.accepted(s.exit(10, batch_id="B1", mrn_=EXPORT_MRN))
    period = (s.day - dt.timedelta(days=1)).date().isoformat()
    data = s.query("GetBillOfDischargeData", AUTH2, period, msp="OperatorMSP")
    s.accepted(s.submit("SubmitBillOfDischarge", {"authorisation_id": AUTH2, "period_end": period,
                                                  "document_hash": data["document_hash"]}, "OperatorMSP"))
    return s


def event_for(s: Scenario, act: str) -> tuple[dict, dict | None]:
    """A valid event for ``act`` in the state of :func:`setup`, and its transient map."""
    period = (s.day - dt.timedelta(days=1)).date().isoformat()
    commercial = {"commercial": {"customs_value": {"amount": "10.00", "currency": "EUR"}, "nonce": "nonce-role-matrix"}}
    events = {
        "GrantAuthorisation": {"authorisation_id": "FRIPO000009", **authorisation_fields(s.day)},
        "AmendAuthorisation": {"authorisation_id": AUTH_ID, **authorisation_fields(s.day, discharge_period_days=200)},
        "SuspendAuthorisation": {"authorisation_id": AUTH_ID, "reason": "audit"},
        "ReinstateAuthorisation": {"authorisation_id": AUTH2, "reason": "ok"},
        "RevokeAuthorisation": {"authorisation_id": AUTH_ID, "reason": "fraud"},
        "ExtendDischargePeriod": {"authorisation_id": AUTH_ID, "lot_ids": ["L1"], "new_deadline": iso(s.D(300))},
        "PlaceUnderProcedure": {"authorisation_id": AUTH_ID, "lot_id": "L9", "mrn": mrn("I", 4243), "item_no": 1,
                                "procedure": "5100", "cn": "40122000", "description": "tyres", "quantity": 5,
                                "unit": "p/st", "origin": "MA", "site": SITE1},
        "MoveGoods": {"authorisation_id": AUTH_ID, "lot_id": "L1", "quantity": 5, "from_site": SITE1,
                      "to_site": SITE2},
        "RecordProcessing": {"authorisation_id": AUTH_ID, "operation_id": "OP9", "site": SITE1,
                             "inputs": [{"lot_id": "L1", "qty": 5}], "outputs": [retreaded(5)]},
        "RecordLoss": {"authorisation_id": AUTH_ID, "lot_id": "L1", "quantity": 1, "reason": "NATURE",
                       "evidence_hash": evidence("photo")},
        "ExitGoods": {"authorisation_id": AUTH_ID, "lot_id": "L1", "quantity": 1, "procedure": "3151",
                      "mrn": mrn("E", 4244)},
        "ConfirmExit": {"authorisation_id": AUTH_ID, "mrn": EXPORT_MRN, "exit_date": None},
        "RecordControl": {"authorisation_id": AUTH_ID, "site": SITE1, "counted": [{"lot_id": "L1", "qty": 900}]},
        "SubmitBillOfDischarge": {"authorisation_id": AUTH_ID, "period_end": period, "document_hash": None},
        "DecideBillOfDischarge": {"authorisation_id": AUTH2, "bill_id": f"BOD-{AUTH2}-{period}",
                                  "decision": "ACCEPTED", "note": "fine"},
        "SetParameters": {"parameters": {"warn_days": 20}},
        "RegisterParty": {"msp_id": "PlantBMSP", "role": "holder", "eoris": ["FR55555555555555"]},
        "WithdrawParty": {"msp_id": "BrokerMSP", "reason": "mandates ended"},
        "DropKeyPolicies": {},
    }
    event = events[act]
    if act == "ConfirmExit":
        # the day the re-export was declared (not s.day's: on the network, tests/integration/
        # test_contract_roles_on_network.py, midnight UTC may pass between the scenario's start and its exit, and an
        # exit_date before the declaration's is OutOfOrder)
        [item] = s.query("GetDeclaration", EXPORT_MRN)["items"]
        event["exit_date"] = timestamps.parse_datetime(item["occurred_at"]).date().isoformat()
    if act == "SubmitBillOfDischarge":
        event["document_hash"] = s.query("GetBillOfDischargeData", AUTH_ID, period, msp="OperatorMSP")["document_hash"]
    return event, (commercial if act == "PlaceUnderProcedure" else None)


@pytest.mark.parametrize("who", list(IDENTITIES))
@pytest.mark.parametrize("act", list(ALLOWED))
def test_role_matrix(act, who):
    s = setup()
    msp, role, mandate = IDENTITIES[who]
    if msp == "BrokerMSP" and not mandate:
        s.accepted(s.register("BrokerMSP", "representative", ["DE0000001"]))  # an EORI without a mandate
    event, transient = event_for(s, act)
    if who in ALLOWED[act]:
        res = s.submit(act, event, msp, transient=transient, role=role)
        assert res.ok, f"{who} should be allowed to {act}: {res.message}"
    else:
        details = s.refused(refusal(who), s.submit, act, event, msp, transient=transient, role=role)
        assert details["act"] == act


def test_every_act_is_in_the_matrix():
    assert set(ALLOWED) == {t for t, info in InwardProcessingContract.transactions().items() if info.submit}


def test_the_holder_acts_only_for_its_own_authorisations():
    s = setup()
    s.accepted(s.register("OperatorMSP", "holder", ["DE55555"]))    # customs re-register it: another EORI
    details = s.refused("NotPermitted", s.move, 1, SITE1, SITE2, lot_id="L1")
    assert details["eoris"] == ["DE55555"] and details["role"] == "holder"
    s.accepted(s.register("OperatorMSP", "holder", ["FR12345678901234"]))
    s.accepted(s.move(1, SITE1, SITE2, lot_id="L1"))


def test_a_representative_acts_for_every_eori_customs_registered_when_the_certificate_names_none():
    s = setup()
    s.broker_eori = None   # a certificate without an 'eori' attribute (e.g. cryptogen)
    s.accepted(s.register("BrokerMSP", "representative", ["DE0000001", "FR98765432109876"]))
    s.accepted(s.place("L8", 1))                 # FR98765432109876 holds the mandate
    s.broker_eori = "DE0000001"                  # an identity narrowed to the EORI without a mandate
    s.refused("NotPermitted", s.place, "L9", 1)
    s.broker_eori = "FR98765432109876"
    s.accepted(s.place("L9", 1))


# ---------------------------------------------------------------------------------------- reads (visibility)

READERS = {"customs-client": True, "operator-client": True, "broker-client": True,
           "broker-client-no-mandate": False, "customs-admin": False, "operator-admin": False,
           "orderer-client": False}   # (a refused read: the same code as a refused act, see refusal())


@pytest.mark.parametrize("who", list(READERS))
@pytest.mark.parametrize("query, args", [
    ("GetAuthorisation", [AUTH_ID]), ("GetLot", ["L1"]), ("GetBatch", ["B1"]), ("GetBalances", [AUTH_ID]),
    ("GetLotHistory", ["L1"]), ("GetEventsInPeriod", [AUTH_ID, "2026-01-01", "2027-01-01"]),
    ("GetCeilingUse", [AUTH_ID, "2026-01-01"]), ("GetAlerts", [AUTH_ID]), ("GetBillOfDischargeData", [AUTH_ID]), ("GetBatchHistory", ["B1"]),
    ("GetDeclaration", [EXPORT_MRN]),
])
def test_read_visibility(query, args, who):
    s = setup()
    msp, role, mandate = IDENTITIES[who]
    if msp == "BrokerMSP" and not mandate:
        s.accepted(s.register("BrokerMSP", "representative", ["DE0000001"]))
    res = s.ledger.evaluate(s.contract, query, args, msp, role=role)
    assert res.ok is READERS[who], res.message
    if not res.ok:
        # a declaration shows the caller only its items: one with none is told there is no such declaration; a
        # lot or batch asked for by its id is refused as one not in use (queries._readable_by_its_id)
        hidden = who == "broker-client-no-mandate" and query in (
            "GetDeclaration", "GetLot", "GetBatch", "GetLotHistory", "GetBatchHistory")
        assert res.error_code == ("NotFound" if hidden else refusal(who))


def test_broker_sees_only_the_hash_of_commercial_data():
    s = setup()
    operator = s.query("GetLot", "L1", msp="OperatorMSP")
    customs = s.query("GetLot", "L1", msp="CustomsMSP")
    broker = s.query("GetLot", "L1", msp="BrokerMSP")
    assert operator["commercial"] == customs["commercial"]
    assert operator["commercial"]["lot_id"] == "L1"
    assert operator["commercial"]["customs_value"] == {"amount": "1000.00", "currency": "EUR"}
    assert len(operator["commercial"]["nonce"]) >= 16   # the record's hash cannot be found by trying amounts
    assert "commercial" not in broker and len(broker["commercial_hash"]) == 64
    as_of = iso(s.D(1))
    bill_broker = s.query("GetBillOfDischargeData", AUTH_ID, None, as_of, msp="BrokerMSP")
    bill_operator = s.query("GetBillOfDischargeData", AUTH_ID, None, as_of, msp="OperatorMSP")
    assert "customs_value" not in bill_broker["lots"][0]
    assert bill_operator["lots"][0]["customs_value"] == {"amount": "1000.00", "currency": "EUR"}
    assert bill_broker["document_hash"] == bill_operator["document_hash"]  # same document for everyone
    assert broker["commercial_hash"] == bill_broker["lots"][0]["customs_value_hash"]


def test_commercial_data_never_reaches_public_state_or_events():
    s = setup()
    s.accepted(s.place("L7", 1, value="987654.32"))
    for key, value in s.ledger.state.items():
        assert b"987654.32" not in value, key
    assert all(b"987654.32" not in payload for _tx, _name, payload in s.ledger.events)
    assert any(b"987654.32" in v for v in s.ledger.private("commercial").values())
