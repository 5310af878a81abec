"""Founding the channel from the organisations' public definitions only.

The founder gathers every organisation's definition (network/definition.py) in
the consortium's public directory and builds the genesis block from them with
configtxgen: no private key is read, and none is needed. Before joining, every
organisation reads the block (:func:`summary`: members, policies, orderers,
consenters) and checks that its own definition is in it as it sent it
(:func:`check_own`); ``network up`` refuses to join a block that fails the
check.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fabric_protos.common import configtx_pb2
from fabric_protos.orderer import configuration_pb2 as orderer_config_pb2
from fabric_protos.orderer.etcdraft import configuration_pb2 as raft_pb2

from . import definition as definition_mod
from . import fabric
from .admin_config import (APPLICATION, ORDERER, anchor_peers, application_orgs, config_from_block,
                           msp_of, orderer_endpoints, orderer_orgs)
from .admin_policy import render_policy
from .consortium import Consortium
from .definition import Definition, fingerprint
from .layout import Layout

PROFILE = "IPLedgerChannel"


class FoundingError(RuntimeError):
    """The channel cannot be founded, or a genesis block fails an organisation's check."""


# ----------------------------------------------------------------------------- configtx

def _sig(rule: str) -> dict:
    return {"Type": "Signature", "Rule": rule}


def _meta(rule: str) -> dict:
    return {"Type": "ImplicitMeta", "Rule": rule}


def application_org(msp_id: str, msp_dir: Path, anchor_peers: list[str]) -> dict:
    """An application organisation as configtx.yaml declares it (also used for an organisation
    joining later: ``ipledger admin propose add-org``)."""
    anchors = []
    for address in anchor_peers:
        host, _, port = address.rpartition(":")
        anchors.append({"Host": host, "Port": int(port)})
    return {
        "Name": msp_id, "ID": msp_id, "MSPDir": str(msp_dir),
        "Policies": {
            "Readers": _sig(f"OR('{msp_id}.admin', '{msp_id}.peer', '{msp_id}.client')"),
            "Writers": _sig(f"OR('{msp_id}.admin', '{msp_id}.client')"),
            "Admins": _sig(f"OR('{msp_id}.admin')"),
            "Endorsement": _sig(f"OR('{msp_id}.peer')"),
        },
        "AnchorPeers": anchors,
    }


def orderer_org(msp_id: str, msp_dir: Path, endpoints: list[str]) -> dict:
    return {
        "Name": msp_id, "ID": msp_id, "MSPDir": str(msp_dir),
        "Policies": {
            "Readers": _sig(f"OR('{msp_id}.member')"),
            "Writers": _sig(f"OR('{msp_id}.member')"),
            "Admins": _sig(f"OR('{msp_id}.admin')"),
        },
        "OrdererEndpoints": endpoints,
    }


def configtx(c: Consortium, lay: Layout, defs: dict[str, Definition]) -> dict:
    """configtx.yaml for the genesis block, from public files only: the public MSP directories
    and consenter certificates rebuilt from ``defs`` under ``lay.channel_dir``."""
    o = defs[c.orderer_org.msp_id]
    consenters = []
    for node in o.orderers:
        tls = lay.channel_dir / "consenters" / f"{node['name']}.{o.name}-tls.pem"
        tls.parent.mkdir(parents=True, exist_ok=True)
        tls.write_text(node["tls_cert"])
        consenters.append({"Host": node["host"], "Port": node["port"],
                           "ClientTLSCert": str(tls), "ServerTLSCert": str(tls)})
    endpoints = [f"{n['host']}:{n['port']}" for n in o.orderers]
    app_orgs = [application_org(d.msp_id, lay.public_msp(d.msp_id), d.anchor_peers)
                for d in (defs[org.msp_id] for org in c.orgs)]
    return {"Profiles": {PROFILE: {
        "Policies": {
            "Readers": _meta("ANY Readers"),
            "Writers": _meta("ANY Writers"),
            # Channel membership and policy changes need a majority of org admins.
            "Admins": _meta("MAJORITY Admins"),
        },
        "Capabilities": {"V3_0": True},
        "Orderer": {
            "OrdererType": "etcdraft",
            "EtcdRaft": {"Consenters": consenters},
            "BatchTimeout": c.batch_timeout,
            "BatchSize": {"MaxMessageCount": c.max_message_count,
                          "AbsoluteMaxBytes": "99 MB", "PreferredMaxBytes": "2 MB"},
            "Organizations": [orderer_org(o.msp_id, lay.public_msp(o.msp_id), endpoints)],
            "Policies": {
                "Readers": _meta("ANY Readers"),
                "Writers": _meta("ANY Writers"),
                "Admins": _meta("MAJORITY Admins"),
                "BlockValidation": _meta("ANY Writers"),
            },
            "Capabilities": {"V2_0": True},
        },
        "Application": {
            "Organizations": app_orgs,
            "Policies": {
                "Readers": _meta("ANY Readers"),
                "Writers": _meta("ANY Writers"),
                "Admins": _meta("MAJORITY Admins"),
                "LifecycleEndorsement": _meta("MAJORITY Endorsement"),
                "Endorsement": _meta("MAJORITY Endorsement"),
            },
            "Capabilities": {"V2_5": True},
        },
    }}}


# ----------------------------------------------------------------------------- founding

def definitions(c: Consortium, lay: Layout) -> dict[str, Definition]:
    """Every organisation's definition from the public directory, checked against the
    consortium file (same MSP id, role, nodes' addresses)."""
    missing = [o.msp_id for o in [c.orderer_org, *c.orgs]
               if not lay.definition_file(o.msp_id).exists()]
    if missing:
        raise FoundingError(f"founding needs every organisation's public definition in "
                            f"{lay.definitions_dir}; missing: {', '.join(missing)} (each writes "
                            "its own with 'ipledger org definition' and sends it)")
    out = {}
    for org in [c.orderer_org, *c.orgs]:
        try:
            d = definition_mod.load(lay.definition_file(org.msp_id))
        except definition_mod.DefinitionError as e:
            raise FoundingError(str(e)) from e
        if d.msp_id != org.msp_id:
            raise FoundingError(f"{lay.definition_file(org.msp_id)} defines {d.msp_id}")
        want_role = "orderer" if org.is_orderer else "application"
        if d.role != want_role:
            raise FoundingError(f"{org.msp_id}'s definition is for an {d.role} organisation")
        mine = sorted(f"{n.name}@{n.address}" for n in org.nodes)
        theirs = sorted(f"{n['name']}@{n['host']}:{n['port']}"
                        for n in (d.orderers if org.is_orderer else d.peers))
        if mine != theirs:
            raise FoundingError(f"{org.msp_id}'s definition names nodes {', '.join(theirs)}, the "
                                f"consortium file {', '.join(mine)}")
        out[org.msp_id] = d
    return out


def found(c: Consortium, lay: Layout, log=print) -> Path:
    """Build the genesis block into ``lay.genesis_block`` from the public definitions."""
    defs = definitions(c, lay)
    for d in defs.values():
        definition_mod.materialise(d, lay.public_msp(d.msp_id))
    lay.channel_dir.mkdir(parents=True, exist_ok=True)
    (lay.channel_dir / "configtx.yaml").write_text(
        yaml.safe_dump(configtx(c, lay, defs), sort_keys=False, default_flow_style=False))
    cmd = [fabric.binary("configtxgen"), "-configPath", str(lay.channel_dir), "-profile", PROFILE,
           "-channelID", c.channel, "-outputBlock", str(lay.genesis_block)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, FABRIC_LOGGING_SPEC="warning"))
    if proc.returncode != 0:
        raise FoundingError(f"configtxgen failed (exit {proc.returncode}):\n"
                            f"{(proc.stderr or proc.stdout).strip()}")
    log(f"  genesis block of '{c.channel}' from {len(defs)} public definitions: "
        f"{lay.genesis_block} (sha256 {block_digest(lay.genesis_block)[:16]}…)")
    return lay.genesis_block


def block_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- inspection

def _consenters(config: configtx_pb2.Config) -> tuple[str, list[dict]]:
    og = config.channel_group.groups[ORDERER]
    ct = orderer_config_pb2.ConsensusType()
    ct.ParseFromString(og.values["ConsensusType"].value)
    out = []
    if ct.type == "etcdraft":
        md = raft_pb2.ConfigMetadata()
        md.ParseFromString(ct.metadata)
        for cs in md.consenters:
            out.append({"address": f"{cs.host}:{cs.port}",
                        "tls_cert_sha256": fingerprint(cs.server_tls_cert)})
    elif "Orderers" in og.values:  # BFT: consenters are a channel-level value
        from fabric_protos.common import configuration_pb2 as common_config_pb2
        orderers = common_config_pb2.Orderers()
        orderers.ParseFromString(og.values["Orderers"].value)
        for cs in orderers.consenter_mapping:
            out.append({"id": cs.id, "address": f"{cs.host}:{cs.port}", "msp_id": cs.msp_id,
                        "tls_cert_sha256": fingerprint(cs.server_tls_cert),
                        "identity_sha256": fingerprint(cs.identity)})
    return ct.type, out


def _policies(group: configtx_pb2.ConfigGroup) -> dict[str, str]:
    return {name: render_policy(p.policy) for name, p in sorted(group.policies.items())}


def _org(group: configtx_pb2.ConfigGroup) -> dict:
    fc = msp_of(group)
    ous = fc.fabric_node_ous if fc is not None else None
    return {"root_ca_sha256": [fingerprint(bytes(c)) for c in fc.root_certs] if fc else [],
            "tls_root_ca_sha256": [fingerprint(bytes(c)) for c in fc.tls_root_certs] if fc else [],
            "crls": len(fc.revocation_list) if fc else 0,
            "node_ous": bool(ous and ous.enable),
            "policies": _policies(group)}


def summary(block_bytes: bytes) -> dict:
    """What a genesis (or any config) block says: members, policies, orderers, consenters."""
    config, number = config_from_block(block_bytes)
    consensus, consenters = _consenters(config)
    return {
        "block": number, "sha256": hashlib.sha256(block_bytes).hexdigest(),
        "channel_policies": _policies(config.channel_group),
        "application_policies": _policies(config.channel_group.groups[APPLICATION]),
        "application_orgs": {m: {**_org(g), "anchor_peers": anchor_peers(g)}
                             for m, g in sorted(application_orgs(config).items())},
        "orderer_orgs": {m: {**_org(g), "endpoints": orderer_endpoints(g)}
                         for m, g in sorted(orderer_orgs(config).items())},
        "consensus": consensus, "consenters": consenters,
    }


def format_summary(s: dict) -> list[str]:
    lines = [f"Config block {s['block']} (sha256 {s['sha256'][:16]}…)",
             f"Membership changes: /Channel/Application/Admins = "
             f"{s['application_policies'].get('Admins', '?')}",
             f"Endorsement: {s['application_policies'].get('Endorsement', '?')}; chaincode "
             f"definitions: {s['application_policies'].get('LifecycleEndorsement', '?')}",
             "Application organisations:"]
    for m, o in s["application_orgs"].items():
        lines.append(f"  {m:<14} CA {o['root_ca_sha256'][0][:16]}…  TLS CA "
                     f"{o['tls_root_ca_sha256'][0][:16]}…  NodeOUs {'on' if o['node_ous'] else 'OFF'}"
                     f"  CRLs {o['crls']}  anchor peers {', '.join(o['anchor_peers']) or '(none)'}")
        lines.append(f"  {'':<14} Admins {o['policies'].get('Admins', '?')}")
    lines.append("Ordering organisations:")
    for m, o in s["orderer_orgs"].items():
        lines.append(f"  {m:<14} CA {o['root_ca_sha256'][0][:16]}…  endpoints "
                     f"{', '.join(o['endpoints'])}")
    lines.append(f"Consensus: {s['consensus']}, {len(s['consenters'])} consenter(s)")
    for cs in s["consenters"]:
        who = f" {cs['msp_id']}" if cs.get("msp_id") else ""
        lines.append(f"  {cs['address']:<24}{who} TLS cert {cs['tls_cert_sha256'][:16]}…")
    return lines


def check_own(block_bytes: bytes, d: Definition) -> list[str]:
    """Whether ``d`` (the organisation's own definition) is in the block as it wrote it.
    Returns the problems; empty when the block is right for this organisation."""
    s = summary(block_bytes)
    problems = []
    orgs = s["orderer_orgs"] if d.role == "orderer" else s["application_orgs"]
    mine = orgs.get(d.msp_id)
    if mine is None:
        return [f"{d.msp_id} is not among the block's {d.role} organisations "
                f"({', '.join(orgs) or 'none'})"]
    fps = d.fingerprints()
    if sorted(mine["root_ca_sha256"]) != sorted(fps["ca"]):
        problems.append(f"{d.msp_id}'s CA certificate in the block is not ours")
    if sorted(mine["tls_root_ca_sha256"]) != sorted(fps["tls_ca"]):
        problems.append(f"{d.msp_id}'s TLS CA certificate in the block is not ours")
    if not mine["node_ous"]:
        problems.append(f"{d.msp_id}'s NodeOUs are off in the block")
    if mine["crls"] != len(d.crls):
        problems.append(f"{d.msp_id}'s revocation lists differ ({mine['crls']} in the block, "
                        f"{len(d.crls)} in our definition)")
    if mine["policies"].get("Admins") != f"OR('{d.msp_id}.admin')":
        problems.append(f"{d.msp_id}'s Admins policy in the block is "
                        f"{mine['policies'].get('Admins')!r}, not its own admins")
    if d.role == "application":
        if sorted(mine["anchor_peers"]) != sorted(d.anchor_peers):
            problems.append(f"{d.msp_id}'s anchor peers in the block are "
                            f"{', '.join(mine['anchor_peers']) or '(none)'}, not "
                            f"{', '.join(d.anchor_peers)}")
    else:
        want = sorted(f"{o['host']}:{o['port']}" for o in d.orderers)
        if sorted(mine["endpoints"]) != want:
            problems.append(f"{d.msp_id}'s orderer endpoints differ: {mine['endpoints']}")
    for o in d.orderers:
        fp = fingerprint(o["tls_cert"])
        if not any(cs["tls_cert_sha256"] == fp for cs in s["consenters"]):
            problems.append(f"consenter {o['name']} of {d.msp_id} ({o['host']}:{o['port']}) is "
                            "not in the block with our TLS certificate")
    return problems


def _cert_pem(der_or_pem: bytes) -> bytes:
    if b"-----BEGIN" in der_or_pem:
        return der_or_pem
    return x509.load_der_x509_certificate(der_or_pem).public_bytes(Encoding.PEM)
