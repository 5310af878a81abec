"""A balance shard whose stock falls to 0 is kept under ``bal.empty`` (keys.py, goods.StateBook.account).

The ceiling check of every placement reads the authorisation's input shards in one range read; a shard that
keeps its place once its goods are discharged makes that read grow with the authorisation's history (up to
``BALANCE_SHARDS`` per goods code) — every placement of a plant years old paying for all its past lots, on every
endorsing and validating peer. Here: the read covers the shards holding goods only, the balances stay exact, a
shard comes back when goods counted in it are placed again, and a ledger written before (empty shards under
``bal``) goes on as it was."""
from __future__ import annotations

import json

from ipledger.chaincode.contract import InwardProcessingContract, keys
from ipledger.chaincode.shim import keys as shim_keys
from ipledger.chaincode.testing import memstub
from ipledger.chaincode.testing.scenario import AUTH_ID, Scenario, mrn

USED = "40122000"


def stored(sc, object_type: str) -> dict[tuple, dict]:
    """Every committed key of ``object_type``: attributes → value."""
    prefix = shim_keys.COMPOSITE_KEY_NAMESPACE + object_type + shim_keys.MIN_UNICODE_RUNE
    return {tuple(shim_keys.split_composite_key(k)[1]): json.loads(v) for k, v in sc.ledger.state.items()
            if k.startswith(prefix)}


def write_as_before(sc, object_type: str, attrs: tuple, value: dict | None) -> None:
    """Set a committed key as an earlier contract would have left it (``None``: absent)."""
    key = shim_keys.create_composite_key(object_type, list(attrs))
    if value is None:
        sc.ledger._committed.delete(key)
    else:
        sc.ledger._committed.put(key, json.dumps(value).encode())


def same_shard_as(goods_id: str, prefix: str) -> str:
    """Another id counted in the same balance shard as ``goods_id``."""
    return next(f"{prefix}{n}" for n in range(100_000)
                if keys.balance_shard(f"{prefix}{n}") == keys.balance_shard(goods_id))


def input_balance(sc) -> dict:
    [bal] = [b for b in sc.query("GetBalances", AUTH_ID)["balances"] if b["category"] == "INPUT"]
    return bal


def lot_a_placed_and_exited() -> tuple[Scenario, tuple]:
    """A scenario where lot A's 30 p/st were placed and re-exported, and its (emptied) input shard."""
    sc = Scenario(InwardProcessingContract)
    sc.accepted(sc.grant())
    sc.accepted(sc.place("A", 30))
    sc.accepted(sc.exit(30, lot_id="A"))
    return sc, (AUTH_ID, "INPUT", USED, "p/st", keys.balance_shard("A"))


def test_a_placement_reads_the_shards_holding_goods_not_every_lot_discharged_before(monkeypatch):
    sc = Scenario(InwardProcessingContract)
    sc.accepted(sc.grant())
    for n in range(40):   # forty lots placed and re-exported: their shards hold nothing any more
        sc.accepted(sc.place(f"OLD{n}", 10))
        sc.accepted(sc.exit(10, lot_id=f"OLD{n}"))
    sc.accepted(sc.place("LIVE", 7))
    assert [attrs[-1] for attrs in stored(sc, keys.BALANCE)] == [keys.balance_shard("LIVE")]
    shard_rows = []
    cut = memstub.MemStub._cut

    def counting(self, rows):
        def seen():
            for row in rows:
                if row.key.startswith(shim_keys.COMPOSITE_KEY_NAMESPACE + keys.BALANCE + shim_keys.MIN_UNICODE_RUNE):
                    shard_rows.append(row.key)
                yield row
        return cut(self, seen())
    monkeypatch.setattr(memstub.MemStub, "_cut", counting)
    placed = sc.accepted(sc.place("NEW", 5))
    assert len(shard_rows) == 1   # LIVE's shard, once (the ceiling check and its review share the read)
    assert placed["under_procedure"]["quantity"] == 12
    bal = input_balance(sc)
    assert (bal["entered"], bal["stock"], bal["exited"]) == (412, 12, {"3151": 400})


def test_the_ceiling_counts_every_shard_holding_goods():
    sc = Scenario(InwardProcessingContract)
    sc.accepted(sc.grant(input_goods=[{"cn": USED, "description": "used tyres", "unit": "p/st", "max_qty": 100}]))
    for n in range(10):
        sc.accepted(sc.place(f"E{n}", 10))
        sc.accepted(sc.exit(10, lot_id=f"E{n}"))
    for n in range(9):
        sc.accepted(sc.place(f"L{n}", 10))   # 90 of 100 under the procedure, in several shards
    details = sc.refused("CeilingExceeded", sc.place, "L9", 11)
    assert (details["under_procedure"], details["requested"]) == (90, 11)
    sc.accepted(sc.place("L9", 10))


def test_a_shard_comes_back_when_goods_counted_in_it_are_placed_again():
    sc, shard = lot_a_placed_and_exited()
    assert shard not in stored(sc, keys.BALANCE)
    assert stored(sc, keys.BALANCE_EMPTY)[shard]["entered"] == 30
    again = same_shard_as("A", "B")
    sc.accepted(sc.place(again, 8, mrn_=mrn("I", 900_001)))
    assert shard not in stored(sc, keys.BALANCE_EMPTY)
    back = stored(sc, keys.BALANCE)[shard]
    assert (back["entered"], back["stock"], back["exited"]) == (38, 8, {"3151": 30})
    sc.accepted(sc.exit(3, lot_id=again))
    assert stored(sc, keys.BALANCE)[shard]["stock"] == 5   # some goods left: it stays
    bal = input_balance(sc)
    assert (bal["entered"], bal["stock"], bal["exited"]) == (38, 5, {"3151": 33})


def test_a_processing_empties_the_lots_shard_and_fills_its_batches():
    from ipledger.chaincode.testing.scenario import retreaded, waste
    sc = Scenario(InwardProcessingContract)
    sc.accepted(sc.grant())
    sc.accepted(sc.place("L1", 50, msp="OperatorMSP"))
    sc.accepted(sc.process("OP1", [("L1", 50)], [retreaded(49, "B1"), waste(60, "W1")]))
    assert [a[1] for a in stored(sc, keys.BALANCE)] == ["PRODUCT", "PRODUCT"]
    assert [(a[1], v["consumed"]) for a, v in stored(sc, keys.BALANCE_EMPTY).items()] == [("INPUT", 50)]
    sc.accepted(sc.exit(49, batch_id="B1"))
    sc.accepted(sc.lose(60, batch_id="W1", reason="DESTROYED"))
    assert stored(sc, keys.BALANCE) == {}
    balances = {b["cn"]: b for b in sc.query("GetBalances", AUTH_ID)["balances"]}
    assert (balances[USED]["consumed"], balances["40121200"]["exited"], balances["40040000"]["lost"]) == \
        (50, {"3151": 49}, 60)


def test_a_ledger_written_before_keeps_its_empty_shards_where_they_were():
    """An earlier contract left shards of stock 0 under ``bal``: they are counted as before, and move to
    ``bal.empty`` when an event empties them again."""
    sc, shard = lot_a_placed_and_exited()
    held = stored(sc, keys.BALANCE_EMPTY)[shard]
    write_as_before(sc, keys.BALANCE_EMPTY, shard, None)
    write_as_before(sc, keys.BALANCE, shard, held)   # an emptied shard where an earlier contract left it
    assert stored(sc, keys.BALANCE)[shard]["stock"] == 0
    assert input_balance(sc)["entered"] == 30
    again = same_shard_as("A", "C")
    sc.accepted(sc.place(again, 4, mrn_=mrn("I", 900_002)))
    assert stored(sc, keys.BALANCE)[shard]["entered"] == 34
    sc.accepted(sc.exit(4, lot_id=again))
    assert shard not in stored(sc, keys.BALANCE)
    assert stored(sc, keys.BALANCE_EMPTY)[shard]["entered"] == 34
    bal = input_balance(sc)
    assert (bal["entered"], bal["stock"], bal["exited"]) == (34, 0, {"3151": 34})


def test_a_shard_under_both_keys_is_added_up_once_touched():
    """Only after a return to an earlier contract (which knows no ``bal.empty``) wrote the shard under ``bal``
    again: the next event adds both parts up and keeps the sum in one place."""
    sc, shard = lot_a_placed_and_exited()
    again = same_shard_as("A", "D")
    written_before = {"authorisation_id": AUTH_ID, "category": "INPUT", "cn": USED, "unit": "p/st", "entered": 6,
                      "stock": 6, "consumed": 0, "exited": {}, "lost": 0}   # another lot of the shard, placed so
    write_as_before(sc, keys.BALANCE, shard, written_before)
    assert input_balance(sc)["entered"] == 36
    sc.accepted(sc.place(again, 6, mrn_=mrn("I", 900_003)))
    assert shard not in stored(sc, keys.BALANCE_EMPTY)
    assert (stored(sc, keys.BALANCE)[shard]["entered"], stored(sc, keys.BALANCE)[shard]["stock"]) == (42, 12)


def empty_key_reads(monkeypatch) -> list[str]:
    """The ``bal.empty`` keys the contract reads from now on (single and multiple reads alike)."""
    seen: list[str] = []
    single = memstub.MemStub.get_state
    marker = shim_keys.COMPOSITE_KEY_NAMESPACE + keys.BALANCE_EMPTY + shim_keys.MIN_UNICODE_RUNE

    def get_state(self, key):
        if key.startswith(marker):
            seen.append(key)
        return single(self, key)
    monkeypatch.setattr(memstub.MemStub, "get_state", get_state)   # the memory stub's multiple reads use it too
    return seen


def test_goods_taken_from_a_shard_that_keeps_some_read_no_empty_shard_key(monkeypatch):
    """Most exits, losses and consumptions leave goods in their shard: they read ``bal`` only — an absent key costs a
    peer's state database a look in every level, at endorsement and again at validation. The one that empties
    the shard reads ``bal.empty`` (its flows join those kept there)."""
    from ipledger.chaincode.testing.scenario import retreaded, waste
    sc = Scenario(InwardProcessingContract)
    sc.accepted(sc.grant())
    sc.accepted(sc.place("A", 100, msp="OperatorMSP"))
    sc.accepted(sc.place("P", 100, msp="OperatorMSP"))
    read = empty_key_reads(monkeypatch)
    sc.accepted(sc.exit(10, lot_id="A", msp="OperatorMSP"))
    sc.accepted(sc.lose(5, lot_id="A", reason="NATURE"))
    sc.accepted(sc.process("OP1", [("P", 40)], [retreaded(40, "B1"), waste(48, "W1")]))
    sc.accepted(sc.exit(20, batch_id="B1", msp="OperatorMSP", mrn_=mrn("E", 700_001)))
    shard_of = {goods_id: keys.balance_shard(goods_id) for goods_id in ("A", "P", "B1", "W1")}
    # the processing's products come in: their shards' both keys; nothing else of the takes
    assert sorted(k.split("\x00")[-2] for k in read) == sorted([shard_of["B1"], shard_of["W1"]])
    read.clear()
    sc.accepted(sc.exit(85, lot_id="A", msp="OperatorMSP", mrn_=mrn("E", 700_002)))   # A's shard empties
    assert [k.split("\x00")[-2] for k in read] == [shard_of["A"]]
    shard = (AUTH_ID, "INPUT", USED, "p/st", shard_of["A"])
    assert shard not in stored(sc, keys.BALANCE) and stored(sc, keys.BALANCE_EMPTY)[shard]["lost"] == 5
    bal = input_balance(sc)
    assert (bal["entered"], bal["stock"], bal["consumed"], bal["lost"], bal["exited"]) == \
        (200, 60, 40, 5, {"3151": 95})


def test_a_part_kept_under_both_keys_stays_counted_until_the_shard_empties():
    """After a return to an earlier contract wrote a shard under ``bal`` while its emptied part stayed under
    ``bal.empty``: goods taken without emptying it leave that part where it is (``GetBalances`` counts it there);
    the take that empties the shard adds the two up under ``bal.empty``."""
    sc, shard = lot_a_placed_and_exited()
    again = same_shard_as("A", "E")
    sc.accepted(sc.place(again, 6, mrn_=mrn("I", 900_004)))
    placed_before = dict(stored(sc, keys.BALANCE)[shard], entered=6, exited={})   # as an earlier contract wrote it
    write_as_before(sc, keys.BALANCE, shard, placed_before)
    write_as_before(sc, keys.BALANCE_EMPTY, shard, stored(sc, keys.BALANCE_EMPTY).get(shard) or
                    {"authorisation_id": AUTH_ID, "category": "INPUT", "cn": USED, "unit": "p/st", "entered": 30,
                     "stock": 0, "consumed": 0, "exited": {"3151": 30}, "lost": 0})
    sc.accepted(sc.exit(2, lot_id=again, mrn_=mrn("E", 900_005)))
    assert stored(sc, keys.BALANCE_EMPTY)[shard]["entered"] == 30   # left where it is
    assert stored(sc, keys.BALANCE)[shard]["stock"] == 4
    bal = input_balance(sc)
    assert (bal["entered"], bal["stock"], bal["exited"]) == (36, 4, {"3151": 32})
    sc.accepted(sc.exit(4, lot_id=again, mrn_=mrn("E", 900_006)))
    assert shard not in stored(sc, keys.BALANCE)
    assert (stored(sc, keys.BALANCE_EMPTY)[shard]["entered"], stored(sc, keys.BALANCE_EMPTY)[shard]["exited"]) == \
        (36, {"3151": 36})
    bal = input_balance(sc)
    assert (bal["entered"], bal["stock"], bal["exited"]) == (36, 0, {"3151": 36})
