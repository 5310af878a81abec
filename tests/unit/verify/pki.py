"""A tiny PKI made with ``cryptography``: CAs, NodeOU identities and the MSP configs naming them.

Mirrors what cryptogen produces for ipledger: per org a self-signed P-256 CA,
identities with an OU of client / peer / admin / orderer, and a FabricMSPConfig with
NodeOUs enabled whose OU identifiers name the CA certificate.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature, \
    encode_dss_signature
from cryptography.x509.oid import NameOID
from fabric_protos.msp import identities_pb2, msp_config_pb2

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
NOW = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)


def _name(cn: str, org: str, ou: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
    if ou:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def sign_low_s(key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(hashlib.sha256(message).digest(), ec.ECDSA(Prehashed(hashes.SHA256()))))
    if s > P256_N // 2:
        s = P256_N - s
    return encode_dss_signature(r, s)


def sign_high_s(key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    r, s = decode_dss_signature(sign_low_s(key, message))
    return encode_dss_signature(r, P256_N - s)


@dataclass
class CA:
    org: str
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    parent: "CA | None" = None

    @classmethod
    def root(cls, org: str, cn: str | None = None) -> "CA":
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name(cn or f"ca.{org.lower()}", org)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, key_cert_sign=True, crl_sign=True,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(ski, critical=False)
                .sign(key, hashes.SHA256()))
        return cls(org, key, cert)

    def intermediate(self, cn: str) -> "CA":
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._issue(_name(cn, self.org), key.public_key(), ca=True)
        return CA(self.org, key, cert, self)

    def _issue(self, name, public_key, ca=False, not_before=None, serial=None):
        b = (x509.CertificateBuilder().subject_name(name).issuer_name(self.cert.subject)
             .public_key(public_key).serial_number(serial or x509.random_serial_number())
             .not_valid_before(not_before or NOW - dt.timedelta(hours=1))
             .not_valid_after((not_before or NOW) + dt.timedelta(days=365))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                            critical=False))
        return b.sign(self.key, hashes.SHA256())

    def identity(self, msp_id: str, cn: str, ou: str | None, **kw) -> "Ident":
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._issue(_name(cn, self.org, ou), key.public_key(), **kw)
        return Ident(msp_id, cert, key)

    def crl(self, *revoked: x509.Certificate) -> bytes:
        b = (x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject)
             .last_update(NOW - dt.timedelta(hours=1)).next_update(NOW + dt.timedelta(days=30))
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                            critical=False))
        for c in revoked:
            b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(c.serial_number)
                                          .revocation_date(NOW - dt.timedelta(minutes=5)).build())
        return b.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@dataclass
class Ident:
    msp_id: str
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def serialize(self) -> bytes:
        return identities_pb2.SerializedIdentity(mspid=self.msp_id, id_bytes=pem(self.cert)).SerializeToString()

    def sign(self, message: bytes) -> bytes:
        return sign_low_s(self.key, message)


@dataclass
class Org:
    msp_id: str
    ca: CA
    intermediates: list[CA] = field(default_factory=list)
    crls: list[bytes] = field(default_factory=list)
    node_ous: bool = True
    _ids: dict = field(default_factory=dict)

    @classmethod
    def make(cls, msp_id: str, **kw) -> "Org":
        return cls(msp_id, CA.root(msp_id[:-3]), **kw)

    def member(self, role: str, name: str | None = None, issuer: CA | None = None) -> Ident:
        key = (role, name, id(issuer))
        if key not in self._ids:
            cn = name or f"{role}0.{self.msp_id.lower()}"
            self._ids[key] = (issuer or self.ca).identity(self.msp_id, cn, role)
        return self._ids[key]

    def msp_config(self) -> msp_config_pb2.FabricMSPConfig:
        ca_pem = pem(self.ca.cert)
        conf = msp_config_pb2.FabricMSPConfig(
            name=self.msp_id, root_certs=[ca_pem],
            intermediate_certs=[pem(i.cert) for i in self.intermediates],
            revocation_list=list(self.crls),
            crypto_config=msp_config_pb2.FabricCryptoConfig(signature_hash_family="SHA2",
                                                            identity_identifier_hash_function="SHA256"))
        if self.node_ous:
            nous = conf.fabric_node_ous
            nous.enable = True
            for role in ("client", "peer", "admin", "orderer"):
                getattr(nous, f"{role}_ou_identifier").CopyFrom(
                    msp_config_pb2.FabricOUIdentifier(certificate=ca_pem, organizational_unit_identifier=role))
        return conf
