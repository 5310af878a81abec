"""Channel configuration trees: decode, diff, compute and apply config updates.

One file, one model: every function below walks the same ``ConfigGroup`` tree
by the same paths and keys (see ``flatten``), so the diff, the apply, the
policies needed and the summary agree on what an element is.

Pure protobuf code (no Fabric binaries, no network), so every piece here is
unit-tested on its own:

- ``config_from_block``: the ``common.Config`` inside a config block;
- ``compute_update``: original + updated config → ``common.ConfigUpdate``
  (a port of Fabric's ``configtxlator compute_update``: read set = versions the
  update depends on, write set = new content with bumped versions);
- ``apply_update``: config + update → the config the orderer will produce
  (Fabric's ``configtx`` validator: delta set = write-set items whose version
  differs from the read set, overlaid on the current config);
- ``check_update``: the orderer's version checks (stale read set, bad versions);
- ``required_policies``: which policy each changed element's ``mod_policy``
  names (groups: relative to themselves; values and policies: relative to their
  group);
- ``summarize``: a human-readable list of what changes between two configs.

Paths are tuples of group names from the root, e.g. ``("Channel",
"Application", "AuditMSP")``; ``show`` spells them like Fabric: ``/Channel/...``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fabric_protos.common import common_pb2, configtx_pb2, policies_pb2
from fabric_protos.msp import msp_config_pb2
from fabric_protos.peer import configuration_pb2 as peer_config_pb2

ROOT = "Channel"
APPLICATION = "Application"
ORDERER = "Orderer"

Path_ = tuple[str, ...]
Key = tuple[str, Path_]  # (kind, full path): kind is "group" | "value" | "policy"


class ConfigError(ValueError):
    """A block, config or update is not what it should be."""


def show(path: Path_) -> str:
    return "/" + "/".join(path)


# ----------------------------------------------------------------------------- decoding

def config_from_block(block_bytes: bytes) -> tuple[configtx_pb2.Config, int]:
    """The channel config inside a config block, and the block's number."""
    block = common_pb2.Block()
    block.ParseFromString(block_bytes)
    if not block.data.data:
        raise ConfigError("the block holds no transaction")
    env = common_pb2.Envelope()
    env.ParseFromString(block.data.data[0])
    payload = common_pb2.Payload()
    payload.ParseFromString(env.payload)
    header = common_pb2.ChannelHeader()
    header.ParseFromString(payload.header.channel_header)
    if header.type != common_pb2.CONFIG:
        raise ConfigError(f"block {block.header.number} is not a config block "
                          f"(transaction type {header.type})")
    cenv = configtx_pb2.ConfigEnvelope()
    cenv.ParseFromString(payload.data)
    return cenv.config, block.header.number


def channel_of_block(block_bytes: bytes) -> str:
    block = common_pb2.Block()
    block.ParseFromString(block_bytes)
    env = common_pb2.Envelope()
    env.ParseFromString(block.data.data[0])
    payload = common_pb2.Payload()
    payload.ParseFromString(env.payload)
    header = common_pb2.ChannelHeader()
    header.ParseFromString(payload.header.channel_header)
    return header.channel_id


def group_at(config: configtx_pb2.Config, path: Path_) -> configtx_pb2.ConfigGroup | None:
    if not path or path[0] != ROOT:
        return None
    g = config.channel_group
    for name in path[1:]:
        if name not in g.groups:
            return None
        g = g.groups[name]
    return g


def application_orgs(config: configtx_pb2.Config) -> dict[str, configtx_pb2.ConfigGroup]:
    """Application organisations by group name (= MSP id in ipledger's channels)."""
    app = config.channel_group.groups.get(APPLICATION)
    return dict(app.groups) if app is not None else {}


def orderer_orgs(config: configtx_pb2.Config) -> dict[str, configtx_pb2.ConfigGroup]:
    o = config.channel_group.groups.get(ORDERER)
    return dict(o.groups) if o is not None else {}


def msp_of(group: configtx_pb2.ConfigGroup) -> msp_config_pb2.FabricMSPConfig | None:
    """The org group's Fabric MSP definition (None if it has none)."""
    if "MSP" not in group.values:
        return None
    mc = msp_config_pb2.MSPConfig()
    mc.ParseFromString(group.values["MSP"].value)
    if mc.type != 0:  # FABRIC
        return None
    fc = msp_config_pb2.FabricMSPConfig()
    fc.ParseFromString(mc.config)
    return fc


def msp_configs(config: configtx_pb2.Config) -> dict[str, msp_config_pb2.FabricMSPConfig]:
    """Every MSP the channel knows (application and orderer orgs), by MSP id."""
    out = {}
    for group in [*application_orgs(config).values(), *orderer_orgs(config).values()]:
        fc = msp_of(group)
        if fc is not None:
            out[fc.name] = fc
    return out


def anchor_peers(group: configtx_pb2.ConfigGroup) -> list[str]:
    if "AnchorPeers" not in group.values:
        return []
    ap = peer_config_pb2.AnchorPeers()
    ap.ParseFromString(group.values["AnchorPeers"].value)
    return [f"{a.host}:{a.port}" for a in ap.anchor_peers]


def anchor_peers_value(addresses: list[str]) -> bytes:
    ap = peer_config_pb2.AnchorPeers()
    for address in addresses:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"anchor peer {address!r}: use host:port")
        ap.anchor_peers.add(host=host, port=int(port))
    return ap.SerializeToString()


def orderer_endpoints(group: configtx_pb2.ConfigGroup) -> list[str]:
    if "Endpoints" not in group.values:
        return []
    from fabric_protos.common import configuration_pb2 as common_config_pb2
    ep = common_config_pb2.OrdererAddresses()
    ep.ParseFromString(group.values["Endpoints"].value)
    return list(ep.addresses)


# ----------------------------------------------------------------------------- flattening

def flatten(group: configtx_pb2.ConfigGroup, path: Path_ = (ROOT,)) -> dict[Key, object]:
    """Every element of a config tree by (kind, full path)."""
    out: dict[Key, object] = {("group", path): group}
    for name, v in group.values.items():
        out[("value", path + (name,))] = v
    for name, p in group.policies.items():
        out[("policy", path + (name,))] = p
    for name, g in group.groups.items():
        out.update(flatten(g, path + (name,)))
    return out


def describe_key(key: Key) -> str:
    kind, path = key
    return f"[{kind.capitalize()}] {show(path)}"


# ----------------------------------------------------------------------------- compute

def _items_update(original, updated, message, field):
    """Read/write sets for a map of ConfigPolicy or ConfigValue (``field``: their payload).

    Unchanged items go to ``same`` (version only); changed ones to ``write`` with the
    version bumped; added ones to ``write`` at version 0. ``members`` is True when an
    item was added or removed (the group's own version must then move).
    """
    read, write, same, members = {}, {}, {}, False
    for name, old in original.items():
        if name not in updated:
            members = True
            continue
        new = updated[name]
        if old.mod_policy == new.mod_policy and getattr(old, field) == getattr(new, field):
            same[name] = message(version=old.version)
            continue
        write[name] = message(version=old.version + 1, mod_policy=new.mod_policy,
                              **{field: getattr(new, field)})
    for name, new in updated.items():
        if name not in original:
            members = True
            write[name] = message(version=0, mod_policy=new.mod_policy,
                                  **{field: getattr(new, field)})
    return read, write, same, members


def _policies_update(original, updated):
    return _items_update(original, updated, configtx_pb2.ConfigPolicy, "policy")


def _values_update(original, updated):
    return _items_update(original, updated, configtx_pb2.ConfigValue, "value")


def _groups_update(original, updated):
    read, write, same, members = {}, {}, {}, False
    for name, og in original.items():
        if name not in updated:
            members = True
            continue
        g_read, g_write, changed = _group_update(og, updated[name])
        if not changed:
            same[name] = g_read
            continue
        read[name] = g_read
        write[name] = g_write
    for name, ug in updated.items():
        if name in original:
            continue
        members = True
        _, g_write, _ = _group_update(configtx_pb2.ConfigGroup(), ug)
        new = configtx_pb2.ConfigGroup(version=0, mod_policy=ug.mod_policy)
        _fill(new, g_write.policies, g_write.values, g_write.groups)
        write[name] = new
    return read, write, same, members


def _fill(group, policies, values, groups):
    for k, v in policies.items():
        group.policies[k].CopyFrom(v)
    for k, v in values.items():
        group.values[k].CopyFrom(v)
    for k, v in groups.items():
        group.groups[k].CopyFrom(v)


def _group_update(original: configtx_pb2.ConfigGroup, updated: configtx_pb2.ConfigGroup):
    """(read set, write set, changed) for one group, as Fabric's computeGroupUpdate."""
    rp, wp, sp, pm = _policies_update(original.policies, updated.policies)
    rv, wv, sv, vm = _values_update(original.values, updated.values)
    rg, wg, sg, gm = _groups_update(original.groups, updated.groups)
    if not (pm or vm or gm or original.mod_policy != updated.mod_policy):
        if not (rp or wp or rv or wv or rg or wg):
            return (configtx_pb2.ConfigGroup(version=original.version),
                    configtx_pb2.ConfigGroup(version=original.version), False)
        read = configtx_pb2.ConfigGroup(version=original.version)
        write = configtx_pb2.ConfigGroup(version=original.version)
        _fill(read, rp, rv, rg)
        _fill(write, wp, wv, wg)
        return read, write, True
    for same, r, w in ((sp, rp, wp), (sv, rv, wv), (sg, rg, wg)):
        for k, v in same.items():
            r[k] = v
            w[k] = v
    read = configtx_pb2.ConfigGroup(version=original.version)
    write = configtx_pb2.ConfigGroup(version=original.version + 1, mod_policy=updated.mod_policy)
    _fill(read, rp, rv, rg)
    _fill(write, wp, wv, wg)
    return read, write, True


def compute_update(original: configtx_pb2.Config, updated: configtx_pb2.Config,
                   channel: str) -> configtx_pb2.ConfigUpdate:
    """The config update that turns ``original`` into ``updated`` (configtxlator's rules)."""
    read, write, changed = _group_update(original.channel_group, updated.channel_group)
    if not changed:
        raise ConfigError("no differences between the current and the proposed configuration")
    return configtx_pb2.ConfigUpdate(channel_id=channel, read_set=read, write_set=write)


# ----------------------------------------------------------------------------- apply

def delta_set(update: configtx_pb2.ConfigUpdate) -> dict[Key, object]:
    """Write-set elements that really change something (version differs from the read set)."""
    read = flatten(update.read_set)
    return {k: v for k, v in flatten(update.write_set).items()
            if k not in read or read[k].version != v.version}


def check_update(config: configtx_pb2.Config, update: configtx_pb2.ConfigUpdate) -> list[str]:
    """What the orderer would refuse on versions alone (empty list: nothing)."""
    current = flatten(config.channel_group)
    problems = []
    for key, item in flatten(update.read_set).items():
        if key not in current:
            problems.append(f"{describe_key(key)} is read by the update but is not in the config")
        elif current[key].version != item.version:
            problems.append(f"{describe_key(key)} is at version {current[key].version}, the update "
                            f"was computed against version {item.version} (stale update)")
    delta = delta_set(update)
    if not delta:
        problems.append("the update changes nothing")
    for key, item in delta.items():
        if not item.mod_policy:
            problems.append(f"{describe_key(key)} has no mod_policy")
        if key in current:
            if item.version != current[key].version + 1:
                problems.append(f"{describe_key(key)} set to version {item.version}, but it is at "
                                f"version {current[key].version}")
        elif item.version != 0:
            problems.append(f"{describe_key(key)} is new and must have version 0, not {item.version}")
    return problems


def apply_update(config: configtx_pb2.Config,
                 update: configtx_pb2.ConfigUpdate) -> configtx_pb2.Config:
    """The configuration the orderer derives from ``config`` and ``update``."""
    current = flatten(config.channel_group)
    delta = delta_set(update)

    def element(key: Key):
        if key in delta:
            return delta[key]
        if key in current:
            return current[key]
        raise ConfigError(f"the update names {describe_key(key)}, which is neither in the "
                          "configuration nor new")

    def build(path: Path_) -> configtx_pb2.ConfigGroup:
        src = element(("group", path))
        out = configtx_pb2.ConfigGroup(version=src.version, mod_policy=src.mod_policy)
        for name in src.values:
            out.values[name].CopyFrom(element(("value", path + (name,))))
        for name in src.policies:
            out.policies[name].CopyFrom(element(("policy", path + (name,))))
        for name in src.groups:
            out.groups[name].CopyFrom(build(path + (name,)))
        return out

    result = configtx_pb2.Config()
    result.CopyFrom(config)
    result.channel_group.CopyFrom(build((ROOT,)))
    result.sequence = config.sequence + 1
    return result


# ----------------------------------------------------------------------------- policies needed

def mod_policy_path(key: Key, mod_policy: str) -> Path_:
    """Absolute path of the policy an element's ``mod_policy`` names (Fabric's policyForItem)."""
    if mod_policy.startswith("/"):
        return tuple(p for p in mod_policy.split("/") if p)
    kind, path = key
    group = path if kind == "group" else path[:-1]
    return group + tuple(p for p in mod_policy.split("/") if p)


@dataclass(frozen=True)
class Requirement:
    policy: Path_          # absolute policy path, e.g. ("Channel", "Application", "Admins")
    elements: tuple[str, ...]  # the changed elements that need it


def required_policies(config: configtx_pb2.Config,
                      update: configtx_pb2.ConfigUpdate) -> list[Requirement]:
    """The policies the update's signatures must satisfy, one per distinct path.

    Only changed elements that exist already are checked (new ones are covered by
    their parent group, whose version the same update bumps).
    """
    current = flatten(config.channel_group)
    needed: dict[Path_, list[str]] = {}
    for key in sorted(delta_set(update)):
        if key not in current:
            continue
        path = mod_policy_path(key, current[key].mod_policy)
        needed.setdefault(path, []).append(describe_key(key))
    return [Requirement(p, tuple(e)) for p, e in needed.items()]


def policy_at(config: configtx_pb2.Config, path: Path_) -> configtx_pb2.ConfigPolicy | None:
    group = group_at(config, path[:-1])
    if group is None or path[-1] not in group.policies:
        return None
    return group.policies[path[-1]]


# ----------------------------------------------------------------------------- summary

def cert_summary(pem: bytes) -> str:
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return "(unreadable certificate)"
    fp = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()
    return f"{cert.subject.rfc4514_string()} (SHA-256 {fp[:16]}…)"


def describe_msp(fc: msp_config_pb2.FabricMSPConfig) -> list[str]:
    lines = [f"MSP id {fc.name}"]
    lines += [f"root CA {cert_summary(c)}" for c in fc.root_certs]
    lines += [f"intermediate CA {cert_summary(c)}" for c in fc.intermediate_certs]
    lines += [f"TLS root CA {cert_summary(c)}" for c in fc.tls_root_certs]
    ous = fc.fabric_node_ous
    if ous.enable:
        lines.append("NodeOUs: " + ", ".join(
            f"{role}={getattr(ous, f'{role}_ou_identifier').organizational_unit_identifier}"
            for role in ("admin", "client", "peer", "orderer")
            if getattr(ous, f"{role}_ou_identifier").organizational_unit_identifier))
    else:
        lines.append("NodeOUs: off")
    if fc.admins:
        lines += [f"explicit admin {cert_summary(c)}" for c in fc.admins]
    return lines


def describe_value(name: str, value: configtx_pb2.ConfigValue) -> str:
    if name == "AnchorPeers":
        g = configtx_pb2.ConfigGroup()
        g.values["AnchorPeers"].CopyFrom(value)
        peers = anchor_peers(g)
        return ", ".join(peers) if peers else "(none)"
    if name == "Endpoints":
        g = configtx_pb2.ConfigGroup()
        g.values["Endpoints"].CopyFrom(value)
        return ", ".join(orderer_endpoints(g)) or "(none)"
    if name == "MSP":
        g = configtx_pb2.ConfigGroup()
        g.values["MSP"].CopyFrom(value)
        fc = msp_of(g)
        return "; ".join(describe_msp(fc)) if fc else "(non-Fabric MSP)"
    return f"{len(value.value)} bytes, sha256 {hashlib.sha256(value.value).hexdigest()[:12]}"


def _render(policy: configtx_pb2.ConfigPolicy) -> str:
    from ipledger.network.fabric.config_policy import render_policy
    return render_policy(policy.policy)


def _org_lines(group: configtx_pb2.ConfigGroup) -> list[str]:
    lines = []
    fc = msp_of(group)
    if fc is not None:
        lines += describe_msp(fc)
    for name in sorted(group.policies):
        lines.append(f"policy {name}: {_render(group.policies[name])}")
    if "AnchorPeers" in group.values:
        lines.append(f"anchor peers: {describe_value('AnchorPeers', group.values['AnchorPeers'])}")
    if "Endpoints" in group.values:
        lines.append(f"orderer endpoints: {describe_value('Endpoints', group.values['Endpoints'])}")
    return lines


def summarize(before: configtx_pb2.Config, after: configtx_pb2.Config) -> list[str]:
    """What changes from ``before`` to ``after``, one line per change (details indented)."""
    lines: list[str] = []
    org_parents = {(ROOT, APPLICATION): "application", (ROOT, ORDERER): "orderer"}
    b, a = flatten(before.channel_group), flatten(after.channel_group)
    skip: set[Path_] = set()  # subtrees reported as a whole (added/removed orgs)

    for parent, label in org_parents.items():
        bg, ag = group_at(before, parent), group_at(after, parent)
        borgs = set(bg.groups) if bg is not None else set()
        aorgs = set(ag.groups) if ag is not None else set()
        for name in sorted(aorgs - borgs):
            skip.add(parent + (name,))
            lines.append(f"add {label} organisation {name}")
            lines += [f"    {line}" for line in _org_lines(ag.groups[name])]
        for name in sorted(borgs - aorgs):
            skip.add(parent + (name,))
            lines.append(f"remove {label} organisation {name} (its admins, nodes and clients "
                         "lose access to the channel)")

    def skipped(path: Path_) -> bool:
        return any(path[:len(s)] == s for s in skip)

    for key in sorted(set(b) | set(a), key=lambda k: (k[1], k[0])):
        kind, path = key
        if skipped(path if kind == "group" else path[:-1]) or skipped(path):
            continue
        old, new = b.get(key), a.get(key)
        where = show(path)
        if kind == "group":
            if old is None:
                lines.append(f"add group {where}")
            elif new is None:
                lines.append(f"remove group {where}")
            elif old.mod_policy != new.mod_policy:
                lines.append(f"mod_policy of group {where}: {old.mod_policy} → {new.mod_policy}")
            continue
        if kind == "value":
            name = path[-1]
            if old is None:
                lines.append(f"set {name} of {show(path[:-1])}: {describe_value(name, new)}")
            elif new is None:
                lines.append(f"remove {name} of {show(path[:-1])} (was {describe_value(name, old)})")
            elif old.value != new.value:
                lines.append(f"{name} of {show(path[:-1])}: {describe_value(name, old)} → "
                             f"{describe_value(name, new)}")
        else:
            if old is None:
                lines.append(f"add policy {where}: {_render(new)}")
            elif new is None:
                lines.append(f"remove policy {where} (was {_render(old)})")
            elif old.policy != new.policy:
                lines.append(f"policy {where}: {_render(old)} → {_render(new)}")
        if old is not None and new is not None and old.mod_policy != new.mod_policy:
            lines.append(f"mod_policy of {kind} {where}: {old.mod_policy} → {new.mod_policy}")
    return lines


# ----------------------------------------------------------------------------- envelopes

def update_envelope(update: configtx_pb2.ConfigUpdate) -> common_pb2.Envelope:
    """An unsigned CONFIG_UPDATE envelope (what ``peer channel update -f`` reads)."""
    header = common_pb2.ChannelHeader(type=common_pb2.CONFIG_UPDATE, channel_id=update.channel_id)
    cue = configtx_pb2.ConfigUpdateEnvelope(config_update=update.SerializeToString())
    payload = common_pb2.Payload(
        header=common_pb2.Header(channel_header=header.SerializeToString()),
        data=cue.SerializeToString())
    return common_pb2.Envelope(payload=payload.SerializeToString())


def read_envelope(data: bytes) -> tuple[common_pb2.Envelope, configtx_pb2.ConfigUpdateEnvelope,
                                         configtx_pb2.ConfigUpdate]:
    env = common_pb2.Envelope()
    env.ParseFromString(data)
    payload = common_pb2.Payload()
    payload.ParseFromString(env.payload)
    header = common_pb2.ChannelHeader()
    header.ParseFromString(payload.header.channel_header)
    if header.type != common_pb2.CONFIG_UPDATE:
        raise ConfigError(f"not a config update envelope (type {header.type})")
    cue = configtx_pb2.ConfigUpdateEnvelope()
    cue.ParseFromString(payload.data)
    update = configtx_pb2.ConfigUpdate()
    update.ParseFromString(cue.config_update)
    if update.channel_id != header.channel_id:
        raise ConfigError(f"envelope for channel {header.channel_id!r} holds an update for "
                          f"{update.channel_id!r}")
    return env, cue, update


def with_update_envelope(env: common_pb2.Envelope,
                         cue: configtx_pb2.ConfigUpdateEnvelope) -> common_pb2.Envelope:
    """``env`` with its ConfigUpdateEnvelope replaced (e.g. one more signature)."""
    payload = common_pb2.Payload()
    payload.ParseFromString(env.payload)
    payload.data = cue.SerializeToString()
    return common_pb2.Envelope(payload=payload.SerializeToString())


def set_policy(config: configtx_pb2.Config, path: Path_, policy: policies_pb2.Policy) -> None:
    """Replace the policy at ``path`` in place (it must exist)."""
    group = group_at(config, path[:-1])
    if group is None or path[-1] not in group.policies:
        raise ConfigError(f"no policy {show(path)} in the channel configuration")
    group.policies[path[-1]].policy.CopyFrom(policy)
