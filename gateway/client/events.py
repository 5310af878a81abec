"""Chaincode events from the Gateway's ChaincodeEvents stream.

The request (``gateway.ChaincodeEventsRequest``: channel, chaincode, creator,
start position, after-transaction id) is sent serialized and signed. The Gateway
streams one response per block that holds events of the chaincode.

Start: the next block committed (default), a given block, or a checkpoint
(block N, tx T): the stream starts at block N and the events of T and of the
transactions before it in block N are skipped. The peer does that skipping; the
client repeats it on the first block, which is harmless when the peer already
did it.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import grpc
from fabric_protos.gateway import gateway_pb2
from fabric_protos.orderer import ab_pb2

from ipledger.network.fabric.errors import ChaincodeEventsError


@dataclass(frozen=True)
class ChaincodeEvent:
    block_number: int
    tx_id: str
    chaincode: str
    event_name: str
    payload: bytes


def start_position(start_block: int | None, checkpoint=None) -> tuple[ab_pb2.SeekPosition, str]:
    """(SeekPosition, after-transaction id) for a listener's start."""
    if checkpoint is not None and not (checkpoint.block_number == 0 and not checkpoint.tx_id):
        return (ab_pb2.SeekPosition(specified=ab_pb2.SeekSpecified(number=checkpoint.block_number)),
                checkpoint.tx_id)
    if start_block is not None:
        if start_block < 0:
            raise ValueError("start_block must be >= 0")
        return ab_pb2.SeekPosition(specified=ab_pb2.SeekSpecified(number=start_block)), ""
    return ab_pb2.SeekPosition(next_commit=ab_pb2.SeekNextCommit()), ""


def signed_events_request(identity, signer, channel_id: str, chaincode: str, position: ab_pb2.SeekPosition,
                          after_tx_id: str = "") -> gateway_pb2.SignedChaincodeEventsRequest:
    request = gateway_pb2.ChaincodeEventsRequest(
        channel_id=channel_id, chaincode_id=chaincode, identity=identity.serialize(),
        start_position=position, after_transaction_id=after_tx_id).SerializeToString()
    return gateway_pb2.SignedChaincodeEventsRequest(request=request, signature=signer.sign(request))


class ChaincodeEventStream:
    """Iterator of :class:`ChaincodeEvent`; ``close()`` (from any thread) ends it."""

    def __init__(self, gateway, channel_id: str, chaincode: str, *, start_block: int | None = None,
                 checkpoint=None, timeout: float | None = None):
        if not chaincode:
            raise ValueError("a chaincode name is required")
        position, after_tx_id = start_position(start_block, checkpoint)
        self.request = signed_events_request(gateway.identity, gateway.signer, channel_id, chaincode,
                                             position, after_tx_id)
        self._skip = (position.specified.number, after_tx_id) if after_tx_id else None
        self._pending: deque[ChaincodeEvent] = deque()
        self._closed = threading.Event()
        self._call = gateway.stub.ChaincodeEvents(self.request, timeout=timeout)

    def __iter__(self):
        return self

    def __next__(self) -> ChaincodeEvent:
        while not self._pending:
            if self._closed.is_set():
                raise StopIteration
            try:
                response = next(self._call)
            except grpc.RpcError as exc:
                if self._closed.is_set():
                    raise StopIteration from None
                raise ChaincodeEventsError.from_rpc_error(exc) from None
            self._pending.extend(self._events(response))
        return self._pending.popleft()

    def _events(self, response: gateway_pb2.ChaincodeEventsResponse) -> list[ChaincodeEvent]:
        events = [ChaincodeEvent(block_number=response.block_number, tx_id=e.tx_id, chaincode=e.chaincode_id,
                                 event_name=e.event_name, payload=e.payload) for e in response.events]
        if self._skip is not None:
            block, tx_id = self._skip
            self._skip = None
            if response.block_number == block:
                seen = [i for i, e in enumerate(events) if e.tx_id == tx_id]
                if seen:
                    events = events[seen[-1] + 1:]
        return events

    @property
    def buffered(self) -> int:
        """Events already received (of the block being read) and not yet returned: ``next`` answers them
        without waiting for the peer."""
        return len(self._pending)

    def close(self) -> None:
        self._closed.set()
        self._call.cancel()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def __enter__(self) -> "ChaincodeEventStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
