"""`ipledger fabric install`: cache hits, missing Go, a proxy that refuses the module."""
import http.server
import os
import shutil
import subprocess
import sys
import threading

import pytest

from network import fabric


def run_install(env_extra: dict, path: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "IPLEDGER_FABRIC_BIN"}
    env.update(env_extra)
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "network.cli", "fabric", "install"],
                          env=env, capture_output=True, text=True, timeout=120)


def fake_cache(root) -> None:
    bin_dir = root / f"{fabric.VERSION}-{fabric.SHORT}" / "bin"
    bin_dir.mkdir(parents=True)
    for cmd in fabric.COMMANDS:
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


@pytest.mark.skipif(shutil.which("go") is None, reason="needs Go to exercise the real go command")
def test_proxy_refusal_is_reported_with_the_command_and_exit_3(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RefusingProxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = run_install({
            "IPLEDGER_FABRIC_HOME": str(tmp_path / "cache"),
            "GOPROXY": f"http://127.0.0.1:{server.server_port}",
            "GONOSUMDB": "github.com/hyperledger/fabric",
            "GOFLAGS": "-mod=mod",
            "GOMODCACHE": str(tmp_path / "modcache"),
        })
    finally:
        server.shutdown()
    assert out.returncode == 3, out.stderr
    assert "does not serve the pinned Fabric module version" in out.stderr
    assert f"go mod download -json {fabric.MODULE}@{fabric.COMMIT}" in out.stderr
    assert "403 Forbidden" in out.stderr
    assert not (tmp_path / "cache" / f"{fabric.VERSION}-{fabric.SHORT}" / "bin").exists()
