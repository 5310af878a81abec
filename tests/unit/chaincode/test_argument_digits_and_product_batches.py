"""The shim's arguments and processing: a very long integer is refused by one rule whatever the peer's digit limit, and
an operation gives each product in one batch."""
from __future__ import annotations

import json
import sys

import pytest

from ipledger.chaincode.contract import InwardProcessingContract
from ipledger.chaincode.shim.contract_api import INTEGER_DIGITS_MAX
from ipledger.chaincode.testing.scenario import AUTH_ID, SITE1, SITE2, Scenario, retreaded


@pytest.fixture
def s() -> Scenario:
    return Scenario.with_l1(InwardProcessingContract)


def _move(s, qty_text: str) -> bytes:
    event = {"event_id": "mv-long", "occurred_at": s.ledger.now.isoformat(), "authorisation_id": AUTH_ID,
             "lot_id": "L1", "quantity": 1, "from_site": SITE1, "to_site": SITE2}
    return json.dumps(event).replace('"quantity": 1', f'"quantity": {qty_text}').encode()


@pytest.mark.parametrize("limit", [None, 0, 100_000])   # Python's default (4,300), none, a higher one
def test_a_very_long_integer_is_refused_alike_whatever_the_peers_digit_limit(s, limit):
    before = sys.get_int_max_str_digits()
    if limit is not None:
        sys.set_int_max_str_digits(limit)
    try:
        state = dict(s.ledger._committed.state)
        res = s.ledger.invoke(s.contract, "MoveGoods", [_move(s, "1" * 5001)], "OperatorMSP")
    finally:
        sys.set_int_max_str_digits(before)
    assert res.error_code == "InvalidArguments", res.message
    assert f"more than {INTEGER_DIGITS_MAX} digits" in res.message
    assert s.ledger._committed.state == state


def test_integers_up_to_the_bound_are_read_and_judged_by_the_contract(s):
    res = s.ledger.invoke(s.contract, "MoveGoods", [_move(s, "9" * INTEGER_DIGITS_MAX)], "OperatorMSP")
    assert res.error_code == "InvalidEvent", res.message               # read, then over the schema's maximum
    res = s.ledger.invoke(s.contract, "MoveGoods", [_move(s, "-" + "9" * (INTEGER_DIGITS_MAX + 1))], "OperatorMSP")
    assert res.error_code == "InvalidArguments", res.message


def test_a_long_exponent_is_named_as_such(s):
    res = s.ledger.invoke(s.contract, "MoveGoods", [_move(s, "0e10000")], "OperatorMSP")
    assert res.error_code == "InvalidArguments" and "exponent" in res.message, res.message


def test_an_operation_gives_each_product_in_one_batch(s):
    """Each batch of a product states the operation's whole input for its lots: two batches of one product
    stated 1,000 casings each for the 1,000 consumed (a release of half the tyres owed duty on all of them, the
    bill discharged 2,000). Refused by name; the ledger is unchanged."""
    before = s.ledger.snapshot()
    res = s.process("OP1", [("L1", 1000)], [retreaded(500, "B1"), retreaded(500, "B2")])
    assert res.error_code == "InvalidEvent", res.message
    assert "/outputs/1" in res.message and "one batch" in res.message
    assert s.ledger.snapshot() == before
    s.accepted(s.process("OP1", [("L1", 1000)], [retreaded(1000, "B1")]))
    s.accepted(s.exit(500, batch_id="B1", procedure="4051"))
    [part] = s.batch("B1")["shares"]
    assert part["input_discharged"] == 500
