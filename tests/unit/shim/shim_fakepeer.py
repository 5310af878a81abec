"""A fake Fabric peer speaking the chaincode stream protocol over real grpc.aio.

It answers the shim's requests from in-memory dicts, records every message it
receives, and lets tests send TRANSACTION messages and await COMPLETED.

* ``await FakePeer.start_server()`` — peer listens (ChaincodeSupport.Register),
  for client-mode shims;
* ``await peer.connect_to(address)`` — peer dials a CCaaS shim (Chaincode.Connect).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import itertools
import os
import random
from bisect import bisect_left
from typing import Any, Callable, Optional

import grpc
from google.protobuf import timestamp_pb2

from fabric_protos.common import common_pb2
from fabric_protos.ledger.queryresult import kv_query_result_pb2
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import (
    chaincode_pb2,
    chaincode_shim_pb2 as shim,
    chaincode_shim_pb2_grpc as shim_grpc,
    proposal_pb2,
    proposal_response_pb2,
)

CCM = shim.ChaincodeMessage
MAX = 100 * 1024 * 1024
GRPC_OPTS = [("grpc.max_send_message_length", MAX), ("grpc.max_receive_message_length", MAX)]


def make_signed_proposal(
    *,
    txid: str,
    channel: str,
    mspid: str = "Org1MSP",
    cert_pem: bytes = b"-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n",
    nonce: bytes = b"nonce-0123456789",
    epoch: int = 0,
    timestamp: Optional[dt.datetime] = None,
    transient: Optional[dict[str, bytes]] = None,
    args: Optional[list[bytes]] = None,
) -> proposal_pb2.SignedProposal:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(timestamp or dt.datetime(2025, 1, 2, 3, 4, 5, 678000))
    chdr = common_pb2.ChannelHeader(
        type=common_pb2.ENDORSER_TRANSACTION, channel_id=channel, tx_id=txid, epoch=epoch, timestamp=ts
    )
    creator = identities_pb2.SerializedIdentity(mspid=mspid, id_bytes=cert_pem).SerializeToString()
    shdr = common_pb2.SignatureHeader(creator=creator, nonce=nonce)
    hdr = common_pb2.Header(channel_header=chdr.SerializeToString(), signature_header=shdr.SerializeToString())
    cis = chaincode_pb2.ChaincodeInvocationSpec(
        chaincode_spec=chaincode_pb2.ChaincodeSpec(input=chaincode_pb2.ChaincodeInput(args=args or []))
    )
    payload = proposal_pb2.ChaincodeProposalPayload(input=cis.SerializeToString(), TransientMap=transient or {})
    prop = proposal_pb2.Proposal(header=hdr.SerializeToString(), payload=payload.SerializeToString())
    return proposal_pb2.SignedProposal(proposal_bytes=prop.SerializeToString(), signature=b"sig")


class _Iter:
    def __init__(self, items: list, batch: int) -> None:
        self.items = items
        self.pos = 0
        self.batch = batch


class FakePeer:
    def __init__(
        self,
        *,
        use_write_batch: bool = False,
        max_size_write_batch: int = 0,
        use_get_multiple_keys: bool = False,
        max_size_get_multiple_keys: int = 0,
        max_result_limit: int = 3,
        send_ready: bool = True,
        reply_delay: float = 0.0,
    ) -> None:
        self.reply_delay = reply_delay  # > 0: answer after a random delay, out of order
        self.params = chaincode_pb2.ChaincodeAdditionalParams(
            use_write_batch=use_write_batch,
            max_size_write_batch=max_size_write_batch,
            use_get_multiple_keys=use_get_multiple_keys,
            max_size_get_multiple_keys=max_size_get_multiple_keys,
        )
        self.send_ready = send_ready
        self.max_result_limit = max_result_limit
        self.state: dict[str, bytes] = {}
        self.private: dict[tuple[str, str], bytes] = {}
        self.metadata: dict[tuple[str, str], dict[str, bytes]] = {}
        self.history: dict[str, list[kv_query_result_pb2.KeyModification]] = {}
        self.received: list[shim.ChaincodeMessage] = []
        self.registered_name: Optional[str] = None
        self.ready = asyncio.Event()
        self.stream_ended = asyncio.Event()
        self.iterators: dict[str, _Iter] = {}
        self.closed_iterators: list[str] = []    # closed by the shim (QUERY_STATE_CLOSE)
        self.released_iterators: list[str] = []  # let go by the peer itself with its last batch
        self.keepalives: list[shim.ChaincodeMessage] = []
        # hook(msg) -> reply | None (no reply ever) | ... (Ellipsis: default handling)
        self.hook: Optional[Callable[[shim.ChaincodeMessage], Any]] = None
        self.invoke_handler: Optional[Callable[[chaincode_pb2.ChaincodeSpec], shim.ChaincodeMessage]] = None
        self._completions: dict[tuple[str, str], asyncio.Future] = {}
        self._ids = itertools.count(1)
        self._send_q: Optional[asyncio.Queue] = None
        self._server: Optional[grpc.aio.Server] = None
        self._channel: Optional[grpc.aio.Channel] = None
        self._call: Any = None
        self.protocol_errors: list[str] = []
        self.in_flight_requests: set[tuple[str, str]] = set()

    # -- network -------------------------------------------------------------------
    async def start_server(self, credentials: Optional[grpc.ServerCredentials] = None) -> int:
        server = grpc.aio.server(options=GRPC_OPTS)
        peer = self

        class Servicer(shim_grpc.ChaincodeSupportServicer):
            async def Register(self, request_iterator, context):  # noqa: N802
                await peer._chat(context.read, context.write)

        shim_grpc.add_ChaincodeSupportServicer_to_server(Servicer(), server)
        if credentials is None:
            port = server.add_insecure_port("127.0.0.1:0")
        else:
            port = server.add_secure_port("127.0.0.1:0", credentials)
        await server.start()
        self._server = server
        return port

    async def stop_server(self) -> None:
        if self._server is not None:
            await self._server.stop(0)

    async def connect_to(
        self, address: str, credentials: Optional[grpc.ChannelCredentials] = None, options: list = ()
    ) -> asyncio.Task:
        """Dial a CCaaS chaincode; returns the task running the stream."""
        opts = GRPC_OPTS + list(options)
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(address, options=opts)
        else:
            self._channel = grpc.aio.secure_channel(address, credentials, options=opts)
        self._call = shim_grpc.ChaincodeStub(self._channel).Connect()
        return asyncio.create_task(self._chat(self._call.read, self._call.write))

    async def disconnect(self) -> None:
        if self._call is not None:
            self._call.cancel()
        if self._channel is not None:
            await self._channel.close()

    # -- stream ----------------------------------------------------------------------
    async def _chat(self, read, write) -> None:
        self._send_q = asyncio.Queue()
        self.ready.clear()
        self.stream_ended.clear()

        async def sender() -> None:
            while True:
                m = await self._send_q.get()
                await write(m)

        stask = asyncio.create_task(sender())
        try:
            while True:
                try:
                    msg = await read()
                except (grpc.aio.AioRpcError, asyncio.CancelledError):
                    break
                if msg is grpc.aio.EOF:
                    break
                self.received.append(msg)
                self._handle(msg)
        finally:
            stask.cancel()
            self.stream_ended.set()
            for fut in self._completions.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("stream ended"))
                    fut.add_done_callback(lambda f: f.exception())  # may never be awaited

    def send(self, msg: shim.ChaincodeMessage) -> None:
        assert self._send_q is not None
        self._send_q.put_nowait(msg)

    # -- test API --------------------------------------------------------------------
    def start_transaction(
        self,
        args: list,
        *,
        channel: str = "ch1",
        txid: Optional[str] = None,
        proposal: Any = ...,
        transient: Optional[dict[str, bytes]] = None,
        msg_type: int = CCM.TRANSACTION,
    ) -> "asyncio.Future[shim.ChaincodeMessage]":
        txid = txid or f"tx{next(self._ids):06d}{os.urandom(4).hex()}"
        raw = [a if isinstance(a, bytes) else a.encode() for a in args]
        if proposal is ...:
            proposal = make_signed_proposal(txid=txid, channel=channel, transient=transient, args=raw)
        msg = CCM(
            type=msg_type,
            payload=chaincode_pb2.ChaincodeInput(args=raw).SerializeToString(),
            txid=txid,
            channel_id=channel,
        )
        if proposal is not None:
            msg.proposal.CopyFrom(proposal)
        fut = asyncio.get_running_loop().create_future()
        self._completions[(channel, txid)] = fut
        self.send(msg)
        return fut

    async def transaction(self, *args, timeout: float = 10.0, **kw) -> shim.ChaincodeMessage:
        return await asyncio.wait_for(self.start_transaction(list(args), **kw), timeout)

    @staticmethod
    def response(msg: shim.ChaincodeMessage) -> proposal_response_pb2.Response:
        assert msg.type == CCM.COMPLETED, CCM.Type.Name(msg.type)
        r = proposal_response_pb2.Response()
        r.ParseFromString(msg.payload)
        return r

    def requests(self, *types: int) -> list[shim.ChaincodeMessage]:
        return [m for m in self.received if m.type in types]

    # -- message handling ------------------------------------------------------------
    def _reply(self, req, payload: bytes = b"", type_: int = CCM.RESPONSE) -> shim.ChaincodeMessage:
        return CCM(type=type_, payload=payload, txid=req.txid, channel_id=req.channel_id)

    def _handle(self, msg: shim.ChaincodeMessage) -> None:
        t = msg.type
        if t == CCM.REGISTER:
            cid = chaincode_pb2.ChaincodeID()
            cid.ParseFromString(msg.payload)
            self.registered_name = cid.name
            self.send(CCM(type=CCM.REGISTERED))
            if self.send_ready:
                self.send(CCM(type=CCM.READY, payload=self.params.SerializeToString()))
                self.ready.set()
            return
        if t == CCM.KEEPALIVE:
            self.keepalives.append(msg)
            return
        if t in (CCM.COMPLETED, CCM.ERROR):
            fut = self._completions.pop((msg.channel_id, msg.txid), None)
            if fut is None:
                self.protocol_errors.append(f"unexpected {CCM.Type.Name(t)} for {msg.txid}")
            elif not fut.done():
                fut.set_result(msg)
            return
        key = (msg.channel_id, msg.txid)
        if key not in self._completions:
            self.protocol_errors.append(f"request {CCM.Type.Name(t)} for unknown tx {msg.txid}")
        if key in self.in_flight_requests:
            self.protocol_errors.append(f"overlapping requests for {msg.txid}")
        self.in_flight_requests.add(key)
        reply: Any = ...
        if self.hook is not None:
            reply = self.hook(msg)
            if reply is None:  # swallow: never answer
                return
        if reply is ...:
            try:
                reply = self._default(msg)
            except Exception as exc:  # noqa: BLE001
                reply = self._reply(msg, str(exc).encode(), CCM.ERROR)
        if self.reply_delay > 0:
            asyncio.get_running_loop().create_task(self._delayed(key, reply))
        else:
            self.in_flight_requests.discard(key)
            self.send(reply)

    async def _delayed(self, key, reply) -> None:
        await asyncio.sleep(random.random() * self.reply_delay)
        self.in_flight_requests.discard(key)
        self.send(reply)

    def _default(self, msg: shim.ChaincodeMessage) -> shim.ChaincodeMessage:
        t = msg.type
        if t == CCM.GET_STATE:
            r = shim.GetState.FromString(msg.payload)
            if r.collection:
                return self._reply(msg, self.private.get((r.collection, r.key), b""))
            return self._reply(msg, self.state.get(r.key, b""))
        if t == CCM.GET_STATE_MULTIPLE:
            r = shim.GetStateMultiple.FromString(msg.payload)
            src = (lambda k: self.private.get((r.collection, k), b"")) if r.collection else (
                lambda k: self.state.get(k, b"")
            )
            return self._reply(msg, shim.GetStateMultipleResult(values=[src(k) for k in r.keys]).SerializeToString())
        if t == CCM.PUT_STATE:
            r = shim.PutState.FromString(msg.payload)
            self._put(r.collection, r.key, r.value)
            return self._reply(msg)
        if t in (CCM.DEL_STATE, CCM.PURGE_PRIVATE_DATA):
            r = shim.DelState.FromString(msg.payload)
            self._del(r.collection, r.key)
            return self._reply(msg)
        if t == CCM.PUT_STATE_METADATA:
            r = shim.PutStateMetadata.FromString(msg.payload)
            self.metadata.setdefault((r.collection, r.key), {})[r.metadata.metakey] = r.metadata.value
            return self._reply(msg)
        if t == CCM.GET_STATE_METADATA:
            r = shim.GetStateMetadata.FromString(msg.payload)
            md = self.metadata.get((r.collection, r.key), {})
            res = shim.StateMetadataResult(
                entries=[shim.StateMetadata(metakey=k, value=v) for k, v in sorted(md.items())]
            )
            return self._reply(msg, res.SerializeToString())
        if t == CCM.GET_PRIVATE_DATA_HASH:
            r = shim.GetState.FromString(msg.payload)
            v = self.private.get((r.collection, r.key))
            return self._reply(msg, hashlib.sha256(v).digest() if v is not None else b"")
        if t == CCM.WRITE_BATCH_STATE:
            r = shim.WriteBatchState.FromString(msg.payload)
            for rec in r.rec:
                if rec.type == shim.WriteRecord.PUT_STATE:
                    self._put(rec.collection, rec.key, rec.value)
                elif rec.type in (shim.WriteRecord.DEL_STATE, shim.WriteRecord.PURGE_PRIVATE_DATA):
                    self._del(rec.collection, rec.key)
                elif rec.type == shim.WriteRecord.PUT_STATE_METADATA:
                    self.metadata.setdefault((rec.collection, rec.key), {})[rec.metadata.metakey] = rec.metadata.value
                else:
                    raise ValueError("unknown operation type")
            return self._reply(msg)
        if t == CCM.GET_STATE_BY_RANGE:
            r = shim.GetStateByRange.FromString(msg.payload)
            md = shim.QueryMetadata.FromString(r.metadata) if r.metadata else None
            if r.collection:
                source = {k: v for (c, k), v in self.private.items() if c == r.collection}
            else:
                source = self.state
            keys = sorted(source)
            start = r.startKey
            if md is not None and md.pageSize > 0 and md.bookmark:
                start = md.bookmark
            lo = bisect_left(keys, start)
            hi = bisect_left(keys, r.endKey) if r.endKey else len(keys)
            selected = keys[lo:hi]
            items = [kv_query_result_pb2.KV(namespace="cc", key=k, value=source[k]) for k in selected]
            iid = f"iter{next(self._ids)}"
            if md is not None and md.pageSize > 0:
                page = items[: md.pageSize]
                bookmark = selected[md.pageSize] if len(selected) > md.pageSize else ""
                rmd = shim.QueryResponseMetadata(fetched_records_count=len(page), bookmark=bookmark)
                resp = shim.QueryResponse(
                    results=[shim.QueryResultBytes(resultBytes=i.SerializeToString()) for i in page],
                    has_more=False,
                    id=iid,
                    metadata=rmd.SerializeToString(),
                )
                return self._reply(msg, resp.SerializeToString())
            self.iterators[iid] = _Iter(items, self.max_result_limit)
            return self._reply(msg, self._next_batch(iid).SerializeToString())
        if t == CCM.GET_HISTORY_FOR_KEY:
            r = shim.GetHistoryForKey.FromString(msg.payload)
            iid = f"iter{next(self._ids)}"
            self.iterators[iid] = _Iter(list(self.history.get(r.key, [])), self.max_result_limit)
            return self._reply(msg, self._next_batch(iid).SerializeToString())
        if t == CCM.QUERY_STATE_NEXT:
            r = shim.QueryStateNext.FromString(msg.payload)
            if r.id not in self.iterators:
                raise ValueError("query iterator not found")
            return self._reply(msg, self._next_batch(r.id).SerializeToString())
        if t == CCM.QUERY_STATE_CLOSE:
            r = shim.QueryStateClose.FromString(msg.payload)
            self.iterators.pop(r.id, None)
            self.closed_iterators.append(r.id)
            return self._reply(msg, shim.QueryResponse(has_more=False, id=r.id).SerializeToString())
        if t == CCM.INVOKE_CHAINCODE:
            spec = chaincode_pb2.ChaincodeSpec.FromString(msg.payload)
            if self.invoke_handler is None:
                raise ValueError("no chaincode to invoke")
            nested = self.invoke_handler(spec)
            return self._reply(msg, nested.SerializeToString())
        raise ValueError(f"fake peer cannot handle {CCM.Type.Name(t)}")

    def _next_batch(self, iid: str) -> shim.QueryResponse:
        it = self.iterators[iid]
        chunk = it.items[it.pos : it.pos + it.batch]
        it.pos += len(chunk)
        has_more = it.pos < len(it.items)
        if not has_more:  # as the peer does: the last batch releases the iterator
            del self.iterators[iid]
            self.released_iterators.append(iid)
        return shim.QueryResponse(
            results=[shim.QueryResultBytes(resultBytes=i.SerializeToString()) for i in chunk],
            has_more=has_more,
            id=iid,
        )

    def _put(self, collection: str, key: str, value: bytes) -> None:
        if collection:
            self.private[(collection, key)] = value
        else:
            self.state[key] = value

    def _del(self, collection: str, key: str) -> None:
        if collection:
            self.private.pop((collection, key), None)
        else:
            self.state.pop(key, None)
