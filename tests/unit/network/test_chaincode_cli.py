"""``ipledger chaincode deploy --package FILE``: an organisation installs and approves the package another sent
(the real-network run is in tests/integration/test_multihost.py); a package of another name or version, or
none, is refused before anything is installed."""
from __future__ import annotations

from ipledger.network.channel import package as cc
from ipledger.network import cli


def test_a_received_package_of_another_label_is_refused(tmp_path, capsys):
    exe = tmp_path / "x"
    exe.write_bytes(b"#!/bin/sh\n")
    pkg = cc.build_binary_package("other_2.0", exe, tmp_path / "other.tar.gz")
    code = cli.main(["--state-dir", str(tmp_path / "state"), "chaincode", "deploy", "--package", str(pkg)])
    assert code != 0
    assert "labelled 'other_2.0', not 'ipledger_1.0'" in capsys.readouterr().err


def test_a_missing_package_is_refused(tmp_path, capsys):
    code = cli.main(["--state-dir", str(tmp_path / "state"), "chaincode", "deploy", "--package",
                     str(tmp_path / "nothing.tar.gz")])
    assert code != 0 and "no chaincode package at" in capsys.readouterr().err
