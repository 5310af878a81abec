"""The ipledger external builder: Fabric calls bin/detect, build, release and run.

Two package types (``metadata.json`` → ``type``):

``ipledger-python``
    The peer launches the chaincode. ``code.tar.gz`` holds ``src/`` (the Python
    source), ``wheels/`` (every dependency as a wheel, so the peer needs no
    package registry), ``ipledger-chaincode.json`` (the contract to run and
    ``customs_msp``, the MSP id of customs on this deployment) and optionally
    ``META-INF/`` (state database indexes). ``build`` installs the wheels
    offline and checks that the shim and the contract import (a package the
    peer could not start is refused at install); ``run`` starts the chaincode
    in client mode: it dials the peer with the TLS material the peer writes
    into ``chaincode.json``, with
    ``IPLEDGER_CUSTOMS_MSP`` set from the manifest — the package decides, never
    the peer's environment (each organisation installs its own package: what
    keeps another from posing as customs is the endorsement by customs' own peer,
    see chaincode/contract/deployment.py). A package without ``customs_msp`` runs
    without it, and the contract then refuses every act and query
    (``DeploymentNotConfigured``).
``ipledger-ccaas``
    Chaincode as a service: ``code.tar.gz`` holds ``connection.json``; the
    chaincode runs as its own service and the peer dials it, never launching a
    process (for Kubernetes and other hosts where peers must not).
``ipledger-binary``
    A prebuilt chaincode executable (``bin/chaincode`` in ``code.tar.gz``, e.g. a
    Go chaincode built with fabric-chaincode-go) that the peer launches in client
    mode like ours: ``run`` hands it the peer's address and TLS material the way
    Fabric's Go shim reads them (``CORE_*`` variables, ``-peer.address``).
    ``bench/compare.py`` runs Fabric's own Go test chaincode this way beside ours.

Standard library only: this runs under whatever Python 3 the peer's host has.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

PYTHON_TYPE = "ipledger-python"
CCAAS_TYPE = "ipledger-ccaas"
BINARY_TYPE = "ipledger-binary"
TYPES = (PYTHON_TYPE, CCAAS_TYPE, BINARY_TYPE)
EXECUTABLE = Path("bin") / "chaincode"
MANIFEST = "ipledger-chaincode.json"
CUSTOMS_ENV = "IPLEDGER_CUSTOMS_MSP"          # read by chaincode/contract/deployment.py
_MSP_ID = re.compile(r"[A-Za-z0-9.-]{1,64}")  # as the contract checks it
# glibc gives every thread that allocates its own malloc arena (up to 8 per core), each keeping the
# memory it freed: the chaincode's worker threads would each hold one. Two arenas bound that; the
# peer's own setting, if any, wins. Ignored by other C libraries.
MALLOC_ENV = {"MALLOC_ARENA_MAX": "2"}
# The chaincode's own settings, read by the shim under their CHAINCODE_* names (as a chaincode service reads
# them): set on the peer as IPLEDGER_CHAINCODE_*, which the peer hands to this builder (propagateEnvironment,
# network/org/generate.py) — the log level and its admission of each organisation's transactions.
CHAINCODE_SETTINGS = ("LOG_LEVEL", "ADMISSION_PER_ORG", "ADMISSION_WAIT_S")
# What ``run`` starts the Python chaincode with (its client mode), and how long ``build`` gives it and the contract
# to import before the package is refused.
LAUNCHED = "ipledger.chaincode.shim.client"
LOAD_CHECK_S = 120


class BuildError(Exception):
    pass


def _package_type(metadata_dir: Path) -> str:
    try:
        return json.loads((metadata_dir / "metadata.json").read_text()).get("type", "")
    except (OSError, ValueError):
        return ""


def _python() -> str:
    return os.environ.get("IPLEDGER_PYTHON") or sys.executable


def detect(source_dir: Path, metadata_dir: Path) -> int:
    """Exit 0 if the package is one of ours, 1 otherwise (Fabric tries the next builder)."""
    return 0 if _package_type(metadata_dir).lower() in TYPES else 1


def build(source_dir: Path, metadata_dir: Path, output_dir: Path) -> int:
    kind = _package_type(metadata_dir).lower()
    if kind == CCAAS_TYPE:
        conn = source_dir / "connection.json"
        _check_connection(conn)
        _copy_private(conn, output_dir / "connection.json")
        _copy_meta_inf(source_dir, output_dir)
        return 0
    if kind == BINARY_TYPE:
        exe = source_dir / EXECUTABLE
        if not exe.is_file():
            raise BuildError(f"a binary package needs {EXECUTABLE} in code.tar.gz")
        (output_dir / EXECUTABLE).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(exe, output_dir / EXECUTABLE)
        (output_dir / EXECUTABLE).chmod(0o755)
        _copy_meta_inf(source_dir, output_dir)
        print(f"ipledger builder: built a prebuilt chaincode executable ({exe.stat().st_size // 1024} KiB)")
        return 0
    manifest = json.loads((source_dir / MANIFEST).read_text())
    if ":" not in manifest.get("contract", ""):
        raise BuildError(f"{MANIFEST}: 'contract' must be 'module:Class'")
    customs = manifest.get("customs_msp")
    if customs is not None and not (isinstance(customs, str) and _MSP_ID.fullmatch(customs)):
        raise BuildError(f"{MANIFEST}: 'customs_msp' must be an MSP id, not {str(customs)[:80]!r}")
    if customs is None:
        print(f"ipledger builder: {MANIFEST} names no customs_msp: the contract will refuse every "
              f"transaction (DeploymentNotConfigured)")
    shutil.copytree(source_dir / "src", output_dir / "src")
    shutil.copy(source_dir / MANIFEST, output_dir / MANIFEST)
    _copy_meta_inf(source_dir, output_dir)
    wheels = sorted((source_dir / "wheels").glob("*.whl"))
    if wheels:
        # Offline: only the wheels carried in the package, never a registry.
        cmd = [_python(), "-m", "pip", "install", "--no-index", "--no-deps", "--no-cache-dir",
               "--disable-pip-version-check", "--no-input", "--quiet", "--target",
               str(output_dir / "site"), *map(str, wheels)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(f"installing the package's wheels failed:\n{proc.stderr[-4000:]}")
    _check_loads(output_dir, manifest)
    print(f"ipledger builder: built {manifest['contract']} with {len(wheels)} wheels")
    return 0


def _check_loads(build_dir: Path, manifest: dict) -> None:
    """What ``run`` will load — the shim's client and the contract (``module:Class``, instantiated, with the
    ``invoke`` the shim calls) — loads here, with the package's own code and wheels and the Python and isolation
    ``run`` uses: a package the peer could not start (a module missing, a contract failing as it is imported or
    made) fails its installation, before its organisation approves it, instead of halting every transaction of the
    channel once committed. The contract's import-time code runs here, on the peer's host, as it would at ``run``."""
    check = (
        "import importlib, sys\n"
        f"sys.path[:0] = [{str(build_dir / 'src')!r}, {str(build_dir / 'site')!r}]\n"
        f"importlib.import_module({LAUNCHED!r})\n"
        "module, _, attribute = sys.argv[1].partition(':')\n"
        "found = importlib.import_module(module)\n"
        "for part in attribute.split('.'):\n"
        "    found = getattr(found, part)\n"
        "contract = found() if isinstance(found, type) else found\n"
        "if not callable(getattr(contract, 'invoke', None)):\n"
        "    sys.exit(f'{sys.argv[1]} has no invoke(stub, function, args) method')\n"
    )
    # its own process group: a process the contract's import started is stopped with it
    proc = subprocess.Popen([_python(), "-I", "-S", "-c", check, manifest["contract"]], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=chaincode_environment(os.environ, manifest),
                            start_new_session=True)
    try:
        _out, err = proc.communicate(timeout=LOAD_CHECK_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise BuildError(f"the contract {manifest['contract']} did not load within {LOAD_CHECK_S} s") from None
    if proc.returncode != 0:
        raise BuildError(f"the contract {manifest['contract']} does not load with the package's own code and "
                         f"wheels, so the peer could not start it:\n{err[-4000:]}")


def release(build_dir: Path, release_dir: Path) -> int:
    statedb = build_dir / "META-INF" / "statedb"
    if statedb.is_dir():
        shutil.copytree(statedb, release_dir / "statedb", dirs_exist_ok=True)
    conn = build_dir / "connection.json"
    if conn.exists():
        server = release_dir / "chaincode" / "server"
        server.mkdir(parents=True, exist_ok=True)
        _copy_private(conn, server / "connection.json")
    return 0


def run(build_dir: Path, run_metadata_dir: Path) -> int:
    if (build_dir / "connection.json").exists():
        raise BuildError("a chaincode-as-a-service package is not launched by the peer")
    if (build_dir / EXECUTABLE).exists():
        return _run_executable(build_dir / EXECUTABLE, run_metadata_dir)
    manifest = json.loads((build_dir / MANIFEST).read_text())
    launcher = (
        "import sys\n"
        f"sys.path[:0] = [{str(build_dir / 'src')!r}, {str(build_dir / 'site')!r}]\n"
        f"from {LAUNCHED} import main\n"
        f"sys.exit(main([{manifest['contract']!r}, {str(run_metadata_dir / 'chaincode.json')!r}]))\n"
    )
    # -I: isolated (no user site, no PYTHON* variables, no current dir); -S: no
    # site-packages at all — the chaincode runs on its package's wheels alone.
    # Other variables pass: IPLEDGER_CUSTOMS_MSP comes from the manifest only.
    env = chaincode_environment(os.environ, manifest)
    python = _python()
    os.execve(python, [python, "-I", "-S", "-c", launcher], env)
    return 1  # not reached


def chaincode_settings(peer_env) -> dict:
    """The chaincode's settings an administrator gave the peer (``IPLEDGER_CHAINCODE_<X>``), under the names the
    shim reads (``CHAINCODE_<X>``)."""
    return {f"CHAINCODE_{setting}": peer_env[f"IPLEDGER_CHAINCODE_{setting}"] for setting in CHAINCODE_SETTINGS
            if f"IPLEDGER_CHAINCODE_{setting}" in peer_env}


def chaincode_environment(peer_env: dict, manifest: dict) -> dict:
    """The environment of the Python chaincode the peer launches: the peer's (what it propagates), without its
    ``IPLEDGER_CUSTOMS_MSP`` (the package's manifest decides), with each ``IPLEDGER_CHAINCODE_<X>`` of
    :data:`CHAINCODE_SETTINGS` as the ``CHAINCODE_<X>`` the shim reads, and :data:`MALLOC_ENV` unless set."""
    env = {k: v for k, v in peer_env.items() if k != CUSTOMS_ENV}
    if manifest.get("customs_msp"):
        env[CUSTOMS_ENV] = manifest["customs_msp"]
    env.update(chaincode_settings(peer_env))
    for name, value in MALLOC_ENV.items():
        env.setdefault(name, value)
    return env


def _run_executable(exe: Path, run_metadata_dir: Path) -> int:
    """Start a prebuilt chaincode in client mode with the peer's ``chaincode.json`` (its TLS key and
    certificates written next to it, the key 0600), as Fabric's Go shim expects them."""
    info = json.loads((run_metadata_dir / "chaincode.json").read_text())
    files = {}
    for field, name, mode in (("client_key", "client.key", 0o600), ("client_cert", "client.crt", 0o644),
                              ("root_cert", "root.crt", 0o644)):
        path = run_metadata_dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as f:
            f.write(info[field])
        files[field] = str(path)
    env = dict(os.environ, CORE_CHAINCODE_ID_NAME=info["chaincode_id"], CORE_PEER_TLS_ENABLED="true",
               CORE_TLS_CLIENT_KEY_FILE=files["client_key"], CORE_TLS_CLIENT_CERT_FILE=files["client_cert"],
               CORE_PEER_TLS_ROOTCERT_FILE=files["root_cert"], CORE_PEER_LOCALMSPID=info["mspid"])
    os.execve(str(exe), [str(exe), f"-peer.address={info['peer_address']}"], env)
    return 1  # not reached


def _copy_private(src: Path, dst: Path) -> None:
    """Copy a file holding a key (a chaincode service's connection.json: the peers' client TLS key) as 0600
    from its creation, whatever the mode it came with."""
    data = src.read_bytes()
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)   # a file already there keeps its mode through O_CREAT
        os.write(fd, data)
    finally:
        os.close(fd)


def _copy_meta_inf(src: Path, dst: Path) -> None:
    if (src / "META-INF").is_dir():
        shutil.copytree(src / "META-INF", dst / "META-INF", dirs_exist_ok=True)


def _check_connection(path: Path) -> None:
    try:
        conn = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BuildError(f"connection.json unreadable: {e}") from e
    if not conn.get("address"):
        raise BuildError("connection.json has no 'address'")


def main(step: str, argv: list[str]) -> int:
    paths = [Path(a) for a in argv]
    steps = {"detect": (detect, 2), "build": (build, 3), "release": (release, 2),
             "run": (run, 2)}
    fn, nargs = steps[step]
    if len(paths) != nargs:
        print(f"usage: {step} " + " ".join(["DIR"] * nargs), file=sys.stderr)
        return 2
    try:
        return fn(*paths)
    except (BuildError, OSError, ValueError, KeyError, tarfile.TarError) as e:
        print(f"ipledger builder {step}: {e}", file=sys.stderr)
        return 1
