"""The signature of a webhook delivery: what a receiver checks (see :mod:`ipledger.gateway.webhooks`)."""
from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Ipledger-Signature"         # of the body alone: receivers written before the time was signed
SIGNATURE_V2_HEADER = "X-Ipledger-Signature-V2"   # of "<timestamp>." + body
TIMESTAMP_HEADER = "X-Ipledger-Timestamp"
SIGNATURE_TOLERANCE_S = 300   # what `verify` accepts between the delivery's time and the receiver's clock


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """``sha256=`` and the hex HMAC-SHA256, with the subscription's secret, of the timestamp's digits (Unix
    seconds), a dot and the exact body — :data:`SIGNATURE_V2_HEADER`: the time is signed with the body, so a
    delivery captured on its way cannot be sent to the receiver again later, once it has forgotten the alert id
    (receivers refuse a timestamp outside their tolerance). Without a timestamp: of the body alone, the
    :data:`SIGNATURE_HEADER` receivers written before the timestamped one check (kept for them; no protection
    against a replay)."""
    message = body if timestamp is None else str(int(timestamp)).encode("ascii") + b"." + body
    return "sha256=" + hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None, timestamp: str | int | None = None, *,
           tolerance_s: float = SIGNATURE_TOLERANCE_S, now: float | None = None) -> bool:
    """For receivers: with ``timestamp`` (``X-Ipledger-Timestamp``), does ``header`` (``X-Ipledger-Signature-V2``)
    sign it and ``body`` with ``secret``, and was it sent within ``tolerance_s`` seconds of ``now`` (the receiver's
    clock)? Without: does ``header`` (``X-Ipledger-Signature``) sign ``body`` alone — the check of receivers
    written before the timestamp, which a captured delivery sent again also passes. Any header, however
    malformed, is a plain False."""
    if not header:
        return False
    if timestamp is None:
        expected = sign(secret, body)
    else:
        stamp = str(timestamp)
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
            return False
        if abs((time.time() if now is None else now) - int(stamp)) > tolerance_s:
            return False
        expected = sign(secret, body, int(stamp))
    # as bytes: compare_digest refuses (TypeError) a text with a non-ASCII character, which anyone may send
    return hmac.compare_digest(expected.encode("ascii"), str(header).encode("utf-8", "surrogatepass"))
