"""What ships with the contract: schemas, error codes, collections config, endorsement policies,
event documentation, metadata; and the boundary (chaincode imports nothing from gateway/network)."""
from __future__ import annotations

import ast
from importlib import resources
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from ipledger.chaincode.contract import InwardProcessingContract, errors
from ipledger.chaincode.testing.policies import describe, signature_policy
from ipledger.chaincode.contract.schemas import EVENT_TYPES, load_schema, validator
from ipledger.chaincode.shim.contract_api import ChaincodeError
from ipledger.chaincode.testing import MemLedger

ROOT = Path(__file__).resolve().parents[3]
CONTRACT_DIR = ROOT / "chaincode" / "contract"


def test_one_schema_per_submit_transaction():
    submits = {n for n, info in InwardProcessingContract.transactions().items() if info.submit}
    assert set(EVENT_TYPES) == submits and len(EVENT_TYPES) == 19


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_schema_is_self_contained_draft_2020_12(event_type):
    schema = load_schema(event_type)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == event_type
    Draft202012Validator.check_schema(schema)
    plain = Draft202012Validator(schema)  # no registry: common.json is embedded
    errors_ = list(plain.iter_errors({"event_id": "e"}))
    assert errors_, "an almost empty event must be invalid"
    assert resources.files("ipledger.chaincode.contract.schemas").joinpath(f"{event_type}.json").is_file()


def test_load_schema_returns_a_copy():
    a = load_schema("MoveGoods")
    a["title"] = "changed"
    assert load_schema("MoveGoods")["title"] == "MoveGoods"


@pytest.mark.parametrize("value, shape, ok", [
    ("26FR000110000001R8", True, True), ("26FR000110000007A7", True, True),   # domain.md §8
    ("26FR000110000001R9", True, False),                                      # wrong check digit
    ("26FR000110000001R", False, False), ("2XFR000110000001R8", False, False),
    ("26fr000110000001R8", False, False), ("26FR000110000001R8A", False, False),
    ("26FR000110I0000001", False, False),                                     # a digit at position 17
    ("26FR000110000001R8\n", False, False),                                   # matched whole
])
def test_mrn_format(value, shape, ok):
    """The contract's validator checks the whole MRN; a plain draft 2020-12 validator (no format
    assertion) checks its shape, and neither accepts a trailing newline."""
    schema = load_schema("ConfirmExit")
    event = {"event_id": "e", "authorisation_id": "FRIPO000001", "occurred_at": "2026-01-01T00:00:00Z",
             "mrn": value, "exit_date": "2026-01-01"}
    assert validator("ConfirmExit").is_valid(event) is ok
    assert Draft202012Validator(schema).is_valid(event) is shape


@pytest.mark.parametrize("field, value, ok", [
    ("holder_eori", "FR12345678901234", True), ("holder_eori", "FR123456789012345", True),
    ("holder_eori", "FR1234567890123456", False), ("holder_eori", "F1234", False),
    ("supervising_office", "FR000110", True), ("supervising_office", "FR0001100", False),
    ("supervising_office", "fr000110", False),
])
def test_identifier_formats(field, value, ok):
    from ipledger.chaincode.testing.scenario import authorisation_fields
    import datetime as dt

    event = {"event_id": "e", "authorisation_id": "FRIPO000001", "occurred_at": "2026-01-01T00:00:00Z",
             **authorisation_fields(dt.datetime(2026, 1, 1)), field: value}
    assert validator("GrantAuthorisation").is_valid(event) is ok


def test_rule_codes_are_spelled_as_in_the_specification():
    spec = ["InvalidEvent", "NotPermitted", "AuthorisationNotActive", "AuthorisationExpired", "GoodsNotCovered",
            "SiteNotAuthorised", "CeilingExceeded", "QuantityExceedsBalance", "UnitMismatch", "YieldOutOfTolerance",
            "DeadlinePassed", "DuplicateEvent", "DuplicateDeclaration", "OutOfOrder", "ClockSkew"]
    assert errors.RULES[:15] == tuple(spec)
    assert {"InvalidMrn", "InvalidIdentifier", "UnknownParty"} <= set(errors.RULES)
    for code in errors.RULES:
        cls = getattr(errors, code)
        assert issubclass(cls, ChaincodeError) and cls.code == code
        err = cls("m", a=1)
        assert err.to_dict() == {"code": code, "message": "m", "details": {"a": 1}}


def test_signature_policy_builder():
    from fabric_protos.common import policies_pb2
    from fabric_protos.msp import msp_principal_pb2

    raw = signature_policy(["CustomsMSP"])
    env = policies_pb2.SignaturePolicyEnvelope.FromString(raw)
    assert env.version == 0 and env.rule.n_out_of.n == 1 and env.rule.n_out_of.rules[0].signed_by == 0
    principal = env.identities[0]
    assert principal.principal_classification == msp_principal_pb2.MSPPrincipal.ROLE
    role = msp_principal_pb2.MSPRole.FromString(principal.principal)
    assert (role.msp_identifier, role.role) == ("CustomsMSP", msp_principal_pb2.MSPRole.PEER)
    assert describe(signature_policy(["OperatorMSP", "CustomsMSP"], "MEMBER")) == {
        "n": 2, "signed_by": ["CustomsMSP.member", "OperatorMSP.member"]}
    assert signature_policy(["CustomsMSP"]) == raw  # deterministic bytes on every peer


def test_events_documentation_names_the_event_and_the_alerts():
    text = (CONTRACT_DIR / "EVENTS.md").read_text()
    from ipledger.chaincode.contract.eventlog import EVENT_NAME

    assert f"`{EVENT_NAME}`" in text
    for alert in ("YieldDeviation", "BalanceDiscrepancy", "CeilingNear", "LossRateHigh", "AuthorisationSuspended",
                  "DeadlineApproaching", "DeadlineOverdue", "BillOfDischargeDue", "BillOfDischargeLate",
                  "ExitUnconfirmed", "AuthorisationExpiring"):
        assert alert in text


def test_metadata_lists_submit_and_evaluate_transactions():
    ledger = MemLedger()
    res = ledger.evaluate(InwardProcessingContract(), "org.hyperledger.fabric:GetMetadata", [])
    txs = {t["name"]: t["submit"] for t in res.json()["contracts"]["ipledger"]["transactions"]}
    assert txs["PlaceUnderProcedure"] is True and txs["GetBillOfDischargeData"] is False
    assert sum(txs.values()) == 19


def test_chaincode_never_imports_gateway_or_network():
    for path in (ROOT / "chaincode").rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in ("gateway", "network"), f"{path}: imports {name}"


def test_identity_that_is_not_a_client_is_not_permitted():
    from ipledger.chaincode.testing.scenario import AUTH_ID, Scenario, authorisation_fields

    s = Scenario(InwardProcessingContract)
    event = {"authorisation_id": AUTH_ID, **authorisation_fields(s.day)}
    details = s.refused("NotPermitted", s.submit, "GrantAuthorisation", event, "CustomsMSP", role="peer")
    assert details["role"] == "peer"
    s.accepted(s.submit("GrantAuthorisation", event, "CustomsMSP", role="client"))


def test_default_clock_is_the_peer_wall_clock(monkeypatch):
    import datetime as dt

    from ipledger.chaincode.contract import deployment
    from ipledger.chaincode.testing.scenario import iso

    monkeypatch.setenv("IPLEDGER_CUSTOMS_MSP", "CustomsMSP")
    deployment.customs_msp_from_environment.cache_clear()
    try:
        now = dt.datetime.now(dt.timezone.utc)
        ledger = MemLedger(now=now)
        contract = InwardProcessingContract()  # as the shim creates it: no injected clock, customs from the deployment
        event = {"event_id": "p1", "occurred_at": iso(now), "parameters": {"warn_days": 20}}
        skewed = ledger.invoke(contract, "SetParameters", [event], "CustomsMSP", ts=now + dt.timedelta(hours=1))
        assert skewed.error_code == "ClockSkew"
        assert ledger.invoke(contract, "SetParameters", [event], "CustomsMSP", ts=now).ok
    finally:
        deployment.customs_msp_from_environment.cache_clear()
