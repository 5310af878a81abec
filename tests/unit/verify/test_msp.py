"""Identities validated as Fabric's X.509 MSP does: CA chains, NodeOUs, CRLs, low-S signatures."""
from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from ipledger.network.fabric.msp import MSP, MSPError, MSPManager, sanitize_certificate, verify_signature

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from .pki import CA, NOW, P256_N, Org, pem, sign_high_s


def test_members_of_each_role_validate_and_know_their_role():
    org = Org.make("CustomsMSP")
    msp = MSP(org.msp_config())
    for role in ("client", "peer", "admin", "orderer"):
        ident = msp.deserialize(pem(org.member(role).cert))
        ident.validate()
        assert ident.role == role and ident.msp_id == "CustomsMSP"


def test_certificate_of_another_ca_does_not_deserialize():
    msp = MSP(Org.make("CustomsMSP").msp_config())
    impostor = CA.root("Customs").identity("CustomsMSP", "peer0.customs", "peer")  # same names, other key
    with pytest.raises(MSPError, match="does not chain"):
        msp.deserialize(pem(impostor.cert))


def test_unknown_msp_id_is_refused():
    org = Org.make("CustomsMSP")
    manager = MSPManager({"CustomsMSP": MSP(org.msp_config())})
    stranger = Org.make("OtherMSP").member("peer")
    with pytest.raises(MSPError, match="not a member of the channel"):
        manager.deserialize(stranger.serialize())


def test_identity_without_or_with_two_node_ous_is_invalid():
    org = Org.make("CustomsMSP")
    msp = MSP(org.msp_config())
    no_ou = org.ca.identity("CustomsMSP", "nobody", None)
    with pytest.raises(MSPError, match="no OU that resolves"):
        msp.deserialize(pem(no_ou.cert)).validate()
    # A certificate with both client and peer OUs.
    from cryptography.x509.oid import NameOID
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "client"),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "peer"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "both")])
    both = org.ca._issue(name, key.public_key())
    with pytest.raises(MSPError, match="more than one NodeOU"):
        msp.deserialize(pem(both)).validate()


def test_a_ca_certificate_is_not_an_identity():
    org = Org.make("CustomsMSP")
    inter = org.ca.intermediate("ica.customs")
    org.intermediates.append(inter)
    msp = MSP(org.msp_config())
    with pytest.raises(MSPError, match="CA certificate cannot be used"):
        msp.deserialize(pem(inter.cert)).validate()


def test_intermediate_ca_chain_and_leaf_rule():
    org = Org.make("CustomsMSP", node_ous=False)
    inter = org.ca.intermediate("ica.customs")
    org.intermediates.append(inter)
    msp = MSP(org.msp_config())
    via_inter = org.member("peer", "p-inter", issuer=inter)
    ident = msp.deserialize(pem(via_inter.cert))
    ident.validate()
    assert len(msp.certification_chain(ident)) == 3
    # The root issued an intermediate: it is an internal node, identities must hang off leaves.
    direct = org.member("peer", "p-root")
    with pytest.raises(MSPError, match="not a leaf of the CA tree"):
        msp.deserialize(pem(direct.cert)).validate()


def test_revoked_certificate_is_invalid():
    org = Org.make("CustomsMSP")
    peer, other = org.member("peer"), org.member("peer", "peer1.customs")
    org.crls.append(org.ca.crl(peer.cert))
    msp = MSP(org.msp_config())
    with pytest.raises(MSPError, match="revoked"):
        msp.deserialize(pem(peer.cert)).validate()
    msp.deserialize(pem(other.cert)).validate()


def test_certificate_valid_only_after_its_ca_expired_is_invalid():
    org = Org.make("CustomsMSP")
    late = org.ca.identity("CustomsMSP", "late", "peer", not_before=NOW + dt.timedelta(days=5000))
    with pytest.raises(MSPError, match="does not chain"):
        MSP(org.msp_config()).deserialize(pem(late.cert))


def test_signatures_must_be_low_s():
    org = Org.make("CustomsMSP")
    peer = org.member("peer")
    verify_signature(peer.cert, b"message", peer.sign(b"message"))
    with pytest.raises(MSPError, match="high S"):
        verify_signature(peer.cert, b"message", sign_high_s(peer.key, b"message"))
    with pytest.raises(MSPError, match="does not verify"):
        verify_signature(peer.cert, b"other message", peer.sign(b"message"))
    with pytest.raises(MSPError, match="not a DER"):
        verify_signature(peer.cert, b"message", b"\x01\x02")


def test_certificates_with_high_s_signatures_are_sanitized_to_one_identity():
    org = Org.make("CustomsMSP")
    peer = org.member("peer")
    r, s = decode_dss_signature(peer.cert.signature)
    flipped_sig = encode_dss_signature(r, P256_N - s)
    # Re-encode the certificate with the other S: same certificate for Fabric.
    from ipledger.network.fabric.der import element, read_element
    from ipledger.network.fabric.msp import der
    raw = der(peer.cert)
    start, _ = read_element(raw, 0)
    _, tbs_end = read_element(raw, start)
    _, alg_end = read_element(raw, tbs_end)
    body = raw[start:alg_end] + element(0x03, b"\x00" + flipped_sig)
    twin = x509.load_der_x509_certificate(element(0x30, body))
    assert twin != peer.cert
    twin.verify_directly_issued_by(org.ca.cert)          # still a valid signature
    a = sanitize_certificate(peer.cert, org.ca.cert)
    b = sanitize_certificate(twin, org.ca.cert)
    assert der(a) == der(b)
    msp = MSP(org.msp_config())
    ia = msp.deserialize(pem(peer.cert))
    ib = msp.deserialize(twin.public_bytes(Encoding.PEM))
    assert ia.id == ib.id and ia.key == ib.key
