"""Client mode: the chaincode dials the peer (external builder ``run``).

Entry points::

    python -m ipledger.chaincode.shim.client --contract package.module:ContractClass /path/to/chaincode.json
    # (or a directory holding chaincode.json; --contract defaults to $CHAINCODE_CONTRACT)

    from ipledger.chaincode.shim.client import run_client
    sys.exit(run_client(contract, "/path/to/chaincode.json"))

``chaincode.json`` (written by the peer for the external builder) has the keys
``chaincode_id``, ``peer_address``, ``client_cert``, ``client_key``,
``root_cert`` (PEM strings, not paths) and ``mspid``. An empty ``root_cert``
means an insecure channel (tests only).

``run_client`` returns 0 after a SIGTERM/SIGINT drain and 1 when the stream to
the peer is lost (the peer relaunches the chaincode); ``main`` exits with it.

The stream is carried by the shim's own HTTP/2 client (:mod:`ipledger.chaincode.shim.http2`);
``--transport grpcio`` carries it through grpcio instead (what server mode always uses).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Optional, Union

from ipledger.chaincode.shim import admission
from ipledger.chaincode.shim.handler import ChaincodeSession, StreamClosedError, WorkerPool
from ipledger.chaincode.shim.http2 import Http2Error, client_tls_context, open_grpc_stream
from ipledger.chaincode.shim.transport import (
    CLIENT_OPTIONS,
    MAX_MESSAGE_SIZE,
    REGISTER_PATH,
    GrpcioTransport,
    StreamTransport,
    drain_on_signal,
    load_contract,
    load_pem,
)

__all__ = ["ChaincodeClient", "ChaincodeConfig", "TRANSPORTS", "load_chaincode_json", "run_client", "main"]

TRANSPORTS = ("http2", "grpcio")
# after a drain, how long the peer has to end the call we half-closed before the connection is closed
END_OF_CALL_TIMEOUT = 5.0

log = logging.getLogger(__name__)


class ChaincodeConfig:
    def __init__(
        self,
        chaincode_id: str,
        peer_address: str,
        client_cert: Optional[bytes] = None,
        client_key: Optional[bytes] = None,
        root_cert: Optional[bytes] = None,
        mspid: str = "",
    ) -> None:
        self.chaincode_id = chaincode_id
        self.peer_address = peer_address
        self.client_cert = client_cert
        self.client_key = client_key
        self.root_cert = root_cert
        self.mspid = mspid

    def __repr__(self) -> str:  # never print key material
        return (
            f"ChaincodeConfig(chaincode_id={self.chaincode_id!r}, peer_address={self.peer_address!r}, "
            f"tls={'on' if self.root_cert else 'off'}, mspid={self.mspid!r})"
        )


def load_chaincode_json(path: Union[str, os.PathLike]) -> ChaincodeConfig:
    p = Path(path)
    if p.is_dir():
        p = p / "chaincode.json"
    data = json.loads(p.read_text(encoding="utf-8"))
    missing = [k for k in ("chaincode_id", "peer_address") if not data.get(k)]
    if missing:
        raise ValueError(f"{p}: missing {', '.join(missing)}")

    def pem(key: str) -> Optional[bytes]:
        v = data.get(key) or ""
        return v.encode("ascii") if v.strip() else None

    cfg = ChaincodeConfig(
        chaincode_id=data["chaincode_id"],
        peer_address=data["peer_address"],
        client_cert=pem("client_cert"),
        client_key=pem("client_key"),
        root_cert=pem("root_cert"),
        mspid=data.get("mspid", ""),
    )
    if cfg.root_cert and not (cfg.client_cert and cfg.client_key):
        raise ValueError(f"{p}: root_cert given but client_cert/client_key missing (peer requires mutual TLS)")
    return cfg


class ChaincodeClient:
    """Dial the peer's ``ChaincodeSupport.Register`` stream and serve transactions."""

    def __init__(
        self,
        contract: Any,
        chaincode_id: str,
        peer_address: str,
        *,
        root_cert: Union[None, bytes, str] = None,
        client_cert: Union[None, bytes, str] = None,
        client_key: Union[None, bytes, str] = None,
        server_name_override: Optional[str] = None,
        max_workers: Optional[int] = None,
        transport: str = "http2",
    ) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, got {transport!r}")
        self.contract = contract
        self.transport = transport
        self.chaincode_id = chaincode_id
        self.peer_address = peer_address
        self._root = load_pem(root_cert)
        self._cert = load_pem(client_cert)
        self._key = load_pem(client_key)
        self._override = server_name_override
        # None: transactions run inline in the event loop's thread (greenlets); a number: in that
        # many worker threads, for a contract that blocks
        self._pool = WorkerPool(max_workers) if max_workers else None
        self.session: Optional[ChaincodeSession] = None
        self._shutdown_requested = False

    @classmethod
    def from_config(cls, contract: Any, cfg: ChaincodeConfig, **kw: Any) -> "ChaincodeClient":
        return cls(
            contract,
            cfg.chaincode_id,
            cfg.peer_address,
            root_cert=cfg.root_cert,
            client_cert=cfg.client_cert,
            client_key=cfg.client_key,
            **kw,
        )

    def _grpcio_channel(self) -> Any:
        import grpc

        options = list(CLIENT_OPTIONS)
        if self._root is None:
            return grpc.aio.insecure_channel(self.peer_address, options=options)
        if self._override:
            options.append(("grpc.ssl_target_name_override", self._override))
        creds = grpc.ssl_channel_credentials(
            root_certificates=self._root, private_key=self._key, certificate_chain=self._cert
        )
        return grpc.aio.secure_channel(self.peer_address, creds, options=options)

    async def run(self) -> None:
        """Serve until the stream ends.

        Returns normally after :meth:`shutdown`; raises :class:`StreamClosedError`
        when the peer went away or could not be reached.
        """
        self.session = ChaincodeSession(
            self.contract, self.chaincode_id, pool=self._pool, name=f"peer {self.peer_address}",
            max_message=MAX_MESSAGE_SIZE,
        )
        if self._shutdown_requested:
            return
        log.info("connecting to peer %s as %s (transport %s)", self.peer_address, self.chaincode_id, self.transport)
        if self._root is None:
            log.warning("no root certificate: dialling %s WITHOUT TLS (tests only)", self.peer_address)
        try:
            if self.transport == "grpcio":
                await self._run_grpcio()
            else:
                await self._run_http2()
        finally:
            if self._pool is not None:
                self._pool.shutdown()

    async def _run_http2(self) -> None:
        assert self.session is not None
        tls = client_tls_context(self._root, self._cert, self._key) if self._root is not None else None
        try:
            stream = await open_grpc_stream(
                self.peer_address, REGISTER_PATH, tls=tls, server_name=self._override, max_message=MAX_MESSAGE_SIZE
            )
        except Http2Error as exc:
            raise StreamClosedError(str(exc)) from exc
        try:
            await self.session.run(StreamTransport(stream))
            # stopped from our side (drained): end the call after the last COMPLETED rather than cancel it,
            # which could make the peer drop messages it has not read yet
            await stream.finish(END_OF_CALL_TIMEOUT)
        finally:
            stream.close()

    async def _run_grpcio(self) -> None:
        from fabric_protos.peer import chaincode_shim_pb2_grpc

        assert self.session is not None
        async with self._grpcio_channel() as channel:
            call = chaincode_shim_pb2_grpc.ChaincodeSupportStub(channel).Register()
            try:
                await self.session.run(GrpcioTransport(call))
                await call.done_writing()  # as above: end the call, then wait for the peer to end it
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(call.code(), END_OF_CALL_TIMEOUT)
            finally:
                call.cancel()

    async def shutdown(self, drain_timeout: float = 30.0) -> None:
        """Refuse new transactions, wait for in-flight ones, then end the stream."""
        self._shutdown_requested = True
        session = self.session
        if session is None:
            return
        await session.drain(drain_timeout)
        session.stop()


def run_client(
    contract: Any,
    chaincode_json_path: Union[str, os.PathLike],
    *,
    drain_timeout: float = 30.0,
    **client_kw: Any,
) -> int:
    """Blocking client mode. Returns the process exit status (0 drained, 1 lost)."""
    cfg = load_chaincode_json(chaincode_json_path)
    client = ChaincodeClient.from_config(contract, cfg, **client_kw)

    async def _main() -> int:
        with drain_on_signal(client.shutdown, drain_timeout):
            try:
                await client.run()
                return 0
            except StreamClosedError as exc:
                log.error("chaincode stream ended: %s", exc)
                return 1

    return asyncio.run(_main())


def _configure_logging() -> None:
    # Only the entry point configures logging; importing the shim never does.
    logging.basicConfig(
        level=os.environ.get("CHAINCODE_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def main(argv: Optional[list[str]] = None) -> int:
    """``[module:Class] path/to/chaincode.json`` (the external builder's ``run``
    passes both positionally), or ``--contract module:Class path``."""
    parser = argparse.ArgumentParser(prog="python -m ipledger.chaincode.shim.client", description=__doc__.split("\n")[0])
    parser.add_argument(
        "positionals",
        nargs="+",
        metavar="[CONTRACT] CHAINCODE_JSON",
        help="optional module:attribute of the contract, then chaincode.json (or the directory holding it)",
    )
    parser.add_argument(
        "--contract",
        default=os.environ.get("CHAINCODE_CONTRACT", ""),
        help="module:attribute of the contract class or instance (default $CHAINCODE_CONTRACT)",
    )
    parser.add_argument("--drain-timeout", type=float, default=30.0)
    parser.add_argument(
        "--transport", choices=TRANSPORTS, default=os.environ.get("CHAINCODE_TRANSPORT", "http2"),
        help="what carries the stream to the peer: the shim's own HTTP/2 client (default) or grpcio "
        "(default $CHAINCODE_TRANSPORT, else http2)",
    )
    parser.add_argument(
        "--worker-threads", type=int, default=None, metavar="N",
        help="run transactions in N worker threads (for a contract that blocks) instead of inline",
    )
    args = parser.parse_args(argv)
    if len(args.positionals) == 2:
        contract_spec, cc_json = args.positionals
    elif len(args.positionals) == 1:
        contract_spec, cc_json = args.contract, args.positionals[0]
    else:
        parser.error("expected [CONTRACT] CHAINCODE_JSON")
    if not contract_spec:
        parser.error("the contract (module:Class, positional, --contract or $CHAINCODE_CONTRACT) is required")
    try:
        admission.settings(os.environ)   # each stream reads them: refused here, once, by name
    except ValueError as exc:
        parser.error(str(exc))
    _configure_logging()
    contract = load_contract(contract_spec)
    return run_client(
        contract, cc_json, drain_timeout=args.drain_timeout, max_workers=args.worker_threads, transport=args.transport
    )


if __name__ == "__main__":
    sys.exit(main())
