"""The chaincode-event listener: one per gateway installation writes the feed.

* every gunicorn worker starts a :class:`FeedListener` thread; the one that holds the lock file
  ``<state>/<org name>/gateway/feed.lock`` (``flock``) listens, the others wait for the lock (a worker
  that dies releases it, and another takes over);
* the listener reads ``ChaincodeEvents(channel, ipledger)`` (:mod:`ipledger.gateway.client.events`) from the
  stored :class:`~ipledger.gateway.client.FileCheckpointer` (``<state>/<org name>/gateway/feed.checkpoint.json``),
  or from block 0 the first time, stores each transaction's ``ipledger.events`` payload (a block's together, in
  one database transaction) in the feed
  database (:class:`~ipledger.gateway.feed.store.FeedStore`, ``INSERT OR IGNORE`` on the tx id), runs the hooks (the
  webhook router queues its deliveries in the same database) and only then moves the checkpoint: after a
  crash in between the transaction comes again and is ignored — no event is missed, none stored twice. A
  hook that fails is retried with back-off and the checkpoint waits: nothing a hook should have done is
  lost.
"""
from __future__ import annotations

import contextlib
import json
import logging
import threading
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol

from ipledger.gateway.filestore import CorruptFileError, LeadLock
from ipledger.gateway.feed.store import FeedStore, feed_item

log = logging.getLogger("ipledger.gateway.feed")

EVENT_NAME = "ipledger.events"
MAX_BATCH = 500  # events stored in one database transaction at most


class EventSource(Protocol):
    def open(self, checkpoint) -> Iterator:  # iterator of ipledger.gateway.client.ChaincodeEvent with .close()
        ...

    def close(self) -> None: ...


class FabricEventSource:
    """Chaincode events of the contract from one org's peer (its own Gateway connection)."""

    def __init__(self, config, org: str | None = None, channel: str | None = None):
        self.config = config
        self.org = org or config.feed_org or sorted(config.orgs)[0]
        self.channel = channel or config.channel
        self._gateway = None
        self._signer = None

    def open(self, checkpoint):
        from ipledger.gateway.client import Endpoint, Gateway
        from ipledger.gateway.ledger import load_org_identity
        if self._gateway is None:
            conn = self.config.orgs[self.org]
            identity, signer = load_org_identity(self.config, conn)
            self._signer = signer
            self._gateway = Gateway.connect(Endpoint(conn.peer_address, tls_root_cert=conn.tls_root_cert,
                                                     server_name=conn.server_name), identity, signer)
        network = self._gateway.network(self.channel)
        empty = checkpoint is None or checkpoint.empty
        return network.chaincode_events(self.config.chaincode, start_block=0 if empty else None,
                                        checkpoint=None if empty else checkpoint)

    def close(self) -> None:
        if self._gateway is not None:
            with contextlib.suppress(Exception):
                self._gateway.close()
            self._gateway = None
        if self._signer is not None:
            from ipledger.gateway.ledger import close_signer
            close_signer(self._signer)
            self._signer = None


class FeedListener:
    """The background listener (one thread). Only the holder of ``lock_path`` listens."""

    def __init__(self, store: FeedStore, checkpointer, source: EventSource, lock_path: Path | str | None = None,
                 on_item: Iterable[Callable[[dict], None]] = (), retry_s: float = 2.0,
                 on_lead: Iterable[Callable[[], None]] = (), hook_backoff_s: float | None = None,
                 hook_max_backoff_s: float = 60.0, channel: str | None = None):
        self.store = store
        self.channel = channel  # stored with each event: set on a gateway of several channels
        self.checkpointer = checkpointer
        self.source = source
        self.lock_path = Path(lock_path) if lock_path else None
        # hooks must be idempotent: a transaction whose hooks ran may come again (restart before the checkpoint)
        self.on_item = list(on_item)
        self.on_lead = list(on_lead)  # run once this listener holds the lock (e.g. start the webhook dispatcher)
        self.retry_s = retry_s
        # a failing hook is retried after hook_backoff_s, doubled each time up to hook_max_backoff_s
        self.hook_backoff_s = min(retry_s, 0.5) if hook_backoff_s is None else hook_backoff_s
        self.hook_max_backoff_s = hook_max_backoff_s
        self._stop = threading.Event()
        self._stream = None
        self._thread: threading.Thread | None = None
        self._lead = LeadLock(self.lock_path) if self.lock_path else None
        self.leading = threading.Event()
        self.handled = 0

    # -- leadership -------------------------------------------------------------------------------------
    def _try_lock(self) -> bool:
        return self._lead is None or self._lead.try_acquire()

    def _unlock(self) -> None:
        if self._lead is not None:
            self._lead.release()
        self.leading.clear()

    # -- running ------------------------------------------------------------------------------------------
    def start(self) -> "FeedListener":
        self._thread = threading.Thread(target=self.run, name="ipledger-feed", daemon=True)
        self._thread.start()
        return self

    def run(self) -> None:
        try:
            while not self._stop.is_set():
                if self._try_lock():
                    break
                self._stop.wait(2.0)
            else:
                return
            self.leading.set()
            # where the last leader got to, not where the file stood when this worker started: from that stale
            # position pruned items would come back as new ones and delivered alerts be queued again
            while not self._stop.is_set():
                try:
                    self.checkpointer.reload()
                    break
                except (ValueError, OSError) as exc:   # a corrupt or unreadable file: said, and nothing skipped
                    log.error("feed listener: the checkpoint cannot be read (%s); the live feed waits until it is "
                              "repaired", exc, extra={"error_type": type(exc).__name__})
                    self._stop.wait(max(self.retry_s, 5.0))
            else:
                return
            if not self.checkpointer.empty and not self.store.has_events(self.channel):
                # a checkpoint without the events it stands for (the database moved away or lost): resuming
                # there would leave out, for good, everything before it — read the channel again from block 0
                log.warning("feed listener: the feed database holds no event of the checkpoint's channel "
                            "(block %s); reading the channel again from block 0", self.checkpointer.block_number)
                self.checkpointer.checkpoint_transaction(0, "")
            elif not self.checkpointer.empty:
                self._not_past_the_store()
            for callback in self.on_lead:
                callback()
            log.info("feed listener started (checkpoint block %s)", self.checkpointer.block_number)
            while not self._stop.is_set():
                try:
                    self._listen_once()
                except Exception as exc:  # noqa: BLE001 - reconnect from the checkpoint
                    if self._stop.is_set():
                        break
                    log.warning("feed listener: %s; reconnecting from the checkpoint", type(exc).__name__,
                                extra={"error_type": type(exc).__name__})
                    self._stop.wait(self.retry_s)
        finally:
            self._unlock()

    def _not_past_the_store(self) -> None:
        """A checkpoint ahead of the newest event stored (the database restored from an older copy than the
        checkpoint): resuming there would leave the events between out of the feed, and their alerts out of the
        webhooks, for good — resume after the newest stored one instead (events stored again are ignored, hooks
        are idempotent). Blocks past it without an event of the contract are only read again."""
        newest = self.store.newest(self.channel)
        if newest is None or newest[0] >= self.checkpointer.block_number:
            return
        log.warning("feed listener: the checkpoint (block %s) is past the newest event the feed database holds "
                    "(block %s): reading the channel again from there", self.checkpointer.block_number, newest[0])
        self.checkpointer.checkpoint_transaction(*newest)

    def _listen_once(self) -> None:
        stream = self.source.open(self.checkpointer.checkpoint)
        self._stream = stream
        try:
            batch: list = []
            for event in stream:
                batch.append(event)
                # the rest of the block is already here: store it with these, in one database transaction
                if getattr(stream, "buffered", 0) and len(batch) < MAX_BATCH:
                    continue
                if self._stop.is_set() or not self.handle_all(batch):
                    break
                batch = []
            else:
                if not self._stop.is_set():
                    raise ConnectionError("the chaincode event stream ended")
        finally:
            self._stream = None
            with contextlib.suppress(Exception):
                stream.close()

    def handle(self, event) -> bool:
        """Store one chaincode event, run the hooks, then move the checkpoint past it (:meth:`handle_all`)."""
        return self.handle_all([event])

    def handle_all(self, events: list) -> bool:
        """Store chaincode events (those of a block, in order) in one database transaction, run the hooks on
        each, then move the checkpoint past the last.

        The checkpoint moves only once every hook has succeeded: a hook that raises is retried (back-off
        ``hook_backoff_s`` doubling to ``hook_max_backoff_s``) and the feed waits at this transaction. False
        (checkpoint not moved) when the listener was stopped meanwhile: the events come again on the next
        start (stored ones are ignored), so hooks must be idempotent."""
        stored = []
        for event in events:
            if event.event_name != EVENT_NAME:
                continue
            try:
                payload = json.loads(event.payload)
            except ValueError:
                log.error("chaincode event of tx %s is not JSON; skipped", event.tx_id, extra={"tx_id": event.tx_id})
                continue
            if isinstance(payload, dict):
                stored.append((event, payload))
        if stored:
            self.store.add_events([(e.block_number, e.tx_id, payload, self.channel) for e, payload in stored])
        for event, payload in stored:
            item = feed_item(event.block_number, event.tx_id, payload, channel=self.channel)
            for hook in self.on_item:
                if not self._run_hook(hook, item):
                    return False
        if events:
            self.checkpointer.checkpoint_event(events[-1])
        self.handled += len(events)
        return True

    def _run_hook(self, hook: Callable[[dict], None], item: dict) -> bool:
        """Run ``hook`` until it succeeds (True) or the listener stops (False)."""
        delay, failures = self.hook_backoff_s, 0
        while True:
            try:
                hook(item)
                if failures:
                    log.info("feed hook %s succeeded after %d failure(s); the feed moves on",
                             getattr(hook, "__name__", hook), failures,
                             extra={"tx_id": item["tx_id"], "block_number": item["block_number"]})
                return True
            except Exception as exc:  # noqa: BLE001 - retried; the checkpoint waits
                failures += 1
                log.error("feed hook %s failed (%d): %s; the feed waits at block %s (retry in %.1f s)",
                          getattr(hook, "__name__", hook), failures,
                          str(exc) if isinstance(exc, CorruptFileError) else type(exc).__name__,   # names the file
                          item["block_number"], delay,
                          extra={"tx_id": item["tx_id"], "block_number": item["block_number"],
                                 "error_type": type(exc).__name__})
            if self._stop.wait(delay):
                return False
            delay = min(self.hook_max_backoff_s, max(delay, 0.01) * 2)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()
        if self._thread is not None:
            self._thread.join(timeout)
        with contextlib.suppress(Exception):
            self.source.close()

