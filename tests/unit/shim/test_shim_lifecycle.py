"""Disconnects, process exit codes, SIGTERM drain, CCaaS server mode, TLS, logging hygiene.

One file of some 510 lines: each test runs the shim as a process (or its server) against the fake peer of
``shim_fakepeer``, through the same helpers; together they are the shim's life from start to exit.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading

import grpc
import pytest
from tests.unit.shim.shim_helpers import CHAINCODE_ID, HERE, HeldAnswer, make_pki, run, shim_client, wait_until
from tests.unit.shim.shim_fakepeer import CCM, FakePeer

from ipledger.chaincode.shim import PeerError, StreamClosedError
from ipledger.chaincode.shim.client import ChaincodeClient, load_chaincode_json
from ipledger.chaincode.shim.contract_api import Contract, transaction
from ipledger.chaincode.shim.server import ChaincodeServer

pytestmark = pytest.mark.timeout(60)

REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
PY = sys.executable


def subprocess_env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO
    env.update(extra)
    return env


def write_chaincode_json(path, port: int, **tls) -> str:
    data = {
        "chaincode_id": CHAINCODE_ID,
        "peer_address": f"127.0.0.1:{port}",
        "client_cert": tls.get("client_cert", ""),
        "client_key": tls.get("client_key", ""),
        "root_cert": tls.get("root_cert", ""),
        "mspid": "Org1MSP",
    }
    path.write_text(json.dumps(data))
    return str(path)


def ok(msg):
    r = FakePeer.response(msg)
    assert r.status == 200, r.message
    return json.loads(r.payload) if r.payload else None


# -- disconnect -------------------------------------------------------------------------

def test_disconnect_fails_pending_calls_and_client_returns():
    seen: list = []
    finished = threading.Event()

    class Hang(Contract):
        @transaction
        def Hang(self, stub):
            try:
                stub.get_state("never-answered")
            except PeerError as e:
                seen.append(e)
                try:
                    stub.put_state("after", b"x")  # the stream is gone: fails at once
                except PeerError as e2:
                    seen.append(e2)
                finished.set()
                raise
            return "unexpected"

    async def body():
        peer = FakePeer()
        peer.hook = lambda m: None if m.type == CCM.GET_STATE else ...
        async with shim_client(Hang(), peer) as (peer, client, task):
            peer.start_transaction(["Hang"])
            await wait_until(lambda: peer.requests(CCM.GET_STATE), what="hanging request")
            assert client.session.in_flight == 1
            await peer.stop_server()  # the peer goes away
            with pytest.raises(StreamClosedError):
                await asyncio.wait_for(task, 5)
            await asyncio.get_running_loop().run_in_executor(None, finished.wait, 5)
            assert len(seen) == 2
            assert all(isinstance(e, StreamClosedError) and isinstance(e, ConnectionError) for e in seen)
            await wait_until(lambda: client.session.in_flight == 0, what="transaction ended")

    run(body())


@pytest.mark.parametrize("style", ["module", "builder"])
def test_client_process_exits_nonzero_when_peer_goes_away(tmp_path, style):
    async def body():
        peer = FakePeer()
        port = await peer.start_server()
        cfg = write_chaincode_json(tmp_path / "chaincode.json", port)
        if style == "module":  # --contract option, directory holding chaincode.json
            argv = ["-m", "ipledger.chaincode.shim.client", "--contract", "tests.unit.shim.shim_test_contracts:Sleepy", str(tmp_path)]
        else:  # what chaincode/builder's run step executes: main([contract, chaincode.json])
            argv = ["-c", "import sys\nfrom ipledger.chaincode.shim.client import main\n"
                          f"sys.exit(main(['tests.unit.shim.shim_test_contracts:Sleepy', {cfg!r}]))\n"]
        proc = await asyncio.create_subprocess_exec(
            PY, *argv, env=subprocess_env(), cwd=REPO, stderr=asyncio.subprocess.PIPE,
        )
        try:
            await asyncio.wait_for(peer.ready.wait(), 20)
            assert peer.registered_name == CHAINCODE_ID
            assert ok(await peer.transaction("Echo", '"hi"')) == "hi"
            await peer.stop_server()
            rc = await asyncio.wait_for(proc.wait(), 15)
            err = (await proc.stderr.read()).decode()
            assert rc == 1, err
            assert "chaincode stream ended" in err
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    run(body(), timeout=45)


@pytest.mark.parametrize("mode", ["inline", "threads"])
def test_sigterm_drains_in_flight_transactions_then_exits_zero(tmp_path, mode):
    """Inline, the transaction in flight waits on the peer's answer; with ``--worker-threads`` it blocks
    its own thread (a contract that sleeps)."""
    async def body():
        peer = FakePeer()
        held = HeldAnswer(peer)
        port = await peer.start_server()
        cfg = write_chaincode_json(tmp_path / "chaincode.json", port)
        workers = ["--worker-threads", "4"] if mode == "threads" else []
        proc = await asyncio.create_subprocess_exec(
            PY, "-m", "ipledger.chaincode.shim.client", *workers, cfg,
            env=subprocess_env(CHAINCODE_CONTRACT="tests.unit.shim.shim_test_contracts:Sleepy"), cwd=REPO,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await asyncio.wait_for(peer.ready.wait(), 20)
            slow = peer.start_transaction(["Sleep", "1.0"] if mode == "threads" else ["WaitForPeer"])
            await wait_until(lambda: peer.requests(CCM.GET_STATE), what="transaction started", timeout=10)
            proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            refused = await asyncio.wait_for(peer.start_transaction(["Echo", '"late"']), 5)
            assert refused.type == CCM.ERROR and b"shutting down" in refused.payload
            held.release()
            done = await asyncio.wait_for(slow, 10)
            assert ok(done) == "slept"
            assert peer.state["slept"] == b"yes"
            rc = await asyncio.wait_for(proc.wait(), 10)
            err = (await proc.stderr.read()).decode()
            assert rc == 0, err
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await peer.stop_server()

    run(body(), timeout=45)


@pytest.mark.parametrize("mode", ["inline", "threads"])
def test_client_shutdown_drains_in_process(mode):
    """Shutdown waits for the transaction in flight: inline, suspended on the peer's answer;
    in a worker thread, blocked in the contract itself."""
    gate = threading.Event()

    class Slow(Contract):
        @transaction
        def Wait(self, stub):
            if mode == "threads":
                gate.wait(5)
            else:
                stub.get_state("gate")
            stub.put_state("k", b"v")
            return "ok"

    async def body():
        peer = FakePeer()
        held = HeldAnswer(peer)
        workers = {"max_workers": 4} if mode == "threads" else {}
        async with shim_client(Slow(), peer, **workers) as (peer, client, task):
            fut = peer.start_transaction(["Wait"])
            await wait_until(lambda: client.session.in_flight == 1, what="tx running")
            stopper = asyncio.create_task(client.shutdown(5))
            await asyncio.sleep(0.1)
            assert not task.done()
            gate.set()
            held.release()
            assert ok(await asyncio.wait_for(fut, 5)) == "ok"
            await asyncio.wait_for(stopper, 5)
            await asyncio.wait_for(task, 5)  # returns normally (no StreamClosedError)
            await wait_until(lambda: peer.stream_ended.is_set(), what="stream closed")

    run(body())


# -- server mode (CCaaS) ----------------------------------------------------------------

class Counter(Contract):
    name = "counter"
    gate = threading.Event()
    hang_errors: list = []

    @transaction
    def Slow(self, stub):
        Counter.gate.wait(5)
        stub.put_state("slow", b"done")
        return "slow"

    @transaction
    def SlowOnPeer(self, stub):
        stub.get_state("gate")  # the peer holds this answer (HeldAnswer)
        stub.put_state("slow", b"done")
        return "slow"

    @transaction
    def Hang(self, stub):
        try:
            stub.get_state("never-answered")
        except PeerError as e:
            Counter.hang_errors.append(e)
            raise

    @transaction
    def Bump(self, stub, key):
        n = int(stub.get_state(key) or b"0") + 1
        stub.put_state(key, str(n).encode())
        return n


def test_server_mode_serves_a_second_connection_after_the_first_drops():
    async def body():
        server = ChaincodeServer(Counter(), "127.0.0.1:0", CHAINCODE_ID)
        port = await server.start()
        try:
            p1 = FakePeer()
            t1 = await p1.connect_to(f"127.0.0.1:{port}")
            await asyncio.wait_for(p1.ready.wait(), 5)
            assert p1.registered_name == CHAINCODE_ID
            assert ok(await p1.transaction("Bump", '"a"')) == 1
            assert p1.state["a"] == b"1"
            # a transaction waiting on the peer when the connection drops fails its stub call
            p1.hook = lambda m: None if m.type == CCM.GET_STATE else ...
            p1.start_transaction(["Hang"])
            await wait_until(lambda: any(b"never-answered" in m.payload for m in p1.requests(CCM.GET_STATE)),
                             what="hanging request")
            await p1.disconnect()
            await wait_until(lambda: Counter.hang_errors, what="pending call failed")
            assert isinstance(Counter.hang_errors[0], StreamClosedError)
            await asyncio.wait_for(t1, 5)
            await wait_until(lambda: not server.sessions, what="first session cleaned up")

            p2 = FakePeer()
            p2.state["a"] = b"41"
            t2 = await p2.connect_to(f"127.0.0.1:{port}")
            await asyncio.wait_for(p2.ready.wait(), 5)
            assert ok(await p2.transaction("Bump", '"a"')) == 42
            assert server.connections_served == 2 and len(server.sessions) == 1
            await p2.disconnect()
            await asyncio.wait_for(t2, 5)
        finally:
            await server.shutdown(1)

    run(body())


@pytest.mark.parametrize("mode", ["inline", "threads"])
def test_server_shutdown_drains_in_flight_transaction(mode):
    async def body():
        Counter.gate.clear()
        workers = {"max_workers": 4} if mode == "threads" else {}
        server = ChaincodeServer(Counter(), "127.0.0.1:0", CHAINCODE_ID, **workers)
        port = await server.start()
        peer = FakePeer()
        held = HeldAnswer(peer)
        task = await peer.connect_to(f"127.0.0.1:{port}")
        try:
            await asyncio.wait_for(peer.ready.wait(), 5)
            slow = peer.start_transaction(["Slow" if mode == "threads" else "SlowOnPeer"])
            await wait_until(lambda: server.sessions and next(iter(server.sessions)).in_flight == 1,
                             what="transaction running")
            stopping = asyncio.create_task(server.shutdown(drain_timeout=5))
            await asyncio.sleep(0.2)
            refused = await asyncio.wait_for(peer.start_transaction(["Bump", '"x"']), 5)
            assert refused.type == CCM.ERROR and b"shutting down" in refused.payload
            assert not stopping.done()
            Counter.gate.set()
            held.release()
            assert ok(await asyncio.wait_for(slow, 5)) == "slow"
            assert peer.state["slow"] == b"done"
            await asyncio.wait_for(stopping, 5)
            await asyncio.wait_for(task, 5)
        finally:
            Counter.gate.set()
            await peer.disconnect()

    run(body())


def test_tls_server_mode_mutual_and_client_mode(tmp_path):
    pki = make_pki(tmp_path)

    async def body():
        # CCaaS with mutual TLS; TLS material given as file paths
        f = pki["files"]
        server = ChaincodeServer(Counter(), "127.0.0.1:0", CHAINCODE_ID, f["server.pem"], f["server.key"],
                                 f["ca.pem"])
        port = await server.start()
        try:
            good = FakePeer()
            creds = grpc.ssl_channel_credentials(pki["ca"], pki["client_key"], pki["client_cert"])
            task = await good.connect_to(f"127.0.0.1:{port}", creds,
                                         [("grpc.ssl_target_name_override", "localhost")])
            await asyncio.wait_for(good.ready.wait(), 10)
            assert ok(await good.transaction("Bump", '"t"')) == 1
            await good.disconnect()
            await asyncio.wait_for(task, 5)

            # no client certificate → the TLS handshake is refused, no session starts
            anon = FakePeer()
            task = await anon.connect_to(f"127.0.0.1:{port}", grpc.ssl_channel_credentials(pki["ca"]),
                                         [("grpc.ssl_target_name_override", "localhost")])
            await asyncio.wait_for(task, 10)
            assert anon.registered_name is None and not anon.ready.is_set()
            assert server.connections_served == 1
        finally:
            await server.shutdown(1)

        # client mode: the fake peer requires client certs; chaincode.json carries PEM strings
        peer = FakePeer()
        peer_port = await peer.start_server(grpc.ssl_server_credentials(
            [(pki["server_key"], pki["server_cert"])], root_certificates=pki["ca"], require_client_auth=True))
        cfg = load_chaincode_json(write_chaincode_json(
            tmp_path / "chaincode.json", peer_port, client_cert=pki["client_cert"].decode(),
            client_key=pki["client_key"].decode(), root_cert=pki["ca"].decode()))
        assert "BEGIN" not in repr(cfg)  # key material never printed
        client = ChaincodeClient.from_config(Counter(), cfg, server_name_override="localhost")
        ctask = asyncio.create_task(client.run())
        try:
            await asyncio.wait_for(peer.ready.wait(), 10)
            assert ok(await peer.transaction("Bump", '"c"')) == 1
        finally:
            await client.shutdown(1)
            await asyncio.wait_for(ctask, 5)
            await peer.stop_server()

    run(body(), timeout=50)


def test_server_options_accept_peer_keepalive():
    from ipledger.chaincode.shim.transport import CLIENT_OPTIONS, SERVER_OPTIONS

    s = dict(SERVER_OPTIONS)
    assert s["grpc.keepalive_permit_without_calls"] == 1
    assert s["grpc.http2.min_ping_interval_without_data_ms"] <= 60_000
    assert s["grpc.max_receive_message_length"] == s["grpc.max_send_message_length"] == 100 * 1024 * 1024
    c = dict(CLIENT_OPTIONS)
    assert (c["grpc.keepalive_time_ms"], c["grpc.keepalive_timeout_ms"]) == (60_000, 20_000)
    assert c["grpc.keepalive_permit_without_calls"] == 1
    assert c["grpc.max_receive_message_length"] == c["grpc.max_send_message_length"] == 100 * 1024 * 1024


def test_server_entry_point_from_environment(tmp_path):
    pki = make_pki(tmp_path)

    async def body():
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        f = pki["files"]
        proc = await asyncio.create_subprocess_exec(
            PY, "-m", "ipledger.chaincode.shim.server",
            env=subprocess_env(CHAINCODE_SERVER_ADDRESS=f"127.0.0.1:{port}", CHAINCODE_ID=CHAINCODE_ID,
                               CHAINCODE_TLS_CERT_FILE=f["server.pem"], CHAINCODE_TLS_KEY_FILE=f["server.key"],
                               CHAINCODE_CLIENT_CA_CERT_FILE=f["ca.pem"],
                               CHAINCODE_CONTRACT="tests.unit.shim.shim_test_contracts:Sleepy"),
            cwd=REPO, stderr=asyncio.subprocess.PIPE,
        )
        try:
            creds = grpc.ssl_channel_credentials(pki["ca"], pki["client_key"], pki["client_cert"])
            peer = None
            for _ in range(100):  # wait for the server to listen
                peer = FakePeer()
                task = await peer.connect_to(f"127.0.0.1:{port}", creds,
                                             [("grpc.ssl_target_name_override", "localhost")])
                done, _ = await asyncio.wait({task, asyncio.ensure_future(peer.ready.wait())}, timeout=5,
                                             return_when=asyncio.FIRST_COMPLETED)
                if peer.ready.is_set():
                    break
                await peer.disconnect()
                await asyncio.sleep(0.1)
            assert peer is not None and peer.ready.is_set()
            assert peer.registered_name == CHAINCODE_ID
            assert ok(await peer.transaction("Echo", '"env"')) == "env"
            proc.send_signal(signal.SIGTERM)
            rc = await asyncio.wait_for(proc.wait(), 15)
            err = (await proc.stderr.read()).decode()
            assert rc == 0, err
            assert "mutual TLS" in err
            await peer.disconnect()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    run(body(), timeout=50)


# -- logging hygiene --------------------------------------------------------------------

def test_server_entry_point_refuses_plaintext_unless_told_tls_is_terminated_in_front():
    env = subprocess_env(CHAINCODE_SERVER_ADDRESS="127.0.0.1:1", CHAINCODE_ID=CHAINCODE_ID,
                         CHAINCODE_CONTRACT="tests.unit.shim.shim_test_contracts:Sleepy")
    for name in ("CHAINCODE_TLS_CERT_FILE", "CHAINCODE_TLS_KEY_FILE", "CHAINCODE_TLS_DISABLED"):
        env.pop(name, None)
    proc = subprocess.run([PY, "-m", "ipledger.chaincode.shim.server"], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "CHAINCODE_TLS_CERT_FILE and CHAINCODE_TLS_KEY_FILE must be set" in proc.stderr


def test_server_entry_point_refuses_tls_without_client_authentication_unless_told(tmp_path):
    """With a certificate but no client CA anyone reaching the port could pose as the peer: refused, unless
    CHAINCODE_CLIENT_AUTH_DISABLED=true says so (then it starts: it fails later, on the address, not on this)."""
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    cert.write_text("not read before the check\n")
    key.write_text("not read before the check\n")
    key.chmod(0o600)
    env = subprocess_env(CHAINCODE_SERVER_ADDRESS="127.0.0.1:1", CHAINCODE_ID=CHAINCODE_ID,
                         CHAINCODE_CONTRACT="tests.unit.shim.shim_test_contracts:Sleepy",
                         CHAINCODE_TLS_CERT_FILE=str(cert), CHAINCODE_TLS_KEY_FILE=str(key))
    for name in ("CHAINCODE_CLIENT_CA_CERT_FILE", "CHAINCODE_CLIENT_AUTH_DISABLED", "CHAINCODE_TLS_DISABLED"):
        env.pop(name, None)
    refused = subprocess.run([PY, "-m", "ipledger.chaincode.shim.server"], env=env, cwd=REPO, capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode == 2 and "CHAINCODE_CLIENT_CA_CERT_FILE must be set" in refused.stderr
    env["CHAINCODE_CLIENT_AUTH_DISABLED"] = "true"
    told = subprocess.run([PY, "-m", "ipledger.chaincode.shim.server"], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert "CHAINCODE_CLIENT_CA_CERT_FILE must be set" not in told.stderr and told.returncode != 0


def test_importing_the_shim_changes_no_global_logging():
    code = (
        "import logging\n"
        "r = logging.getLogger()\n"
        "before = (r.level, list(r.handlers), logging.root.manager.disable)\n"
        "import ipledger.chaincode.shim, ipledger.chaincode.shim.client, ipledger.chaincode.shim.server, ipledger.chaincode.shim.stub\n"
        "import ipledger.chaincode.shim.contract_api, ipledger.chaincode.shim.keys, ipledger.chaincode.shim.transport\n"
        "after = (r.level, list(r.handlers), logging.root.manager.disable)\n"
        "shim = [n for n in logging.root.manager.loggerDict if n.startswith('ipledger.chaincode')]\n"
        "bad = [n for n in shim if isinstance(logging.getLogger(n), logging.Logger) and\n"
        "       (logging.getLogger(n).handlers or logging.getLogger(n).level)]\n"
        "import json; print(json.dumps([before == after, before[0], len(after[1]), sorted(shim), bad]))\n"
    )
    out = subprocess.run([PY, "-c", code], env=subprocess_env(), cwd=REPO, capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    same, level, handlers, names, bad = json.loads(out.stdout)
    assert same is True and level == logging.WARNING and handlers == 0
    assert "ipledger.chaincode.shim.handler" in names  # the shim does use named loggers
    assert bad == []


def test_no_payloads_or_transient_data_in_debug_logs(caplog):
    secret_value = b"SECRET-VALUE-7f3a"
    secret_arg = "SECRET-ARG-91bc"
    secret_transient = b"SECRET-TRANSIENT-55de"
    secret_key = "SECRET-KEY-0a0a"

    class Leaky(Contract):
        @transaction
        def Work(self, stub, arg):
            stub.put_state(secret_key, secret_value + arg.encode())
            stub.put_private_data("col", "k", stub.get_transient()["t"])
            stub.set_event("ev", secret_value)
            stub.get_state(secret_key)
            with stub.get_state_by_range("", "") as it:
                list(it)
            return arg

        @transaction
        def Fail(self, stub, arg):
            stub.get_state(secret_key)
            raise RuntimeError("boom " + arg)

    caplog.set_level(logging.DEBUG)

    async def body():
        async with shim_client(Leaky()) as (peer, _, _):
            assert ok(await peer.transaction("Work", json.dumps(secret_arg),
                                             transient={"t": secret_transient})) == secret_arg
            r = FakePeer.response(await peer.transaction("Fail", json.dumps(secret_arg)))
            assert r.status == 500 and secret_arg in r.message  # the caller gets it...
            peer.hook = lambda m: CCM(type=CCM.ERROR, payload=b"denied " + secret_value, txid=m.txid,
                                      channel_id=m.channel_id)
            r = FakePeer.response(await peer.transaction("Work", json.dumps(secret_arg),
                                                         transient={"t": secret_transient}))
            assert r.status == 500

    run(body())
    shim_records = [r for r in caplog.records if r.name.startswith("ipledger.chaincode.shim")]
    assert any(r.levelno == logging.DEBUG for r in shim_records)  # DEBUG logging really was on
    assert any("send COMPLETED" in r.getMessage() for r in shim_records)
    text = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (secret_value.decode(), secret_arg, secret_transient.decode(), secret_key):
        assert secret not in text  # ...but the logs do not
