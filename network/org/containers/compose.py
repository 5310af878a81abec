"""``ipledger network compose --org M``: one organisation's containers as a compose file.

For operators who run their part with compose rather than ``--runtime docker``: the same
containers (network/org/containers/services.py: images, commands, read-only key mounts, ledgers on
named volumes, host networking), under the same names, so ``ipledger network up|status|down``
on that host recognise them. Written for compose file format 3.8, which Debian's
``docker-compose`` (1.29) reads:

    ipledger network compose --org OperatorMSP --out operator.yaml
    docker-compose -f operator.yaml up -d        # its nodes (and chaincode service, gateway)
    ipledger --runtime docker network up         # joins the channel(s): nothing else to start

The file names the images by their exact tags (build them first: ``python -m ipledger.network.org.containers
build``). Its chaincode services are in it once the organisation has its chaincode packages (after
``ipledger chaincode deploy``), the gateway when ``--gateway-bind`` is given. The ledgers are on the
named volumes: ``docker-compose down`` keeps them, ``down -v`` deletes them.
"""
from __future__ import annotations

import yaml

from ipledger.network.org import identities
from ipledger.network.consortium import Org
from ipledger.network.layout import Layout
from ipledger.network.org.containers import services
from ipledger.network.org.containers.services import Service

FORMAT = "3.8"


def service_entry(svc: Service) -> dict:
    volumes = []
    for m in svc.mounts:
        entry = {"type": "volume" if m.volume else "bind", "source": m.source, "target": m.target}
        if m.read_only:
            entry["read_only"] = True
        volumes.append(entry)
    out = {"image": svc.image, "container_name": svc.name, "command": list(svc.command),
           "network_mode": svc.network_mode, "labels": svc.labels, "volumes": volumes,
           "restart": "unless-stopped", "pull_policy": "never", "cap_drop": list(services.CAP_DROP),
           "security_opt": list(services.SECURITY_OPT)}
    if svc.cap_add:
        out["cap_add"] = list(svc.cap_add)
    if svc.user:
        out["user"] = svc.user
    if svc.environment:
        out["environment"] = dict(svc.environment)
    return out


def document(svcs: list[Service], owner_image: str) -> dict:
    """The compose file of ``svcs``; a node running as a user first has its volumes given to that user by a
    ``<node>-volume-owner`` service of ``owner_image`` (services.volume_owner)."""
    doc = {"version": FORMAT, "services": {}, "volumes": {}}
    for svc in svcs:
        key = svc.node or svc.name.split("-", 2)[-1]
        doc["services"][key] = service_entry(svc)
        if (owner := services.volume_owner(svc, owner_image)) is not None:   # its volumes given to its user first
            doc["services"][f"{key}-volume-owner"] = {**service_entry(owner), "restart": "no"}
            doc["services"][key]["depends_on"] = {f"{key}-volume-owner": {"condition": "service_completed_successfully"}}
        for vol in svc.volumes:
            doc["volumes"][vol] = {"name": vol, "labels": svc.volume_labels()}
    if not doc["volumes"]:
        del doc["volumes"]
    return doc


def org_services(layout: Layout, org: Org, tags: dict[str, str], *, chaincode_services=(),
                 customs_msp: str | None = None, gateway_bind: str | None = None) -> list[Service]:
    """Every container of ``org`` on its host: its nodes, a chaincode service for each of
    ``chaincode_services`` ((label, package id, address) of its packages), its gateway (given
    ``gateway_bind``). Writes the peers' container configuration."""
    svcs = []
    services.check_names(org.nodes)
    for node in org.nodes:
        services.write_container_config(layout, node)
        svcs.append(services.node_service(layout, node, tags[node.kind]))
    tls = identities.OrgIdentities(layout.org_dir(org), org.msp_id, org.domain).chaincode_service_dir
    for label, package_id, address in chaincode_services:
        svcs.append(services.chaincode_service(layout, org, label, package_id, address, customs_msp, tls,
                                               tags["ccaas"]))
    if gateway_bind and org.peers:
        svcs.append(services.gateway_service(layout, org, tags["gateway"], gateway_bind))
    return svcs


def render(doc: dict, header: str) -> str:
    return "".join(f"# {line}\n" for line in header.splitlines()) + yaml.safe_dump(doc, sort_keys=False)
