"""A lot's extension reaches its batches, a declaration shows each party its own items, a bill carries each item's exit
confirmation and its terms, and a mandate can be ended after revocation."""
from __future__ import annotations

import pytest

from ipledger.chaincode.contract import InwardProcessingContract
from ipledger.chaincode.testing.scenario import (AUTH_ID, SITE1, SITE2, Scenario, authorisation_fields, iso, mrn,
                                        retreaded)

AUTH_B = "FRIPO000002"


@pytest.fixture
def sc():
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant())
    return s


def test_extending_a_lot_reaches_a_batch_whose_other_source_lots_share_has_left(sc):
    """B1 is made from L1 and L2; its first 100 units leave (FIFO: all of L1's share), so what is left in
    B1 is L2's. Extending L2 must carry B1 with it: L1's deadline no longer holds B1."""
    sc.accepted(sc.place("L1", 100))
    sc.accepted(sc.place("L2", 100))
    sc.accepted(sc.process("OP1", [("L1", 100), ("L2", 100)], [retreaded(200, "B1")]))
    sc.accepted(sc.exit(100, batch_id="B1"))
    assert sc.lot("L1")["status"] == "DISCHARGED"
    later = iso(sc.D(400))
    result = sc.accepted(sc.submit("ExtendDischargePeriod", {"authorisation_id": AUTH_ID, "lot_ids": ["L2"],
                                                             "new_deadline": later}, "CustomsMSP"))
    assert result["batches"] == {"B1": result["lots"]["L2"]}
    assert sc.batch("B1")["deadline"] == sc.lot("L2")["deadline"]
    sc.accepted(sc.set_parameters(max_clock_skew_s=300 * 86400))
    sc.accepted(sc.move(10, SITE1, SITE2, batch_id="B1", ts=sc.D(200)))   # not overdue any more


def test_a_batch_that_has_all_left_still_follows_its_lots_extension(sc):
    sc.accepted(sc.place("L1", 1000))
    sc.accepted(sc.process("OP1", [("L1", 500)], [retreaded(495, "B1")], ))
    sc.accepted(sc.exit(495, batch_id="B1"))
    result = sc.accepted(sc.submit("ExtendDischargePeriod", {"authorisation_id": AUTH_ID, "lot_ids": ["L1"],
                                                             "new_deadline": iso(sc.D(400))}, "CustomsMSP"))
    assert result["batches"] == {"B1": result["lots"]["L1"]}


def test_while_a_source_lots_share_is_still_in_the_batch_its_deadline_holds(sc):
    sc.accepted(sc.place("L1", 100))
    sc.accepted(sc.place("L2", 100))
    sc.accepted(sc.process("OP1", [("L1", 100), ("L2", 100)], [retreaded(200, "B1")]))
    sc.accepted(sc.exit(50, batch_id="B1"))   # half of L1's share
    result = sc.accepted(sc.submit("ExtendDischargePeriod", {"authorisation_id": AUTH_ID, "lot_ids": ["L2"],
                                                             "new_deadline": iso(sc.D(400))}, "CustomsMSP"))
    assert result["batches"] == {}
    assert sc.batch("B1")["deadline"] == sc.lot("L1")["deadline"]


def test_a_declaration_shows_the_caller_its_own_items_and_nothing_of_the_others(sc):
    """The broker re-exports LA (its mandate) under MRN M; the holder puts an item of another authorisation,
    which the broker holds no mandate for, under the same MRN. The broker reads its item, and learns
    nothing of the other, not even its authorisation."""
    sc.accepted(sc.grant(AUTH_B, **{"broker_mandates": []}))
    sc.accepted(sc.place("LA", 10))
    sc.accepted(sc.place("LB", 10, auth_id=AUTH_B, msp="OperatorMSP"))
    m = mrn("E", 4243)
    sc.accepted(sc.exit(5, lot_id="LA", mrn_=m, item_no=1))
    sc.accepted(sc.submit("ExitGoods", {"authorisation_id": AUTH_B, "lot_id": "LB", "quantity": 5,
                                        "procedure": "3151", "mrn": m, "item_no": 2}, "OperatorMSP"))
    broker = sc.query("GetDeclaration", m, msp="BrokerMSP")
    assert [(i["item_no"], i["authorisation_id"]) for i in broker["items"]] == [(1, AUTH_ID)]
    assert AUTH_B not in str(broker)
    assert [i["item_no"] for i in sc.query("GetDeclaration", m)["items"]] == [1, 2]     # customs: all
    only_b = mrn("E", 4244)
    sc.accepted(sc.submit("ExitGoods", {"authorisation_id": AUTH_B, "lot_id": "LB", "quantity": 1,
                                        "procedure": "3151", "mrn": only_b, "item_no": 1}, "OperatorMSP"))
    refused = sc.ledger.evaluate(sc.contract, "GetDeclaration", [only_b], "BrokerMSP")
    assert refused.error_code == "NotFound" and AUTH_B not in refused.message


def test_each_re_exported_item_carries_its_own_confirmation_in_the_bill(sc):
    sc.accepted(sc.place("L1", 100))
    m = mrn("E", 777)
    sc.accepted(sc.exit(10, lot_id="L1", mrn_=m, item_no=1))
    confirmed = sc.accepted(sc.submit("ConfirmExit", {"authorisation_id": AUTH_ID, "mrn": m,
                                                      "exit_date": sc.D(0).date().isoformat()}, "CustomsMSP"))
    assert [c["item_no"] for c in confirmed["confirmed"]] == [1]
    sc.accepted(sc.exit(5, lot_id="L1", mrn_=m, item_no=2))   # declared after the confirmation
    bill = sc.query("GetBillOfDischargeData", AUTH_ID, None, iso(sc.ledger.now))
    by_item = {d["item_no"]: d["exit_confirmed"] for d in bill["disposals"]}
    assert by_item[1] is not None and by_item[1]["exit_date"] == sc.D(0).date().isoformat()
    assert by_item[2] is None
    second = sc.accepted(sc.submit("ConfirmExit", {"authorisation_id": AUTH_ID, "mrn": m,
                                                   "exit_date": sc.D(0).date().isoformat()}, "CustomsMSP"))
    bill = sc.query("GetBillOfDischargeData", AUTH_ID, None, iso(sc.ledger.now))
    tx_of = {d["item_no"]: d["exit_confirmed"]["tx_id"] for d in bill["disposals"]}
    assert tx_of[2] != tx_of[1] and [c["item_no"] for c in second["confirmed"]] == [2]


def test_an_amendment_after_the_cut_off_changes_neither_the_bill_nor_its_hash():
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant())
    s.accepted(s.set_parameters(max_clock_skew_s=400 * 86400))
    s.accepted(s.place("L1", 1000))
    period_end = s.D(185).date().isoformat()
    before = s.query("GetBillOfDischargeData", AUTH_ID, period_end, msp="OperatorMSP", ts=s.D(186))
    s.accepted(s.submit("SubmitBillOfDischarge", {"authorisation_id": AUTH_ID, "period_end": period_end,
                                                  "document_hash": before["document_hash"]}, "OperatorMSP",
                        ts=s.D(186)))
    s.accepted(s.submit("AmendAuthorisation", {"authorisation_id": AUTH_ID, **authorisation_fields(
        s.day, broker_mandates=[], supervising_office="FR000999",
        yield_rates=[{"input_cn": "40122000", "output_cn": "40121200", "output_per_input": 0.9}])}, "CustomsMSP",
        ts=s.D(187)))
    assert s.query("GetAuthorisation", AUTH_ID)["version"] == 2
    after = s.query("GetBillOfDischargeData", AUTH_ID, period_end, msp="OperatorMSP", ts=s.D(188))
    assert after["document_hash"] == before["document_hash"]
    assert (after["authorisation_version"], after["supervising_office"]) == (1, before["supervising_office"])
    # a bill whose period ends after the amendment shows the amended terms
    later = s.query("GetBillOfDischargeData", AUTH_ID, None, iso(s.D(188)), ts=s.D(188))
    assert (later["authorisation_version"], later["supervising_office"]) == (2, "FR000999")
    assert later["lots"][0]["rates_of_yield"][0]["output_per_input"] == 0.9


def test_a_representatives_mandate_can_still_be_ended_once_the_authorisation_is_revoked(sc):
    sc.accepted(sc.place("L1", 100))
    sc.accepted(sc.submit("RevokeAuthorisation", {"authorisation_id": AUTH_ID, "reason": "fraud"}, "CustomsMSP"))
    fields = authorisation_fields(sc.day)
    details = sc.refused("InvalidState", sc.submit, "AmendAuthorisation",
                         {"authorisation_id": AUTH_ID, **fields, "broker_mandates": [], "sites": [SITE1]},
                         "CustomsMSP")
    assert details["changed"] == ["sites"]
    sc.accepted(sc.submit("AmendAuthorisation", {"authorisation_id": AUTH_ID, **fields, "broker_mandates": []},
                          "CustomsMSP"))
    sc.refused("NotPermitted", sc.exit, 10, lot_id="L1")   # the broker no longer acts for it
    assert sc.accepted(sc.exit(10, lot_id="L1", msp="OperatorMSP"))   # its goods still leave, by the holder
