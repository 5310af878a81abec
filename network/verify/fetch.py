"""All blocks of a channel, from the genesis block to the newest, from a peer's Deliver service.

Same request as :func:`ipledger.network.fabric.deliver.seek_envelope` but with the stop
position "newest" (resolved by the peer when it receives the request), so the
stream ends at the current height instead of waiting for new blocks.
"""
from __future__ import annotations

import os

from fabric_protos.common import common_pb2
from fabric_protos.orderer import ab_pb2

from ipledger.network.fabric.deliver import BlockStream
from ipledger.network.fabric.headers import make_timestamp


def seek_all_envelope(identity, signer, channel_id: str, *,
                      tls_cert_hash: bytes | None = None) -> common_pb2.Envelope:
    channel_header = common_pb2.ChannelHeader(
        type=common_pb2.DELIVER_SEEK_INFO, channel_id=channel_id, timestamp=make_timestamp(None),
        epoch=0, tls_cert_hash=tls_cert_hash or b"")
    signature_header = common_pb2.SignatureHeader(creator=identity.serialize(), nonce=os.urandom(24))
    seek = ab_pb2.SeekInfo(start=ab_pb2.SeekPosition(specified=ab_pb2.SeekSpecified(number=0)),
                           stop=ab_pb2.SeekPosition(newest=ab_pb2.SeekNewest()),
                           behavior=ab_pb2.SeekInfo.BLOCK_UNTIL_READY)
    payload = common_pb2.Payload(
        header=common_pb2.Header(channel_header=channel_header.SerializeToString(),
                                 signature_header=signature_header.SerializeToString()),
        data=seek.SerializeToString()).SerializeToString()
    return common_pb2.Envelope(payload=payload, signature=signer.sign(payload))


def all_blocks(channel, identity, signer, channel_id: str, *, tls_cert_hash: bytes | None = None,
               timeout: float | None = None) -> BlockStream:
    return BlockStream(channel, seek_all_envelope(identity, signer, channel_id,
                                                  tls_cert_hash=tls_cert_hash), timeout=timeout)
