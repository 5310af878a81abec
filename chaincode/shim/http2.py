"""One gRPC call over its own HTTP/2 connection: the chaincode's ``Register`` stream to the peer.

Client mode has exactly one long-lived bidirectional call on one connection, so the shim
speaks the little of HTTP/2 (RFC 9113) and of gRPC's wire format it needs itself, on
asyncio's TLS, instead of through grpcio: per message that costs about half the CPU of
grpcio's asyncio stack (no completion-queue thread, no hand-off between threads, several
messages of one loop turn written in one TLS record) and the process does not map grpc's
17 MB library (docs/benchmarks.md). Header compression is the ``hpack`` package's.

What is implemented: the client connection preface and SETTINGS, one stream (id 1) with its
request headers, DATA both ways with flow control in both directions (the peer's windows are
respected; ours, 64 MiB, are credited back as data arrives, so receiving never waits on reading,
which the session does at once, and a message is bounded by the 100 MiB limit), padding, CONTINUATION, the response
headers and trailers (``grpc-status``/``grpc-message``), RST_STREAM, GOAWAY, PING answered, and
our own keepalive PING (the Go shim's: one a minute, the connection is dropped when the answer
does not come). Server push is refused in our SETTINGS; priorities are ignored (RFC 9113 §5.3.2).
Any violation fails the connection: the shim then exits and the peer launches it again.

One file because it is one state machine: frames, flow-control windows, the call's
end and the keepalive share the connection's state, and each handler changes several of them.
"""
from __future__ import annotations

import asyncio
import logging
import os
import ssl
import struct
import tempfile
import urllib.parse
from typing import Any, Optional

import hpack

__all__ = ["GrpcCallError", "Http2Error", "GrpcStream", "open_grpc_stream", "client_tls_context"]

log = logging.getLogger(__name__)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# frame types (RFC 9113 §6)
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
# flags
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20
# settings
SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE = 0x6
# error codes
NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR = 0x0, 0x1, 0x3, 0x6

STREAM_ID = 1
DEFAULT_WINDOW = 65_535
DEFAULT_MAX_FRAME = 16_384
MAX_WINDOW = 2**31 - 1
# What we let the peer send ahead of our reading: big enough that a 100 MiB message
# never waits for a WINDOW_UPDATE round trip more than a few times.
RECEIVE_WINDOW = 64 * 1024 * 1024
# The largest frame we accept (grpc-go sends 16 KiB frames; the rest is headroom).
RECEIVE_MAX_FRAME = 1024 * 1024
MAX_HEADER_LIST = 64 * 1024

_FRAME_HEADER = struct.Struct(">BHBBI")  # 24-bit length as 8 + 16 bits, type, flags, stream id
_GRPC_PREFIX = struct.Struct(">BI")  # compressed flag, message length


class Http2Error(ConnectionError):
    """The connection to the peer failed or broke the HTTP/2 protocol."""


class GrpcCallError(ConnectionError):
    """The peer ended the call with a gRPC status other than OK."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"gRPC status {code}: {message}" if message else f"gRPC status {code}")
        self.code = code
        self.details = message


def _frame_header(ftype: int, flags: int, stream_id: int, length: int) -> bytes:
    return _FRAME_HEADER.pack(length >> 16, length & 0xFFFF, ftype, flags, stream_id)


def _frame(ftype: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return _frame_header(ftype, flags, stream_id, len(payload)) + payload


def client_tls_context(root_pem: bytes, cert_pem: Optional[bytes], key_pem: Optional[bytes]) -> ssl.SSLContext:
    """A TLS 1.2+ client context trusting ``root_pem``, offering ALPN ``h2`` and, when given, our
    certificate. The private key never touches a file system: it is read from an anonymous
    memory file (or, where the system has none, a 0600 temporary file removed at once)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cadata=root_pem.decode("ascii"))
    ctx.set_alpn_protocols(["h2"])
    if cert_pem and key_pem:
        pem = cert_pem.rstrip(b"\n") + b"\n" + key_pem
        if hasattr(os, "memfd_create"):
            fd = os.memfd_create("chaincode-tls", getattr(os, "MFD_CLOEXEC", 0))
            try:
                os.write(fd, pem)
                ctx.load_cert_chain(f"/proc/self/fd/{fd}")
            finally:
                os.close(fd)
        else:  # pragma: no cover - systems without memfd_create
            with tempfile.NamedTemporaryFile(prefix="chaincode-tls-", delete=True) as f:
                os.fchmod(f.fileno(), 0o600)
                f.write(pem)
                f.flush()
                ctx.load_cert_chain(f.name)
    return ctx


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port)."""
    parsed = urllib.parse.urlsplit("//" + address)
    if not parsed.hostname or parsed.port is None:
        raise ValueError(f"peer address must be host:port, got {address!r}")
    return parsed.hostname, parsed.port


class GrpcStream(asyncio.Protocol):
    """The client side of one gRPC call (stream 1) on an HTTP/2 connection of its own.

    ``read()`` gives the next message's bytes, ``None`` once the server ended the call with
    status OK; ``write()`` sends one message. Reads and writes may run concurrently (one reader,
    one writer); everything else happens in ``data_received``.
    """

    def __init__(
        self,
        path: str,
        authority: str,
        scheme: str,
        *,
        max_message: int,
        keepalive_time: float = 60.0,
        keepalive_timeout: float = 20.0,
    ) -> None:
        self._path = path
        self._authority = authority
        self._scheme = scheme
        self._max_message = max_message
        self._keepalive_time = keepalive_time
        self._keepalive_timeout = keepalive_timeout
        self._loop = asyncio.get_running_loop()
        self._transport: Optional[asyncio.Transport] = None
        self._inbuf = bytearray()
        self._msgbuf = bytearray()
        self._messages: asyncio.Queue = asyncio.Queue()
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._decoder = hpack.Decoder()
        self._decoder.max_allowed_table_size = 4096
        self._decoder.max_header_list_size = MAX_HEADER_LIST
        self._header_block: Optional[bytearray] = None  # a HEADERS awaiting its CONTINUATION frames
        self._header_flags = 0
        self._got_response_headers = False
        # flow control: what the peer lets us send, what we let it send
        self._send_window_conn = DEFAULT_WINDOW
        self._send_window_stream = DEFAULT_WINDOW
        self._peer_initial_window = DEFAULT_WINDOW
        self._peer_max_frame = DEFAULT_MAX_FRAME
        self._unacked_conn = 0
        self._unacked_stream = 0
        self._window_open = asyncio.Event()
        self._window_open.set()
        self._can_write = asyncio.Event()  # the transport's own back-pressure
        self._can_write.set()
        self._closed: Optional[BaseException] = None
        self._ended = False  # the server ended the call (trailers seen)
        self._eof_given = False  # ... with status OK, and read() has been told (None)
        self._local_ended = False
        self._last_received = self._loop.time()
        self._ping_sent_at: Optional[float] = None
        self._keepalive_handle: Optional[asyncio.TimerHandle] = None
        self.connected = self._loop.create_future()
        self._finished = self._loop.create_future()  # done when the call ended, either way

    # -- public API ------------------------------------------------------------------
    async def read(self) -> Optional[bytes]:
        item = await self._messages.get()
        if isinstance(item, BaseException):
            self._messages.put_nowait(item)  # every later read sees the same end
            raise item
        if item is None:
            self._messages.put_nowait(None)
        return item

    async def write(self, message: bytes) -> None:
        """Queue one gRPC message; returns once the peer's windows and the socket have room."""
        if len(message) > self._max_message:
            raise ValueError(f"message of {len(message)} bytes exceeds the limit of {self._max_message}")
        view = memoryview(_GRPC_PREFIX.pack(0, len(message)) + message)
        while view:
            self._check_open()
            room = min(self._send_window_conn, self._send_window_stream, self._peer_max_frame)
            if room <= 0:
                self._window_open.clear()
                await self._window_open.wait()
                continue
            chunk = view[:room]
            view = view[room:]
            self._send_window_conn -= len(chunk)
            self._send_window_stream -= len(chunk)
            self._queue(_frame_header(DATA, 0, STREAM_ID, len(chunk)), chunk)
            if not self._can_write.is_set():
                await self._can_write.wait()

    async def finish(self, timeout: float) -> bool:
        """End the call from our side: half-close it (END_STREAM comes after every message already
        written) and wait up to ``timeout`` seconds for the peer to end it too; True if it did. Then
        :meth:`close`. Cancelling instead could make the peer drop messages it has not read yet."""
        if self._closed is None and not self._ended and not self._local_ended:
            self._local_ended = True
            self._queue(_frame(DATA, END_STREAM, STREAM_ID))
        try:
            await asyncio.wait_for(asyncio.shield(self._finished), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    def close(self, reason: str = "closed by the chaincode") -> None:
        """Cancel the call if it is still open and close the connection."""
        transport = self._transport
        if transport is not None and not transport.is_closing():
            if self._closed is None and not self._ended:
                self._queue(_frame(RST_STREAM, 0, STREAM_ID, struct.pack(">I", 0x8)))  # CANCEL
            self._queue(_frame(GOAWAY, 0, 0, struct.pack(">II", 0, NO_ERROR)))
            self._flush()
            transport.close()
        self._fail(Http2Error(reason))

    # -- asyncio.Protocol --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() != "h2":
            self._fail(Http2Error("the peer did not agree to HTTP/2 (ALPN h2) on TLS"))
            transport.close()
            return
        settings = b"".join(
            struct.pack(">HI", k, v)
            for k, v in (
                (SETTINGS_ENABLE_PUSH, 0),
                (SETTINGS_INITIAL_WINDOW_SIZE, RECEIVE_WINDOW),
                (SETTINGS_MAX_FRAME_SIZE, RECEIVE_MAX_FRAME),
                (SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST),
            )
        )
        headers = hpack.Encoder().encode(
            [
                (":method", "POST"),
                (":scheme", self._scheme),
                (":path", self._path),
                (":authority", self._authority),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
                ("user-agent", "ipledger-chaincode-shim"),
            ]
        )
        self._queue(
            PREFACE
            + _frame(SETTINGS, 0, 0, settings)
            + _frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", RECEIVE_WINDOW - DEFAULT_WINDOW))
            + _frame(HEADERS, END_HEADERS, STREAM_ID, headers)
        )
        self._flush()
        self._arm_keepalive(self._keepalive_time)
        if not self.connected.done():
            self.connected.set_result(None)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self._keepalive_handle is not None:
            self._keepalive_handle.cancel()
        self._fail(Http2Error(f"connection to the peer lost: {exc}" if exc else "the peer closed the connection"))

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    def data_received(self, data: bytes) -> None:
        buf = self._inbuf
        buf += data
        pos = 0
        try:
            while len(buf) - pos >= 9:
                hi, lo, ftype, flags, sid = _FRAME_HEADER.unpack_from(buf, pos)
                length = (hi << 16) | lo
                if length > RECEIVE_MAX_FRAME:
                    raise _ConnectionFailure(FRAME_SIZE_ERROR, f"frame of {length} bytes exceeds {RECEIVE_MAX_FRAME}")
                end = pos + 9 + length
                if len(buf) < end:
                    break
                with memoryview(buf) as view:  # one copy of the payload, not two
                    payload = bytes(view[pos + 9 : end])
                pos = end
                self._on_frame(ftype, flags, sid & 0x7FFFFFFF, payload)
        except _ConnectionFailure as failure:
            del buf[:pos]
            self._goaway(failure.code, str(failure))
            return
        del buf[:pos]
        self._last_received = self._loop.time()

    # -- frames ---------------------------------------------------------------------
    def _on_frame(self, ftype: int, flags: int, sid: int, payload: bytes) -> None:
        if self._header_block is not None and ftype != CONTINUATION:
            raise _ConnectionFailure(PROTOCOL_ERROR, "a header block was interrupted by another frame")
        if ftype == DATA:
            self._on_data(flags, sid, payload)
        elif ftype == HEADERS:
            self._on_headers(flags, sid, payload)
        elif ftype == CONTINUATION:
            if self._header_block is None or sid != STREAM_ID:
                raise _ConnectionFailure(PROTOCOL_ERROR, "CONTINUATION without a header block")
            self._header_block += payload
            if len(self._header_block) > MAX_HEADER_LIST:
                raise _ConnectionFailure(PROTOCOL_ERROR, f"a header block above {MAX_HEADER_LIST} bytes")
            if flags & END_HEADERS:
                block, self._header_block = bytes(self._header_block), None
                self._on_header_block(self._header_flags, block)
        elif ftype == SETTINGS:
            self._on_settings(flags, sid, payload)
        elif ftype == WINDOW_UPDATE:
            self._on_window_update(sid, payload)
        elif ftype == PING:
            if len(payload) != 8 or sid != 0:
                raise _ConnectionFailure(FRAME_SIZE_ERROR if len(payload) != 8 else PROTOCOL_ERROR, "malformed PING")
            if not flags & ACK:
                self._queue(_frame(PING, ACK, 0, payload))
        elif ftype == RST_STREAM:
            if sid == 0 or len(payload) != 4:
                raise _ConnectionFailure(PROTOCOL_ERROR, "malformed RST_STREAM")
            if sid == STREAM_ID and not self._ended:
                (code,) = struct.unpack(">I", payload)
                self._fail(Http2Error(f"the peer reset the stream (HTTP/2 error code {code:#x})"))
        elif ftype == GOAWAY:
            if len(payload) < 8 or sid != 0:
                raise _ConnectionFailure(PROTOCOL_ERROR, "malformed GOAWAY")
            last, code = struct.unpack_from(">II", payload)
            text = payload[8:].decode("utf-8", "replace")
            log.info("peer sent GOAWAY (last stream %d, code %#x%s)", last & 0x7FFFFFFF, code, f": {text}" if text else "")
            if (last & 0x7FFFFFFF) < STREAM_ID or code != NO_ERROR:
                self._fail(Http2Error(f"the peer is closing the connection (HTTP/2 error code {code:#x}{': ' + text if text else ''})"))
        elif ftype == PUSH_PROMISE:
            raise _ConnectionFailure(PROTOCOL_ERROR, "PUSH_PROMISE although push is disabled")
        # PRIORITY and unknown frame types are ignored (RFC 9113 §5.5)

    def _on_data(self, flags: int, sid: int, payload: bytes) -> None:
        if sid != STREAM_ID:
            raise _ConnectionFailure(PROTOCOL_ERROR, f"DATA on stream {sid}")
        if not self._got_response_headers or self._ended:
            raise _ConnectionFailure(PROTOCOL_ERROR, "DATA outside the response")
        size = len(payload)  # padding counts against flow control too
        if flags & PADDED:
            payload = self._strip_padding(payload)
        self._credit(size)
        if payload:
            mb = self._msgbuf
            mb += payload
            while len(mb) >= 5:
                compressed, length = _GRPC_PREFIX.unpack_from(mb)
                if compressed:
                    raise _ConnectionFailure(PROTOCOL_ERROR, "compressed message although none was offered")
                if length > self._max_message:
                    raise _ConnectionFailure(
                        PROTOCOL_ERROR, f"message of {length} bytes exceeds the limit of {self._max_message}"
                    )
                if len(mb) < 5 + length:
                    break
                with memoryview(mb) as view:
                    message = bytes(view[5 : 5 + length])
                self._messages.put_nowait(message)
                del mb[: 5 + length]
        if flags & END_STREAM:
            raise _ConnectionFailure(PROTOCOL_ERROR, "the call ended without a gRPC status")

    def _on_headers(self, flags: int, sid: int, payload: bytes) -> None:
        if sid != STREAM_ID:
            raise _ConnectionFailure(PROTOCOL_ERROR, f"HEADERS on stream {sid}")
        if flags & PADDED:
            payload = self._strip_padding(payload)
        if flags & PRIORITY_FLAG:
            if len(payload) < 5:
                raise _ConnectionFailure(FRAME_SIZE_ERROR, "HEADERS too short for its priority fields")
            payload = payload[5:]
        if flags & END_HEADERS:
            self._on_header_block(flags, payload)
        else:
            self._header_block = bytearray(payload)
            self._header_flags = flags

    def _on_header_block(self, flags: int, block: bytes) -> None:
        try:
            headers = {k: v for k, v in self._decoder.decode(block, raw=False)}
        except hpack.HPACKError as exc:
            raise _ConnectionFailure(0x9, f"undecodable header block: {exc}") from exc  # COMPRESSION_ERROR
        if self._ended:
            return  # decoded all the same: the compression context is the connection's
        if not self._got_response_headers:
            self._got_response_headers = True
            status = headers.get(":status")
            if status != "200":
                self._ended = True
                self._fail(Http2Error(f"the peer answered HTTP status {status} instead of a gRPC call"))
                return
            if not headers.get("content-type", "").startswith("application/grpc"):
                self._ended = True
                self._fail(Http2Error(f"the peer answered content-type {headers.get('content-type')!r}"))
                return
            if not flags & END_STREAM:
                return
        elif not flags & END_STREAM:
            raise _ConnectionFailure(PROTOCOL_ERROR, "trailers without END_STREAM")
        # trailers (or a trailers-only response): the call's status
        self._ended = True
        if not self._finished.done():
            self._finished.set_result(None)
        code = headers.get("grpc-status")
        if code == "0":
            if self._msgbuf:
                self._fail(Http2Error("the call ended inside a message"))
            else:
                self._eof_given = True
                self._messages.put_nowait(None)
            return
        message = urllib.parse.unquote(headers.get("grpc-message", ""))
        self._fail(GrpcCallError(int(code) if code and code.isdigit() else 2, message))

    def _on_settings(self, flags: int, sid: int, payload: bytes) -> None:
        if sid != 0:
            raise _ConnectionFailure(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if payload:
                raise _ConnectionFailure(FRAME_SIZE_ERROR, "SETTINGS acknowledgement with a payload")
            return
        if len(payload) % 6:
            raise _ConnectionFailure(FRAME_SIZE_ERROR, "malformed SETTINGS")
        for off in range(0, len(payload), 6):
            key, value = struct.unpack_from(">HI", payload, off)
            if key == SETTINGS_INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise _ConnectionFailure(FLOW_CONTROL_ERROR, "initial window size too large")
                self._send_window_stream += value - self._peer_initial_window
                self._peer_initial_window = value
                if self._send_window_stream > MAX_WINDOW:
                    raise _ConnectionFailure(FLOW_CONTROL_ERROR, "stream window above 2^31-1")
                self._window_open.set()
            elif key == SETTINGS_MAX_FRAME_SIZE:
                if not DEFAULT_MAX_FRAME <= value <= 2**24 - 1:
                    raise _ConnectionFailure(PROTOCOL_ERROR, f"max frame size {value} out of range")
                self._peer_max_frame = value
        self._queue(_frame(SETTINGS, ACK, 0))

    def _on_window_update(self, sid: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise _ConnectionFailure(FRAME_SIZE_ERROR, "malformed WINDOW_UPDATE")
        (increment,) = struct.unpack(">I", payload)
        increment &= 0x7FFFFFFF
        if increment == 0:
            raise _ConnectionFailure(PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
        if sid == 0:
            self._send_window_conn += increment
            if self._send_window_conn > MAX_WINDOW:
                raise _ConnectionFailure(FLOW_CONTROL_ERROR, "connection window above 2^31-1")
        elif sid == STREAM_ID:
            self._send_window_stream += increment
            if self._send_window_stream > MAX_WINDOW:
                raise _ConnectionFailure(FLOW_CONTROL_ERROR, "stream window above 2^31-1")
        self._window_open.set()

    def _strip_padding(self, payload: bytes) -> bytes:
        if not payload or payload[0] >= len(payload):
            raise _ConnectionFailure(PROTOCOL_ERROR, "padding longer than the frame")
        return payload[1 : len(payload) - payload[0]]

    def _credit(self, size: int) -> None:
        """Give the peer back what it sent once half our window is used (both windows at once)."""
        if self._unacked_conn + size > RECEIVE_WINDOW:
            raise _ConnectionFailure(FLOW_CONTROL_ERROR, "the peer sent more than our window")
        self._unacked_conn += size
        self._unacked_stream += size
        if self._unacked_conn >= RECEIVE_WINDOW // 2:
            self._queue(_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", self._unacked_conn)))
            self._unacked_conn = 0
        if self._unacked_stream >= RECEIVE_WINDOW // 2 and not self._ended:
            self._queue(_frame(WINDOW_UPDATE, 0, STREAM_ID, struct.pack(">I", self._unacked_stream)))
            self._unacked_stream = 0

    # -- writing ---------------------------------------------------------------------
    def _queue(self, *parts: Any) -> None:
        """Frames written in one turn of the loop leave in one write (one TLS record)."""
        self._out.extend(parts)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        out, self._out = self._out, []
        if out and self._transport is not None and not self._transport.is_closing():
            self._transport.write(b"".join(out))

    # -- keepalive and failure ---------------------------------------------------------------
    def _arm_keepalive(self, delay: float) -> None:
        if self._closed is None:
            self._keepalive_handle = self._loop.call_later(delay, self._keepalive)

    def _keepalive(self) -> None:
        """Ping the peer when nothing arrived for ``keepalive_time``; close the connection when
        nothing (the answer or any other frame) arrives within ``keepalive_timeout`` of the ping."""
        if self._closed is not None:
            return
        now = self._loop.time()
        if self._ping_sent_at is not None:
            if self._last_received > self._ping_sent_at:
                self._ping_sent_at = None  # the peer is alive
            elif now - self._ping_sent_at >= self._keepalive_timeout:
                log.warning("peer did not answer a keepalive ping within %.0f s: closing", self._keepalive_timeout)
                self.close("the peer stopped answering (keepalive timeout)")
                return
            else:
                self._arm_keepalive(self._ping_sent_at + self._keepalive_timeout - now)
                return
        idle = now - self._last_received
        if idle < self._keepalive_time:
            self._arm_keepalive(self._keepalive_time - idle)
            return
        self._ping_sent_at = now
        self._queue(_frame(PING, 0, 0, b"ipledger"))
        self._arm_keepalive(self._keepalive_timeout)

    def _check_open(self) -> None:
        if self._closed is not None:
            raise self._closed
        if self._ended:
            raise Http2Error("the peer ended the call")
        if self._local_ended:
            raise Http2Error("the call's sending side is closed")

    def _goaway(self, code: int, text: str) -> None:
        log.error("HTTP/2 protocol error from the peer: %s", text)
        self._queue(_frame(GOAWAY, 0, 0, struct.pack(">II", 0, code) + text.encode("utf-8")[:200]))
        self._flush()
        self._fail(Http2Error(f"HTTP/2 protocol error: {text}"))
        if self._transport is not None:
            self._transport.close()

    def _fail(self, exc: BaseException) -> None:
        if self._closed is None:
            self._closed = exc
            if not self._eof_given:  # a call that ended with status OK has said so to its reader already
                self._messages.put_nowait(exc)
        if not self._finished.done():
            self._finished.set_result(None)
        self._window_open.set()
        self._can_write.set()
        if not self.connected.done():
            self.connected.set_exception(exc)


class _ConnectionFailure(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code


async def open_grpc_stream(
    address: str,
    path: str,
    *,
    tls: Optional[ssl.SSLContext],
    server_name: Optional[str] = None,
    max_message: int,
    connect_timeout: float = 20.0,
    keepalive_time: float = 60.0,
    keepalive_timeout: float = 20.0,
) -> GrpcStream:
    """Connect to ``address`` (TLS when ``tls`` is given, else cleartext HTTP/2 with prior
    knowledge, for tests only) and open the call ``path``."""
    host, port = split_address(address)
    authority = server_name or address
    loop = asyncio.get_running_loop()

    def factory() -> GrpcStream:
        return GrpcStream(
            path, authority, "https" if tls else "http",
            max_message=max_message, keepalive_time=keepalive_time, keepalive_timeout=keepalive_timeout,
        )

    try:
        _, stream = await asyncio.wait_for(
            loop.create_connection(
                factory, host, port, ssl=tls, server_hostname=(server_name or host) if tls else None
            ),
            connect_timeout,
        )
    except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
        raise Http2Error(f"cannot connect to {address}: {exc or type(exc).__name__}") from exc
    await stream.connected
    return stream
