"""Writing files: whole or not at all, never through a link, never wider than their mode, durable once written.

What the network side keeps and hands to others — identities and keys, public definitions (the consortium,
each node's core.yaml / orderer.yaml, a chaincode's committed definition and collection), chaincode packages and
their public descriptions, channel updates — and what the gateway keeps — its documents
(:mod:`ipledger.gateway.filestore`: API keys, webhook subscriptions), the live feed's checkpoints, the record of
the channels it serves — and ``ipledger import``'s report, the runtime's record and the accepted genesis block's
digest go through :func:`write_atomically`. :func:`last_lines` reads a log's end.

Written otherwise: scratch files in a private temporary directory (build contexts, an update handed to the
peer CLI), process records (pid files), the
containers' copy of a node's core.yaml and kept container logs, the containers' scope (created whole, then
linked into place: the first command to choose one wins), command output (``--out``, ``--output``), and the
blocks the Fabric library saves (:mod:`ipledger.network.fabric` lies below this module).
"""
from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path


class LinkRefused(OSError):
    """A directory the network writes into, or a file it copies, is a symbolic link: never followed (a link planted
    in a public folder would send a file — or its removal — where it points: a private key overwritten, a CA
    certificate replaced, a key copied into what is sent to others)."""

    def __init__(self, path: Path, what: str = "writes into no directory through one"):
        super().__init__(errno.ELOOP, f"{path} is a symbolic link: ipledger {what}; remove it", str(path))


def own_directory(path: Path) -> Path:
    """``path`` as a directory to write into: made (with its parents) when missing, refused (:class:`LinkRefused`)
    when it is a symbolic link."""
    path = Path(path)
    if path.is_symlink():
        raise LinkRefused(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def refuse_links(path: Path) -> Path:
    """``path`` and, for a directory, everything under it, holding no symbolic link (:class:`LinkRefused` naming
    the first): before a copy, which would take what a link points to."""
    path = Path(path)
    if path.is_symlink():
        raise LinkRefused(path, "copies no link")
    if path.is_dir():
        for root, dirs, names in os.walk(path):
            for name in sorted(dirs + names):
                if os.path.islink(os.path.join(root, name)):
                    raise LinkRefused(Path(root, name), "copies no link")
    return path


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


def write_private(path: Path, data: bytes) -> Path:
    """``data`` into a file only its owner may read (0600: a report holding customs values), whatever the umask,
    through :func:`write_atomically` when ``path`` is a regular file or nothing yet (one already there is replaced,
    its mode with it). A link or anything else the caller names — ``/dev/stdout`` (a link to the process's output,
    which may be a file it was redirected to), a pipe, a link of the caller's own — is written through, as the
    shell's ``>`` would, its mode left as it is."""
    try:
        kind = os.lstat(path).st_mode
    except FileNotFoundError:
        kind = None
    if kind is not None and not stat.S_ISREG(kind):
        with open(path, "wb") as f:
            f.write(data)
        return path
    return write_atomically(path, data, 0o600)


def last_lines(path: Path, count: int, *, end: int | None = None, chunk: int = 65536,
               keepends: bool = False) -> list[str]:
    """The last ``count`` lines of the text file ``path`` (up to byte ``end``, default its end), read backwards
    a chunk at a time: a log of gigabytes costs what its last lines do, not its size in memory. ``keepends``:
    each with its line break (a last line still being written has none)."""
    if count <= 0:
        return []
    with open(path, "rb") as f:
        pos = f.seek(0, os.SEEK_END) if end is None else end
        data = b""
        while pos > 0 and data.count(b"\n") <= count:
            step = min(chunk, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
    return data.decode("utf-8", errors="replace").splitlines(keepends)[-count:]
