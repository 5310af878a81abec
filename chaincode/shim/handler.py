"""The chaincode side of one ``peer/chaincode_shim.proto`` stream.

One file, one object: the session's state (sender queue, pending replies,
transaction contexts) is shared by every step of the stream protocol below,
which reads best in one place (hence one file).

A :class:`ChaincodeSession` owns one bidi stream (client mode: the
``ChaincodeSupport.Register`` call we dialled; server mode: a
``Chaincode.Connect`` call the peer made to us). It

* writes through a single sender task fed by an ``asyncio.Queue`` (gRPC streams
  must never be written concurrently);
* performs REGISTER → REGISTERED → READY and echoes KEEPALIVE;
* admits each organisation's transactions in turn (:mod:`ipledger.chaincode.shim.admission`: at most a few
  of one creator's running at once, so none crowds out another's) and runs every TRANSACTION/INIT either
  *inline* (the default): in a greenlet of
  the event loop's own thread, which a stub call suspends until the peer's
  reply resumes it — the contract's synchronous code, no thread hand-off — or,
  given a :class:`WorkerPool`, in a worker thread (for contracts that block:
  sleep, wait on locks or do their own I/O, which inline would stall every
  other transaction of the stream);
* routes RESPONSE/ERROR replies by ``(channel_id, txid)`` to the single
  outstanding request of that transaction;
* on disconnect fails every pending stub call with :class:`StreamClosedError`.

Nothing here logs payloads, keys or transient data: only message types and
short transaction ids.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import queue
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol

import greenlet
from fabric_protos.peer import chaincode_pb2, chaincode_shim_pb2, proposal_response_pb2

from ipledger.chaincode.shim.admission import BUSY, Admission, creator_org
from ipledger.chaincode.shim.interface import PeerError
from ipledger.chaincode.shim.stub import Stub
from ipledger.chaincode.shim.transport import MAX_MESSAGE_SIZE

__all__ = [
    "ChaincodeSession",
    "PeerCapabilities",
    "StreamClosedError",
    "WorkerPool",
    "Transport",
    "ERROR_THRESHOLD",
]

log = logging.getLogger(__name__)

CCM = chaincode_shim_pb2.ChaincodeMessage
ERROR_THRESHOLD = 400  # Fabric: status >= 400 is an error response
DEFAULT_MAX_SIZE_WRITE_BATCH = 100  # the Go shim's lower bound
DEFAULT_MAX_SIZE_GET_MULTIPLE_KEYS = 100
_POLL_SECONDS = 1.0


def _type_name(t: int) -> str:
    try:
        return CCM.Type.Name(t)
    except ValueError:
        return str(t)


def short(txid: str) -> str:
    return txid[:8]


def release_free_heap() -> None:
    """Hand the C heap's free pages back to the system (glibc ``malloc_trim``), once, at READY.

    Start-up (imports, the TLS handshake, the registration) leaves a few MB freed but kept inside
    glibc's main heap, where the usual trim of the heap's top cannot reach them: measured on a
    peer-launched chaincode, about 4.7 of 49 MB resident. Nothing changes for Python objects; on a
    C library without ``malloc_trim`` this does nothing.
    """
    global _heap_released
    if _heap_released:
        return
    _heap_released = True
    try:
        import ctypes  # local: only this call needs it

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError, ImportError):  # not glibc
        pass


_heap_released = False


class StreamClosedError(PeerError, ConnectionError):
    """The stream to the peer is gone; the pending stub call cannot complete."""


class Transport(Protocol):
    async def read(self) -> Optional[chaincode_shim_pb2.ChaincodeMessage]: ...  # None at EOF
    async def write(self, msg: chaincode_shim_pb2.ChaincodeMessage) -> None: ...


@dataclass(frozen=True)
class PeerCapabilities:
    """What the peer advertised in READY (``ChaincodeAdditionalParams``)."""

    use_write_batch: bool = False
    max_size_write_batch: int = 0
    use_get_multiple_keys: bool = False
    max_size_get_multiple_keys: int = 0

    @classmethod
    def from_ready_payload(cls, payload: bytes) -> "PeerCapabilities":
        if not payload:
            return cls()
        params = chaincode_pb2.ChaincodeAdditionalParams()
        try:
            params.ParseFromString(payload)
        except Exception:  # the Go shim ignores an unreadable payload too
            log.warning("READY carried unreadable ChaincodeAdditionalParams; using plain requests")
            return cls()
        wb = params.max_size_write_batch
        gm = params.max_size_get_multiple_keys
        if params.use_write_batch and wb < DEFAULT_MAX_SIZE_WRITE_BATCH:
            wb = DEFAULT_MAX_SIZE_WRITE_BATCH
        if params.use_get_multiple_keys and gm < DEFAULT_MAX_SIZE_GET_MULTIPLE_KEYS:
            gm = DEFAULT_MAX_SIZE_GET_MULTIPLE_KEYS
        return cls(
            use_write_batch=params.use_write_batch,
            max_size_write_batch=wb,
            use_get_multiple_keys=params.use_get_multiple_keys,
            max_size_get_multiple_keys=gm,
        )


class WorkerPool:
    """Daemon worker threads for transactions.

    Daemon threads (unlike ``ThreadPoolExecutor``) never keep the process alive
    at exit: a stuck contract cannot block the client-mode exit on disconnect.
    Threads are started as transactions arrive (at most ``max_workers``) and
    one idle for ``idle_seconds`` ends, so a burst does not leave its threads'
    stacks and state resident for the life of the process.
    """

    def __init__(self, max_workers: int = 64, name: str = "chaincode-tx", idle_seconds: float = 30.0) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be >= 1")
        self._max = max_workers
        self._name = name
        self._idle_seconds = idle_seconds
        self._q: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._outstanding = 0
        self._started = 0

    @property
    def size(self) -> int:
        """Worker threads alive now."""
        return len(self._threads)

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        with self._lock:
            self._outstanding += 1
            if self._outstanding > len(self._threads) and len(self._threads) < self._max:
                t = threading.Thread(target=self._work, name=f"{self._name}-{self._started}", daemon=True)
                self._started += 1
                self._threads.append(t)
                t.start()
            self._q.put((fn, args))

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            try:
                item = self._q.get(timeout=self._idle_seconds)
            except queue.Empty:
                with self._lock:
                    # Leave only if the others still cover every task submitted and not finished:
                    # then no queued task is left without a thread.
                    if me not in self._threads:  # shut down meanwhile
                        return
                    if self._outstanding < len(self._threads):
                        self._threads.remove(me)
                        return
                continue
            if item is None:
                return
            fn, args = item
            try:
                fn(*args)
            except BaseException:  # noqa: BLE001 - never lose a worker
                log.error("worker task crashed:\n%s", "".join(traceback.format_exc(limit=5)))
            finally:
                item = fn = args = None  # an idle worker holds no finished transaction
                with self._lock:
                    self._outstanding -= 1

    def shutdown(self) -> None:
        """Let idle workers exit (running tasks finish first)."""
        with self._lock:
            for _ in self._threads:
                self._q.put(None)
            self._threads = []


class _TxContext:
    __slots__ = ("channel_id", "txid", "org", "pending", "lock", "stub", "finished", "glet", "waiting")

    def __init__(self, channel_id: str, txid: str, org: str = "") -> None:
        self.channel_id = channel_id
        self.txid = txid
        self.org = org  # the creator's MSP id: its share of the chaincode (admission.py)
        self.finished = False
        self.pending: Optional[asyncio.Future] = None  # a worker thread's request
        self.glet: Optional[greenlet.greenlet] = None  # inline: the greenlet running the transaction
        self.waiting = False  # inline: that greenlet is suspended on a request
        # one outstanding request per transaction, even if the contract uses threads
        self.lock = threading.Lock()
        self.stub: Any = None


_STOP = object()


class ChaincodeSession:
    """One peer ⇄ chaincode stream. Create it in the event loop, then ``await run(transport)``.

    Without ``pool`` transactions run inline, in greenlets of the loop's thread; with a
    :class:`WorkerPool` (shared by the sessions of one client or server), in its threads.
    """

    def __init__(
        self,
        contract: Any,
        chaincode_id: str,
        *,
        pool: Optional[WorkerPool] = None,
        name: str = "session",
        max_message: int = MAX_MESSAGE_SIZE,
    ) -> None:
        if not chaincode_id:
            raise ValueError("chaincode_id is required (the package id the peer knows)")
        self.contract = contract
        self.chaincode_id = chaincode_id
        self.name = name
        self._pool = pool
        # the stream's limit: a message above it is refused by the transport, which ends the whole stream (every
        # transaction in flight); one transaction's oversized response or request fails that transaction alone
        self.max_message = max_message
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._send_q: Optional[asyncio.Queue] = None
        self._txs: dict[tuple[str, str], _TxContext] = {}   # running, and waiting their turn (admission.py)
        # its settings from the process's environment (admission.settings): checked once at start by the entry points
        self._admission = Admission.from_environment(os.environ)
        self._sweep_timer: Optional[asyncio.TimerHandle] = None
        self._busy: dict[str, tuple[float, int]] = {}   # org -> (last warning, busy answers since)
        self._state = "created"
        self._closed = threading.Event()
        self._close_reason = "stream not started"
        self.capabilities = PeerCapabilities()
        self.ready = asyncio.Event()
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._stop_requested = False

    # -- introspection -----------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @property
    def in_flight(self) -> int:
        return len(self._txs)

    # -- lifecycle ---------------------------------------------------------------
    async def run(self, transport: Transport) -> None:
        """Serve the stream until it ends.

        Returns normally after :meth:`stop`; raises :class:`StreamClosedError`
        when the peer ended the stream or it failed. Stopped before it ran (a shutdown asked for while the
        connection was being made: :meth:`stop` had no queue to mark), it returns at once, registering nothing.
        """
        if self._stop_requested:
            return
        self._loop = asyncio.get_running_loop()
        self._send_q = asyncio.Queue()
        self._closed.clear()
        reg = CCM(
            type=CCM.REGISTER,
            payload=chaincode_pb2.ChaincodeID(name=self.chaincode_id).SerializeToString(),
        )
        self._send_q.put_nowait(reg)
        sender = asyncio.create_task(self._send_loop(transport), name=f"{self.name}-send")
        reader = asyncio.create_task(self._recv_loop(transport), name=f"{self.name}-recv")
        reason: Optional[BaseException] = None
        try:
            done, _ = await asyncio.wait({sender, reader}, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if not t.cancelled() and t.exception() is not None:
                    reason = t.exception()
                    break
            if reason is None and not self._stop_requested:
                reason = StreamClosedError("stream ended")
        except asyncio.CancelledError:
            reason = StreamClosedError("stream cancelled")
            raise
        finally:
            self._shutdown(str(reason) if reason else "session stopped")
            for t in (sender, reader):
                t.cancel()
            for t in (sender, reader):
                try:
                    await t
                except BaseException:  # noqa: BLE001 - already reported
                    pass
        if self._stop_requested:
            return
        if isinstance(reason, StreamClosedError):
            raise reason
        raise StreamClosedError(f"stream failed: {reason}") from reason

    def stop(self) -> None:
        """End the session from our side (after draining, or to abort)."""
        # Messages already queued (e.g. the last COMPLETED) are written first:
        # the sender stops at the marker, which ends run().
        self._stop_requested = True
        if self._send_q is not None:
            self._send_q.put_nowait(_STOP)

    async def drain(self, timeout: float) -> bool:
        """Refuse new transactions and wait until in-flight ones completed."""
        self.draining = True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            log.warning("%s: %d transaction(s) still running after %.0fs drain", self.name, len(self._txs), timeout)
            return False

    def _shutdown(self, reason: str) -> None:
        if self._closed.is_set():
            return
        self._close_reason = reason
        self._closed.set()
        failed = 0
        for ctx in list(self._txs.values()):
            fut = ctx.pending
            if fut is not None and not fut.done():
                fut.set_exception(StreamClosedError(f"connection to peer lost: {reason}"))
                failed += 1
            elif ctx.waiting:
                failed += 1
                self._resume(ctx, error=StreamClosedError(f"connection to peer lost: {reason}"))
        if self._txs:
            log.warning(
                "%s closed (%s) with %d transaction(s) in flight, %d pending stub call(s) failed",
                self.name, reason, len(self._txs), failed,
            )
        else:
            log.info("%s closed (%s)", self.name, reason)

    # -- the two stream tasks ------------------------------------------------------
    async def _send_loop(self, transport: Transport) -> None:
        assert self._send_q is not None
        while True:
            msg = await self._send_q.get()
            if msg is _STOP:
                return
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s send %s [%s]", self.name, _type_name(msg.type), short(msg.txid))
            await transport.write(msg)

    async def _recv_loop(self, transport: Transport) -> None:
        while True:
            msg = await transport.read()
            if msg is None:
                raise StreamClosedError("peer closed the stream")
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s recv %s [%s]", self.name, _type_name(msg.type), short(msg.txid))
            self._dispatch(msg)

    def _send(self, msg: chaincode_shim_pb2.ChaincodeMessage) -> None:
        if self._send_q is not None and not self._closed.is_set():
            self._send_q.put_nowait(msg)

    def _send_error(self, about: chaincode_shim_pb2.ChaincodeMessage, text: str) -> None:
        self._send(
            CCM(type=CCM.ERROR, payload=text.encode("utf-8"), txid=about.txid, channel_id=about.channel_id)
        )

    # -- dispatch (runs in the loop) ---------------------------------------------
    def _dispatch(self, msg: chaincode_shim_pb2.ChaincodeMessage) -> None:
        if msg.type == CCM.KEEPALIVE:
            self._send(CCM(type=CCM.KEEPALIVE, txid=msg.txid, channel_id=msg.channel_id))
            return
        if self._state == "created":
            if msg.type == CCM.REGISTERED:
                self._state = "established"
                return
            if msg.type == CCM.ERROR:
                raise StreamClosedError(
                    "peer refused registration: " + msg.payload.decode("utf-8", "replace")
                )
            self._protocol_violation(msg)
        elif self._state == "established":
            if msg.type == CCM.READY:
                self.capabilities = PeerCapabilities.from_ready_payload(msg.payload)
                self._state = "ready"
                self.ready.set()
                release_free_heap()
                log.info(
                    "%s ready (chaincode %s; write batch %s, get multiple %s)",
                    self.name, self.chaincode_id,
                    self.capabilities.use_write_batch, self.capabilities.use_get_multiple_keys,
                )
                return
            if msg.type == CCM.ERROR:
                raise StreamClosedError("peer failed the handshake: " + msg.payload.decode("utf-8", "replace"))
            self._protocol_violation(msg)
        else:
            t = msg.type
            if t == CCM.RESPONSE or t == CCM.ERROR:
                self._route_reply(msg)
            elif t == CCM.TRANSACTION or t == CCM.INIT:
                self._start_transaction(msg)
            else:
                log.warning("%s: unexpected %s while ready [%s]", self.name, _type_name(t), short(msg.txid))
                self._send_error(msg, f"chaincode cannot handle message ({_type_name(t)}) while in state ready")

    def _protocol_violation(self, msg: chaincode_shim_pb2.ChaincodeMessage) -> None:
        text = f"chaincode cannot handle message ({_type_name(msg.type)}) while in state {self._state}"
        self._send_error(msg, text)
        raise StreamClosedError("protocol violation: " + text)

    def _route_reply(self, msg: chaincode_shim_pb2.ChaincodeMessage) -> None:
        ctx = self._txs.get((msg.channel_id, msg.txid))
        if ctx is not None and ctx.waiting:
            self._resume(ctx, reply=msg)
            return
        fut = ctx.pending if ctx is not None else None
        if fut is None or fut.done():
            log.warning(
                "%s: dropping %s for [%s] with no outstanding request",
                self.name, _type_name(msg.type), short(msg.txid),
            )
            return
        fut.set_result(msg)

    def _start_transaction(self, msg: chaincode_shim_pb2.ChaincodeMessage) -> None:
        key = (msg.channel_id, msg.txid)
        if key in self._txs:
            log.warning("%s: duplicate transaction [%s] refused", self.name, short(msg.txid))
            self._send_error(msg, f"transaction {msg.txid} is already executing on channel {msg.channel_id}")
            return
        if self.draining:
            self._send_error(msg, "chaincode is shutting down")
            return
        ctx = _TxContext(msg.channel_id, msg.txid, creator_org(msg))
        self._txs[key] = ctx
        self._idle.clear()
        if self._admission.admit(ctx.org, (msg, ctx)):   # else it waits for one of its organisation's to finish
            self._begin(msg, ctx)
        elif self._sweep_timer is None and self._loop is not None:
            self._sweep_timer = self._loop.call_later(1.0, self._sweep)

    def _sweep(self) -> None:
        """Every second while transactions wait their turn: those waiting too long are answered busy."""
        self._sweep_timer = None
        for msg, late in self._admission.expired():
            self._finish_waiting(msg, late)
        if self._admission.waiting() and self._loop is not None and not self._closed.is_set():
            self._sweep_timer = self._loop.call_later(1.0, self._sweep)

    def _begin(self, msg: chaincode_shim_pb2.ChaincodeMessage, ctx: _TxContext) -> None:
        if self._closed.is_set():   # the stream ended while it waited: nothing to answer
            self._finish(ctx, None)
            return
        if self._pool is not None:
            self._pool.submit(self._execute, msg, ctx)
            return
        ctx.glet = greenlet.greenlet(self._execute)
        self._switch(ctx, msg, ctx)  # runs until the first stub call, or to the end

    # -- inline transactions (greenlets of the loop's thread) ------------------------
    def _switch(self, ctx: _TxContext, *args: Any, error: Optional[BaseException] = None) -> None:
        """Run ``ctx``'s greenlet until it waits on the peer again or ends: switched into with ``args``, or
        with ``error`` raised where it waits (in :meth:`_call_inline`)."""
        glet = ctx.glet
        assert glet is not None
        try:
            if error is not None:
                glet.throw(error)
            else:
                glet.switch(*args)
        except BaseException:  # noqa: BLE001 - _execute catches the contract's errors; this is ours
            log.error("[%s] transaction greenlet failed:\n%s", short(ctx.txid), traceback.format_exc(limit=5))
            if not ctx.finished:
                self._finish(ctx, CCM(type=CCM.ERROR, payload=b"chaincode shim failure",
                                      txid=ctx.txid, channel_id=ctx.channel_id))

    def _resume(
        self,
        ctx: _TxContext,
        reply: Optional[chaincode_shim_pb2.ChaincodeMessage] = None,
        error: Optional[BaseException] = None,
    ) -> None:
        ctx.waiting = False
        self._switch(ctx, reply, error=error)

    def _call_inline(self, ctx: _TxContext, msg: chaincode_shim_pb2.ChaincodeMessage):
        """Send a request from ``ctx``'s greenlet and suspend it until the reply is routed back."""
        if self._closed.is_set():
            raise StreamClosedError(f"connection to peer lost: {self._close_reason}")
        if ctx.finished:
            raise PeerError(f"[{short(ctx.txid)}] transaction already completed")
        if ctx.pending is not None and not ctx.pending.done():
            raise PeerError(f"[{short(ctx.txid)}] another request is pending for this transaction")
        assert self._send_q is not None and ctx.glet is not None
        self._send_q.put_nowait(msg)
        ctx.waiting = True
        try:
            # back to the loop; _resume switches in again with the reply, or raises the error here
            return ctx.glet.parent.switch()
        finally:
            ctx.waiting = False

    def _finish(self, ctx: _TxContext, reply: Optional[chaincode_shim_pb2.ChaincodeMessage]) -> None:
        if self._txs.get((ctx.channel_id, ctx.txid)) is ctx:
            del self._txs[(ctx.channel_id, ctx.txid)]
        ctx.finished = True
        fut = ctx.pending
        if fut is not None and not fut.done():  # a stray helper thread still waiting
            fut.set_exception(PeerError(f"[{short(ctx.txid)}] transaction already completed"))
        if reply is not None:
            self._send(reply)
        following, expired = self._admission.release(ctx.org)
        for msg, late in expired:   # waited too long: answered busy
            self._finish_waiting(msg, late)
        if following is not None:   # started from the loop, never from inside this transaction's greenlet
            self._call_in_loop(self._begin, *following)
        elif not self._txs:
            self._idle.set()

    def _note_busy(self, org: str) -> None:
        """A warning per organisation at most every 10 s, with how many were answered busy: a flood must not flood
        the log too."""
        now = time.monotonic()
        last, count = self._busy.get(org, (0.0, 0))
        if now - last < 10.0:
            self._busy[org] = (last, count + 1)
            return
        self._busy[org] = (now, 0)
        log.warning("%d transaction(s) of %s answered busy (its other transactions held the chaincode for more "
                    "than %g s)", count + 1, org or "an unknown creator", self._admission.wait_max_s)

    def _finish_waiting(self, msg: chaincode_shim_pb2.ChaincodeMessage, ctx: _TxContext) -> None:
        """A transaction that waited too long for its organisation's turn: answered busy, never run."""
        if self._txs.get((ctx.channel_id, ctx.txid)) is ctx:
            del self._txs[(ctx.channel_id, ctx.txid)]
        ctx.finished = True
        self._note_busy(ctx.org)
        self._send_error(msg, f"{BUSY} with {ctx.org or 'this creator'}'s other transactions for more than "
                              f"{self._admission.wait_max_s:g} s: nothing was done, send it again")
        if not self._txs:
            self._idle.set()

    # -- transaction execution (worker thread) -----------------------------------
    def _execute(self, msg: chaincode_shim_pb2.ChaincodeMessage, ctx: _TxContext) -> None:
        reply: Optional[chaincode_shim_pb2.ChaincodeMessage] = None
        try:
            try:
                input_ = chaincode_pb2.ChaincodeInput()
                input_.ParseFromString(msg.payload)
                stub = Stub(self, ctx, input_, msg.proposal if msg.HasField("proposal") else None)
            except Exception as exc:  # malformed TRANSACTION: protocol-level error
                log.warning("[%s] cannot set up transaction: %s", short(msg.txid), type(exc).__name__)
                reply = CCM(
                    type=CCM.ERROR,
                    payload=f"failed to create new ChaincodeStub: {exc}".encode("utf-8"),
                    txid=msg.txid,
                    channel_id=msg.channel_id,
                )
                return
            ctx.stub = stub
            status, message, payload = self._invoke_contract(stub, msg.txid)
            ok = status < ERROR_THRESHOLD
            try:
                stub._finish(ok)  # closes leftover iterators; flushes the write batch if ok
            except Exception as exc:  # noqa: BLE001
                if ok:
                    status, message, payload = 500, f"failed to write batch: {exc}", b""
                    ok = False
            response = proposal_response_pb2.Response(status=status, message=message, payload=payload)
            reply = CCM(
                type=CCM.COMPLETED,
                payload=response.SerializeToString(),
                txid=msg.txid,
                channel_id=msg.channel_id,
            )
            if ok and stub._event is not None:
                reply.chaincode_event.CopyFrom(stub._event)
            size = reply.ByteSize()
            if size > self.max_message:
                log.warning("[%s] response of %d bytes exceeds the %d-byte message limit", short(msg.txid), size,
                            self.max_message)
                response = proposal_response_pb2.Response(
                    status=500, message=f"the response of {size} bytes exceeds the message limit of {self.max_message}")
                reply = CCM(type=CCM.COMPLETED, payload=response.SerializeToString(), txid=msg.txid,
                            channel_id=msg.channel_id)
            log.debug("[%s] completed with status %d", short(msg.txid), status)
        finally:
            if reply is None:
                # No reply could be built: the contract raised a BaseException that is no Exception, or the
                # response cannot be encoded (a message that is not Unicode text, a status beyond int32). The peer
                # is answered all the same, never left waiting for the transaction until its timeout.
                reply = CCM(type=CCM.ERROR, payload=b"chaincode shim failure", txid=msg.txid,
                            channel_id=msg.channel_id)
            if ctx.glet is not None:
                self._finish(ctx, reply)
            else:
                self._call_in_loop(self._finish, ctx, reply)

    def _invoke_contract(self, stub: Any, txid: str) -> tuple[int, str, bytes]:
        function, params = stub._dispatch_args()
        try:
            result = self.contract.invoke(stub, function, params)
            return _normalise_response(result)
        except Exception as exc:  # noqa: BLE001 - the contract boundary: never crash
            log.warning(
                "[%s] contract raised %s\n%s",
                short(txid), type(exc).__name__, "".join(traceback.format_tb(exc.__traceback__)),
            )
            return 500, str(exc) or type(exc).__name__, b""

    def _call_in_loop(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed: the session is long gone
            pass

    # -- stub requests (worker thread → loop) --------------------------------------
    def call(self, ctx: _TxContext, msg_type: int, payload: bytes) -> chaincode_shim_pb2.ChaincodeMessage:
        """Send one request for ``ctx`` and block until the peer answers.

        Returns the RESPONSE message; raises :class:`PeerError` on ERROR and
        :class:`StreamClosedError` when the stream is gone.
        """
        msg = CCM(type=msg_type, payload=payload, txid=ctx.txid, channel_id=ctx.channel_id)
        size = msg.ByteSize()
        if size > self.max_message:
            raise PeerError(f"{_type_name(msg_type)} request of {size} bytes exceeds the message limit of "
                            f"{self.max_message}")
        if ctx.glet is not None and greenlet.getcurrent() is ctx.glet:
            reply = self._call_inline(ctx, msg)
        else:
            reply = self._call_from_thread(ctx, msg)
        if reply.type == CCM.RESPONSE:
            return reply
        if reply.type == CCM.ERROR:
            raise PeerError(reply.payload.decode("utf-8", "replace"))
        raise PeerError(
            f"incorrect chaincode message {_type_name(reply.type)} received. Expecting RESPONSE or ERROR"
        )

    def _call_from_thread(self, ctx: _TxContext, msg: chaincode_shim_pb2.ChaincodeMessage):
        """A worker thread's request: handed to the loop, the thread blocks until the reply."""
        with ctx.lock:
            if self._closed.is_set() or self._loop is None:
                raise StreamClosedError(f"connection to peer lost: {self._close_reason}")
            try:
                cfut = asyncio.run_coroutine_threadsafe(self._request(ctx, msg), self._loop)
            except RuntimeError:
                raise StreamClosedError("connection to peer lost: event loop closed") from None
            while True:
                try:
                    reply = cfut.result(timeout=_POLL_SECONDS)
                    break
                except concurrent.futures.TimeoutError:
                    if self._closed.is_set() or self._loop.is_closed():
                        cfut.cancel()
                        raise StreamClosedError(f"connection to peer lost: {self._close_reason}") from None
                except concurrent.futures.CancelledError:
                    raise StreamClosedError(f"connection to peer lost: {self._close_reason}") from None
        return reply

    async def _request(self, ctx: _TxContext, msg: chaincode_shim_pb2.ChaincodeMessage):
        if self._closed.is_set():
            raise StreamClosedError(f"connection to peer lost: {self._close_reason}")
        if ctx.finished:
            raise PeerError(f"[{short(ctx.txid)}] transaction already completed")
        if ctx.waiting or ctx.pending is not None and not ctx.pending.done():
            raise PeerError(f"[{short(ctx.txid)}] another request is pending for this transaction")
        assert self._loop is not None and self._send_q is not None
        fut = self._loop.create_future()
        ctx.pending = fut
        self._send_q.put_nowait(msg)
        try:
            return await fut
        finally:
            ctx.pending = None


def _normalise_response(result: Any) -> tuple[int, str, bytes]:
    if isinstance(result, proposal_response_pb2.Response):
        return int(result.status), result.message, bytes(result.payload)
    if isinstance(result, tuple) and len(result) == 3:
        status, message, payload = result
    elif all(hasattr(result, a) for a in ("status", "message", "payload")):
        status, message, payload = result.status, result.message, result.payload
    else:
        raise TypeError(f"contract.invoke returned {type(result).__name__}, expected (status, message, payload)")
    if payload is None:
        payload = b""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return int(status), str(message or ""), bytes(payload)
