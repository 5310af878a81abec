"""`ipledger fabric install`: cache hits, missing Go, a proxy that refuses the module, the pinned
checksum against a tampered mirror."""
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from ipledger.network.org import binaries


def run_install(env_extra: dict, path: str | None = None) -> subprocess.CompletedProcess:
    # Only the mirror a test names (scripts/test exports the one beside the clone).
    env = {k: v for k, v in os.environ.items() if k not in ("IPLEDGER_FABRIC_BIN", "IPLEDGER_GO_MIRROR")}
    env.update(env_extra)
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "ipledger.network.cli", "fabric", "install"],
                          env=env, capture_output=True, text=True, timeout=120)


def fake_cache(root) -> None:
    bin_dir = root / f"{binaries.VERSION}-{binaries.SHORT}" / "bin"
    bin_dir.mkdir(parents=True)
    for cmd in binaries.COMMANDS:
        (bin_dir / cmd).write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / cmd).chmod(0o755)


def test_second_install_does_nothing_when_the_cache_is_complete(tmp_path):
    fake_cache(tmp_path)
    # No Go on PATH: a cache hit must not need it.
    out = run_install({"IPLEDGER_FABRIC_HOME": str(tmp_path)}, path="/nonexistent")
    assert out.returncode == 0, out.stderr
    assert "already installed" in out.stdout


def test_missing_go_is_a_clear_error(tmp_path):
    out = run_install({"IPLEDGER_FABRIC_HOME": str(tmp_path)}, path="/nonexistent")
    assert out.returncode == 2
    assert "Go is not installed" in out.stderr


class RefusingProxy(http.server.BaseHTTPRequestHandler):
    """Answers like a module proxy that does not serve the requested version."""

    def do_GET(self):
        body = b"This module version is not available.\n"
        self.send_response(403)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_proxy_refusal_is_reported_with_the_command_and_exit_3(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RefusingProxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = run_install({
            "IPLEDGER_FABRIC_HOME": str(tmp_path / "cache"),
            "GOPROXY": f"http://127.0.0.1:{server.server_port}",
            "GOMODCACHE": str(tmp_path / "modcache"),
        })
    finally:
        server.shutdown()
    assert out.returncode == 3, out.stderr
    assert "No module proxy in GOPROXY serves the pinned Fabric module version" in out.stderr
    assert f"go mod download -json {binaries.MODULE}@{binaries.PSEUDO_VERSION}" in out.stderr
    assert "403 Forbidden" in out.stderr
    assert not (tmp_path / "cache" / f"{binaries.VERSION}-{binaries.SHORT}" / "bin").exists()


# ----------------------------------------------------------------------------- the pinned module checksum

def pristine_mirror() -> Path:
    """A Go module mirror holding the pinned Fabric version: IPLEDGER_GO_MIRROR (scripts/test sets it
    to ../shared/goproxy), or the download cache of the machine's Go module cache (also in the
    GOPROXY layout) once Fabric has been built here."""
    candidates = []
    if os.environ.get("IPLEDGER_GO_MIRROR"):
        candidates.append(Path(os.environ["IPLEDGER_GO_MIRROR"]))
    modcache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True).stdout.strip()
    candidates.append(Path(modcache) / "cache" / "download")
    for c in candidates:
        if (c / binaries.MODULE / "@v" / f"{binaries.PSEUDO_VERSION}.zip").is_file():
            return c
    pytest.fail(f"no module mirror holding {binaries.MODULE}@{binaries.PSEUDO_VERSION} among {candidates}: "
                "run scripts/test (it finds ../shared/goproxy) or set IPLEDGER_GO_MIRROR")


def copy_of_mirror(tmp_path) -> Path:
    src = pristine_mirror() / binaries.MODULE / "@v"
    dst = tmp_path / "mirror" / binaries.MODULE / "@v"
    dst.mkdir(parents=True)
    for name in (f"{binaries.PSEUDO_VERSION}.zip", f"{binaries.PSEUDO_VERSION}.mod", f"{binaries.PSEUDO_VERSION}.info"):
        shutil.copyfile(src / name, dst / name)
    (dst / "list").write_text(binaries.PSEUDO_VERSION + "\n")
    return tmp_path / "mirror"


def mirror_only(tmp_path, mirror: Path) -> dict:
    """Install from this mirror alone, into empty caches of the test's own."""
    return {
        "IPLEDGER_FABRIC_HOME": str(tmp_path / "cache"),
        "IPLEDGER_GO_MIRROR": str(mirror),
        "GOPROXY": "off",
        "GOMODCACHE": str(tmp_path / "modcache"),
    }


def test_the_pinned_sums_are_the_go_sum_lines_of_the_pinned_commit():
    assert binaries.PSEUDO_VERSION.endswith("-" + binaries.COMMIT[:12])
    assert binaries.MODULE_SUM.startswith("h1:") and binaries.GO_MOD_SUM.startswith("h1:")


def test_the_mirror_copy_serves_the_module_with_the_pinned_checksum(tmp_path):
    mirror = copy_of_mirror(tmp_path)
    env = binaries.go_environment("go", {**os.environ, **mirror_only(tmp_path, mirror)})
    lines = []
    try:
        info = binaries.fetch_module("go", env, cwd=str(tmp_path), log=lines.append)
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(tmp_path / "modcache")])
    assert info["Sum"] == binaries.MODULE_SUM and info["GoModSum"] == binaries.GO_MOD_SUM
    assert f"the module mirror {mirror.resolve().as_uri()}" in lines[0]


def test_a_tampered_module_zip_is_refused_naming_both_checksums(tmp_path):
    mirror = copy_of_mirror(tmp_path)
    zip_path = mirror / binaries.MODULE / "@v" / f"{binaries.PSEUDO_VERSION}.zip"
    # The attack: one extra Go file slipped into the peer's sources.
    with zipfile.ZipFile(zip_path, "a") as z:
        z.writestr(f"{binaries.MODULE}@{binaries.PSEUDO_VERSION}/core/peer/backdoor.go",
                   "package peer\n\nfunc init() {}\n")
    out = run_install(mirror_only(tmp_path, mirror))
    subprocess.run(["chmod", "-R", "u+w", str(tmp_path / "modcache")])
    assert out.returncode == 4, out.stderr
    assert "does not match the pinned checksum" in out.stderr
    assert f"pinned: {binaries.MODULE_SUM}" in out.stderr
    served = re.search(r"served: (h1:\S+)", out.stderr)
    assert served and served.group(1) != binaries.MODULE_SUM
    assert f"the module mirror {mirror.resolve().as_uri()}" in out.stderr
    # Nothing built, and the bad module is not left in the module cache for a later build.
    assert not (tmp_path / "cache" / f"{binaries.VERSION}-{binaries.SHORT}" / "bin").exists()
    assert not (tmp_path / "modcache" / f"{binaries.MODULE}@{binaries.PSEUDO_VERSION}").exists()
    assert not list((tmp_path / "modcache" / "cache" / "download" / binaries.MODULE / "@v").glob(
        f"{binaries.PSEUDO_VERSION}.zip*"))


def test_only_the_fabric_module_is_exempted_from_the_checksum_database(tmp_path):
    env = binaries.go_environment("go", {"PATH": os.environ["PATH"], "HOME": str(tmp_path),
                                       "GOPROXY": "https://proxy.example",
                                       "GONOSUMDB": "corp.example/*",
                                       "IPLEDGER_GO_MIRROR": str(tmp_path)})
    assert env["GONOSUMDB"] == f"corp.example/*,{binaries.MODULE}"
    assert env["GOPROXY"] == f"{tmp_path.resolve().as_uri()},https://proxy.example"
    # The checksum database stays on for every other module.
    assert not {"GOSUMDB", "GONOSUMCHECK", "GOINSECURE", "GOPRIVATE"} & env.keys()
    assert "insecure" not in env["GOFLAGS"]


def test_a_mirror_url_is_used_as_it_is_and_a_missing_directory_is_a_clear_error(tmp_path):
    assert binaries.mirror_entry("https://athens.corp.example") == "https://athens.corp.example"
    out = run_install({"IPLEDGER_FABRIC_HOME": str(tmp_path / "cache"),
                       "IPLEDGER_GO_MIRROR": str(tmp_path / "nowhere")})
    assert out.returncode == 2
    assert f"IPLEDGER_GO_MIRROR={tmp_path / 'nowhere'}: not a directory" in out.stderr
