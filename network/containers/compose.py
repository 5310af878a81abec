"""``ipledger network compose --org M``: one organisation's containers as a compose file.

For operators who run their part with compose rather than ``--runtime docker``: the same
containers (network/containers/services.py: images, commands, read-only key mounts, ledgers on
named volumes, host networking), under the same names, so ``ipledger network up|status|down``
on that host recognise them. Written for compose file format 3.8, which Debian's
``docker-compose`` (1.29) reads:

    ipledger network compose --org OperatorMSP --out operator.yaml
    docker-compose -f operator.yaml up -d        # its nodes (and chaincode service, gateway)
    ipledger --runtime docker network up         # joins the channel(s): nothing else to start

The file names the images by their exact tags (build them first: ``python -m network.containers
build``). The chaincode service is in it once the organisation has its chaincode package (after
``ipledger chaincode deploy``), the gateway when ``--gateway-bind`` is given.
"""
from __future__ import annotations

import yaml

from ..consortium import Org
from ..layout import Layout
from . import services
from .services import Service

FORMAT = "3.8"


def service_entry(svc: Service) -> dict:
    volumes = []
    for m in svc.mounts:
        entry = {"type": "volume" if m.volume else "bind", "source": m.source, "target": m.target}
        if m.read_only:
            entry["read_only"] = True
        volumes.append(entry)
    out = {"image": svc.image, "container_name": svc.name, "command": list(svc.command),
           "network_mode": "host", "labels": svc.labels, "volumes": volumes,
           "restart": "unless-stopped"}
    if svc.environment:
        out["environment"] = dict(svc.environment)
    return out


def document(svcs: list[Service]) -> dict:
    doc = {"version": FORMAT, "services": {}, "volumes": {}}
    for svc in svcs:
        key = svc.node or svc.name.split("-", 2)[-1]
        doc["services"][key] = service_entry(svc)
        for vol in svc.volumes:
            doc["volumes"][vol] = {"name": vol, "labels": {f"{services.LABEL}.scope": svc.scope,
                                                           f"{services.LABEL}.org": svc.org}}
    if not doc["volumes"]:
        del doc["volumes"]
    return doc


def org_services(layout: Layout, org: Org, tags: dict[str, str], *, chaincode: str = "ipledger",
                 package_id: str | None = None, customs_msp: str | None = None,
                 gateway_bind: str | None = None) -> list[Service]:
    """Every container of ``org`` on its host: its nodes, its chaincode service (given the id of
    its installed package), its gateway (given ``gateway_bind``). Writes the peers' container
    configuration."""
    svcs = []
    for node in org.nodes:
        services.write_container_config(layout, node)
        svcs.append(services.node_service(layout, node, tags[node.kind]))
    if package_id and org.peers and customs_msp:
        tls = layout.org_dir(org) / "chaincode"
        svcs.append(services.chaincode_service(layout, org, chaincode, package_id, customs_msp, tls,
                                               tags["ccaas"]))
    if gateway_bind and org.peers:
        svcs.append(services.gateway_service(layout, org, tags["gateway"], gateway_bind))
    return svcs


def render(doc: dict, header: str) -> str:
    return "".join(f"# {line}\n" for line in header.splitlines()) + yaml.safe_dump(doc, sort_keys=False)
