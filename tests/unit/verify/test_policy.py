"""Signature policies, implicit meta policies and signature sets, as Fabric evaluates them."""
from __future__ import annotations

import pytest
from fabric_protos.common import configtx_pb2, policies_pb2
from fabric_protos.msp import msp_principal_pb2

from ipledger.network.fabric.msp import MSP, MSPManager
from ipledger.network.fabric.policy import ImplicitMetaPolicy, PolicyError, PolicyManager, SignaturePolicy, \
    SignedData, parse_signature_policy, valid_identities

from .ledger import channel_config
from .pki import Org


@pytest.fixture(scope="module")
def orgs():
    return {m: Org.make(m) for m in ("CustomsMSP", "OperatorMSP", "BrokerMSP", "OrdererMSP")}


@pytest.fixture(scope="module")
def msps(orgs):
    return MSPManager({m: MSP(o.msp_config()) for m, o in orgs.items()})


def ids(msps, *members):
    return [msps.deserialize(m.serialize()) for m in members]


def sp(text: str) -> SignaturePolicy:
    return SignaturePolicy(parse_signature_policy(text))


def signed(member, message=b"block", signature=None):
    return SignedData(message, member.serialize(), signature if signature is not None else member.sign(message))


def test_n_out_of(orgs, msps):
    c, o, b = (orgs[m].member("peer") for m in ("CustomsMSP", "OperatorMSP", "BrokerMSP"))
    two_of_three = sp("OutOf(2, 'CustomsMSP.peer', 'OperatorMSP.peer', 'BrokerMSP.peer')")
    assert two_of_three.evaluate_identities(ids(msps, c, b))
    assert two_of_three.evaluate_identities(ids(msps, o, b, c))
    assert not two_of_three.evaluate_identities(ids(msps, b))
    assert not two_of_three.evaluate_identities([])


def test_nested_and_or(orgs, msps):
    c, o, b = (orgs[m].member("peer") for m in ("CustomsMSP", "OperatorMSP", "BrokerMSP"))
    policy = sp("AND('CustomsMSP.peer', OR('OperatorMSP.peer', 'BrokerMSP.peer'))")
    assert policy.evaluate_identities(ids(msps, c, o))
    assert policy.evaluate_identities(ids(msps, b, c))
    assert not policy.evaluate_identities(ids(msps, o, b))       # no customs
    assert not policy.evaluate_identities(ids(msps, c))
    assert policy.describe() == "AND('CustomsMSP.peer', OR('OperatorMSP.peer', 'BrokerMSP.peer'))"


def test_an_and_explains_how_many_of_its_parts_are_signed_and_which_are_missing(orgs, msps):
    """What ``ipledger admin status`` shows for the channel's governance policy: customs and the holder."""
    c, o, b = (orgs[m].member("admin") for m in ("CustomsMSP", "OperatorMSP", "BrokerMSP"))
    policy = sp("AND('CustomsMSP.admin', 'OperatorMSP.admin')")
    e = policy.explain(ids(msps, c, b))
    assert (e.satisfied, e.have, e.needed, e.detail) == (False, 1, 2, "missing 'OperatorMSP.admin'")
    e = policy.explain(ids(msps, b, o, c))
    assert (e.satisfied, e.have, e.needed) == (True, 2, 2) and e.detail.startswith("by ")
    assert e.satisfied == policy.evaluate_identities(ids(msps, b, o, c))
    nested = sp("AND('CustomsMSP.admin', OR('OperatorMSP.admin', 'BrokerMSP.admin'))").explain(ids(msps, b))
    assert (nested.satisfied, nested.have, nested.needed, nested.detail) == (False, 1, 2, "missing 'CustomsMSP.admin'")
    single = sp("OR('CustomsMSP.admin')").explain([])      # an OR of one principal: 0 of 1
    assert (single.satisfied, single.needed, single.detail) == (False, 1, "missing 'CustomsMSP.admin'")


def test_one_identity_counts_once_per_evaluation(orgs, msps):
    c = orgs["CustomsMSP"].member("peer")
    # Two principals the same identity satisfies: it may be used for one of them only.
    policy = sp("AND('CustomsMSP.peer', 'CustomsMSP.member')")
    assert not policy.evaluate_identities(ids(msps, c))
    c2 = orgs["CustomsMSP"].member("peer", "peer1.customs")
    assert policy.evaluate_identities(ids(msps, c, c2))


def test_duplicate_signers_are_counted_once(orgs, msps):
    c = orgs["CustomsMSP"].member("peer")
    policy = sp("OutOf(2, 'CustomsMSP.peer', 'CustomsMSP.peer')")
    ev = valid_identities([signed(c), signed(c), signed(c, b"other")], msps)
    assert len(ev.identities) == 1 and len(ev.dropped) == 2
    assert "duplicate signer" in ev.dropped[0][1]
    assert not policy.evaluate_identities(ev.identities)
    ok, _ = policy.evaluate([signed(c), signed(orgs["CustomsMSP"].member("peer", "peer1.customs"))], msps)
    assert ok


def test_wrong_role_is_refused(orgs, msps):
    customs = orgs["CustomsMSP"]
    policy = sp("OR('CustomsMSP.peer')")
    for role in ("client", "admin", "orderer"):
        assert not policy.evaluate_identities(ids(msps, customs.member(role))), role
    assert sp("OR('CustomsMSP.admin')").evaluate_identities(ids(msps, customs.member("admin")))
    assert not sp("OR('CustomsMSP.admin')").evaluate_identities(ids(msps, customs.member("client")))
    assert sp("OR('CustomsMSP.client')").evaluate_identities(ids(msps, customs.member("client")))
    # member: any valid identity of the MSP, whatever its role.
    member = sp("OR('CustomsMSP.member')")
    assert all(member.evaluate_identities(ids(msps, customs.member(r))) for r in ("client", "peer", "admin"))


def test_wrong_msp_is_refused(orgs, msps):
    assert not sp("OR('CustomsMSP.peer')").evaluate_identities(ids(msps, orgs["OperatorMSP"].member("peer")))


def test_bad_signatures_and_unknown_msps_are_dropped(orgs, msps):
    c = orgs["CustomsMSP"].member("peer")
    stranger = Org.make("StrangerMSP").member("peer")
    ev = valid_identities([signed(c, signature=c.sign(b"something else")), signed(stranger)], msps)
    assert ev.identities == []
    assert "does not verify" in ev.dropped[0][1]
    assert "not a member of the channel" in ev.dropped[1][1]


def test_identity_and_ou_principals(orgs, msps):
    c = orgs["CustomsMSP"].member("peer")
    other = orgs["CustomsMSP"].member("peer", "peer1.customs")
    principal = msp_principal_pb2.MSPPrincipal(principal_classification=msp_principal_pb2.MSPPrincipal.IDENTITY,
                                               principal=c.serialize())
    env = policies_pb2.SignaturePolicyEnvelope(
        rule=policies_pb2.SignaturePolicy(n_out_of=policies_pb2.SignaturePolicy.NOutOf(
            n=1, rules=[policies_pb2.SignaturePolicy(signed_by=0)])), identities=[principal])
    assert SignaturePolicy(env).evaluate_identities(ids(msps, c))
    assert not SignaturePolicy(env).evaluate_identities(ids(msps, other))
    [ident] = ids(msps, c)
    ou = msp_principal_pb2.OrganizationUnit(msp_identifier="CustomsMSP", organizational_unit_identifier="peer",
                                            certifiers_identifier=ident.msp.certifiers_id(ident))
    env.identities[0].CopyFrom(msp_principal_pb2.MSPPrincipal(
        principal_classification=msp_principal_pb2.MSPPrincipal.ORGANIZATION_UNIT, principal=ou.SerializeToString()))
    assert SignaturePolicy(env).evaluate_identities(ids(msps, other))
    assert not SignaturePolicy(env).evaluate_identities(ids(msps, orgs["CustomsMSP"].member("client")))


def test_signed_by_out_of_range_does_not_compile():
    env = policies_pb2.SignaturePolicyEnvelope(rule=policies_pb2.SignaturePolicy(signed_by=3))
    with pytest.raises(PolicyError, match="out of range"):
        SignaturePolicy(env)


# ----------------------------------------------------------------------------- implicit meta

@pytest.fixture(scope="module")
def channel(orgs):
    config = channel_config([orgs["CustomsMSP"], orgs["OperatorMSP"], orgs["BrokerMSP"]], orgs["OrdererMSP"])
    return PolicyManager(config.channel_group)


def test_implicit_meta_majority_any_all(orgs, msps, channel):
    admins = {m: orgs[m].member("admin") for m in ("CustomsMSP", "OperatorMSP", "BrokerMSP")}
    majority = channel.get("/Channel/Application/Admins")
    assert isinstance(majority, ImplicitMetaPolicy) and majority.threshold == 2
    assert not majority.evaluate_identities(ids(msps, admins["CustomsMSP"]))
    assert majority.evaluate_identities(ids(msps, admins["CustomsMSP"], admins["BrokerMSP"]))
    # Two admins of the same org are one org: still no majority.
    extra = orgs["CustomsMSP"].member("admin", "admin2.customs")
    assert not majority.evaluate_identities(ids(msps, admins["CustomsMSP"], extra))
    writers_any = channel.get("/Channel/Application/Writers")
    assert writers_any.evaluate_identities(ids(msps, orgs["BrokerMSP"].member("client")))
    assert not writers_any.evaluate_identities(ids(msps, orgs["BrokerMSP"].member("peer")))
    # The channel root's Writers is ANY over Application and Orderer.
    assert channel.get("/Channel/Writers").evaluate_identities(ids(msps, orgs["OrdererMSP"].member("orderer")))
    block_validation = channel.get("/Channel/Orderer/BlockValidation")
    assert block_validation.evaluate_identities(ids(msps, orgs["OrdererMSP"].member("orderer")))
    assert not block_validation.evaluate_identities(ids(msps, orgs["CustomsMSP"].member("peer")))


def test_implicit_meta_all_and_missing_sub_policies(orgs, msps):
    group = configtx_pb2.ConfigGroup()
    for m in ("CustomsMSP", "OperatorMSP"):
        g = group.groups[m]
        g.policies["Endorsement"].policy.CopyFrom(policies_pb2.Policy(
            type=policies_pb2.Policy.SIGNATURE, value=parse_signature_policy(f"OR('{m}.peer')").SerializeToString()))
    group.groups["BrokerMSP"].CopyFrom(configtx_pb2.ConfigGroup())           # no Endorsement policy
    for name, rule in (("All", policies_pb2.ImplicitMetaPolicy.ALL), ("Any", policies_pb2.ImplicitMetaPolicy.ANY),
                       ("Majority", policies_pb2.ImplicitMetaPolicy.MAJORITY)):
        group.policies[name].policy.CopyFrom(policies_pb2.Policy(
            type=policies_pb2.Policy.IMPLICIT_META,
            value=policies_pb2.ImplicitMetaPolicy(rule=rule, sub_policy="Endorsement").SerializeToString()))
    pm = PolicyManager(group, "Channel")
    c, o = orgs["CustomsMSP"].member("peer"), orgs["OperatorMSP"].member("peer")
    assert pm.get("Any").evaluate_identities(ids(msps, o))
    assert pm.get("Majority").evaluate_identities(ids(msps, c, o))     # 2 of 3 (Broker's is missing)
    assert not pm.get("All").evaluate_identities(ids(msps, c, o))      # the missing one never passes
    assert not pm.get("Nope").evaluate_identities(ids(msps, c, o))     # unknown policies reject


def test_implicit_meta_with_no_children_is_satisfied():
    imp = ImplicitMetaPolicy(policies_pb2.ImplicitMetaPolicy.MAJORITY, "Admins", [])
    assert imp.threshold == 0 and imp.evaluate_identities([])


def test_a_principal_that_does_not_parse_is_never_satisfied(orgs, msps):
    bad = msp_principal_pb2.MSPPrincipal(principal_classification=msp_principal_pb2.MSPPrincipal.ROLE,
                                         principal=b"\xff\xff\xff")
    env = policies_pb2.SignaturePolicyEnvelope(
        rule=policies_pb2.SignaturePolicy(n_out_of=policies_pb2.SignaturePolicy.NOutOf(
            n=1, rules=[policies_pb2.SignaturePolicy(signed_by=0)])), identities=[bad])
    assert not SignaturePolicy(env).evaluate_identities(ids(msps, orgs["CustomsMSP"].member("peer")))
