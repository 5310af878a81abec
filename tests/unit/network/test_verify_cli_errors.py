"""``ipledger verify``: an unreadable ``_lifecycle`` definition is a named problem, a block without its last config
index is refused, block text cannot drive the terminal, bad files are argument errors."""
from __future__ import annotations

import os

import pytest
from fabric_protos.common import common_pb2

from ipledger.network.cli.verify import main, render
from ipledger.network.fabric import blocks as B
from ipledger.network.verify.verifier import Verifier

from ..verify.ledger import Ledger, app_policy, verify_all
from ..verify.pki import Org

MVCC = 11


@pytest.fixture()
def ledger():
    lg = Ledger([Org.make(m) for m in ("CustomsMSP", "OperatorMSP", "BrokerMSP")], Org.make("OrdererMSP"))
    lg.genesis()
    return lg


def m(lg, msp, role="peer"):
    return lg.apps[msp].member(role)


def run(lg) -> Verifier:
    return verify_all(lg.blocks)


def define(lg, policy="OR('OperatorMSP.peer')"):
    lg.block([lg.define("cc", app_policy(policy), m(lg, "CustomsMSP", "admin"),
                        [m(lg, "CustomsMSP"), m(lg, "OperatorMSP")])])


@pytest.mark.parametrize("key, value", [
    ("namespaces/metadata/cc", b"\xff\xff\xff"),
    ("namespaces/fields/cc/Sequence", b"\xff"),
])
def test_an_unreadable_lifecycle_definition_is_named_not_a_traceback(ledger, key, value):
    define(ledger)
    # a VALID _lifecycle write (endorsed by a majority) that leaves the definition unreadable
    ledger.block([ledger.endorser_tx(m(ledger, "CustomsMSP", "admin"), "_lifecycle",
                                     [m(ledger, "CustomsMSP"), m(ledger, "OperatorMSP")], writes={key: value},
                                     version="syscc")])
    ledger.block([ledger.endorser_tx(m(ledger, "OperatorMSP", "client"), "cc", [m(ledger, "OperatorMSP")],
                                     writes={"a": b"1"})])
    v = run(ledger)                       # raised DecodeError from commit()
    assert [(p.block, p.tx_index, p.check) for p in v.problems] == [(3, 0, "endorsement policy")]
    assert "does not parse" in v.problems[0].message
    assert any("definition in _lifecycle does not parse" in w for w in v.report()["warnings"])


def test_a_block_without_a_last_config_index_is_refused(ledger):
    define(ledger)
    block = ledger.blocks[1]
    who = ledger.orderer
    shdr = common_pb2.SignatureHeader(creator=who.serialize(), nonce=os.urandom(24)).SerializeToString()
    sig = who.sign(b"" + shdr + B.header_bytes(block.header))     # signed, but no OrdererBlockMetadata
    block.metadata.metadata[B.SIGNATURES] = common_pb2.Metadata(signatures=[
        common_pb2.MetadataSignature(signature_header=shdr, signature=sig)]).SerializeToString()
    v = run(ledger)
    assert [(p.block, p.check) for p in v.problems] == [(1, "last config")]


def test_text_from_the_blocks_cannot_drive_the_terminal(ledger):
    define(ledger)
    evil = "cc\x1b[8m\nRESULT: OK \u2014 forged\u202e"
    # anyone the orderer admits can put an INVALID transaction naming any chaincode on the chain
    ledger.block([ledger.endorser_tx(m(ledger, "BrokerMSP", "client"), evil, [m(ledger, "BrokerMSP")],
                                     writes={"a": b"1"})], codes=[MVCC])
    v = run(ledger)
    assert not v.failed, v.problems
    text = render(v.report(source="test", trust="test"))
    assert "\x1b" not in text and "\u202e" not in text
    assert [line for line in text.splitlines() if line.startswith("RESULT")] == \
        ["RESULT: OK \u2014 3 blocks verified, no inconsistency"]
    assert "cc\\x1b[8m\\nRESULT: OK" in text           # still shown, escaped


@pytest.fixture()
def saved(ledger, tmp_path):
    define(ledger)
    out = tmp_path / "blocks"
    out.mkdir()
    for b in ledger.blocks:
        B.save_block(out, b)
    return out


@pytest.mark.parametrize("content", [b"", b"\x08\x00", "block 1"])
def test_an_unusable_genesis_file_is_an_argument_error(saved, ledger, tmp_path, capsys, content):
    g = tmp_path / "genesis.block"
    g.write_bytes(ledger.blocks[1].SerializeToString() if content == "block 1" else content)
    # an empty file parsed as an empty block: "INCONSISTENT at block 0", exit 1
    assert main(["--from-file", str(saved), "--genesis", str(g)]) == 2
    assert "is not a genesis block" in capsys.readouterr().err


def test_save_to_a_file_is_an_argument_error(saved, tmp_path, capsys):
    f = tmp_path / "a-file"
    f.write_text("x")
    assert main(["--from-file", str(saved), "--save", str(f)]) == 2       # FileExistsError traceback
    assert "ipledger verify:" in capsys.readouterr().err


def test_a_gap_in_a_saved_copy_names_the_missing_file(saved, ledger, capsys):
    """A saved copy without one block's file: the report names the missing file (it said "expected block 2,
    got block 3", as if the ledger had skipped a number)."""
    B.block_file(saved, 1).rename(B.block_file(saved, 2))     # files 0 and 2: block 1's is missing
    assert main(["--from-file", str(saved)]) == 1
    out = capsys.readouterr().out
    assert "0000000001.block: the file is missing" in out and "INCONSISTENT at block 1" in out, out
