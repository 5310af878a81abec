"""``ipledger chaincode upgrade`` changes the code, not who endorses: the committed endorsement policy is kept.

It recomputed the policy from the consortium file: a policy customs and the holder had narrowed with ``ipledger
admin chaincode-policy`` was widened again unannounced, and an organisation that had joined the channel (an
auditing office) became an endorser with the next upgrade — customs and it could then have written without the
holder or its representative. Against a peer CLI stand-in: what is approved and committed.
"""
from __future__ import annotations

import base64
import json
import types
from pathlib import Path

import pytest
from fabric_protos.peer import policy_pb2

from ipledger.network import consortium as consortium_mod
from ipledger.network.channel import chaincode as chaincode_mod
from ipledger.network.channel.package import LifecycleError, ChaincodeSpec, build_binary_package
from ipledger.network.fabric.policy import parse_signature_policy

NARROWED = "AND('CustomsMSP.peer', 'OperatorMSP.peer')"


def committed_definition(policy: str) -> dict:
    app = policy_pb2.ApplicationPolicy(signature_policy=parse_signature_policy(policy))
    return {"sequence": 2, "version": "1.0", "approvals": {},
            "validation_parameter": base64.b64encode(app.SerializeToString()).decode()}


def upgrade(tmp_path: Path, consortium, committed: dict) -> tuple[list[str], list[str]]:
    """Upgrade to 2.0 against a stand-in of every organisation's peer CLI; the policies given to
    approveformyorg and commit, and what was said."""
    exe = tmp_path / "x"
    exe.write_bytes(b"#!/bin/sh\n")
    pkg = build_binary_package("ipledger_2.0", exe, tmp_path / "ipledger_2.0.tar.gz")
    calls, said = [], []
    layout = types.SimpleNamespace(channel_dir=tmp_path / "ch", definitions_of_chaincode=tmp_path / "defs",
                                   chaincode_dir=tmp_path, is_local=lambda org: True,
                                   tls_ca=lambda org: tmp_path / "ca.pem")

    def peer_cli(peer, args, check=True, timeout=60, msp_id=None):
        calls.append((peer.org.msp_id, args))
        out = ""
        if "querycommitted" in args:
            out = json.dumps(committed)
        elif "queryinstalled" in args:
            out = "{}"
        elif "checkcommitreadiness" in args:
            out = json.dumps({"approvals": {o.msp_id: any(m == o.msp_id and "approveformyorg" in a for m, a in calls)
                                            for o in consortium.orgs}})
        return types.SimpleNamespace(returncode=0, stdout=out, stderr="")

    net = types.SimpleNamespace(consortium=consortium, layout=layout, runtime=types.SimpleNamespace(name="native"),
                                local_peers=[p for o in consortium.orgs for p in o.peers],
                                orderer_args=lambda: [], peer_cli=peer_cli)
    net.channels = lambda: [net]
    chaincode_mod.Deployer(net, log=said.append).deploy(ChaincodeSpec(from_consortium=True, version="2.0"), pkg,
                                                       upgrade=True)
    policies = [a[a.index("--signature-policy") + 1] for _m, a in calls
                if "approveformyorg" in a or "commit" in a]
    return policies, said


def test_an_upgrade_keeps_a_policy_narrowed_after_deployment(tmp_path):
    c = consortium_mod.load()
    policies, said = upgrade(tmp_path, c, committed_definition(NARROWED))
    assert len(policies) == len(c.orgs) + 1 and set(policies) == {NARROWED}     # each approval and the commit
    assert any("stays AND('CustomsMSP.peer', 'OperatorMSP.peer')" in line and "admin chaincode-policy" in line
               for line in said)


def test_an_organisation_that_joined_does_not_become_an_endorser_with_the_next_upgrade(tmp_path):
    c = consortium_mod.with_org(consortium_mod.load(), "AuditMSP", name="audit")
    before = "AND('CustomsMSP.peer', OR('OperatorMSP.peer', 'BrokerMSP.peer'))"
    policies, _ = upgrade(tmp_path, c, committed_definition(before))
    assert set(policies) == {before} and not any("AuditMSP" in p for p in policies)


def test_the_policy_is_kept_whatever_order_fabric_numbered_its_principals_in(tmp_path):
    """Fabric's peer CLI numbers the principals of AND('C', OR('O','B')) in another order than they read
    (CI found it on the real network): the rule and its principals are what is kept, not the bytes."""
    from fabric_protos.common import policies_pb2
    from fabric_protos.msp import msp_principal_pb2

    def principal(msp):
        role = msp_principal_pb2.MSPRole(msp_identifier=msp, role=msp_principal_pb2.MSPRole.PEER)
        return msp_principal_pb2.MSPPrincipal(principal_classification=msp_principal_pb2.MSPPrincipal.ROLE,
                                              principal=role.SerializeToString())
    rule = policies_pb2.SignaturePolicy
    env = policies_pb2.SignaturePolicyEnvelope(
        version=0, identities=[principal("OperatorMSP"), principal("BrokerMSP"), principal("CustomsMSP")],
        rule=rule(n_out_of=rule.NOutOf(n=2, rules=[rule(signed_by=2), rule(n_out_of=rule.NOutOf(
            n=1, rules=[rule(signed_by=0), rule(signed_by=1)]))])))
    app = policy_pb2.ApplicationPolicy(signature_policy=env)
    committed = {"sequence": 2, "version": "1.0", "approvals": {},
                 "validation_parameter": base64.b64encode(app.SerializeToString()).decode()}
    policies, said = upgrade(tmp_path, consortium_mod.load(), committed)
    assert set(policies) == {"AND('CustomsMSP.peer', OR('OperatorMSP.peer', 'BrokerMSP.peer'))"}
    assert not any("stays" in line for line in said)       # the members give the same policy: nothing to say


def test_a_committed_policy_that_is_no_signature_policy_is_not_guessed(tmp_path):
    app = policy_pb2.ApplicationPolicy(channel_config_policy_reference="/Channel/Application/Endorsement")
    committed = {"sequence": 1, "version": "1.0", "approvals": {},
                 "validation_parameter": base64.b64encode(app.SerializeToString()).decode()}
    with pytest.raises(LifecycleError, match="not a signature policy.*admin chaincode-policy"):
        upgrade(tmp_path, consortium_mod.load(), committed)
