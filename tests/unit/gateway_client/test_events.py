"""Chaincode events: the signed request, start positions, checkpoint skipping, closing."""
from __future__ import annotations

import threading
import time

import grpc
import pytest
from fabric_protos.gateway import gateway_pb2
from fabric_protos.peer import chaincode_event_pb2

from ipledger.gateway.client import ChaincodeEvent, ChaincodeEventsError, Checkpoint, FileCheckpointer

from .fakes import verify_by_creator


def _response(block, *events):
    return gateway_pb2.ChaincodeEventsResponse(block_number=block, events=[
        chaincode_event_pb2.ChaincodeEvent(chaincode_id="ipledger", tx_id=tx, event_name=name, payload=payload)
        for tx, name, payload in events])


def _request(fake_peer):
    deadline = time.monotonic() + 5
    while not fake_peer.recorded.events and time.monotonic() < deadline:
        time.sleep(0.01)
    (signed,) = fake_peer.recorded.events
    return signed, gateway_pb2.ChaincodeEventsRequest.FromString(signed.request)


def test_events_are_yielded_in_order_with_their_block(gateway, fake_peer, identity):
    fake_peer.events_script = [_response(3, ("t1", "Placed", b"p1"), ("t2", "Moved", b"p2")),
                               _response(5, ("t3", "Exited", b"p3"))]
    fake_peer.events_end = True
    stream = gateway.network("inward-processing").chaincode_events("ipledger")
    assert list(stream) == [ChaincodeEvent(3, "t1", "ipledger", "Placed", b"p1"),
                            ChaincodeEvent(3, "t2", "ipledger", "Moved", b"p2"),
                            ChaincodeEvent(5, "t3", "ipledger", "Exited", b"p3")]
    signed, req = _request(fake_peer)
    assert (req.channel_id, req.chaincode_id, req.identity) == ("inward-processing", "ipledger", identity.serialize())
    assert req.start_position.HasField("next_commit")  # default: newest (the next block committed)
    assert req.after_transaction_id == ""
    assert verify_by_creator(req.identity, signed.request, signed.signature) == "OperatorMSP"


def test_start_from_a_block_number(gateway, fake_peer):
    fake_peer.events_end = True
    list(gateway.network("inward-processing").chaincode_events("ipledger", start_block=12))
    _, req = _request(fake_peer)
    assert req.start_position.specified.number == 12 and req.after_transaction_id == ""


def test_resume_after_a_checkpoint_skips_that_tx_and_earlier_in_its_block(gateway, fake_peer, tmp_path):
    cp = FileCheckpointer(tmp_path / "cp.json")
    cp.checkpoint_transaction(9, "t2")
    # a peer that did not filter the checkpoint block: the client still skips t1 and t2
    fake_peer.events_script = [_response(9, ("t1", "A", b""), ("t2", "B", b""), ("t2", "C", b""), ("t3", "D", b"")),
                               _response(10, ("t1", "E", b""))]
    fake_peer.events_end = True
    got = list(gateway.network("inward-processing").chaincode_events("ipledger", start_block=0, checkpoint=cp))
    assert [(e.block_number, e.tx_id, e.event_name) for e in got] == [(9, "t3", "D"), (10, "t1", "E")]
    _, req = _request(fake_peer)
    assert req.start_position.specified.number == 9 and req.after_transaction_id == "t2"


def test_an_empty_checkpoint_falls_back_to_the_start_block(gateway, fake_peer):
    fake_peer.events_end = True
    list(gateway.network("inward-processing").chaincode_events("ipledger", start_block=4, checkpoint=Checkpoint()))
    _, req = _request(fake_peer)
    assert req.start_position.specified.number == 4 and req.after_transaction_id == ""


def test_a_block_checkpoint_resumes_at_the_next_block(gateway, fake_peer, tmp_path):
    cp = FileCheckpointer(tmp_path / "cp.json")
    cp.checkpoint_block(41)
    fake_peer.events_end = True
    list(gateway.network("inward-processing").chaincode_events("ipledger", checkpoint=cp))
    _, req = _request(fake_peer)
    assert req.start_position.specified.number == 42 and req.after_transaction_id == ""


def test_close_from_another_thread_ends_a_waiting_iteration(gateway, fake_peer):
    fake_peer.events_script = [_response(1, ("t1", "A", b"x"))]
    stream = gateway.network("inward-processing").chaincode_events("ipledger")
    assert next(stream).tx_id == "t1"
    timer = threading.Timer(0.2, stream.close)
    timer.start()
    t = time.monotonic()
    assert list(stream) == []          # was blocked waiting for more; close() ended it cleanly
    assert 0.15 < time.monotonic() - t < 3
    assert stream.closed
    with pytest.raises(StopIteration):
        next(stream)


def test_a_refused_stream_raises_a_typed_error(gateway, fake_peer):
    stream = gateway.network("missing").chaincode_events("ipledger")
    with pytest.raises(ChaincodeEventsError) as info:
        next(stream)
    assert info.value.code == grpc.StatusCode.NOT_FOUND and "missing" in info.value.message


def test_context_manager_closes(gateway, fake_peer):
    with gateway.network("inward-processing").chaincode_events("ipledger") as stream:
        pass
    assert stream.closed
