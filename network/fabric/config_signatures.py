"""Signatures of a config update, as an org admin makes them and reads them before submitting.

- ``sign_update``: an org admin's ``ConfigSignature`` (Fabric's signconfigtx: ECDSA
  P-256 over SHA-256 of signature header + config update, low-S), made offline with
  the identity of an MSP directory (:func:`~.local_msp.load_identity`);
- ``signers``: every signature of a ConfigUpdateEnvelope checked by the channel's
  MSPs, built from the config as the block verifier builds them (:mod:`.msp` via
  :class:`~.config.ChannelConfig`): an organisation of the channel? an identity its
  MSP deserializes and validates (certification path to its CAs, not revoked, OUs
  and NodeOUs)? its signature valid as Fabric checks it (low S)? which roles: the
  member / admin / client / peer / orderer principals it satisfies, as the orderer
  evaluates them. Fabric's MSP does not check expiry; here the certificate must also
  be in date at the time of the check (by default now, when a submission is judged).
  Later duplicates of one identity (MSP id + identity id, as Fabric) are marked;
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
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fabric_protos.common import common_pb2, configtx_pb2
from fabric_protos.msp import identities_pb2, msp_principal_pb2

from ipledger.network.fabric.config import ROOT, ChannelConfig, ConfigError, Path_, msp_configs, show
from ipledger.network.fabric.msp import Identity, MSPError, MSPManager, verify_signature
from ipledger.network.fabric.policy import ROLES, Evaluation, PolicyError, PolicyManager
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
    creator: bytes  # serialized identity, as the signature header carries it
    cert: x509.Certificate | None
    signature_valid: bool
    known_msp: bool
    cert_valid: bool  # a valid identity of its MSP (Fabric's MSP validation) and in date now
    roles: set[str] = field(default_factory=set)  # member/admin/client/peer/orderer
    problem: str = ""
    duplicate: bool = False
    note: str = ""
    identity: Identity | None = field(default=None, repr=False, compare=False)  # deserialized by its MSP

    @property
    def counts(self) -> bool:
        return self.signature_valid and self.cert_valid and not self.duplicate

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def key(self) -> str:
        """What Fabric de-duplicates signatures by: MSP id + identity id (the hash of the
        sanitized certificate), or the serialized identity if it does not deserialize."""
        return self.identity.key if self.identity is not None else self.creator.hex()

    def describe(self) -> str:
        """MSP id and common name: who an evaluation says signed."""
        return f"{self.msp_id} {_cn(self)}"

    def satisfies(self, principal: msp_principal_pb2.MSPPrincipal) -> None:
        """Raise MSPError unless this signer satisfies ``principal`` as its channel MSP
        decides (:meth:`.msp.MSP.satisfies_principal`, what the orderer evaluates)."""
        if self.identity is None or not self.cert_valid:
            raise MSPError(f"{self.describe()} is not a valid identity of the channel")
        self.identity.satisfies(principal)

    def as_dict(self) -> dict:
        return {"msp_id": self.msp_id, "subject": self.subject, "admin": self.is_admin,
                "roles": sorted(self.roles), "signature_valid": self.signature_valid,
                "known_msp": self.known_msp, "cert_valid": self.cert_valid,
                "duplicate": self.duplicate, "counts": self.counts,
                "problem": self.problem, "note": self.note}


def channel_msps(config: configtx_pb2.Config) -> MSPManager:
    """The channel's MSPs as the verifier builds them (:class:`~.config.ChannelConfig`).
    ConfigError if the config's MSPs or policies do not build (the orderer would not
    have this config in force)."""
    return ChannelConfig.from_config(config, block_number=-1).msps  # the number is not used here


def _role_principal(msp_id: str, role: str) -> msp_principal_pb2.MSPPrincipal:
    return msp_principal_pb2.MSPPrincipal(
        principal_classification=msp_principal_pb2.MSPPrincipal.ROLE,
        principal=msp_principal_pb2.MSPRole(msp_identifier=msp_id,
                                            role=ROLES[role]).SerializeToString())


def _roles(identity: Identity) -> set[str]:
    """The roles of the channel config's principals that the identity satisfies."""
    out = set()
    for role in ROLES:
        try:
            identity.satisfies(_role_principal(identity.msp_id, role))
        except MSPError:
            continue
        out.add(role)
    return out


def _in_date(cert: x509.Certificate, now: dt.datetime) -> str:
    """Why the certificate is not valid at ``now`` ("" if it is)."""
    if now < cert.not_valid_before_utc:
        return f"certificate not yet valid (from {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC)"
    if now > cert.not_valid_after_utc:
        return f"certificate expired ({cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC)"
    return ""


def signers(config: configtx_pb2.Config, cue: configtx_pb2.ConfigUpdateEnvelope,
            now: dt.datetime | None = None) -> list[Signer]:
    """Every signature of the envelope, checked by the channel's MSPs, certificates in date
    at ``now`` (default: the current time, when the orderer will check a submission);
    later duplicates of one identity are marked."""
    channel = _Channel.of(config, now)
    return mark_duplicates([channel.check_signature(sig, cue.config_update)
                            for sig in cue.signatures])


def mark_duplicates(sigs: list[Signer]) -> list[Signer]:
    """Mark every signer that counts but whose identity counted before (Fabric counts an
    identity once per signature set)."""
    seen: set[str] = set()
    for s in sigs:
        s.duplicate = False
        if s.counts:
            if s.key in seen:
                s.duplicate = True
            seen.add(s.key)
    return sigs


def signer_for_identity(config: configtx_pb2.Config, msp_id: str, cert_pem: bytes,
                        note: str = "", now: dt.datetime | None = None) -> Signer:
    """A signer assumed to sign validly (e.g. the submitter the peer CLI adds), its identity
    checked like :func:`signers` checks them."""
    creator = identities_pb2.SerializedIdentity(mspid=msp_id, id_bytes=cert_pem)
    s = _Channel.of(config, now).identity(creator.SerializeToString())
    s.signature_valid = True
    s.note = note
    return s


@dataclass
class _Channel:
    """What checking a signer needs: the channel's MSPs (or why they do not build), the MSP
    ids of its config, and the time certificates must be valid at."""

    msps: MSPManager
    known: set[str]
    broken: str
    now: dt.datetime

    @classmethod
    def of(cls, config: configtx_pb2.Config, now: dt.datetime | None) -> "_Channel":
        now = now if now is not None else dt.datetime.now(dt.timezone.utc)
        known = set(msp_configs(config))
        try:
            return cls(channel_msps(config), known, "", now)
        except ConfigError as exc:
            return cls(MSPManager({}), known,
                       f"the channel configuration's MSPs cannot be built: {exc}", now)

    def identity(self, creator_bytes: bytes) -> Signer:
        creator = identities_pb2.SerializedIdentity()
        try:
            creator.ParseFromString(creator_bytes)
            cert = x509.load_pem_x509_certificate(creator.id_bytes)
            subject = cert.subject.rfc4514_string()
        except Exception:  # noqa: BLE001 - any undecodable creator is just not a valid signer
            return Signer("?", "?", creator_bytes, None, False, False, False,
                          problem="undecodable signer identity")
        s = Signer(creator.mspid, subject, creator_bytes, cert, signature_valid=False,
                   known_msp=creator.mspid in self.known, cert_valid=False)
        if not s.known_msp:
            s.problem = f"{creator.mspid} is not an organisation of the channel"
            return s
        if self.broken:
            s.problem = self.broken
            return s
        try:
            s.identity = self.msps.deserialize(creator_bytes)
        except MSPError as exc:
            s.problem = f"invalid identity: {exc}"
            return s
        try:
            s.identity.validate()
        except MSPError as exc:
            s.problem = f"invalid identity: {exc}"
        # Fabric matches a certificate listed among the MSP's admins without validating it:
        # such a signer still satisfies the admin role, and nothing else.
        roles = _roles(s.identity)
        if s.problem and not roles:
            return s
        expiry = _in_date(cert, self.now)
        if expiry:
            s.problem = "; ".join(p for p in (s.problem, expiry) if p)
            return s
        if s.problem:
            s.problem += " (it counts only as an admin the MSP lists by certificate, as in Fabric)"
        s.cert_valid = True
        s.roles = roles
        return s

    def check_signature(self, sig: configtx_pb2.ConfigSignature, config_update: bytes) -> Signer:
        header = common_pb2.SignatureHeader()
        try:
            header.ParseFromString(sig.signature_header)
        except Exception:  # noqa: BLE001
            return Signer("?", "?", b"", None, False, False, False, problem="undecodable header")
        s = self.identity(header.creator)
        if s.cert is None:
            return s
        try:
            verify_signature(s.cert, sig.signature_header + config_update, sig.signature)
            s.signature_valid = True
        except MSPError as exc:
            s.problem = s.problem or _signature_problem(exc)
        return s


def _signature_problem(exc: MSPError) -> str:
    text = str(exc)
    return "signature does not verify" if text == "the signature does not verify" else text


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
