"""A native node found stopped with its pid file still there stopped without ``network down`` (a crash, a kill, a
power loss): ``network up`` starts it again as always and says so; ``network down`` says it was not running."""
from __future__ import annotations

import subprocess

from ipledger.network import consortium as consortium_mod
from ipledger.network.layout import Layout
from ipledger.network.org import runtime as runtime_mod
from ipledger.network.org.nodes import Nodes


def native_nodes(tmp_path) -> Nodes:
    """This host's nodes of a generated state directory (a genesis block stand-in), none running."""
    lay = Layout((tmp_path / "state").resolve())
    lay.public.mkdir(parents=True)
    consortium_mod.save(consortium_mod.load(base_port=21000), lay.consortium_file)
    lay.genesis_block.parent.mkdir(parents=True, exist_ok=True)
    lay.genesis_block.write_bytes(b"stand-in: the network counts as generated")
    return Nodes.open(lay.root, runtime=runtime_mod.NATIVE)


def a_pid_gone() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_node_killed_is_told_apart_from_one_stopped_by_network_down(tmp_path):
    net = native_nodes(tmp_path)
    peer, orderer = net.consortium.peers[0], net.consortium.orderers[0]
    net.layout.node_dir(peer).mkdir(parents=True, exist_ok=True)
    net.layout.pid_file(peer).write_text(f"{a_pid_gone()}\n")      # killed: its pid file stayed

    assert net.stopped_uncleanly(peer)
    assert not net.stopped_uncleanly(orderer)                       # never started, or stopped by network down

    lines: list[str] = []
    net.down(log=lines.append)
    assert lines == [f"  {peer.id} was not running: {peer.id} had stopped without 'network down' (a crash, a kill, "
                     f"a power loss): what it logged before is in 'ipledger network logs {peer.id}'"]
    assert not net.layout.pid_file(peer).exists()
    assert not net.stopped_uncleanly(peer)

    lines.clear()
    net.down(log=lines.append)
    assert lines == []
