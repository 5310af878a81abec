"""The role matrix of domain.md §2 on real peers, with real certificates.

Each org's client (User1, OU client) and admin (Admin, OU admin) identity tries
each act, simulated on its own org's peer through the Gateway (evaluate: the
contract runs exactly as for an endorsement, nothing is ordered). An allowed act
succeeds; any other is refused with NotPermitted. For every act, one refused
identity also submits for real, and the channel height proves nothing was written.
"""
from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.integration.realscenario import RealScenario
from tests.unit.contract.test_contract_roles import ALLOWED, AUTH2, EXPORT_MRN, event_for

pytestmark = pytest.mark.fabric
CHAINCODE = "ipledger-roles"
IDENTITIES = {  # who → (MSP, user whose certificate is used)
    "customs-client": ("CustomsMSP", "User1"), "customs-admin": ("CustomsMSP", "Admin"),
    "operator-client": ("OperatorMSP", "User1"), "operator-admin": ("OperatorMSP", "Admin"),
    "broker-client": ("BrokerMSP", "User1"), "broker-admin": ("BrokerMSP", "Admin"),
}


@pytest.fixture(scope="module")
def s(fabric_network, clients):
    from ipledger.chaincode.testing.scenario import retreaded
    from ipledger.network.channel.package import ChaincodeSpec
    from ipledger.network.channel.chaincode import Deployer
    spec = ChaincodeSpec.default()
    spec.name = CHAINCODE
    Deployer(fabric_network, log=lambda *_: None).deploy(spec)
    s = RealScenario(clients, CHAINCODE)
    # The same starting state as the unit matrix.
    s.accepted(s.grant())
    s.accepted(s.grant(AUTH2))
    s.accepted(s.submit("SuspendAuthorisation", {"authorisation_id": AUTH2, "reason": "audit"},
                        "CustomsMSP"))
    s.accepted(s.place("L1", 1000, msp="OperatorMSP"))
    s.accepted(s.process("OP0", [("L1", 100)], [retreaded(100, "B1")]))
    s.accepted(s.exit(10, batch_id="B1", mrn_=EXPORT_MRN))
    period = (s.day - dt.timedelta(days=1)).date().isoformat()
    data = s.query("GetBillOfDischargeData", AUTH2, period, msp="OperatorMSP")
    s.accepted(s.submit("SubmitBillOfDischarge", {"authorisation_id": AUTH2, "period_end": period,
                                                  "document_hash": data["document_hash"]},
                        "OperatorMSP"))
    return s


def simulate(s, act, event, transient, msp, user):
    event = {**event, "event_id": f"matrix-{act}-{msp}-{user}",
             "occurred_at": dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")}
    contract = s.clients.contract(msp, CHAINCODE, user)
    from ipledger.gateway.client import EvaluateError
    from tests.integration.realscenario import _transient
    try:
        contract.evaluate(act, [json.dumps(event)], transient=_transient(transient))
        return None
    except EvaluateError as e:
        return (e.chaincode_error or {}).get("code") or str(e)


@pytest.mark.parametrize("act", list(ALLOWED))
def test_role_matrix_on_real_peers(s, act):
    event, transient = event_for(s, act)
    outcomes = {who: simulate(s, act, event, transient, *IDENTITIES[who]) for who in IDENTITIES}
    expected = {who: None if who in ALLOWED[act] else "NotPermitted" for who in IDENTITIES}
    assert outcomes == expected

    refused_who = next(who for who in IDENTITIES if who not in ALLOWED[act])
    msp, user = IDENTITIES[refused_who]
    details = s.refused("NotPermitted", s.submit, act,
                        {**event, "event_id": f"matrix-submit-{act}"}, msp,
                        transient=transient, user=user)
    assert details["act"] == act


def test_broker_reads_no_commercial_value_on_its_own_peer(s):
    broker = s.query("GetLot", "L1", msp="BrokerMSP")
    assert "commercial" not in broker and len(broker["commercial_hash"]) == 64
    operator = s.query("GetLot", "L1", msp="OperatorMSP")
    assert operator["commercial"]["customs_value"] == {"amount": "1000.00", "currency": "EUR"}
    import hashlib
    assert broker["commercial_hash"] != hashlib.sha256(b"").hexdigest()
