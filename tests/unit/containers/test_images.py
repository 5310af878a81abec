"""network/org/containers/images.py without a container engine: input hashes and the caching they
decide, Dockerfile rendering, the build plan, and the real specs from fake Fabric binaries."""
from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

import pytest

from ipledger.network.org import binaries
from ipledger.network.org.containers import __main__ as cli
from ipledger.network.org.containers import images
from ipledger.network.org.containers.images import ImageError, ImageSpec, Input, SCRATCH


def spec(name, parent="base", template="FROM @BASE@\nCOPY a /a\n", **kw):
    return ImageSpec(name, template, parent=parent, **kw)


def base(recipe="debootstrap bookworm\n"):
    return ImageSpec("base", recipe, kind="rootfs", version="bookworm")


# ----------------------------------------------------------------------------- hashing and caching

def test_a_tag_is_stable_and_names_repository_version_and_hash():
    specs = [base(), spec("peer", inputs=[Input("a", data=b"x")], version="3.1.5")]
    one, two = images.plan(specs), images.plan(specs)
    assert [s.tag for s in one] == [s.tag for s in two]
    assert one[1].tag.startswith("ipledger.invalid/peer:3.1.5-") and len(one[1].tag.split("-")[-1]) == 12
    assert one[1].tag.endswith(one[1].digest[:12])


@pytest.mark.parametrize("change", ["content", "mode", "dest", "template", "extra", "hashed"])
def test_any_input_change_changes_the_tag(change):
    kw = dict(inputs=[Input("a", data=b"x")], hashed=[Input("src/m.py", data=b"1")], extra={"f": 1})
    before = images.plan([base(), spec("peer", **kw)])[1].tag
    if change == "content":
        kw["inputs"] = [Input("a", data=b"y")]
    elif change == "mode":
        kw["inputs"] = [Input("a", data=b"x", mode=0o755)]
    elif change == "dest":
        kw["inputs"] = [Input("b", data=b"x")]
    elif change == "extra":
        kw["extra"] = {"f": 2}
    elif change == "hashed":
        kw["hashed"] = [Input("src/m.py", data=b"2")]
    template = "FROM @BASE@\nCOPY a /b\n" if change == "template" else "FROM @BASE@\nCOPY a /a\n"
    after = images.plan([base(), spec("peer", template=template, **kw)])[1].tag
    assert after != before


def test_a_new_base_changes_every_tag_built_on_it_but_not_a_scratch_image():
    def tags(recipe):
        steps = images.plan([base(recipe), spec("peer"), spec("orderer", parent=SCRATCH)])
        return {s.spec.name: s.tag for s in steps}
    a, b = tags("debootstrap bookworm\n"), tags("debootstrap bookworm --include=vim\n")
    assert a["base"] != b["base"] and a["peer"] != b["peer"]
    assert a["orderer"] == b["orderer"]


def test_the_order_of_inputs_does_not_matter():
    x, y = Input("a", data=b"1"), Input("b", data=b"2")
    assert images.plan([base(), spec("p", inputs=[x, y])])[1].tag == \
        images.plan([base(), spec("p", inputs=[y, x])])[1].tag


def test_two_files_for_one_context_path_are_refused():
    with pytest.raises(ImageError, match="same context path"):
        images.plan([base(), spec("p", inputs=[Input("a", data=b"1"), Input("a", data=b"2")])])


def test_a_file_input_is_hashed_by_content(tmp_path):
    f = tmp_path / "peer"
    f.write_bytes(b"one")
    t1 = images.plan([base(), spec("p", inputs=[images.file_input("bin/peer", f)])])[1].tag
    os.utime(f, ns=(1, 1))  # same bytes, another time: same tag
    assert images.plan([base(), spec("p", inputs=[images.file_input("bin/peer", f)])])[1].tag == t1
    f.write_bytes(b"two")
    assert images.plan([base(), spec("p", inputs=[images.file_input("bin/peer", f)])])[1].tag != t1


def test_inputs_must_stay_inside_the_context():
    for bad in ("/etc/passwd", "../x", "a/../../x"):
        with pytest.raises(ValueError):
            Input(bad, data=b"")
    with pytest.raises(ValueError):
        Input("a")
    with pytest.raises(ImageError, match="missing"):
        images.file_input("a", Path("/nonexistent/file"))


def test_existing_tags_are_cached_and_forced_ones_are_not():
    specs = [base(), spec("peer"), spec("gateway")]
    tags = {s.tag for s in images.plan(specs)}
    steps = images.plan(specs, exists=lambda t: t in tags)
    assert [s.action for s in steps] == ["cached"] * 3
    steps = images.plan(specs, exists=lambda t: t in tags, force=["base"])
    assert [s.action for s in steps] == ["build", "cached", "cached"]
    gone = {t for t in tags if not t.startswith("ipledger.invalid/peer:")}
    assert [s.action for s in images.plan(specs, exists=lambda t: t in gone)] == ["cached", "build", "cached"]
    with pytest.raises(ImageError, match="no image named nope"):
        images.plan(specs, force=["nope"])


# ----------------------------------------------------------------------------- plan and rendering

def test_parents_come_first_whatever_the_order_given():
    steps = images.plan([spec("gateway"), spec("peer"), base()])
    assert [s.spec.name for s in steps] == ["base", "gateway", "peer"]
    assert _from(steps[1].dockerfile) == f"FROM {steps[0].tag}"


def test_unknown_and_circular_parents_are_refused():
    with pytest.raises(ImageError, match="not planned"):
        images.plan([spec("peer", parent="nobase")])
    with pytest.raises(ImageError, match="its own parent"):
        images.plan([spec("a", parent="b"), spec("b", parent="a")])


def test_render_needs_the_placeholder():
    assert images.render("FROM @BASE@\nRUN true\n", "ipledger/base:x") == "FROM ipledger/base:x\nRUN true\n"
    with pytest.raises(ImageError, match="FROM @BASE@"):
        images.render("FROM debian:bookworm\n", "x")


def test_every_dockerfile_of_the_repository_builds_from_the_base_or_scratch_only():
    for path in sorted(images.DOCKERFILES.glob("*.Dockerfile")):
        text = path.read_text()
        froms = [line.split()[1] for line in text.splitlines() if line.upper().startswith("FROM ")]
        assert froms == ["@BASE@"], f"{path.name}: every image starts from the local base (no registry)"
        assert "apt-get" not in text, f"{path.name}: packages come with the base image"
        if "pip install" in text:
            assert "--no-index" in text, f"{path.name}: wheels from the build context only"


def test_only_builds_the_named_images_and_their_parents():
    steps = images.plan([base(), spec("peer"), spec("orderer", parent=SCRATCH), spec("gateway")])
    assert images._with_parents(steps, {"peer"}) == {"peer", "base"}
    assert images._with_parents(steps, {"orderer"}) == {"orderer"}
    with pytest.raises(ImageError):
        images._with_parents(steps, {"nope"})


# ----------------------------------------------------------------------------- the real specs

def _elf(path: Path, interp: bool) -> Path:
    """A minimal 64-bit little-endian ELF header with one program header (PT_INTERP or PT_LOAD)."""
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    header[4], header[5], header[6] = 2, 1, 1
    struct.pack_into("<Q", header, 0x20, 64)          # e_phoff
    struct.pack_into("<HH", header, 0x36, 56, 1)      # e_phentsize, e_phnum
    ph = bytearray(56)
    struct.pack_into("<I", ph, 0, 3 if interp else 1)
    path.write_bytes(bytes(header + ph))
    path.chmod(0o755)
    return path


def test_is_static_reads_the_program_headers(tmp_path):
    assert images.is_static(_elf(tmp_path / "s", interp=False))
    assert not images.is_static(_elf(tmp_path / "d", interp=True))
    assert not images.is_static(Path(sys.executable).resolve())
    (tmp_path / "t").write_text("#!/bin/sh\n")
    with pytest.raises(ImageError, match="not an ELF"):
        images.is_static(tmp_path / "t")


@pytest.fixture
def fake_material(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    conf = tmp_path / "sampleconfig"
    conf.mkdir()
    (conf / "core.yaml").write_text("peer: {}\n")
    (conf / "orderer.yaml").write_text("General: {}\n")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    whl = wheels / "grpcio-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    whl.write_bytes(b"wheel")
    return bin_dir, conf, [whl]


def _specs(material, static=False):
    bin_dir, conf, wheels = material
    for name in ("peer", "orderer", "osnadmin"):
        _elf(bin_dir / name, interp=not static)
    return images.default_specs(fabric_bin=bin_dir, sampleconfig=conf, cc_wheels=wheels,
                                gw_wheels=wheels, log=lambda *_: None)


def test_the_five_images_and_their_contexts(fake_material):
    specs = {s.name: s for s in _specs(fake_material)}
    assert list(specs) == ["base", "peer", "orderer", "ccaas", "gateway"]
    assert specs["base"].kind == "rootfs" and "python3-venv" in specs["base"].template
    dests = {n: {i.dest for i in s.inputs} for n, s in specs.items()}
    assert {"bin/peer", "config/core.yaml", "builder/ccbuilder.py", "builder/bin/detect"} <= dests["peer"]
    assert {"bin/orderer", "bin/osnadmin", "config/orderer.yaml"} <= dests["orderer"]
    assert "src/ipledger/chaincode/shim/server.py" in dests["ccaas"]
    assert "src/ipledger/chaincode/contract/contract.py" in dests["ccaas"]
    assert not any("/testing/" in d or "/builder/" in d for d in dests["ccaas"])
    assert any(d.startswith("wheels/grpcio-") for d in dests["ccaas"] | dests["gateway"])
    assert specs["gateway"].prepare is images.build_project_wheel
    hashed = {i.dest for i in specs["gateway"].hashed}
    assert {"pyproject.toml", "src/gateway/app.py", "src/network/cli/commands.py"} <= hashed
    assert not any(d.endswith(".Dockerfile") for d in hashed)  # not in the wheel: not hashed
    modes = {i.dest: i.mode for i in specs["peer"].inputs}
    assert modes["bin/peer"] == 0o755 and modes["builder/bin/run"] == 0o755
    assert modes["config/core.yaml"] == 0o644
    # no key material from Fabric's sampleconfig (its msp/ holds a sample private key)
    assert not any("msp" in d or "keystore" in d for d in dests["peer"] | dests["orderer"])


def _from(dockerfile: str) -> str:
    return [line for line in dockerfile.splitlines() if line.startswith("FROM ")][0]


def test_dynamic_fabric_binaries_go_on_the_base_static_ones_on_scratch(fake_material):
    dyn = {s.spec.name: s for s in images.plan(_specs(fake_material))}
    assert _from(dyn["orderer"].dockerfile) == f"FROM {dyn['base'].tag}"
    static = {s.spec.name: s for s in images.plan(_specs(fake_material, static=True))}
    assert _from(static["orderer"].dockerfile) == "FROM scratch"
    assert static["orderer"].tag != dyn["orderer"].tag
    assert _from(static["peer"].dockerfile).startswith("FROM ipledger.invalid/base:")  # its builder needs Python


def test_the_tags_carry_the_fabric_and_project_versions(fake_material):
    tags = {s.spec.name: s.tag for s in images.plan(_specs(fake_material))}
    assert tags["peer"].startswith(f"ipledger.invalid/peer:{binaries.VERSION}-")
    assert tags["orderer"].startswith(f"ipledger.invalid/orderer:{binaries.VERSION}-")
    assert tags["base"].startswith("ipledger.invalid/base:bookworm-")
    assert tags["gateway"].startswith(f"ipledger.invalid/gateway:{images.project_version()}-")


def test_a_new_peer_binary_rebuilds_the_peer_only(fake_material):
    before = {s.spec.name: s.tag for s in images.plan(_specs(fake_material))}
    bin_dir = fake_material[0]
    specs = _specs(fake_material)
    with open(bin_dir / "peer", "ab") as f:
        f.write(b"rebuilt")
    after = {s.spec.name: s.tag for s in images.plan(images.default_specs(
        fabric_bin=bin_dir, sampleconfig=fake_material[1], cc_wheels=fake_material[2],
        gw_wheels=fake_material[2], log=lambda *_: None))}
    assert specs and {n for n in before if before[n] != after[n]} == {"peer"}


def test_missing_fabric_binaries_say_what_to_run(tmp_path):
    with pytest.raises(ImageError, match="ipledger fabric install"):
        images.default_specs(fabric_bin=tmp_path, sampleconfig=tmp_path, cc_wheels=[], gw_wheels=[])


def test_the_context_is_written_with_its_modes(tmp_path, fake_material):
    tmp_path = tmp_path / "ctx"
    specs = {s.name: s for s in _specs(fake_material)}
    for inp in specs["peer"].inputs:
        inp.write(tmp_path)
    assert os.access(tmp_path / "bin" / "peer", os.X_OK)
    assert not os.access(tmp_path / "config" / "core.yaml", os.X_OK)
    assert (tmp_path / "builder" / "ccbuilder.py").read_bytes() == \
        (images.REPO_ROOT / "chaincode" / "builder" / "ccbuilder.py").read_bytes()


# ----------------------------------------------------------------------------- the machine's mirror

def test_the_mirror_comes_from_apt_sources(tmp_path, monkeypatch):
    monkeypatch.delenv("IPLEDGER_DEBIAN_MIRROR", raising=False)
    deb822 = ("Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
              "Components: main\n\nTypes: deb\nURIs: http://mirror.example/debian/\n"
              "Suites: bookworm bookworm-updates\nComponents: main\n")
    assert images.mirror_from_sources(deb822) == "http://mirror.example/debian"
    assert images.mirror_from_sources("deb [arch=amd64] http://m.example/debian bookworm main\n") == \
        "http://m.example/debian"
    assert images.mirror_from_sources("deb http://m.example/debian trixie main\n") is None
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "other.list").write_text("deb https://packages.example/apt cloud-sdk-bookworm main\n")
    (d / "debian.sources").write_text(deb822)
    assert images.debian_mirror([tmp_path / "sources.list", d]) == "http://mirror.example/debian"
    assert images.debian_mirror([tmp_path / "none"]) == images.DEFAULT_MIRROR
    monkeypatch.setenv("IPLEDGER_DEBIAN_MIRROR", "http://override.example/debian")
    assert images.debian_mirror([d]) == "http://override.example/debian"


def test_the_base_recipe_names_what_goes_in():
    recipe = images.base_recipe()
    assert "--variant=minbase" in recipe and "bookworm" in recipe
    assert "--include=python3,python3-venv,ca-certificates" in recipe


# ----------------------------------------------------------------------------- the command

def test_plan_offline_prints_every_tag_without_an_engine(monkeypatch, capsys, fake_material):
    specs = _specs(fake_material)
    monkeypatch.setattr(images, "default_specs", lambda **kw: specs)
    monkeypatch.setattr(images, "client", lambda: pytest.fail("no engine may be asked"))
    assert cli.main(["plan", "--offline"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["base", "peer", "orderer", "ccaas", "gateway"]


def test_build_without_an_engine_fails_with_a_message(monkeypatch, capsys):
    def no_engine():
        raise ImageError("no Docker engine answers (the local socket): refused")
    monkeypatch.setattr(images, "client", no_engine)
    assert cli.main(["build"]) == 2
    assert "no Docker engine answers" in capsys.readouterr().err


class FakeEngine:
    """Just enough of the SDK client for build_all: tags that exist, builds that add them."""

    def __init__(self, have=()):
        self.tags = set(have)
        self.built = []

    def has(self, tag):
        return tag in self.tags


def test_build_all_builds_what_is_missing_and_reports_it(monkeypatch, fake_material):
    specs = _specs(fake_material)
    steps = images.plan(specs)
    engine = FakeEngine(have={s.tag for s in steps if s.spec.name in ("base", "orderer")})

    def fake_build(step, c, log=print):
        c.built.append(step.spec.name)
        c.tags.add(step.tag)

    monkeypatch.setattr(images, "tag_exists", lambda c, t: c.has(t))
    monkeypatch.setattr(images, "build_dockerfile", fake_build)
    monkeypatch.setattr(images, "build_rootfs", fake_build)
    monkeypatch.setattr(images, "image_size", lambda c, t: 1_000_000)
    lines = []
    results = images.build_all(specs=specs, c=engine, log=lines.append, latest=False)
    assert engine.built == ["peer", "ccaas", "gateway"]
    assert [(r.name, r.cached) for r in results] == [("base", True), ("peer", False), ("orderer", True),
                                                    ("ccaas", False), ("gateway", False)]
    assert any("peer" in line and "building" in line for line in lines)
    assert any("orderer" in line and "cached" in line for line in lines)
    assert lines[-1].startswith("5 image(s), 3 built, 2 cached")
    engine.built.clear()
    again = images.build_all(specs=specs, c=engine, log=lines.append, latest=False)
    assert engine.built == [] and all(r.cached for r in again)
    only = images.build_all(specs=specs, c=FakeEngine(), log=lines.append, latest=False, only=["peer"])
    assert [r.name for r in only] == ["base", "peer"]


def test_prune_keeps_the_current_tags_and_latest_only():
    present = ["ipledger.invalid/peer:3.1.5-aaaaaaaaaaaa", "ipledger.invalid/peer:3.1.5-bbbbbbbbbbbb",
               "ipledger.invalid/peer:latest", "other/thing:1", "ipledger.invalid/base:bookworm-cccccccccccc",
               "ipledger/peer:3.1.5-bbbbbbbbbbbb", "ipledger/peer:latest"]   # the former name's: left alone
    current = ["ipledger.invalid/peer:3.1.5-bbbbbbbbbbbb", "ipledger.invalid/base:bookworm-cccccccccccc"]
    assert images.superseded(present, current) == ["ipledger.invalid/peer:3.1.5-aaaaaaaaaaaa"]
