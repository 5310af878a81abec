"""The Fabric binaries: built with the machine's Go from the Go module proxy.

Fabric v3.1.5 is module ``github.com/hyperledger/fabric`` at a pinned commit
(the tag is not a valid Go version for that module path, so Go derives a
pseudo-version from the commit). Binaries go to a per-user cache keyed by that
version; a second install does nothing.

Environment:
  IPLEDGER_FABRIC_BIN   use the binaries in this directory as they are
  IPLEDGER_FABRIC_HOME  root of the cache (default ~/.cache/ipledger/fabric)
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODULE = "github.com/hyperledger/fabric"
VERSION = "3.1.5"
COMMIT = "86c1172bec37e6590c6b1ae6f847833df48d65fc"
SHORT = COMMIT[:7]
COMMANDS = ("peer", "orderer", "osnadmin", "configtxgen", "configtxlator", "cryptogen")
_LDFLAGS = (
    f"-X {MODULE}/common/metadata.Version={VERSION} "
    f"-X {MODULE}/common/metadata.CommitSHA={SHORT}"
)


class FabricError(RuntimeError):
    """Fabric binaries are missing or could not be built."""


class ModuleUnavailable(FabricError):
    """The Go module proxy refuses to serve the pinned Fabric module version."""


def cache_dir() -> Path:
    root = os.environ.get("IPLEDGER_FABRIC_HOME")
    if root:
        base = Path(root)
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ipledger" / "fabric"
    return base / f"{VERSION}-{SHORT}"


def bin_dir() -> Path:
    override = os.environ.get("IPLEDGER_FABRIC_BIN")
    return Path(override) if override else cache_dir() / "bin"


def missing(directory: Path | None = None) -> list[str]:
    d = directory or bin_dir()
    return [c for c in COMMANDS if not os.access(d / c, os.X_OK)]


def binary(name: str) -> str:
    """Absolute path of one Fabric command; a clear error if it is not installed."""
    path = bin_dir() / name
    if not os.access(path, os.X_OK):
        raise FabricError(
            f"Fabric command '{name}' not found in {bin_dir()}; run 'ipledger fabric install'"
        )
    return str(path)


def installed_version(directory: Path | None = None) -> str:
    d = directory or bin_dir()
    out = subprocess.run([str(d / "peer"), "version"], capture_output=True, text=True, timeout=30)
    return out.stdout


def install(*, force: bool = False, log=print) -> Path:
    """Build the Fabric commands into the cache, unless they are there already."""
    if os.environ.get("IPLEDGER_FABRIC_BIN"):
        d = bin_dir()
        if missing(d):
            raise FabricError(f"IPLEDGER_FABRIC_BIN={d} lacks: {', '.join(missing(d))}")
        log(f"Using Fabric binaries from IPLEDGER_FABRIC_BIN={d}")
        return d
    target = cache_dir() / "bin"
    if not force and not missing(target):
        log(f"Fabric {VERSION} ({SHORT}) already installed in {target}")
        return target
    go = shutil.which("go")
    if not go:
        raise FabricError("Go is not installed (no 'go' on PATH); Fabric is built from source with Go")
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
        env = dict(os.environ, GOBIN=str(Path(tmp) / "bin"), GOFLAGS="-trimpath",
                   GO111MODULE="on")
        step = [go, "mod", "download", "-json", f"{MODULE}@{COMMIT}"]
        log(f"[1/3] Fetching {MODULE}@{SHORT} (Fabric {VERSION}) from the Go module proxy …")
        # `go mod download` needs a module context only for `all`; for module@version it
        # works anywhere. Run it from the temp dir so no go.mod of ours is involved.
        _run(step, env, cwd=tmp, log=log)
        pkgs = [f"{MODULE}/cmd/{c}@{COMMIT}" for c in COMMANDS]
        log(f"[2/3] Compiling {', '.join(COMMANDS)} (about 2 minutes on 2 cores) …")
        _run([go, "install", "-v", "-ldflags", _LDFLAGS, *pkgs], env, cwd=tmp, log=log,
             progress=True)
        built = Path(tmp) / "bin"
        if missing(built):
            raise FabricError(f"go install finished but {', '.join(missing(built))} are missing")
        version = installed_version(built)
        if f"Commit SHA: {SHORT}" not in version:
            raise FabricError(f"built peer does not report commit {SHORT}:\n{version}")
        log("[3/3] Installing into the cache …")
        if target.exists():
            shutil.rmtree(target)
        os.replace(built, target)
    log(f"Fabric {VERSION} ({SHORT}) installed in {target} in {time.monotonic() - started:.0f} s")
    return target


def _run(cmd: list[str], env: dict, cwd: str, log, progress: bool = False) -> None:
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    count = 0
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if progress and not line.startswith(("go: ", "#")):
            count += 1
            if count % 100 == 0:
                log(f"      … {count} packages compiled")
    rc = proc.wait()
    if rc == 0:
        return
    output = "".join(lines[-40:]).strip()
    text = f"command failed (exit {rc}): {' '.join(cmd)}\n{output}"
    if "403 Forbidden" in output or "410 Gone" in output or "not available" in output \
            or "invalid version" in output:
        raise ModuleUnavailable(
            "The Go module proxy does not serve the pinned Fabric module version.\n" + text)
    raise FabricError(text)


def main_install(force: bool = False) -> int:
    try:
        install(force=force)
    except ModuleUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except FabricError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
