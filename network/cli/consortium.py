"""The local network's consortium file: ``ipledger network add-org | add-holder | remove-org``.

One concept, organisations added to or dropped from the consortium file this state directory runs (the
channel itself changes only through ``ipledger admin propose``): the new org creates its identities and
definition in its own directory, a holder gets a channel of its own, a removed org's nodes stop. The
commands' parser and dispatch table are here too.
"""
from __future__ import annotations

from ipledger.network import consortium as consortium_mod
from ipledger.network.channel import founding
from ipledger.network.org import generate, own_process
from ipledger.network.cli import gateway_daemon
from ipledger.network.fabric.config import application_orgs
from ipledger.network.errors import AdminError
from ipledger.network.consortium import ConsortiumError, Org
from ipledger.network.org.nodes import Nodes


def _add_local_org(net: Nodes, instead: str, msp_id: str, **entry) -> Org:
    """The consortium file with one more organisation (``consortium.with_org``: ``entry``), which creates
    its identities in its own directory (as on its own host); ``net`` then uses the new file."""
    if not net.generated:
        raise AdminError(f"the network is not generated yet: {instead}")
    c = consortium_mod.with_org(net.consortium, msp_id, **entry)
    org = c.org(msp_id)
    if generate.org_ready(net.layout, org):   # a removed organisation's directory stays (network_remove_org)
        raise AdminError(f"{net.layout.org_home(org)} already holds an organisation's identities (one "
                         "removed before?); its keys are kept: move it away, or give another --name")
    # in a child process of its own, as 'network generate' does: this process never holds its keys
    own_process.call(generate.init_org, c, net.layout, org, log=lambda *_: None)   # goes on after an earlier run cut short
    consortium_mod.save(c, net.layout.consortium_file)
    net.consortium = c
    return org


def network_add_holder(net: Nodes, msp_id: str, channel: str, name: str | None = None,
                       description: str = "", domain: str | None = None, log=print) -> Org:
    """A new authorisation holder on a channel of its own (a consortium with a channel per holder):
    the holder creates its identities and definition in its own directory, the channel (customs and
    the holder) is added to the consortium file and founded from the public definitions, each member
    checking the genesis block. 'network up' then joins customs' peers and the holder's to it,
    'chaincode deploy' commits the contract there; customs register the holder and grant."""
    if channel in net.consortium.channel_names():
        # an earlier add-holder added the holder and its channel to the consortium file, then stopped
        # before the channel was founded (configtxgen failed, a disk error): go on from there
        ch = net.on_channel(channel)
        if ch.layout.genesis_block.exists() or ch.consortium.channels[0].holder != msp_id:
            raise AdminError(f"channel {channel} exists already")
        org = net.consortium.org(msp_id)
        log(f"{msp_id} and channel '{channel}' are in the consortium file, the channel not founded yet: "
            "going on from there")
        if not generate.org_ready(net.layout, org):
            own_process.call(generate.init_org, net.consortium, net.layout, org, log=lambda *_: None)
    else:
        org = _add_local_org(net, "add the holder and its channel to the consortium file instead", msp_id,
                             name=name, description=description, domain=domain, holder_of=channel)
    generate.publish_definition(net.layout, org)
    ch = net.on_channel(channel)
    founding.found(ch.consortium, ch.layout, log=lambda *_: None)
    block = ch.layout.genesis_block.read_bytes()
    for member in ch.local_orgs:
        generate.check_block(ch.layout, member, block, members=[o.msp_id for o in ch.consortium.orgs],
                             channel=ch.consortium)
    log(f"Added holder {msp_id} ({org.name}) on channel '{channel}' with "
        + ", ".join(o.msp_id for o in ch.consortium.orgs if o.msp_id != msp_id)
        + f": {', '.join(f'{n.id} on {n.address}' for n in org.nodes)}; genesis block {ch.layout.genesis_block}")
    log("Next: 'ipledger network up' (its peer joins), 'ipledger chaincode deploy' (the contract on the "
        "new channel), then customs register the holder (RegisterParty) and grant its authorisation")
    return org


def network_add_org(net: Nodes, msp_id: str, name: str | None = None, description: str = "",
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
    log("Next: it sends its definition to a channel admin, who proposes 'ipledger admin "
        "propose add-org --definition FILE'; 'ipledger network up' starts its peer once the "
        "update is in the channel")
    return org


def network_remove_org(net: Nodes, msp_id: str, force: bool = False, log=print) -> None:
    """Stop the org's peers and drop it from the consortium file (its files stay)."""
    org = net.consortium.org(msp_id)
    if org.is_orderer:
        raise AdminError(f"{msp_id} is the orderer organisation")
    if not force:
        try:
            config, _ = net.channel_config(exclude=msp_id)
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
    else:                               # its gateway, if a process of this host
        gateway_daemon.stop_native(net.layout.root, log=log, org=msp_id)
    consortium_mod.save(c, net.layout.consortium_file)
    net.consortium = c
    log(f"Removed {msp_id} from {net.layout.consortium_file} (its own directory, with its "
        f"identities and ledger copy, stays: {net.layout.org_home(org)})")


# ----------------------------------------------------------------------------- command line

def _new_org_arguments(parser, channel_option: bool = False) -> None:
    """What add-org and add-holder both ask of the new organisation."""
    parser.add_argument("--msp-id", required=True)
    if channel_option:
        parser.add_argument("--holder-channel", required=True, metavar="CHANNEL", help="the new channel's name")
    parser.add_argument("--name", help="short name (default: MSP id without 'MSP', lower-case)")
    parser.add_argument("--description", default="")
    parser.add_argument("--domain")


def add_network_commands(net_sub) -> None:
    """``ipledger network add-org | add-holder | remove-org``."""
    _new_org_arguments(net_sub.add_parser("add-org", help="add an organisation (one peer) to the local "
                                                         "network: consortium file, crypto, peer config"))
    _new_org_arguments(net_sub.add_parser("add-holder", help="with a channel per holder: a new authorisation "
                                                            "holder (one peer) on a new channel of its own "
                                                            "with customs"), channel_option=True)
    r = net_sub.add_parser("remove-org", help="stop an organisation's peers and drop it from "
                                              "the consortium file")
    r.add_argument("--msp-id", required=True)
    r.add_argument("--force", action="store_true",
                   help="even if it is still in the channel configuration")


def _network_add_holder(net: Nodes, args) -> None:
    network_add_holder(net, args.msp_id, args.holder_channel, args.name, args.description, args.domain)


def _network_add_org(net: Nodes, args) -> None:
    network_add_org(net, args.msp_id, args.name, args.description, args.domain,
                    [args.channel] if args.channel else None)


def _network_remove_org(net: Nodes, args) -> None:
    network_remove_org(net, args.msp_id, force=args.force)


# ``ipledger network <cmd>`` -> its handler (the commands of add_network_commands)
NETWORK_COMMANDS = {"add-holder": _network_add_holder, "add-org": _network_add_org,
                    "remove-org": _network_remove_org}


def network_command(net: Nodes, args) -> int:
    NETWORK_COMMANDS[args.cmd](net, args)
    return 0
