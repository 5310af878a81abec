"""All blocks of a channel, from the genesis block to the newest, from a peer's Deliver service.

The request of :func:`ipledger.network.fabric.deliver.seek_envelope` with the stop position
:data:`~ipledger.network.fabric.deliver.NEWEST` (resolved by the peer when it receives the request),
so the stream ends at the current height instead of waiting for new blocks.
"""
from __future__ import annotations

from fabric_protos.common import common_pb2

from ipledger.network.fabric.deliver import NEWEST, BlockStream, seek_envelope


def seek_all_envelope(identity, signer, channel_id: str, *,
                      tls_cert_hash: bytes | None = None) -> common_pb2.Envelope:
    """The signed Deliver request for every block from the genesis block to the newest."""
    return seek_envelope(identity, signer, channel_id, 0, NEWEST, tls_cert_hash=tls_cert_hash)


def all_blocks(channel, identity, signer, channel_id: str, *, tls_cert_hash: bytes | None = None,
               timeout: float | None = None) -> BlockStream:
    return BlockStream(channel, seek_all_envelope(identity, signer, channel_id,
                                                  tls_cert_hash=tls_cert_hash), timeout=timeout)
