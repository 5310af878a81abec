"""Which signatures of a config update count, as the orderer's MSPs decide: the admin tools'
check (config_signatures) validates each signer with the channel MSPs of network/fabric/msp.py
(certification path, revocation, NodeOUs, low-S signatures), so that `ipledger admin status`
does not say "ready" for an update the orderer will refuse."""
from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from fabric_protos.common import configtx_pb2
from fabric_protos.msp import msp_config_pb2

from ipledger.network.fabric.config_signatures import sign_update, signer_for_identity, signers
from ipledger.network.fabric.config_update import compute_update
from ipledger.network.fabric.signing import P256_ORDER
from tests.unit.network.channel_config import NOW, pem
from tests.unit.network.test_admin import CHANNEL, satisfied, signed, with_audit


@pytest.fixture
def update(base, orgs):
    return compute_update(base, with_audit(base, orgs), CHANNEL)


def add_signature(cue, msp_id, cert_pem, key) -> configtx_pb2.ConfigUpdateEnvelope:
    cue.signatures.append(sign_update(cue, msp_id, cert_pem, key))
    return cue


def with_msp(config, msp_id, edit) -> configtx_pb2.Config:
    """A copy of ``config`` with the FabricMSPConfig of application org ``msp_id`` edited."""
    out = configtx_pb2.Config()
    out.CopyFrom(config)
    value = out.channel_group.groups["Application"].groups[msp_id].values["MSP"]
    mc = msp_config_pb2.MSPConfig.FromString(value.value)
    fc = msp_config_pb2.FabricMSPConfig.FromString(mc.config)
    edit(fc)
    mc.config = fc.SerializeToString()
    value.value = mc.SerializeToString()
    return out


def high_s(signature: bytes) -> bytes:
    r, s = decode_dss_signature(signature)
    return encode_dss_signature(r, P256_ORDER - s)


def test_a_valid_admin_with_a_high_s_signature_does_not_count(base, orgs, update):
    c, o = orgs["CustomsMSP"], orgs["OperatorMSP"]
    cue = signed(update, (c, "admin"), (o, "admin"))
    assert satisfied(base, update, cue)
    # The same signature with S replaced by n - S: valid ECDSA, but Fabric refuses it.
    cue.signatures[1].signature = high_s(cue.signatures[1].signature)
    s = signers(base, cue)[1]
    assert s.cert_valid and s.is_admin          # the identity is fine ...
    assert not s.signature_valid and not s.counts  # ... its signature is not
    assert "high S" in s.problem
    assert not satisfied(base, update, cue)


def test_a_certificate_not_issued_by_the_orgs_ca_does_not_count(base, orgs, update):
    c, o = orgs["CustomsMSP"], orgs["OperatorMSP"]
    # An "admin" of OperatorMSP issued by the CA of another organisation of the channel.
    cert, key = c.issue("admin@OperatorMSP", "admin")
    cue = add_signature(signed(update, (c, "admin")), "OperatorMSP", cert, key)
    s = signers(base, cue)[1]
    assert s.known_msp and s.signature_valid and not s.cert_valid and not s.counts
    assert "does not chain to a CA of OperatorMSP" in s.problem and not s.roles
    assert not satisfied(base, update, cue)
    # The org's CA certificate itself, signing with the CA key: a CA is not an identity.
    cue = add_signature(signed(update, (c, "admin")), "OperatorMSP", pem(o.ca), o.ca_key)
    s = signers(base, cue)[1]
    assert s.signature_valid and not s.counts and "CA certificate cannot be used" in s.problem


def test_a_revoked_admin_does_not_count(base, orgs, update):
    c, o = orgs["CustomsMSP"], orgs["OperatorMSP"]
    admin_cert = x509.load_pem_x509_certificate(o.ids["admin"][0])
    crl = (x509.CertificateRevocationListBuilder().issuer_name(o.ca.subject)
           .last_update(NOW - dt.timedelta(hours=1)).next_update(NOW + dt.timedelta(days=1))
           .add_revoked_certificate(x509.RevokedCertificateBuilder()
                                    .serial_number(admin_cert.serial_number)
                                    .revocation_date(NOW - dt.timedelta(minutes=1)).build())
           .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(o.ca_key.public_key()),
                          critical=False)
           .sign(o.ca_key, hashes.SHA256()))
    revoked = with_msp(base, "OperatorMSP",
                       lambda fc: fc.revocation_list.append(crl.public_bytes(Encoding.PEM)))
    cue = signed(update, (c, "admin"), (o, "admin"))
    s = signers(revoked, cue)[1]
    assert s.signature_valid and not s.counts and "revoked" in s.problem
    assert not satisfied(revoked, update, cue)
    assert satisfied(base, update, cue)


def test_certificates_must_be_in_date_at_the_time_of_the_check(base, orgs, update):
    c, o = orgs["CustomsMSP"], orgs["OperatorMSP"]
    cue = signed(update, (c, "admin"), (o, "admin"))
    assert all(s.counts for s in signers(base, cue, now=NOW))
    later = signers(base, cue, now=NOW + dt.timedelta(days=2))   # the test certificates last a day
    assert not any(s.counts for s in later) and "certificate expired" in later[1].problem
    earlier = signers(base, cue, now=NOW - dt.timedelta(hours=1))
    assert not any(s.counts for s in earlier) and "not yet valid" in earlier[1].problem
    me = signer_for_identity(base, "OperatorMSP", o.ids["admin"][0], now=NOW + dt.timedelta(days=2))
    assert not me.counts and "certificate expired" in me.problem


def test_one_certificate_counts_once_however_it_is_encoded(base, orgs, update):
    c, o = orgs["CustomsMSP"], orgs["OperatorMSP"]
    cert, key = c.ids["admin"]
    # The same certificate, PEM with another line ending: the same identity for Fabric.
    cue = add_signature(signed(update, (c, "admin")), "CustomsMSP",
                        cert.replace(b"\n", b"\r\n"), key)
    sigs = signers(base, cue)
    assert sigs[0].creator != sigs[1].creator and sigs[0].key == sigs[1].key
    assert [s.duplicate for s in sigs] == [False, True]
    assert not satisfied(base, update, cue)
    assert satisfied(base, update, signed(update, (c, "admin"), (o, "admin")))


def test_a_certificate_listed_among_the_msps_admins_is_an_admin_only(base, orgs, update):
    c, o = orgs["CustomsMSP"], orgs["OperatorMSP"]
    # Issued by the org's CA but without a NodeOU: not a valid identity of a NodeOU MSP ...
    cert, key = o.issue("ops@OperatorMSP", "operations")
    cue = add_signature(signed(update, (c, "admin")), "OperatorMSP", cert, key)
    s = signers(base, cue)[1]
    assert not s.counts and "no OU that resolves" in s.problem
    assert not satisfied(base, update, cue)
    # ... yet an admin when the MSP lists its certificate (Fabric's MSP skips validation there).
    listed = with_msp(base, "OperatorMSP", lambda fc: fc.admins.append(cert))
    s = signers(listed, cue)[1]
    assert s.counts and s.roles == {"admin"} and "counts only as an admin" in s.problem
    assert satisfied(listed, update, cue)
