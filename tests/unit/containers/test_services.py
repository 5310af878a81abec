"""The containers' descriptions (network/org/containers/services.py), their compose form and the runtime
record (network/org/runtime.py): no engine needed."""
from pathlib import Path

import pytest
import yaml

from ipledger.network import consortium
from ipledger.network.org import generate
from ipledger.network.org import runtime
from ipledger.network.org.containers import compose, services
from ipledger.network.layout import Layout
from ipledger.network.errors import NetworkError
from ipledger.network.org.nodes import Nodes

TAGS = {"peer": "ipledger/peer:t", "orderer": "ipledger/orderer:t", "ccaas": "ipledger/ccaas:t",
        "gateway": "ipledger/gateway:t"}
CA_DIRS = ("ca", "tlsca", "admintlsca")


def binds(svc):
    return [m for m in svc.mounts if not m.volume]


def test_a_node_container_sees_its_own_node_directory_and_keys_read_only_and_its_ledger_on_a_volume(net):
    c, lay = net
    for node in c.nodes:
        svc = services.node_service(lay, node, TAGS[node.kind])
        own = lay.org_home(node.org)
        for m in binds(svc):
            assert m.read_only and m.source == m.target and Path(m.source).is_relative_to(own), m
            assert not any(Path(m.source).is_relative_to(lay.org_dir(node.org) / d) for d in CA_DIRS if d != "admintlsca")
            assert not Path(m.source).name == "priv_sk"
        assert str(lay.node_crypto(node)) in [m.source for m in binds(svc)]
        [vol] = [m for m in svc.mounts if m.volume]
        assert (vol.source, vol.target, vol.read_only) == (services.volume_name(lay, node), str(lay.data_dir(node)), False)
        assert svc.labels[f"{services.LABEL}.node"] == node.id and svc.org == node.org.msp_id
    orderer = c.orderers[0]
    admin_ca = [m.source for m in binds(services.node_service(lay, orderer, "x"))
                if "admintlsca" in m.source]
    assert admin_ca == [str(lay.admin_tls_ca(orderer.org))]    # the certificate, not its directory (key)


def test_the_peer_container_reads_a_core_yaml_naming_the_images_builder(net):
    c, lay = net
    peer = c.node("peer0.operator")
    d = services.write_container_config(lay, peer)
    core = yaml.safe_load((d / "core.yaml").read_text())
    generated = yaml.safe_load((lay.node_dir(peer) / "core.yaml").read_text())
    assert [b["path"] for b in core["chaincode"]["externalBuilders"]] == [services.IMAGE_BUILDER_DIR]
    core["chaincode"]["externalBuilders"] = generated["chaincode"]["externalBuilders"]
    assert core == generated                   # nothing else differs
    assert services.node_service(lay, peer, "x").environment["FABRIC_CFG_PATH"] == str(d)


def test_names_belong_to_the_state_directory(tmp_path, net):
    c, lay = net
    other = Layout(tmp_path / "elsewhere")
    peer = c.node("peer0.customs")
    assert services.container_name(lay, peer.id) != services.container_name(other, peer.id)
    assert services.volume_name(lay, peer) != services.volume_name(other, peer)


def test_a_state_directory_made_again_at_the_same_path_gets_other_names(tmp_path):
    """A run killed before its ``down --purge`` leaves volumes behind; a state directory made
    again at that path must not adopt them (its peers would start on a ledger made with other
    keys and never join the new channel)."""
    import shutil
    lay = Layout(tmp_path / "state")
    peer = consortium.load(base_port=21000).node("peer0.customs")
    first = services.ensure_scope(lay, recorded=False)
    assert services.ensure_scope(lay, recorded=False) == first == services.scope(lay)   # chosen once, then kept
    runtime.record(lay, "docker")
    assert services.ensure_scope(lay, recorded=True) == first
    assert services.volume_name(lay, peer) == f"ipledger-{first}-peer0.customs"
    shutil.rmtree(lay.root)
    assert services.ensure_scope(lay, recorded=False) != first


def test_a_state_that_ran_as_containers_before_the_scope_was_recorded_keeps_its_names(tmp_path):
    import hashlib
    lay = Layout(tmp_path / "state")
    runtime.record(lay, "docker")
    assert services.ensure_scope(lay, recorded=True) == hashlib.sha256(str(lay.root).encode()).hexdigest()[:8]
    services.scope_file(lay).write_text("../../x\n")
    with pytest.raises(NetworkError, match="containers-scope should hold 8 hexadecimal digits"):
        services.scope(lay)


def test_the_gateway_container_gets_its_client_identity_public_files_and_own_directory_only(net):
    c, lay = net
    org = c.org("BrokerMSP")
    svc = services.gateway_service(lay, org, "x", "127.0.0.1:8082", environ={"IPLEDGER_LIVE_FEED": "1"})
    assert {(m.source, m.read_only) for m in svc.mounts} == {
        (str(lay.public), True), (str(lay.user_dir(org, "User1")), True), (str(lay.gateway_dir(org)), False)}
    assert svc.environment == {"IPLEDGER_LIVE_FEED": "1"}
    assert svc.command[:2] == ["--state-dir", str(lay.root)] and "--org" in svc.command


def test_the_chaincode_service_listens_beside_its_organisations_first_peer(net):
    c, lay = net
    org = c.org("OperatorMSP")
    port = org.peers[0].port
    assert services.chaincode_service_addresses(org) == [f"127.0.0.1:{port + 3}", f"127.0.0.1:{port + 4}"]
    tls = lay.org_dir(org) / "chaincode"
    svc = services.chaincode_service(lay, org, "ipledger_1.0", "ipledger_1.0:abc", f"127.0.0.1:{port + 4}",
                                     "CustomsMSP", tls, "x")
    assert svc.environment["CHAINCODE_SERVER_ADDRESS"] == f"127.0.0.1:{port + 4}"
    assert svc.environment["CHAINCODE_ID"] == "ipledger_1.0:abc"
    assert svc.environment["CHAINCODE_CLIENT_CA_CERT_FILE"] == str(tls / "ca.crt")   # mutual TLS
    assert [(m.source, m.read_only) for m in svc.mounts] == [(str(tls), True)]
    assert svc.labels[f"{services.LABEL}.chaincode"] == "ipledger_1.0"
    # one service per package: two versions' services can run side by side during an upgrade
    other = services.chaincode_service(lay, org, "ipledger_1.1", "ipledger_1.1:def", f"127.0.0.1:{port + 3}",
                                       "CustomsMSP", tls, "x")
    assert other.name != svc.name


def test_the_chaincode_services_certificate_names_the_peers_host_and_is_issued_again_when_it_changes(net):
    from ipledger.network.org import identities
    c, lay = net
    org = c.org("OperatorMSP")
    ids = identities.OrgIdentities(lay.org_dir(org), org.msp_id, org.domain)
    d = ids.chaincode_service_tls()
    first, client = (d / "server.crt").read_bytes(), (d / "client.crt").read_bytes()
    assert ids.chaincode_service_tls() == d and (d / "server.crt").read_bytes() == first   # kept
    ids.chaincode_service_tls(["198.18.0.7"])
    server = identities.load_cert(d / "server.crt")
    assert identities._names_cover(server, ["198.18.0.7", "127.0.0.1", "localhost"])
    assert (d / "client.crt").read_bytes() == client           # the peers' pair (in the packages) stays
    assert oct((d / "server.key").stat().st_mode & 0o777) == "0o600"


def test_the_compose_file_names_the_same_containers_and_volumes_as_the_runtime(net):
    c, lay = net
    org = c.org("CustomsMSP")
    svcs = compose.org_services(lay, org, TAGS, chaincode_services=[("ipledger_1.0", "ipledger_1.0:abc", "127.0.0.1:21013")],
                                customs_msp="CustomsMSP", gateway_bind="127.0.0.1:8080")
    doc = yaml.safe_load(compose.render(compose.document(svcs, TAGS["peer"]), "header"))
    assert doc["version"] == "3.8"
    names = {s["container_name"] for s in doc["services"].values()}
    assert names == {services.container_name(lay, "peer0.customs"),
                     services.chaincode_service_name(lay, org, "ipledger_1.0"), services.gateway_name(lay, org)}
    peer = doc["services"]["peer0.customs"]
    assert peer["network_mode"] == "host" and peer["image"] == TAGS["peer"]
    vol = services.volume_name(lay, c.node("peer0.customs"))
    assert doc["volumes"] == {vol: {"name": vol, "labels": {f"{services.LABEL}.scope": services.scope(lay),
                                                            f"{services.LABEL}.org": "CustomsMSP",
                                                            f"{services.LABEL}.node": "peer0.customs"}}}
    assert [v for v in peer["volumes"] if v["type"] == "volume"] == [
        {"type": "volume", "source": vol, "target": str(lay.data_dir(c.node("peer0.customs")))}]
    assert all(v.get("read_only") for v in peer["volumes"] if v["type"] == "bind")
    # without a package or a bind address: the nodes only
    assert [s.role for s in compose.org_services(lay, org, TAGS)] == ["peer"]


def customs_services(c, lay):
    return compose.org_services(lay, c.org("CustomsMSP"), TAGS,
                                chaincode_services=[("ipledger_1.0", "ipledger_1.0:abc", "127.0.0.1:21013")],
                                customs_msp="CustomsMSP", gateway_bind="127.0.0.1:8080")


def test_every_container_runs_without_capabilities_and_cannot_gain_any(net):
    c, lay = net
    doc = compose.document(customs_services(c, lay), TAGS["peer"])
    assert sorted(doc["services"]) == ["gateway.customs", "ipledger_1.0.customs", "peer0.customs"]
    for key, entry in doc["services"].items():
        assert entry["cap_drop"] == ["ALL"] and entry["security_opt"] == ["no-new-privileges:true"], key
        assert "cap_add" not in entry, key


def test_as_root_every_container_runs_as_root_and_as_a_user_every_container_runs_as_that_user(net, monkeypatch):
    c, lay = net
    monkeypatch.setattr(services.os, "getuid", lambda: 0)
    assert all(svc.user is None for svc in customs_services(c, lay))
    assert services.volume_owner(services.node_service(lay, c.node("peer0.customs"), "x"), "sh-image") is None
    monkeypatch.setattr(services.os, "getuid", lambda: 1234)
    monkeypatch.setattr(services.os, "getgid", lambda: 99)
    svcs = customs_services(c, lay)
    assert [svc.user for svc in svcs] == ["1234:99"] * 3     # the peer as well as the chaincode service and gateway


def test_a_users_ledger_volume_is_given_to_that_user_before_its_node_starts(net, monkeypatch):
    c, lay = net
    monkeypatch.setattr(services.os, "getuid", lambda: 1234)
    monkeypatch.setattr(services.os, "getgid", lambda: 99)
    peer = c.node("peer0.customs")
    svc = services.node_service(lay, peer, "x")
    owner = services.volume_owner(svc, TAGS["peer"])
    data = str(lay.data_dir(peer))
    # root with two capabilities, no network, the volume and nothing else: no key of the organisation
    assert (owner.user, owner.cap_add, owner.network_mode) == ("0:0", ("CHOWN", "DAC_READ_SEARCH"), "none")
    assert owner.mounts == [services.Mount(data, services.volume_name(lay, peer), read_only=False, volume=True)]
    assert owner.command == ["sh", "-c", f'{{ [ "$(stat -c %u:%g {data})" = "1234:99" ] || chown -R 1234:99 {data}; }}']
    assert services.volume_owner(services.gateway_service(lay, c.org("CustomsMSP"), "x", "127.0.0.1:8080"),
                                 TAGS["peer"]) is None
    # an orderer's image may be FROM scratch (no shell): its owner runs in the peer image, built on the base
    orderer = services.node_service(lay, c.orderers[0], TAGS["orderer"])
    assert services.volume_owner(orderer, TAGS["peer"]).image == TAGS["peer"]
    doc = compose.document(customs_services(c, lay), TAGS["peer"])
    entry = doc["services"]["peer0.customs-volume-owner"]
    assert entry["image"] == TAGS["peer"] and entry["restart"] == "no" and entry["cap_add"] == ["CHOWN", "DAC_READ_SEARCH"] and entry["user"] == "0:0"
    assert entry["network_mode"] == "none" and entry["cap_drop"] == ["ALL"]
    assert doc["services"]["peer0.customs"]["depends_on"] == {
        "peer0.customs-volume-owner": {"condition": "service_completed_successfully"}}


def test_the_runtime_is_recorded_and_another_one_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(runtime.ENV, raising=False)
    lay = Layout(tmp_path / "state")
    assert runtime.choose(lay, None) == "native"
    assert runtime.choose(lay, "docker") == "docker"             # nothing recorded yet
    runtime.record(lay, "docker")
    assert runtime.choose(lay, None) == "docker"
    with pytest.raises(runtime.RuntimeChoiceError, match="runs its nodes as docker.*down --purge"):
        runtime.choose(lay, "native")
    monkeypatch.setenv(runtime.ENV, "native")
    with pytest.raises(runtime.RuntimeChoiceError):
        runtime.choose(lay, None)
    with pytest.raises(runtime.RuntimeChoiceError, match="unknown runtime 'podman'"):
        runtime.choose(Layout(tmp_path / "other"), "podman")
    with pytest.raises(NetworkError, match="runs its nodes as docker"):
        Nodes.open(lay.root, runtime="native")


def test_the_chaincode_services_port_must_be_free(tmp_path):
    text = consortium.DEFAULT_FILE.read_text()
    raw = yaml.safe_load(text)
    raw["ports_per_node"] = 3
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    net = Nodes(consortium.load(path, base_port=21000), Layout(tmp_path / "state"), "docker")
    with pytest.raises(NetworkError, match="CustomsMSP.s chaincode service would listen on 127.0.0.1:21006, which peer0.operator uses.*5 ports"):
        services.check_host_ports(net.consortium, net.local_nodes)
    ok = Nodes(consortium.load(base_port=21000), Layout(tmp_path / "state"), "docker")
    services.check_host_ports(ok.consortium, ok.local_nodes)


def test_a_state_directory_made_before_the_record_runs_natively(tmp_path, monkeypatch):
    """Its ledgers are in its nodes' data directories: docker would start empty nodes beside them."""
    monkeypatch.delenv(runtime.ENV, raising=False)
    lay = Layout(tmp_path / "state")
    ledger = lay.root / "operator" / "nodes" / "peer0.operator" / "data" / "ledgersData"
    ledger.mkdir(parents=True)
    assert runtime.choose(lay, None) == "native"
    with pytest.raises(runtime.RuntimeChoiceError, match="runs its nodes as native"):
        runtime.choose(lay, "docker")


def test_containers_refuse_nodes_in_network_namespaces(tmp_path):
    raw = yaml.safe_load(consortium.DEFAULT_FILE.read_text())
    raw["organisations"][0]["peers"] = [{"name": "peer0", "netns": "ns-customs", "host": "198.18.0.7"}]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    lay = Layout(tmp_path / "state")
    c = consortium.load(path, base_port=21000)
    generate.init_org(c, lay, c.org("CustomsMSP"), log=lambda *_: None)
    with pytest.raises(NetworkError, match="peer0.customs name a network namespace"):
        net = Nodes(c, lay, "docker")
        services.check_host_ports(net.consortium, net.local_nodes)


def test_gateway_tls_files_are_given_as_absolute_paths(tmp_path, monkeypatch):
    from ipledger.gateway.tls import TLSOptions
    monkeypatch.chdir(tmp_path)
    tls = TLSOptions("server.crt", "server.key", ("consortium", "OperatorMSP=cas/op.pem", "extra.pem"), "required")
    assert tls.files() == [str(tmp_path / "server.crt"), str(tmp_path / "server.key"), str(tmp_path / "cas/op.pem"),
                           str(tmp_path / "extra.pem")]
