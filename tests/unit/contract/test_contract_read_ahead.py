"""An event's first reads — the parameters, its idempotency record, its authorisation, the lot or batch it
names, the declaration it makes — go to the peer together (one GetMultipleStates round trip), not one GetState
each; the result is the same."""
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
    assert len(batch) == 5 and any("L1" in k for k in batch) and any("move-1" in k for k in batch) and \
        any("FRIPO000001" in k for k in batch) and any("party" in k and "OperatorMSP" in k for k in batch) and \
        any("params" in k for k in batch)
    assert singles == [], "a move reads nothing but its first reads"
    assert sc.lot("L1")["stock"] == {SITE1: 90, SITE2: 10}


def test_an_exit_reads_its_declaration_with_its_first_reads(monkeypatch):
    sc = Scenario(InwardProcessingContract)
    sc.accepted(sc.grant())
    sc.accepted(sc.place("L1", 100, msp="OperatorMSP"))
    calls = counting(monkeypatch)
    sc.accepted(sc.exit(5, lot_id="L1", event_id="exit-1", msp="OperatorMSP"))
    [batch] = calls["get_multiple_states"]
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
