"""An event's first reads — the parameters, its idempotency record, its authorisation, the lot or batch it
names, the declaration it makes — go to the peer together (one GetMultipleStates round trip), not one GetState
each; so do the keys posting it reads (balance shards, the lots a batch discharges, the alerts it reviews),
and a range is read once per transaction. The result is the same, and so are the keys read."""
from __future__ import annotations

from ipledger.chaincode.contract.contract import InwardProcessingContract
from ipledger.chaincode.testing import MemStub
from ipledger.chaincode.testing.scenario import SITE1, SITE2, Scenario, iso


def counting(monkeypatch):
    calls = {"get_state": [], "get_multiple_states": []}
    single, multiple = MemStub.get_state, MemStub.get_multiple_states
    inside = []   # the in-memory stub answers a multiple read with single ones: not round trips

    def get_state(self, key):
        if not inside:
            calls["get_state"].append(key)
        return single(self, key)

    def get_multiple_states(self, keys):
        calls["get_multiple_states"].append(list(keys))
        inside.append(1)
        try:
            return multiple(self, keys)
        finally:
            inside.pop()
    monkeypatch.setattr(MemStub, "get_state", get_state)
    monkeypatch.setattr(MemStub, "get_multiple_states", get_multiple_states)
    return calls


def test_a_move_reads_the_parameters_its_party_record_authorisation_and_lot_in_one_round_trip(monkeypatch):
    sc = Scenario(InwardProcessingContract)
    sc.accepted(sc.grant())
    sc.accepted(sc.place("L1", 100, msp="OperatorMSP"))
    calls = counting(monkeypatch)
    sc.accepted(sc.move(10, SITE1, SITE2, lot_id="L1", event_id="move-1"))
    [batch] = calls["get_multiple_states"]
    singles = list(calls["get_state"])
    assert len(batch) == 6 and any("L1" in k for k in batch) and any("move-1" in k for k in batch) and \
        any("FRIPO000001" in k for k in batch) and any("party" in k and "OperatorMSP" in k for k in batch) and \
        any("params" in k for k in batch) and any("BalanceDiscrepancy" in k for k in batch)
    assert singles == [], "a move reads nothing but its first reads"
    assert sc.lot("L1")["stock"] == {SITE1: 90, SITE2: 10}


def test_an_exit_reads_its_declaration_with_its_first_reads(monkeypatch):
    sc = Scenario(InwardProcessingContract)
    sc.accepted(sc.grant())
    sc.accepted(sc.place("L1", 100, msp="OperatorMSP"))
    calls = counting(monkeypatch)
    sc.accepted(sc.exit(5, lot_id="L1", event_id="exit-1", msp="OperatorMSP"))
    batch = calls["get_multiple_states"][0]
    assert any("decl" in k for k in batch) and any("exit-1" in k for k in batch)
    assert not set(batch) & set(calls["get_state"]), "a key read ahead was read again"
    assert not any("decl" in k for k in calls["get_state"])
    assert sc.lot("L1")["stock"] == {SITE1: 95}


def test_identifiers_that_are_not_identifiers_are_not_read_ahead_and_the_event_is_refused(monkeypatch):
    sc = Scenario(InwardProcessingContract)
    sc.accepted(sc.grant())
    sc.accepted(sc.place("L1", 100, msp="OperatorMSP"))
    calls = counting(monkeypatch)
    sc.refused("InvalidEvent", sc.move, 10, SITE1, SITE2, lot_id="L1\u0000x", event_id="move\u00001")
    [batch] = calls["get_multiple_states"] or [[]]
    assert not any("move" in k or "L1" in k for k in batch)


def test_a_replay_still_answers_the_original_from_the_key_read_ahead(monkeypatch):
    sc = Scenario(InwardProcessingContract)
    sc.accepted(sc.grant())
    sc.accepted(sc.place("L1", 100, msp="OperatorMSP"))
    when = iso(sc.ledger.now)
    first = sc.accepted(sc.move(10, SITE1, SITE2, lot_id="L1", event_id="move-1", occurred_at=when))
    calls = counting(monkeypatch)
    again = sc.accepted(sc.move(10, SITE1, SITE2, lot_id="L1", event_id="move-1", occurred_at=when))
    assert again["tx_id"] == first["tx_id"]
    assert len(calls["get_multiple_states"]) == 1
    assert sc.lot("L1")["stock"] == {SITE1: 90, SITE2: 10}


def test_a_query_reads_the_parameters_the_callers_entry_and_its_authorisation_in_one_round_trip(monkeypatch):
    sc = Scenario(InwardProcessingContract)
    sc.accepted(sc.grant())
    sc.accepted(sc.place("L1", 100, msp="OperatorMSP"))
    calls = counting(monkeypatch)
    balances = sc.query("GetBalances", "FRIPO000001", msp="OperatorMSP")
    [batch] = calls["get_multiple_states"]
    assert len(batch) == 3 and any("params" in k for k in batch) and \
        any("party" in k and "OperatorMSP" in k for k in batch) and any("FRIPO000001" in k for k in batch)
    assert calls["get_state"] == [], "nothing read one key at a time"
    assert [b["stock"] for b in balances["balances"]] == [100]


def test_every_identifier_the_schemas_accept_is_read_ahead():
    """The read-ahead's filter (``contract._READABLE_ID``) is looser than the schemas' identifier patterns: a
    schema that starts accepting other characters (or longer ids) fails here, not silently in a second read."""
    import json
    from pathlib import Path

    from hypothesis import given, settings, strategies as st

    from ipledger.chaincode.contract import contract

    defs = json.loads((Path(contract.__file__).parent / "schemas" / "common.json").read_text())["$defs"]
    patterns = [defs[name]["pattern"] for name in ("eventId", "authorisationId", "lotId", "batchId", "mrn")]

    @settings(max_examples=300, deadline=None)
    @given(st.one_of(*(st.from_regex(p.replace("$(?!\\n)", "\\Z"), fullmatch=True) for p in patterns)))
    def accepted_is_read(value):
        assert contract._READABLE_ID.fullmatch(value), value

    accepted_is_read()


def _exits_reads(monkeypatch, read_ahead: bool) -> list[tuple[list, list]]:
    """(multiple reads, single reads) of an exit of a lot and of a batch made from it."""
    from ipledger.chaincode.contract import authorisations, goods
    from ipledger.chaincode.testing.scenario import mrn, retreaded, waste

    if not read_ahead:   # the take's read-ahead off: every key is read where it is used
        monkeypatch.setattr(goods, "reads_of_taking", lambda kind, record, attribution: [])
        monkeypatch.setattr(authorisations, "ceiling_alert_key", lambda auth, cn: None)
    sc = Scenario(InwardProcessingContract)
    sc.accepted(sc.grant())
    sc.accepted(sc.place("L1", 100, msp="OperatorMSP"))
    sc.accepted(sc.place("L2", 100, msp="OperatorMSP"))
    sc.accepted(sc.process("OP1", [("L1", 50), ("L2", 50)], [retreaded(98, "B1"), waste(60, "W1")]))
    out = []
    calls = counting(monkeypatch)
    for take in (lambda: sc.exit(5, lot_id="L1", event_id="exit-lot", msp="OperatorMSP", mrn_=mrn("E", 901)),
                 lambda: sc.exit(60, batch_id="B1", event_id="exit-batch", msp="OperatorMSP", mrn_=mrn("E", 902))):
        for made in calls.values():
            made.clear()
        sc.accepted(take())
        out.append((list(calls["get_multiple_states"]), list(calls["get_state"])))
    return out


def test_an_exit_reads_what_posting_it_needs_in_one_second_round_trip(monkeypatch):
    """After its first reads, an exit of a lot reads its balance shard, its CeilingNear alert and a control's
    difference standing where it leaves together; an exit of a batch its balance shard, the lots its attribution
    discharges and such a difference: two round trips in all. Neither reads where an emptied shard is kept
    (``bal.empty``): both leave goods in their shard."""
    (lot_multi, lot_single), (batch_multi, batch_single) = _exits_reads(monkeypatch, read_ahead=True)
    assert lot_single == [] and batch_single == []
    assert len(lot_multi) == 2 and len(lot_multi[1]) == 3
    assert any("\x00bal\x00" in k for k in lot_multi[1]) and any("CeilingNear" in k for k in lot_multi[1])
    assert not any("\x00bal.empty\x00" in k for reads in lot_multi + batch_multi for k in reads)
    assert any("BalanceDiscrepancy" in k for k in lot_multi[1]) and any("BalanceDiscrepancy" in k for k in batch_multi[1])
    assert len(batch_multi) == 2
    assert any("\x00bal\x00" in k and "PRODUCT" in k for k in batch_multi[1])
    assert sorted(k for k in batch_multi[1] if k.startswith("\x00lot\x00")) == ["\x00lot\x00L1\x00", "\x00lot\x00L2\x00"]


def _keys_read_by_each_event(monkeypatch, read_ahead: bool) -> list[tuple[str, list[str]]]:
    """(act, sorted keys it read) for a chain of every kind of goods event: placements, a move, a processing
    of two lots (a yield warning among its alerts), exits of a lot and of a batch, a loss."""
    from ipledger.chaincode.contract.state import State
    from ipledger.chaincode.testing.scenario import SITE1, mrn, retreaded, waste

    if not read_ahead:   # every key read where it is used, one at a time
        monkeypatch.setattr(State, "prefetch", lambda self, keys: None)
    calls = counting(monkeypatch)
    sc = Scenario(InwardProcessingContract)
    sc.accepted(sc.grant())
    events = [
        ("place L1", lambda: sc.place("L1", 100, msp="OperatorMSP", mrn_=mrn("I", 801), event_id="place-1")),
        ("place L2", lambda: sc.place("L2", 100, msp="OperatorMSP", mrn_=mrn("I", 802), event_id="place-2")),
        ("move", lambda: sc.move(10, SITE1, SITE2, lot_id="L1", event_id="move-1")),
        ("process", lambda: sc.process("OP1", [("L1", 50), ("L2", 50)], [retreaded(99, "B1"), waste(60, "W1")],
                                       event_id="process-1")),
        ("exit lot", lambda: sc.exit(5, lot_id="L2", event_id="exit-lot", msp="OperatorMSP", mrn_=mrn("E", 901))),
        ("exit batch", lambda: sc.exit(60, batch_id="B1", event_id="exit-b", msp="OperatorMSP",
                                       mrn_=mrn("E", 902))),
        ("loss", lambda: sc.lose(3, lot_id="L2", event_id="loss-1", msp="OperatorMSP")),
    ]
    out = []
    for act, event in events:
        for made in calls.values():
            made.clear()
        sc.accepted(event())
        out.append((act, sorted({k for multi in calls["get_multiple_states"] for k in multi} |
                                set(calls["get_state"]))))
    return out


def test_reading_ahead_reads_no_key_an_event_would_not_read(monkeypatch):
    """A key read ahead joins the read set (the MVCC check at commit): every event reads the same keys with
    and without its read-aheads — they only save round trips."""
    with_read_ahead = _keys_read_by_each_event(monkeypatch, read_ahead=True)
    monkeypatch.undo()
    without = _keys_read_by_each_event(monkeypatch, read_ahead=False)
    assert without == with_read_ahead
    assert any("YieldDeviation" in k for k in dict(without)["process"]), "the processing raises a yield alert"


def test_a_processing_of_two_lots_makes_three_round_trips(monkeypatch):
    """The first reads; the operation, its lots and batches; then every balance shard and alert it posts."""
    from ipledger.chaincode.testing.scenario import retreaded, waste

    sc = Scenario(InwardProcessingContract)
    sc.accepted(sc.grant())
    sc.accepted(sc.place("L1", 100, msp="OperatorMSP"))
    sc.accepted(sc.place("L2", 100, msp="OperatorMSP"))
    calls = counting(monkeypatch)
    sc.accepted(sc.process("OP1", [("L1", 50), ("L2", 50)], [retreaded(98, "B1"), waste(60, "W1")]))
    first, goods_read, posting = calls["get_multiple_states"]
    assert calls["get_state"] == []
    assert sorted(k for k in goods_read if "\x00lot\x00" in k) == ["\x00lot\x00L1\x00", "\x00lot\x00L2\x00"]
    assert any("\x00op\x00OP1" in k for k in goods_read) and sum("\x00batch\x00" in k for k in goods_read) == 2
    assert sum("\x00bal\x00" in k for k in posting) == 4 and any("CeilingNear" in k for k in posting)
    assert sc.batch("B1")["produced"] == 98


def test_a_placement_reads_its_ceiling_range_once_and_makes_three_round_trips(monkeypatch):
    """The ceiling check and the CeilingNear review after posting scan the same balance shards: the
    committed range is read from the peer once (it cannot change during the transaction) and the review
    sees the placement's own write; the shard and the alert it posts come in one more round trip."""
    ranges = []
    scan = MemStub.get_state_by_partial_composite_key
    monkeypatch.setattr(MemStub, "get_state_by_partial_composite_key",
                        lambda self, object_type, attrs: ranges.append((object_type, list(attrs))) or
                        scan(self, object_type, attrs))
    sc = Scenario(InwardProcessingContract)
    sc.accepted(sc.grant())
    sc.accepted(sc.place("L1", 100, msp="OperatorMSP"))
    calls = counting(monkeypatch)
    ranges.clear()
    placed = sc.accepted(sc.place("L2", 50, msp="OperatorMSP"))
    assert ranges == [("bal", ["FRIPO000001", "INPUT"])]
    assert calls["get_state"] == [] and len(calls["get_multiple_states"]) == 2
    assert placed["under_procedure"]["quantity"] == 150
    assert sc.query("GetBalances", "FRIPO000001", msp="OperatorMSP")["balances"][0]["stock"] == 150
