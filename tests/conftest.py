"""Shared test configuration.

Tests marked ``fabric`` need the Fabric v3.1.5 binaries (``ipledger fabric install``;
``scripts/test`` builds them first). Without them such a test fails with
instructions: it is never skipped and never passes silently.
"""
from __future__ import annotations

import pytest

from ipledger.network.org import binaries


@pytest.fixture(autouse=True)
def _fabric_binaries_present(request):
    """A ``fabric`` test without binaries fails with instructions (never passes silently)."""
    if "fabric" in request.keywords and binaries.missing():
        pytest.fail(f"Fabric binaries missing in {binaries.bin_dir()} "
                    f"({', '.join(binaries.missing())}): run 'ipledger fabric install'")
