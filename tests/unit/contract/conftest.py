"""Shared fixture of the contract's rule tests."""
from __future__ import annotations

import pytest

from ipledger.chaincode.contract import InwardProcessingContract
from ipledger.chaincode.testing.scenario import Scenario


@pytest.fixture
def s() -> Scenario:
    """A fresh ledger after step 1 of domain.md §8 (authorisation granted, lot L1 placed); a test module may
    define its own ``s``."""
    return Scenario.with_l1(InwardProcessingContract)
