"""The verifier on synthetic channels: signatures, endorsement policies from _lifecycle, key-level
policies, collections, config updates — each inconsistency named by block, tx and check."""
from __future__ import annotations

import copy

import pytest
from fabric_protos.common import common_pb2
from fabric_protos.peer import collection_pb2, policy_pb2

from ipledger.network.verify.verifier import Verifier
from ipledger.network.fabric.policy import parse_signature_policy

from .ledger import Ledger, app_policy, app_policy_ref, org_group, verify_all
from .pki import Org

VALID, EPF, MVCC = 0, 10, 11
AND_POLICY = "AND('CustomsMSP.peer', OR('OperatorMSP.peer', 'BrokerMSP.peer'))"


@pytest.fixture()
def ledger():
    orgs = [Org.make(m) for m in ("CustomsMSP", "OperatorMSP", "BrokerMSP")]
    lg = Ledger(orgs, Org.make("OrdererMSP"))
    lg.genesis()
    return lg


def m(lg, msp, role="peer", name=None):
    return lg.apps[msp].member(role, name)


def define(lg, name="cc", policy=AND_POLICY, **kw):
    """Commit a definition (endorsed by a majority of orgs' peers) in its own block."""
    lg.block([lg.define(name, app_policy(policy) if isinstance(policy, str) else policy,
                        m(lg, "CustomsMSP", "admin"), [m(lg, "CustomsMSP"), m(lg, "OperatorMSP")], **kw)])


def run(lg) -> Verifier:
    return verify_all(lg.blocks)


def problems(v):
    return [(p.block, p.tx_index, p.check) for p in v.problems]


def test_definitions_policies_and_counts(ledger):
    define(ledger)
    c, o = m(ledger, "CustomsMSP"), m(ledger, "OperatorMSP")
    ledger.block([ledger.endorser_tx(m(ledger, "BrokerMSP", "client"), "cc", [c, o], writes={"a": b"1"}),
                  ledger.endorser_tx(m(ledger, "BrokerMSP", "client"), "cc", [o], writes={"b": b"1"})],
                 codes=[VALID, EPF])
    v = run(ledger)
    assert not v.failed, v.problems
    r = v.report()
    assert r["blocks_verified"] == 3
    assert r["transactions"] == {"total": 4, "valid": 3, "invalid": 1,
                                 "invalid_by_code": {"ENDORSEMENT_POLICY_FAILURE": 1}, "config": 1}
    assert r["chaincodes"]["cc"]["valid_txs"] == 1 and r["chaincodes"]["cc"]["invalid_txs"] == 1
    assert r["chaincodes"]["cc"]["definition"]["endorsement_policy"] == AND_POLICY
    assert r["checked"]["policy_evaluations"] == {"chaincode": 1, "chaincode (_lifecycle)": 1}
    assert r["checked"]["orderer_signatures"] == 2 and r["checked"]["creator_signatures"] == 2
    assert r["invalid_cross_check"] == {"endorsement_policy_failures_confirmed": 1} and r["warnings"] == []


def test_an_endorsement_policy_failure_code_that_does_not_hold_is_an_inconsistency(ledger):
    """A good transaction hidden as invalid leaves the verifier's replay (key-level policies, definitions,
    versions) behind every honest peer's, and later transactions would be judged by it."""
    define(ledger)
    ledger.block([ledger.endorser_tx(m(ledger, "BrokerMSP", "client"), "cc",
                                     [m(ledger, "CustomsMSP"), m(ledger, "BrokerMSP")], writes={"a": b"1"})],
                 codes=[EPF])
    v = run(ledger)
    assert v.failed
    [p] = v.problems
    assert (p.block, p.tx_index, p.check) == (2, 0, "invalid cross-check") and "every peer commits it" in p.message


def test_valid_tx_not_satisfying_the_chaincode_policy_is_named(ledger):
    define(ledger)
    tx = ledger.endorser_tx(m(ledger, "BrokerMSP", "client"), "cc",
                            [m(ledger, "OperatorMSP"), m(ledger, "BrokerMSP")], writes={"a": b"1"})
    ledger.block([tx])
    v = run(ledger)
    assert problems(v) == [(2, 0, "endorsement policy")]
    assert AND_POLICY in v.problems[0].message and v.problems[0].tx_id


def test_policy_in_force_is_the_one_committed_before_the_block(ledger):
    define(ledger, policy="OR('OperatorMSP.peer')")
    o = m(ledger, "OperatorMSP")
    # Same block: the upgrade to AND and a tx endorsed by the operator alone (old policy applies).
    ledger.block([ledger.define("cc", app_policy(AND_POLICY), m(ledger, "CustomsMSP", "admin"),
                                [m(ledger, "CustomsMSP"), o], sequence=2),
                  ledger.endorser_tx(m(ledger, "OperatorMSP", "client"), "cc", [o], writes={"a": b"1"})])
    assert not run(ledger).failed
    ledger.block([ledger.endorser_tx(m(ledger, "OperatorMSP", "client"), "cc", [o], writes={"a": b"2"})])
    assert problems(run(ledger)) == [(3, 0, "endorsement policy")]


def test_channel_reference_policy(ledger):
    define(ledger, policy=app_policy_ref("/Channel/Application/Endorsement"))   # MAJORITY Endorsement
    ledger.block([ledger.endorser_tx(m(ledger, "OperatorMSP", "client"), "cc",
                                     [m(ledger, "OperatorMSP"), m(ledger, "BrokerMSP")], writes={"a": b"1"}),
                  ledger.endorser_tx(m(ledger, "OperatorMSP", "client"), "cc",
                                     [m(ledger, "OperatorMSP"), m(ledger, "OperatorMSP", name="peer1.op")],
                                     writes={"b": b"1"})])
    assert problems(run(ledger)) == [(2, 1, "endorsement policy")]


def test_lifecycle_commit_needs_a_majority(ledger):
    ledger.block([ledger.define("cc", app_policy(AND_POLICY), m(ledger, "CustomsMSP", "admin"),
                                [m(ledger, "CustomsMSP")])])
    v = run(ledger)
    assert problems(v) == [(1, 0, "endorsement policy")]
    assert "/Channel/Application/LifecycleEndorsement" in v.problems[0].message


def test_undefined_chaincode(ledger):
    ledger.block([ledger.endorser_tx(m(ledger, "OperatorMSP", "client"), "ghost", [m(ledger, "OperatorMSP")],
                                     writes={"a": b"1"})])
    v = run(ledger)
    assert problems(v) == [(1, 0, "endorsement policy")] and "no committed definition" in v.problems[0].message


def test_writes_to_another_namespace_need_its_policy(ledger):
    define(ledger, policy="OR('OperatorMSP.peer')")
    define(ledger, name="other", policy="OR('BrokerMSP.peer')")
    ledger.block([ledger.endorser_tx(m(ledger, "OperatorMSP", "client"), "cc", [m(ledger, "OperatorMSP")],
                                     writes={"a": b"1"}, extra_ns={"other": {"x": b"1"}})])
    v = run(ledger)
    assert problems(v) == [(3, 0, "endorsement policy")] and "'other'" in v.problems[0].message


# ----------------------------------------------------------------------------- key level

CUSTOMS_ONLY = parse_signature_policy("OR('CustomsMSP.peer')").SerializeToString()


def test_key_level_policy_replaces_the_chaincode_policy_for_its_key(ledger):
    define(ledger, policy="OR('OperatorMSP.peer', 'CustomsMSP.peer')")
    c, o = m(ledger, "CustomsMSP"), m(ledger, "OperatorMSP")
    client = m(ledger, "OperatorMSP", "client")
    ledger.block([ledger.endorser_tx(client, "cc", [o], writes={"k": b"1"}, metadata={"k": CUSTOMS_ONLY})])
    ledger.block([ledger.endorser_tx(client, "cc", [c], writes={"k": b"2"}),         # key-level satisfied
                  ledger.endorser_tx(client, "cc", [o], writes={"k": b"3"})],         # not: marked invalid
                 codes=[VALID, EPF])
    v = run(ledger)
    assert not v.failed, v.problems
    assert v.report()["checked"]["policy_evaluations"]["key-level"] == 1
    assert v.report()["chaincodes"]["cc"]["keys_with_key_level_policy"] == 1
    ledger.block([ledger.endorser_tx(client, "cc", [o], writes={"k": b"4"})])
    v = run(ledger)
    assert problems(v) == [(4, 0, "endorsement policy")]
    assert "key-level (key 'k')" in v.problems[0].message


def test_metadata_is_kept_on_writes_dropped_on_delete_and_ignored_for_missing_keys(ledger):
    define(ledger, policy="OR('OperatorMSP.peer', 'CustomsMSP.peer')")
    c, o = m(ledger, "CustomsMSP"), m(ledger, "OperatorMSP")
    client = m(ledger, "OperatorMSP", "client")
    ledger.block([ledger.endorser_tx(client, "cc", [o], writes={"k": b"1"}, metadata={"k": CUSTOMS_ONLY}),
                  # metadata for a key that does not exist: ignored by the ledger
                  ledger.endorser_tx(client, "cc", [o], metadata={"ghost": CUSTOMS_ONLY})])
    ledger.block([ledger.endorser_tx(client, "cc", [c], writes={"k": b"2"})])         # keeps the policy
    ledger.block([ledger.endorser_tx(client, "cc", [c], writes={"k": None})])         # delete drops it
    ledger.block([ledger.endorser_tx(client, "cc", [o], writes={"k": b"3", "ghost": b"1"})])
    v = run(ledger)
    assert not v.failed, v.problems


def test_key_policy_changed_earlier_in_the_same_block(ledger):
    define(ledger, policy="OR('OperatorMSP.peer', 'CustomsMSP.peer')")
    o = m(ledger, "OperatorMSP")
    client = m(ledger, "OperatorMSP", "client")
    ledger.block([ledger.endorser_tx(client, "cc", [o], writes={"k": b"1"})])
    ledger.block([ledger.endorser_tx(client, "cc", [o], metadata={"k": CUSTOMS_ONLY}),
                  ledger.endorser_tx(client, "cc", [o], writes={"k": b"2"})])
    v = run(ledger)
    assert problems(v) == [(3, 1, "endorsement policy")]
    assert "changed by transaction 0 of the same block" in v.problems[0].message


# ----------------------------------------------------------------------------- collections

def test_collection_endorsement_policy(ledger):
    coll = collection_pb2.StaticCollectionConfig(
        name="secret", endorsement_policy=policy_pb2.ApplicationPolicy(
            signature_policy=parse_signature_policy("OR('BrokerMSP.peer')")))
    plain = collection_pb2.StaticCollectionConfig(name="plain")
    define(ledger, policy="OR('OperatorMSP.peer')", collections=[coll, plain])
    o, b = m(ledger, "OperatorMSP"), m(ledger, "BrokerMSP")
    client = m(ledger, "OperatorMSP", "client")
    ledger.block([ledger.endorser_tx(client, "cc", [b], private={"secret": {"x": b"1"}}),
                  ledger.endorser_tx(client, "cc", [o], private={"plain": {"x": b"1"}})])
    assert not run(ledger).failed
    ledger.block([ledger.endorser_tx(client, "cc", [o], private={"secret": {"y": b"1"}})])
    v = run(ledger)
    assert problems(v) == [(3, 0, "endorsement policy")] and "collection secret" in v.problems[0].message
    ledger.blocks.pop()
    ledger.block([ledger.endorser_tx(client, "cc", [o], private={"nope": {"y": b"1"}})])
    assert "no collection 'nope'" in run(ledger).problems[0].message


def test_implicit_org_collection_uses_the_org_endorsement_policy(ledger):
    define(ledger, policy="OR('CustomsMSP.peer')")
    client = m(ledger, "OperatorMSP", "client")
    ledger.block([ledger.endorser_tx(client, "cc", [m(ledger, "OperatorMSP")],
                                     private={"_implicit_org_OperatorMSP": {"x": b"1"}})])
    assert not run(ledger).failed
    ledger.block([ledger.endorser_tx(client, "cc", [m(ledger, "OperatorMSP")],
                                     private={"_implicit_org_BrokerMSP": {"x": b"1"}})])
    v = run(ledger)
    assert problems(v) == [(3, 0, "endorsement policy")]
    assert "/Channel/Application/BrokerMSP/Endorsement" in v.problems[0].message


# ----------------------------------------------------------------------------- signatures, creators

def test_endorsement_signature_is_checked_even_when_the_policy_holds(ledger):
    define(ledger, policy="OR('OperatorMSP.peer', 'BrokerMSP.peer')")
    o, b = m(ledger, "OperatorMSP"), m(ledger, "BrokerMSP")
    env = ledger.endorser_tx(m(ledger, "OperatorMSP", "client"), "cc", [o, b], writes={"a": b"1"})
    # Swap the broker peer's signature for one over something else, and re-sign as the client.
    from fabric_protos.peer import transaction_pb2
    e = common_pb2.Envelope.FromString(env)
    p = common_pb2.Payload.FromString(e.payload)
    t = transaction_pb2.Transaction.FromString(p.data)
    cap = transaction_pb2.ChaincodeActionPayload.FromString(t.actions[0].payload)
    cap.action.endorsements[1].signature = b.sign(b"something else")
    t.actions[0].payload = cap.SerializeToString()
    p.data = t.SerializeToString()
    e.payload = p.SerializeToString()
    e.signature = m(ledger, "OperatorMSP", "client").sign(e.payload)
    ledger.block([e.SerializeToString()])
    v = run(ledger)
    assert problems(v) == [(2, 0, "endorsement signature")]
    assert "endorsement 1 by BrokerMSP peer0.brokermsp" in v.problems[0].message


def test_creator_must_sign_be_valid_and_be_a_writer(ledger):
    define(ledger, policy="OR('OperatorMSP.peer')")
    o = m(ledger, "OperatorMSP")
    stranger = Org.make("OperatorMSP").member("client")           # right MSP id, wrong CA
    tx_bad_sig = common_pb2.Envelope.FromString(
        ledger.endorser_tx(m(ledger, "OperatorMSP", "client"), "cc", [o], writes={"a": b"1"}))
    tx_bad_sig.signature = m(ledger, "OperatorMSP", "client").sign(b"not the payload")
    ledger.block([tx_bad_sig.SerializeToString(),
                  ledger.endorser_tx(stranger, "cc", [o], writes={"b": b"1"}),
                  ledger.endorser_tx(o, "cc", [o], writes={"c": b"1"})])            # a peer is no writer
    v = run(ledger)
    assert problems(v) == [(2, 0, "creator signature"), (2, 1, "creator"), (2, 2, "creator")]
    assert "does not chain" in v.problems[1].message and "/Channel/Writers" in v.problems[2].message


def test_duplicate_tx_id_marked_valid(ledger):
    define(ledger, policy="OR('OperatorMSP.peer')")
    tx = ledger.endorser_tx(m(ledger, "OperatorMSP", "client"), "cc", [m(ledger, "OperatorMSP")], writes={"a": b"1"})
    ledger.block([tx])
    ledger.block([tx])
    v = run(ledger)
    assert problems(v) == [(3, 0, "tx id")]


def test_orderer_signature_from_a_non_orderer_is_refused(ledger):
    define(ledger)
    ledger.blocks.pop()
    ledger.block([ledger.define("cc", app_policy(AND_POLICY), m(ledger, "CustomsMSP", "admin"),
                                [m(ledger, "CustomsMSP"), m(ledger, "OperatorMSP")])],
                 signer=m(ledger, "CustomsMSP"))
    v = run(ledger)
    assert problems(v) == [(1, None, "orderer signature")]
    assert "/Channel/Orderer/BlockValidation" in v.problems[0].message


def test_wrong_last_config_index(ledger):
    define(ledger)
    ledger.blocks.pop()
    ledger.block([ledger.define("cc", app_policy(AND_POLICY), m(ledger, "CustomsMSP", "admin"),
                                [m(ledger, "CustomsMSP"), m(ledger, "OperatorMSP")])], last_config=7)
    assert problems(run(ledger)) == [(1, None, "last config")]


# ----------------------------------------------------------------------------- config updates

def add_org(lg, org: Org):
    new = copy.deepcopy(lg.config)
    new.channel_group.groups["Application"].groups[org.msp_id].CopyFrom(org_group(org))
    return new


def test_authorized_config_update_brings_a_new_org(ledger):
    audit = Org.make("AuditMSP")
    admins = [m(ledger, "CustomsMSP", "admin"), m(ledger, "BrokerMSP", "admin")]
    ledger.config_block(ledger.config_update(add_org(ledger, audit), admins))
    define(ledger, policy="OR('AuditMSP.peer')")
    ledger.blocks[-1:] = []
    ledger.block([ledger.define("cc", app_policy("OR('AuditMSP.peer')"), m(ledger, "CustomsMSP", "admin"),
                                [m(ledger, "CustomsMSP"), m(ledger, "OperatorMSP"), audit.member("peer")])])
    ledger.block([ledger.endorser_tx(audit.member("client"), "cc", [audit.member("peer")], writes={"a": b"1"})])
    v = run(ledger)
    assert not v.failed, v.problems
    r = v.report()
    assert r["config_blocks"] == [0, 1]
    [u] = r["config_updates"]
    assert u["sequence"] == 1 and "/Channel/Application/Admins" in " ".join(u["policies"])
    # 4 orgs now: the lifecycle majority is 3 (customs, operator, audit endorsed)
    assert r["checked"]["policy_evaluations"]["chaincode (_lifecycle)"] == 1


def test_config_update_without_enough_admins(ledger):
    audit = Org.make("AuditMSP")
    ledger.config_block(ledger.config_update(add_org(ledger, audit), [m(ledger, "CustomsMSP", "admin")]))
    v = run(ledger)
    assert problems(v) == [(1, 0, "config update")] and "do not satisfy" in v.problems[0].message


def test_config_block_must_carry_what_the_update_produces(ledger):
    audit = Org.make("AuditMSP")
    other = add_org(ledger, Org.make("EvilMSP"))
    other.sequence = 1
    admins = [m(ledger, "CustomsMSP", "admin"), m(ledger, "BrokerMSP", "admin")]
    ledger.config_block(ledger.config_update(add_org(ledger, audit), admins, result=other))
    v = run(ledger)
    assert problems(v) == [(1, 0, "config update")]
    assert "does not produce the config in the block" in v.problems[0].message


def test_blocks_after_a_config_update_are_signed_under_the_new_config(ledger):
    # Replace the orderer org's MSP (new CA): later blocks must be signed by the new orderer.
    new_orderer = Org.make("OrdererMSP")
    new = copy.deepcopy(ledger.config)
    new.channel_group.groups["Orderer"].groups["OrdererMSP"].CopyFrom(org_group(new_orderer, application=False))
    ledger.config_block(ledger.config_update(new, [ledger.orderer_org.member("admin")]))
    old_orderer = ledger.orderer
    ledger.orderer = new_orderer.member("orderer")
    define(ledger)
    assert not run(ledger).failed
    ledger.blocks.pop()
    ledger.orderer = old_orderer
    define(ledger)
    assert problems(run(ledger)) == [(2, None, "orderer signature")]


# ----------------------------------------------------------------------------- robustness

def test_any_flipped_byte_is_caught_or_harmless_and_never_crashes(ledger):
    """Flip bytes all over a block: the verifier reports a problem or (for the peer-written,
    unsigned parts) accepts; it never raises."""
    import random
    define(ledger)
    ledger.block([ledger.endorser_tx(m(ledger, "BrokerMSP", "client"), "cc",
                                     [m(ledger, "CustomsMSP"), m(ledger, "OperatorMSP")], writes={"a": b"1"},
                                     private={"_implicit_org_BrokerMSP": {"p": b"x"}})])
    target = ledger.blocks[2].SerializeToString()
    rng = random.Random(7)
    caught = harmless = unparseable = 0
    for pos in rng.sample(range(len(target)), 300):
        raw = bytearray(target)
        raw[pos] ^= 1 << rng.randrange(8)
        try:
            block = common_pb2.Block.FromString(bytes(raw))
        except Exception:  # noqa: BLE001
            unparseable += 1
            continue
        v = Verifier()
        for b in ledger.blocks[:2] + [block]:
            if not v.verify(b):
                break
        if v.failed:
            caught += 1
        else:
            # Only the peer-written transactions filter / unused metadata may change unnoticed
            # (a flip that leaves the block semantically identical also counts here).
            harmless += 1
            assert block.header == ledger.blocks[2].header and block.data == ledger.blocks[2].data
    assert caught >= 280, (caught, harmless, unparseable)


def test_a_transaction_held_back_long_after_it_was_endorsed_is_a_warning(ledger):
    """Fabric checks a proposal's time when it is endorsed, not when it is committed: a transaction endorsed, kept,
    and submitted much later commits VALID with its old timestamp — the ledger time the contract judged it at.
    The verifier names one timestamped more than 35 minutes before a transaction of an earlier block (a warning:
    every peer commits it), and not one within the peers' time window."""
    define(ledger)
    c, o, client = m(ledger, "CustomsMSP"), m(ledger, "OperatorMSP"), m(ledger, "BrokerMSP", "client")
    start = 1_800_000_000
    ledger.block([ledger.endorser_tx(client, "cc", [c, o], writes={"a": b"1"}, timestamp=start)])
    late = ledger.endorser_tx(client, "cc", [c, o], writes={"b": b"1"}, timestamp=start - 20 * 60)
    held = ledger.endorser_tx(client, "cc", [c, o], writes={"c": b"1"}, timestamp=start - 3 * 3600)
    ledger.block([late, held])
    v = run(ledger)
    assert not v.failed, v.problems
    [warning] = v.report()["warnings"]
    assert warning.startswith("block 3: transaction ") and "180 minutes before" in warning and "held back" in warning
