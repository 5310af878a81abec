"""What files this test process opens: an audit hook (``sys.addaudithook``) records every path opened inside
an :class:`opened_here` block, so that a test can say no private key was read in this process."""
from __future__ import annotations

import os
import sys
from pathlib import Path

_opened: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    if _opened is not None and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        _opened.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)   # cannot be removed: inert while no block is open


class opened_here:
    """The paths this process opens inside the block."""

    def __enter__(self) -> list[str]:
        global _opened
        _opened = []
        return _opened

    def __exit__(self, *exc) -> None:
        global _opened
        _opened = None


def private_keys(paths: list[str]) -> list[str]:
    """The private key files among ``paths`` (Fabric's ``priv_sk``, TLS ``*.key``, their temporary files)."""
    return [p for p in paths if Path(p).name in ("priv_sk", "client.key", "server.key")
            or Path(p).name.startswith(".priv_sk") or p.endswith("_sk")]
