"""Serving the app with gunicorn (``ipledger gateway serve``).

gthread workers: each worker process builds its own app (no preload: gRPC
channels must be opened after the fork), with one Fabric connection per org
shared by the worker's threads. Prometheus metrics of every worker are
aggregated through ``PROMETHEUS_MULTIPROC_DIR`` (a fresh directory under the
state dir at each start). Live-feed (SSE) responses hold a thread each: at most
``sse_max_per_worker`` per worker (default half of ``--threads``), so the other
threads keep serving submits (:func:`check_thread_budget`). HTTPS and client certificates: :mod:`ipledger.gateway.tls`.

SIGHUP (``ipledger gateway reload``; ``chaincode deploy`` sends it to a running gateway of the host that does
not serve every channel its organisation is on, once the contract is committed there) reloads: the master
reads the configuration again — the channels the organisation is on now — and gunicorn replaces the workers
gracefully (requests in flight get ``graceful_timeout`` to finish, later ones a 503 "send again"; live-feed
streams end and their browsers reconnect). A configuration the master cannot read keeps the current one. The
listening address, the client CAs and the server certificate's files are those of the start.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Callable

from gunicorn import util as gunicorn_util
from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

from ipledger.gateway.client_tls import is_loopback
from ipledger.gateway.config import ConfigError, GatewayConfig
from ipledger.gateway.observability import gunicorn_logconfig, gunicorn_logger_class
from ipledger.gateway.request_deadline import RequestDeadlines
from ipledger.gateway.tls import ServerTLS, TLSError, TLSOptions, org_tls_cas
from ipledger.network import files


# the problem types of what gunicorn refuses (gateway/problems.py), by status
_SERVER_PROBLEMS = {400: "bad-request", 414: "uri-too-long", 417: "expectation-failed",
                    431: "request-header-fields-too-large", 500: "internal-error", 501: "not-implemented"}


def write_problem(sock, status: int, reason: str, message: str) -> None:
    """gunicorn's answer to a request it refuses before the app sees it — a request line over its limit (414),
    headers too large (431), a request it cannot parse (400) —, or to an app that failed outside Flask (500):
    problem+json like every other error of the API, where gunicorn writes an HTML page. Its signature is
    gunicorn's ``util.write_error``, which :class:`GatewayWorker` replaces with it."""
    from ipledger.gateway.problems import MEDIA_TYPE, type_uri
    # by the status: gunicorn keeps reason "Bad Request" for some refusals of another status (a transfer coding it
    # does not take is 501)
    name = _SERVER_PROBLEMS.get(status) or reason.lower().replace(" ", "-")
    body = json.dumps({"type": type_uri(name), "title": reason, "status": status, "detail": message[:300]}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: {MEDIA_TYPE}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    gunicorn_util.write_nonblock(sock, head.encode("latin-1") + body)


# What the gateway answers (and logs) for each request gunicorn refuses before the app sees it: the status and a
# fixed sentence naming what was wrong — never gunicorn's own message, which quotes the request line, header line or
# value it refused (an API key on a header line without its colon, a query string). By the names of gunicorn's
# classes: a class an older gunicorn lacks is skipped (its refusals are then gunicorn's 400 with this same rule's
# text, through the base class it raises instead).
_REFUSALS = (
    (("InvalidRequestLine",), 400, "Bad Request", "the request line is malformed"),
    (("InvalidRequestMethod",), 400, "Bad Request", "the request method is not valid"),
    (("InvalidHTTPVersion",), 400, "Bad Request", "the HTTP version is not one this server speaks"),
    (("InvalidHeaderName", "InvalidHeader", "ObsoleteFolding"), 400, "Bad Request",
     "a header line is malformed (its name, its value or its folding)"),
    (("LimitRequestLine",), 414, "URI Too Long", "the request line is longer than this server reads"),
    (("LimitRequestHeaders",), 431, "Request Header Fields Too Large",
     "the headers are more, or larger, than this server reads"),
    (("ExpectationFailed",), 417, "Expectation Failed", "the Expect header asks for what this server does not do"),
    (("UnsupportedTransferCoding",), 501, "Not Implemented", "the transfer coding is not one this server takes"),
    (("InvalidChunkSize", "ChunkMissingTerminator", "InvalidChunkExtension"), 400, "Bad Request",
     "the chunked body is malformed"),
    (("InvalidProxyLine", "InvalidProxyHeader", "InvalidSchemeHeaders"), 400, "Bad Request",
     "the proxy information is malformed"),
    (("ForbiddenProxyRequest",), 403, "Forbidden", "the request is forbidden"),
    (("InvalidH2CPreface",), 400, "Bad Request", "HTTP/2 is not served here"),
    (("ConfigurationProblem",), 500, "Internal Server Error", "the server is misconfigured"),
)
# a header the app tried to send is the app's fault, not the client's (gunicorn's 500, its frames logged): these
# derive from InvalidHeader and InvalidHeaderName, so they are told apart first
_APP_ERRORS = ("InvalidResponseHeader", "InvalidResponseHeaderName")


def _refusal(exc: BaseException) -> tuple[int, str, str] | None:
    """(status, reason, sentence) of a request gunicorn refused, or None for anything else (gunicorn's own way)."""
    import ssl

    from gunicorn.http import errors

    def classes(names) -> tuple[type, ...]:
        return tuple(c for c in (getattr(errors, n, None) for n in names) if isinstance(c, type))

    if isinstance(exc, classes(_APP_ERRORS)):
        return None
    if isinstance(exc, ssl.SSLError):
        return 403, "Forbidden", "the TLS connection failed"
    for names, status, reason, sentence in _REFUSALS:
        if isinstance(exc, classes(names)):
            return status, reason, sentence
    return None


class GatewayWorker(ThreadWorker):
    """gunicorn's threaded (gthread) worker, its own refusals written as problem+json (:func:`write_problem`),
    each request to be received whole within a deadline (:mod:`ipledger.gateway.request_deadline`)."""

    def init_process(self):
        gunicorn_util.write_error = write_problem   # this worker process's gunicorn only
        self.request_deadlines = RequestDeadlines(self.app.gateway_config.request_read_timeout_s)
        self.request_deadlines.start()
        super().init_process()

    def handle_error(self, req, client, addr, exc):
        """A request gunicorn refused before the app saw it: answered and logged with a fixed sentence and the
        refusal's class (:func:`_refusal`), nothing of the request repeated; anything else as gunicorn does (a 500,
        its frames logged, no request text)."""
        refused = _refusal(exc)
        if refused is None:
            return super().handle_error(req, client, addr, exc)
        status, reason, sentence = refused
        self.log.warning("Invalid request from ip=%s: %s (%s)", (addr or ("",))[0], sentence, type(exc).__name__)
        try:
            write_problem(client, status, reason, sentence)
        except Exception:  # noqa: BLE001 - the client may be gone
            self.log.debug("Failed to send error message.")
        return None

    def load_wsgi(self):
        super().load_wsgi()
        self.wsgi = self.request_deadlines.wrap(self.wsgi)

    def handle(self, conn):
        fd = self.request_deadlines.watch(conn)
        try:
            return super().handle(conn)
        finally:
            self.request_deadlines.release(fd, conn)


def _child_exit(server, worker):  # gunicorn hook: forget the metrics of a dead worker
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess
        multiprocess.mark_process_dead(worker.pid)


def _worker_exit(server, worker):  # gunicorn hook: close the worker's Fabric connections
    app = getattr(worker, "wsgi", None)
    if app is not None and hasattr(app, "extensions"):
        from ipledger.gateway.app import close_app
        try:
            close_app(app)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


class GatewayServer(BaseApplication):
    """gunicorn running the gateway app. ``app_factory`` (default :func:`ipledger.gateway.app.create_app`) lets
    tests serve an app with a fake ledger; with client CAs the app gets :func:`ipledger.gateway.tls.install`."""

    def __init__(self, config: GatewayConfig, options: dict, tls: ServerTLS | None = None, app_factory=None,
                 config_loader: Callable[[], GatewayConfig] | None = None):
        self.gateway_config = config
        self.options = options
        self.tls = tls
        self.app_factory = app_factory
        self.config_loader = config_loader   # reads the configuration again on SIGHUP
        super().__init__()

    def reload(self):
        """SIGHUP, in the master: the configuration read again for the workers gunicorn starts next."""
        if self.config_loader is not None:
            log = logging.getLogger("gunicorn.error")
            try:
                config = self.config_loader()
                record_serving(config)
            except Exception as exc:  # noqa: BLE001 - a failed reload must not stop a gateway that serves
                log.error("reload: the configuration cannot be read, the current one is kept: %s: %s",
                          type(exc).__name__, exc)
                record_serving(self.gateway_config, missing_ok=True)
            else:
                before = self.gateway_config.all_channels
                self.gateway_config = config
                log.info("reload: serving the channel(s) %s%s", ", ".join(config.all_channels),
                         "" if config.all_channels == before else f" (were {', '.join(before)})")
        super().reload()

    def load_config(self):
        for key, value in self.options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key.lower(), value)

    def load(self):
        from ipledger.gateway.app import create_app
        app = (self.app_factory or create_app)(self.gateway_config)
        if self.tls is not None and self.tls.client_cas:
            from ipledger.gateway.tls import install
            install(app, self.tls)
        return app


SERVING_FILE = "serving.json"


def record_serving(config: GatewayConfig, missing_ok: bool = False) -> None:
    """``<org>/gateway/serving.json``: the channels the running gateway serves (``chaincode deploy`` reloads a
    gateway that does not serve every channel its organisation is on: network/cli/gateway_daemon.py).
    ``missing_ok``: best effort (after a failed reload, the current channels again)."""
    if config.home is None:
        return
    path = Path(config.home) / "gateway" / SERVING_FILE
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        files.write_atomically(path, (json.dumps({"channels": list(config.all_channels)}) + "\n").encode())
    except OSError:
        if not missing_ok:
            raise


def prepare_metrics_dir(state_dir: Path) -> Path:
    directory = Path(state_dir) / "gateway" / "prometheus"
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, mode=0o700)
    return directory


def serve(state_dir: Path, bind: str = "127.0.0.1:8080", workers: int = 2, threads: int = 128,
          timeout: int = 120, log_level: str = "info", tls: TLSOptions | None = None,
          *, org: str, forwarded_allow_ips: str = "127.0.0.1") -> None:
    """Run gunicorn in the foreground until SIGTERM/SIGINT (HTTPS with ``tls``)."""
    tls = tls or TLSOptions()
    try:
        tls.check_combination()
    except TLSError as exc:
        raise ServeError(str(exc)) from None

    def load_config() -> GatewayConfig:
        loaded = GatewayConfig.from_state_dir(state_dir, org=org, configure_logging=True,
                                              log_level=log_level.upper(), worker_threads=threads)
        config_check(loaded)   # makes the secret files the workers then only read
        return dataclasses.replace(loaded, make_secrets=False)

    try:
        config = load_config()
    except ConfigError as exc:
        raise ServeError(str(exc)) from None
    server_tls = load_tls(tls, config)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(prepare_metrics_dir(config.home or state_dir))
    # prometheus_client picks its value store when imported; it may already be (this module imports it)
    from prometheus_client import values
    values.ValueClass = values.get_value_class()
    options = gunicorn_options(bind, workers, threads, timeout, log_level, server_tls, forwarded_allow_ips)
    record_serving(config)
    GatewayServer(config, options, tls=server_tls, config_loader=load_config).run()


def load_tls(tls: TLSOptions, config: GatewayConfig) -> ServerTLS | None:
    """The checked TLS settings for the network of ``config`` (ServeError when they cannot be used)."""
    try:
        return tls.load(org_tls_cas(config))
    except TLSError as exc:
        raise ServeError(str(exc)) from None


def gunicorn_options(bind: str, workers: int, threads: int, timeout: int, log_level: str,
                     tls: ServerTLS | None = None, forwarded_allow_ips: str = "127.0.0.1") -> dict:
    options = {
        "bind": bind, "workers": workers, "worker_class": "ipledger.gateway.server.GatewayWorker", "threads": threads, "timeout": timeout,
        # Requests still running when a worker stops after this are answered 503 "send again
        # (same event_id)" (gateway/problems.py): replays are safe, so no need to wait longer.
        "graceful_timeout": 30,
        "keepalive": 5, "accesslog": None, "errorlog": "-", "loglevel": log_level,
        "logconfig_dict": gunicorn_logconfig(log_level.upper()), "logger_class": gunicorn_logger_class(),
        "proc_name": "ipledger-gateway",
        "child_exit": _child_exit, "worker_exit": _worker_exit, "preload_app": False,
        # the TLS-terminating proxies whose X-Forwarded-Proto/-For are believed ('gateway serve
        # --forwarded-allow-ips'): a proxy on loopback by default
        "forwarded_allow_ips": forwarded_allow_ips,
        # gunicorn ≥ 27 opens a control socket in $HOME shared by every gunicorn of the user; the
        # gateway does not use it (stop = SIGTERM), and two gateways must not replace each other's
        "control_socket_disable": True,
    }
    if tls is not None:
        options.update(tls.gunicorn_options())
    return options


def plain_http_refused(bind: str, tls_cert: str | None, insecure_http: bool) -> str | None:
    """Why the gateway must not listen on ``bind`` (None when it may): plain HTTP carries API keys and dashboard
    sessions in clear text, so without ``--tls-cert`` it listens on loopback (or a unix socket) only, unless
    ``--insecure-http`` says TLS is terminated in front of it."""
    if tls_cert or insecure_http or bind.startswith("unix:"):
        return None
    host = bind.rsplit(":", 1)[0].strip("[]") if ":" in bind else bind
    if is_loopback(host):
        return None
    return (f"--bind {bind} without --tls-cert would serve API keys and sessions in clear text beyond this host: "
            "give --tls-cert/--tls-key (HTTPS), bind 127.0.0.1, or --insecure-http behind a TLS proxy")


def forwarded_allow_ips_refused(value: str) -> str | None:
    """Why ``value`` (``gateway serve --forwarded-allow-ips``: the proxies whose forwarded headers are believed)
    cannot be used, or None: each item an address or a network; never '*' (any client could claim HTTPS)."""
    items = [v.strip() for v in value.split(",")]
    for item in items:
        if item == "*":
            return "'*' would believe any client's X-Forwarded-For and X-Forwarded-Proto: name the proxies"
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            return f"{item!r} is no address or network"
    return None


class ServeError(RuntimeError):
    """The gateway cannot start (the message says why)."""


def check_thread_budget(config: GatewayConfig) -> None:
    """Live-feed (SSE) responses hold a worker thread each while they last: their cap per worker must leave
    threads for submits and queries (gateway/dashboard/streams.py)."""
    threads, streams = config.worker_threads, config.sse_streams_per_worker
    if threads < 2:
        raise ServeError(f"--threads {threads}: a worker needs at least 2 threads, one live-feed stream holds "
                         f"one for up to {config.sse_max_seconds:g} s")
    if streams >= threads:
        raise ServeError(f"IPLEDGER_SSE_MAX_PER_WORKER={streams} would let live-feed streams hold all {threads} "
                         f"threads of a worker and starve submits: give less than --threads (or more threads)")


def config_check(config: GatewayConfig) -> None:
    """Fail before forking when something is obviously missing."""
    from ipledger.gateway.auth import KeyStore
    from ipledger.gateway.dashboard.live import SESSION_KEY, SessionKeyError, session_key
    from ipledger.gateway.feed.store import FeedStore, FeedStoreError, gateway_dir
    from ipledger.gateway.filestore import CorruptFileError
    from ipledger.gateway.webhooks import Subscriptions, WebhookError
    from ipledger.gateway.validation import NonceKeyError, check_nonce_key
    check_thread_budget(config)
    if not config.orgs:
        raise ServeError("the state directory describes no organisation; run 'ipledger network up' first")
    missing = [o.msp_id for o in config.orgs.values() if not Path(o.msp_dir).is_dir()]
    if missing:
        raise ServeError(f"no client identity (User1) for {', '.join(missing)}: run 'ipledger network generate' "
                         f"first")
    store = KeyStore(config.keys_file)
    store.check()
    try:
        directory = gateway_dir(config)
        nonce = config.nonce_key_file
        # the gateway ran here before (its feed database is there) and its nonce key is gone: a new one is made,
        # said — the resend of an event with commercial data sent before is then a duplicate-event
        lost = (nonce is not None and not nonce.exists() and directory is not None
                and (directory / "dashboard.sqlite").exists())
        check_nonce_key(nonce)
        if lost:
            print(f"warning: the nonce key {nonce} was missing, though this gateway ran before: a new one was made. "
                  "Restore the old one from a backup if there is one (stop the gateway, copy it back, start it): "
                  "until then an event with commercial data sent before and sent again is answered 409 "
                  "duplicate-event (details.original_tx_id names the recorded one)", file=sys.stderr)
        if directory is not None:   # the files every worker opens: unusable ones stop the start, named
            session_key(directory / SESSION_KEY)
            Subscriptions(directory / "webhooks.json").check()
            FeedStore(directory / "dashboard.sqlite")
    except (NonceKeyError, SessionKeyError, WebhookError, CorruptFileError, FeedStoreError, OSError) as exc:
        raise ServeError(str(exc)) from None
    if not [k for k in store.list() if not k["revoked_at"]]:
        org = config.feed_org or "<MSP id>"
        print(f"warning: no API key yet in {config.keys_file}: every request will be refused (401) until one is "
              f"created with 'ipledger gateway keys --gateway {org} create --org {org} --role clerk'", file=sys.stderr)
