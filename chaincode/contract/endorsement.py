"""Endorsement: one policy for every key, the chaincode-level one; key-level policies of earlier versions removed.

Chaincode level: set at approval, derived per channel from the consortium file by
``network/channel/chaincode.contract_policy`` (customs' peer AND a peer of another member), e.g.::

    AND('CustomsMSP.peer', OR('OperatorMSP.peer','BrokerMSP.peer'))

It is not something the contract reads, and it is the only policy its keys are judged by.

No key-level (state-based) policies. Under Fabric's v2 validation a key's own policy *replaces*
the chaincode's for that key (``core/common/validation/statebased``: the chaincode policy is
checked only for written keys without one). A policy of customs alone on the authorisations,
the parameters and the register — what earlier versions of this contract set — let a
transaction that writes only those keys commit with the endorsement of customs' peer alone,
whatever code that peer runs: customs could have changed a ceiling, a mandate or the register
with no other member computing it. The chaincode policy already needs customs' peer for every
key, and changing it needs customs' signature (``founding.governance_rule``), so nothing is lost
for customs; and on a new ledger the namespace never stores metadata, which spares every peer a
metadata lookup per written key at validation (docs/benchmarks.md, goal 5). A ledger written by an
earlier version has such policies: a key loses its own when the contract next writes it
(:func:`drop_key_policy`), and customs' ``DropKeyPolicies`` removes every one left at once.

Tests stand in for such an earlier policy with ``chaincode/testing/policies.py``.
"""
from __future__ import annotations

from ipledger.chaincode.contract import keys


def drop_key_policy(stub, key: str) -> None:
    """Remove the key-level policy an earlier version of the contract left on ``key`` (full key, as
    the stub names it), about to be written: from then on the chaincode policy judges it. A key
    without one — every key the contract writes now — is left alone: nothing is written, so the
    namespace keeps storing no metadata at all."""
    if stub.get_state_validation_parameter(key):
        stub.set_state_validation_parameter(key, b"")


def drop_key_policies(tx, event: dict) -> dict:
    """DropKeyPolicies: every authorisation, register entry and the parameters lose the key-level policy an
    earlier version of the contract put on them (:func:`drop_key_policy`), in key order; the keys it was
    removed from. Their values are not written: only their policies change."""
    dropped = []
    for object_type, name in ((keys.AUTHORISATION, "auth"), (keys.PARTY, "party")):
        for attrs, _value in tx.state.scan(object_type):
            full = tx.state.key((object_type, *attrs))
            if tx.stub.get_state_validation_parameter(full):
                tx.stub.set_state_validation_parameter(full, b"")
                dropped.append(f"{name}/{attrs[0]}")
    params_key = tx.state.key(keys.params())
    if tx.stub.get_state_validation_parameter(params_key):
        tx.stub.set_state_validation_parameter(params_key, b"")
        dropped.append("params")
    return {"dropped": dropped}
