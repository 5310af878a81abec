"""Config updates: computed, checked and applied as Fabric's tools and orderer do.

Built on the one config tree model (:mod:`.config`: elements keyed by (kind, path),
:func:`~.config.flatten` / :func:`~.config.rebuild`), so the diff, the checks, the
apply, the policies needed and the summary agree on what an element is:

- ``compute_update``: original + updated config → ``common.ConfigUpdate``
  (a port of Fabric's ``configtxlator compute_update``: read set = versions the
  update depends on, write set = new content with bumped versions);
- ``delta_set`` / ``apply_update``: config + update → the config the orderer will
  produce (Fabric's ``configtx`` validator: delta set = write-set items whose
  version differs from the read set, overlaid on the current config);
- ``check_update``: what the orderer refuses before evaluating a policy (stale read
  set, empty delta, invalid mod_policy, versions that are not the next ones);
- ``required_policies``: which policy each changed element's ``mod_policy``
  names (groups: relative to themselves; values and policies: relative to their
  group), Fabric's ``policyForItem``;
- ``check_config_update``: all of it, as a peer re-does it when a config block
  arrives (``common/configtx/validator.go`` ``Validate`` / ``authorizeUpdate``): the
  new config has the next sequence; its ``last_update`` is a CONFIG_UPDATE for this
  channel that passes ``check_update``; the policy each changed existing element
  needs is satisfied by the update's signatures (each over signature_header +
  config_update, evaluated by :mod:`.policy` with the channel MSPs); and applying
  the update gives exactly the config carried by the block;
- ``summarize``: a human-readable list of what changes between two configs;
- ``update_envelope`` / ``read_envelope`` / ``with_update_envelope``: the
  CONFIG_UPDATE envelope that carries an update and its signatures.

Pure protobuf code (no Fabric binaries, no network), unit-tested on its own.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fabric_protos.common import common_pb2, configtx_pb2
from fabric_protos.msp import msp_config_pb2

from ipledger.network.fabric.config import (APPLICATION, ORDERER, ROOT, ChannelConfig, ConfigError, Key, Path_,
                                            anchor_peers, check_msp_ids_kept, describe_key, flatten, group_at,
                                            msp_of, orderer_endpoints, rebuild, show)
# network/org/nodes.py still imports these three from here; they live in .config.
from ipledger.network.fabric.policy import SignedData, render_policy, valid_identities


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


# ----------------------------------------------------------------------------- check and apply

_CONFIG_ID = re.compile(r"^[a-zA-Z0-9.\-_]+$")


def valid_mod_policy(mod_policy: str) -> bool:
    """Fabric's validateModPolicy: a non-empty path of valid config ids, optionally absolute."""
    if not mod_policy:
        return False
    trimmed = mod_policy[1:] if mod_policy.startswith("/") else mod_policy
    for element in trimmed.split("/"):
        if not element or len(element) > 249 or element in (".", "..") or not _CONFIG_ID.match(element):
            return False
    return True


def delta_set(update: configtx_pb2.ConfigUpdate) -> dict[Key, object]:
    """Write-set elements that really change something (version differs from the read set)."""
    read = flatten(update.read_set)
    return {k: v for k, v in flatten(update.write_set).items()
            if k not in read or read[k].version != v.version}


def check_update(config: configtx_pb2.Config, update: configtx_pb2.ConfigUpdate) -> list[str]:
    """What the orderer would refuse before evaluating any policy (empty list: nothing):
    configtx's read-set check, then each changed element's mod_policy and version."""
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
    for key in sorted(delta):
        item = delta[key]
        if not item.mod_policy:
            problems.append(f"{describe_key(key)} has no mod_policy")
        elif not valid_mod_policy(item.mod_policy):
            problems.append(f"{describe_key(key)} has an invalid mod_policy {item.mod_policy!r}")
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
    result = configtx_pb2.Config()
    result.CopyFrom(config)
    result.channel_group.CopyFrom(rebuild(delta_set(update), flatten(config.channel_group)))
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


# ----------------------------------------------------------------------------- a config block's update

@dataclass
class UpdateCheck:
    signers: list[str]
    changed: list[str]
    policies: list[str]


def check_config_update(current: ChannelConfig, envelope: configtx_pb2.ConfigEnvelope,
                        channel_id: str) -> UpdateCheck:
    """Raise ConfigError unless ``envelope`` (a config block's) is a valid successor of ``current``."""
    new = envelope.config
    if new.sequence != current.sequence + 1:
        raise ConfigError(f"config sequence {new.sequence} does not follow {current.sequence}")
    if not envelope.HasField("last_update"):
        raise ConfigError("the config envelope carries no last_update")
    try:
        payload = common_pb2.Payload.FromString(envelope.last_update.payload)
        chdr = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
        cue = configtx_pb2.ConfigUpdateEnvelope.FromString(payload.data)
        update = configtx_pb2.ConfigUpdate.FromString(cue.config_update)
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"last_update is not a config update envelope: {exc}") from None
    if chdr.type != common_pb2.CONFIG_UPDATE:
        raise ConfigError(f"last_update has type {chdr.type}, not CONFIG_UPDATE")
    if update.channel_id != channel_id:
        raise ConfigError(f"config update for channel {update.channel_id!r}, not {channel_id!r}")
    problems = check_update(current.config, update)
    if problems:
        raise ConfigError(problems[0])
    check_msp_ids_kept(current.config, new)

    signed = []
    for cs in cue.signatures:
        try:
            shdr = common_pb2.SignatureHeader.FromString(cs.signature_header)
        except Exception:  # noqa: BLE001
            raise ConfigError("a config update signature has an unreadable header") from None
        signed.append(SignedData(cs.signature_header + cue.config_update, shdr.creator, cs.signature))
    ev = valid_identities(signed, current.msps)
    signers = [i.describe() for i in ev.identities]
    requirements = required_policies(current.config, update)
    for req in requirements:
        label, elements = show(req.policy), ", ".join(req.elements)
        policy = current.policies.lookup(label)
        if policy is None:
            raise ConfigError(f"no policy {label} for {elements}")
        if not policy.evaluate_identities(ev.identities):
            raise ConfigError(f"the update's signatures ({', '.join(signers) or 'none valid'}) do "
                              f"not satisfy {label} needed to change {elements}"
                              + (f"; dropped: {'; '.join(r for _, r in ev.dropped)}" if ev.dropped else ""))
    if apply_update(current.config, update).channel_group != new.channel_group:
        raise ConfigError("the config update (last_update) does not produce the config in the block")
    return UpdateCheck(signers, [describe_key(k) for k in sorted(delta_set(update))],
                       sorted({show(r.policy) for r in requirements}))


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
    lines += [crl_summary(c) for c in fc.revocation_list]
    return lines


def crl_summary(pem: bytes) -> str:
    """A revocation list: its issuer and the serial numbers it revokes."""
    try:
        crl = x509.load_pem_x509_crl(pem)
    except ValueError:
        return f"(unreadable revocation list, sha256 {hashlib.sha256(pem).hexdigest()[:12]})"
    serials = sorted(f"{r.serial_number:x}" for r in crl)
    shown = ", ".join(serials[:10]) + (f", … {len(serials) - 10} more" if len(serials) > 10 else "")
    return f"revocation list of {crl.issuer.rfc4514_string()}: {len(serials)} revoked ({shown})"


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
    if group.mod_policy != OWN_ADMINS:
        lines.append(f"mod_policy of the organisation: {group.mod_policy or '(none)'}{_NOT_OWN}")
    for kind, items in (("value", group.values), ("policy", group.policies)):
        lines += [f"mod_policy of {kind} {name}: {items[name].mod_policy or '(none)'}{_NOT_OWN}"
                  for name in sorted(items) if items[name].mod_policy != OWN_ADMINS]
    return lines


# What an element is normally modifiable by: the admins of its own group (an organisation's, for its elements).
# Any other mod_policy of an element an update adds is shown: who may change it later is part of what is signed.
OWN_ADMINS = "Admins"
_NOT_OWN = " (not the organisation's own admins)"


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
                lines.append(f"add group {where}"
                             + (f" (mod_policy {new.mod_policy or '(none)'})" if new.mod_policy != OWN_ADMINS else ""))
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
                was, now = describe_value(name, old), describe_value(name, new)
                if was == now:   # a change in what the description leaves out: never shown as no change
                    was += f" [sha256 {hashlib.sha256(old.value).hexdigest()[:12]}]"
                    now += f" [sha256 {hashlib.sha256(new.value).hexdigest()[:12]}: changed in fields not shown]"
                lines.append(f"{name} of {show(path[:-1])}: {was} → {now}")
        else:
            if old is None:
                lines.append(f"add policy {where}: {_render(new)}")
            elif new is None:
                lines.append(f"remove policy {where} (was {_render(old)})")
            elif old.policy != new.policy:
                lines.append(f"policy {where}: {_render(old)} → {_render(new)}")
        if old is not None and new is not None and old.mod_policy != new.mod_policy:
            lines.append(f"mod_policy of {kind} {where}: {old.mod_policy} → {new.mod_policy}")
        elif old is None and new.mod_policy != OWN_ADMINS:
            lines.append(f"mod_policy of {kind} {where}: {new.mod_policy or '(none)'}")
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
