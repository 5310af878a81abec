"""ipledger: the inward-processing contract (rules, schemas, key design).

``InwardProcessingContract`` is imported lazily so that the gateway can import
``ipledger.chaincode.contract.schemas`` and ``ipledger.chaincode.contract.errors`` without the
rest of the contract.
"""
from __future__ import annotations

__all__ = ["InwardProcessingContract"]


def __getattr__(name: str):
    if name == "InwardProcessingContract":
        from ipledger.chaincode.contract.contract import InwardProcessingContract

        return InwardProcessingContract
    raise AttributeError(name)
