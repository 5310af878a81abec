"""A small JSON document in a file of its own, shared by processes: read freely, changed under a lock.

Used by the API key file (:mod:`ipledger.gateway.auth`) and the webhook subscription file (:mod:`ipledger.gateway.webhooks`),
which several gunicorn workers, the ``ipledger gateway …`` CLI and — with containers — a container sharing the
directory through a bind mount use at the same time.

* **Reading** (:meth:`JsonFile.read`) takes no lock: every writer replaces the file atomically, so a reader
  sees the old document or the new one whole, never a torn one. A missing file reads as ``empty()`` — unless
  the file is ``kept`` and was written before (its lock file says so): then it was lost, and reading it
  raises :class:`MissingFileError` rather than take an empty document for it (the webhook subscriptions:
  their pending deliveries would be failed and new alerts queued for no one).
* **Changing** (:meth:`JsonFile.update`) is a read-modify-write under an exclusive ``flock`` on
  ``<name>.lock`` next to the file (created 0600, never removed; after the first write it holds a line saying
  so): writers in other threads, processes or
  containers (same kernel) run one after the other, and none loses another's change. ``flock`` rather than
  ``fcntl`` record locks: those belong to the process, and two threads of one process would both get in.
  When the ``with`` body raises, nothing is written.
* **Writing**: JSON with an indent of 2, sorted keys and a final newline, written 0600 by
  :func:`ipledger.network.files.write_atomically` — a temporary file ``.<name>.tmp`` beside it (a leftover of
  a crash is removed first, never written through), fsynced, renamed over the file and the directory fsynced:
  a change confirmed to its caller — a key revoked — survives a power loss, and when anything fails before
  the rename the file keeps its old content. The lock keeps writers of one file apart. The directory is
  created if need be, and made 0700 when this user owns it (the files hold hashes and signing secrets).
* A file whose bytes are not UTF-8 JSON raises :class:`CorruptFileError` (a ``ValueError``) naming the
  file; ``check(data)`` vets the document's shape and raises its owner's own error. I/O errors
  (``PermissionError`` …) are raised as they are.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
from pathlib import Path
from typing import Any, Callable, Iterator

from ipledger.network import files
from ipledger.network.fabric import owner_only

MODE = 0o600
DIR_MODE = 0o700


class CorruptFileError(ValueError):
    """The file is there but is not UTF-8 JSON (truncated, overwritten, not ours). Its message names the file and
    the reason, never the content: it may be logged."""

    def __init__(self, path: Path, reason: str, advice: str = "restore it from a backup or move it away"):
        super().__init__(f"{path} is corrupt ({reason}); {advice}")
        self.path = path


class MissingFileError(CorruptFileError):
    """A ``kept`` file that was written before (its lock file says so) is missing."""

    def __init__(self, path: Path, lock_path: Path):
        ValueError.__init__(self, f"{path} was written before and is missing: restore it from a backup (to start "
                                  f"again without it, remove {lock_path.name} beside it too)")
        self.path = path


def _read_regular(path: Path) -> bytes:
    """The bytes of ``path``, a regular file, never through a link (a document is written in its place, never
    through one: a link planted there — the gateway's directory is a container's mount — names another file, which
    would be read and written back here) nor from a FIFO: CorruptFileError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CorruptFileError(path, "a symbolic link, not the file itself") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CorruptFileError(path, "not a regular file")
        with os.fdopen(fd, "rb") as f:
            fd = -1
            return f.read()
    finally:
        if fd >= 0:
            os.close(fd)


class JsonFile:
    """One JSON document on disk (see the module's docstring for the guarantees).

    ``empty()`` is the document of a file that does not exist yet; ``check(data)`` raises when a parsed
    document is not of the expected shape; ``kept``: once written, the file must stay (see above)."""

    def __init__(self, path: Path | str, *, empty: Callable[[], Any], check: Callable[[Any], None] | None = None,
                 kept: bool = False):
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._empty = empty
        self._check = check
        self._kept = kept

    def read(self) -> Any:
        """The document (no lock: see above); ``empty()`` when there is no file."""
        try:
            raw = _read_regular(self.path)
        except FileNotFoundError:
            if self._kept and self._written_before():
                raise MissingFileError(self.path, self.lock_path) from None
            return self._empty()
        try:
            data = json.loads(raw.decode("utf-8"))
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            raise CorruptFileError(self.path, f"not UTF-8 JSON: {exc}") from exc
        if self._check is not None:
            self._check(data)
        return data

    def _written_before(self) -> bool:
        try:
            return self.lock_path.stat().st_size > 0
        except FileNotFoundError:
            return False

    @contextlib.contextmanager
    def update(self) -> Iterator[Any]:
        """``with f.update() as data: <change data>`` — read, change and write back under the exclusive
        lock; nothing is written when the body raises."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(self.path.parent, DIR_MODE)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, MODE)   # never created through a link
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = self.read()
            yield data
            self._replace(data)
            if os.fstat(fd).st_size == 0:   # the first write: from now on a missing file is a lost one
                os.write(fd, b"written\n")
                os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _replace(self, data: Any) -> None:
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
        files.write_atomically(self.path, text.encode("utf-8"), MODE)


class LeadLock:
    """Which one of the processes sharing a gateway directory does a job (listen to the feed, send the
    webhooks): the holder of an exclusive ``flock`` on ``path`` (created 0600, never removed), taken without
    waiting. Released by :meth:`release`, or by the system when the holding process ends, ``kill -9``
    included. A ``flock`` belongs to its open file, so two holders in one process exclude each other too."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
            self._fd = None


def require_owner_only(path: Path, what: str, error: Callable[[str], Exception]) -> None:
    """Refuse a file holding secrets wider than 0600 (:func:`ipledger.network.fabric.owner_only.require_owner_only`,
    the one rule): the gateway's API keys, webhook secrets, the nonce key, the session key, TLS private keys."""
    owner_only.require_owner_only(path, what, error)


def require_regular_file(path: Path, what: str, error: Callable[[str], Exception]) -> None:
    """Refuse a secret's path that is not a regular file of its own — a symbolic link (to a file someone else may
    control or share), a directory, a device — or is missing: ``error`` names the file (``what``, as for
    :func:`require_owner_only`), never its content."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise error(f"{what} {path} is missing") from None
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{what} {path} is not a regular file (a link is refused)")


def read_or_create(path: Path, make: Callable[[], bytes]) -> bytes:
    """The bytes of a secret file written once and then only read (a signing key shared by the workers): when
    ``path`` does not exist, ``make()`` is written to a temporary file created 0600 with ``O_EXCL`` (never one
    left by another, whatever its mode), fsynced, and linked to ``path`` — the first process to link wins and
    every process returns what it holds. The directory is created 0700 if need be."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, MODE)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(make())
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)   # fails if another process linked its own first: theirs wins
        finally:
            os.unlink(tmp)
        files.fsync_directory(path.parent)
    return path.read_bytes()
