"""Configuration of the REST gateway.

The app factory takes a :class:`GatewayConfig`; nothing in it dials a peer or
reads a key file at import time. :meth:`GatewayConfig.from_state_dir` derives
one from a network state directory (``.ipledger/``): for every application
organisation its ``User1`` client identity, its own peer and its TLS CA.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from ipledger.network.consortium import Consortium, ConsortiumError
from ipledger.network.layout import Layout, saved_consortium

# Flask apps are given this instance path: the gateway has no instance folder (its files are in its
# organisation's gateway directory), and Flask cannot derive one inside the ``ipledger`` namespace package.
NO_INSTANCE = str(Path(__file__).resolve().parent / "no-instance-folder")

DEFAULT_CHANNEL = "inward-processing"
DEFAULT_CHAINCODE = "ipledger"
SERVED_QUERY_CACHE_S = 5.0  # a served gateway's query_cache_s (see GatewayConfig)

# The settings a served gateway takes from its environment (GatewayConfig.from_state_dir): field, variable.
ENV_SECONDS = (("webhook_backoff_s", "IPLEDGER_WEBHOOK_BACKOFF_S"), ("alert_poll_s", "IPLEDGER_ALERT_POLL_S"),
               ("sse_max_seconds", "IPLEDGER_SSE_MAX_SECONDS"), ("query_cache_s", "IPLEDGER_QUERY_CACHE_S"),
               ("evaluate_timeout", "IPLEDGER_QUERY_TIMEOUT_S"), ("submit_timeout", "IPLEDGER_SUBMIT_TIMEOUT_S"),
               ("request_read_timeout_s", "IPLEDGER_REQUEST_READ_TIMEOUT_S"))
POSITIVE = frozenset({"evaluate_timeout", "submit_timeout", "request_read_timeout_s"})   # of ENV_SECONDS: not 0
ENV_COUNTS = (("sse_max_per_key", "IPLEDGER_SSE_MAX_PER_KEY"), ("sse_max_per_session", "IPLEDGER_SSE_MAX_PER_SESSION"),
              ("sse_max_per_worker", "IPLEDGER_SSE_MAX_PER_WORKER"), ("feed_keep_days", "IPLEDGER_FEED_KEEP_DAYS"),
              ("webhook_log_keep_days", "IPLEDGER_WEBHOOK_LOG_KEEP_DAYS"))
ENVIRONMENT = ("IPLEDGER_CHAINCODE", "IPLEDGER_LIVE_FEED", "IPLEDGER_FORWARDED_ALLOW_IPS",
               *(env for _f, env in ENV_SECONDS + ENV_COUNTS))


def gateway_environment(environ: dict[str, str]) -> dict[str, str]:
    """The part of ``environ`` a gateway reads: what a gateway container is given, nothing else."""
    return {k: v for k, v in environ.items() if k in ENVIRONMENT}


@dataclass(frozen=True)
class OrgConnection:
    """How the gateway acts for one organisation: its client identity and its own peer."""
    msp_id: str
    msp_dir: Path
    peer_address: str
    tls_root_cert: Path
    server_name: str | None = None


@dataclass(frozen=True)
class GatewayConfig:
    orgs: dict[str, OrgConnection] = field(default_factory=dict)
    keys_file: Path = Path(".ipledger/gateway/api-keys.json")
    # secret for the commercial-data nonce (see gateway/README.md); None disables it
    nonce_key_file: Path | None = None
    # whether the app may make its secret files (nonce key, session key) when they are missing: `gateway serve`
    # makes and checks them before forking and its workers only read them (a key lost while the gateway runs is
    # an error, never a new key some workers use and others not)
    make_secrets: bool = True
    channel: str = DEFAULT_CHANNEL
    # Every channel the organisation is on (a channel per holder: customs' gateway serves them
    # all, a holder's its own); empty: just ``channel``.
    channels: tuple[str, ...] = ()
    chaincode: str = DEFAULT_CHAINCODE
    submit_timeout: float = 60.0       # whole submit: endorse + order + commit (+ MVCC retries); env
                                       # IPLEDGER_SUBMIT_TIMEOUT_S
    evaluate_timeout: float = 10.0     # a query's time on the peer (env IPLEDGER_QUERY_TIMEOUT_S; the peer's own
                                       # limit, chaincode.executetimeout, is 30 s)
    # a request (TLS handshake, head, body) must arrive whole within this long of a thread taking it, or its
    # connection is closed (gateway/request_deadline.py; env IPLEDGER_REQUEST_READ_TIMEOUT_S)
    request_read_timeout_s: float = 30.0
    ready_timeout: float = 3.0         # /readyz: one evaluate per org
    retry_after_s: int = 5             # Retry-After of 503/504 answers
    race_retries: int = 6              # new proposals after an OutOfOrder timestamp race (concurrent transactions)
    max_batch: int = 500               # items in POST /events/batch
    max_body_bytes: int = 8 * 1024 * 1024
    block_lookups: int = 500           # per answer, at most this many look-ups on the peer: tx -> block (qscc; a
    #                                    transaction the feed holds needs none), blocks read for a trail's endorsers
    configure_logging: bool = False    # JSON logs on stderr (the server turns it on)
    log_level: str = "INFO"
    # dashboard, live feed, webhooks (gateway/dashboard, gateway/feed/, gateway/webhooks/)
    # the organisation's home <state>/<org name> (from_state_dir), not the state directory itself: the feed
    # database, checkpoint, webhooks and session key live in <home>/gateway. None: no such files
    home: Path | None = None
    live_feed: bool = False            # run the chaincode-event listener (env IPLEDGER_LIVE_FEED=1: 'gateway serve' sets it)
    feed_org: str | None = None        # whose identity listens (default: the first org; one in a served gateway)
    sse_max_seconds: float = 25.0      # an SSE response ends after this long; EventSource reconnects (Last-Event-ID)
    sse_poll_seconds: float = 0.5      # how often an SSE response looks for new events
    # open SSE responses (each holds a worker thread while it lasts): beyond a cap, 429 + Retry-After
    sse_max_per_key: int = 4           # per API key, its dashboard sessions included (0: no cap)
    sse_max_per_session: int = 2       # per dashboard session (0: no cap)
    sse_max_per_worker: int = 0        # per gunicorn worker process; 0: half its threads (worker_threads // 2)
    worker_threads: int = 8            # threads per worker ('gateway serve --threads'; set by the server)
    # balance answers given again while the channel's height on the peer is unchanged, at most this many
    # seconds (gateway/answers.py); 0: every query evaluated ('gateway serve': 5, env IPLEDGER_QUERY_CACHE_S)
    query_cache_s: float = 0.0
    visibility_ttl_s: float = 60.0     # cache of "may org X read authorisation A" (GetAuthorisation as X)
    webhook_backoff_s: float = 2.0     # first retry delay, doubled per attempt (capped at webhook_max_backoff_s)
    webhook_max_backoff_s: float = 3600.0
    webhook_max_attempts: int = 10
    webhook_timeout_s: float = 10.0
    alert_poll_s: float = 3600.0       # time alerts (no chaincode event) are polled with GetAlerts this often
    # how long the feed database keeps its items and the webhook delivery log (gateway/feed/retention.py); 0: for good
    feed_keep_days: int = 0            # env IPLEDGER_FEED_KEEP_DAYS
    webhook_log_keep_days: int = 0     # env IPLEDGER_WEBHOOK_LOG_KEEP_DAYS
    session_hours: float = 8.0         # dashboard session lifetime
    descriptions: dict[str, str] = field(default_factory=dict)  # MSP id -> description (consortium file)
    customs_msp: str | None = None     # the customs authority's MSP id (consortium file): its keys see every
                                       # webhook delivery and the members page
    # the organisation's signing key read and used by a child process of the gateway's (network/fabric/
    # signing_process.py), never by the process serving requests; tests running several organisations'
    # gateway apps in one process set it, so that process holds none of their keys
    key_in_child_process: bool = False

    def with_(self, **changes) -> "GatewayConfig":
        return replace(self, **changes)

    @property
    def all_channels(self) -> tuple[str, ...]:
        """The channels this gateway serves, the first being :attr:`channel`."""
        return self.channels or (self.channel,)

    @property
    def sse_streams_per_worker(self) -> int:
        """The cap on open SSE responses of one worker process: ``sse_max_per_worker``, or half its threads."""
        return self.sse_max_per_worker or max(1, self.worker_threads // 2)

    @classmethod
    def from_state_dir(cls, state_dir: Path | str, org: str, **overrides) -> "GatewayConfig":
        """The gateway of organisation ``org``: its client identity (User1) and its own peer only,
        its files (API keys, feed, credentials) in its own directory ``<state>/<org name>/gateway``.
        There is no gateway of several organisations: no process holds two organisations' keys."""
        if not org:
            raise ConfigError("a gateway is one organisation's: give its MSP id (org)")
        state_dir = Path(state_dir).resolve()
        net = _saved_network(state_dir)
        # what a gateway needs of its organisation's keys is its client identity alone (checked before serving,
        # gateway/server.py); in a container (network/org/containers/services.py) that is all it is given
        own = net.consortium.org(org)
        home = net.layout.org_home(own)
        overrides = {"keys_file": keys_file_of(state_dir, org), "nonce_key_file": home / "gateway" / "nonce.key",
                     "home": home, "feed_org": org, **overrides}
        orgs = {}
        for o in net.consortium.orgs:
            if not o.peers or o.msp_id != org:
                continue
            orgs[o.msp_id] = OrgConnection(
                msp_id=o.msp_id, msp_dir=net.layout.user_msp(o, "User1"), peer_address=o.peers[0].address,
                tls_root_cert=net.layout.tls_ca(o))
        channels = tuple(net.consortium.channels_of(org))
        if not channels:
            raise ConfigError(f"{org} is on no channel of the consortium")
        base = dict(orgs=orgs, channel=channels[0], channels=channels, customs_msp=net.consortium.customs,
                    chaincode=os.environ.get("IPLEDGER_CHAINCODE", DEFAULT_CHAINCODE),
                    live_feed=_switch("IPLEDGER_LIVE_FEED", os.environ.get("IPLEDGER_LIVE_FEED")),
                    query_cache_s=SERVED_QUERY_CACHE_S,
                    descriptions={o.msp_id: o.description
                                  for o in net.consortium.all_orgs if o.description})
        for settings, parse in ((ENV_SECONDS, _seconds), (ENV_COUNTS, _count)):
            for name, env in settings:
                if os.environ.get(env):
                    base[name] = parse(env, os.environ[env])
        for name, env in ENV_SECONDS:
            if name in POSITIVE and base.get(name) == 0:
                raise ConfigError(f"{env} must be more than 0 seconds")
        base.update(overrides)
        return cls(**base)


class ConfigError(ValueError):
    """A setting (environment variable) that cannot be used."""


def _seconds(env: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise ConfigError(f"{env} must be a number of seconds (0 or more), not {text!r}")
    return value


def _switch(env: str, text: str | None) -> bool:
    """``1`` on, ``0`` (or unset, empty) off; anything else is refused: ``true`` read as off would silently
    stop the live feed and every webhook."""
    if text in (None, "", "0", "1"):
        return text == "1"
    raise ConfigError(f"{env} must be 1 (on) or 0 (off), not {text[:40]!r}")


def _count(env: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigError(f"{env} must be a whole number (0 or more), not {text!r}")
    return value



def gateway_dir_of(state_dir: Path | str, org: str) -> Path:
    """Where organisation ``org``'s gateway keeps its files: ``<state>/<org name>/gateway``."""
    if not org:
        raise ConfigError("a gateway is one organisation's: give its MSP id (org)")
    net = _saved_network(Path(state_dir).resolve())
    return net.layout.gateway_dir(net.consortium.org(org))


@dataclass(frozen=True)
class _SavedNetwork:
    consortium: Consortium
    layout: Layout


def _saved_network(state_dir: Path) -> _SavedNetwork:
    """The consortium saved in ``state_dir`` (before ``network up`` saved one: the default
    consortium file, as the network commands read it) and where its files are: the gateway's only
    use of network/ beside the Fabric library — the description and the layout, never the nodes."""
    layout = Layout(state_dir)
    try:
        return _SavedNetwork(saved_consortium(layout), layout)
    except ConsortiumError as e:
        saved = layout.consortium_file if layout.consortium_file.is_file() else None
        raise ConfigError(f"{saved or 'the consortium file'}: {e}") from None


def channels_of(state_dir: Path | str, org: str) -> tuple[str, ...]:
    """The channels organisation ``org``'s gateway serves (those of the consortium it is on)."""
    return tuple(_saved_network(Path(state_dir).resolve()).consortium.channels_of(org))


def keys_file_of(state_dir: Path | str, org: str) -> Path:
    return gateway_dir_of(state_dir, org) / "api-keys.json"
