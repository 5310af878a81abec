"""Server mode (chaincode as a service): the peer dials us on ``Chaincode.Connect``.

Entry points::

    CHAINCODE_SERVER_ADDRESS=0.0.0.0:9999 CHAINCODE_ID=ipledger_1.0:abc... \\
    CHAINCODE_TLS_CERT_FILE=... CHAINCODE_TLS_KEY_FILE=... CHAINCODE_CLIENT_CA_CERT_FILE=... \\
    CHAINCODE_CONTRACT=package.module:ContractClass  IPLEDGER_CUSTOMS_MSP=CustomsMSP \\
    python -m ipledger.chaincode.shim.server

    from ipledger.chaincode.shim.server import run_server
    run_server(contract, "0.0.0.0:9999", chaincode_id, tls_cert, tls_key, client_ca=None)

The contract is created in this process (``CHAINCODE_CONTRACT``: a class is
instantiated without arguments), so it reads its own settings from the same
environment — the ipledger contract its customs MSP id from
``IPLEDGER_CUSTOMS_MSP`` (``chaincode/contract/deployment.py``); without it,
that contract refuses every transaction.

TLS material may be PEM bytes/strings or file paths. With ``client_ca`` the
server requires and verifies a client certificate (mutual TLS). Without a
certificate :class:`ChaincodeServer` listens in plaintext (tests) and says so in
the log; the entry point refuses to start so unless ``CHAINCODE_TLS_DISABLED=true``
says TLS is terminated in front of it. With a certificate, the entry point also needs
``CHAINCODE_CLIENT_CA_CERT_FILE`` (only the peers, holding a client certificate of that
CA, may call the contract) unless ``CHAINCODE_CLIENT_AUTH_DISABLED=true`` says so.

Each connection is its own session; when one drops, the server keeps serving
new connections. SIGTERM/SIGINT drains in-flight transactions, then stops.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any, Optional, Union

import grpc

from fabric_protos.peer import chaincode_shim_pb2_grpc

from ipledger.chaincode.shim import admission
from ipledger.chaincode.shim.handler import ChaincodeSession, StreamClosedError, WorkerPool
from ipledger.chaincode.shim.transport import SERVER_OPTIONS, GrpcioTransport, drain_on_signal, load_contract, load_pem

__all__ = ["ChaincodeServer", "run_server", "main"]

log = logging.getLogger(__name__)

Pem = Union[None, bytes, str, "os.PathLike[str]"]


class _ChaincodeServicer(chaincode_shim_pb2_grpc.ChaincodeServicer):
    def __init__(self, owner: "ChaincodeServer") -> None:
        self._owner = owner

    async def Connect(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> None:  # noqa: N802
        await self._owner._serve_connection(context)


class ChaincodeServer:
    """A CCaaS gRPC server. ``await start()`` → bound port; ``await shutdown()``."""

    def __init__(
        self,
        contract: Any,
        address: str,
        chaincode_id: str,
        tls_cert: Pem = None,
        tls_key: Pem = None,
        client_ca: Pem = None,
        *,
        max_workers: Optional[int] = None,
    ) -> None:
        if not address:
            raise ValueError("server listen address not provided")
        if not chaincode_id:
            raise ValueError("chaincode_id must be specified")
        self.contract = contract
        self.address = address
        self.chaincode_id = chaincode_id
        self._cert = load_pem(tls_cert)
        self._key = load_pem(tls_key)
        self._client_ca = load_pem(client_ca)
        if bool(self._cert) != bool(self._key):
            raise ValueError("TLS needs both a certificate and a key")
        if client_ca not in (None, "", b"") and self._client_ca is None:   # given, yet empty: never "no client auth"
            raise ValueError("the client CA given holds no certificate")
        if self._client_ca and not self._cert:
            raise ValueError("a client CA needs TLS (certificate and key)")
        # None: transactions run inline in the event loop's thread (greenlets); a number: in that
        # many worker threads, for a contract that blocks
        self._pool = WorkerPool(max_workers) if max_workers else None
        self._server: Optional[grpc.aio.Server] = None
        self.sessions: set[ChaincodeSession] = set()
        self.connections_served = 0
        self.port: Optional[int] = None
        self._draining = False
        self._stopped = asyncio.Event()

    async def start(self) -> int:
        server = grpc.aio.server(options=list(SERVER_OPTIONS))
        chaincode_shim_pb2_grpc.add_ChaincodeServicer_to_server(_ChaincodeServicer(self), server)
        if self._cert:
            creds = grpc.ssl_server_credentials(
                [(self._key, self._cert)],
                root_certificates=self._client_ca,
                require_client_auth=self._client_ca is not None,
            )
            port = server.add_secure_port(self.address, creds)
            mode = "mutual TLS" if self._client_ca else "TLS"
        else:
            port = server.add_insecure_port(self.address)
            mode = "PLAINTEXT (no TLS certificate configured)"
        if not port:
            raise OSError(f"cannot listen on {self.address}")
        await server.start()
        self._server = server
        self.port = port
        log.info("chaincode %s listening on %s (port %d, %s)", self.chaincode_id, self.address, port, mode)
        return port

    async def _serve_connection(self, context: grpc.aio.ServicerContext) -> None:
        self.connections_served += 1
        peer = context.peer()
        session = ChaincodeSession(
            self.contract, self.chaincode_id, pool=self._pool, name=f"connection {self.connections_served} ({peer})"
        )
        if self._draining:
            session.draining = True
        self.sessions.add(session)
        try:
            await session.run(GrpcioTransport(context))
        except StreamClosedError as exc:
            log.info("%s ended: %s", session.name, exc)
        finally:
            self.sessions.discard(session)

    async def wait_for_termination(self) -> None:
        await self._stopped.wait()

    async def shutdown(self, drain_timeout: float = 30.0, grace: float = 1.0) -> None:
        """Refuse new transactions, drain in-flight ones on every connection, stop."""
        self._draining = True
        sessions = list(self.sessions)
        if sessions:
            await asyncio.gather(*(s.drain(drain_timeout) for s in sessions))
        for s in sessions:
            s.stop()
        if self._server is not None:
            await self._server.stop(grace)
        if self._pool is not None:
            self._pool.shutdown()
        self._stopped.set()
        log.info("chaincode server stopped")


def run_server(
    contract: Any,
    address: str,
    chaincode_id: str,
    tls_cert: Pem = None,
    tls_key: Pem = None,
    client_ca: Pem = None,
    *,
    drain_timeout: float = 30.0,
    max_workers: Optional[int] = None,
) -> int:
    """Blocking server mode; returns 0 after a SIGTERM/SIGINT drain."""

    async def _main() -> int:
        server = ChaincodeServer(
            contract, address, chaincode_id, tls_cert, tls_key, client_ca, max_workers=max_workers
        )
        await server.start()
        with drain_on_signal(server.shutdown, drain_timeout):
            await server.wait_for_termination()
        return 0

    return asyncio.run(_main())


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ipledger.chaincode.shim.server",
        description="Run a contract as a chaincode server (CCaaS), configured from the environment.",
    )
    parser.add_argument(
        "--contract",
        default=os.environ.get("CHAINCODE_CONTRACT", ""),
        help="module:attribute of the contract class or instance (default $CHAINCODE_CONTRACT)",
    )
    parser.add_argument("--drain-timeout", type=float, default=30.0)
    parser.add_argument(
        "--worker-threads", type=int, default=None, metavar="N",
        help="run transactions in N worker threads (for a contract that blocks) instead of inline",
    )
    args = parser.parse_args(argv)
    if not args.contract:
        parser.error("--contract (or $CHAINCODE_CONTRACT) is required")
    env = os.environ
    address = env.get("CHAINCODE_SERVER_ADDRESS", "")
    ccid = env.get("CHAINCODE_ID", "")
    if not address or not ccid:
        parser.error("CHAINCODE_SERVER_ADDRESS and CHAINCODE_ID must be set")
    if not env.get("CHAINCODE_TLS_CERT_FILE") and env.get("CHAINCODE_TLS_DISABLED", "").lower() != "true":
        parser.error("CHAINCODE_TLS_CERT_FILE and CHAINCODE_TLS_KEY_FILE must be set (the peer's link is TLS); "
                     "CHAINCODE_TLS_DISABLED=true listens in plaintext, for TLS terminated in front of this server")
    if (env.get("CHAINCODE_TLS_CERT_FILE") and not env.get("CHAINCODE_CLIENT_CA_CERT_FILE")
            and env.get("CHAINCODE_CLIENT_AUTH_DISABLED", "").lower() != "true"):
        parser.error("CHAINCODE_CLIENT_CA_CERT_FILE must be set: only the peers, with a client certificate of that "
                     "CA, may call the contract (mutual TLS); CHAINCODE_CLIENT_AUTH_DISABLED=true lets any client "
                     "that reaches the address connect")
    for name in ("CHAINCODE_TLS_CERT_FILE", "CHAINCODE_TLS_KEY_FILE", "CHAINCODE_CLIENT_CA_CERT_FILE"):
        path = env.get(name)
        if path and not _readable_pem_file(path):
            parser.error(f"{name}={path} is not a readable file holding PEM (an empty or cut-short copy would turn "
                         "TLS or client authentication off)")
    if bool(env.get("CHAINCODE_TLS_CERT_FILE")) != bool(env.get("CHAINCODE_TLS_KEY_FILE")):
        parser.error("CHAINCODE_TLS_CERT_FILE and CHAINCODE_TLS_KEY_FILE go together")
    if env.get("CHAINCODE_CLIENT_CA_CERT_FILE") and not env.get("CHAINCODE_TLS_CERT_FILE"):
        parser.error("CHAINCODE_CLIENT_CA_CERT_FILE needs TLS: set CHAINCODE_TLS_CERT_FILE and CHAINCODE_TLS_KEY_FILE")
    try:
        admission.settings(env)   # each connection reads them: refused here, once, by name
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(
        level=env.get("CHAINCODE_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    contract = load_contract(args.contract)
    return run_server(
        contract,
        address,
        ccid,
        env.get("CHAINCODE_TLS_CERT_FILE") or None,
        env.get("CHAINCODE_TLS_KEY_FILE") or None,
        env.get("CHAINCODE_CLIENT_CA_CERT_FILE") or None,
        drain_timeout=args.drain_timeout,
        max_workers=args.worker_threads,
    )


def _readable_pem_file(path: str) -> bool:
    try:
        return b"-----BEGIN" in Path(path).read_bytes()
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
