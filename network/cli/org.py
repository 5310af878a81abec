"""``ipledger org …`` (an organisation's own identities, on its own host) and
``ipledger channel …`` (founding the channel from public definitions).

    ipledger org init --org M                 its CA, TLS CA, node/admin/client identities, node
                                              configs, public definition (nothing else is written)
    ipledger org definition --org M [-o F]    write its public definition again (after a change): its
                                              own and the public copy, or F only
    ipledger org add-user --org M --name N [--role client|admin]
    ipledger org reissue --org M --name N     a revoked identity: a new key, the same name
    ipledger org renew --org M --name N [--days D]
    ipledger org revoke --org M --name N      CRL in its MSP; then 'admin propose update-org'
    ipledger org identities --org M [--json]  what its CA has issued
    ipledger channel found [--definition F …] genesis block from the public definitions only
    ipledger channel inspect [--block F] [--org M] [--json]
                                              what the block says; each local org checks itself
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from ipledger.network import consortium as consortium_mod
from ipledger.network.org import definition as definition_mod
from ipledger.network.channel import founding
from ipledger.network.org import generate
from ipledger.network.org import identities
from ipledger.network.errors import NetworkError, printable
from ipledger.network.files import refuse_links
from ipledger.network.org.nodes import Nodes

GROUPS = ("org", "channel")


def add_commands(sub) -> None:
    org = sub.add_parser("org", help="an organisation's own identities and public definition "
                                     "(run on its own host)").add_subparsers(dest="cmd",
                                                                              required=True)
    i = org.add_parser("init", help="create the org's CA, TLS CA, identities, node configs and "
                                    "public definition in its own directory")
    d = org.add_parser("definition", help="write the org's public definition (to send to the "
                                          "founder or a channel admin)")
    d.add_argument("--output", "-o", type=Path, metavar="FILE",
                   help="write it to FILE only (the org's own definition and its public copy in "
                        "consortium/definitions/ are left as they are); default: rewrite those two")
    d.add_argument("--anchor-peer", action="append", default=None, metavar="HOST:PORT",
                   help="anchor peer (repeatable; default: the org's peers)")
    u = org.add_parser("add-user", help="a new user identity of the org")
    u.add_argument("--name", required=True, help="e.g. clerk2 (becomes clerk2@<domain>)")
    u.add_argument("--role", choices=["client", "admin"], default="client")
    r = org.add_parser("renew", help="a new certificate for an identity (same key)")
    r.add_argument("--name", required=True)
    r.add_argument("--days", type=int, default=identities.LEAF_DAYS)
    v = org.add_parser("revoke", help="revoke an identity: CRL in the org's MSP and definition")
    v.add_argument("--name", required=True)
    ri = org.add_parser("reissue", help="a new key and certificate for a revoked identity (a key compromised "
                                        "or lost), under the same name")
    ri.add_argument("--name", required=True)
    ls = org.add_parser("identities", help="what the org's CA has issued")
    ls.add_argument("--json", action="store_true")
    for p in (i, d, u, r, v, ri, ls):
        p.add_argument("--org", required=True, metavar="MSP_ID")

    ch = sub.add_parser("channel", help="found the channel from public definitions; inspect a "
                                        "genesis block").add_subparsers(dest="cmd", required=True)
    f = ch.add_parser("found", help="build the genesis block from every org's public definition")
    f.add_argument("--definition", action="append", default=[], type=Path, metavar="FILE",
                   help="a received definition (repeatable): copied into the public directory")
    ex = ch.add_parser("export", help="the public files the members of one channel receive (with a "
                                      "channel per holder: nothing of another holder)")
    ex.add_argument("--out", type=Path, required=True, metavar="DIR",
                    help="a new directory: send it to the channel's members as their consortium/")
    ins = ch.add_parser("inspect", help="summary of a genesis block; each local org checks its "
                                        "own definition is in it")
    ins.add_argument("--block", type=Path, help="default: the state directory's genesis block")
    ins.add_argument("--org", metavar="MSP_ID", help="check only this local organisation")
    ins.add_argument("--json", action="store_true")


def run(args) -> int:
    try:
        return _run(args)
    except (identities.IdentityError, definition_mod.DefinitionError,
            founding.FoundingError, generate.GenerateError) as e:
        raise NetworkError(str(e)) from e


def _net(args) -> Nodes:
    return Nodes.open(args.state_dir, args.consortium, args.base_port)


def _run(args) -> int:
    net = _net(args)
    lay = net.layout
    if args.group == "channel":
        return _channel(net, args)
    org = net.consortium.org(args.org)
    if args.cmd == "init":
        # done once: its definition written last; a run cut short before it goes on where it stopped (init_org)
        if lay.is_local(org) and (lay.org_home(org) / "definition.json").exists():
            raise NetworkError(f"{org.msp_id} already has its identities in {lay.org_home(org)}")
        lay.public.mkdir(parents=True, exist_ok=True)
        if not lay.consortium_file.exists():
            consortium_mod.save(net.consortium, lay.consortium_file)
        generate.init_org(net.consortium, lay, org)
        out = generate.publish_definition(lay, org)
        print(f"{org.msp_id}'s public definition: {out}\n"
              f"Send it to the founder (or a channel admin); keep {lay.org_home(org)} to "
              "yourself.")
        return 0
    if not lay.is_local(org):
        raise NetworkError(f"{org.msp_id}'s own directory is not in {lay.root}")
    ids = identities.OrgIdentities(lay.org_dir(org), org.msp_id, org.domain)
    if args.cmd == "definition":
        if args.output:
            d = generate.org_definition(lay, org, args.anchor_peer, save=False)
            if not args.output.parent.is_dir():
                raise NetworkError(f"cannot write {args.output}: {args.output.parent} is not a directory")
            try:
                d.save(args.output)
            except OSError as e:
                raise NetworkError(f"cannot write {args.output}: {e.strerror}") from None
            print(f"Wrote {args.output}: {org.msp_id}'s public definition (CA and TLS CA certificates, "
                  f"NodeOUs, revocation list, endpoints, anchor peers); {org.msp_id}'s own definition and "
                  f"its public copy {lay.definition_file(org.msp_id)} are not changed")
            return 0
        generate.org_definition(lay, org, args.anchor_peer)
        out = generate.publish_definition(lay, org)
        print(f"Wrote {out}: {org.msp_id}'s public definition (CA and TLS CA certificates, "
              "NodeOUs, revocation list, endpoints, anchor peers)")
        return 0
    if args.cmd == "add-user":
        d = ids.add_user(args.name, args.role)
        print(f"{ids.user_name(args.name)} ({args.role}): {d}")
        return 0
    if args.cmd == "renew":
        cert = ids.renew(args.name, days=args.days)
        print(f"renewed {args.name}: serial {cert.serial_number:x}, valid until "
              f"{cert.not_valid_after_utc:%Y-%m-%d}")
        return 0
    if args.cmd == "revoke":
        crl = ids.revoke(args.name)
        generate.org_definition(lay, org)
        out = generate.publish_definition(lay, org)
        print(f"revoked {args.name}: {crl}; definition updated: {out}\n"
              f"Restart {org.msp_id}'s nodes ('ipledger network down' then 'up' on this host) for their "
              "local MSPs to read it.\n"
              f"The channel learns it from a config update signed by {org.msp_id}'s admin:\n"
              f"  ipledger admin propose update-org --definition {out} --output revoke.pb\n"
              f"  ipledger admin sign revoke.pb --as {org.msp_id} && "
              "ipledger admin submit revoke.pb")
        return 0
    if args.cmd == "reissue":
        d = ids.reissue(args.name)
        print(f"{args.name}: a new key and certificate in {d} (its old certificates stay revoked; the channel "
              "needs no update). Restart what uses it: a node ('ipledger network down' then 'up' on this host), "
              f"the gateway ('ipledger gateway reload --org {org.msp_id}') for its User1")
        return 0
    rows = [e.__dict__ for e in ids.register()]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for e in rows:
            print(f"{e['name']:<44} {e['role']:<8} {e['serial']:>40x}  until {e['not_after'][:10]}"
                  f"  {'REVOKED ' + e['revoked_at'][:10] if e['revoked_at'] else ''}")
    for e in ids.expiring():
        print(f"warning: {e.name}'s certificate ends {e.not_after[:10]} (within "
              f"{identities.EXPIRY_WARNING_DAYS} days, or ended): ipledger org renew --org {org.msp_id} "
              f"--name {e.name}", file=sys.stderr)
    for path, end in ids.chaincode_service_ending():
        print(f"warning: the chaincode service's TLS certificate {path} ends {end:%Y-%m-%d} (within "
              f"{identities.EXPIRY_WARNING_DAYS} days, or ended): renewing it is not automated "
              "(docs/operations.md, section 4)", file=sys.stderr)
    return 0


def _channel(net: Nodes, args) -> int:
    lay = net.layout
    if args.cmd == "found":
        channels = net.channels() if args.channel is None else [net.on_channel(args.channel)]
        founded = [ch.layout.genesis_block for ch in channels if ch.layout.genesis_block.exists()]
        if founded:
            raise NetworkError(f"{founded[0]} exists: the channel is founded")
        lay.public.mkdir(parents=True, exist_ok=True)
        if not lay.consortium_file.exists():
            consortium_mod.save(net.consortium, lay.consortium_file)
        local = {o.msp_id: o for o in net.consortium.all_orgs if lay.is_local(o)}
        for f in args.definition:
            d = definition_mod.load(f)
            own = lay.org_home(local[d.msp_id]) / "definition.json" if d.msp_id in local else None
            if own is not None and (not own.is_file() or own.read_bytes() != Path(f).read_bytes()):
                # an organisation of this host is defined by its own directory ('org definition'), never a file
                raise NetworkError(f"{f} is a definition of {d.msp_id}, an organisation of this host, other than the "
                                   f"one 'ipledger org definition --org {d.msp_id}' writes: refused")
            definition_mod.write_public(lay.definition_file(d.msp_id), Path(f).read_bytes())
        for ch in channels:
            founding.found(ch.consortium, ch.layout)
            block = ch.layout.genesis_block
            print("\n".join(founding.format_summary(founding.summary(block.read_bytes()))))
            print(f"Send {block} to every member of channel '{ch.consortium.channel}': each checks it "
                  "('ipledger channel inspect') before its nodes join ('ipledger network up').")
        return 0
    if args.cmd == "export":
        return _export(net, args)
    if args.block is None:
        net = net.on_channel(args.channel)
        lay = net.layout
    block_file = args.block or lay.genesis_block
    try:
        block = Path(block_file).read_bytes()
    except OSError as e:
        raise NetworkError(f"cannot read {block_file}: {e.strerror}") from e
    try:
        s = founding.summary(block)
        founding.channel_of(block)
    except Exception as e:  # noqa: BLE001 - protobuf decode errors have no common base; ConfigError
        raise NetworkError(f"{block_file} is not a channel's genesis block ({type(e).__name__}: "
                           f"{printable(str(e))[:200]})") from None
    orgs = [net.consortium.org(args.org)] if args.org else net.local_orgs
    # the channel's policies against the consortium file's rule, then the whole configuration against the one
    # the consortium file and the public definitions give, as 'network up' checks them before joining
    ch = net.on_channel(args.channel or founding.channel_of(block))
    policies = founding.check_policies(block, ch.consortium) or founding.check_rebuilt(block, ch.consortium, ch.layout)
    checks = {}
    for org in orgs:
        own = definition_mod.load(lay.org_home(org) / "definition.json")
        checks[org.msp_id] = founding.check_own(block, own) + policies
    if args.json:
        print(json.dumps({**s, "checks": checks}, indent=2))
    else:
        print("\n".join(founding.format_summary(s)))
        for msp_id, problems in checks.items():
            if problems:
                print(f"{msp_id}: REFUSE this block:", *map(printable, problems), sep="\n  ")
            else:
                print(f"{msp_id}: its own definition is in the block as it wrote it, and the channel's "
                      "configuration is the one the consortium file and the definitions give")
    return 1 if any(checks.values()) else 0


def export_channel(net: Nodes, channel: str | None, out: Path) -> list[Path]:
    """Copy into ``out`` (a new directory, laid out as a state directory's ``consortium/``) what the
    members of ``channel`` need and nothing more: the consortium file trimmed to that channel
    (:func:`consortium.for_channel_members`), its members' and the ordering organisation's public
    definitions and MSP folders, the channel's genesis block and files, the contract packages."""
    ch = net.on_channel(channel)
    if not ch.layout.genesis_block.exists():
        raise NetworkError(f"channel '{ch.consortium.channel}' is not founded yet ({ch.layout.genesis_block})")
    if out.exists():
        raise NetworkError(f"{out} exists: give a new directory")
    src, target = net.layout.public, Path(out)
    trimmed = consortium_mod.for_channel_members(net.consortium, ch.consortium.channel)
    written = []

    def copy(path: Path) -> None:
        refuse_links(path)   # a link would copy what it points to (a private key) into what is sent to others
        rel = path.relative_to(src)
        to = target / rel
        to.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            # one shared channel's folder holds the organisations' MSP folders copied just before
            shutil.copytree(path, to, dirs_exist_ok=True)
        else:
            shutil.copy2(path, to)
        if to not in written:
            written.append(to)

    target.mkdir(parents=True)
    consortium_mod.save(trimmed, target / net.layout.consortium_file.name)
    written.append(target / net.layout.consortium_file.name)
    for org in trimmed.all_orgs:
        copy(net.layout.definition_file(org.msp_id))
        if net.layout.public_msp(org.msp_id).exists():
            copy(net.layout.public_msp(org.msp_id))
    copy(ch.layout.channel_dir)
    if net.layout.chaincode_dir.exists():
        for pkg in sorted(net.layout.chaincode_dir.glob("*.tar.gz")):
            copy(pkg)
    return written


def _export(net: Nodes, args) -> int:
    written = export_channel(net, args.channel, args.out)
    print(f"{len(written)} files and folders in {args.out}: send it to the members of the channel, each "
          "puts it in its state directory as consortium/")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(2)
