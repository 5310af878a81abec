"""Evaluate and submit against a fake Gateway server over real grpcio on 127.0.0.1."""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2
from fabric_protos.peer import transaction_pb2

from ipledger.gateway.client import (CommitError, CommitStatusError, EndorseError, ErrorDetail, EvaluateError, Gateway,
                            RetryPolicy, SubmitError, SubmitResult, Timeouts)

from .fakes import abort_with_details, decode_proposal, verify_by_creator, wait_until_cancelled

PLANNING = ("no combination of peers can be derived which satisfy the endorsement policy: "
            "no peer combination can satisfy the endorsement policy")


def test_evaluate_returns_the_result_and_sends_a_signed_proposal(contract, fake_peer, identity):
    result = contract.evaluate("GetBalances", ["IP-1", b"\x01"], endorsing_orgs=["CustomsMSP"])
    assert result == b"ok|ipledger|GetBalances|IP-1|\x01"
    (req,) = fake_peer.recorded.evaluate
    _, _, chdr, shdr, _, spec = decode_proposal(req.proposed_transaction)
    assert req.channel_id == chdr.channel_id == "inward-processing"
    assert req.transaction_id == chdr.tx_id
    assert list(req.target_organizations) == ["CustomsMSP"]
    assert shdr.creator == identity.serialize()
    assert not fake_peer.recorded.endorse and not fake_peer.recorded.submit


def test_evaluate_error_carries_code_message_details_and_chaincode_error(contract, fake_peer):
    body = json.dumps({"code": "NOT_FOUND", "message": "no authorisation IP-9", "details": None})

    def fail(request, context):
        message = f"chaincode response 500, {body}"
        abort_with_details(context, grpc.StatusCode.UNKNOWN,
                           "evaluate call to endorser returned error: " + message,
                           [gateway_pb2.ErrorDetail(address="127.0.0.1:7101", msp_id="CustomsMSP", message=message)])
    fake_peer.on_evaluate = fail
    with pytest.raises(EvaluateError) as info:
        contract.evaluate("GetAuthorisation", ["IP-9"])
    err = info.value
    assert err.code == grpc.StatusCode.UNKNOWN
    assert err.message.startswith("evaluate call to endorser returned error: chaincode response 500")
    assert err.details == [ErrorDetail("127.0.0.1:7101", "CustomsMSP", f"chaincode response 500, {body}")]
    assert err.chaincode_status == 500
    assert err.chaincode_error == {"code": "NOT_FOUND", "message": "no authorisation IP-9", "details": None}
    assert err.tx_id == fake_peer.recorded.evaluate[0].transaction_id


def test_submit_endorses_signs_submits_and_waits_for_commit(contract, fake_peer, identity):
    res = contract.submit("PlaceUnderProcedure", ["IP-1", "100"], transient={"secret": b"s"},
                          endorsing_orgs=["CustomsMSP", "OperatorMSP"])
    assert isinstance(res, SubmitResult)
    assert res.result == b"ok|ipledger|PlaceUnderProcedure|IP-1|100"
    assert (res.block_number, res.status, res.attempts) == (7, "VALID", 1)

    (endorse,) = fake_peer.recorded.endorse
    (submit,) = fake_peer.recorded.submit
    (status,) = fake_peer.recorded.commit_status
    _, _, chdr, _, payload, _ = decode_proposal(endorse.proposed_transaction)
    assert res.tx_id == endorse.transaction_id == chdr.tx_id == submit.transaction_id
    assert endorse.channel_id == submit.channel_id == "inward-processing"
    assert list(endorse.endorsing_organizations) == ["CustomsMSP", "OperatorMSP"]
    assert dict(payload.TransientMap) == {"secret": b"s"}

    # the envelope submitted is the prepared one, signed over its payload by the client
    env = submit.prepared_transaction
    assert common_pb2.ChannelHeader.FromString(common_pb2.Payload.FromString(env.payload).header.channel_header).tx_id == res.tx_id
    assert verify_by_creator(identity.serialize(), env.payload, env.signature) == "OperatorMSP"

    inner = gateway_pb2.CommitStatusRequest.FromString(status.request)
    assert (inner.channel_id, inner.transaction_id, inner.identity) == (
        "inward-processing", res.tx_id, identity.serialize())
    assert verify_by_creator(inner.identity, status.request, status.signature) == "OperatorMSP"


def test_mvcc_conflict_is_retried_with_a_new_proposal_and_tx_id(contract, fake_peer):
    fake_peer.commit_codes = [transaction_pb2.MVCC_READ_CONFLICT, transaction_pb2.PHANTOM_READ_CONFLICT]
    res = contract.submit("MoveGoods", ["IP-1"])
    assert res.status == "VALID" and res.attempts == 3
    tx_ids = [r.transaction_id for r in fake_peer.recorded.endorse]
    assert len(tx_ids) == 3 and len(set(tx_ids)) == 3
    nonces = {decode_proposal(r.proposed_transaction)[3].nonce for r in fake_peer.recorded.endorse}
    assert len(nonces) == 3
    assert [r.transaction_id for r in fake_peer.recorded.submit] == tx_ids
    assert res.tx_id == tx_ids[-1]


def test_retries_are_bounded_and_end_with_a_commit_error(contract, fake_peer):
    fake_peer.commit_codes = [transaction_pb2.MVCC_READ_CONFLICT] * 10
    with pytest.raises(CommitError) as info:
        contract.submit("MoveGoods", ["IP-1"])
    err = info.value
    assert len(fake_peer.recorded.endorse) == 4  # 1 + RetryPolicy.retries (3)
    assert err.attempts == 4
    assert err.validation_code == transaction_pb2.MVCC_READ_CONFLICT
    assert err.validation_code_name == "MVCC_READ_CONFLICT"
    assert err.block_number == 7
    assert err.tx_id == fake_peer.recorded.endorse[-1].transaction_id
    assert "MVCC_READ_CONFLICT" in str(err)


def test_other_invalid_codes_are_not_retried(contract, fake_peer):
    fake_peer.commit_codes = [transaction_pb2.ENDORSEMENT_POLICY_FAILURE]
    with pytest.raises(CommitError) as info:
        contract.submit("MoveGoods", ["IP-1"])
    assert info.value.validation_code_name == "ENDORSEMENT_POLICY_FAILURE"
    assert len(fake_peer.recorded.endorse) == 1 and info.value.attempts == 1


def test_retry_can_be_disabled(peer_channel, identity, signer, fake_peer):
    gw = Gateway(peer_channel, identity, signer, retry=RetryPolicy(retries=0))
    fake_peer.commit_codes = [transaction_pb2.MVCC_READ_CONFLICT]
    with pytest.raises(CommitError):
        gw.network("inward-processing").contract("ipledger").submit("Fn")
    assert len(fake_peer.recorded.endorse) == 1


def test_endorsement_planning_error_is_retried(contract, fake_peer):
    calls = []

    def plan(request, context):
        calls.append(request.transaction_id)
        if len(calls) <= 2:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, PLANNING)
    fake_peer.on_endorse = plan
    res = contract.submit("ExitGoods", ["IP-1"])
    assert res.attempts == 3 and len(set(calls)) == 3 and res.tx_id == calls[-1]


def test_endorsement_mismatch_between_peers_is_retried(contract, fake_peer):
    calls = []

    def mismatch(request, context):
        calls.append(request.transaction_id)
        if len(calls) <= 2:
            context.abort(grpc.StatusCode.ABORTED, "failed to collect enough transaction "
                          "endorsements: ProposalResponsePayloads do not match")
    fake_peer.on_endorse = mismatch
    res = contract.submit("ExitGoods", ["IP-1"])
    assert res.attempts == 3 and len(set(calls)) == 3 and res.tx_id == calls[-1]


def test_a_later_endorser_lagging_behind_the_gateways_own_peer_is_retried(contract, fake_peer):
    """The own org's peer simulated fine; customs' peer had not yet committed the lot and refused."""
    body = json.dumps({"code": "NotFound", "message": "lot L1 not found", "details": {"lot_id": "L1"}})
    calls = []

    def lagging(request, context):
        calls.append(request.transaction_id)
        if len(calls) <= 2:
            abort_with_details(context, grpc.StatusCode.ABORTED,
                               "failed to collect enough transaction endorsements, see attached details for more info",
                               [gateway_pb2.ErrorDetail(address="127.0.0.1:7101", msp_id="CustomsMSP",
                                                        message=f"chaincode response 500, {body}")])
    fake_peer.on_endorse = lagging
    res = contract.submit("MoveGoods", ["L1"])
    assert res.attempts == 3 and len(set(calls)) == 3 and res.tx_id == calls[-1]


def test_a_later_endorser_that_keeps_refusing_gives_the_chaincode_error_after_the_retries(contract, fake_peer):
    body = json.dumps({"code": "NotFound", "message": "lot L1 not found", "details": {}})
    fake_peer.on_endorse = lambda request, context: abort_with_details(
        context, grpc.StatusCode.ABORTED, "failed to collect enough transaction endorsements",
        [gateway_pb2.ErrorDetail(address="127.0.0.1:7101", msp_id="CustomsMSP",
                                 message=f"chaincode response 500, {body}")])
    with pytest.raises(EndorseError) as info:
        contract.submit("MoveGoods", ["L1"])
    assert info.value.attempts == 4 and info.value.chaincode_error["code"] == "NotFound"


def test_a_later_endorser_that_cannot_be_reached_is_not_retried_here(contract, fake_peer):
    fake_peer.on_endorse = lambda request, context: abort_with_details(
        context, grpc.StatusCode.ABORTED, "failed to collect enough transaction endorsements",
        [gateway_pb2.ErrorDetail(address="127.0.0.1:7101", msp_id="CustomsMSP",
                                 message="rpc error: code = Unavailable desc = connection refused")])
    with pytest.raises(EndorseError):
        contract.submit("MoveGoods", ["L1"])
    assert len(fake_peer.recorded.endorse) == 1


def test_other_aborted_endorsements_are_not_retried(contract, fake_peer):
    fake_peer.on_endorse = lambda request, context: context.abort(
        grpc.StatusCode.ABORTED, "failed to endorse transaction")
    with pytest.raises(EndorseError):
        contract.submit("ExitGoods", ["IP-1"])
    assert len(fake_peer.recorded.endorse) == 1


def test_endorsement_planning_error_gives_up_after_the_retries(contract, fake_peer):
    fake_peer.on_endorse = lambda request, context: context.abort(grpc.StatusCode.FAILED_PRECONDITION, PLANNING)
    with pytest.raises(EndorseError) as info:
        contract.submit("ExitGoods", ["IP-1"])
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION and info.value.attempts == 4
    assert len(fake_peer.recorded.endorse) == 4 and not fake_peer.recorded.submit


def test_chaincode_failure_at_endorsement_is_not_retried_and_keeps_details(contract, fake_peer):
    body = json.dumps({"code": "YIELD_EXCEEDED", "message": "output above authorised rate", "details": {"rate": 0.9}})

    def fail(request, context):
        abort_with_details(context, grpc.StatusCode.ABORTED,
                           "failed to endorse transaction, see attached details for more info",
                           [gateway_pb2.ErrorDetail(address="127.0.0.1:7101", msp_id="CustomsMSP",
                                                    message=f"chaincode response 500, {body}"),
                            gateway_pb2.ErrorDetail(address="127.0.0.1:7104", msp_id="OperatorMSP",
                                                    message=f"chaincode response 500, {body}")])
    fake_peer.on_endorse = fail
    with pytest.raises(EndorseError) as info:
        contract.submit("RecordProcessing", ["IP-1"])
    err = info.value
    assert err.code == grpc.StatusCode.ABORTED and len(fake_peer.recorded.endorse) == 1
    assert [d.msp_id for d in err.details] == ["CustomsMSP", "OperatorMSP"]
    assert err.chaincode_status == 500
    assert err.chaincode_error["code"] == "YIELD_EXCEEDED"
    assert err.tx_id == fake_peer.recorded.endorse[0].transaction_id


def test_submit_error_is_typed_with_details(contract, fake_peer):
    fake_peer.on_submit = lambda request, context: abort_with_details(
        context, grpc.StatusCode.UNAVAILABLE, "no orderers could successfully process transaction",
        [gateway_pb2.ErrorDetail(address="127.0.0.1:7100", msp_id="OrdererMSP", message="connection refused")])
    with pytest.raises(SubmitError) as info:
        contract.submit("Fn")
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    assert info.value.details == [ErrorDetail("127.0.0.1:7100", "OrdererMSP", "connection refused")]
    assert not fake_peer.recorded.commit_status


def test_prepared_transaction_for_another_tx_is_refused(contract, fake_peer):
    from .fakes import prepared_envelope
    from ipledger.gateway.client import build_proposal

    def other(request, context):
        p = build_proposal(contract.gateway.identity, "inward-processing", "ipledger", "Fn")
        return gateway_pb2.EndorseResponse(prepared_transaction=prepared_envelope(p.sign(contract.gateway.signer), b""))
    fake_peer.on_endorse = other
    with pytest.raises(EndorseError, match="not for the proposed one"):
        contract.submit("Fn")
    assert not fake_peer.recorded.submit


def _slow(seconds):
    def handler(request, context):
        wait_until_cancelled(context, seconds)
    return handler


def test_endorse_timeout_raises_a_typed_error(peer_channel, identity, signer, fake_peer):
    gw = Gateway(peer_channel, identity, signer, timeouts=Timeouts(endorse=0.2))
    fake_peer.on_endorse = _slow(3)
    t = time.monotonic()
    with pytest.raises(EndorseError) as info:
        gw.network("inward-processing").contract("ipledger").submit("Fn")
    assert time.monotonic() - t < 2
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED and info.value.timed_out


def test_evaluate_and_commit_status_timeouts(peer_channel, identity, signer, fake_peer):
    gw = Gateway(peer_channel, identity, signer, timeouts=Timeouts(evaluate=0.2, commit_status=0.2))
    contract = gw.network("inward-processing").contract("ipledger")
    fake_peer.on_evaluate = _slow(3)
    with pytest.raises(EvaluateError) as info:
        contract.evaluate("Fn")
    assert info.value.timed_out
    fake_peer.on_commit_status = _slow(3)
    with pytest.raises(CommitStatusError) as info:
        contract.submit("Fn")
    assert info.value.timed_out and info.value.tx_id == fake_peer.recorded.submit[0].transaction_id


def test_overall_submit_timeout_bounds_the_retries(contract, fake_peer):
    fake_peer.on_endorse = lambda request, context: context.abort(grpc.StatusCode.FAILED_PRECONDITION, PLANNING)
    slow_retry = Gateway(contract.gateway.channel, contract.gateway.identity, contract.gateway.signer,
                         retry=RetryPolicy(retries=100, backoff=0.1, max_backoff=0.1))
    t = time.monotonic()
    with pytest.raises(EndorseError) as info:
        slow_retry.network("inward-processing").contract("ipledger").submit("Fn", timeout=0.5)
    assert 0.4 < time.monotonic() - t < 2
    assert info.value.timed_out  # the deadline, not the planning error, ended it
    assert 2 <= len(fake_peer.recorded.endorse) < 100


def test_unreachable_peer_is_an_unavailable_evaluate_error(identity, signer):
    channel = grpc.insecure_channel("127.0.0.1:1")
    try:
        gw = Gateway(channel, identity, signer, timeouts=Timeouts(evaluate=2))
        with pytest.raises(EvaluateError) as info:
            gw.network("ch").contract("cc").evaluate("Fn")
        assert info.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        channel.close()


def test_contract_is_usable_from_many_threads(contract, fake_peer):
    def work(i):
        if i % 2:
            return contract.evaluate("Get", [str(i)])
        return contract.submit("Put", [str(i)]).result

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(32)))
    assert results == [(b"ok|ipledger|Get|" if i % 2 else b"ok|ipledger|Put|") + str(i).encode() for i in range(32)]
    assert len(fake_peer.recorded.submit) == 16
    assert len({r.transaction_id for r in fake_peer.recorded.endorse}) == 16
