"""``--runtime docker``: an organisation's nodes, chaincode service and gateway as containers.

Started and stopped through the Docker SDK for Python, from the descriptions of
network/org/containers/services.py (which also become the compose files). The images are built
here first if they are not cached (network/org/containers/images.py). A container that stopped
(killed, crashed, the host restarted) is removed and created anew by the next ``network up``:
its ledger is on its named volume, so the new one starts where the old one stopped and
catches up with the channel; what the old one logged is kept in ``nodes/<id>/previous-container.log``.
``ipledger network up`` also starts the organisations' chaincode services again (one per package
in ``<org>/chaincode/``: network/channel/chaincode.py ``resume_services``). ``network down`` removes the containers and keeps the volumes;
``network down --purge`` removes the volumes too.
"""
from __future__ import annotations

import contextlib
import socket
import sys
import time
from pathlib import Path

from ipledger.network.consortium import Node, Org
from ipledger.network.layout import Layout
from ipledger.network.org.processes import StartError
from ipledger.network.org.containers import images, services
from ipledger.network.org.containers.services import LABEL, Service

# the images a network needs (the base is their parent)
IMAGES = ("peer", "orderer", "ccaas", "gateway")
_built: dict[str, dict[str, str]] = {}   # per engine: image name -> tag, built once per process


class ContainerError(StartError):
    """A container cannot be created, started or found, or the engine does not answer; the
    message says why."""


@contextlib.contextmanager
def _engine(what: str):
    """The SDK's errors (API, connection: an engine that stopped answering is requests' error, not the SDK's)
    and the images' as a ContainerError naming what was being done."""
    import docker.errors  # noqa: PLC0415
    import requests.exceptions  # noqa: PLC0415  (the SDK's transport)
    try:
        yield
    except (docker.errors.DockerException, requests.exceptions.RequestException, images.ImageError) as e:
        raise ContainerError(f"{what}: {e}") from None


def image_tags(c, log=print) -> dict[str, str]:
    """The current tag of each image, building what is not cached (once per process)."""
    key = c.api.base_url
    if key not in _built:
        log("  container images (built here when their inputs changed):")
        with _engine("building the container images"):
            results = images.build_all(only=IMAGES, c=c, log=lambda m: log(f"    {m}"))
        _built[key] = {r.name: r.tag for r in results}
    return _built[key]


class DockerRuntime:
    name = "docker"

    def __init__(self, layout: Layout, client=None):
        self.layout = layout
        self._client = client

    # -- the engine ----------------------------------------------------------------------------
    @property
    def client(self):
        if self._client is None:
            try:
                self._client = images.client()
            except images.ImageError as e:
                raise ContainerError(str(e)) from None
        return self._client

    def tags(self, log=print) -> dict[str, str]:
        return image_tags(self.client, log)

    def _find(self, name: str):
        import docker.errors  # noqa: PLC0415
        with _engine(f"looking for container {name}"):
            try:
                return self.client.containers.get(name)
            except docker.errors.NotFound:
                return None

    def _status(self, name: str) -> tuple[object | None, bool]:
        import docker.errors  # noqa: PLC0415
        ctr = self._find(name)
        if ctr is None:
            return None, False
        with _engine(f"looking for container {name}"):
            try:
                ctr.reload()
            except docker.errors.NotFound:   # removed in between
                return None, False
        return ctr, ctr.status == "running"

    # -- any service ---------------------------------------------------------------------------
    def run(self, svc: Service, keep_log: Path | None = None) -> str:
        """Create and start ``svc``'s container (an old stopped one of the same name is removed
        first — its data is on its volumes, its log saved to ``keep_log``); returns its short id."""
        ctr, up = self._status(svc.name)
        if up:
            return ctr.short_id
        if ctr is not None:
            self._keep_log(ctr, keep_log)
            with _engine(f"removing the stopped container {svc.name}"):
                ctr.remove(force=True, v=True)
        for m in svc.mounts:
            if not m.volume and not Path(m.source).exists():
                raise ContainerError(f"{svc.name}: {m.source} does not exist (mounted at {m.target})")
        for vol in svc.volumes:
            self._volume(vol, svc)
        if svc.user is not None and svc.volumes:   # its new volumes given to its user first
            self._run_once(services.volume_owner(svc, self.tags()[services.VOLUME_OWNER_IMAGE]))
        import docker.types  # noqa: PLC0415
        with _engine(f"starting {svc.name}"):
            ctr = self._start(svc, log_config=docker.types.LogConfig(
                type="json-file", config={"max-size": "20m", "max-file": "3"}))
        return ctr.short_id

    def _start(self, svc: Service, **extra):
        """Create ``svc``'s container from the engine's own image and start it. Never from a registry: the
        SDK's ``containers.run`` pulls an image it does not find (from a registry, with the organisation's keys then
        mounted into it; images.NAMESPACE never resolves), so a missing image is an error here. A container that
        does not start is removed."""
        import docker.errors  # noqa: PLC0415
        try:
            ctr = self.client.containers.create(svc.image, svc.command, name=svc.name, detach=True,
                                                **self._settings(svc), **extra)
        except docker.errors.ImageNotFound:
            raise ContainerError(f"{svc.name}: image {svc.image} is not in the engine (images are built here, "
                                 "never pulled: python -m ipledger.network.org.containers build)") from None
        try:
            ctr.start()
        except BaseException:
            with contextlib.suppress(Exception):
                ctr.remove(force=True, v=True)
            raise
        return ctr

    @staticmethod
    def _settings(svc: Service) -> dict:
        """What the engine is told of ``svc`` beside its image and command: network, environment, mounts,
        labels, user, and no capabilities but those it keeps (services.CAP_DROP)."""
        import docker.types  # noqa: PLC0415
        mounts = [docker.types.Mount(m.target, m.source, type="volume" if m.volume else "bind",
                                     read_only=m.read_only) for m in svc.mounts]
        return {"network_mode": svc.network_mode, "environment": svc.environment, "mounts": mounts,
                "labels": svc.labels, "user": svc.user, "cap_drop": list(services.CAP_DROP),
                "cap_add": list(svc.cap_add) or None, "security_opt": list(services.SECURITY_OPT)}

    def _run_once(self, svc: Service) -> None:
        """Run ``svc`` to its end and remove it; ContainerError with its output if it fails."""
        with _engine(f"running {svc.name}"):
            old = self._find(svc.name)
            if old is not None:
                old.remove(force=True)
            ctr = self._start(svc)
            try:
                status = ctr.wait().get("StatusCode", 1)
                if status != 0:
                    err = ctr.logs(stdout=False, stderr=True).decode(errors="replace").strip()
                    raise ContainerError(f"{svc.name} failed (exit {status}): {err}")
            finally:
                with contextlib.suppress(Exception):
                    ctr.remove(force=True)

    @staticmethod
    def _keep_log(ctr, path: Path | None) -> None:
        if path is None:
            return
        with contextlib.suppress(Exception):   # a log that cannot be read is no reason not to go on
            path.write_bytes(ctr.logs(tail=2000))

    def _volume(self, name: str, svc: Service) -> None:
        import docker.errors  # noqa: PLC0415
        with _engine(f"creating volume {name}"):
            try:
                self.client.volumes.get(name)
            except docker.errors.NotFound:
                self.client.volumes.create(name, labels=svc.volume_labels())

    def remove(self, name: str, timeout: int = 15, keep_log: Path | None = None) -> bool:
        """Stop (SIGTERM, then SIGKILL after ``timeout`` s) and remove; whether it was running."""
        ctr, up = self._status(name)
        if ctr is None:
            return False
        with _engine(f"stopping {name}"):
            if up:
                ctr.stop(timeout=timeout)
            self._keep_log(ctr, keep_log)
            ctr.remove(force=True, v=True)
        return up

    def running_id(self, name: str) -> str | None:
        ctr, up = self._status(name)
        return ctr.short_id if up else None

    def logs(self, name: str, lines: int) -> list[str]:
        ctr = self._find(name)
        if ctr is None:
            return []
        return ctr.logs(tail=lines).decode(errors="replace").splitlines()

    def containers(self, **labels: str) -> list:
        """Every container of this state directory (with these ``org.ipledger.*`` labels), running or not."""
        wanted = [f"{LABEL}.scope={services.scope(self.layout)}", *(f"{LABEL}.{k}={v}" for k, v in labels.items())]
        with _engine("listing containers"):
            return self.client.containers.list(all=True, filters={"label": wanted})

    def purge(self, log=print) -> None:
        """Remove every container and named volume of this state directory."""
        with _engine("removing the containers and volumes"):
            for ctr in self.containers():
                ctr.remove(force=True, v=True)
                log(f"  removed container {ctr.name}")
            for vol in self.client.volumes.list(filters={"label": f"{LABEL}.scope={services.scope(self.layout)}"}):
                vol.remove(force=True)
                log(f"  removed volume {vol.name}")

    def remove_org(self, org: Org, log=print) -> None:
        """Stop ``org``'s chaincode services and gateway (its nodes go through :meth:`stop`); its
        volumes stay, as its own directory does."""
        for ctr in self.containers(org=org.msp_id):
            if ctr.labels.get(f"{LABEL}.role") in ("chaincode", "gateway"):
                self.remove(ctr.name)
                log(f"  stopped {ctr.name}")

    # -- nodes (network/org/runtime.py's Runtime) --------------------------------------------------
    def node_service(self, node: Node) -> Service:
        return services.node_service(self.layout, node, self.tags()[node.kind])

    def running(self, node: Node) -> str | None:
        return self.running_id(services.container_name(self.layout, node.id))

    def start(self, node: Node) -> str:
        services.write_container_config(self.layout, node)
        return self.run(self.node_service(node), keep_log=self._previous_log(node))

    def stop(self, node: Node) -> bool:
        return self.remove(services.container_name(self.layout, node.id), keep_log=self._previous_log(node))

    def _previous_log(self, node: Node) -> Path:
        return self.layout.node_dir(node) / "previous-container.log"

    def log_lines(self, node: Node, lines: int) -> list[str]:
        return self.logs(services.container_name(self.layout, node.id), lines)

    def follow(self, node: Node, lines: int) -> None:
        ctr = self._find(services.container_name(self.layout, node.id))
        if ctr is None:
            raise ContainerError(f"no container for {node.id}")
        for chunk in ctr.logs(stream=True, follow=True, tail=lines):
            sys.stdout.write(chunk.decode(errors="replace"))
            sys.stdout.flush()

    def where(self, node: Node) -> str:
        return f"docker logs {services.container_name(self.layout, node.id)}"

    # -- the chaincode services ---------------------------------------------------------------
    def start_chaincode(self, org: Org, label: str, package_id: str, address: str, customs_msp: str,
                        tls_dir: Path, log=print, timeout: float = 30.0) -> str:
        """``org``'s chaincode service for the package ``package_id`` (labelled ``label``, naming
        ``address``), once it accepts connections. A service of another package keeps running (the
        peers use it until the new definition is committed: :meth:`retire_chaincode`)."""
        svc = services.chaincode_service(self.layout, org, label, package_id, address, customs_msp, tls_dir,
                                         self.tags()["ccaas"])
        ctr, up = self._status(svc.name)
        if up and f"CHAINCODE_ID={package_id}" not in (ctr.attrs["Config"]["Env"] or []):
            self.remove(svc.name)   # a package rebuilt under the same label: the service must announce its id
        cid = self.run(svc)
        host, port = address.rsplit(":", 1)
        deadline = time.monotonic() + timeout
        while not _accepts(host, int(port)):
            if self.running_id(svc.name) is None or time.monotonic() > deadline:
                tail = "\n".join(self.logs(svc.name, 15))
                self.remove(svc.name, timeout=5)   # not left running unreachable (the peers would dial it)
                raise ContainerError(f"{org.msp_id}'s chaincode service {svc.name} does not listen on {address}:\n{tail}")
            time.sleep(0.2)
        log(f"  {org.msp_id}'s chaincode service {svc.name} ({cid}) at {address}")
        return cid

    def chaincode_services(self, org: Org) -> dict[str, str]:
        """``org``'s running chaincode services: package label -> the address it listens on."""
        out = {}
        for ctr in self.containers(org=org.msp_id, role="chaincode"):
            env = dict(e.split("=", 1) for e in ctr.attrs["Config"]["Env"] or [])
            if ctr.status == "running":
                out[ctr.labels.get(f"{LABEL}.chaincode", "")] = env.get("CHAINCODE_SERVER_ADDRESS", "")
        return out

    def retire_chaincode(self, org: Org, name: str, keep: str, log=print) -> list[str]:
        """Stop ``org``'s services of chaincode ``name`` other than the package labelled ``keep`` (the
        one committed); returns their labels."""
        gone = []
        for ctr in self.containers(org=org.msp_id, role="chaincode"):
            label = ctr.labels.get(f"{LABEL}.chaincode", "")
            if label.startswith(f"{name}_") and label != keep:
                self.remove(ctr.name)
                log(f"  {org.msp_id}: stopped the chaincode service of {label} ({keep} is committed)")
                gone.append(label)
        return gone

    def stop_chaincode_services(self, log=print) -> None:
        for ctr in self.containers(role="chaincode"):
            self.remove(ctr.name)
            log(f"  stopped chaincode service {ctr.name}")

    # -- the gateway ---------------------------------------------------------------------------
    def start_gateway(self, org: Org, bind: str, workers: int, environ: dict[str, str],
                      tls_args: list[str] = (), tls_files: list[str] = ()) -> str:
        svc = services.gateway_service(self.layout, org, self.tags()["gateway"], bind, workers, environ,
                                       tls_args, tls_files)
        return self.run(svc)

    def gateway_command(self, org: Org) -> list[str] | None:
        """The command line of ``org``'s running gateway container (None if none runs)."""
        ctr, up = self._status(services.gateway_name(self.layout, org))
        return list(ctr.attrs["Config"]["Cmd"] or []) if up else None

    def gateway_bind(self, org: Org) -> str | None:
        """The address ``org``'s running gateway container listens on (its ``--bind``)."""
        cmd = self.gateway_command(org) or []
        return cmd[cmd.index("--bind") + 1] if "--bind" in cmd else None

    def gateway_running(self, org: Org) -> str | None:
        return self.running_id(services.gateway_name(self.layout, org))

    def gateway_logs(self, org: Org, lines: int = 15) -> list[str]:
        return self.logs(services.gateway_name(self.layout, org), lines)

    def reload_gateway(self, org: Org) -> bool:
        """SIGHUP to ``org``'s gateway container (its gunicorn master reloads); whether it runs."""
        ctr, up = self._status(services.gateway_name(self.layout, org))
        if not up:
            return False
        with _engine(f"reloading {services.gateway_name(self.layout, org)}"):
            ctr.kill(signal="SIGHUP")
        return True

    def gateway_workers(self, org: Org) -> list[int]:
        """The (host) process ids of the gateway container's gunicorn workers (:func:`gunicorn_workers`)."""
        ctr, up = self._status(services.gateway_name(self.layout, org))
        if not up:
            return []
        with _engine(f"listing the processes of {services.gateway_name(self.layout, org)}"):
            top = ctr.top(ps_args="-o pid,ppid,args")
        return gunicorn_workers(top.get("Processes") or [])

    def stop_gateway(self, org: Org) -> bool:
        return self.remove(services.gateway_name(self.layout, org), timeout=20)


def gunicorn_workers(rows) -> list[int]:
    """Of ``ps -o pid,ppid,args`` rows, the gunicorn workers of the gateway: processes of ``gateway serve``
    whose parent is one too (the master's parent is the engine's, or an init process such as
    ``docker --init``'s)."""
    serving = {int(r[0]): int(r[1]) for r in rows if "gateway serve" in " ".join(str(x) for x in r[2:])}
    return sorted(pid for pid, ppid in serving.items() if ppid in serving)


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False
