"""Deliver: the signed SeekInfo envelope and the block stream."""
from __future__ import annotations

import hashlib
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from fabric_protos.common import common_pb2
from fabric_protos.orderer import ab_pb2

from ipledger.gateway.client import DeliverError, deliver_blocks, seek_envelope

from .fakes import verify_by_creator

MAX = 2 ** 64 - 1


def _decode(envelope):
    payload = common_pb2.Payload.FromString(envelope.payload)
    chdr = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
    shdr = common_pb2.SignatureHeader.FromString(payload.header.signature_header)
    return chdr, shdr, ab_pb2.SeekInfo.FromString(payload.data)


def test_seek_envelope_fields(identity, signer):
    when = datetime(2025, 5, 1, 12, 0, tzinfo=timezone.utc)
    env = seek_envelope(identity, signer, "inward-processing", 3, 9, tls_cert_hash=b"\x11" * 32, timestamp=when)
    chdr, shdr, seek = _decode(env)
    assert chdr.type == common_pb2.DELIVER_SEEK_INFO == 5
    assert chdr.channel_id == "inward-processing" and chdr.tls_cert_hash == b"\x11" * 32
    assert chdr.timestamp.seconds == int(when.timestamp())
    assert shdr.creator == identity.serialize() and len(shdr.nonce) == 24
    assert seek.start.specified.number == 3 and seek.stop.specified.number == 9
    assert seek.behavior == ab_pb2.SeekInfo.BLOCK_UNTIL_READY
    assert verify_by_creator(shdr.creator, env.payload, env.signature) == "OperatorMSP"


def test_forever_and_newest(identity, signer):
    _, _, seek = _decode(seek_envelope(identity, signer, "ch", None, None))
    assert seek.start.HasField("newest") and seek.stop.specified.number == MAX
    chdr, _, _ = _decode(seek_envelope(identity, signer, "ch", 0))
    assert chdr.tls_cert_hash == b""
    stamped = chdr.timestamp.ToDatetime(tzinfo=timezone.utc)
    assert abs(stamped - datetime.now(timezone.utc)) < timedelta(seconds=5)
    with pytest.raises(ValueError, match="before start"):
        seek_envelope(identity, signer, "ch", 5, 4)


def test_up_to_the_newest_block_when_the_request_arrives(identity, signer):
    """The verifier's request: from the genesis block to the newest, then the stream ends."""
    from ipledger.network.fabric.deliver import NEWEST
    from ipledger.network.verify.fetch import seek_all_envelope
    for env in (seek_envelope(identity, signer, "ch", 0, NEWEST), seek_all_envelope(identity, signer, "ch")):
        _, _, seek = _decode(env)
        assert seek.start.specified.number == 0 and seek.stop.HasField("newest")


def test_blocks_from_start_to_stop(gateway, fake_peer):
    blocks = list(gateway.network("inward-processing").blocks(1, 3))
    assert [b.header.number for b in blocks] == [1, 2, 3]
    assert blocks == fake_peer.chain[1:4]
    for b in blocks:
        assert b.header.data_hash == hashlib.sha256(b"".join(b.data.data)).digest()
    (env,) = fake_peer.recorded.deliver
    chdr, _, seek = _decode(env)
    assert chdr.channel_id == "inward-processing"
    assert (seek.start.specified.number, seek.stop.specified.number) == (1, 3)


def test_forever_stream_can_be_closed_while_waiting(gateway, fake_peer):
    stream = gateway.network("inward-processing").blocks(3)
    assert [next(stream).header.number for _ in range(2)] == [3, 4]   # the chain has 5 blocks
    threading.Timer(0.2, stream.close).start()
    t = time.monotonic()
    assert list(stream) == []
    assert time.monotonic() - t < 3
    _, _, seek = _decode(fake_peer.recorded.deliver[0])
    assert seek.stop.specified.number == MAX


def test_a_refusing_peer_raises_with_the_status(gateway, fake_peer):
    fake_peer.deliver_status = common_pb2.FORBIDDEN
    with pytest.raises(DeliverError) as info:
        list(gateway.network("inward-processing").blocks(0, 0))
    assert info.value.status == "FORBIDDEN"


def test_deliver_blocks_function_on_a_plain_channel(peer_channel, identity, signer, fake_peer):
    blocks = list(deliver_blocks(peer_channel, identity, signer, "ch", start=0, stop=0))
    assert len(blocks) == 1 and blocks[0].header.number == 0
