"""The network's files on disk: links and names in received definitions, planted temporary files, damaged or missing
files, reports written for their owner only.

* A link at ``consortium/definitions/<MSP>.json`` (a received directory may hold links) made `org definition`
  write the definition through it — over the organisation's own CA key, or into another organisation's files.
* A received definition's ``name`` (and its nodes') became file names unchecked: ``x/../../…`` made every
  member's `channel inspect` write certificates outside the state directory.
* A temporary file planted (or left) as a link made the identity writes go where it pointed.
* `channel found --definition F` replaced the definition of an organisation of the founder's own host.
"""
from __future__ import annotations

import json

import pytest

from ipledger.network import cli, consortium
from ipledger.network.consortium import DEFAULT_FILE
from ipledger.network.layout import Layout
from ipledger.network.org import definition as definition_mod
from ipledger.network.org import generate, identities


@pytest.fixture
def customs(tmp_path):
    """Customs' own directory (its CA, identities and definition), the consortium's public files beside it."""
    c, lay = consortium.load(DEFAULT_FILE), Layout(tmp_path / "state")
    lay.consortium_file.parent.mkdir(parents=True)
    lay.consortium_file.write_text(DEFAULT_FILE.read_text())
    org = c.org("CustomsMSP")
    generate.init_org(c, lay, org, log=lambda *_: None)
    return c, lay, org


def test_publishing_a_definition_replaces_a_link_instead_of_writing_through_it(customs):
    c, lay, org = customs
    key = lay.org_dir(org) / "ca" / "priv_sk"
    before = key.read_bytes()
    public = lay.definition_file(org.msp_id)
    public.parent.mkdir(parents=True, exist_ok=True)
    public.symlink_to(key)
    generate.publish_definition(lay, org)
    assert key.read_bytes() == before, "the CA key was overwritten"
    assert not public.is_symlink() and json.loads(public.read_text())["msp_id"] == "CustomsMSP"


def test_a_definition_whose_names_are_not_names_is_refused(customs, tmp_path):
    c, lay, org = customs
    raw = json.loads((lay.org_home(org) / "definition.json").read_text())
    for where, value in (("name", "x/../../../../tmp/escaped"), ("peers", [{**raw["peers"][0], "name": "../p"}])):
        bad = tmp_path / f"bad-{where}.json"
        bad.write_text(json.dumps({**raw, where: value}))
        with pytest.raises(definition_mod.DefinitionError, match="must be lower-case letters"):
            definition_mod.load(bad)


def test_identity_writes_never_follow_a_planted_temporary_file(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    target = tmp_path / "msp" / "crl.pem"
    target.parent.mkdir()
    (target.parent / ".crl.pem.tmp").symlink_to(victim)
    identities._write(target, b"new content\n")
    assert victim.read_text() == "keep me\n" and target.read_bytes() == b"new content\n"


def test_found_refuses_another_definition_of_an_organisation_of_this_host(customs, tmp_path, capsys):
    c, lay, org = customs
    raw = json.loads((lay.org_home(org) / "definition.json").read_text())
    forged = tmp_path / "CustomsMSP.json"
    forged.write_text(json.dumps({**raw, "description": "not the one customs wrote"}, indent=2) + "\n")
    assert cli.main(["--state-dir", str(lay.root), "channel", "found", "--definition", str(forged)]) == 2
    assert "an organisation of this host" in capsys.readouterr().err
    public = lay.definition_file("CustomsMSP")
    assert not public.exists() or "not the one customs wrote" not in public.read_text()


def test_an_update_whose_description_is_damaged_is_an_error_naming_it(base, orgs, tmp_path):
    """`admin status`/`sign` on an update whose description (written beside it) is not one: an AdminError naming
    the file, never a traceback; and a save writes both files through temporary files (a description cut in the
    middle lost the signatures collected so far)."""
    from ipledger.network.cli import admin
    from ipledger.network.errors import AdminError
    from tests.unit.network.test_admin import CHANNEL, with_audit
    upd = admin.UpdateFile.create(tmp_path / "add.pb", base, 3, with_audit(base, orgs), CHANNEL,
                                  {"kind": "add-org", "org": "AuditMSP"})
    side = tmp_path / "add.json"
    good = json.loads(side.read_text())
    for damaged in ([], {**good, "base_config": "!!not base64!!"}, {k: v for k, v in good.items() if k != "base_config"},
                    {**good, "base_config": "AAAA"}):
        side.write_text(json.dumps(damaged))
        with pytest.raises(AdminError, match="add.json"):
            admin.UpdateFile.load(upd.path)
    side.write_text(json.dumps(good))
    assert admin.UpdateFile.load(upd.path).update == upd.update
    assert sorted(p.name for p in tmp_path.iterdir()) == ["add.json", "add.pb"]     # no temporary file left


def test_org_init_cut_short_goes_on_where_it_stopped(tmp_path, capsys):
    c, lay = consortium.load(DEFAULT_FILE), Layout(tmp_path / "state")
    lay.consortium_file.parent.mkdir(parents=True)
    lay.consortium_file.write_text(DEFAULT_FILE.read_text())
    org = c.org("OperatorMSP")
    generate.init_org(c, lay, org, log=lambda *_: None)
    (lay.org_home(org) / "definition.json").unlink()        # cut short before its last step
    assert cli.main(["--state-dir", str(lay.root), "org", "init", "--org", "OperatorMSP"]) == 0
    assert definition_mod.load(lay.org_home(org) / "definition.json").msp_id == "OperatorMSP"
    assert cli.main(["--state-dir", str(lay.root), "org", "init", "--org", "OperatorMSP"]) == 2   # done: once
    assert "already has its identities" in capsys.readouterr().err


def test_a_damaged_genesis_block_or_a_directory_in_a_files_place_is_an_error_naming_it(customs, tmp_path, capsys):
    c, lay, org = customs
    block = tmp_path / "genesis.block"
    block.write_bytes(b"\x0a\xff\xff not a block")
    assert cli.main(["--state-dir", str(lay.root), "channel", "inspect", "--block", str(block)]) == 2
    assert "is not a channel's genesis block" in capsys.readouterr().err
    issued = lay.org_dir(org) / "ca" / "issued.json"
    issued.unlink()
    issued.mkdir()                                           # a directory where the CA's register should be
    assert cli.main(["--state-dir", str(lay.root), "org", "identities", "--org", "CustomsMSP"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "issued.json" in err and "Traceback" not in err, err


def test_a_missing_consortium_file_beside_generated_organisations_is_an_error(customs, capsys):
    """With the state directory's consortium file gone, commands took the shipped one: `org definition` published
    its default ports for nodes configured on others."""
    c, lay, org = customs
    lay.consortium_file.unlink()
    assert cli.main(["--state-dir", str(lay.root), "org", "definition", "--org", "CustomsMSP"]) == 2
    assert "consortium.yaml is missing" in capsys.readouterr().err
    given = lay.root.parent / "given.yaml"
    given.write_text(DEFAULT_FILE.read_text())
    assert cli.main(["--state-dir", str(lay.root), "--consortium", str(given), "org", "definition",
                     "--org", "CustomsMSP"]) == 0


def test_a_report_is_written_for_its_owner_only_whatever_the_umask(tmp_path):
    """`ipledger report … -o FILE` wrote a bill of discharge — customs values — with the caller's umask (0644 under
    the usual 022): every local account could read it. It is written 0600, a file already there replaced with its
    mode; a device named as the output (``/dev/stdout``) is written as it is."""
    import os
    from pathlib import Path

    from ipledger.network import files
    report = tmp_path / "bill.csv"
    report.write_text("old")
    report.chmod(0o644)
    old = os.umask(0o022)
    try:
        files.write_private(report, b"lot,customs_value\nL1,918273.64\n")
        fresh = files.write_private(tmp_path / "new.pdf", b"%PDF")
    finally:
        os.umask(old)
    assert report.read_bytes().endswith(b"918273.64\n") and report.stat().st_mode & 0o777 == 0o600
    assert fresh.stat().st_mode & 0o777 == 0o600
    assert files.write_private(Path("/dev/null"), b"x") == Path("/dev/null")


def test_a_report_to_dev_stdout_reaches_where_stdout_goes(tmp_path):
    """``-o /dev/stdout`` with the output redirected to a file: ``/dev/stdout`` is a link, and the file it reaches a
    regular one — an atomic write renamed a new file over the link (or failed in /dev): the report went nowhere. A
    link the caller names is written through, like the shell's ``>``."""
    import subprocess
    import sys
    from pathlib import Path

    from ipledger.network import files
    out = tmp_path / "redirected.txt"
    with open(out, "wb") as target:
        subprocess.run([sys.executable, "-c", "from pathlib import Path; from ipledger.network import files; "
                        "files.write_private(Path('/dev/stdout'), b'the report')"], stdout=target, check=True)
    assert out.read_bytes() == b"the report" and Path("/dev/stdout").is_symlink()
    real = tmp_path / "real.csv"
    real.write_text("")
    (tmp_path / "link.csv").symlink_to(real)
    files.write_private(tmp_path / "link.csv", b"through")
    assert (tmp_path / "link.csv").is_symlink() and real.read_bytes() == b"through"
