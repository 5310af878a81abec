"""gRPC plumbing shared by client mode and server (CCaaS) mode.

grpc is imported only when a grpcio transport is made (server mode, or client mode with
``--transport grpcio``): client mode over the shim's own HTTP/2 stream never loads it.
"""
from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional, Union

from fabric_protos.peer import chaincode_shim_pb2

__all__ = [
    "MAX_MESSAGE_SIZE",
    "REGISTER_PATH",
    "CLIENT_OPTIONS",
    "SERVER_OPTIONS",
    "GrpcioTransport",
    "StreamTransport",
    "load_pem",
    "load_contract",
    "install_sigterm",
]

log = logging.getLogger(__name__)

MAX_MESSAGE_SIZE = 100 * 1024 * 1024  # 100 MiB, as the Go shim and the peer
REGISTER_PATH = "/protos.ChaincodeSupport/Register"

# Chaincode as client (dialling the peer): the Go shim's keepalive settings.
CLIENT_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_send_message_length", MAX_MESSAGE_SIZE),
    ("grpc.max_receive_message_length", MAX_MESSAGE_SIZE),
]

# Chaincode as server (CCaaS): accept the peer's 60 s keepalive pings even on an
# idle connection (min interval below 60 s leaves room for timer jitter), ping
# the peer every 60 s ourselves, 100 MiB limits.
SERVER_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 30_000),
    ("grpc.http2.max_ping_strikes", 2),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_send_message_length", MAX_MESSAGE_SIZE),
    ("grpc.max_receive_message_length", MAX_MESSAGE_SIZE),
]


class StreamTransport:
    """Client side: the ``ChaincodeSupport.Register`` call on the shim's own HTTP/2 stream
    (:mod:`ipledger.chaincode.shim.http2`, the default)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def read(self) -> Optional[chaincode_shim_pb2.ChaincodeMessage]:
        data = await self._stream.read()
        if data is None:
            return None
        return chaincode_shim_pb2.ChaincodeMessage.FromString(data)

    async def write(self, msg: chaincode_shim_pb2.ChaincodeMessage) -> None:
        await self._stream.write(msg.SerializeToString())


class GrpcioTransport:
    """A grpcio stream of ``ChaincodeMessage``: the client's ``ChaincodeSupport.Register`` call
    (``--transport grpcio``) or the server's ``Chaincode.Connect`` servicer context — both read and
    write alike."""

    def __init__(self, stream: Any) -> None:
        import grpc

        self._stream = stream
        self._eof = grpc.aio.EOF

    async def read(self) -> Optional[chaincode_shim_pb2.ChaincodeMessage]:
        msg = await self._stream.read()
        if msg is self._eof:
            return None
        return msg

    async def write(self, msg: chaincode_shim_pb2.ChaincodeMessage) -> None:
        await self._stream.write(msg)


def load_pem(value: Union[None, bytes, str, os.PathLike]) -> Optional[bytes]:
    """PEM content from bytes, a PEM string, or a file path; None or empty text/bytes (nothing given) → None.
    A file that reads empty is an error (ValueError), never "nothing given": a copy cut short must not turn
    client authentication, or TLS itself, off."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value) or None
    if isinstance(value, str):
        if not value.strip():
            return None
        if value.lstrip().startswith("-----BEGIN"):
            return value.encode("ascii")
    content = Path(value).read_bytes()
    if not content.strip():
        raise ValueError(f"{value} is empty: no PEM in it")
    return content


def load_contract(spec: str) -> Any:
    """``module:attr`` → a contract instance (a class is instantiated)."""
    if ":" not in spec:
        raise ValueError(f"contract must be given as module:attribute, got {spec!r}")
    mod_name, attr = spec.split(":", 1)
    obj: Any = importlib.import_module(mod_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if isinstance(obj, type):
        obj = obj()
    if not callable(getattr(obj, "invoke", None)):
        raise TypeError(f"{spec} has no invoke(stub, function, args) method")
    return obj


def install_sigterm(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> Callable[[], None]:
    """Run ``callback`` in the loop on SIGTERM/SIGINT; returns an uninstaller.

    Does nothing outside the main thread (signals can only be handled there).
    """
    installed: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, callback)
            installed.append(sig)
        except (ValueError, RuntimeError, NotImplementedError):
            pass

    def uninstall() -> None:
        for sig in installed:
            try:
                loop.remove_signal_handler(sig)
            except Exception:  # noqa: BLE001
                pass

    return uninstall


@contextlib.contextmanager
def drain_on_signal(shutdown: Callable[[float], Awaitable[None]], drain_timeout: float):
    """Inside the running loop: on the first SIGTERM/SIGINT, schedule ``shutdown(drain_timeout)``
    once; on exit, remove the handlers and cancel a drain still pending."""
    loop = asyncio.get_running_loop()
    pending: list[asyncio.Task] = []

    def on_signal() -> None:
        if not pending:
            log.info("termination requested: draining in-flight transactions")
            pending.append(loop.create_task(shutdown(drain_timeout)))

    uninstall = install_sigterm(loop, on_signal)
    try:
        yield
    finally:
        uninstall()
        for task in pending:
            task.cancel()
