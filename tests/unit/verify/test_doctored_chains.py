"""``ipledger verify`` handed a doctored chain: overtaken reads marked VALID, good transactions hidden as invalid,
read-write sets no simulator makes. The Merkle summary of large range reads is computed as Fabric computes it (known
answers from Fabric's own ``rwsetutil`` at the pinned commit)."""
from __future__ import annotations

import pytest
from fabric_protos.ledger.rwset import rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2

from ipledger.network.fabric.policy import parse_signature_policy
from ipledger.network.verify.versions import merkle_summary

from .ledger import Ledger, app_policy, endorsed_envelope, verify_all
from .pki import Org

AND_POLICY = "AND('CustomsMSP.peer', OR('OperatorMSP.peer', 'BrokerMSP.peer'))"
CUSTOMS_ONLY = parse_signature_policy("OR('CustomsMSP.peer')").SerializeToString()
MVCC, PHANTOM, EPF = 11, 12, 10


def rwset(ns: str, kv: kv_rwset_pb2.KVRWSet) -> rwset_pb2.TxReadWriteSet:
    r = rwset_pb2.TxReadWriteSet(data_model=rwset_pb2.TxReadWriteSet.KV)
    r.ns_rwset.append(rwset_pb2.NsReadWriteSet(namespace=ns, rwset=kv.SerializeToString()))
    return r


@pytest.fixture
def lg():
    ledger = Ledger([Org.make(m) for m in ("CustomsMSP", "OperatorMSP", "BrokerMSP")], Org.make("OrdererMSP"))
    ledger.genesis()
    ledger.block([ledger.define("cc", app_policy(AND_POLICY), member(ledger, "CustomsMSP", "admin"),
                                [member(ledger, "CustomsMSP"), member(ledger, "OperatorMSP")])])   # block 1
    return ledger


def member(ledger, msp, role="peer"):
    return ledger.apps[msp].member(role, None)


def endorsed(ledger, kv, endorsers=("CustomsMSP", "BrokerMSP"), ns="cc") -> bytes:
    return endorsed_envelope(member(ledger, "BrokerMSP", "client"), ns, [member(ledger, e) for e in endorsers],
                         rwset(ns, kv))


def kvset(reads=(), writes=(), ranges=()) -> kv_rwset_pb2.KVRWSet:
    kv = kv_rwset_pb2.KVRWSet()
    for key, version in reads:
        r = kv.reads.add(key=key)
        if version is not None:
            r.version.block_num, r.version.tx_num = version
    for key, value in writes:
        kv.writes.add(key=key, value=value)
    for rq in ranges:
        kv.range_queries_info.append(rq)
    return kv


def problems(v) -> list[tuple]:
    return [(p.block, p.tx_index, p.check) for p in v.problems]


def test_the_second_of_two_spends_of_one_balance_marked_valid_is_a_read_conflict(lg):
    lg.block([endorsed(lg, kvset(reads=[("lot/L1", None)], writes=[("lot/L1", b"100")]))])       # block 2
    spend = kvset(reads=[("lot/L1", (2, 0))], writes=[("lot/L1", b"0")])
    lg.block([endorsed(lg, spend), endorsed(lg, spend)], codes=[0, 0])                            # both VALID
    v = verify_all(lg.blocks)
    assert problems(v) == [(3, 1, "read conflict")] and "MVCC_READ_CONFLICT" in v.problems[0].message


def test_the_same_spends_as_fabric_marks_them_verify(lg):
    lg.block([endorsed(lg, kvset(reads=[("lot/L1", None)], writes=[("lot/L1", b"100")]))])
    spend = kvset(reads=[("lot/L1", (2, 0))], writes=[("lot/L1", b"0")])
    lg.block([endorsed(lg, spend), endorsed(lg, spend)], codes=[0, MVCC])
    lg.block([endorsed(lg, kvset(reads=[("lot/L1", (3, 0))], writes=[("lot/L1", b"5")]))])     # reads (3, 0)
    v = verify_all(lg.blocks)
    assert not v.failed, v.problems


def test_a_stale_read_in_a_later_block_is_a_read_conflict(lg):
    lg.block([endorsed(lg, kvset(writes=[("lot/L1", b"100")]))])
    lg.block([endorsed(lg, kvset(reads=[("lot/L1", (2, 0))], writes=[("lot/L1", b"40")]))])
    lg.block([endorsed(lg, kvset(reads=[("lot/L1", (2, 0))], writes=[("lot/L1", b"0")]))])
    assert problems(verify_all(lg.blocks)) == [(4, 0, "read conflict")]


def test_a_good_transaction_marked_as_a_read_conflict_is_an_inconsistency(lg):
    lg.block([endorsed(lg, kvset(writes=[("lot/L1", b"100")]))])
    lg.block([endorsed(lg, kvset(reads=[("lot/L1", (2, 0))], writes=[("lot/L1", b"40")]))], codes=[MVCC])
    assert problems(verify_all(lg.blocks)) == [(3, 0, "invalid cross-check")]


def _range(start, end, reads, exhausted=True, merkle=None):
    rq = kv_rwset_pb2.RangeQueryInfo(start_key=start, end_key=end, itr_exhausted=exhausted)
    if merkle is not None:
        level, hashes, degree = merkle
        rq.reads_merkle_hashes.CopyFrom(kv_rwset_pb2.QueryReadsMerkleSummary(
            max_degree=degree, max_level=level, max_level_hashes=hashes))
    else:
        rq.raw_reads.CopyFrom(kv_rwset_pb2.QueryReads(kv_reads=[
            kv_rwset_pb2.KVRead(key=k, version=kv_rwset_pb2.Version(block_num=b, tx_num=t)) for k, (b, t) in reads]))
    return rq


def test_a_range_read_a_key_has_since_appeared_in_is_a_phantom(lg):
    lg.block([endorsed(lg, kvset(writes=[("bal/a", b"1"), ("bal/c", b"1")]))])                   # block 2
    summed = _range("bal/", "bal0", [("bal/a", (2, 0)), ("bal/c", (2, 0))])
    lg.block([endorsed(lg, kvset(writes=[("bal/b", b"1")])),                                     # block 3: tx 0
              endorsed(lg, kvset(ranges=[summed], writes=[("ceiling", b"ok")]))], codes=[0, 0])
    v = verify_all(lg.blocks)
    assert problems(v) == [(3, 1, "read conflict")] and "PHANTOM_READ_CONFLICT" in v.problems[0].message


def test_a_range_read_cut_short_is_judged_up_to_its_last_key(lg):
    lg.block([endorsed(lg, kvset(writes=[("bal/a", b"1"), ("bal/c", b"1")]))])
    first_only = _range("bal/", "bal/a", [("bal/a", (2, 0))], exhausted=False)    # stopped after bal/a
    lg.block([endorsed(lg, kvset(writes=[("bal/d", b"1")])),                        # after its last key: no matter
              endorsed(lg, kvset(ranges=[first_only], writes=[("x", b"1")]))])
    assert not verify_all(lg.blocks).failed


def test_a_large_range_read_is_checked_by_its_merkle_summary(lg):
    keys = [f"bal/{i:03d}" for i in range(120)]
    lg.block([endorsed(lg, kvset(writes=[(k, b"1") for k in keys]))])                            # block 2
    level, hashes = merkle_summary([(k, (2, 0)) for k in keys], 50)
    summed = _range("bal/", "bal0", None, merkle=(level, hashes, 50))
    lg.block([endorsed(lg, kvset(ranges=[summed], writes=[("ceiling", b"ok")]))])                # block 3: holds
    lg.block([endorsed(lg, kvset(writes=[("bal/050", b"2")])),                                   # block 4
              endorsed(lg, kvset(ranges=[summed], writes=[("ceiling", b"ok")]))], codes=[0, 0])
    assert problems(verify_all(lg.blocks)) == [(4, 1, "read conflict")]


@pytest.mark.parametrize("hidden_code", [EPF, MVCC])
def test_a_hidden_policy_change_does_not_open_later_blocks(lg, hidden_code):
    c, o = member(lg, "CustomsMSP"), member(lg, "OperatorMSP")
    client = member(lg, "CustomsMSP", "client")
    kv = kvset(writes=[("auth/A1", b"granted")])
    kv.metadata_writes.add(key="auth/A1", entries=[kv_rwset_pb2.KVMetadataEntry(name="VALIDATION_PARAMETER",
                                                                                value=CUSTOMS_ONLY)])
    lg.block([endorsed_envelope(client, "cc", [c, o], rwset("cc", kv))])                            # block 2
    kv = kv_rwset_pb2.KVRWSet()
    kv.metadata_writes.add(key="auth/A1")                                  # drops the key-level policy
    lg.block([endorsed_envelope(client, "cc", [c], rwset("cc", kv))], codes=[hidden_code])          # really VALID
    lg.block([endorsed_envelope(client, "cc", [c], rwset("cc", kvset(writes=[("auth/A1", b"revoked")])))])
    assert problems(verify_all(lg.blocks))[0] == (3, 0, "invalid cross-check")


def test_a_key_or_a_metadata_entry_written_twice_is_refused(lg):
    c, client = member(lg, "CustomsMSP"), member(lg, "CustomsMSP", "client")
    twice = kvset(writes=[("auth/A1", b"granted"), ("auth/A1", b"granted")])
    lg.block([endorsed_envelope(client, "cc", [c, member(lg, "OperatorMSP")], rwset("cc", twice))])
    v = verify_all(lg.blocks)
    assert problems(v) == [(2, 0, "read-write set")] and "twice" in v.problems[0].message
    entries = kvset(writes=[("auth/A2", b"granted")])
    entries.metadata_writes.add(key="auth/A2", entries=[
        kv_rwset_pb2.KVMetadataEntry(name="VALIDATION_PARAMETER", value=CUSTOMS_ONLY),
        kv_rwset_pb2.KVMetadataEntry(name="VALIDATION_PARAMETER", value=b"")])
    lg.blocks.pop()
    lg.block([endorsed_envelope(client, "cc", [c, member(lg, "OperatorMSP")], rwset("cc", entries))])
    assert problems(verify_all(lg.blocks)) == [(2, 0, "read-write set")]


# Fabric's RangeQueryResultsHelper (hashing on) over keys k00000… with versions (i % 7, i % 3), computed with
# core/ledger/kvledger/txmgmt/rwsetutil at commit 86c1172 (a scratch Go program, not kept)
FABRIC_SUMMARIES = {
    (3, 2): (1, ["7e15c77c067860741f8feca534ac25fff43ad35af6ad9a336885f9e55a5dc00e"]),
    (7, 2): (2, ["8cd69eb93410e136131e3a53032112d996fa58af5406407eef3b53d96e2f14d3"]),
    (12, 3): (1, ["a414913936e5dd4e3061296cd37de59adae29f723284b5651f5e0ab6ace8062d",
                  "e20587472cbe8750d82c7bfde62c344d6fc8be40f403824c6ffdf4b8e0277c19",
                  "2280192422f25e5c032070102b580116f8505b53a788281ad41a88c97cf76577"]),
    (51, 50): (1, ["9add9c512f7aaa19bc99c7d7e031ebdaff40131cad104601d88b0f63648400a9"]),
    (140, 50): (1, ["9add9c512f7aaa19bc99c7d7e031ebdaff40131cad104601d88b0f63648400a9",
                    "7258781d96ea54a147bf5196a448ca19fcf0fb81b8a7b76e96c9b59dad8ec340",
                    "0eda51dd7ac029dd1c5753cbb5afcae6eb79de31480d15993c85ec05351f59f2"]),
    (2600, 50): (2, ["8343014353b8a2301e72c98d3cc005d5acbe8c2c1e9468eee83e90decf21395c"]),
}


@pytest.mark.parametrize("n,degree", sorted(FABRIC_SUMMARIES))
def test_the_merkle_summary_is_fabrics(n, degree):
    level, hashes = merkle_summary([(f"k{i:05d}", (i % 7, i % 3)) for i in range(n)], degree)
    assert (level, [h.hex() for h in hashes]) == FABRIC_SUMMARIES[(n, degree)]


def test_a_range_of_at_most_max_degree_results_has_no_summary():
    assert merkle_summary([(f"k{i}", (1, 0)) for i in range(50)], 50) is None


def test_an_organisation_taking_another_members_msp_id_is_refused(lg):
    """The ordering organisation's own admins may change its group; renamed "CustomsMSP", its CA would issue
    customs' peers and clients (Fabric refuses an MSP ID change: Bundle.ValidateNew)."""
    import copy
    from fabric_protos.msp import msp_config_pb2
    from ipledger.network.fabric.policy import signature_policy
    new = copy.deepcopy(lg.config)
    og = new.channel_group.groups["Orderer"].groups["OrdererMSP"]
    conf = lg.orderer_org.msp_config()
    conf.name = "CustomsMSP"
    og.values["MSP"].value = msp_config_pb2.MSPConfig(type=0, config=conf.SerializeToString()).SerializeToString()
    for name in ("Readers", "Writers"):
        og.policies[name].policy.CopyFrom(signature_policy("OR('CustomsMSP.member')"))
    lg.config_block(lg.config_update(new, [lg.orderer_org.member("admin")]))
    v = verify_all(lg.blocks)
    assert problems(v) == [(2, 0, "config update")] and "MSP ID" in v.problems[0].message


def test_two_organisations_defining_one_msp_differently_is_no_usable_config(lg):
    import copy
    from fabric_protos.msp import msp_config_pb2
    from ipledger.network.fabric.config import ChannelConfig, ConfigError
    config = copy.deepcopy(lg.config)
    og = config.channel_group.groups["Orderer"].groups["OrdererMSP"]
    conf = lg.orderer_org.msp_config()
    conf.name = "CustomsMSP"
    og.values["MSP"].value = msp_config_pb2.MSPConfig(type=0, config=conf.SerializeToString()).SerializeToString()
    with pytest.raises(ConfigError, match="define MSP CustomsMSP differently"):
        ChannelConfig.from_config(config, 0)


def _cli_run(monkeypatch, tmp_path, blocks, *extra):
    from types import SimpleNamespace
    from ipledger.network.cli import verify as cli
    from ipledger.network.org.nodes import Nodes
    fake = SimpleNamespace(layout=SimpleNamespace(genesis_block=tmp_path / "channel" / "genesis.block"),
                           consortium=SimpleNamespace(channel="test-channel"))
    fake.on_channel = lambda ch: fake
    monkeypatch.setattr(Nodes, "open", classmethod(lambda cls, *a, **k: fake))
    monkeypatch.setattr(cli, "peer_blocks", lambda *a, **k: ("peer0.broker", iter(blocks)))
    return cli.run(cli.parse_args(["--state-dir", str(tmp_path), "--json", *extra]))


def test_a_peers_chain_is_not_its_own_trust_anchor_unless_asked(monkeypatch, tmp_path, lg):
    from ipledger.network.cli import verify as cli
    with pytest.raises(cli.UsageError, match="no trusted genesis block"):
        _cli_run(monkeypatch, tmp_path, lg.blocks)
    code, report, _ = _cli_run(monkeypatch, tmp_path, lg.blocks, "--trust-peer-genesis")
    assert code == cli.EXIT_OK and "block 0 of peer0.broker itself" in report["trust_anchor"]


def test_no_block_received_verifies_nothing(monkeypatch, tmp_path, lg):
    from ipledger.network.cli import verify as cli
    (tmp_path / "channel").mkdir()
    (tmp_path / "channel" / "genesis.block").write_bytes(lg.blocks[0].SerializeToString())
    code, report, error = _cli_run(monkeypatch, tmp_path, [])
    assert (code, report) == (cli.EXIT_ERROR, None) and "no block came" in error


def _three_orgs() -> Ledger:
    return Ledger([Org.make(x) for x in ("CustomsMSP", "OperatorMSP", "BrokerMSP")], Org.make("OrdererMSP"))


def test_an_implicit_meta_rule_of_no_known_kind_is_refused_not_satisfied_by_nobody():
    """Fabric leaves such a policy's threshold at 0 (satisfied without a signature): as BlockValidation, a block
    signed by a stranger would verify."""
    from fabric_protos.common import policies_pb2
    ledger = _three_orgs()
    bv = ledger.config.channel_group.groups["Orderer"].policies["BlockValidation"]
    bv.policy.CopyFrom(policies_pb2.Policy(type=policies_pb2.Policy.IMPLICIT_META, value=policies_pb2.ImplicitMetaPolicy(
        sub_policy="Writers", rule=7).SerializeToString()))
    ledger.genesis()
    v = verify_all(ledger.blocks)
    assert problems(v) == [(0, None, "genesis")] and "rule 7" in v.problems[0].message


def test_a_capability_fabric_does_not_know_is_refused():
    from fabric_protos.common import configuration_pb2
    ledger = _three_orgs()
    ledger.config.channel_group.values["Capabilities"].value = configuration_pb2.Capabilities(
        capabilities={"V9_9": configuration_pb2.Capability()}).SerializeToString()
    ledger.genesis()
    v = verify_all(ledger.blocks)
    assert problems(v) == [(0, None, "genesis")] and "V9_9" in v.problems[0].message


@pytest.mark.parametrize("plugin,refused", [("", True), ("builtin", False), ("vscc", False)])
def test_a_definition_without_a_validation_plugin_validates_nothing(plugin, refused):
    """No plugin: every peer refuses the chaincode's transactions. A name other than vscc: the peers' own plugin,
    not evaluated here (said in the report); vscc: the built-in validation, the policy evaluated."""
    from types import SimpleNamespace
    from ipledger.network.verify.endorsement import EndorsementChecker
    from ipledger.network.verify.lifecycle import Definition
    ledger = _three_orgs()
    ledger.genesis()
    v = verify_all(ledger.blocks)
    definition = Definition("cc", 1, "1.0", plugin, app_policy(AND_POLICY), {}, 1)
    lifecycle = SimpleNamespace(definition=lambda ns: definition)
    policy, problem, _ = EndorsementChecker(v.config, lifecycle, v.keys).chaincode_policy("cc")
    assert (problem is not None) == refused
    assert (policy is not None) == (plugin == "vscc")


def test_a_read_of_a_key_an_earlier_transaction_of_the_block_deleted_conflicts(lg):
    """Fabric: a key in the block's update batch (a delete of a key that never existed too) invalidates a later
    read of it, whatever the versions say."""
    deleted = kv_rwset_pb2.KVRWSet()
    deleted.writes.add(key="decl/M1", is_delete=True)
    reader = kvset(reads=[("decl/M1", None)], writes=[("decl/M1", b"claimed")])
    lg.block([endorsed(lg, deleted), endorsed(lg, reader)], codes=[0, MVCC])      # as Fabric marks them
    assert not verify_all(lg.blocks).failed
    lg.blocks.pop()
    lg.block([endorsed(lg, deleted), endorsed(lg, reader)], codes=[0, 0])         # the second marked VALID
    assert problems(verify_all(lg.blocks)) == [(2, 1, "read conflict")]


def test_a_write_of_an_empty_value_is_a_delete(lg):
    """Fabric (FAB-18386): a write with no value deletes the key, whatever its is_delete flag."""
    lg.block([endorsed(lg, kvset(writes=[("lot/L1", b"100")]))])                # block 2
    lg.block([endorsed(lg, kvset(writes=[("lot/L1", b"")]))])                   # block 3: deleted
    lg.block([endorsed(lg, kvset(reads=[("lot/L1", None)], writes=[("lot/L1", b"5")]))])   # reads it absent
    assert not verify_all(lg.blocks).failed
