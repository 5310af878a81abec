"""``ipledger chaincode deploy --package FILE``: an organisation installs and approves the package another sent
(the real-network run is in tests/integration/test_multihost.py); a package of another name or version, or
none, is refused before anything is installed."""
from __future__ import annotations

import pytest

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


MEMBERS = ["CustomsMSP", "OperatorMSP", "BrokerMSP", "AuditMSP"]


def test_an_endorsement_policy_needs_customs_and_another_member():
    from ipledger.network.channel.chaincode import check_endorsement_policy
    for good in ("AND('CustomsMSP.peer', OR('OperatorMSP.peer','BrokerMSP.peer','AuditMSP.peer'))",
                 "AND('CustomsMSP.peer','OperatorMSP.peer')",
                 "OutOf(2, 'CustomsMSP.peer', AND('CustomsMSP.member','OperatorMSP.peer'))",
                 "AND('CustomsMSP.peer', 'StrangerMSP.peer')"):
        check_endorsement_policy(good, "CustomsMSP", MEMBERS)
    alone = {   # who could write alone
        "OR('CustomsMSP.peer','OperatorMSP.peer','BrokerMSP.peer','AuditMSP.peer')": "CustomsMSP write alone",
        "AND('CustomsMSP.peer','CustomsMSP.admin')": "CustomsMSP write alone",          # two customs identities
        "OutOf(2, 'CustomsMSP.peer', 'OperatorMSP.peer', 'BrokerMSP.peer')": "without customs",
        "AND('OperatorMSP.peer', OR('BrokerMSP.peer','CustomsMSP.peer'))": "without customs",
        "OR('StrangerMSP.peer')": "StrangerMSP write without customs",
    }
    for bad, says in alone.items():
        with pytest.raises(cc.LifecycleError, match=says):
            check_endorsement_policy(bad, "CustomsMSP", MEMBERS)
    with pytest.raises(cc.LifecycleError, match="cannot be read"):
        check_endorsement_policy("AND('CustomsMSP.peer'", "CustomsMSP", MEMBERS)


def test_admin_chaincode_policy_refuses_a_policy_without_customs_before_anything_is_approved(tmp_path, monkeypatch,
                                                                                          capsys):
    from ipledger.network.channel import chaincode
    from ipledger.network.cli import admin

    class Net:
        class consortium:
            customs = "CustomsMSP"
            orgs = [type("O", (), {"msp_id": m}) for m in MEMBERS[:3]]

        def channel_config(self):
            return "config", 1

    approved = []
    monkeypatch.setattr(admin, "_net", lambda args: Net())
    monkeypatch.setattr(admin, "application_orgs", lambda config: {m: None for m in MEMBERS[:3]})
    monkeypatch.setattr(chaincode.Deployer, "set_endorsement_policy", lambda *a: approved.append(a))
    args = type("A", (), {"name": "ipledger", "policy": "OR('CustomsMSP.peer','OperatorMSP.peer')"})
    with pytest.raises(admin.AdminError, match="lets CustomsMSP write alone"):
        admin._chaincode_policy(args)
    assert approved == []
    args.policy = "AND('CustomsMSP.peer', OR('OperatorMSP.peer','BrokerMSP.peer'))"
    assert admin._chaincode_policy(args) == 0 and len(approved) == 1
