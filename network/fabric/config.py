"""The channel configuration in force, and how a config block may change it.

:class:`ChannelConfig` wraps one ``common.Config``: its MSPs (every application and
orderer organisation), its policy tree, the orderer consenters (for BFT-style
signatures that name the signer by consenter id), and the Application orgs.

:func:`check_config_update` re-does what a peer does when a config block arrives
(``common/configtx/validator.go`` ``Validate`` / ``authorizeUpdate``): the new
config has the next sequence; its ``last_update`` is a CONFIG_UPDATE for this
channel whose read set matches the versions in force; every element the write
set really changes has a valid mod_policy and the next version (new elements
version 0); the policy named by each *existing* changed element's mod_policy
(relative to its group, or absolute) is satisfied by the update's signatures
(each over signature_header + config_update); and overlaying the changes on the
config in force gives exactly the config carried by the block.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from fabric_protos.common import common_pb2, configtx_pb2, configuration_pb2
from fabric_protos.msp import msp_config_pb2, identities_pb2

from ipledger.network.fabric.msp import MSP, MSPError, MSPManager
from ipledger.network.fabric.policy import PolicyError, PolicyManager, SignedData

ROOT = "Channel"


class ConfigError(ValueError):
    pass


@dataclass
class ChannelConfig:
    config: configtx_pb2.Config
    block_number: int
    msps: MSPManager
    policies: PolicyManager

    @classmethod
    def from_config(cls, config: configtx_pb2.Config, block_number: int) -> "ChannelConfig":
        msps = {}
        root = config.channel_group
        for section in ("Application", "Orderer"):
            grp = root.groups.get(section)
            if grp is None:
                continue
            for org_name, org in grp.groups.items():
                if "MSP" not in org.values:
                    continue
                mc = msp_config_pb2.MSPConfig.FromString(org.values["MSP"].value)
                if mc.type != 0:
                    raise ConfigError(f"organisation {org_name}: MSP type {mc.type} (only X.509 "
                                      "MSPs are supported by this verifier)")
                fc = msp_config_pb2.FabricMSPConfig.FromString(mc.config)
                try:
                    msps[fc.name] = MSP(fc)
                except MSPError as exc:
                    raise ConfigError(f"organisation {org_name}: {exc}") from None
        try:
            policies = PolicyManager(root, ROOT)
        except PolicyError as exc:
            raise ConfigError(str(exc)) from None
        return cls(config, block_number, MSPManager(msps), policies)

    @property
    def sequence(self) -> int:
        return self.config.sequence

    def application_orgs(self) -> dict[str, str]:
        """Application org group name -> MSP id."""
        out = {}
        app = self.config.channel_group.groups.get("Application")
        if app is None:
            return out
        for name, org in app.groups.items():
            if "MSP" in org.values:
                mc = msp_config_pb2.MSPConfig.FromString(org.values["MSP"].value)
                fc = msp_config_pb2.FabricMSPConfig.FromString(mc.config)
                out[name] = fc.name
        return out

    def consenter_identity(self, consenter_id: int) -> bytes | None:
        """Serialized identity of the consenter with that id (BFT ``Orderers`` value)."""
        orderer = self.config.channel_group.groups.get("Orderer")
        if orderer is None or "Orderers" not in orderer.values:
            return None
        mapping = configuration_pb2.Orderers.FromString(orderer.values["Orderers"].value)
        for c in mapping.consenter_mapping:
            if c.id == consenter_id:
                return identities_pb2.SerializedIdentity(mspid=c.msp_id, id_bytes=c.identity) \
                    .SerializeToString()
        return None

    def hashing_algorithm(self) -> str:
        v = self.config.channel_group.values.get("HashingAlgorithm")
        if v is None:
            return "SHA256"
        return configuration_pb2.HashingAlgorithm.FromString(v.value).name

    def capabilities(self, section: str | None = None) -> list[str]:
        g = self.config.channel_group if section is None else \
            self.config.channel_group.groups.get(section)
        if g is None or "Capabilities" not in g.values:
            return []
        return sorted(configuration_pb2.Capabilities.FromString(g.values["Capabilities"].value)
                      .capabilities)


def config_envelope_of(block: common_pb2.Block) -> tuple[configtx_pb2.ConfigEnvelope, common_pb2.ChannelHeader]:
    if len(block.data.data) != 1:
        raise ConfigError(f"a config block must hold exactly one transaction, not {len(block.data.data)}")
    env = common_pb2.Envelope.FromString(block.data.data[0])
    payload = common_pb2.Payload.FromString(env.payload)
    chdr = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
    if chdr.type != common_pb2.CONFIG:
        raise ConfigError(f"not a config transaction (type {chdr.type})")
    return configtx_pb2.ConfigEnvelope.FromString(payload.data), chdr


# ----------------------------------------------------------------------------- config maps

_CONFIG_ID = re.compile(r"^[a-zA-Z0-9.\-_]+$")


def _flatten(group: configtx_pb2.ConfigGroup, path: tuple[str, ...], out: dict) -> dict:
    out[("group", path)] = group
    for name, v in group.values.items():
        out[("value", path + (name,))] = v
    for name, p in group.policies.items():
        out[("policy", path + (name,))] = p
    for name, g in group.groups.items():
        _flatten(g, path + (name,), out)
    return out


def flatten(group: configtx_pb2.ConfigGroup) -> dict:
    return _flatten(group, (ROOT,), {})


def _show(key) -> str:
    kind, path = key
    return f"[{kind}] /" + "/".join(path)


def _valid_mod_policy(mod_policy: str) -> bool:
    if not mod_policy:
        return False
    trimmed = mod_policy[1:] if mod_policy.startswith("/") else mod_policy
    for element in trimmed.split("/"):
        if not element or len(element) > 249 or element in (".", "..") or not _CONFIG_ID.match(element):
            return False
    return True


def _policy_for(key, item, policies: PolicyManager):
    mod = item.mod_policy
    kind, path = key
    if mod.startswith("/") or len(path) <= 1 and kind == "group":
        return policies.lookup(mod), mod
    group_path = path if kind == "group" else path[:-1]
    manager = policies.manager(list(group_path[1:]))
    if manager is None:
        return None, mod
    return manager.lookup(mod), "/" + "/".join(group_path + tuple(mod.split("/")))


def _rebuild(path, delta, current) -> configtx_pb2.ConfigGroup:
    def element(key):
        if key in delta:
            return delta[key]
        if key in current:
            return current[key]
        raise ConfigError(f"{_show(key)} is neither in the config in force nor in the update")

    src = element(("group", path))
    out = configtx_pb2.ConfigGroup(version=src.version, mod_policy=src.mod_policy)
    for name in src.values:
        out.values[name].CopyFrom(element(("value", path + (name,))))
    for name in src.policies:
        out.policies[name].CopyFrom(element(("policy", path + (name,))))
    for name in src.groups:
        out.groups[name].CopyFrom(_rebuild(path + (name,), delta, current))
    return out


@dataclass
class UpdateCheck:
    signers: list[str]
    changed: list[str]
    policies: list[str]


def check_config_update(current: ChannelConfig, envelope: configtx_pb2.ConfigEnvelope,
                        channel_id: str) -> UpdateCheck:
    """Raise ConfigError unless ``envelope`` is a valid successor of ``current``."""
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

    existing = flatten(current.config.channel_group)
    read = flatten(update.read_set)
    for key, item in read.items():
        if key not in existing:
            raise ConfigError(f"read set names {_show(key)}, which is not in the config in force")
        if existing[key].version != item.version:
            raise ConfigError(f"read set needs {_show(key)} at version {item.version}, "
                              f"it is at {existing[key].version}")
    write = flatten(update.write_set)
    delta = {k: v for k, v in write.items() if k not in read or read[k].version != v.version}
    if not delta:
        raise ConfigError("the config update changes nothing")

    signed = []
    signers = []
    for cs in cue.signatures:
        try:
            shdr = common_pb2.SignatureHeader.FromString(cs.signature_header)
        except Exception:  # noqa: BLE001
            raise ConfigError("a config update signature has an unreadable header") from None
        signed.append(SignedData(cs.signature_header + cue.config_update, shdr.creator, cs.signature))
    from ipledger.network.fabric.policy import valid_identities
    ev = valid_identities(signed, current.msps)
    signers = [i.describe() for i in ev.identities]
    used_policies = []
    for key, item in sorted(delta.items()):
        if not _valid_mod_policy(item.mod_policy):
            raise ConfigError(f"{_show(key)} has an invalid mod_policy {item.mod_policy!r}")
        if key not in existing:
            if item.version != 0:
                raise ConfigError(f"new element {_show(key)} must have version 0, not {item.version}")
            continue
        if item.version != existing[key].version + 1:
            raise ConfigError(f"{_show(key)} set to version {item.version}, but it is at "
                              f"{existing[key].version}")
        policy, label = _policy_for(key, existing[key], current.policies)
        if policy is None:
            raise ConfigError(f"no policy {label} for {_show(key)}")
        if not policy.evaluate_identities(ev.identities):
            raise ConfigError(f"the update's signatures ({', '.join(signers) or 'none valid'}) do "
                              f"not satisfy {label} needed to change {_show(key)}"
                              + (f"; dropped: {'; '.join(r for _, r in ev.dropped)}" if ev.dropped else ""))
        used_policies.append(label)
    merged = dict(existing)
    merged.update(delta)
    for key in write:
        if key not in merged:
            raise ConfigError(f"write set holds {_show(key)}, which is not in the resulting config")
    result = _rebuild((ROOT,), delta, existing)
    if result != new.channel_group:
        raise ConfigError("the config update (last_update) does not produce the config in the block")
    return UpdateCheck(signers, [_show(k) for k in sorted(delta)], sorted(set(used_policies)))
