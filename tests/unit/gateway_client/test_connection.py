"""TLS dialling against a fake peer with generated certificates: host name override,
mutual TLS and its certificate hash binding, message size limits."""
from __future__ import annotations

import hashlib

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2
from fabric_protos.peer import proposal_response_pb2

from ipledger.gateway.client import DeliverError, Endpoint, EvaluateError, Gateway, Timeouts, dial, tls_cert_hash
from ipledger.network.fabric.connection import channel_options

from .fakes import FakePeer, issue, make_ca, start_server

PEER_NAME = "peer0.customs.test.example"


@pytest.fixture(scope="module")
def pki():
    tls_ca = make_ca("tlsca.customs.test")
    client_ca = make_ca("tlsca.operator.test")
    server = issue(tls_ca, PEER_NAME, sans=(PEER_NAME,), server=True)   # no IP SAN on purpose
    client = issue(client_ca, "User1@operator.test", client=True)
    return tls_ca, client_ca, server, client


@pytest.fixture(scope="module")
def tls_peer(pki):
    tls_ca, client_ca, server_cert, _ = pki
    peer = FakePeer()
    creds = grpc.ssl_server_credentials([(server_cert.key_pem, server_cert.cert_pem)],
                                        root_certificates=client_ca.cert_pem, require_client_auth=False)
    server, port = start_server(peer, creds)
    yield peer, port
    server.stop(grace=None)


@pytest.fixture(scope="module")
def mtls_peer(pki):
    tls_ca, client_ca, server_cert, _ = pki
    peer = FakePeer()
    creds = grpc.ssl_server_credentials([(server_cert.key_pem, server_cert.cert_pem)],
                                        root_certificates=client_ca.cert_pem, require_client_auth=True)
    server, port = start_server(peer, creds)
    yield peer, port
    server.stop(grace=None)


def _evaluate(endpoint, identity, signer):
    with Gateway.connect(endpoint, identity, signer, timeouts=Timeouts(evaluate=3)) as gw:
        return gw.network("ch").contract("cc").evaluate("Ping")


def test_server_name_override_when_dialling_by_ip(pki, tls_peer, identity, signer, tmp_path):
    tls_ca, *_ = pki
    _, port = tls_peer
    ca_file = tmp_path / "tlsca.pem"
    ca_file.write_bytes(tls_ca.cert_pem)
    ok = Endpoint(f"127.0.0.1:{port}", tls_root_cert=ca_file, server_name=PEER_NAME)
    assert _evaluate(ok, identity, signer) == b"ok|cc|Ping"
    # the certificate has no IP SAN: without the override the TLS handshake fails
    with pytest.raises(EvaluateError) as info:
        _evaluate(Endpoint(f"127.0.0.1:{port}", tls_root_cert=tls_ca.cert_pem), identity, signer)
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(EvaluateError):
        _evaluate(Endpoint(f"127.0.0.1:{port}", tls_root_cert=tls_ca.cert_pem, server_name="other.example"),
                  identity, signer)


def test_wrong_root_ca_fails(tls_peer, identity, signer):
    _, port = tls_peer
    with pytest.raises(EvaluateError) as info:
        _evaluate(Endpoint(f"127.0.0.1:{port}", tls_root_cert=make_ca("x").cert_pem, server_name=PEER_NAME),
                  identity, signer)
    assert info.value.code == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_and_deliver_binding(pki, mtls_peer, identity, signer):
    tls_ca, _, _, client = pki
    peer, port = mtls_peer
    peer.reset()
    endpoint = Endpoint(f"127.0.0.1:{port}", tls_root_cert=tls_ca.cert_pem, client_cert=client.cert_pem,
                        client_key=client.key_pem, server_name=PEER_NAME)
    der = client.cert.public_bytes(serialization.Encoding.DER)
    assert endpoint.client_cert_hash == tls_cert_hash(client.cert_pem) == hashlib.sha256(der).digest()
    assert _evaluate(endpoint, identity, signer) == b"ok|cc|Ping"

    with Gateway.connect(endpoint, identity, signer) as gw:
        assert gw.tls_cert_hash == hashlib.sha256(der).digest()
        blocks = list(gw.network("ch").blocks(0, 1))
    assert [b.header.number for b in blocks] == [0, 1]
    env = peer.recorded.deliver[-1]
    chdr = common_pb2.ChannelHeader.FromString(common_pb2.Payload.FromString(env.payload).header.channel_header)
    assert chdr.tls_cert_hash == hashlib.sha256(der).digest()

    # the same stream without the hash is refused by the binding check
    channel = dial(endpoint)
    try:
        gw = Gateway(channel, identity, signer)  # tls_cert_hash not given
        with pytest.raises(DeliverError) as info:
            list(gw.network("ch").blocks(0, 0))
        assert info.value.status == "BAD_REQUEST"
    finally:
        channel.close()

    # and without a client certificate the handshake itself fails
    with pytest.raises(EvaluateError) as info:
        _evaluate(Endpoint(f"127.0.0.1:{port}", tls_root_cert=tls_ca.cert_pem, server_name=PEER_NAME),
                  identity, signer)
    assert info.value.code == grpc.StatusCode.UNAVAILABLE


def test_responses_above_grpc_default_4_mib_are_accepted(pki, tls_peer, identity, signer):
    tls_ca, *_ = pki
    peer, port = tls_peer
    peer.reset()
    big = b"\xab" * (10 * 1024 * 1024)
    peer.on_evaluate = lambda request, context: gateway_pb2.EvaluateResponse(
        result=proposal_response_pb2.Response(status=200, payload=big))
    endpoint = Endpoint(f"127.0.0.1:{port}", tls_root_cert=tls_ca.cert_pem, server_name=PEER_NAME)
    assert _evaluate(endpoint, identity, signer) == big


def test_channel_options():
    opts = dict(channel_options("peer0.x"))
    assert opts["grpc.max_receive_message_length"] == opts["grpc.max_send_message_length"] == 100 * 1024 * 1024
    assert opts["grpc.ssl_target_name_override"] == "peer0.x"
    assert opts["grpc.keepalive_time_ms"] >= 60_000  # Fabric peers refuse pings more often than every 60 s
    assert "grpc.ssl_target_name_override" not in dict(channel_options(None))


def test_half_mutual_tls_config_is_refused(pki):
    tls_ca, _, _, client = pki
    with pytest.raises(ValueError, match="both"):
        dial(Endpoint("127.0.0.1:1", tls_root_cert=tls_ca.cert_pem, client_cert=client.cert_pem))
    with pytest.raises(ValueError, match="cannot read TLS root certificate"):
        dial(Endpoint("127.0.0.1:1", tls_root_cert="/nonexistent/ca.pem"))
