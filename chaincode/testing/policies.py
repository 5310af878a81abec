"""Key-level endorsement policies as earlier versions of the contract set them, for tests of their removal.

``set_state_validation_parameter`` takes a serialized ``common.SignaturePolicyEnvelope``: :func:`signature_policy`
builds the same bytes as the Go shim's ``statebased.NewStateEP`` + ``AddOrgs(RoleTypePeer, ...)``; :func:`describe`
reads one back.
"""
from __future__ import annotations

from fabric_protos.common import policies_pb2
from fabric_protos.msp import msp_principal_pb2

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


def describe(policy: bytes) -> dict:
    """A readable form of a serialized SignaturePolicyEnvelope."""
    env = policies_pb2.SignaturePolicyEnvelope.FromString(policy)
    principals = []
    for p in env.identities:
        role = msp_principal_pb2.MSPRole.FromString(p.principal)
        principals.append(f"{role.msp_identifier}.{msp_principal_pb2.MSPRole.MSPRoleType.Name(role.role).lower()}")
    return {"n": env.rule.n_out_of.n, "signed_by": [principals[r.signed_by] for r in env.rule.n_out_of.rules]}
