"""An organisation's gateway as a background service: start, stop, reload, status.

``ipledger gateway start --org M`` runs ``ipledger gateway serve --org M`` detached,
with its log and PID in M's own directory (``<state>/<org name>/gateway/``),
waits until ``/healthz`` answers, and is harmless when the gateway already runs.
It also makes sure the organisation has a ready-to-use API key, written with the
URL to ``<state>/<org name>/gateway/credentials.json`` (0600) for scripts and
newcomers: ``{"url": …, "keys": {"<M>": {"key_id", "key", "role"}}}`` — its own
organisation's key only. Every gateway is one organisation's: there is no gateway of
several organisations.
With ``--tls-cert`` it serves HTTPS (options checked here, before the fork: see :mod:`ipledger.gateway.tls`).
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import stat
import ssl
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

from ipledger.gateway.config import gateway_environment
from ipledger.network import files
from ipledger.network.org import processes
from ipledger.gateway.tls import TLSError, TLSOptions, org_tls_cas

DEFAULT_BIND = "127.0.0.1:8080"


class DaemonError(RuntimeError):
    """A gateway could not be started or stopped as a background service; the message says why."""


def _dir(state_dir: Path, org: str) -> Path:
    from ipledger.gateway.config import gateway_dir_of
    d = gateway_dir_of(state_dir, org)
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o700)
    return d


def pid_file(state_dir: Path, org: str) -> Path:
    return _dir(state_dir, org) / "gateway.pid"


def log_file(state_dir: Path, org: str) -> Path:
    return _dir(state_dir, org) / "gateway.log"


def credentials_file(state_dir: Path, org: str) -> Path:
    return _dir(state_dir, org) / "credentials.json"


def container_file(state_dir: Path, org: str) -> Path:
    return _dir(state_dir, org) / "gateway.container"


def _write_record(path: Path, line: str) -> None:
    """The gateway's process record (pid or container file) in its gateway directory — which the gateway (a
    container of the organisation's, with that directory read-write) can write too: never through a link it put
    there (this command may run as another user, root), which is replaced."""
    files.write_atomically(path, (line + "\n").encode(), mode=0o600)


def _read_record(path: Path) -> str:
    """A process record: a small regular file, never read through a link nor from a FIFO (which would block) —
    OSError for those, ValueError for bytes that are not text: as if there were none."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        return os.read(fd, 4096).decode("ascii")
    finally:
        os.close(fd)


def _containers(state_dir: Path):
    """(network, its Docker runtime) when this state directory runs as containers
    (``--runtime docker``: the gateway is a container too), else None."""
    from ipledger.network.org.nodes import Nodes
    net = Nodes.open(Path(state_dir).resolve())
    return (net, net.runtime) if net.runtime.name == "docker" else None


def running(state_dir: Path, org: str) -> tuple[int | str, str] | None:
    """(pid or container id, url) of this state directory's (organisation's) gateway if it runs."""
    docker = _containers(state_dir)
    if docker:
        net, rt = docker
        cid = rt.gateway_running(net.consortium.org(org))
        try:
            url = _read_record(container_file(state_dir, org)).split()[1]
        except (OSError, ValueError, IndexError):
            return None
        return (cid, url) if cid else None
    record = _pid_record(state_dir, org)
    if record is None:
        return None
    pid, url, started = record
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if processes.is_zombie(pid):   # it ended (killed, crashed) and its parent has not collected it yet
        return None
    if started:   # the process started then is the gateway, whatever its command line reads now (gunicorn
        # renames its master when setproctitle is installed); a pid reused since started at another time
        return (pid, url) if processes.start_time(pid) == started else None
    if b"gateway" not in cmdline or str(Path(state_dir).resolve()).encode() not in cmdline:
        return None
    if org.encode() not in cmdline:
        return None
    return pid, url


def healthy(url: str, server_cert: Path | str | None = None, verify: bool = True, org: str | None = None) -> bool:
    """Whether ``GET {url}/healthz`` answers 200. For https, ``server_cert`` (the gateway's own
    ``--tls-cert`` file) is the trust anchor and the host name is not checked: this is the gateway we
    started, at the address we bound. A gateway that requires client certificates refuses the probe
    (which has none) with TLS 1.3's ``certificate_required`` alert, after proving it holds that
    certificate: that counts as healthy too. ``verify=False`` (a reload's probe, without the certificate
    file at hand) only asks whether the gateway answers: the probe sends nothing but ``GET /healthz``. With
    ``org``, the gateway answering must act for that organisation (``/healthz`` names it): another organisation's
    gateway already bound at the address answers too."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=str(server_cert) if server_cert else None)
        context.check_hostname = False
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # the server's own certificate is enough
        if not verify:
            context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=2, context=context)
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=2)
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        if response.status != 200:
            return False
        return org is None or org in _orgs_of(response.read(4096))
    except ssl.SSLError as exc:
        return exc.reason == "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _orgs_of(body: bytes) -> list:
    """The organisations a ``/healthz`` answer names (none when it names none: not an ipledger gateway of now)."""
    try:
        orgs = json.loads(body).get("orgs")
    except (ValueError, AttributeError):
        return []
    return orgs if isinstance(orgs, list) else []


def _not_started(who: str, url: str, tail: str) -> DaemonError:
    """Why a gateway started did not come up: the log's last lines, and first a bind failure said plainly."""
    cause = ""
    if "Address already in use" in tail:
        cause = f"the address {urllib.parse.urlsplit(url).netloc} is in use by another process (another gateway?)\n"
    return DaemonError(f"{who} did not become healthy at {url}: {cause}{tail}")


def start(state_dir: Path, bind: str = DEFAULT_BIND, workers: int = 2,
          timeout: float = 60, log=print, tls: TLSOptions | None = None, *, org: str,
          insecure_http: bool = False) -> str:
    state_dir = Path(state_dir).resolve()
    current = running(state_dir, org)
    who = f"{org}'s gateway"
    if current:
        what = "pid" if isinstance(current[0], int) else "container"
        log(f"  {who} already running ({what} {current[0]}) at {current[1]}")
        return current[1]
    tls = tls or TLSOptions()
    if tls != TLSOptions():
        check_tls(state_dir, tls, org)
    url = f"{'https' if tls.https else 'http'}://{bind}"
    extra = ["--insecure-http"] if insecure_http else []   # plain HTTP beyond loopback: said on purpose
    docker = _containers(state_dir)
    if docker:
        return _start_container(state_dir, docker, org, bind, workers, url, tls, timeout, log, extra)
    cmd = [sys.executable, "-m", "ipledger.network.cli", "--state-dir", str(state_dir), "gateway", "serve",
           "--org", org, "--bind", bind, "--workers", str(workers), *tls.argv(), *extra]
    with open(log_file(state_dir, org), "ab") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env=serve_environment(os.environ))
    started = processes.start_time(proc.pid)
    _write_record(pid_file(state_dir, org), f"{proc.pid} {url}" + (f" {started}" if started else ""))
    deadline = time.monotonic() + timeout
    while not (healthy(url, tls.cert_file, org=org) and proc.poll() is None):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(state_dir, log=lambda *_: None, org=org)
            tail = "\n".join(files.last_lines(log_file(state_dir, org), 15))
            raise _not_started(who, url, tail)
        time.sleep(0.25)
    log(f"  {who} started (pid {proc.pid}) at {url}")
    return url


def serve_environment(environ) -> dict[str, str]:
    """The environment ``gateway serve`` is started with: this command's, without the variables whose names say
    they hold a secret (an API key, a webhook secret, a client key's path exported for ``ipledger import`` or
    ``report`` — on one machine possibly another organisation's), except the gateway's own settings
    (``gateway.config.ENVIRONMENT``: ``IPLEDGER_SSE_MAX_PER_KEY`` is one)."""
    from ipledger.gateway.config import ENVIRONMENT
    from ipledger.network.org.processes import fabric_environment
    kept = fabric_environment({k: v for k, v in environ.items() if not k.startswith(("CORE_", "ORDERER_"))})
    return {**kept, **{k: v for k, v in environ.items() if k in ENVIRONMENT}}


def _start_container(state_dir: Path, docker, org: str, bind: str, workers: int, url: str, tls: TLSOptions,
                     timeout: float, log, extra: tuple[str, ...] | list[str] = ()) -> str:
    """The gateway as a container of ``org``'s (network/org/containers/services.py): its client identity, the
    public consortium files and its own gateway directory mounted, nothing else of the host."""
    net, rt = docker
    own = net.consortium.org(org)
    running_url = _container_url(rt, own)
    if running_url is not None:   # started by hand or by compose: it is that one
        _write_record(container_file(state_dir, org), f"{rt.gateway_running(own)} {running_url}")
        log(f"  {org}'s gateway already running (container {rt.gateway_running(own)}) at {running_url}")
        return running_url
    try:
        cid = rt.start_gateway(own, bind, workers, gateway_environment(dict(os.environ)), [*tls.argv(), *extra],
                               tls.files())
    except RuntimeError as exc:
        raise DaemonError(f"{org}'s gateway container did not start: {exc}") from None
    _write_record(container_file(state_dir, org), f"{cid} {url}")
    deadline = time.monotonic() + timeout
    while not healthy(url, tls.cert_file, org=org):
        if rt.gateway_running(own) is None or time.monotonic() > deadline:
            tail = "\n".join(rt.gateway_logs(own, 15))
            stop(state_dir, log=lambda *_: None, org=org)
            raise DaemonError(f"{org}'s gateway container did not become healthy at {url}:\n{tail}")
        time.sleep(0.25)
    log(f"  {org}'s gateway started (container {cid}) at {url}")
    return url


def _container_url(rt, own) -> str | None:
    """The URL ``own``'s running gateway container serves at (its command's ``--bind`` and ``--tls-cert``)."""
    bind = rt.gateway_bind(own)
    if bind is None:
        return None
    return f"{'https' if '--tls-cert' in (rt.gateway_command(own) or []) else 'http'}://{bind}"


def check_tls(state_dir: Path, tls: TLSOptions, org: str) -> None:
    """The TLS options' errors before anything is started (DaemonError)."""
    from ipledger.gateway.config import GatewayConfig
    try:
        tls.check_combination()
        tls.load(org_tls_cas(GatewayConfig.from_state_dir(state_dir, org=org)))
    except TLSError as exc:
        raise DaemonError(str(exc)) from None


def stop(state_dir: Path, timeout: float = 15, log=print, *, org: str) -> bool:
    docker = _containers(state_dir)
    if docker:
        net, rt = docker
        container_file(state_dir, org).unlink(missing_ok=True)
        if rt.stop_gateway(net.consortium.org(org)):
            log(f"  {org}'s gateway stopped (container)")
            return True
        return False
    current = running(state_dir, org)
    ended = None if current else _ended_gateway(state_dir, org)
    pid_file(state_dir, org).unlink(missing_ok=True)
    if ended is not None:   # killed, not collected yet: any worker it left goes, and it is collected if ours
        try:
            os.killpg(ended, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _reap(ended)
    if not current:
        return False
    pid = current[0]
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    reaped = False
    while time.monotonic() < deadline:
        reaped = reaped or _reap(pid)
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    log(f"  {org}'s gateway stopped (pid {pid})")
    return True


def _ended_gateway(state_dir: Path, org: str) -> int | None:
    """The pid of this organisation's gateway when it has ended but is not collected yet (a zombie that started when
    its pid file says), else None."""
    record = _pid_record(state_dir, org)
    if record is None or record[2] is None:
        return None
    pid, _url, started = record
    return pid if processes.is_zombie(pid) and processes.start_time(pid) == started else None


def _pid_record(state_dir: Path, org: str) -> tuple[int, str, str | None] | None:
    """(pid, url, when it started — None in a file written before that was recorded) of the organisation's pid
    file; None without one."""
    try:
        pid_s, url, *started = _read_record(pid_file(state_dir, org)).split()
        return int(pid_s), url, started[0] if started else None
    except (OSError, ValueError):
        return None


def _reap(pid: int) -> bool:
    """Collect the gateway's exit when this process started it (``start`` in a process still running: a test,
    an admin script): as a zombie its master would keep its process group in being, and ``stop`` would wait its
    whole timeout. True once there is nothing (more) to collect here — collected now, or not this process's child
    (its parent collects it): then not asked again, lest a later child given the same pid be collected instead. A
    ``Popen`` the caller still holds for it then reads exit status 0."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return True


def stop_native(state_dir: Path, log=print, *, org: str) -> bool:
    """Stop ``org``'s gateway when it runs as a process of this host (a pid file in its folder) — before
    its organisation's files go (``network down --purge``, ``network remove-org``), which would leave it
    running with its identity and its port, and with nothing left to find it by. Creates nothing."""
    from ipledger.gateway.config import gateway_dir_of
    if not (gateway_dir_of(state_dir, org) / "gateway.pid").is_file():
        return False
    return stop(state_dir, log=log, org=org)


def reload(state_dir: Path, timeout: float = 60, log=print, *, org: str) -> bool:
    """SIGHUP to ``org``'s running gateway (gateway/server.py): it reads its configuration again — the
    channels the organisation is on now — and replaces its workers gracefully. Waits until every worker
    it had is replaced and it answers again (DaemonError if it stops or does not within ``timeout``); False
    when it does not run."""
    docker = _containers(state_dir)
    if docker:
        net, rt = docker
        own = net.consortium.org(org)
        url = _container_url(rt, own)
        if url is None:
            return False
        what = f"container {rt.gateway_running(own)}"
        workers = lambda: rt.gateway_workers(own)  # noqa: E731
        alive = lambda: rt.gateway_running(own) is not None  # noqa: E731
        tail = lambda: rt.gateway_logs(own, 15)  # noqa: E731
        old = set(workers())
        if not rt.reload_gateway(own):
            return False
    else:
        current = running(state_dir, org)
        if not current:
            return False
        pid, url = current
        what = f"pid {pid}"
        workers = lambda: worker_pids(pid)  # noqa: E731
        alive = lambda: running(state_dir, org) is not None  # noqa: E731
        tail = lambda: files.last_lines(log_file(state_dir, org), 15)  # noqa: E731
        old = set(workers())
        try:
            os.kill(pid, signal.SIGHUP)
        except ProcessLookupError:
            return False
    deadline = time.monotonic() + timeout
    while True:
        time.sleep(0.25)
        now = set(workers())
        if now and not old & now and healthy(url, verify=False, org=org):
            break
        if not alive():
            raise DaemonError(f"{org}'s gateway ({what}) stopped during the reload:\n" + "\n".join(tail()))
        if time.monotonic() > deadline:
            raise DaemonError(f"{org}'s gateway ({what}) did not replace its workers within {timeout:.0f} s after "
                              "the reload:\n" + "\n".join(tail()))
    log(f"  {org}'s gateway reloaded ({what})")
    return True


def serving(state_dir: Path, org: str) -> list[str]:
    """The channels ``org``'s gateway served when it last started or reloaded (gateway/server.py)."""
    from ipledger.gateway.server import SERVING_FILE
    try:
        return list(json.loads((_dir(state_dir, org) / SERVING_FILE).read_text())["channels"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


def worker_pids(pid: int) -> list[int]:
    """The workers of gunicorn master ``pid``: its child processes."""
    from ipledger.network.org.processes import children
    return children(pid)


def ensure_credentials(state_dir: Path, url: str, org: str) -> dict:
    """A clerk key of ``org`` for its own gateway, created once and kept in its credentials.json (0600)."""
    from ipledger.gateway.auth import KeyStore
    from ipledger.gateway.config import keys_file_of
    from ipledger.gateway.filestore import JsonFile

    store = KeyStore(keys_file_of(state_dir, org))
    with JsonFile(credentials_file(state_dir, org), empty=lambda: {"keys": {}}).update() as creds:
        creds["keys"] = {k: v for k, v in creds.get("keys", {}).items() if k == org}
        known = {k["key_id"] for k in store.list() if not k.get("revoked_at")}
        entry = creds["keys"].get(org)
        if not (entry and entry.get("key_id") in known):
            key_id, key = store.create(org, "clerk", label="scripts/up")
            creds["keys"][org] = {"key_id": key_id, "key": key, "role": "clerk"}
        creds["url"] = url
    return creds
