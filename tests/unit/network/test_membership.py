"""ipledger.network.fabric.membership: the channel's organisations read from a config (block)."""
from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from fabric_protos.common import configtx_pb2

from ipledger.network.fabric.config import ConfigError
from ipledger.network.fabric.policy import implicit_meta_policy
from ipledger.network.fabric.membership import describe, describe_block
from tests.unit.network.channel_config import FakeOrg, config_block, make_config


@pytest.fixture(scope="module")
def orgs():
    return {m: FakeOrg(m) for m in ("CustomsMSP", "OperatorMSP", "BrokerMSP", "OrdererMSP")}


@pytest.fixture(scope="module")
def config(orgs):
    return make_config([orgs["OperatorMSP"], orgs["CustomsMSP"], orgs["BrokerMSP"]], orgs["OrdererMSP"])


def test_every_org_with_its_role_anchor_peers_and_admins(config):
    m = describe(config)
    assert [(o["msp_id"], o["role"]) for o in m["organisations"]] == [
        ("BrokerMSP", "application"), ("CustomsMSP", "application"), ("OperatorMSP", "application"),
        ("OrdererMSP", "orderer")]
    customs = m["organisations"][1]
    assert customs["anchor_peers"] == ["127.0.0.1:7110"]
    assert customs["admins"] == "OR('CustomsMSP.admin')"
    assert m["organisations"][3]["endpoints"] == []
    assert m["admins_policy"] == "MAJORITY Admins"
    assert m["sequence"] == 0


def test_root_certificates_are_identified_by_subject_and_der_fingerprint(config, orgs):
    m = describe(config)
    operator = next(o for o in m["organisations"] if o["msp_id"] == "OperatorMSP")
    ca = orgs["OperatorMSP"].ca
    assert operator["root_certificates"] == [{
        "subject": "CN=ca.OperatorMSP",
        "sha256": hashlib.sha256(ca.public_bytes(Encoding.DER)).hexdigest(),
        "not_after": ca.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")}]


def test_a_changed_membership_policy_and_a_removed_org_show(config):
    changed = configtx_pb2.Config()
    changed.CopyFrom(config)
    changed.sequence = 4
    app = changed.channel_group.groups["Application"]
    del app.groups["BrokerMSP"]
    app.policies["Admins"].policy.CopyFrom(implicit_meta_policy("ANY Admins"))
    m = describe(changed)
    assert [o["msp_id"] for o in m["organisations"]] == ["CustomsMSP", "OperatorMSP", "OrdererMSP"]
    assert (m["admins_policy"], m["sequence"]) == ("ANY Admins", 4)


def test_from_a_config_block_with_its_number(config):
    m = describe_block(config_block(config, 9))
    assert m["config_block"] == 9
    assert len(m["organisations"]) == 4


def test_a_block_that_is_not_a_config_block_is_refused():
    from fabric_protos.common import common_pb2
    payload = common_pb2.Payload(header=common_pb2.Header(channel_header=common_pb2.ChannelHeader(
        type=common_pb2.ENDORSER_TRANSACTION).SerializeToString()))
    block = common_pb2.Block(header=common_pb2.BlockHeader(number=3))
    block.data.data.append(common_pb2.Envelope(payload=payload.SerializeToString()).SerializeToString())
    with pytest.raises(ConfigError, match="block 3 is not a config block"):
        describe_block(block.SerializeToString())
