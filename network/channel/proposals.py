"""Proposals: the config updates ``ipledger admin propose`` computes from the live config.

One concept, one function per kind of change (add-org, update-org, remove-org, update-anchors,
set-policy): each fetches the channel config, checks that the change makes sense, and writes the update
file (``updates.UpdateFile``) with what it changes and the policies it needs. An org's public
definition becomes its channel config group with Fabric's own tools (``definition_group``).
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from fabric_protos.common import common_pb2, configtx_pb2
from fabric_protos.msp import msp_principal_pb2

from ipledger.network.org import definition as definition_mod
from ipledger.network.org import binaries
from ipledger.network.org.processes import fabric_environment
from ipledger.network.channel import founding
from ipledger.network.channel.live import _in_consortium
from ipledger.network.fabric.config import (APPLICATION, ORDERER, ConfigError, anchor_peers_value, application_orgs,
                                            config_envelope_of, msp_of,
                                            orderer_orgs, parse_policy_path, show)
from ipledger.network.fabric import blocks as B
from ipledger.network.fabric.config import set_policy as _set_policy
from ipledger.network.fabric.msp import MSPError
from ipledger.network.fabric.policy import (PolicyError, PolicyManager, implicit_meta_policy, render_policy,
                                           signature_policy)
from ipledger.network.channel.updates import UpdateFile, assess
from ipledger.network.errors import AdminError
from ipledger.network.org.nodes import Nodes


# ----------------------------------------------------------------------------- org definition

def definition_group(definition: Path, msp_id: str | None = None
                     ) -> tuple[str, configtx_pb2.ConfigGroup]:
    """(MSP id, channel ConfigGroup) of an application org's public definition file
    (network/org/definition.py), encoded by Fabric's own tools as the genesis block would hold it."""
    try:
        d = definition_mod.load(definition)
    except definition_mod.DefinitionError as e:
        raise AdminError(str(e)) from e
    if msp_id and msp_id != d.msp_id:
        raise AdminError(f"{definition} defines {d.msp_id}, not {msp_id}")
    if d.role != "application":
        raise AdminError(f"{definition} defines an ordering organisation; only application "
                         "organisations are added or updated this way")
    with tempfile.TemporaryDirectory() as tmp:
        msp_dir = definition_mod.materialise(d, Path(tmp) / "msp")
        cfg = {"Organizations": [founding.application_org(d.msp_id, msp_dir, d.anchor_peers)]}
        Path(tmp, "configtx.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        printed = json.loads(_tool(["configtxgen", "-printOrg", d.msp_id, "-configPath", tmp]))
        # The JSON's nested types depend on where the group sits: encode it inside a config.
        wrapper = {"channel_group": {"groups": {APPLICATION: {"groups": {d.msp_id: printed}}}}}
        src, dst = Path(tmp, "in.json"), Path(tmp, "out.pb")
        src.write_text(json.dumps(wrapper))
        _tool(["configtxlator", "proto_encode", "--type", "common.Config",
               "--input", str(src), "--output", str(dst)])
        cfg = configtx_pb2.Config()
        cfg.ParseFromString(dst.read_bytes())
    group = cfg.channel_group.groups[APPLICATION].groups[d.msp_id]
    fc = msp_of(group)
    if fc is None or fc.name != d.msp_id:
        raise AdminError(f"{definition}: its MSP definition is missing or names another MSP")
    return d.msp_id, group


def _tool(args: list[str]) -> str:
    cmd = [binaries.binary(args[0]), *args[1:]]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                       env={**fabric_environment(os.environ), "FABRIC_LOGGING_SPEC": "warning"})
    if r.returncode != 0:
        raise AdminError(f"{args[0]} failed (exit {r.returncode}):\n"
                         f"{(r.stderr or r.stdout).strip()}")
    return r.stdout


# ----------------------------------------------------------------------------- proposals

def _copy(config: configtx_pb2.Config) -> configtx_pb2.Config:
    c = configtx_pb2.Config()
    c.CopyFrom(config)
    return c


def propose_add_org(net: Nodes, definition: Path, out: Path, as_org: str | None = None,
                    log=print) -> UpdateFile:
    msp_id, group = definition_group(definition)
    if definition_mod.load(definition).orderers:
        raise AdminError(f"{definition} lists orderers of {msp_id}: adding consenters to the ordering "
                         "service is a change of the consenter set, which 'ipledger admin' does not "
                         "offer; admit the organisation with its peers only")
    c = net.consortium
    if c.per_holder and msp_id not in c.channels[0].members:
        raise AdminError(f"{msp_id} is not a member of channel '{c.channel}' in the consortium file: on a "
                         "channel per holder only the holder's representatives join it (network add-org "
                         "--channel, by the holder's and customs' decision)")
    base, block = net.channel_config(as_org, exclude=msp_id)
    if msp_id in application_orgs(base) or msp_id in orderer_orgs(base):
        raise AdminError(f"{msp_id} is already an organisation of channel "
                         f"'{net.consortium.channel}'")
    earlier = earlier_members(lambda n: net.channel_block(n, as_org, exclude=msp_id), block).get(msp_id)
    if earlier is not None and _root_fingerprints(earlier[1]) != _root_fingerprints(group):
        raise AdminError(f"{msp_id} was an organisation of channel '{net.consortium.channel}' before (in the "
                         f"config of block {earlier[0]}) under another root CA: the channel's records name "
                         "organisations by MSP id, so another organisation under it would take over the first's "
                         "(its entry in the register of parties, the event ids it sent); give the new organisation "
                         "an MSP id of its own")
    updated = _copy(base)
    updated.channel_group.groups[APPLICATION].groups[msp_id].CopyFrom(group)
    return _written(UpdateFile.create(out, base, block, updated, net.consortium.channel,
                                      {"kind": "add-org", "org": msp_id}), log)


def earlier_members(fetch: Callable[[int], bytes], config_block: int) -> dict[str, tuple[int, configtx_pb2.ConfigGroup]]:
    """Every application organisation of the channel's configs before the one of block ``config_block`` (the
    current one), each with the number of the last config block that held it and its group there. ``fetch`` gives a
    block by its number; each block's last-config index leads to the config in force before it."""
    blocks: dict[int, common_pb2.Block] = {}

    def block_at(n: int) -> common_pb2.Block:
        if n not in blocks:
            blocks[n] = common_pb2.Block.FromString(fetch(n))
        return blocks[n]

    found: dict[str, tuple[int, configtx_pb2.ConfigGroup]] = {}
    n = config_block
    while n > 0:
        previous = B.last_config_index(block_at(n - 1))
        if previous is None or previous >= n:
            raise AdminError(f"block {n - 1} of the channel names no earlier config block")
        try:
            config = config_envelope_of(block_at(previous))[0].config
        except ConfigError as e:
            raise AdminError(f"block {n - 1} of the channel names block {previous} as its config: {e}") from None
        for name, group in application_orgs(config).items():
            found.setdefault(name, (previous, group))
        n = previous
    return found


def _root_fingerprints(group: configtx_pb2.ConfigGroup) -> set[bytes]:
    """SHA-256 of each root CA certificate of an organisation's MSP in the channel config."""
    fc = msp_of(group)
    return {x509.load_pem_x509_certificate(bytes(c)).fingerprint(hashes.SHA256()) for c in (fc.root_certs if fc else ())}


def propose_remove_org(net: Nodes, msp_id: str, out: Path, as_org: str | None = None,
                       log=print) -> UpdateFile:
    base, block = net.channel_config(as_org, exclude=msp_id)
    orgs = application_orgs(base)
    if msp_id not in orgs:
        raise AdminError(f"{msp_id} is not an application organisation of channel "
                         f"'{net.consortium.channel}' (members: {', '.join(sorted(orgs))})")
    if len(orgs) == 1:
        raise AdminError(f"{msp_id} is the channel's last application organisation")
    if msp_id == net.consortium.customs:
        raise AdminError(f"{msp_id} is the customs authority: every record needs its endorsement, so it "
                         "cannot leave the channel")
    if msp_id in orderer_orgs(base):
        raise AdminError(f"{msp_id} runs consenters of the ordering service: removing it from the "
                         "application organisations alone would leave it reading and ordering the "
                         "channel; its consenters must leave the consenter set first, which "
                         "'ipledger admin' does not offer")
    updated = _copy(base)
    del updated.channel_group.groups[APPLICATION].groups[msp_id]
    _require_governable(updated, msp_id)
    return _written(UpdateFile.create(out, base, block, updated, net.consortium.channel,
                                      {"kind": "remove-org", "org": msp_id}), log)


# the policies that change the channel: who is on it, the contract's definition, the ordering service
GOVERNING = ("/Channel/Application/Admins", "/Channel/Application/LifecycleEndorsement", "/Channel/Admins",
             "/Channel/Orderer/Admins")


class _AnyRole:
    """Stands for whatever identity an organisation could bring: satisfies any role principal of its MSP."""

    def __init__(self, msp_id: str):
        self.msp_id = msp_id

    def satisfies(self, principal: msp_principal_pb2.MSPPrincipal) -> None:
        if principal.principal_classification != msp_principal_pb2.MSPPrincipal.ROLE or \
                msp_principal_pb2.MSPRole.FromString(principal.principal).msp_identifier != self.msp_id:
            raise MSPError(f"not a principal of {self.msp_id}")


def _require_governable(updated: configtx_pb2.Config, removed: str) -> None:
    """AdminError when, without ``removed``, a policy that changes the channel could never be met again: the
    channel could then never gain or lose a member, nor change its contract's definition or its ordering
    service — and Fabric offers no way back (the holder named in the governance rule, say)."""
    groups = updated.channel_group.groups
    members = sorted({*groups[APPLICATION].groups, *(groups[ORDERER].groups if ORDERER in groups else ())})
    everyone = [_AnyRole(m) for m in members for _ in range(4)]   # a few identities of every kind each
    manager = PolicyManager(updated.channel_group)
    stuck = [ref for ref in GOVERNING if (pol := manager.lookup(ref)) is not None
             and not pol.evaluate_identities(everyone)]
    if stuck:
        raise AdminError(
            f"without {removed}, {', '.join(stuck)} could never be met again ({manager.get(stuck[0]).describe()}): "
            f"no member could ever be added or removed, nor the contract's definition changed. Change those "
            f"policies first ('ipledger admin propose set-policy'), then remove {removed}")


def propose_update_org(net: Nodes, definition: Path, out: Path, as_org: str | None = None,
                       log=print) -> UpdateFile:
    """Replace a member's MSP (certificates, revocation lists, NodeOUs) with its new definition:
    after a revocation or a CA renewal. The org's own admin signs it (its MSP's mod policy). A
    member that also runs consenters has the same MSP in the Orderer group: both copies change
    together (Fabric refuses two versions of one MSP in a channel)."""
    msp_id, group = definition_group(definition)
    base, block = net.channel_config(as_org or (msp_id if _local(net, msp_id) else None))
    orgs = application_orgs(base)
    if msp_id not in orgs:
        raise AdminError(f"{msp_id} is not an application organisation of channel "
                         f"'{net.consortium.channel}'")
    updated = _copy(base)
    copies = [updated.channel_group.groups[APPLICATION].groups[msp_id]]
    if msp_id in orderer_orgs(base):
        copies.append(updated.channel_group.groups[ORDERER].groups[msp_id])
    for org_group in copies:
        org_group.values["MSP"].value = group.values["MSP"].value
    if updated == base:
        raise AdminError(f"{definition} is what the channel already holds for {msp_id}")
    return _written(UpdateFile.create(out, base, block, updated, net.consortium.channel,
                                      {"kind": "update-org", "org": msp_id}), log)


def _local(net: Nodes, msp_id: str) -> bool:
    return _in_consortium(net, msp_id) and net.layout.is_local(net.consortium.org(msp_id))


def propose_update_anchors(net: Nodes, msp_id: str, peers: list[str] | None, out: Path,
                           as_org: str | None = None, log=print) -> UpdateFile:
    if not peers:
        peers = [n.address for n in net.consortium.org(msp_id).peers]
    base, block = net.channel_config(as_org or (msp_id if _local(net, msp_id) else None))
    orgs = application_orgs(base)
    if msp_id not in orgs:
        raise AdminError(f"{msp_id} is not an application organisation of the channel")
    updated = _copy(base)
    org_group = updated.channel_group.groups[APPLICATION].groups[msp_id]
    value = org_group.values["AnchorPeers"]
    value.value = anchor_peers_value(peers)
    value.mod_policy = value.mod_policy or "Admins"
    return _written(UpdateFile.create(out, base, block, updated, net.consortium.channel,
                                      {"kind": "update-anchors", "org": msp_id,
                                       "anchor_peers": peers}), log)


def propose_set_policy(net: Nodes, policy_path: str, out: Path, *, rule: str | None = None,
                       signature: str | None = None, as_org: str | None = None,
                       log=print) -> UpdateFile:
    if bool(rule) == bool(signature):
        raise AdminError("give exactly one of --rule 'MAJORITY Admins' or --signature \"OR(...)\"")
    try:
        policy = implicit_meta_policy(rule) if rule else signature_policy(signature)
    except PolicyError as e:
        raise AdminError(str(e)) from e
    path = parse_policy_path(policy_path)
    base, block = net.channel_config(as_org)
    updated = _copy(base)
    try:
        _set_policy(updated, path, policy)
    except ConfigError as e:
        raise AdminError(str(e)) from e
    return _written(UpdateFile.create(out, base, block, updated, net.consortium.channel,
                                      {"kind": "set-policy", "policy": show(path),
                                       "rule": render_policy(policy)}), log)


def _written(upd: UpdateFile, log) -> UpdateFile:
    log(f"Wrote {upd.path} (+ {UpdateFile.sidecar(upd.path).name}) for channel "
        f"'{upd.channel}', against config block {upd.meta['base_config_block']}:")
    for line in upd.meta["summary"]:
        log(f"  {line}")
    a = assess(upd)
    log("Policies the change needs:")
    for e in a["_evaluations"]:
        log(f"  {e.path}: {e.rule}"
            + (f" ({e.needed} of {len(e.children)})" if e.children else ""))
    log(f"Next: each admin runs 'ipledger admin sign {upd.path} --as <MSP id>'")
    return upd
