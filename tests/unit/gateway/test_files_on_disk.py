"""The gateway's files on disk: a lost, damaged or unsafe file is an error naming it, never read as empty, and changes
are synced with their directory.

* ``webhooks.json`` moved away (as the corrupt-file message advised) read as "no subscriptions": the pending
  deliveries were failed ("subscription removed") and alerts arriving meanwhile were queued for no one — lost for
  good once the file came back. A kept file lost after it was written is now an error that names it: the feed
  waits, the deliveries stay pending.
* A record of the file that is not an object, or has no id, was a bare ``AttributeError``/``KeyError``.
* The feed hook's and the dispatcher's log lines said ``CorruptFileError`` and not which file or why.
* A changed key or subscription file was renamed into place without the directory being synced: a power loss
  could bring back a revoked key.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import subprocess
import sys
import time

import pytest

import ipledger.gateway.filestore as filestore
from ipledger.network import files
from ipledger.gateway.feed.store import FeedStore
from ipledger.gateway.filestore import CorruptFileError, JsonFile, MissingFileError
from ipledger.gateway.webhooks import AlertRouter, Deliveries, Dispatcher, Subscriptions

from .serving import serve_run, state  # noqa: F401 - fixtures


class Everyone:
    """Every organisation may read every authorisation."""

    def forget_for(self, item):
        pass

    def can_read(self, *args, **kwargs):
        return True


def _item(n: int) -> dict:
    return {"tx_id": f"tx{n}", "block_number": n, "recorded_at": "2026-01-01T00:00:00Z",
            "alerts": [{"change": "RAISED", "type": "CeilingNear", "authorisation_id": "FRIPO000001",
                        "subject": "40122000", "details": {}}]}


@pytest.fixture
def hooks(tmp_path):
    subs = Subscriptions(tmp_path / "webhooks.json")
    subs.add("https://example.org/hook", "OperatorMSP")
    store = FeedStore(tmp_path / "dashboard.sqlite")
    deliveries = Deliveries(store)
    router = AlertRouter(subs, deliveries, Everyone())
    router.on_feed_item(_item(1))                     # queued while the file is good
    sent = []
    dispatcher = Dispatcher(subs, deliveries, visibility=Everyone(),
                            post=lambda url, body, headers, timeout: (sent.append(url), 200)[1])
    return tmp_path, router, dispatcher, deliveries, sent


def test_a_lost_subscription_file_fails_no_delivery_and_queues_no_alert_for_no_one(hooks):
    path, router, dispatcher, deliveries, sent = hooks
    good = (path / "webhooks.json").read_bytes()
    (path / "webhooks.json").unlink()
    with pytest.raises(MissingFileError, match="webhooks.json was written before and is missing"):
        router.on_feed_item(_item(2))                 # the listener retries it; its checkpoint waits
    with pytest.raises(MissingFileError):
        dispatcher.run_once()
    assert [d["status"] for d in deliveries.log()] == ["PENDING"] and not sent
    (path / "webhooks.json").write_bytes(good)        # restored from a backup
    os.chmod(path / "webhooks.json", 0o600)
    router.on_feed_item(_item(2))
    for _ in range(3):                                # one delivery per subscription at a time, in order
        dispatcher.run_once()
    assert sorted(d["status"] for d in deliveries.log()) == ["DELIVERED", "DELIVERED"] and len(sent) == 2


@pytest.mark.parametrize("subscriptions", [{"a": "x"}, {"a": {"url": "https://e.org", "org": "OperatorMSP"}},
                                           {"a": {"id": "b"}}])
def test_a_subscription_file_of_another_shape_is_refused_naming_it(hooks, subscriptions):
    path, router, dispatcher, *_ = hooks
    (path / "webhooks.json").write_text(json.dumps({"version": 1, "subscriptions": subscriptions}))
    for call in (lambda: router.on_feed_item(_item(2)), dispatcher.run_once):
        with pytest.raises(CorruptFileError, match="webhooks.json is corrupt .not an ipledger webhook file"):
            call()


def test_the_dispatchers_log_names_the_file_and_why(hooks, caplog):
    path, router, dispatcher, *_ = hooks
    (path / "webhooks.json").write_text("{")
    with caplog.at_level(logging.WARNING, logger="ipledger.gateway.webhooks"):
        dispatcher.start()
        try:
            for _ in range(100):
                if any("webhooks.json is corrupt" in r.getMessage() for r in caplog.records):
                    break
                dispatcher._stop.wait(0.05)
        finally:
            dispatcher.stop()
    assert any("webhooks.json is corrupt (not UTF-8 JSON" in r.getMessage() for r in caplog.records), \
        [r.getMessage() for r in caplog.records]


def test_a_file_never_written_reads_empty_and_a_first_update_that_fails_marks_nothing(tmp_path):
    f = JsonFile(tmp_path / "k.json", empty=dict, kept=True)
    assert f.read() == {}
    with pytest.raises(RuntimeError):
        with f.update():
            raise RuntimeError("refused before anything was written")
    assert f.read() == {}                             # the lock file is there, but nothing was ever written
    with f.update() as data:
        data["a"] = 1
    os.unlink(f.path)
    with pytest.raises(MissingFileError):
        f.read()
    assert JsonFile(f.path, empty=dict).read() == {}  # a file not kept (the API keys: missing means no key)


def test_a_change_is_synced_with_its_directory(tmp_path, monkeypatch):
    synced = []
    real = files.fsync_directory
    monkeypatch.setattr(files, "fsync_directory", lambda p: (synced.append(p), real(p)))
    with JsonFile(tmp_path / "k.json", empty=dict).update() as data:
        data["a"] = 1
    filestore.read_or_create(tmp_path / "nonce.key", lambda: b"k" * 32)
    assert synced == [tmp_path, tmp_path]


# -- the feed database held locked by another process ------------------------------------------------------------

@contextlib.contextmanager
def held_locked(path):
    """``path`` (a feed database) held by another process in an exclusive lock."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys, time\n"
         f"d = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
         "d.execute('PRAGMA locking_mode=EXCLUSIVE'); d.execute('BEGIN EXCLUSIVE')\n"
         "d.execute('DELETE FROM ended_sessions'); print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.stdin.close()
        holder.wait(10)


@pytest.fixture
def short_busy_timeout(monkeypatch):
    from ipledger.gateway.feed import store as store_mod
    monkeypatch.setattr(store_mod, "BUSY_TIMEOUT_S", 1.0)


def test_an_operation_on_a_locked_feed_database_waits_the_busy_timeout_once(tmp_path, short_busy_timeout):
    store = FeedStore(tmp_path / "dashboard.sqlite")
    started = time.monotonic()
    with held_locked(store.path), pytest.raises(sqlite3.OperationalError, match="locked"):
        store.session_ended("x")
    assert time.monotonic() - started < 5, "each try of the WAL switch waited the whole busy timeout"


def test_the_api_answers_503_with_retry_after_while_the_feed_database_is_locked(tmp_path, short_busy_timeout):
    from ipledger.gateway.app import close_app, create_app
    from ipledger.gateway.auth import KeyStore
    from ipledger.gateway.config import GatewayConfig
    from tests.unit.dashboard.contract_ledger import ContractLedger
    gw = tmp_path / "gateway"
    gw.mkdir(mode=0o700)
    _, key = KeyStore(gw / "api-keys.json").create("OperatorMSP", "viewer")
    app = create_app(GatewayConfig(keys_file=gw / "api-keys.json", nonce_key_file=gw / "nonce.key",
                                   home=tmp_path, customs_msp="CustomsMSP"), ledger=ContractLedger())
    try:
        with held_locked(gw / "dashboard.sqlite"):
            r = app.test_client().get("/api/v1/feed", headers={"Authorization": f"Bearer {key}"})
    finally:
        close_app(app)
    assert r.status_code == 503 and r.headers["Retry-After"] == "5", (r.status_code, r.get_data(as_text=True))
    assert r.get_json()["type"].endswith("/service-unavailable")


# -- the secret files: made at start, only read by the workers ----------------------------------------------------

def test_a_worker_never_makes_a_nonce_key_of_its_own(tmp_path):
    """A worker of `gateway serve` (make=False) whose nonce key went missing answers 503, and uses the key again
    once it is restored: it made a new one silently, which the other workers did not share (their replays of an
    event with commercial data then became duplicate-events)."""
    from ipledger.gateway.problems import Problem
    from ipledger.gateway.validation import NonceKey, check_nonce_key
    path = tmp_path / "nonce.key"
    check_nonce_key(path)                              # the gateway's start
    first, second = NonceKey(path, make=False), NonceKey(path, make=False)
    key = first.secret()
    path.rename(tmp_path / "nonce.key.bak")
    with pytest.raises(Problem) as info:
        second.secret()
    assert info.value.status == 503 and not path.exists()
    (tmp_path / "nonce.key.bak").rename(path)
    assert second.secret() == key == first.secret()


def test_the_session_key_is_made_at_start_and_a_bad_one_refused(serve_run, state, capsys):
    """The dashboard's session key: a link, one readable by others, or one not 32 bytes (whoever reads it signs
    a session cookie for any key id; an empty one made every sign-in a 500) stops `gateway serve` with the file
    named; the workers only read it."""
    code, server = serve_run()
    assert code == 0 and server.gateway_config.make_secrets is False
    key = state / "operator" / "gateway" / "session.key"
    assert key.is_file() and (key.stat().st_mode & 0o777) == 0o600 and len(key.read_bytes()) == 32
    key.chmod(0o644)
    assert serve_run()[0] == 2 and "session key" in capsys.readouterr().err
    key.chmod(0o600)
    key.write_bytes(b"")
    assert serve_run()[0] == 2 and "does not hold a key" in capsys.readouterr().err
    key.unlink()
    key.symlink_to(tmp := state / "elsewhere")
    tmp.write_bytes(b"k" * 32)
    tmp.chmod(0o600)
    assert serve_run()[0] == 2 and "not a regular file" in capsys.readouterr().err


# -- the commands: files that are not theirs, and OS errors -------------------------------------------------------

@pytest.mark.parametrize("content", [b'{"setting": 1}', b"notes\nmore notes\n", b"[]\n"])
@pytest.mark.parametrize("restart", [False, True])
def test_import_never_overwrites_a_file_that_is_not_a_progress_file(tmp_path, content, restart):
    """`ipledger import --progress FILE` truncated any file without a complete line, and any file with
    `--restart`: a settings file given by mistake was lost."""
    from ipledger.gateway.importer import ImportError_, Progress
    path = tmp_path / "settings.json"
    path.write_bytes(content)
    with pytest.raises(ImportError_, match="is not a progress file"):
        Progress(path, "ab" * 32, restart=restart)
    assert path.read_bytes() == content


def test_import_still_restarts_its_own_progress_file_and_one_a_crash_cut_in_its_header(tmp_path):
    from ipledger.gateway.importer import Progress
    path = tmp_path / "in.csv.progress"
    Progress(path, "ab" * 32, restart=False).close()
    Progress(path, "cd" * 32, restart=True).close()              # another version of the input: --restart
    assert json.loads(path.read_text().splitlines()[0])["input_sha256"] == "cd" * 32
    path.write_bytes(b'{"input_sha2')                             # a header cut by a crash
    Progress(path, "ef" * 32, restart=False).close()
    assert json.loads(path.read_text().splitlines()[0])["input_sha256"] == "ef" * 32


def test_the_key_and_webhook_commands_name_a_file_they_cannot_use_instead_of_a_traceback(tmp_path, capsys,
                                                                                        monkeypatch):
    from ipledger.network import cli
    from tests.unit.consortium_state import with_default_consortium
    monkeypatch.delenv("IPLEDGER_GATEWAY_ORG", raising=False)
    state = with_default_consortium(tmp_path / "st")
    gw = state / "operator" / "gateway"
    (gw / "api-keys.json").mkdir(parents=True)                   # a directory where the file should be
    (gw / "webhooks.json").mkdir()
    for cmd in (["keys", "--gateway", "OperatorMSP", "list"], ["webhooks", "--gateway", "OperatorMSP", "list"]):
        assert cli.main(["--state-dir", str(state), "gateway", *cmd]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err and ".json" in err, err


# -- what `gateway serve` checks before forking; the key records; the feed database ------------------------------

def test_a_key_record_revoked_in_any_form_opens_no_door(tmp_path):
    from ipledger.gateway.auth import KeyStore
    store = KeyStore(tmp_path / "api-keys.json")
    key_id, key = store.create("OperatorMSP", "clerk")
    assert store.authenticate(key) is not None
    for revoked in (False, 0, "", []):               # not null: revoked (fail closed); `false` opened it
        doc = json.loads(store.path.read_text())
        doc["keys"][key_id]["revoked_at"] = revoked
        store.path.write_text(json.dumps(doc))
        os.utime(store.path, ns=(time.time_ns(), time.time_ns() + 10**9 * len(str(revoked)) + 1))
        assert store.authenticate(key) is None, revoked


def test_serve_refuses_unusable_webhook_and_feed_files_naming_them(serve_run, state, capsys):
    gw = state / "operator" / "gateway"
    assert serve_run()[0] == 0
    hooks = gw / "webhooks.json"
    hooks.write_text(json.dumps({"version": 1, "subscriptions": {}}))
    for mode, content, expected in ((0o644, None, "chmod 600"), (0o600, "{", "webhooks.json is corrupt"),
                                    (0o600, "[]", "not an ipledger webhook file")):
        if content is not None:
            hooks.write_text(content)
        hooks.chmod(mode)
        assert serve_run()[0] == 2, (mode, content)
        assert expected in capsys.readouterr().err
    hooks.unlink()
    (gw / "dashboard.sqlite").write_bytes(b"not a database, just bytes " * 100)
    for suffix in ("-wal", "-shm"):
        (gw / f"dashboard.sqlite{suffix}").unlink(missing_ok=True)
    assert serve_run()[0] == 2
    assert "dashboard.sqlite is not a feed database" in capsys.readouterr().err


def test_the_feed_database_is_0600_from_its_creation_and_one_of_a_newer_version_is_refused(tmp_path):
    import stat as stat_mod
    from ipledger.gateway.feed.store import SCHEMA_VERSION, FeedStoreError
    store = FeedStore(tmp_path / "dashboard.sqlite")
    store.session_ended("x")
    for name in ("dashboard.sqlite", "dashboard.sqlite-wal", "dashboard.sqlite-shm"):
        if (tmp_path / name).exists():
            assert stat_mod.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(FeedStoreError, match="written by a newer ipledger"):
        FeedStore(store.path)


def test_a_nonce_key_lost_after_the_gateway_ran_is_made_again_and_said(serve_run, state, capsys):
    """A nonce key missing where the gateway ran before (a restore that left it out) was
    made again without a word, and the resend of an event with commercial data sent before became a
    duplicate-event. It is still made (the gateway serves), and the start says so and what to do."""
    assert serve_run()[0] == 0
    assert "nonce key" not in capsys.readouterr().err          # a first start makes it, nothing to say
    nonce = state / "operator" / "gateway" / "nonce.key"
    nonce.unlink()
    assert serve_run()[0] == 0 and nonce.is_file()
    err = capsys.readouterr().err
    assert f"the nonce key {nonce} was missing, though this gateway ran before" in err and "duplicate-event" in err
    assert serve_run()[0] == 0 and "nonce key" not in capsys.readouterr().err
