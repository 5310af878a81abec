"""The consortium description: validation and port assignment."""
from pathlib import Path

import pytest
import yaml

from ipledger.network import consortium
from ipledger.network.consortium import ConsortiumError


def default_raw():
    return yaml.safe_load(consortium.DEFAULT_FILE.read_text())


def test_default_consortium_declares_the_three_orgs_and_one_orderer():
    c = consortium.load()
    assert c.channel == "inward-processing"
    assert [o.msp_id for o in c.orgs] == ["CustomsMSP", "OperatorMSP", "BrokerMSP"]
    assert c.orderer_org.msp_id == "OrdererMSP"
    assert len(c.orderers) == 1 and len(c.peers) == 3
    assert {n.host for n in c.nodes} == {"127.0.0.1"}


def test_every_port_of_every_node_is_unique():
    c = consortium.load(base_port=20000)
    ports = [p for n in c.nodes for p in n.ports()]
    assert len(ports) == len(set(ports)) == 3 * len(c.nodes)
    assert min(ports) == 20000


def test_base_port_override_moves_every_node():
    a, b = consortium.load(base_port=20000), consortium.load(base_port=30000)
    assert [n.port + 10000 for n in a.nodes] == [n.port for n in b.nodes]


def test_three_orderer_option():
    raw = default_raw()
    raw["orderer"]["nodes"] = 3
    c = consortium.parse(raw)
    assert [n.id for n in c.orderers] == ["orderer0.orderer", "orderer1.orderer",
                                          "orderer2.orderer"]


@pytest.mark.parametrize("nodes", [2, 4, 0])
def test_even_or_empty_raft_cluster_is_refused(nodes):
    raw = default_raw()
    raw["orderer"]["nodes"] = nodes
    with pytest.raises(ConsortiumError, match=r"odd cluster|orderer\.nodes"):
        consortium.parse(raw)


@pytest.mark.parametrize("change, message", [
    (lambda raw: raw["organisations"][1].update(domain="x/../../../../tmp/escape"), "must be a DNS name"),
    (lambda raw: raw["organisations"][1].update(domain="Operator Example"), "must be a DNS name"),
    (lambda raw: raw["organisations"][1].update(msp_id="OperatorMSP\n"), "must look like 'CustomsMSP'"),
    (lambda raw: raw.update(base_port="abc"), "base_port must be a whole number"),
    (lambda raw: raw["orderer"].update(max_message_count="many"), "max_message_count must be a whole number"),
    (lambda raw: raw["organisations"][1].update(peers=5), "'peers' must be a list"),
    (lambda raw: raw["organisations"][1].update(peers=[{"name": "peer0", "port": "x"}]),
     "port must be a whole number"),
])
def test_a_malformed_consortium_file_is_a_clear_error(change, message):
    """The domain names directories (a '/' or '..' would put keys elsewhere); numbers must be numbers."""
    raw = default_raw()
    change(raw)
    with pytest.raises(ConsortiumError, match=message):
        consortium.parse(raw)


def test_explicit_host_and_port_per_node():
    raw = default_raw()
    raw["organisations"][1]["peers"] = [{"name": "peer0", "host": "198.18.0.2", "port": 9051}]
    c = consortium.parse(raw)
    node = c.node("peer0.operator")
    assert (node.host, node.port, node.chaincode_port, node.operations_port) == (
        "198.18.0.2", 9051, 9052, 9053)


def test_port_clash_is_named():
    raw = default_raw()
    raw["organisations"][2]["peers"] = [{"name": "peer0", "port": 7111}]
    with pytest.raises(ConsortiumError, match=r"127.0.0.1:711[12].*peer0.customs.*peer0.broker"):
        consortium.parse(raw)


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.pop("channel"), "either one shared 'channel' or 'channels'"),
    (lambda r: r.update(channels=[]), "either one shared 'channel' or 'channels'"),
    (lambda r: r.update(customs="NobodyMSP"), "customs 'NobodyMSP' must be the MSP id"),
    (lambda r: r.update(holder="NobodyMSP"), "holder 'NobodyMSP' must be the MSP id"),
    (lambda r: r.update(channel="Bad Channel"), "not a valid Fabric channel name"),
    (lambda r: r["organisations"][0].update(msp_id="customs"), "must look like"),
    (lambda r: r["organisations"].append(dict(r["organisations"][0])), "declared twice"),
    (lambda r: r["organisations"][0].update(peers=[]), "has no peer"),
    (lambda r: r["orderer"].update(batch_timeout="soon"), "batch_timeout"),
])
def test_invalid_descriptions_get_specific_errors(mutate, message):
    raw = default_raw()
    mutate(raw)
    with pytest.raises(ConsortiumError, match=message):
        consortium.parse(raw)


def test_resolved_description_round_trips_with_its_ports():
    c = consortium.load(base_port=23000)
    again = consortium.parse(consortium.to_dict(c), base_port=1111)  # explicit ports win
    assert [(n.id, n.address) for n in again.nodes] == [(n.id, n.address) for n in c.nodes]


def test_a_peer_keeps_a_history_database_only_when_its_spec_asks():
    raw = default_raw()
    raw["organisations"][2]["peers"] = [{"name": "peer0", "history_database": True}]
    c = consortium.parse(raw)
    assert {n.id: n.history_database for n in c.peers} == {
        "peer0.customs": False, "peer0.operator": False, "peer0.broker": True}
    again = consortium.parse(consortium.to_dict(c))  # the state directory's record keeps it
    assert [n.history_database for n in again.peers] == [False, False, True]
    assert "history_database" not in consortium.to_dict(c)["organisations"][0]["peers"][0]


@pytest.mark.parametrize("where, spec, message", [
    (("organisations", 0, "peers"), {"name": "peer0", "history_database": "yes"},
     "peer0: history_database must be true or false, not 'yes'"),
    (("orderer", "nodes"), {"name": "orderer0", "history_database": True},
     "orderer0: history_database is a peer's setting"),
    (("orderer", "nodes"), {"name": "orderer0", "history_database": False},
     "orderer0: history_database is a peer's setting"),
])
def test_a_history_database_setting_that_cannot_apply_is_refused(where, spec, message):
    raw = default_raw()
    holder = raw
    for part in where[:-1]:
        holder = holder[part]
    holder[where[-1]] = [spec]
    with pytest.raises(ConsortiumError, match=message):
        consortium.parse(raw)


# ----------------------------------------------------------------------------- BFT across members

BFT_FILE = consortium.DEFAULT_FILE.with_name("consortium-bft.yaml")


def test_bft_file_spreads_four_consenters_over_the_three_members():
    c = consortium.load(BFT_FILE)
    assert c.consensus == "BFT" and c.orderer_org is None
    assert [(n.id, n.org.msp_id) for n in c.orderers] == [
        ("orderer0.customs", "CustomsMSP"), ("orderer1.customs", "CustomsMSP"),
        ("orderer0.operator", "OperatorMSP"), ("orderer0.broker", "BrokerMSP")]
    assert [o.msp_id for o in c.ordering_orgs] == ["CustomsMSP", "OperatorMSP", "BrokerMSP"]
    # an organisation's first node is still its peer (clients and CLIs connect to it)
    assert all(o.nodes[0].kind == "peer" and o.peers for o in c.orgs)
    assert len({p for n in c.nodes for p in n.ports()}) == 3 * len(c.nodes)


def test_bft_needs_four_consenters():
    raw = yaml.safe_load(BFT_FILE.read_text())
    raw["organisations"][0]["orderers"] = ["orderer0"]
    with pytest.raises(ConsortiumError, match="BFT needs at least 4"):
        consortium.parse(raw)


def test_unknown_consensus_is_refused():
    raw = default_raw()
    raw["orderer"]["consensus"] = "pbft"
    with pytest.raises(ConsortiumError, match="'raft' or 'bft'"):
        consortium.parse(raw)


def test_bft_description_round_trips_through_to_dict():
    c = consortium.load(BFT_FILE, base_port=31000)
    again = consortium.parse(consortium.to_dict(c))
    assert again.consensus == "BFT" and again.orderer_org is None
    assert [(n.id, n.address) for n in again.nodes] == [(n.id, n.address) for n in c.nodes]


def test_a_member_running_consenters_cannot_just_be_removed():
    c = consortium.load(BFT_FILE)
    with pytest.raises(ConsortiumError, match="runs consenters"):
        consortium.without_org(c, "BrokerMSP")


def test_raft_consenters_are_not_run_by_the_members():
    raw = yaml.safe_load(BFT_FILE.read_text())
    raw["orderer"]["consensus"] = "raft"
    with pytest.raises(ConsortiumError, match="use 'consensus: bft'"):
        consortium.parse(raw)


# -- a channel per holder (consortium-holders.yaml) -------------------------------------------------

HOLDERS = Path(consortium.__file__).with_name("consortium-holders.yaml")


def holders_raw() -> dict:
    return yaml.safe_load(HOLDERS.read_text())


def test_a_channel_per_holder_with_customs_on_every_one():
    c = consortium.load(HOLDERS)
    assert c.per_holder and c.customs == "CustomsMSP"
    assert [(ch.name, ch.holder, ch.members) for ch in c.channels] == [
        ("ip-plant-a", "PlantAMSP", ("CustomsMSP", "PlantAMSP", "BrokerAMSP")),
        ("ip-plant-b", "PlantBMSP", ("CustomsMSP", "PlantBMSP", "BrokerBMSP"))]
    b = c.view("ip-plant-b")
    assert b.channel == "ip-plant-b"
    assert [n.id for n in b.peers] == ["peer0.customs", "peer0.plantb", "peer0.brokerb"]
    assert [n.id for n in b.orderers] == ["orderer0.orderer"]
    assert c.channels_of("CustomsMSP") == ["ip-plant-a", "ip-plant-b"]
    assert c.channels_of("BrokerAMSP") == ["ip-plant-a"]
    # saved and read back: the same channels
    assert consortium.parse(consortium.to_dict(c)).channels == c.channels


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.pop("customs"), "'channels' needs 'customs"),
    (lambda r: r["channels"][0].pop("holder"), "'holder' must name"),
    (lambda r: r["channels"][0].update(holder="CustomsMSP"), "'holder' must name"),
    (lambda r: r["channels"][0].update(representatives=["NobodyMSP"]), "representative 'NobodyMSP'"),
    (lambda r: r["channels"][1].update(name="ip-plant-a"), "declared twice"),
    (lambda r: r["channels"].pop(1), "PlantBMSP is on no channel"),
    (lambda r: r["channels"][0].update(name="Plant A"), "not a valid Fabric channel name"),
    # a holder's peer on another holder's channel would receive every block of it
    (lambda r: r["channels"][1].update(representatives=["BrokerBMSP", "PlantAMSP"]),
     "PlantAMSP holds channel ip-plant-a and may be on no other"),
    (lambda r: r.update(channel="inward-processing"), "either one shared 'channel' or 'channels'"),
])
def test_invalid_channels_get_specific_errors(mutate, message):
    raw = holders_raw()
    mutate(raw)
    with pytest.raises(ConsortiumError, match=message):
        consortium.parse(raw)


def test_a_member_running_consenters_must_be_on_every_channel():
    """An orderer stores every block of each channel it serves: a holder's consenter would hold its
    competitor's blocks."""
    raw = holders_raw()
    raw.pop("orderer")
    raw["orderer"] = {"consensus": "bft"}
    raw["organisations"][0]["orderers"] = ["orderer0", "orderer1", "orderer2"]
    raw["organisations"][1]["orderers"] = ["orderer0"]
    with pytest.raises(ConsortiumError, match="PlantAMSP runs consenters but is not on every channel"):
        consortium.parse(raw)
    raw["organisations"][1].pop("orderers")
    raw["organisations"][0]["orderers"].append("orderer3")
    assert len(consortium.parse(raw).orderers) == 4  # customs' four consenters serve both channels


def test_an_organisation_joins_and_leaves_named_channels():
    c = consortium.load(HOLDERS)
    with pytest.raises(ConsortiumError, match="name the channel"):
        consortium.with_org(c, "BrokerCMSP")
    c2 = consortium.with_org(c, "BrokerCMSP", channels=["ip-plant-a", "ip-plant-b"])
    assert [("BrokerCMSP" in ch.members) for ch in c2.channels] == [True, True]
    c3 = consortium.without_org(c2, "BrokerCMSP")
    assert c3.channels == c.channels
    with pytest.raises(ConsortiumError, match="PlantAMSP holds channel ip-plant-a"):
        consortium.without_org(c, "PlantAMSP")


def test_each_channel_gets_its_own_endorsement_policy_and_collection():
    """Derived from the consortium file, not shipped with the contract: customs' peer AND a peer of another
    member of *this* channel; the customs values stored by customs and this channel's holder only."""
    from ipledger.network.channel.package import LifecycleError
    from ipledger.network.channel.chaincode import commercial_collection, contract_policy
    c = consortium.load(HOLDERS)
    b = c.view("ip-plant-b")
    assert contract_policy(b) == "AND('CustomsMSP.peer', OR('PlantBMSP.peer','BrokerBMSP.peer'))"
    assert commercial_collection(b) == [{
        "name": "commercial", "policy": "OR('CustomsMSP.member','PlantBMSP.member')", "requiredPeerCount": 0,
        "maxPeerCount": 1, "blockToLive": 0, "memberOnlyRead": True, "memberOnlyWrite": False}]
    shared = consortium.load()
    assert contract_policy(shared) == "AND('CustomsMSP.peer', OR('OperatorMSP.peer','BrokerMSP.peer'))"
    assert commercial_collection(shared)[0]["policy"] == "OR('CustomsMSP.member','OperatorMSP.member')"
    raw = default_raw()
    raw.pop("customs")
    with pytest.raises(LifecycleError, match="names no customs organisation"):
        contract_policy(consortium.parse(raw))
    raw = default_raw()
    raw.pop("holder")
    with pytest.raises(LifecycleError, match="names no holder"):
        commercial_collection(consortium.parse(raw))


def test_on_a_holders_channel_membership_and_the_contract_definition_need_the_holder():
    """Customs and a representative are a majority of ip-plant-b's three members: they must not be able to
    add an organisation to it, or widen the contract's collection, without the holder."""
    from ipledger.network.channel.founding import channel_policies
    b = channel_policies(consortium.load(HOLDERS).view("ip-plant-b"))
    assert b["application"]["Admins"] == {"Type": "Signature", "Rule": "AND('CustomsMSP.admin','PlantBMSP.admin')"}
    assert b["application"]["LifecycleEndorsement"] == {"Type": "Signature",
                                                        "Rule": "AND('CustomsMSP.peer','PlantBMSP.peer')"}
    # customs' ordering organisation could otherwise add an ordering organisation, which reads every block
    assert b["orderer"]["Admins"]["Rule"] == "AND('OrdererMSP.admin',AND('CustomsMSP.admin','PlantBMSP.admin'))"
    assert b["application"]["Endorsement"]["Rule"] == "AND('CustomsMSP.peer',OR('PlantBMSP.peer','BrokerBMSP.peer'))"


def test_on_the_shared_channel_the_operator_and_its_broker_change_nothing_without_customs():
    """Operator and broker are two of the shared channel's three members: a majority would let them admit an
    organisation or commit a contract definition (its endorsement policy) without customs."""
    from ipledger.network.channel.founding import channel_policies
    shared = channel_policies(consortium.load())
    assert shared["application"]["Admins"]["Rule"] == "AND('CustomsMSP.admin','OperatorMSP.admin')"
    assert shared["application"]["LifecycleEndorsement"]["Rule"] == "AND('CustomsMSP.peer','OperatorMSP.peer')"
    # a contract definition naming no endorsement policy gets every record's: customs and one other member
    assert shared["application"]["Endorsement"]["Rule"] == "AND('CustomsMSP.peer',OR('OperatorMSP.peer','BrokerMSP.peer'))"
    assert shared["orderer"]["Admins"]["Rule"] == "AND('OrdererMSP.admin',AND('CustomsMSP.admin','OperatorMSP.admin'))"
    assert shared["channel"]["Admins"]["Rule"] == "MAJORITY Admins"   # of Application and Orderer: both
    # the members run the consenters: the ordering service's configuration needs customs and the holder too
    bft = channel_policies(consortium.load(consortium.DEFAULT_FILE.with_name("consortium-bft.yaml")))
    assert bft["orderer"]["Admins"]["Rule"] == "AND('CustomsMSP.admin','OperatorMSP.admin')"
    # a file naming no holder: customs and any other member
    raw = default_raw()
    raw.pop("holder")
    assert channel_policies(consortium.parse(raw))["application"]["Admins"]["Rule"] == \
        "AND('CustomsMSP.admin',OR('OperatorMSP.admin','BrokerMSP.admin'))"
    # no customs authority named: Fabric's majorities
    raw.pop("customs")
    assert channel_policies(consortium.parse(raw))["application"]["Admins"]["Rule"] == "MAJORITY Admins"


def test_a_channels_members_are_given_that_channel_only():
    c = consortium.load(HOLDERS)
    a = consortium.for_channel_members(c, "ip-plant-a")
    assert [o.msp_id for o in a.all_orgs] == ["OrdererMSP", "CustomsMSP", "PlantAMSP", "BrokerAMSP"]
    assert [ch.name for ch in a.channels] == ["ip-plant-a"]
    text = yaml.safe_dump(consortium.to_dict(a))
    assert "PlantB" not in text and "BrokerB" not in text and "ip-plant-b" not in text
    # the same ports as in the founder's file: the nodes are the same
    assert a.org("PlantAMSP").peers[0].address == c.org("PlantAMSP").peers[0].address
