"""Endorsement: one policy for every key, the chaincode-level one; and the policy builders.

Chaincode level: set at approval, derived per channel from the consortium file by
``network/channel/chaincode.contract_policy`` (customs' peer AND a peer of another member), e.g.::

    AND('CustomsMSP.peer', OR('OperatorMSP.peer','BrokerMSP.peer'))

It is not something the contract reads, and it is the only policy its keys are judged by.

No key-level (state-based) policies. Under Fabric's v2 validation a key's own policy *replaces*
the chaincode's for that key (``core/common/validation/statebased``: the chaincode policy is
checked only for written keys without one). A policy of customs alone on the authorisations,
the parameters and the register — what this contract set until it was found out — let a
transaction that writes only those keys commit with the endorsement of customs' peer alone,
whatever code that peer runs: customs could have changed a ceiling, a mandate or the register
with no other member computing it. The chaincode policy already needs customs' peer for every
key, and changing it needs customs' signature (``founding.governance_rule``), so nothing is lost
for customs; and on a new ledger the namespace never stores metadata, which spares every peer a
metadata lookup per written key at validation (docs/benchmarks.md, goal 5). A ledger written by an
earlier version has such policies: a key loses its own when the contract next writes it
(:func:`drop_key_policy`), and customs' ``DropKeyPolicies`` removes every one left at once.

``set_state_validation_parameter`` takes a serialized ``common.SignaturePolicyEnvelope``;
:func:`signature_policy` builds the same bytes as the Go shim's ``statebased.NewStateEP`` +
``AddOrgs(RoleTypePeer, ...)`` (tests use it to stand in for such an earlier policy).
"""
from __future__ import annotations

from fabric_protos.common import policies_pb2
from fabric_protos.msp import msp_principal_pb2

from ipledger.chaincode.contract import keys

_ROLES = {
    "MEMBER": msp_principal_pb2.MSPRole.MEMBER,
    "ADMIN": msp_principal_pb2.MSPRole.ADMIN,
    "CLIENT": msp_principal_pb2.MSPRole.CLIENT,
    "PEER": msp_principal_pb2.MSPRole.PEER,
}


def signature_policy(msp_ids: list[str], role: str = "PEER") -> bytes:
    """A serialized SignaturePolicyEnvelope requiring one signature of ``role`` from *every* MSP listed."""
    if not msp_ids:
        raise ValueError("at least one MSP id is needed")
    ids = sorted(set(msp_ids))
    principals = [
        msp_principal_pb2.MSPPrincipal(
            principal_classification=msp_principal_pb2.MSPPrincipal.ROLE,
            principal=msp_principal_pb2.MSPRole(msp_identifier=m, role=_ROLES[role]).SerializeToString(),
        )
        for m in ids
    ]
    rules = [policies_pb2.SignaturePolicy(signed_by=i) for i in range(len(ids))]
    envelope = policies_pb2.SignaturePolicyEnvelope(
        version=0,
        rule=policies_pb2.SignaturePolicy(n_out_of=policies_pb2.SignaturePolicy.NOutOf(n=len(ids), rules=rules)),
        identities=principals,
    )
    return envelope.SerializeToString(deterministic=True)


def drop_key_policy(stub, key: str) -> None:
    """Remove the key-level policy an earlier version of the contract left on ``key`` (full key, as
    the stub names it), about to be written: from then on the chaincode policy judges it. A key
    without one — every key the contract writes now — is left alone: nothing is written, so the
    namespace keeps storing no metadata at all."""
    if stub.get_state_validation_parameter(key):
        stub.set_state_validation_parameter(key, b"")


def describe(policy: bytes) -> dict:
    """A readable form of a serialized SignaturePolicyEnvelope (for tests and audits)."""
    env = policies_pb2.SignaturePolicyEnvelope.FromString(policy)
    principals = []
    for p in env.identities:
        role = msp_principal_pb2.MSPRole.FromString(p.principal)
        principals.append(f"{role.msp_identifier}.{msp_principal_pb2.MSPRole.MSPRoleType.Name(role.role).lower()}")
    return {"n": env.rule.n_out_of.n, "signed_by": [principals[r.signed_by] for r in env.rule.n_out_of.rules]}


def drop_key_policies(tx, event: dict) -> dict:
    """DropKeyPolicies: every authorisation, register entry and the parameters lose the key-level policy an
    earlier version of the contract put on them (:func:`drop_key_policy`), in key order; the keys it was
    removed from. Their values are not written: only their policies change."""
    dropped = []
    for object_type, name in ((keys.AUTHORISATION, "auth"), (keys.PARTY, "party")):
        for attrs, _value in tx.state.scan(object_type):
            full = tx.state.key((object_type, *attrs))
            if tx.stub.get_state_validation_parameter(full):
                tx.stub.set_state_validation_parameter(full, b"")
                dropped.append(f"{name}/{attrs[0]}")
    params_key = tx.state.key(keys.params())
    if tx.stub.get_state_validation_parameter(params_key):
        tx.stub.set_state_validation_parameter(params_key, b"")
        dropped.append("params")
    return {"dropped": dropped}
