"""Shared helpers for the shim tests (fake peer over real grpc.aio, 127.0.0.1)."""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import os
from typing import Any, AsyncIterator, Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ipledger.chaincode.shim.client import ChaincodeClient
from tests.unit.shim.shim_fakepeer import CCM, FakePeer, shim

HERE = os.path.dirname(os.path.abspath(__file__))

CHAINCODE_ID = "ipledger_test:0123abcd"


def run(coro, timeout: float = 30.0):
    """Run a test coroutine with an overall deadline."""

    async def guarded():
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(guarded())


async def wait_until(pred: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def shim_client(contract: Any, peer: FakePeer | None = None, **client_kw) -> AsyncIterator[tuple]:
    """A client-mode shim connected to a fresh fake peer; yields (peer, client, run_task)."""
    peer = peer or FakePeer()
    port = await peer.start_server()
    client = ChaincodeClient(contract, CHAINCODE_ID, f"127.0.0.1:{port}", **client_kw)
    task = asyncio.create_task(client.run())
    try:
        await wait_until(
            lambda: client.session is not None and client.session.ready.is_set() or task.done(),
            what="shim ready",
        )
        if task.done():
            task.result()
        yield peer, client, task
    finally:
        if not task.done():
            await client.shutdown(2.0)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 5)
        await peer.stop_server()


class HeldAnswer:
    """A fake-peer hook that holds the answer to ``GetState(key)`` until :meth:`release`.

    A transaction reading ``key`` stays in flight, suspended on the peer, in either execution
    mode (inline greenlet or worker thread) — the shim never blocks a thread to wait for it.
    """

    def __init__(self, peer: FakePeer, key: str = "gate") -> None:
        self.peer = peer
        self.key = key
        self.held: list = []
        self.released = False
        peer.hook = self

    def __call__(self, msg):
        if not self.released and msg.type == CCM.GET_STATE and shim.GetState.FromString(msg.payload).key == self.key:
            self.held.append(msg)
            return None
        return ...

    def release(self) -> None:
        self.released = True
        for msg in self.held:
            self.peer.in_flight_requests.discard((msg.channel_id, msg.txid))
            self.peer.send(self.peer._default(msg))
        self.held.clear()


def make_pki(tmp_path):
    """A CA, a server cert for 127.0.0.1/localhost, a client cert; PEM bytes."""
    now = dt.datetime.now(dt.timezone.utc)

    def key():
        return ec.generate_private_key(ec.SECP256R1())

    def pem_key(k):
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())

    ca_key = key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))

    def leaf(cn, sans, usage):
        k = key()
        b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
             .issuer_name(ca_name).public_key(k.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
             .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return b.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM), pem_key(k)

    server_cert, server_key = leaf("localhost", [x509.DNSName("localhost"),
                                                 x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
                                   x509.oid.ExtendedKeyUsageOID.SERVER_AUTH)
    client_cert, client_key = leaf("peer0", [], x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH)
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    files = {}
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name, data in {"ca.pem": ca_pem, "server.pem": server_cert, "server.key": server_key}.items():
        (tmp_path / name).write_bytes(data)
        files[name] = str(tmp_path / name)
    return dict(ca=ca_pem, server_cert=server_cert, server_key=server_key,
                client_cert=client_cert, client_key=client_key, files=files)
