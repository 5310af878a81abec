"""Balances in shards (keys.balance_shard): events on different lots of one authorisation write different
balance keys, and events taking goods out read no balance while no CeilingNear is up — so a plant's events do
not conflict with each other on a key every one of them writes; placements still read every shard, and the
ceiling stays exact."""
from __future__ import annotations

from ipledger.chaincode.contract import keys
from ipledger.chaincode.contract.contract import InwardProcessingContract
from ipledger.chaincode.testing import MemStub
from ipledger.chaincode.testing.scenario import SITE1, Scenario


def lots_in_distinct_shards(n: int) -> list[str]:
    out, seen = [], set()
    for i in range(1000):
        lot = f"S{i}"
        if keys.balance_shard(lot) not in seen:
            seen.add(keys.balance_shard(lot))
            out.append(lot)
        if len(out) == n:
            return out
    raise AssertionError("not enough distinct shards")


def recording(monkeypatch):
    seen = {"puts": [], "ranges": []}
    put, scan = MemStub.put_state, MemStub.get_state_by_partial_composite_key

    def put_state(self, key, value):
        seen["puts"].append(key)
        return put(self, key, value)

    def partial(self, object_type, attributes):
        seen["ranges"].append((object_type, list(attributes)))
        return scan(self, object_type, attributes)
    monkeypatch.setattr(MemStub, "put_state", put_state)
    monkeypatch.setattr(MemStub, "get_state_by_partial_composite_key", partial)
    return seen


def test_exits_of_two_lots_write_two_balance_shards_and_read_none(monkeypatch):
    sc = Scenario(InwardProcessingContract)
    sc.accepted(sc.grant())
    a, b = lots_in_distinct_shards(2)
    for lot in (a, b):
        sc.accepted(sc.place(lot, 100, msp="OperatorMSP"))
    seen = recording(monkeypatch)
    sc.accepted(sc.exit(1, lot_id=a, msp="OperatorMSP"))
    first = [k for k in seen["puts"] if k.startswith("\x00bal\x00")]
    assert not [r for r in seen["ranges"] if r[0] == keys.BALANCE], "an exit read the balances"
    seen["puts"].clear()
    sc.accepted(sc.exit(1, lot_id=b, msp="OperatorMSP"))
    second = [k for k in seen["puts"] if k.startswith("\x00bal\x00")]
    assert len(first) == len(second) == 1 and first != second
    bal = sc.query("GetBalances", "FRIPO000001")
    [inputs] = [x for x in bal["balances"] if x["category"] == "INPUT"]
    assert inputs["stock"] == 198 and inputs["entered"] == 200 and sum(inputs["exited"].values()) == 2
    assert bal["ceilings"][0]["quantity"] == 198


def test_the_ceiling_adds_up_every_shard(monkeypatch):
    sc = Scenario(InwardProcessingContract)
    sc.accepted(sc.grant())            # ceiling 5,000 p/st
    lots = lots_in_distinct_shards(5)
    for lot in lots:
        sc.accepted(sc.place(lot, 1000, msp="OperatorMSP"))
    details = sc.refused("CeilingExceeded", sc.place, "S-over", 1, msp="OperatorMSP")
    assert details["under_procedure"] == 5000
    sc.accepted(sc.exit(1, lot_id=lots[3], msp="OperatorMSP"))   # one unit leaves: one fits again
    sc.accepted(sc.place("S-fits", 1, msp="OperatorMSP", site=SITE1))


def test_an_exit_lowers_a_ceiling_near_that_is_up():
    sc = Scenario(InwardProcessingContract)
    sc.accepted(sc.grant())
    lots = lots_in_distinct_shards(5)
    for lot in lots:
        sc.accepted(sc.place(lot, 960, msp="OperatorMSP"))      # 4,800 of 5,000: CeilingNear (90 %)
    assert "CeilingNear" in {a["type"] for a in sc.query("GetAlerts", "FRIPO000001")["alerts"]}
    sc.accepted(sc.exit(400, lot_id=lots[0], msp="OperatorMSP"))  # 4,400: under 90 %, cleared
    assert "CeilingNear" not in {a["type"] for a in sc.query("GetAlerts", "FRIPO000001")["alerts"]}
