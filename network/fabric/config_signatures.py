"""Signatures of a config update, as an org admin makes them and reads them before submitting.

- ``sign_update``: an org admin's ``ConfigSignature`` (Fabric's signconfigtx: ECDSA
  P-256 over SHA-256 of signature header + config update, low-S), made offline with
  the identity of an MSP directory (:func:`~.local_msp.load_identity`);
- ``signers``: every signature of a ConfigUpdateEnvelope checked against the channel
  config (signature valid? an organisation of the channel? certificate issued by its
  CA and in date? which roles: member, and admin / client / peer / orderer by the
  MSP's admins and NodeOUs?), later duplicates of one identity marked;
  ``signer_for_identity``: the submitter's own signature, which the peer CLI adds;
- ``evaluate``: whether the signers that count satisfy a policy of the config — the
  policy library's evaluation (:mod:`.policy`, the one the block verifier uses) of
  the channel's policy tree, explained as an :class:`~.policy.Evaluation`.

The orderer stays the authority (``submit --force`` shows it refuses too); this
module lets every admin see before submitting whether an update will pass.
"""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fabric_protos.common import common_pb2, configtx_pb2
from fabric_protos.msp import identities_pb2, msp_config_pb2, msp_principal_pb2

from ipledger.network.fabric.config import ROOT, Path_, msp_configs, show
from ipledger.network.fabric.msp import ROLE_NAMES, MSPError
from ipledger.network.fabric.policy import Evaluation, PolicyError, PolicyManager
from ipledger.network.fabric.signing import Signer as KeySigner


# ----------------------------------------------------------------------------- signing

def sign_update(cue: configtx_pb2.ConfigUpdateEnvelope, msp_id: str, cert_pem: bytes,
                key: KeySigner | ec.EllipticCurvePrivateKey) -> configtx_pb2.ConfigSignature:
    """A ConfigSignature over the envelope's config update (Fabric's signconfigtx)."""
    signer = key if isinstance(key, KeySigner) else KeySigner(key)
    creator = identities_pb2.SerializedIdentity(mspid=msp_id, id_bytes=cert_pem)
    header = common_pb2.SignatureHeader(creator=creator.SerializeToString(), nonce=os.urandom(24))
    header_bytes = header.SerializeToString()
    return configtx_pb2.ConfigSignature(
        signature_header=header_bytes,
        signature=signer.sign(header_bytes + cue.config_update))


# ----------------------------------------------------------------------------- identities

@dataclass
class Signer:
    """One signature of an update, checked against the channel config."""

    msp_id: str
    subject: str
    creator: bytes  # serialized identity (what Fabric de-duplicates on)
    cert: x509.Certificate | None
    signature_valid: bool
    known_msp: bool
    cert_valid: bool
    roles: set[str] = field(default_factory=set)  # member/admin/client/peer/orderer
    problem: str = ""
    duplicate: bool = False
    note: str = ""

    @property
    def counts(self) -> bool:
        return self.signature_valid and self.cert_valid and not self.duplicate

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def describe(self) -> str:
        """MSP id and common name: who an evaluation says signed."""
        return f"{self.msp_id} {_cn(self)}"

    def satisfies(self, principal: msp_principal_pb2.MSPPrincipal) -> None:
        """Raise MSPError unless this signer satisfies ``principal``: a role of its MSP that
        the channel config gives it, or exactly its serialized identity (other kinds: never)."""
        try:
            if principal.principal_classification == msp_principal_pb2.MSPPrincipal.ROLE:
                r = msp_principal_pb2.MSPRole.FromString(principal.principal)
                if self.msp_id == r.msp_identifier and ROLE_NAMES.get(r.role, "?") in self.roles:
                    return
            elif principal.principal_classification == msp_principal_pb2.MSPPrincipal.IDENTITY:
                if principal.principal == self.creator:
                    return
        except Exception as exc:  # noqa: BLE001 - a principal that does not parse satisfies nothing
            raise MSPError(f"unreadable principal: {exc}") from None
        raise MSPError(f"{self.describe()} does not satisfy the principal")

    def as_dict(self) -> dict:
        return {"msp_id": self.msp_id, "subject": self.subject, "admin": self.is_admin,
                "roles": sorted(self.roles), "signature_valid": self.signature_valid,
                "known_msp": self.known_msp, "cert_valid": self.cert_valid,
                "duplicate": self.duplicate, "counts": self.counts,
                "problem": self.problem, "note": self.note}


def _ous(cert: x509.Certificate) -> list[str]:
    return [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]


def _load_pems(pems) -> list[x509.Certificate]:
    out = []
    for p in pems:
        try:
            out.append(x509.load_pem_x509_certificate(p))
        except ValueError:
            continue
    return out


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def check_identity(msp: msp_config_pb2.FabricMSPConfig, cert: x509.Certificate,
                   now: dt.datetime | None = None) -> tuple[bool, set[str], str]:
    """(valid, roles, problem) of a certificate for an MSP definition of the channel."""
    now = now or dt.datetime.now(dt.timezone.utc)
    roots = _load_pems(msp.root_certs)
    inters = _load_pems(msp.intermediate_certs)
    chained = any(_issued_by(cert, r) for r in roots) or any(
        _issued_by(cert, i) and any(_issued_by(i, r) for r in roots) for i in inters)
    if not chained:
        return False, set(), f"certificate not issued by a CA of {msp.name}"
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        return False, set(), "certificate expired or not yet valid"
    roles = {"member"}
    der = cert.public_bytes(serialization.Encoding.DER)
    if any(a.public_bytes(serialization.Encoding.DER) == der for a in _load_pems(msp.admins)):
        roles.add("admin")
    ous = msp.fabric_node_ous
    if ous.enable:
        cert_ous = _ous(cert)
        for role in ("admin", "client", "peer", "orderer"):
            ident = getattr(ous, f"{role}_ou_identifier").organizational_unit_identifier
            if ident and ident in cert_ous:
                roles.add(role)
    return True, roles, ""


def signers(config: configtx_pb2.Config, cue: configtx_pb2.ConfigUpdateEnvelope) -> list[Signer]:
    """Every signature of the envelope, checked; later duplicates of one identity are marked."""
    msps = msp_configs(config)
    out: list[Signer] = []
    seen: set[bytes] = set()
    for sig in cue.signatures:
        out.append(_check_signature(msps, sig, cue.config_update))
    for s in out:
        if s.counts:
            if s.creator in seen:
                s.duplicate = True
            seen.add(s.creator)
    return out


def signer_for_identity(config: configtx_pb2.Config, msp_id: str, cert_pem: bytes,
                        note: str = "") -> Signer:
    """A signer assumed to sign validly (e.g. the submitter the peer CLI adds)."""
    creator = identities_pb2.SerializedIdentity(mspid=msp_id, id_bytes=cert_pem)
    s = _identity(msp_configs(config), creator.SerializeToString())
    s.signature_valid = True
    s.note = note
    return s


def _identity(msps: dict, creator_bytes: bytes) -> Signer:
    creator = identities_pb2.SerializedIdentity()
    try:
        creator.ParseFromString(creator_bytes)
        cert = x509.load_pem_x509_certificate(creator.id_bytes)
    except Exception:  # noqa: BLE001 - any undecodable creator is just not a valid signer
        return Signer("?", "?", creator_bytes, None, False, False, False,
                      problem="undecodable signer identity")
    s = Signer(creator.mspid, cert.subject.rfc4514_string(), creator_bytes, cert,
               signature_valid=False, known_msp=creator.mspid in msps, cert_valid=False)
    if not s.known_msp:
        s.problem = f"{creator.mspid} is not an organisation of the channel"
        return s
    s.cert_valid, s.roles, s.problem = check_identity(msps[creator.mspid], cert)
    return s


def _check_signature(msps: dict, sig: configtx_pb2.ConfigSignature, config_update: bytes) -> Signer:
    header = common_pb2.SignatureHeader()
    try:
        header.ParseFromString(sig.signature_header)
    except Exception:  # noqa: BLE001
        return Signer("?", "?", b"", None, False, False, False, problem="undecodable header")
    s = _identity(msps, header.creator)
    if s.cert is None:
        return s
    try:
        s.cert.public_key().verify(sig.signature, sig.signature_header + config_update,
                                   ec.ECDSA(hashes.SHA256()))
        s.signature_valid = True
    except (InvalidSignature, ValueError, TypeError, AttributeError):
        s.problem = s.problem or "signature does not verify"
    return s


# ----------------------------------------------------------------------------- evaluation

def _cn(s: Signer) -> str:
    if s.cert is None:
        return ""
    cns = s.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return cns[0].value if cns else s.subject


def evaluate(config: configtx_pb2.Config, path: Path_, signer_list: list[Signer]) -> Evaluation:
    """Does ``signer_list`` (those of them that count) satisfy the policy at ``path`` of ``config``?"""
    try:
        policies = PolicyManager(config.channel_group, ROOT)
    except PolicyError as exc:
        return Evaluation(show(path), "(not evaluated)", False,
                          detail=f"the channel's policies do not compile: {exc}")
    return policies.get(show(path)).explain([s for s in signer_list if s.counts])
