"""`network up` on a peer without a ledger of a channel its organisation joined before (a disk lost or replaced)
says what catching up takes; a first join says nothing more than that it joined. The real recovery:
tests/integration/test_faults.py::test_operator_peer_that_lost_its_disk_is_rebuilt_from_the_channel."""
from __future__ import annotations

from ipledger.network import consortium
from ipledger.network.layout import Layout
from ipledger.network.org.nodes import Nodes


def _joining(tmp_path, monkeypatch) -> tuple[Nodes, list]:
    net = Nodes(consortium.load(base_port=21000), Layout(tmp_path / "state"), "native")
    joined = []
    monkeypatch.setattr(Nodes, "peer_height", lambda self, n: None)        # no peer has a ledger of the channel
    monkeypatch.setattr(Nodes, "_peer_join", lambda self, n: joined.append(n.id))
    return net, joined


def test_a_peer_of_an_organisation_that_joined_before_is_told_what_catching_up_takes(tmp_path, monkeypatch):
    net, joined = _joining(tmp_path, monkeypatch)
    lines: list[str] = []
    peers = [o.peers[0] for o in net.consortium.orgs]
    net._join_peers(peers, lines.append, joined_before={"OperatorMSP"})
    assert joined == [p.id for p in peers]
    notes = [line for line in lines if "had no ledger" in line]
    assert len(notes) == 1, lines
    assert "peer0.operator" in notes[0] and "which OperatorMSP joined before" in notes[0]
    assert "ipledger chaincode deploy" in notes[0] and "pullRetryThreshold" in notes[0]


def test_a_first_join_gets_no_note(tmp_path, monkeypatch):
    net, joined = _joining(tmp_path, monkeypatch)
    lines: list[str] = []
    net._join_peers([o.peers[0] for o in net.consortium.orgs], lines.append)
    assert len(joined) == 3 and len(lines) == 3 and not any("had no ledger" in line for line in lines), lines
