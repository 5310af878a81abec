"""Channel MSPs rebuilt from the channel configuration, to validate identities and signatures.

This follows Fabric's X.509 MSP (``msp/mspimpl.go``, ``mspimplvalidate.go``,
``mspimplsetup.go``, ``identities.go``) in its v1.4.3+ behaviour (what V2_0+/V3_0
channels use):

- an identity is a PEM certificate named by ``SerializedIdentity{mspid, id_bytes}``;
  deserializing it needs a certification path to the MSP's roots (to "sanitize" it:
  ECDSA certificate signatures are re-encoded with a low S, so that identifiers
  computed from the DER are unique);
- validation: supported key (ECDSA or Ed25519), not a CA, exactly one chain through
  the MSP's intermediate CAs to a root, with validity checked *at the leaf's
  NotBefore + 1 s* (Fabric does not check expiry here), the issuing CA a leaf of
  the CA tree, not revoked by a CRL of the config, OU identifiers if configured,
  and with NodeOUs on exactly one of the client/peer/admin/orderer OUs;
- the identity id is SHA-256 of the sanitized DER; the certifiers identifier is
  SHA-256 over the chain above the leaf;
- a signature is ECDSA over SHA-256 of the message with S in the lower half of the
  group order (Fabric refuses high-S; the orders and the rule are :mod:`.signing`'s),
  or Ed25519 over the message;
- principals: ROLE (member / admin / client / peer / orderer), IDENTITY,
  ORGANIZATION_UNIT, ANONYMITY, COMBINED.

Not implemented (reported as unsupported where met): Idemix MSPs, RSA keys, the
Go 1.14 legacy name-constraint rule, extended key usage checks.

One file because it is one type in Fabric too (``bccspmsp``): setting an MSP up,
validating its identities and matching them to principals all walk the same CA
chains (sanitized once, cached per identity), and splitting them would only pass
those internals between modules. :class:`MSPError` is also what loading a local
MSP directory raises (:mod:`.local_msp`).
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtensionOID, NameOID
from fabric_protos.msp import identities_pb2, msp_config_pb2, msp_principal_pb2

from ipledger.network.fabric.der import element, read_element
from ipledger.network.fabric.signing import CURVE_ORDERS, is_low_s, low_s

ROLE_NAMES = {v: k.lower() for k, v in msp_principal_pb2.MSPRole.MSPRoleType.items()}
ONE_SECOND = dt.timedelta(seconds=1)

class MSPError(ValueError):
    """An identity cannot be deserialized, is not valid, or does not satisfy a principal;
    or an MSP directory cannot give a usable identity."""


# ----------------------------------------------------------------------------- certificates

def sanitize_certificate(cert: x509.Certificate, parent: x509.Certificate) -> x509.Certificate:
    """``cert`` with its ECDSA signature re-encoded with a low S (Fabric's sanitizeCert)."""
    key = parent.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return cert
    if not isinstance(cert.signature_algorithm_parameters, ec.ECDSA):
        return cert
    order = CURVE_ORDERS.get(key.curve.name)
    if order is None or is_low_s(cert.signature, order):
        return cert
    new_sig = low_s(cert.signature, order)
    raw = cert.public_bytes(Encoding.DER)
    start, _ = read_element(raw, 0)            # outer SEQUENCE
    _, tbs_end = read_element(raw, start)      # tbsCertificate
    _, alg_end = read_element(raw, tbs_end)    # signatureAlgorithm
    body = raw[start:alg_end] + element(0x03, b"\x00" + new_sig)  # signatureValue BIT STRING
    return x509.load_der_x509_certificate(element(0x30, body))


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def verify_signature(cert: x509.Certificate, message: bytes, signature: bytes) -> None:
    """Raise MSPError unless ``signature`` is the certificate key's signature of ``message``
    as Fabric's MSP checks it (ECDSA: SHA-256 digest, low S; Ed25519: the message)."""
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        order = CURVE_ORDERS.get(key.curve.name)
        if order is None:
            raise MSPError(f"unsupported curve {key.curve.name}")
        try:
            low = is_low_s(signature, order)
        except ValueError:
            raise MSPError("the signature is not a DER-encoded ECDSA signature") from None
        if not low:
            raise MSPError("the ECDSA signature has a high S value (Fabric accepts only low-S)")
        digest = hashlib.sha256(message).digest()
        try:
            key.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        except InvalidSignature:
            raise MSPError("the signature does not verify") from None
        return
    if isinstance(key, ed25519.Ed25519PublicKey):
        try:
            key.verify(signature, message)
        except InvalidSignature:
            raise MSPError("the signature does not verify") from None
        return
    raise MSPError(f"unsupported public key type {type(key).__name__}")


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value.ca)
    except x509.ExtensionNotFound:
        return False


def _path_length(cert: x509.Certificate) -> int | None:
    try:
        return cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value.path_length
    except x509.ExtensionNotFound:
        return None


def _ski(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_KEY_IDENTIFIER).value.digest
    except x509.ExtensionNotFound:
        return None


def _valid_at(cert: x509.Certificate, when: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= when <= cert.not_valid_after_utc


def _load_pem_certs(pem: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem)
    except Exception as exc:  # noqa: BLE001 - ValueError, x509.InvalidVersion, ...
        raise MSPError(f"not a PEM certificate: {exc}") from None


def cert_label(cert: x509.Certificate) -> str:
    try:
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(cns[0].value) if cns else cert.subject.rfc4514_string()
    except ValueError:
        return "(unreadable subject)"


# ----------------------------------------------------------------------------- identity

@dataclass(eq=False)
class Identity:
    """A deserialized identity of one MSP of the channel."""
    msp: "MSP"
    cert: x509.Certificate         # sanitized
    der: bytes                     # sanitized DER
    id: str                        # hex SHA-256 of der
    _validation: tuple[bool, str] | None = field(default=None, repr=False)

    @property
    def msp_id(self) -> str:
        return self.msp.name

    @property
    def key(self) -> str:
        """What Fabric de-duplicates signature sets by (MSP id + identity id)."""
        return self.msp.name + self.id

    @property
    def ous(self) -> list[str]:
        return [str(a.value) for a in self.cert.subject.get_attributes_for_oid(
            NameOID.ORGANIZATIONAL_UNIT_NAME)]

    @property
    def role(self) -> str | None:
        """The NodeOU role (client/peer/admin/orderer) the certificate carries, if any."""
        for role, ou in self.msp.node_ous.items():
            if ou is not None and ou[0] in self.ous:
                return role
        return None

    def describe(self) -> str:
        role = self.role
        return f"{self.msp_id} {cert_label(self.cert)}" + (f" ({role})" if role else "")

    def verify(self, message: bytes, signature: bytes) -> None:
        verify_signature(self.cert, message, signature)

    def validate(self) -> None:
        if self._validation is None:
            try:
                self.msp._validate(self)
                self._validation = (True, "")
            except MSPError as exc:
                self._validation = (False, str(exc))
        ok, why = self._validation
        if not ok:
            raise MSPError(why)

    def satisfies(self, principal: msp_principal_pb2.MSPPrincipal) -> None:
        self.msp.satisfies_principal(self, principal)


# ----------------------------------------------------------------------------- MSP

class MSP:
    """One X.509 MSP as the channel configuration defines it."""

    def __init__(self, conf: msp_config_pb2.FabricMSPConfig):
        self.name = conf.name
        if not conf.root_certs:
            raise MSPError(f"MSP {self.name}: no root CA certificate")
        roots = [c for pem in conf.root_certs for c in _load_pem_certs(pem)]
        inters = [c for pem in conf.intermediate_certs for c in _load_pem_certs(pem)]
        # Roots are sanitized against themselves; intermediates against their issuer.
        self.roots = [sanitize_certificate(c, c) if _issued_by(c, c) else c for c in roots]
        self.intermediates = inters   # as given, to find the issuers they are sanitized against
        sanitized = []
        for c in inters:
            chain = self._unique_chain(c, c.not_valid_before_utc + ONE_SECOND)
            sanitized.append(sanitize_certificate(c, chain[1]) if len(chain) > 1 else c)
        self.intermediates = sanitized
        for c in self.roots + self.intermediates:
            if not _is_ca(c):
                raise MSPError(f"MSP {self.name}: CA certificate {cert_label(c)} lacks the CA flag")
        # Issuers of intermediate CAs are internal nodes: identities must hang off leaves.
        self.internal: set[bytes] = set()
        for c in self.intermediates:
            chain = self._unique_chain(c, c.not_valid_before_utc + ONE_SECOND)
            self.internal.update(der(p) for p in chain[1:])
        self.crls = []
        for pem in conf.revocation_list:
            try:
                self.crls.append(x509.load_pem_x509_crl(pem))
            except ValueError as exc:
                raise MSPError(f"MSP {self.name}: bad CRL: {exc}") from None
        self.admins: set[bytes] = set()
        for pem in conf.admins:
            for c in _load_pem_certs(pem):
                try:
                    self.admins.add(der(self._sanitize(c)))
                except MSPError:
                    self.admins.add(der(c))
        self.ou_identifiers: dict[str, list[bytes]] = {}
        for oi in conf.organizational_unit_identifiers:
            cid = self._certifiers_identifier(oi.certificate)
            self.ou_identifiers.setdefault(oi.organizational_unit_identifier, []).append(cid)
        self.node_ous: dict[str, tuple[str, bytes | None] | None] = {
            "client": None, "peer": None, "admin": None, "orderer": None}
        self.ou_enforcement = False
        if conf.HasField("fabric_node_ous"):
            nous = conf.fabric_node_ous
            self.ou_enforcement = nous.enable
            for role in self.node_ous:
                fname = f"{role}_ou_identifier"
                if nous.HasField(fname):
                    oi = getattr(nous, fname)
                    cid = self._certifiers_identifier(oi.certificate) if oi.certificate else None
                    self.node_ous[role] = (oi.organizational_unit_identifier, cid)
            if all(v is None for v in self.node_ous.values()):
                self.ou_enforcement = False
        self._cache: dict[bytes, Identity] = {}

    def __repr__(self) -> str:
        return f"MSP({self.name})"

    # -- chains -----------------------------------------------------------------------------
    def _chains(self, cert: x509.Certificate, when: dt.datetime, depth: int = 0) -> list[list]:
        """Every path from ``cert`` up to a root (Go's x509 Verify with the MSP's pools)."""
        if depth > 10:
            return []
        out = []
        for root in self.roots:
            if der(root) == der(cert):
                return [[cert]]
        for root in self.roots:
            if _valid_at(root, when) and _issued_by(cert, root) and self._path_ok(root, depth):
                out.append([cert, root])
        for inter in self.intermediates:
            if der(inter) == der(cert):
                continue
            if _valid_at(inter, when) and _is_ca(inter) and _issued_by(cert, inter) \
                    and self._path_ok(inter, depth):
                for rest in self._chains(inter, when, depth + 1):
                    if rest and der(rest[-1]) in {der(r) for r in self.roots} and \
                            all(der(x) != der(cert) for x in rest):
                        out.append([cert, *rest])
        return out

    @staticmethod
    def _path_ok(issuer: x509.Certificate, intermediates_below: int) -> bool:
        limit = _path_length(issuer)
        return limit is None or intermediates_below <= limit

    def _unique_chain(self, cert: x509.Certificate, when: dt.datetime) -> list:
        chains = self._chains(cert, when) if _valid_at(cert, when) else []
        # Go de-duplicates identical chains; so do we.
        unique = {tuple(der(c) for c in ch): ch for ch in chains}
        if not unique:
            raise MSPError(f"certificate {cert_label(cert)} does not chain to a CA of {self.name} "
                           "(unknown issuer, bad CA signature or CA not valid at the time)")
        if len(unique) != 1:
            raise MSPError(f"certificate {cert_label(cert)} has {len(unique)} validation chains "
                           f"in {self.name}; Fabric accepts exactly one")
        return next(iter(unique.values()))

    def _sanitize(self, cert: x509.Certificate) -> x509.Certificate:
        if _is_ca(cert) and _issued_by(cert, cert):
            return sanitize_certificate(cert, cert)
        chain = self._unique_chain(cert, cert.not_valid_before_utc + ONE_SECOND)
        if len(chain) < 2:
            raise MSPError(f"no issuer for {cert_label(cert)} in {self.name}")
        return sanitize_certificate(cert, chain[1])

    def _certifiers_identifier(self, pem: bytes) -> bytes:
        [cert] = _load_pem_certs(pem)[:1] or [None]
        if cert is None:
            raise MSPError(f"MSP {self.name}: empty OU certificate")
        cert = self._sanitize(cert)
        if any(der(cert) == der(r) for r in self.roots):
            return hashlib.sha256(der(cert)).digest()
        if not any(der(cert) == der(i) for i in self.intermediates):
            raise MSPError(f"MSP {self.name}: OU certificate {cert_label(cert)} is not one of its CAs")
        chain = self._unique_chain(cert, cert.not_valid_before_utc + ONE_SECOND)
        return hashlib.sha256(b"".join(der(c) for c in chain)).digest()

    def certification_chain(self, identity: Identity) -> list[x509.Certificate]:
        if _is_ca(identity.cert):
            raise MSPError("a CA certificate cannot be used as an identity")
        chain = self._unique_chain(identity.cert, identity.cert.not_valid_before_utc + ONE_SECOND)
        if len(chain) < 2:
            raise MSPError(f"expected a chain of length at least 2, got {len(chain)}")
        if der(chain[1]) in self.internal:
            raise MSPError(f"{cert_label(identity.cert)} is issued by {cert_label(chain[1])}, which "
                           "is not a leaf of the CA tree (it issued an intermediate CA)")
        return chain

    def certifiers_id(self, identity: Identity) -> bytes | None:
        try:
            chain = self.certification_chain(identity)
        except MSPError:
            return None
        return hashlib.sha256(b"".join(der(c) for c in chain[1:])).digest()

    # -- identities ---------------------------------------------------------------------------
    def deserialize(self, id_bytes: bytes) -> Identity:
        cached = self._cache.get(id_bytes)
        if cached is not None:
            return cached
        certs = _load_pem_certs(id_bytes) if b"-----BEGIN" in id_bytes else None
        if not certs:
            raise MSPError("could not decode the PEM structure of the identity")
        try:
            # cryptography parses lazily: touch what validation reads, so a malformed
            # certificate is refused here rather than failing later.
            certs[0].subject, certs[0].issuer, certs[0].extensions, certs[0].public_key()
            cert = self._sanitize(certs[0])
            d = der(cert)
        except MSPError:
            raise
        except Exception as exc:  # noqa: BLE001 - ValueError, DuplicateExtension, UnsupportedAlgorithm...
            raise MSPError(f"the identity's certificate does not parse: {exc}") from None
        ident = Identity(self, cert, d, hashlib.sha256(d).hexdigest())
        if len(self._cache) < 100_000:
            self._cache[id_bytes] = ident
        return ident

    def _validate(self, identity: Identity) -> None:
        key = identity.cert.public_key()
        if not isinstance(key, (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)):
            raise MSPError(f"{type(key).__name__} keys are not supported by Fabric's MSP")
        chain = self.certification_chain(identity)
        self._check_revocation(identity.cert, chain)
        self._validate_ous(identity, chain)

    def _check_revocation(self, cert: x509.Certificate, chain: list) -> None:
        issuer = chain[1]
        ski = _ski(issuer)
        if ski is None:
            raise MSPError(f"CA {cert_label(issuer)} has no Subject Key Identifier")
        for crl in self.crls:
            try:
                aki = crl.extensions.get_extension_for_oid(
                    ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value.key_identifier
            except x509.ExtensionNotFound:
                raise MSPError("a CRL of the MSP has no Authority Key Identifier") from None
            if aki != ski:
                continue
            if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is None:
                continue
            if crl.is_signature_valid(issuer.public_key()):
                raise MSPError(f"certificate {cert_label(cert)} (serial {cert.serial_number:x}) "
                               f"has been revoked by {cert_label(issuer)}")

    def _validate_ous(self, identity: Identity, chain: list) -> None:
        cid = hashlib.sha256(b"".join(der(c) for c in chain[1:])).digest()
        ous = identity.ous
        if self.ou_identifiers:
            if not any(cid in self.ou_identifiers.get(ou, []) for ou in ous):
                if not ous:
                    raise MSPError("the identity certificate does not contain an Organizational Unit")
                raise MSPError(f"none of the identity's OUs {ous} are in MSP {self.name}")
        if not self.ou_enforcement:
            return
        valid = {}
        for role in ("client", "peer", "admin", "orderer"):  # later wins, as in Fabric's map
            if self.node_ous[role] is not None:
                valid[self.node_ous[role][0]] = self.node_ous[role]
        count = 0
        for ou in ous:
            node = valid.get(ou)
            if node is None:
                continue
            if node[1] is not None and node[1] != cid:
                raise MSPError(f"certifiers identifier of OU {ou} does not match, MSP {self.name}")
            count += 1
            if count > 1:
                break
        if count == 0:
            raise MSPError(f"the identity has no OU that resolves to client, peer, orderer or admin "
                           f"(OUs {ous}), MSP {self.name}")
        if count > 1:
            raise MSPError(f"the identity has more than one NodeOU role (OUs {ous}), MSP {self.name}")

    def _has_ou_role(self, identity: Identity, role: str) -> None:
        if not self.ou_enforcement:
            raise MSPError("NodeOUs not activated: cannot tell clients, peers, orderers apart")
        node = self.node_ous.get(role)
        if node is None:
            raise MSPError(f"no NodeOU defined for role {role} in {self.name}")
        if node[0] not in identity.ous:
            raise MSPError(f"{identity.describe()} is not a {role} (lacks OU {node[0]})")

    # -- principals ---------------------------------------------------------------------------
    def satisfies_principal(self, identity: Identity, principal: msp_principal_pb2.MSPPrincipal) -> None:
        try:
            for p in collect_principals(principal):
                self._satisfies(identity, p)
        except MSPError:
            raise
        except Exception as exc:  # noqa: BLE001 - a principal that does not parse satisfies nothing
            raise MSPError(f"unreadable principal: {exc}") from None

    def _satisfies(self, identity: Identity, principal: msp_principal_pb2.MSPPrincipal) -> None:
        P = msp_principal_pb2.MSPPrincipal
        kind = principal.principal_classification
        if kind == P.ROLE:
            role = msp_principal_pb2.MSPRole.FromString(principal.principal)
            if role.msp_identifier != self.name:
                raise MSPError(f"the identity is a member of {self.name}, not {role.msp_identifier}")
            R = msp_principal_pb2.MSPRole
            if role.role == R.MEMBER:
                identity.validate()
                return
            if role.role == R.ADMIN:
                if identity.der in self.admins:
                    return
                if not self.ou_enforcement:
                    raise MSPError(f"{identity.describe()} is not an admin")
                identity.validate()
                self._has_ou_role(identity, "admin")
                return
            if role.role in (R.CLIENT, R.PEER) or (role.role == R.ORDERER and self.ou_enforcement):
                identity.validate()
                self._has_ou_role(identity, ROLE_NAMES[role.role])
                return
            raise MSPError(f"invalid MSP role type {role.role}")
        if kind == P.IDENTITY:
            sid = identities_pb2.SerializedIdentity.FromString(principal.principal)
            if sid.mspid != self.name:
                raise MSPError(f"identity principal of {sid.mspid}, identity of {self.name}")
            other = self.deserialize(sid.id_bytes)
            if other.der != identity.der:
                raise MSPError("the identities do not match")
            other.validate()
            return
        if kind == P.ORGANIZATION_UNIT:
            ou = msp_principal_pb2.OrganizationUnit.FromString(principal.principal)
            if ou.msp_identifier != self.name:
                raise MSPError(f"the identity is a member of {self.name}, not {ou.msp_identifier}")
            identity.validate()
            cid = self.certifiers_id(identity)
            if ou.organizational_unit_identifier in identity.ous and cid == ou.certifiers_identifier:
                return
            raise MSPError(f"{identity.describe()} is not in OU {ou.organizational_unit_identifier}")
        if kind == P.ANONYMITY:
            anon = msp_principal_pb2.MSPIdentityAnonymity.FromString(principal.principal)
            if anon.anonymity_type == msp_principal_pb2.MSPIdentityAnonymity.NOMINAL:
                return
            raise MSPError("X.509 identities are never anonymous")
        raise MSPError(f"invalid principal type {kind}")


def collect_principals(principal: msp_principal_pb2.MSPPrincipal) -> list:
    if principal.principal_classification != msp_principal_pb2.MSPPrincipal.COMBINED:
        return [principal]
    combined = msp_principal_pb2.CombinedPrincipal.FromString(principal.principal)
    if not combined.principals:
        raise MSPError("no principals in CombinedPrincipal")
    out = []
    for p in combined.principals:
        out += collect_principals(p)
    return out


class MSPManager:
    """The channel's MSPs by MSP id (Fabric's channel identity deserializer)."""

    def __init__(self, msps: dict[str, MSP]):
        self.msps = msps

    def deserialize(self, serialized: bytes) -> Identity:
        try:
            sid = identities_pb2.SerializedIdentity.FromString(serialized)
        except Exception:  # noqa: BLE001 - protobuf DecodeError
            raise MSPError("not a serialized identity") from None
        msp = self.msps.get(sid.mspid)
        if msp is None:
            raise MSPError(f"MSP {sid.mspid!r} is not a member of the channel")
        return msp.deserialize(sid.id_bytes)


def describe_serialized(serialized: bytes) -> str:
    """A label for a serialized identity even when it cannot be deserialized."""
    try:
        sid = identities_pb2.SerializedIdentity.FromString(serialized)
        certs = x509.load_pem_x509_certificates(sid.id_bytes)
        return f"{sid.mspid} {cert_label(certs[0])}"
    except Exception:  # noqa: BLE001
        return "(unreadable identity)"
