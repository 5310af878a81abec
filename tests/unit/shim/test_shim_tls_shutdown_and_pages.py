"""The shim: an empty certificate or client-CA file never turns TLS or client authentication off; a shutdown asked for
while connecting is kept; write batches and page bookmarks stay within their limits."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from ipledger.chaincode.shim import client as client_mod
from ipledger.chaincode.shim.client import ChaincodeClient
from ipledger.chaincode.shim.contract_api import Contract, transaction
from ipledger.chaincode.shim.keys import create_composite_key
from ipledger.chaincode.shim.server import ChaincodeServer
from ipledger.chaincode.shim.transport import load_pem
from ipledger.chaincode.testing.memstub import MemLedger
from tests.unit.shim.shim_fakepeer import FakePeer
from tests.unit.shim.shim_helpers import CHAINCODE_ID, make_pki, run, shim_client
from tests.unit.shim.shim_test_contracts import Sleepy

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def test_an_empty_client_ca_file_is_refused_not_taken_for_no_client_authentication(tmp_path):
    pki = make_pki(tmp_path)
    empty = tmp_path / "ca.crt"
    empty.write_bytes(b"")          # a copy cut short, a mount not yet filled
    f = pki["files"]
    with pytest.raises(ValueError, match="empty"):
        ChaincodeServer(Sleepy(), "127.0.0.1:0", CHAINCODE_ID, f["server.pem"], f["server.key"], str(empty))
    with pytest.raises(ValueError, match="empty"):
        load_pem(str(empty))
    assert load_pem(None) is None and load_pem("") is None and load_pem(b"") is None   # nothing given


def _serve(env_files: dict, tmp_path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINCODE_")}
    env.update(CHAINCODE_SERVER_ADDRESS="127.0.0.1:0", CHAINCODE_ID=CHAINCODE_ID,
               CHAINCODE_CONTRACT="tests.unit.shim.shim_test_contracts:Sleepy", PYTHONPATH=REPO, **env_files)
    return subprocess.run([sys.executable, "-m", "ipledger.chaincode.shim.server"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_the_chaincode_service_refuses_empty_certificate_files_instead_of_listening_in_plaintext(tmp_path):
    cert, key, ca = tmp_path / "server.crt", tmp_path / "server.key", tmp_path / "ca.crt"
    for p in (cert, key, ca):
        p.write_bytes(b"")
    done = _serve({"CHAINCODE_TLS_CERT_FILE": str(cert), "CHAINCODE_TLS_KEY_FILE": str(key),
                   "CHAINCODE_CLIENT_CA_CERT_FILE": str(ca)}, tmp_path)
    assert done.returncode == 2 and "PLAINTEXT" not in done.stderr
    assert "CHAINCODE_TLS_CERT_FILE" in done.stderr and "not a readable file holding PEM" in done.stderr


def test_the_chaincode_service_refuses_a_certificate_without_its_key(tmp_path):
    pki = make_pki(tmp_path)
    done = _serve({"CHAINCODE_TLS_CERT_FILE": str(pki["files"]["server.pem"]),
                   "CHAINCODE_CLIENT_CA_CERT_FILE": str(pki["files"]["server.pem"])}, tmp_path)
    assert done.returncode == 2 and "go together" in done.stderr


class Writer(Contract):
    name = "w"

    @transaction
    def Write(self, stub, n, size):
        for i in range(int(n)):
            stub.put_state(f"k{i}", b"x" * int(size))
        return "written"


def test_a_shutdown_asked_for_while_connecting_is_kept(monkeypatch):
    real_open = client_mod.open_grpc_stream

    async def slow_open(*a, **kw):
        await asyncio.sleep(0.5)           # a slow TLS handshake
        return await real_open(*a, **kw)
    monkeypatch.setattr(client_mod, "open_grpc_stream", slow_open)

    async def body():
        peer = FakePeer()
        port = await peer.start_server()
        client = ChaincodeClient(Writer(), CHAINCODE_ID, f"127.0.0.1:{port}")
        task = asyncio.create_task(client.run())
        await asyncio.sleep(0.1)
        await client.shutdown(1.0)          # what the SIGTERM handler schedules
        try:
            await asyncio.wait_for(asyncio.shield(task), 5)
            assert not peer.ready.is_set(), "the session registered and served after its shutdown"
        finally:
            if not task.done():
                client.session.stop()
                await asyncio.wait_for(task, 5)
            await peer.stop_server()
    run(body(), timeout=20)


def test_writes_that_each_fit_fit_batched_too(monkeypatch):
    monkeypatch.setattr(client_mod, "MAX_MESSAGE_SIZE", 64 * 1024)

    async def body():
        results = {}
        for batch in (False, True):
            peer = FakePeer(use_write_batch=batch, max_size_write_batch=100)
            async with shim_client(Writer(), peer) as (peer, _, _):
                done = await peer.transaction("Write", "3", str(30 * 1024))
                r = FakePeer.response(done)
                results[batch] = (r.status, r.message[:90])
                assert sum(k.startswith("k") for k in peer.state) == 3
        assert results[True][0] == results[False][0] == 200, results
    run(body(), timeout=30)


class Pager(Contract):
    name = "p"

    @transaction(submit=False)
    def Page(self, stub, bookmark):
        page = stub.get_state_by_partial_composite_key_with_pagination("LOT", ["holderA"], 10, bookmark)
        return [stub.split_composite_key(kv.key) for kv in page.items]


def test_a_bookmark_from_outside_the_partial_key_is_refused():
    async def body():
        peer = FakePeer()
        peer.state[create_composite_key("LOT", ["holderA", "1"])] = b"{}"
        peer.state[create_composite_key("KEY", ["holderB", "secret"])] = b"{}"   # another object type
        async with shim_client(Pager(), peer) as (peer, _, _):
            other = json.dumps(create_composite_key("KEY", ["holderB"]))
            outside = FakePeer.response(await peer.transaction("Page", other))
            assert outside.status == 500 and "bookmark" in outside.message
            own = json.dumps(create_composite_key("LOT", ["holderA", "1"]))
            inside = FakePeer.response(await peer.transaction("Page", own))
            assert inside.status == 200 and json.loads(inside.payload) == [["LOT", ["holderA", "1"]]]
    run(body())


def test_the_memory_ledger_refuses_such_a_bookmark_too():
    ledger = MemLedger()
    stub = ledger.stub("Page", [])
    with pytest.raises(ValueError, match="bookmark"):
        stub.get_state_by_partial_composite_key_with_pagination("LOT", ["holderA"], 10,
                                                                create_composite_key("KEY", ["holderB"]))
    with pytest.raises(ValueError, match="bookmark"):
        stub.get_state_by_range_with_pagination("b", "c", 10, "z")
