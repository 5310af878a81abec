"""Loading a signing identity from a local Fabric MSP directory: the one loader of MSP folders and keys.

A cryptogen/fabric-ca MSP directory holds the certificate in ``signcerts/*.pem``
and the private key in ``keystore/*`` (exactly one of each). :func:`load_identity`
gives the identity and its :class:`~.signing.Signer` (the Gateway client, an org
admin signing a config update offline; :mod:`.signing_process` keeps the key in a
child process instead, for a process acting for several organisations); :func:`load_private_key` reads one PEM
private key file (also the organisation's CA keys, :mod:`ipledger.network.org.identities`).

Every private key file goes through :func:`check_key_file_mode`: a key whose mode
is wider than 0600 (readable, writable or executable by anyone but its owner) is
refused before it is read.
"""
from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from ipledger.network.fabric.identity import X509Identity
from ipledger.network.fabric.msp import MSPError
from ipledger.network.fabric.owner_only import require_owner_only
from ipledger.network.fabric.signing import Signer

__all__ = ["MSPError", "check_key_file_mode", "load_certificate", "load_identity", "load_private_key"]


def _single(files: list[Path], what: str, where: Path) -> Path:
    if not files:
        raise MSPError(f"no {what} in {where}")
    if len(files) > 1:
        names = ", ".join(sorted(f.name for f in files))
        raise MSPError(f"more than one {what} in {where} ({names}); keep exactly one")
    return files[0]


def check_key_file_mode(path: Path) -> None:
    """Refuse a private key file that anyone but its owner may read (any mode bit beyond 0600: the one rule of
    :func:`ipledger.network.fabric.owner_only.require_owner_only`)."""
    require_owner_only(Path(path), "private key file", MSPError)


def load_private_key(path: Path | str) -> PrivateKeyTypes:
    """The PEM private key in ``path`` (unencrypted), once its file mode has been checked."""
    path = Path(path)
    check_key_file_mode(path)
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise MSPError(f"{path}: not a usable PEM private key: {exc}") from exc


def load_certificate(msp_dir: Path | str, msp_id: str) -> X509Identity:
    """The identity of an MSP directory: its certificate (``signcerts``), without its key."""
    msp_dir = Path(msp_dir)
    if not msp_dir.is_dir():
        raise MSPError(f"MSP directory {msp_dir} does not exist")
    cert_file = _single(sorted((msp_dir / "signcerts").glob("*.pem")), "certificate (signcerts/*.pem)", msp_dir)
    try:
        return X509Identity(msp_id, cert_file.read_bytes())
    except ValueError as exc:
        raise MSPError(f"{cert_file}: {exc}") from exc


def load_identity(msp_dir: Path | str, msp_id: str) -> tuple[X509Identity, Signer]:
    """The identity (``signcerts``) and signer (``keystore``) of an MSP directory."""
    msp_dir = Path(msp_dir)
    identity = load_certificate(msp_dir, msp_id)
    cert_file = _single(sorted((msp_dir / "signcerts").glob("*.pem")), "certificate (signcerts/*.pem)", msp_dir)
    key_dir = msp_dir / "keystore"
    key_file = _single(sorted(p for p in key_dir.glob("*") if p.is_file()) if key_dir.is_dir() else [],
                       "private key (keystore/*)", msp_dir)
    check_key_file_mode(key_file)
    key = load_private_key(key_file)
    try:
        signer = Signer(key)
    except ValueError as exc:
        raise MSPError(f"{key_file}: {exc}") from exc

    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if identity.certificate.public_key().public_bytes(*spki) != signer.public_key.public_bytes(*spki):
        raise MSPError(f"{key_file} is not the private key of the certificate {cert_file}")
    return identity, signer
