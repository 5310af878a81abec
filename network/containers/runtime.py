"""``--runtime docker``: an organisation's nodes, chaincode service and gateway as containers.

Started and stopped through the Docker SDK for Python, from the descriptions of
network/containers/services.py (which also become the compose files). The images are built
here first if they are not cached (network/containers/images.py). A container that stopped
(killed, crashed, the host restarted) is removed and created anew by the next ``network up``:
its ledger is on its named volume, so the new one starts where the old one stopped and
catches up with the channel. ``network down`` removes the containers and keeps the volumes;
``network down --purge`` removes the volumes too.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..consortium import Node, Org
from ..layout import Layout
from ..processes import StartError
from . import images, services
from .services import LABEL, Service

# the images a network needs (the base is their parent)
IMAGES = ("peer", "orderer", "ccaas", "gateway")
_built: dict[str, dict[str, str]] = {}   # per engine: image name -> tag, built once per process


class ContainerError(StartError):
    """A container cannot be created, started or found, or the engine does not answer; the
    message says why."""


def image_tags(c, log=print) -> dict[str, str]:
    """The current tag of each image, building what is not cached (once per process)."""
    key = c.api.base_url
    if key not in _built:
        log("  container images (built here when their inputs changed):")
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
        try:
            return self.client.containers.get(name)
        except docker.errors.NotFound:
            return None

    def _status(self, name: str) -> tuple[object | None, bool]:
        ctr = self._find(name)
        if ctr is None:
            return None, False
        ctr.reload()
        return ctr, ctr.status == "running"

    # -- any service ---------------------------------------------------------------------------
    def run(self, svc: Service) -> str:
        """Create and start ``svc``'s container (an old stopped one of the same name is removed
        first: its data is on its volumes); returns its short id."""
        ctr, up = self._status(svc.name)
        if up:
            return ctr.short_id
        if ctr is not None:
            ctr.remove(force=True, v=True)
        for m in svc.mounts:
            if not m.volume and not Path(m.source).exists():
                raise ContainerError(f"{svc.name}: {m.source} does not exist (mounted at {m.target})")
        for vol in svc.volumes:
            self._volume(vol, svc)
        import docker.types  # noqa: PLC0415
        mounts = [docker.types.Mount(m.target, m.source, type="volume" if m.volume else "bind",
                                     read_only=m.read_only) for m in svc.mounts]
        try:
            ctr = self.client.containers.run(
                svc.image, svc.command, name=svc.name, detach=True, network_mode="host",
                environment=svc.environment, mounts=mounts, labels=svc.labels,
                log_config=docker.types.LogConfig(type="json-file", config={"max-size": "20m", "max-file": "3"}))
        except Exception as e:  # noqa: BLE001  (the SDK's errors carry the engine's message)
            raise ContainerError(f"{svc.name}: {e}") from None
        return ctr.short_id

    def _volume(self, name: str, svc: Service) -> None:
        import docker.errors  # noqa: PLC0415
        try:
            self.client.volumes.get(name)
        except docker.errors.NotFound:
            self.client.volumes.create(name, labels={f"{LABEL}.scope": svc.scope, f"{LABEL}.org": svc.org,
                                                     f"{LABEL}.node": svc.node or ""})

    def remove(self, name: str, timeout: int = 15) -> bool:
        """Stop (SIGTERM, then SIGKILL after ``timeout`` s) and remove; whether it was running."""
        ctr, up = self._status(name)
        if ctr is None:
            return False
        if up:
            ctr.stop(timeout=timeout)
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

    def containers(self) -> list:
        """Every container of this state directory, running or not."""
        return self.client.containers.list(all=True, filters={"label": f"{LABEL}.scope={services.scope(self.layout)}"})

    def purge(self, log=print) -> None:
        """Remove every container and named volume of this state directory."""
        for ctr in self.containers():
            ctr.remove(force=True, v=True)
            log(f"  removed container {ctr.name}")
        for vol in self.client.volumes.list(filters={"label": f"{LABEL}.scope={services.scope(self.layout)}"}):
            vol.remove(force=True)
            log(f"  removed volume {vol.name}")

    # -- nodes (network/runtime.py's Runtime) --------------------------------------------------
    def node_service(self, node: Node) -> Service:
        return services.node_service(self.layout, node, self.tags()[node.kind])

    def running(self, node: Node) -> str | None:
        return self.running_id(services.container_name(self.layout, node.id))

    def start(self, node: Node) -> str:
        services.write_container_config(self.layout, node)
        return self.run(self.node_service(node))

    def stop(self, node: Node) -> bool:
        return self.remove(services.container_name(self.layout, node.id))

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

    # -- the chaincode service -----------------------------------------------------------------
    def start_chaincode(self, org: Org, chaincode: str, package_id: str, customs_msp: str,
                        tls_dir: Path, log=print) -> str:
        """``org``'s chaincode service for ``package_id`` (a running one for another package is
        replaced: its peers dial the address, and the service must announce the installed id)."""
        svc = services.chaincode_service(self.layout, org, chaincode, package_id, customs_msp, tls_dir,
                                         self.tags()["ccaas"])
        ctr, up = self._status(svc.name)
        if up and ctr.attrs["Config"]["Env"] and f"CHAINCODE_ID={package_id}" not in ctr.attrs["Config"]["Env"]:
            self.remove(svc.name)
        cid = self.run(svc)
        log(f"  {org.msp_id}'s chaincode service {svc.name} ({cid}) at "
            f"{svc.environment['CHAINCODE_SERVER_ADDRESS']}")
        return cid

    def stop_chaincode_services(self, log=print) -> None:
        for ctr in self.client.containers.list(all=True, filters={"label": [
                f"{LABEL}.scope={services.scope(self.layout)}", f"{LABEL}.role=chaincode"]}):
            ctr.remove(force=True, v=True)
            log(f"  stopped chaincode service {ctr.name}")

    # -- the gateway ---------------------------------------------------------------------------
    def start_gateway(self, org: Org, bind: str, workers: int, environ: dict[str, str],
                      tls_args: list[str] = (), tls_files: list[str] = ()) -> str:
        svc = services.gateway_service(self.layout, org, self.tags()["gateway"], bind, workers, environ,
                                       tls_args, tls_files)
        return self.run(svc)

    def gateway_running(self, org: Org) -> str | None:
        return self.running_id(services.gateway_name(self.layout, org))

    def gateway_logs(self, org: Org, lines: int = 15) -> list[str]:
        return self.logs(services.gateway_name(self.layout, org), lines)

    def stop_gateway(self, org: Org) -> bool:
        return self.remove(services.gateway_name(self.layout, org), timeout=20)
