"""Fabric policies: written in Fabric's policy language, and evaluated as Fabric evaluates them.

The one policy library of the admin tools and the block verifier; the orderer's
question "do these signatures satisfy the policy this config update needs" and the
verifier's "does this block / endorsement satisfy its policy" are the same evaluation.
One file because the language and the evaluator are two views of the same protobuf
messages: what an evaluation reports is the policy as written, and the tests of one
build their policies with the other.

- The language (``common/policydsl``): :func:`parse_signature_policy` /
  :func:`signature_policy` (``OR('CustomsMSP.admin', AND(...))``, ``OutOf(2, ...)``,
  encoded like Fabric's policydsl, no de-duplication of principals),
  :func:`implicit_meta_policy` (``MAJORITY Admins``), :func:`render_policy`.
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
  as unsatisfied; MAJORITY of n is n // 2 + 1; with no children the threshold is 0
  (always satisfied).
- A :class:`PolicyManager` mirrors Fabric's ``ManagerImpl`` over a config group
  tree and resolves absolute (``/Channel/Application/Writers``) and relative paths.

The identities a policy is evaluated on are anything with ``satisfies(principal)``
(raising :class:`~.msp.MSPError` when not) and ``describe()``: the channel MSPs'
:class:`~.msp.Identity` (the verifier), or the admin tools' checked signers
(:mod:`.config_signatures`, which answer with that same ``Identity``).
:meth:`Policy.evaluate_identities` answers yes or no;
:meth:`Policy.explain` gives the same answer as an :class:`Evaluation` tree (which
sub-policies passed, how many were needed, who signed).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from fabric_protos.common import configtx_pb2, policies_pb2
from fabric_protos.msp import msp_principal_pb2
from fabric_protos.peer import policy_pb2

from ipledger.network.fabric.msp import ROLE_NAMES, MSPError, describe_serialized

ROLES = {name: role for role, name in ROLE_NAMES.items()}  # member, admin, client, peer, orderer
RULES = {"ANY": policies_pb2.ImplicitMetaPolicy.ANY, "ALL": policies_pb2.ImplicitMetaPolicy.ALL,
         "MAJORITY": policies_pb2.ImplicitMetaPolicy.MAJORITY}
RULE_NAMES = {v: k for k, v in RULES.items()}


class PolicyError(ValueError):
    """A policy cannot be written or built (bad text, bad bytes, index out of range, unknown type)."""


# ----------------------------------------------------------------------------- the language

_TOKEN = re.compile(r"\s*(?:(?P<open>\()|(?P<close>\))|(?P<comma>,)|(?P<num>\d+)|"
                    r"'(?P<sq>[^']*)'|\"(?P<dq>[^\"]*)\"|(?P<word>[A-Za-z]+))")
_PRINCIPAL = re.compile(r"^([A-Za-z0-9.\-]+)\.(member|admin|client|peer|orderer)$")


def parse_signature_policy(text: str) -> policies_pb2.SignaturePolicyEnvelope:
    """``OR('A.admin', AND('B.peer', 'C.peer'))`` → SignaturePolicyEnvelope (policydsl's encoding)."""
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise PolicyError(f"cannot read policy at {text[pos:pos + 20]!r}")
        kind = m.lastgroup
        tokens.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    identities: list[msp_principal_pb2.MSPPrincipal] = []
    i = 0

    def expect(kind):
        nonlocal i
        if i >= len(tokens) or tokens[i][0] != kind:
            raise PolicyError(f"policy {text!r}: expected {kind} at token {i}")
        i += 1
        return tokens[i - 1][1]

    def expr() -> policies_pb2.SignaturePolicy:
        nonlocal i
        if i >= len(tokens):
            raise PolicyError(f"policy {text!r} ends too early")
        kind, val = tokens[i]
        if kind in ("sq", "dq"):
            i += 1
            m = _PRINCIPAL.match(val)
            if not m:
                raise PolicyError(f"principal {val!r}: use 'MSPID.role' with role "
                                  "member, admin, client, peer or orderer")
            role = msp_principal_pb2.MSPRole(msp_identifier=m.group(1), role=ROLES[m.group(2)])
            identities.append(msp_principal_pb2.MSPPrincipal(
                principal_classification=msp_principal_pb2.MSPPrincipal.ROLE,
                principal=role.SerializeToString()))
            return policies_pb2.SignaturePolicy(signed_by=len(identities) - 1)
        if kind != "word":
            raise PolicyError(f"policy {text!r}: unexpected {val!r}")
        gate = val.lower()
        if gate not in ("and", "or", "outof"):
            raise PolicyError(f"policy {text!r}: unknown gate {val!r} (AND, OR, OutOf)")
        i += 1
        expect("open")
        n = None
        if gate == "outof":
            n = int(expect("num"))
            expect("comma")
        rules = [expr()]
        while i < len(tokens) and tokens[i][0] == "comma":
            i += 1
            rules.append(expr())
        expect("close")
        if gate == "and":
            n = len(rules)
        elif gate == "or":
            n = 1
        if not 0 < n <= len(rules):
            raise PolicyError(f"policy {text!r}: OutOf({n}, …) over {len(rules)} rules")
        return policies_pb2.SignaturePolicy(
            n_out_of=policies_pb2.SignaturePolicy.NOutOf(n=n, rules=rules))

    rule = expr()
    if i != len(tokens):
        raise PolicyError(f"policy {text!r}: trailing text")
    return policies_pb2.SignaturePolicyEnvelope(version=0, rule=rule, identities=identities)


def satisfiable_by(env: policies_pb2.SignaturePolicyEnvelope, msp_ids: set[str] | frozenset[str]) -> bool:
    """Whether identities of the organisations ``msp_ids`` alone — as many of each as they hold, of any
    role — can satisfy the signature policy: what a rule such as "customs and another member" asks of an
    endorsement policy (an organisation may run several peers, so one that appears twice in a gate counts
    twice). Only MSP-role principals (the policy language's) are read; any other is a PolicyError."""
    def satisfied(rule: policies_pb2.SignaturePolicy) -> bool:
        if rule.HasField("n_out_of"):
            return sum(satisfied(r) for r in rule.n_out_of.rules) >= rule.n_out_of.n
        if not 0 <= rule.signed_by < len(env.identities):
            raise PolicyError(f"signed_by {rule.signed_by} names no principal")
        principal = env.identities[rule.signed_by]
        if principal.principal_classification != msp_principal_pb2.MSPPrincipal.ROLE:
            raise PolicyError("only MSP role principals ('MSPID.role') can be checked")
        return msp_principal_pb2.MSPRole.FromString(principal.principal).msp_identifier in msp_ids
    return satisfied(env.rule)


def signature_policy(text: str) -> policies_pb2.Policy:
    return policies_pb2.Policy(type=policies_pb2.Policy.SIGNATURE,
                               value=parse_signature_policy(text).SerializeToString())


def implicit_meta_policy(text: str) -> policies_pb2.Policy:
    """``MAJORITY Admins`` → Policy."""
    parts = text.split()
    if len(parts) != 2 or parts[0].upper() not in RULES:
        raise PolicyError(f"implicit policy {text!r}: use 'ANY|ALL|MAJORITY SubPolicy'")
    meta = policies_pb2.ImplicitMetaPolicy(sub_policy=parts[1], rule=RULES[parts[0].upper()])
    return policies_pb2.Policy(type=policies_pb2.Policy.IMPLICIT_META,
                               value=meta.SerializeToString())


def principal_label(p: msp_principal_pb2.MSPPrincipal) -> str:
    P = msp_principal_pb2.MSPPrincipal
    try:
        if p.principal_classification == P.ROLE:
            r = msp_principal_pb2.MSPRole.FromString(p.principal)
            return f"'{r.msp_identifier}.{ROLE_NAMES.get(r.role, r.role)}'"
        if p.principal_classification == P.ORGANIZATION_UNIT:
            o = msp_principal_pb2.OrganizationUnit.FromString(p.principal)
            return f"'{o.msp_identifier}.OU={o.organizational_unit_identifier}'"
        if p.principal_classification == P.IDENTITY:
            return f"identity({describe_serialized(p.principal)})"
        return P.Classification.Name(p.principal_classification).lower()
    except Exception:  # noqa: BLE001
        return "(unreadable principal)"


def render_signature_policy(env: policies_pb2.SignaturePolicyEnvelope) -> str:
    """A signature policy in the language (``OR(...)`` for 1 of n, ``AND(...)`` for n of n)."""
    return render_signature_rule(env, env.rule)


def render_signature_rule(env: policies_pb2.SignaturePolicyEnvelope, r: policies_pb2.SignaturePolicy) -> str:
    """One rule of ``env`` (a principal, or an n-out-of of rules) in the language."""
    if r.WhichOneof("Type") == "signed_by":
        if r.signed_by >= len(env.identities):
            return f"<missing principal {r.signed_by}>"
        return principal_label(env.identities[r.signed_by])
    subs = [render_signature_rule(env, s) for s in r.n_out_of.rules]
    n = r.n_out_of.n
    if n == 1:
        return f"OR({', '.join(subs)})"
    if n == len(subs):
        return f"AND({', '.join(subs)})"
    return f"OutOf({n}, {', '.join(subs)})"


def render_implicit_meta(rule: int, sub_policy: str) -> str:
    return f"{RULE_NAMES.get(rule, rule)} {sub_policy}"


def render_policy(policy: policies_pb2.Policy) -> str:
    if policy.type == policies_pb2.Policy.IMPLICIT_META:
        m = policies_pb2.ImplicitMetaPolicy.FromString(policy.value)
        return render_implicit_meta(m.rule, m.sub_policy)
    if policy.type == policies_pb2.Policy.SIGNATURE:
        return render_signature_policy(policies_pb2.SignaturePolicyEnvelope.FromString(policy.value))
    return f"<policy type {policy.type}>"


# ----------------------------------------------------------------------------- signature sets

@dataclass(frozen=True)
class SignedData:
    data: bytes
    identity: bytes     # serialized msp.SerializedIdentity
    signature: bytes


@dataclass
class ValidIdentities:
    """The identities that counted and the signatures that were dropped (with why)."""
    identities: list = field(default_factory=list)
    dropped: list[tuple[int, str]] = field(default_factory=list)  # (index in set, reason)


def valid_identities(signed: list[SignedData], deserializer) -> ValidIdentities:
    """Fabric's SignatureSetToValidIdentities, keeping the reasons for what it drops."""
    out = ValidIdentities()
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


# ----------------------------------------------------------------------------- evaluations

@dataclass
class Evaluation:
    """Why a policy is (not) satisfied: an implicit meta policy's sub-policies in ``children``
    (``have`` of them satisfied, ``needed``), a signature policy's signers in ``detail``."""

    path: str
    rule: str
    satisfied: bool
    needed: int = 0
    have: int = 0
    children: list["Evaluation"] = field(default_factory=list)
    detail: str = ""

    def as_dict(self) -> dict:
        return {"policy": self.path, "rule": self.rule, "satisfied": self.satisfied,
                "needed": self.needed, "have": self.have, "detail": self.detail,
                "children": [c.as_dict() for c in self.children]}

    def lines(self, indent: str = "") -> list[str]:
        mark = "satisfied" if self.satisfied else "NOT satisfied"
        count = f" ({self.have} of {self.needed} needed)" if self.needed or self.children else ""
        out = [f"{indent}{self.path}: {self.rule} → {mark}{count}"
               + (f" — {self.detail}" if self.detail else "")]
        for c in self.children:
            out += c.lines(indent + "    ")
        return out


# ----------------------------------------------------------------------------- policies

class Policy:
    path = ""  # where the policy sits in the channel config ("/Channel/Application/Admins"), if it does

    def evaluate_identities(self, identities: list) -> bool:
        raise NotImplementedError

    def evaluate(self, signed: list[SignedData], deserializer) -> tuple[bool, ValidIdentities]:
        ev = valid_identities(signed, deserializer)
        return self.evaluate_identities(ev.identities), ev

    def explain(self, identities: list) -> Evaluation:
        """The same evaluation as :meth:`evaluate_identities`, with its reasons."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class RejectPolicy(Policy):
    def __init__(self, name: str, path: str = ""):
        self.name = name
        self.path = path or name

    def evaluate_identities(self, identities) -> bool:
        return False

    def explain(self, identities) -> Evaluation:
        return Evaluation(self.path, "(missing)", False, detail="no such policy: it rejects")

    def describe(self) -> str:
        return f"(no such policy {self.name!r}: rejects everything)"


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

    def explain(self, identities: list) -> Evaluation:
        """For an n-out-of at the top (``AND(...)``, ``OutOf(...)``), how many of its parts the
        signatures satisfy (``have`` of ``needed``) and which are missing."""
        used = [False] * len(identities)
        top = self.envelope.rule
        if top.WhichOneof("Type") != "n_out_of":
            ok = self._eval(top, identities, used)
            return Evaluation(self.path, self.describe(), ok, detail=self._by(identities, used, ok))
        missing = []
        for sub in top.n_out_of.rules:          # the order and the sharing of signatures of _eval
            trial = list(used)
            if self._eval(sub, identities, trial):
                used[:] = trial
            else:
                missing.append(render_signature_rule(self.envelope, sub))
        have, needed = len(top.n_out_of.rules) - len(missing), top.n_out_of.n
        ok = have >= needed
        detail = self._by(identities, used, ok) if ok or not missing else f"missing {', '.join(missing)}"
        return Evaluation(self.path, self.describe(), ok, needed, have, detail=detail)

    @staticmethod
    def _by(identities: list, used: list[bool], ok: bool) -> str:
        by = [ident for ident, u in zip(identities, used) if u]
        return f"by {', '.join(i.describe() for i in by)}" if ok else "no signature it accepts"

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
        return render_signature_policy(self.envelope)


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
        else:   # Fabric leaves the threshold at 0 — satisfied by no signature at all: refused here (fail closed)
            raise PolicyError(f"ImplicitMeta policy{' ' + where if where else ''} has rule {rule}, none of ANY, "
                              "ALL, MAJORITY")
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

    def explain(self, identities: list) -> Evaluation:
        children = [p.explain(identities) for p in self.sub_policies]
        have = sum(c.satisfied for c in children)
        return Evaluation(self.path, render_implicit_meta(self.rule, self.sub_policy),
                          have >= self.threshold, self.threshold, have, children)

    def describe(self) -> str:
        return render_implicit_meta(self.rule, self.sub_policy) + \
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
            compiled.path = f"/{path}/{name}"
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
        return self.lookup(ref) or RejectPolicy(ref, ref if ref.startswith("/") else f"/{self.path}/{ref}")


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
        self.path = policy.path or name

    def evaluate_identities(self, identities) -> bool:
        return self.policy.evaluate_identities(identities)

    def explain(self, identities) -> Evaluation:
        return self.policy.explain(identities)

    def describe(self) -> str:
        return f"{self.name} ({self.policy.describe()})"
