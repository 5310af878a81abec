"""What `network up` and `network status` read from a node's Prometheus metrics: the Raft leader gauge and the
number of peers gossip knows, for the consortium's channel only (network/org/nodes.py)."""
import pytest

from ipledger.network import consortium
from ipledger.network.layout import Layout
from ipledger.network.org.nodes import Nodes, channel_gauge

CHANNEL = consortium.load(base_port=21000).channel

# as a Fabric 3.1 orderer and peer print them: HELP/TYPE comments, other channels, other labels
EXPOSITION = f"""# HELP consensus_etcdraft_is_leader The leadership status of the current node: 1 if it is the leader else 0.
# TYPE consensus_etcdraft_is_leader gauge
consensus_etcdraft_is_leader{{channel="other-channel"}} 1
consensus_etcdraft_is_leader{{channel="{CHANNEL}"}} 0
consensus_etcdraft_is_leader_total{{channel="{CHANNEL}"}} 7
# HELP gossip_membership_total_peers_known Total known peers
# TYPE gossip_membership_total_peers_known gauge
gossip_membership_total_peers_known{{channel="{CHANNEL}"}} 2
gossip_membership_total_peers_known{{channel="other-channel"}} 5
ledger_blockchain_height{{channel="{CHANNEL}",peer="x"}} 12
"""


def test_a_gauge_is_read_for_the_channel_named_and_no_other():
    assert channel_gauge(EXPOSITION, "consensus_etcdraft_is_leader", CHANNEL) == 0
    assert channel_gauge(EXPOSITION, "consensus_etcdraft_is_leader", "other-channel") == 1
    assert channel_gauge(EXPOSITION, "gossip_membership_total_peers_known", CHANNEL) == 2
    assert channel_gauge(EXPOSITION, "ledger_blockchain_height", CHANNEL) == 12   # labels in any number


def test_a_gauge_not_reported_reads_zero():
    assert channel_gauge(EXPOSITION, "consensus_etcdraft_is_leader", "no-such-channel") == 0
    assert channel_gauge("", "gossip_membership_total_peers_known", CHANNEL) == 0
    assert channel_gauge(f'gossip_membership_total_peers_known{{channel="{CHANNEL}"}} NaN-ish',
                         "gossip_membership_total_peers_known", CHANNEL) == 0


@pytest.fixture
def nodes(tmp_path):
    c = consortium.load(base_port=21000)
    return Nodes(c, Layout(tmp_path / "state"), "native"), c


def test_raft_leader_and_gossip_count_from_each_node(nodes, monkeypatch):
    net, c = nodes
    orderer = next(n for n in c.nodes if n.kind == "orderer")
    peer = next(n for n in c.nodes if n.kind == "peer")
    leader = EXPOSITION.replace(f'is_leader{{channel="{CHANNEL}"}} 0', f'is_leader{{channel="{CHANNEL}"}} 1')
    answers = {orderer.id: EXPOSITION, peer.id: EXPOSITION}
    monkeypatch.setattr(Nodes, "metrics", lambda self, n: answers[n.id])
    assert net.raft_leader(orderer) is False
    assert net.gossip_peers_known(peer) == 2
    answers[orderer.id] = leader
    assert net.raft_leader(orderer) is True


def test_a_node_that_does_not_answer_is_no_leader_and_knows_nobody_yet(nodes, monkeypatch):
    net, c = nodes

    def refused(self, n):
        raise ConnectionRefusedError(111, "Connection refused")
    monkeypatch.setattr(Nodes, "metrics", refused)
    orderer = next(n for n in c.nodes if n.kind == "orderer")
    peer = next(n for n in c.nodes if n.kind == "peer")
    assert net.raft_leader(orderer) is False
    assert net.gossip_peers_known(peer) is None
