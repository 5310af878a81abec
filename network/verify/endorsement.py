"""Endorsement policies of a transaction, evaluated as Fabric's v2.x validator does.

``core/committer/txvalidator/v20/plugindispatcher`` and
``core/common/validation/statebased`` (validator_keylevel.go, v20.go):

- the namespaces checked are the invoked chaincode plus every namespace the
  read-write set writes to (values, private hashes or metadata);
- each namespace's chaincode endorsement policy is the ``validation_parameter`` of
  its committed definition; ``_lifecycle``'s is ``/Channel/Application/LifecycleEndorsement``
  (or, without it, a majority of the application orgs' members);
- for every written key (public, then private by key hash) the key's own
  validation parameter (state-based endorsement, set through the key's metadata)
  is evaluated if it has one; otherwise, for a private key, the collection's
  endorsement policy if the collection defines one (implicit org collections:
  ``/Channel/Application/<org>/Endorsement``, else any member of the org);
  otherwise the chaincode policy. Each policy is evaluated once per transaction;
  if nothing was evaluated (no writes), the chaincode policy is;
- a key whose validation parameter was changed by an earlier transaction of the
  same block that passed endorsement validation fails the later transaction;
- the signature set is each endorsement's signature over
  proposal_response_payload + endorser.

Validation parameters of keys are replayed from the metadata writes of VALID
transactions (:class:`KeyState`) with the ledger's rules (``txmgmt/validation/tx_ops.go``):
deleting a key drops its metadata; writing a value keeps it unless the same
transaction rewrites the metadata; a metadata write to a key that does not exist
is ignored.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from fabric_protos.common import policies_pb2
from fabric_protos.msp import msp_principal_pb2
from fabric_protos.peer import policy_pb2

from ipledger.network.fabric.config import ChannelConfig
from ipledger.network.verify.lifecycle import IMPLICIT_PREFIX, LIFECYCLE, DefinitionError, LifecycleState
from ipledger.network.fabric.msp import MSPError, describe_serialized
from ipledger.network.fabric.policy import NamedPolicy, Policy, PolicyError, SignaturePolicy, SignedData, \
    application_policy, valid_identities
from ipledger.network.verify.transactions import Tx, deletes, deletes_hashed

VALIDATION_PARAMETER = "VALIDATION_PARAMETER"
LIFECYCLE_ENDORSEMENT = "/Channel/Application/LifecycleEndorsement"
# the validation plugin name Fabric's peers map to their built-in validation (core.yaml handlers.validators,
# ipledger's too: network/org/generate.py); another name is a plugin of the peers' own, not evaluated here
BUILTIN_PLUGINS = {"vscc"}


def signed_by_n_members(n: int, msp_ids: list[str]) -> policies_pb2.SignaturePolicyEnvelope:
    principals = [msp_principal_pb2.MSPPrincipal(
        principal_classification=msp_principal_pb2.MSPPrincipal.ROLE,
        principal=msp_principal_pb2.MSPRole(msp_identifier=m, role=msp_principal_pb2.MSPRole.MEMBER)
        .SerializeToString()) for m in msp_ids]
    rules = [policies_pb2.SignaturePolicy(signed_by=i) for i in range(len(msp_ids))]
    return policies_pb2.SignaturePolicyEnvelope(
        version=0, identities=principals,
        rule=policies_pb2.SignaturePolicy(n_out_of=policies_pb2.SignaturePolicy.NOutOf(n=n, rules=rules)))


# ----------------------------------------------------------------------------- key metadata

class KeyState:
    """Which keys exist and their validation parameter, from the VALID transactions so far."""

    def __init__(self):
        self.keys: dict[tuple, bytes | None] = {}   # (ns, coll, key) -> validation parameter

    def validation_parameter(self, ns: str, coll: str, key) -> bytes | None:
        return self.keys.get((ns, coll, key))

    def with_parameter(self, ns: str | None = None) -> int:
        """How many keys carry a key-level policy now (of namespace ``ns``, or of all)."""
        return sum(1 for (n, _c, _k), v in self.keys.items() if v and ns in (None, n))

    def apply(self, tx: Tx) -> None:
        ops: dict[tuple, dict] = {}

        def op(k):
            return ops.setdefault(k, {"upsert": False, "delete": False, "md": False, "vp": None})

        for ns in tx.namespaces:
            for w in ns.kv.writes:
                o = op((ns.namespace, "", w.key))
                o["delete" if deletes(w) else "upsert"] = True
            for mw in ns.kv.metadata_writes:
                o = op((ns.namespace, "", mw.key))
                o["md"] = True
                o["vp"] = _vp(mw.entries)
            for c in ns.collections:
                for w in c.hashed.hashed_writes:
                    o = op((ns.namespace, c.name, bytes(w.key_hash)))
                    o["delete" if deletes_hashed(w) else "upsert"] = True
                for mw in c.hashed.metadata_writes:
                    o = op((ns.namespace, c.name, bytes(mw.key_hash)))
                    o["md"] = True
                    o["vp"] = _vp(mw.entries)
        for k, o in ops.items():
            if o["delete"]:
                self.keys.pop(k, None)
            elif o["upsert"] and o["md"]:
                self.keys[k] = o["vp"]
            elif o["upsert"]:
                self.keys.setdefault(k, None)
            elif k in self.keys:          # metadata only: applies to existing keys only
                self.keys[k] = o["vp"]


def _vp(entries) -> bytes | None:
    for e in entries:
        if e.name == VALIDATION_PARAMETER:
            return bytes(e.value) or None
    return None


def metadata_written_keys(tx: Tx) -> set[tuple]:
    out = set()
    for ns in tx.namespaces:
        for mw in ns.kv.metadata_writes:
            out.add((ns.namespace, "", mw.key))
        for c in ns.collections:
            for mw in c.hashed.metadata_writes:
                out.add((ns.namespace, c.name, bytes(mw.key_hash)))
    return out


# ----------------------------------------------------------------------------- results

@dataclass
class PolicyCheck:
    namespace: str
    scope: str          # "chaincode", "collection <name>", "key <key>"
    policy: str
    satisfied: bool


@dataclass
class EndorsementResult:
    endorsers: list[str] = field(default_factory=list)
    signature_problems: list[str] = field(default_factory=list)
    checks: list[PolicyCheck] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)        # policy failures / lookup errors
    not_checked: list[str] = field(default_factory=list)
    namespace_ok: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.signature_problems


def _key_label(coll: str, key) -> str:
    if coll:
        return f"private key {bytes(key).hex()[:16]}… of collection {coll}"
    return f"key {key!r}"


class EndorsementChecker:
    def __init__(self, config: ChannelConfig, lifecycle: LifecycleState, keys: KeyState):
        self.config = config
        self.lifecycle = lifecycle
        self.keys = keys

    # -- policies -----------------------------------------------------------------------------
    def chaincode_policy(self, ns: str) -> tuple[Policy | None, str | None, str]:
        """(policy, reason if it cannot be checked, plugin)."""
        if ns == LIFECYCLE:
            p = self.config.policies.lookup(LIFECYCLE_ENDORSEMENT)
            if p is not None:
                return NamedPolicy(LIFECYCLE_ENDORSEMENT, p), None, "vscc"
            ids = sorted(self.config.application_orgs().values())
            return SignaturePolicy(signed_by_n_members(len(ids) // 2 + 1, ids)), None, "vscc"
        try:
            d = self.lifecycle.definition(ns)
        except DefinitionError as exc:
            return None, str(exc), ""
        if d is None:
            return None, f"chaincode {ns!r} has no committed definition", ""
        if not d.validation_plugin:
            return None, f"the definition of {ns!r} names no validation plugin (a peer validates none of its " \
                         "transactions)", ""
        if d.validation_plugin not in BUILTIN_PLUGINS:
            return None, None, d.validation_plugin
        try:
            return application_policy(d.validation_parameter, self.config.policies), None, d.validation_plugin
        except PolicyError as exc:
            return None, f"endorsement policy of {ns!r} unusable: {exc}", d.validation_plugin

    def collection_policy(self, ns: str, coll: str) -> Policy | None:
        """The collection's own endorsement policy, None to use the chaincode's; raises PolicyError."""
        if coll.startswith(IMPLICIT_PREFIX):
            msp_id = coll[len(IMPLICIT_PREFIX):]
            orgs = [name for name, m in self.config.application_orgs().items() if m == msp_id]
            if not orgs:
                raise PolicyError(f"no org with MSP id {msp_id!r} in the channel (implicit collection)")
            ref = f"/Channel/Application/{orgs[0]}/Endorsement"
            p = self.config.policies.lookup(ref)
            if p is not None:
                return NamedPolicy(ref, p)
            return SignaturePolicy(signed_by_n_members(1, [msp_id]))
        try:
            d = self.lifecycle.definition(ns) if ns != LIFECYCLE else None
        except DefinitionError as exc:
            raise PolicyError(str(exc)) from None
        if d is None or coll not in d.collections:
            raise PolicyError(f"no collection {coll!r} in the definition of {ns!r}")
        static = d.collections[coll]
        if static.HasField("endorsement_policy"):
            return application_policy(static.endorsement_policy.SerializeToString(), self.config.policies)
        return None

    # -- evaluation ---------------------------------------------------------------------------
    def check(self, tx: Tx, updated_in_block: dict[tuple, list[int]], strict: bool = True) -> EndorsementResult:
        """Evaluate ``tx``'s endorsements. ``updated_in_block``: key -> earlier tx indexes of the
        block whose endorsement validation passed and that rewrote that key's metadata."""
        res = EndorsementResult()
        signed = [SignedData(tx.prp_bytes + e.endorser, e.endorser, e.signature) for e in tx.endorsements]
        if strict:
            for i, e in enumerate(tx.endorsements):
                try:
                    ident = self.config.msps.deserialize(e.endorser)
                    ident.verify(signed[i].data, e.signature)
                except MSPError as exc:
                    res.signature_problems.append(
                        f"endorsement {i} by {describe_serialized(e.endorser)}: {exc}")
        ev = valid_identities(signed, self.config.msps)
        ids = ev.identities
        res.endorsers = [i.describe() for i in ids]
        if not tx.endorsements:
            res.failures.append("the transaction carries no endorsement")

        namespaces = [tx.chaincode] + [ns.namespace for ns in tx.namespaces
                                       if ns.writes_something() and ns.namespace != tx.chaincode]
        for ns in namespaces:
            res.namespace_ok[ns] = self._check_namespace(tx, ns, ids, updated_in_block, res)
        return res

    def _check_namespace(self, tx: Tx, ns: str, ids, updated, res: EndorsementResult) -> bool:
        cc_policy, problem, plugin = self.chaincode_policy(ns)
        if problem:
            res.failures.append(problem)
            return False
        if cc_policy is None:
            res.not_checked.append(f"namespace {ns!r} uses validation plugin {plugin!r}: not evaluated")
            return True
        state = {"some": False, "cc": False, "colls": set()}

        def evaluate(policy: Policy, scope: str) -> bool:
            ok = policy.evaluate_identities(ids)
            res.checks.append(PolicyCheck(ns, scope, policy.describe(), ok))
            if not ok:
                who = ", ".join(res.endorsers) or "no valid endorser"
                res.failures.append(f"endorsements by [{who}] do not satisfy the {scope} policy of "
                                    f"{ns!r}: {policy.describe()}")
            return ok

        def cc_if_not_checked(coll: str) -> bool:
            if coll:
                if coll in state["colls"]:
                    return True
                try:
                    cp = self.collection_policy(ns, coll)
                except PolicyError as exc:
                    res.failures.append(f"{ns!r}: {exc}")
                    return False
                if cp is not None:
                    if not evaluate(cp, f"collection {coll}"):
                        return False
                    state["colls"].add(coll)
                    state["some"] = True
                    return True
            if state["cc"]:
                return True
            if not evaluate(cc_policy, "chaincode"):
                return False
            state["cc"] = state["some"] = True
            return True

        def key(coll: str, k) -> bool:
            earlier = updated.get((ns, coll, k))
            if earlier:
                res.failures.append(f"the validation parameter of {_key_label(coll, k)} in {ns!r} was "
                                    f"changed by transaction {earlier[0]} of the same block")
                return False
            vp = self.keys.validation_parameter(ns, coll, k)
            if not vp:
                return cc_if_not_checked(coll)
            try:
                p = SignaturePolicy.from_bytes(vp)
            except PolicyError as exc:
                res.failures.append(f"key-level policy of {_key_label(coll, k)} in {ns!r}: {exc}")
                return False
            if not evaluate(p, f"key-level ({_key_label(coll, k)})"):
                return False
            state["some"] = True
            return True

        nsset = next((s for s in tx.namespaces if s.namespace == ns), None)
        if nsset is not None:
            for w in nsset.kv.writes:
                if not key("", w.key):
                    return False
            for mw in nsset.kv.metadata_writes:
                if not key("", mw.key):
                    return False
            for c in nsset.collections:
                for w in c.hashed.hashed_writes:
                    if not key(c.name, bytes(w.key_hash)):
                        return False
            for c in nsset.collections:
                for mw in c.hashed.metadata_writes:
                    if not key(c.name, bytes(mw.key_hash)):
                        return False
        if state["some"]:
            return True
        if not evaluate(cc_policy, "chaincode"):
            return False
        return True


def render_application_policy(data: bytes, config: ChannelConfig) -> str:
    try:
        return application_policy(data, config.policies).describe()
    except PolicyError as exc:
        try:
            ap = policy_pb2.ApplicationPolicy.FromString(data)
            if ap.channel_config_policy_reference:
                return f"{ap.channel_config_policy_reference} (missing: {exc})"
        except Exception:  # noqa: BLE001
            pass
        return f"(unusable policy: {exc})"
