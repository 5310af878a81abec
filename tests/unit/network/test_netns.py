"""The per-node ``netns`` field (test/lab feature): validation, the saved description, the start command,
and what a node's ``host`` becomes in the generated files. No Fabric, no namespaces needed."""

import pytest
import yaml

from ipledger.network import consortium
from ipledger.network.org import generate
from ipledger.network.org import processes
from ipledger.network.consortium import ConsortiumError
from ipledger.network.layout import Layout

HOSTS = {"orderer0.orderer": "198.18.7.10", "peer0.customs": "198.18.7.11",
         "peer0.operator": "198.18.7.12", "peer0.broker": "198.18.7.13"}


def lab_raw(netns=True) -> dict:
    """The default consortium with every node at its own address (and namespace), port 7050/7051."""
    raw = consortium.to_dict(consortium.load())
    groups = [(raw["orderer"]["nodes"], "orderer")] + [(o["peers"], o["name"]) for o in raw["organisations"]]
    for specs, org in groups:
        for spec in specs:
            node_id = f"{spec['name']}.{org}"
            spec.update(host=HOSTS[node_id], port=7050 if org == "orderer" else 7051)
            if netns:
                spec["netns"] = f"ipl-test-{node_id}"
    return raw


def test_nodes_without_netns_run_in_the_hosts_own_stack():
    c = consortium.load()
    assert all(n.netns is None for n in c.nodes)
    # the saved description does not grow a field production does not use
    assert all("netns" not in spec for o in consortium.to_dict(c)["organisations"] for spec in o["peers"])


def test_netns_per_node_is_read_and_saved():
    c = consortium.parse(lab_raw())
    op = c.node("peer0.operator")
    assert (op.host, op.port, op.netns) == ("198.18.7.12", 7051, "ipl-test-peer0.operator")
    # same ports on every host is fine: each has its own address
    assert {n.port for n in c.peers} == {7051}
    again = consortium.parse(yaml.safe_load(yaml.safe_dump(consortium.to_dict(c))))
    assert [(n.id, n.address, n.netns) for n in again.nodes] == [(n.id, n.address, n.netns) for n in c.nodes]


@pytest.mark.parametrize("bad", ["", "a/b", "..", "-x", "x" * 64, 7, ["ns"], "ns name"])
def test_invalid_netns_names_are_refused(bad):
    raw = lab_raw()
    raw["organisations"][1]["peers"][0]["netns"] = bad
    with pytest.raises(ConsortiumError, match=r"OperatorMSP peer0: netns .* is not a network namespace name"):
        consortium.parse(raw)


def test_nodes_sharing_a_host_must_share_its_namespace():
    raw = lab_raw()
    raw["organisations"][2]["peers"][0].update(host="198.18.7.12", port=7061)  # the operator's address
    with pytest.raises(ConsortiumError, match=r"peer0.operator and peer0.broker share host 198.18.7.12"):
        consortium.parse(raw)
    raw["organisations"][2]["peers"][0]["netns"] = "ipl-test-peer0.operator"
    assert consortium.parse(raw).node("peer0.broker").netns == "ipl-test-peer0.operator"


def test_an_added_org_joins_the_host_and_namespace_of_the_first_peer():
    c = consortium.with_org(consortium.parse(lab_raw()), "AuditMSP")
    audit = c.node("peer0.audit")
    assert (audit.host, audit.netns) == ("198.18.7.11", "ipl-test-peer0.customs")
    assert audit.port == 7061


# ----------------------------------------------------------------------------------------- start command

def test_start_command_without_netns_is_the_node_itself(monkeypatch):
    monkeypatch.setattr(processes.binaries, "binary", lambda cmd: f"/opt/fabric/bin/{cmd}")
    c = consortium.load()
    assert processes.command(c.node("peer0.customs")) == ["/opt/fabric/bin/peer", "node", "start"]
    assert processes.command(c.node("orderer0.orderer")) == ["/opt/fabric/bin/orderer"]


def test_start_command_with_netns_enters_the_namespace(monkeypatch, tmp_path):
    monkeypatch.setattr(processes.binaries, "binary", lambda cmd: f"/opt/fabric/bin/{cmd}")
    monkeypatch.setattr(processes.shutil, "which", lambda cmd: "/usr/sbin/ip" if cmd == "ip" else None)
    monkeypatch.setattr(processes.os, "geteuid", lambda: 0)
    monkeypatch.setattr(processes, "NETNS_DIR", tmp_path)
    node = consortium.parse(lab_raw()).node("peer0.operator")
    (tmp_path / node.netns).touch()
    assert processes.command(node) == ["/usr/sbin/ip", "netns", "exec", "ipl-test-peer0.operator",
                                       "/opt/fabric/bin/peer", "node", "start"]


def test_start_command_names_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.setattr(processes.binaries, "binary", lambda cmd: f"/opt/fabric/bin/{cmd}")
    monkeypatch.setattr(processes, "NETNS_DIR", tmp_path)
    monkeypatch.setattr(processes.os, "geteuid", lambda: 0)
    node = consortium.parse(lab_raw()).node("peer0.operator")
    monkeypatch.setattr(processes.shutil, "which", lambda cmd: None)
    with pytest.raises(processes.StartError, match="'ip' command is not installed"):
        processes.command(node)
    monkeypatch.setattr(processes.shutil, "which", lambda cmd: "/usr/sbin/ip")
    with pytest.raises(processes.StartError, match=r"namespace 'ipl-test-peer0.operator' does not exist .*"
                                                   r"ip netns add ipl-test-peer0.operator.*198.18.7.12"):
        processes.command(node)
    (tmp_path / node.netns).touch()
    monkeypatch.setattr(processes.os, "geteuid", lambda: 1000)
    with pytest.raises(processes.StartError, match="needs root"):
        processes.command(node)


# ------------------------------------------------------------------------------------ generated files

def test_every_address_in_the_generated_files_is_the_nodes_host(tmp_path):
    from cryptography import x509

    from ipledger.network.channel import founding

    from .test_generate import initialise
    c, lay = consortium.parse(lab_raw()), Layout(tmp_path / "state")
    initialise(c, lay)
    for n in c.nodes:
        cert = x509.load_pem_x509_certificate((lay.node_tls(n) / "server.crt").read_bytes())
        sans = [str(v) for v in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                .get_values_for_type(x509.IPAddress)]
        assert n.host in sans, "the TLS certificate must name the address clients dial"
    for n in c.peers:
        peer = generate.peer_config(c, lay, n)
        p = peer["peer"]
        assert p["listenAddress"] == p["address"] == f"{n.host}:7051"
        # the chaincode the peer launches runs in the peer's namespace and dials this address
        assert p["chaincodeListenAddress"] == p["chaincodeAddress"] == f"{n.host}:7052"
        assert p["gossip"]["endpoint"] == p["gossip"]["externalEndpoint"] == f"{n.host}:7051"
        assert peer["operations"]["listenAddress"] == f"{n.host}:7053"
    [o] = c.orderers
    orderer = generate.orderer_config(c, lay, o)
    assert (orderer["General"]["ListenAddress"], orderer["General"]["ListenPort"]) == ("198.18.7.10", 7050)
    assert orderer["Admin"]["ListenAddress"] == "198.18.7.10:7051"
    assert orderer["Operations"]["ListenAddress"] == "198.18.7.10:7052"
    profile = founding.configtx(c, lay, founding.definitions(c, lay))["Profiles"]["IPLedgerChannel"]
    assert profile["Orderer"]["Organizations"][0]["OrdererEndpoints"] == ["198.18.7.10:7050"]
    assert [(x["Host"], x["Port"]) for x in profile["Orderer"]["EtcdRaft"]["Consenters"]] == [("198.18.7.10", 7050)]
    anchors = {org["Name"]: org["AnchorPeers"] for org in profile["Application"]["Organizations"]}
    assert anchors["OperatorMSP"] == [{"Host": "198.18.7.12", "Port": 7051}]
    # the namespace is how a node is started, not part of any Fabric file
    assert "ipl-test" not in yaml.safe_dump(peer) + yaml.safe_dump(orderer) + yaml.safe_dump(profile)


def test_a_node_keeps_its_temporary_files_in_its_own_directory(monkeypatch, tmp_path):
    # the peer writes each chaincode launch's chaincode.json (the chaincode's TLS key among it) to a temporary
    # directory: the node's own, 0700, emptied of what a killed run left — not a /tmp shared by every org
    import stat
    import sys
    import time

    lay = Layout(tmp_path / "state")
    node = consortium.load().node("peer0.operator")
    lay.node_dir(node).mkdir(parents=True)
    leftover = lay.node_dir(node) / "tmp" / "fabric-run123"
    leftover.mkdir(parents=True)
    (leftover / "chaincode.json").write_text("{}")
    seen = lay.node_dir(node) / "seen"
    monkeypatch.setattr(processes, "command", lambda _node: [
        sys.executable, "-c", f"import tempfile; open({str(seen)!r}, 'w').write(tempfile.gettempdir())"])
    processes.start(lay, node)
    deadline = time.monotonic() + 10
    while not (seen.exists() and seen.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    tmp = lay.node_dir(node) / "tmp"
    assert seen.read_text() == str(tmp)
    assert stat.S_IMODE(tmp.stat().st_mode) == 0o700
    assert not leftover.exists()
