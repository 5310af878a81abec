from __future__ import annotations

import json
import os
import stat
from types import SimpleNamespace

import pytest

from ipledger.gateway.client import FileCheckpointer


def test_new_checkpointer_is_empty_and_writes_nothing(tmp_path):
    cp = FileCheckpointer(tmp_path / "cp.json")
    assert (cp.block_number, cp.tx_id, cp.empty) == (0, "", True)
    assert not (tmp_path / "cp.json").exists()


def test_checkpoint_is_persisted_0600_and_reloaded(tmp_path):
    path = tmp_path / "cp.json"
    cp = FileCheckpointer(path)
    cp.checkpoint_event(SimpleNamespace(block_number=17, tx_id="abc"))
    assert json.loads(path.read_text()) == {"blockNumber": 17, "transactionId": "abc"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = FileCheckpointer(path)
    assert (again.block_number, again.tx_id, again.empty) == (17, "abc", False)
    again.checkpoint_block(17)
    assert (FileCheckpointer(path).block_number, FileCheckpointer(path).tx_id) == (18, "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cp.json"]  # no temp file left behind


def test_update_replaces_the_file_atomically(tmp_path):
    path = tmp_path / "cp.json"
    cp = FileCheckpointer(path)
    cp.checkpoint_transaction(1, "a")
    inode = path.stat().st_ino
    cp.checkpoint_transaction(2, "b")
    assert path.stat().st_ino != inode  # a new file renamed over the old one, not rewritten in place


def test_failed_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "cp.json"
    cp = FileCheckpointer(path)
    cp.checkpoint_transaction(5, "keep")

    def broken_replace(src, dst):
        raise OSError("disk gone")
    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk gone"):
        cp.checkpoint_transaction(6, "lost")
    monkeypatch.undo()
    assert (cp.block_number, cp.tx_id) == (5, "keep")
    assert json.loads(path.read_text())["transactionId"] == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cp.json"]


def test_corrupt_file_is_reported(tmp_path):
    path = tmp_path / "cp.json"
    path.write_text('{"blockNumber": "x"')
    with pytest.raises(ValueError, match="corrupt"):
        FileCheckpointer(path)
