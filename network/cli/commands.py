"""The ``ipledger`` command line.

    ipledger fabric install [--force]
    ipledger [--runtime native|docker] network generate | up | status [--json] | down [--purge] | logs NODE [-n N] [-f]
    ipledger network compose --org M [--out F] [--gateway-bind ADDR]
    ipledger chaincode package | deploy | upgrade --version V | status
    ipledger network add-org --msp-id M [--name N] [--description D] | remove-org --msp-id M
    ipledger network add-holder --msp-id M --holder-channel C
    ipledger org init|definition|add-user|renew|revoke|reissue|identities --org M   (on its own host)
    ipledger channel found [--definition F …] | inspect [--block F] [--org M]
    ipledger admin propose add-org|update-org|remove-org|update-anchors|set-policy |
                   sign UPDATE --as M | status UPDATE | submit UPDATE | members |
                   chaincode-approve --org M | chaincode-policy --policy P
                   (see network/cli/admin.py, docs/admin.md)
    ipledger gateway serve|start|stop --org M | keys --gateway M create|list|revoke;  ipledger import FILE
    ipledger verify [--peer P] [--as ORG] [--save DIR | --from-file DIR] [--json]

Global options (or environment): --state-dir (IPLEDGER_STATE_DIR, default
./.ipledger), --consortium (IPLEDGER_CONSORTIUM), --base-port (IPLEDGER_BASE_PORT),
--channel (IPLEDGER_CHANNEL; with a channel per holder, the one 'admin' and 'chaincode' act on).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ipledger.network.cli import admin, consortium, org
from ipledger.network.cli import gateway as gateway_cli
from ipledger.network.cli import gateway_daemon
from ipledger.network.org import binaries, processes
from ipledger.network.org import runtime
from ipledger.network.consortium import ConsortiumError
from ipledger.network.org.generate import GenerateError
from ipledger.network.errors import NetworkError, printable
from ipledger.network.org.nodes import Nodes


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ipledger", description=__doc__.split("\n\n")[0])
    p.add_argument("--state-dir", type=Path,
                   default=Path(os.environ.get("IPLEDGER_STATE_DIR", ".ipledger")),
                   help="where generated files, data and logs live (default: ./.ipledger)")
    p.add_argument("--consortium", type=Path, default=os.environ.get("IPLEDGER_CONSORTIUM"),
                   help="consortium file (default: the one shipped in network/)")
    p.add_argument("--base-port", type=int,
                   default=int(os.environ["IPLEDGER_BASE_PORT"])
                   if os.environ.get("IPLEDGER_BASE_PORT") else None,
                   help="first port of the port range (overrides the consortium file)")
    p.add_argument("--channel", default=os.environ.get("IPLEDGER_CHANNEL") or None,
                   help="with a channel per holder: the channel 'admin', 'chaincode', 'verify' and 'channel export' "
                        "act on, and the one 'network add-org' puts a representative on (chaincode deploy: "
                        "default every channel of this host's organisations; env IPLEDGER_CHANNEL)")
    p.add_argument("--runtime", choices=runtime.RUNTIMES, default=None,
                   help="how this host runs its nodes, chaincode services and gateways: native "
                        "processes or docker containers (default: IPLEDGER_RUNTIME, else what the "
                        "state directory recorded at its first 'network up', else native)")
    sub = p.add_subparsers(dest="group", required=True)

    fab = sub.add_parser("fabric", help="Fabric binaries").add_subparsers(dest="cmd", required=True)
    inst = fab.add_parser("install", help="build the pinned Fabric release with Go (cached)")
    inst.add_argument("--force", action="store_true", help="rebuild even if cached")
    fab.add_parser("path", help="print the directory holding the Fabric binaries")

    net = sub.add_parser("network", help="the consortium's Fabric network").add_subparsers(
        dest="cmd", required=True)
    net.add_parser("generate", help="every organisation in its own directory (identities, node "
                                    "configs, definition), then the genesis block from the "
                                    "definitions")
    net.add_parser("up", help="generate if needed, start every node, join the channel")
    st = net.add_parser("status", help="each node: PID, addresses, health, channel height")
    st.add_argument("--json", action="store_true")
    orgs = net.add_parser("orgs", help="the application organisations (MSP ids, one per line) and "
                                       "the channels each is on")
    orgs.add_argument("--local", action="store_true",
                      help="only those whose own directory is in the state directory")
    down = net.add_parser("down", help="stop every node")
    down.add_argument("--purge", action="store_true", help="also delete the state directory (and, with "
                                                           "--runtime docker, the ledgers' volumes)")
    comp = net.add_parser("compose", help="an organisation's containers as a compose file (the images "
                                          "built first: python -m ipledger.network.org.containers build)")
    comp.add_argument("--org", required=True, metavar="MSP_ID", help="the organisation (its own directory here)")
    comp.add_argument("--out", type=Path, help="write the file here (default: print it)")
    comp.add_argument("--gateway-bind", metavar="ADDR", help="include its REST gateway, listening on ADDR")
    logs = net.add_parser("logs", help="show a node's log")
    logs.add_argument("node", help="node id, e.g. peer0.customs or orderer0.orderer")
    logs.add_argument("-n", "--lines", type=int, default=50)
    logs.add_argument("-f", "--follow", action="store_true")
    consortium.add_network_commands(net)  # network add-org / add-holder / remove-org

    cc = sub.add_parser("chaincode", help="the ipledger chaincode on the channel").add_subparsers(
        dest="cmd", required=True)
    for name, text in (("package", "build the chaincode package (Python source + wheels)"),
                       ("deploy", "install on every peer, approve for every org, commit"),
                       ("upgrade", "deploy a new version at the next sequence"),
                       ("status", "what is installed, approved and committed")):
        sp = cc.add_parser(name, help=text)
        sp.add_argument("--name", default="ipledger")
        if name in ("package", "deploy", "upgrade"):
            sp.add_argument("--version", default=None,
                            help="the new version (required)" if name == "upgrade" else "chaincode version (default: 1.0)")
            sp.add_argument("--output", type=Path, help="where to write the package")
        if name in ("deploy", "upgrade"):
            sp.add_argument("--package", type=Path, metavar="FILE",
                            help="install and approve this package (e.g. one received from another "
                                 "organisation) instead of building one")
    gateway_cli.register(sub)  # ipledger gateway ... / ipledger import ...
    # Its own options are parsed by ipledger.network.cli.verify (ipledger verify --help).
    sub.add_parser("verify", add_help=False,
                   help="independently verify every block of the channel (see verify --help)")
    admin.add_commands(sub)  # ipledger admin ...
    org.add_commands(sub)  # ipledger org ... / ipledger channel ...
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.group != "verify":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.runtime:  # every Nodes this command opens (network/org/runtime.py) reads it
        os.environ[runtime.ENV] = args.runtime
    try:
        return GROUPS[args.group](args, extra)
    except (ConsortiumError, GenerateError, NetworkError, binaries.FabricError, processes.StartError,
            runtime.RuntimeChoiceError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:   # the reader of the output went away (`| head`): stop quietly, as a shell tool does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # nothing left to flush at exit
        return 141   # 128 + SIGPIPE
    except OSError as e:   # a file a command cannot use (a directory in its place, no permission, a full disk)
        print(f"error: {printable(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


# ----------------------------------------------------------------------------- ipledger fabric | verify

def _fabric(args, _extra) -> int:
    if args.cmd == "install":
        return binaries.main_install(force=args.force)
    print(binaries.bin_dir())   # ipledger fabric path
    return 0


def _verify(args, extra) -> int:
    from ipledger.network.cli.verify import main as verify_main
    channel = ["--channel", args.channel] if args.channel and "--channel" not in extra else []
    return verify_main(["--state-dir", str(args.state_dir), *channel, *extra])


# ----------------------------------------------------------------------------- ipledger network

def _network(args, _extra) -> int:
    net = Nodes.open(args.state_dir, args.consortium, args.base_port)
    return NETWORK_COMMANDS[args.cmd](net, args)


def _generate(net: Nodes, _args) -> int:
    net.generate()
    return 0


def _up(net: Nodes, _args) -> int:
    expected = set(net.up())
    if net.runtime.name == runtime.DOCKER:   # the chaincode services, stopped with the nodes
        from ipledger.network.channel.chaincode import resume_services
        resume_services(net)
    rows = net.status()
    _print_status(rows)
    down = [r["node"] for r in rows if not r["healthy"] and r["node"] in expected]
    if down:   # e.g. a node that died once its channel started (its log says why)
        print(f"error: not running after 'network up': {', '.join(down)} (ipledger network logs NODE)",
              file=sys.stderr)
    return 1 if down else 0


def _status(net: Nodes, args) -> int:
    rows = net.status()
    if args.json:
        print(json.dumps({"channel": net.consortium.channel,
                          "channels": net.consortium.channel_names(),
                          "state_dir": str(net.layout.root), "nodes": rows}, indent=2))
    else:
        _print_status(rows)
    return 0 if all(r["healthy"] for r in rows) else 1


def _orgs(net: Nodes, args) -> int:
    c = net.consortium
    for o in c.orgs:
        if not args.local or not net.layout.root.exists() or net.layout.is_local(o):
            print(f"{o.msp_id}\t{','.join(c.channels_of(o.msp_id))}")
    return 0


def _down(net: Nodes, args) -> int:
    if args.purge and net.runtime.name != runtime.DOCKER and net.layout.root.exists():
        # their pid files are in the state directory the purge removes (docker's purge removes the containers)
        for o in net.consortium.all_orgs:
            gateway_daemon.stop_native(net.layout.root, org=o.msp_id)
    net.down(purge=args.purge)
    return 0


def _compose_command(net: Nodes, args) -> int:
    _compose(net, args.org, args.out, args.gateway_bind)
    return 0


def _logs_command(net: Nodes, args) -> int:
    _logs(net, args.node, args.lines, args.follow)
    return 0


# ----------------------------------------------------------------------------- ipledger chaincode

def _chaincode(args, _extra) -> int:
    from ipledger.network.channel.package import ChaincodeSpec
    from ipledger.network.channel.chaincode import Deployer

    net = Nodes.open(args.state_dir, args.consortium, args.base_port)
    if args.channel:
        net = net.on_channel(args.channel)
    dep = Deployer(net.channels()[0])  # packaging: the customs MSP id is the same on every channel
    spec = ChaincodeSpec.default()
    spec.name = args.name
    version = getattr(args, "version", None)   # status shows every version: it takes none
    if args.cmd == "upgrade" and not version:
        raise NetworkError("upgrade needs --version (the new chaincode version)")
    if version:
        spec.version = version
    return CHAINCODE_COMMANDS[args.cmd](net, dep, spec, args)


def _package(_net: Nodes, dep, spec, args) -> int:
    dep.package(spec, args.output)
    return 0


def _deploy(net: Nodes, dep, spec, args) -> int:
    """deploy and upgrade: a package built here, or one received (--package)."""
    from ipledger.network.channel.package import package_label
    from ipledger.network.channel.chaincode import deploy_on_channels
    if args.package is not None:
        if not args.package.is_file():
            raise NetworkError(f"no chaincode package at {args.package}")
        if package_label(args.package) != spec.label:
            raise NetworkError(f"{args.package} is labelled {package_label(args.package)!r}, "
                               f"not {spec.label!r} (--name/--version)")
        pkg = args.package
        if net.runtime.name == runtime.DOCKER:
            print(f"note: with --runtime docker the peers run the contract of the chaincode service image "
                  f"built from this tree (network/org/containers); {args.package} is recorded as the definition's "
                  "public code", file=sys.stderr)
    else:
        pkg = dep.package(spec, args.output)
    committed = deploy_on_channels(net, spec, pkg, upgrade=args.cmd == "upgrade")
    _reload_gateways(net, {channel for channel, definition in committed.items() if definition is not None})
    return 0


def _reload_gateways(net: Nodes, committed: set[str]) -> None:
    """The running gateway of each of this host's organisations that does not serve every channel its
    organisation is on (a holder's channel added since it started) reads its configuration again — once the
    contract is committed on each of those: a gateway routes an event by asking every channel it serves, and
    a channel without the contract would fail them all."""
    from ipledger.network.cli import gateway_daemon as daemon
    state = net.layout.root
    for member in net.consortium.orgs:
        if not (member.peers and net.layout.is_local(member)) or daemon.running(state, member.msp_id) is None:
            continue
        missing = set(net.consortium.channels_of(member.msp_id)) - set(daemon.serving(state, member.msp_id))
        if not missing:
            continue
        if missing <= committed:
            try:
                daemon.reload(state, org=member.msp_id)
            except (daemon.DaemonError, NetworkError, processes.StartError) as exc:   # the deploy itself is done
                print(f"warning: {member.msp_id}'s gateway was not reloaded: {exc}\n  the contract is committed: "
                      f"'ipledger gateway reload --org {member.msp_id}', or start it again", file=sys.stderr)
        else:
            print(f"note: {member.msp_id}'s gateway does not serve {', '.join(sorted(missing - committed))} yet: "
                  f"once the contract is committed there, 'ipledger gateway reload --org {member.msp_id}'")


def _chaincode_status(net: Nodes, dep, _spec, args) -> int:
    from ipledger.network.channel.chaincode import Deployer
    print(json.dumps({ch.consortium.channel: Deployer(ch).status(args.name)
                      for ch in net.channels() if ch.local_peers}
                     if net.consortium.per_holder else dep.status(args.name), indent=2))
    return 0


def _compose(net: Nodes, msp_id: str, out: Path | None, gateway_bind: str | None) -> None:
    from ipledger.network.channel.chaincode import service_info, service_packages
    from ipledger.network.org.containers import compose, images, services
    org = net.consortium.org(msp_id)
    if not net.layout.is_local(org):
        raise NetworkError(f"{msp_id}'s own directory is not in {net.layout.root}: write its compose file "
                           "on its own host")
    try:
        tags = {step.spec.name: step.tag for step in images.plan(images.default_specs(log=lambda *_: None))}
    except images.ImageError as e:
        raise NetworkError(str(e)) from None
    packages = [(i["label"], i["package_id"], i["address"]) for i in map(service_info, service_packages(net, org))]
    # the names 'network up --runtime docker' will use after it
    services.ensure_scope(net.layout, runtime.recorded(net.layout) is not None)
    svcs = compose.org_services(net.layout, org, tags, chaincode_services=packages,
                                customs_msp=net.consortium.customs, gateway_bind=gateway_bind)
    header = (f"{msp_id}'s containers, written by 'ipledger network compose --org {msp_id}' from\n"
              f"{net.layout.consortium_file}. Images: python -m ipledger.network.org.containers build.\n"
              f"Then: docker-compose -f <this file> up -d; ipledger --runtime docker network up\n"
              f"The ledgers are on named volumes: 'docker-compose down -v' deletes them.")
    text = compose.render(compose.document(svcs, tags[services.VOLUME_OWNER_IMAGE]), header)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
        print(f"{msp_id}: {len(svcs)} container(s) in {out}", file=sys.stderr)


def _print_status(rows: list[dict]) -> None:
    print(f"{'NODE':<20} {'MSP':<12} {'PID/CTR':>12}  {'ADDRESS':<16} {'OPERATIONS':<16} "
          f"{'HEALTH':<8} CHANNEL")
    for r in rows:
        chans = r.get("channels") or {}
        if len(chans) > 1:  # a channel per holder: each channel this node is on
            chan = "; ".join(f"{name} " + _channel_cell(v) for name, v in chans.items())
        else:
            chan = _channel_cell({"height": r["channel_height"], "gossip_peers_known": r["gossip_peers_known"],
                                  **({"joined": bool(r.get("channel_joined"))} if r["kind"] == "orderer" else {})})
        print(f"{r['node']:<20} {r['msp_id']:<12} {r['pid'] or r.get('container') or '-':>12}  {r['address']:<16} "
              f"{r['operations']:<16} {'ok' if r['healthy'] else 'DOWN':<8} {chan}")


def _channel_cell(v: dict) -> str:
    """A node's figures on one channel: a peer's height and gossip, an orderer's joined and its height."""
    if "joined" in v:
        return "-" if not v["joined"] else "joined" if v.get("height") is None else f"joined, height {v['height']}"
    return "-" if v.get("height") is None else f"height {v['height']}, gossip {v['gossip_peers_known']}"


def _logs(net: Nodes, node_id: str, lines: int, follow: bool) -> None:
    node, rt = net.consortium.node(node_id), net.runtime
    if follow:
        if rt.name == runtime.NATIVE and not net.layout.log_file(node).exists():
            raise NetworkError(f"no log for {node_id} yet ({rt.where(node)})")
        rt.follow(node, lines)
        return
    text = rt.log_lines(node, lines)
    if not text:
        raise NetworkError(f"no log for {node_id} yet ({rt.where(node)})")
    for line in text:
        print(line)


# ----------------------------------------------------------------------------- dispatch tables

NETWORK_COMMANDS = {
    "generate": _generate, "up": _up, "status": _status, "orgs": _orgs, "down": _down,
    "compose": _compose_command, "logs": _logs_command,
    "add-org": consortium.network_command, "add-holder": consortium.network_command,
    "remove-org": consortium.network_command,
}

CHAINCODE_COMMANDS = {"package": _package, "deploy": _deploy, "upgrade": _deploy, "status": _chaincode_status}

#: ipledger GROUP ...: the handler of each command group (args, the arguments left for it)
GROUPS = {
    "fabric": _fabric,
    "network": _network,
    "chaincode": _chaincode,
    "verify": _verify,
    "admin": lambda args, _extra: admin.run(args),
    **{group: (lambda args, _extra: gateway_cli.main(args)) for group in gateway_cli.GROUPS},
    **{group: (lambda args, _extra: org.run(args)) for group in org.GROUPS},
}


if __name__ == "__main__":
    sys.exit(main())
