"""Time edge cases: a placement keeps the period for discharge in force when its declaration was accepted, and one dated
a little ahead does not hold back its goods' next events.

* An amendment applies forward only: a placement declared (``occurred_at``) before an amendment of the period for
  discharge and recorded after it took the amended period — a lot declared under 180 days got 365. Its period is
  the one in force when its declaration was accepted, as its deadline runs from that moment.
* A placement dated a little ahead of its ledger time (within the tolerated clock skew) has its legal time at its
  recording (``time_rules.legal_time``), but the events on its goods were compared with the raw ``occurred_at``:
  an exit recorded a minute later, at its own ledger time, was refused ``OutOfOrder`` for up to five minutes.
"""
from __future__ import annotations

import datetime as dt

from ipledger.chaincode.contract.contract import InwardProcessingContract
from ipledger.chaincode.testing.scenario import AUTH_ID, Scenario, authorisation_fields, iso


def _amend_period(sc: Scenario, days: int) -> None:
    sc.accepted(sc.submit("AmendAuthorisation", {"authorisation_id": AUTH_ID,
                                                 **authorisation_fields(sc.day, discharge_period_days=days)},
                          "CustomsMSP"))


def _deadline(res) -> dt.datetime:
    return dt.datetime.fromisoformat(res.json()["lot"]["deadline"].replace("Z", "+00:00"))


def test_a_placement_declared_before_the_period_was_lengthened_keeps_the_period_it_was_declared_under():
    sc = Scenario(InwardProcessingContract)          # granted with 180 days
    sc.accepted(sc.grant())
    declared = sc.D(0.5)
    sc.wait_until(sc.D(1))
    _amend_period(sc, 365)
    sc.wait_until(sc.D(2))
    before = sc.place("C", 10, occurred_at=iso(declared))           # declared under the 180-day terms
    after = sc.place("N", 10, occurred_at=iso(sc.D(1.5)))            # declared under the 365-day terms
    assert before.ok and after.ok, (before.message, after.message)
    assert _deadline(before) == declared + dt.timedelta(days=180)
    assert _deadline(after) == sc.D(1.5) + dt.timedelta(days=365)


def test_a_placement_declared_before_the_period_was_shortened_keeps_its_longer_period():
    sc = Scenario(InwardProcessingContract)
    sc.accepted(sc.grant(discharge_period_days=365))
    declared = sc.D(0.5)
    sc.wait_until(sc.D(1))
    _amend_period(sc, 90)
    sc.wait_until(sc.D(1.25))
    _amend_period(sc, 120)                                           # two amendments since the declaration
    sc.wait_until(sc.D(2))
    assert _deadline(sc.place("C", 10, occurred_at=iso(declared))) == declared + dt.timedelta(days=365)
    assert _deadline(sc.place("M", 10, occurred_at=iso(sc.D(1.1)))) == sc.D(1.1) + dt.timedelta(days=90)
    assert _deadline(sc.place("N", 10, occurred_at=iso(sc.D(1.9)))) == sc.D(1.9) + dt.timedelta(days=120)


def test_an_amendment_leaving_the_period_as_it_was_changes_no_deadline():
    sc = Scenario(InwardProcessingContract)
    sc.accepted(sc.grant())
    sc.wait_until(sc.D(1))
    _amend_period(sc, 180)
    sc.wait_until(sc.D(2))
    assert _deadline(sc.place("C", 10, occurred_at=iso(sc.D(0.5)))) == sc.D(0.5) + dt.timedelta(days=180)
    assert "discharge_periods" not in sc.query("GetAuthorisation", AUTH_ID)


def test_an_exit_right_after_a_placement_dated_a_little_ahead_is_in_order():
    sc = Scenario(InwardProcessingContract)
    sc.accepted(sc.grant())
    now = sc.ledger.now
    sc.accepted(sc.place("F", 10, occurred_at=iso(now + dt.timedelta(seconds=290))))   # within the clock skew
    sc.wait_until(now + dt.timedelta(seconds=60))
    sc.accepted(sc.exit(4, lot_id="F", msp="OperatorMSP"))
    sc.accepted(sc.lose(1, lot_id="F"))
    assert sc.lot("F")["balance"] == 5
    # still refused: an event dated before the placement's legal time (its recording)
    sc.refused("OutOfOrder", sc.exit, 1, lot_id="F", msp="OperatorMSP", occurred_at=iso(now - dt.timedelta(seconds=1)))


def test_goods_and_bills_asked_for_by_id_are_refused_to_others_as_if_there_were_none():
    """A lot, batch or bill a party may not read (another holder's; a representative's without a mandate) is
    refused exactly as an id not in use: the NotPermitted named the owning authorisation and told the id was taken."""
    from ipledger.chaincode.testing.scenario import retreaded, waste
    sc = Scenario.with_l1(InwardProcessingContract)
    sc.accepted(sc.process("OP1", [("L1", 10)], [retreaded(10, "B1"), waste(5, "W1")]))
    sc.accepted(sc.submit("AmendAuthorisation", {"authorisation_id": AUTH_ID,
                                                 **authorisation_fields(sc.day, broker_mandates=[])}, "CustomsMSP"))
    for fn, known, unknown in (("GetLot", "L1", "L404"), ("GetLotHistory", "L1", "L404"),
                               ("GetBatch", "B1", "B404"), ("GetBatchHistory", "B1", "B404")):
        refused = sc.ledger.evaluate(sc.contract, fn, [known], "BrokerMSP")
        absent = sc.ledger.evaluate(sc.contract, fn, [unknown], "BrokerMSP")
        assert refused.error_code == absent.error_code == "NotFound", (fn, refused.message)
        assert AUTH_ID not in refused.message and "authorisation" not in refused.json()["details"], refused.message
        assert refused.json()["message"] == absent.json()["message"].replace(unknown, known)
    assert sc.query("GetLot", "L1", msp="OperatorMSP")["lot_id"] == "L1"      # the holder still reads it
