"""The rule for a file that holds a secret — a private key, API keys, webhook secrets, the gateway's nonce and
session keys: readable by its owner only, its mode 0600 at most. One rule for the network side (the keys of an
MSP, :mod:`ipledger.network.fabric.local_msp`) and the gateway's files (``gateway.filestore``)."""
from __future__ import annotations

import os
import stat
from pathlib import Path


def require_owner_only(path: Path, what: str, error) -> None:
    """Refuse a file holding a secret whose mode is wider than 0600 — readable, writable or executable by anyone
    but its owner, or any other bit —: ``error`` of a message naming ``what``, the file, its mode and the fix."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & ~0o600:
        raise error(f"{what} {path} has mode {mode:04o}, wider than 0600: it must be readable by its owner only; "
                    f"run 'chmod 600 {path}'")
