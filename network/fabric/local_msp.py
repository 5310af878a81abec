"""Loading a client identity and its signer from a Fabric MSP directory.

A cryptogen/fabric-ca MSP directory holds the certificate in ``signcerts/*.pem``
and the private key in ``keystore/*``. The key file must not be readable by
anyone but its owner: a key file whose mode is wider than 0600 is refused.
"""
from __future__ import annotations

import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from ipledger.network.fabric.identity import X509Identity
from ipledger.network.fabric.signing import Signer


class MSPError(ValueError):
    """The MSP directory cannot give a usable identity."""


def _single(files: list[Path], what: str, where: Path) -> Path:
    if not files:
        raise MSPError(f"no {what} in {where}")
    if len(files) > 1:
        names = ", ".join(sorted(f.name for f in files))
        raise MSPError(f"more than one {what} in {where} ({names}); keep exactly one")
    return files[0]


def check_key_file_mode(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & ~0o600:
        raise MSPError(f"private key file {path} has mode {mode:04o}, wider than 0600: "
                       f"other users may read it; run 'chmod 600 {path}'")


def load_identity(msp_dir: Path | str, msp_id: str) -> tuple[X509Identity, Signer]:
    """The identity (``signcerts``) and signer (``keystore``) of an MSP directory."""
    msp_dir = Path(msp_dir)
    if not msp_dir.is_dir():
        raise MSPError(f"MSP directory {msp_dir} does not exist")
    cert_file = _single(sorted((msp_dir / "signcerts").glob("*.pem")), "certificate (signcerts/*.pem)", msp_dir)
    key_dir = msp_dir / "keystore"
    key_file = _single(sorted(p for p in key_dir.glob("*") if p.is_file()) if key_dir.is_dir() else [],
                       "private key (keystore/*)", msp_dir)
    check_key_file_mode(key_file)

    try:
        identity = X509Identity(msp_id, cert_file.read_bytes())
    except ValueError as exc:
        raise MSPError(f"{cert_file}: {exc}") from exc
    try:
        signer = Signer.from_pem(key_file.read_bytes())
    except ValueError as exc:
        raise MSPError(f"{key_file}: {exc}") from exc

    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if identity.certificate.public_key().public_bytes(*spki) != signer.public_key.public_bytes(*spki):
        raise MSPError(f"{key_file} is not the private key of the certificate {cert_file}")
    return identity, signer
