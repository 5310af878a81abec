"""Exactly-once submits and imports, start-up checks of the settings and the nonce key, and API keys that expire. Each
test failed on the code before its fix."""
from __future__ import annotations

import json

import grpc
import pytest

from ipledger.gateway.client import CommitStatusError
from ipledger.gateway.config import ConfigError, GatewayConfig
from ipledger.gateway.importer import ImportError_, Importer, LineOutcome, Progress
from ipledger.network import cli

from .conftest import bearer
from .fakes import move_body, place_body
from .serving import serve_run, state  # noqa: F401 - fixtures

EVENTS = "/api/v1/events"


# -- a submit whose commit status is unknown -------------------------------------------------------------

def commit_status_failed(code=grpc.StatusCode.INTERNAL):
    """The transaction was endorsed and handed to the orderers (Submit succeeded), then asking the peer for its
    commit status failed: it may be in a block or not."""
    return CommitStatusError("failed to obtain commit status", code=code, tx_id="9a" * 32)


@pytest.mark.parametrize("code", [grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.NOT_FOUND])
def test_an_unknown_commit_status_is_a_retryable_answer_and_the_resend_a_replay(client, keys, ledger, code):
    ledger.submit_failures.append(commit_status_failed(code))
    headers = bearer(keys[("OperatorMSP", "clerk")])
    # the first submit reached the ledger; the fake failed it before recording: make it record, then fail
    first = ledger.submit
    calls = []

    def submit_then_lose_the_answer(org, function, args, transient=None):
        calls.append(function)
        if len(calls) == 1:
            ledger.submit_failures.clear()
            first(org, function, args, transient)    # recorded (committed) ...
            raise commit_status_failed(code)          # ... but the gateway never learns it
        return first(org, function, args, transient)

    ledger.submit = submit_then_lose_the_answer
    r = client.post(EVENTS, json=place_body(), headers=headers)
    assert r.status_code == 503, r.json
    assert r.headers["Retry-After"] == "7"
    assert "may or may not be recorded" in r.json["detail"] and r.json["tx_id"] == "9a" * 32
    again = client.post(EVENTS, json=place_body(), headers=headers)
    assert again.status_code == 200 and again.json["status"] == "REPLAYED"
    assert len(ledger.recorded) == 1


def test_a_batch_stops_at_an_item_whose_commit_status_is_unknown(client, keys, ledger):
    ledger.fail_submits_for["mv-1"] = commit_status_failed()
    r = client.post(EVENTS + "/batch", json={"events": [move_body("mv-0"), move_body("mv-1"), move_body("mv-2")]},
                    headers=bearer(keys[("OperatorMSP", "clerk")]))
    assert r.status_code == 200
    outcomes = [x["outcome"] for x in r.json["results"]]
    assert outcomes == ["COMMITTED", "FAILED", "NOT_ATTEMPTED"]
    assert r.json["results"][1]["status"] == 503 and r.headers["Retry-After"] == "7"


# -- the importer's record of what it sent -------------------------------------------------------------------

def test_two_importers_of_one_file_at_once_are_refused(tmp_path):
    progress_file = tmp_path / "events.jsonl.progress"
    first = Progress(progress_file, "ab" * 32, restart=False)
    try:
        with pytest.raises(ImportError_, match="another import"):
            Progress(progress_file, "ab" * 32, restart=False)
        with pytest.raises(ImportError_, match="another import"):
            Progress(progress_file, "ab" * 32, restart=True)    # nor does --restart wipe a running one's record
        first.record(LineOutcome(1, "e1", "MoveGoods", 201, "COMMITTED", tx_id="t1"))
    finally:
        first.close()
    again = Progress(progress_file, "ab" * 32, restart=False)   # once the first ended
    assert set(again.done) == {1}
    again.close()


def test_a_record_cut_by_a_crash_does_not_swallow_the_next_one(tmp_path):
    progress_file = tmp_path / "events.jsonl.progress"
    p = Progress(progress_file, "ab" * 32, restart=False)
    p.record(LineOutcome(1, "e1", "MoveGoods", 201, "COMMITTED", tx_id="t1"))
    p.close()
    with open(progress_file, "a", encoding="utf-8") as f:
        f.write('{"line": 2, "event_id": "e2", "ty')          # the crash, mid-record
    p = Progress(progress_file, "ab" * 32, restart=False)
    assert set(p.done) == {1}
    p.record(LineOutcome(2, "e2", "MoveGoods", 200, "REPLAYED", tx_id="t2"))
    p.record(LineOutcome(3, "e3", "MoveGoods", 201, "COMMITTED", tx_id="t3"))
    p.close()
    p = Progress(progress_file, "ab" * 32, restart=False)
    assert set(p.done) == {1, 2, 3}
    p.close()


@pytest.mark.parametrize("left", ["", '{"input_sha256": "ab'])
def test_a_header_cut_by_a_crash_starts_the_record_again(tmp_path, left):
    progress_file = tmp_path / "events.jsonl.progress"
    progress_file.write_text(left)
    p = Progress(progress_file, "ab" * 32, restart=False)     # nothing can have been recorded after it
    assert p.done == {}
    p.record(LineOutcome(1, "e1", "MoveGoods", 201, "COMMITTED"))
    p.close()
    assert json.loads(progress_file.read_text().splitlines()[0])["input_sha256"] == "ab" * 32
    p = Progress(progress_file, "ab" * 32, restart=False)
    assert set(p.done) == {1}
    p.close()


@pytest.mark.parametrize("status", [408, 429])
def test_a_line_answered_too_many_requests_or_timeout_is_sent_again_not_recorded_refused(status):
    importer = Importer("http://127.0.0.1:9", "ipk_x", progress=None, sleep=lambda s: None)
    answers = [(status, {"type": "about:blank", "title": "Too Many Requests"}, {"Retry-After": "1"}),
               (201, {"status": "COMMITTED", "tx_id": "t1", "block_number": 9}, {})]
    sent = []

    def post(body, line):
        sent.append(line)
        return answers.pop(0)

    importer._post = post
    outcome = importer.submit(1, move_body("mv-1"))
    assert outcome.outcome == "COMMITTED" and sent == [1, 1]


# -- settings checked at the start ----------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["true", "yes", "on", "2"])
def test_a_live_feed_setting_that_is_not_0_or_1_is_refused_at_start(state, monkeypatch, value):
    monkeypatch.setenv("IPLEDGER_LIVE_FEED", value)
    with pytest.raises(ConfigError, match="IPLEDGER_LIVE_FEED"):
        GatewayConfig.from_state_dir(state, org="OperatorMSP")


def test_live_feed_0_and_1(state, monkeypatch):
    monkeypatch.setenv("IPLEDGER_LIVE_FEED", "0")
    assert GatewayConfig.from_state_dir(state, org="OperatorMSP").live_feed is False
    monkeypatch.setenv("IPLEDGER_LIVE_FEED", "1")
    assert GatewayConfig.from_state_dir(state, org="OperatorMSP").live_feed is True


def test_the_nonce_key_is_made_at_start_and_a_bad_one_refused_before_any_request(serve_run, state, capsys):
    code, app = serve_run()
    assert code == 0
    nonce = app.gateway_config.nonce_key_file
    assert nonce.is_file() and (nonce.stat().st_mode & 0o777) == 0o600   # made before the first request
    before = nonce.read_bytes()
    nonce.chmod(0o644)                                                   # readable by others
    assert serve_run()[0] == 2
    err = capsys.readouterr().err
    assert "nonce" in err and "chmod 600" in err and before.decode().strip() not in err
    nonce.chmod(0o600)
    nonce.write_text("not hex\n")                                        # corrupt: every commercial event a 500
    assert serve_run()[0] == 2
    assert "nonce" in capsys.readouterr().err


def test_a_corrupt_nonce_key_is_not_a_500_at_the_first_commercial_event(client, keys, config):
    config.nonce_key_file.parent.mkdir(parents=True, exist_ok=True)
    config.nonce_key_file.write_text("not hex\n")
    config.nonce_key_file.chmod(0o600)
    r = client.post(EVENTS, json=place_body(), headers=bearer(keys[("OperatorMSP", "clerk")]))
    assert r.status_code == 503 and r.json["type"].endswith("/service-unavailable")
    assert "not hex" not in r.get_data(as_text=True)


# -- API keys that expire ----------------------------------------------------------------------------------------

def test_a_key_can_be_made_to_expire_and_is_refused_from_then_on(keystore, config, ledger, keys, monkeypatch):
    from ipledger.gateway import auth
    from ipledger.gateway.app import create_app
    from ipledger.gateway.auth import KeyStoreError

    key_id, key = keystore.create("OperatorMSP", "clerk", "ERP until the audit", expires_in_days=30)
    [row] = [r for r in keystore.list() if r["key_id"] == key_id]
    assert row["expires_at"] and row["revoked_at"] is None
    client = create_app(config, ledger=ledger).test_client()
    assert client.get("/api/v1/lots/L1", headers=bearer(key)).status_code != 401
    assert keystore.active(key_id) is not None
    later = auth._now(auth.dt.timedelta(days=31))
    monkeypatch.setattr(auth, "_now", lambda delta=auth.dt.timedelta(): later)
    r = client.get("/api/v1/lots/L1", headers=bearer(key))
    assert r.status_code == 401
    assert keystore.active(key_id) is None                      # its dashboard sessions and streams end too
    assert client.get("/api/v1/lots/L1", headers=bearer(keys[("OperatorMSP", "clerk")])).status_code != 401
    with pytest.raises(KeyStoreError, match="1 to 36500 days"):
        keystore.create("OperatorMSP", "clerk", expires_in_days=0)


def test_a_key_whose_expiry_is_not_a_time_is_refused(keystore):
    from ipledger.gateway.filestore import JsonFile
    key_id, key = keystore.create("OperatorMSP", "viewer", expires_in_days=1)
    with JsonFile(keystore.path, empty=dict).update() as data:
        data["keys"][key_id]["expires_at"] = "never"
    assert keystore.authenticate(key) is None


def test_keys_create_expires_in_on_the_command_line(state, capsys):
    code = cli.main(["--state-dir", str(state), "gateway", "keys", "--gateway", "OperatorMSP", "create", "--org",
                     "OperatorMSP", "--role", "viewer", "--expires-in", "90", "--json"])
    assert code == 0
    created = json.loads(capsys.readouterr().out)
    assert cli.main(["--state-dir", str(state), "gateway", "keys", "--gateway", "OperatorMSP", "list", "--json"]) == 0
    [row] = [r for r in json.loads(capsys.readouterr().out) if r["key_id"] == created["key_id"]]
    assert row["expires_at"] > row["created_at"]
    assert cli.main(["--state-dir", str(state), "gateway", "keys", "--gateway", "OperatorMSP", "create", "--org",
                     "OperatorMSP", "--role", "viewer", "--expires-in", "-1"]) == 2
    assert "1 to 36500 days" in capsys.readouterr().err
