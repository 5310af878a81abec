"""Generation of node configs (pure) and of crypto + genesis block (Fabric tools)."""
import stat
from pathlib import Path

import pytest
import yaml
from fabric_protos.common import common_pb2, configtx_pb2, policies_pb2

from ipledger.network import consortium
from ipledger.network.channel import founding
from ipledger.network.org import generate
from ipledger.network.layout import Layout


def initialise(c, lay):
    """Every organisation creates its own directory and hands over its definition (no Fabric tool)."""
    for org in c.all_orgs:
        generate.init_org(c, lay, org, log=lambda *_: None)
        generate.publish_definition(lay, org)


@pytest.fixture
def net(tmp_path):
    return consortium.load(base_port=21000), Layout(tmp_path / "state")


def test_every_peer_listener_uses_tls_and_the_gateway_is_on(net):
    c, lay = net
    for n in c.peers:
        cfg = generate.peer_config(c, lay, n)
        assert cfg["peer"]["tls"]["enabled"] is True
        assert cfg["operations"]["tls"]["enabled"] is True
        assert cfg["peer"]["gateway"]["enabled"] is True
        assert cfg["peer"]["listenAddress"] == n.address
        assert cfg["operations"]["listenAddress"] == f"127.0.0.1:{n.operations_port}"
        assert cfg["peer"]["chaincodeListenAddress"] == f"127.0.0.1:{n.chaincode_port}"
        assert cfg["peer"]["gossip"]["externalEndpoint"] == n.address
        assert cfg["vm"]["endpoint"] == ""
        [builder] = cfg["chaincode"]["externalBuilders"]
        assert Path(builder["path"]) == generate.BUILDER_DIR
        assert cfg["peer"]["fileSystemPath"].startswith(str(lay.root))


def test_a_peer_keeps_a_history_database_only_when_the_consortium_asks(net):
    c, lay = net
    assert [generate.peer_config(c, lay, n)["ledger"]["history"]["enableHistoryDatabase"]
            for n in c.peers] == [False, False, False]
    raw = yaml.safe_load(consortium.DEFAULT_FILE.read_text())
    raw["organisations"][1]["peers"] = [{"name": "peer0", "history_database": True}]
    c = consortium.parse(raw, base_port=21000)
    assert {n.id: generate.peer_config(c, lay, n)["ledger"]["history"]["enableHistoryDatabase"]
            for n in c.peers} == {"peer0.customs": False, "peer0.operator": True, "peer0.broker": False}


def test_every_orderer_listener_uses_tls_and_admin_needs_client_certs(net):
    c, lay = net
    [n] = c.orderers
    cfg = generate.orderer_config(c, lay, n)
    assert cfg["General"]["TLS"]["Enabled"] is True
    assert cfg["General"]["BootstrapMethod"] == "none"
    assert cfg["ChannelParticipation"]["Enabled"] is True
    assert cfg["Admin"]["TLS"]["Enabled"] is True
    assert cfg["Admin"]["TLS"]["ClientAuthRequired"] is True
    assert cfg["Admin"]["ListenAddress"] == f"127.0.0.1:{n.admin_port}"
    assert cfg["Operations"]["TLS"]["Enabled"] is True


def test_peers_ping_their_deliver_stream_as_often_as_the_orderer_permits(net):
    """A peer must notice a deliver connection the orderer dropped during a partition within seconds
    (tests/integration/test_multihost.py); the orderer must not refuse those pings as too frequent."""
    c, lay = net
    seconds = lambda text: int(text.rstrip("s"))  # noqa: E731
    [o] = c.orderers
    orderer_min = seconds(generate.orderer_config(c, lay, o)["General"]["Keepalive"]["ServerMinInterval"])
    for n in c.peers:
        ka = generate.peer_config(c, lay, n)["peer"]["keepalive"]["deliveryClient"]
        assert orderer_min <= seconds(ka["interval"]) <= 10 and seconds(ka["timeout"]) <= 20


def test_configtx_policies_as_declared(net):
    c, lay = net
    initialise(c, lay)
    profile = founding.configtx(c, lay, founding.definitions(c, lay))["Profiles"]["IPLedgerChannel"]
    assert profile["Policies"]["Admins"]["Rule"] == "MAJORITY Admins"
    assert profile["Application"]["Policies"]["Admins"]["Rule"] == "AND('CustomsMSP.admin','OperatorMSP.admin')"
    assert profile["Application"]["Policies"]["LifecycleEndorsement"]["Rule"] == \
        "AND('CustomsMSP.peer','OperatorMSP.peer')"
    assert profile["Orderer"]["Policies"]["Admins"]["Rule"] == \
        "AND('OrdererMSP.admin',AND('CustomsMSP.admin','OperatorMSP.admin'))"
    orgs = {o["Name"]: o for o in profile["Application"]["Organizations"]}
    assert set(orgs) == {"CustomsMSP", "OperatorMSP", "BrokerMSP"}
    assert orgs["CustomsMSP"]["Policies"]["Admins"]["Rule"] == "OR('CustomsMSP.admin')"
    assert orgs["OperatorMSP"]["AnchorPeers"] == [{"Host": "127.0.0.1", "Port": 21020}]


# --------------------------------------------------------------- with Fabric's tools

def _config_from_block(path: Path) -> configtx_pb2.Config:
    block = common_pb2.Block.FromString(path.read_bytes())
    env = common_pb2.Envelope.FromString(block.data.data[0])
    payload = common_pb2.Payload.FromString(env.payload)
    return configtx_pb2.ConfigEnvelope.FromString(payload.data).config


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    from ipledger.network.org import binaries
    if binaries.missing():
        pytest.fail("Fabric binaries missing: run 'ipledger fabric install'")
    c = consortium.load(base_port=21000)
    lay = Layout(tmp_path_factory.mktemp("gen") / "state")
    generate.generate(c, lay, log=lambda *_: None)
    return c, lay


@pytest.mark.fabric
def test_genesis_block_holds_three_application_orgs_and_the_orderer_org(generated):
    c, lay = generated
    config = _config_from_block(lay.genesis_block)
    groups = config.channel_group.groups
    assert set(groups["Application"].groups) == {"CustomsMSP", "OperatorMSP", "BrokerMSP"}
    assert set(groups["Orderer"].groups) == {"OrdererMSP"}
    s = founding.summary(lay.genesis_block.read_bytes())
    assert s["application_policies"]["Admins"] == "AND('CustomsMSP.admin', 'OperatorMSP.admin')"
    assert s["application_policies"]["LifecycleEndorsement"] == "AND('CustomsMSP.peer', 'OperatorMSP.peer')"
    channel_admins = policies_pb2.ImplicitMetaPolicy.FromString(
        config.channel_group.policies["Admins"].policy.value)
    assert channel_admins.rule == policies_pb2.ImplicitMetaPolicy.MAJORITY
    assert founding.check_policies(lay.genesis_block.read_bytes(), c) == []


@pytest.mark.fabric
def test_a_member_refuses_a_block_in_which_a_majority_changes_the_channel_without_customs(generated, tmp_path):
    """A founder hands out a block whose Application Admins and LifecycleEndorsement are majorities (the
    operator and the broker could then admit anyone or commit a contract definition without customs):
    every member's check names both policies, and 'network up' refuses the block before joining."""
    from ipledger.network.org import definition as definition_mod
    c, lay = generated
    block = _forge_majority_block(c, lay, Layout(tmp_path / "forged"))
    problems = founding.check_policies(block, c)
    assert problems == [
        "the application policy Admins in the block is 'MAJORITY Admins', not "
        "\"AND('CustomsMSP.admin', 'OperatorMSP.admin')\"",
        "the application policy LifecycleEndorsement in the block is 'MAJORITY Endorsement', not "
        "\"AND('CustomsMSP.peer', 'OperatorMSP.peer')\""], problems
    own = definition_mod.load(lay.org_home(c.org("CustomsMSP")) / "definition.json")
    assert founding.check_own(block, own) == []           # its own definition is intact: not enough
    with pytest.raises(generate.GenerateError, match="MAJORITY Admins"):
        generate.check_block(lay, c.org("CustomsMSP"), block, channel=c)


@pytest.mark.fabric
def test_msp_trees_are_complete_and_keys_private(generated):
    c, lay = generated
    for org in c.all_orgs:
        msp = lay.org_msp(org)
        for sub in ("cacerts", "tlscacerts"):
            assert any((msp / sub).iterdir()), f"{org.msp_id} {sub} empty"
        node_ous = yaml.safe_load((msp / "config.yaml").read_text())["NodeOUs"]
        assert node_ous["Enable"] is True and node_ous["AdminOUIdentifier"]
        users = ["Admin"] if org.is_orderer else ["Admin", "User1"]
        for user in users:
            key = next((lay.user_msp(org, user) / "keystore").iterdir())
            assert stat.S_IMODE(key.stat().st_mode) == 0o600
    for n in c.nodes:
        assert any((lay.node_msp(n) / "signcerts").iterdir())
        for f in ("server.crt", "server.key", "ca.crt"):
            assert (lay.node_tls(n) / f).is_file()
        assert stat.S_IMODE((lay.node_tls(n) / "server.key").stat().st_mode) == 0o600
        assert (lay.node_dir(n) / ("core.yaml" if n.kind == "peer" else "orderer.yaml")).is_file()
    assert stat.S_IMODE(lay.root.stat().st_mode) == 0o700


@pytest.mark.fabric
def test_generating_twice_is_refused(generated):
    c, lay = generated
    with pytest.raises(generate.GenerateError, match="already holds a generated network"):
        generate.generate(c, lay, log=lambda *_: None)


# --------------------------------------------------------------- BFT: consenters run by the members

@pytest.fixture(scope="module")
def bft(tmp_path_factory):
    from ipledger.network.org import binaries
    if binaries.missing():
        pytest.fail("Fabric binaries missing: run 'ipledger fabric install'")
    c = consortium.load(consortium.DEFAULT_FILE.with_name("consortium-bft.yaml"), base_port=23000)
    lay = Layout(tmp_path_factory.mktemp("bft") / "state")
    generate.generate(c, lay, log=lambda *_: None)  # each organisation checks the block too
    return c, lay


def test_a_members_orderer_is_administered_by_that_member_only():
    c = consortium.load(consortium.DEFAULT_FILE.with_name("consortium-bft.yaml"), base_port=23000)
    lay = Layout(Path("/nonexistent/state"))
    for n in c.orderers:
        cfg = generate.orderer_config(c, lay, n)
        assert cfg["Admin"]["TLS"]["ClientRootCAs"] == [str(lay.admin_tls_ca(n.org))]
        assert cfg["General"]["LocalMSPID"] == n.org.msp_id
        assert cfg["Consensus"]["WALDir"].endswith("smartbft/wal")


@pytest.mark.fabric
def test_bft_genesis_block_maps_four_consenters_to_their_organisations(bft):
    c, lay = bft
    s = founding.summary(lay.genesis_block.read_bytes())
    assert s["consensus"] == "BFT"
    assert set(s["orderer_orgs"]) == {"CustomsMSP", "OperatorMSP", "BrokerMSP"}
    assert set(s["application_orgs"]) == {"CustomsMSP", "OperatorMSP", "BrokerMSP"}
    assert [(cs["id"], cs["msp_id"], cs["address"]) for cs in s["consenters"]] == [
        (i, n.org.msp_id, n.address) for i, n in enumerate(c.orderers, start=1)]
    for n, cs in zip(c.orderers, s["consenters"]):
        [signcert] = (lay.node_msp(n) / "signcerts").iterdir()
        assert cs["identity_sha256"] == founding.fingerprint(signcert.read_text())
        assert cs["tls_cert_sha256"] == founding.fingerprint((lay.node_tls(n) / "server.crt").read_text())
    assert s["orderer_orgs"]["CustomsMSP"]["endpoints"] == [n.address for n in c.org("CustomsMSP").orderers]
    assert "BFT, 4 consenter(s)" in "\n".join(founding.format_summary(s))


@pytest.mark.fabric
def test_a_member_refuses_a_block_where_its_consenter_signs_with_another_identity(bft, tmp_path):
    """The founder swaps the broker's consenter identity for the operator's: the broker's check fails."""
    from ipledger.network.org import definition as definition_mod
    c, lay = bft
    own = definition_mod.load(lay.org_home(c.org("BrokerMSP")) / "definition.json")
    assert founding.check_own(lay.genesis_block.read_bytes(), own) == []
    operator = definition_mod.load(lay.org_home(c.org("OperatorMSP")) / "definition.json")
    forged = Layout(tmp_path / "forged")
    forged.public.mkdir(parents=True)
    for org in c.all_orgs:
        d = definition_mod.load(lay.definition_file(org.msp_id))
        if org.msp_id == "BrokerMSP":
            d.orderers[0]["identity_cert"] = operator.orderers[0]["identity_cert"]
        d.save(forged.definition_file(org.msp_id))
    # the forged definition still loads for configtxgen's purposes, not for the broker's check
    import json
    raw = json.loads(forged.definition_file("BrokerMSP").read_text())
    assert raw["orderers"][0]["identity_cert"] == operator.orderers[0]["identity_cert"]
    defs = {o.msp_id: definition_mod.Definition(**{k: v for k, v in json.loads(
        forged.definition_file(o.msp_id).read_text()).items() if k != "format"}) for o in c.all_orgs}
    founding.genesis_block(c, forged, defs, log=lambda *_: None)   # definitions(), which would refuse it, skipped
    problems = founding.check_own(forged.genesis_block.read_bytes(), own)
    assert any("another signing identity" in p for p in problems), problems


@pytest.mark.fabric
def test_a_member_refuses_a_block_with_a_weaker_block_validation_or_its_orderer_admins_changed(bft):
    """A founder could hand out a block in which fewer consenters make a block valid, or in which the
    broker's ordering admins are customs' (2 of 3 votes on the ordering service): the broker refuses."""
    import copy
    from ipledger.network.org import definition as definition_mod
    c, lay = bft
    own = definition_mod.load(lay.org_home(c.org("BrokerMSP")) / "definition.json")
    s = founding.summary(lay.genesis_block.read_bytes())
    assert founding.check_summary(s, own) == []
    assert s["block_validation"]["n_out_of"] == founding.bft_quorum(4) == 3

    weaker = copy.deepcopy(s)
    weaker["block_validation"]["n_out_of"] = 2
    assert any("block validation policy" in p for p in founding.check_summary(weaker, own))
    fewer = copy.deepcopy(s)
    fewer["block_validation"]["identities"] = fewer["block_validation"]["identities"][:3]
    assert any("block validation policy" in p for p in founding.check_summary(fewer, own))
    captured = copy.deepcopy(s)
    captured["orderer_orgs"]["BrokerMSP"]["policies"]["Admins"] = "OR('CustomsMSP.admin')"
    assert any("Admins policy as an ordering organisation" in p for p in founding.check_summary(captured, own))


def test_bft_quorum_is_fabrics():
    # common/policies/bft.go: ceil((n + f + 1) / 2), f = (n - 1) / 3
    assert [founding.bft_quorum(n) for n in (1, 4, 5, 7, 10)] == [1, 3, 4, 5, 7]


# --------------------------------------------------------------- before joining: the channel's policies

def _forge_majority_block(c, lay, into: Layout) -> bytes:
    """The genesis block a founder would build with Fabric's majorities on the application group."""
    from ipledger.network.org import definition as definition_mod
    into.public.mkdir(parents=True)
    for org in c.all_orgs:
        definition_mod.load(lay.definition_file(org.msp_id)).save(into.definition_file(org.msp_id))
    honest = founding.channel_policies

    def majorities(cc):
        p = honest(cc)
        return {**p, "application": {**p["application"], "Admins": {"Type": "ImplicitMeta", "Rule": "MAJORITY Admins"},
                                     "LifecycleEndorsement": {"Type": "ImplicitMeta", "Rule": "MAJORITY Endorsement"}}}
    founding.channel_policies = majorities
    try:
        founding.genesis_block(c, into, founding.definitions(c, into), log=lambda *_: None)
    finally:
        founding.channel_policies = honest
    return into.genesis_block.read_bytes()


@pytest.mark.fabric
def test_network_up_checks_the_channels_policies_before_joining_and_not_after(tmp_path):
    """``network up`` (Nodes.check_genesis) refuses a genesis block with majority policies before an
    organisation first joins; a block it accepted is recorded and not re-checked; a channel joined with an
    earlier ipledger (its native ledger exists) keeps starting with the policies it was founded with."""
    from ipledger.network.errors import NetworkError
    from ipledger.network.org.nodes import Nodes
    c = consortium.load(base_port=21000)
    lay = Layout(tmp_path / "state")
    generate.generate(c, lay, log=lambda *_: None)
    honest = lay.genesis_block.read_bytes()
    forged = _forge_majority_block(c, lay, Layout(tmp_path / "forged"))
    net = Nodes(c, lay, "native")

    lay.genesis_block.write_bytes(forged)
    with pytest.raises(NetworkError, match="the application policy Admins in the block is 'MAJORITY Admins'"):
        net.check_genesis(log=lambda *_: None)
    assert not any(net.accepted_file(o).exists() for o in c.orgs)

    lay.genesis_block.write_bytes(honest)
    assert {o.msp_id for o in c.orgs} <= net.check_genesis(log=lambda *_: None)   # each joins for the first time
    assert all(net.accepted_file(o).exists() for o in c.orgs)
    assert net.check_genesis(log=lambda *_: None) == set()                      # …and then never again

    # a channel founded earlier with majorities, already joined by each organisation's native nodes with an
    # ipledger that recorded no digest (one recorded decides alone: a block other than the accepted one is checked)
    lay.genesis_block.write_bytes(forged)
    with pytest.raises(NetworkError, match="refuses the genesis block"):
        net.check_genesis(log=lambda *_: None)
    for o in c.all_orgs:
        net.accepted_file(o).unlink()
    for n in c.peers:
        (lay.data_dir(n) / "ledgersData" / "chains" / "chains" / c.channel).mkdir(parents=True)
    [orderer] = c.orderers
    (lay.data_dir(orderer) / "ledger" / "chains" / c.channel).mkdir(parents=True)
    net.check_genesis(log=lambda *_: None)
    # an organisation whose nodes have not joined yet still checks them
    (lay.data_dir(c.peers[0]) / "ledgersData" / "chains" / "chains" / c.channel).rmdir()
    with pytest.raises(NetworkError, match="CustomsMSP refuses the genesis block"):
        net.check_genesis(log=lambda *_: None)


@pytest.mark.fabric
def test_network_up_refuses_a_shared_channel_with_a_member_the_consortium_file_does_not_name(tmp_path):
    from ipledger.network.errors import NetworkError
    from ipledger.network.org.nodes import Nodes
    c = consortium.load(base_port=21000)
    lay = Layout(tmp_path / "state")
    generate.generate(c, lay, log=lambda *_: None)
    without_broker = consortium.without_org(c, "BrokerMSP")
    with pytest.raises(NetworkError, match="puts BrokerMSP on channel 'inward-processing'"):
        Nodes(without_broker, lay, "native").check_genesis(log=lambda *_: None)


@pytest.mark.fabric
def test_channel_inspect_shows_the_policy_problems_of_a_block(generated, tmp_path, capsys):
    from ipledger.network.cli import main
    c, lay = generated
    assert founding.channel_of(lay.genesis_block.read_bytes()) == "inward-processing"
    assert main(["--state-dir", str(lay.root), "channel", "inspect", "--org", "CustomsMSP"]) == 0
    assert "the channel's configuration is the one the consortium file and the definitions give" in \
        capsys.readouterr().out
    forged = tmp_path / "forged.block"
    forged.write_bytes(_forge_majority_block(c, lay, Layout(tmp_path / "forged")))
    assert main(["--state-dir", str(lay.root), "channel", "inspect", "--org", "CustomsMSP", "--block", str(forged)]) == 1
    out = capsys.readouterr().out
    assert "CustomsMSP: REFUSE this block:" in out and "the application policy Admins in the block is 'MAJORITY Admins'" in out


def _with_config(block_bytes: bytes, change) -> bytes:
    """The block with ``change(config)`` applied to its channel configuration (what a founder could hand out)."""
    block = common_pb2.Block.FromString(block_bytes)
    env = common_pb2.Envelope.FromString(block.data.data[0])
    payload = common_pb2.Payload.FromString(env.payload)
    cenv = configtx_pb2.ConfigEnvelope.FromString(payload.data)
    change(cenv.config)
    payload.data = cenv.SerializeToString()
    env.payload = payload.SerializeToString()
    block.data.data[0] = env.SerializeToString()
    return block.SerializeToString()


@pytest.mark.fabric
def test_a_member_refuses_a_block_whose_modification_policies_or_ordering_organisations_differ(generated, tmp_path):
    """The policies' texts can be right while who may modify an element is not: customs' MSP made modifiable by
    the operator's admin alone would let the operator swap customs' CAs and sign as customs. An ordering
    organisation the consortium file does not name would read every block. Both pass every other check;
    the rebuilt configuration catches them, and 'network up' refuses before joining."""
    from ipledger.network.errors import NetworkError
    from ipledger.network.org.nodes import Nodes
    c, lay = generated
    honest = lay.genesis_block.read_bytes()
    assert founding.check_rebuilt(honest, c, lay) == []

    def operator_owns_customs_msp(config):
        config.channel_group.groups["Application"].groups["CustomsMSP"].values["MSP"].mod_policy = \
            "/Channel/Application/OperatorMSP/Admins"
    forged = _with_config(honest, operator_owns_customs_msp)
    assert founding.check_policies(forged, c) == [] and founding.check_members(forged, [o.msp_id for o in c.orgs]) == []
    assert founding.check_rebuilt(forged, c, lay) == [
        "the block is not the one the consortium file and the definitions give: mod_policy of value "
        "/Channel/Application/CustomsMSP/MSP: Admins → /Channel/Application/OperatorMSP/Admins"]

    def spy_orders(config):
        orderer = config.channel_group.groups["Orderer"]
        orderer.groups["SpyMSP"].CopyFrom(orderer.groups["OrdererMSP"])
    spied = founding.check_rebuilt(_with_config(honest, spy_orders), c, lay)
    assert spied and spied[0].endswith("add orderer organisation SpyMSP"), spied

    state = tmp_path / "state"
    import shutil
    shutil.copytree(lay.root, state)
    copy = Layout(state)
    copy.genesis_block.write_bytes(forged)
    for org in c.all_orgs:
        for f in (copy.org_home(org) / "accepted-genesis").glob("*"):
            f.unlink()
    with pytest.raises(NetworkError, match="mod_policy of value /Channel/Application/CustomsMSP/MSP"):
        Nodes(c, copy, "native").check_genesis(log=lambda *_: None)
