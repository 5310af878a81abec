"""Consortium administration: channel membership changes signed by the org admins.

Every step works on files, so each org admin can run theirs on their own machine:

    (an org's public definition: ipledger org definition, network/definition.py)
    propose ...      fetch the channel config from a peer, compute a config update,
                     write UPDATE.pb (a CONFIG_UPDATE envelope, as Fabric's tools
                     write it) and UPDATE.json (what it changes, the base config)
    sign UPDATE      show what it changes, add this org admin's signature (offline)
    status UPDATE    signatures, and whether the policies the change needs are met
    submit UPDATE    send it to the orderer once the policies are met
    members          the channel's organisations, from the live config

The change shown to a signer is recomputed from the signed bytes (the update's
write set applied to the base config), never taken from the proposer's text.
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from fabric_protos.common import common_pb2, configtx_pb2

from . import consortium as consortium_mod
from . import definition as definition_mod
from . import fabric, founding, generate, membership
from .admin_config import (APPLICATION, ORDERER, ConfigError, anchor_peers_value,
                           application_orgs, apply_update, check_update, compute_update,
                           config_from_block, msp_of, orderer_orgs,
                           read_envelope, required_policies, show, summarize, update_envelope,
                           with_update_envelope)
from .admin_config import set_policy as _set_policy
from .admin_policy import (PolicyError, Signer, evaluate, implicit_meta_policy, load_msp_signer,
                           parse_policy_path, render_policy, sign_update, signature_policy,
                           signer_for_identity, signers)
from .consortium import ConsortiumError, Org
from .lifecycle import Network, NetworkError

FORMAT = "ipledger-config-update/1"


class AdminError(NetworkError):
    """An administration step cannot be done; the message says why."""


class Refused(AdminError):
    """The update does not (yet) meet the policies it needs; nothing was sent."""


# ----------------------------------------------------------------------------- the live config

def _org_for_peer_cli(net: Network, msp_id: str | None, exclude: str | None = None) -> Org:
    """The org whose admin (and first peer) talks to the network for a command."""
    if msp_id:
        org = net.consortium.org(msp_id)
        if org.is_orderer:
            raise AdminError(f"{msp_id} is the orderer organisation; use an application org")
        return org
    founding = net.founding_orgs() if net.generated else set()
    candidates = [o for o in net.consortium.orgs if o.msp_id != exclude
                  and net.layout.is_local(o)]
    candidates.sort(key=lambda o: (o.msp_id not in founding,
                                   net.runtime.running(o.peers[0]) is None))
    if not candidates:
        raise AdminError("no application organisation to act through")
    return candidates[0]


def channel_config(net: Network, msp_id: str | None = None,
                   exclude: str | None = None) -> tuple[configtx_pb2.Config, int]:
    """The channel's current config and its block number, fetched from a peer by an org admin."""
    org = _org_for_peer_cli(net, msp_id, exclude)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "config.block"
        r = net.peer_cli(org.peers[0], ["channel", "fetch", "config", str(out),
                                        "-c", net.consortium.channel], check=False)
        if r.returncode != 0 or not out.exists():
            raise AdminError(f"cannot fetch the config of channel '{net.consortium.channel}' "
                             f"from {org.peers[0].id} as {org.msp_id} admin:\n"
                             f"{(r.stderr or r.stdout).strip()}")
        return config_from_block(out.read_bytes())


# ----------------------------------------------------------------------------- update files

@dataclass
class UpdateFile:
    """UPDATE.pb (the envelope the orderer gets) + UPDATE.json (base config and proposal)."""

    path: Path
    envelope: common_pb2.Envelope
    cue: configtx_pb2.ConfigUpdateEnvelope
    update: configtx_pb2.ConfigUpdate
    meta: dict
    base: configtx_pb2.Config

    @staticmethod
    def sidecar(path: Path) -> Path:
        return Path(path).with_suffix(".json")

    @classmethod
    def load(cls, path: Path | str) -> "UpdateFile":
        path = Path(path)
        try:
            env, cue, update = read_envelope(path.read_bytes())
        except OSError as e:
            raise AdminError(f"cannot read {path}: {e.strerror}") from e
        except Exception as e:  # noqa: BLE001 - protobuf decode errors have no common base
            raise AdminError(f"{path} is not a config update envelope: {e}") from e
        side = cls.sidecar(path)
        try:
            meta = json.loads(side.read_text())
        except (OSError, ValueError) as e:
            raise AdminError(f"{side} (written next to {path.name} by 'ipledger admin propose') "
                             f"is missing or unreadable: {e}") from e
        if meta.get("format") != FORMAT:
            raise AdminError(f"{side}: not an ipledger update description")
        base = configtx_pb2.Config()
        base.ParseFromString(base64.b64decode(meta["base_config"]))
        return cls(path, env, cue, update, meta, base)

    @classmethod
    def create(cls, path: Path, base: configtx_pb2.Config, base_block: int,
               updated: configtx_pb2.Config, channel: str, proposal: dict) -> "UpdateFile":
        update = compute_update(base, updated, channel)
        env = update_envelope(update)
        _, cue, update = read_envelope(env.SerializeToString())
        upd = cls(Path(path), env, cue, update, {}, base)
        upd.meta = {"format": FORMAT, "channel": channel, "proposal": proposal,
                    "base_config_block": base_block, "summary": upd.summary(),
                    "requires": [show(r.policy) for r in required_policies(base, update)],
                    "base_config": base64.b64encode(base.SerializeToString()).decode()}
        upd.save()
        return upd

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".pb.tmp")
        tmp.write_bytes(self.envelope.SerializeToString())
        tmp.replace(self.path)
        self.sidecar(self.path).write_text(json.dumps(self.meta, indent=2) + "\n")

    @property
    def channel(self) -> str:
        return self.update.channel_id

    def summary(self, config: configtx_pb2.Config | None = None) -> list[str]:
        """What the update changes, recomputed from its signed bytes."""
        base = config or self.base
        return summarize(base, apply_update(base, self.update))

    def add_signature(self, sig: configtx_pb2.ConfigSignature) -> None:
        self.cue.signatures.append(sig)
        self.envelope = with_update_envelope(self.envelope, self.cue)
        self.save()


def _mark_duplicates(sigs: list[Signer]) -> list[Signer]:
    seen = set()
    for s in sigs:
        s.duplicate = False
        if s.counts:
            if s.creator in seen:
                s.duplicate = True
            seen.add(s.creator)
    return sigs


def assess(upd: UpdateFile, config: configtx_pb2.Config | None = None,
           extra: list[Signer] = ()) -> dict:
    """Signatures, the policies the change needs and whether they are met, against
    ``config`` (default: the base config the update was computed from)."""
    config = config or upd.base
    problems = check_update(config, upd.update)
    sigs = _mark_duplicates(signers(config, upd.cue) + list(extra))
    evaluations = [evaluate(config, r.policy, sigs) for r in required_policies(config, upd.update)]
    try:
        summary = upd.summary(config)
    except ConfigError as e:
        summary = [f"(cannot apply the update to this configuration: {e})"]
        problems.append(str(e))
    return {"update": str(upd.path), "channel": upd.channel,
            "proposal": upd.meta.get("proposal"),
            "base_config_block": upd.meta.get("base_config_block"),
            "summary": summary,
            "signatures": [s.as_dict() for s in sigs],
            "policies": [e.as_dict() for e in evaluations],
            "problems": problems,
            "satisfied": not problems and bool(evaluations) and all(e.satisfied
                                                                   for e in evaluations),
            "_evaluations": evaluations}


def format_assessment(a: dict) -> list[str]:
    lines = [f"Update {a['update']} for channel '{a['channel']}' "
             f"(computed against config block {a['base_config_block']})", "Changes:"]
    lines += [f"  {s}" for s in a["summary"]]
    lines.append(f"Signatures ({len(a['signatures'])}):")
    for s in a["signatures"]:
        flags = ["admin" if s["admin"] else "NOT an admin"]
        if not s["signature_valid"]:
            flags.append("INVALID signature")
        if s["duplicate"]:
            flags.append("duplicate, counts once")
        if s["problem"]:
            flags.append(s["problem"])
        if s["note"]:
            flags.append(s["note"])
        lines.append(f"  {s['msp_id']:<14} {s['subject']}  [{', '.join(flags)}]")
    if not a["signatures"]:
        lines.append("  (none yet)")
    lines.append("Policies the change needs:")
    for e in a["_evaluations"]:
        lines += [f"  {line}" for line in e.lines()]
    for p in a["problems"]:
        lines.append(f"Problem: {p}")
    lines.append("Ready to submit." if a["satisfied"] else "Not ready to submit.")
    return lines


# ----------------------------------------------------------------------------- org definition

def definition_group(definition: Path, msp_id: str | None = None
                     ) -> tuple[str, configtx_pb2.ConfigGroup]:
    """(MSP id, channel ConfigGroup) of an application org's public definition file
    (network/definition.py), encoded by Fabric's own tools as the genesis block would hold it."""
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


# ----------------------------------------------------------------------------- proposals

def _copy(config: configtx_pb2.Config) -> configtx_pb2.Config:
    c = configtx_pb2.Config()
    c.CopyFrom(config)
    return c


def propose_add_org(net: Network, definition: Path, out: Path, as_org: str | None = None,
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
    base, block = channel_config(net, as_org, exclude=msp_id)
    if msp_id in application_orgs(base) or msp_id in orderer_orgs(base):
        raise AdminError(f"{msp_id} is already an organisation of channel "
                         f"'{net.consortium.channel}'")
    updated = _copy(base)
    updated.channel_group.groups[APPLICATION].groups[msp_id].CopyFrom(group)
    return _written(UpdateFile.create(out, base, block, updated, net.consortium.channel,
                                      {"kind": "add-org", "org": msp_id}), log)


def propose_remove_org(net: Network, msp_id: str, out: Path, as_org: str | None = None,
                       log=print) -> UpdateFile:
    base, block = channel_config(net, as_org, exclude=msp_id)
    orgs = application_orgs(base)
    if msp_id not in orgs:
        raise AdminError(f"{msp_id} is not an application organisation of channel "
                         f"'{net.consortium.channel}' (members: {', '.join(sorted(orgs))})")
    if len(orgs) == 1:
        raise AdminError(f"{msp_id} is the channel's last application organisation")
    if msp_id in orderer_orgs(base):
        raise AdminError(f"{msp_id} runs consenters of the ordering service: removing it from the "
                         "application organisations alone would leave it reading and ordering the "
                         "channel; its consenters must leave the consenter set first, which "
                         "'ipledger admin' does not offer")
    updated = _copy(base)
    del updated.channel_group.groups[APPLICATION].groups[msp_id]
    return _written(UpdateFile.create(out, base, block, updated, net.consortium.channel,
                                      {"kind": "remove-org", "org": msp_id}), log)


def propose_update_org(net: Network, definition: Path, out: Path, as_org: str | None = None,
                       log=print) -> UpdateFile:
    """Replace a member's MSP (certificates, revocation lists, NodeOUs) with its new definition:
    after a revocation or a CA renewal. The org's own admin signs it (its MSP's mod policy). A
    member that also runs consenters has the same MSP in the Orderer group: both copies change
    together (Fabric refuses two versions of one MSP in a channel)."""
    msp_id, group = definition_group(definition)
    base, block = channel_config(net, as_org or (msp_id if _local(net, msp_id) else None))
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


def _local(net: Network, msp_id: str) -> bool:
    return _in_consortium(net, msp_id) and net.layout.is_local(net.consortium.org(msp_id))


def propose_update_anchors(net: Network, msp_id: str, peers: list[str] | None, out: Path,
                           as_org: str | None = None, log=print) -> UpdateFile:
    if not peers:
        peers = [n.address for n in net.consortium.org(msp_id).peers]
    base, block = channel_config(net, as_org or (msp_id if _local(net, msp_id) else None))
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


def propose_set_policy(net: Network, policy_path: str, out: Path, *, rule: str | None = None,
                       signature: str | None = None, as_org: str | None = None,
                       log=print) -> UpdateFile:
    if bool(rule) == bool(signature):
        raise AdminError("give exactly one of --rule 'MAJORITY Admins' or --signature \"OR(...)\"")
    try:
        policy = implicit_meta_policy(rule) if rule else signature_policy(signature)
    except PolicyError as e:
        raise AdminError(str(e)) from e
    path = parse_policy_path(policy_path)
    base, block = channel_config(net, as_org)
    updated = _copy(base)
    try:
        _set_policy(updated, path, policy)
    except ConfigError as e:
        raise AdminError(str(e)) from e
    return _written(UpdateFile.create(out, base, block, updated, net.consortium.channel,
                                      {"kind": "set-policy", "policy": show(path),
                                       "rule": render_policy(policy)}), log)


def _in_consortium(net: Network, msp_id: str) -> bool:
    return any(o.msp_id == msp_id for o in net.consortium.orgs)


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


# ----------------------------------------------------------------------------- sign / status / submit

def sign(upd: UpdateFile, msp_id: str, msp_dir: Path, log=print) -> Signer:
    """Add ``msp_id``'s signature made with the identity in ``msp_dir`` (offline)."""
    try:
        cert_pem, key = load_msp_signer(msp_dir)
    except (PolicyError, OSError, ValueError) as e:
        raise AdminError(f"cannot sign as {msp_id}: {e}") from e
    sig = sign_update(upd.cue, msp_id, cert_pem, key)
    me = signer_for_identity(upd.base, msp_id, cert_pem)
    already = any(s.creator == me.creator for s in signers(upd.base, upd.cue))
    if already:
        log(f"{msp_id}: this identity has signed already; the update is unchanged")
        return me
    upd.add_signature(sig)
    log(f"Signed by {msp_id} ({me.subject})")
    if not me.is_admin:
        log(f"Note: in the channel config this identity is not an admin of {msp_id} "
            f"({me.problem or 'no admin role'}): its signature does not count for Admins policies")
    return me


def submit(net: Network, upd: UpdateFile, as_org: str | None = None, force: bool = False,
           log=print) -> int:
    """Send the update to the orderer as ``as_org``'s admin; returns the new config block.

    ``peer channel update`` adds the submitting admin's own signature, so the check
    counts it. Without ``force`` an update that does not meet its policies is refused
    here; with ``force`` it goes to the orderer, which refuses it itself.
    """
    if upd.channel != net.consortium.channel:
        raise AdminError(f"the update is for channel '{upd.channel}', this network's channel "
                         f"is '{net.consortium.channel}'")
    org = _submitter(net, upd, as_org)
    live, block = channel_config(net, org.msp_id)
    cert_pem = next((net.layout.user_msp(org) / "signcerts").glob("*.pem")).read_bytes()
    me = signer_for_identity(live, org.msp_id, cert_pem, note="added by the submitter")
    a = assess(upd, live, extra=[me])
    if live != upd.base:
        log(f"Note: the channel config changed since the update was computed "
            f"(block {upd.meta.get('base_config_block')} → {block}); checked against block {block}")
    if not a["satisfied"]:
        unmet = [f"{e.path} ({e.rule}: {e.have} of {e.needed})" if e.children
                 else f"{e.path} ({e.rule})" for e in a["_evaluations"] if not e.satisfied]
        why = "; ".join(unmet + a["problems"])
        if not force:
            raise Refused(f"refused: the update does not meet the policies it needs, even with "
                          f"the signature of {org.msp_id} that submitting adds: {why}. "
                          "Collect more admin signatures (ipledger admin sign), or --force to "
                          "let the orderer decide")
        log(f"--force: sending although {why}")
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "update.pb"
        f.write_bytes(upd.envelope.SerializeToString())
        r = net.peer_cli(org.peers[0], ["channel", "update", "-f", str(f),
                                        "-c", net.consortium.channel, *net.orderer_args()],
                         check=False, msp_id=org.msp_id)
    if r.returncode != 0:
        text = (r.stderr or r.stdout).strip()
        errors = [line for line in text.splitlines() if line.startswith("Error")]
        raise AdminError(f"the orderer refused the update: {errors[-1] if errors else text}")
    deadline = time.monotonic() + 30
    while True:
        _, new_block = channel_config(net, org.msp_id)
        if new_block > block:
            break
        if time.monotonic() > deadline:
            raise AdminError("the orderer accepted the update but no new config block reached "
                             f"{org.peers[0].id} within 30 s")
        time.sleep(0.25)
    # So that whatever runs next sees the new config on any member's peer.
    still_members = set(application_orgs(apply_update(live, upd.update)))
    peers = [n for o in net.consortium.orgs if o.msp_id in still_members for n in o.peers
             if net.runtime.running(n) is not None]
    while [n for n in peers if (net.peer_height(n) or 0) <= new_block]:
        if time.monotonic() > deadline:
            log("Note: not every peer has the new config block yet")
            break
        time.sleep(0.25)
    log(f"Submitted as {org.msp_id}: channel '{net.consortium.channel}' config is now "
        f"block {new_block}")
    return new_block


def _submitter(net: Network, upd: UpdateFile, as_org: str | None) -> Org:
    if as_org:
        return _org_for_peer_cli(net, as_org)
    for s in signers(upd.base, upd.cue):
        if s.counts and _in_consortium(net, s.msp_id):
            return net.consortium.org(s.msp_id)
    return _org_for_peer_cli(net, None)


# ----------------------------------------------------------------------------- members

def members(net: Network, as_org: str | None = None) -> dict:
    """The live channel config's organisations (network.membership), with the local consortium
    file's descriptions and the state of the nodes it starts."""
    config, block = channel_config(net, as_org)
    described = membership.describe(config)
    known = {o.msp_id: o for o in net.consortium.all_orgs}
    for org in described["organisations"]:
        local = known.get(org["msp_id"])
        org["description"] = local.description if local else ""
        org["in_consortium_file"] = local is not None
        if org["role"] == "application":
            org["peers"] = [{"node": n.id, "address": n.address,
                             "running": net.runtime.running(n) is not None}
                            for n in (local.peers if local else [])]
        else:
            kind = "BFT" if net.consortium.consensus == "BFT" else "Raft"
            org["description"] = org["description"] or f"ordering service ({kind})"
            org["nodes"] = [n.id for n in local.orderers] if local else []
    in_channel = {o["msp_id"] for o in described["organisations"]}
    pending = [o.msp_id for o in net.consortium.orgs if o.msp_id not in in_channel]
    return {"channel": net.consortium.channel, "config_block": block, **described,
            "not_in_channel": pending}


def format_members(m: dict) -> list[str]:
    lines = [f"Channel '{m['channel']}' (config block {m['config_block']}); "
             f"membership changes need: /Channel/Application/Admins = {m['admins_policy']}"]
    for o in m["organisations"]:
        lines.append(f"{o['msp_id']:<14} {o['role']:<12} {o['description']}")
        if o["role"] == "application":
            lines.append(f"{'':<14} anchor peers: {', '.join(o['anchor_peers']) or '(none)'}")
            ps = ", ".join(f"{p['node']} {p['address']} ({'running' if p['running'] else 'stopped'})"
                           for p in o["peers"]) or "(not in this consortium file)"
            lines.append(f"{'':<14} peers: {ps}")
        else:
            lines.append(f"{'':<14} endpoints: {', '.join(o['endpoints'])}")
    for msp_id in m["not_in_channel"]:
        lines.append(f"{msp_id:<14} (in the consortium file, not in the channel)")
    return lines


# ----------------------------------------------------------------------------- the local network

def _add_local_org(net: Network, instead: str, msp_id: str, **entry) -> Org:
    """The consortium file with one more organisation (``consortium.with_org``: ``entry``), which creates
    its identities in its own directory (as on its own host); ``net`` then uses the new file."""
    if not net.generated:
        raise AdminError(f"the network is not generated yet: {instead}")
    c = consortium_mod.with_org(net.consortium, msp_id, **entry)
    org = c.org(msp_id)
    generate.init_org(c, net.layout, org, log=lambda *_: None)
    consortium_mod.save(c, net.layout.consortium_file)
    net.consortium = c
    return org


def network_add_holder(net: Network, msp_id: str, channel: str, name: str | None = None,
                       description: str = "", domain: str | None = None, log=print) -> Org:
    """A new authorisation holder on a channel of its own (a consortium with a channel per holder):
    the holder creates its identities and definition in its own directory, the channel (customs and
    the holder) is added to the consortium file and founded from the public definitions, each member
    checking the genesis block. 'network up' then joins customs' peers and the holder's to it,
    'chaincode deploy' commits the contract there; customs register the holder and grant."""
    org = _add_local_org(net, "add the holder and its channel to the consortium file instead", msp_id,
                         name=name, description=description, domain=domain, holder_of=channel)
    generate.publish_definition(net.layout, org)
    ch = net.on_channel(channel)
    founding.found(ch.consortium, ch.layout, log=lambda *_: None)
    block = ch.layout.genesis_block.read_bytes()
    for member in ch.local_orgs:
        generate.check_block(ch.layout, member, block, members=[o.msp_id for o in ch.consortium.orgs])
    log(f"Added holder {msp_id} ({org.name}) on channel '{channel}' with "
        + ", ".join(o.msp_id for o in ch.consortium.orgs if o.msp_id != msp_id)
        + f": {', '.join(f'{n.id} on {n.address}' for n in org.nodes)}; genesis block {ch.layout.genesis_block}")
    log("Next: 'ipledger network up' (its peer joins), 'ipledger chaincode deploy' (the contract on the "
        "new channel), then customs register the holder (RegisterParty) and grant its authorisation")
    return org


def network_add_org(net: Network, msp_id: str, name: str | None = None, description: str = "",
                    domain: str | None = None, channels: list[str] | None = None, log=print) -> Org:
    """Add an org (one peer, next free ports) to the state's consortium file; the org creates,
    in its own directory, its identities, its peer's config and its public definition (as on
    its own host). Nothing is started; nothing of the other orgs is read or written."""
    org = _add_local_org(net, "add the org to the consortium file instead, or run 'ipledger network "
                              "generate' first", msp_id, name=name, description=description, domain=domain,
                         channels=channels)
    log(f"Added {msp_id} ({org.name}) to {net.layout.consortium_file}: "
        + ", ".join(f"{n.id} on {n.address}" for n in org.nodes))
    log(f"  its own directory: {net.layout.org_home(org)}; its public definition: "
        f"{net.layout.org_home(org) / 'definition.json'}")
    log(f"Next: it sends its definition to a channel admin, who proposes 'ipledger admin "
        "propose add-org --definition FILE'; 'ipledger network up' starts its peer once the "
        "update is in the channel")
    return org


def network_remove_org(net: Network, msp_id: str, force: bool = False, log=print) -> None:
    """Stop the org's peers and drop it from the consortium file (its files stay)."""
    org = net.consortium.org(msp_id)
    if org.is_orderer:
        raise AdminError(f"{msp_id} is the orderer organisation")
    if not force:
        try:
            config, _ = channel_config(net, exclude=msp_id)
        except AdminError:
            config = None
        if config is not None and msp_id in application_orgs(config):
            raise AdminError(f"{msp_id} is still in the channel configuration: remove it from "
                             "the channel first (ipledger admin propose remove-org), or --force")
    try:
        c = consortium_mod.without_org(net.consortium, msp_id)
    except ConsortiumError as e:
        raise AdminError(str(e)) from e
    for n in org.nodes:
        if net.runtime.stop(n):
            log(f"  stopped {n.id}")
    if net.runtime.name == "docker":   # its chaincode services and gateway too
        net.runtime.remove_org(org, log)
    consortium_mod.save(c, net.layout.consortium_file)
    net.consortium = c
    log(f"Removed {msp_id} from {net.layout.consortium_file} (its own directory, with its "
        f"identities and ledger copy, stays: {net.layout.org_home(org)})")


def _tool(args: list[str]) -> str:
    cmd = [fabric.binary(args[0]), *args[1:]]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                       env={**os.environ, "FABRIC_LOGGING_SPEC": "warning"})
    if r.returncode != 0:
        raise AdminError(f"{args[0]} failed (exit {r.returncode}):\n"
                         f"{(r.stderr or r.stdout).strip()}")
    return r.stdout


# ----------------------------------------------------------------------------- command line

def add_commands(sub) -> None:
    """The ``ipledger admin`` command group."""
    adm = sub.add_parser("admin", help="channel membership and policy changes signed by the "
                                       "org admins").add_subparsers(dest="cmd", required=True)
    prop = adm.add_parser("propose", help="fetch the channel config, write a config update").\
        add_subparsers(dest="kind", required=True)
    a = prop.add_parser("add-org", help="add an organisation from its definition")
    a.add_argument("--definition", type=Path, required=True)
    uo = prop.add_parser("update-org", help="replace a member's MSP with its new definition "
                                            "(after a revocation or a renewed CA)")
    uo.add_argument("--definition", type=Path, required=True)
    r = prop.add_parser("remove-org", help="remove an application organisation")
    r.add_argument("--org", required=True, metavar="MSP_ID")
    u = prop.add_parser("update-anchors", help="set an organisation's anchor peers")
    u.add_argument("--org", required=True, metavar="MSP_ID")
    u.add_argument("--peer", action="append", metavar="HOST:PORT",
                   help="anchor peer (repeatable; default: the org's peers in the consortium)")
    s = prop.add_parser("set-policy", help="replace a channel policy")
    s.add_argument("policy", help="e.g. Application/Endorsement or /Channel/Application/Admins")
    s.add_argument("--rule", help="implicit meta rule, e.g. 'MAJORITY Admins'")
    s.add_argument("--signature", help="signature policy, e.g. \"OR('CustomsMSP.admin')\"")
    for p in (a, uo, r, u, s):
        p.add_argument("--as", dest="as_org", metavar="MSP_ID",
                       help="fetch the config as this org's admin (default: a member org)")
        p.add_argument("--output", "-o", type=Path, help="update file (default: ./<kind>.pb)")

    sg = adm.add_parser("sign", help="show what an update changes and sign it as an org admin")
    sg.add_argument("update", type=Path)
    sg.add_argument("--as", dest="as_org", required=True, metavar="MSP_ID")
    sg.add_argument("--msp-dir", type=Path,
                    help="admin MSP directory (default: the org's Admin in its own directory)")
    sg.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")

    st = adm.add_parser("status", help="an update's signatures and the policies it needs")
    st.add_argument("update", type=Path)
    st.add_argument("--json", action="store_true")
    st.add_argument("--live", action="store_true",
                    help="check against the channel's current config (fetched from a peer)")
    st.add_argument("--as", dest="as_org", metavar="MSP_ID", help="with --live: fetch as")

    sb = adm.add_parser("submit", help="send a signed update to the orderer")
    sb.add_argument("update", type=Path)
    sb.add_argument("--as", dest="as_org", metavar="MSP_ID",
                    help="submitting admin (default: the first signer's org); its signature "
                         "is added")
    sb.add_argument("--force", action="store_true",
                    help="send even if the policies are not met (the orderer refuses it)")

    m = adm.add_parser("members", help="the channel's organisations (live config)")
    m.add_argument("--as", dest="as_org", metavar="MSP_ID")
    m.add_argument("--json", action="store_true")

    cc = adm.add_parser("chaincode-approve",
                        help="install a committed chaincode on an org's peers and approve its "
                             "committed definition for the org (after it joined)")
    cc.add_argument("--org", required=True, metavar="MSP_ID")
    cc.add_argument("--name", default="ipledger")
    cp = adm.add_parser("chaincode-policy",
                        help="commit a chaincode again at the next sequence with a new "
                             "endorsement policy, approved by every member org")
    cp.add_argument("--name", default="ipledger")
    cp.add_argument("--policy", required=True,
                    help="e.g. \"OR('CustomsMSP.peer','AuditMSP.peer')\"")


def add_network_commands(net_sub) -> None:
    """``ipledger network add-org | remove-org``."""
    a = net_sub.add_parser("add-org", help="add an organisation (one peer) to the local "
                                           "network: consortium file, crypto, peer config")
    a.add_argument("--msp-id", required=True)
    a.add_argument("--name", help="short name (default: MSP id without 'MSP', lower-case)")
    a.add_argument("--description", default="")
    a.add_argument("--domain")
    h = net_sub.add_parser("add-holder", help="with a channel per holder: a new authorisation holder "
                                             "(one peer) on a new channel of its own with customs")
    h.add_argument("--msp-id", required=True)
    h.add_argument("--holder-channel", required=True, metavar="CHANNEL", help="the new channel's name")
    h.add_argument("--name", help="short name (default: MSP id without 'MSP', lower-case)")
    h.add_argument("--description", default="")
    h.add_argument("--domain")
    r = net_sub.add_parser("remove-org", help="stop an organisation's peers and drop it from "
                                              "the consortium file")
    r.add_argument("--msp-id", required=True)
    r.add_argument("--force", action="store_true",
                   help="even if it is still in the channel configuration")


def _network_add_holder(net: Network, args) -> None:
    network_add_holder(net, args.msp_id, args.holder_channel, args.name, args.description, args.domain)


def _network_add_org(net: Network, args) -> None:
    network_add_org(net, args.msp_id, args.name, args.description, args.domain,
                    [args.channel] if args.channel else None)


def _network_remove_org(net: Network, args) -> None:
    network_remove_org(net, args.msp_id, force=args.force)


# ``ipledger network <cmd>`` -> its handler (the commands of add_network_commands)
NETWORK_COMMANDS = {"add-holder": _network_add_holder, "add-org": _network_add_org,
                    "remove-org": _network_remove_org}


def network_command(net: Network, args) -> int:
    NETWORK_COMMANDS[args.cmd](net, args)
    return 0


def run(args) -> int:
    """Entry point of ``ipledger admin``; exit 0 done, 1 refused / not satisfied, 2 error."""
    try:
        return _run(args)
    except (ConfigError, PolicyError, ConsortiumError) as e:
        raise AdminError(str(e)) from e
    except Refused as e:
        print(str(e), file=sys.stderr)
        return 1


def _net(args) -> Network:
    """The channel the command is about: ``--channel``, or the only one."""
    return Network.open(args.state_dir, args.consortium, args.base_port).on_channel(args.channel)


# ``ipledger admin propose <kind>`` -> the proposal it writes to ``out``
PROPOSALS = {
    "add-org": lambda net, args, out: propose_add_org(net, args.definition, out, args.as_org),
    "update-org": lambda net, args, out: propose_update_org(net, args.definition, out, args.as_org),
    "remove-org": lambda net, args, out: propose_remove_org(net, args.org, out, args.as_org),
    "update-anchors": lambda net, args, out: propose_update_anchors(net, args.org, args.peer, out, args.as_org),
    "set-policy": lambda net, args, out: propose_set_policy(net, args.policy, out, rule=args.rule,
                                                            signature=args.signature, as_org=args.as_org),
}


def _propose(args) -> int:
    net = _net(args)
    out = args.output or Path(f"{args.kind}.pb")
    PROPOSALS[args.kind](net, args, out)
    return 0


def _sign(args) -> int:
    upd = UpdateFile.load(args.update)
    a = assess(upd)
    print("\n".join(format_assessment(a)))
    if sys.stdin.isatty() and not args.yes:
        if input(f"Sign this update as {args.as_org}? [y/N] ").strip().lower() not in ("y", "yes"):
            print("Not signed.")
            return 1
    msp_dir = args.msp_dir
    if msp_dir is None:
        net = _net(args)
        msp_dir = net.layout.user_msp(net.local_org(args.as_org))
    sign(upd, args.as_org, msp_dir)
    a = assess(upd)
    print("Ready to submit." if a["satisfied"] else "Not ready to submit yet: "
          + "; ".join(f"{e.path} {e.have} of {e.needed}" if e.children else e.path
                      for e in a["_evaluations"] if not e.satisfied))
    return 0


def _status(args) -> int:
    upd = UpdateFile.load(args.update)
    config = None
    live_note = None
    if args.live:
        net = _net(args)
        config, block = channel_config(net, args.as_org)
        live_note = (f"checked against the live config (block {block}): "
                     + ("same as the base config" if config == upd.base
                        else "the channel config CHANGED since the update was computed"))
    a = assess(upd, config)
    if live_note:
        a["live"] = live_note
    if args.json:
        print(json.dumps({k: v for k, v in a.items() if not k.startswith("_")}, indent=2))
    else:
        print("\n".join(format_assessment(a)))
        if live_note:
            print(live_note)
    return 0 if a["satisfied"] else 1


def _submit(args) -> int:
    submit(_net(args), UpdateFile.load(args.update), args.as_org, args.force)
    return 0


def _members(args) -> int:
    m = members(_net(args), args.as_org)
    print(json.dumps(m, indent=2) if args.json else "\n".join(format_members(m)))
    return 0


def _chaincode_approve(args) -> int:
    from .chaincode import Deployer
    Deployer(_net(args)).approve_for_org(args.name, args.org)
    return 0


def _chaincode_policy(args) -> int:
    from .chaincode import Deployer
    net = _net(args)
    config, _ = channel_config(net)
    orgs = [o.msp_id for o in net.consortium.orgs if o.msp_id in application_orgs(config)]
    try:
        signature_policy(args.policy)
    except PolicyError as e:
        raise AdminError(str(e)) from e
    Deployer(net).set_endorsement_policy(args.name, args.policy, orgs)
    return 0


# ``ipledger admin <cmd>`` -> its handler (the commands of add_commands); each returns the exit code
COMMANDS = {"propose": _propose, "sign": _sign, "status": _status, "submit": _submit, "members": _members,
            "chaincode-approve": _chaincode_approve, "chaincode-policy": _chaincode_policy}


def _run(args) -> int:
    handler = COMMANDS.get(args.cmd)
    if handler is None:
        raise AdminError(f"unknown admin command {args.cmd}")
    return handler(args)
