"""An amendment changes the validity forward only, an authorisation whose validity has ended is not suspended, and the
contract answers proposals made to it, not another chaincode's calls of it."""
import datetime as dt

import pytest

from ipledger.chaincode.contract import InwardProcessingContract
from ipledger.chaincode.testing import mrns
from ipledger.chaincode.testing.scenario import AUTH_ID, Scenario, authorisation_fields, iso


def _amend(s, **fields):
    return s.submit("AmendAuthorisation", {"authorisation_id": AUTH_ID, **authorisation_fields(s.day, **fields)},
                    "CustomsMSP")


def test_an_amendment_cannot_end_the_validity_behind_the_acts_already_recorded():
    """L1 was placed today under the authorisation: ending its validity yesterday would leave that placement made
    outside it, with no alert. Refused; ending it at the end of today (from now on) is an amendment like any."""
    s = Scenario.with_l1(InwardProcessingContract)
    yesterday, today = (s.D(-1).date().isoformat(), s.D().date().isoformat())
    details = s.refused("InvalidEvent", _amend, s, valid_to=yesterday)
    assert details["valid_to"] == yesterday
    assert s.query("GetAuthorisation", AUTH_ID)["status"] == "ACTIVE"
    assert s.accepted(_amend(s, valid_to=today))["authorisation"]["valid_to"] == today


def test_an_amendment_cannot_move_the_start_of_a_validity_already_begun_later():
    s = Scenario.with_l1(InwardProcessingContract)                 # valid from D-30, L1 placed at D
    for later in (s.D(-1), s.D(10)):
        s.refused("InvalidEvent", _amend, s, valid_from=later.date().isoformat())
    earlier = s.D(-60).date().isoformat()                          # an earlier start takes nothing back
    assert s.accepted(_amend(s, valid_from=earlier))["authorisation"]["valid_from"] == earlier


def test_an_ended_validity_may_be_lengthened_even_to_an_end_still_past():
    """Lengthening takes nothing back: valid to D+335, at D+400 it may be made valid to D+380 (the time between was
    not in force, and refused acts stay refused) or to a date to come."""
    s = Scenario.with_l1(InwardProcessingContract)
    s.wait_until(s.D(400))
    for later in (s.D(380), s.D(500)):
        assert s.accepted(_amend(s, valid_to=later.date().isoformat()))["authorisation"]["valid_to"] == \
            later.date().isoformat()
    s.refused("InvalidEvent", _amend, s, valid_to=s.D(390).date().isoformat())   # shortened, behind its time


def test_an_amendment_leaving_the_validity_as_it_is_is_not_held_to_it():
    """An authorisation whose validity has ended can still have its representatives' mandates changed (its goods
    are still to be discharged): the dates it keeps are not a new end."""
    s = Scenario.with_l1(InwardProcessingContract)
    s.wait_until(s.D(400))                                         # valid to D+335: EXPIRED
    assert s.query("GetAuthorisation", AUTH_ID)["status"] == "EXPIRED"
    assert s.accepted(_amend(s, broker_mandates=[]))["authorisation"]["version"] == 2


def test_an_authorisation_whose_validity_has_ended_is_not_suspended():
    """Every view shows it EXPIRED; a suspension was accepted all the same (recorded SUSPENDED, raising
    AuthorisationSuspended) because it checked the status customs last set, not the one in force."""
    s = Scenario.with_l1(InwardProcessingContract)
    s.wait_until(s.D(336) + dt.timedelta(hours=1))
    details = s.refused("InvalidState", s.submit, "SuspendAuthorisation",
                        {"authorisation_id": AUTH_ID, "reason": "audit"}, "CustomsMSP")
    assert details["status"] == "EXPIRED"
    assert "AuthorisationSuspended" not in [a["type"] for a in s.query("GetAlerts", AUTH_ID)["alerts"]]


def _exit(s, event_id, n):
    return {"authorisation_id": AUTH_ID, "lot_id": "L1", "quantity": 1000, "procedure": "3151",
            "mrn": mrns.exit_mrn(n), "event_id": event_id, "occurred_at": iso(s.ledger.now)}


@pytest.mark.parametrize("proposed", [
    [b"Twice", b'"ipledger"', b"[]", b"[]"],                      # another chaincode's function, calling the contract
    [b"ExitGoods", b'{"event_id": "another"}'],                   # the contract's function, with other arguments
    [],                                                           # a proposal without input
])
def test_the_contract_refuses_another_chaincodes_call_of_it(proposed):
    """A chaincode calling the contract twice in one transaction exited a lot of 1,000 twice: each call saw the lot
    whole (a transaction's own writes are not read back), the last write won, the first exit's log entry was lost and
    no chaincode event reached any feed. The contract now runs only for a proposal made to it."""
    s = Scenario.with_l1(InwardProcessingContract)
    event = _exit(s, "via-another", 1)
    details = s.refused("NotPermitted", s.ledger.invoke, s.contract, "ExitGoods", [event], "OperatorMSP",
                        proposed_args=proposed)
    assert "proposed_chaincode" in details
    refused = s.ledger.evaluate(s.contract, "GetLot", ["L1"], "OperatorMSP", proposed_args=proposed)
    assert refused.error_code == "NotPermitted"                     # reads too: its answer would go to that chaincode
    assert s.accepted(s.ledger.invoke(s.contract, "ExitGoods", [event], "OperatorMSP"))["lot"]["balance"] == 0


def test_a_proposal_that_does_not_parse_is_not_one_to_the_contract():
    """Fail closed: what the peer passed as the signed proposal cannot be read — refused, not taken as direct."""
    from ipledger.chaincode.contract import roles
    from ipledger.chaincode.contract.errors import NotPermitted
    s = Scenario.with_l1(InwardProcessingContract)
    stub = s.ledger.stub("GetLot", ["L1"], msp="OperatorMSP")
    stub.get_proposed_call = lambda: None    # the shim's answer when the proposal's input does not parse
    with pytest.raises(NotPermitted):
        roles.require_direct_call(stub)


def _bill(s, period_end: str) -> None:
    data = s.query("GetBillOfDischargeData", AUTH_ID, period_end, msp="OperatorMSP")
    s.accepted(s.submit("SubmitBillOfDischarge", {"authorisation_id": AUTH_ID, "period_end": period_end,
                                                  "document_hash": data["document_hash"]}, "OperatorMSP"))


def _bill_alerts(s, moment) -> list[tuple[str, str, list]]:
    return [(a["type"], a["subject"], a["details"].get("carried", [])) for a in
            s.query("GetAlerts", AUTH_ID, moment.isoformat())["alerts"] if a["type"].startswith("BillOfDischarge")]


def test_disposals_of_goods_the_last_bill_left_overdue_ask_for_the_next_bill():
    """After the last bill of a revoked authorisation had listed L1, B1 and W1 OVERDUE, their exits and destruction
    raised no alert: the next bill lists them (carried_from), but with no later lot's period ending nothing asked
    for it. They are due 30 days after the day of the first of them — and once a bill lists them, no longer."""
    from ipledger.chaincode.testing.scenario import retreaded, waste
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant())
    s.accepted(s.place("L1", 1000))
    s.accepted(s.process("OP1", [("L1", 500)], [retreaded(500, "B1"), waste(100, "W1")]))
    s.accepted(s.submit("RevokeAuthorisation", {"authorisation_id": AUTH_ID, "reason": "plant closed"}, "CustomsMSP"))
    s.wait_until(s.D(186))
    _bill(s, s.D(185).date().isoformat())
    assert _bill_alerts(s, s.D(187)) == []
    s.wait_until(s.D(190))
    s.accepted(s.exit(500, lot_id="L1", procedure="4051"))
    s.accepted(s.exit(500, batch_id="B1", procedure="3151"))
    s.accepted(s.lose(100, batch_id="W1", reason="DESTROYED"))
    day = s.D(190).date().isoformat()
    assert _bill_alerts(s, s.D(200)) == []                      # due D+220: 10 days' warning (bill_warn_days)
    assert _bill_alerts(s, s.D(215)) == [("BillOfDischargeDue", day, ["BATCH:B1", "BATCH:W1", "LOT:L1"])]
    assert _bill_alerts(s, s.D(230)) == [("BillOfDischargeLate", day, ["BATCH:B1", "BATCH:W1", "LOT:L1"])]
    s.wait_until(s.D(231))
    _bill(s, s.D(230).date().isoformat())                 # the bill that lists them
    assert _bill_alerts(s, s.D(232)) == []
    # as of a moment before that bill (replayed from the log), they were still asked for
    assert _bill_alerts(s, s.D(225)) == [("BillOfDischargeLate", day, ["BATCH:B1", "BATCH:W1", "LOT:L1"])]


def test_a_bill_left_overdue_goods_untouched_asks_for_nothing_more():
    s = Scenario.with_l1(InwardProcessingContract)
    s.wait_until(s.D(186))
    _bill(s, s.D(185).date().isoformat())                 # L1 OVERDUE, nothing done with it since
    assert _bill_alerts(s, s.D(400)) == []


def _disposals(s, period_end: str) -> list[tuple]:
    data = s.query("GetBillOfDischargeData", AUTH_ID, period_end, msp="OperatorMSP")
    return sorted((x["goods"], x["id"], x.get("carried_from")) for x in data["disposals"] + data["losses"])


def test_goods_the_next_bill_does_not_carry_are_not_asked_for_by_it():
    """The alert follows the bill's own rule of what it carries (billing.carried_goods): an overdue lot extended
    after the bill is its new deadline's bill's own goods, so is a batch one of whose source lots is due later —
    their disposals are not in the next bill, and that bill is not asked for them (their own deadline's is)."""
    from ipledger.chaincode.testing.scenario import retreaded
    s = Scenario.with_l1(InwardProcessingContract)
    s.wait_until(s.D(186))
    _bill(s, s.D(185).date().isoformat())                                  # L1 OVERDUE
    s.wait_until(s.D(187))
    s.accepted(s.submit("ExtendDischargePeriod", {"authorisation_id": AUTH_ID, "lot_ids": ["L1"],
                                                  "new_deadline": iso(s.D(300))}, "CustomsMSP"))
    s.wait_until(s.D(190))
    s.accepted(s.exit(100, lot_id="L1"))
    s.wait_until(s.D(231))
    assert _disposals(s, s.D(230).date().isoformat()) == []
    assert _bill_alerts(s, s.D(215)) == []

    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant())
    s.accepted(s.set_parameters(max_clock_skew_s=400 * 86400))
    s.accepted(s.place("L1", 1000))
    s.accepted(s.place("L2", 1000, ts=s.D(100)))
    s.accepted(s.process("OP1", [("L1", 500), ("L2", 500)], [retreaded(1000, "B1")], ts=s.D(120)))
    s.wait_until(s.D(186))
    _bill(s, s.D(185).date().isoformat())                                  # L1 and B1 OVERDUE
    s.wait_until(s.D(190))
    s.accepted(s.exit(300, batch_id="B1"))
    s.wait_until(s.D(231))
    assert _disposals(s, s.D(230).date().isoformat()) == []                 # B1 is the bill of L2's deadline's own
    assert _bill_alerts(s, s.D(215)) == []
