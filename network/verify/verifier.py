"""Independent verification of a channel's blocks, from the genesis block on.

:class:`Verifier` is fed blocks in order (``feed``) and checks each one against
what it has verified before — it trusts nothing but the genesis block (the trust
anchor, compared to a trusted copy when one is given):

1. the block number follows; ``previous_hash`` is the previous header's hash;
   ``data_hash`` is the hash of the data; the envelopes are in canonical form;
2. the orderer signatures satisfy ``/Channel/Orderer/BlockValidation`` of the
   config in force (signers deserialized and validated by the channel MSPs); the
   last-config index the orderer signed is the last config block;
3. config blocks: the orderer-signed CONFIG envelope, then the update it carries is
   authorized and reproduces the new config (:func:`.config_update.check_config_update`),
   which is in force from the next block on;
4. every transaction the peer marked VALID: its form (as a peer checks it), its
   creator (valid member of a channel MSP, signature over the payload, admitted by
   ``/Channel/Writers``), a tx id never used before, and for endorser transactions
   every endorsement signature and the endorsement policies in force
   (:mod:`.endorsement`), with chaincode definitions and key-level policies replayed
   from the VALID transactions of earlier blocks, and its reads against the state's
   versions (:mod:`.versions`: no read overtaken, no phantom in a range read); a
   transaction marked invalid for its endorsements or its reads that passes both is
   an inconsistency too (a good transaction hidden would leave the replay behind).

The first block with an inconsistency ends the verification; everything wrong in
that block is reported (so a tampered transaction is named even when the block's
data hash already gives it away). One file of a little over 500 lines: the checks
of one block, in the order a committing peer makes them.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from fabric_protos.common import common_pb2, configtx_pb2

from ipledger.network.fabric import blocks as B
from ipledger.network.fabric.config import ChannelConfig, ConfigError, config_envelope_of
from ipledger.network.fabric.config_update import check_config_update
from ipledger.network.verify.endorsement import EndorsementChecker, KeyState, metadata_written_keys, \
    render_application_policy
from ipledger.network.verify.lifecycle import LIFECYCLE, DefinitionError, LifecycleState
from ipledger.network.fabric.msp import MSPError, describe_serialized
from ipledger.network.fabric.policy import SignedData, valid_identities
from ipledger.network.verify.transactions import CODE_NAMES, ENDORSEMENT_POLICY_FAILURE, READ_CONFLICTS, VALID, Tx, \
    TxFormatError, deletes, parse_tx
from ipledger.network.verify.versions import VersionState, repeated_writes

BLOCK_VALIDATION = "/Channel/Orderer/BlockValidation"
# A VALID transaction timestamped this long before one of an earlier block was endorsed, then held back before it was
# ordered (Fabric checks a proposal's time when it is endorsed, not when it is committed): no client's transaction
# falls that far behind otherwise — the peers accept a proposal within 15 minutes of their clocks, either way.
HELD_BACK_S = 35 * 60
CHANNEL_WRITERS = "/Channel/Writers"

NOT_CHECKED = [
    "why a transaction was marked INVALID, beyond ENDORSEMENT_POLICY_FAILURE, MVCC_READ_CONFLICT and "
    "PHANTOM_READ_CONFLICT (re-evaluated: a transaction so marked that this verifier finds good is an "
    "inconsistency); a peer marking a good transaction INVALID with another code is not detected",
    "that the chain is whole: blocks cut off after the last one received, or another chain signed by the "
    "same orderers (a fork), cannot be told from one copy; compare the last header hash with another peer's",
    "the COMMIT_HASH block metadata (the peer's own hash of its state updates)",
    "private data values (only their hashes are on the chain; the hashes are covered), and the reads of "
    "private data whose collection has a block-to-live (expired hashes are not replayed)",
    "certificate expiry (Fabric does not check it when validating blocks either), extended key "
    "usages, the legacy Go 1.14 name-constraint rule, Idemix and RSA identities",
    "orderer-side consensus rules on config updates (consenter set changes, consensus type "
    "migration); the update's authorization and result are checked",
    "within a block, a key whose validation parameter an earlier transaction changed is judged "
    "from this verifier's own evaluation of that earlier transaction (as Fabric's validator does), "
    "not from the peer's",
    "stricter than Fabric: an endorsement whose signature does not verify fails a VALID transaction "
    "even if the remaining endorsements satisfy the policy (Fabric silently drops it); an ImplicitMeta "
    "policy of an unknown rule is refused (Fabric counts it satisfied by no signature at all)",
]


@dataclass
class Problem:
    block: int
    check: str
    message: str
    tx_index: int | None = None
    tx_id: str | None = None

    def __str__(self) -> str:
        where = f"block {self.block}"
        if self.tx_index is not None:
            where += f", tx {self.tx_index}"
            if self.tx_id:
                where += f" ({self.tx_id})"
        return f"{where}: {self.check}: {self.message}"

    def to_dict(self) -> dict:
        return {"block": self.block, "tx_index": self.tx_index, "tx_id": self.tx_id,
                "check": self.check, "message": self.message}


@dataclass
class Stats:
    blocks: int = 0
    config_blocks: list[int] = field(default_factory=list)
    transactions: int = 0
    valid: int = 0
    invalid: Counter = field(default_factory=Counter)
    config_txs: int = 0
    endorser_valid: Counter = field(default_factory=Counter)     # chaincode -> valid txs
    endorser_invalid: Counter = field(default_factory=Counter)
    orderer_signatures: int = 0
    creator_signatures: int = 0
    endorsement_signatures: int = 0
    policy_checks: Counter = field(default_factory=Counter)      # scope kind -> evaluations
    config_updates: list[dict] = field(default_factory=list)
    not_checked: list[str] = field(default_factory=list)
    epf_confirmed: int = 0                   # ENDORSEMENT_POLICY_FAILURE codes this verifier agrees with
    warnings: list[str] = field(default_factory=list)
    last_hash: str = ""
    genesis_hash: str = ""


class Verifier:
    def __init__(self, *, trusted_genesis: common_pb2.Block | None = None, strict_endorsements: bool = True):
        self.trusted_genesis = trusted_genesis
        self.strict = strict_endorsements
        self.config: ChannelConfig | None = None
        self.channel: str | None = None
        self.expected = 0
        self.prev_hash = b""
        self.last_config = 0
        self.lifecycle = LifecycleState()
        self.keys = KeyState()
        self.versions = VersionState()   # applied transaction by transaction, within a block too
        self.tx_ids: set[str] = set()
        self.stats = Stats()
        self.problems: list[Problem] = []
        self.definitions_seen: dict[str, dict] = {}
        self._pending_config: tuple[ChannelConfig, int] | None = None
        self._pending_writes: list[Tx] = []
        self._latest_time = 0.0   # the latest timestamp of a VALID transaction of the blocks before this one

    @property
    def failed(self) -> bool:
        return bool(self.problems)

    # -------------------------------------------------------------------------------- blocks
    def feed(self, block: common_pb2.Block) -> bool:
        """Verify the next block; False (and ``problems`` filled) at an inconsistency."""
        if self.failed:
            raise RuntimeError("verification already failed")
        n = block.header.number
        found: list[Problem] = []

        def problem(check: str, message: str, tx: int | None = None, tx_id: str | None = None):
            found.append(Problem(n, check, message, tx, tx_id))

        if n != self.expected:
            problem("block number", f"expected block {self.expected}, got block {n}")
        if self.expected > 0 and block.header.previous_hash != self.prev_hash:
            problem("hash chain", f"previous_hash {block.header.previous_hash.hex()} is not the hash of "
                                  f"block {self.expected - 1}'s header ({self.prev_hash.hex()})")
        computed = B.data_hash(block.data)
        if computed != block.header.data_hash:
            problem("data hash", f"header data_hash {block.header.data_hash.hex()} but the block's "
                                 f"data hashes to {computed.hex()}: the transactions were altered")
        if self.expected == 0:
            self._genesis(block, problem)
        else:
            self._block(block, problem)
        if found:
            self.problems = found
            return False
        self.prev_hash = B.header_hash(block.header)
        self.stats.last_hash = self.prev_hash.hex()
        self.stats.blocks += 1
        self.expected += 1
        return True

    def _genesis(self, block, problem) -> None:
        if self.trusted_genesis is not None:
            t = self.trusted_genesis
            if B.header_hash(t.header) != B.header_hash(block.header) or list(t.data.data) != list(block.data.data):
                problem("trust anchor", "block 0 differs from the trusted genesis block "
                                        f"(header hash {B.header_hash(block.header).hex()} vs "
                                        f"{B.header_hash(t.header).hex()})")
                return
        try:
            env, chdr = config_envelope_of(block)
            self.config = ChannelConfig.from_config(env.config, 0)
        except (ConfigError, ValueError) as exc:
            problem("genesis", f"block 0 is not a usable config block: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - protobuf DecodeError
            problem("genesis", f"block 0 does not parse: {exc}")
            return
        self.channel = chdr.channel_id
        if self.config.hashing_algorithm() != "SHA256":
            problem("genesis", f"hashing algorithm {self.config.hashing_algorithm()} (only SHA256 is known)")
        flt = B.tx_filter(block)
        if flt and flt[0] != VALID:
            problem("genesis", f"the genesis config transaction is marked {CODE_NAMES.get(flt[0], flt[0])}")
        self.stats.genesis_hash = B.header_hash(block.header).hex()
        self.stats.config_blocks.append(0)
        self.stats.transactions += 1
        self.stats.valid += 1
        self.stats.config_txs += 1

    def _block(self, block, problem) -> None:
        n = block.header.number
        self._orderer_signatures(block, problem)
        if len(block.metadata.metadata) < len(common_pb2.BlockMetadataIndex.keys()):
            problem("metadata", f"{len(block.metadata.metadata)} metadata entries, expected "
                                f"{len(common_pb2.BlockMetadataIndex.keys())}")
        txs = list(block.data.data)
        if not txs:
            problem("data", "the block holds no transaction")
            return
        flt = B.tx_filter(block)
        if len(flt) != len(txs):
            problem("transactions filter", f"{len(flt)} validation codes for {len(txs)} transactions")
            flt = flt + bytes([255]) * (len(txs) - len(flt))
        parsed: list[Tx | None] = []
        for i, raw in enumerate(txs):
            try:
                tx = parse_tx(raw, i)
            except TxFormatError as exc:
                if flt[i] == VALID:
                    problem("transaction form", f"marked VALID but {exc.code}: {exc}", i, exc.tx_id)
                parsed.append(None)
                continue
            if tx.chdr.channel_id != self.channel:
                if flt[i] == VALID:
                    problem("transaction form", f"for channel {tx.chdr.channel_id!r}", i, tx.tx_id)
                parsed.append(None)
                continue
            parsed.append(tx)

        is_config = any(t is not None and t.type == common_pb2.CONFIG for t in parsed)
        if not is_config:
            for i, raw in enumerate(txs):
                if not _canonical(raw):
                    t = parsed[i]
                    problem("transaction form", "the envelope is not well formed (no payload or "
                                                "signature, or extra bytes); a peer refuses such a block",
                            i, t.tx_id if t else None)
        if is_config:
            if len(txs) != 1:
                problem("config block", f"a config transaction shares its block with {len(txs) - 1} others")
                return
            self._config_tx(block, parsed[0], flt[0], problem)
        else:
            self._endorser_txs(block, parsed, flt, problem)
        try:
            last = B.last_config_index(block)
        except Exception:  # noqa: BLE001 - protobuf DecodeError
            problem("last config", "the last config index in the block metadata does not parse")
            return
        expected_last = n if is_config else self.last_config
        if last is None:
            problem("last config", "the block carries no last config index (the orderer signs one into every "
                                   "block)")
        elif last != expected_last:
            problem("last config", f"the orderer signed last config index {last}, but the last config "
                                   f"block is {expected_last}")

    def _orderer_signatures(self, block, problem) -> None:
        try:
            md = B.signatures_metadata(block)
        except Exception as exc:  # noqa: BLE001
            problem("orderer signature", f"the signatures metadata does not parse: {exc}")
            return
        header = B.header_bytes(block.header)
        signed = []
        for ms in md.signatures:
            if not ms.signature_header and ms.identifier_header:
                try:
                    ih = common_pb2.IdentifierHeader.FromString(ms.identifier_header)
                except Exception:  # noqa: BLE001
                    problem("orderer signature", "an identifier header does not parse")
                    continue
                ident = self.config.consenter_identity(ih.identifier)
                if ident is None:
                    continue  # not in the consenter set: ignored, as Fabric does
                signed.append(SignedData(md.value + ms.identifier_header + header, ident, ms.signature))
            else:
                try:
                    shdr = common_pb2.SignatureHeader.FromString(ms.signature_header)
                except Exception:  # noqa: BLE001
                    problem("orderer signature", "a signature header does not parse")
                    continue
                signed.append(SignedData(md.value + ms.signature_header + header, shdr.creator, ms.signature))
        policy = self.config.policies.get(BLOCK_VALIDATION)
        ev = valid_identities(signed, self.config.msps)
        if not signed:
            problem("orderer signature", "the block carries no orderer signature")
        elif not policy.evaluate_identities(ev.identities):
            why = "; ".join(r for _, r in ev.dropped) or "signers do not satisfy it"
            problem("orderer signature", f"{BLOCK_VALIDATION} ({policy.describe()}) not satisfied: {why}")
        self.stats.orderer_signatures += len(ev.identities)

    # -------------------------------------------------------------------------------- creators
    def _creator(self, tx: Tx, problem, admission: bool = True) -> bool:
        try:
            ident = self.config.msps.deserialize(tx.shdr.creator)
            ident.validate()
        except MSPError as exc:
            problem("creator", f"creator {describe_serialized(tx.shdr.creator)} is not a valid member "
                               f"of the channel: {exc}", tx.index, tx.tx_id)
            return False
        try:
            ident.verify(tx.envelope.payload, tx.envelope.signature)
        except MSPError as exc:
            problem("creator signature", f"{ident.describe()}: {exc}", tx.index, tx.tx_id)
            return False
        self.stats.creator_signatures += 1
        if admission:
            writers = self.config.policies.get(CHANNEL_WRITERS)
            if not writers.evaluate_identities([ident]):
                problem("creator", f"{ident.describe()} does not satisfy {CHANNEL_WRITERS} "
                                   f"({writers.describe()}), which the orderer admits transactions by",
                        tx.index, tx.tx_id)
                return False
        return True

    # -------------------------------------------------------------------------------- config
    def _config_tx(self, block, tx: Tx | None, code: int, problem) -> None:
        n = block.header.number
        if tx is None:
            return
        if code != VALID:
            problem("config block", f"the config transaction is marked {CODE_NAMES.get(code, code)}",
                    0, tx.tx_id)
        self._creator(tx, problem, admission=False)
        try:
            env = configtx_pb2.ConfigEnvelope.FromString(tx.payload.data)
            check = check_config_update(self.config, env, self.channel)
            new = ChannelConfig.from_config(env.config, n)
        except (ConfigError, ValueError) as exc:
            problem("config update", str(exc), 0, tx.tx_id)
            return
        except Exception as exc:  # noqa: BLE001
            problem("config update", f"does not parse: {exc}", 0, tx.tx_id)
            return
        self.stats.config_updates.append({"block": n, "sequence": env.config.sequence,
                                          "signers": check.signers, "changed": check.changed,
                                          "policies": check.policies})
        self.stats.config_blocks.append(n)
        self.stats.transactions += 1
        self.stats.valid += 1
        self.stats.config_txs += 1
        self._pending_config = (new, n)

    # -------------------------------------------------------------------------------- endorser
    def _endorser_txs(self, block, parsed: list[Tx | None], flt: bytes, problem) -> None:
        checker = EndorsementChecker(self.config, self.lifecycle, self.keys)
        self.versions.begin_block()
        updated_in_block: dict[tuple, list[int]] = {}
        block_ids: set[str] = set()
        valid_txs = []
        for i, tx in enumerate(parsed):
            code = flt[i]
            self.stats.transactions += 1
            if code != VALID:
                self.stats.invalid[CODE_NAMES.get(code, str(code))] += 1
                if tx is not None and tx.type == common_pb2.ENDORSER_TRANSACTION and tx.tx_id:
                    block_ids.add(tx.tx_id)     # the ledger indexes every tx id, valid or not
                if tx is not None and tx.type == common_pb2.ENDORSER_TRANSACTION and tx.form_error is None:
                    self.stats.endorser_invalid[tx.chaincode] += 1
                    res = checker.check(tx, updated_in_block, strict=False)
                    self._record_dependencies(tx, res, updated_in_block)
                    if code == ENDORSEMENT_POLICY_FAILURE and res.failures:
                        self.stats.epf_confirmed += 1
                    # a good transaction hidden as invalid would leave this replay (key-level policies,
                    # definitions, versions) behind the peers', and later transactions judged by it
                    elif code in (ENDORSEMENT_POLICY_FAILURE, *READ_CONFLICTS) and not res.failures \
                            and not res.not_checked and not self.versions.conflicts(tx, self._expiring):
                        problem("invalid cross-check", f"marked {CODE_NAMES[code]}, but its endorsements satisfy "
                                "the policies and its reads hold: every peer commits it", i, tx.tx_id)
                continue
            if tx is None:
                continue
            self.stats.valid += 1
            if tx.type != common_pb2.ENDORSER_TRANSACTION:
                problem("transaction form", f"a {tx.type_name} transaction in a data block", i, tx.tx_id)
                continue
            if tx.form_error is not None:
                # Fabric checks the creator's signature first, then the body.
                block_ids.add(tx.tx_id)
                self._creator(tx, problem)
                problem("transaction form", f"marked VALID but {tx.form_error.code}: {tx.form_error}",
                        i, tx.tx_id)
                continue
            self.stats.endorser_valid[tx.chaincode] += 1
            if tx.tx_id in self.tx_ids or tx.tx_id in block_ids:
                problem("tx id", "marked VALID but its tx id was used before (Fabric marks "
                                 "DUPLICATE_TXID)", i, tx.tx_id)
            block_ids.add(tx.tx_id)
            self._creator(tx, problem)
            res = checker.check(tx, updated_in_block, strict=self.strict)
            self.stats.endorsement_signatures += len(tx.endorsements) - len(res.signature_problems)
            for msg in res.signature_problems:
                problem("endorsement signature", msg, i, tx.tx_id)
            for msg in res.failures:
                problem("endorsement policy", msg, i, tx.tx_id)
            for c in res.checks:
                kind = c.scope.split(" ")[0]
                self.stats.policy_checks[f"{kind} ({c.namespace})" if c.namespace == LIFECYCLE else kind] += 1
            for msg in res.not_checked:
                if msg not in self.stats.not_checked:
                    self.stats.not_checked.append(msg)
            for msg in repeated_writes(tx):
                problem("read-write set", f"marked VALID but {msg}", i, tx.tx_id)
            for msg in self.versions.conflicts(tx, self._expiring):
                problem("read conflict", f"marked VALID but its {msg}", i, tx.tx_id)
            self.versions.apply(tx, block.header.number, i)
            self._record_dependencies(tx, res, updated_in_block)
            valid_txs.append(tx)
        self._held_back(block.header.number, valid_txs)
        self.tx_ids |= block_ids
        self._pending_writes = valid_txs

    def _held_back(self, number: int, valid_txs: list[Tx]) -> None:
        """A warning for each VALID transaction timestamped more than :data:`HELD_BACK_S` before one of an earlier
        block: endorsed, then kept and submitted later — its ledger time (the contract's rules were judged at it)
        is older than its place in the chain. Not an inconsistency: Fabric commits it."""
        times = [(tx, tx.chdr.timestamp.seconds + tx.chdr.timestamp.nanos / 1e9) for tx in valid_txs]
        for tx, when in times:
            if self._latest_time - when > HELD_BACK_S:
                self.stats.warnings.append(
                    f"block {number}: transaction {tx.tx_id} is timestamped {(self._latest_time - when) / 60:.0f} "
                    f"minutes before a transaction of an earlier block: endorsed, then held back before it was "
                    f"ordered (its ledger time is older than its place in the chain)")
        self._latest_time = max([self._latest_time, *(when for _tx, when in times)])

    def _expiring(self, ns: str, coll: str) -> bool:
        """Whether collection ``coll`` of ``ns`` has its data expire (a block-to-live): its hashed reads are not
        judged (the replay does not remove expired hashes, as Fabric does)."""
        try:
            d = self.lifecycle.definition(ns)
        except DefinitionError:
            return True
        config = d.collections.get(coll) if d is not None else None
        return config is not None and config.block_to_live > 0

    @staticmethod
    def _record_dependencies(tx: Tx, res, updated: dict) -> None:
        for k in metadata_written_keys(tx):
            if res.namespace_ok.get(k[0]):
                updated.setdefault(k, []).append(tx.index)

    # -------------------------------------------------------------------------------- commit
    def commit(self, block: common_pb2.Block) -> None:
        """Apply what a verified block changes (config, definitions, key metadata)."""
        pending = self._pending_config
        if pending is not None:
            self.config, self.last_config = pending
            self._pending_config = None
        for tx in self._pending_writes:
            for ns in tx.namespaces:
                if ns.namespace == LIFECYCLE:
                    for w in ns.kv.writes:
                        self.lifecycle.apply_write(w.key, w.value, deletes(w), block.header.number)
            self.keys.apply(tx)
            if any(ns.namespace == LIFECYCLE and ns.kv.writes for ns in tx.namespaces):
                self._note_definitions(block.header.number)
        self._pending_writes = []

    def _note_definitions(self, block_number: int) -> None:
        for name in self.lifecycle.names():
            try:
                d = self.lifecycle.definition(name)
            except DefinitionError as exc:
                # a transaction of that chaincode then fails its endorsement check (no usable policy)
                warning = f"block {block_number}: {exc}"
                if warning not in self.stats.warnings:
                    self.stats.warnings.append(warning)
                continue
            if d is None:
                continue
            seen = self.definitions_seen.get(name)
            if seen is None or seen["sequence"] != d.sequence:
                self.definitions_seen[name] = {
                    "sequence": d.sequence, "version": d.version, "committed_in_block": block_number,
                    "validation_plugin": d.validation_plugin,
                    "endorsement_policy": render_application_policy(d.validation_parameter, self.config),
                    "collections": sorted(d.collections)}

    def verify(self, block: common_pb2.Block) -> bool:
        ok = self.feed(block)
        if ok:
            self.commit(block)
        return ok

    # -------------------------------------------------------------------------------- report
    def report(self, source: str = "", trust: str = "") -> dict:
        s = self.stats
        return {
            "ok": not self.failed,
            "channel": self.channel,
            "source": source,
            "trust_anchor": trust,
            "blocks_verified": s.blocks,
            "height_verified": self.expected,
            "genesis_header_hash": s.genesis_hash,
            "last_header_hash": s.last_hash,
            "config_blocks": s.config_blocks,
            "config_updates": s.config_updates,
            "transactions": {"total": s.transactions, "valid": s.valid,
                             "invalid": sum(s.invalid.values()),
                             "invalid_by_code": dict(sorted(s.invalid.items())),
                             "config": s.config_txs},
            "chaincodes": {
                name: {"valid_txs": s.endorser_valid.get(name, 0),
                       "invalid_txs": s.endorser_invalid.get(name, 0),
                       "keys_with_key_level_policy": self.keys.with_parameter(name),
                       **({"definition": self.definitions_seen[name]} if name in self.definitions_seen else {})}
                for name in sorted(set(s.endorser_valid) | set(s.endorser_invalid) | set(self.definitions_seen))
            },
            "checked": {
                "orderer_signatures": s.orderer_signatures,
                "creator_signatures": s.creator_signatures,
                "endorsement_signatures": s.endorsement_signatures,
                "policy_evaluations": dict(sorted(s.policy_checks.items())),
                "keys_with_key_level_policy": self.keys.with_parameter(),
            },
            "invalid_cross_check": {"endorsement_policy_failures_confirmed": s.epf_confirmed},
            "warnings": s.warnings,
            "not_checked": NOT_CHECKED + s.not_checked,
            "problems": [p.to_dict() for p in self.problems],
        }


def _canonical(raw: bytes) -> bool:
    """Fabric's VerifyTransactionsAreWellFormed: payload and signature set, no extra bytes."""
    try:
        env = common_pb2.Envelope.FromString(raw)
    except Exception:  # noqa: BLE001
        return False
    if not env.payload or not env.signature:
        return False
    return env.SerializeToString() == raw

