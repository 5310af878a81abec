"""The ``ipledger gateway`` and ``ipledger import`` commands (hooked into network/cli/commands.py).

    ipledger gateway serve|start|stop|reload --org M    one organisation's gateway (its identity only; --org
                                                 is required: there is no gateway of several organisations)
    ipledger gateway serve --org M [--bind 127.0.0.1:8080] [--workers N] [--threads T]
                           [--tls-cert FILE --tls-key FILE [--client-ca [ORG=]FILE|consortium …]
                            [--client-cert required|optional]]
    ipledger gateway keys --gateway M create --org M --role clerk [--label TEXT]
    ipledger gateway keys --gateway M list [--json]
    ipledger gateway keys --gateway M revoke KEY_ID
    ipledger gateway webhooks --gateway M add|list|remove|deliveries|resend …
    ipledger import FILE [--format csv|jsonl] [--report FILE] [--retry-refused] [--url URL] [--api-key KEY]
                         [--ca-cert FILE] [--client-cert FILE --client-key FILE]
    ipledger report bill-of-discharge|inventory … [--ca-cert FILE] [--client-cert FILE --client-key FILE]

Heavy imports (Flask, gunicorn, grpc) happen inside the commands, so the other ``ipledger`` commands do not pay.
One file: the commands of one organisation's gateway and its clients share their arguments (``--org``, the
state directory, the URL, key and TLS options) and their way of finding the gateway.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ipledger.gateway import client_tls
from ipledger.network import files
from ipledger.network.errors import printable

GROUPS = ("gateway", "import", "report")


def register(sub) -> None:
    """Add the ``gateway`` and ``import`` sub-commands to the ``ipledger`` parser."""
    gw = sub.add_parser("gateway", help="the REST gateway (ERP events in, Fabric transactions out)")
    gws = gw.add_subparsers(dest="cmd", required=True)
    serve = gws.add_parser("serve", help="serve the REST API with gunicorn (gthread workers)")
    serve.add_argument("--bind", default=os.environ.get("IPLEDGER_GATEWAY_BIND", "127.0.0.1:8080"),
                       help="address to listen on (default 127.0.0.1:8080; env IPLEDGER_GATEWAY_BIND)")
    serve.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    # a submit holds its thread until the transaction commits (about a second under load): the
    # threads, not the CPU, bound how many events a gateway has in flight. A keep-alive connection stays
    # with the worker that accepted it, and the workers do not share them out evenly: each worker's
    # threads cover the whole load (2 x 64 served 128 clients at 0.6-0.95 of 2 x 128, bench/gateway_http.py)
    serve.add_argument("--threads", type=int, default=128, help="threads per worker (default 128)")
    serve.add_argument("--timeout", type=int, default=120, help="gunicorn worker timeout in seconds")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--forwarded-allow-ips", metavar="ADDRESSES", default=os.environ.get(
        "IPLEDGER_FORWARDED_ALLOW_IPS", "127.0.0.1"), help="addresses or networks (comma-separated, never '*') of "
        "the TLS proxies whose X-Forwarded-Proto is believed (default 127.0.0.1; env IPLEDGER_FORWARDED_ALLOW_IPS)")
    start = gws.add_parser("start", help="run the organisation's gateway in the background (PID and log in "
                                         "<state>/<org name>/gateway), make its API key, print it")
    start.add_argument("--bind", default=os.environ.get("IPLEDGER_GATEWAY_BIND", "127.0.0.1:8080"),
                       help="address to listen on (default 127.0.0.1:8080; env IPLEDGER_GATEWAY_BIND)")
    start.add_argument("--workers", type=int, default=2)
    for p in (serve, start):
        add_tls_arguments(p)
        p.add_argument("--insecure-http", action="store_true",
                       help="serve plain HTTP on an address other than loopback (API keys and sessions in clear "
                            "text: only behind a proxy that terminates TLS on the same host or network)")
    stop = gws.add_parser("stop", help="stop the organisation's background gateway")
    reload = gws.add_parser("reload", help="the organisation's running gateway reads its configuration again (the "
                                           "channels it is on) and replaces its workers gracefully (SIGHUP)")
    reload.add_argument("--force", action="store_true",
                        help="reload even if the contract is not committed on a channel the gateway would add")
    for p in (serve, start, stop, reload):
        p.add_argument("--org", metavar="MSP_ID", default=os.environ.get("IPLEDGER_GATEWAY_ORG"),
                       help="required: the organisation whose gateway this is: it acts with that organisation's "
                            "identity only; files in its own directory (env IPLEDGER_GATEWAY_ORG)")

    keys = gws.add_parser("keys", help="API keys of an organisation's gateway (stored hashed in "
                                       "<state>/<org name>/gateway/api-keys.json)")
    ks = keys.add_subparsers(dest="keys_cmd", required=True)
    create = ks.add_parser("create", help="create a key; it is printed once")
    create.add_argument("--org", required=True, help="MSP id the key acts as, e.g. OperatorMSP")
    create.add_argument("--role", required=True, choices=["clerk", "viewer"],
                        help="clerk: submit events and read; viewer: read only")
    create.add_argument("--label", default="", help="free text, e.g. the ERP system's name")
    create.add_argument("--expires-in", type=int, metavar="DAYS", default=None,
                        help="the key is refused from DAYS days on (default: until revoked)")
    create.add_argument("--json", action="store_true", help="print {key_id, key, org, role} as JSON")
    lst = ks.add_parser("list", help="list keys (never the keys themselves)")
    lst.add_argument("--json", action="store_true")
    rev = ks.add_parser("revoke", help="revoke a key (takes effect at once, no restart)")
    rev.add_argument("key_id")

    hooks = gws.add_parser("webhooks", help="alert webhooks of an organisation's gateway (subscriptions in "
                                           "<state>/<org name>/gateway/webhooks.json)")
    for p, what in ((keys, "keys"), (hooks, "subscriptions")):
        p.add_argument("--gateway", metavar="MSP_ID", default=os.environ.get("IPLEDGER_GATEWAY_ORG"),
                       help=f"required: the organisation whose gateway's {what} these are (env IPLEDGER_GATEWAY_ORG)")
    hs = hooks.add_subparsers(dest="hooks_cmd", required=True)
    h_add = hs.add_parser("add", help="subscribe URL to the alerts ORG may read; prints the signing secret")
    h_add.add_argument("url")
    h_add.add_argument("--org", required=True, help="the MSP id whose alerts are sent (its visibility applies)")
    h_add.add_argument("--secret", default=None, help="HMAC-SHA256 signing secret (prefer the env "
                                                      "IPLEDGER_WEBHOOK_SECRET: a command line is visible to other "
                                                      "users; default: a random one, printed once)")
    h_add.add_argument("--types", default="", help="comma-separated alert types (default: every type)")
    h_add.add_argument("--channels", default="", help="comma-separated channels of this gateway (default: all; on "
                                                      "customs' gateway a holder's channel is that holder's alerts)")
    h_add.add_argument("--authorisations", default="", help="comma-separated authorisation ids (default: all)")
    h_add.add_argument("--label", default="")
    h_add.add_argument("--json", action="store_true")
    hs.add_parser("list", help="list subscriptions (never their secrets)").add_argument("--json", action="store_true")
    hs.add_parser("remove", help="stop sending to a subscription").add_argument("subscription_id")
    h_resend = hs.add_parser("resend", help="queue FAILED deliveries again (e.g. once a subscriber that was down "
                                            "is back): a new series of attempts, access asked again first")
    h_resend.add_argument("delivery_ids", nargs="*", type=int, metavar="DELIVERY_ID",
                          help="the FAILED deliveries to send again (see 'deliveries --status FAILED')")
    h_resend.add_argument("--all-failed", action="store_true",
                          help="every FAILED delivery of the active subscriptions (with --subscription: of that one)")
    h_resend.add_argument("--subscription", metavar="ID", help="only deliveries to this subscription")
    h_resend.add_argument("--json", action="store_true")
    h_log = hs.add_parser("deliveries", help="the delivery log, newest first")
    h_log.add_argument("--status", choices=["PENDING", "DELIVERED", "FAILED"])
    h_log.add_argument("--limit", type=int, default=50)
    h_log.add_argument("--json", action="store_true")

    rep = sub.add_parser("report", help="bill of discharge / inventory (JSON, CSV or PDF) through the REST API")
    rs = rep.add_subparsers(dest="report_cmd", required=True)
    bod = rs.add_parser("bill-of-discharge", help="bill of discharge of an authorisation for a period end (or as of)")
    bod.add_argument("authorisation_id")
    when = bod.add_mutually_exclusive_group()
    when.add_argument("--period-end", help="YYYY-MM-DD (the formal bill)")
    when.add_argument("--as-of", help="date or date-time (the audit view; default: now)")
    inv = rs.add_parser("inventory", help="goods under the procedure at a date")
    inv.add_argument("--as-of", required=True, help="date or date-time")
    inv.add_argument("--authorisation", action="append", default=[], help="authorisation id (repeatable; default: "
                                                                          "every one the key's org may read)")
    for r in (bod, inv):
        r.add_argument("--format", choices=["json", "csv", "pdf"], default="json")
        r.add_argument("--output", "-o", type=Path, help="file to write, 0600 (default: stdout; required for pdf)")
        r.add_argument("--url", default=None, help="gateway base URL (env IPLEDGER_GATEWAY_URL)")
        r.add_argument("--api-key", default=None, help="API key (prefer the env IPLEDGER_API_KEY)")
        r.add_argument("--timeout", type=float, default=120.0)
        client_tls.add_arguments(r)

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
    imp.add_argument("--retry-refused", action="store_true", help="send again the lines an earlier run refused")
    imp.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    imp.add_argument("--retries", type=int, default=5,
                     help="retries of a line when the gateway is unreachable, answers 408, 429, 502, 503 or 504, "
                          "or reports a transaction conflict")
    imp.add_argument("--quiet", action="store_true", help="no progress bar")
    client_tls.add_arguments(imp)


def add_tls_arguments(parser) -> None:
    """HTTPS and client certificates (gateway/tls.py)."""
    tls = parser.add_argument_group("HTTPS and client certificates")
    tls.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS (TLS >= 1.2) with this certificate (PEM, "
                                                        "the server's first, then its intermediate CAs)")
    tls.add_argument("--tls-key", metavar="FILE", help="the certificate's private key (PEM, unencrypted, mode 0600)")
    tls.add_argument("--client-ca", metavar="[ORG=]FILE|consortium", action="append", default=[],
                     help="accept client certificates issued by the CAs in FILE (PEM, repeatable); ORG=FILE binds "
                          "them to organisation ORG: its certificates work only with ORG's API keys; 'consortium': "
                          "the TLS CA of the organisation the gateway serves, bound to it")
    tls.add_argument("--client-cert", choices=["required", "optional"], default=None,
                     help="whether a client certificate is required (default with --client-ca) or optional")


def main(args: argparse.Namespace) -> int:
    if args.group == "import":
        return _import(args)
    if args.group == "report":
        return _report(args)
    option = "--gateway" if args.cmd in ("keys", "webhooks") else "--org"
    if not _own_org(args, option):
        return 2
    if args.cmd == "webhooks":
        return _webhooks(args)
    if args.cmd == "serve":
        return _serve(args)
    if args.cmd in ("start", "stop", "reload"):
        return _daemon(args)
    return _keys(args)


def _channels_without_the_contract(state_dir: Path, org: str) -> list[str]:
    """The channels ``org``'s running gateway would add on a reload where the contract is not committed."""
    from ipledger.gateway.config import DEFAULT_CHAINCODE
    from ipledger.network.channel.chaincode import Deployer
    from ipledger.network.cli import gateway_daemon as daemon
    from ipledger.network.org.nodes import Nodes
    net = Nodes.open(Path(state_dir).resolve())
    new = set(net.consortium.channels_of(org)) - set(daemon.serving(state_dir, org))
    name = os.environ.get("IPLEDGER_CHAINCODE", DEFAULT_CHAINCODE)
    return sorted(ch.consortium.channel for ch in net.channels()
                  if ch.consortium.channel in new and ch.local_peers
                  and Deployer(ch, log=lambda *_: None).committed(name) is None)


def _own_org(args, option: str) -> bool:
    """Whether the command names its organisation's gateway (``--org`` / ``--gateway``), one of this
    network's organisations; if not, says so (with the choices) on stderr. Every gateway is one
    organisation's: no command acts on a gateway of several organisations."""
    org = args.gateway if option == "--gateway" else args.org
    orgs = _known_orgs(args.state_dir)
    choices = f" (one of: {', '.join(orgs)})" if orgs else ""
    if not org:
        print(f"error: the following argument is required: {option} MSP_ID, the organisation whose gateway "
              f"this is{choices}; or set IPLEDGER_GATEWAY_ORG", file=sys.stderr)
        return False
    if orgs is not None and org not in orgs:
        print(f"error: {option} {org} is not an organisation of this network{choices}", file=sys.stderr)
        return False
    return True


def _daemon(args) -> int:
    from ipledger.network.errors import NetworkError
    from ipledger.network.cli import gateway_daemon as daemon
    org = args.org
    try:
        if args.cmd == "stop":
            if not daemon.stop(args.state_dir, org=org):
                print(f"  {org}'s gateway not running")
            return 0
        if args.cmd == "reload":
            if daemon.running(args.state_dir, org) is None:
                print(f"error: {org}'s gateway is not running", file=sys.stderr)
                return 1
            waiting = [] if args.force else _channels_without_the_contract(args.state_dir, org)
            if waiting:
                print(f"error: the contract is not committed on {', '.join(waiting)}, which {org}'s gateway would "
                      "serve after a reload, and every event it routes would fail there: 'ipledger chaincode deploy' "
                      "first (--force reloads anyway)", file=sys.stderr)
                return 2
            if not daemon.reload(args.state_dir, org=org):
                print(f"error: {org}'s gateway is not running", file=sys.stderr)
                return 1
            return 0
        from ipledger.gateway.tls import TLSOptions
        from ipledger.gateway.server import plain_http_refused
        if (why := plain_http_refused(args.bind, args.tls_cert, args.insecure_http)) is not None:
            print(f"error: {why}", file=sys.stderr)
            return 2
        url = daemon.start(args.state_dir, bind=args.bind, workers=args.workers, tls=TLSOptions.from_args(args),
                           org=org, insecure_http=args.insecure_http)
    except (daemon.DaemonError, NetworkError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    before = _credential_key_ids(args.state_dir, org)
    creds = daemon.ensure_credentials(args.state_dir, url, org)
    print(f"\n{org}'s gateway: {url}   (API docs: {url}/api/v1/docs)")
    print(f"Dashboard:  {url}/dashboard/   (sign in with its API key)")
    for msp_id, entry in creds["keys"].items():   # a key is shown once, when it is made; then only its id
        shown = entry["key"] if entry["key_id"] not in before else f"{entry['key_id']} (shown when it was made)"
        print(f"  {msp_id:<12} API key: {shown}")
    print(f"(the key is in {daemon.credentials_file(args.state_dir, org)}, mode 0600)")
    return 0


def _credential_key_ids(state_dir, org: str) -> set[str]:
    """The ids of the API keys ``org``'s credentials.json already holds."""
    from ipledger.network.cli import gateway_daemon as daemon
    path = daemon.credentials_file(state_dir, org)
    try:
        return {entry.get("key_id") for entry in json.loads(path.read_text()).get("keys", {}).values()}
    except (OSError, ValueError, AttributeError):
        return set()


def _serve(args) -> int:
    from ipledger.gateway.server import ServeError, forwarded_allow_ips_refused, plain_http_refused, serve
    if (why := plain_http_refused(args.bind, args.tls_cert, args.insecure_http)) is not None:
        print(f"error: {why}", file=sys.stderr)
        return 2
    if (why := forwarded_allow_ips_refused(args.forwarded_allow_ips)) is not None:
        print(f"error: --forwarded-allow-ips: {why}", file=sys.stderr)
        return 2
    from ipledger.gateway.auth import KeyStoreError
    from ipledger.gateway.filestore import CorruptFileError
    from ipledger.gateway.tls import TLSOptions
    # the workers run the chaincode-event listener (live feed, webhooks); IPLEDGER_LIVE_FEED=0 turns it off
    os.environ.setdefault("IPLEDGER_LIVE_FEED", "1")
    from ipledger.network.errors import NetworkError
    try:
        serve(args.state_dir, bind=args.bind, workers=args.workers, threads=args.threads, timeout=args.timeout,
              log_level=args.log_level, tls=TLSOptions.from_args(args), org=args.org,
              forwarded_allow_ips=args.forwarded_allow_ips)
    except (KeyStoreError, CorruptFileError, ServeError, NetworkError, OSError) as exc:   # OSError: names its file
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _known_orgs(state_dir: Path) -> list[str] | None:
    try:
        from ipledger.network.org.nodes import Nodes
        net = Nodes.open(state_dir)
        if not net.layout.consortium_file.exists():
            return None
        return [o.msp_id for o in net.consortium.orgs]
    except Exception:  # noqa: BLE001 - no network there: the org cannot be checked
        return None


def _keys(args) -> int:
    from ipledger.gateway.auth import KeyStore, KeyStoreError
    from ipledger.gateway.config import keys_file_of
    from ipledger.gateway.filestore import CorruptFileError
    store = KeyStore(keys_file_of(args.state_dir, args.gateway))
    try:
        if args.keys_cmd == "create":
            if args.org != args.gateway:
                print(f"error: {args.gateway}'s gateway makes keys of {args.gateway} only, not of {args.org}",
                      file=sys.stderr)
                return 2
            key_id, key = store.create(args.org, args.role, args.label, getattr(args, "expires_in", None))
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
                print(f"{'KEY ID':<14} {'ORG':<12} {'ROLE':<7} {'CREATED':<21} {'EXPIRES':<21} {'REVOKED':<21} LABEL")
                for r in rows:
                    print(f"{r['key_id']:<14} {r['org']:<12} {r['role']:<7} {r['created_at'] or '':<21} "
                          f"{r['expires_at'] or '-':<21} {r['revoked_at'] or '-':<21} {r['label'] or ''}")
            return 0
        if store.revoke(args.key_id):
            print(f"revoked {args.key_id}")
            return 0
        print(f"error: no active key {args.key_id}", file=sys.stderr)
        return 1
    except (KeyStoreError, CorruptFileError, OSError) as exc:   # OSError (a full disk, a directory): names its file
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _import(args) -> int:
    from ipledger.gateway.importer import ImportError_, Importer
    url = args.url or os.environ.get("IPLEDGER_GATEWAY_URL") or "http://127.0.0.1:8080"
    key = args.api_key or os.environ.get("IPLEDGER_API_KEY")
    if not key:
        print("error: an API key is needed (--api-key or IPLEDGER_API_KEY)", file=sys.stderr)
        return 2
    try:
        tls = client_tls.ClientTLSOptions.from_args(args).load(url)
        importer = Importer(url, key, timeout=args.timeout, retries=args.retries,
                            progress=None if args.quiet else sys.stderr, tls=tls)
        return importer.run(args.file, fmt=args.format, report=args.report, progress_file=args.progress_file,
                            restart=args.restart, retry_refused=args.retry_refused)
    except (ImportError_, client_tls.ClientTLSError, OSError) as exc:   # OSError: the input or progress file's
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _webhooks(args) -> int:
    from ipledger.gateway.config import ConfigError, channels_of, keys_file_of
    from ipledger.gateway.filestore import CorruptFileError
    from ipledger.gateway.feed.store import now_text
    from ipledger.gateway.webhooks import Deliveries, Subscriptions, WebhookError
    directory = keys_file_of(args.state_dir, args.gateway).parent
    subs = Subscriptions(directory / "webhooks.json")
    try:
        if args.hooks_cmd == "add":
            if args.org != args.gateway:
                print(f"error: {args.gateway}'s gateway sends alerts of {args.gateway} only, not of {args.org}",
                      file=sys.stderr)
                return 2
            secret = args.secret or os.environ.get("IPLEDGER_WEBHOOK_SECRET") or None
            types, channels, authorisations = ([t.strip() for t in text.split(",") if t.strip()]
                                               for text in (args.types, args.channels, args.authorisations))
            served = channels_of(args.state_dir, args.gateway) if channels else ()
            if set(channels) - set(served):
                print(f"error: {args.gateway}'s gateway serves {', '.join(served)}, not "
                      f"{', '.join(sorted(set(channels) - set(served)))}", file=sys.stderr)
                return 2
            record, secret = subs.add(args.url, args.org, secret, types, args.label, channels=channels,
                                      authorisations=authorisations, since=now_text())
            if args.json:
                print(json.dumps({**record, "secret": secret}))
            else:
                print(f"subscription {record['id']}: alerts of {args.org} to {args.url}")
                if not (args.secret or os.environ.get("IPLEDGER_WEBHOOK_SECRET")):
                    print(f"signing secret (shown once): {secret}")
            return 0
        if args.hooks_cmd == "list":
            rows = subs.list()
            if args.json:
                print(json.dumps(rows, indent=2))
            else:
                for r in rows:
                    narrowed = "".join(f" {what}={','.join(r[what])}" for what in ("channels", "authorisations")
                                       if r.get(what))
                    print(f"{r['id']:<14} {r['org']:<12} {'removed' if r['removed_at'] else 'active':<8} "
                          f"{','.join(r['types']) or 'all types':<20} {r['url']}{narrowed}")
            return 0
        if args.hooks_cmd == "remove":
            if subs.remove(args.subscription_id):
                print(f"removed {args.subscription_id}")
                return 0
            print(f"error: no active subscription {args.subscription_id}", file=sys.stderr)
            return 1
        from ipledger.gateway.feed.store import FeedStore
        deliveries = Deliveries(FeedStore(directory / "dashboard.sqlite"))
        if args.hooks_cmd == "resend":
            active = [s["id"] for s in subs.active()]
            ids = deliveries.resend(args.delivery_ids, all_failed=args.all_failed,
                                    subscription_id=args.subscription, active=active)
            if args.json:
                print(json.dumps({"queued": ids}))
            elif ids:
                print(f"queued again: {len(ids)} deliver{'y' if len(ids) == 1 else 'ies'} "
                      f"({', '.join(map(str, ids))}); the gateway sends them within a second while it runs")
            else:
                print("no FAILED delivery to send again")
            return 0
        rows = deliveries.log(limit=args.limit, status=args.status)
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print(f"{'ID':>6} {'SUBSCRIPTION':<14} {'STATUS':<10} {'TRIES':>5} {'HTTP':>4} {'ALERT':<20} CREATED")
            for d in rows:
                print(f"{d['delivery_id']:>6} {d['subscription_id']:<14} {d['status']:<10} {d['attempts']:>5} "
                      f"{d['last_status'] or '-':>4} {d['alert_type'] or '':<20} {d['created_at']}")
        return 0
    except (WebhookError, CorruptFileError, ConfigError, OSError) as exc:   # OSError (a full disk …): names its file
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _report(args) -> int:
    import urllib.error
    import urllib.parse
    import urllib.request
    url = (args.url or os.environ.get("IPLEDGER_GATEWAY_URL") or "http://127.0.0.1:8080").rstrip("/")
    key = args.api_key or os.environ.get("IPLEDGER_API_KEY")
    if not key:
        print("error: an API key is needed (--api-key or IPLEDGER_API_KEY)", file=sys.stderr)
        return 2
    if args.format == "pdf" and args.output is None:
        print("error: --output FILE is required for a PDF", file=sys.stderr)
        return 2
    try:
        tls = client_tls.ClientTLSOptions.from_args(args).load(url)
    except client_tls.ClientTLSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.report_cmd == "bill-of-discharge":
        query = [("format", args.format)] + ([("period_end", args.period_end)] if args.period_end else []) + \
                ([("as_of", args.as_of)] if args.as_of else [])
        path = f"/api/v1/reports/bill-of-discharge/{urllib.parse.quote(args.authorisation_id, safe='')}"
    else:
        query = [("format", args.format), ("as_of", args.as_of)] + [("authorisation_id", a) for a in args.authorisation]
        path = "/api/v1/reports/inventory"
    request = urllib.request.Request(f"{url}{path}?{urllib.parse.urlencode(query)}",
                                     headers={"Authorization": f"Bearer {key}"})
    try:
        with tls.urlopen(request, timeout=args.timeout) as response:
            data = response.read()
    except client_tls.TLSFailure as exc:
        print(f"error: TLS: {exc}", file=sys.stderr)
        return 2
    except urllib.error.HTTPError as exc:
        try:
            problem = json.loads(exc.read())
            print(f"error: {exc.code} {problem.get('title')}: {problem.get('detail')}", file=sys.stderr)
        except ValueError:
            print(f"error: HTTP {exc.code}", file=sys.stderr)
        return 2 if exc.code in (400, 401, 403) else 1
    except OSError as exc:
        print(f"error: the gateway at {url} cannot be reached ({exc})", file=sys.stderr)
        return 3
    if args.output:
        try:
            files.write_private(args.output, data)   # a bill carries customs values: 0600
        except OSError as exc:
            print(f"error: the report ({len(data)} bytes) could not be written to {args.output}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 1
        print(f"wrote {args.output} ({len(data)} bytes)", file=sys.stderr)
    else:
        sys.stdout.write(for_terminal(data.decode("utf-8")) if sys.stdout.isatty() else data.decode("utf-8"))
    return 0


def for_terminal(text: str) -> str:
    """A report shown on a terminal: its lines, each with every control character escaped (a carriage return or an
    escape sequence in a party's text must not move the cursor or hide the figures); piped or with ``-o`` the
    bytes are written as the gateway sent them."""
    return "\n".join(printable(line) for line in text.replace("\r\n", "\n").split("\n"))
