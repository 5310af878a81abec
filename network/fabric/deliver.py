"""Blocks from a peer's Deliver service (``protos.Deliver/Deliver``).

The request is one signed ``common.Envelope``:

    Payload{header{ChannelHeader{type DELIVER_SEEK_INFO, channel_id, timestamp,
                                 tls_cert_hash}, SignatureHeader{creator, nonce}},
            data = SeekInfo{start, stop, behavior BLOCK_UNTIL_READY}}

Over mutual TLS a peer that requires client certificates checks that
``tls_cert_hash`` is the SHA-256 of the client TLS certificate (DER) presented
on the connection (see :func:`.connection.tls_cert_hash`). The peer streams the
blocks from ``start`` to ``stop`` and then a SUCCESS status; with no stop it
streams forever (stop = the largest block number).
"""
from __future__ import annotations

import os
import threading
from datetime import datetime

import grpc
from fabric_protos.common import common_pb2
from fabric_protos.orderer import ab_pb2
from fabric_protos.peer import events_pb2_grpc

from ipledger.network.fabric.errors import DeliverError
from ipledger.network.fabric.headers import make_timestamp

MAX_BLOCK_NUMBER = 2 ** 64 - 1


def _position(number: int | None) -> ab_pb2.SeekPosition:
    if number is None:
        return ab_pb2.SeekPosition(newest=ab_pb2.SeekNewest())
    if not 0 <= number <= MAX_BLOCK_NUMBER:
        raise ValueError(f"block number out of range: {number}")
    return ab_pb2.SeekPosition(specified=ab_pb2.SeekSpecified(number=number))


#: ``stop`` of :func:`seek_envelope`: the newest block when the peer receives the request (the stream then
#: ends at the current height instead of waiting for new blocks)
NEWEST = "newest"


def seek_envelope(identity, signer, channel_id: str, start: int | None = 0, stop: int | str | None = None, *,
                  tls_cert_hash: bytes | None = None, timestamp: datetime | None = None) -> common_pb2.Envelope:
    """The signed Deliver request for blocks ``start``..``stop`` (start None: the newest; stop None:
    forever, :data:`NEWEST`: up to the newest block when the request arrives)."""
    if stop == NEWEST:
        stop_position = _position(None)
    else:
        stop_position = _position(MAX_BLOCK_NUMBER if stop is None else stop)
    if isinstance(stop, int) and start is not None and stop < start:
        raise ValueError(f"stop block {stop} is before start block {start}")
    channel_header = common_pb2.ChannelHeader(
        type=common_pb2.DELIVER_SEEK_INFO, channel_id=channel_id, timestamp=make_timestamp(timestamp),
        epoch=0, tls_cert_hash=tls_cert_hash or b"")
    signature_header = common_pb2.SignatureHeader(creator=identity.serialize(), nonce=os.urandom(24))
    seek = ab_pb2.SeekInfo(start=_position(start), stop=stop_position, behavior=ab_pb2.SeekInfo.BLOCK_UNTIL_READY)
    payload = common_pb2.Payload(
        header=common_pb2.Header(channel_header=channel_header.SerializeToString(),
                                 signature_header=signature_header.SerializeToString()),
        data=seek.SerializeToString()).SerializeToString()
    return common_pb2.Envelope(payload=payload, signature=signer.sign(payload))


class BlockStream:
    """Iterator of ``common.Block``; ends after the stop block; ``close()`` ends it early."""

    def __init__(self, channel: grpc.Channel, envelope: common_pb2.Envelope, timeout: float | None = None):
        self.envelope = envelope
        self._closed = threading.Event()
        self._done = False
        self._call = events_pb2_grpc.DeliverStub(channel).Deliver(iter([envelope]), timeout=timeout)

    def __iter__(self):
        return self

    def __next__(self) -> common_pb2.Block:
        while True:
            if self._closed.is_set() or self._done:
                raise StopIteration
            try:
                response = next(self._call)
            except StopIteration:
                self._done = True
                raise DeliverError("the Deliver stream ended without a status") from None
            except grpc.RpcError as exc:
                if self._closed.is_set():
                    raise StopIteration from None
                raise DeliverError.from_rpc_error(exc) from None
            kind = response.WhichOneof("Type")
            if kind == "block":
                return response.block
            if kind == "status":
                self._done = True
                self._call.cancel()
                if response.status == common_pb2.SUCCESS:
                    raise StopIteration
                name = common_pb2.Status.Name(response.status)
                raise DeliverError(f"the peer refused or ended the Deliver stream with status {name}",
                                   status=name)

    def close(self) -> None:
        self._closed.set()
        self._call.cancel()

    def __enter__(self) -> "BlockStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def deliver_blocks(channel: grpc.Channel, identity, signer, channel_id: str, start: int | None = 0,
                   stop: int | None = None, *, tls_cert_hash: bytes | None = None,
                   timeout: float | None = None) -> BlockStream:
    """Blocks ``start``..``stop`` (``stop=None``: forever) of ``channel_id``."""
    return BlockStream(channel, seek_envelope(identity, signer, channel_id, start, stop,
                                              tls_cert_hash=tls_cert_hash), timeout=timeout)
