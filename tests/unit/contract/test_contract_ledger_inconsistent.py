"""Records written together are read together (``LedgerInconsistent``): a history reference without its log
entry, a log entry taking goods from a lot the ledger does not hold, an effect the contract does not apply. Such a
ledger was damaged (or written by a later contract): every answer that needs the missing part is refused by name,
never given shorter. (A lot's history without its log entry: test_contract_history_layout.py.)"""
from __future__ import annotations

import json

import pytest

from ipledger.chaincode.contract import InwardProcessingContract, goods, keys
from ipledger.chaincode.contract.errors import RULES, LedgerInconsistent
from ipledger.chaincode.shim import keys as shim_keys
from ipledger.chaincode.testing.scenario import AUTH_ID, Scenario


def committed(sc, object_type: str) -> dict[str, dict]:
    """Every committed key of ``object_type``: full key → value."""
    prefix = shim_keys.COMPOSITE_KEY_NAMESPACE + object_type + shim_keys.MIN_UNICODE_RUNE
    return {k: json.loads(v) for k, v in sc.ledger.state.items() if k.startswith(prefix)}


@pytest.fixture
def sc():
    """Lot A: 30 p/st placed on the grant's day, 10 re-exported the next."""
    sc = Scenario(InwardProcessingContract)
    sc.accepted(sc.grant())
    sc.accepted(sc.place("A", 30))
    sc.wait_until(sc.D(1))
    sc.accepted(sc.exit(10, lot_id="A"))
    return sc


def test_a_ceilings_use_taking_from_a_lot_not_on_the_ledger_is_refused(sc):
    since_the_exit = sc.D(1).date().isoformat()
    [ceiling] = sc.query("GetCeilingUse", AUTH_ID, since_the_exit)["ceilings"]
    assert [p["quantity"] for p in ceiling["points"]] == [20]
    [lot_key] = committed(sc, keys.LOT)
    sc.ledger._committed.delete(lot_key)

    details = sc.refused("LedgerInconsistent", sc.ledger.evaluate, sc.contract, "GetCeilingUse",
                         [AUTH_ID, since_the_exit], sc.customs_msp, None)
    assert details == {"lot_id": "A"}


def test_an_effect_the_contract_does_not_apply_is_refused_by_name():
    with pytest.raises(LedgerInconsistent) as refused:
        goods.apply(goods.MemoryBook(), {"op": "melt", "kind": goods.LOT, "id": "A"}, "2026-01-01T00:00:00Z", "t")
    assert refused.value.details == {"op": "melt"}


def test_the_rule_is_one_of_the_contracts_codes_and_the_gateways():
    from ipledger.gateway.problems import CHAINCODE_STATUS

    assert "LedgerInconsistent" in RULES
    assert CHAINCODE_STATUS["LedgerInconsistent"] == 502     # the caller's request is not at fault


def test_the_refusal_is_in_the_chaincodes_log_too(caplog):
    """The caller gets the refusal; the peer's operator, who has a ledger to look at, finds it in the chaincode's log."""
    import logging

    from ipledger.chaincode.shim.contract_api import Contract, transaction

    class Damaged(Contract):
        @transaction(submit=False)
        def Read(self, stub):
            raise LedgerInconsistent("the history of lot A names a log entry that is not on the ledger", id="A")

    with caplog.at_level(logging.WARNING, logger="ipledger.chaincode.shim"):
        status, message, _payload = Damaged().invoke(None, "Read", [])
    assert json.loads(message)["code"] == "LedgerInconsistent"
    assert [r.getMessage() for r in caplog.records] == [
        "transaction 'Read' refused: LedgerInconsistent: the history of lot A names a log entry that is not on the "
        "ledger"]
