"""The world state's versions, replayed from the VALID transactions, and Fabric's read checks against them.

A peer commits a transaction only if everything it read is still as it read it: each key at the version it
saw (an absent key still absent), each range read still holding the same keys at the same versions, or with
the same Merkle summary of them (``core/ledger/kvledger/txmgmt/validation``; phantom reads). A peer handing
over a chain could mark VALID a transaction whose reads were overtaken — two exits of one balance, both
endorsed on the same state — and a chain's blocks fully determine every key's version: a key's version is
``(block, transaction)`` of the last VALID transaction that wrote it (a value, a deletion, or its metadata
while it exists). :class:`VersionState` keeps them, public keys and private data's key hashes apart, and
:meth:`VersionState.conflicts` names what a transaction read that no longer holds. Transactions are applied
one by one in block order, so a later transaction of a block sees what an earlier one wrote, as Fabric's
validator does.
"""
from __future__ import annotations

import hashlib

from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2
from sortedcontainers import SortedList

from ipledger.network.verify.transactions import Tx, deletes, deletes_hashed

Version = tuple[int, int]   # (block number, transaction number)


class _Keys:
    """One namespace's (or one collection's hashed) keys and their versions, in key order for range reads."""

    def __init__(self):
        self.version: dict = {}
        self.ordered = SortedList()   # a chain holds many keys: logarithmic insertion, not a list's shifts

    def put(self, key, version: Version) -> None:
        if key not in self.version:
            self.ordered.add(key)
        self.version[key] = version

    def delete(self, key) -> None:
        if self.version.pop(key, None) is not None:
            self.ordered.remove(key)

    def between(self, start: str, end: str, include_end: bool) -> list[tuple[str, Version]]:
        """``(key, version)`` from ``start`` to ``end`` (excluded unless ``include_end``; "" = no end)."""
        keys = self.ordered.irange(minimum=start, maximum=end or None, inclusive=(True, include_end))
        return [(k, self.version[k]) for k in keys]


def _version(read) -> Version | None:
    return (read.version.block_num, read.version.tx_num) if read.HasField("version") else None


class VersionState:
    def __init__(self):
        self._public: dict[str, _Keys] = {}
        self._hashed: dict[tuple[str, str], _Keys] = {}
        # what the block's earlier VALID transactions wrote (deletes of absent keys too): a later transaction of the
        # block that read one of them conflicts, whatever the versions say (Fabric's update batch ``Exists``)
        self._touched: set[tuple] = set()

    def begin_block(self) -> None:
        self._touched = set()

    def _ns(self, ns: str) -> _Keys:
        return self._public.setdefault(ns, _Keys())

    def _coll(self, ns: str, coll: str) -> _Keys:
        return self._hashed.setdefault((ns, coll), _Keys())

    # ---------------------------------------------------------------------------------- reads
    def conflicts(self, tx: Tx, expiring=lambda ns, coll: False) -> list[str]:
        """What ``tx`` read that the state no longer holds (empty: Fabric would commit its reads). The hashed reads
        of a collection whose data expires (``expiring(ns, coll)``: a block-to-live) are not judged: Fabric
        removes expired hashes from the state, which this replay does not model."""
        found: list[str] = []
        for ns in tx.namespaces:
            keys = self._public.get(ns.namespace, _Keys())
            for r in ns.kv.reads:
                now = keys.version.get(r.key)
                if (ns.namespace, r.key) in self._touched:
                    found.append(f"read of {ns.namespace}/{r.key!r}, which an earlier transaction of the block "
                                 "wrote (MVCC_READ_CONFLICT)")
                elif now != _version(r):
                    found.append(f"read of {ns.namespace}/{r.key!r} at version {_version(r)}, but it is at "
                                 f"{now} (MVCC_READ_CONFLICT)")
            for rq in ns.kv.range_queries_info:
                why = _range_differs(keys, rq)
                if why:
                    found.append(f"range read of {ns.namespace} from {rq.start_key!r} to {rq.end_key!r}: {why} "
                                 "(PHANTOM_READ_CONFLICT)")
            for c in ns.collections:
                if expiring(ns.namespace, c.name):
                    continue
                hashed = self._hashed.get((ns.namespace, c.name), _Keys())
                for r in c.hashed.hashed_reads:
                    now = hashed.version.get(bytes(r.key_hash))
                    if (ns.namespace, c.name, bytes(r.key_hash)) in self._touched:
                        found.append(f"read of {ns.namespace}/{c.name} key hash {bytes(r.key_hash).hex()[:16]}…, "
                                     "which an earlier transaction of the block wrote (MVCC_READ_CONFLICT)")
                    elif now != _version(r):
                        found.append(f"read of {ns.namespace}/{c.name} key hash {bytes(r.key_hash).hex()[:16]}… at "
                                     f"version {_version(r)}, but it is at {now} (MVCC_READ_CONFLICT)")
        return found

    # ---------------------------------------------------------------------------------- writes
    def apply(self, tx: Tx, block: int, index: int) -> None:
        """The writes of a VALID transaction, at version ``(block, index)``."""
        version = (block, index)
        for ns in tx.namespaces:
            keys = self._ns(ns.namespace)
            written = set()
            for w in ns.kv.writes:
                written.add(w.key)
                self._touched.add((ns.namespace, w.key))
                if deletes(w):
                    keys.delete(w.key)
                else:
                    keys.put(w.key, version)
            for mw in ns.kv.metadata_writes:   # a key's metadata changed: a new version, if the key exists
                if mw.key not in written and mw.key in keys.version:
                    self._touched.add((ns.namespace, mw.key))
                    keys.put(mw.key, version)
            for c in ns.collections:
                hashed = self._coll(ns.namespace, c.name)
                written = set()
                for w in c.hashed.hashed_writes:
                    kh = bytes(w.key_hash)
                    written.add(kh)
                    self._touched.add((ns.namespace, c.name, kh))
                    if deletes_hashed(w):
                        hashed.delete(kh)
                    else:
                        hashed.put(kh, version)
                for mw in c.hashed.metadata_writes:
                    kh = bytes(mw.key_hash)
                    if kh not in written and kh in hashed.version:
                        self._touched.add((ns.namespace, c.name, kh))
                        hashed.put(kh, version)


def _range_differs(keys: _Keys, rq) -> str | None:
    """Why the range read ``rq`` (a KVRWSet's RangeQueryInfo) would read otherwise now, or None. A read that
    stopped before the end recorded its last key as ``end_key``, included (Fabric's ``includeEndKey``)."""
    now = keys.between(rq.start_key, rq.end_key, include_end=not rq.itr_exhausted)
    if rq.HasField("reads_merkle_hashes"):
        summary = rq.reads_merkle_hashes
        if summary.max_degree < 2:
            return f"its Merkle summary's degree is {summary.max_degree} (a peer's is at least 2)"
        if merkle_summary(now, summary.max_degree) != (summary.max_level, list(summary.max_level_hashes)):
            return "the keys in the range or their versions changed (its Merkle summary differs)"
        return None
    raw = [(r.key, _version(r)) for r in rq.raw_reads.kv_reads]
    if now[:len(raw)] != raw:
        return "the keys in the range or their versions changed"
    if len(now) > len(raw):
        return f"{len(now) - len(raw)} key(s) appeared in it"
    return None


# ----------------------------------------------------------------------- Merkle summary of range reads

def merkle_summary(reads: list[tuple[str, Version]], max_degree: int) -> tuple[int, list[bytes]] | None:
    """``(max_level, max_level_hashes)`` of the results of a range read as a peer summarises them
    (``rwsetutil.RangeQueryResultsHelper``, hashing on): the results in groups of ``max_degree`` + 1 at most,
    each hashed as a serialized ``QueryReads``, the hashes combined level by level when more than
    ``max_degree``. None when there are ``max_degree`` results or fewer (the peer then keeps them raw)."""
    tree: dict[int, list[bytes]] = {}
    max_level = 1
    pending: list[tuple[str, Version]] = []

    def update(leaf: bytes) -> None:
        nonlocal max_level
        tree.setdefault(1, []).append(leaf)
        level = 1
        while len(tree[level]) > max_degree:
            combined = _combine(tree.pop(level))
            level += 1
            tree.setdefault(level, []).append(combined)
            max_level = max(max_level, level)

    def flush() -> None:
        message = kv_rwset_pb2.QueryReads(kv_reads=[
            kv_rwset_pb2.KVRead(key=k, version=kv_rwset_pb2.Version(block_num=v[0], tx_num=v[1])) for k, v in pending])
        pending.clear()
        update(hashlib.sha256(message.SerializeToString()).digest())

    for read in reads:
        pending.append(read)
        if len(pending) > max_degree:
            flush()
    if not tree:
        return None
    if pending:
        flush()
    level = 1
    while level < max_level:   # done(): what is left at each level goes up, combined
        hashes = tree.pop(level, [])
        if hashes:
            tree.setdefault(level + 1, []).append(hashes[0] if len(hashes) == 1 else _combine(hashes))
        level += 1
    final = tree.get(max_level, [])
    if len(final) > max_degree:
        max_level += 1
        final = [_combine(final)]
    return max_level, final


def _combine(hashes: list[bytes]) -> bytes:
    return hashlib.sha256(b"".join(hashes)).digest()


def repeated_writes(tx: Tx) -> list[str]:
    """Keys a transaction writes twice, or whose metadata it writes twice or with an entry named twice. No peer's
    simulator makes such a read-write set, and Fabric's commit does not apply it as written (the flags of a key's
    operations add up; the last of two entries wins): this verifier's replay would differ from the ledger."""
    found: list[str] = []

    def twice(what: str, keys) -> None:
        seen: set = set()
        for k in keys:
            if k in seen:
                found.append(f"{what} {k!r} twice")
            seen.add(k)

    for ns in tx.namespaces:
        twice(f"writes {ns.namespace}/", (w.key for w in ns.kv.writes))
        twice(f"writes the metadata of {ns.namespace}/", (m.key for m in ns.kv.metadata_writes))
        for m in ns.kv.metadata_writes:
            twice(f"names, in the metadata of {ns.namespace}/{m.key!r}, the entry", (e.name for e in m.entries))
        for c in ns.collections:
            twice(f"writes {ns.namespace}/{c.name} key hash", (bytes(w.key_hash).hex() for w in c.hashed.hashed_writes))
            twice(f"writes the metadata of {ns.namespace}/{c.name} key hash",
                  (bytes(m.key_hash).hex() for m in c.hashed.metadata_writes))
            for m in c.hashed.metadata_writes:
                twice(f"names, in the metadata of a key hash of {ns.namespace}/{c.name}, the entry",
                      (e.name for e in m.entries))
    return found
