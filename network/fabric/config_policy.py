"""Policies and signatures of config updates, evaluated the way the orderer does.

- ``parse_signature_policy`` / ``render_policy``: Fabric's policy language
  (``OR('CustomsMSP.admin', AND(...))``, ``OutOf(2, ...)``) ↔ protobuf, with the
  same encoding as Fabric's ``policydsl`` (no de-duplication of principals);
- ``sign_update``: an org admin's ``ConfigSignature`` (ECDSA P-256, SHA-256,
  low-S), made offline from an MSP directory;
- ``signers``: the signatures of a ConfigUpdateEnvelope checked against the
  channel config (signature valid? certificate issued by the org's CA? admin?);
- ``evaluate``: whether a set of signers satisfies a policy of the config —
  ImplicitMeta (ANY / ALL / MAJORITY of the sub-groups' policies) and
  Signature policies (NOutOf, SignedBy role principals), with Fabric's rules:
  one identity counts once, MAJORITY of n is n // 2 + 1.

The orderer stays the authority (``submit --force`` shows it refuses too); this
module lets every admin see before submitting whether an update will pass.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (decode_dss_signature,
                                                             encode_dss_signature)
from cryptography.x509.oid import NameOID
from fabric_protos.common import common_pb2, configtx_pb2, policies_pb2
from fabric_protos.msp import identities_pb2, msp_config_pb2, msp_principal_pb2

from ipledger.network.fabric.config_update import (ConfigError, Path_, group_at, msp_configs, policy_at, show)

ROLES = {"member": msp_principal_pb2.MSPRole.MEMBER, "admin": msp_principal_pb2.MSPRole.ADMIN,
         "client": msp_principal_pb2.MSPRole.CLIENT, "peer": msp_principal_pb2.MSPRole.PEER,
         "orderer": msp_principal_pb2.MSPRole.ORDERER}
ROLE_NAMES = {v: k for k, v in ROLES.items()}
RULES = {"ANY": policies_pb2.ImplicitMetaPolicy.ANY, "ALL": policies_pb2.ImplicitMetaPolicy.ALL,
         "MAJORITY": policies_pb2.ImplicitMetaPolicy.MAJORITY}
RULE_NAMES = {v: k for k, v in RULES.items()}
# Order of the P-256 group, for low-S signatures (Fabric refuses high-S ones).
_P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class PolicyError(ValueError):
    pass


# ----------------------------------------------------------------------------- the language

_TOKEN = re.compile(r"\s*(?:(?P<open>\()|(?P<close>\))|(?P<comma>,)|(?P<num>\d+)|"
                    r"'(?P<sq>[^']*)'|\"(?P<dq>[^\"]*)\"|(?P<word>[A-Za-z]+))")
_PRINCIPAL = re.compile(r"^([A-Za-z0-9.\-]+)\.(member|admin|client|peer|orderer)$")


def parse_signature_policy(text: str) -> policies_pb2.SignaturePolicyEnvelope:
    """``OR('A.admin', AND('B.peer', 'C.peer'))`` → SignaturePolicyEnvelope (policydsl's encoding)."""
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise PolicyError(f"cannot read policy at {text[pos:pos + 20]!r}")
        kind = m.lastgroup
        tokens.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    identities: list[msp_principal_pb2.MSPPrincipal] = []
    i = 0

    def expect(kind):
        nonlocal i
        if i >= len(tokens) or tokens[i][0] != kind:
            raise PolicyError(f"policy {text!r}: expected {kind} at token {i}")
        i += 1
        return tokens[i - 1][1]

    def expr() -> policies_pb2.SignaturePolicy:
        nonlocal i
        if i >= len(tokens):
            raise PolicyError(f"policy {text!r} ends too early")
        kind, val = tokens[i]
        if kind in ("sq", "dq"):
            i += 1
            m = _PRINCIPAL.match(val)
            if not m:
                raise PolicyError(f"principal {val!r}: use 'MSPID.role' with role "
                                  "member, admin, client, peer or orderer")
            role = msp_principal_pb2.MSPRole(msp_identifier=m.group(1), role=ROLES[m.group(2)])
            identities.append(msp_principal_pb2.MSPPrincipal(
                principal_classification=msp_principal_pb2.MSPPrincipal.ROLE,
                principal=role.SerializeToString()))
            return policies_pb2.SignaturePolicy(signed_by=len(identities) - 1)
        if kind != "word":
            raise PolicyError(f"policy {text!r}: unexpected {val!r}")
        gate = val.lower()
        if gate not in ("and", "or", "outof"):
            raise PolicyError(f"policy {text!r}: unknown gate {val!r} (AND, OR, OutOf)")
        i += 1
        expect("open")
        n = None
        if gate == "outof":
            n = int(expect("num"))
            expect("comma")
        rules = [expr()]
        while i < len(tokens) and tokens[i][0] == "comma":
            i += 1
            rules.append(expr())
        expect("close")
        if gate == "and":
            n = len(rules)
        elif gate == "or":
            n = 1
        if not 0 < n <= len(rules):
            raise PolicyError(f"policy {text!r}: OutOf({n}, …) over {len(rules)} rules")
        return policies_pb2.SignaturePolicy(
            n_out_of=policies_pb2.SignaturePolicy.NOutOf(n=n, rules=rules))

    rule = expr()
    if i != len(tokens):
        raise PolicyError(f"policy {text!r}: trailing text")
    return policies_pb2.SignaturePolicyEnvelope(version=0, rule=rule, identities=identities)


def signature_policy(text: str) -> policies_pb2.Policy:
    return policies_pb2.Policy(type=policies_pb2.Policy.SIGNATURE,
                               value=parse_signature_policy(text).SerializeToString())


def implicit_meta_policy(text: str) -> policies_pb2.Policy:
    """``MAJORITY Admins`` → Policy."""
    parts = text.split()
    if len(parts) != 2 or parts[0].upper() not in RULES:
        raise PolicyError(f"implicit policy {text!r}: use 'ANY|ALL|MAJORITY SubPolicy'")
    meta = policies_pb2.ImplicitMetaPolicy(sub_policy=parts[1], rule=RULES[parts[0].upper()])
    return policies_pb2.Policy(type=policies_pb2.Policy.IMPLICIT_META,
                               value=meta.SerializeToString())


def _principal_text(p: msp_principal_pb2.MSPPrincipal) -> str:
    if p.principal_classification == msp_principal_pb2.MSPPrincipal.ROLE:
        r = msp_principal_pb2.MSPRole()
        r.ParseFromString(p.principal)
        return f"'{r.msp_identifier}.{ROLE_NAMES.get(r.role, r.role)}'"
    if p.principal_classification == msp_principal_pb2.MSPPrincipal.IDENTITY:
        sid = identities_pb2.SerializedIdentity()
        sid.ParseFromString(p.principal)
        return f"<identity of {sid.mspid}>"
    return f"<principal kind {p.principal_classification}>"


def render_signature_policy(env: policies_pb2.SignaturePolicyEnvelope) -> str:
    def rule(r: policies_pb2.SignaturePolicy) -> str:
        if r.WhichOneof("Type") == "signed_by":
            if r.signed_by >= len(env.identities):
                return f"<missing principal {r.signed_by}>"
            return _principal_text(env.identities[r.signed_by])
        subs = [rule(s) for s in r.n_out_of.rules]
        n = r.n_out_of.n
        if n == 1:
            return f"OR({', '.join(subs)})"
        if n == len(subs):
            return f"AND({', '.join(subs)})"
        return f"OutOf({n}, {', '.join(subs)})"
    return rule(env.rule)


def render_policy(policy: policies_pb2.Policy) -> str:
    if policy.type == policies_pb2.Policy.IMPLICIT_META:
        m = policies_pb2.ImplicitMetaPolicy()
        m.ParseFromString(policy.value)
        return f"{RULE_NAMES.get(m.rule, m.rule)} {m.sub_policy}"
    if policy.type == policies_pb2.Policy.SIGNATURE:
        env = policies_pb2.SignaturePolicyEnvelope()
        env.ParseFromString(policy.value)
        return render_signature_policy(env)
    return f"<policy type {policy.type}>"


# ----------------------------------------------------------------------------- signing

def load_msp_signer(msp_dir: Path) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    """(certificate PEM, private key) of an MSP directory (signcerts/, keystore/)."""
    msp_dir = Path(msp_dir)
    certs = sorted((msp_dir / "signcerts").glob("*.pem"))
    keys = sorted(p for p in (msp_dir / "keystore").glob("*") if p.is_file()) \
        if (msp_dir / "keystore").is_dir() else []
    if len(certs) != 1 or len(keys) != 1:
        raise PolicyError(f"{msp_dir}: need exactly one signcerts/*.pem and one keystore/* "
                          f"(found {len(certs)} and {len(keys)})")
    mode = stat.S_IMODE(keys[0].stat().st_mode)
    if mode & 0o077:
        raise PolicyError(f"private key {keys[0]} has mode {mode:04o}, wider than 0600")
    key = serialization.load_pem_private_key(keys[0].read_bytes(), password=None)
    cert_pem = certs[0].read_bytes()
    cert = x509.load_pem_x509_certificate(cert_pem)
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(*der) != key.public_key().public_bytes(*der):
        raise PolicyError(f"{keys[0]} is not the key of {certs[0]}")
    return cert_pem, key


def ecdsa_sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    if s > _P256_N // 2:
        s = _P256_N - s
    return encode_dss_signature(r, s)


def sign_update(cue: configtx_pb2.ConfigUpdateEnvelope, msp_id: str, cert_pem: bytes,
                key: ec.EllipticCurvePrivateKey) -> configtx_pb2.ConfigSignature:
    """A ConfigSignature over the envelope's config update (Fabric's signconfigtx)."""
    creator = identities_pb2.SerializedIdentity(mspid=msp_id, id_bytes=cert_pem)
    header = common_pb2.SignatureHeader(creator=creator.SerializeToString(), nonce=os.urandom(24))
    header_bytes = header.SerializeToString()
    return configtx_pb2.ConfigSignature(
        signature_header=header_bytes,
        signature=ecdsa_sign(key, header_bytes + cue.config_update))


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

@dataclass
class Evaluation:
    path: str
    rule: str
    satisfied: bool
    needed: int = 0
    have: int = 0
    children: list["Evaluation"] = field(default_factory=list)
    detail: str = ""

    def as_dict(self) -> dict:
        return {"policy": self.path, "rule": self.rule, "satisfied": self.satisfied,
                "needed": self.needed, "have": self.have, "detail": self.detail,
                "children": [c.as_dict() for c in self.children]}

    def lines(self, indent: str = "") -> list[str]:
        mark = "satisfied" if self.satisfied else "NOT satisfied"
        count = f" ({self.have} of {self.needed} needed)" if self.needed or self.children else ""
        out = [f"{indent}{self.path}: {self.rule} → {mark}{count}"
               + (f" — {self.detail}" if self.detail else "")]
        for c in self.children:
            out += c.lines(indent + "    ")
        return out


def _principal_ok(p: msp_principal_pb2.MSPPrincipal, s: Signer) -> bool:
    if p.principal_classification == msp_principal_pb2.MSPPrincipal.ROLE:
        r = msp_principal_pb2.MSPRole()
        r.ParseFromString(p.principal)
        return s.msp_id == r.msp_identifier and ROLE_NAMES.get(r.role, "?") in s.roles
    if p.principal_classification == msp_principal_pb2.MSPPrincipal.IDENTITY:
        return p.principal == s.creator
    return False


def _signature_rule(env: policies_pb2.SignaturePolicyEnvelope,
                    ids: list[Signer]) -> tuple[bool, list[Signer]]:
    """Fabric's compiled signature policy: greedy, each identity used once per branch.
    Returns (satisfied, the signers it used)."""
    def compile_(r):
        if r.WhichOneof("Type") == "signed_by":
            idx = r.signed_by
            if idx >= len(env.identities):
                return lambda used: False

            def signed_by(used):
                for i, s in enumerate(ids):
                    if not used[i] and _principal_ok(env.identities[idx], s):
                        used[i] = True
                        return True
                return False
            return signed_by
        subs = [compile_(x) for x in r.n_out_of.rules]
        n = r.n_out_of.n

        def n_out_of(used):
            verified = 0
            for sub in subs:
                trial = list(used)
                if sub(trial):
                    verified += 1
                    used[:] = trial
            return verified >= n
        return n_out_of
    used = [False] * len(ids)
    ok = compile_(env.rule)(used)
    return ok, [s for s, u in zip(ids, used) if u]


def _cn(s: Signer) -> str:
    if s.cert is None:
        return ""
    cns = s.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return cns[0].value if cns else s.subject


def evaluate(config: configtx_pb2.Config, path: Path_, signer_list: list[Signer]) -> Evaluation:
    """Does ``signer_list`` satisfy the policy at ``path`` of ``config``?"""
    ids = [s for s in signer_list if s.counts]
    cp = policy_at(config, path)
    if cp is None:
        return Evaluation(show(path), "(missing)", False, detail="no such policy: it rejects")
    policy = cp.policy
    rule = render_policy(policy)
    if policy.type == policies_pb2.Policy.SIGNATURE:
        env = policies_pb2.SignaturePolicyEnvelope()
        env.ParseFromString(policy.value)
        ok, used = _signature_rule(env, ids)
        detail = (f"by {', '.join(s.msp_id + ' ' + _cn(s) for s in used)}" if ok
                  else "no signature it accepts")
        return Evaluation(show(path), rule, ok, detail=detail)
    if policy.type == policies_pb2.Policy.IMPLICIT_META:
        meta = policies_pb2.ImplicitMetaPolicy()
        meta.ParseFromString(policy.value)
        group = group_at(config, path[:-1])
        children = [evaluate(config, path[:-1] + (name, meta.sub_policy), signer_list)
                    for name in sorted(group.groups)]
        n = len(children)
        needed = {policies_pb2.ImplicitMetaPolicy.ANY: 1,
                  policies_pb2.ImplicitMetaPolicy.ALL: n,
                  policies_pb2.ImplicitMetaPolicy.MAJORITY: n // 2 + 1}[meta.rule]
        if n == 0:
            needed = 0
        have = sum(c.satisfied for c in children)
        return Evaluation(show(path), rule, have >= needed, needed, have, children)
    return Evaluation(show(path), rule, False, detail="policy type not evaluated here")


def parse_policy_path(text: str) -> Path_:
    """``Application/Admins`` or ``/Channel/Application/Admins`` → ("Channel", ...)."""
    parts = tuple(p for p in text.strip().split("/") if p)
    if not parts:
        raise ConfigError("empty policy path")
    if parts[0] != "Channel":
        parts = ("Channel",) + parts
    return parts
