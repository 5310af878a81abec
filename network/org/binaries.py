"""The Fabric binaries: built with the machine's Go from a Go module proxy, checksum pinned.

Fabric v3.1.5 is module ``github.com/hyperledger/fabric`` at a pinned commit
(the tag is not a valid Go version for that module path, so Go names it by the
pseudo-version derived from the commit). The module's ``h1:`` checksums are
pinned here: the checksum database has no entry for this version, so the module
is exempted from it (``GONOSUMDB``, this module only) and verified against the
pins instead, whichever proxy or mirror served it. Binaries go to a per-user
cache keyed by that version; a second install does nothing.

Where the module comes from is plain Go: ``GOPROXY`` (default ``go env
GOPROXY``). A module mirror — a directory in the GOPROXY layout, or the URL of
a company's mirror (Athens, Artifactory, …) — can be put in front of it with
``IPLEDGER_GO_MIRROR``; ``scripts/up`` and ``scripts/test`` set it to
``../shared/goproxy`` when that folder holds the pinned version.

Environment:
  IPLEDGER_GO_MIRROR    a module mirror (directory or URL) tried before GOPROXY
  IPLEDGER_FABRIC_BIN   use the binaries in this directory as they are
  IPLEDGER_FABRIC_HOME  root of the cache (default ~/.cache/ipledger/fabric)

Exit codes of ``ipledger fabric install``: 0 installed, 2 error, 3 no proxy
serves the pinned version, 4 the module served does not match the pinned checksum.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODULE = "github.com/hyperledger/fabric"
VERSION = "3.1.5"
COMMIT = "86c1172bec37e6590c6b1ae6f847833df48d65fc"
SHORT = COMMIT[:7]
# The Go version of that commit (Go derives it from the commit time and hash).
PSEUDO_VERSION = "v1.4.0-rc1.0.20260618074816-86c1172bec37"
# go.sum lines of that version: the module zip and its go.mod.
MODULE_SUM = "h1:7g9m3hOBTVxGzJL4K9XjVuO4LmewXUr1AaFSoEV12es="
GO_MOD_SUM = "h1:s+6cJi0dYTy2VzQ3ErEpZ8fbFK04qEi2n1ECeckl0DE="
COMMANDS = ("peer", "orderer", "osnadmin", "configtxgen", "configtxlator", "cryptogen")
_LDFLAGS = (
    f"-X {MODULE}/common/metadata.Version={VERSION} "
    f"-X {MODULE}/common/metadata.CommitSHA={SHORT}"
)


class FabricError(RuntimeError):
    """Fabric binaries are missing or could not be built."""


class ModuleUnavailable(FabricError):
    """No module proxy or mirror in GOPROXY serves the pinned Fabric module version."""


class ChecksumMismatch(FabricError):
    """The Fabric module served differs from the pinned ``h1:`` checksum: it is not v3.1.5 as
    published, so nothing is built from it."""


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


# ----------------------------------------------------------------------------- where the module comes from

def mirror_entry(value: str) -> str:
    """The GOPROXY entry for ``IPLEDGER_GO_MIRROR``: a URL as it is, a directory as ``file://``."""
    if "://" in value:
        return value
    path = Path(value).expanduser().resolve()
    if not path.is_dir():
        raise FabricError(f"IPLEDGER_GO_MIRROR={value}: not a directory (nor a URL) of a Go module mirror")
    return path.as_uri()


def go_environment(go: str, base: dict | None = None) -> dict:
    """The environment of every Go command of the install: the mirror (if any) before GOPROXY,
    and only the Fabric module exempted from the checksum database (it is verified against the
    pinned sums instead)."""
    env = dict(os.environ if base is None else base)
    proxy = env.get("GOPROXY") or _go_env(go, env, "GOPROXY") or "https://proxy.golang.org,direct"
    mirror = env.get("IPLEDGER_GO_MIRROR")
    if mirror:
        proxy = f"{mirror_entry(mirror)},{proxy}"
    exempt = [p for p in env.get("GONOSUMDB", "").split(",") if p]
    if MODULE not in exempt:
        exempt.append(MODULE)
    env.update(GOPROXY=proxy, GONOSUMDB=",".join(exempt), GOFLAGS="-trimpath", GO111MODULE="on")
    return env


def _go_env(go: str, env: dict, name: str) -> str:
    out = subprocess.run([go, "env", name], env=env, capture_output=True, text=True, timeout=60)
    return out.stdout.strip()


def _cached_download(modcache: str) -> Path:
    return Path(modcache) / "cache" / "download" / MODULE / "@v"


def _describe_source(env: dict, was_cached: bool) -> str:
    if was_cached:
        return "the local Go module cache"
    first = env["GOPROXY"].split(",")[0].split("|")[0]
    if first.startswith("file://"):
        if (Path(first[len("file://"):]) / MODULE / "@v" / f"{PSEUDO_VERSION}.zip").is_file():
            return f"the module mirror {first}"
        rest = env["GOPROXY"].split(",", 1)[1] if "," in env["GOPROXY"] else "off"
        return f"GOPROXY {rest} (the mirror {first} does not hold it)"
    return f"GOPROXY {env['GOPROXY']}"


def fetch_module(go: str, env: dict, cwd: str, log=print) -> dict:
    """Download the pinned module version into the Go module cache and check its checksums.

    Returns ``go mod download -json``'s answer. Raises ModuleUnavailable when no proxy serves
    the version, ChecksumMismatch (after removing the module from the cache) when what was
    served is not the pinned module."""
    modcache = _go_env(go, env, "GOMODCACHE")
    was_cached = (_cached_download(modcache) / f"{PSEUDO_VERSION}.ziphash").is_file()
    cmd = [go, "mod", "download", "-json", f"{MODULE}@{PSEUDO_VERSION}"]
    out = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=1800)
    try:
        info = json.loads(out.stdout)
    except ValueError:
        info = {"Error": (out.stdout + out.stderr).strip() or f"exit {out.returncode}"}
    error = info.get("Error")
    if error or out.returncode != 0:
        text = (f"command failed (exit {out.returncode}): {' '.join(cmd)}\n"
                f"GOPROXY={env['GOPROXY']}\n{error or out.stderr.strip()}")
        if any(s in text for s in ("403 Forbidden", "404 Not Found", "410 Gone", "not available",
                                   "invalid version", "unknown revision", "not found")):
            raise ModuleUnavailable(
                "No module proxy in GOPROXY serves the pinned Fabric module version "
                "(set IPLEDGER_GO_MIRROR to a mirror that holds it, see README 'Fabric binaries').\n"
                + text)
        raise FabricError(text)
    for what, field, pinned in (("module zip", "Sum", MODULE_SUM), ("go.mod", "GoModSum", GO_MOD_SUM)):
        served = info.get(field, "")
        if served != pinned:
            _forget(modcache)
            raise ChecksumMismatch(
                f"the {what} of {MODULE}@{PSEUDO_VERSION} served by {_describe_source(env, was_cached)} "
                f"does not match the pinned checksum:\n"
                f"  pinned: {pinned}\n  served: {served or '(none)'}\n"
                f"Nothing was built, and the module was removed from the Go module cache ({modcache}). "
                f"Check the mirror or proxy you use.")
    log(f"      {MODULE}@{PSEUDO_VERSION} from {_describe_source(env, was_cached)}; "
        f"checksum {MODULE_SUM} verified")
    return info


def _forget(modcache: str) -> None:
    """Remove a module version that failed verification from the Go module cache."""
    extracted = Path(modcache) / f"{MODULE}@{PSEUDO_VERSION}"
    targets = [extracted, *_cached_download(modcache).glob(f"{PSEUDO_VERSION}.*")]
    for target in targets:
        if target.is_dir():
            for root, dirs, _ in os.walk(target):  # the module cache is read-only
                os.chmod(root, stat.S_IRWXU)
            shutil.rmtree(target, ignore_errors=True)
        elif target.exists():
            target.unlink()


# ----------------------------------------------------------------------------- build

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
        env = go_environment(go)
        env["GOBIN"] = str(Path(tmp) / "bin")
        log(f"[1/3] Fetching {MODULE}@{SHORT} (Fabric {VERSION}); GOPROXY={env['GOPROXY']} …")
        # module@version needs no module context: run from the temp dir, no go.mod of ours involved.
        fetch_module(go, env, cwd=tmp, log=log)
        pkgs = [f"{MODULE}/cmd/{c}@{PSEUDO_VERSION}" for c in COMMANDS]
        log(f"[2/3] Compiling {', '.join(COMMANDS)} (about 3 minutes on 2 cores when Go's caches are cold) …")
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
    raise FabricError(f"command failed (exit {rc}): {' '.join(cmd)}\n{output}")


def main_install(force: bool = False) -> int:
    try:
        install(force=force)
    except ModuleUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except ChecksumMismatch as e:
        print(f"error: {e}", file=sys.stderr)
        return 4
    except FabricError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
