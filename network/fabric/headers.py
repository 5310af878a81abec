"""Fields of the headers every Fabric envelope carries: the transaction id and the timestamp.

Shared by chaincode proposals (:mod:`ipledger.gateway.client.proposal`) and Deliver requests
(:mod:`ipledger.network.fabric.deliver`, :mod:`ipledger.network.verify.fetch`).
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone

from google.protobuf import timestamp_pb2


def transaction_id(nonce: bytes, creator: bytes) -> str:
    """Fabric's transaction id: hex SHA-256 of nonce followed by the serialized creator."""
    return hashlib.sha256(nonce + creator).hexdigest()


def make_timestamp(when: datetime | None) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    if when is None:
        ts.GetCurrentTime()
    else:
        if when.tzinfo is None:
            raise ValueError("the proposal timestamp must be timezone-aware")
        ts.FromDatetime(when.astimezone(timezone.utc))
    return ts
