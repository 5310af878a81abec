"""The shim's own HTTP/2 client (chaincode/shim/http2.py) against a scripted HTTP/2 server.

The server here writes frames byte by byte as a test says (its own small frame codec, not the
client's), so each test can show one rule of RFC 9113 or of gRPC's wire format: flow control
both ways, padding and CONTINUATION, PING, keepalive, statuses, protocol violations. The whole
shim over this client against a real gRPC server is in test_shim_protocol/test_shim_lifecycle,
and against Fabric's peer in tests/integration.
"""
from __future__ import annotations

import asyncio
import ssl
import struct

import hpack
import pytest
from tests.unit.shim.shim_helpers import make_pki, run

from ipledger.chaincode.shim.http2 import GrpcCallError, Http2Error, client_tls_context, open_grpc_stream

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
PATH = "/protos.ChaincodeSupport/Register"


def grpc_message(body: bytes) -> bytes:
    return b"\0" + struct.pack(">I", len(body)) + body


class ScriptedPeer:
    """A cleartext (or TLS) HTTP/2 server on 127.0.0.1 whose frames the test writes itself."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.connected = asyncio.Event()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> str:
        async def on_client(reader, writer):
            self.reader, self.writer = reader, writer
            self.connected.set()

        self.server = await asyncio.start_server(on_client, "127.0.0.1", 0, ssl=self.tls)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.server.close()
        await self.server.wait_closed()

    async def accept(self) -> dict:
        """Wait for the client, check its preface; returns its request headers."""
        await asyncio.wait_for(self.connected.wait(), 5)
        assert await self.reader.readexactly(len(PREFACE)) == PREFACE
        ftype, _, _, _ = await self.frame()
        assert ftype == SETTINGS
        while True:
            ftype, flags, sid, payload = await self.frame()
            if ftype == HEADERS:
                assert sid == 1 and flags & 0x4
                return dict(self.decoder.decode(payload))

    async def frame(self, timeout: float = 5.0) -> tuple[int, int, int, bytes]:
        head = await asyncio.wait_for(self.reader.readexactly(9), timeout)
        length = int.from_bytes(head[:3], "big")
        payload = await asyncio.wait_for(self.reader.readexactly(length), timeout)
        return head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF, payload

    async def frame_of(self, *types: int, timeout: float = 5.0) -> tuple[int, int, int, bytes]:
        while True:
            f = await self.frame(timeout)
            if f[0] in types:
                return f

    def send(self, ftype: int, flags: int, sid: int, payload: bytes = b"") -> None:
        self.writer.write(len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + payload)

    def headers(self, fields: list[tuple[str, str]], *, end_stream: bool = False) -> None:
        self.send(HEADERS, 0x4 | (0x1 if end_stream else 0), 1, self.encoder.encode(fields))

    def respond(self) -> None:
        self.send(SETTINGS, 0, 0)
        self.headers([(":status", "200"), ("content-type", "application/grpc")])

    def trailers(self, status: int = 0, message: str = "") -> None:
        fields = [("grpc-status", str(status))] + ([("grpc-message", message)] if message else [])
        self.headers(fields, end_stream=True)


def scripted(body, tls_server: ssl.SSLContext | None = None, timeout: float = 20.0):
    async def main():
        peer = ScriptedPeer(tls_server)
        address = await peer.start()
        try:
            await body(peer, address)
        finally:
            await peer.stop()

    run(main(), timeout=timeout)


async def dial(address: str, **kw):
    return await open_grpc_stream(address, PATH, tls=kw.pop("tls", None), max_message=kw.pop("max_message", 1 << 20), **kw)


def test_request_headers_and_messages_across_padding_continuation_and_frames():
    async def body(peer, address):
        stream = await dial(address)
        request = await peer.accept()
        assert request[":method"] == "POST" and request[":path"] == PATH and request[":scheme"] == "http"
        assert request["content-type"] == "application/grpc" and request["te"] == "trailers"
        assert request[":authority"] == address
        peer.send(SETTINGS, 0, 0)
        block = peer.encoder.encode([(":status", "200"), ("content-type", "application/grpc+proto")])
        peer.send(HEADERS, 0, 1, block[:2])             # no END_HEADERS: the rest follows
        peer.send(CONTINUATION, 0x4, 1, block[2:])
        first, second = grpc_message(b"first message"), grpc_message(b"second")
        padding = 7
        peer.send(DATA, 0x8, 1, bytes([padding]) + first[:6] + b"\0" * padding)  # padded, cut inside the message
        peer.send(DATA, 0, 1, first[6:] + second)        # the rest and a whole second one
        peer.trailers(0)
        assert await stream.read() == b"first message"
        assert await stream.read() == b"second"
        assert await stream.read() is None               # status OK: the call ended
        assert await stream.read() is None
        with pytest.raises(Http2Error, match="ended the call"):
            await stream.write(b"too late")
        stream.close()

    scripted(body)


def test_sending_respects_the_peers_windows_and_frame_size():
    async def body(peer, address):
        stream = await dial(address)
        await peer.accept()
        peer.send(SETTINGS, 0, 0, struct.pack(">HI", 0x4, 10))   # the stream may receive 10 bytes
        peer.headers([(":status", "200"), ("content-type", "application/grpc")])
        assert (await peer.frame_of(SETTINGS))[1] == 0x1         # our SETTINGS acknowledged
        writing = asyncio.create_task(stream.write(b"x" * 20))
        ftype, _, sid, payload = await peer.frame_of(DATA)
        assert (sid, payload) == (1, grpc_message(b"x" * 20)[:10])
        with pytest.raises(asyncio.TimeoutError):               # nothing more until the window opens
            await peer.frame_of(DATA, timeout=0.3)
        assert not writing.done()
        peer.send(WINDOW_UPDATE, 0, 1, struct.pack(">I", 1 << 20))
        ftype, _, _, payload = await peer.frame_of(DATA)
        assert payload == grpc_message(b"x" * 20)[10:]
        await asyncio.wait_for(writing, 2)
        # a message larger than a frame leaves in frames of at most 16,384 bytes (the peer's default)
        peer.send(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1 << 20))
        big = bytes(range(256)) * 200                           # 51,200 bytes
        await stream.write(big)
        got = b""
        while len(got) < len(big) + 5:
            _, _, _, payload = await peer.frame_of(DATA)
            assert len(payload) <= 16_384
            got += payload
        assert got == grpc_message(big)
        stream.close()

    scripted(body)


def test_received_data_is_credited_back_to_the_peer():
    async def body(peer, address):
        stream = await dial(address, max_message=64 << 20)
        await peer.accept()
        peer.respond()
        chunk = b"y" * 1_000_000
        message = grpc_message(chunk * 40)                      # 40 MB: more than half our 64 MiB window
        for off in range(0, len(message), 1_000_000):
            peer.send(DATA, 0, 1, message[off:off + 1_000_000])
        updates = {}
        while set(updates) != {0, 1}:
            _, _, sid, payload = await peer.frame_of(WINDOW_UPDATE, timeout=10)
            updates[sid] = struct.unpack(">I", payload)[0]
        assert updates[0] >= 32 << 20 and updates[1] >= 32 << 20
        assert await stream.read() == chunk * 40
        stream.close()

    scripted(body, timeout=40)


def test_ping_and_settings_are_acknowledged():
    async def body(peer, address):
        stream = await dial(address)
        await peer.accept()
        peer.send(SETTINGS, 0, 0, struct.pack(">HI", 0x3, 100))
        peer.send(PING, 0, 0, b"12345678")
        assert await peer.frame_of(SETTINGS) == (SETTINGS, 0x1, 0, b"")
        assert await peer.frame_of(PING) == (PING, 0x1, 0, b"12345678")
        stream.close()

    scripted(body)


def test_keepalive_ping_closes_a_connection_that_stopped_answering():
    async def body(peer, address):
        stream = await dial(address, keepalive_time=0.2, keepalive_timeout=0.3)
        await peer.accept()
        peer.respond()
        # answered pings keep the call open
        for _ in range(3):
            ftype, flags, _, payload = await peer.frame_of(PING, timeout=2)
            assert flags == 0
            peer.send(PING, 0x1, 0, payload)
        reading = asyncio.create_task(stream.read())
        await asyncio.sleep(0.1)
        assert not reading.done()
        # then the peer goes silent: the next ping is not answered and the call fails
        await peer.frame_of(PING, timeout=2)
        with pytest.raises(Http2Error, match="keepalive"):
            await asyncio.wait_for(reading, 3)

    scripted(body)


def test_a_status_other_than_ok_is_raised_with_its_message():
    async def body(peer, address):
        stream = await dial(address)
        await peer.accept()
        peer.send(SETTINGS, 0, 0)
        peer.headers([(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "7"),
                      ("grpc-message", "chaincode%20not%20allowed")], end_stream=True)   # trailers-only
        with pytest.raises(GrpcCallError) as err:
            await stream.read()
        assert err.value.code == 7 and err.value.details == "chaincode not allowed"
        with pytest.raises(GrpcCallError):          # every later read sees the same end
            await stream.read()
        with pytest.raises(GrpcCallError):
            await stream.write(b"late")

    scripted(body)


@pytest.mark.parametrize("frames, error", [
    ([(DATA, 0, 3, grpc_message(b"x"))], "DATA on stream 3"),
    ([(DATA, 0, 1, b"\0" + struct.pack(">I", 2 << 20))], "exceeds the limit"),
    ([(DATA, 0, 1, b"\1" + struct.pack(">I", 1) + b"z")], "compressed"),
    ([(PUSH_PROMISE, 0x4, 1, struct.pack(">I", 2))], "PUSH_PROMISE"),
    ([(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0))], "WINDOW_UPDATE of 0"),
    ([(HEADERS, 0, 1, b""), (DATA, 0, 1, b"")], "interrupted"),
    ([(DATA, 0x8, 1, b"\x09abc")], "padding"),
])
def test_protocol_violations_fail_the_call_and_send_goaway(frames, error):
    async def body(peer, address):
        stream = await dial(address)
        await peer.accept()
        peer.respond()
        for frame in frames:
            peer.send(*frame)
        with pytest.raises(Http2Error, match=error):
            await stream.read()
        ftype, _, _, payload = await peer.frame_of(GOAWAY)
        assert struct.unpack(">I", payload[4:8])[0] in (0x1, 0x6)   # PROTOCOL_ERROR or FRAME_SIZE_ERROR

    scripted(body)


@pytest.mark.parametrize("send, error", [
    (lambda p: p.send(RST_STREAM, 0, 1, struct.pack(">I", 0x2)), "reset the stream"),
    (lambda p: p.send(GOAWAY, 0, 0, struct.pack(">II", 0, 0x2)), "closing the connection"),
    (lambda p: p.headers([(":status", "404")], end_stream=True), "HTTP status 404"),
    (lambda p: p.writer.close(), "closed the connection"),
])
def test_the_peer_ending_the_call_otherwise_is_an_error(send, error):
    async def body(peer, address):
        stream = await dial(address)
        await peer.accept()
        peer.send(SETTINGS, 0, 0)
        send(peer)
        with pytest.raises(Http2Error, match=error):
            await stream.read()
        stream.close()

    scripted(body)


def test_a_goaway_that_keeps_our_stream_lets_the_call_finish():
    async def body(peer, address):
        stream = await dial(address)
        await peer.accept()
        peer.respond()
        peer.send(GOAWAY, 0, 0, struct.pack(">II", 1, 0))   # graceful: stream 1 is still served
        peer.send(DATA, 0, 1, grpc_message(b"after goaway"))
        assert await stream.read() == b"after goaway"
        stream.close()

    scripted(body)


def test_tls_needs_the_peers_certificate_and_alpn_h2(tmp_path):
    pki = make_pki(tmp_path)
    f = pki["files"]

    def server_context(alpn: list[str]) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(f["server.pem"], f["server.key"])
        ctx.set_alpn_protocols(alpn)
        return ctx

    async def good(peer, address):
        tls = client_tls_context(pki["ca"], pki["client_cert"], pki["client_key"])
        stream = await dial(address, tls=tls)
        assert (await peer.accept())[":scheme"] == "https"
        stream.close()

    scripted(good, server_context(["h2"]))

    async def no_h2(peer, address):
        with pytest.raises(Http2Error, match="ALPN h2"):
            await dial(address, tls=client_tls_context(pki["ca"], None, None))

    scripted(no_h2, server_context(["http/1.1"]))

    other_ca = make_pki(tmp_path / "other")

    async def wrong_ca(peer, address):
        with pytest.raises(Http2Error, match="cannot connect"):
            await dial(address, tls=client_tls_context(other_ca["ca"], None, None))

    scripted(wrong_ca, server_context(["h2"]))


def test_an_unreachable_peer_is_a_clear_error():
    async def body():
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        with pytest.raises(Http2Error, match=f"cannot connect to 127.0.0.1:{port}"):
            await dial(f"127.0.0.1:{port}")
        with pytest.raises(ValueError, match="host:port"):
            await dial("no-port-here")

    run(body())


def test_finish_half_closes_after_the_last_message_and_waits_for_the_peer():
    async def body(peer, address):
        stream = await dial(address)
        await peer.accept()
        peer.respond()
        await stream.write(b"last words")
        finishing = asyncio.create_task(stream.finish(5))
        _, flags, _, payload = await peer.frame_of(DATA)
        assert payload == grpc_message(b"last words") and not flags & 0x1
        ftype, flags, sid, payload = await peer.frame_of(DATA, RST_STREAM)
        assert (ftype, flags, sid, payload) == (DATA, 0x1, 1, b"")   # END_STREAM, not a cancel
        assert not finishing.done()
        peer.trailers(0)
        assert await asyncio.wait_for(finishing, 2) is True
        stream.close()

    scripted(body)


def test_finish_gives_up_after_its_timeout_and_close_ends_the_connection():
    async def body(peer, address):
        stream = await dial(address)
        await peer.accept()
        peer.respond()
        assert await stream.finish(0.2) is False
        stream.close()
        assert (await peer.frame_of(RST_STREAM))[3] == struct.pack(">I", 0x8)   # CANCEL
        rest = await asyncio.wait_for(peer.reader.read(), 2)                  # up to end of file: closed
        assert rest[3] == GOAWAY

    scripted(body)


def test_close_after_a_failed_call_still_closes_the_connection():
    async def body(peer, address):
        stream = await dial(address)
        await peer.accept()
        peer.send(SETTINGS, 0, 0)
        peer.headers([(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "13")],
                     end_stream=True)
        with pytest.raises(GrpcCallError):
            await stream.read()
        stream.close()
        while await asyncio.wait_for(peer.reader.read(65536), 2):
            pass                                                           # reaches end of file

    scripted(body)


def test_a_lost_connection_wakes_a_writer_waiting_for_the_window():
    async def body(peer, address):
        stream = await dial(address)
        await peer.accept()
        peer.send(SETTINGS, 0, 0, struct.pack(">HI", 0x4, 0))   # no window at all for the stream
        peer.headers([(":status", "200"), ("content-type", "application/grpc")])
        await peer.frame_of(SETTINGS)
        writing = asyncio.create_task(stream.write(b"blocked"))
        await asyncio.sleep(0.2)
        assert not writing.done()
        peer.writer.close()
        with pytest.raises(Http2Error, match="closed the connection"):
            await asyncio.wait_for(writing, 2)

    scripted(body)
