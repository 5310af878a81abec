"""The gateway's live services, one set per app (= per gunicorn worker): the feed store, visibility,
the chaincode-event listener, the webhook dispatcher, the feed's retention, the audit trail, the caps on open SSE streams. See gateway/README.md § Dashboard."""
from __future__ import annotations

import logging
import os
import secrets
import signal
import threading
from pathlib import Path

from ipledger.gateway.audit import AuditTrail, FabricBlockReader
from ipledger.gateway.feed.declarations import DeclarationWatch
from ipledger.gateway.feed.listener import FabricEventSource, FeedListener
from ipledger.gateway.feed.retention import Retention
from ipledger.gateway.feed.store import FeedStore, gateway_dir
from ipledger.gateway.feed.visibility import Visibility
from ipledger.gateway.webhooks import AlertRouter, Deliveries, Dispatcher, Subscriptions
from ipledger.gateway.dashboard.streams import StreamLimits
from ipledger.gateway.filestore import read_or_create, require_owner_only, require_regular_file

SESSION_KEY = "session.key"
SESSION_KEY_BYTES = 32


class SessionKeyError(ValueError):
    """The dashboard's session key file is unusable (its message names the file, never its content)."""


def session_key(path: Path, make: bool = True) -> bytes:
    """The session-cookie signing key in ``path``: made (32 random bytes, 0600) when missing and ``make``; refused
    (SessionKeyError) when it is not a regular file of its own (a link), is readable by others, or is not 32 bytes
    — whoever can read it can sign a session cookie for any key id."""
    if os.path.lexists(path):   # a link is refused before it is followed (a dangling one too)
        require_regular_file(path, "the dashboard's session key", SessionKeyError)
    elif make:
        read_or_create(path, lambda: secrets.token_bytes(SESSION_KEY_BYTES))
    if not os.path.lexists(path):
        raise SessionKeyError(f"the dashboard's session key {path} is missing: restart the gateway (signed-in "
                              "sessions then end)")
    require_owner_only(path, "the dashboard's session key", SessionKeyError)
    raw = path.read_bytes()
    if len(raw) != SESSION_KEY_BYTES:
        raise SessionKeyError(f"the dashboard's session key {path} does not hold a key ({SESSION_KEY_BYTES} bytes); "
                              "remove it and restart the gateway (signed-in sessions then end)")
    return raw

log = logging.getLogger("ipledger.gateway.dashboard")


class Live:
    def __init__(self, config, service, *, store: FeedStore | None = None, source=None, block_reader=None,
                 subscriptions: Subscriptions | None = None, start: bool | None = None, post=None):
        self.config = config
        self.service = service
        directory = gateway_dir(config)
        self.directory = directory
        if directory is None:  # no state dir (tests): next to the API key file, i.e. <state>/gateway
            directory = Path(config.keys_file).parent
            self.directory = directory
        if store is None:
            store = FeedStore(directory / "dashboard.sqlite")
        self.store = store
        service.use_block_index(store)   # the trails' block numbers come from the feed (LedgerService.with_blocks)
        self.visibility = Visibility(service, ttl=config.visibility_ttl_s, store=store)
        self.subscriptions = subscriptions or Subscriptions(self.directory / "webhooks.json")
        self.deliveries = Deliveries(store)
        self.router = AlertRouter(self.subscriptions, self.deliveries, self.visibility, service, store,
                                  channel=config.channel)
        # customs' gateway of several holders' channels: its watch over declaration items used on two of them (a
        # gateway without connections, in tests, answers every organisation's keys: customs' among them)
        self.declarations: DeclarationWatch | None = None
        if config.customs_msp and (config.customs_msp in config.orgs or not config.orgs) \
                and len(config.all_channels) > 1:
            self.declarations = DeclarationWatch(store, service, config.customs_msp, self.deliveries,
                                                 self.subscriptions)
        kwargs = {"post": post} if post is not None else {}
        self.dispatcher = Dispatcher(self.subscriptions, self.deliveries, backoff_s=config.webhook_backoff_s,
                                     max_backoff_s=config.webhook_max_backoff_s,
                                     max_attempts=config.webhook_max_attempts, timeout_s=config.webhook_timeout_s,
                                     router=self.router, poll_alerts_s=config.alert_poll_s,
                                     lock_path=self.directory / "webhooks.lock", **kwargs)
        if block_reader is None and config.orgs:
            block_reader = FabricBlockReader(config)
        self.block_reader = block_reader
        self.retention = Retention(store, feed_keep_days=config.feed_keep_days,
                                   webhook_log_keep_days=config.webhook_log_keep_days)
        self.audit = AuditTrail(service, store, block_reader, block_reads=config.block_lookups)
        self.streams = StreamLimits(store, per_key=config.sse_max_per_key, per_session=config.sse_max_per_session,
                                    per_worker=config.sse_streams_per_worker, stream_seconds=config.sse_max_seconds,
                                    # a stream left by its page frees its slot within one poll: wait that long
                                    settle_seconds=3 * config.sse_poll_seconds)
        self.stopping = threading.Event()
        self.listener: FeedListener | None = None
        self.listeners: list[FeedListener] = []
        self._dispatching = threading.Lock()
        self._dispatcher_started = False
        if source is None and start is not False and config.live_feed and config.orgs:
            if len(config.all_channels) > 1:  # a channel per holder: one listener per channel
                for channel in config.all_channels:
                    # the webhook dispatcher runs where the first channel's listener runs: one per gateway
                    self.start_listener(FabricEventSource(config, channel=channel), channel,
                                        dispatch=channel == config.all_channels[0])
            else:
                source = FabricEventSource(config)
        if source is not None and start is not False:
            self.start_listener(source)
        if self.listeners:
            _chain_sigterm(self.stopping)

    def start_listener(self, source, channel: str | None = None, dispatch: bool = True) -> FeedListener:
        """Listen to ``source`` (when this process gets the feed lock), resuming from the checkpoint file;
        with ``channel``, that channel's own lock and checkpoint, its events stored with its name. With
        ``dispatch``, the process whose listener holds this lock also starts the webhook dispatcher, which sends
        once it holds its own lock (``webhooks.lock``: whatever the listeners' locks, one sender at a time)."""
        from ipledger.gateway.client import FileCheckpointer
        name = f"feed.{channel}" if channel else "feed"
        if channel:
            self._take_over_single_channel_feed(channel)
        else:
            self._note_single_channel(getattr(source, "channel", None) or self.config.channel)
        listener = FeedListener(self.store, FileCheckpointer(self.directory / f"{name}.checkpoint.json"), source,
                                lock_path=self.directory / f"{name}.lock",
                                on_item=[self.router.on_feed_item,
                                         *([self.declarations.on_feed_item] if self.declarations else [])],
                                on_lead=[self._start_dispatcher] if dispatch else [], channel=channel)
        self.listeners.append(listener)
        self.listener = self.listener or listener
        if self.declarations is not None:   # the items the ledger could not be asked about, judged again: in every
            self.declarations.start()       # process that listens, whichever channel's lock it gets (once a process)
        return listener.start()

    # -- from one channel to several -------------------------------------------------------------------
    # A gateway of one channel keeps its listener's checkpoint in feed.checkpoint.json and stores events
    # without a channel name; one of several channels keeps one checkpoint per channel. When an
    # organisation joins a second channel (a new holder, for customs), the channel it served alone goes on
    # from where its listener stood instead of reading the channel again from block 0, and its stored
    # events get the channel's name. feed.json records which channel that was.
    def _feed_file(self):
        from ipledger.gateway.filestore import JsonFile
        return JsonFile(self.directory / "feed.json", empty=dict)

    def _note_single_channel(self, channel: str | None) -> None:
        if not channel:
            return
        feed = self._feed_file()
        if feed.read().get("single_channel") != channel:
            with feed.update() as doc:
                doc["single_channel"] = channel

    def _take_over_single_channel_feed(self, channel: str) -> None:
        single = self.directory / "feed.checkpoint.json"
        own = self.directory / f"feed.{channel}.checkpoint.json"
        if own.exists() or not single.exists():
            return
        with self._feed_file().update() as doc:   # one worker at a time
            # a gateway from before feed.json served its first channel alone
            if own.exists() or doc.get("single_channel", self.config.channel) != channel:
                return
            from ipledger.gateway.client import FileCheckpointer   # its atomic, 0600 save
            where = FileCheckpointer(single).checkpoint
            FileCheckpointer(own).checkpoint_transaction(where.block_number, where.tx_id)
            named = self.store.name_channel(channel)
            if self.declarations is not None:
                self.declarations.index_stored()   # the channel's events, now named, among the items watched
        log.info("the live feed of channel %s goes on from the checkpoint it had when the gateway served it "
                 "alone (%d stored events named)", channel, named)

    def _start_dispatcher(self) -> None:
        """The webhook dispatcher runs once per process, when its first listener takes the lead (with the feed's
        retention)."""
        with self._dispatching:
            if not self._dispatcher_started:
                self._dispatcher_started = True
                self.dispatcher.start()
                if self.retention.active:      # where a listener leads (pruning twice at once is harmless)
                    self.retention.start()

    def secret_key(self) -> bytes:
        """The session-cookie signing key, shared by the workers (``<state>/<org name>/gateway/session.key``)."""
        if self.config.home is None:
            return secrets.token_bytes(32)
        return session_key(self.directory / SESSION_KEY, make=self.config.make_secrets)

    def close(self) -> None:
        self.stopping.set()
        self.dispatcher.stop()     # first: the next holder of its lock takes over what is left to send
        self.retention.stop()
        if self.declarations is not None:
            self.declarations.stop()
        for listener in self.listeners:
            listener.stop()
        if self.block_reader is not None and hasattr(self.block_reader, "close"):
            self.block_reader.close()


def _chain_sigterm(stopping: threading.Event) -> None:
    """In a gunicorn worker, end the SSE responses at once on SIGTERM (graceful stop), then let gunicorn's
    own handler run. Only gunicorn's worker handler is wrapped; nothing happens elsewhere (tests)."""
    if threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGTERM)
    owner = getattr(current, "__self__", None)
    if owner is None or not type(owner).__module__.startswith("gunicorn.workers"):
        return

    def handler(signum, frame):
        stopping.set()
        current(signum, frame)

    signal.signal(signal.SIGTERM, handler)
    signal.siginterrupt(signal.SIGTERM, False)  # as gunicorn had it
