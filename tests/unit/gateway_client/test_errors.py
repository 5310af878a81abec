"""Decoding grpc-status-details-bin into ErrorDetail entries; the chaincode's own error."""
from __future__ import annotations

import json

import grpc
from fabric_protos.gateway import gateway_pb2
from fabric_protos.peer import proposal_response_pb2
from google.protobuf import any_pb2

from ipledger.gateway.client import EndorseError, ErrorDetail, GatewayError
from ipledger.network.fabric.rpcstatus import error_details_from_metadata, error_details_from_status

from .fakes import status_details_bin

CC_ERROR = {"code": "BALANCE_NEGATIVE", "message": "quantity 12 exceeds balance 10", "details": {"lot": "L-1"}}


def test_error_details_are_unpacked_from_a_google_rpc_status():
    other = any_pb2.Any()
    other.Pack(proposal_response_pb2.Response(status=1))  # a detail of another type is skipped
    data = status_details_bin(grpc.StatusCode.ABORTED, "failed to endorse", [
        gateway_pb2.ErrorDetail(address="peer0.customs:7101", msp_id="CustomsMSP", message="m1"),
        gateway_pb2.ErrorDetail(address="peer0.broker:7107", msp_id="BrokerMSP", message="m2"),
    ], extra_any=[other])
    assert error_details_from_status(data) == [
        ErrorDetail("peer0.customs:7101", "CustomsMSP", "m1"),
        ErrorDetail("peer0.broker:7107", "BrokerMSP", "m2"),
    ]
    assert error_details_from_metadata([("x-other", "v"), ("grpc-status-details-bin", data)])[1].msp_id == "BrokerMSP"
    assert error_details_from_metadata(None) == []
    assert error_details_from_status(b"\xff\xff garbage") == []


def test_chaincode_status_and_json_message_from_a_detail():
    text = json.dumps(CC_ERROR)
    err = EndorseError("failed to endorse transaction, see attached details for more info",
                       code=grpc.StatusCode.ABORTED, tx_id="abc",
                       details=[ErrorDetail("127.0.0.1:7101", "CustomsMSP", f"chaincode response 500, {text}")])
    assert err.chaincode_status == 500
    assert err.chaincode_message == text
    assert err.chaincode_error == CC_ERROR
    assert "CustomsMSP 127.0.0.1:7101: chaincode response 500" in str(err)
    assert str(err).startswith("endorse error (ABORTED) tx abc: failed to endorse")


def test_chaincode_status_from_the_evaluate_message_and_plain_text():
    err = GatewayError("evaluate call to endorser returned error: chaincode response 404, no such lot\nL-9",
                       code=grpc.StatusCode.UNKNOWN)
    assert (err.chaincode_status, err.chaincode_message, err.chaincode_error) == (404, "no such lot\nL-9", None)


def test_a_4xx_json_error_without_the_prefix_is_still_kept():
    text = json.dumps(CC_ERROR)
    err = GatewayError("failed to endorse transaction, see attached details for more info",
                       code=grpc.StatusCode.ABORTED, details=[ErrorDetail("a", "OperatorMSP", text)])
    assert err.chaincode_status is None and err.chaincode_error == CC_ERROR


def test_no_chaincode_error_when_the_failure_is_elsewhere():
    err = GatewayError("no orderers could successfully process transaction", code=grpc.StatusCode.UNAVAILABLE,
                       details=[ErrorDetail("o:7050", "OrdererMSP", "connection refused")])
    assert (err.chaincode_status, err.chaincode_message, err.chaincode_error) == (None, None, None)
    assert not err.timed_out
    assert GatewayError("x", code=grpc.StatusCode.DEADLINE_EXCEEDED).timed_out
