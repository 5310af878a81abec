"""Container images built on this machine from local material only.

One file: the build plan, the hashing of its inputs and the two ways of building (the base
by debootstrap, the rest by Dockerfile) depend on each other's details and are read together.

No registry is involved anywhere: the base image is a Debian bookworm root file system made
with ``debootstrap`` from Debian's packages and imported into the engine (``docker import``);
every other image is built ``FROM`` it (or ``FROM scratch`` for static binaries) with a
Dockerfile from ``network/org/containers/dockerfiles/`` and a build context assembled here:

``base``      Debian bookworm, minbase + python3, python3-venv, ca-certificates
``peer``      the cached Fabric ``peer`` (network/org/binaries.py), Fabric's default core.yaml, the
              ipledger external builder (chaincode/builder) and a virtualenv to run it
``orderer``   the cached ``orderer`` and ``osnadmin``, Fabric's default orderer.yaml
``ccaas``     the contract served by chaincode/shim/server.py (chaincode as a service), its pinned
              dependencies installed offline from the wheels network/channel/chaincode.py downloads
``gateway``   the ipledger project (a wheel built here) and its pinned dependencies, from wheels

Caching: an image's tag carries a hash of everything that goes into it — the rendered
Dockerfile (which names the parent's tag, so a new base rebuilds everything above it), the
bytes and modes of every file copied in, the Fabric version, and for the gateway the project's
source files the wheel is built from. A tag that exists in the engine is not built again.
What the hash cannot see: Debian's archive moves on (security updates) while the base recipe
stays the same, so ``build --force base`` makes a fresh base when wanted.

The Docker SDK for Python (``docker`` on PyPI) is imported only when talking to the engine:
planning, hashing and rendering need neither the package nor a daemon (the unit tests).
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from ipledger.network.org import binaries

REPO_ROOT = Path(__file__).resolve().parents[3]
DOCKERFILES = Path(__file__).resolve().parent / "dockerfiles"
# Images are named under a registry host that never resolves (RFC 2606 ".invalid"): no engine, compose or Kubernetes
# pulls an image of this name from anywhere — under a plain "ipledger/…" a missing tag resolves to Docker Hub,
# where anyone may hold that namespace and the organisation's keys would be mounted into its image.
NAMESPACE = "ipledger.invalid"
LEGACY_NAMESPACE = "ipledger"    # the images' name before: adopted when built here with the same inputs
LABEL = "org.ipledger"           # label prefix on every image built here
BASE_SUITE = "bookworm"
BASE_VARIANT = "minbase"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# What is removed from the debootstrapped tree before it is imported (part of the base's hash): caches and docs,
# and what debootstrap copies of the build host — its mirror's URL (credentials it may carry) in apt's sources,
# its host name and resolver (the engine gives every container its own).
BASE_CLEANUP = (
    "var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*",
    "usr/share/doc/*", "usr/share/man/*", "usr/share/info/*", "var/log/*.log",
    "var/log/apt/*", "tmp/*",
    "etc/apt/sources.list", "etc/apt/sources.list.d/*", "etc/hostname", "etc/resolv.conf",
)
# ``docker import --change`` instructions of the base image (part of its hash).
BASE_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
)
SCRATCH = "scratch"
_PLACEHOLDER = "@BASE@"


class ImageError(RuntimeError):
    """An image cannot be planned or built; the message says why."""


def cache_dir() -> Path:
    """Where downloaded .debs and wheels are kept between builds (IPLEDGER_CONTAINERS_CACHE)."""
    root = os.environ.get("IPLEDGER_CONTAINERS_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ipledger" / "containers"


# ----------------------------------------------------------------------------- inputs

@dataclass(frozen=True)
class Input:
    """One file of a build context: ``dest`` (relative, posix) from a file here or from bytes."""

    dest: str
    source: Path | None = None
    data: bytes | None = None
    mode: int = 0o644

    def __post_init__(self):
        if (self.source is None) == (self.data is None):
            raise ValueError(f"{self.dest}: give a source file or data, not both or neither")
        if self.dest.startswith("/") or ".." in Path(self.dest).parts:
            raise ValueError(f"{self.dest}: a build context path must be relative and inside it")

    def read(self) -> bytes:
        return self.data if self.data is not None else Path(self.source).read_bytes()

    def digest(self) -> str:
        if self.data is not None:
            return hashlib.sha256(self.data).hexdigest()
        return _file_digest(Path(self.source))

    def write(self, root: Path) -> None:
        target = root / self.dest
        target.parent.mkdir(parents=True, exist_ok=True)
        if self.source is not None:
            shutil.copyfile(self.source, target)
        else:
            target.write_bytes(self.data)
        target.chmod(self.mode)


_digests: dict[tuple[str, int, int], str] = {}


def _file_digest(path: Path) -> str:
    """SHA-256 of a file, remembered per (path, size, mtime) within this process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _digests:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _digests[key] = h.hexdigest()
    return _digests[key]


def file_input(dest: str, path: Path, mode: int | None = None) -> Input:
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: missing (needed as {dest} in a build context)")
    if mode is None:
        mode = 0o755 if os.access(path, os.X_OK) else 0o644
    return Input(dest, source=path, mode=mode)


def tree_inputs(dest: str, root: Path, exclude: Iterable[str] = ("__pycache__",)) -> list[Input]:
    """Every file under ``root`` (skipping ``exclude`` directories, dot files and .pyc) as inputs
    under ``dest``, in a stable order."""
    out = []
    skip = set(exclude)
    for path in sorted(Path(root).rglob("*")):
        rel = path.relative_to(root)
        if any(p in skip or p.startswith(".") for p in rel.parts) or path.suffix == ".pyc":
            continue
        if path.is_file():
            out.append(file_input(f"{dest}/{rel.as_posix()}" if dest else rel.as_posix(), path))
    return out


# ----------------------------------------------------------------------------- specs and plan

@dataclass
class ImageSpec:
    """What one image is made of.

    ``kind`` is ``dockerfile`` (``template`` is a Dockerfile whose ``@BASE@`` becomes the parent's
    tag, or ``scratch``) or ``rootfs`` (the base: ``template`` is the recipe text, built by
    debootstrap). ``inputs`` are copied into the build context and hashed; ``hashed`` are hashed
    only (the sources a ``prepare`` step turns into context files at build time, e.g. a wheel)."""

    name: str
    template: str
    kind: str = "dockerfile"
    parent: str | None = None           # the name of another spec, or SCRATCH, or None (rootfs)
    inputs: list[Input] = field(default_factory=list)
    hashed: list[Input] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    version: str = "0"                  # first part of the tag, before the hash
    prepare: Callable[[Path, Callable], list[Input]] | None = None
    description: str = ""

    @property
    def repository(self) -> str:
        return f"{NAMESPACE}/{self.name}"


def render(template: str, parent_ref: str) -> str:
    """The Dockerfile: ``@BASE@`` replaced by the parent's tag (or ``scratch``)."""
    if _PLACEHOLDER not in template:
        raise ImageError("a Dockerfile template must say FROM @BASE@")
    return template.replace(_PLACEHOLDER, parent_ref)


def input_hash(spec: ImageSpec, rendered: str) -> str:
    """SHA-256 of what goes into the image: the rendered Dockerfile (with the parent's tag), the
    copied files (path, mode, content) and the hashed-only sources, and ``extra``."""
    files = sorted({(i.dest, i.mode, i.digest()) for i in spec.inputs})
    hashed = sorted({(i.dest, i.digest()) for i in spec.hashed})
    dests = [d for d, _, _ in files]
    if len(dests) != len(set(dests)):
        raise ImageError(f"{spec.name}: two different files for the same context path")
    doc = {"name": spec.name, "kind": spec.kind, "dockerfile": rendered, "files": files,
           "hashed": hashed, "extra": spec.extra}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Step:
    spec: ImageSpec
    tag: str                 # repository:version-hash
    digest: str              # the full input hash
    dockerfile: str          # rendered (the recipe text for the rootfs base)
    cached: bool             # the tag exists in the engine: nothing to build

    @property
    def action(self) -> str:
        return "cached" if self.cached else "build"


def plan(specs: list[ImageSpec], exists: Callable[[str], bool] = lambda tag: False,
         force: Iterable[str] = ()) -> list[Step]:
    """The images in build order (parents first) with their tags and whether they are cached.

    ``exists(tag)`` tells whether the engine has a tag; ``force`` names images to rebuild anyway
    (which also changes nothing in the tags above: a rebuilt base keeps its tag)."""
    by_name = {s.name: s for s in specs}
    force = set(force)
    unknown = force - set(by_name)
    if unknown:
        raise ImageError(f"no image named {', '.join(sorted(unknown))} (images: {', '.join(by_name)})")
    tags: dict[str, str] = {}
    steps: list[Step] = []
    visiting: set[str] = set()

    def visit(spec: ImageSpec) -> None:
        if spec.name in tags:
            return
        if spec.name in visiting:
            raise ImageError(f"image {spec.name} is its own parent")
        visiting.add(spec.name)
        if spec.kind == "rootfs":
            rendered = spec.template
        else:
            if spec.parent == SCRATCH:
                parent_ref = SCRATCH
            elif spec.parent in by_name:
                visit(by_name[spec.parent])
                parent_ref = tags[spec.parent]
            else:
                raise ImageError(f"image {spec.name}: parent {spec.parent!r} is not planned")
            rendered = render(spec.template, parent_ref)
        digest = input_hash(spec, rendered)
        tag = f"{spec.repository}:{spec.version}-{digest[:12]}"
        tags[spec.name] = tag
        cached = spec.name not in force and exists(tag)
        steps.append(Step(spec, tag, digest, rendered, cached))
        visiting.discard(spec.name)

    for s in specs:
        visit(s)
    return steps


# ----------------------------------------------------------------------------- what is built here

def is_static(path: Path) -> bool:
    """Whether an ELF executable is statically linked (has no PT_INTERP program header)."""
    data = Path(path).read_bytes()[:1 << 16]
    if data[:4] != b"\x7fELF":
        raise ImageError(f"{path}: not an ELF executable")
    is64, little = data[4] == 2, data[5] == 1
    e = "<" if little else ">"
    if is64:
        phoff, = struct.unpack_from(e + "Q", data, 0x20)
        phentsize, phnum = struct.unpack_from(e + "HH", data, 0x36)
    else:
        phoff, = struct.unpack_from(e + "I", data, 0x1C)
        phentsize, phnum = struct.unpack_from(e + "HH", data, 0x2A)
    with open(path, "rb") as f:
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    for i in range(phnum):
        p_type, = struct.unpack_from(e + "I", table, i * phentsize)
        if p_type == 3:  # PT_INTERP: needs a dynamic loader (and so a libc in the image)
            return False
    return True


def sampleconfig_dir() -> Path:
    """Fabric's ``sampleconfig`` (default core.yaml, orderer.yaml) from the pinned module in Go's
    module cache, where ``ipledger fabric install`` put it (IPLEDGER_FABRIC_SAMPLECONFIG overrides)."""
    override = os.environ.get("IPLEDGER_FABRIC_SAMPLECONFIG")
    if override:
        return Path(override)
    candidates = []
    if os.environ.get("GOMODCACHE"):
        candidates.append(Path(os.environ["GOMODCACHE"]))
    go = shutil.which("go")
    if go:
        out = subprocess.run([go, "env", "GOMODCACHE"], capture_output=True, text=True, timeout=60)
        if out.stdout.strip():
            candidates.append(Path(out.stdout.strip()))
    candidates.append(Path(os.environ.get("GOPATH", Path.home() / "go")) / "pkg" / "mod")
    for modcache in candidates:
        d = modcache / f"{binaries.MODULE}@{binaries.PSEUDO_VERSION}" / "sampleconfig"
        if (d / "core.yaml").is_file():
            return d
    raise ImageError(f"Fabric's sampleconfig (core.yaml, orderer.yaml) of {binaries.MODULE}@"
                     f"{binaries.PSEUDO_VERSION} is not in Go's module cache: run 'ipledger fabric "
                     "install --force', or set IPLEDGER_FABRIC_SAMPLECONFIG")


def debian_mirror(sources: Iterable[Path] = (Path("/etc/apt/sources.list"),
                                             Path("/etc/apt/sources.list.d"))) -> str:
    """The Debian mirror this machine's apt uses for the main archive (IPLEDGER_DEBIAN_MIRROR
    overrides), so debootstrap uses the mirror that works here."""
    if os.environ.get("IPLEDGER_DEBIAN_MIRROR"):
        return os.environ["IPLEDGER_DEBIAN_MIRROR"]
    files: list[Path] = []
    for s in sources:
        s = Path(s)
        if s.is_dir():
            files += sorted(s.glob("*.list")) + sorted(s.glob("*.sources"))
        elif s.is_file():
            files.append(s)
    for f in files:
        text = f.read_text(errors="replace")
        found = mirror_from_sources(text)
        if found:
            return found
    return DEFAULT_MIRROR


def mirror_from_sources(text: str) -> str | None:
    """The first URI serving ``bookworm`` (not -security) in a one-line or deb822 sources text."""
    for line in text.splitlines():
        m = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
        if m and m.group(2) == BASE_SUITE:
            return m.group(1).rstrip("/")
    for stanza in re.split(r"\n\s*\n", text):
        fields = {}
        for line in stanza.splitlines():
            m = re.match(r"([A-Za-z-]+):\s*(.*)", line)
            if m:
                fields[m.group(1).lower()] = m.group(2).split()
        if "deb" in fields.get("types", []) and BASE_SUITE in fields.get("suites", []):
            uris = fields.get("uris", [])
            if uris:
                return uris[0].rstrip("/")
    return None


def base_recipe() -> str:
    """The text the base image's hash is taken of: suite, variant, packages, clean-up, changes."""
    return "\n".join([
        f"debootstrap --variant={BASE_VARIANT} --include={','.join(BASE_PACKAGES)} {BASE_SUITE}",
        "remove: " + " ".join(BASE_CLEANUP),
        *(f"change: {c}" for c in BASE_CHANGES),
    ]) + "\n"


def dockerfile_template(name: str) -> str:
    return (DOCKERFILES / f"{name}.Dockerfile").read_text()


def project_requirements(pyproject: Path = REPO_ROOT / "pyproject.toml") -> list[str]:
    """The project's runtime dependencies by name (pyproject.toml's ``dependencies``)."""
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return [re.split(r"[\s<>=!~;\[(]", d.strip(), maxsplit=1)[0] for d in deps]


def chaincode_wheels(log=print) -> list[Path]:
    """The contract's runtime dependencies as wheels: the same pins and download as a chaincode
    package (network/channel/package.py), kept in this cache."""
    from ipledger.network.channel import package
    pins = package.pinned_requirements(package.CHAINCODE_DIR / "requirements.txt")
    return package.download_wheels(pins, cache_dir() / "wheels", log)


def gateway_wheels(log=print) -> list[Path]:
    """The project's runtime dependencies as wheels, pinned to the versions installed here (the
    pinning and download of network/channel/chaincode.py, given pyproject's dependency names)."""
    from ipledger.network.channel import package
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text("\n".join(project_requirements()) + "\n")
        pins = package.pinned_requirements(req)
    return package.download_wheels(pins, cache_dir() / "wheels", log)


def project_sources(root: Path = REPO_ROOT) -> list[Input]:
    """What the project wheel is built from (hashed for the gateway's tag): pyproject.toml and,
    in the packages setuptools includes (chaincode, gateway, network), the files the wheel takes
    (``*.py`` and pyproject's package-data patterns) — so a Dockerfile edit under network/
    does not rebuild the gateway."""
    meta = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = ["*.py", *meta.get("tool", {}).get("setuptools", {}).get("package-data", {}).get("*", [])]
    out = [file_input("pyproject.toml", root / "pyproject.toml")]
    for pkg in ("chaincode", "gateway", "network"):
        out += [i for i in tree_inputs(f"src/{pkg}", root / pkg)
                if any(fnmatch.fnmatch(Path(i.dest).name, p) for p in patterns)]
    return out


def build_project_wheel(dest: Path, log=print, root: Path = REPO_ROOT) -> list[Input]:
    """``pip wheel`` of this tree (no dependencies) into the build context's wheels/."""
    with tempfile.TemporaryDirectory() as tmp:
        # Build from a copy: setuptools writes build/ and *.egg-info into the source tree.
        src = Path(tmp) / "src"
        shutil.copytree(root, src, ignore=shutil.ignore_patterns(
            ".git", ".venv", ".ipledger", "*.egg-info", "__pycache__", "build", "dist",
            "test-artifacts", ".pytest_cache", ".hypothesis", "tests", "bench", "docs"))
        out = Path(tmp) / "out"
        log("      building the ipledger wheel from this tree")
        proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                               "--disable-pip-version-check", "--wheel-dir", str(out), str(src)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise ImageError(f"building the ipledger wheel failed:\n{proc.stderr[-3000:]}")
        wheels = sorted(out.glob("ipledger-*.whl"))
        if len(wheels) != 1:
            raise ImageError(f"expected one ipledger wheel, got {[w.name for w in wheels]}")
        inp = Input(f"wheels/{wheels[0].name}", data=wheels[0].read_bytes())
    inp.write(dest)
    return [inp]


def chaincode_sources() -> list[Input]:
    """The chaincode's Python sources exactly as a chaincode package holds them (network/
    channel/chaincode.py's selection: no builder/, no testing/), under src/ipledger/chaincode/."""
    from ipledger.network.channel import package
    return [Input(name, data=data) for name, data in package._source_entries(package.CHAINCODE_DIR)]


def project_version() -> str:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]


# The reports' Unicode font (gateway/reports.py looks for it there), copied from the host's Debian package
# fonts-dejavu-core into the gateway image: the image is built offline, no apt in it
REPORT_FONTS = Path("/usr/share/fonts/truetype/dejavu")
REPORT_FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf")


def report_fonts(directory: Path = REPORT_FONTS) -> list[Input]:
    missing = [f for f in REPORT_FONT_FILES if not (directory / f).is_file()]
    if missing:
        raise ImageError(f"{', '.join(missing)} missing in {directory}: install Debian's fonts-dejavu-core "
                         "(the gateway's PDF reports use it)")
    return [file_input(f"fonts/{f}", directory / f, 0o644) for f in REPORT_FONT_FILES]


def default_specs(*, fabric_bin: Path | None = None, sampleconfig: Path | None = None,
                  cc_wheels: list[Path] | None = None, gw_wheels: list[Path] | None = None,
                  fonts: Path = REPORT_FONTS, log=print) -> list[ImageSpec]:
    """The five images (docs/containers.md), from this machine's Fabric binaries, sampleconfig and wheels
    (each may be given, e.g. by tests)."""
    fabric_bin = Path(fabric_bin or binaries.bin_dir())
    missing = [c for c in ("peer", "orderer", "osnadmin") if not (fabric_bin / c).is_file()]
    if missing:
        raise ImageError(f"Fabric binaries missing in {fabric_bin} ({', '.join(missing)}): "
                         "run 'ipledger fabric install'")
    sampleconfig = Path(sampleconfig or sampleconfig_dir())
    cc_wheels = chaincode_wheels(log) if cc_wheels is None else cc_wheels
    gw_wheels = gateway_wheels(log) if gw_wheels is None else gw_wheels
    fabric_extra = {"fabric": binaries.VERSION, "commit": binaries.COMMIT}
    orderer_static = is_static(fabric_bin / "orderer") and is_static(fabric_bin / "osnadmin")
    version = project_version()
    return [
        ImageSpec("base", base_recipe(), kind="rootfs", version=BASE_SUITE,
                  extra={"suite": BASE_SUITE}, description="Debian bookworm + Python 3 (debootstrap)"),
        ImageSpec("peer", dockerfile_template("peer"), parent="base", version=binaries.VERSION,
                  extra=fabric_extra, description="Fabric peer + ipledger external builder",
                  inputs=[file_input("bin/peer", fabric_bin / "peer", 0o755),
                          file_input("config/core.yaml", sampleconfig / "core.yaml", 0o644),
                          *tree_inputs("builder", REPO_ROOT / "chaincode" / "builder")]),
        ImageSpec("orderer", dockerfile_template("orderer"),
                  parent=SCRATCH if orderer_static else "base", version=binaries.VERSION,
                  extra={**fabric_extra, "static": orderer_static},
                  description="Fabric orderer + osnadmin" + (" (static, FROM scratch)"
                                                             if orderer_static else ""),
                  inputs=[file_input("bin/orderer", fabric_bin / "orderer", 0o755),
                          file_input("bin/osnadmin", fabric_bin / "osnadmin", 0o755),
                          file_input("config/orderer.yaml", sampleconfig / "orderer.yaml", 0o644)]),
        ImageSpec("ccaas", dockerfile_template("ccaas"), parent="base", version=version,
                  description="the contract as a chaincode service (chaincode/shim/server.py)",
                  inputs=[*(file_input(f"wheels/{w.name}", w, 0o644) for w in cc_wheels),
                          *chaincode_sources()]),
        ImageSpec("gateway", dockerfile_template("gateway"), parent="base", version=version,
                  description="the REST gateway (the ipledger wheel and its dependencies)",
                  inputs=[*(file_input(f"wheels/{w.name}", w, 0o644) for w in gw_wheels), *report_fonts(fonts)],
                  hashed=project_sources(), prepare=build_project_wheel),
    ]


# ----------------------------------------------------------------------------- the engine

def client():
    """A Docker SDK client for the engine DOCKER_HOST names (default: the local socket)."""
    try:
        import docker  # noqa: PLC0415  (only here: planning needs neither the package nor a daemon)
    except ImportError as e:
        raise ImageError("the Docker SDK for Python is not installed: "
                         ".venv/bin/pip install docker") from e
    host = os.environ.get("DOCKER_HOST", "")
    if host.split("://", 1)[0] in ("tcp", "http", "https") and not os.environ.get("DOCKER_TLS_VERIFY"):
        # whoever reaches that port runs containers with the organisation's keys mounted: TLS or nothing
        raise ImageError(f"DOCKER_HOST={host} without DOCKER_TLS_VERIFY: an engine over plain TCP is refused "
                         "(set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH, or use the local socket)")
    try:
        c = docker.from_env(timeout=600)
        c.ping()
    except Exception as e:  # noqa: BLE001  (the SDK raises several kinds; the message matters)
        raise ImageError(f"no Docker engine answers ({os.environ.get('DOCKER_HOST', 'the local socket')}): "
                         f"{e}") from e
    return c


def tag_exists(c, tag: str) -> bool:
    """Whether the engine holds ``tag`` as built here: an image whose label says it was made from the inputs the
    tag's hash names (``org.ipledger.inputs``, which every build and import here sets). Any other image of that
    name — one from a registry — is not taken for it: the build replaces the tag. (Digests say nothing either
    way: the containerd image store gives one to every image, an image pushed to the organisation's registry
    has one.)"""
    import docker.errors  # noqa: PLC0415
    try:
        image = c.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    inputs = ((image.attrs.get("Config") or {}).get("Labels") or {}).get(f"{LABEL}.inputs") or ""
    return bool(inputs) and tag.rsplit("-", 1)[-1] == inputs[:12]


def adopt_legacy(c, tag: str) -> bool:
    """The image of ``tag`` built here under its former name (:data:`LEGACY_NAMESPACE`, the same inputs hash),
    tagged with its current name: no rebuild for a rename. Only the base can be: the others' hashes cover their
    ``FROM``, which names the base by its current name. False when there is none."""
    repo, version = tag.rsplit(":", 1)
    if not repo.startswith(f"{NAMESPACE}/"):
        return False
    legacy = f"{LEGACY_NAMESPACE}/{repo[len(NAMESPACE) + 1:]}:{version}"
    if not tag_exists(c, legacy):
        return False
    c.images.get(legacy).tag(repo, version)
    return tag_exists(c, tag)


def _without_credentials(url: str) -> str:
    """``url`` as it may be shown: a user and password in it replaced by ``***``."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://)[^/@]*@", r"\1***@", url, flags=re.IGNORECASE)


def build_rootfs(step: Step, c, log=print, mirror: str | None = None) -> None:
    """debootstrap bookworm into a temporary directory, clean it, import it as ``step.tag``."""
    if os.geteuid() != 0:
        raise ImageError("the base image's root file system is made with debootstrap, which needs root")
    debootstrap = shutil.which("debootstrap") or ("/usr/sbin/debootstrap"
                                                  if Path("/usr/sbin/debootstrap").exists() else None)
    if not debootstrap:
        raise ImageError("debootstrap is not installed (apt-get install -y debootstrap)")
    mirror = mirror or debian_mirror()
    debs = cache_dir() / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ipledger-rootfs-") as tmp:
        root = Path(tmp) / "rootfs"
        # --force-check-gpg: without Debian's keyring debootstrap would go on with an unverified archive
        cmd = [debootstrap, "--force-check-gpg", f"--variant={BASE_VARIANT}", f"--include={','.join(BASE_PACKAGES)}",
               f"--cache-dir={debs}", BASE_SUITE, str(root), mirror]
        log(f"      debootstrap {BASE_SUITE} from {_without_credentials(mirror)} (.debs cached in {debs})")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ImageError(f"debootstrap failed (exit {proc.returncode}):\n"
                             f"{(proc.stdout + proc.stderr)[-3000:]}")
        for pattern in BASE_CLEANUP:
            for p in root.glob(pattern):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
        tar = Path(tmp) / "rootfs.tar"
        proc = subprocess.run(["tar", "--numeric-owner", "--xattrs", "-C", str(root), "-cf",
                               str(tar), "."], capture_output=True, text=True)
        if proc.returncode != 0:
            raise ImageError(f"tar of the root file system failed: {proc.stderr[-2000:]}")
        log(f"      importing the root file system ({tar.stat().st_size / 1e6:.0f} MB)")
        repo, tag = step.tag.rsplit(":", 1)
        c.api.import_image(src=str(tar), repository=repo, tag=tag,
                           changes=[*BASE_CHANGES, f'LABEL {LABEL}.inputs="{step.digest}"',
                                    f'LABEL {LABEL}.image="{step.spec.name}"'])
    if not tag_exists(c, step.tag):
        raise ImageError(f"docker import finished but {step.tag} is not in the engine")


def build_dockerfile(step: Step, c, log=print) -> None:
    """Assemble the build context in a temporary directory and build it with the engine."""
    with tempfile.TemporaryDirectory(prefix=f"ipledger-{step.spec.name}-") as tmp:
        ctx = Path(tmp)
        for inp in step.spec.inputs:
            inp.write(ctx)
        if step.spec.prepare is not None:
            step.spec.prepare(ctx, log)
        (ctx / "Dockerfile").write_text(step.dockerfile)
        (ctx / ".dockerignore").write_text("")
        labels = {f"{LABEL}.inputs": step.digest, f"{LABEL}.image": step.spec.name}
        # no network for the RUN steps (they need none: offline wheels) and no proxy settings passed in
        stream = c.api.build(path=str(ctx), tag=step.tag, rm=True, forcerm=True, decode=True,
                             labels=labels, pull=False, network_mode="none", use_config_proxy=False)
        tail: list[str] = []
        for chunk in stream:
            if "error" in chunk:
                detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                raise ImageError(f"building {step.tag} failed: {detail}\n" + "".join(tail[-20:]))
            text = chunk.get("stream", "")
            if text:
                tail.append(text)
                for line in text.splitlines():
                    if line.startswith("Step "):
                        log(f"      {line.strip()}")
    if not tag_exists(c, step.tag):
        raise ImageError(f"the build finished but {step.tag} is not in the engine")


def image_size(c, tag: str) -> int:
    return int(c.images.get(tag).attrs.get("Size", 0))


@dataclass
class Result:
    name: str
    tag: str
    cached: bool
    seconds: float
    size: int


def build_all(*, only: Iterable[str] = (), force: Iterable[str] = (), specs: list[ImageSpec] | None = None,
              c=None, log=print, latest: bool = True) -> list[Result]:
    """Plan, then build what is not cached, parents first; one progress line per image.

    ``only`` limits the build to those images (and the parents they need). With ``latest`` each
    image is also tagged ``<repository>:latest``."""
    c = c or client()
    started = time.monotonic()
    specs = specs if specs is not None else default_specs(log=log)
    steps = plan(specs, lambda t: tag_exists(c, t) or adopt_legacy(c, t), force)
    wanted = _with_parents(steps, set(only)) if only else {s.spec.name for s in steps}
    results = []
    total = len([s for s in steps if s.spec.name in wanted])
    n = 0
    for step in steps:
        if step.spec.name not in wanted:
            continue
        n += 1
        t0 = time.monotonic()
        if step.cached:
            log(f"[{n}/{total}] {step.spec.name:8} {step.tag}: cached")
        else:
            log(f"[{n}/{total}] {step.spec.name:8} {step.tag}: building ({step.spec.description})")
            if step.spec.kind == "rootfs":
                build_rootfs(step, c, log)
            else:
                build_dockerfile(step, c, log)
        seconds = time.monotonic() - t0
        size = image_size(c, step.tag)
        if latest:
            c.images.get(step.tag).tag(step.spec.repository, "latest")
        if not step.cached:
            log(f"[{n}/{total}] {step.spec.name:8} built in {seconds:.0f} s, {size / 1e6:.0f} MB")
        results.append(Result(step.spec.name, step.tag, step.cached, seconds, size))
    log(f"{len(results)} image(s), {sum(not r.cached for r in results)} built, "
        f"{sum(r.cached for r in results)} cached, in {time.monotonic() - started:.0f} s")
    return results


def superseded(present: Iterable[str], current: Iterable[str]) -> list[str]:
    """Tags of ipledger images in the engine that the current plan no longer names (older input
    hashes), ``latest`` aliases excepted."""
    keep = set(current)
    # the former name's images are left alone: a compose file written before names them, and once they are gone
    # it would pull that name from Docker Hub (remove them with 'docker rmi' once its compose files are written again)
    return sorted(t for t in present if t.startswith(f"{NAMESPACE}/") and t not in keep
                  and not t.endswith(":latest"))


def prune(c=None, specs: list[ImageSpec] | None = None, log=print) -> list[str]:
    """Remove the superseded tags (their layers go when no other tag holds them)."""
    c = c or client()
    specs = specs if specs is not None else default_specs(log=log)
    current = [s.tag for s in plan(specs)]
    present = [t for img in c.images.list(filters={"label": f"{LABEL}.image"}) for t in img.tags]
    gone = superseded(present, current)
    for tag in gone:
        c.images.remove(tag, noprune=False)
        log(f"removed {tag}")
    log(f"{len(gone)} superseded image tag(s) removed")
    return gone


def _with_parents(steps: list[Step], names: set[str]) -> set[str]:
    by_name = {s.spec.name: s.spec for s in steps}
    unknown = names - set(by_name)
    if unknown:
        raise ImageError(f"no image named {', '.join(sorted(unknown))} (images: {', '.join(by_name)})")
    out: set[str] = set()
    for name in names:
        while name in by_name and name not in out:
            out.add(name)
            name = by_name[name].parent
    return out
