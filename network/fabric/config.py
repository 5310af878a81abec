"""The channel configuration: its tree of groups, values and policies, and the config in force.

The one model of a ``common.Config`` every tool shares (the admin tools, the
block verifier, the membership view): paths are tuples of group names from the
root, e.g. ``("Channel", "Application", "AuditMSP")``, spelt like Fabric by
:func:`show` (``/Channel/...``); an element of the tree is keyed by (kind, full
path), kind ``group`` | ``value`` | ``policy``, as :func:`flatten` lists them.

- decoding: :func:`config_envelope_of` / :func:`config_from_block` (the config a
  config block carries);
- reading and editing the tree: :func:`group_at`, :func:`policy_at`,
  :func:`set_policy`, the organisations (:func:`application_orgs`,
  :func:`orderer_orgs`, :func:`msp_of`, :func:`msp_configs`), anchor peers and
  orderer endpoints; :func:`parse_policy_path` reads a policy path as people type it;
- :func:`flatten` / :func:`rebuild`: the tree as a map of elements and back, with
  some elements replaced (what Fabric's ``configtx`` does to apply an update; the
  updates themselves are :mod:`.config_update`);
- :class:`ChannelConfig`: the config in force with its MSPs (:mod:`.msp`) and its
  policy tree (:mod:`.policy`) compiled, as a peer holds it.
"""
from __future__ import annotations

from dataclasses import dataclass

from fabric_protos.common import common_pb2, configtx_pb2, configuration_pb2, policies_pb2
from fabric_protos.msp import identities_pb2, msp_config_pb2
from fabric_protos.peer import configuration_pb2 as peer_config_pb2

from ipledger.network.fabric.msp import MSP, MSPError, MSPManager
from ipledger.network.fabric.policy import PolicyError, PolicyManager

ROOT = "Channel"
APPLICATION = "Application"
ORDERER = "Orderer"

Path_ = tuple[str, ...]
Key = tuple[str, Path_]  # (kind, full path): kind is "group" | "value" | "policy"


class ConfigError(ValueError):
    """A block, config or update is not what it should be."""


def show(path: Path_) -> str:
    return "/" + "/".join(path)


def describe_key(key: Key) -> str:
    kind, path = key
    return f"[{kind.capitalize()}] {show(path)}"


def parse_policy_path(text: str) -> Path_:
    """``Application/Admins`` or ``/Channel/Application/Admins`` → ("Channel", ...)."""
    parts = tuple(p for p in text.strip().split("/") if p)
    if not parts:
        raise ConfigError("empty policy path")
    if parts[0] != ROOT:
        parts = (ROOT,) + parts
    return parts


# ----------------------------------------------------------------------------- decoding

def config_envelope_of(block: common_pb2.Block) -> tuple[configtx_pb2.ConfigEnvelope, common_pb2.ChannelHeader]:
    """The ConfigEnvelope of a config block (exactly one CONFIG transaction) and its channel header."""
    if len(block.data.data) != 1:
        raise ConfigError(f"a config block must hold exactly one transaction, not {len(block.data.data)}")
    env = common_pb2.Envelope.FromString(block.data.data[0])
    payload = common_pb2.Payload.FromString(env.payload)
    chdr = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
    if chdr.type != common_pb2.CONFIG:
        raise ConfigError(f"block {block.header.number} is not a config block "
                          f"(transaction type {chdr.type})")
    return configtx_pb2.ConfigEnvelope.FromString(payload.data), chdr


def config_from_block(block_bytes: bytes) -> tuple[configtx_pb2.Config, int]:
    """The channel config inside a config block, and the block's number."""
    block = common_pb2.Block.FromString(block_bytes)
    envelope, _ = config_envelope_of(block)
    return envelope.config, block.header.number


# ----------------------------------------------------------------------------- the tree

def group_at(config: configtx_pb2.Config, path: Path_) -> configtx_pb2.ConfigGroup | None:
    if not path or path[0] != ROOT:
        return None
    g = config.channel_group
    for name in path[1:]:
        if name not in g.groups:
            return None
        g = g.groups[name]
    return g


def policy_at(config: configtx_pb2.Config, path: Path_) -> configtx_pb2.ConfigPolicy | None:
    group = group_at(config, path[:-1])
    if group is None or path[-1] not in group.policies:
        return None
    return group.policies[path[-1]]


def set_policy(config: configtx_pb2.Config, path: Path_, policy: policies_pb2.Policy) -> None:
    """Replace the policy at ``path`` in place (it must exist)."""
    group = group_at(config, path[:-1])
    if group is None or path[-1] not in group.policies:
        raise ConfigError(f"no policy {show(path)} in the channel configuration")
    group.policies[path[-1]].policy.CopyFrom(policy)


def application_orgs(config: configtx_pb2.Config) -> dict[str, configtx_pb2.ConfigGroup]:
    """Application organisations by group name (= MSP id in ipledger's channels)."""
    app = config.channel_group.groups.get(APPLICATION)
    return dict(app.groups) if app is not None else {}


def orderer_orgs(config: configtx_pb2.Config) -> dict[str, configtx_pb2.ConfigGroup]:
    o = config.channel_group.groups.get(ORDERER)
    return dict(o.groups) if o is not None else {}


def msp_of(group: configtx_pb2.ConfigGroup) -> msp_config_pb2.FabricMSPConfig | None:
    """The org group's Fabric (X.509) MSP definition (None if it has none, or another kind)."""
    if "MSP" not in group.values:
        return None
    mc = msp_config_pb2.MSPConfig.FromString(group.values["MSP"].value)
    if mc.type != 0:  # FABRIC
        return None
    return msp_config_pb2.FabricMSPConfig.FromString(mc.config)


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
    ap = peer_config_pb2.AnchorPeers.FromString(group.values["AnchorPeers"].value)
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
    return list(configuration_pb2.OrdererAddresses.FromString(group.values["Endpoints"].value).addresses)


# ----------------------------------------------------------------------------- flatten / rebuild

def _flatten(group: configtx_pb2.ConfigGroup, path: Path_, out: dict) -> None:
    out[("group", path)] = group
    for name, v in group.values.items():
        out[("value", path + (name,))] = v
    for name, p in group.policies.items():
        out[("policy", path + (name,))] = p
    for name, g in group.groups.items():
        _flatten(g, path + (name,), out)


def flatten(group: configtx_pb2.ConfigGroup, path: Path_ = (ROOT,)) -> dict[Key, object]:
    """Every element of a config tree by (kind, full path)."""
    out: dict[Key, object] = {}
    _flatten(group, path, out)
    return out


def rebuild(changed: dict[Key, object], current: dict[Key, object],
            path: Path_ = (ROOT,)) -> configtx_pb2.ConfigGroup:
    """The tree at ``path`` with each element taken from ``changed`` if there, else from
    ``current`` (both :func:`flatten` maps): a group's members are the ones its chosen
    version names. Raises ConfigError for a member that is in neither."""
    def element(key: Key):
        if key in changed:
            return changed[key]
        if key in current:
            return current[key]
        raise ConfigError(f"{describe_key(key)} is neither in the config in force nor in the update")

    src = element(("group", path))
    out = configtx_pb2.ConfigGroup(version=src.version, mod_policy=src.mod_policy)
    for name in src.values:
        out.values[name].CopyFrom(element(("value", path + (name,))))
    for name in src.policies:
        out.policies[name].CopyFrom(element(("policy", path + (name,))))
    for name in src.groups:
        out.groups[name].CopyFrom(rebuild(changed, current, path + (name,)))
    return out


# ----------------------------------------------------------------------------- the config in force

# The capabilities Fabric v3.1 knows, by section (common/capabilities): a required one it does not know stops a peer
KNOWN_CAPABILITIES = {
    None: frozenset({"V1_1", "V1_3", "V1_4_2", "V1_4_3", "V2_0", "V3_0"}),
    ORDERER: frozenset({"V1_1", "V1_4_2", "V2_0"}),
    APPLICATION: frozenset({"V1_1", "V1_2", "V1_3", "V1_4_2", "V2_0", "V2_5",
                            "V1_1_PVTDATA_EXPERIMENTAL", "V1_1_RESOURCETREE_EXPERIMENTAL"}),
}


@dataclass
class ChannelConfig:
    """One ``common.Config`` with what validating against it needs: its MSPs (every
    application and orderer organisation), its policy tree, the orderer consenters (for
    BFT-style signatures that name the signer by consenter id), and the Application orgs."""

    config: configtx_pb2.Config
    block_number: int
    msps: MSPManager
    policies: PolicyManager

    @classmethod
    def from_config(cls, config: configtx_pb2.Config, block_number: int) -> "ChannelConfig":
        msps = {}
        defined_by: dict[str, tuple[str, bytes]] = {}   # MSP id -> (org group, its MSP value)
        for org_name, org in [*application_orgs(config).items(), *orderer_orgs(config).items()]:
            if "MSP" not in org.values:
                continue
            fc = msp_of(org)
            if fc is not None and fc.name in defined_by and defined_by[fc.name][1] != org.values["MSP"].value:
                # Fabric's MSP manager refuses two versions of one MSP: the last would otherwise win
                raise ConfigError(f"organisations {defined_by[fc.name][0]} and {org_name} define MSP {fc.name} "
                                  "differently")
            if fc is not None:
                defined_by[fc.name] = (org_name, bytes(org.values["MSP"].value))
            if fc is None:
                kind = msp_config_pb2.MSPConfig.FromString(org.values["MSP"].value).type
                raise ConfigError(f"organisation {org_name}: MSP type {kind} (only X.509 "
                                  "MSPs are supported by this verifier)")
            try:
                msps[fc.name] = MSP(fc)
            except MSPError as exc:
                raise ConfigError(f"organisation {org_name}: {exc}") from None
        try:
            policies = PolicyManager(config.channel_group, ROOT)
        except PolicyError as exc:
            raise ConfigError(str(exc)) from None
        channel = cls(config, block_number, MSPManager(msps), policies)
        for section, known in KNOWN_CAPABILITIES.items():
            unknown = [c for c in channel.capabilities(section) if c not in known]
            if unknown:   # a peer of this Fabric version stops at such a config: nothing after it is Fabric's
                raise ConfigError(f"the {section or 'channel'} capabilities {', '.join(unknown)} are not known to "
                                  "Fabric v3.1 (a peer would stop at this configuration)")
        return channel

    @property
    def sequence(self) -> int:
        return self.config.sequence

    def application_orgs(self) -> dict[str, str]:
        """Application org group name -> MSP id."""
        return {name: fc.name for name, org in application_orgs(self.config).items()
                if (fc := msp_of(org)) is not None}

    def consenter_identity(self, consenter_id: int) -> bytes | None:
        """Serialized identity of the consenter with that id (BFT ``Orderers`` value)."""
        orderer = self.config.channel_group.groups.get(ORDERER)
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


def check_msp_ids_kept(old: configtx_pb2.Config, new: configtx_pb2.Config) -> None:
    """An organisation keeps its MSP ID (Fabric's ``Bundle.ValidateNew``): otherwise its own admins, who may
    change their group, could give it another member's ID and have their CA issue that member's identities."""
    for kind, before, after in (("application", application_orgs(old), application_orgs(new)),
                                ("orderer", orderer_orgs(old), orderer_orgs(new))):
        for name, group in after.items():
            if name not in before:
                continue
            was, now = msp_of(before[name]), msp_of(group)
            if was is not None and now is not None and was.name != now.name:
                raise ConfigError(f"{kind} organisation {name} would change its MSP ID from {was.name} to "
                                  f"{now.name} (Fabric refuses an MSP ID change)")
