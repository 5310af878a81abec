"""Block header hashing (ASN.1 DER as protoutil.BlockHeaderBytes), data hash, the hash chain, files."""
from __future__ import annotations

import hashlib

import pytest
from fabric_protos.common import common_pb2

from ipledger.network.fabric import blocks as B

from .ledger import Ledger, verify_all
from .pki import Org


def header(number, prev=b"", data=b""):
    return common_pb2.BlockHeader(number=number, previous_hash=prev, data_hash=data)


def test_header_bytes_are_go_asn1_der():
    assert B.header_bytes(header(0)) == bytes.fromhex("3007020100" "0400" "0400")
    assert B.header_bytes(header(127)).startswith(bytes.fromhex("3007 02017f".replace(" ", "")))
    assert B.header_bytes(header(128))[2:6] == bytes.fromhex("02020080")        # sign byte
    assert B.header_bytes(header(2 ** 64 - 1))[2:13] == bytes.fromhex("020900ffffffffffffffff")
    h = header(1, b"\x11" * 32, b"\x22" * 32)
    assert B.header_bytes(h) == bytes.fromhex("3047020101" "0420" + "11" * 32 + "0420" + "22" * 32)
    assert B.header_hash(h) == hashlib.sha256(B.header_bytes(h)).digest()


def test_long_form_length():
    h = header(5, b"\x01" * 100, b"\x02" * 100)
    raw = B.header_bytes(h)
    assert raw[:3] == bytes.fromhex("3081cf")  # 3 + 102 + 102 = 207 and raw[3:6] == bytes.fromhex("020105")


def test_der_lengths_written_and_read_back():
    from ipledger.network.fabric import der
    for n in (0, 127, 128, 255, 256, 70000):
        raw = der.element(0x04, b"x" * n)
        assert raw[1:1 + len(der.length(n))] == der.length(n)
        assert der.read_element(raw, 0) == (len(raw) - n, len(raw))
    assert der.length(128) == b"\x81\x80" and der.length(256) == b"\x82\x01\x00"
    with pytest.raises(ValueError, match="truncated"):
        der.read_element(der.element(0x04, b"abc")[:-1], 0)


def test_data_hash_is_sha256_of_the_concatenated_envelopes():
    data = common_pb2.BlockData(data=[b"abc", b"", b"def"])
    assert B.data_hash(data) == hashlib.sha256(b"abcdef").digest()


@pytest.fixture()
def chain():
    orgs = [Org.make(m) for m in ("CustomsMSP", "OperatorMSP", "BrokerMSP")]
    ledger = Ledger(orgs, Org.make("OrdererMSP"))
    customs = ledger.apps["CustomsMSP"]
    ledger.genesis()
    for i in range(3):
        ledger.block([ledger.endorser_tx(customs.member("client"), "_lifecycle", [customs.member("peer")],
                                         writes={f"k{i}": b"v"})], codes=[10])   # marked invalid: not judged
    return ledger


def test_a_well_formed_chain_verifies(chain):
    v = verify_all(chain.blocks)
    assert not v.failed and v.stats.blocks == 4
    assert v.stats.last_hash == B.header_hash(chain.blocks[-1].header).hex()
    assert v.stats.invalid == {"ENDORSEMENT_POLICY_FAILURE": 3}


def test_altered_data_is_named_by_block(chain):
    b = chain.blocks[2]
    b.data.data[0] = b.data.data[0][:-1] + bytes([b.data.data[0][-1] ^ 1])
    v = verify_all(chain.blocks)
    assert [(p.block, p.check) for p in v.problems][:1] == [(2, "data hash")]
    assert v.stats.blocks == 2


def test_altered_previous_hash_is_named_by_block(chain):
    chain.blocks[3].header.previous_hash = b"\x00" * 32
    v = verify_all(chain.blocks)
    checks = {p.check for p in v.problems}
    assert {p.block for p in v.problems} == {3} and {"hash chain", "orderer signature"} <= checks


def test_missing_or_reordered_block_is_named(chain):
    v = verify_all([chain.blocks[0], chain.blocks[2]])
    assert v.problems[0].check == "block number" and "expected block 1" in v.problems[0].message


def test_trust_anchor_must_match(chain):
    other = Ledger([Org.make("CustomsMSP")], Org.make("OrdererMSP"))
    v = verify_all(chain.blocks, trusted_genesis=other.genesis())
    assert v.problems[0].check == "trust anchor"
    assert not verify_all(chain.blocks, trusted_genesis=chain.blocks[0]).failed


def test_block_files_round_trip(chain, tmp_path):
    for b in chain.blocks:
        B.save_block(tmp_path, b)
    files = B.block_files(tmp_path)
    assert [n for n, _ in files] == [0, 1, 2, 3]
    assert files[1][1].name == "0000000001.block"
    loaded = [common_pb2.Block.FromString(p.read_bytes()) for _, p in files]
    assert loaded == chain.blocks
    with pytest.raises(FileNotFoundError):
        B.block_files(tmp_path / "nope")
