"""End to end through the gateway's own Fabric client to a fake peer: every outcome of the Fabric side — endorse,
submit, commit status; refusals, unavailability, deadlines, invalid codes — and the answer the ERP gets, and that a
retry of the same event_id records nothing twice.

``test_a_transaction_ordered_twice_*`` failed on the code before its fix (DUPLICATE_TXID was "the ledger did
not commit the transaction"); the others pin what was found right.
"""
from __future__ import annotations

import dataclasses
import json
import threading

import grpc
import pytest
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2
from fabric_protos.peer import proposal_response_pb2, transaction_pb2

from ipledger.gateway.app import create_app
from ipledger.gateway.client import Gateway, RetryPolicy, Signer, Timeouts, X509Identity
from ipledger.gateway.ledger import FabricLedger

from tests.unit.gateway_client.fakes import (FakePeer, abort_with_details, decode_proposal, issue, make_ca,
                                             prepared_envelope, serving, wait_until_cancelled)

from .conftest import bearer
from .fakes import move_body

EVENTS = "/api/v1/events"
PROBLEMS = "https://ipledger.example/problems/"
ORG = "OperatorMSP"


class ContractOnPeer:
    """The contract's idempotency and Fabric's MVCC on the fake peer. Endorse simulates: an event_id recorded
    with the same content returns the original result (writes nothing), other content is a DuplicateEvent, a
    new one a result naming this transaction; each simulation remembers the version of ``event/<id>`` it read.
    CommitStatus validates in the order asked: VALID if that version is still current (then a new event is
    recorded), else MVCC_READ_CONFLICT. ``after_commit`` may replace the answer (a lost status, a duplicate)."""

    def __init__(self, peer: FakePeer):
        self.lock = threading.Lock()
        self.records: dict[str, tuple[bytes, dict]] = {}
        self.versions: dict[str, int] = {}
        self.pending: dict[str, tuple] = {}
        self.blocks: dict[str, int] = {}
        self.height = 10
        self.held = 0                           # the next endorsements that wait for each other (both read first)
        self.invalid = None                     # a validation code forced on every transaction (nothing recorded)
        self.after_commit = None                # (tx_id, code, context) -> response or None
        peer.on_endorse, peer.on_commit_status, peer.on_evaluate = self.endorse, self.commit_status, self.evaluate

    def hold(self, n: int) -> None:
        self.held, self._barrier = n, threading.Barrier(n)

    def endorse(self, request, context):
        *_, spec = decode_proposal(request.proposed_transaction)
        function, content = spec.input.args[0].decode(), spec.input.args[1]
        event_id = json.loads(content)["event_id"]
        with self.lock:
            seen, version = self.records.get(event_id), self.versions.get(event_id, 0)
            barrier = self._barrier if self.held > 0 else None
            self.held -= 1
        if barrier is not None:
            barrier.wait(timeout=5)
        if seen is not None and seen[0] != content:
            text = json.dumps({"code": "DuplicateEvent", "message": f"event_id {event_id} was used for other content",
                               "details": {"original_tx_id": seen[1]["tx_id"]}})
            abort_with_details(context, grpc.StatusCode.ABORTED, "failed to endorse transaction",
                               [gateway_pb2.ErrorDetail(address="127.0.0.1:7101", msp_id=ORG,
                                                        message=f"chaincode response 500, {text}")])
        result = seen[1] if seen is not None else {"event_type": function, "event_id": event_id,
                                                   "tx_id": request.transaction_id,
                                                   "recorded_at": "2026-03-02T09:00:00.000000Z"}
        with self.lock:
            self.pending[request.transaction_id] = (event_id, content, version, result, seen is None)
        return gateway_pb2.EndorseResponse(prepared_transaction=prepared_envelope(
            request.proposed_transaction, json.dumps(result).encode()))

    def commit_status(self, request, context):
        tx_id = gateway_pb2.CommitStatusRequest.FromString(request.request).transaction_id
        with self.lock:
            event_id, content, version, result, writes = self.pending.pop(tx_id)
            self.height += 1
            self.blocks[tx_id] = self.height
            if self.invalid is not None:
                code = self.invalid
            elif self.versions.get(event_id, 0) != version:
                code = transaction_pb2.MVCC_READ_CONFLICT
            else:
                code = transaction_pb2.VALID
                if writes:
                    self.records[event_id] = (content, result)
                    self.versions[event_id] = version + 1
            block = self.height
        if self.after_commit is not None:
            response = self.after_commit(tx_id, code, context)
            if response is not None:
                return response
        return gateway_pb2.CommitStatusResponse(result=code, block_number=block)

    def evaluate(self, request, context):   # qscc GetBlockByTxID [channel, tx_id]
        *_, spec = decode_proposal(request.proposed_transaction)
        args = [a.decode() for a in spec.input.args]
        assert args[0] == "GetBlockByTxID", args
        block = common_pb2.Block(header=common_pb2.BlockHeader(number=self.blocks[args[2]]))
        return gateway_pb2.EvaluateResponse(result=proposal_response_pb2.Response(
            status=200, payload=block.SerializeToString()))


@pytest.fixture(scope="module")
def peer_server():
    peer = FakePeer()
    with serving(peer) as channel:
        yield peer, channel


@pytest.fixture(scope="module")
def user():
    return issue(make_ca("ca.operator.test"), "User1@operator.test")


@pytest.fixture
def peer(peer_server):
    peer_server[0].reset()
    return peer_server[0]


@pytest.fixture
def contract(peer):
    return ContractOnPeer(peer)


@pytest.fixture
def fabric_app(config, keys, peer_server, peer, user):
    cfg = dataclasses.replace(config, submit_timeout=4.0)
    ledger = FabricLedger(cfg)
    ledger._gateways[ORG] = Gateway(peer_server[1], X509Identity(ORG, user.cert_pem), Signer(user.key),
                                    timeouts=Timeouts(evaluate=1.0, endorse=0.5, submit=0.5, commit_status=0.5),
                                    retry=RetryPolicy(retries=3, backoff=0.0, max_backoff=0.0))
    return create_app(cfg, ledger=ledger)


@pytest.fixture
def post(fabric_app, keys):
    def _post(body):
        return fabric_app.test_client().post(EVENTS, json=body, headers=bearer(keys[(ORG, "clerk")]))
    return _post


def _slow(request, context):
    wait_until_cancelled(context, 3)


# -- recorded, replayed, refused ---------------------------------------------------------------------------

def test_recorded_then_replayed_with_the_original_transaction(post, contract, peer):
    first = post(move_body())
    assert first.status_code == 201, first.json
    (submitted,) = peer.recorded.submit
    assert first.json["tx_id"] == submitted.transaction_id == contract.records["move-1"][1]["tx_id"]
    assert first.json["block_number"] == contract.blocks[first.json["tx_id"]]
    again = post(move_body())
    assert again.status_code == 200 and again.json["status"] == "REPLAYED"
    assert again.json["tx_id"] == first.json["tx_id"] and again.json["block_number"] == first.json["block_number"]
    assert again.json["replay_tx_id"] == peer.recorded.submit[1].transaction_id != first.json["tx_id"]
    other = post(move_body(quantity=401))
    assert other.status_code == 409 and other.json["type"] == PROBLEMS + "duplicate-event"
    assert len(contract.records) == 1


def test_two_threads_posting_one_event_id_at_once_record_it_once(fabric_app, keys, contract, peer):
    """Both simulate "new" before either commits: one commits, the other is invalidated (MVCC) and the client's
    new proposal finds the record: 201 and 200 with the same transaction."""
    contract.hold(2)
    answers = []

    def post():
        r = fabric_app.test_client().post(EVENTS, json=move_body(), headers=bearer(keys[(ORG, "clerk")]))
        answers.append((r.status_code, r.json.get("tx_id")))

    threads = [threading.Thread(target=post) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert sorted(s for s, _ in answers) == [200, 201], answers
    assert len({tx for _, tx in answers}) == 1 and len(contract.records) == 1
    assert len(peer.recorded.endorse) == 3       # the loser's new proposal


# -- the answer of each failure ---------------------------------------------------------------------------

def test_a_lost_commit_status_of_a_committed_transaction_is_503_and_the_resend_the_original(post, contract, peer):
    contract.after_commit = lambda tx_id, code, context: context.abort(grpc.StatusCode.UNAVAILABLE, "reset")
    r = post(move_body())
    assert r.status_code == 503 and r.headers["Retry-After"] == "7" and "may or may not" in r.json["detail"]
    contract.after_commit = None
    again = post(move_body())
    assert again.status_code == 200 and again.json["tx_id"] == r.json["tx_id"] == peer.recorded.submit[0].transaction_id
    assert len(contract.records) == 1


def test_a_commit_status_past_its_deadline_is_504_and_the_resend_the_original(post, contract, peer):
    contract.after_commit = lambda tx_id, code, context: wait_until_cancelled(context, 3)
    r = post(move_body())
    assert r.status_code == 504 and r.headers["Retry-After"] == "7" and "may or may not" in r.json["detail"]
    assert r.json["tx_id"] == peer.recorded.submit[0].transaction_id
    contract.after_commit = None
    again = post(move_body())
    assert again.status_code == 200 and again.json["tx_id"] == r.json["tx_id"] and len(contract.records) == 1


def test_a_transaction_ordered_twice_is_an_unknown_outcome_and_the_resend_the_original(post, contract, peer):
    """The first copy committed VALID; the status read is the second copy's, DUPLICATE_TXID."""
    contract.after_commit = lambda tx_id, code, context: gateway_pb2.CommitStatusResponse(
        result=transaction_pb2.DUPLICATE_TXID, block_number=contract.height + 1)
    r = post(move_body())
    assert r.status_code == 503, r.json
    assert r.headers["Retry-After"] == "7" and "may or may not be recorded" in r.json["detail"]
    contract.after_commit = None
    again = post(move_body())
    assert again.status_code == 200 and again.json["tx_id"] == r.json["tx_id"] and len(contract.records) == 1


@pytest.mark.parametrize("code", [transaction_pb2.MVCC_READ_CONFLICT, transaction_pb2.PHANTOM_READ_CONFLICT])
def test_conflicts_are_retried_with_new_transactions_then_409_send_again(post, contract, peer, code):
    contract.invalid = code
    r = post(move_body())
    assert r.status_code == 409 and r.json["type"] == PROBLEMS + "transaction-conflict"
    assert r.headers["Retry-After"] == "7"
    assert len({s.transaction_id for s in peer.recorded.submit}) == 4   # the first and 3 retries, each new
    contract.invalid = None
    assert post(move_body()).status_code == 201


def test_an_endorsement_past_its_deadline_is_504_and_nothing_was_ordered(post, peer):
    peer.on_endorse = _slow
    r = post(move_body())
    assert r.status_code == 504 and r.headers["Retry-After"] == "7"
    assert peer.recorded.submit == []


def test_a_submit_past_its_deadline_is_504(post, contract, peer):
    peer.on_submit = _slow
    r = post(move_body())
    assert r.status_code == 504 and r.headers["Retry-After"] == "7" and "may or may not" in r.json["detail"]


@pytest.mark.parametrize("code, message, status", [
    (grpc.StatusCode.ABORTED, "received unsuccessful response from orderer: BAD_REQUEST", 502),
    (grpc.StatusCode.UNAVAILABLE, "no orderers could successfully process transaction", 503),
])
def test_the_orderer_refusing_or_unreachable_is_a_5xx_never_a_refusal_of_the_event(post, contract, peer, code,
                                                                                   message, status):
    peer.on_submit = lambda request, context: abort_with_details(
        context, code, message, [gateway_pb2.ErrorDetail(address="orderer0:7050", msp_id="OrdererMSP", message="x")])
    r = post(move_body())
    assert r.status_code == status and r.json["type"].startswith(PROBLEMS)
    assert "orderer0" not in r.get_data(as_text=True) and "Traceback" not in r.get_data(as_text=True)
    assert contract.records == {}


def test_endorsements_that_keep_mismatching_are_409_send_again(post, peer):
    peer.on_endorse = lambda request, context: abort_with_details(
        context, grpc.StatusCode.ABORTED, "failed to collect enough transaction endorsements",
        [gateway_pb2.ErrorDetail(address="127.0.0.1:7051", msp_id="CustomsMSP",
                                 message="ProposalResponsePayloads do not match")])
    r = post(move_body())
    assert r.status_code == 409 and r.json["type"] == PROBLEMS + "transaction-conflict"
    assert r.headers["Retry-After"] == "7" and len(peer.recorded.endorse) == 4 and peer.recorded.submit == []


def test_a_peer_that_cannot_be_reached_is_503(fabric_app, keys, config, user):
    channel = grpc.insecure_channel("127.0.0.1:1")
    try:
        ledger = fabric_app.extensions["ipledger"].service.ledger
        ledger._gateways[ORG] = Gateway(channel, X509Identity(ORG, user.cert_pem), Signer(user.key),
                                        timeouts=Timeouts(endorse=1.0), retry=RetryPolicy(retries=0))
        r = fabric_app.test_client().post(EVENTS, json=move_body(), headers=bearer(keys[(ORG, "clerk")]))
        assert r.status_code == 503 and r.headers["Retry-After"] == "7"
        assert "127.0.0.1" not in r.get_data(as_text=True)
    finally:
        channel.close()
