from __future__ import annotations

import grpc
import pytest

from ipledger.gateway.client import Gateway, RetryPolicy, Signer, Timeouts, X509Identity

from .fakes import FakePeer, issue, make_ca, serving


@pytest.fixture(scope="session")
def org_ca():
    return make_ca("ca.operator.test")


@pytest.fixture(scope="session")
def user(org_ca):
    return issue(org_ca, "User1@operator.test")


@pytest.fixture(scope="session")
def identity(user) -> X509Identity:
    return X509Identity("OperatorMSP", user.cert_pem)


@pytest.fixture(scope="session")
def signer(user) -> Signer:
    return Signer(user.key)


@pytest.fixture(scope="session")
def _fake_server():
    peer = FakePeer()
    with serving(peer) as channel:
        yield peer, channel


@pytest.fixture
def fake_peer(_fake_server) -> FakePeer:
    peer, _ = _fake_server
    peer.reset()
    return peer


@pytest.fixture
def peer_channel(_fake_server, fake_peer) -> grpc.Channel:
    return _fake_server[1]


@pytest.fixture
def gateway(peer_channel, identity, signer) -> Gateway:
    return Gateway(peer_channel, identity, signer,
                   timeouts=Timeouts(evaluate=2, endorse=2, submit=2, commit_status=2),
                   retry=RetryPolicy(retries=3, backoff=0.0, max_backoff=0.0))


@pytest.fixture
def contract(gateway):
    return gateway.network("inward-processing").contract("ipledger")
