"""``python -m ipledger.network.cli.verify`` (``ipledger verify``): verify the channel's blocks.

    python -m ipledger.network.cli.verify --state-dir DIR [--peer peer0.customs] [--as CustomsMSP]
                                    [--user User1] [--genesis FILE | --trust-peer-genesis] [--save DIR] [--json]
    python -m ipledger.network.cli.verify --from-file DIR [--state-dir DIR | --genesis FILE] [--json]

Fetches every block from the genesis block to the current height from a peer's
Deliver service (over TLS, as the org's user), or reads a copy saved with
``--save``, and verifies it (see :mod:`.verifier`). The trust anchor is the
genesis block: the state directory's ``channel/genesis.block`` or ``--genesis``
when given; else block 0 of a saved copy itself, and of a peer's chain only with
``--trust-peer-genesis`` (a peer could make up a chain from block 0 on; the
summary says which anchor was used).

Exit status: 0 the ledger verified; 1 an inconsistency (the first inconsistent
block is named, with every problem found in it); 2 the blocks could not be
obtained (none came: nothing was verified) or the arguments are wrong.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fabric_protos.common import common_pb2

from ipledger.network.errors import printable
from ipledger.network.fabric import blocks as B
from ipledger.network.fabric.config import config_envelope_of
from ipledger.network.verify.verifier import Verifier

EXIT_OK, EXIT_INCONSISTENT, EXIT_ERROR = 0, 1, 2


class UsageError(Exception):
    """``ipledger verify`` was asked something it cannot do (no peer to fetch from, a file it cannot read):
    the CLI's error status (``EXIT_ERROR``), not a verification failure."""


def parse_args(argv):
    p = argparse.ArgumentParser(prog="ipledger verify", description=__doc__.split("\n\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--state-dir", type=Path, help="the network's state directory")
    p.add_argument("--peer", help="node id of the peer to fetch from (default: the first peer of --as)")
    p.add_argument("--as", dest="as_msp", default="CustomsMSP",
                   help="organisation whose user fetches the blocks (default CustomsMSP)")
    p.add_argument("--user", default="User1", help="user of that organisation (default User1)")
    p.add_argument("--channel", help="channel (default: the consortium's)")
    p.add_argument("--from-file", type=Path, metavar="DIR", help="verify blocks saved with --save")
    p.add_argument("--genesis", type=Path, help="trusted genesis block file")
    p.add_argument("--trust-peer-genesis", action="store_true",
                   help="with no trusted genesis block (--genesis, or the state directory's), take the peer's own "
                        "block 0 as the trust anchor; compare the genesis header hash printed out of band")
    p.add_argument("--save", type=Path, metavar="DIR", help="also write the fetched blocks to DIR")
    p.add_argument("--timeout", type=float, default=120.0, help="Deliver timeout in seconds")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- sources

def peer_blocks(net, peer_id: str | None, msp_id: str, user: str, channel: str, timeout: float):
    """(description, iterator of blocks 0..newest) from a peer's Deliver service."""
    from ipledger.gateway.client import Endpoint, dial
    from ipledger.network.fabric.signing_process import load_identity_apart
    from ipledger.network.verify.fetch import all_blocks
    try:
        org = net.consortium.org(msp_id)
        if not org.peers:
            raise UsageError(f"{msp_id} has no peer to fetch blocks from")
        node = net.consortium.node(peer_id) if peer_id else org.peers[0]
        if node.kind != "peer":
            raise UsageError(f"{node.id} is not a peer")
        # the key signs in a child process: a verifier reads the chain, it needs no key in its own memory
        identity, signer = load_identity_apart(net.layout.user_msp(org, user), org.msp_id)
    except ValueError as exc:       # ConsortiumError, MSPError
        raise UsageError(str(exc)) from None
    tls = net.layout.user_tls(org, user)
    client = {}
    if node.org.msp_id == org.msp_id and (tls / "client.crt").exists() and (tls / "client.key").exists():
        client = {"client_cert": tls / "client.crt", "client_key": tls / "client.key"}
    endpoint = Endpoint(node.address, tls_root_cert=net.layout.tls_ca(node.org), **client)
    channel_obj = dial(endpoint)
    desc = f"{node.id} ({node.address}) as {org.msp_id} {user}"

    def blocks():
        try:
            yield from all_blocks(channel_obj, identity, signer, channel, tls_cert_hash=endpoint.client_cert_hash,
                                  timeout=timeout)
        finally:
            signer.close()
    return desc, blocks()


def file_blocks(directory: Path):
    for expected, (number, path) in enumerate(B.block_files(directory)):
        if number != expected:      # a gap in the saved copy: name the missing file, not the next block's number
            raise FileBlockError(expected, B.block_file(directory, expected), "the file is missing", missing=True)
        block = common_pb2.Block()
        try:
            block.ParseFromString(path.read_bytes())
        except Exception as exc:  # noqa: BLE001
            raise FileBlockError(number, path, exc) from None
        yield block


class FileBlockError(Exception):
    """A block file of ``--from-file`` is missing or does not parse as a block."""

    def __init__(self, number, path, exc, missing: bool = False):
        super().__init__(f"{path}: {exc}" if missing else f"{path} does not parse as a block: {exc}")
        self.number = number


def _read_block(path: Path) -> common_pb2.Block:
    """The trusted genesis block: a config block numbered 0 (an empty or foreign file is an argument error,
    not an inconsistency of the ledger)."""
    try:
        block = common_pb2.Block.FromString(Path(path).read_bytes())
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except Exception as exc:  # noqa: BLE001
        raise UsageError(f"{path} is not a block: {exc}") from None
    try:
        config_envelope_of(block)
    except Exception as exc:  # noqa: BLE001 - ConfigError, protobuf DecodeError
        raise UsageError(f"{path} is not a genesis block: {exc}") from None
    if block.header.number != 0:
        raise UsageError(f"{path} is not a genesis block: it is block {block.header.number}")
    return block


# ----------------------------------------------------------------------------- output

POLICY_LABELS = {
    "chaincode": "chaincode-level",
    "collection": "collection-level",
    "key-level": "key-level (state-based)",
    "chaincode (_lifecycle)": "_lifecycle commits (LifecycleEndorsement)",
    "collection (_lifecycle)": "_lifecycle approvals (the org's Endorsement)",
}

def render(report: dict) -> str:
    out = [f"ipledger verify — channel {report['channel'] or '?'}",
           f"  source:        {report['source']}",
           f"  trust anchor:  {report['trust_anchor']}"]
    n = report["blocks_verified"]
    if report["genesis_header_hash"]:
        out.append(f"  genesis:       header hash {report['genesis_header_hash']}")
    if n:
        out.append(f"  blocks:        0..{n - 1} verified ({n} blocks); last header hash "
                   f"{report['last_header_hash']}")
    else:
        out.append("  blocks:        none verified")
    updates = report["config_updates"]
    out.append(f"  config blocks: {', '.join(map(str, report['config_blocks'])) or 'none'}"
               + (f" ({len(updates)} update(s) authorized and reproduced)" if updates else ""))
    for u in updates:
        out.append(f"    block {u['block']} (sequence {u['sequence']}): signed by "
                   f"{', '.join(u['signers']) or 'nobody'}; policies {', '.join(u['policies'])}")
    t = report["transactions"]
    inv = ", ".join(f"{k} {v}" for k, v in t["invalid_by_code"].items())
    out.append(f"  transactions:  {t['total']} ({t['valid']} valid, {t['invalid']} invalid"
               + (f": {inv}" if inv else "") + f"; {t['config']} config)")
    if report["chaincodes"]:
        out.append("  chaincodes:")
        for name, c in report["chaincodes"].items():
            line = f"    {name:<20} {c['valid_txs']} valid, {c['invalid_txs']} invalid"
            d = c.get("definition")
            if d:
                line += (f"; definition sequence {d['sequence']} (version {d['version']}, block "
                         f"{d['committed_in_block']}), endorsement policy {d['endorsement_policy']}")
                if d["collections"]:
                    line += f", collections {', '.join(d['collections'])}"
            out.append(line)
    ch = report["checked"]
    pol = ", ".join(f"{POLICY_LABELS.get(k, k)} {v}" for k, v in ch["policy_evaluations"].items()) or "none"
    out += ["  checked:",
            "    hash chain (previous_hash) and data hash of every block",
            f"    orderer signatures: {ch['orderer_signatures']} valid signer(s) against "
            "/Channel/Orderer/BlockValidation of the config in force",
            f"    creators of VALID transactions: {ch['creator_signatures']} signatures; each a valid "
            "member of a channel MSP (CA chain, NodeOU) admitted by /Channel/Writers",
            f"    endorsement signatures: {ch['endorsement_signatures']}",
            f"    endorsement policy evaluations: {pol}",
            f"    keys carrying a key-level (state-based) policy now: {ch['keys_with_key_level_policy']}",
            f"    INVALID transactions: {report['invalid_cross_check']['endorsement_policy_failures_confirmed']} "
            "ENDORSEMENT_POLICY_FAILURE code(s) confirmed by evaluating their endorsements"]
    if report["warnings"]:
        out.append("  warnings:")
        out += [f"    - {w}" for w in report["warnings"]]
    out.append("  not checked:")
    out += [f"    - {line}" for line in report["not_checked"]]
    if report["ok"]:
        out.append(f"RESULT: OK — {n} blocks verified, no inconsistency")
    else:
        first = report["problems"][0]["block"] if report["problems"] else "?"
        out.append(f"RESULT: INCONSISTENT at block {first}")
        for p in report["problems"]:
            where = f"block {p['block']}"
            if p["tx_index"] is not None:
                where += f", tx {p['tx_index']}" + (f" ({p['tx_id']})" if p["tx_id"] else "")
            out.append(f"  {where}: {p['check']}: {p['message']}")
    return "\n".join(printable(line) for line in out)


# ----------------------------------------------------------------------------- main

def run(args) -> tuple[int, dict | None, str | None]:
    trusted = None
    trust = ""
    net = None
    if args.state_dir:
        if not args.state_dir.is_dir():
            raise UsageError(f"state directory {args.state_dir} does not exist")
        from ipledger.network.errors import NetworkError
        from ipledger.network.org.nodes import Nodes
        try:  # with a channel per holder: the one named (its own genesis block and peers)
            net = Nodes.open(args.state_dir).on_channel(args.channel)
        except NetworkError as e:
            raise UsageError(str(e)) from None
    if args.genesis:
        trusted = _read_block(args.genesis)
        trust = f"block 0 must equal {args.genesis}"
    elif net is not None and net.layout.genesis_block.exists():
        trusted = _read_block(net.layout.genesis_block)
        trust = f"block 0 must equal {net.layout.genesis_block}"

    if args.from_file:
        source = f"block files in {args.from_file}"
        blocks = file_blocks(args.from_file)
        if trusted is None:
            trust = (f"block 0 of {args.from_file} itself (no independent genesis given: compare the "
                     "genesis header hash below out of band)")
    else:
        if net is None:
            raise UsageError("give --state-dir (to fetch from a peer) or --from-file DIR")
        if trusted is None and not args.trust_peer_genesis:
            # a peer could hand over a chain it made up from block 0 on, with CAs and orderers of its own
            raise UsageError(f"no trusted genesis block ({net.layout.genesis_block} is missing): give --genesis "
                             "FILE (the channel's genesis block, from its founding), or --trust-peer-genesis to "
                             "take the peer's own block 0 and compare the genesis header hash out of band")
        channel = args.channel or net.consortium.channel
        source, blocks = peer_blocks(net, args.peer, args.as_msp, args.user, channel, args.timeout)
        if trusted is None:
            trust = (f"block 0 of {source} itself (--trust-peer-genesis: compare the genesis header hash below "
                     "out of band)")
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)

    verifier = Verifier(trusted_genesis=trusted)
    from ipledger.network.fabric.errors import DeliverError
    try:
        for block in blocks:
            if args.save:
                B.save_block(args.save, block)
            if not verifier.failed:
                verifier.verify(block)
            elif not args.save:
                break
    except FileBlockError as exc:
        from ipledger.network.verify.verifier import Problem
        if not verifier.failed:
            verifier.problems = [Problem(exc.number, "block file", str(exc))]
    except DeliverError as exc:
        if not verifier.failed:     # an inconsistency found before the stream broke still counts
            return EXIT_ERROR, None, f"cannot fetch the blocks from {source}: {exc}"
    finally:
        close = getattr(blocks, "close", None)
        if close:
            close()
    if not verifier.failed and verifier.stats.blocks == 0:
        return EXIT_ERROR, None, f"no block came from {source}: nothing was verified"
    if trusted is not None:
        trust += " (it does)" if verifier.stats.blocks else ""
    report = verifier.report(source=source, trust=trust)
    report["genesis_header_hash"] = report["genesis_header_hash"] or None
    if args.save:
        report["saved_to"] = str(args.save)
    return (EXIT_INCONSISTENT if verifier.failed else EXIT_OK), report, None


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        code, report, error = run(args)
    except UsageError as exc:
        print(f"ipledger verify: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:          # no block files, --save not writable, ...
        print(f"ipledger verify: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if error:
        print(f"ipledger verify: {error}", file=sys.stderr)
        return code
    try:
        print(json.dumps(report, indent=2) if args.json else render(report))
        sys.stdout.flush()
    except BrokenPipeError:          # e.g. piped into head
        sys.stderr.close()
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
