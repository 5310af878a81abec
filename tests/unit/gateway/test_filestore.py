"""ipledger.gateway.filestore.JsonFile: the locked JSON file the API keys and webhook subscriptions live in."""
from __future__ import annotations

import json
import multiprocessing
import os
import stat
import threading

import pytest

import ipledger.gateway.filestore as filestore
from ipledger.network import files
from ipledger.gateway.auth import KeyStore
from ipledger.gateway.filestore import CorruptFileError, JsonFile
from ipledger.gateway.webhooks import Subscriptions

N = 150


class NotOurs(RuntimeError):
    pass


def _check(data) -> None:
    if not isinstance(data, dict) or not isinstance(data.get("n"), int):
        raise NotOurs("not a counter file")


def counter(path) -> JsonFile:
    return JsonFile(path, empty=lambda: {"n": 0}, check=_check)


def _increment(path: str, times: int, start) -> None:
    start.wait()
    f = counter(path)
    for _ in range(times):
        with f.update() as data:
            data["n"] += 1


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_missing_file_reads_as_empty(tmp_path):
    f = counter(tmp_path / "c.json")
    assert f.read() == {"n": 0}
    assert not (tmp_path / "c.json").exists()


def test_two_processes_incrementing_lose_no_update(tmp_path):
    path = tmp_path / "shared" / "c.json"
    ctx = multiprocessing.get_context("spawn")   # separate interpreters, as gunicorn workers and the CLI are
    start = ctx.Event()
    procs = [ctx.Process(target=_increment, args=(str(path), N, start)) for _ in range(2)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert counter(path).read() == {"n": 2 * N}


def test_threads_of_one_process_are_serialised_too(tmp_path):
    # flock belongs to the open file, not the process: each update opens the lock file anew
    path = tmp_path / "c.json"
    start = threading.Event()
    threads = [threading.Thread(target=_increment, args=(str(path), N, start)) for _ in range(4)]
    for t in threads:
        t.start()
    start.set()
    for t in threads:
        t.join(60)
    assert counter(path).read() == {"n": 4 * N}


def test_readers_never_see_a_torn_file(tmp_path):
    path = tmp_path / "c.json"
    with counter(path).update() as data:
        data["pad"] = "x" * 200_000   # big enough that a non-atomic write would be seen half-done
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    writer = ctx.Process(target=_increment, args=(str(path), N, start))
    writer.start()
    start.set()
    reads = []
    while writer.is_alive():
        reads.append(counter(path).read()["n"])   # CorruptFileError here would be a torn read
    writer.join()
    assert writer.exitcode == 0 and counter(path).read()["n"] == N
    assert reads == sorted(reads)   # each read saw one whole document, never an older one after a newer


def test_files_are_0600_and_the_directory_0700(tmp_path):
    old = os.umask(0)
    try:
        path = tmp_path / "gw" / "c.json"
        path.parent.mkdir(mode=0o755)
        # a temporary file a crash left, of another mode, is removed, not reused with that mode
        leftover = path.with_name(".c.json.tmp")
        leftover.write_text("junk")
        leftover.chmod(0o644)
        with counter(path).update() as data:
            data["n"] = 1
    finally:
        os.umask(old)
    assert _mode(path) == 0o600
    assert _mode(path.with_name("c.json.lock")) == 0o600
    assert _mode(path.parent) == 0o700
    assert not leftover.exists()
    text = path.read_text()
    assert json.loads(text) == {"n": 1} and text.endswith("}\n")


@pytest.mark.parametrize("content", [b"{\"n\": 1", b"", b"\xff\xfe{}", b"not json"])
def test_a_corrupt_file_raises_the_named_error_and_is_not_overwritten(tmp_path, content):
    path = tmp_path / "c.json"
    path.write_bytes(content)
    f = counter(path)
    with pytest.raises(CorruptFileError, match="c.json") as info:
        f.read()
    assert info.value.path == path and isinstance(info.value, ValueError)
    with pytest.raises(CorruptFileError):
        with f.update() as data:
            data["n"] = 5
    assert path.read_bytes() == content


def test_a_document_of_the_wrong_shape_raises_the_owners_error(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"keys": []}')
    with pytest.raises(NotOurs):
        counter(path).read()


def test_a_write_that_fails_half_way_leaves_the_old_content(tmp_path, monkeypatch):
    path = tmp_path / "c.json"
    f = counter(path)
    with f.update() as data:
        data["n"] = 1
    before = path.read_bytes()

    def crash(fd):
        assert os.fstat(fd).st_size > 0   # the new document reached the temporary file, then the crash
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        with f.update() as data:
            data["n"] = 2
    monkeypatch.undo()
    assert path.read_bytes() == before and f.read() == {"n": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "c.json.lock"]   # no temporary file left
    with f.update() as data:   # and the lock was released
        data["n"] += 1
    assert f.read() == {"n": 2}


def test_a_failed_rename_leaves_the_old_content(tmp_path, monkeypatch):
    path = tmp_path / "c.json"
    f = counter(path)
    with f.update() as data:
        data["n"] = 1

    def fail(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(filestore.os, "replace", fail)
    with pytest.raises(OSError, match="rename failed"):
        with f.update() as data:
            data["n"] = 2
    monkeypatch.undo()
    assert f.read() == {"n": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "c.json.lock"]


def test_nothing_is_written_when_the_body_raises(tmp_path):
    path = tmp_path / "c.json"
    f = counter(path)
    with f.update() as data:
        data["n"] = 1
    with pytest.raises(KeyError):
        with f.update() as data:
            data["n"] = 7
            raise KeyError("no")
    assert f.read() == {"n": 1}


# ------------------------------------------------------------------------------------------ the two users

def test_files_written_before_the_shared_store_still_load(tmp_path):
    # the API key file as auth.py wrote it (final newline) and the webhook file as gateway/webhooks wrote it (none)
    keys = tmp_path / "api-keys.json"
    keys.write_text(json.dumps({"version": 1, "keys": {"0123456789ab": {
        "org": "OperatorMSP", "role": "clerk", "label": "old", "salt": "00", "hash": "x",
        "created_at": "2026-01-01T00:00:00Z", "revoked_at": None}}}, indent=2, sort_keys=True) + "\n")
    hooks = tmp_path / "webhooks.json"
    hooks.write_text(json.dumps({"version": 1, "subscriptions": {"abcdef012345": {
        "id": "abcdef012345", "url": "http://127.0.0.1/x", "org": "OperatorMSP", "secret": "s" * 20, "types": [],
        "label": "", "created_at": "2026-01-01T00:00:00.000000Z", "removed_at": None}}}, indent=2, sort_keys=True))
    for p in (keys, hooks):
        p.chmod(0o600)
    store = KeyStore(keys)
    store.check()
    assert [k["key_id"] for k in store.list()] == ["0123456789ab"]
    assert store.revoke("0123456789ab")
    subs = Subscriptions(hooks)
    assert [s["id"] for s in subs.active()] == ["abcdef012345"]
    assert subs.remove("abcdef012345") and not subs.active()
    assert _mode(keys) == _mode(hooks) == 0o600


def test_key_and_webhook_files_that_are_not_json_raise_the_named_error(tmp_path):
    (tmp_path / "api-keys.json").write_text("{")
    (tmp_path / "api-keys.json").chmod(0o600)
    (tmp_path / "webhooks.json").write_text("{")
    with pytest.raises(CorruptFileError):
        KeyStore(tmp_path / "api-keys.json").check()
    with pytest.raises(CorruptFileError):
        Subscriptions(tmp_path / "webhooks.json").list()


def test_the_cli_reports_a_corrupt_file_as_an_error(tmp_path, capsys, monkeypatch):
    from ipledger.network import cli
    state = tmp_path / "st"
    monkeypatch.setenv("IPLEDGER_GATEWAY_ORG", "OperatorMSP")
    assert cli.main(["--state-dir", str(state), "gateway", "keys", "create", "--org", "OperatorMSP",
                     "--role", "clerk"]) == 0
    directory = state / "operator" / "gateway"
    (directory / "api-keys.json").write_text('{"version": 1, "keys": {')
    (directory / "webhooks.json").write_text("\0")
    capsys.readouterr()
    for cmd in (["keys", "list"], ["webhooks", "list"]):
        assert cli.main(["--state-dir", str(state), "gateway", *cmd]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "is corrupt" in err, err


def test_a_secret_written_once_is_0600_from_its_creation_and_the_first_writer_wins(tmp_path, monkeypatch):
    path = tmp_path / "gateway" / "session.key"
    # a leftover of another run, world-readable, where this process would name its temporary file
    monkeypatch.setattr(os, "urandom", lambda n, _real=os.urandom: b"\x00" * n if n == 4 else _real(n))
    leftover = path.parent / f".session.key.{os.getpid()}.00000000"
    path.parent.mkdir()
    leftover.write_bytes(b"old")
    leftover.chmod(0o644)
    with pytest.raises(FileExistsError):   # never written through a file of another mode
        filestore.read_or_create(path, lambda: b"first")
    assert not path.exists()
    leftover.unlink()
    modes = []
    real_link = os.link

    def link(src, dst):
        modes.append(stat.S_IMODE(os.stat(src).st_mode))
        real_link(src, dst)
    monkeypatch.setattr(os, "link", link)
    assert filestore.read_or_create(path, lambda: b"first") == b"first"
    assert modes == [0o600] and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert filestore.read_or_create(path, lambda: b"second") == b"first"   # made once, then only read
    assert [p.name for p in path.parent.iterdir()] == ["session.key"]      # no temporary file left


def test_workers_creating_one_secret_at_once_agree_on_it(tmp_path):
    path = tmp_path / "nonce.key"
    got, barrier = [], threading.Barrier(8)

    def make():
        barrier.wait()
        return os.urandom(32)
    threads = [threading.Thread(target=lambda: got.append(filestore.read_or_create(path, make))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8 and len(set(got)) == 1 and got[0] == path.read_bytes()


@pytest.mark.parametrize("mode, refused", [(0o600, False), (0o400, False), (0o700, True),
                                           (0o640, True), (0o604, True), (0o620, True), (0o602, True)])
def test_a_secret_file_anyone_but_its_owner_may_read_or_write_is_refused_by_name(tmp_path, mode, refused):
    """The gateway's one owner-only check (API keys, webhook secrets, the nonce and session keys, TLS keys)."""
    class Refused(ValueError):
        pass
    path = tmp_path / "secret.key"
    path.write_bytes(b"k")
    path.chmod(mode)
    if not refused:
        filestore.require_owner_only(path, "test key", Refused)
        return
    with pytest.raises(Refused) as info:
        filestore.require_owner_only(path, "test key", Refused)
    assert str(info.value) == (f"test key {path} has mode {mode:04o}, wider than 0600: it must be readable by its "
                               f"owner only; run 'chmod 600 {path}'")
