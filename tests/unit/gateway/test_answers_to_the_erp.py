"""Every answer to the ERP is truthful, and nothing is lost or recorded twice. Each test below failed on the code before
its fix, except those under "checked and right" at the end (what the fixes must keep).

* an ``OutOfOrder`` that only says a concurrent transaction, timestamped later, committed first (details
  ``last_change``) was retried by the gateway and, when the race went on, answered ``409 out-of-order``
  without ``Retry-After`` — a final refusal of a valid event (the importer records the line REFUSED and never
  sends it again), where the README promises ``409 transaction-conflict``;
* in a batch, an item answered ``409 transaction-conflict`` ("send it again") was reported ``REFUSED`` — the
  outcome that means "final" — and counted as refused; ``ipledger import`` counts the same answer FAILED;
* a transaction validated ``DUPLICATE_TXID`` (a copy of the same transaction, ordered twice, is already in a
  block — VALID, as far as anyone knows) was answered ``502`` "the ledger did not commit the transaction";
* an endorsement the gateway's own peer simulated successfully but another organisation's peer kept refusing
  (that peer lagging behind: the placement acknowledged a moment ago is not there yet) was answered with that
  peer's refusal as final (``404 not-found`` for a lot the same ERP was told 201 for);
* a body declared in another charset than UTF-8 was read as UTF-8 anyway: bytes that happen to be valid UTF-8
  were recorded as other text than the sender's.
"""
from __future__ import annotations

import json

import grpc
import pytest
from fabric_protos.peer import transaction_pb2

from ipledger.gateway.client import CommitError, EndorseError, ErrorDetail

from .fakes import endorse_error, move_body, mvcc_conflict, place_body

EVENTS = "/api/v1/events"
BATCH = "/api/v1/events/batch"
PROBLEMS = "https://ipledger.example/problems/"


@pytest.fixture
def no_sleep(app):
    waits = []
    app.extensions["ipledger"].service.sleep = waits.append
    return waits


def race(tx_id: str = "ab" * 32):
    """The contract's OutOfOrder when this transaction is timestamped before the goods' last change: a concurrent
    transaction, created later, committed first."""
    return endorse_error("OutOfOrder", "L1 was last changed at 2026-03-02T09:00:00.000001Z, not before this "
                                       "transaction", {"goods": "LOT", "id": "L1",
                                                       "last_change": "2026-03-02T09:00:00.000001Z",
                                                       "ledger_time": "2026-03-02T09:00:00.000000Z"}, tx_id)


# -- an OutOfOrder timestamp race that outlasts the gateway's retries ------------------------------------------

def test_a_timestamp_race_left_after_the_retries_is_a_transaction_conflict_to_send_again(as_org, ledger, config,
                                                                                        no_sleep):
    ledger.submit_failures += [race() for _ in range(config.race_retries + 1)]
    r = as_org("OperatorMSP").post(EVENTS, json=move_body())
    assert len(ledger.submits) == config.race_retries + 1          # bounded: the first try and the retries
    assert r.status_code == 409, r.json
    assert r.json["type"] == PROBLEMS + "transaction-conflict"
    assert r.headers["Retry-After"] == "7"
    assert "same event_id" in r.json["detail"]
    assert ledger.recorded == {}
    # sent again once the race is over: recorded once
    again = as_org("OperatorMSP").post(EVENTS, json=move_body())
    assert again.status_code == 201 and list(ledger.recorded) == ["move-1"]


def test_the_importer_sends_a_line_answered_so_again_instead_of_recording_it_refused(as_org, ledger, config,
                                                                                     no_sleep):
    """What the answer means to ``ipledger import`` (the project's own ERP client): retried, never REFUSED."""
    from ipledger.gateway.importer import Importer

    ledger.submit_failures += [race() for _ in range(config.race_retries + 1)]
    answer = as_org("OperatorMSP").post(EVENTS, json=move_body())
    imp = Importer("https://gateway.invalid", "ipk_x", retries=1, sleep=lambda s: None)
    answers = [(answer.status_code, answer.json, dict(answer.headers)), (201, {"tx_id": "t1", "status": "COMMITTED"},
                                                                        {})]
    imp._post = lambda body, line: answers.pop(0)
    outcome = imp.submit(1, move_body())
    assert outcome.outcome == "COMMITTED" and answers == []


def test_a_real_out_of_order_is_still_a_refusal(as_org, ledger, no_sleep):
    ledger.submit_failures.append(endorse_error("OutOfOrder", "occurred_at is before the placement of L1",
                                                {"goods_since": "2026-03-02T09:00:00Z", "id": "L1"}))
    r = as_org("OperatorMSP").post(EVENTS, json=move_body())
    assert r.status_code == 409 and r.json["type"] == PROBLEMS + "out-of-order" and "Retry-After" not in r.headers
    assert len(ledger.submits) == 1


# -- a batch item to send again is not REFUSED -----------------------------------------------------------------

@pytest.mark.parametrize("failure", [mvcc_conflict, race])
def test_a_batch_item_answered_transaction_conflict_is_failed_not_refused(as_org, ledger, config, no_sleep, failure):
    ledger.fail_submits_for["mv-1"] = failure()
    r = as_org("OperatorMSP").post(BATCH, json=[move_body("mv-0"), move_body("mv-1"), move_body("mv-2")])
    assert r.status_code == 200
    item = r.json["results"][1]
    assert item["problem"]["type"] == PROBLEMS + "transaction-conflict"
    assert item["outcome"] == "FAILED" and item["status"] == 409
    assert r.json["summary"]["failed"] == 1 and r.json["summary"]["refused"] == 0


# -- DUPLICATE_TXID: the transaction is in a block already -----------------------------------------------------

def test_a_duplicate_txid_is_an_unknown_outcome_to_send_again_and_the_resend_a_replay(as_org, ledger):
    first = ledger.submit
    calls = []

    def ordered_twice(org, function, args, transient=None):
        calls.append(function)
        if len(calls) == 1:
            res = first(org, function, args, transient)   # the copy ordered first committed VALID ...
            raise CommitError(res.tx_id, transaction_pb2.DUPLICATE_TXID, "DUPLICATE_TXID", res.block_number + 1)
        return first(org, function, args, transient)      # ... the status read was the second copy's

    ledger.submit = ordered_twice
    r = as_org("OperatorMSP").post(EVENTS, json=move_body())
    assert r.status_code == 503, r.json
    assert r.headers["Retry-After"] == "7"
    assert "may or may not be recorded" in r.json["detail"]
    assert "did not commit" not in r.json["detail"]
    again = as_org("OperatorMSP").post(EVENTS, json=move_body())
    assert again.status_code == 200 and again.json["status"] == "REPLAYED"
    assert again.json["tx_id"] == r.json["tx_id"] and len(ledger.recorded) == 1


def test_a_batch_stops_at_an_item_validated_duplicate_txid(as_org, ledger):
    ledger.fail_submits_for["mv-1"] = CommitError("77" * 32, transaction_pb2.DUPLICATE_TXID, "DUPLICATE_TXID", 9)
    r = as_org("OperatorMSP").post(BATCH, json=[move_body("mv-0"), move_body("mv-1"), move_body("mv-2")])
    assert [x["outcome"] for x in r.json["results"]] == ["COMMITTED", "FAILED", "NOT_ATTEMPTED"]
    assert r.headers["Retry-After"] == "7"


@pytest.mark.parametrize("name", ["ENDORSEMENT_POLICY_FAILURE", "BAD_PROPOSAL_TXID", "INVALID_OTHER_REASON"])
def test_other_invalid_codes_stay_502_not_committed(as_org, ledger, name):
    ledger.submit_failures.append(CommitError("34" * 32, transaction_pb2.TxValidationCode.Value(name), name, 9))
    r = as_org("OperatorMSP").post(EVENTS, json=move_body())
    assert r.status_code == 502 and r.json["validation_code"] == name and ledger.recorded == {}


# -- another organisation's peer that keeps refusing what the gateway's own peer accepted ------------------------

def lagging_endorser(code="NotFound", message="lot L1 not found", details=None):
    """Fabric's answer when the gateway's own peer simulated the proposal successfully but the later endorser
    (customs' peer) refused it: it has not committed the block the proposal builds on yet."""
    text = json.dumps({"code": code, "message": message, "details": details or {"lot_id": "L1"}})
    return EndorseError("failed to collect enough transaction endorsements, see attached details for more info",
                        code=grpc.StatusCode.ABORTED, tx_id="cd" * 32,
                        details=[ErrorDetail("127.0.0.1:7051", "CustomsMSP", f"chaincode response 500, {text}")])


@pytest.mark.parametrize("code, details", [("NotFound", {"lot_id": "L1"}),
                                           ("QuantityExceedsBalance", {"lot_id": "L1", "balance": 0})])
def test_a_refusal_by_a_lagging_endorser_is_not_a_final_answer(as_org, ledger, code, details):
    placed = as_org("BrokerMSP").post(EVENTS, json=place_body())
    assert placed.status_code == 201              # the ERP was told L1 is recorded ...
    ledger.submit_failures.append(lagging_endorser(code, details=details))
    r = as_org("OperatorMSP").post(EVENTS, json=move_body())
    assert r.status_code == 503, r.json          # ... not, a moment later, that it is not there (final 404)
    assert r.headers["Retry-After"] == "7"
    assert r.json["type"] == PROBLEMS + "service-unavailable"
    assert "nothing was recorded" in r.json["detail"]
    assert r.json["code"] == code                # what the lagging peer said, for the record
    assert "127.0.0.1" not in r.get_data(as_text=True)
    again = as_org("OperatorMSP").post(EVENTS, json=move_body())
    assert again.status_code == 201


def test_a_refusal_of_the_gateways_own_peer_stays_the_contracts_answer(as_org, ledger):
    ledger.submit_failures.append(endorse_error("NotFound", "lot L1 not found", {"lot_id": "L1"}))
    r = as_org("OperatorMSP").post(EVENTS, json=move_body())
    assert r.status_code == 404 and r.json["type"] == PROBLEMS + "not-found"


# -- charset -------------------------------------------------------------------------------------------------

def test_a_body_declared_in_another_charset_is_refused_not_read_as_utf8(as_org, ledger):
    # 'Ã©' written in ISO-8859-1 is the bytes C3 A9: valid UTF-8 for 'é', which is not what the sender wrote
    body = json.dumps(place_body(description="pneus usag\u00c3\u00a9s"), ensure_ascii=False).encode("iso-8859-1")
    r = as_org("BrokerMSP").post(EVENTS, data=body, headers={"Content-Type": "application/json; charset=ISO-8859-1"})
    assert r.status_code == 415, r.json
    assert r.json["type"] == PROBLEMS + "unsupported-media-type" and "UTF-8" in r.json["detail"]
    assert ledger.submits == []


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/json;charset=UTF-8",
                                          "application/json; charset=\"utf-8\"", "application/json"])
def test_a_body_declared_utf8_or_undeclared_is_read(as_org, ledger, content_type):
    body = json.dumps(place_body(description="pneus usag\u00e9s"), ensure_ascii=False).encode("utf-8")
    r = as_org("BrokerMSP").post(EVENTS, data=body, headers={"Content-Type": content_type})
    assert r.status_code == 201, r.json
    assert ledger.submits[0]["event"]["description"] == "pneus usag\u00e9s"


# -- checked and right ---------------------------------------------------------------------------------------

def test_a_body_with_a_byte_order_mark_is_refused_whole_and_nothing_submitted(as_org, ledger):
    r = as_org("OperatorMSP").post(EVENTS, data=b"\xef\xbb\xbf" + json.dumps(move_body()).encode(),
                                   headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json["type"] == PROBLEMS + "bad-request"
    assert ledger.submits == []


def test_a_201_names_the_committed_transaction_and_what_was_recorded(as_org, ledger):
    r = as_org("OperatorMSP").post(EVENTS, json=move_body())
    assert r.status_code == 201
    tx_id, (_, result) = r.json["tx_id"], ledger.recorded["move-1"]
    assert tx_id == result["tx_id"] and r.json["block_number"] == ledger.blocks[tx_id]
    assert r.json["result"] == result and r.json["status"] == "COMMITTED"
    assert (r.json["event_id"], r.json["type"], r.json["org"]) == ("move-1", "MoveGoods", "OperatorMSP")


def test_two_threads_posting_one_event_id_record_it_once(app, keys, ledger):
    import threading

    from .conftest import bearer
    answers, start = [], threading.Barrier(2)

    def post():
        start.wait()
        r = app.test_client().post(EVENTS, json=move_body(), headers=bearer(keys[("OperatorMSP", "clerk")]))
        answers.append((r.status_code, r.json["tx_id"]))

    threads = [threading.Thread(target=post) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(s for s, _ in answers) == [200, 201]
    assert len({tx for _, tx in answers}) == 1 and len(ledger.recorded) == 1
