"""Identity serialization, low-S ECDSA signing, loading an identity from an MSP directory."""
from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (Prehashed, decode_dss_signature,
                                                             encode_dss_signature)
from fabric_protos.msp import identities_pb2

from ipledger.gateway.client import MSPError, Signer, X509Identity, load_identity, low_s, sha256

from .fakes import P256_N, issue


def test_identity_serializes_to_msp_serialized_identity(user):
    ident = X509Identity("CustomsMSP", user.cert_pem)
    decoded = identities_pb2.SerializedIdentity.FromString(ident.serialize())
    assert decoded.mspid == "CustomsMSP"
    assert decoded.id_bytes == user.cert_pem
    assert ident.serialize() == identities_pb2.SerializedIdentity(
        mspid="CustomsMSP", id_bytes=user.cert_pem).SerializeToString()


def test_identity_refuses_what_is_not_a_certificate():
    with pytest.raises(ValueError, match="not a PEM X.509 certificate"):
        X509Identity("CustomsMSP", b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    with pytest.raises(ValueError, match="MSP id"):
        X509Identity("", b"")


def test_signatures_verify_and_are_always_low_s(user):
    signer = Signer(user.key)
    message = b"proposal bytes"
    for _ in range(64):  # a raw ECDSA S is high half the time: 64 tries all low is no accident
        sig = signer.sign_digest(sha256(message))
        user.cert.public_key().verify(sig, message, ec.ECDSA(hashes.SHA256()))
        _, s = decode_dss_signature(sig)
        assert 0 < s <= P256_N // 2


def test_low_s_flips_a_high_s_and_keeps_it_valid(user):
    digest = sha256(b"m")
    while True:
        r, s = decode_dss_signature(user.key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()))))
        if s <= P256_N // 2:
            break
    high = encode_dss_signature(r, P256_N - s)
    fixed = low_s(high)
    assert decode_dss_signature(fixed) == (r, s)
    user.cert.public_key().verify(fixed, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    assert low_s(fixed) == fixed


def test_signer_wants_a_sha256_digest_and_a_p256_key(user):
    with pytest.raises(ValueError, match="32-byte"):
        Signer(user.key).sign_digest(b"short")
    with pytest.raises(ValueError, match="P-256"):
        Signer(ec.generate_private_key(ec.SECP384R1()))


def _msp(tmp_path, issued, key_mode=0o600, key_name="priv_sk"):
    msp = tmp_path / "msp"
    (msp / "signcerts").mkdir(parents=True)
    (msp / "keystore").mkdir()
    (msp / "signcerts" / "User1@org-cert.pem").write_bytes(issued.cert_pem)
    key = msp / "keystore" / key_name
    key.write_bytes(issued.key_pem)
    os.chmod(key, key_mode)
    return msp, key


def test_load_identity_from_msp_directory(tmp_path, user):
    msp, _ = _msp(tmp_path, user)
    ident, signer = load_identity(msp, "OperatorMSP")
    assert ident.msp_id == "OperatorMSP" and ident.certificate_pem == user.cert_pem
    sig = signer.sign(b"x")
    user.cert.public_key().verify(sig, b"x", ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o700])
def test_load_identity_refuses_a_key_readable_by_others(tmp_path, user, mode):
    msp, key = _msp(tmp_path, user, key_mode=mode)
    with pytest.raises(MSPError, match=f"mode {mode:04o}, wider than 0600.*chmod 600"):
        load_identity(msp, "OperatorMSP")


def test_load_identity_accepts_0400(tmp_path, user):
    msp, _ = _msp(tmp_path, user, key_mode=0o400)
    assert load_identity(msp, "OperatorMSP")[0].msp_id == "OperatorMSP"


def test_load_identity_refuses_a_key_of_another_certificate(tmp_path, user, org_ca):
    other = issue(org_ca, "User2")
    msp, key = _msp(tmp_path, user)
    key.write_bytes(other.key_pem)
    with pytest.raises(MSPError, match="is not the private key of the certificate"):
        load_identity(msp, "OperatorMSP")


def test_load_identity_reports_missing_and_ambiguous_files(tmp_path, user):
    with pytest.raises(MSPError, match="does not exist"):
        load_identity(tmp_path / "nowhere", "OperatorMSP")
    msp, key = _msp(tmp_path, user)
    extra = msp / "keystore" / "other_sk"
    extra.write_bytes(user.key_pem)
    os.chmod(extra, 0o600)
    with pytest.raises(MSPError, match="more than one private key"):
        load_identity(msp, "OperatorMSP")
    extra.unlink()
    key.unlink()
    with pytest.raises(MSPError, match="no private key"):
        load_identity(msp, "OperatorMSP")
