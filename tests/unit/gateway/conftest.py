from __future__ import annotations

import pytest

from ipledger.gateway.app import create_app
from ipledger.gateway.auth import KeyStore
from ipledger.gateway.config import GatewayConfig

from .fakes import FakeLedger

ORGS = ("CustomsMSP", "OperatorMSP", "BrokerMSP")


class Keys(dict):
    """(org, role) -> key; ``.ids`` (org, role) -> key id."""
    ids: dict


@pytest.fixture
def ledger() -> FakeLedger:
    return FakeLedger()


@pytest.fixture
def keystore(tmp_path) -> KeyStore:
    return KeyStore(tmp_path / "state" / "gateway" / "api-keys.json")


@pytest.fixture
def keys(keystore) -> Keys:
    out = Keys()
    out.ids = {}
    for org in ORGS:
        for role in ("clerk", "viewer"):
            key_id, key = keystore.create(org, role, f"{org} {role}")
            out[(org, role)] = key
            out.ids[(org, role)] = key_id
    return out


@pytest.fixture
def config(tmp_path, keystore) -> GatewayConfig:
    return GatewayConfig(keys_file=keystore.path, nonce_key_file=tmp_path / "state" / "gateway" / "nonce.key",
                         retry_after_s=7, max_batch=10, race_retries=3)


@pytest.fixture
def app(config, ledger, keys):
    return create_app(config, ledger=ledger)


@pytest.fixture
def client(app):
    return app.test_client()


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def as_org(client, keys):
    """as_org("OperatorMSP").post(path, json=...) / .get(path): requests with that org's clerk key."""
    class _Caller:
        def __init__(self, org, role="clerk"):
            self.headers = bearer(keys[(org, role)])

        def post(self, path, **kw):
            return client.post(path, headers={**self.headers, **kw.pop("headers", {})}, **kw)

        def get(self, path, **kw):
            return client.get(path, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    return _Caller
