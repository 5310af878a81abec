"""A state directory holding the default consortium file where the layout keeps it (``Layout.consortium_file``):
what unit tests of the gateway and of the command line start from when the consortium must be known."""
from __future__ import annotations

from pathlib import Path

from ipledger.network.consortium import DEFAULT_FILE
from ipledger.network.layout import Layout


def with_default_consortium(state: Path) -> Path:
    """``state`` (made if missing) with the shipped consortium file in place; returns ``state``."""
    target = Layout(state).consortium_file
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(DEFAULT_FILE.read_text())
    return state
