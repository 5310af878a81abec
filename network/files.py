"""Writing files: whole or not at all, never through a link, never wider than their mode, durable once written.

Every file the network side writes (identities and keys, public definitions, chaincode packages, channel
updates) and every document the gateway changes (:mod:`ipledger.gateway.filestore`: API keys, webhook
subscriptions) goes through :func:`write_atomically`.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path


def fsync_directory(path: Path) -> None:
    """Make a rename or link in the directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> Path:
    """``data`` into ``path`` through a temporary file ``.<name>.tmp`` beside it, created with ``mode`` (one an
    interrupted run or anyone left there is removed first, never written through), fsynced and renamed over
    ``path`` — which replaces a link found at ``path`` instead of writing where it points —, then the directory
    fsynced (the new file survives a power loss). A command cut short leaves the old file or the new one, never
    half of it. Two writers of one path must not run at once (their temporary files are one): the gateway's
    documents are changed under a lock (:class:`ipledger.gateway.filestore.JsonFile`)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)   # whatever the umask
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_directory(path.parent)
    return path
