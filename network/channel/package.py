"""Chaincode packages: what the peers install, built reproducibly from this repository.

A package is Fabric's format (``metadata.json`` + ``code.tar.gz`` in a tar.gz) with ipledger's
type ``ipledger-python``: the Python source (the contract as ``src/ipledger/chaincode/``), every
runtime dependency as a wheel (peers install offline), and a manifest naming the contract class.
The external builder in ``chaincode/builder`` turns it into a running chaincode. Packages are
byte-for-byte reproducible, so packaging the same source twice gives the same package id.
A chaincode-as-a-service package (``ipledger-ccaas``) holds only where the peer dials the
organisation's chaincode service; a binary package (``ipledger-binary``) one executable.

Their life on the channel (install, approve, commit) is :mod:`ipledger.network.channel.chaincode`'s.
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import io
import json
import re
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from ipledger.network.errors import NetworkError
from ipledger.network.files import write_atomically

REPO_ROOT = Path(__file__).resolve().parents[2]
CHAINCODE_DIR = REPO_ROOT / "chaincode"
PACKAGE_TYPE = "ipledger-python"
CCAAS_TYPE = "ipledger-ccaas"
BINARY_TYPE = "ipledger-binary"
_EXCLUDE_DIRS = {"__pycache__", "builder", "testing"}


class LifecycleError(NetworkError):
    """The contract cannot be packaged, installed, approved or committed as asked; the message says why and
    what to do (nothing is left half done on the channel: a definition is committed whole or not at all)."""


@dataclass
class ChaincodeSpec:
    """What to deploy: a name, a contract, its source and its channel-level settings."""

    name: str = "ipledger"
    version: str = "1.0"
    contract: str = "ipledger.chaincode.contract:InwardProcessingContract"
    # Directories copied under src/ (package name = directory name).
    sources: list[Path] = field(default_factory=lambda: [CHAINCODE_DIR])
    requirements: Path = CHAINCODE_DIR / "requirements.txt"
    signature_policy: str | None = None
    collections_config: Path | None = None
    # The ipledger contract: its endorsement policy, its 'commercial' collection and the customs
    # MSP id its package names come from each channel's members (:meth:`Deployer.settle`).
    from_consortium: bool = False
    customs_msp: str | None = None

    @classmethod
    def default(cls) -> "ChaincodeSpec":
        """The ipledger contract, its channel settings taken from the consortium at deployment."""
        return cls(from_consortium=True)

    @property
    def label(self) -> str:
        return f"{self.name}_{self.version}"


# ----------------------------------------------------------------------------- packaging

def pinned_requirements(requirements: Path) -> list[str]:
    """The runtime requirements named in ``requirements`` and every requirement of theirs (their markers as this
    Python reads them, extras left out), each pinned to the version installed here: what is shipped is what was
    tested, the same versions wherever and whenever it is packaged — not an indirect dependency in whatever
    version the index offers that day (two organisations packaging the contract a month apart would run
    different code)."""
    from packaging.requirements import Requirement   # noqa: PLC0415
    names = [line.split("#")[0].strip() for line in requirements.read_text().splitlines()]
    pins: dict[str, str] = {}
    todo = [name for name in names if name]
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in pins:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError as e:
            raise LifecycleError(f"requirement {name!r} is not installed here") from e
        pins[key] = f"{dist.metadata['Name']}=={dist.version}"
        for text in dist.requires or ():
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return [pins[key] for key in sorted(pins)]


def download_wheels(pins: list[str], cache_root: Path, log=print) -> list[Path]:
    """Wheels for ``pins`` — every requirement, each pinned (:func:`pinned_requirements`): nothing else is
    resolved — binary only, cached per pin set."""
    key = hashlib.sha256("\n".join(sorted(pins)).encode()).hexdigest()[:16]
    dest = cache_root / key
    done = dest / ".complete"
    if not done.exists():
        log(f"  downloading wheels for {', '.join(pins)}")
        dest.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
             "--only-binary=:all:", "--no-deps", "--dest", str(dest), *pins],
            capture_output=True, text=True)
        if proc.returncode != 0:
            raise LifecycleError(f"pip download failed:\n{proc.stderr[-3000:]}")
        done.touch()
    return sorted(dest.glob("*.whl"))


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


def _targz(entries: list[tuple[str, bytes]], private: frozenset[str] = frozenset()) -> bytes:
    """A deterministic .tar.gz of ``entries``; those named in ``private`` (holding a key) with mode 0600,
    which Fabric keeps when it extracts the package and our builder when it copies the file."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in sorted(entries):
            _add(tar, name, data, 0o600 if name in private else 0o644)
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def _source_entries(src: Path) -> list[tuple[str, bytes]]:
    """The files of source folder ``src`` under ``src/`` of the package: the contract's own folder as
    ``src/ipledger/chaincode/`` (its import name), any other folder (a test contract) under its name."""
    dest = "ipledger/chaincode" if src.resolve() == CHAINCODE_DIR.resolve() else src.name
    entries = []
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if any(part in _EXCLUDE_DIRS or part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and path.suffix not in (".pyc",):
            entries.append((f"src/{dest}/{rel.as_posix()}", path.read_bytes()))
    return entries


def build_package(spec: ChaincodeSpec, out: Path, wheels: list[Path]) -> Path:
    code = [(f"wheels/{w.name}", w.read_bytes()) for w in wheels]
    for src in spec.sources:
        code += _source_entries(src)
    manifest = {"contract": spec.contract, "name": spec.name, "version": spec.version,
                **({"customs_msp": spec.customs_msp} if spec.customs_msp else {})}
    code.append(("ipledger-chaincode.json", json.dumps(manifest, sort_keys=True).encode()))
    metadata = json.dumps({"type": PACKAGE_TYPE, "label": spec.label}).encode()
    return write_atomically(out, _targz([("metadata.json", metadata), ("code.tar.gz", _targz(code))]))


def build_ccaas_package(name: str, label: str, address: str, out: Path,
                        root_cert: str = "", client_cert: str = "", client_key: str = "") -> Path:
    """A chaincode-as-a-service package: the peer dials ``address``, launches nothing."""
    conn = {"address": address, "dial_timeout": "10s",
            "tls_required": bool(root_cert), "client_auth_required": bool(client_cert),
            "root_cert": root_cert, "client_cert": client_cert, "client_key": client_key}
    code = _targz([("connection.json", json.dumps(conn, sort_keys=True).encode())],   # the peers' client TLS key
                  private=frozenset({"connection.json"}))
    metadata = json.dumps({"type": CCAAS_TYPE, "label": label}).encode()
    # with the peers' client key for the service in it: 0600 from its creation on, and so is the member
    # code.tar.gz that carries it (extracted from the package, it holds the key as much as connection.json)
    private = frozenset({"code.tar.gz"}) if client_key else frozenset()
    return write_atomically(out, _targz([("metadata.json", metadata), ("code.tar.gz", code)], private=private),
                            0o600 if client_key else 0o644)


def build_binary_package(label: str, executable: Path, out: Path) -> Path:
    """A prebuilt chaincode executable the peer launches through the ipledger builder (e.g. a Go
    chaincode; bench/compare.py runs Fabric's kvexecutor this way)."""
    code = _targz([("bin/chaincode", Path(executable).read_bytes())])
    metadata = json.dumps({"type": BINARY_TYPE, "label": label}).encode()
    return write_atomically(out, _targz([("metadata.json", metadata), ("code.tar.gz", code)]))


def package_label(path: Path) -> str:
    with tarfile.open(path) as tar:
        return json.loads(tar.extractfile("metadata.json").read())["label"]


def package_id(path: Path, label: str | None = None) -> str:
    """Fabric's package id: label + SHA-256 of the package file."""
    label = label or package_label(path)
    return f"{label}:{hashlib.sha256(path.read_bytes()).hexdigest()}"
