"""The genesis block is checked before an organisation first joins, never against what it became since.

A newcomer's restart after the documented revocation (docs/admin.md, "Revoke a certificate") failed for the
whole consortium: ``network up`` checked every founding organisation's current definition against the
genesis block at each start, and the block, immutable, still held the definition of the founding (no CRL;
the anchor peers before a change). The check protects an organisation before its nodes first join; after
that, its definition changes by signed config updates. And ``org definition --output F`` rewrote the
organisation's own definition and its public copy, not F only.
"""
from __future__ import annotations

import json

import pytest

from ipledger.network import cli, consortium
from ipledger.network.consortium import DEFAULT_FILE
from ipledger.network.errors import NetworkError
from ipledger.network.layout import Layout
from ipledger.network.org import generate
from ipledger.network.org.nodes import Nodes


def quiet(*_):
    pass


def ipledger(lay: Layout, *args) -> int:
    return cli.main(["--state-dir", str(lay.root), *map(str, args)])


@pytest.mark.fabric
def test_a_joined_organisation_starts_again_after_its_definition_changed_by_update(tmp_path):
    c = consortium.load(base_port=21000)
    lay = Layout(tmp_path / "state")
    generate.generate(c, lay, log=quiet)
    net = Nodes(c, lay, "native")
    assert {o.msp_id for o in c.all_orgs} == net.check_genesis(log=quiet)   # each checks it, then joins

    # docs/admin.md: the operator revokes a clerk (a CRL in its definition), the broker moves its anchor peer;
    # config updates carry both to the channel, the genesis block stays as it was
    assert ipledger(lay, "org", "add-user", "--org", "OperatorMSP", "--name", "clerk2") == 0
    assert ipledger(lay, "org", "revoke", "--org", "OperatorMSP", "--name", "clerk2") == 0
    broker = c.org("BrokerMSP")
    assert ipledger(lay, "org", "definition", "--org", "BrokerMSP",
                    "--anchor-peer", f"localhost:{broker.peers[0].port}") == 0
    assert json.loads((lay.org_home(c.org("OperatorMSP")) / "definition.json").read_text())["crls"]

    assert net.check_genesis(log=quiet) == set()   # joined before: nothing to refuse, 'up' goes on

    # the property the check is for: an organisation that has not joined yet refuses a block that does not
    # hold it as it is now (here the founding definition without its CRL), and records nothing
    net.accepted_file(c.org("OperatorMSP")).unlink()
    with pytest.raises(NetworkError, match=r"OperatorMSP refuses the genesis block .*\n.*revocation lists "
                                           r"differ \(0 in the block, 1 in our definition\)"):
        net.check_genesis(log=quiet)
    assert not net.accepted_file(c.org("OperatorMSP")).exists()


@pytest.mark.fabric
def test_a_genesis_block_other_than_the_accepted_one_is_checked_though_its_nodes_hold_a_ledger(tmp_path):
    """The joined organisations' check skipped any block once their nodes held the channel's ledger: a genesis
    block replaced by one of other definitions passed, and a node without a ledger (a peer that lost its disk,
    an added one) would have joined from it. The digest an organisation recorded decides: another block is
    checked as at a first join."""
    import shutil
    c = consortium.load(base_port=21000)
    lay, other = Layout(tmp_path / "state"), Layout(tmp_path / "other")
    generate.generate(c, lay, log=quiet)
    generate.generate(c, other, log=quiet)           # the same consortium, other keys and CAs
    net = Nodes(c, lay, "native")
    net.check_genesis(log=quiet)
    for n in net.local_nodes:                         # every node joined: each holds the channel's ledger
        d = lay.data_dir(n)
        (d / ("ledger/chains" if n.kind == "orderer" else "ledgersData/chains/chains") / c.channel).mkdir(parents=True)
    shutil.copyfile(other.genesis_block, lay.genesis_block)
    with pytest.raises(NetworkError, match="refuses the genesis block"):
        net.check_genesis(log=quiet)


@pytest.fixture
def broker(tmp_path):
    """The broker's own directory and its published definition, the consortium's public files beside it."""
    c, lay = consortium.load(DEFAULT_FILE), Layout(tmp_path / "state")
    lay.consortium_file.parent.mkdir(parents=True)
    lay.consortium_file.write_text(DEFAULT_FILE.read_text())
    org = c.org("BrokerMSP")
    generate.init_org(c, lay, org, log=quiet)
    generate.publish_definition(lay, org)
    return c, lay, org


def test_org_definition_with_output_writes_that_file_only(broker, tmp_path, capsys):
    c, lay, org = broker
    own, public = lay.org_home(org) / "definition.json", lay.definition_file(org.msp_id)
    before = own.read_bytes(), public.read_bytes()
    out = tmp_path / "x.json"
    assert ipledger(lay, "org", "definition", "--org", "BrokerMSP", "--anchor-peer", "localhost:7130",
                    "--output", out) == 0
    assert json.loads(out.read_text())["anchor_peers"] == ["localhost:7130"]
    assert (own.read_bytes(), public.read_bytes()) == before, "--output rewrote the org's own definition"
    said = capsys.readouterr().out
    assert f"Wrote {out}" in said and "not changed" in said, said
    nowhere = tmp_path / "missing" / "x.json"
    assert ipledger(lay, "org", "definition", "--org", "BrokerMSP", "--output", nowhere) == 2
    assert "is not a directory" in capsys.readouterr().err and not nowhere.parent.exists()


def test_org_definition_without_output_rewrites_the_orgs_definition_and_its_public_copy(broker, capsys):
    c, lay, org = broker
    own, public = lay.org_home(org) / "definition.json", lay.definition_file(org.msp_id)
    assert ipledger(lay, "org", "definition", "--org", "BrokerMSP", "--anchor-peer", "localhost:7130") == 0
    assert json.loads(own.read_text())["anchor_peers"] == ["localhost:7130"]
    assert public.read_bytes() == own.read_bytes()
    assert f"Wrote {public}" in capsys.readouterr().out
