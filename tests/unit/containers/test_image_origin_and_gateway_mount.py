"""The container runtime against a hostile container or registry: only images built here, gateway records never read or
written through a link, no build-host secrets in the base image, no node bound to every interface. No engine needed."""
from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

docker = pytest.importorskip("docker")

from ipledger.network import consortium  # noqa: E402
from ipledger.network.org.containers import compose, images  # noqa: E402


def _tags():
    steps = images.plan([images.ImageSpec("base", images.base_recipe(), kind="rootfs", version="bookworm"),
                         images.ImageSpec("peer", "FROM @BASE@\n", parent="base", version="3.1.5")])
    tag = {s.spec.name: s.tag for s in steps}
    return {"peer": tag["peer"], "orderer": tag["peer"].replace("/peer:", "/orderer:"),
            "ccaas": tag["peer"].replace("/peer:", "/ccaas:"), "gateway": tag["peer"].replace("/peer:", "/gateway:")}


def test_no_image_a_compose_file_names_can_come_from_a_registry(net):
    """Under 'ipledger/…' a tag missing from the engine resolves to Docker Hub (anyone may hold the namespace),
    and docker-compose pulls it — the organisation's keys then mounted into it. The images are named under a
    registry host that never resolves."""
    c, lay = net
    tags = _tags()
    svcs = compose.org_services(lay, c.org("CustomsMSP"), tags,
                                chaincode_services=[("ipledger_1.0", "ipledger_1.0:abc", "127.0.0.1:21013")],
                                customs_msp="CustomsMSP", gateway_bind="127.0.0.1:8080")
    doc = yaml.safe_load(compose.render(compose.document(svcs, tags["peer"]), "h"))
    for key, entry in doc["services"].items():
        registry, _ = docker.auth.resolve_repository_name(entry["image"].rsplit(":", 1)[0])
        assert registry == "ipledger.invalid", (key, entry["image"])


class _Images:
    def __init__(self, held):
        self.held = held   # tag -> attrs

    def get(self, name):
        import docker.errors
        if name not in self.held:
            raise docker.errors.ImageNotFound(name)
        held = self.held
        return SimpleNamespace(attrs=held[name],
                               tag=lambda repo, version: held.__setitem__(f"{repo}:{version}", dict(held[name])))


def _built(inputs: str, digests=()) -> dict:
    return {"RepoDigests": list(digests), "Config": {"Labels": {"org.ipledger.inputs": inputs}}}


def test_only_an_image_made_from_the_inputs_its_tag_names_is_taken_for_one_built_here():
    """An image of the tag that does not say it was made from the inputs the tag's hash names (one from a
    registry) is not taken: it is built again. Digests say nothing: the containerd image store gives every image
    one, and so does a push to the organisation's registry."""
    held = {"ipledger.invalid/ccaas:0.1.0-aaaaaaaaaaaa": {"RepoDigests": ["ipledger.invalid/ccaas@sha256:" + "0" * 64]},
            "ipledger.invalid/gateway:0.1.0-ffffffffffff": _built("0" * 64),
            "ipledger.invalid/peer:3.1.5-bbbbbbbbbbbb": _built("bbbbbbbbbbbb" + "0" * 52),
            "ipledger.invalid/orderer:3.1.5-cccccccccccc": _built("cccccccccccc" + "0" * 52,
                                                                  ["ipledger.invalid/orderer@sha256:" + "2" * 64])}
    c = SimpleNamespace(images=_Images(held))
    assert images.tag_exists(c, "ipledger.invalid/ccaas:0.1.0-aaaaaaaaaaaa") is False
    assert images.tag_exists(c, "ipledger.invalid/gateway:0.1.0-ffffffffffff") is False
    assert images.tag_exists(c, "ipledger.invalid/peer:3.1.5-bbbbbbbbbbbb") is True
    assert images.tag_exists(c, "ipledger.invalid/orderer:3.1.5-cccccccccccc") is True


def test_an_image_built_here_under_the_former_name_is_adopted_not_rebuilt():
    held = {"ipledger/base:bookworm-cccccccccccc": _built("cccccccccccc" + "0" * 52),
            "ipledger/peer:3.1.5-dddddddddddd": {"RepoDigests": ["ipledger/peer@sha256:" + "1" * 64]}}   # pulled
    c = SimpleNamespace(images=_Images(held))
    assert images.adopt_legacy(c, "ipledger.invalid/base:bookworm-cccccccccccc") is True
    assert images.tag_exists(c, "ipledger.invalid/base:bookworm-cccccccccccc")
    assert images.adopt_legacy(c, "ipledger.invalid/peer:3.1.5-dddddddddddd") is False   # not one built here
    assert images.adopt_legacy(c, "ipledger.invalid/peer:3.1.5-eeeeeeeeeeee") is False


def test_the_gateways_records_are_never_written_or_read_through_a_link(tmp_path):
    """The gateway container has <org>/gateway read-write: a link it plants as gateway.container must not make the
    host's CLI (possibly root) write a file outside its mounts, nor read one."""
    from ipledger.gateway.tls import TLSOptions
    from ipledger.network.cli import gateway_daemon as daemon
    state = tmp_path / "state"
    c = consortium.load(base_port=21000)
    org = c.org("OperatorMSP")
    gw = daemon._dir(state, org.msp_id)
    victim = tmp_path / "outside-the-mounts" / "victim"
    victim.parent.mkdir()
    (gw / "gateway.container").symlink_to(victim)
    rt = SimpleNamespace(gateway_bind=lambda own: "127.0.0.1:8081",
                         gateway_command=lambda own: ["gateway", "serve", "--bind", "127.0.0.1:8081"],
                         gateway_running=lambda own: "0123456789ab")
    daemon._start_container(state, (SimpleNamespace(consortium=c), rt), org.msp_id, "127.0.0.1:8081", 2,
                            "http://127.0.0.1:8081", TLSOptions(), 1, lambda *_: None)
    assert not victim.exists()
    record = gw / "gateway.container"
    assert not record.is_symlink() and record.read_text() == "0123456789ab http://127.0.0.1:8081\n"
    assert (record.stat().st_mode & 0o777) == 0o600
    record.unlink()
    victim.write_text("0123456789ab http://evil.example\n")
    record.symlink_to(victim)
    with pytest.raises(OSError):
        daemon._read_record(record)


def test_a_lock_file_is_never_created_through_a_link(tmp_path):
    from ipledger.gateway.filestore import JsonFile
    victim = tmp_path / "elsewhere"
    f = JsonFile(tmp_path / "webhooks.json", empty=dict)
    f.lock_path.symlink_to(victim)
    with pytest.raises(OSError):
        with f.update():
            pass
    assert not victim.exists()


def test_the_base_image_carries_no_mirror_credentials_nor_the_build_hosts_identity(monkeypatch, tmp_path):
    mirror = "https://ci:s3cr3t-token@mirror.internal.example/debian"
    real_run = subprocess.run
    logs, imported = [], {}

    def fake_run(cmd, **kw):
        if "debootstrap" in cmd[0]:   # what debootstrap leaves in the tree
            root = Path(cmd[-2])
            (root / "etc" / "apt" / "sources.list.d").mkdir(parents=True)
            (root / "etc" / "apt" / "sources.list").write_text(f"deb {cmd[-1]} bookworm main\n")
            (root / "etc" / "apt" / "sources.list.d" / "extra.list").write_text(f"deb {cmd[-1]} bookworm main\n")
            (root / "etc" / "hostname").write_text("build-host.corp.example\n")
            (root / "etc" / "resolv.conf").write_text("search corp.example\nnameserver 10.1.2.3\n")
            (root / "etc" / "os-release").write_text("Debian\n")
            return subprocess.CompletedProcess(cmd, 0, "", "")
        return real_run(cmd, **kw)   # the real tar

    def import_image(src, **_):
        with tarfile.open(src) as t:
            imported.update({m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()})
    steps = images.plan([images.ImageSpec("base", images.base_recipe(), kind="rootfs", version="bookworm")])
    c = SimpleNamespace(api=SimpleNamespace(import_image=import_image),
                        images=SimpleNamespace(get=lambda tag: SimpleNamespace(attrs=_built(steps[0].digest))))
    monkeypatch.setattr(images.os, "geteuid", lambda: 0)
    monkeypatch.setattr(images.shutil, "which", lambda name: "/usr/sbin/debootstrap")
    monkeypatch.setattr(images.subprocess, "run", fake_run)
    monkeypatch.setenv("IPLEDGER_CONTAINERS_CACHE", str(tmp_path))
    [step] = images.plan([images.ImageSpec("base", images.base_recipe(), kind="rootfs", version="bookworm")])
    images.build_rootfs(step, c, log=logs.append, mirror=mirror)
    assert not any("s3cr3t" in line for line in logs) and any("https://***@mirror" in line for line in logs)
    assert "./etc/os-release" in imported
    leaked = {name for name, data in imported.items()
              if b"s3cr3t" in data or b"corp.example" in data or b"10.1.2.3" in data}
    assert not leaked


@pytest.mark.parametrize("host", ["0.0.0.0", "255.255.255.255", "224.0.0.1"])
def test_a_node_host_of_every_interface_is_refused(host):
    with pytest.raises(consortium.ConsortiumError, match="of one host"):
        consortium.load(base_port=21000, host=host)
    assert consortium.load(base_port=21000, host="198.18.0.5").orgs


def test_every_requirement_shipped_is_pinned_indirect_ones_too(monkeypatch, tmp_path):
    """The wheels of the chaincode package and of the images: every requirement of the named ones, each pinned to
    the version installed here, downloaded without resolving anything else — not an indirect dependency in
    whatever version the index offers on the day (two organisations packaging a month apart would ship different
    code to their peers)."""
    import importlib.metadata
    from ipledger.network.channel import package
    pins = package.pinned_requirements(package.CHAINCODE_DIR / "requirements.txt")
    names = {p.split("==")[0].lower().replace("_", "-") for p in pins}
    assert {"jsonschema", "referencing", "rpds-py", "attrs", "jsonschema-specifications", "cffi"} <= names
    assert f"referencing=={importlib.metadata.version('referencing')}" in pins
    ran = []
    monkeypatch.setattr(package.subprocess, "run",
                        lambda cmd, **_: ran.append(cmd) or subprocess.CompletedProcess(cmd, 0, "", ""))
    package.download_wheels(pins, tmp_path)
    [cmd] = ran
    assert "--no-deps" in cmd and set(pins) <= set(cmd)


def test_a_fifo_or_undecodable_record_is_as_if_there_were_none(tmp_path):
    """The gateway container can make a FIFO of its record (reading it would block the CLI for good) or fill it
    with bytes that are not text: read as no record, never hanging, never a traceback."""
    import os
    from ipledger.network.cli import gateway_daemon as daemon
    fifo = tmp_path / "gateway.container"
    os.mkfifo(fifo)
    with pytest.raises(OSError):
        daemon._read_record(fifo)
    junk = tmp_path / "gateway.pid"
    junk.write_bytes(b"\xff\xfe 1234")
    with pytest.raises(ValueError):
        daemon._read_record(junk)


def test_credentials_json_is_never_read_through_a_link(tmp_path):
    """`gateway start` keeps the clerk key in the gateway's directory (a container's mount): a link planted as
    credentials.json must not make it read a host file (a registry's credentials) and copy it in."""
    import json
    from ipledger.gateway.filestore import CorruptFileError
    from ipledger.network.cli import gateway_daemon as daemon
    state, org = tmp_path / "state", "OperatorMSP"
    secret = tmp_path / "host-only" / "config.json"
    secret.parent.mkdir()
    secret.write_text(json.dumps({"auths": {"registry.example.org": {"auth": "dXNlcjpzM2NyM3Q="}}}))
    planted = daemon.credentials_file(state, org)
    planted.symlink_to(secret)
    with pytest.raises(CorruptFileError, match="symbolic link"):
        daemon.ensure_credentials(state, "http://127.0.0.1:8081", org)
    assert planted.is_symlink() and json.loads(secret.read_text())["auths"]


@pytest.mark.parametrize("host", ["0", "0.0", "00.0.0.0", "0.0.0.00", "0x0"])
def test_every_spelling_of_an_address_but_the_dotted_quad_is_refused(host):
    with pytest.raises(consortium.ConsortiumError, match="of one host"):
        consortium.load(base_port=21000, host=host)


def test_a_compose_service_is_never_pulled(net):
    c, lay = net
    tags = _tags()
    svcs = compose.org_services(lay, c.org("OperatorMSP"), tags, chaincode_services=[], customs_msp="CustomsMSP",
                                gateway_bind="127.0.0.1:8081")
    doc = yaml.safe_load(compose.render(compose.document(svcs, tags["peer"]), "h"))
    assert all(entry.get("pull_policy") == "never" for entry in doc["services"].values())
