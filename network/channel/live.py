"""The live channel: its config fetched from a peer, an update submitted to the orderer, its members.

One concept, the steps of ``ipledger admin`` that talk to the running network as an org admin (which org
acts and the current config are the nodes' :meth:`~ipledger.network.org.nodes.Nodes.acting_org` and
:meth:`~ipledger.network.org.nodes.Nodes.channel_config`): ``submit`` (checked against the live
config, then sent, then awaited on the peers) and ``members`` (the live config's organisations).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from ipledger.network.fabric import membership
from ipledger.network.fabric.config import application_orgs
from ipledger.network.fabric.config_update import apply_update
from ipledger.network.fabric.config_signatures import signer_for_identity, signers
from ipledger.network.channel.updates import Refused, UpdateFile, assess
from ipledger.network.errors import AdminError, printable
from ipledger.network.consortium import Org
from ipledger.network.org.nodes import Nodes


# ----------------------------------------------------------------------------- the live config

# which organisation acts and the config it fetches: Nodes.acting_org and Nodes.channel_config

def _in_consortium(net: Nodes, msp_id: str) -> bool:
    return any(o.msp_id == msp_id for o in net.consortium.orgs)


# ----------------------------------------------------------------------------- submit

def submit(net: Nodes, upd: UpdateFile, as_org: str | None = None, force: bool = False,
           log=print) -> int:
    """Send the update to the orderer as ``as_org``'s admin; returns the new config block.

    ``peer channel update`` adds the submitting admin's own signature, so the check
    counts it. Without ``force`` an update that does not meet its policies is refused
    here; with ``force`` it goes to the orderer, which refuses it itself.
    """
    if upd.channel != net.consortium.channel:
        raise AdminError(f"the update is for channel '{printable(upd.channel)}', this network's channel "
                         f"is '{net.consortium.channel}'")
    org = _submitter(net, upd, as_org)
    live, block = net.channel_config(org.msp_id)
    cert_pem = next((net.layout.user_msp(org) / "signcerts").glob("*.pem")).read_bytes()
    me = signer_for_identity(live, org.msp_id, cert_pem, note="added by the submitter")
    a = assess(upd, live, extra=[me])
    if live != upd.base:
        log(f"Note: the channel config changed since the update was computed "
            f"(block {printable(str(upd.meta.get('base_config_block')))} → {block}); checked against block {block}")
    if not a["satisfied"]:
        unmet = [f"{e.path} ({e.rule}: {e.have} of {e.needed})" if e.needed
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
        _, new_block = net.channel_config(org.msp_id)
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


def _submitter(net: Nodes, upd: UpdateFile, as_org: str | None) -> Org:
    if as_org:
        return net.acting_org(as_org)
    for s in signers(upd.base, upd.cue):
        if s.counts and _in_consortium(net, s.msp_id):
            return net.consortium.org(s.msp_id)
    return net.acting_org(None)


# ----------------------------------------------------------------------------- members

def members(net: Nodes, as_org: str | None = None) -> dict:
    """The live channel config's organisations (ipledger.network.fabric.membership), with the local consortium
    file's descriptions and the state of the nodes it starts."""
    config, block = net.channel_config(as_org)
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
    # an organisation changes its own anchor peers (its orderers' endpoints) with its own admin's signature alone
    return [printable(line) for line in lines]
