"""A signer whose key stays in a child process: a process acting for several organisations (the benchmarks'
load generator, the integration tests' harness) never reads their private keys itself."""
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ipledger.network import consortium as consortium_mod
from ipledger.network.fabric.msp import MSPError
from ipledger.network.fabric.signing import is_low_s, sha256
from ipledger.network.fabric.signing_process import SigningProcess, load_identity_apart
from ipledger.network.layout import Layout
from ipledger.network.org import identities
from tests.unit.network.opened_files import opened_here, private_keys


def _user_msps(tmp_path) -> dict[str, object]:
    c = consortium_mod.load(base_port=21000)
    lay = Layout(tmp_path / "state")
    out = {}
    for msp in ("CustomsMSP", "OperatorMSP"):
        org = c.org(msp)
        ids = identities.OrgIdentities(lay.org_dir(org), org.msp_id, org.domain)
        ids.create()
        ids.add_user("User1", "client")
        out[msp] = lay.user_msp(org, "User1")
    return out


def test_two_organisations_sign_from_one_process_that_reads_neither_key(tmp_path):
    msps = _user_msps(tmp_path)
    with opened_here() as paths:
        loaded = {msp: load_identity_apart(d, msp) for msp, d in msps.items()}
    try:
        assert private_keys(paths) == [], "this process read a private key"
        for msp, (identity, signer) in loaded.items():
            assert identity.msp_id == msp
            message = f"a proposal of {msp}".encode()
            signature = signer.sign(message)
            identity.certificate.public_key().verify(signature, message, ec.ECDSA(hashes.SHA256()))
            assert is_low_s(signature)
            assert is_low_s(signer.sign_digest(sha256(b"x")))
    finally:
        for _identity, signer in loaded.values():
            signer.close()


def test_a_closed_signer_signs_no_more_and_its_process_is_gone(tmp_path):
    msps = _user_msps(tmp_path)
    _identity, signer = load_identity_apart(msps["CustomsMSP"], "CustomsMSP")
    signer.close()
    assert signer._proc.poll() is not None
    with pytest.raises(MSPError):
        signer.sign(b"after close")


def test_an_unusable_msp_directory_is_a_named_error(tmp_path):
    msps = _user_msps(tmp_path)
    key = next((msps["CustomsMSP"] / "keystore").iterdir())
    key.chmod(0o644)
    with pytest.raises(MSPError, match="wider than 0600"):
        SigningProcess(msps["CustomsMSP"], "CustomsMSP")
    with pytest.raises(MSPError, match="does not exist"):
        load_identity_apart(tmp_path / "nowhere", "CustomsMSP")


def test_a_digest_must_be_32_bytes(tmp_path):
    msps = _user_msps(tmp_path)
    _identity, signer = load_identity_apart(msps["OperatorMSP"], "OperatorMSP")
    with signer:
        with pytest.raises(ValueError, match="32-byte"):
            signer.sign_digest(b"short")
        assert signer.sign(b"still usable")


def test_a_child_that_stops_answering_is_an_error_in_time(tmp_path, monkeypatch):
    import os
    import signal
    from ipledger.network.fabric import signing_process
    msps = _user_msps(tmp_path)
    _identity, signer = load_identity_apart(msps["CustomsMSP"], "CustomsMSP")
    monkeypatch.setattr(signing_process, "SIGN_TIMEOUT_S", 0.5)
    os.kill(signer._proc.pid, signal.SIGSTOP)
    try:
        with pytest.raises(MSPError, match="did not answer in time"):
            signer.sign(b"x")
    finally:
        os.kill(signer._proc.pid, signal.SIGCONT)
        signer.close()
    assert signer._proc.poll() is not None
