"""Test helpers for ipledger contracts: an in-memory Fabric stub and ledger.

Nothing here is used by the chaincode at run time; it exists so contract rules
can be tested in milliseconds without a Fabric network.
"""
from ipledger.chaincode.testing.memstub import MemLedger, MemStub, TxResult, identity_pem, load_collections_config

__all__ = ["MemLedger", "MemStub", "TxResult", "identity_pem", "load_collections_config"]
