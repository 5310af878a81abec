"""Consortium administration: channel membership changes signed by the org admins.

Every step works on files, so each org admin can run theirs on their own machine:

    (an org's public definition: ipledger org definition, network/org/definition.py)
    propose ...      fetch the channel config from a peer, compute a config update,
                     write UPDATE.pb (a CONFIG_UPDATE envelope, as Fabric's tools
                     write it) and UPDATE.json (what it changes, the base config)
    sign UPDATE      show what it changes (against the live config, or offline),
                     add this org admin's signature
    status UPDATE    signatures, and whether the policies the change needs are met
    submit UPDATE    send it to the orderer once the policies are met
    members          the channel's organisations, from the live config

The change shown to a signer is recomputed from the signed bytes (the update's
write set applied to the base config), never taken from the proposer's text.

This module is the command line (parser, and a dispatch table: command -> handler);
the steps live elsewhere, one concept each:

    network/channel/proposals.py      the config update of each ``propose`` kind
    network/channel/updates.py        the update files, offline signatures, the assessment (sign, status)
    network/channel/live.py           the live channel: ``submit``, ``members`` (its config: Nodes.channel_config)
    network/fabric/config.py          config trees: decode, flatten, rebuild (protobuf only)
    network/fabric/config_update.py   compute and apply config updates, the policies they need
    network/fabric/config_signatures.py  the signatures on an update
    network/fabric/policy.py          policies, evaluated as the orderer does
    network/cli/consortium.py         ``ipledger network add-org | add-holder | remove-org`` (the consortium file)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from google.protobuf.message import DecodeError

from ipledger.network.channel.live import format_members, members, submit
from ipledger.network.fabric.config import ConfigError, application_orgs
from ipledger.network.fabric.policy import PolicyError
from ipledger.network.channel.proposals import (propose_add_org, propose_remove_org, propose_set_policy, propose_update_anchors,
                              propose_update_org)
from ipledger.network.channel.updates import Refused, UpdateFile, assess, format_assessment, sign
from ipledger.network.errors import AdminError, printable
from ipledger.network.consortium import ConsortiumError
from ipledger.network.org.nodes import Nodes


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
    where = sg.add_mutually_exclusive_group()
    where.add_argument("--live", action="store_true",
                       help="check the update against the channel's current config before signing "
                            "(the default, unless --msp-dir)")
    where.add_argument("--offline", action="store_true",
                       help="sign without fetching the channel's config: the changes shown are "
                            "relative to the proposer's base config")

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
                    help="one customs peer and one of another member's, e.g. "
                         "\"AND('CustomsMSP.peer', OR('OperatorMSP.peer','AuditMSP.peer'))\" (a policy that "
                         "customs alone, or the others without customs, could satisfy is refused)")


def run(args) -> int:
    """Entry point of ``ipledger admin``; exit 0 done, 1 refused / not satisfied, 2 error."""
    try:
        return _run(args)
    except (ConfigError, PolicyError, ConsortiumError) as e:
        raise AdminError(str(e)) from e
    except DecodeError as e:   # a value of the update, or of the configuration in its description, is not what it says
        raise AdminError(f"the update or the configuration it was computed against holds a value that does not "
                         f"decode ({e or 'not a protobuf message of its kind'}): a damaged file, or not one made by "
                         f"'ipledger admin propose'") from e
    except Refused as e:
        print(str(e), file=sys.stderr)
        return 1


def _net(args) -> Nodes:
    """The channel the command is about: ``--channel``, or the only one."""
    return Nodes.open(args.state_dir, args.consortium, args.base_port).on_channel(args.channel)


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
    """Show what the update changes, then sign. The change is shown against the channel's live config
    (fetched from a peer as the signing org's admin) unless the signer works offline: the base config
    in the proposer's X.json could otherwise show a change other than the one the signature approves."""
    upd = UpdateFile.load(args.update)
    live = args.live or (args.msp_dir is None and not args.offline)
    config = None
    if live:
        config, block = _live_config(_net(args), upd, args.as_org)
        if config != upd.base:
            based_on = printable(str(upd.meta.get("base_config_block")))
            raise Refused(f"not signed: the channel's config (block {block}) is not the base config this update "
                          f"was computed against (block {based_on}): the changes shown "
                          "would not be those it makes; ask for a proposal against the current config")
    a = assess(upd, config)
    print("\n".join(format_assessment(a)))
    print(f"Checked against the channel's live config (block {block}): the changes shown are those it makes."
          if live else "NOT checked against the channel's live config (offline): the changes shown are relative "
          "to the proposer's base config; 'ipledger admin status --live' checks it from a host that reaches a peer.")
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
          + "; ".join(f"{e.path} {e.have} of {e.needed}" if e.needed else e.path
                      for e in a["_evaluations"] if not e.satisfied))
    return 0


def _live_config(net: Nodes, upd: UpdateFile, as_org: str | None):
    """The live config of the channel ``upd`` is for. The signature binds the update's channel, not the
    one fetched: an update for channel B computed against channel A's config, checked against A's, would
    show A's changes for a signature that applies to B."""
    if upd.channel != net.consortium.channel:
        raise Refused(f"not checked: the update is for channel '{printable(upd.channel)}', the live config fetched "
                      f"is channel '{net.consortium.channel}'s (name the update's channel with --channel)")
    return net.channel_config(as_org)


def _status(args) -> int:
    upd = UpdateFile.load(args.update)
    config = None
    live_note = None
    if args.live:
        config, block = _live_config(_net(args), upd, args.as_org)
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
    from ipledger.network.channel.chaincode import Deployer
    Deployer(_net(args)).approve_for_org(args.name, args.org)
    return 0


def _chaincode_policy(args) -> int:
    from ipledger.network.channel.chaincode import Deployer, check_endorsement_policy
    from ipledger.network.channel.package import LifecycleError
    net = _net(args)
    config, _ = net.channel_config()
    orgs = [o.msp_id for o in net.consortium.orgs if o.msp_id in application_orgs(config)]
    try:   # no party writes alone: customs and another member, whatever the chaincode
        check_endorsement_policy(args.policy, net.consortium.customs, orgs)
    except LifecycleError as e:
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
