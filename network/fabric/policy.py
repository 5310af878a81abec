"""Fabric policies evaluated against sets of signatures (``common/policies``, ``common/cauthdsl``).

- A *signature set* is a list of :class:`SignedData` (message, serialized identity,
  signature). As ``policies.SignatureSetToValidIdentities`` does, an identity that
  cannot be deserialized is dropped, an identity seen before (same MSP id and
  certificate hash) is dropped *before* its signature is checked, and an identity
  whose signature does not verify is dropped. What is left is evaluated.
- A *signature policy* (``SignaturePolicyEnvelope``) is evaluated like cauthdsl:
  ``n_out_of`` gates try their rules in order, each rule on a copy of the "used"
  flags, keeping the flags of the rules that pass; ``signed_by`` takes the first
  unused identity that satisfies the principal. An identity is therefore counted
  once per evaluation (greedy, as Fabric — not an optimal matching).
- An *implicit meta* policy (ANY / ALL / MAJORITY of a sub-policy name) counts the
  child groups whose policy of that name is satisfied; a child without it counts
  as unsatisfied; with no children the threshold is 0 (always satisfied).
- A :class:`PolicyManager` mirrors Fabric's ``ManagerImpl`` over a config group
  tree and resolves absolute (``/Channel/Application/Writers``) and relative paths.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from fabric_protos.common import configtx_pb2, policies_pb2
from fabric_protos.msp import msp_principal_pb2
from fabric_protos.peer import policy_pb2

from ipledger.network.fabric.msp import MSPError, describe_serialized

IMPLICIT_RULES = {policies_pb2.ImplicitMetaPolicy.ANY: "ANY",
                  policies_pb2.ImplicitMetaPolicy.ALL: "ALL",
                  policies_pb2.ImplicitMetaPolicy.MAJORITY: "MAJORITY"}


class PolicyError(ValueError):
    """A policy cannot be built (bad bytes, index out of range, unknown type)."""


@dataclass(frozen=True)
class SignedData:
    data: bytes
    identity: bytes     # serialized msp.SerializedIdentity
    signature: bytes


@dataclass
class Evaluation:
    """The identities that counted and the signatures that were dropped (with why)."""
    identities: list = field(default_factory=list)
    dropped: list[tuple[int, str]] = field(default_factory=list)  # (index in set, reason)


def valid_identities(signed: list[SignedData], deserializer) -> Evaluation:
    """Fabric's SignatureSetToValidIdentities, keeping the reasons for what it drops."""
    out = Evaluation()
    seen: set[str] = set()
    for i, sd in enumerate(signed):
        try:
            ident = deserializer.deserialize(sd.identity)
        except MSPError as exc:
            out.dropped.append((i, f"{describe_serialized(sd.identity)}: invalid identity: {exc}"))
            continue
        if ident.key in seen:
            out.dropped.append((i, f"{ident.describe()}: duplicate signer, counted once"))
            continue
        try:
            ident.verify(sd.data, sd.signature)
        except MSPError as exc:
            out.dropped.append((i, f"{ident.describe()}: {exc}"))
            continue
        seen.add(ident.key)
        out.identities.append(ident)
    return out


# ----------------------------------------------------------------------------- policies

class Policy:
    def evaluate_identities(self, identities: list) -> bool:
        raise NotImplementedError

    def evaluate(self, signed: list[SignedData], deserializer) -> tuple[bool, Evaluation]:
        ev = valid_identities(signed, deserializer)
        return self.evaluate_identities(ev.identities), ev

    def describe(self) -> str:
        raise NotImplementedError


class RejectPolicy(Policy):
    def __init__(self, name: str):
        self.name = name

    def evaluate_identities(self, identities) -> bool:
        return False

    def describe(self) -> str:
        return f"(no such policy {self.name!r}: rejects everything)"


def principal_label(p: msp_principal_pb2.MSPPrincipal) -> str:
    P = msp_principal_pb2.MSPPrincipal
    try:
        if p.principal_classification == P.ROLE:
            r = msp_principal_pb2.MSPRole.FromString(p.principal)
            return f"'{r.msp_identifier}.{msp_principal_pb2.MSPRole.MSPRoleType.Name(r.role).lower()}'"
        if p.principal_classification == P.ORGANIZATION_UNIT:
            o = msp_principal_pb2.OrganizationUnit.FromString(p.principal)
            return f"'{o.msp_identifier}.OU={o.organizational_unit_identifier}'"
        if p.principal_classification == P.IDENTITY:
            return f"identity({describe_serialized(p.principal)})"
        return P.Classification.Name(p.principal_classification).lower()
    except Exception:  # noqa: BLE001
        return "(unreadable principal)"


class SignaturePolicy(Policy):
    """A compiled ``SignaturePolicyEnvelope`` (cauthdsl)."""

    def __init__(self, envelope: policies_pb2.SignaturePolicyEnvelope):
        if envelope.version != 0:
            raise PolicyError(f"signature policy version {envelope.version} (only 0 is understood)")
        self.envelope = envelope
        self._check(envelope.rule)

    @classmethod
    def from_bytes(cls, data: bytes) -> "SignaturePolicy":
        try:
            env = policies_pb2.SignaturePolicyEnvelope.FromString(data)
        except Exception as exc:  # noqa: BLE001
            raise PolicyError(f"not a SignaturePolicyEnvelope: {exc}") from None
        return cls(env)

    def _check(self, rule: policies_pb2.SignaturePolicy) -> None:
        kind = rule.WhichOneof("Type")
        if kind == "n_out_of":
            for r in rule.n_out_of.rules:
                self._check(r)
        elif kind == "signed_by":
            if not 0 <= rule.signed_by < len(self.envelope.identities):
                raise PolicyError(f"identity index out of range, requested {rule.signed_by}, "
                                  f"but identities length is {len(self.envelope.identities)}")
        else:
            raise PolicyError("empty policy element")

    def evaluate_identities(self, identities: list) -> bool:
        used = [False] * len(identities)
        return self._eval(self.envelope.rule, identities, used)

    def _eval(self, rule, identities, used) -> bool:
        if rule.WhichOneof("Type") == "n_out_of":
            verified = 0
            for sub in rule.n_out_of.rules:
                trial = list(used)
                if self._eval(sub, identities, trial):
                    verified += 1
                    used[:] = trial
            return verified >= rule.n_out_of.n
        principal = self.envelope.identities[rule.signed_by]
        for i, ident in enumerate(identities):
            if used[i]:
                continue
            try:
                ident.satisfies(principal)
            except MSPError:
                continue
            used[i] = True
            return True
        return False

    def describe(self) -> str:
        return self._render(self.envelope.rule)

    def _render(self, rule) -> str:
        if rule.WhichOneof("Type") == "signed_by":
            return principal_label(self.envelope.identities[rule.signed_by])
        rules = rule.n_out_of.rules
        inner = ", ".join(self._render(r) for r in rules)
        n = rule.n_out_of.n
        if n == len(rules) and n > 1:
            return f"AND({inner})"
        if n == 1 and rules:
            return f"OR({inner})"
        return f"OutOf({n}, {inner})"


class ImplicitMetaPolicy(Policy):
    def __init__(self, rule: int, sub_policy: str, sub_policies: list[Policy], where: str = ""):
        self.rule = rule
        self.sub_policy = sub_policy
        self.sub_policies = sub_policies
        self.where = where
        n = len(sub_policies)
        if rule == policies_pb2.ImplicitMetaPolicy.ANY:
            self.threshold = 1
        elif rule == policies_pb2.ImplicitMetaPolicy.ALL:
            self.threshold = n
        elif rule == policies_pb2.ImplicitMetaPolicy.MAJORITY:
            self.threshold = n // 2 + 1
        else:
            self.threshold = 0  # Fabric: unknown rule leaves the threshold at 0
        if n == 0:
            self.threshold = 0

    def evaluate_identities(self, identities: list) -> bool:
        remaining = self.threshold
        if remaining == 0:
            return True
        for p in self.sub_policies:
            if p.evaluate_identities(identities):
                remaining -= 1
                if remaining == 0:
                    return True
        return False

    def describe(self) -> str:
        return f"{IMPLICIT_RULES.get(self.rule, self.rule)} {self.sub_policy}" + \
            (f" (of {self.where})" if self.where else "") + \
            f" — {self.threshold} of {len(self.sub_policies)} needed"


def make_implicit_meta(data: bytes, children: dict[str, "PolicyManager"], where: str) -> ImplicitMetaPolicy:
    try:
        imp = policies_pb2.ImplicitMetaPolicy.FromString(data)
    except Exception as exc:  # noqa: BLE001
        raise PolicyError(f"not an ImplicitMetaPolicy: {exc}") from None
    subs = [m.get(imp.sub_policy) for _, m in sorted(children.items())]
    return ImplicitMetaPolicy(imp.rule, imp.sub_policy, subs, where)


# ----------------------------------------------------------------------------- manager

class PolicyManager:
    """Policies of a config group tree, by path (Fabric's policies.ManagerImpl)."""

    def __init__(self, group: configtx_pb2.ConfigGroup, path: str = "Channel"):
        self.path = path
        self.children = {name: PolicyManager(g, f"{path}/{name}") for name, g in group.groups.items()}
        self.policies: dict[str, Policy] = {}
        for name, cp in group.policies.items():
            pol = cp.policy
            if pol.type == policies_pb2.Policy.IMPLICIT_META:
                compiled = make_implicit_meta(pol.value, self.children, f"/{path}")
            elif pol.type == policies_pb2.Policy.SIGNATURE:
                try:
                    compiled = SignaturePolicy.from_bytes(pol.value)
                except PolicyError as exc:
                    raise PolicyError(f"policy {name} at /{path} did not compile: {exc}") from None
            else:
                raise PolicyError(f"policy {name} at /{path} has unsupported type {pol.type}")
            self.policies[name] = compiled
        for cname, child in self.children.items():
            for pname, p in child.policies.items():
                self.policies[f"{cname}/{pname}"] = p

    def manager(self, path: list[str]) -> "PolicyManager | None":
        m = self
        for name in path:
            m = m.children.get(name)
            if m is None:
                return None
        return m

    def lookup(self, ref: str) -> Policy | None:
        """The policy at ``ref`` (absolute, from this manager's root path, or relative)."""
        if not ref:
            return None
        if ref.startswith("/"):
            prefix = "/" + self.path + "/"
            if not ref.startswith(prefix):
                return None
            ref = ref[len(prefix):]
        return self.policies.get(ref)

    def get(self, ref: str) -> Policy:
        return self.lookup(ref) or RejectPolicy(ref)


# ----------------------------------------------------------------------------- application policies

def application_policy(data: bytes, channel_policies: PolicyManager) -> Policy:
    """The policy a ``peer.ApplicationPolicy`` names: a signature policy or a channel reference."""
    try:
        ap = policy_pb2.ApplicationPolicy.FromString(data)
    except Exception as exc:  # noqa: BLE001
        raise PolicyError(f"not an ApplicationPolicy: {exc}") from None
    kind = ap.WhichOneof("Type")
    if kind == "signature_policy":
        return SignaturePolicy(ap.signature_policy)
    if kind == "channel_config_policy_reference":
        ref = ap.channel_config_policy_reference
        p = channel_policies.lookup(ref)
        if p is None:
            raise PolicyError(f"channel policy {ref} does not exist")
        return NamedPolicy(ref, p)
    raise PolicyError("empty ApplicationPolicy")


class NamedPolicy(Policy):
    def __init__(self, name: str, policy: Policy):
        self.name, self.policy = name, policy

    def evaluate_identities(self, identities) -> bool:
        return self.policy.evaluate_identities(identities)

    def describe(self) -> str:
        return f"{self.name} ({self.policy.describe()})"
