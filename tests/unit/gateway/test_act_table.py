"""One act table: every event type the contract's schemas list is a submit transaction of the contract,
has its performers in the contract's role table (chaincode/contract/roles.py ACTS) and in the REST
documentation (gateway/openapi.py PERFORMED_BY), and no list names an act the others do not know. The
documentation describes performers by role, never by organisation."""
from __future__ import annotations

import re

from chaincode.contract import InwardProcessingContract, roles
from chaincode.contract.contract import COMMERCIAL_ACTS
from chaincode.contract.schemas import EVENT_TYPES
from gateway.openapi import PERFORMED_BY
from gateway.validation import COMMERCIAL_EVENTS
from gateway.validation import EVENT_TYPES as GATEWAY_EVENT_TYPES


def test_every_event_type_is_in_every_table():
    submits = {name for name, info in InwardProcessingContract.transactions().items() if info.submit}
    assert set(EVENT_TYPES) == submits
    missing_in_roles = [t for t in EVENT_TYPES if t not in roles.ACTS]
    missing_in_docs = [t for t in EVENT_TYPES if t not in PERFORMED_BY]
    assert missing_in_roles == [] and missing_in_docs == []
    assert set(roles.ACTS) == set(PERFORMED_BY) == set(EVENT_TYPES) == set(GATEWAY_EVENT_TYPES)
    assert COMMERCIAL_EVENTS == COMMERCIAL_ACTS


def test_the_documentation_says_the_roles_the_contract_checks():
    words = {frozenset({roles.CUSTOMS}): "customs", frozenset({roles.HOLDER}): "the holder",
             frozenset({roles.HOLDER, roles.REPRESENTATIVE}): "the holder, or a representative with a mandate"}
    for act, performers in roles.ACTS.items():
        assert PERFORMED_BY[act] == words[performers], act
    assert not [v for v in PERFORMED_BY.values() if re.search(r"MSP\b", v)]
