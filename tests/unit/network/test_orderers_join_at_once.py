"""A channel's orderers join it all at once (network/org/nodes.py ``Nodes._join_channel``): a BFT consenter answers
its join only once its chain has started, some seconds each — one after the other they took four times as long.
Every join is waited for; the orderers that could not join are named together, the others said joined."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ipledger.network import consortium as consortium_mod
from ipledger.network.errors import NetworkError
from ipledger.network.layout import Layout
from ipledger.network.org.nodes import Nodes

BFT_FILE = Path(consortium_mod.DEFAULT_FILE).with_name("consortium-bft.yaml")


@pytest.fixture
def bft(tmp_path, monkeypatch):
    c = consortium_mod.load(BFT_FILE, base_port=21000)
    lay = Layout((tmp_path / "state").resolve())
    lay.public.mkdir(parents=True)
    consortium_mod.save(c, lay.consortium_file)
    net = Nodes.open(lay.root)
    # every node this host's, none joined yet; what the joins need besides is not this test's
    monkeypatch.setattr(Nodes, "local_nodes", property(lambda self: list(self.consortium.nodes)))
    monkeypatch.setattr(Nodes, "orderer_joined", lambda self, n: False)
    monkeypatch.setattr(Nodes, "_orderers_hold_the_chain", lambda self, *a: None)
    monkeypatch.setattr(Nodes, "founding_orgs", lambda self: {o.msp_id for o in self.consortium.orgs})
    return net


def test_the_orderers_join_at_once_and_those_that_cannot_are_named(bft, monkeypatch):
    orderers = [n.id for n in bft.consortium.orderers]
    assert len(orderers) == 4
    together = threading.Barrier(len(orderers), timeout=10)   # broken unless all four joins run at the same time
    failing = set(orderers[1:3])

    def join(self, n):
        together.wait()
        if n.id in failing:
            raise NetworkError(f"osnadmin channel join failed for {n.id}")
    monkeypatch.setattr(Nodes, "_osnadmin_join", join)
    lines = []
    with pytest.raises(NetworkError) as refused:
        bft._join_channel(lines.append, timeout=5)
    assert all(orderer in str(refused.value) for orderer in failing), refused.value
    joined = [line for line in lines if "joined channel" in line]
    assert sorted(line.split()[0] for line in joined) == sorted(set(orderers) - failing)
