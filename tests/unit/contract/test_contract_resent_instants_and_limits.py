"""An event sent again with its moment written another way is the same event; acts that occurred outside the
authorisation's force are told to customs; figures are never shown equal to a limit they broke."""
import json
import types

import pytest

from ipledger.chaincode.contract import InwardProcessingContract, eventlog, keys
from ipledger.chaincode.contract.state import canonical_json
from ipledger.chaincode.testing.scenario import AUTH_ID, SITE1, SITE2, Scenario, iso, retreaded


@pytest.fixture
def sc():
    s = Scenario.with_l1(InwardProcessingContract)
    s.wait_until(s.D(2))
    return s


def _move(event_id: str, occurred_at: str, qty: int = 10) -> dict:
    return {"event_id": event_id, "occurred_at": occurred_at, "authorisation_id": AUTH_ID, "lot_id": "L1",
            "quantity": qty, "from_site": SITE1, "to_site": SITE2}


def _as(sc, when) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("written", [
    lambda t: t.replace("Z", "+00:00"),
    lambda t: t.replace("Z", ".000Z"),
    lambda t: t.replace("Z", ".000000000Z"),
    lambda t: t[:11] + f"{int(t[11:13]) + 1:02d}" + t[13:].replace("Z", "+01:00"),   # the same instant at UTC+1
])
def test_a_resend_writing_the_same_instant_another_way_is_the_same_event(sc, written):
    moment = _as(sc, sc.D(1).replace(hour=10, minute=0, second=0, microsecond=0))
    first = sc.ledger.invoke(sc.contract, "MoveGoods", [_move("mv-1", moment)], "OperatorMSP")
    assert first.ok, first.message
    before = sc.ledger.snapshot()
    again = sc.ledger.invoke(sc.contract, "MoveGoods", [_move("mv-1", written(moment))], "OperatorMSP")
    assert again.ok and again.json()["tx_id"] == first.json()["tx_id"], again.message
    assert sc.ledger.snapshot() == before                       # nothing written by the resend


def test_another_instant_under_the_same_event_id_is_other_content(sc):
    moment = _as(sc, sc.D(1).replace(hour=10, minute=0, second=0, microsecond=0))
    assert sc.ledger.invoke(sc.contract, "MoveGoods", [_move("mv-2", moment)], "OperatorMSP").ok
    other = moment.replace("Z", ".000001Z")
    assert sc.ledger.invoke(sc.contract, "MoveGoods", [_move("mv-2", other)], "OperatorMSP").error_code == \
        "DuplicateEvent"


def test_an_event_hashed_before_instants_were_normalised_still_replays(sc):
    moment = _as(sc, sc.D(1).replace(hour=9, minute=0, second=0, microsecond=0)).replace("Z", "+00:00")
    event = _move("mv-3", moment)
    first = sc.ledger.invoke(sc.contract, "MoveGoods", [event], "OperatorMSP")
    assert first.ok
    key = sc.ledger.stub().create_composite_key(*(lambda k: (k[0], list(k[1:])))(keys.event("OperatorMSP", "mv-3")))
    record = json.loads(sc.ledger.state[key])
    tx = types.SimpleNamespace(caller=types.SimpleNamespace(msp_id="OperatorMSP"), commercial=None)
    before = eventlog.content_hash(tx, "MoveGoods", event, instants=False)
    assert before != record["hash"]
    sc.ledger._committed.put(key, canonical_json({**record, "hash": before}))
    again = sc.ledger.invoke(sc.contract, "MoveGoods", [event], "OperatorMSP")
    assert again.ok and again.json()["tx_id"] == first.json()["tx_id"]


def test_same_instants_reads_the_date_times_as_the_contract_does():
    assert eventlog.same_instants({"occurred_at": "2026-12-01T11:00:00.5+01:00", "new_deadline": "2027-01-01T00:00:00Z",
                                   "description": "2026-12-01T10:00:00Z"}) == \
        {"occurred_at": "2026-12-01T10:00:00.500000Z", "new_deadline": "2027-01-01T00:00:00.000000Z",
         "description": "2026-12-01T10:00:00Z"}                  # text is text
    assert eventlog.same_instants({"occurred_at": "yesterday"}) == {"occurred_at": "yesterday"}


# ---------------------------------------------------------------------------------------- acts of a backlog

def _late_recordings(s):
    return {a["details"]["event_id"]: a["details"] for a in s.query("GetAlerts", AUTH_ID)["alerts"]
            if a["type"] == "LateRecording" and "event_id" in a["details"]}


def _suspended_from_day_5_to_6(s):
    s.wait_until(s.D(5))
    s.accepted(s.submit("SuspendAuthorisation", {"authorisation_id": AUTH_ID, "reason": "audit"}, "CustomsMSP"))
    s.wait_until(s.D(6))
    s.accepted(s.submit("ReinstateAuthorisation", {"authorisation_id": AUTH_ID, "reason": "done"}, "CustomsMSP"))
    s.wait_until(s.D(6.5))


def test_a_placement_that_occurred_while_suspended_is_accepted_and_told_to_customs():
    """Acts are judged at ledger time (docs/domain.md §4): a placement recorded after the reinstatement, that
    occurred during the suspension (a day before: not late by the parameter's two days), was accepted with no
    alert at all. It is still accepted, and LateRecording names the status it occurred under."""
    s = Scenario.with_l1(InwardProcessingContract)
    _suspended_from_day_5_to_6(s)
    s.accepted(s.place("L2", 10, occurred_at=iso(s.D(5.5)), event_id="place-L2"))
    assert _late_recordings(s)["place-L2"]["not_in_force_then"] == {"status": "SUSPENDED"}
    s.accepted(s.process("OP1", [("L2", 10)], [retreaded(10, "B1")], occurred_at=iso(s.D(5.6)), event_id="op-1"))
    assert _late_recordings(s)["op-1"]["not_in_force_then"] == {"status": "SUSPENDED"}


def test_a_placement_that_occurred_before_the_validity_is_told_to_customs():
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant())
    before = s.D(-31)                                            # the validity starts on D-30
    s.accepted(s.place("L1", 10, occurred_at=iso(before), event_id="place-L1"))
    then = _late_recordings(s)["place-L1"]["not_in_force_then"]
    assert set(then) == {"validity"} and then["validity"]["valid_from"] == (s.D(-30)).date().isoformat()


def test_acts_that_occurred_in_force_carry_no_such_detail():
    s = Scenario.with_l1(InwardProcessingContract)
    _suspended_from_day_5_to_6(s)
    s.accepted(s.place("L2", 10, occurred_at=iso(s.D(4.5)), event_id="place-L2"))    # before the suspension
    s.accepted(s.place("L3", 10, occurred_at=iso(s.D(6.2)), event_id="place-L3"))    # after the reinstatement
    s.accepted(s.move(5, SITE1, SITE2, lot_id="L1", occurred_at=iso(s.D(5.5)), event_id="mv-L1"))  # moves go on
    assert _late_recordings(s) == {}
    s.wait_until(s.D(10))
    s.accepted(s.place("L4", 10, occurred_at=iso(s.D(2)), event_id="place-L4"))       # late, in force then
    assert "not_in_force_then" not in _late_recordings(s)["place-L4"]


# ---------------------------------------------------------------------------------------- figures beside limits

def test_a_refused_deviation_is_never_shown_equal_to_its_limit():
    """1,020,000,001 obtained for 10^9 expected is 2.0000001 % off: refused over the limit of 2 %, it read
    "2 % off (limit 2 %)"."""
    from ipledger.chaincode.testing.scenario import authorisation_fields
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant(**{"input_goods": [{**authorisation_fields(s.day)["input_goods"][0],
                                           "max_qty": 10 ** 15}]}))
    s.accepted(s.place("L1", 10 ** 9))
    res = s.process("OP1", [("L1", 10 ** 9)], [retreaded(1_020_000_001, "B1")])
    assert res.error_code == "YieldOutOfTolerance"
    assert "2.0000001 % off (limit 2 %)" in res.message, res.message


def test_a_loss_rate_alert_is_never_shown_equal_to_its_threshold():
    s = Scenario(InwardProcessingContract)
    from ipledger.chaincode.testing.scenario import authorisation_fields
    s.accepted(s.grant(**{"input_goods": [{**authorisation_fields(s.day)["input_goods"][0],
                                           "max_qty": 10 ** 15}]}))
    s.accepted(s.place("L1", 10 ** 8))
    s.accepted(s.lose(1_000_001, lot_id="L1", reason="NATURE"))      # 1.000001 % against 1 %
    [alert] = [a for a in s.query("GetAlerts", AUTH_ID)["alerts"] if a["type"] == "LossRateHigh"]
    assert alert["details"]["pct"] == "1.000001"


def test_text_beside_adds_places_only_where_a_limit_would_be_read():
    from fractions import Fraction
    from ipledger.chaincode.contract.decimals import text_beside
    assert text_beside(Fraction(5)) == "5"
    assert text_beside(Fraction(50000001, 10 ** 7), Fraction(5)) == "5.0000001"
    assert text_beside(Fraction(5), Fraction(5)) == "5"                  # equal: equal it reads
    assert text_beside(Fraction(2, 3), Fraction(5)) == "0.6667"          # far from it: the usual places
    assert text_beside(Fraction(5) + Fraction(1, 10 ** 20), Fraction(5)) == "5"   # past 12 places: no further
