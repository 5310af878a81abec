"""The network's admin tooling and public files: links planted in the consortium's public directory, `channel export`,
undecodable updates and ordering settings.

* Links planted in the consortium's public directory were followed by `channel found` (a private key overwritten
  with YAML; a CA directory emptied and the CA's private key put into the genesis block) and `channel export`
  (a private key copied into what is sent to the members).
* `channel export` of a consortium with one shared channel failed (its MSP folders copied twice).
* An update whose values do not decode made `admin status` a traceback.
* A consortium file's `orderers` of the wrong type: a traceback, or a string read letter by letter.
"""
from __future__ import annotations

import base64
import json
import os

import pytest
import yaml
from fabric_protos.common import configtx_pb2

from ipledger.network import cli, consortium
from ipledger.network.consortium import DEFAULT_FILE, ConsortiumError
from ipledger.network.fabric.config_update import compute_update, update_envelope
from ipledger.network.layout import Layout
from ipledger.network.org import generate

from .channel_config import FakeOrg, make_config
from .test_admin import with_audit

HOLDERS = DEFAULT_FILE.with_name("consortium-holders.yaml")
BFT = DEFAULT_FILE.with_name("consortium-bft.yaml")


def _state(root, file=DEFAULT_FILE):
    c, lay = consortium.load(file), Layout(root)
    lay.consortium_file.parent.mkdir(parents=True)
    lay.consortium_file.write_text(file.read_text())
    for org in c.all_orgs:
        generate.init_org(c, lay, org, log=lambda *_: None)
        generate.publish_definition(lay, org)
    return c, lay


def _link(link, target):
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(target, link.parent))


# -- links in the public directory ---------------------------------------------------------------------------------

def test_found_writes_no_file_through_a_link_in_a_public_msp_folder(tmp_path, capsys):
    c, lay = _state(tmp_path / "state")
    key = lay.org_dir(c.org("CustomsMSP")) / "ca" / "priv_sk"
    before = key.read_bytes()
    _link(lay.public_msp("OperatorMSP") / "config.yaml", key)    # -> customs' CA private key
    assert cli.main(["--state-dir", str(lay.root), "channel", "found"]) == 0, capsys.readouterr().err
    assert key.read_bytes() == before
    config = lay.public_msp("OperatorMSP") / "config.yaml"
    assert not config.is_symlink() and "NodeOUs" in config.read_text()


def test_found_refuses_a_public_msp_folder_that_is_a_link(tmp_path, capsys):
    c, lay = _state(tmp_path / "state")
    ca_dir = lay.org_dir(c.org("CustomsMSP")) / "ca"
    before = sorted(p.name for p in ca_dir.iterdir())
    _link(lay.public_msp("OperatorMSP") / "cacerts", ca_dir)       # -> customs/crypto/ca/
    assert cli.main(["--state-dir", str(lay.root), "channel", "found"]) == 2
    assert "is a symbolic link" in capsys.readouterr().err
    assert sorted(p.name for p in ca_dir.iterdir()) == before       # nothing removed from customs' CA
    assert not lay.genesis_block.exists()


def test_export_copies_no_link_and_says_so(tmp_path, capsys):
    c, lay = _state(tmp_path / "state", HOLDERS)
    assert cli.main(["--state-dir", str(lay.root), "channel", "found"]) == 0
    key = lay.org_dir(c.org("CustomsMSP")) / "ca" / "priv_sk"
    _link(lay.for_channel("ip-plant-a").channel_dir / "README", key)
    out = tmp_path / "to-plant-a"
    capsys.readouterr()
    assert cli.main(["--state-dir", str(lay.root), "--channel", "ip-plant-a", "channel", "export",
                     "--out", str(out)]) == 2
    assert "README is a symbolic link" in capsys.readouterr().err
    assert not any(b"PRIVATE KEY" in p.read_bytes() for p in out.rglob("*") if p.is_file())


def test_export_of_the_one_shared_channel_works(tmp_path, capsys):
    c, lay = _state(tmp_path / "state")
    assert cli.main(["--state-dir", str(lay.root), "channel", "found"]) == 0
    out = tmp_path / "out"
    assert cli.main(["--state-dir", str(lay.root), "channel", "export", "--out", str(out)]) == 0, \
        capsys.readouterr().err
    assert (out / lay.genesis_block.relative_to(lay.public)).is_file()
    assert (out / lay.public_msp("OperatorMSP").relative_to(lay.public) / "config.yaml").is_file()


def test_the_consortium_file_is_saved_over_a_link_not_through_it(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    path = tmp_path / "consortium.yaml"
    path.symlink_to(victim)
    consortium.save(consortium.load(DEFAULT_FILE), path)
    assert victim.read_text() == "keep me\n" and not path.is_symlink() and "organisations" in path.read_text()


# -- updates that do not decode ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def orgs():
    return {m: FakeOrg(m) for m in ("CustomsMSP", "OperatorMSP", "BrokerMSP", "AuditMSP", "OrdererMSP")}


def _update(tmp_path, base, updated, base_in_description=None):
    pb = tmp_path / "u.pb"
    pb.write_bytes(update_envelope(compute_update(base, updated, "inward-processing")).SerializeToString())
    described = base_in_description or base
    (tmp_path / "u.json").write_text(json.dumps({
        "format": "ipledger-config-update/1", "channel": "inward-processing", "proposal": {}, "base_config_block": 3,
        "base_config": base64.b64encode(described.SerializeToString()).decode()}))
    return pb


@pytest.mark.parametrize("damaged", ["update", "description"])
def test_an_update_holding_a_value_that_does_not_decode_is_a_named_error(tmp_path, orgs, capsys, damaged):
    base = make_config([orgs["CustomsMSP"], orgs["OperatorMSP"], orgs["BrokerMSP"]], orgs["OrdererMSP"])
    bad = configtx_pb2.Config()
    bad.CopyFrom(base)
    value = "AnchorPeers" if damaged == "update" else "MSP"
    bad.channel_group.groups["Application"].groups["BrokerMSP"].values[value].value = b"\xff\xff\xff"
    if damaged == "update":
        pb = _update(tmp_path, base, bad)
    else:
        pb = _update(tmp_path, base, with_audit(base, orgs), base_in_description=bad)   # an organisation added
    assert cli.main(["--state-dir", str(tmp_path / "state"), "admin", "status", str(pb)]) == 2
    err = capsys.readouterr().err
    assert "does not decode" in err and "Traceback" not in err


# -- the consortium file ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("orderers", [2, "ab", {"name": "orderer0"}])
def test_orderers_not_given_as_a_list_are_refused(tmp_path, orderers):
    raw = yaml.safe_load(BFT.read_text())
    raw["organisations"][1]["orderers"] = orderers
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConsortiumError, match="'orderers' must be a list"):
        consortium.load(f)


@pytest.mark.parametrize("field, value, message", [("batch_timeout", "250ms\n", "batch_timeout"),
                                                    ("max_message_count", 0, "at least 1")])
def test_ordering_settings_are_checked_whole(tmp_path, field, value, message):
    raw = yaml.safe_load(DEFAULT_FILE.read_text())
    raw.setdefault("orderer", {})[field] = value
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConsortiumError, match=message):
        consortium.load(f)
