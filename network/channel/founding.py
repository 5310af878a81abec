"""Founding the channel from the organisations' public definitions only.

The founder gathers every organisation's definition (network/org/definition.py) in
the consortium's public directory and builds the genesis block from them with
configtxgen: no private key is read, and none is needed. Before joining, every
organisation reads the block (:func:`summary`: members, policies, orderers,
consenters) and checks that its own definition is in it as it sent it
(:func:`check_own`) and that the channel's policies are those of the consortium
file (:func:`check_policies`: customs and the holder change the channel, not a majority);
``network up`` refuses to join a block that fails either check.

One file: the rules that build the genesis block (policies, ordering, consenters) and the
checks every organisation runs on a block before joining it are two readings of the same configuration, and a
reader comparing what is built with what is checked finds both here.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

import yaml
from fabric_protos.common import common_pb2, configtx_pb2, policies_pb2
from fabric_protos.common import configuration_pb2 as common_config_pb2
from fabric_protos.msp import identities_pb2, msp_principal_pb2
from fabric_protos.orderer import configuration_pb2 as orderer_config_pb2
from fabric_protos.orderer.etcdraft import configuration_pb2 as raft_pb2

from ipledger.network.org import definition as definition_mod
from ipledger.network.org import binaries
from ipledger.network.org.processes import fabric_environment
from ipledger.network.fabric.config import (APPLICATION, ORDERER, anchor_peers, application_orgs, config_from_block,
                                            msp_of, orderer_endpoints, orderer_orgs)
from ipledger.network.fabric.config_update import summarize
from ipledger.network.fabric.policy import implicit_meta_policy, render_policy, signature_policy
from ipledger.network.consortium import Consortium
from ipledger.network.org.definition import Definition, fingerprint
from ipledger.network.errors import printable
from ipledger.network.files import own_directory, write_atomically
from ipledger.network.layout import Layout

PROFILE = "IPLedgerChannel"


class FoundingError(RuntimeError):
    """The channel cannot be founded, or a genesis block fails an organisation's check."""


# ----------------------------------------------------------------------------- configtx

def _sig(rule: str) -> dict:
    return {"Type": "Signature", "Rule": rule}


def _meta(rule: str) -> dict:
    return {"Type": "ImplicitMeta", "Rule": rule}


def application_policies(msp_id: str) -> dict[str, str]:
    """An application organisation's own policies (what every member checks it was given)."""
    return {"Admins": f"OR('{msp_id}.admin')",
            "Endorsement": f"OR('{msp_id}.peer')",
            "Readers": f"OR('{msp_id}.admin', '{msp_id}.peer', '{msp_id}.client')",
            "Writers": f"OR('{msp_id}.admin', '{msp_id}.client')"}


def ordering_policies(msp_id: str) -> dict[str, str]:
    """An ordering organisation's policies in the Orderer group."""
    return {"Admins": f"OR('{msp_id}.admin')", "Readers": f"OR('{msp_id}.member')",
            "Writers": f"OR('{msp_id}.member')"}


def application_org(msp_id: str, msp_dir: Path, anchor_peers: list[str]) -> dict:
    """An application organisation as configtx.yaml declares it (also used for an organisation
    joining later: ``ipledger admin propose add-org``)."""
    anchors = []
    for address in anchor_peers:
        host, _, port = address.rpartition(":")
        anchors.append({"Host": host, "Port": int(port)})
    return {
        "Name": msp_id, "ID": msp_id, "MSPDir": str(msp_dir),
        "Policies": {name: _sig(rule) for name, rule in application_policies(msp_id).items()},
        "AnchorPeers": anchors,
    }


def orderer_org(msp_id: str, msp_dir: Path, endpoints: list[str]) -> dict:
    return {
        "Name": msp_id, "ID": msp_id, "MSPDir": str(msp_dir),
        "Policies": {name: _sig(rule) for name, rule in ordering_policies(msp_id).items()},
        "OrdererEndpoints": endpoints,
    }


# SmartBFT's timers, tighter than the library's defaults (a leader silent for 1 min before a view
# change): a consenter that stops is replaced as leader within about 10 s. Batches follow the
# consortium file's batch_timeout and max_message_count, as Raft's do.
SMARTBFT = {
    "RequestBatchMaxBytes": 10 * 1024 * 1024,
    "IncomingMessageBufferSize": 200,
    "RequestPoolSize": 100000,
    "RequestForwardTimeout": "2s",
    "RequestComplainTimeout": "20s",
    "RequestAutoRemoveTimeout": "3m0s",
    "ViewChangeResendInterval": "5s",
    "ViewChangeTimeout": "20s",
    "LeaderHeartbeatTimeout": "10s",
    "LeaderHeartbeatCount": 10,
    "CollectTimeout": "1s",
    "SyncOnStart": True,
    "SpeedUpViewChange": False,
}


def _consenter_files(lay: Layout, d: Definition, node: dict) -> dict:
    """A consenter's public certificates as files configtxgen reads (under the channel dir)."""
    base = own_directory(lay.channel_dir / "consenters") / f"{node['name']}.{d.name}"
    tls, identity = base.with_name(base.name + "-tls.pem"), base.with_name(base.name + "-id.pem")
    write_atomically(tls, node["tls_cert"].encode())
    write_atomically(identity, node["identity_cert"].encode())
    return {"tls": str(tls), "identity": str(identity)}


def ordering(c: Consortium, lay: Layout, defs: dict[str, Definition]) -> dict:
    """configtx.yaml's consensus part: Raft consenters, or BFT's consenter mapping (ids 1…n in
    the consortium file's order, each with its organisation, signing identity and TLS
    certificates)."""
    nodes = [(defs[o.msp_id], node) for o in c.ordering_orgs for node in defs[o.msp_id].orderers]
    if c.consensus == "BFT":
        mapping = []
        for i, (d, node) in enumerate(nodes, start=1):
            f = _consenter_files(lay, d, node)
            mapping.append({"ID": i, "Host": node["host"], "Port": node["port"],
                            "MSPID": d.msp_id, "Identity": f["identity"],
                            "ClientTLSCert": f["tls"], "ServerTLSCert": f["tls"]})
        return {"OrdererType": "BFT", "ConsenterMapping": mapping,
                "SmartBFT": {**SMARTBFT, "RequestBatchMaxCount": c.max_message_count,
                             "RequestBatchMaxInterval": c.batch_timeout}}
    consenters = []
    for d, node in nodes:
        f = _consenter_files(lay, d, node)
        consenters.append({"Host": node["host"], "Port": node["port"],
                           "ClientTLSCert": f["tls"], "ServerTLSCert": f["tls"]})
    return {"OrdererType": "etcdraft", "EtcdRaft": {"Consenters": consenters}}


def configtx(c: Consortium, lay: Layout, defs: dict[str, Definition]) -> dict:
    """configtx.yaml for the genesis block, from public files only: the public MSP directories
    and consenter certificates rebuilt from ``defs`` under ``lay.channel_dir``."""
    ordering_orgs = [orderer_org(o.msp_id, lay.public_msp(o.msp_id),
                                 [f"{n['host']}:{n['port']}" for n in defs[o.msp_id].orderers])
                     for o in c.ordering_orgs]
    app_orgs = [application_org(d.msp_id, lay.public_msp(d.msp_id), d.anchor_peers)
                for d in (defs[org.msp_id] for org in c.orgs)]
    policies = channel_policies(c)
    return {"Profiles": {PROFILE: {
        "Policies": policies["channel"],
        "Capabilities": {"V3_0": True},
        "Orderer": {
            **ordering(c, lay, defs),
            "BatchTimeout": c.batch_timeout,
            "BatchSize": {"MaxMessageCount": c.max_message_count,
                          "AbsoluteMaxBytes": "99 MB", "PreferredMaxBytes": "2 MB"},
            "Organizations": ordering_orgs,
            "Policies": {**policies["orderer"], "BlockValidation": _meta("ANY Writers")},
            "Capabilities": {"V2_0": True},
        },
        "Application": {
            "Organizations": app_orgs,
            "Policies": policies["application"],
            "Capabilities": {"V2_5": True},
        },
    }}}


def channel_policies(c: Consortium) -> dict[str, dict[str, dict]]:
    """The channel's own policies (``channel``, ``application`` and ``orderer`` groups; the
    orderer's BlockValidation apart, which configtxgen derives for BFT): what the founder writes
    into the genesis block and what every member checks there (:func:`check_policies`)."""
    meta = {"Readers": _meta("ANY Readers"), "Writers": _meta("ANY Writers"), "Admins": _meta("MAJORITY Admins")}
    application = {**meta, "LifecycleEndorsement": _meta("MAJORITY Endorsement"),
                   "Endorsement": _meta("MAJORITY Endorsement")}
    orderer = dict(meta)
    rule = governance_rule(c)
    if rule:
        application["Admins"] = _sig(rule.format(role="admin"))
        application["LifecycleEndorsement"] = _sig(rule.format(role="peer"))
        # the default endorsement policy of a contract definition that names none: as every record's
        # (docs/domain.md §1), customs and one other member
        others = [f"'{o.msp_id}.peer'" for o in c.orgs if o.msp_id != c.customs]
        if others:
            application["Endorsement"] = _sig(f"AND('{c.customs}.peer',OR({','.join(others)}))")
        # the ordering service's configuration (its organisations — who may read every block —, consenters,
        # what makes a block valid): by the same rule when the members run the consenters (BFT), and with
        # the ordering organisation's admin too when one of its own runs them
        ordering_only = [o.msp_id for o in c.ordering_orgs if o.msp_id not in {a.msp_id for a in c.orgs}]
        ordering_admins = "".join(f"'{m}.admin'," for m in ordering_only)
        orderer["Admins"] = _sig(rule.format(role="admin") if not ordering_only else
                                 f"AND({ordering_admins}{rule.format(role='admin')})")
    return {"channel": dict(meta), "application": application, "orderer": orderer}


def governance_rule(c: Consortium) -> str | None:
    """Who changes the channel, as a signature rule with a ``{role}`` placeholder: customs AND the
    authorisation holder (AND customs AND one other member when the file names no holder).

    It governs who is on the channel (Application Admins: an organisation added receives every
    block), the contract's definition (LifecycleEndorsement: its code, its endorsement policy, the
    'commercial' collection) and the ordering service (Orderer Admins: with the ordering
    organisation's admin when one runs the consenters). A
    majority would let the operator and its representative change the contract without customs —
    the promise (no party writes alone, nothing leaves without customs' knowledge) would then hold
    only until they agree. Every record needs customs and the operator or broker; the rules
    themselves need customs and the holder, whose goods they are. None without a customs
    authority in the consortium file (Fabric's majorities then apply)."""
    if not c.customs:
        return None
    holder = c.channels[0].holder if c.channels else None
    if holder:
        return f"AND('{c.customs}.{{role}}','{holder}.{{role}}')"
    others = [f"'{o.msp_id}.{{role}}'" for o in c.orgs if o.msp_id != c.customs]
    if not others:
        return None
    return f"AND('{c.customs}.{{role}}',OR({','.join(others)}))"


# ----------------------------------------------------------------------------- founding

def definitions(c: Consortium, lay: Layout) -> dict[str, Definition]:
    """Every organisation's definition from the public directory, checked against the
    consortium file (same MSP id, role, nodes' addresses)."""
    missing = [o.msp_id for o in c.all_orgs if not lay.definition_file(o.msp_id).exists()]
    if missing:
        raise FoundingError(f"founding needs every organisation's public definition in "
                            f"{lay.definitions_dir}; missing: {', '.join(missing)} (each writes "
                            "its own with 'ipledger org definition' and sends it)")
    out = {}
    for org in c.all_orgs:
        try:
            d = definition_mod.load(lay.definition_file(org.msp_id))
        except definition_mod.DefinitionError as e:
            raise FoundingError(str(e)) from e
        if d.msp_id != org.msp_id:
            raise FoundingError(f"{lay.definition_file(org.msp_id)} defines {d.msp_id}")
        want_role = "orderer" if org.is_orderer else "application"
        if d.role != want_role:
            raise FoundingError(f"{org.msp_id}'s definition is for an {d.role} organisation")
        for kind, mine, theirs in (("peers", org.peers, d.peers),
                                   ("orderers", org.orderers, d.orderers)):
            mine = sorted(f"{n.name}@{n.address}" for n in mine)
            theirs = sorted(f"{n['name']}@{n['host']}:{n['port']}" for n in theirs)
            if mine != theirs:
                raise FoundingError(f"{org.msp_id}'s definition names {kind} "
                                    f"{', '.join(theirs) or '(none)'}, the consortium file "
                                    f"{', '.join(mine) or '(none)'}")
        out[org.msp_id] = d
    return out


def found(c: Consortium, lay: Layout, log=print) -> Path:
    """Build the genesis block into ``lay.genesis_block`` from the public definitions."""
    return genesis_block(c, lay, definitions(c, lay), log)


def genesis_block(c: Consortium, lay: Layout, defs: dict[str, Definition], log=print) -> Path:
    """configtxgen's genesis block from ``defs`` (already checked) into ``lay.genesis_block``."""
    for d in defs.values():
        definition_mod.materialise(d, lay.public_msp(d.msp_id))
    write_atomically(own_directory(lay.channel_dir) / "configtx.yaml",
                     yaml.safe_dump(configtx(c, lay, defs), sort_keys=False, default_flow_style=False).encode())
    cmd = [binaries.binary("configtxgen"), "-configPath", str(lay.channel_dir), "-profile", PROFILE,
           "-channelID", c.channel, "-outputBlock", str(lay.genesis_block)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env=dict(fabric_environment(os.environ), FABRIC_LOGGING_SPEC="warning"))
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


def bft_quorum(n: int) -> int:
    """Signatures a BFT block needs out of ``n`` consenters: ⌈(n + f + 1) / 2⌉, f = ⌊(n − 1) / 3⌋."""
    f = (n - 1) // 3
    return (n + f + 2) // 2


def _block_validation(config: configtx_pb2.Config) -> dict:
    """The Orderer group's BlockValidation policy: what a block's signatures must satisfy."""
    policy = config.channel_group.groups[ORDERER].policies["BlockValidation"].policy
    out = {"rule": render_policy(policy)}
    if policy.type == policies_pb2.Policy.SIGNATURE:
        env = policies_pb2.SignaturePolicyEnvelope()
        env.ParseFromString(policy.value)
        signers = []
        for p in env.identities:
            ident = identities_pb2.SerializedIdentity()
            if p.principal_classification == msp_principal_pb2.MSPPrincipal.IDENTITY:
                ident.ParseFromString(p.principal)
            signers.append({"msp_id": ident.mspid,
                            "identity_sha256": fingerprint(ident.id_bytes) if ident.id_bytes else ""})
        rule = env.rule
        leaves = [r.signed_by for r in rule.n_out_of.rules] if rule.HasField("n_out_of") else []
        out.update({"n_out_of": rule.n_out_of.n if rule.HasField("n_out_of") else None,
                    "signed_by": leaves if all(not r.HasField("n_out_of") for r in rule.n_out_of.rules)
                    else None, "identities": signers})
    return out


def summary(block_bytes: bytes) -> dict:
    """What a genesis (or any config) block says: members, policies, orderers, consenters."""
    config, number = config_from_block(block_bytes)
    consensus, consenters = _consenters(config)
    return {
        "orderer_policies": _policies(config.channel_group.groups[ORDERER]),
        "block_validation": _block_validation(config),
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
    return [printable(line) for line in lines]   # the founder's text: shown to the members that check it


def check_own(block_bytes: bytes, d: Definition) -> list[str]:
    """Whether ``d`` (the organisation's own definition) is in the block as it wrote it.
    Returns the problems; empty when the block is right for this organisation."""
    return check_summary(summary(block_bytes), d)


def check_members(block_bytes: bytes, members: list[str]) -> list[str]:
    """The block's application organisations are exactly ``members`` (a channel per holder: a
    competitor on the channel would receive every block of it)."""
    found = sorted(summary(block_bytes)["application_orgs"])
    if found != sorted(members):
        return [f"the channel's members are {', '.join(found)}, not {', '.join(sorted(members))}"]
    return []


def channel_of(block_bytes: bytes) -> str:
    """The channel a (config) block belongs to, from its first envelope's channel header."""
    block = common_pb2.Block.FromString(block_bytes)
    payload = common_pb2.Payload.FromString(common_pb2.Envelope.FromString(block.data.data[0]).payload)
    return common_pb2.ChannelHeader.FromString(payload.header.channel_header).channel_id


def check_policies(block_bytes: bytes, c: Consortium) -> list[str]:
    """The block's channel, application and orderer policies are those :func:`channel_policies`
    gives for ``c`` (the consortium file every member holds): a founder cannot hand out a block in
    which a majority without customs changes who is on the channel or the contract's definition."""
    s = summary(block_bytes)
    expected = channel_policies(_founders(c, set(s["application_orgs"])))
    problems = []
    for group, key in (("channel", "channel_policies"), ("application", "application_policies"),
                       ("orderer", "orderer_policies")):
        want = {name: _rendered(p) for name, p in expected[group].items()}
        got = {name: rule for name, rule in s[key].items() if (group, name) != ("orderer", "BlockValidation")}
        for name in sorted(set(want) | set(got)):
            if got.get(name) != want.get(name):
                problems.append(f"the {group} policy {name} in the block is {got.get(name, '(none)')!r}, "
                                f"not {want.get(name, '(none)')!r}")
    return problems


def check_rebuilt(block_bytes: bytes, c: Consortium, lay: Layout) -> list[str]:
    """The block's channel configuration is exactly the one configtxgen builds from the consortium file
    and the public definitions (``lay``'s ``consortium/definitions``, checked against the file by
    :func:`definitions`): the policies and who may modify each element (every ``mod_policy``), the
    application and ordering organisations, each one's MSP (CAs, CRLs, NodeOUs), the consenters, the
    orderer's settings. A founder cannot hand out a block in which an element's modification policy
    lets one member change customs' MSP, nor one with an ordering organisation or consenters the
    consortium file does not name. Organisations the file names but the block does not are ones
    admitted later (by a config update): the block is rebuilt without them. Returns the
    differences, one line each (as ``admin sign`` shows an update: from the expected config to
    the block's); empty when the block is the expected one."""
    config, _ = config_from_block(block_bytes)
    founders = _founders(c, set(application_orgs(config)))
    try:
        defs = definitions(founders, lay)
    except FoundingError as e:
        return [f"the block cannot be rebuilt from the public definitions: {e}"]
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Layout(Path(tmp) / "state", lay.channel)
        expected, _ = config_from_block(genesis_block(founders, scratch, defs, log=lambda *_: None).read_bytes())
    if expected == config:
        return []
    lines = summarize(expected, config) or ["the configuration differs in element versions or encoding"]
    return [f"the block is not the one the consortium file and the definitions give: {line.strip()}"
            for line in lines if line.strip() and not line.startswith("    ")]


def _founders(c: Consortium, in_block: set[str]) -> Consortium:
    """The consortium as it founded the channel: without the organisations admitted later (named in the
    consortium file, not in the genesis block)."""
    return dataclasses.replace(c, orgs=[o for o in c.orgs if o.msp_id in in_block])


def _rendered(p: dict) -> str:
    """A configtx.yaml policy as :func:`summary` renders the block's."""
    policy = signature_policy(p["Rule"]) if p["Type"] == "Signature" else implicit_meta_policy(p["Rule"])
    return render_policy(policy)


def check_summary(s: dict, d: Definition) -> list[str]:
    """:func:`check_own` on a block's :func:`summary`."""
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
    want_policies = application_policies(d.msp_id) if d.role == "application" \
        else ordering_policies(d.msp_id)
    for name, rule in want_policies.items():
        if mine["policies"].get(name) != rule:
            problems.append(f"{d.msp_id}'s {name} policy in the block is "
                            f"{mine['policies'].get(name)!r}, not {rule!r}")
    if d.role == "application":
        if sorted(mine["anchor_peers"]) != sorted(d.anchor_peers):
            problems.append(f"{d.msp_id}'s anchor peers in the block are "
                            f"{', '.join(mine['anchor_peers']) or '(none)'}, not "
                            f"{', '.join(d.anchor_peers)}")
    if d.orderers:
        as_orderer = s["orderer_orgs"].get(d.msp_id)
        want = sorted(f"{o['host']}:{o['port']}" for o in d.orderers)
        if as_orderer is None:
            problems.append(f"{d.msp_id} runs orderers but is not among the block's ordering "
                            "organisations")
        else:
            if sorted(as_orderer["endpoints"]) != want:
                problems.append(f"{d.msp_id}'s orderer endpoints differ: "
                                f"{as_orderer['endpoints']}")
            if sorted(as_orderer["root_ca_sha256"]) != sorted(fps["ca"]):
                problems.append(f"{d.msp_id}'s CA certificate as an ordering organisation in the "
                                "block is not ours")
            for name, rule in ordering_policies(d.msp_id).items():
                if as_orderer["policies"].get(name) != rule:
                    problems.append(f"{d.msp_id}'s {name} policy as an ordering organisation is "
                                    f"{as_orderer['policies'].get(name)!r}, not {rule!r}")
    for o in d.orderers:
        fp, ident = fingerprint(o["tls_cert"]), fingerprint(o["identity_cert"])
        ours = [cs for cs in s["consenters"] if cs["tls_cert_sha256"] == fp]
        if not ours:
            problems.append(f"consenter {o['name']} of {d.msp_id} ({o['host']}:{o['port']}) is "
                            "not in the block with our TLS certificate")
        elif s["consensus"] == "BFT" and not any(cs.get("identity_sha256") == ident
                                                 and cs.get("msp_id") == d.msp_id for cs in ours):
            problems.append(f"consenter {o['name']} of {d.msp_id} is in the block with another "
                            "signing identity or organisation")
    if s["consensus"] == "BFT":
        problems += _check_bft_block_validation(s)
    elif s["block_validation"]["rule"] != "ANY Writers":
        problems.append(f"the block validation policy is {s['block_validation']['rule']!r}, "
                        "not 'ANY Writers' of the ordering organisations")
    return problems


def _check_bft_block_validation(s: dict) -> list[str]:
    """With BFT, a block is valid with the signatures of a quorum of the consenters — exactly the
    consenters of the block, each once, ⌈(n + f + 1) / 2⌉ of n (what configtxgen derives)."""
    bv, consenters = s["block_validation"], s["consenters"]
    want = sorted((cs["msp_id"], cs["identity_sha256"]) for cs in consenters)
    got = sorted((i["msp_id"], i["identity_sha256"]) for i in bv.get("identities", []))
    quorum = bft_quorum(len(consenters))
    if got != want or bv.get("n_out_of") != quorum or \
            sorted(bv.get("signed_by") or []) != list(range(len(consenters))):
        return [f"the block validation policy is {bv['rule']!r}, not {quorum} of the "
                f"{len(consenters)} consenters' identities"]
    return []
