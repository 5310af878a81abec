"""The chaincode's Fabric lifecycle: deploy, upgrade, status.

Its packages are :mod:`ipledger.network.channel.package`'s; they are byte-for-byte reproducible,
so packaging the same source twice gives the same package id and ``deploy`` is idempotent.

Deploy = install on every peer, approve for every org (with the endorsement
policy and private data collections), check commit readiness, commit — each
organisation acting only on its own host: on a host that runs some of the
organisations, ``deploy`` installs and approves for those, and commits once
every organisation has approved (the last one to deploy commits). Upgrade
is the same with the next sequence and the committed endorsement policy (new code
never changes who endorses: ``ipledger admin chaincode-policy`` does, on its own);
peers keep serving the old definition until the new one is committed.

One file for one concept, the chaincode's life on the channel: the lifecycle commands that
install, approve and commit its packages (including each organisation's chaincode-service
package under ``--runtime docker``), and the chaincode services that run them in containers.
"""
from __future__ import annotations

import base64
import dataclasses
import io
import json
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fabric_protos.msp import msp_principal_pb2
from fabric_protos.peer import policy_pb2

from ipledger.network.org import identities, own_process
from ipledger.network.org import runtime
from ipledger.network.consortium import Consortium
from ipledger.network.files import write_atomically
from ipledger.network.fabric.policy import (PolicyError, parse_signature_policy, render_signature_policy,
                                           satisfiable_by)
from ipledger.network.org.nodes import Nodes
from ipledger.network.channel.package import (LifecycleError, ChaincodeSpec, build_ccaas_package, build_package,
                                              download_wheels, package_id, package_label, pinned_requirements)

# ----------------------------------------------------------------------------- channel settings

def contract_policy(c: Consortium) -> str:
    """The contract's endorsement policy on ``c``'s channel: a customs peer and a peer of another
    member (the holder or a representative) — no party writes alone."""
    customs = _customs(c)
    others = [f"'{o.msp_id}.peer'" for o in c.orgs if o.msp_id != customs]
    if not others:
        raise LifecycleError(f"channel {c.channel} has no member besides customs")
    return f"AND('{customs}.peer', OR({','.join(others)}))"


def check_endorsement_policy(text: str, customs: str, members: list[str]) -> None:
    """No party writes alone: an endorsement policy of the channel must need a customs peer AND a peer of
    another member. LifecycleError (naming who could write alone) for a policy customs' peers alone, or
    the other ``members``' peers without customs, could satisfy — or that cannot be read."""
    try:
        env = parse_signature_policy(text)
        if satisfiable_by(env, {customs}):
            raise LifecycleError(f"the endorsement policy {text} lets {customs} write alone: every record needs "
                                 f"customs and another member, e.g. {_needs_both(customs, members)}")
        named = {msp_principal_pb2.MSPRole.FromString(p.principal).msp_identifier for p in env.identities
                 if p.principal_classification == msp_principal_pb2.MSPPrincipal.ROLE}
        others = sorted((set(members) | named) - {customs})   # the members, and anyone the policy names
        if satisfiable_by(env, set(others)):
            raise LifecycleError(f"the endorsement policy {text} lets {', '.join(others)} write without customs: "
                                 f"every record needs customs and another member, e.g. {_needs_both(customs, members)}")
    except PolicyError as e:
        raise LifecycleError(f"the endorsement policy {text!r} cannot be read: {e}") from None


def committed_policy(committed: dict) -> str:
    """The endorsement policy of a committed definition (``querycommitted``'s JSON), in the policy language,
    restated as the same rule over the same principals: an upgrade keeps it (a policy
    ``ipledger admin chaincode-policy`` narrowed stays narrow, an organisation that joined does not become an
    endorser unasked). LifecycleError for a policy that cannot be restated so."""
    try:
        app = policy_pb2.ApplicationPolicy.FromString(base64.b64decode(committed.get("validation_parameter") or ""))
    except Exception as e:  # noqa: BLE001 - a definition this tool cannot read
        raise LifecycleError(f"the committed endorsement policy cannot be read: {e}") from None
    if app.WhichOneof("Type") != "signature_policy":
        raise LifecycleError("the committed endorsement policy is not a signature policy "
                             f"({app.channel_config_policy_reference or 'empty'}): set one with 'ipledger admin "
                             "chaincode-policy' first")
    text = render_signature_policy(app.signature_policy)
    # the same rule over the same principals (Fabric's own parser numbers the principals in another order than
    # they read, so bytes are not compared): the text must read back as it was written
    try:
        same = render_signature_policy(parse_signature_policy(text)) == text
    except PolicyError:
        same = False
    if not same:
        raise LifecycleError(f"the committed endorsement policy cannot be restated ({text}): set it again "
                             "with 'ipledger admin chaincode-policy' first")
    return text


def _needs_both(customs: str, members: list[str]) -> str:
    others = ",".join(f"'{m}.peer'" for m in members if m != customs)
    return f"AND('{customs}.peer', OR({others}))"


def commercial_collection(c: Consortium) -> list[dict]:
    """The ``commercial`` private data collection of ``c``'s channel: customs and the holder store
    the customs values; representatives (and everyone else) only their hashes."""
    customs = _customs(c)
    holder = c.channels[0].holder if len(c.channels) == 1 else None
    if not holder:
        where = f" ({c.source})" if c.source else ""
        raise LifecycleError(f"the consortium file{where} names no holder for channel {c.channel} "
                             "('holder: <MSP id>'): the commercial data would have no owner")
    return [{"name": "commercial", "policy": f"OR('{customs}.member','{holder}.member')",
             "requiredPeerCount": 0, "maxPeerCount": 1, "blockToLive": 0,
             "memberOnlyRead": True, "memberOnlyWrite": False}]


def _customs(c: Consortium) -> str:
    if not c.customs:
        where = f" ({c.source})" if c.source else ""
        raise LifecycleError(f"the consortium file{where} names no customs organisation: add 'customs: <MSP "
                             "id>' (and, with one shared channel, 'holder: <MSP id>'); the contract takes "
                             "customs' MSP id from it — a state directory generated before this keeps its "
                             "own copy, under consortium/consortium.yaml")
    return c.customs


# ----------------------------------------------------------------------------- lifecycle

@dataclass
class Deployer:
    net: Nodes
    log: callable = print

    @property
    def _orderer_args(self) -> list[str]:
        return self.net.orderer_args()

    def settle(self, spec: ChaincodeSpec) -> ChaincodeSpec:
        """``spec`` with its channel settings: for the ipledger contract, the endorsement policy,
        the collection and the customs MSP id from this channel's members; others unchanged."""
        if not spec.from_consortium:
            return spec
        c = self.net.consortium
        collections = self.net.layout.channel_dir / f"{spec.name}.collections.json"
        collections.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(collections, (json.dumps(commercial_collection(c), indent=2) + "\n").encode())
        return dataclasses.replace(spec, from_consortium=False, customs_msp=_customs(c),
                                   signature_policy=contract_policy(c),
                                   collections_config=collections)

    def _keep_policy(self, spec: ChaincodeSpec, kept: str) -> ChaincodeSpec:
        """An upgrade changes the code, not who endorses: the committed policy is kept, whatever the consortium
        file's members would give now (said when it differs; 'ipledger admin chaincode-policy' changes it, with
        every member's approval, as a step of its own)."""
        if spec.signature_policy and parse_signature_policy(spec.signature_policy).SerializeToString(
                deterministic=True) != parse_signature_policy(kept).SerializeToString(deterministic=True):
            self.log(f"  the endorsement policy stays {kept} (committed); the channel's members would now give "
                     f"{spec.signature_policy}: change it with 'ipledger admin chaincode-policy' if that is meant")
        return dataclasses.replace(spec, signature_policy=kept)

    def package(self, spec: ChaincodeSpec, out: Path | None = None) -> Path:
        spec = self.settle(spec)
        out = out or self.net.layout.chaincode_dir / f"{spec.label}.tar.gz"
        out.parent.mkdir(parents=True, exist_ok=True)
        wheels = download_wheels(pinned_requirements(spec.requirements),
                                 self.net.layout.wheels_dir, self.log)
        build_package(spec, out, wheels)
        self.log(f"  packaged {spec.label} ({out.stat().st_size // 1024} KiB, "
                 f"{len(wheels)} wheels): {out}")
        return out

    def install(self, pkg: Path, peers: list | None = None) -> str:
        """Install ``pkg`` on ``peers`` (default: every peer of this host's organisations)."""
        peers = self.net.local_peers if peers is None else peers
        pid = installed_package_id(pkg)
        label = pid.split(":")[0]

        def one(peer):
            installed = self.net.peer_cli(peer, ["lifecycle", "chaincode", "queryinstalled",
                                                 "--output", "json"]).stdout
            if pid in installed:
                return f"  {peer.id}: already installed"
            self.net.peer_cli(peer, ["lifecycle", "chaincode", "install", str(pkg)],
                              timeout=600)
            return f"  {peer.id}: installed {label}"

        with ThreadPoolExecutor(max_workers=max(1, len(peers))) as pool:
            for line in pool.map(one, peers):
                self.log(line)
        return pid

    def org_package(self, spec: ChaincodeSpec, pkg: Path, org) -> Path:
        """The package ``org``'s peers install. With native processes, ``pkg`` itself (the peer
        runs the contract through the external builder). With containers (``--runtime docker``), a
        chaincode-as-a-service package of ``org``'s own (:func:`org_service_package`) and its
        service started: the contract runs from the ``ccaas`` image built from this tree."""
        rt = self.net.runtime
        if rt.name != runtime.DOCKER:
            return pkg
        if (spec.contract, spec.sources) != (ChaincodeSpec().contract, ChaincodeSpec().sources):
            raise LifecycleError(f"with --runtime docker the peers run the ipledger contract from its chaincode "
                                 f"service image; {spec.contract} from {', '.join(map(str, spec.sources))} has no "
                                 "image: deploy it with native processes")
        out = org_service_package(self.net, org, spec.name, spec.label)
        start_service(self.net, org, out, self.log)
        return out

    def install_for_orgs(self, spec: ChaincodeSpec, pkg: Path, orgs: list) -> dict[str, str]:
        """Install on ``orgs``' peers what each runs (:meth:`org_package`); each one's package id."""
        packages = {o.msp_id: self.org_package(spec, pkg, o) for o in orgs}
        if set(packages.values()) == {pkg}:   # one package for every organisation: one install
            pid = self.install(pkg, [p for o in orgs for p in o.peers])
            return {o.msp_id: pid for o in orgs}
        return {o.msp_id: self.install(packages[o.msp_id], o.peers) for o in orgs}

    def committed(self, name: str) -> dict | None:
        peer = self.net.local_peers[0]
        out = self.net.peer_cli(peer, ["lifecycle", "chaincode", "querycommitted",
                                       "--channelID", self.net.consortium.channel,
                                       "--name", name, "--output", "json"], check=False)
        if out.returncode != 0:
            if "not found" in out.stderr or "404" in out.stderr:
                return None
            raise LifecycleError(f"querycommitted failed: {out.stderr.strip()}")
        return json.loads(out.stdout)

    def _definition_args(self, spec: ChaincodeSpec, sequence: int) -> list[str]:
        args = ["--channelID", self.net.consortium.channel, "--name", spec.name,
                "--version", spec.version, "--sequence", str(sequence)]
        if spec.signature_policy:
            args += ["--signature-policy", spec.signature_policy]
        if spec.collections_config:
            args += ["--collections-config", str(spec.collections_config)]
        return args

    def deploy(self, spec: ChaincodeSpec, pkg: Path | None = None, *,
               upgrade: bool = False) -> dict:
        """Install, approve and commit ``spec``; returns the committed definition."""
        started = time.monotonic()
        if len(self.net.channels()) > 1:
            raise LifecycleError("a channel per holder: deploy on each (deploy_on_channels)")
        spec = self.settle(spec)
        current = self.committed(spec.name)
        if current and not upgrade and current.get("version") != spec.version:
            raise LifecycleError(
                f"{spec.name} is committed at version {current.get('version')}; "
                f"use 'ipledger chaincode upgrade' to move to {spec.version}")
        if current and upgrade and current.get("version") == spec.version:
            raise LifecycleError(f"{spec.name} {spec.version} is already committed; "
                                 "an upgrade needs a new --version")
        if current and upgrade and spec.signature_policy:
            spec = self._keep_policy(spec, committed_policy(current))
        pkg = pkg or self.package(spec)
        local = [o for o in self.net.consortium.orgs if self.net.layout.is_local(o)]
        pids = self.install_for_orgs(spec, pkg, local)
        if current and not upgrade:
            self.log(f"  {spec.name} {spec.version} already committed "
                     f"(sequence {current['sequence']})")
            return current
        sequence = (current["sequence"] + 1) if current else 1
        definition = self._definition_args(spec, sequence)
        first = local[0].peers[0]
        ready = self._readiness(first, definition)
        for org in local:
            if ready.get(org.msp_id):
                self.log(f"  already approved by {org.msp_id}")
                continue
            self.net.peer_cli(org.peers[0], ["lifecycle", "chaincode", "approveformyorg",
                                             *self._orderer_args, *definition, "--package-id",
                                             pids[org.msp_id], "--waitForEventTimeout", "60s"])
            self.log(f"  approved by {org.msp_id}")
        ready = self._readiness(first, definition)
        missing = [org for org, ok in ready.items() if not ok]
        if missing and len(local) < len(self.net.consortium.orgs):
            self.log(f"  {spec.name} {spec.version} sequence {sequence} waits for the approval "
                     f"of {', '.join(sorted(missing))}: each deploys it on its own host; the "
                     "last one commits")
            return None
        if missing:
            raise LifecycleError(f"not ready to commit: no approval from {', '.join(missing)}")
        peer_args = []
        for org in self.net.consortium.orgs:
            peer_args += ["--peerAddresses", org.peers[0].address,
                          "--tlsRootCertFiles", str(self.net.layout.tls_ca(org))]
        self.net.peer_cli(first, ["lifecycle", "chaincode", "commit", *self._orderer_args,
                                  *definition, *peer_args, "--waitForEventTimeout", "60s"])
        self.log(f"  committed {spec.name} {spec.version} at sequence {sequence} "
                 f"in {time.monotonic() - started:.1f} s")
        self._save_definition(spec, sequence, pkg, package_id(pkg))
        if self.net.runtime.name == runtime.DOCKER:   # the former version's services are no longer used
            for org in local:
                retire_services(self.net, org, spec.name, spec.label, self.log)
        return self.committed(spec.name)

    def _readiness(self, peer, definition: list[str]) -> dict[str, bool]:
        out = self.net.peer_cli(peer, ["lifecycle", "chaincode", "checkcommitreadiness",
                                       *definition, "--output", "json"])
        return json.loads(out.stdout).get("approvals", {})

    # -------------------------------------------------------------- organisations joining later

    def definition_file(self, name: str) -> Path:
        return self.net.layout.definitions_of_chaincode / f"{name}.definition.json"

    def _save_definition(self, spec: ChaincodeSpec, sequence: int, pkg: Path, pid: str) -> None:
        """What was committed, exactly as given to the peer CLI, so an org that joins the
        channel later approves byte-for-byte the same definition."""
        record = {"name": spec.name, "version": spec.version, "sequence": sequence,
                  "signature_policy": spec.signature_policy,
                  "collections": (json.loads(Path(spec.collections_config).read_text())
                                  if spec.collections_config else None),
                  "package": str(Path(pkg).resolve()), "package_id": pid}
        path = self.definition_file(spec.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, (json.dumps(record, indent=2) + "\n").encode())

    def _record(self, name: str, committed: dict) -> dict:
        path = self.definition_file(name)
        if not path.exists():
            raise LifecycleError(f"no record of how {name} was committed ({path}); "
                                 "approve it with the peer CLI and the original definition")
        rec = json.loads(path.read_text())
        if (rec["sequence"], rec["version"]) != (committed["sequence"], committed["version"]):
            raise LifecycleError(
                f"{path} records {name} {rec['version']} at sequence {rec['sequence']}, but "
                f"{committed['version']} at sequence {committed['sequence']} is committed")
        pkg = Path(rec["package"])
        if not pkg.exists() or package_id(pkg) != rec["package_id"]:
            raise LifecycleError(f"package {pkg} is missing or is not {rec['package_id']}")
        return rec

    def set_endorsement_policy(self, name: str, policy: str, orgs: list[str]) -> dict:
        """Commit ``name``'s definition again at the next sequence with a new endorsement
        policy (same version, package and collections), approved by each org in ``orgs``
        (the channel members: the channel's LifecycleEndorsement policy decides how many
        approvals a commit needs)."""
        check_endorsement_policy(policy, _customs(self.net.consortium), orgs)
        committed = self.committed(name)
        if not committed:
            raise LifecycleError(f"chaincode {name} is not committed on the channel")
        rec = self._record(name, committed)
        sequence = committed["sequence"] + 1
        spec = ChaincodeSpec(name=name, version=rec["version"], signature_policy=policy)
        members = [self.net.consortium.org(m) for m in orgs]
        with tempfile.TemporaryDirectory() as tmp:
            if rec["collections"] is not None:
                spec.collections_config = Path(tmp) / "collections.json"
                spec.collections_config.write_text(json.dumps(rec["collections"]))
            definition = self._definition_args(spec, sequence)
            for org in members:
                pid = installed_package_id(self.org_package(spec, Path(rec["package"]), org))
                self.net.peer_cli(org.peers[0], ["lifecycle", "chaincode", "approveformyorg",
                                                 *self._orderer_args, *definition,
                                                 "--package-id", pid,
                                                 "--waitForEventTimeout", "60s"])
                self.log(f"  approved by {org.msp_id}")
            peer_args = []
            for org in members:
                peer_args += ["--peerAddresses", org.peers[0].address,
                              "--tlsRootCertFiles", str(self.net.layout.tls_ca(org))]
            self.net.peer_cli(members[0].peers[0],
                              ["lifecycle", "chaincode", "commit", *self._orderer_args,
                               *definition, *peer_args, "--waitForEventTimeout", "60s"])
            self.log(f"  committed {name} {rec['version']} at sequence {sequence} with "
                     f"endorsement policy {policy}")
            self._save_definition(spec, sequence, Path(rec["package"]), rec["package_id"])
        return self.committed(name)

    def approve_for_org(self, name: str, msp_id: str) -> dict:
        """Install the committed chaincode on ``msp_id``'s peers and approve its committed
        definition (same sequence, version, policy, collections, package) for that org.

        For an organisation that joined the channel after the chaincode was committed:
        until its org has approved the committed definition, its peers do not run it.
        """
        committed = self.committed(name)
        if not committed:
            raise LifecycleError(f"chaincode {name} is not committed on the channel")
        rec = self._record(name, committed)
        pkg = Path(rec["package"])
        org = self.net.consortium.org(msp_id)
        spec = ChaincodeSpec(name=name, version=rec["version"],
                             signature_policy=rec["signature_policy"])
        pid = self.install_for_orgs(spec, pkg, [org])[msp_id]
        with tempfile.TemporaryDirectory() as tmp:
            if rec["collections"] is not None:
                spec.collections_config = Path(tmp) / "collections.json"
                spec.collections_config.write_text(json.dumps(rec["collections"]))
            definition = self._definition_args(spec, rec["sequence"])
            if committed.get("approvals", {}).get(msp_id) is not True:
                self.net.peer_cli(org.peers[0], ["lifecycle", "chaincode", "approveformyorg",
                                                 *self._orderer_args, *definition,
                                                 "--package-id", pid,
                                                 "--waitForEventTimeout", "60s"])
                self.log(f"  approved {name} {rec['version']} (sequence {rec['sequence']}) "
                         f"for {msp_id}")
        approved = json.loads(self.net.peer_cli(
            org.peers[0], ["lifecycle", "chaincode", "queryapproved", "--channelID",
                           self.net.consortium.channel, "--name", name, "--sequence",
                           str(rec["sequence"]), "--output", "json"]).stdout)
        for key in ("version", "validation_parameter", "collections", "init_required",
                    "endorsement_plugin", "validation_plugin"):
            if approved.get(key) != committed.get(key):
                raise LifecycleError(f"{msp_id}'s approval of {name} differs from the committed "
                                     f"definition in {key}")
        return self.committed(name)

    def status(self, name: str) -> dict:
        committed = self.committed(name)
        installed = {}
        for peer in self.net.local_peers:
            out = json.loads(self.net.peer_cli(peer, ["lifecycle", "chaincode", "queryinstalled",
                                                      "--output", "json"]).stdout or "{}")
            installed[peer.id] = [p["package_id"] for p in out.get("installed_chaincodes", [])
                                  if p.get("label", "").startswith(f"{name}_")]
        approvals = None
        if committed:
            approvals = committed.get("approvals")
        return {"name": name, "committed": committed, "approvals": approvals,
                "installed": installed}


def deploy_on_channels(net: Nodes, spec: ChaincodeSpec, pkg: Path | None = None, *,
                       upgrade: bool = False, log=print) -> dict[str, dict | None]:
    """Deploy ``spec`` on every channel one of this host's organisations is a member of (one
    package for all: the peers run one chaincode process per package, whatever the channels).
    Returns each channel's committed definition (None where others' approvals are awaited)."""
    channels = [ch for ch in net.channels() if ch.local_peers]
    if not channels:
        raise LifecycleError(f"no organisation of {net.layout.root} is on any channel")
    pkg = pkg or Deployer(channels[0], log).package(spec)
    out = {}
    for ch in channels:
        if len(channels) > 1:
            log(f"channel {ch.consortium.channel}:")
        out[ch.consortium.channel] = Deployer(ch, log).deploy(spec, pkg, upgrade=upgrade)
    return out


# ----------------------------------------------------------------------------- chaincode services
# With --runtime docker each organisation runs the contract as its own chaincode service
# (network/org/containers): one package per organisation and version, in its own directory, naming
# the service's address and carrying the TLS material its peers dial it with.

def service_package_file(net: Nodes, org, label: str) -> Path:
    return net.layout.org_home(org) / "chaincode" / f"{label}.ccaas.tar.gz"


def service_packages(net: Nodes, org) -> list[Path]:
    """``org``'s chaincode-service packages: one per version it deployed and has not retired."""
    return sorted((net.layout.org_home(org) / "chaincode").glob("*.ccaas.tar.gz"))


def service_address(pkg: Path) -> str:
    """The address a chaincode-service package makes its peers dial (it reads the package, which holds the
    peers' client TLS key: in the organisation's own process; elsewhere :func:`service_info`)."""
    with tarfile.open(pkg) as outer:
        code = outer.extractfile("code.tar.gz").read()
    with tarfile.open(fileobj=io.BytesIO(code)) as inner:
        return json.loads(inner.extractfile("connection.json").read())["address"]


def _info_file(pkg: Path) -> Path:
    return pkg.with_name(pkg.name.removesuffix(".tar.gz") + ".json")


def _describe_service_package(pkg: Path) -> dict:
    """In the organisation's own process: what others need of its service package (no key), written beside it."""
    info = {"label": package_label(pkg), "package_id": package_id(pkg), "address": service_address(pkg)}
    write_atomically(_info_file(pkg), (json.dumps(info, sort_keys=True) + "\n").encode())
    return info


def service_info(pkg: Path) -> dict:
    """A chaincode-service package's label, package id and address, from the public description written
    beside it when it was built (for an older package, made now in a process of the organisation's own):
    the package itself holds the peers' client TLS key, which a process acting for several organisations
    must not read (network/org/own_process.py)."""
    try:
        info = json.loads(_info_file(pkg).read_text())
        if {"label", "package_id", "address"} <= set(info):
            return info
    except (OSError, ValueError):
        pass
    return own_process.call(_describe_service_package, pkg)


def installed_package_id(pkg: Path) -> str:
    """``pkg``'s package id; a chaincode-service package's from its description (:func:`service_info`)."""
    return service_info(pkg)["package_id"] if pkg.name.endswith(".ccaas.tar.gz") else package_id(pkg)


def org_service_package(net: Nodes, org, name: str, label: str) -> Path:
    """``org``'s package for ``label``: the one it built before (same id: installed, approved), else a
    new one naming a free slot beside its first peer (not the one a service of another version of the
    contract listens on: that one runs until the new version is committed), its TLS CA as the
    service's root, and the client pair its peers present (the package is 0600 in its own directory)."""
    from ipledger.network.org.containers.services import chaincode_service_addresses
    out = service_package_file(net, org, label)
    address = None
    if not out.exists():
        taken = {service_info(p)["address"] for p in service_packages(net, org) if p.name.startswith(f"{name}_")}
        free = [a for a in chaincode_service_addresses(org) if a not in taken]
        if not free:
            raise LifecycleError(f"{org.msp_id} runs services for {len(taken)} versions of {name} already "
                                 f"({', '.join(sorted(taken))}); commit one of them first")
        address = free[0]
    # the TLS pair is issued by the organisation's TLS CA and its key read into the package: in a process of
    # the organisation alone (own_process)
    own_process.call(_service_package_as_org, net.layout.org_dir(org), org.msp_id, org.domain,
                     sorted({p.host for p in org.peers}), name, label, address, out)
    return out


def _service_package_as_org(org_dir: Path, msp_id: str, domain: str, hosts: list[str], name: str, label: str,
                            address: str | None, out: Path) -> None:
    """The part of :func:`org_service_package` that reads the organisation's keys: its chaincode service's TLS
    pair (issued again when the peers' hosts changed), and the package naming ``address`` (none: kept)."""
    tls = identities.OrgIdentities(org_dir, msp_id, domain).chaincode_service_tls(hosts)
    if address is None:
        return
    out.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    build_ccaas_package(name, label, address, out, root_cert=(tls / "ca.crt").read_text(),
                        client_cert=(tls / "client.crt").read_text(), client_key=(tls / "client.key").read_text())
    _describe_service_package(out)


def start_service(net: Nodes, org, pkg: Path, log=print) -> str:
    info = service_info(pkg)
    tls = identities.OrgIdentities(net.layout.org_dir(org), org.msp_id, org.domain).chaincode_service_dir
    return net.runtime.start_chaincode(org, info["label"], info["package_id"], info["address"],
                                       _customs(net.consortium), tls, log)


def retire_services(net: Nodes, org, name: str, keep: str, log=print) -> None:
    """Once ``keep`` (a label of ``name``) is committed: stop ``org``'s services of other versions and
    delete their packages (their slot is free again)."""
    for label in net.runtime.retire_chaincode(org, name, keep, log):
        service_package_file(net, org, label).unlink(missing_ok=True)
        _info_file(service_package_file(net, org, label)).unlink(missing_ok=True)


def resume_services(net: Nodes, log=print) -> None:
    """``ipledger network up`` with containers, once the nodes are up (:meth:`Nodes.up`): every local
    organisation's chaincode services, one per package it holds (``network down`` stopped them)."""
    for org in net.consortium.orgs:
        if org.peers and net.layout.is_local(org):
            for pkg in service_packages(net, org):
                start_service(net, org, pkg, log)
