"""The Gateway client against the real Fabric v3.1.5 network.

No application chaincode is deployed here, so the system chaincode qscc is used:
evaluate through the Gateway, a failing evaluate with error details, Deliver of
the genesis block over mutual TLS, the chaincode events stream, and the whole
submit path (endorse -> sign -> submit -> commit status), which for a system
chaincode ends with the transaction committed as INVALID_CHAINCODE.
"""
from __future__ import annotations

import hashlib
import threading
import time

import grpc
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fabric_protos.common import common_pb2, ledger_pb2
from fabric_protos.peer import transaction_pb2

from ipledger.gateway.client import (ChaincodeEventsError, CommitError, EndorseError, Endpoint, EvaluateError, Gateway,
                            RetryPolicy, Timeouts)
from ipledger.network.fabric.signing_process import load_identity_apart
from ipledger.gateway.client.gateway import PLANNING_ERROR

pytestmark = pytest.mark.fabric

CHANNEL = "inward-processing"
PEER_HOST = "peer0.customs.ipledger.example"


@pytest.fixture(scope="module")
def customs(fabric_network):
    net = fabric_network
    org = net.consortium.org("CustomsMSP")
    peer = net.consortium.node("peer0.customs")
    identity, signer = load_identity_apart(net.layout.user_msp(org, "User1"), "CustomsMSP")
    tls = net.layout.user_tls(org, "User1")
    endpoint = Endpoint(peer.address, tls_root_cert=net.layout.tls_ca(org), client_cert=tls / "client.crt",
                        client_key=tls / "client.key", server_name=PEER_HOST)
    gw = Gateway.connect(endpoint, identity, signer, timeouts=Timeouts(evaluate=10, endorse=20, commit_status=30),
                         retry=RetryPolicy(retries=1, backoff=0.05))
    yield net, peer, endpoint, gw
    gw.close()
    signer.close()


def test_evaluate_get_chain_info(customs):
    net, peer, _, gw = customs
    raw = gw.network(CHANNEL).contract("qscc").evaluate("GetChainInfo", [CHANNEL])
    info = ledger_pb2.BlockchainInfo.FromString(raw)
    assert info.height >= 1
    assert info.height == net.peer_height(peer)  # the same answer the peer CLI gets
    assert len(info.currentBlockHash) == 32


def test_failed_evaluate_carries_the_peer_error_details(customs):
    _, peer, _, gw = customs
    with pytest.raises(EvaluateError) as info:
        gw.network(CHANNEL).contract("qscc").evaluate("GetBlockByNumber", [CHANNEL, "999999"])
    err = info.value
    assert err.code == grpc.StatusCode.UNKNOWN
    assert err.message.startswith("evaluate call to endorser returned error: chaincode response 500")
    assert len(err.details) == 1
    detail = err.details[0]
    assert detail.msp_id == "CustomsMSP" and detail.address == peer.address
    assert detail.message.startswith("chaincode response 500, ")
    assert err.chaincode_status == 500
    assert "no such block number [999999]" in err.chaincode_message
    assert len(err.tx_id) == 64


def test_deliver_genesis_block_over_mutual_tls(customs):
    net, _, endpoint, gw = customs
    assert gw.tls_cert_hash == endpoint.client_cert_hash and len(gw.tls_cert_hash) == 32
    blocks = list(gw.network(CHANNEL).blocks(0, 0, timeout=30))
    assert len(blocks) == 1
    block = blocks[0]
    assert block.header.number == 0 and block.header.previous_hash == b""
    # Fabric's block data hash: SHA-256 over the concatenated envelope bytes
    assert block.header.data_hash == hashlib.sha256(b"".join(block.data.data)).digest()
    genesis = common_pb2.Block.FromString(net.layout.genesis_block.read_bytes())
    assert block.header == genesis.header and list(block.data.data) == list(genesis.data.data)
    env = common_pb2.Envelope.FromString(block.data.data[0])
    chdr = common_pb2.ChannelHeader.FromString(common_pb2.Payload.FromString(env.payload).header.channel_header)
    assert chdr.channel_id == CHANNEL and chdr.type == common_pb2.CONFIG


def test_submit_goes_through_endorse_submit_and_commit_status(customs):
    """A system chaincode transaction is endorsed (explicit org), ordered, and validated INVALID_CHAINCODE."""
    _, _, _, gw = customs
    network = gw.network(CHANNEL)
    with pytest.raises(CommitError) as info:
        network.contract("qscc").submit("GetChainInfo", [CHANNEL], endorsing_orgs=["CustomsMSP"], timeout=60)
    err = info.value
    assert err.validation_code == transaction_pb2.INVALID_CHAINCODE
    assert err.validation_code_name == "INVALID_CHAINCODE"
    assert err.attempts == 1 and err.block_number >= 1

    # the block the commit status named holds our transaction, signed by us, with that validation code
    (block,) = list(network.blocks(err.block_number, err.block_number, timeout=30))
    flags = block.metadata.metadata[common_pb2.TRANSACTIONS_FILTER]
    found = []
    for i, data in enumerate(block.data.data):
        env = common_pb2.Envelope.FromString(data)
        payload = common_pb2.Payload.FromString(env.payload)
        if common_pb2.ChannelHeader.FromString(payload.header.channel_header).tx_id == err.tx_id:
            gw.identity.certificate.public_key().verify(env.signature, env.payload, ec.ECDSA(hashes.SHA256()))
            found.append(flags[i])
    assert found == [transaction_pb2.INVALID_CHAINCODE]


def test_endorsement_failure_from_the_peer(customs):
    _, peer, _, gw = customs
    with pytest.raises(EndorseError) as info:
        gw.network(CHANNEL).contract("_lifecycle").submit("QueryInstalledChaincodes", [], timeout=30)
    err = info.value
    assert err.code == grpc.StatusCode.ABORTED
    assert [d.msp_id for d in err.details] == ["CustomsMSP"] and err.details[0].address == peer.address
    assert err.chaincode_status == 500 and "exactly two arguments" in err.chaincode_message


def test_planning_error_is_retried_then_reported(customs):
    _, _, _, gw = customs
    t = time.monotonic()
    with pytest.raises(EndorseError) as info:
        gw.network(CHANNEL).contract("qscc").submit("GetChainInfo", [CHANNEL], timeout=30)
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert PLANNING_ERROR in info.value.message
    assert info.value.attempts == 2  # RetryPolicy(retries=1)
    assert time.monotonic() - t < 10


def test_chaincode_events_stream_opens_and_closes(customs):
    _, _, _, gw = customs
    stream = gw.network(CHANNEL).chaincode_events("qscc", start_block=0)
    outcome = {}

    def consume():
        try:
            outcome["events"] = list(stream)
        except Exception as exc:  # noqa: BLE001 - recorded for the assertion below
            outcome["error"] = exc
    reader = threading.Thread(target=consume)
    reader.start()
    reader.join(1.5)
    assert reader.is_alive() and not outcome, f"stream ended early: {outcome}"  # accepted, waiting for events
    stream.close()
    reader.join(5)
    assert not reader.is_alive()
    assert outcome == {"events": []}


def test_chaincode_events_on_an_unknown_channel_is_refused(customs):
    _, _, _, gw = customs
    with pytest.raises(ChaincodeEventsError) as info:
        next(gw.network("no-such-channel").chaincode_events("qscc"))
    assert info.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert "no-such-channel" in info.value.message


def test_tls_host_name_must_match_the_peer_certificate(customs):
    net, peer, endpoint, gw = customs
    wrong = Endpoint(peer.address, tls_root_cert=endpoint.tls_root_cert, server_name="peer0.broker.ipledger.example")
    with Gateway.connect(wrong, gw.identity, gw.signer, timeouts=Timeouts(evaluate=5)) as other:
        with pytest.raises(EvaluateError) as info:
            other.network(CHANNEL).contract("qscc").evaluate("GetChainInfo", [CHANNEL])
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    # by IP with no override works too: the peer certificates carry a 127.0.0.1 SAN
    plain = Endpoint(peer.address, tls_root_cert=endpoint.tls_root_cert)
    with Gateway.connect(plain, gw.identity, gw.signer) as other:
        assert ledger_pb2.BlockchainInfo.FromString(
            other.network(CHANNEL).contract("qscc").evaluate("GetChainInfo", [CHANNEL])).height >= 1
