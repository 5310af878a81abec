"""``python -m ipledger.network.cli.verify --from-file``: summary, JSON report, exit codes."""
from __future__ import annotations

import json

import pytest
from fabric_protos.common import common_pb2

from ipledger.network.fabric import blocks as B
from ipledger.network.cli.verify import main

from .ledger import Ledger, app_policy
from .pki import Org


@pytest.fixture()
def saved(tmp_path):
    lg = Ledger([Org.make(m) for m in ("CustomsMSP", "OperatorMSP", "BrokerMSP")], Org.make("OrdererMSP"))
    lg.genesis()
    admin, c, o = (lg.apps["CustomsMSP"].member("admin"), lg.apps["CustomsMSP"].member("peer"),
                   lg.apps["OperatorMSP"].member("peer"))
    lg.block([lg.define("cc", app_policy("OR('OperatorMSP.peer')"), admin, [c, o])])
    lg.block([lg.endorser_tx(lg.apps["OperatorMSP"].member("client"), "cc", [o], writes={"a": b"1"})])
    out = tmp_path / "blocks"
    out.mkdir()
    for b in lg.blocks:
        B.save_block(out, b)
    return out, lg


def test_summary_and_exit_zero(saved, capsys):
    out, _ = saved
    assert main(["--from-file", str(out)]) == 0
    text = capsys.readouterr().out
    assert "blocks:        0..2 verified (3 blocks)" in text
    assert "transactions:  3 (3 valid, 0 invalid; 1 config)" in text
    assert "cc                   1 valid, 0 invalid; definition sequence 1" in text
    assert "OR('OperatorMSP.peer')" in text and "not checked:" in text
    assert "trust anchor:  block 0 of" in text and text.rstrip().endswith("no inconsistency")


def test_json_report(saved, capsys):
    out, lg = saved
    genesis = out / "genesis.pb"
    genesis.write_bytes(lg.blocks[0].SerializeToString())
    assert main(["--from-file", str(out), "--genesis", str(genesis), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["ok"] and r["blocks_verified"] == 3 and r["channel"] == "test-channel"
    assert r["last_header_hash"] == B.header_hash(lg.blocks[2].header).hex()
    assert r["trust_anchor"].endswith("(it does)")


def test_inconsistency_exits_one_naming_block_and_tx(saved, capsys):
    out, lg = saved
    b = common_pb2.Block()
    b.CopyFrom(lg.blocks[2])
    env = bytearray(b.data.data[0])
    env[len(env) // 2] ^= 0x04              # one bit in the middle of the transaction
    b.data.data[0] = bytes(env)
    B.block_file(out, 2).write_bytes(b.SerializeToString())
    assert main(["--from-file", str(out)]) == 1
    text = capsys.readouterr().out
    assert "RESULT: INCONSISTENT at block 2" in text and "block 2: data hash:" in text
    assert "block 2, tx 0 (" in text


def test_other_genesis_exits_one(saved, capsys, tmp_path):
    out, _ = saved
    other = Ledger([Org.make("CustomsMSP")], Org.make("OrdererMSP"))
    g = tmp_path / "g.block"
    g.write_bytes(other.genesis().SerializeToString())
    assert main(["--from-file", str(out), "--genesis", str(g)]) == 1
    assert "block 0: trust anchor" in capsys.readouterr().out


def test_unusable_arguments_exit_two(tmp_path, capsys):
    assert main([]) == 2
    assert main(["--from-file", str(tmp_path / "missing")]) == 2
    assert main(["--from-file", str(tmp_path)]) == 2        # no block files
    assert "no block files" in capsys.readouterr().err
