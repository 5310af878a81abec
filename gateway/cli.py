"""The ``ipledger gateway`` and ``ipledger import`` commands (hooked into network/cli.py).

    ipledger gateway serve [--bind 127.0.0.1:8080] [--workers N] [--threads T]
    ipledger gateway keys create --org OperatorMSP --role clerk [--label TEXT]
    ipledger gateway keys list [--json]
    ipledger gateway keys revoke KEY_ID
    ipledger import FILE [--format csv|jsonl] [--report FILE] [--url URL] [--api-key KEY]

Heavy imports (Flask, gunicorn, grpc) happen inside the commands, so the other
``ipledger`` commands do not pay for them.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

GROUPS = ("gateway", "import")


def register(sub) -> None:
    """Add the ``gateway`` and ``import`` sub-commands to the ``ipledger`` parser."""
    gw = sub.add_parser("gateway", help="the REST gateway (ERP events in, Fabric transactions out)")
    gws = gw.add_subparsers(dest="cmd", required=True)
    serve = gws.add_parser("serve", help="serve the REST API with gunicorn (gthread workers)")
    serve.add_argument("--bind", default=os.environ.get("IPLEDGER_GATEWAY_BIND", "127.0.0.1:8080"),
                       help="address to listen on (default 127.0.0.1:8080)")
    serve.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    serve.add_argument("--threads", type=int, default=8, help="threads per worker (default 8)")
    serve.add_argument("--timeout", type=int, default=120, help="gunicorn worker timeout in seconds")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    start = gws.add_parser("start", help="run the gateway in the background (PID and log in "
                                         "<state>/gateway), make one API key per org, print them")
    start.add_argument("--bind", default=os.environ.get("IPLEDGER_GATEWAY_BIND", "127.0.0.1:8080"))
    start.add_argument("--workers", type=int, default=2)
    gws.add_parser("stop", help="stop the background gateway")

    keys = gws.add_parser("keys", help="API keys (stored hashed in <state>/gateway/api-keys.json)")
    ks = keys.add_subparsers(dest="keys_cmd", required=True)
    create = ks.add_parser("create", help="create a key; it is printed once")
    create.add_argument("--org", required=True, help="MSP id the key acts as, e.g. OperatorMSP")
    create.add_argument("--role", required=True, choices=["clerk", "viewer"],
                        help="clerk: submit events and read; viewer: read only")
    create.add_argument("--label", default="", help="free text, e.g. the ERP system's name")
    create.add_argument("--json", action="store_true", help="print {key_id, key, org, role} as JSON")
    lst = ks.add_parser("list", help="list keys (never the keys themselves)")
    lst.add_argument("--json", action="store_true")
    rev = ks.add_parser("revoke", help="revoke a key (takes effect at once, no restart)")
    rev.add_argument("key_id")

    imp = sub.add_parser("import", help="post ERP business events (CSV or JSON lines) through the REST API")
    imp.add_argument("file", type=Path)
    imp.add_argument("--format", choices=["csv", "jsonl"], help="default: from the file extension")
    imp.add_argument("--report", type=Path, help="per-line report (.csv, or .jsonl/.json for JSON lines)")
    imp.add_argument("--url", default=None, help="gateway base URL (env IPLEDGER_GATEWAY_URL, "
                                                 "default http://127.0.0.1:8080)")
    imp.add_argument("--api-key", default=None, help="API key (prefer the env IPLEDGER_API_KEY: a command line "
                                                     "is visible to other users)")
    imp.add_argument("--progress-file", type=Path, help="default: FILE.progress")
    imp.add_argument("--restart", action="store_true", help="forget the progress file and start from line 1")
    imp.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    imp.add_argument("--retries", type=int, default=5,
                     help="retries of a line when the gateway is unreachable or answers 503/504")
    imp.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    if args.group == "import":
        return _import(args)
    if args.cmd == "serve":
        return _serve(args)
    if args.cmd in ("start", "stop"):
        return _daemon(args)
    return _keys(args)


def _daemon(args) -> int:
    from . import daemon
    if args.cmd == "stop":
        if not daemon.stop(args.state_dir):
            print("  gateway not running")
        return 0
    try:
        url = daemon.start(args.state_dir, bind=args.bind, workers=args.workers)
    except daemon.DaemonError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    creds = daemon.ensure_credentials(args.state_dir, url, _known_orgs(args.state_dir) or [])
    print(f"\nGateway:    {url}   (API docs: {url}/api/v1/docs)")
    for org, entry in creds["keys"].items():
        print(f"  {org:<12} API key: {entry['key']}")
    print(f"(also in {daemon.credentials_file(args.state_dir)}, mode 0600)")
    return 0


def _serve(args) -> int:
    from .auth import KeyStoreError
    from .server import ServeError, serve
    try:
        serve(args.state_dir, bind=args.bind, workers=args.workers, threads=args.threads, timeout=args.timeout,
              log_level=args.log_level)
    except (KeyStoreError, ServeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _known_orgs(state_dir: Path) -> list[str] | None:
    try:
        from network.lifecycle import Network
        net = Network.open(state_dir)
        if not net.layout.consortium_file.exists():
            return None
        return [o.msp_id for o in net.consortium.orgs]
    except Exception:  # noqa: BLE001 - no network there: the org cannot be checked
        return None


def _keys(args) -> int:
    from .auth import KeyStore, KeyStoreError
    from .config import keys_file_of
    store = KeyStore(keys_file_of(args.state_dir))
    try:
        if args.keys_cmd == "create":
            orgs = _known_orgs(args.state_dir)
            if orgs is not None and args.org not in orgs:
                print(f"error: {args.org} is not an organisation of this network ({', '.join(orgs)})",
                      file=sys.stderr)
                return 2
            key_id, key = store.create(args.org, args.role, args.label)
            if args.json:
                print(json.dumps({"key_id": key_id, "key": key, "org": args.org, "role": args.role}))
            else:
                print(key)
                print(f"key id {key_id}: {args.role} of {args.org}. This key is shown once; store it safely.",
                      file=sys.stderr)
            return 0
        if args.keys_cmd == "list":
            rows = store.list()
            if args.json:
                print(json.dumps(rows, indent=2))
            else:
                print(f"{'KEY ID':<14} {'ORG':<12} {'ROLE':<7} {'CREATED':<21} {'REVOKED':<21} LABEL")
                for r in rows:
                    print(f"{r['key_id']:<14} {r['org']:<12} {r['role']:<7} {r['created_at'] or '':<21} "
                          f"{r['revoked_at'] or '-':<21} {r['label'] or ''}")
            return 0
        if store.revoke(args.key_id):
            print(f"revoked {args.key_id}")
            return 0
        print(f"error: no active key {args.key_id}", file=sys.stderr)
        return 1
    except KeyStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _import(args) -> int:
    from .importer import ImportError_, Importer
    url = args.url or os.environ.get("IPLEDGER_GATEWAY_URL") or "http://127.0.0.1:8080"
    key = args.api_key or os.environ.get("IPLEDGER_API_KEY")
    if not key:
        print("error: an API key is needed (--api-key or IPLEDGER_API_KEY)", file=sys.stderr)
        return 2
    try:
        importer = Importer(url, key, timeout=args.timeout, retries=args.retries,
                            progress=None if args.quiet else sys.stderr)
        return importer.run(args.file, fmt=args.format, report=args.report, progress_file=args.progress_file,
                            restart=args.restart)
    except ImportError_ as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
