"""ECDSA signatures as Fabric makes and checks them: the curve orders, the low-S rule, and signing.

Fabric rejects ECDSA signatures whose S is in the upper half of the curve order
("low-S" rule, to make signatures non-malleable): :func:`is_low_s` tells whether a
DER signature obeys it, :func:`low_s` normalises one to S <= n/2. This module is
the one place that knows the group orders (FIPS 186-4 D.1.2); the channel MSPs
(:mod:`.msp`, which also re-encode certificate signatures with a low S) and the
organisations' CA (:mod:`ipledger.network.org.identities`) use it.

:class:`Signer` signs SHA-256 digests with a P-256 key and always returns a low-S
DER signature. Signing only ever sees a digest: the message bytes are hashed by
the caller with :func:`sha256` (or by :meth:`Signer.sign`).
"""
from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed, decode_dss_signature, encode_dss_signature)

# Order of the P-256 group (FIPS 186-4, D.1.2.3).
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

# Group orders for the low-S rule, by cryptography's curve name (FIPS 186-4 D.1.2).
CURVE_ORDERS = {
    "secp256r1": P256_ORDER,
    "secp384r1": int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
                     "581A0DB248B0A77AECEC196ACCC52973", 16),
    "secp521r1": int("01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
                     "FFFFFFFFFFFFFFFFFFFFFA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB"
                     "71E91386409", 16),
}


def sha256(message: bytes) -> bytes:
    return hashlib.sha256(message).digest()


def is_low_s(signature: bytes, order: int = P256_ORDER) -> bool:
    """Whether the DER ECDSA signature's S is at most n/2 (raises ValueError if it is not DER)."""
    _, s = decode_dss_signature(signature)
    return s <= order // 2


def low_s(signature: bytes, order: int = P256_ORDER) -> bytes:
    """The same DER ECDSA signature with S replaced by n - S when S > n/2."""
    r, s = decode_dss_signature(signature)
    if s > order // 2:
        s = order - s
    return encode_dss_signature(r, s)


class Signer:
    """Signs SHA-256 digests with a P-256 private key; thread-safe."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey):
        if not isinstance(private_key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"unsupported private key type {type(private_key).__name__}: "
                             "Fabric identities here use ECDSA P-256")
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise ValueError(f"unsupported curve {private_key.curve.name}: expected P-256 (secp256r1)")
        self._key = private_key

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._key.public_key()

    def sign_digest(self, digest: bytes) -> bytes:
        """DER-encoded low-S ECDSA signature of a 32-byte SHA-256 digest."""
        if len(digest) != 32:
            raise ValueError(f"expected a 32-byte SHA-256 digest, got {len(digest)} bytes")
        raw = self._key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        return low_s(raw)

    def sign(self, message: bytes) -> bytes:
        """Sign ``sha256(message)``."""
        return self.sign_digest(sha256(message))
