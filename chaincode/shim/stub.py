"""The real :class:`~ipledger.chaincode.shim.interface.ChaincodeStub`, talking to the peer.

One file, one interface: ``Stub`` implements every call of ``ChaincodeStub`` (one
peer message each, as the Go shim's stub does), with the query iterators that
page through its results on its private calls.

One ``Stub`` exists per transaction. Every ledger call sends one request on the
stream and suspends the transaction (its greenlet, or its worker thread with
``--worker-threads``) until the peer answers; the
session guarantees at most one outstanding request per transaction.

Writes (put/del/purge/metadata) are sent immediately as PUT_STATE & co., or —
when the peer advertised ``use_write_batch`` in READY — buffered and sent as
WRITE_BATCH_STATE chunks when the transaction succeeds (the Go shim's
behaviour). A failed transaction (status >= 400) sends no batch and no event.
Note that Fabric has no read-your-writes: ``get_state`` after ``put_state``
in the same transaction returns the committed value in both modes.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import struct
import threading
import types
from typing import Any, Iterator, Mapping, Optional, Sequence

from fabric_protos.common import common_pb2
from fabric_protos.ledger.queryresult import kv_query_result_pb2
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import (
    chaincode_event_pb2,
    chaincode_pb2,
    chaincode_shim_pb2 as shim_pb2,
    proposal_pb2,
    proposal_response_pb2,
)

from ipledger.chaincode.shim import keys as _keys
from ipledger.chaincode.shim.interface import KV, KeyModification, PeerError, QueryPage

__all__ = ["Stub", "StateQueryIterator", "HistoryQueryIterator", "VALIDATION_PARAMETER"]

CCM = shim_pb2.ChaincodeMessage
WR = shim_pb2.WriteRecord
VALIDATION_PARAMETER = "VALIDATION_PARAMETER"
_UTC = _dt.timezone.utc
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_UTC)
_INT32_MAX = 2**31 - 1


def _ts_to_datetime(ts: Any) -> _dt.datetime:
    return _EPOCH + _dt.timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)


def _as_bytes(value: Any, what: str = "value") -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be bytes, not {type(value).__name__}")


def _require_collection(collection: str) -> None:
    if not isinstance(collection, str) or collection == "":
        raise ValueError("collection must not be an empty string")


class _QueryIterator:
    """Iterates a QueryResponse, fetching further batches with QUERY_STATE_NEXT.

    Closed on exhaustion, on ``close()``, on ``with`` exit, and by the shim at
    the end of the transaction if still open. The peer releases its iterator
    itself when it answers ``has_more=False`` (the last batch, or a page), so
    QUERY_STATE_CLOSE is sent only for an iterator the peer still holds: a
    range that fits in one batch costs one round trip, not two.
    """

    def __init__(self, stub: "Stub", response: shim_pb2.QueryResponse) -> None:
        self._stub = stub
        self._response = response
        self._pos = 0
        self._closed = False
        stub._register_iterator(self)

    @property
    def closed(self) -> bool:
        return self._closed

    def _convert(self, raw: bytes) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def __iter__(self) -> "_QueryIterator":
        return self

    def __next__(self) -> Any:
        while True:
            if self._closed:
                raise StopIteration
            results = self._response.results
            if self._pos < len(results):
                raw = results[self._pos].resultBytes
                self._pos += 1
                return self._convert(raw)
            if self._response.has_more:
                try:
                    self._response = self._stub._query_next(self._response.id)
                except BaseException:
                    self._abandon()
                    raise
                self._pos = 0
                continue
            self.close()
            raise StopIteration

    def has_next(self) -> bool:
        return not self._closed and (
            self._pos < len(self._response.results) or self._response.has_more
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stub._unregister_iterator(self)
        if self._response.has_more:  # otherwise the peer has already let it go
            self._stub._query_close(self._response.id)

    def _abandon(self) -> None:
        """Close after a failure, without masking it."""
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    def __enter__(self) -> "_QueryIterator":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abandon()


class StateQueryIterator(_QueryIterator):
    def _convert(self, raw: bytes) -> KV:
        kv = kv_query_result_pb2.KV()
        kv.ParseFromString(raw)
        return KV(key=kv.key, value=kv.value, namespace=kv.namespace)

    def __iter__(self) -> Iterator[KV]:  # type: ignore[override]
        return self


class HistoryQueryIterator(_QueryIterator):
    def _convert(self, raw: bytes) -> KeyModification:
        km = kv_query_result_pb2.KeyModification()
        km.ParseFromString(raw)
        return KeyModification(
            tx_id=km.tx_id,
            value=km.value,
            timestamp=_ts_to_datetime(km.timestamp),
            is_delete=km.is_delete,
        )

    def __iter__(self) -> Iterator[KeyModification]:  # type: ignore[override]
        return self


# Room a WRITE_BATCH_STATE message's envelope takes beyond its records (type, transaction id, channel): a batch is
# cut so that the whole message stays within the session's message limit
_BATCH_ENVELOPE_ROOM = 1024


class Stub:
    """Implements :class:`ipledger.chaincode.shim.interface.ChaincodeStub` over the stream."""

    def __init__(
        self,
        session: Any,
        ctx: Any,
        chaincode_input: chaincode_pb2.ChaincodeInput,
        signed_proposal: Optional[proposal_pb2.SignedProposal],
    ) -> None:
        self._session = session
        self._ctx = ctx
        self._args = [bytes(a) for a in chaincode_input.args]
        self._decorations = {k: bytes(v) for k, v in chaincode_input.decorations.items()}
        self._event: Optional[chaincode_event_pb2.ChaincodeEvent] = None
        self._lock = threading.RLock()
        self._iterators: dict[_QueryIterator, None] = {}  # insertion order: closed in the order opened
        caps = session.capabilities
        self._batch: Optional[dict[tuple[str, str, int], shim_pb2.WriteRecord]] = (
            {} if caps.use_write_batch else None
        )
        self._batch_size = max(1, caps.max_size_write_batch)
        self._max_message = session.max_message
        self._use_get_multiple = caps.use_get_multiple_keys
        self._get_multiple_size = max(1, caps.max_size_get_multiple_keys)

        self._signed_proposal = signed_proposal
        self._creator = b""
        self._transient: dict[str, bytes] = {}
        self._binding = b""
        self._timestamp: Optional[_dt.datetime] = None
        self._identity: Optional[identities_pb2.SerializedIdentity] = None
        self._proposal_input: Optional[bytes] = None   # the invocation spec the proposal carries, read on demand
        if signed_proposal is not None:
            self._parse_proposal(signed_proposal)

    def _parse_proposal(self, signed: proposal_pb2.SignedProposal) -> None:
        proposal = proposal_pb2.Proposal()
        proposal.ParseFromString(signed.proposal_bytes)
        if not proposal.header:
            raise ValueError("failed to extract Proposal fields: proposal header is nil")
        hdr = common_pb2.Header()
        hdr.ParseFromString(proposal.header)
        chdr = common_pb2.ChannelHeader()
        chdr.ParseFromString(hdr.channel_header)
        if chdr.type not in (common_pb2.ENDORSER_TRANSACTION, common_pb2.CONFIG):
            raise ValueError(
                f"invalid channel header type. Expected ENDORSER_TRANSACTION or CONFIG, received {chdr.type}"
            )
        shdr = common_pb2.SignatureHeader()
        shdr.ParseFromString(hdr.signature_header)
        self._creator = bytes(shdr.creator)
        payload = proposal_pb2.ChaincodeProposalPayload()
        payload.ParseFromString(proposal.payload)
        self._transient = {k: bytes(v) for k, v in payload.TransientMap.items()}
        self._proposal_input = bytes(payload.input)
        epoch = struct.pack("<Q", chdr.epoch)
        self._binding = hashlib.sha256(bytes(shdr.nonce) + self._creator + epoch).digest()
        self._timestamp = _ts_to_datetime(chdr.timestamp)

    # -- plumbing -------------------------------------------------------------------
    def _call(self, msg_type: int, request: Any) -> shim_pb2.ChaincodeMessage:
        return self._session.call(self._ctx, msg_type, request.SerializeToString())

    def _register_iterator(self, it: _QueryIterator) -> None:
        with self._lock:
            self._iterators[it] = None

    def _unregister_iterator(self, it: _QueryIterator) -> None:
        with self._lock:
            self._iterators.pop(it, None)

    def _query_next(self, iterator_id: str) -> shim_pb2.QueryResponse:
        reply = self._call(CCM.QUERY_STATE_NEXT, shim_pb2.QueryStateNext(id=iterator_id))
        return self._parse(shim_pb2.QueryResponse, reply.payload)

    def _query_close(self, iterator_id: str) -> None:
        self._call(CCM.QUERY_STATE_CLOSE, shim_pb2.QueryStateClose(id=iterator_id))

    @staticmethod
    def _parse(cls: Any, payload: bytes) -> Any:
        out = cls()
        try:
            out.ParseFromString(payload)
        except Exception as exc:
            raise PeerError(f"cannot unmarshal {cls.DESCRIPTOR.name} from the peer: {exc}") from None
        return out

    def _dispatch_args(self) -> tuple[str, list]:
        """Function name and parameters for ``Contract.invoke``: str, or bytes if not UTF-8."""
        decoded: list = []
        for a in self._args:
            try:
                decoded.append(a.decode("utf-8"))
            except UnicodeDecodeError:
                decoded.append(a)
        if not decoded:
            return "", []
        fn = decoded[0]
        if isinstance(fn, bytes):
            fn = fn.decode("utf-8", "replace")
        return fn, decoded[1:]

    def _finish(self, ok: bool) -> None:
        """End of transaction: close leftover iterators; flush the batch when ok."""
        with self._lock:
            leftovers = list(self._iterators)
        for it in leftovers:
            it._abandon()
        batch, self._batch = self._batch, None
        if ok and batch:
            self._send_batch(list(batch.values()))

    def _send_batch(self, records: list) -> None:
        """The records in WRITE_BATCH_STATE messages of at most ``batch_size`` records each and, so that what
        fits as one write per message fits batched too, of at most the message limit less room for the envelope
        (a record larger than that alone still fails, as it would unbatched)."""
        budget = self._max_message - _BATCH_ENVELOPE_ROOM
        chunk: list = []
        size = 0
        for record in records:
            record_size = record.ByteSize() + 8   # the field's tag and length
            if chunk and (len(chunk) == self._batch_size or size + record_size > budget):
                self._call(CCM.WRITE_BATCH_STATE, shim_pb2.WriteBatchState(rec=chunk))
                chunk, size = [], 0
            chunk.append(record)
            size += record_size
        if chunk:
            self._call(CCM.WRITE_BATCH_STATE, shim_pb2.WriteBatchState(rec=chunk))

    def _write(self, record: shim_pb2.WriteRecord, plain_type: int, plain_request: Any) -> None:
        with self._lock:
            batch = self._batch
            if batch is not None:
                kind = 1 if record.type == WR.PUT_STATE_METADATA else 0
                k = (record.collection, record.key, kind)
                batch.pop(k, None)  # keep the latest write last
                batch[k] = record
                return
        self._call(plain_type, plain_request)

    # -- transaction context ------------------------------------------------------
    def get_tx_id(self) -> str:
        return self._ctx.txid

    def get_channel_id(self) -> str:
        return self._ctx.channel_id

    def get_tx_timestamp(self) -> _dt.datetime:
        if self._timestamp is None:
            raise ValueError("the transaction carries no signed proposal")
        return self._timestamp

    def get_creator(self) -> bytes:
        return self._creator

    def _creator_identity(self) -> identities_pb2.SerializedIdentity:
        if self._identity is None:
            ident = identities_pb2.SerializedIdentity()
            if self._creator:
                ident.ParseFromString(self._creator)
            self._identity = ident
        return self._identity

    def get_mspid(self) -> str:
        return self._creator_identity().mspid

    def get_creator_certificate_pem(self) -> bytes:
        return bytes(self._creator_identity().id_bytes)

    def get_transient(self) -> Mapping[str, bytes]:
        return types.MappingProxyType(self._transient)

    def get_signed_proposal(self) -> bytes:
        return self._signed_proposal.SerializeToString() if self._signed_proposal is not None else b""

    def get_proposed_call(self) -> Optional[tuple[str, list[bytes]]]:
        if self._proposal_input is None:
            return None
        try:
            spec = chaincode_pb2.ChaincodeInvocationSpec.FromString(self._proposal_input).chaincode_spec
        except Exception:   # noqa: BLE001 - an input that does not parse is no call to name
            return None
        return spec.chaincode_id.name, [bytes(a) for a in spec.input.args]

    def get_binding(self) -> bytes:
        return self._binding

    def get_decorations(self) -> Mapping[str, bytes]:
        return types.MappingProxyType(self._decorations)

    def get_args(self) -> list[bytes]:
        return list(self._args)

    def get_string_args(self) -> list[str]:
        return [a.decode("utf-8", "replace") for a in self._args]

    def get_function_and_parameters(self) -> tuple[str, list[str]]:
        args = self.get_string_args()
        if not args:
            return "", []
        return args[0], args[1:]

    # -- world state ----------------------------------------------------------------
    def get_state(self, key: str) -> bytes:
        return self._get_state("", key)

    def _get_state(self, collection: str, key: str) -> bytes:
        reply = self._call(CCM.GET_STATE, shim_pb2.GetState(key=key, collection=collection))
        return bytes(reply.payload)

    def get_multiple_states(self, keys: Sequence[str]) -> list[bytes]:
        return self._get_multiple("", keys)

    def get_multiple_private_data(self, collection: str, keys: Sequence[str]) -> list[bytes]:
        _require_collection(collection)
        return self._get_multiple(collection, keys)

    def _get_multiple(self, collection: str, keys: Sequence[str]) -> list[bytes]:
        if isinstance(keys, str):
            raise TypeError("keys must be a sequence of str, not a str")
        keys = list(keys)
        if not keys:
            return []
        if not self._use_get_multiple:
            return [self._get_state(collection, k) for k in keys]
        out: list[bytes] = []
        for i in range(0, len(keys), self._get_multiple_size):
            chunk = keys[i : i + self._get_multiple_size]
            reply = self._call(
                CCM.GET_STATE_MULTIPLE, shim_pb2.GetStateMultiple(keys=chunk, collection=collection)
            )
            result = self._parse(shim_pb2.GetStateMultipleResult, reply.payload)
            if len(result.values) != len(chunk):
                raise PeerError(
                    f"GET_STATE_MULTIPLE returned {len(result.values)} values for {len(chunk)} keys"
                )
            out.extend(bytes(v) for v in result.values)
        return out

    def put_state(self, key: str, value: bytes) -> None:
        self._put("", key, value)

    def _put(self, collection: str, key: str, value: bytes) -> None:
        if not isinstance(key, str) or key == "":
            raise ValueError("key must not be an empty string")
        value = _as_bytes(value)
        self._write(
            WR(key=key, value=value, collection=collection, type=WR.PUT_STATE),
            CCM.PUT_STATE,
            shim_pb2.PutState(key=key, value=value, collection=collection),
        )

    def del_state(self, key: str) -> None:
        self._del("", key)

    def _del(self, collection: str, key: str) -> None:
        self._write(
            WR(key=key, collection=collection, type=WR.DEL_STATE),
            CCM.DEL_STATE,
            shim_pb2.DelState(key=key, collection=collection),
        )

    def _range(self, collection: str, start: str, end: str, metadata: bytes = b"") -> StateQueryIterator:
        reply = self._call(
            CCM.GET_STATE_BY_RANGE,
            shim_pb2.GetStateByRange(startKey=start, endKey=end, collection=collection, metadata=metadata),
        )
        return StateQueryIterator(self, self._parse(shim_pb2.QueryResponse, reply.payload))

    def get_state_by_range(self, start_key: str, end_key: str) -> StateQueryIterator:
        start_key = _keys.range_start_key(start_key)
        _keys.validate_simple_keys(start_key, end_key)
        return self._range("", start_key, end_key)

    @staticmethod
    def _query_metadata(page_size: int, bookmark: str, start: str = "", end: str = "") -> bytes:
        """The page's metadata. The peer starts the page at the bookmark as given: one from outside the queried
        range (a client's, say) would make the page hold keys of other objects, so it is refused (ValueError)."""
        if not isinstance(page_size, int) or isinstance(page_size, bool) or not 0 < page_size <= _INT32_MAX:
            raise ValueError("page_size must be a positive 32-bit integer")
        if not isinstance(bookmark, str):
            raise TypeError("bookmark must be str")
        _keys.check_bookmark(bookmark, start, end)
        return shim_pb2.QueryMetadata(pageSize=page_size, bookmark=bookmark).SerializeToString()

    def _page(self, iterator: _QueryIterator) -> QueryPage:
        raw_md = iterator._response.metadata
        with iterator:
            items = list(iterator)
        md = self._parse(shim_pb2.QueryResponseMetadata, raw_md)
        return QueryPage(items=items, fetched_records_count=md.fetched_records_count, bookmark=md.bookmark)

    def get_state_by_range_with_pagination(
        self, start_key: str, end_key: str, page_size: int, bookmark: str = ""
    ) -> QueryPage:
        start_key = _keys.range_start_key(start_key)
        _keys.validate_simple_keys(start_key, end_key)
        md = self._query_metadata(page_size, bookmark, start_key, end_key)
        return self._page(self._range("", start_key, end_key, md))

    def create_composite_key(self, object_type: str, attributes: Sequence[str]) -> str:
        return _keys.create_composite_key(object_type, attributes)

    def split_composite_key(self, key: str) -> tuple[str, list[str]]:
        return _keys.split_composite_key(key)

    def get_state_by_partial_composite_key(
        self, object_type: str, attributes: Sequence[str]
    ) -> StateQueryIterator:
        start, end = _keys.partial_composite_key_range(object_type, attributes)
        return self._range("", start, end)

    def get_state_by_partial_composite_key_from(
        self, object_type: str, attributes: Sequence[str], start_attributes: Sequence[str],
        end_attributes: Optional[Sequence[str]] = None,
    ) -> StateQueryIterator:
        """The keys of the partial composite key ``(object_type, *attributes)`` from those whose next attributes
        are ``start_attributes`` (or sort after them) on, and before those whose next attributes are
        ``end_attributes`` when given — a range read within the prefix (Fabric's shims have no such call; the peer's
        GetStateByRange answers it as any other). E.g. the entries of a log between two moments."""
        start, end = _keys.partial_composite_key_range_from(object_type, attributes, start_attributes, end_attributes)
        return self._range("", start, end)

    def get_state_by_partial_composite_key_with_pagination(
        self, object_type: str, attributes: Sequence[str], page_size: int, bookmark: str = ""
    ) -> QueryPage:
        start, end = _keys.partial_composite_key_range(object_type, attributes)
        md = self._query_metadata(page_size, bookmark, start, end)
        return self._page(self._range("", start, end, md))

    def get_query_result(self, query: str) -> StateQueryIterator:
        """Rich (CouchDB) query; not available on LevelDB peers."""
        reply = self._call(CCM.GET_QUERY_RESULT, shim_pb2.GetQueryResult(query=query))
        return StateQueryIterator(self, self._parse(shim_pb2.QueryResponse, reply.payload))

    def get_query_result_with_pagination(self, query: str, page_size: int, bookmark: str = "") -> QueryPage:
        md = self._query_metadata(page_size, bookmark)
        reply = self._call(CCM.GET_QUERY_RESULT, shim_pb2.GetQueryResult(query=query, metadata=md))
        return self._page(StateQueryIterator(self, self._parse(shim_pb2.QueryResponse, reply.payload)))

    def get_history_for_key(self, key: str) -> HistoryQueryIterator:
        """Every committed write of ``key``, newest first. Needs the peer's history database, which
        ipledger's peers keep only when the consortium file asks (``history_database``); without it the
        peer answers with an error (``history database is not enabled``), raised here."""
        reply = self._call(CCM.GET_HISTORY_FOR_KEY, shim_pb2.GetHistoryForKey(key=key))
        return HistoryQueryIterator(self, self._parse(shim_pb2.QueryResponse, reply.payload))

    # -- state-based endorsement ------------------------------------------------------
    def _put_metadata(self, collection: str, key: str, metakey: str, value: bytes) -> None:
        value = _as_bytes(value, "endorsement policy")
        md = shim_pb2.StateMetadata(metakey=metakey, value=value)
        self._write(
            WR(key=key, collection=collection, metadata=md, type=WR.PUT_STATE_METADATA),
            CCM.PUT_STATE_METADATA,
            shim_pb2.PutStateMetadata(key=key, collection=collection, metadata=md),
        )

    def _get_metadata(self, collection: str, key: str) -> dict[str, bytes]:
        reply = self._call(CCM.GET_STATE_METADATA, shim_pb2.GetStateMetadata(key=key, collection=collection))
        result = self._parse(shim_pb2.StateMetadataResult, reply.payload)
        return {e.metakey: bytes(e.value) for e in result.entries}

    def set_state_validation_parameter(self, key: str, ep: bytes) -> None:
        self._put_metadata("", key, VALIDATION_PARAMETER, ep)

    def get_state_validation_parameter(self, key: str) -> bytes:
        return self._get_metadata("", key).get(VALIDATION_PARAMETER, b"")

    def set_private_data_validation_parameter(self, collection: str, key: str, ep: bytes) -> None:
        _require_collection(collection)
        self._put_metadata(collection, key, VALIDATION_PARAMETER, ep)

    def get_private_data_validation_parameter(self, collection: str, key: str) -> bytes:
        _require_collection(collection)
        return self._get_metadata(collection, key).get(VALIDATION_PARAMETER, b"")

    # -- private data -----------------------------------------------------------------
    def get_private_data(self, collection: str, key: str) -> bytes:
        _require_collection(collection)
        return self._get_state(collection, key)

    def get_private_data_hash(self, collection: str, key: str) -> bytes:
        _require_collection(collection)
        reply = self._call(CCM.GET_PRIVATE_DATA_HASH, shim_pb2.GetState(key=key, collection=collection))
        return bytes(reply.payload)

    def put_private_data(self, collection: str, key: str, value: bytes) -> None:
        _require_collection(collection)
        self._put(collection, key, value)

    def del_private_data(self, collection: str, key: str) -> None:
        _require_collection(collection)
        self._del(collection, key)

    def purge_private_data(self, collection: str, key: str) -> None:
        _require_collection(collection)
        self._write(
            WR(key=key, collection=collection, type=WR.PURGE_PRIVATE_DATA),
            CCM.PURGE_PRIVATE_DATA,
            shim_pb2.DelState(key=key, collection=collection),
        )

    def get_private_data_by_range(self, collection: str, start_key: str, end_key: str) -> StateQueryIterator:
        _require_collection(collection)
        start_key = _keys.range_start_key(start_key)
        _keys.validate_simple_keys(start_key, end_key)
        return self._range(collection, start_key, end_key)

    def get_private_data_by_partial_composite_key(
        self, collection: str, object_type: str, attributes: Sequence[str]
    ) -> StateQueryIterator:
        _require_collection(collection)
        start, end = _keys.partial_composite_key_range(object_type, attributes)
        return self._range(collection, start, end)

    def get_private_data_query_result(self, collection: str, query: str) -> StateQueryIterator:
        _require_collection(collection)
        reply = self._call(CCM.GET_QUERY_RESULT, shim_pb2.GetQueryResult(query=query, collection=collection))
        return StateQueryIterator(self, self._parse(shim_pb2.QueryResponse, reply.payload))

    # -- events and other chaincodes ----------------------------------------------------
    def set_event(self, name: str, payload: bytes) -> None:
        if not isinstance(name, str) or name == "":
            raise ValueError("event name can not be empty string")
        payload = _as_bytes(payload, "event payload")
        self._event = chaincode_event_pb2.ChaincodeEvent(event_name=name, payload=payload)

    def invoke_chaincode(
        self, chaincode_name: str, args: Sequence[bytes], channel: str = ""
    ) -> tuple[int, str, bytes]:
        """Call another chaincode. A peer ERROR raises :class:`PeerError`;
        the callee's own response (any status) is returned as a tuple."""
        if not chaincode_name:
            raise ValueError("chaincode name must not be empty")
        name = f"{chaincode_name}/{channel}" if channel else chaincode_name
        raw_args = [a.encode("utf-8") if isinstance(a, str) else _as_bytes(a, "argument") for a in args]
        spec = chaincode_pb2.ChaincodeSpec(
            chaincode_id=chaincode_pb2.ChaincodeID(name=name),
            input=chaincode_pb2.ChaincodeInput(args=raw_args),
        )
        reply = self._call(CCM.INVOKE_CHAINCODE, spec)
        nested = self._parse(CCM, reply.payload)
        if nested.type == CCM.COMPLETED:
            res = self._parse(proposal_response_pb2.Response, nested.payload)
            return int(res.status), res.message, bytes(res.payload)
        return 500, nested.payload.decode("utf-8", "replace"), b""
