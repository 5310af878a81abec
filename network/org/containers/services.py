"""What each container of an organisation is: image, command, environment, mounts.

One description serves both ways of running them: the Docker runtime
(network/org/containers/runtime.py) creates containers from it through the Docker SDK, and
``ipledger network compose`` writes it as a compose file (network/org/containers/compose.py).

The shape, for every organisation on its own host:

* **Host networking on loopback.** Every container shares the host's network stack, so the
  addresses of the consortium file (``127.0.0.1:<port>``), the TLS certificates' names and the
  peer CLI's connections are the same as with native processes; no container network, so no
  address outside the benchmarking range either (the daemon's own bridge is configured in
  198.18.0.0/15: docs/containers.md).
* **Each container sees only its own keys, read-only.** A peer or orderer gets its own node's
  MSP and TLS directory (``crypto/peers/<fqdn>``) and its configuration directory; the gateway
  its client identity (``crypto/users/User1@<domain>``), the public consortium files and its own
  gateway directory; the chaincode service its TLS pair (``crypto/chaincode``). The CA keys are
  mounted into no container.
* **Ledgers on named volumes** (``ipledger-<scope>-<node id>``, the scope a name the state
  directory keeps in ``containers-scope``), mounted where the generated
  configuration puts the node's data directory: a container can be removed and replaced
  without losing the ledger. Host paths are mounted at the same paths inside, so the generated
  ``core.yaml``/``orderer.yaml`` hold for both runtimes; the peer's one difference (its external
  builder is the image's) is written to ``nodes/<id>/container/core.yaml``.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ipledger.network.consortium import Consortium, Node, Org
from ipledger.network.errors import NetworkError
from ipledger.network.layout import Layout
from ipledger.network.org.processes import (LOGGING_FORMAT, LOGGING_SPEC, chaincode_settings,
                                            chaincode_settings_given)

LABEL = "org.ipledger"
IMAGE_BUILDER_DIR = "/opt/ipledger/chaincode/builder"  # where the peer image holds the builder
# An organisation's chaincode service listens beside its first peer, on its port + 3 or + 4: two slots, so
# that during an upgrade the new version's service runs beside the one the peers still use
CHAINCODE_SERVICE_SLOTS = (3, 4)
# Every container runs without Linux capabilities and cannot gain any (setuid files, file capabilities): a
# process in it that is taken over holds what is mounted into it and no more — as root in the container (an
# engine run by root), it cannot read another user's files, change owners, trace processes or bind low ports
CAP_DROP = ("ALL",)
SECURITY_OPT = ("no-new-privileges:true",)


@dataclass(frozen=True)
class Mount:
    target: str
    source: str                 # a host path (bind) or a volume name
    read_only: bool = True
    volume: bool = False


@dataclass
class Service:
    """One container: enough to create it with the SDK or to write it into a compose file."""

    name: str                   # container name (unique on the engine)
    image: str
    role: str                   # peer | orderer | chaincode | gateway
    org: str                    # MSP id
    command: list[str]
    environment: dict[str, str] = field(default_factory=dict)
    mounts: list[Mount] = field(default_factory=list)
    node: str | None = None     # the consortium's node id (peers and orderers)
    scope: str = ""
    chaincode: str | None = None  # a chaincode service's package label (name_version)
    user: str | None = None     # uid:gid the process runs as (None: the image's, root)
    cap_add: tuple[str, ...] = ()  # capabilities it keeps (every other one is dropped: CAP_DROP)
    network_mode: str = "host"

    @property
    def labels(self) -> dict[str, str]:
        out = {f"{LABEL}.scope": self.scope, f"{LABEL}.role": self.role, f"{LABEL}.org": self.org}
        if self.node:
            out[f"{LABEL}.node"] = self.node
        if self.chaincode:
            out[f"{LABEL}.chaincode"] = self.chaincode
        return out

    def volume_labels(self) -> dict[str, str]:
        out = {f"{LABEL}.scope": self.scope, f"{LABEL}.org": self.org}
        if self.node:
            out[f"{LABEL}.node"] = self.node
        return out

    @property
    def volumes(self) -> list[str]:
        return [m.source for m in self.mounts if m.volume]


def scope_file(layout: Layout) -> Path:
    return layout.root / "containers-scope"


def scope(layout: Layout) -> str:
    """The name of the state directory's containers and volumes: two state directories on one
    engine never share a ledger. It is chosen at random when the state first runs as containers
    (:func:`ensure_scope`), so a state directory made again at the same path — after a run killed
    before its ``down --purge`` left its volumes behind — starts on empty volumes instead of a
    ledger made with other keys. A state that ran as containers before the name was recorded
    keeps the one it had: the hash of its path."""
    try:
        name = scope_file(layout).read_text().strip()
    except FileNotFoundError:
        return hashlib.sha256(str(layout.root).encode()).hexdigest()[:8]
    if not re.fullmatch(r"[0-9a-f]{8}", name):
        raise NetworkError(f"{scope_file(layout)} should hold 8 hexadecimal digits (the name of "
                           f"this state's containers and volumes), not {name[:40]!r}")
    return name


def ensure_scope(layout: Layout, recorded: bool) -> str:
    """The scope of a state directory about to run (or describe, ``network compose``) its
    containers: the one chosen before, if any; for a state whose runtime is already ``recorded``
    without one (it ran before scopes were), its path's hash; otherwise chosen now (two commands
    starting at once agree on one)."""
    if recorded or scope_file(layout).exists():
        return scope(layout)
    layout.root.mkdir(parents=True, exist_ok=True)
    # written whole beside it, then linked into place: the link fails if another command chose one first,
    # and nobody ever reads a file not yet written
    tmp = layout.root / f".containers-scope.{os.getpid()}.{secrets.token_hex(4)}"
    tmp.write_text(secrets.token_hex(4) + "\n")
    try:
        os.link(tmp, scope_file(layout))
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return scope(layout)


def container_name(layout: Layout, what: str) -> str:
    return f"ipledger-{scope(layout)}-{what}"


def volume_name(layout: Layout, node: Node) -> str:
    return f"ipledger-{scope(layout)}-{node.id}"


def container_config_dir(layout: Layout, node: Node) -> Path:
    return layout.node_dir(node) / "container"


def write_container_config(layout: Layout, node: Node) -> Path:
    """The node's configuration as its container reads it: for a peer, the generated core.yaml
    with the external builder at its path in the image; an orderer's orderer.yaml is used as is."""
    if node.kind != "peer":
        return layout.node_dir(node)
    core = yaml.safe_load((layout.node_dir(node) / "core.yaml").read_text())
    for builder in core["chaincode"]["externalBuilders"]:
        builder["path"] = IMAGE_BUILDER_DIR
    d = container_config_dir(layout, node)
    d.mkdir(exist_ok=True)
    (d / "core.yaml").write_text(yaml.safe_dump(core, sort_keys=False))
    return d


def node_service(layout: Layout, node: Node, image: str) -> Service:
    cfg = container_config_dir(layout, node) if node.kind == "peer" else layout.node_dir(node)
    mounts = [Mount(str(layout.node_dir(node)), str(layout.node_dir(node))),
              Mount(str(layout.node_crypto(node)), str(layout.node_crypto(node))),
              Mount(str(layout.data_dir(node)), volume_name(layout, node), read_only=False, volume=True)]
    if node.kind == "orderer":  # its admin endpoint trusts the organisation's admin TLS CA (a certificate)
        ca = layout.admin_tls_ca(node.org)
        mounts.append(Mount(str(ca), str(ca)))
    command = ["peer", "node", "start"] if node.kind == "peer" else ["orderer"]
    env = {"FABRIC_CFG_PATH": str(cfg), "FABRIC_LOGGING_SPEC": LOGGING_SPEC,
           "FABRIC_LOGGING_FORMAT": LOGGING_FORMAT}
    if node.kind == "peer":   # the chaincode's own settings it launches it with, as a native peer's (generate.py)
        env.update(chaincode_settings_given(os.environ))
    return Service(container_name(layout, node.id), image, node.kind, node.org.msp_id, command, env,
                   mounts, node=node.id, scope=scope(layout), user=host_user())


# The image the volume owner runs in: one with a shell and coreutils whatever the binaries (the peer image is
# built on the base; the orderer's may be FROM scratch)
VOLUME_OWNER_IMAGE = "peer"


def volume_owner(svc: Service, image: str) -> Service | None:
    """A short-lived container (of ``image``: one with a shell, :data:`VOLUME_OWNER_IMAGE`) that gives ``svc``'s
    ledger volumes to the user ``svc`` runs as before it starts (an engine creates a volume owned by root):
    root with only the capabilities to change owners and to walk the volume, no network, nothing else
    mounted. It changes nothing on a volume already the user's. None when ``svc`` has no volume or runs as
    root."""
    if svc.user is None or not svc.volumes:
        return None
    targets = [shlex.quote(m.target) for m in svc.mounts if m.volume]   # the state directory's path, quoted
    script = " && ".join(f'{{ [ "$(stat -c %u:%g {t})" = "{svc.user}" ] || chown -R {svc.user} {t}; }}'
                         for t in targets)
    return Service(f"{svc.name}-volume-owner", image, "volume-owner", svc.org, ["sh", "-c", script],
                   mounts=[m for m in svc.mounts if m.volume], scope=svc.scope, user="0:0",
                   cap_add=("CHOWN", "DAC_READ_SEARCH"), network_mode="none")


def host_user() -> str | None:
    """The user every container runs as: this host's, so that it reads the organisation's keys (its own,
    0600) and what it writes stays this user's (None as root: the image's user, root, without capabilities)."""
    uid = os.getuid()
    return None if uid == 0 else f"{uid}:{os.getgid()}"


def chaincode_service_addresses(org: Org) -> list[str]:
    """Where ``org``'s chaincode service may listen (its first peer's host), one address per slot."""
    peer = org.peers[0]
    return [f"{peer.host}:{peer.port + slot}" for slot in CHAINCODE_SERVICE_SLOTS]


def check_names(nodes: list[Node]) -> None:
    """A node's container is named after its id (``<name>.<org name>``), a gateway's ``gateway.<org name>``
    and a volume owner's ``<node container>-volume-owner``: a node whose container would bear another one's
    name (a peer named ``gateway``; a node of an organisation named ``<org>-volume-owner``) is refused —
    the runtime would take one container for the other (answer for it, stop it, remove it)."""
    others = {f"gateway.{n.org.name}": f"{n.org.msp_id}'s gateway" for n in nodes}
    others.update({f"{n.id}-volume-owner": f"the volume owner of {n.id}" for n in nodes})
    for n in nodes:
        if n.id in others:
            raise NetworkError(f"{n.id}'s container would have the name of {others[n.id]} "
                               f"(ipledger-<scope>-{n.id}): rename the {n.kind}")


def check_host_ports(consortium: Consortium, local_nodes: list[Node]) -> None:
    """Before containers start: each organisation's chaincode service listens beside its first peer
    (:func:`chaincode_service_addresses`), so those ports must be no node's; and containers use the
    host's network, so a node in a network namespace (a test/lab feature of native processes) is refused.
    No two containers may share a name (:func:`check_names`)."""
    in_netns = [n.id for n in local_nodes if n.netns]
    if in_netns:
        raise NetworkError(f"{', '.join(in_netns)} name a network namespace (netns): native processes only; "
                           "containers use the host's network")
    check_names(local_nodes)
    taken = {(n.host, p): n.id for n in consortium.nodes for p in n.ports()}
    for org in consortium.orgs:
        if not org.peers:
            continue
        for address in chaincode_service_addresses(org):
            host, port = address.rsplit(":", 1)
            if (host, int(port)) in taken:
                raise NetworkError(f"{org.msp_id}'s chaincode service would listen on {host}:{port}, "
                                   f"which {taken[(host, int(port))]} uses: give nodes at least 5 ports "
                                   "each (ports_per_node in the consortium file)")


def chaincode_service(layout: Layout, org: Org, label: str, package_id: str, address: str, customs_msp: str,
                      tls_dir: Path, image: str) -> Service:
    """The contract as a service for ``org``'s peers: one per organisation and package (``label``:
    name_version), listening on ``address`` (the one its package names)."""
    env = {"CHAINCODE_SERVER_ADDRESS": address,   # host networking: the address itself, no other interface
           "CHAINCODE_ID": package_id, "IPLEDGER_CUSTOMS_MSP": customs_msp,
           "CHAINCODE_TLS_CERT_FILE": str(tls_dir / "server.crt"),
           "CHAINCODE_TLS_KEY_FILE": str(tls_dir / "server.key"),
           "CHAINCODE_CLIENT_CA_CERT_FILE": str(tls_dir / "ca.crt"),
           **chaincode_settings(os.environ)}   # the IPLEDGER_CHAINCODE_* settings given, as a peer hands them on
    return Service(chaincode_service_name(layout, org, label), image, "chaincode", org.msp_id,
                   ["python", "-m", "ipledger.chaincode.shim.server"], env,
                   [Mount(str(tls_dir), str(tls_dir))], scope=scope(layout), chaincode=label, user=host_user())


def chaincode_service_name(layout: Layout, org: Org, label: str) -> str:
    return container_name(layout, f"{label}.{org.name}")


def gateway_service(layout: Layout, org: Org, image: str, bind: str, workers: int = 2,
                    environ: dict[str, str] | None = None, tls_args: list[str] = (),
                    tls_files: list[str] = ()) -> Service:
    """``org``'s REST gateway; ``tls_args`` are ``gateway serve``'s HTTPS options, naming
    ``tls_files`` (its certificate, key and client CAs), mounted read-only where they are. ``environ``
    is the gateway's settings, given as they are (the command that starts it chooses them:
    ``gateway.config.gateway_environment``)."""
    user = layout.user_dir(org, "User1")
    gw = layout.gateway_dir(org)
    env = dict(environ or {})
    files = [Mount(f, f) for f in dict.fromkeys(str(Path(f).resolve()) for f in tls_files)]
    return Service(gateway_name(layout, org), image, "gateway", org.msp_id,
                   ["--state-dir", str(layout.root), "gateway", "serve", "--org", org.msp_id,
                    "--bind", bind, "--workers", str(workers), *tls_args], env,
                   [Mount(str(layout.public), str(layout.public)), Mount(str(user), str(user)),
                    Mount(str(gw), str(gw), read_only=False), *files], scope=scope(layout), user=host_user())


def gateway_name(layout: Layout, org: Org) -> str:
    return container_name(layout, f"gateway.{org.name}")
