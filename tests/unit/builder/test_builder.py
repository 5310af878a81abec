"""The external builder's four steps, run as the peer runs them (executables + dirs)."""
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from ipledger.network.channel import package as cc

BIN = Path(__file__).resolve().parents[3] / "chaincode" / "builder" / "bin"


def step(name, *dirs):
    return subprocess.run([str(BIN / name), *map(str, dirs)], capture_output=True, text=True,
                          timeout=120)


def unpack(package: Path, into: Path) -> tuple[Path, Path]:
    """What the peer does before calling the builder: metadata dir + source dir."""
    meta, src = into / "metadata", into / "source"
    meta.mkdir()
    src.mkdir()
    with tarfile.open(package) as outer:
        (meta / "metadata.json").write_bytes(outer.extractfile("metadata.json").read())
        with tarfile.open(fileobj=outer.extractfile("code.tar.gz")) as code:
            code.extractall(src, filter="data")
    return meta, src


HELLO = "class Hello:\n    name = 'hello'\n\n    def invoke(self, stub, function, args):\n        return None\n"


def stub_shim(tmp_path: Path, client: str = "def main(argv):\n    return 0\n") -> Path:
    """``ipledger.chaincode.shim.client`` as a package carries it (``src/ipledger/…``): what ``run`` launches."""
    root = tmp_path / "shim-source" / "ipledger"
    (root / "chaincode" / "shim").mkdir(parents=True)
    (root / "chaincode" / "__init__.py").write_text("")
    (root / "chaincode" / "shim" / "__init__.py").write_text("")
    (root / "chaincode" / "shim" / "client.py").write_text(client)
    return root


@pytest.fixture
def tiny_spec(tmp_path):
    pkg = tmp_path / "hello"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(HELLO)
    return cc.ChaincodeSpec(name="hello", version="0.1", contract="hello:Hello", sources=[pkg, stub_shim(tmp_path)])


def test_detect_accepts_ipledger_packages_only(tmp_path, tiny_spec):
    package = cc.build_package(tiny_spec, tmp_path / "hello.tar.gz", wheels=[])
    meta, src = unpack(package, tmp_path)
    assert step("detect", src, meta).returncode == 0
    (meta / "metadata.json").write_text(json.dumps({"type": "golang", "label": "x"}))
    assert step("detect", src, meta).returncode == 1


def test_build_and_release_python_package(tmp_path, tiny_spec):
    package = cc.build_package(tiny_spec, tmp_path / "hello.tar.gz", wheels=[])
    meta, src = unpack(package, tmp_path)
    (src / "META-INF" / "statedb" / "couchdb" / "indexes").mkdir(parents=True)
    (src / "META-INF" / "statedb" / "couchdb" / "indexes" / "i.json").write_text("{}")
    out, rel = tmp_path / "out", tmp_path / "release"
    out.mkdir()
    rel.mkdir()
    built = step("build", src, meta, out)
    assert built.returncode == 0, built.stderr
    assert (out / "src" / "hello" / "__init__.py").is_file()
    assert json.loads((out / "ipledger-chaincode.json").read_text())["contract"] == "hello:Hello"
    assert step("release", out, rel).returncode == 0
    assert (rel / "statedb" / "couchdb" / "indexes" / "i.json").is_file()


def test_build_installs_wheels_offline(tmp_path, tiny_spec):
    # A wheel carried in the package is installed with --no-index: no registry involved.
    import zipfile
    wheel = tmp_path / "greeting-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("greeting.py", "WORD = 'hello'\n")
        z.writestr("greeting-1.0.dist-info/METADATA",
                   "Metadata-Version: 2.1\nName: greeting\nVersion: 1.0\n")
        z.writestr("greeting-1.0.dist-info/WHEEL",
                   "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr("greeting-1.0.dist-info/RECORD", "")
    package = cc.build_package(tiny_spec, tmp_path / "hello.tar.gz", wheels=[wheel])
    meta, src = unpack(package, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    built = subprocess.run([str(BIN / "build"), str(src), str(meta), str(out)],
                           capture_output=True, text=True, timeout=120,
                           env={"PATH": "/usr/bin:/bin:" + str(Path(__import__("sys").executable).parent),
                                "PIP_INDEX_URL": "http://127.0.0.1:9/nowhere"})
    assert built.returncode == 0, built.stderr
    assert (out / "site" / "greeting.py").read_text() == "WORD = 'hello'\n"


def test_packages_are_reproducible(tmp_path, tiny_spec):
    a = cc.build_package(tiny_spec, tmp_path / "a.tar.gz", wheels=[])
    b = cc.build_package(tiny_spec, tmp_path / "b.tar.gz", wheels=[])
    assert a.read_bytes() == b.read_bytes()
    assert cc.package_id(a, "hello_0.1") == cc.package_id(b, "hello_0.1")


def test_a_ccaas_package_with_the_peers_client_key_is_0600_from_its_creation(tmp_path):
    """The package carries the peers' client TLS key for the chaincode service: created 0600 whatever the umask."""
    old = os.umask(0)
    try:
        with_key = cc.build_ccaas_package("hello", "hello_ccaas", "127.0.0.1:9999", tmp_path / "key.tar.gz",
                                          root_cert="PEM", client_cert="CERT", client_key="KEY")
        without = cc.build_ccaas_package("hello", "hello_ccaas", "127.0.0.1:9999", tmp_path / "nokey.tar.gz",
                                         root_cert="PEM")
    finally:
        os.umask(old)
    assert with_key.stat().st_mode & 0o777 == 0o600
    assert without.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.tar.gz", "nokey.tar.gz"]   # no temporary left


def test_ccaas_package_releases_connection_json_and_is_never_run(tmp_path):
    package = cc.build_ccaas_package("hello", "hello_ccaas", "127.0.0.1:9999",
                                     tmp_path / "ccaas.tar.gz", root_cert="PEM")
    meta, src = unpack(package, tmp_path)
    out, rel, run_meta = tmp_path / "out", tmp_path / "rel", tmp_path / "run"
    for d in (out, rel, run_meta):
        d.mkdir()
    assert step("detect", src, meta).returncode == 0
    assert step("build", src, meta, out).returncode == 0
    assert step("release", out, rel).returncode == 0
    conn = json.loads((rel / "chaincode" / "server" / "connection.json").read_text())
    assert conn["address"] == "127.0.0.1:9999" and conn["tls_required"] is True
    # it may hold the peers' client TLS key: 0600 in the package, as built, and as released
    with tarfile.open(package) as outer, tarfile.open(fileobj=outer.extractfile("code.tar.gz")) as code:
        assert code.getmember("connection.json").mode == 0o600
    for copy in (src / "connection.json", out / "connection.json", rel / "chaincode" / "server" / "connection.json"):
        assert copy.stat().st_mode & 0o777 == 0o600, copy
    ran = step("run", out, run_meta)
    assert ran.returncode == 1 and "not launched by the peer" in ran.stderr


@pytest.mark.parametrize("breakage, says", [
    ("missing module", "No module named 'hello'"),
    ("raises on import", "RuntimeError: cannot start"),
    ("missing class", "has no attribute 'Hello'"),
    ("no shim", "No module named 'ipledger'"),
    ("raises when made", "ValueError: no settings"),
    ("no invoke", "hello:Hello has no invoke(stub, function, args) method"),
])
def test_build_refuses_a_package_whose_contract_the_peer_could_not_start(tmp_path, breakage, says):
    """A package whose contract does not import (a module left out, one failing as it is imported, a class renamed,
    the shim missing, a contract failing as it is made or without ``invoke``) would be approved and committed, and then every transaction of the channel refused: its
    installation fails instead, naming why."""
    pkg = tmp_path / "hello"
    pkg.mkdir()
    body = {"raises on import": "raise RuntimeError('cannot start')\n", "missing class": "class Other:\n    pass\n",
            "raises when made": HELLO + "\n    def __init__(self):\n        raise ValueError('no settings')\n",
            "no invoke": "class Hello:\n    pass\n"}
    (pkg / "__init__.py").write_text(body.get(breakage, HELLO))
    sources = {"missing module": [], "no shim": [pkg]}.get(breakage, [pkg])
    if breakage != "no shim":
        sources.append(stub_shim(tmp_path))
    spec = cc.ChaincodeSpec(name="hello", version="0.1", contract="hello:Hello", sources=sources)
    meta, src = unpack(cc.build_package(spec, tmp_path / "hello.tar.gz", wheels=[]), tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    built = step("build", src, meta, out)
    assert built.returncode == 1, built.stdout
    assert "the contract hello:Hello does not load" in built.stderr and says in built.stderr, built.stderr


def test_the_load_check_imports_with_the_packages_code_only(tmp_path, tiny_spec):
    """The check runs as ``run`` does (-I -S, the package's src/ and site/ only): a contract importing something only
    the host's Python has is refused, as the peer would fail to start it."""
    (tiny_spec.sources[0] / "__init__.py").write_text("import flask  # noqa: F401\n" + HELLO)
    meta, src = unpack(cc.build_package(tiny_spec, tmp_path / "hello.tar.gz", wheels=[]), tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    built = step("build", src, meta, out)
    assert built.returncode == 1 and "No module named 'flask'" in built.stderr, built.stderr


def test_the_load_check_stops_a_contract_whose_import_never_ends(tmp_path, tiny_spec, monkeypatch):
    """A contract whose import hangs (and starts a process holding the check's output open) fails the build within
    the check's time, its processes stopped with it."""
    monkeypatch.syspath_prepend(str(BIN.parent))
    sys.modules.pop("ccbuilder", None)
    import ccbuilder   # as the builder's steps import it: standard library only, beside bin/

    (tiny_spec.sources[0] / "__init__.py").write_text(
        "import subprocess, time\nsubprocess.Popen(['sleep', '60'])\ntime.sleep(60)\n" + HELLO)
    meta, src = unpack(cc.build_package(tiny_spec, tmp_path / "hello.tar.gz", wheels=[]), tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(ccbuilder, "LOAD_CHECK_S", 2)
    started = time.monotonic()
    with pytest.raises(ccbuilder.BuildError, match="did not load within 2 s"):
        ccbuilder.build(src, meta, out)
    assert time.monotonic() - started < 20


def test_build_refuses_a_manifest_without_contract(tmp_path, tiny_spec):
    tiny_spec.contract = "nocolon"
    package = cc.build_package(tiny_spec, tmp_path / "bad.tar.gz", wheels=[])
    meta, src = unpack(package, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    built = step("build", src, meta, out)
    assert built.returncode == 1 and "'contract' must be 'module:Class'" in built.stderr


def test_a_prebuilt_executable_is_launched_with_the_peers_address_and_tls_files(tmp_path):
    """The Go shim's way: -peer.address, CORE_CHAINCODE_ID_NAME, CORE_PEER_TLS_ENABLED and the key,
    certificate and root files (the key 0600)."""
    exe = tmp_path / "fake-chaincode"
    exe.write_text("#!/bin/sh\n"
                   'printf "%s\\n" "$@" "$CORE_CHAINCODE_ID_NAME" "$CORE_PEER_TLS_ENABLED" "$CORE_PEER_LOCALMSPID"\n'
                   'cat "$CORE_TLS_CLIENT_KEY_FILE" "$CORE_TLS_CLIENT_CERT_FILE" "$CORE_PEER_TLS_ROOTCERT_FILE"\n'
                   'stat -c %a "$CORE_TLS_CLIENT_KEY_FILE"\n')
    package = cc.build_binary_package("fake_1.0", exe, tmp_path / "fake.tar.gz")
    meta, src = unpack(package, tmp_path)
    out, rel, run_meta = tmp_path / "out", tmp_path / "rel", tmp_path / "run"
    for d in (out, rel, run_meta):
        d.mkdir()
    assert step("detect", src, meta).returncode == 0
    built = step("build", src, meta, out)
    assert built.returncode == 0, built.stderr
    assert step("release", out, rel).returncode == 0
    (run_meta / "chaincode.json").write_text(json.dumps({
        "chaincode_id": "fake_1.0:abc", "peer_address": "127.0.0.1:7051", "client_key": "KEY\n",
        "client_cert": "CERT\n", "root_cert": "ROOT\n", "mspid": "OperatorMSP"}))
    ran = step("run", out, run_meta)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split("\n") == ["-peer.address=127.0.0.1:7051", "fake_1.0:abc", "true", "OperatorMSP",
                                      "KEY", "CERT", "ROOT", "600", ""]


def test_a_binary_package_without_its_executable_is_refused(tmp_path):
    package = tmp_path / "empty.tar.gz"
    package.write_bytes(cc._targz([("metadata.json", json.dumps({"type": cc.BINARY_TYPE, "label": "x"}).encode()),
                                   ("code.tar.gz", cc._targz([("README", b"nothing")]))]))
    meta, src = unpack(package, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    built = step("build", src, meta, out)
    assert built.returncode == 1 and "needs bin/chaincode" in built.stderr


# -------------------------------------------------------------------- who customs is (IPLEDGER_CUSTOMS_MSP)

def _recording_package(tmp_path: Path, customs_msp) -> Path:
    """A package whose 'ipledger.chaincode.shim.client' only records what the launcher saw (as the real one would be
    imported: from the package's src/, under python -I -S)."""
    root = tmp_path / "code" / "ipledger"          # packaged as src/ipledger/chaincode/...
    (root / "chaincode" / "shim").mkdir(parents=True)
    (root / "chaincode" / "__init__.py").write_text("")
    (root / "chaincode" / "shim" / "__init__.py").write_text("")
    (root / "chaincode" / "shim" / "client.py").write_text(
        "import json, os, sys\n"
        "from pathlib import Path\n"
        "def main(argv):\n"
        "    seen = {k: os.environ.get(k) for k in ('IPLEDGER_CUSTOMS_MSP', 'PYTHONPATH', 'OTHER', 'MALLOC_ARENA_MAX')}\n"
        "    seen['argv'], seen['isolated'] = argv, sys.flags.isolated\n"
        "    try:\n"
        "        import ssl  # noqa: F401\n"
        "        seen['ssl'] = 'imported'\n"
        "    except ImportError:\n"
        "        seen['ssl'] = 'blocked'\n"
        "    import asyncio\n"
        "    seen['asyncio'] = asyncio.run(asyncio.sleep(0, result='runs'))\n"
        "    import hashlib\n"
        "    seen['sha256'] = hashlib.sha256(b'abc').hexdigest()\n"
        "    Path(argv[1]).with_name('seen.json').write_text(json.dumps(seen))\n"
        "    return 0\n")
    (root / "chaincode" / "contract").mkdir()
    (root / "chaincode" / "contract" / "__init__.py").write_text("class X:\n    def invoke(self, stub, fn, args):\n"
                                                                 "        return None\n")
    spec = cc.ChaincodeSpec(name="rec", version="0.1", contract="ipledger.chaincode.contract:X", sources=[root],
                            customs_msp=customs_msp)
    return cc.build_package(spec, tmp_path / "rec.tar.gz", wheels=[])


@pytest.mark.parametrize("customs_msp, seen", [("CustomsMSP", "CustomsMSP"), ("DouaneMSP", "DouaneMSP"),
                                               (None, None)])
def test_run_gives_the_chaincode_the_customs_msp_of_its_manifest_only(tmp_path, customs_msp, seen):
    package = _recording_package(tmp_path, customs_msp)
    meta, src = unpack(package, tmp_path)
    manifest = json.loads((src / "ipledger-chaincode.json").read_text())
    assert manifest.get("customs_msp") == customs_msp
    out, run_meta = tmp_path / "out", tmp_path / "run"
    out.mkdir()
    run_meta.mkdir()
    built = step("build", src, meta, out)
    assert built.returncode == 0, built.stderr
    assert ("names no customs_msp" in built.stdout) is (customs_msp is None)
    (run_meta / "chaincode.json").write_text("{}")
    # the peer's own environment says otherwise: the package decides
    env = {"PATH": "/usr/bin:/bin", "IPLEDGER_CUSTOMS_MSP": "PeerHostMSP", "PYTHONPATH": "/nowhere", "OTHER": "1"}
    ran = subprocess.run([str(BIN / "run"), str(out), str(run_meta)], capture_output=True, text=True, timeout=60,
                         env=env)
    assert ran.returncode == 0, ran.stderr
    got = json.loads((run_meta / "seen.json").read_text())
    assert got["IPLEDGER_CUSTOMS_MSP"] == seen
    assert got["OTHER"] == "1" and got["isolated"] == 1       # -I ignores PYTHON* settings, not the others
    assert got["argv"] == ["ipledger.chaincode.contract:X", str(run_meta / "chaincode.json")]
    # the shim's TLS to the peer is Python's ssl: the launcher keeps it (and asyncio) usable
    assert got["ssl"] == "imported" and got["asyncio"] == "runs"
    assert got["sha256"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize("peer_setting, seen", [(None, "2"), ("4", "4")])
def test_run_bounds_the_malloc_arenas_unless_the_peer_set_them(tmp_path, peer_setting, seen):
    # glibc: one arena per allocating thread by default; the launcher bounds them (memory, issue 16)
    package = _recording_package(tmp_path, "CustomsMSP")
    meta, src = unpack(package, tmp_path)
    out, run_meta = tmp_path / "out", tmp_path / "run"
    out.mkdir()
    run_meta.mkdir()
    assert step("build", src, meta, out).returncode == 0
    (run_meta / "chaincode.json").write_text("{}")
    env = {"PATH": "/usr/bin:/bin"} | ({"MALLOC_ARENA_MAX": peer_setting} if peer_setting else {})
    ran = subprocess.run([str(BIN / "run"), str(out), str(run_meta)], capture_output=True, text=True, timeout=60,
                         env=env)
    assert ran.returncode == 0, ran.stderr
    assert json.loads((run_meta / "seen.json").read_text())["MALLOC_ARENA_MAX"] == seen


@pytest.mark.parametrize("bad", ["Customs MSP", "", "CustomsMSP\n", 42])
def test_build_refuses_a_customs_msp_that_is_not_an_msp_id(tmp_path, tiny_spec, bad):
    package = cc.build_package(tiny_spec, tmp_path / "p.tar.gz", wheels=[])
    meta, src = unpack(package, tmp_path)
    manifest = json.loads((src / "ipledger-chaincode.json").read_text())
    (src / "ipledger-chaincode.json").write_text(json.dumps({**manifest, "customs_msp": bad}))
    out = tmp_path / "out"
    out.mkdir()
    built = step("build", src, meta, out)
    assert built.returncode == 1 and "'customs_msp' must be an MSP id" in built.stderr


def test_the_code_member_carrying_the_peers_client_key_is_0600_in_the_package(tmp_path):
    """code.tar.gz holds connection.json with the key: extracted from the package (tar xf), it must not be
    0644 — the outer member carries the key as much as the inner one."""
    with_key = cc.build_ccaas_package("hello", "hello_ccaas", "127.0.0.1:9999", tmp_path / "key.tar.gz",
                                      root_cert="PEM", client_cert="CERT", client_key="KEY")
    without = cc.build_ccaas_package("hello", "hello_ccaas", "127.0.0.1:9999", tmp_path / "nokey.tar.gz",
                                     root_cert="PEM")
    with tarfile.open(with_key) as outer:
        assert outer.getmember("code.tar.gz").mode == 0o600
        assert outer.getmember("metadata.json").mode == 0o644
    with tarfile.open(without) as outer:
        assert outer.getmember("code.tar.gz").mode == 0o644
