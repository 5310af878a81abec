"""World state access for one transaction, with an in-transaction cache.

Fabric does not let a transaction read its own writes: ``get_state`` after
``put_state`` returns the committed value. The contract therefore never reads
the stub directly: :class:`State` remembers what the transaction wrote and
answers later reads (and partial-key scans) from that memory first.

Values are JSON objects stored in canonical form (sorted keys, compact,
UTF-8, no floats computed by the contract: see ``decimals.py``) so that every
endorsing peer produces byte-identical write sets.
"""
from __future__ import annotations

import contextlib

import hashlib
import json
from typing import Any, Iterator

Key = tuple  # (object_type, *attributes), see keys.py

# A peer answers one range read with at most ``ledger.state.totalQueryLimit`` records and then says "no more", as
# at the true end of the range (Fabric's query response builder); every peer's limit must be at least this (Fabric's
# default and ipledger's, network/org/generate.py: 100,000).
RANGE_READ_CUT_AT_LEAST = 1000
# ... and the contract takes at most this many records from one range read, then closes it and reads on from after
# its last key. So no peer's limit ever cuts a read, and what each read holds is the same on every peer: the peer
# hands records over in batches of 100 and has read one record past the last batch it handed over, 901 keys at
# most here — while a read run to a peer's own limit would end where that peer's limit is, and the range reads in
# the read set (which Fabric compares across the endorsements) would differ between peers of different limits.
RANGE_READ_CHUNK = 900
# after every key of a composite key's prefix (Fabric's maxUnicodeRuneValue)
LAST_CHARACTER = "\U0010ffff"


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def digest(value: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``value``."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


class State:
    def __init__(self, stub: Any, *, range_read_chunk: int | None = None):
        self.stub = stub
        self._chunk = range_read_chunk or RANGE_READ_CHUNK
        self._cache: dict[str, bytes] = {}  # key -> bytes (b"" = absent or deleted)
        self._written: dict[str, None] = {}  # keys written, in order (a dict: no set is ever iterated)
        self._ranges: dict[tuple[str, str], dict[str, bytes]] = {}  # (start, end) -> the committed keys and values

    def key(self, key: Key) -> str:
        object_type, *attrs = key
        return self.stub.create_composite_key(object_type, [str(a) for a in attrs])

    def get(self, key: Key) -> Any | None:
        """The value (a fresh copy), or None when absent."""
        k = self.key(key)
        raw = self._cache.get(k)
        if raw is None:
            raw = self.stub.get_state(k)
            self._cache[k] = raw
        return json.loads(raw) if raw else None

    def prefetch(self, keys: list[Key]) -> None:
        """Read ``keys`` in one round trip to the peer (GetMultipleStates) ahead of their use.

        Only for keys the transaction reads anyway when it succeeds: a read joins the read set (the MVCC
        check at commit) whether it comes from here or from :meth:`get` (tests/unit/contract/
        test_contract_read_ahead.py runs every kind of event with and without its read-aheads and compares
        the keys read)."""
        wanted = [k for k in dict.fromkeys(self.key(key) for key in keys) if k not in self._cache]
        if len(wanted) == 1:
            self._cache[wanted[0]] = self.stub.get_state(wanted[0])
        elif wanted:
            for k, raw in zip(wanted, self.stub.get_multiple_states(wanted)):
                self._cache[k] = raw

    def exists(self, key: Key) -> bool:
        return self.get(key) is not None

    def put(self, key: Key, value: Any) -> None:
        k = self.key(key)
        raw = canonical_json(value)
        self._cache[k] = raw
        self._written[k] = None
        self.stub.put_state(k, raw)

    def delete(self, key: Key) -> None:
        k = self.key(key)
        self._cache[k] = b""
        self._written[k] = None
        self.stub.del_state(k)

    def first_from(self, object_type: str, attrs: tuple, start_attrs: tuple) -> tuple[list[str], Any] | None:
        """The first committed ``(attributes, value)`` among the keys of ``(object_type, *attrs)`` from
        ``(*attrs, *start_attrs)`` on, or None — a range read: when there is none, Fabric checks at commit that
        none was added meanwhile (a transaction that adds one first makes this one fail its read set)."""
        with contextlib.closing(self.scan_from(object_type, attrs, start_attrs)) as found:
            return next(found, None)

    def scan_from(self, object_type: str, attrs: tuple, start_attrs: tuple) -> Iterator[tuple[list[str], Any]]:
        """The committed ``(attributes, value)`` of the keys of ``(object_type, *attrs)`` from ``(*attrs,
        *start_attrs)`` on, in key order, read as they are asked for (range reads, ended when the caller stops)."""
        with contextlib.closing(self._read_chunks(object_type, [str(a) for a in attrs],
                                                  [str(a) for a in start_attrs])) as found:   # closed with this one
            for key, value in found:
                yield self.stub.split_composite_key(key)[1], json.loads(value)

    def scan(self, object_type: str, *attrs: str) -> Iterator[tuple[list[str], Any]]:
        """``(attributes, value)`` of every key starting with ``(object_type, *attrs)``, sorted by key,
        including this transaction's own writes (a partial composite key query: range reads)."""
        return self.scan_between(object_type, attrs)

    def scan_between(self, object_type: str, attrs: tuple, start_attrs: tuple = (),
                     end_attrs: tuple | None = None) -> Iterator[tuple[list[str], Any]]:
        """``(attributes, value)`` of the keys of ``(object_type, *attrs)`` from ``(*attrs, *start_attrs)`` on and, with
        ``end_attrs``, before ``(*attrs, *end_attrs)``, sorted by key, including this transaction's own writes: range
        reads bounded at both ends, so a key another transaction adds outside them meanwhile (a log entry recorded
        after the moment read up to) does not invalidate this one."""
        attrs, start_attrs = [str(a) for a in attrs], [str(a) for a in start_attrs]
        end_attrs = None if end_attrs is None else [str(a) for a in end_attrs]
        start = self.stub.create_composite_key(object_type, [*attrs, *start_attrs])
        end = (self.stub.create_composite_key(object_type, attrs) + LAST_CHARACTER if end_attrs is None
               else self.stub.create_composite_key(object_type, [*attrs, *end_attrs]))
        committed = self._ranges.get((start, end))
        if committed is None:  # the committed state cannot change during the transaction: one read per range
            committed = self._ranges[(start, end)] = dict(self._read_chunks(object_type, attrs, start_attrs,
                                                                            end_attrs))
        found = dict(committed)
        for k in self._written:
            if start <= k < end:
                found[k] = self._cache[k]
        for k in sorted(found):
            if found[k]:
                yield self.stub.split_composite_key(k)[1], json.loads(found[k])

    def _read_chunks(self, object_type: str, attrs: list[str], start_attrs: list[str] | None = None,
                     end_attrs: list[str] | None = None) -> Iterator[tuple[str, bytes]]:
        """The committed ``(key, value)`` of the partial composite key (from ``start_attrs`` on, before ``end_attrs``
        when given), in key order, over range reads of at most :data:`RANGE_READ_CHUNK` records each: a read is
        closed at that count and followed by another from just after its last key (``last + U+0000``: the next
        possible key), until one ends before it. Each read joins the read set, so Fabric checks the whole range at
        commit."""
        it = (self.stub.get_state_by_partial_composite_key(object_type, attrs) if not start_attrs and end_attrs is None
              else self.stub.get_state_by_partial_composite_key_from(object_type, attrs, start_attrs or [], end_attrs))
        while True:
            count, last = 0, None
            with it:
                for kv in it:
                    yield kv.key, kv.value
                    count, last = count + 1, kv.key
                    if count == self._chunk:
                        break
            if count < self._chunk:
                return
            after = [*self.stub.split_composite_key(last)[1][len(attrs):], ""]
            it = self.stub.get_state_by_partial_composite_key_from(object_type, attrs, after, end_attrs)
