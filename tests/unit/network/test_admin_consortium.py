"""Consortium file edits for organisations joining or leaving a running network
(``ipledger network add-org | remove-org``), and the org definition configtx.yaml
entry they share with the genesis block. No Fabric needed."""
from pathlib import Path

import pytest

from ipledger.network import consortium
from ipledger.network.consortium import ConsortiumError
from ipledger.network.layout import Layout


@pytest.fixture
def c():
    return consortium.load(base_port=20000)


def test_with_org_appends_one_peer_on_the_next_port_block(c):
    c2 = consortium.with_org(c, "AuditMSP", description="auditing customs office")
    org = c2.org("AuditMSP")
    assert [o.msp_id for o in c2.orgs] == ["CustomsMSP", "OperatorMSP", "BrokerMSP", "AuditMSP"]
    assert (org.name, org.domain, org.description) == (
        "audit", "audit.ipledger.example", "auditing customs office")
    assert [(n.id, n.host, n.port) for n in org.nodes] == [("peer0.audit", "127.0.0.1", 20040)]
    # Nothing else moves.
    assert [(n.id, n.port) for n in c2.nodes if n.org.msp_id != "AuditMSP"] == \
        [(n.id, n.port) for n in c.nodes]
    assert c.org("CustomsMSP") and len(c.orgs) == 3  # the original is untouched


def test_with_org_options_and_refusals(c):
    c2 = consortium.with_org(c, "AuditMSP", name="audit-office", domain="audit.example.eu",
                             peers=2)
    assert [(n.id, n.fqdn, n.port) for n in c2.org("AuditMSP").nodes] == [
        ("peer0.audit-office", "peer0.audit.example.eu", 20040),
        ("peer1.audit-office", "peer1.audit.example.eu", 20050)]
    for msp_id in ("CustomsMSP", "OrdererMSP"):
        with pytest.raises(ConsortiumError, match="already"):
            consortium.with_org(c, msp_id)
    with pytest.raises(ConsortiumError, match="msp_id"):
        consortium.with_org(c, "audit")
    with pytest.raises(ConsortiumError, match="declared twice|name .customs. used by both"):
        consortium.with_org(c, "CustomsTwoMSP", name="customs")


def test_saved_file_reloads_identically_with_fixed_ports(c, tmp_path):
    c2 = consortium.with_org(c, "AuditMSP", description="auditing customs office")
    path = tmp_path / "consortium.yaml"
    consortium.save(c2, path)
    again = consortium.load(path, base_port=31000)  # explicit ports win over a base port
    assert consortium.to_dict(again) == consortium.to_dict(c2)
    c3 = consortium.with_org(again, "LabMSP")
    assert c3.org("LabMSP").nodes[0].port == 20050


def test_without_org(c):
    c2 = consortium.without_org(consortium.with_org(c, "AuditMSP"), "AuditMSP")
    assert consortium.to_dict(c2) == consortium.to_dict(c)
    assert [o.msp_id for o in consortium.without_org(c, "BrokerMSP").orgs] == [
        "CustomsMSP", "OperatorMSP"]
    with pytest.raises(ConsortiumError, match="orderer organisation"):
        consortium.without_org(c, "OrdererMSP")
    with pytest.raises(ConsortiumError, match="not in the consortium"):
        consortium.without_org(c, "AuditMSP")
    one = consortium.without_org(consortium.without_org(c, "BrokerMSP"), "OperatorMSP")
    assert one.channels[0].holder is None  # the holder left the channel with its organisation
    with pytest.raises(ConsortiumError, match="customs authority"):
        consortium.without_org(one, "CustomsMSP")


def test_org_definition_entry_is_the_genesis_blocks(c, tmp_path):
    from ipledger.network.channel import founding
    from .test_generate import initialise
    lay = Layout(tmp_path)
    initialise(c, lay)
    profile = founding.configtx(c, lay, founding.definitions(c, lay))["Profiles"]["IPLedgerChannel"]
    assert profile["Application"]["Organizations"][0] == founding.application_org(
        "CustomsMSP", lay.public_msp("CustomsMSP"), ["127.0.0.1:20010"])
    entry = founding.application_org("AuditMSP", Path("/x/msp"), ["localhost:7140"])
    assert entry["Policies"]["Admins"] == {"Type": "Signature", "Rule": "OR('AuditMSP.admin')"}
    assert entry["AnchorPeers"] == [{"Host": "localhost", "Port": 7140}]
