"""``ipledger admin propose remove-org`` refuses a removal after which the channel could never be changed again.

The governance rule names customs AND the holder (Application Admins, LifecycleEndorsement, Orderer Admins):
without the holder's MSP no signature could meet them, so no member could ever be added or removed, no policy
or contract definition changed — and Fabric has no way back.
"""
from __future__ import annotations

import pytest
from fabric_protos.common import configtx_pb2

from ipledger.network.channel.proposals import _require_governable
from ipledger.network.errors import AdminError
from ipledger.network.fabric.policy import signature_policy

from .channel_config import FakeOrg, make_config

ORGS = ("CustomsMSP", "OperatorMSP", "BrokerMSP")


def config(governance: bool) -> configtx_pb2.Config:
    c = make_config([FakeOrg(m) for m in ORGS], FakeOrg("OrdererMSP"))
    if governance:   # founding.governance_rule with a holder named
        app = c.channel_group.groups["Application"]
        for name, role in (("Admins", "admin"), ("LifecycleEndorsement", "peer")):
            app.policies[name].policy.CopyFrom(signature_policy(f"AND('CustomsMSP.{role}','OperatorMSP.{role}')"))
    return c


def without(c: configtx_pb2.Config, msp_id: str) -> configtx_pb2.Config:
    updated = configtx_pb2.Config()
    updated.CopyFrom(c)
    del updated.channel_group.groups["Application"].groups[msp_id]
    return updated


def test_the_holder_named_in_the_governance_rule_cannot_be_removed():
    with pytest.raises(AdminError, match=r"without OperatorMSP, /Channel/Application/Admins, "
                                         r"/Channel/Application/LifecycleEndorsement, /Channel/Admins could never "
                                         r"be met again \(AND\('CustomsMSP.admin', 'OperatorMSP.admin'\)\)"):
        _require_governable(without(config(governance=True), "OperatorMSP"), "OperatorMSP")


def test_a_representative_can_be_removed_under_the_governance_rule():
    _require_governable(without(config(governance=True), "BrokerMSP"), "BrokerMSP")


def test_under_majorities_any_one_member_can_be_removed():
    for msp_id in ORGS:
        _require_governable(without(config(governance=False), msp_id), msp_id)
