"""domain.md §8 end to end on the real network: every step endorsed by customs and the
submitter's side, ordered and committed; balances, alerts and the bill of discharge
checked after each step; refusals leave the channel height unchanged."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from ipledger.chaincode.testing.scenario import (AUTH_ID, EXIT_MRN_B1, PLACE_MRN_L1,
                                        SITE1, SITE2, USED_TYRES, iso, mrn, retreaded, waste)
from tests.integration.realscenario import RealScenario

pytestmark = pytest.mark.fabric
CHAINCODE = "ipledger-scenario"


@pytest.fixture(scope="module")
def s(fabric_network, clients):
    from ipledger.network.channel.package import ChaincodeSpec
    from ipledger.network.channel.chaincode import Deployer
    spec = ChaincodeSpec.default()
    spec.name = CHAINCODE  # its own namespace: other suites use 'ipledger'
    Deployer(fabric_network, log=lambda *_: None).deploy(spec)
    scenario = RealScenario(clients, CHAINCODE)
    scenario.accepted(scenario.grant())
    return scenario


@pytest.fixture(scope="module")
def results():
    return {}


def balance(s, category, cn):
    [row] = [b for b in s.query("GetBalances", AUTH_ID)["balances"]
             if b["category"] == category and b["cn"] == cn]
    return row


def step1_event(s):
    return {"authorisation_id": AUTH_ID, "occurred_at": iso(s.D()), "event_id": "broker-0001",
            "lot_id": "L1", "mrn": PLACE_MRN_L1, "item_no": 1, "procedure": "5100",
            "cn": USED_TYRES, "description": "used pneumatic tyres for retreading",
            "quantity": 1000, "unit": "p/st", "net_mass_g": 9_500_000, "origin": "MA",
            "site": SITE1}


STEP1_VALUE = {"commercial": {"customs_value": {"amount": "25000.00", "currency": "EUR"}, "nonce": "nonce-of-step-1-L1"}}


def test_step1_broker_places_L1_with_a_private_customs_value(s, results):
    results[1] = s.accepted(s.submit("PlaceUnderProcedure", step1_event(s), "BrokerMSP",
                                     transient=STEP1_VALUE))
    lot = s.lot("L1")
    assert (lot["balance"], lot["stock"], lot["mrn"], lot["status"]) == (
        1000, {SITE1: 1000}, PLACE_MRN_L1, "OPEN")
    assert lot["commercial"]["customs_value"] == {"amount": "25000.00", "currency": "EUR"}
    assert s.lot("L1", msp="OperatorMSP")["commercial"]["customs_value"]["amount"] == "25000.00"
    broker_view = s.lot("L1", msp="BrokerMSP")
    assert "25000" not in json.dumps(broker_view)  # the broker sees no commercial value
    assert balance(s, "INPUT", USED_TYRES)["stock"] == 1000


def test_step2_operator_moves_400_to_bourges2(s):
    s.accepted(s.move(400, SITE1, SITE2, lot_id="L1"))
    assert s.lot("L1")["stock"] == {SITE1: 600, SITE2: 400}


def test_step3_refused_variant_then_processing_with_a_yield_deviation(s, results):
    details = s.refused("YieldOutOfTolerance", s.process, "OP1", [("L1", 500)],
                        [retreaded(480, "B1"), waste(1200, "B2")])
    assert details["actual_per_input"] == "0.96"
    results[3] = s.accepted(s.process("OP1", [("L1", 500)], [retreaded(495, "B1"),
                                                             waste(1200, "B2")]))
    lot = s.lot("L1")
    assert (lot["balance"], lot["stock"], lot["consumed"]) == (500, {SITE1: 100, SITE2: 400}, 500)
    assert (s.batch("B1")["balance"], s.batch("B2")["balance"]) == (495, 1200)
    [alert] = [a for a in s.query("GetAlerts", AUTH_ID)["alerts"] if a["type"] == "YieldDeviation"]
    assert alert["details"]["deviation_pct"] == "1"


def test_step4_broker_re_exports_B1(s):
    res = s.accepted(s.exit(495, batch_id="B1", procedure="3151", mrn_=EXIT_MRN_B1))
    assert res["exit"]["attribution"] == [{"lot_id": "L1", "qty": 495, "input_qty": 500}]
    assert s.batch("B1")["balance"] == 0


def test_step5_exit_above_the_balance_is_refused(s):
    details = s.refused("QuantityExceedsBalance", s.exit, 600, lot_id="L1", msp="OperatorMSP")
    assert details["available"] == 500
    assert s.lot("L1")["balance"] == 500


def test_step6_ceiling_near_then_exceeded(s):
    res = s.accepted(s.place("L2", 4200, mrn_=mrn("I", 2)))
    assert res["under_procedure"]["quantity"] == 4700
    assert [a["details"]["pct"] for a in s.query("GetAlerts", AUTH_ID)["alerts"]
            if a["type"] == "CeilingNear"] == ["94"]
    details = s.refused("CeilingExceeded", s.place, "L3", 400)
    assert details["max_qty"] == 5000


def test_step7_deadline_alerts_as_of_D151_and_D181(s):
    def deadline_alerts(as_of):
        return sorted((a["type"], a["details"]["id"], a["details"]["balance"])
                      for a in s.query("GetAlerts", AUTH_ID, iso(as_of))["alerts"]
                      if a["type"].startswith("Deadline"))
    # B2, the 1,200 kg of waste made from L1, is under the procedure too until it leaves
    assert deadline_alerts(s.D(151)) == [("DeadlineApproaching", "B2", 1200), ("DeadlineApproaching", "L1", 500),
                                         ("DeadlineApproaching", "L2", 4200)]
    assert deadline_alerts(s.D(181)) == [("DeadlineOverdue", "B2", 1200), ("DeadlineOverdue", "L1", 500),
                                         ("DeadlineOverdue", "L2", 4200)]


def test_step8_bill_of_discharge_data_as_of_D1(s):
    bill = s.query("GetBillOfDischargeData", AUTH_ID, None, iso(s.D(1)), msp="OperatorMSP")
    assert [(lot["lot_id"], lot["quantity"]) for lot in bill["lots"]] == [("L1", 1000), ("L2", 4200)]
    assert bill["lots"][0]["customs_value"] == {"amount": "25000.00", "currency": "EUR"}
    [op] = bill["processing"]
    assert op["yield"][0]["actual_per_input"] == "0.99"
    assert [(d["procedure"], d["mrn"], d["quantity"]) for d in bill["disposals"]] == [
        ("3151", EXIT_MRN_B1, 495)]
    assert [(w["batch_id"], w["produced"]) for w in bill["waste"]] == [("B2", 1200)]
    assert [(r["id"], r["quantity"]) for r in bill["remaining"]] == [("L1", 500), ("L2", 4200), ("B2", 1200)]
    assert bill["proof"]["conservation_holds"] is True
    assert len(bill["document_hash"]) == 64
    # Every org computes the same document hash (customs values enter it hashed).
    again = s.query("GetBillOfDischargeData", AUTH_ID, None, iso(s.D(1)), msp="CustomsMSP")
    assert again["document_hash"] == bill["document_hash"]


def test_step9_replay_returns_the_original_tx_and_changed_content_is_refused(s, results):
    before = s.height()
    replay = s.accepted(s.submit("PlaceUnderProcedure", step1_event(s), "BrokerMSP",
                                 transient=STEP1_VALUE))
    assert replay["tx_id"] == results[1]["tx_id"]
    assert s.lot("L1")["balance"] == 500
    assert s.height() >= before  # the replay may be committed as a no-op; nothing changes
    details = s.refused("DuplicateEvent", s.submit, "PlaceUnderProcedure",
                        {**step1_event(s), "quantity": 999}, "BrokerMSP", transient=STEP1_VALUE)
    assert details["original_tx_id"] == results[1]["tx_id"]


def test_history_of_L1_has_the_real_tx_ids_and_submitters(s, results):
    history = s.query("GetLotHistory", "L1", msp="BrokerMSP")["history"]
    assert [h["event_type"] for h in history] == [
        "PlaceUnderProcedure", "MoveGoods", "RecordProcessing", "ExitGoods"]
    assert history[0]["tx_id"] == results[1]["tx_id"]
    assert history[0]["submitted_by"]["msp_id"] == "BrokerMSP"
    assert history[1]["submitted_by"]["msp_id"] == "OperatorMSP"
    # each entry is the event log's entry, read through the lot's reference, with L1's effects only
    assert {e["op"] for e in history[2]["effects"]} >= {"consume"}
    batch = s.query("GetBatchHistory", "B1", msp="CustomsMSP")["history"]
    assert [h["event_type"] for h in batch] == ["RecordProcessing", "ExitGoods"]
    assert batch[0]["tx_id"] == history[2]["tx_id"] and batch[0]["event"] == history[2]["event"]
    assert [e["batch"]["batch_id"] for e in batch[0]["effects"]] == ["B1"]


def test_clock_skew_a_proposal_dated_ahead_is_refused_by_customs_rule(s):
    ahead = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=10)  # inside the peer's window
    details = s.refused("ClockSkew", s.move, 1, SITE1, SITE2, lot_id="L1", ts=ahead)
    assert details  # names the skew


# ------------------------------------------------------------------------ acts before the grant, held acts

AUTH_LATE = "FRIPO000077"


def test_an_act_timestamped_before_its_authorisations_grant_is_refused(s):
    """A client clock a little slow (within max_clock_skew_s) must not place goods before the grant of
    their authorisation, where its log, history and bills would never show them."""
    s.accepted(s.grant(AUTH_LATE))
    granted_at = s.query("GetAuthorisation", AUTH_LATE)["granted_at"]
    before = dt.datetime.fromisoformat(granted_at.replace("Z", "+00:00")) - dt.timedelta(seconds=90)
    details = s.refused("OutOfOrder", s.place, "LATE-1", 10, auth_id=AUTH_LATE, ts=before)
    assert details["granted_at"] == granted_at
    s.accepted(s.place("LATE-1", 10, auth_id=AUTH_LATE))


def test_an_act_endorsed_before_a_bill_is_submitted_and_ordered_after_it_is_invalidated(s):
    """The submission of a bill of discharge writes the authorisation, which every act reads: an exit
    endorsed before it and sent for ordering after it fails Fabric's read-set check (MVCC), so it cannot
    slip into the period the bill closed."""
    from fabric_protos.peer import transaction_pb2

    assert s.query("GetLot", "LATE-1")["balance"] == 10   # placed by the test above
    broker = s.clients.contract("BrokerMSP", s.chaincode)
    tx_id, envelope = _endorse(broker, "ExitGoods", {
        "authorisation_id": AUTH_LATE, "lot_id": "LATE-1", "quantity": 10, "procedure": "3151",
        "mrn": mrn("E", 7701), "event_id": "held-exit", "occurred_at": iso(dt.datetime.now(dt.timezone.utc))})
    yesterday = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)).date().isoformat()
    document_hash = s.query("GetBillOfDischargeData", AUTH_LATE, yesterday, msp="OperatorMSP")["document_hash"]
    bill = s.accepted(s.submit("SubmitBillOfDischarge", {"authorisation_id": AUTH_LATE, "period_end": yesterday,
                                                         "document_hash": document_hash}, "OperatorMSP"))["bill"]
    assert s.query("GetAuthorisation", AUTH_LATE)["closed_until"] == bill["cutoff"]
    status = _order(broker, tx_id, envelope)
    assert transaction_pb2.TxValidationCode.Name(status.result) == "MVCC_READ_CONFLICT"
    s.wait_committed_everywhere(status.block_number)
    assert s.query("GetLot", "LATE-1")["balance"] == 10   # the held exit changed nothing


def _endorse(contract, function: str, event: dict):
    """Endorse only (the first step of a submit): the signed transaction, not yet sent for ordering."""
    from fabric_protos.gateway import gateway_pb2

    from ipledger.gateway.client.proposal import build_proposal
    gw = contract.gateway
    proposal = build_proposal(gw.identity, contract.channel_id, contract.chaincode, function, [json.dumps(event)])
    endorsed = gw.stub.Endorse(gateway_pb2.EndorseRequest(
        transaction_id=proposal.tx_id, channel_id=contract.channel_id,
        proposed_transaction=proposal.sign(gw.signer)), timeout=30)
    envelope = endorsed.prepared_transaction
    envelope.signature = gw.sign(envelope.payload)
    return proposal.tx_id, envelope


def _order(contract, tx_id: str, envelope):
    """Send an endorsed transaction for ordering; its commit status (valid or not)."""
    from fabric_protos.gateway import gateway_pb2
    gw = contract.gateway
    gw.stub.Submit(gateway_pb2.SubmitRequest(transaction_id=tx_id, channel_id=contract.channel_id,
                                             prepared_transaction=envelope), timeout=30)
    request = gateway_pb2.CommitStatusRequest(channel_id=contract.channel_id, transaction_id=tx_id,
                                              identity=gw.identity.serialize()).SerializeToString()
    return gw.stub.CommitStatus(gateway_pb2.SignedCommitStatusRequest(request=request, signature=gw.sign(request)),
                                timeout=60)



AUTH_BILLS = "FRIPO000078"


def test_a_later_bill_is_computed_from_its_own_period_on_the_peers(s):
    """An authorisation's second bill is computed from its own period (billing._replayed: its first bill says the
    indexes were whole), endorsed alike by customs' and the holder's peers and committed. The peers refuse proposals
    dated more than 15 minutes from their clock (``peer.authentication.timewindow``) and a bill's period must have
    ended, so on the live network both periods (the day before yesterday, yesterday) end before the grant and list no
    goods: what this shows is the period's reads — the index of bill dates and of terms, read between bounds — on
    real peers, and the record the next bill relies on. That the bill so computed is the whole log's, goods and all,
    is tests/unit/contract/test_bill_from_its_period.py's."""
    on = {"authorisation_id": AUTH_BILLS}
    s.accepted(s.grant(AUTH_BILLS, discharge_period_days=2))
    s.accepted(s.place("LB1", 100, auth_id=AUTH_BILLS))   # indexed under its bill date (after both periods)
    today = dt.datetime.now(dt.timezone.utc).date()
    records = []
    for period_end in (today - dt.timedelta(days=2), today - dt.timedelta(days=1)):
        data = s.query("GetBillOfDischargeData", AUTH_BILLS, period_end.isoformat(), msp="OperatorMSP")
        record = s.accepted(s.submit("SubmitBillOfDischarge", {**on, "period_end": period_end.isoformat(),
                                                               "document_hash": data["document_hash"]},
                                     "OperatorMSP"))["bill"]
        assert record["document_hash"] == data["document_hash"] and record["lots"] == []
        records.append(record)
    first, second = records
    assert first["goods_indexed"] is True and second["goods_indexed"] is True
    assert second["period_start"] == first["cutoff"]
    again = s.query("GetBillOfDischargeData", AUTH_BILLS, second["period_end"])   # on customs' peer, after both
    assert again["document_hash"] == second["document_hash"]
    assert again["scope"]["period_start"] == first["cutoff"]
    assert s.lot("LB1")["balance"] == 100
