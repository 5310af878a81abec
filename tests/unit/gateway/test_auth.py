"""API keys: hashed storage, 401/403, roles, and the org coming from the key only."""
from __future__ import annotations

import json
import os
import stat

import pytest

from ipledger.gateway.app import create_app
from ipledger.gateway.auth import KeyStore, KeyStoreError
from ipledger.network import cli
from tests.unit.consortium_state import with_default_consortium

from .conftest import bearer
from .fakes import move_body, place_body

EVENTS = "/api/v1/events"


def test_key_file_is_0600_and_holds_no_key(keystore, keys):
    assert stat.S_IMODE(keystore.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(keystore.path.parent.stat().st_mode) == 0o700
    text = keystore.path.read_text()
    data = json.loads(text)
    assert len(data["keys"]) == 6
    for key in keys.values():
        secret = key.split("_", 2)[2]
        assert secret not in text and key not in text
    rec = data["keys"][keys.ids[("OperatorMSP", "clerk")]]
    assert rec["org"] == "OperatorMSP" and rec["role"] == "clerk" and len(rec["hash"]) == 64 and len(rec["salt"]) == 32


def test_salts_differ_per_key(keystore, keys):
    data = json.loads(keystore.path.read_text())
    salts = [r["salt"] for r in data["keys"].values()]
    assert len(set(salts)) == len(salts)


def test_list_shows_no_hash(keystore, keys):
    rows = keystore.list()
    assert len(rows) == 6
    assert all(set(r) == {"key_id", "org", "role", "label", "created_at", "expires_at", "revoked_at"} for r in rows)


def test_missing_key_is_401_with_a_challenge(client, ledger):
    r = client.post(EVENTS, json=place_body())
    assert r.status_code == 401 and r.mimetype == "application/problem+json"
    assert r.json["type"] == "https://ipledger.example/problems/unauthenticated"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/api/v1/parameters").status_code == 401
    assert ledger.submits == [] and ledger.evaluations == []


@pytest.mark.parametrize("path", [
    "/api/v1/authorisations/not-an-id", "/api/v1/authorisations/FRIPO000001/alerts?as_of=yesterday",
    "/api/v1/authorisations/FRIPO000001/events", "/api/v1/lots/L1%0A", "/api/v1/batches/B1%0A/history",
    "/api/v1/bills-of-discharge/x", "/api/v1/parameters?channel=NOT%20A%20CHANNEL",
    "/api/v1/authorisations/FRIPO000001/bill-of-discharge-data?period_end=2026-01-01&as_of=2026-01-01"])
def test_a_query_without_a_key_is_401_whatever_its_parameters(client, ledger, path):
    """The query routes checked their path and query parameters before the key: a caller without one got a
    400 about them (the API's promise is 401 to anyone without a valid key, before anything else)."""
    r = client.get(path)
    assert r.status_code == 401, r.get_json()
    assert r.json["type"] == "https://ipledger.example/problems/unauthenticated"
    assert ledger.evaluations == []


@pytest.mark.parametrize("header", [
    {"Authorization": "Bearer ipk_000000000000_" + "A" * 43},            # unknown key id
    {"Authorization": "Bearer not-a-key"},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "Bearer "},
    {"X-API-Key": "ipk_zz"},
])
def test_wrong_keys_are_401(client, ledger, header):
    r = client.get("/api/v1/parameters", headers=header)
    assert r.status_code == 401
    assert ledger.evaluations == []


def test_right_key_id_wrong_secret_is_401(client, keys, ledger):
    key = keys[("OperatorMSP", "clerk")]
    forged = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert client.get("/api/v1/parameters", headers=bearer(forged)).status_code == 401
    assert client.get("/api/v1/parameters", headers=bearer(key)).status_code == 200


def test_x_api_key_header_works(client, keys, ledger):
    r = client.get("/api/v1/parameters", headers={"X-API-Key": keys[("BrokerMSP", "viewer")]})
    assert r.status_code == 200
    assert ledger.evaluations[-1]["org"] == "BrokerMSP"


def test_revoked_key_is_401_at_once_without_restart(client, keys, keystore):
    key = keys[("OperatorMSP", "clerk")]
    assert client.get("/api/v1/parameters", headers=bearer(key)).status_code == 200
    assert keystore.revoke(keys.ids[("OperatorMSP", "clerk")]) is True
    r = client.get("/api/v1/parameters", headers=bearer(key))
    assert r.status_code == 401 and "revoked" in r.json["detail"]
    assert keystore.revoke(keys.ids[("OperatorMSP", "clerk")]) is False  # already revoked
    # other keys still work
    assert client.get("/api/v1/parameters", headers=bearer(keys[("OperatorMSP", "viewer")])).status_code == 200


def test_key_created_while_running_works_at_once(client, keystore):
    _, key = keystore.create("CustomsMSP", "viewer")
    assert client.get("/api/v1/parameters", headers=bearer(key)).status_code == 200


def test_viewer_cannot_submit(client, keys, ledger):
    for org in ("CustomsMSP", "OperatorMSP", "BrokerMSP"):
        r = client.post(EVENTS, json=place_body(), headers=bearer(keys[(org, "viewer")]))
        assert r.status_code == 403, r.json
        assert r.json["type"] == "https://ipledger.example/problems/forbidden" and r.json["role"] == "viewer"
        r = client.post(EVENTS + "/batch", json={"events": [place_body()]}, headers=bearer(keys[(org, "viewer")]))
        assert r.status_code == 403
    assert ledger.submits == []


def test_viewer_and_clerk_can_read(client, keys, ledger):
    for role in ("viewer", "clerk"):
        assert client.get("/api/v1/lots/L1", headers=bearer(keys[("OperatorMSP", role)])).status_code == 200


def test_the_org_is_the_keys_never_the_requests(client, keys, ledger):
    """An operator key submits as OperatorMSP whatever the headers say; the body cannot name an org."""
    headers = {**bearer(keys[("OperatorMSP", "clerk")]), "X-Org": "CustomsMSP", "X-MSP-Id": "CustomsMSP",
               "X-API-Key": keys[("CustomsMSP", "clerk")]}  # Authorization wins over X-API-Key
    r = client.post(EVENTS, json=move_body(), headers=headers)
    assert r.status_code == 201 and r.json["org"] == "OperatorMSP"
    assert [s["org"] for s in ledger.submits] == ["OperatorMSP"]
    r = client.post(EVENTS, json={**move_body("m2"), "msp_id": "CustomsMSP"}, headers=headers)
    assert r.status_code == 400  # not a field of the event
    r = client.get("/api/v1/lots/L1?org=CustomsMSP", headers=headers)
    assert r.status_code == 400 and r.json["parameter"] == "org" and ledger.evaluations == []   # not a parameter
    r = client.get("/api/v1/lots/L1", headers=headers)
    assert ledger.evaluations[-1]["org"] == "OperatorMSP"


def test_every_org_acts_as_itself(client, keys, ledger):
    for i, org in enumerate(("CustomsMSP", "OperatorMSP", "BrokerMSP")):
        r = client.post(EVENTS, json=move_body(f"m-{i}"), headers=bearer(keys[(org, "clerk")]))
        assert r.json["org"] == org
    assert [s["org"] for s in ledger.submits] == ["CustomsMSP", "OperatorMSP", "BrokerMSP"]


def test_key_of_an_org_the_gateway_does_not_serve_is_403(client, keystore, ledger):
    from ipledger.gateway.ledger import UnknownOrg
    _, key = keystore.create("OtherMSP", "clerk")

    def refuse(org, *a, **k):
        raise UnknownOrg(org)

    ledger.submit = refuse
    r = client.post(EVENTS, json=move_body(), headers=bearer(key))
    assert r.status_code == 403 and "OtherMSP" in r.json["detail"]


def test_unsafe_key_file_is_refused_at_start(config, ledger, keys, keystore):
    os.chmod(keystore.path, 0o644)
    with pytest.raises(KeyStoreError, match="chmod 600"):
        create_app(config, ledger=ledger)


def test_key_file_made_unsafe_while_running_is_not_reloaded(client, keys, keystore):
    old = keys[("OperatorMSP", "clerk")]
    assert client.get("/api/v1/parameters", headers=bearer(old)).status_code == 200
    _, new = keystore.create("OperatorMSP", "clerk")
    os.chmod(keystore.path, 0o644)
    # an unsafe file is not read: the keys read before stay, the new one is unknown
    assert client.get("/api/v1/parameters", headers=bearer(new)).status_code == 401
    assert client.get("/api/v1/parameters", headers=bearer(old)).status_code == 200
    os.chmod(keystore.path, 0o600)
    assert client.get("/api/v1/parameters", headers=bearer(new)).status_code == 200


def test_create_refuses_unknown_role(keystore):
    with pytest.raises(KeyStoreError):
        keystore.create("OperatorMSP", "admin")


# ------------------------------------------------------------------------------------------ CLI

def test_cli_keys_create_list_revoke(tmp_path, capsys, monkeypatch):
    state = tmp_path / "st"
    monkeypatch.setenv("IPLEDGER_GATEWAY_ORG", "OperatorMSP")      # the operator's gateway, as --gateway
    assert cli.main(["--state-dir", str(state), "gateway", "keys", "create", "--org", "OperatorMSP",
                     "--role", "clerk", "--label", "ERP"]) == 0
    out, err = capsys.readouterr()
    key = out.strip()
    assert key.startswith("ipk_") and "shown once" in err
    store = KeyStore(state / "operator" / "gateway" / "api-keys.json")
    assert not (state / "gateway").exists()
    principal = store.authenticate(key)
    assert (principal.org, principal.role, principal.label) == ("OperatorMSP", "clerk", "ERP")

    assert cli.main(["--state-dir", str(state), "gateway", "keys", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["key_id"], r["org"], r["role"], r["revoked_at"]) for r in rows] == [
        (principal.key_id, "OperatorMSP", "clerk", None)]
    assert key not in json.dumps(rows)

    assert cli.main(["--state-dir", str(state), "gateway", "keys", "list"]) == 0
    assert principal.key_id in capsys.readouterr().out

    assert cli.main(["--state-dir", str(state), "gateway", "keys", "revoke", principal.key_id]) == 0
    assert store.authenticate(key) is None
    assert cli.main(["--state-dir", str(state), "gateway", "keys", "revoke", principal.key_id]) == 1


def test_cli_refuses_an_org_not_in_the_network(tmp_path, capsys, monkeypatch):
    state = with_default_consortium(tmp_path / "st")
    monkeypatch.delenv("IPLEDGER_GATEWAY_ORG", raising=False)
    for cmd in (["keys", "create", "--org", "BrokerMSP", "--role", "clerk"], ["keys", "list"],
                ["webhooks", "list"]):
        assert cli.main(["--state-dir", str(state), "gateway", *cmd]) == 2
        err = capsys.readouterr().err
        assert "required: --gateway" in err and "CustomsMSP, OperatorMSP, BrokerMSP" in err, err
    assert cli.main(["--state-dir", str(state), "gateway", "keys", "--gateway", "EvilMSP", "create", "--org",
                     "EvilMSP", "--role", "clerk"]) == 2
    assert "not an organisation of this network" in capsys.readouterr().err
    assert cli.main(["--state-dir", str(state), "gateway", "keys", "--gateway", "BrokerMSP", "create", "--org",
                     "OperatorMSP", "--role", "clerk"]) == 2
    assert "makes keys of BrokerMSP only" in capsys.readouterr().err
    assert cli.main(["--state-dir", str(state), "gateway", "keys", "--gateway", "BrokerMSP", "create", "--org",
                     "BrokerMSP", "--role", "viewer", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["org"] == "BrokerMSP"


def test_a_key_file_deleted_underneath_is_lost_not_empty(tmp_path, caplog):
    """Read as "no keys", a deleted api-keys.json answered every valid key 401 (the ERP told its key is wrong) and
    the next 'keys create' started an empty file in its place. Its lock file says it was written: the keys read
    before are kept, the loss is logged, and writing refuses until it is restored."""
    from ipledger.gateway.filestore import MissingFileError

    store = KeyStore(tmp_path / "api-keys.json")
    _, key = store.create("OperatorMSP", "clerk")
    assert store.authenticate(key).org == "OperatorMSP"
    store.path.unlink()
    with caplog.at_level("ERROR"):
        assert store.authenticate(key).org == "OperatorMSP"
    assert any("api-keys.json was written before and is missing" in r.getMessage() for r in caplog.records)
    with pytest.raises(MissingFileError, match="restore it from a backup"):
        store.create("OperatorMSP", "viewer")
    assert not store.path.exists()
    # a worker started after the loss: refused at start, and never "no keys" silently
    with pytest.raises(MissingFileError):
        KeyStore(store.path).check()
    fresh = KeyStore(store.path)
    with caplog.at_level("ERROR"):
        caplog.clear()
        assert fresh.authenticate(key) is None
    assert any("was written before and is missing" in r.getMessage() for r in caplog.records)
