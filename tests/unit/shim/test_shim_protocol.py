"""Client-mode shim against a fake peer over real grpc.aio on 127.0.0.1.

One file of some 670 lines: one test per message exchange of the chaincode protocol (register, ready, each
stub call, errors, concurrency) against one fake peer, whose helpers every test shares.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import struct
import threading

import pytest
from tests.unit.shim.shim_helpers import CHAINCODE_ID, HeldAnswer, run, shim_client, wait_until
from tests.unit.shim.shim_fakepeer import CCM, FakePeer, make_signed_proposal

from fabric_protos.ledger.queryresult import kv_query_result_pb2
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import chaincode_pb2, chaincode_shim_pb2 as shim, proposal_pb2, proposal_response_pb2

from ipledger.chaincode.shim import PeerError, StreamClosedError
from ipledger.chaincode.shim.contract_api import ChaincodeError, Contract, transaction

pytestmark = pytest.mark.timeout(60)


def ok(msg) -> object:
    r = FakePeer.response(msg)
    assert r.status == 200, r.message
    return json.loads(r.payload) if r.payload else None


class _Gauge:
    def __init__(self):
        self.lock = threading.Lock()
        self.now = 0
        self.max = 0

    def __enter__(self):
        with self.lock:
            self.now += 1
            self.max = max(self.max, self.now)

    def __exit__(self, *exc):
        with self.lock:
            self.now -= 1


class Ledger(Contract):
    name = "ipledger"
    gauge = _Gauge()

    @transaction
    def Incr(self, stub, key):
        with self.gauge:
            return self._incr(stub, key)

    def _incr(self, stub, key):
        raw = stub.get_state(key).decode()
        owner, _, n = raw.partition("=")
        if owner != key:  # a crossed reply would show up here
            raise RuntimeError(f"asked for {key}, got a value of {owner}")
        stub.put_state(key, f"{key}={int(n) + 1}".encode())
        return {"key": key, "n": int(n) + 1, "tx": stub.get_tx_id()}

    @transaction
    def Range(self, stub, start, end):
        with stub.get_state_by_range(start, end) as it:
            return [[kv.key, kv.value.decode()] for kv in it]

    @transaction
    def StateScan(self, stub, otype, chunk):
        """The contract's whole-range read, in reads of at most ``chunk`` records."""
        from ipledger.chaincode.contract.state import State
        return [attrs for attrs, _value in State(stub, range_read_chunk=chunk).scan(otype)]

    @transaction
    def RangeBreak(self, stub, start, end):
        it = stub.get_state_by_range(start, end)
        first = next(iter(it))
        return first.key  # iterator deliberately left open

    @transaction
    def Page(self, stub, start, end, size, bookmark):
        p = stub.get_state_by_range_with_pagination(start, end, size, bookmark)
        return {"keys": [kv.key for kv in p.items], "count": p.fetched_records_count, "bookmark": p.bookmark}

    @transaction
    def Partial(self, stub, otype, attrs, size):
        if size:
            p = stub.get_state_by_partial_composite_key_with_pagination(otype, attrs, size, "")
            items = p.items
        else:
            with stub.get_state_by_partial_composite_key(otype, attrs) as it:
                items = list(it)
        return [stub.split_composite_key(kv.key) for kv in items]

    @transaction
    def PartialFrom(self, stub, otype, attrs, start_attrs):
        with stub.get_state_by_partial_composite_key_from(otype, attrs, start_attrs) as it:
            return [stub.split_composite_key(kv.key) for kv in it]

    @transaction
    def Private(self, stub):
        stub.put_private_data("col1", "pk", b"secret-value")
        got = stub.get_private_data("col1", "pk")
        h = stub.get_private_data_hash("col1", "pk")
        with stub.get_private_data_by_range("col1", "", "") as it:
            ranged = [kv.key for kv in it]
        stub.del_private_data("col1", "pk")
        stub.purge_private_data("col1", "pk2")
        return {"got": got.decode(), "hash": h.hex(), "ranged": ranged}

    @transaction
    def Sbe(self, stub, key):
        stub.set_state_validation_parameter(key, b"policy-bytes")
        return stub.get_state_validation_parameter(key).decode()

    @transaction
    def Event(self, stub, fail):
        stub.set_event("first", b"1")
        stub.set_event("second", b"2")
        if fail:
            raise ChaincodeError("nope")
        return None

    @transaction
    def Boom(self, stub, text):
        raise RuntimeError(text)

    @transaction
    def CatchPeer(self, stub, key):
        try:
            stub.get_state(key)
        except PeerError as e:
            return {"type": type(e).__name__, "msg": str(e)}
        return "no error"

    @transaction
    def Context(self, stub):
        return {
            "tx": stub.get_tx_id(),
            "channel": stub.get_channel_id(),
            "mspid": stub.get_mspid(),
            "cert": stub.get_creator_certificate_pem().decode(),
            "creator": stub.get_creator().hex(),
            "ts": stub.get_tx_timestamp().isoformat(),
            "transient": {k: v.decode() for k, v in stub.get_transient().items()},
            "binding": stub.get_binding().hex(),
            "fn": stub.get_function_and_parameters(),
            "sp": len(stub.get_signed_proposal()),
            "call": (lambda c: c and [c[0], [a.decode() for a in c[1]]])(stub.get_proposed_call()),
        }

    @transaction
    def Multi(self, stub, keys):
        return [v.decode() for v in stub.get_multiple_states(keys)]

    @transaction
    def Writes(self, stub, n, fail):
        for i in range(n):
            stub.put_state(f"w{i:04d}", b"v")
        stub.del_state("gone")
        stub.set_state_validation_parameter("w0000", b"ep")
        stub.put_state("w0001", b"last")  # overwrite: last write wins
        if fail:
            raise ChaincodeError("rejected")
        return n

    @transaction
    def History(self, stub, key):
        with stub.get_history_for_key(key) as it:
            return [[m.tx_id, m.value.decode(), m.timestamp.isoformat(), m.is_delete] for m in it]

    @transaction
    def Call(self, stub, name, channel):
        status, message, payload = stub.invoke_chaincode(name, [b"Fn", b"arg"], channel)
        return [status, message, payload.decode()]

    @transaction
    def Big(self, stub, size):
        blob = bytes(range(256)) * (size // 256)
        stub.put_state("big", blob)
        back = stub.get_state("big")
        return {"same": back == blob, "len": len(back), "sha": hashlib.sha256(back).hexdigest()}


def test_register_name_and_ready_capabilities():
    async def body():
        async with shim_client(Ledger()) as (peer, client, _):
            first = peer.received[0]
            assert first.type == CCM.REGISTER
            assert chaincode_pb2.ChaincodeID.FromString(first.payload).name == CHAINCODE_ID
            caps = client.session.capabilities
            assert not caps.use_write_batch and not caps.use_get_multiple_keys

    run(body())


def test_handshake_refused_ends_session():
    async def body():
        peer = FakePeer()
        port = await peer.start_server()
        from ipledger.chaincode.shim.client import ChaincodeClient

        # a peer that answers REGISTER with ERROR
        orig = peer._handle

        def handle(msg):
            if msg.type == CCM.REGISTER:
                peer.send(CCM(type=CCM.ERROR, payload=b"unknown chaincode"))
                return
            orig(msg)

        peer._handle = handle
        client = ChaincodeClient(Ledger(), CHAINCODE_ID, f"127.0.0.1:{port}")
        with pytest.raises(StreamClosedError, match="unknown chaincode"):
            await asyncio.wait_for(client.run(), 5)
        await peer.stop_server()

    run(body())


def test_keepalive_is_echoed_with_txid_and_channel():
    async def body():
        async with shim_client(Ledger()) as (peer, _, _):
            peer.send(CCM(type=CCM.KEEPALIVE))
            peer.send(CCM(type=CCM.KEEPALIVE, txid="ka-1", channel_id="chX"))
            await wait_until(lambda: len(peer.keepalives) == 2, what="keepalive echoes")
            assert [(m.txid, m.channel_id) for m in peer.keepalives] == [("", ""), ("ka-1", "chX")]

    run(body())


@pytest.mark.parametrize("mode, transport", [("inline", "http2"), ("threads", "http2"), ("inline", "grpcio")])
def test_500_concurrent_transactions_no_lost_or_crossed_replies(mode, transport):
    async def body():
        peer = FakePeer(reply_delay=0.003)  # replies come back out of order
        n = 500
        for i in range(n):
            peer.state[f"k{i}"] = f"k{i}={i}".encode()
        workers = {"max_workers": 64} if mode == "threads" else {}
        Ledger.gauge = _Gauge()
        async with shim_client(Ledger(), peer, transport=transport, **workers) as (peer, client, _):
            assert client.transport == transport
            futs = []
            for i in range(n):
                # same txid on two channels must not be confused either
                channel = "ch1" if i % 2 else "ch2"
                futs.append(peer.start_transaction(["Incr", json.dumps(f"k{i}")], channel=channel,
                                                   txid=f"tx{i // 2:05d}"))
            done = await asyncio.wait_for(asyncio.gather(*futs), 45)
            for i, msg in enumerate(done):
                assert msg.txid == f"tx{i // 2:05d}" and msg.channel_id == ("ch1" if i % 2 else "ch2")
                assert ok(msg) == {"key": f"k{i}", "n": i + 1, "tx": msg.txid}
                assert peer.state[f"k{i}"] == f"k{i}={i + 1}".encode()
            assert peer.protocol_errors == []
            gets = peer.requests(CCM.GET_STATE)
            puts = peer.requests(CCM.PUT_STATE)
            assert len(gets) == n and len(puts) == n
            assert client.session.in_flight == 0
            assert Ledger.gauge.max > 10  # transactions really overlapped (greenlets or worker threads)
            for m in peer.received:
                if m.type not in (CCM.REGISTER, CCM.KEEPALIVE):
                    assert m.txid and m.channel_id, CCM.Type.Name(m.type)

    run(body(), timeout=55)


def test_range_query_spans_pages_and_closes_iterator():
    async def body():
        peer = FakePeer(max_result_limit=3)
        for i in range(10):
            peer.state[f"r{i:02d}"] = f"v{i}".encode()
        peer.state["zzz"] = b"outside"
        async with shim_client(Ledger(), peer) as (peer, _, _):
            got = ok(await peer.transaction("Range", '""', '"s"'))
            assert got == [[f"r{i:02d}", f"v{i}"] for i in range(10)]
            rng = shim.GetStateByRange.FromString(peer.requests(CCM.GET_STATE_BY_RANGE)[0].payload)
            assert rng.startKey == "\x01" and rng.endKey == "s" and rng.metadata == b""
            nexts = peer.requests(CCM.QUERY_STATE_NEXT)
            assert len(nexts) == 3  # 10 results in batches of 3
            iid = shim.QueryStateNext.FromString(nexts[0].payload).id
            # the last batch (has_more false) released it on the peer: no QUERY_STATE_CLOSE round trip
            assert peer.released_iterators == [iid] and peer.closed_iterators == []
            assert peer.iterators == {}

            # an abandoned iterator the peer still holds is closed by the shim before COMPLETED
            assert ok(await peer.transaction("RangeBreak", '"r"', '"s"')) == "r00"
            assert len(peer.closed_iterators) == 1 and peer.iterators == {}
            closes = peer.requests(CCM.QUERY_STATE_CLOSE)
            last_close_index = max(i for i, m in enumerate(peer.received) if m.type == CCM.QUERY_STATE_CLOSE)
            completed_index = max(i for i, m in enumerate(peer.received) if m.type == CCM.COMPLETED)
            assert last_close_index < completed_index and len(closes) == 1

            # a range in one batch: one round trip, released by the peer, never closed by the shim
            assert ok(await peer.transaction("Range", '"r00"', '"r02"')) == [["r00", "v0"], ["r01", "v1"]]
            assert len(peer.requests(CCM.QUERY_STATE_CLOSE)) == 1 and peer.iterators == {}
            r = FakePeer.response(await peer.transaction("Range", '"\\u0000x"', '""'))
            assert r.status == 500 and "null character" in r.message

    run(body())


def test_a_range_read_closed_after_its_chunk_asks_the_peer_for_no_further_batch():
    """The contract closes each range read after RANGE_READ_CHUNK records (chaincode/contract/state.py) so that the peer
    has read the same records whatever its own limit: that holds only if the shim asks for the next batch when the
    contract asks for a record past the current one, never ahead of it."""
    from ipledger.chaincode.shim.keys import create_composite_key

    async def body():
        peer = FakePeer(max_result_limit=3)
        for i in range(10):
            peer.state[create_composite_key("lot", [f"L{i:02d}"])] = b"{}"
        async with shim_client(Ledger(), peer) as (peer, _, _):
            got = ok(await peer.transaction("StateScan", '"lot"', "3"))
            assert got == [[f"L{i:02d}"] for i in range(10)]
            # four reads of 3, 3, 3 and 1 records, each its first batch: no QUERY_STATE_NEXT at all
            assert len(peer.requests(CCM.GET_STATE_BY_RANGE)) == 4
            assert peer.requests(CCM.QUERY_STATE_NEXT) == []
            # the three reads closed at their chunk were still held by the peer: closed by the contract's read
            assert len(peer.requests(CCM.QUERY_STATE_CLOSE)) == 3 and peer.iterators == {}

    run(body())


def test_pagination_metadata_and_bookmark():
    async def body():
        peer = FakePeer()
        for i in range(10):
            peer.state[f"p{i}"] = b"x"
        async with shim_client(Ledger(), peer) as (peer, _, _):
            first = ok(await peer.transaction("Page", '"p"', '"q"', "4", '""'))
            assert first == {"keys": ["p0", "p1", "p2", "p3"], "count": 4, "bookmark": "p4"}
            second = ok(await peer.transaction("Page", '"p"', '"q"', "4", json.dumps(first["bookmark"])))
            assert second == {"keys": ["p4", "p5", "p6", "p7"], "count": 4, "bookmark": "p8"}
            mds = [shim.QueryMetadata.FromString(shim.GetStateByRange.FromString(m.payload).metadata)
                   for m in peer.requests(CCM.GET_STATE_BY_RANGE)]
            assert [(m.pageSize, m.bookmark) for m in mds] == [(4, ""), (4, "p4")]
            # a page is answered with has_more false: the peer has let its iterator go, nothing to close
            assert len(peer.requests(CCM.QUERY_STATE_CLOSE)) == 0
            r = FakePeer.response(await peer.transaction("Page", '"p"', '"q"', "0", '""'))
            assert r.status == 500 and "page_size" in r.message

    run(body())


def test_partial_composite_key_queries():
    async def body():
        peer = FakePeer(max_result_limit=2)
        from ipledger.chaincode.shim.keys import create_composite_key as ck

        for a in ("A1", "A2"):
            for b in ("x", "y", "z"):
                peer.state[ck("auth", [a, b])] = b"1"
        peer.state[ck("authx", ["A1", "x"])] = b"other type"
        async with shim_client(Ledger(), peer) as (peer, _, _):
            got = ok(await peer.transaction("Partial", '"auth"', '["A1"]', "0"))
            assert got == [["auth", ["A1", b]] for b in ("x", "y", "z")]
            req = shim.GetStateByRange.FromString(peer.requests(CCM.GET_STATE_BY_RANGE)[0].payload)
            assert req.startKey == "\x00auth\x00A1\x00" and req.endKey == "\x00auth\x00A1\x00\U0010ffff"
            got = ok(await peer.transaction("Partial", '"auth"', "[]", "4"))
            assert len(got) == 4 and got[0] == ["auth", ["A1", "x"]]
            r = FakePeer.response(await peer.transaction("Partial", '"auth"', '["bad\\u0000"]', "0"))
            assert r.status == 500 and "U+0000" in r.message
            # from a later start, within the prefix: one GetStateByRange whose bounds never leave it
            got = ok(await peer.transaction("PartialFrom", '"auth"', '["A1"]', '["y"]'))
            assert got == [["auth", ["A1", b]] for b in ("y", "z")]
            req = shim.GetStateByRange.FromString(peer.requests(CCM.GET_STATE_BY_RANGE)[-1].payload)
            assert req.startKey == "\x00auth\x00A1\x00y\x00" and req.endKey == "\x00auth\x00A1\x00\U0010ffff"

    run(body())


def test_private_data_and_state_metadata_request_shapes():
    async def body():
        async with shim_client(Ledger()) as (peer, _, _):
            got = ok(await peer.transaction("Private"))
            assert got == {"got": "secret-value", "hash": hashlib.sha256(b"secret-value").hexdigest(),
                           "ranged": ["pk"]}
            put = shim.PutState.FromString(peer.requests(CCM.PUT_STATE)[0].payload)
            assert (put.collection, put.key, put.value) == ("col1", "pk", b"secret-value")
            for t in (CCM.GET_STATE, CCM.GET_PRIVATE_DATA_HASH):
                g = shim.GetState.FromString(peer.requests(t)[0].payload)
                assert (g.collection, g.key) == ("col1", "pk")
            rng = shim.GetStateByRange.FromString(peer.requests(CCM.GET_STATE_BY_RANGE)[0].payload)
            assert (rng.collection, rng.startKey, rng.endKey) == ("col1", "\x01", "")
            d = shim.DelState.FromString(peer.requests(CCM.DEL_STATE)[0].payload)
            assert (d.collection, d.key) == ("col1", "pk")
            p = shim.DelState.FromString(peer.requests(CCM.PURGE_PRIVATE_DATA)[0].payload)
            assert (p.collection, p.key) == ("col1", "pk2")

            assert ok(await peer.transaction("Sbe", '"asset1"')) == "policy-bytes"
            pm = shim.PutStateMetadata.FromString(peer.requests(CCM.PUT_STATE_METADATA)[0].payload)
            assert (pm.key, pm.collection, pm.metadata.metakey, pm.metadata.value) == (
                "asset1", "", "VALIDATION_PARAMETER", b"policy-bytes")
            gm = shim.GetStateMetadata.FromString(peer.requests(CCM.GET_STATE_METADATA)[0].payload)
            assert (gm.key, gm.collection) == ("asset1", "")

    run(body())


def test_set_event_last_wins_and_not_sent_on_error():
    async def body():
        async with shim_client(Ledger()) as (peer, _, _):
            done = await peer.transaction("Event", "false")
            assert FakePeer.response(done).status == 200
            assert done.HasField("chaincode_event")
            assert (done.chaincode_event.event_name, done.chaincode_event.payload) == ("second", b"2")
            failed = await peer.transaction("Event", "true")
            assert FakePeer.response(failed).status == 500
            assert not failed.HasField("chaincode_event")

    run(body())


def test_contract_exception_becomes_500_and_shim_keeps_serving():
    async def body():
        async with shim_client(Ledger()) as (peer, client, task):
            done = await peer.transaction("Boom", '"kaboom 42"')
            assert done.type == CCM.COMPLETED
            r = FakePeer.response(done)
            assert r.status == 500
            assert json.loads(r.message) == {"code": "InternalError", "message": "kaboom 42",
                                              "details": {"type": "RuntimeError"}}
            biz = FakePeer.response(await peer.transaction("Event", "true"))
            assert biz.status == 500 and json.loads(biz.message)["code"] == "ChaincodeError"
            unknown = FakePeer.response(await peer.transaction("NoSuchFn"))
            assert json.loads(unknown.message)["code"] == "UnknownFunction"
            peer.state["k1"] = b"k1=1"
            assert ok(await peer.transaction("Incr", '"k1"'))["n"] == 2
            assert not task.done()

    run(body())


def test_raw_contract_exception_and_bad_return_are_500():
    class Raw:
        def invoke(self, stub, fn, args):
            if fn == "raise":
                raise ValueError("raw failure")
            return "not a tuple"

    async def body():
        async with shim_client(Raw()) as (peer, _, task):
            r = FakePeer.response(await peer.transaction("raise"))
            assert (r.status, r.message) == (500, "raw failure")
            r = FakePeer.response(await peer.transaction("other"))
            assert r.status == 500 and "expected (status, message, payload)" in r.message
            assert not task.done()

    run(body())


def test_peer_error_raises_peer_error_in_contract():
    async def body():
        async with shim_client(Ledger()) as (peer, _, _):
            def hook(msg):
                if msg.type == CCM.GET_STATE and shim.GetState.FromString(msg.payload).key == "denied":
                    return CCM(type=CCM.ERROR, payload=b"GET_STATE failed: access denied",
                               txid=msg.txid, channel_id=msg.channel_id)
                return ...

            peer.hook = hook
            got = ok(await peer.transaction("CatchPeer", '"denied"'))
            assert got == {"type": "PeerError", "msg": "GET_STATE failed: access denied"}
            assert ok(await peer.transaction("CatchPeer", '"fine"')) == "no error"

    run(body())


def test_transaction_context_from_signed_proposal():
    async def body():
        async with shim_client(Ledger()) as (peer, _, _):
            ts = dt.datetime(2024, 5, 6, 7, 8, 9, 123456)
            cert = b"-----BEGIN CERTIFICATE-----\nABC\n-----END CERTIFICATE-----\n"
            prop = make_signed_proposal(txid="tx-ctx", channel="chan9", mspid="CustomsMSP", cert_pem=cert,
                                        nonce=b"N" * 24, epoch=7, timestamp=ts, transient={"price": b"42"})
            got = ok(await peer.transaction("Context", txid="tx-ctx", channel="chan9", proposal=prop))
            creator = identities_pb2.SerializedIdentity(mspid="CustomsMSP", id_bytes=cert).SerializeToString()
            binding = hashlib.sha256(b"N" * 24 + creator + struct.pack("<Q", 7)).hexdigest()
            assert got == {
                "tx": "tx-ctx", "channel": "chan9", "mspid": "CustomsMSP", "cert": cert.decode(),
                "creator": creator.hex(), "ts": "2024-05-06T07:08:09.123456+00:00",
                "transient": {"price": "42"}, "binding": binding, "fn": ["Context", []],
                "sp": len(prop.SerializeToString()),
                "call": ["", []],   # the proposal's invocation spec (its arguments: none in this one)
            }
            # the invocation the proposal names (another chaincode's, when this one is called by it)
            prop = make_signed_proposal(txid="tx-cc", channel="chan9", args=[b"Other", b"x"])
            assert ok(await peer.transaction("Context", txid="tx-cc", channel="chan9", proposal=prop))["call"] == [
                "", ["Other", "x"]]
            # a proposal whose input does not parse names no call (the contract then refuses: fail closed)
            prop = make_signed_proposal(txid="tx-garbled", channel="chan9")
            garbled = proposal_pb2.Proposal.FromString(prop.proposal_bytes)
            garbled.payload = proposal_pb2.ChaincodeProposalPayload(input=b"\xff\x00 not an invocation").SerializeToString()
            prop.proposal_bytes = garbled.SerializeToString()
            got = ok(await peer.transaction("Context", txid="tx-garbled", channel="chan9", proposal=prop))
            assert got["call"] is None
            # a TRANSACTION whose proposal cannot be parsed is refused with ERROR, not a crash
            bad = make_signed_proposal(txid="tx-bad", channel="ch1")
            bad.proposal_bytes = b"\xff\xff\xff"
            done = await peer.transaction("Context", txid="tx-bad", proposal=bad)
            assert done.type == CCM.ERROR and b"ChaincodeStub" in done.payload

    run(body())


def test_write_batch_used_when_peer_advertises_it():
    async def body():
        peer = FakePeer(use_write_batch=True, max_size_write_batch=100)
        peer.state["gone"] = b"x"
        async with shim_client(Ledger(), peer) as (peer, _, _):
            assert ok(await peer.transaction("Writes", "150", "false")) == 150
            assert peer.requests(CCM.PUT_STATE, CCM.DEL_STATE, CCM.PUT_STATE_METADATA) == []
            batches = [shim.WriteBatchState.FromString(m.payload) for m in peer.requests(CCM.WRITE_BATCH_STATE)]
            assert [len(b.rec) for b in batches] == [100, 52]  # 150 puts + del + metadata, w0001 deduplicated
            recs = [r for b in batches for r in b.rec]
            assert recs[-1].key == "w0001" and recs[-1].value == b"last"
            assert peer.state["w0001"] == b"last" and "gone" not in peer.state
            assert peer.metadata[("", "w0000")] == {"VALIDATION_PARAMETER": b"ep"}
            # an errored transaction sends no batch at all
            n_batches = len(peer.requests(CCM.WRITE_BATCH_STATE))
            r = FakePeer.response(await peer.transaction("Writes", "3", "true"))
            assert r.status == 500
            assert len(peer.requests(CCM.WRITE_BATCH_STATE)) == n_batches

    run(body())


def test_plain_writes_without_batch_capability():
    async def body():
        async with shim_client(Ledger()) as (peer, _, _):
            assert ok(await peer.transaction("Writes", "3", "false")) == 3
            assert len(peer.requests(CCM.PUT_STATE)) == 4
            assert len(peer.requests(CCM.DEL_STATE)) == 1
            assert len(peer.requests(CCM.PUT_STATE_METADATA)) == 1
            assert peer.requests(CCM.WRITE_BATCH_STATE) == []

    run(body())


def test_get_multiple_states_batched_and_fallback():
    async def body():
        keys = [f"m{i}" for i in range(150)]
        peer = FakePeer(use_get_multiple_keys=True, max_size_get_multiple_keys=100)
        for k in keys[::2]:
            peer.state[k] = k.encode()
        expected = [k if i % 2 == 0 else "" for i, k in enumerate(keys)]
        async with shim_client(Ledger(), peer) as (peer, _, _):
            assert ok(await peer.transaction("Multi", json.dumps(keys))) == expected
            reqs = [shim.GetStateMultiple.FromString(m.payload) for m in peer.requests(CCM.GET_STATE_MULTIPLE)]
            assert [len(r.keys) for r in reqs] == [100, 50]
            assert peer.requests(CCM.GET_STATE) == []
        plain = FakePeer()
        plain.state.update(peer.state)
        async with shim_client(Ledger(), plain) as (plain, _, _):
            assert ok(await plain.transaction("Multi", json.dumps(keys[:5]))) == expected[:5]
            assert len(plain.requests(CCM.GET_STATE)) == 5 and plain.requests(CCM.GET_STATE_MULTIPLE) == []

    run(body())


def test_history_for_key():
    async def body():
        peer = FakePeer(max_result_limit=1)
        mods = []
        for i, deleted in enumerate([False, False, True]):
            m = kv_query_result_pb2.KeyModification(tx_id=f"t{i}", value=b"" if deleted else f"v{i}".encode(),
                                                    is_delete=deleted)
            m.timestamp.FromDatetime(dt.datetime(2024, 1, 1 + i))
            mods.append(m)
        peer.history["h"] = mods
        async with shim_client(Ledger(), peer) as (peer, _, _):
            got = ok(await peer.transaction("History", '"h"'))
            assert got == [["t0", "v0", "2024-01-01T00:00:00+00:00", False],
                           ["t1", "v1", "2024-01-02T00:00:00+00:00", False],
                           ["t2", "", "2024-01-03T00:00:00+00:00", True]]
            assert len(peer.requests(CCM.QUERY_STATE_NEXT)) == 2 and len(peer.released_iterators) == 1
            assert peer.closed_iterators == [] and peer.iterators == {}

    run(body())


def test_invoke_chaincode_unwraps_nested_response():
    async def body():
        async with shim_client(Ledger()) as (peer, _, _):
            seen = []

            def callee(spec):
                seen.append((spec.chaincode_id.name, list(spec.input.args)))
                resp = proposal_response_pb2.Response(status=201, message="made", payload=b"out")
                return CCM(type=CCM.COMPLETED, payload=resp.SerializeToString())

            peer.invoke_handler = callee
            assert ok(await peer.transaction("Call", '"other"', '""')) == [201, "made", "out"]
            assert ok(await peer.transaction("Call", '"other"', '"ch2"')) == [201, "made", "out"]
            assert seen == [("other", [b"Fn", b"arg"]), ("other/ch2", [b"Fn", b"arg"])]

            peer.invoke_handler = lambda spec: CCM(type=CCM.ERROR, payload=b"callee failed")
            assert ok(await peer.transaction("Call", '"other"', '""')) == [500, "callee failed", ""]

    run(body())


@pytest.mark.parametrize("transport", ["http2", "grpcio"])
def test_large_value_round_trip(transport):
    # 20 MiB each way: many frames, both sides' flow-control windows used up and credited back
    async def body():
        async with shim_client(Ledger(), transport=transport) as (peer, _, _):
            size = 20 * 1024 * 1024 + 256
            got = ok(await peer.transaction("Big", str(size), timeout=30))
            blob = bytes(range(256)) * (size // 256)
            assert got == {"same": True, "len": len(blob), "sha": hashlib.sha256(blob).hexdigest()}
            assert len(peer.state["big"]) == len(blob)

    run(body(), timeout=50)


@pytest.mark.parametrize("mode", ["inline", "threads"])
def test_duplicate_txid_in_flight_is_refused(mode):
    async def body():
        gate = threading.Event()

        class Slow(Contract):
            @transaction
            def Wait(self, stub):
                if mode == "threads":
                    gate.wait(5)
                else:
                    stub.get_state("gate")
                return "done"

        peer = FakePeer()
        held = HeldAnswer(peer)
        workers = {"max_workers": 4} if mode == "threads" else {}
        async with shim_client(Slow(), peer, **workers) as (peer, client, _):
            first = peer.start_transaction(["Wait"], txid="dup")
            await wait_until(lambda: client.session.in_flight == 1, what="first tx running")
            # the peer never does this; the shim must answer instead of confusing the two
            peer._completions.pop(("ch1", "dup"))
            second = peer.start_transaction(["Wait"], txid="dup")
            msg = await asyncio.wait_for(second, 5)
            assert msg.type == CCM.ERROR and b"already executing" in msg.payload
            peer._completions[("ch1", "dup")] = first
            gate.set()
            held.release()
            assert ok(await asyncio.wait_for(first, 5)) == "done"

    run(body())


def test_init_message_is_served_like_a_transaction():
    async def body():
        async with shim_client(Ledger()) as (peer, _, _):
            peer.state["i"] = b"i=0"
            done = await peer.transaction("Incr", '"i"', msg_type=CCM.INIT)
            assert done.type == CCM.COMPLETED and ok(done)["n"] == 1

    run(body())


def test_stub_used_after_its_transaction_completed_fails_instead_of_hanging():
    leaked = []

    class Leak(Contract):
        @transaction
        def Keep(self, stub):
            leaked.append(stub)
            return "kept"

    async def body():
        async with shim_client(Leak()) as (peer, _, _):
            assert ok(await peer.transaction("Keep")) == "kept"
            loop = asyncio.get_running_loop()

            def late_call():
                try:
                    leaked[0].get_state("x")
                except PeerError as e:
                    return str(e)
                return "no error"

            msg = await asyncio.wait_for(loop.run_in_executor(None, late_call), 5)
            assert "already completed" in msg
            assert peer.requests(CCM.GET_STATE) == []  # nothing reached the peer

    run(body())


@pytest.mark.parametrize("what", ["response", "request"])
def test_one_oversized_message_fails_its_transaction_not_the_stream(monkeypatch, what):
    """A transaction whose response (or a PutState) exceeds the message limit: the stream's writer refused it
    and the whole stream ended — every other transaction in flight failed, the chaincode was relaunched.
    It must fail that transaction alone."""
    from ipledger.chaincode.shim import client as client_mod
    monkeypatch.setattr(client_mod, "MAX_MESSAGE_SIZE", 64 * 1024)

    class Big(Contract):
        name = "ipledger"

        @transaction
        def Big(self, stub, n):
            if what == "request":
                stub.put_state("big", b"x" * int(n))
                return "written"
            return "x" * int(n)

        @transaction
        def Wait(self, stub):
            return stub.get_state("gate").decode()

    async def body():
        peer = FakePeer()
        peer.state["gate"] = b"open"
        held = HeldAnswer(peer)
        async with shim_client(Big(), peer) as (peer, client, task):
            waiting = peer.start_transaction(["Wait"])
            await wait_until(lambda: client.session.in_flight == 1, what="a transaction in flight")
            big = FakePeer.response(await peer.transaction("Big", str(100 * 1024)))
            assert big.status == 500 and "exceeds" in big.message
            assert ok(await peer.transaction("Big", "10")) == ("written" if what == "request" else "x" * 10)
            held.release()
            assert ok(await asyncio.wait_for(waiting, 5)) == "open"
            assert not task.done()

    run(body())
