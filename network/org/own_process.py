"""An organisation's private keys are used in a process of its own, never beside another's.

On a host that runs one organisation, the CLI is that organisation's process. ``scripts/up`` runs the
whole consortium on one machine in the shape of separate hosts, one CLI acting for each organisation in
turn: there, what needs an organisation's private key from Python — creating its identities (its CA
keys), issuing its chaincode service's TLS pair, reading its nodes' metrics with its admin's TLS key —
runs in a child process started for that one organisation (:func:`call`, :func:`fetch_with_client_cert`),
so that no process ever holds two organisations' keys. The processes Fabric runs (peers, orderers, the
peer CLI, ``osnadmin``) and the gateways and chaincode services are each one organisation's already.
"""
from __future__ import annotations

import multiprocessing
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

# A fresh interpreter (spawn, not fork): the child starts with nothing of the parent's memory.
_CONTEXT = multiprocessing.get_context("spawn")


def call(fn: Callable[..., Any], /, *args, log: Callable[[str], Any] | None = None, timeout: float = 600,
         **kwargs) -> Any:
    """``fn(*args, **kwargs)`` in a child process of its own; its result, or its exception raised here.
    ``fn`` and its arguments are pickled (a module-level function, plain values). Given ``log``, ``fn`` is
    called with ``log=`` collecting its lines, which are passed to ``log`` here once it ends (also when it
    fails). A child still running after ``timeout`` seconds is stopped: TimeoutError."""
    with _CONTEXT.Pool(1) as pool:
        pending = pool.apply_async(_logged, (fn, args, kwargs, log is not None))
        try:
            result, lines, error = pending.get(timeout)
        except multiprocessing.TimeoutError:
            pool.terminate()
            raise TimeoutError(f"{getattr(fn, '__name__', fn)} did not end within {timeout:.0f} s") from None
    for line in lines:
        log(line)
    if error is not None:
        raise error
    return result


def _logged(fn, args, kwargs, with_log: bool):
    """In the child: ``fn``'s result, the lines it logged, and the exception it raised (or None)."""
    lines: list[str] = []
    if with_log:
        kwargs = {**kwargs, "log": lambda *parts, **_: lines.append(" ".join(str(p) for p in parts))}
    try:
        return fn(*args, **kwargs), lines, None
    except Exception as exc:   # handed to the parent with the lines logged before it
        return None, lines, exc


# The standard library only: the probe's interpreter starts in a few tens of milliseconds.
_FETCH = """
import ssl, sys, urllib.request
url, ca, cert, key, timeout = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(cert, key)
with urllib.request.urlopen(url, context=ctx, timeout=float(timeout)) as r:
    sys.stdout.write(r.read().decode())
"""


def fetch_with_client_cert(url: str, ca: Path, cert: Path, key: Path, timeout: float = 2.0) -> str:
    """GET ``url`` over TLS (server checked against ``ca``) presenting the client pair ``cert``/``key``, in
    a child interpreter that reads that key and nothing else; OSError when it fails (the child's last line)."""
    try:
        proc = subprocess.run([sys.executable, "-I", "-c", _FETCH, url, str(ca), str(cert), str(key), str(timeout)],
                              capture_output=True, text=True, timeout=timeout + 10)
    except subprocess.TimeoutExpired:
        raise OSError(f"GET {url}: no answer within {timeout + 10:.0f} s") from None
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise OSError(f"GET {url}: {reason}")
    return proc.stdout
