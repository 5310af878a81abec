"""The consortium description: organisations, nodes, addresses.

One file, one model: the consortium file's types, its parsing and checks, and the
edits that write it back (``with_org``, ``without_org``, ``for_channel_members``:
each goes through ``to_dict`` and ``parse`` again, so an edit is checked as the
file is).

A consortium file (``network/consortium.yaml`` by default) is the single
source from which crypto material, the channel genesis block and every node's
configuration are generated. This module reads and validates it and assigns
ports; it knows nothing of Fabric's own file formats.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import socket
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ipledger.network.files import write_atomically

DEFAULT_FILE = Path(__file__).with_name("consortium.yaml")

_MSP_ID = re.compile(r"^[A-Za-z][A-Za-z0-9]*MSP$")
# a DNS name (the organisation's domain names its nodes and its directories: no '/', no '..')
_DOMAIN = re.compile(r"(?=.{1,253}\Z)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*")


def msp_id_ok(value: object) -> bool:
    """An MSP id as the consortium takes it: letters and digits ending in 'MSP' (names files and policies)."""
    return isinstance(value, str) and _MSP_ID.fullmatch(value) is not None


def name_ok(value: object) -> bool:
    """An organisation's or node's name as the consortium takes it (it names directories and files)."""
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def domain_ok(value: object) -> bool:
    return isinstance(value, str) and _DOMAIN.fullmatch(value) is not None


def host_ok(value: object) -> bool:
    """A node's host as the consortium takes it: a DNS name or an IPv4 address of one host — not ``0.0.0.0`` (a
    node listens on its host: bound there, every listener of it would take every interface, and it would go into
    certificates and endpoints others dial), nor a broadcast or multicast address."""
    if not (isinstance(value, str) and _HOST.fullmatch(value) is not None):
        return False
    try:   # an address in any spelling the C library reads as one ("0", "0.0", "00.0.0.0", "0x0"): the dotted quad
        packed = socket.inet_aton(value)
    except OSError:
        return True   # a name
    address = ipaddress.IPv4Address(packed)
    return str(address) == value and not (address.is_unspecified or address.is_multicast
                                          or address == ipaddress.IPv4Address("255.255.255.255"))
# fullmatch, never `$` (which matches before a final newline)
_NAME = re.compile(r"[a-z][a-z0-9-]*")
_DURATION = re.compile(r"[0-9]+(ms|s|m)")   # matched whole (fullmatch): "250ms\n" is not one
_CHANNEL = re.compile(r"[a-z][a-z0-9.-]{0,248}")
# A network namespace name as `ip netns` accepts it (kept to a safe subset).
_NETNS = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
# A node's host: a DNS name (any case) or an IPv4 address; it is written into node configurations, TLS
# certificates and command lines, so nothing else (no '/', space, shell or YAML metacharacter) gets in.
_HOST = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")


class ConsortiumError(ValueError):
    """The consortium file is invalid; the message says where and why."""


@dataclass(frozen=True)
class Node:
    """One Fabric process: a peer or an orderer."""

    kind: str  # "peer" | "orderer"
    name: str  # short name, e.g. "peer0"
    org: "Org"
    host: str
    port: int  # listen port; the others follow it
    # Test/lab feature: run the node inside this named network namespace (`ip netns exec`),
    # where ``host`` is one of the namespace's addresses. None (production): the host's own stack.
    netns: str | None = None
    # A peer's history database (Fabric's ledger.history.enableHistoryDatabase), which serves a
    # chaincode's GetHistoryForKey only. Off unless the consortium file asks for it: the contract
    # keeps its own audit trail and never calls it, and the index costs the peer one entry per key
    # written (docs/benchmarks.md, change 10: no effect on the rate the benchmark could tell apart).
    history_database: bool = False

    @property
    def id(self) -> str:
        """Unique node id used for directories and CLI arguments, e.g. ``peer0.customs``."""
        return f"{self.name}.{self.org.name}"

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.org.domain}"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # Port layout, documented in consortium.yaml.
    @property
    def chaincode_port(self) -> int:
        assert self.kind == "peer"
        return self.port + 1

    @property
    def admin_port(self) -> int:
        assert self.kind == "orderer"
        return self.port + 1

    @property
    def operations_port(self) -> int:
        return self.port + 2

    def ports(self) -> list[int]:
        return [self.port, self.port + 1, self.port + 2]


@dataclass
class Org:
    """An organisation and the nodes it runs on its own host.

    An application organisation runs peers and, in a BFT ordering service spread over the
    organisations, consenters too; an ordering organisation (``is_orderer``) runs orderers only.
    """

    msp_id: str
    name: str
    domain: str
    description: str = ""
    is_orderer: bool = False
    peers: list[Node] = field(default_factory=list)
    orderers: list[Node] = field(default_factory=list)

    @property
    def nodes(self) -> list[Node]:
        """Its peers, then its orderers."""
        return [*self.peers, *self.orderers]


# consensus in the consortium file -> Fabric's OrdererType
CONSENSUS = {"raft": "etcdraft", "bft": "BFT"}


@dataclass(frozen=True)
class Channel:
    """One channel of the consortium and the application organisations on it (customs included).

    A consortium file names either one ``channel`` shared by every organisation, or ``channels``:
    one per authorisation holder, with the holder and the representatives it mandates as members
    and customs on every one — another holder's peers never receive a block of it (docs/deployment.md,
    "A channel per holder")."""

    name: str
    members: tuple[str, ...]
    holder: str | None = None  # shares the commercial data with customs (collection 'commercial')


@dataclass
class Consortium:
    channel: str
    orderer_org: Org | None  # an organisation running orderers only (None: the members run them)
    orgs: list[Org]  # application organisations
    batch_timeout: str
    max_message_count: int
    source: Path | None = None
    consensus: str = "etcdraft"  # Fabric's OrdererType: "etcdraft" or "BFT"
    # The customs authority's MSP id: the chaincode package names it (the contract names no
    # organisation), and it is a member of every channel.
    customs: str | None = None
    # Every channel; for a file with one shared ``channel``, that one with every organisation.
    channels: list[Channel] = field(default_factory=list)
    # True when the file lists ``channels`` (one per holder): each then has its own directory.
    per_holder: bool = False

    def channel_names(self) -> list[str]:
        return [ch.name for ch in self.channels]

    def view(self, channel: str) -> "Consortium":
        """The consortium as one channel sees it: ``channel`` set and only its members as
        application organisations (so its ``peers`` are the channel's)."""
        for ch in self.channels:
            if ch.name == channel:
                members = set(ch.members)
                return dataclasses.replace(
                    self, channel=ch.name, orgs=[o for o in self.orgs if o.msp_id in members],
                    channels=[ch])
        raise ConsortiumError(f"unknown channel {channel!r}; channels are: "
                              f"{', '.join(self.channel_names())}")

    def views(self) -> list["Consortium"]:
        """One :meth:`view` per channel, in the order of the consortium file."""
        return [self.view(ch.name) for ch in self.channels]

    def channels_of(self, msp_id: str) -> list[str]:
        """The channels ``msp_id`` is a member of."""
        return [ch.name for ch in self.channels if msp_id in ch.members]

    @property
    def all_orgs(self) -> list[Org]:
        """Every organisation: the ordering-only one (if any), then the application ones."""
        return [*([self.orderer_org] if self.orderer_org else []), *self.orgs]

    @property
    def ordering_orgs(self) -> list[Org]:
        """The organisations that run orderers (the channel's /Channel/Orderer members)."""
        return [o for o in self.all_orgs if o.orderers]

    @property
    def orderers(self) -> list[Node]:
        """Every consenter, in the order of the consortium file (BFT consenter ids follow it)."""
        return [n for o in self.all_orgs for n in o.orderers]

    @property
    def peers(self) -> list[Node]:
        return [n for o in self.orgs for n in o.peers]

    @property
    def nodes(self) -> list[Node]:
        return self.orderers + self.peers

    def node(self, node_id: str) -> Node:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise ConsortiumError(
            f"unknown node {node_id!r}; nodes are: {', '.join(n.id for n in self.nodes)}"
        )

    def org(self, msp_id: str) -> Org:
        for o in self.all_orgs:
            if o.msp_id == msp_id:
                return o
        raise ConsortiumError(f"unknown organisation {msp_id!r}")


def load(path: Path | str | None = None, *, base_port: int | None = None,
         host: str | None = None) -> Consortium:
    """Read and validate a consortium file; ``base_port``/``host`` override the file."""
    path = Path(path) if path else DEFAULT_FILE
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConsortiumError(f"cannot read consortium file {path}: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise ConsortiumError(f"{path}: not valid YAML: {e}") from e
    c = parse(raw, base_port=base_port, host=host)
    c.source = path
    return c


def parse(raw: Any, *, base_port: int | None = None, host: str | None = None) -> Consortium:
    if not isinstance(raw, dict):
        raise ConsortiumError("the consortium file must be a mapping")
    if ("channel" in raw) == ("channels" in raw):
        raise ConsortiumError("name either one shared 'channel' or 'channels' (one per holder)")
    per_holder = "channels" in raw
    if per_holder:
        names = [ch.get("name") if isinstance(ch, dict) else None
                 for ch in _req(raw, "channels", list, "top level")]
    else:
        names = [_req(raw, "channel", str, "top level")]
    for name in names:
        if not isinstance(name, str) or not _CHANNEL.fullmatch(name):
            raise ConsortiumError(f"channel name {name!r} is not a valid Fabric channel name "
                                  "(lower-case letters, digits, '.', '-')")
    channel = "" if per_holder else names[0]
    default_host = host or raw.get("host", "127.0.0.1")
    port = base_port if base_port is not None else _int(raw.get("base_port", 7100), "base_port")
    step = _int(raw.get("ports_per_node", 10), "ports_per_node")
    if step < 3:
        raise ConsortiumError("ports_per_node must be at least 3")

    def next_port() -> int:
        nonlocal port
        p = port
        port += step
        return p

    o = _req(raw, "orderer", dict, "top level")
    consensus = str(o.get("consensus", "raft")).lower()
    if consensus not in CONSENSUS:
        raise ConsortiumError(f"orderer.consensus {consensus!r}: use 'raft' or 'bft'")
    orderer_org = None
    if "msp_id" in o:  # an ordering organisation of its own
        orderer_org = _org(o, "orderer", is_orderer=True)
        count = o.get("nodes", 1)
        specs = [{"name": f"orderer{i}"} for i in range(count)] if isinstance(count, int) else count
        if not isinstance(specs, list) or not specs:
            raise ConsortiumError("orderer.nodes must be a number or a list of orderers")
        for spec in specs:
            orderer_org.orderers.append(_node("orderer", spec, orderer_org, default_host,
                                              next_port))
    elif "nodes" in o:
        raise ConsortiumError("orderer.nodes needs orderer.msp_id (the organisation running "
                              "them); or list each member's consenters under its 'orderers'")

    orgs = []
    for i, item in enumerate(_req(raw, "organisations", list, "top level")):
        org = _org(item, f"organisations[{i}]")
        peers = item.get("peers") or []
        if not isinstance(peers, list):
            raise ConsortiumError(f"organisations[{i}]: 'peers' must be a list")
        if not peers:
            raise ConsortiumError(f"organisation {org.msp_id} has no peer")
        for spec in peers:
            org.peers.append(_node("peer", spec, org, default_host, next_port))
        orderers = item.get("orderers") or []
        if not isinstance(orderers, list):   # a string would be read letter by letter, a number not at all
            raise ConsortiumError(f"organisations[{i}]: 'orderers' must be a list")
        for spec in orderers:
            org.orderers.append(_node("orderer", spec, org, default_host, next_port))
        orgs.append(org)

    batch_timeout = str(o.get("batch_timeout", "250ms"))
    if not _DURATION.fullmatch(batch_timeout):
        raise ConsortiumError(f"orderer.batch_timeout {batch_timeout!r}: use e.g. 250ms or 2s")
    max_message_count = _int(o.get("max_message_count", 500), "orderer.max_message_count")
    if max_message_count < 1:
        raise ConsortiumError("orderer.max_message_count must be at least 1 (transactions in a block)")
    c = Consortium(channel, orderer_org, orgs, batch_timeout, max_message_count,
                   consensus=CONSENSUS[consensus], customs=_customs(raw, orgs), per_holder=per_holder)
    c.channels = (_channels(raw, c) if per_holder else
                  [Channel(channel, tuple(o.msp_id for o in orgs), _member(raw, "holder", orgs))])
    if c.customs and c.channels[0].holder == c.customs and not per_holder:
        # customs AND the holder govern the channel (founding.governance_rule): both customs, customs alone would
        raise ConsortiumError(f"top level: holder {c.customs} is the customs authority; the holder is the "
                              "authorisation holder, another organisation (customs and it change the channel)")
    _check_consenters(c)
    _check_unique(c)
    return c


def _member(raw: dict, key: str, orgs: list[Org], where: str = "top level") -> str | None:
    value = raw.get(key)
    if value is not None and (not isinstance(value, str) or value not in [o.msp_id for o in orgs]):
        raise ConsortiumError(f"{where}: {key} {value!r} must be the MSP id of one of the "
                              "organisations")
    return value


def _customs(raw: dict, orgs: list[Org]) -> str | None:
    return _member(raw, "customs", orgs)


def _channels(raw: dict, c: Consortium) -> list[Channel]:
    """``channels``: each with its members; customs on every one, every member on one at least,
    and no organisation running consenters unless it is on every channel (an orderer stores every
    block of each channel it serves)."""
    if not c.customs:
        raise ConsortiumError("'channels' needs 'customs: <MSP id>' (customs is on every channel)")
    app = [o.msp_id for o in c.orgs]
    out, seen = [], set()
    for i, item in enumerate(raw["channels"]):
        where = f"channels[{i}] ({item['name']})"
        holder = _member(item, "holder", c.orgs, where)
        reps = item.get("representatives") or []
        if not holder or holder == c.customs:
            raise ConsortiumError(f"{where}: 'holder' must name the authorisation holder's MSP id")
        if not isinstance(reps, list):
            raise ConsortiumError(f"{where}: 'representatives' must list MSP ids")
        for m in reps:
            if m not in app or m in (c.customs, holder):
                raise ConsortiumError(f"{where}: representative {m!r} must be one of the other "
                                      f"organisations ({', '.join(app)})")
        if item["name"] in seen:
            raise ConsortiumError(f"channel {item['name']} declared twice")
        seen.add(item["name"])
        wanted = {c.customs, holder, *reps}  # members in the order of the organisations
        out.append(Channel(item["name"], tuple(m for m in app if m in wanted), holder))
    for o in c.orgs:
        on = [ch.name for ch in out if o.msp_id in ch.members]
        held = [ch.name for ch in out if ch.holder == o.msp_id]
        if held and len(on) > 1:
            raise ConsortiumError(f"{o.msp_id} holds channel {held[0]} and may be on no other: its peer "
                                  f"would receive every block of {', '.join(n for n in on if n not in held)}")
        if not on:
            raise ConsortiumError(f"{o.msp_id} is on no channel: add it to the 'members' of its "
                                  "holder's channel")
        if o.orderers and len(on) < len(out):
            raise ConsortiumError(f"{o.msp_id} runs consenters but is not on every channel: its "
                                  "orderers would receive the blocks of holders it must not see; "
                                  "let customs or an ordering organisation run the orderers")
    return out


def _check_consenters(c: Consortium) -> None:
    """Raft needs an odd cluster; BFT tolerates f faulty consenters out of 3f+1."""
    n = len(c.orderers)
    if n == 0:
        raise ConsortiumError("no orderer: name orderer.msp_id and orderer.nodes (Raft), or list "
                              "each member's consenters under its 'orderers' (BFT)")
    members = [o.msp_id for o in c.orgs if o.orderers]
    if c.consensus == "etcdraft" and members:
        # Raft blocks are valid with any one signature of an ordering organisation's members: only
        # an organisation running nothing but orderers may hold Raft consenters.
        raise ConsortiumError(f"{', '.join(members)} list orderers, but Raft consenters are run by "
                              "the ordering organisation (orderer.msp_id); to spread the ordering "
                              "over the members use 'consensus: bft'")
    if c.consensus == "etcdraft" and n not in (1, 3, 5, 7):
        raise ConsortiumError(f"{n} orderer(s): Raft needs 1, 3, 5 or 7 (an odd cluster)")
    if c.consensus == "BFT" and n < 4:
        raise ConsortiumError(f"{n} consenter(s): BFT needs at least 4 (3f+1 tolerate f faulty; "
                              "e.g. customs runs two, the operator and the broker one each)")
    if c.consensus == "BFT":
        f = (n - 1) // 3
        quorum = (n + f + 2) // 2   # founding.bft_quorum: the signatures a block needs
        # customs may (as an ordering organisation signs every Raft block alone); a holder or representative
        # holding a quorum would order — reorder, delay, leave out — customs' own transactions by itself
        for o in c.orgs:
            if len(o.orderers) >= quorum and o.msp_id != c.customs:
                raise ConsortiumError(f"{o.msp_id} runs {len(o.orderers)} of the {n} consenters, a quorum "
                                      f"({quorum}) alone: it would order and sign every block by itself; "
                                      "spread the consenters so that no member but customs holds a quorum")


def _int(value: Any, what: str) -> int:
    """A whole number from the consortium file (YAML may give it as a number or a string of digits)."""
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isascii()
                                                                   and value.isdigit())):
        raise ConsortiumError(f"{what} must be a whole number, not {str(value)[:40]!r}")
    return int(value)


def _req(d: dict, key: str, typ: type, where: str):
    if key not in d:
        raise ConsortiumError(f"{where}: missing '{key}'")
    if not isinstance(d[key], typ):
        raise ConsortiumError(f"{where}: '{key}' must be a {typ.__name__}")
    return d[key]


def _org(d: Any, where: str, is_orderer: bool = False) -> Org:
    if not isinstance(d, dict):
        raise ConsortiumError(f"{where}: must be a mapping")
    msp_id = _req(d, "msp_id", str, where)
    if not msp_id_ok(msp_id):
        raise ConsortiumError(f"{where}: msp_id {msp_id!r} must look like 'CustomsMSP'")
    name = d.get("name") or msp_id[:-3].lower()
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConsortiumError(f"{where}: name {name!r} must be lower-case letters, digits, '-'")
    if name == "consortium":  # the state directory's public part (network/layout.py)
        raise ConsortiumError(f"{where}: 'consortium' is reserved; choose another name")
    domain = d.get("domain") or f"{name}.ipledger.example"
    if not domain_ok(domain):
        raise ConsortiumError(f"{where}: domain {str(domain)[:80]!r} must be a DNS name (lower-case letters, "
                              "digits, '-' and '.')")
    return Org(msp_id, name, domain, d.get("description", ""), is_orderer)


def _node(kind: str, spec: Any, org: Org, default_host: str, next_port) -> Node:
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or not _NAME.fullmatch(str(spec.get("name", ""))):
        raise ConsortiumError(f"{org.msp_id}: every {kind} needs a name like 'peer0'")
    port = _int(spec["port"], f"{spec.get('name', 'a node')}'s port") if "port" in spec else next_port()
    if not 1024 <= port <= 65533:
        raise ConsortiumError(f"{org.msp_id} {spec['name']}: port {port} out of range")
    netns = spec.get("netns")
    if netns is not None and not (isinstance(netns, str) and _NETNS.fullmatch(netns)):
        raise ConsortiumError(f"{org.msp_id} {spec['name']}: netns {netns!r} is not a network "
                              "namespace name (letters, digits, '.', '_', '-'; at most 63)")
    history = spec.get("history_database", False)
    if not isinstance(history, bool):
        raise ConsortiumError(f"{org.msp_id} {spec['name']}: history_database must be true or false, "
                              f"not {history!r}")
    if "history_database" in spec and kind != "peer":
        raise ConsortiumError(f"{org.msp_id} {spec['name']}: history_database is a peer's setting; an "
                              "orderer keeps no state database")
    host = spec.get("host", default_host)
    if not host_ok(host):
        raise ConsortiumError(f"{org.msp_id} {spec['name']}: host {str(host)[:80]!r} must be a DNS name or an "
                              "IPv4 address of one host (letters, digits, '-' and '.'; not 0.0.0.0: a node listens "
                              "on its own address)")
    return Node(kind, spec["name"], org, host, port, netns, history)


def _check_unique(c: Consortium) -> None:
    seen_msp, seen_ids, seen_ports, host_netns = set(), set(), {}, {}
    names: dict[str, str] = {}
    domains: dict[str, str] = {}
    for org in c.all_orgs:
        if org.msp_id in seen_msp:
            raise ConsortiumError(f"organisation {org.msp_id} declared twice")
        seen_msp.add(org.msp_id)
        # the name is the organisation's own directory, the domain its CAs' and nodes' names
        for what, value, seen in (("name", org.name, names), ("domain", org.domain, domains)):
            if value in seen:
                shown = repr(value) if what == "name" else value
                raise ConsortiumError(f"{what} {shown} used by both {seen[value]} and {org.msp_id}: each "
                                      f"organisation needs its own {what}")
            seen[value] = org.msp_id
    for n in c.nodes:
        if n.id in seen_ids:
            raise ConsortiumError(f"node {n.id} declared twice")
        seen_ids.add(n.id)
        for p in n.ports():
            other = seen_ports.get((n.host, p))
            if other:
                raise ConsortiumError(f"port {n.host}:{p} used by both {other} and {n.id}")
            seen_ports[(n.host, p)] = n.id
        # An address belongs to one network stack: nodes sharing a host share its namespace.
        first = host_netns.setdefault(n.host, n)
        if first.netns != n.netns:
            raise ConsortiumError(f"{first.id} and {n.id} share host {n.host} but not its network "
                                  f"namespace ({first.netns or 'none'} / {n.netns or 'none'})")


def to_dict(c: Consortium) -> dict:
    """The resolved description, every node with its host and port spelled out.

    Saved in the state directory so later commands use the ports chosen at
    generation time whatever overrides they are given.
    """
    def nodes(ns: list[Node]) -> list[dict]:
        return [{"name": n.name, "host": n.host, "port": n.port,
                 **({"netns": n.netns} if n.netns else {}),
                 **({"history_database": True} if n.history_database else {})} for n in ns]

    o = c.orderer_org
    consensus = {v: k for k, v in CONSENSUS.items()}[c.consensus]
    orderer = {"consensus": consensus}
    if o:
        orderer.update({"msp_id": o.msp_id, "name": o.name, "domain": o.domain,
                        "description": o.description, "nodes": nodes(o.orderers)})
    orderer.update({"batch_timeout": c.batch_timeout, "max_message_count": c.max_message_count})
    if c.per_holder:
        channels = {"channels": [{"name": ch.name, "holder": ch.holder,
                                  "representatives": [m for m in ch.members
                                                      if m not in (c.customs, ch.holder)]}
                                 for ch in c.channels]}
    else:
        holder = c.channels[0].holder if c.channels else None
        channels = {"channel": c.channel, **({"holder": holder} if holder else {})}
    return {
        **channels,
        **({"customs": c.customs} if c.customs else {}),
        "orderer": orderer,
        "organisations": [{"msp_id": org.msp_id, "name": org.name, "domain": org.domain,
                           "description": org.description, "peers": nodes(org.peers),
                           **({"orderers": nodes(org.orderers)} if org.orderers else {})}
                          for org in c.orgs],
    }


# ----------------------------------------------------------------------------- edits

def with_org(c: Consortium, msp_id: str, name: str | None = None, description: str = "",
             domain: str | None = None, peers: int = 1, ports_per_node: int = 10,
             channels: list[str] | None = None, holder_of: str | None = None) -> Consortium:
    """A copy of ``c`` with one more application organisation: with a channel per holder, a
    representative on ``channels``, or the holder of a new channel ``holder_of``.

    Its peers (``peer0``…) listen on the host (and in the network namespace, if
    any) of the existing peers, on the next port blocks after the highest port
    in use. The result is validated like a file read from disk (names, MSP id,
    unique ports).
    """
    if holder_of is not None:
        if not c.per_holder:
            raise ConsortiumError("a holder with a channel of its own needs a consortium with a "
                                  "channel per holder ('channels')")
        if holder_of in c.channel_names():
            raise ConsortiumError(f"channel {holder_of} exists already")
    if any(o.msp_id == msp_id for o in c.all_orgs):
        raise ConsortiumError(f"organisation {msp_id} is already in the consortium")
    if peers < 1:
        raise ConsortiumError("an organisation needs at least one peer")
    raw = to_dict(c)
    first = (c.peers or c.orderers)[0]
    host, netns = first.host, first.netns
    port = max(n.port for n in c.nodes) + ports_per_node
    entry: dict = {"msp_id": msp_id}
    if name:
        entry["name"] = name
    if domain:
        entry["domain"] = domain
    entry["description"] = description
    entry["peers"] = [{"name": f"peer{i}", "host": host, "port": port + i * ports_per_node,
                       **({"netns": netns} if netns else {})}
                      for i in range(peers)]
    raw["organisations"].append(entry)
    if holder_of is not None:
        raw["channels"].append({"name": holder_of, "holder": msp_id, "representatives": []})
    elif c.per_holder:
        unknown = sorted(set(channels or []) - set(c.channel_names()))
        if not channels or unknown:
            raise ConsortiumError(f"name the channel(s) {msp_id} joins, among: "
                                  f"{', '.join(c.channel_names())}"
                                  + (f" ({', '.join(unknown)} unknown)" if unknown else ""))
        for ch in raw["channels"]:
            if ch["name"] in channels:
                ch["representatives"].append(msp_id)
    out = parse(raw)
    out.source = c.source
    return out


def without_org(c: Consortium, msp_id: str) -> Consortium:
    """A copy of ``c`` without the application organisation ``msp_id``."""
    if c.orderer_org and msp_id == c.orderer_org.msp_id:
        raise ConsortiumError(f"{msp_id} is the orderer organisation; it cannot be removed")
    if not any(o.msp_id == msp_id for o in c.orgs):
        raise ConsortiumError(f"organisation {msp_id} is not in the consortium")
    if c.org(msp_id).orderers:
        raise ConsortiumError(f"{msp_id} runs consenters of the ordering service "
                              f"({', '.join(n.id for n in c.org(msp_id).orderers)}); removing it "
                              "needs a change of consenters first")
    if msp_id == c.customs:
        raise ConsortiumError(f"{msp_id} is the customs authority; it cannot be removed")
    raw = to_dict(c)
    raw["organisations"] = [o for o in raw["organisations"] if o["msp_id"] != msp_id]
    for ch in raw.get("channels", []):
        if ch["holder"] == msp_id:
            raise ConsortiumError(f"{msp_id} holds channel {ch['name']}; remove the channel from "
                                  "the consortium file instead")
        ch["representatives"] = [m for m in ch["representatives"] if m != msp_id]
    if raw.get("holder") == msp_id:
        raw.pop("holder")
    if not raw["organisations"]:
        raise ConsortiumError("the consortium would have no application organisation left")
    out = parse(raw)
    out.source = c.source
    return out


def for_channel_members(c: Consortium, channel: str) -> Consortium:
    """What the members of ``channel`` are given of the consortium: that channel and its members (and
    the ordering organisation) only — not another holder, its hosts or its channel."""
    view = c.view(channel)
    raw = to_dict(c)
    members = {o.msp_id for o in view.orgs}
    raw["organisations"] = [o for o in raw["organisations"] if o["msp_id"] in members]
    if c.per_holder:
        raw["channels"] = [ch for ch in raw["channels"] if ch["name"] == channel]
    out = parse(raw)
    out.source = c.source
    return out


def save(c: Consortium, path: Path | str) -> None:
    """Write the resolved description (``to_dict``) to ``path`` (whole, never through a link found there)."""
    write_atomically(Path(path), yaml.safe_dump(to_dict(c), sort_keys=False, default_flow_style=False).encode())
