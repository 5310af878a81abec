"""Sending webhook deliveries: one attempt within its deadline, retries, the access check before sending."""
from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from ipledger.gateway.client_tls import NoRedirect
from ipledger.gateway.feed.visibility import Visibility
from ipledger.gateway.filestore import CorruptFileError, LeadLock
from ipledger.gateway.problems import Problem
from ipledger.gateway.webhooks.deliveries import Deliveries
from ipledger.gateway.webhooks.router import AlertRouter
from ipledger.gateway.webhooks.signing import SIGNATURE_HEADER, SIGNATURE_V2_HEADER, TIMESTAMP_HEADER, sign
from ipledger.gateway.webhooks.subscriptions import Subscriptions, not_a_subscriber

log = logging.getLogger("ipledger.gateway.webhooks")


class _Deadline:
    """The whole time of one attempt. The socket timeout bounds each read only: a subscriber sending its answer
    a byte at a time held the one dispatcher thread — every subscription's deliveries waiting — as long as it
    liked. When the time is up the attempt's connections are shut down (their read fails: a failed attempt): the
    socket each connection reads from now — for ``https://`` the TLS socket, which takes the plain one over —
    and any plain socket made for it. The subscriber's name is looked up within the same time (:meth:`_resolve`):
    a resolver that does not answer does not hold the thread either."""

    def __init__(self, seconds: float):
        self._connections: list[http.client.HTTPConnection] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._over = False
        self._ends = time.monotonic() + seconds
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> "_Deadline":
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()

    def watch(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            self._connections.append(connection)

    def create_connection(self, address, *args, **kwargs) -> socket.socket:
        """``socket.create_connection`` to ``address`` (host, port), its name looked up within the deadline: each
        address it has is tried in turn, as ``socket.create_connection`` does."""
        host, port = address[0], address[1]
        error: OSError | None = None
        for ip in self._resolve(host, port):
            try:
                sock = socket.create_connection((ip, port), *args, **kwargs)
                break
            except OSError as exc:
                error = exc
        else:
            raise error or OSError(f"{host}: no address to connect to")
        with self._lock:
            self._sockets.append(sock)
            over = self._over
        if over:
            self._shut(sock)
        return sock

    def _resolve(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` (``getaddrinfo``, in its order), looked up in a thread of its own and waited for
        until the deadline only: ``getaddrinfo`` cannot be interrupted, so a resolver that never answers is left to
        its thread (a daemon, ended when the lookup ends) and the attempt fails (TimeoutError)."""
        found: dict[str, object] = {}

        def lookup() -> None:
            try:
                found["addresses"] = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
            except OSError as exc:
                found["error"] = exc

        resolver = threading.Thread(target=lookup, name="webhook-name-lookup", daemon=True)
        resolver.start()
        resolver.join(max(self._ends - time.monotonic(), 0))
        if resolver.is_alive():
            raise TimeoutError(f"the name {host} was not resolved within the attempt's time")
        if "error" in found:
            raise found["error"]
        addresses = list(dict.fromkeys(sockaddr[0] for *_rest, sockaddr in found["addresses"]))
        allowed = [ip for ip in addresses if not_a_subscriber(ip) is None]
        if not allowed:   # a name made to resolve to the metadata service, say: never posted to
            raise OSError(f"the name {host} resolves to {not_a_subscriber(addresses[0])} only: not a receiver's")
        return allowed

    @property
    def over(self) -> bool:
        with self._lock:
            return self._over

    def _expire(self) -> None:
        with self._lock:
            self._over = True
            sockets = [c.sock for c in self._connections if c.sock is not None] + list(self._sockets)
        for sock in sockets:
            self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:   # closed already, or a plain socket a TLS one has taken over (shut through that one)
            pass

    def handlers(self) -> list[urllib.request.BaseHandler]:
        """urllib's HTTP and HTTPS handlers, their connections watched (proxies of the environment still apply)."""
        deadline = self

        def watched(base):
            class Connection(base):
                def __init__(self, *args, **kwargs):
                    super().__init__(*args, **kwargs)
                    self._create_connection = deadline.create_connection
                    deadline.watch(self)
            return Connection

        class HTTP(urllib.request.HTTPHandler):
            def http_open(self, req):
                return self.do_open(watched(http.client.HTTPConnection), req)

        class HTTPS(urllib.request.HTTPSHandler):
            def https_open(self, req):
                return self.do_open(watched(http.client.HTTPSConnection), req, context=self._context,
                                    check_hostname=self._check_hostname)
        return [HTTP(), HTTPS()]


def http_post(url: str, body: bytes, headers: dict, timeout: float) -> int:
    """POST; the HTTP status (raises OSError when there is no answer within ``timeout`` seconds in all)."""
    with _Deadline(timeout) as deadline:
        opener = urllib.request.build_opener(NoRedirect, *deadline.handlers())   # a redirect: a failed delivery
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with opener.open(request, timeout=timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except http.client.HTTPException as exc:   # an answer cut by the deadline, or not HTTP at all
            raise OSError(f"no HTTP answer: {type(exc).__name__}") from None
        if deadline.over:   # the headers cut short read as complete: no whole answer in time
            raise TimeoutError(f"no whole answer within {timeout:g} s")
        return status


def _channel_of(delivery: dict) -> str | None:
    """The channel a queued delivery's alert came from (named in its body on a gateway of several channels)."""
    try:
        channel = json.loads(delivery.get("body") or "{}").get("channel")
    except (ValueError, AttributeError):
        return None
    return channel if isinstance(channel, str) else None


class Dispatcher:
    """Sends due deliveries (one thread, started where a feed listener leads; it sends while it holds the
    dispatcher's own lock, ``webhooks.lock``: one sender per gateway directory).

    A delivery queued by the feed listener is first checked: may the subscription's org read the alert's
    authorisation (:class:`Visibility`, i.e. the contract)? Yes: it is sent; no: it is dropped, unsent and
    unlogged; the ledger cannot be asked: asked again after a back-off (at most ``max_check_backoff_s``),
    the subscription's later deliveries waiting behind it (they go in order). Every other attempt of a delivery
    of an authorisation — a time alert's first (its poll asked, but it may have waited in the queue since), any
    retry — is checked the same way: no longer allowed, it ends FAILED, unsent. On a gateway of several
    holders' channels a recorded alert is checked on its own channel (named in its body)."""

    def __init__(self, subscriptions: Subscriptions, deliveries: Deliveries, *, backoff_s: float = 2.0,
                 max_backoff_s: float = 3600.0, max_attempts: int = 10, timeout_s: float = 10.0,
                 router: AlertRouter | None = None, poll_alerts_s: float | None = None,
                 post: Callable[[str, bytes, dict, float], int] = http_post, clock=time.time,
                 visibility: Visibility | None = None, max_check_backoff_s: float = 60.0,
                 lock_path: Path | str | None = None):
        self.subscriptions = subscriptions
        # one sender per gateway directory, whichever feed listener leads and however its channels change
        self._lead = LeadLock(lock_path) if lock_path else None
        self.deliveries = deliveries
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.max_attempts, self.timeout_s = max_attempts, timeout_s
        self.router, self.poll_alerts_s = router, poll_alerts_s
        self.visibility = visibility if visibility is not None else getattr(router, "visibility", None)
        self.max_check_backoff_s = max_check_backoff_s
        self.post, self.clock = post, clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_poll = 0.0
        self._poll_failures = 0

    def delay(self, attempts: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * (2 ** max(0, attempts - 1)))

    def run_once(self) -> int:
        """Attempt every due delivery once; how many were attempted. A delivery dropped by its check lets
        the subscription's next one through at once."""
        attempted = 0
        for _ in range(100):
            subs = {s["id"]: s for s in self.subscriptions.active()}
            dropped = 0
            for d in self.deliveries.due(self.clock()):
                if self._stop.is_set():   # stopping: what is left is sent by the next holder of the lock
                    return attempted
                sub = subs.get(d["subscription_id"])
                if sub is None:  # removed: nothing more is sent to it
                    self.deliveries.record(d["delivery_id"], delivered=False, status=None,
                                           error="subscription removed", next_attempt_at=None, failed=True)
                    continue
                # asked before every attempt, the first one too (a time alert waits in the queue after the
                # poll that found it): a mandate may have ended
                if d.get("needs_check") or d.get("authorisation_id"):
                    verdict = self._check(d, sub)
                    if verdict is not True:
                        dropped += verdict is False
                        continue
                self._send(d, sub)
                attempted += 1
            if not dropped:
                break
        return attempted

    def _check(self, d: dict, sub: dict) -> bool | None:
        """May ``sub``'s org read the delivery's authorisation? True: send it; False: dropped; None: unknown
        for now (asked again later)."""
        if self.visibility is None:
            self.deliveries.checked(d["delivery_id"])
            return True
        channel = _channel_of(d)
        try:
            # on the alert's own channel (a gateway of several holders'), else where the authorisation is
            allowed = self.visibility.can_read(sub["org"], d["authorisation_id"],
                                               **({"channel": channel} if channel else {}))
        except Problem as problem:
            if 400 <= problem.status < 500:
                # an answer, not an outage: asking again gives the same, and the subscription's later deliveries
                # would wait behind it for good (an id on two holders' channels is no such answer: readable on each)
                self.deliveries.end(d["delivery_id"], f"the subscription's access cannot be checked: {problem.name}")
                log.warning("webhook delivery %s: its access check answers %s %s; the delivery ends FAILED",
                            d["delivery_id"], problem.status, problem.name,
                            extra={"outcome": "check refused", "problem_type": problem.name})
                return False
            return self._check_later(d, problem)
        except Exception as exc:  # noqa: BLE001 - the ledger cannot say now: ask again later, drop nothing
            return self._check_later(d, exc)
        if not allowed:
            if d.get("needs_check"):   # never sent: as if it had never been queued
                self.deliveries.drop(d["delivery_id"])
            else:                      # sent and failed before: it ends here, in the log
                self.deliveries.end(d["delivery_id"], "the subscription's organisation may no longer read the "
                                                      "authorisation")
            return False
        self.deliveries.checked(d["delivery_id"])
        return True

    def _check_later(self, d: dict, exc: Exception) -> None:
        """The ledger cannot say now whether the subscription may read the delivery's authorisation: ask again
        after a back-off, drop nothing."""
        checks = (d.get("checks") or 0) + 1
        wait = min(self.max_check_backoff_s, self.delay(checks))
        self.deliveries.check_failed(d["delivery_id"], f"visibility check: {type(exc).__name__}", self.clock() + wait)
        log.warning("webhook delivery %s: cannot check the subscription's access (%s); again in %.0f s",
                    d["delivery_id"], type(exc).__name__, wait,
                    extra={"outcome": "check failed", "error_type": type(exc).__name__})
        return None

    def _send(self, d: dict, sub: dict) -> None:
        body = d["body"].encode("utf-8")
        attempt = d["attempts"] + 1
        sent_at = int(self.clock())   # each attempt signed with its own time
        headers = {"Content-Type": "application/json", "User-Agent": "ipledger-gateway",
                   TIMESTAMP_HEADER: str(sent_at), SIGNATURE_V2_HEADER: sign(sub["secret"], body, sent_at),
                   SIGNATURE_HEADER: sign(sub["secret"], body),
                   "X-Ipledger-Alert-Id": d["alert_id"],
                   "X-Ipledger-Delivery": str(d["delivery_id"]), "X-Ipledger-Attempt": str(attempt)}
        status, error = None, None
        try:
            status = self.post(sub["url"], body, headers, self.timeout_s)
        except Exception as exc:  # noqa: BLE001 - any failure to deliver is retried
            error = type(exc).__name__
        delivered = status is not None and 200 <= status < 300
        if not delivered and error is None:
            error = f"HTTP {status}"
        failed = not delivered and attempt >= self.max_attempts
        self.deliveries.record(d["delivery_id"], delivered=delivered, status=status, error=error,
                               next_attempt_at=None if delivered or failed else self.clock() + self.delay(attempt),
                               failed=failed)
        log.info("webhook delivery %s attempt %d: %s", d["delivery_id"], attempt,
                 "delivered" if delivered else ("failed" if failed else "will retry"),
                 extra={"outcome": "delivered" if delivered else error, "status": status})

    def start(self) -> "Dispatcher":
        self._thread = threading.Thread(target=self._run, name="ipledger-webhooks", daemon=True)
        self._thread.start()
        return self

    def tick(self) -> None:
        """One round of the dispatcher's thread: poll the time alerts when it is time, send what is due. A poll
        that fails (the ledger unreachable) is tried again after a back-off, not a whole ``poll_alerts_s`` later
        (an hour by default: an overdue deadline would be told that much later)."""
        if self.router is not None and self.poll_alerts_s and self.clock() >= self._next_poll:
            self._next_poll = self.clock() + self.poll_alerts_s
            try:
                self.router.poll_time_alerts()
                self._poll_failures = 0
            except Exception as exc:  # noqa: BLE001 - the deliveries still go; the poll is tried again soon
                self._poll_failures += 1
                wait = min(self.poll_alerts_s, self.delay(self._poll_failures))   # doubling, at most an interval
                self._next_poll = self.clock() + wait
                log.warning("webhook dispatcher: polling the time alerts failed (%s); again in %.0f s",
                            type(exc).__name__, wait, extra={"error_type": type(exc).__name__})
        self.run_once()

    def _run(self) -> None:
        """Send while holding the dispatcher's lock (with ``lock_path``): another process of the gateway — a
        worker still ending, or one of before a reload that changed the channels — may still be sending, and
        two senders would post one delivery twice and poll the time alerts twice. The lock goes when this
        thread ends (or its process): never while a delivery is in flight."""
        while self._lead is not None and not self._lead.try_acquire():
            if self._stop.wait(2.0):
                return
        try:
            while not self._stop.is_set():
                try:
                    self.tick()
                except Exception as exc:  # noqa: BLE001 - keep going
                    # a file's problem names the file and never its content: said whole; anything else by its type
                    log.warning("webhook dispatcher: %s", str(exc) if isinstance(exc, CorruptFileError) else
                                type(exc).__name__, extra={"error_type": type(exc).__name__})
                self._stop.wait(0.5)
        finally:
            if self._lead is not None:
                self._lead.release()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
