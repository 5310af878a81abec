"""A fast in-memory implementation of :class:`ipledger.chaincode.shim.interface.ChaincodeStub`.

One file, as the real stub (``chaincode/shim/stub.py``) is: every call of the interface, and the ledger that
commits or discards what a transaction wrote.

It keeps the Fabric semantics a contract can observe:

* **reads see committed state only.** Fabric does not support read-your-writes
  inside a transaction: a ``get_state`` after ``put_state`` of the same key in
  the same transaction returns the *old* value. The stub does the same, so a
  contract that relies on reading its own writes fails here as it would on a
  peer.
* **writes are buffered** and applied by :class:`MemLedger` only when the
  transaction succeeded (status < 400), so a refused transaction changes nothing.
* range and partial composite key queries return keys in sorted order; simple
  range bounds may not start with U+0000 and an empty start key is replaced by
  U+0001 (so composite keys never appear in simple ranges) — as in the Go shim.
* composite keys use the Go encoding (:mod:`ipledger.chaincode.shim.keys`).
* private data lives per collection; ``get_private_data`` is refused to
  clients whose MSP is not a member (``memberOnlyRead``), while
  ``get_private_data_hash`` (SHA-256 of the value) is open to everyone.
* history per key with tx id, timestamp and delete flag, newest first (Fabric 2+).
* ``set_event``: the last call in a transaction wins.
* the transaction timestamp, the creator (MSP id + an X.509 certificate with a
  Fabric NodeOU ``client``/``admin``) and the transient map are set per call.
"""
from __future__ import annotations

import bisect
import datetime as _dt
import functools
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ipledger.chaincode.shim import keys as _keys
from ipledger.chaincode.shim.interface import KV, KeyModification, PeerError, QueryPage

UTC = _dt.timezone.utc
ERROR_THRESHOLD = 400  # Fabric: a response status >= 400 is an error

# Fabric CA puts enrolment attributes into this extension as JSON {"attrs": {...}}.
FABRIC_CA_ATTRS_OID = x509.ObjectIdentifier("1.2.3.4.5.6.7.8.1")


# ---------------------------------------------------------------------------------------- identities

@functools.lru_cache(maxsize=None)
def _ca(msp_id: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, msp_id),
        x509.NameAttribute(NameOID.COMMON_NAME, f"ca.{msp_id.lower()}"),
    ])
    now = _dt.datetime(2020, 1, 1, tzinfo=UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + _dt.timedelta(days=36500))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


@functools.lru_cache(maxsize=None)
def identity_pem(msp_id: str, role: str = "client", common_name: str = "",
                 attrs: tuple[tuple[str, str], ...] = ()) -> bytes:
    """A PEM certificate like one issued by the org's CA with NodeOUs enabled.

    ``role`` becomes the ``OU`` (``client``, ``admin``, ``peer``, ...);
    ``attrs`` (pairs) become Fabric CA attributes in extension 1.2.3.4.5.6.7.8.1.
    Certificates are cached, so the same identity always has the same bytes.
    """
    ca_key, ca_cert = _ca(msp_id)
    key = ec.generate_private_key(ec.SECP256R1())
    cn = common_name or f"{role}1@{msp_id.lower()}"
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, msp_id),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])
    now = _dt.datetime(2020, 1, 1, tzinfo=UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + _dt.timedelta(days=36500))
    )
    if attrs:
        value = json.dumps({"attrs": dict(attrs)}).encode()
        builder = builder.add_extension(x509.UnrecognizedExtension(FABRIC_CA_ATTRS_OID, value),
                                        critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM)


def _serialized_identity(msp_id: str, pem: bytes) -> bytes:
    from fabric_protos.msp import identities_pb2

    return identities_pb2.SerializedIdentity(mspid=msp_id, id_bytes=pem).SerializeToString()


# ---------------------------------------------------------------------------------------- collections

_MEMBER = re.compile(r"'([^'.]+)\.(?:member|peer|client|admin)'")


def load_collections_config(path: str | Path) -> dict[str, frozenset[str]]:
    """Member MSPs per collection from a Fabric collections config JSON file.

    Only the simple ``OR('A.member', 'B.member')`` member policies used by
    ipledger are understood (every MSP named in the policy is a member).
    """
    data = json.loads(Path(path).read_text())
    return {c["name"]: frozenset(_MEMBER.findall(c["policy"])) for c in data}


# ---------------------------------------------------------------------------------------- iterators

class _Iter:
    """Items, read as they are asked for, that behave like a Fabric state/history iterator."""

    def __init__(self, items: Iterable[Any]):
        self._items = items
        self.closed = False

    def __iter__(self) -> Iterator[Any]:
        if self.closed:
            raise PeerError("iterator closed")
        yield from self._items
        self.closed = True

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> "_Iter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------------------------- the ledger

@dataclass
class _Committed:
    """World state, private data, validation parameters and history of one channel."""

    state: dict[str, bytes] = field(default_factory=dict)
    sorted_keys: list[str] = field(default_factory=list)
    private: dict[str, dict[str, bytes]] = field(default_factory=dict)
    validation: dict[str, bytes] = field(default_factory=dict)
    history: dict[str, list[KeyModification]] = field(default_factory=dict)

    def put(self, key: str, value: bytes) -> None:
        if key not in self.state:
            bisect.insort(self.sorted_keys, key)
        self.state[key] = value

    def delete(self, key: str) -> None:
        if key in self.state:
            del self.state[key]
            self.sorted_keys.pop(bisect.bisect_left(self.sorted_keys, key))

    def range(self, start: str, end: str) -> list[KV]:
        return list(self.scan(start, end))

    def scan(self, start: str, end: str) -> Iterator[KV]:
        """The keys from ``start`` to before ``end`` (none: to the last), read as they are asked for — as a peer's
        iterator: a read stopped after a few records costs a few records, not the whole range."""
        lo = bisect.bisect_left(self.sorted_keys, start)
        hi = bisect.bisect_left(self.sorted_keys, end) if end else len(self.sorted_keys)
        for i in range(lo, hi):
            key = self.sorted_keys[i]
            yield KV(key, self.state[key])


class TxResult(tuple):
    """What :meth:`MemLedger.invoke` returns: ``(status, message, payload, event)`` — the peer's
    response and the chaincode event ``(name, payload)`` or None — plus ``tx_id`` as an attribute."""

    def __new__(cls, status: int, message: str, payload: bytes, event: tuple[str, bytes] | None,
                tx_id: str = "") -> "TxResult":
        self = super().__new__(cls, (status, message, payload, event))
        self.tx_id = tx_id
        return self

    status = property(lambda self: self[0])
    message = property(lambda self: self[1])
    payload = property(lambda self: self[2])
    event = property(lambda self: self[3])

    @property
    def ok(self) -> bool:
        return self.status < ERROR_THRESHOLD

    def json(self) -> Any:
        """The payload decoded (success) or the error message decoded (failure)."""
        if self.ok:
            return json.loads(self.payload) if self.payload else None
        return json.loads(self.message)

    @property
    def error_code(self) -> str | None:
        return None if self.ok else json.loads(self.message).get("code")

    def event_json(self) -> Any:
        return None if self.event is None else json.loads(self.event[1])


class MemStub:
    """One transaction's view of a :class:`MemLedger` (see the module docstring)."""

    # the records a peer answers one range read with at most (ledger.state.totalQueryLimit of ipledger's peers,
    # network/org/generate.py), then "no more" as at the true end: a test may lower it
    range_limit = 100_000

    def __init__(self, ledger: "MemLedger", *, tx_id: str, timestamp: _dt.datetime, msp_id: str,
                 certificate_pem: bytes, function: str, args: Sequence[str],
                 transient: Mapping[str, bytes] | None = None, channel: str = "inward-processing",
                 proposed_args: Sequence[bytes] | None = None):
        if timestamp.tzinfo is None:
            raise ValueError("timestamp must be timezone-aware")
        self._ledger = ledger
        self._c = ledger._committed
        self._tx_id = tx_id
        self._timestamp = timestamp.astimezone(UTC)
        self._msp_id = msp_id
        self._cert = certificate_pem
        self._function = function
        self._args = list(args)
        self._transient = dict(transient or {})
        self._channel = channel
        # the input of the signed proposal: this invocation's (a proposal to the contract), or another's (the
        # contract called by another chaincode, which the proposal was made to)
        self._proposed_args = None if proposed_args is None else [bytes(a) for a in proposed_args]
        # buffered writes: key -> value or None (delete)
        self.writes: dict[str, bytes | None] = {}
        self.private_writes: dict[str, dict[str, bytes | None]] = {}
        self.validation_writes: dict[str, bytes] = {}
        self.event: tuple[str, bytes] | None = None

    # -- transaction context ---------------------------------------------------------------------------
    def get_tx_id(self) -> str:
        return self._tx_id

    def get_channel_id(self) -> str:
        return self._channel

    def get_tx_timestamp(self) -> _dt.datetime:
        return self._timestamp

    def get_creator(self) -> bytes:
        return _serialized_identity(self._msp_id, self._cert)

    def get_mspid(self) -> str:
        return self._msp_id

    def get_creator_certificate_pem(self) -> bytes:
        return self._cert

    def get_transient(self) -> Mapping[str, bytes]:
        return dict(self._transient)

    def get_signed_proposal(self) -> bytes:
        """A signed proposal as the peer passes it on: its input (the only part of it read here) is this
        invocation's arguments, or the ``proposed_args`` the stub was made with. Not signed."""
        from fabric_protos.common import common_pb2
        from fabric_protos.peer import chaincode_pb2, proposal_pb2
        args = self.get_args() if self._proposed_args is None else self._proposed_args
        spec = chaincode_pb2.ChaincodeInvocationSpec(chaincode_spec=chaincode_pb2.ChaincodeSpec(
            chaincode_id=chaincode_pb2.ChaincodeID(name="ipledger"), input=chaincode_pb2.ChaincodeInput(args=args)))
        header = common_pb2.Header(channel_header=common_pb2.ChannelHeader(
            type=common_pb2.ENDORSER_TRANSACTION, channel_id=self._channel, tx_id=self._tx_id).SerializeToString(),
            signature_header=common_pb2.SignatureHeader(creator=self.get_creator()).SerializeToString())
        payload = proposal_pb2.ChaincodeProposalPayload(input=spec.SerializeToString())
        proposal = proposal_pb2.Proposal(header=header.SerializeToString(), payload=payload.SerializeToString())
        return proposal_pb2.SignedProposal(proposal_bytes=proposal.SerializeToString()).SerializeToString()

    def get_proposed_call(self) -> tuple[str, list[bytes]] | None:
        """The call the signed proposal names: this invocation (a proposal to the contract), or the
        ``proposed_args`` the stub was made with (another chaincode's proposal, which called the contract)."""
        return "ipledger", (self.get_args() if self._proposed_args is None else list(self._proposed_args))

    def get_binding(self) -> bytes:
        return b""

    def get_function_and_parameters(self) -> tuple[str, list[str]]:
        return self._function, list(self._args)

    def get_args(self) -> list[bytes]:
        return [self._function.encode()] + [a.encode() for a in self._args]

    # -- world state ---------------------------------------------------------------------------------
    @staticmethod
    def _check_key(key: str) -> None:
        if not isinstance(key, str) or key == "":
            raise PeerError("key must be a non-empty string")

    def get_state(self, key: str) -> bytes:
        self._check_key(key)
        return self._c.state.get(key, b"")

    def get_multiple_states(self, keys: Sequence[str]) -> list[bytes]:
        return [self.get_state(k) for k in keys]

    def put_state(self, key: str, value: bytes) -> None:
        self._check_key(key)
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError("value must be bytes")
        self.writes[key] = bytes(value)

    def del_state(self, key: str) -> None:
        self._check_key(key)
        self.writes[key] = None

    def get_state_by_range(self, start_key: str, end_key: str) -> _Iter:
        _keys.validate_simple_keys(start_key, end_key)
        return self._cut(self._c.scan(_keys.range_start_key(start_key), end_key))

    def _cut(self, rows: Iterable[KV]) -> _Iter:
        """A range read as a peer answers it: at most ``range_limit`` records, then "no more" as at the true end
        (ledger.state.totalQueryLimit)."""
        return _Iter(itertools.islice(rows, self.range_limit))

    def get_state_by_range_with_pagination(self, start_key: str, end_key: str, page_size: int,
                                           bookmark: str = "") -> QueryPage:
        _keys.validate_simple_keys(start_key, end_key)
        _keys.check_bookmark(bookmark, _keys.range_start_key(start_key), end_key)
        return self._page(bookmark or _keys.range_start_key(start_key), end_key, page_size)

    def _page(self, start: str, end: str, page_size: int) -> QueryPage:
        if page_size <= 0:
            raise PeerError("page size must be positive")
        rows = self._c.range(start, end)
        items, rest = rows[:page_size], rows[page_size:]
        return QueryPage(items=items, fetched_records_count=len(items),
                         bookmark=rest[0].key if rest else "")

    def create_composite_key(self, object_type: str, attributes: Sequence[str]) -> str:
        return _keys.create_composite_key(object_type, attributes)

    def split_composite_key(self, key: str) -> tuple[str, list[str]]:
        return _keys.split_composite_key(key)

    def get_state_by_partial_composite_key(self, object_type: str, attributes: Sequence[str]) -> _Iter:
        start, end = _keys.partial_composite_key_range(object_type, attributes)
        return self._cut(self._c.scan(start, end))

    def get_state_by_partial_composite_key_from(self, object_type: str, attributes: Sequence[str],
                                                start_attributes: Sequence[str],
                                                end_attributes: Sequence[str] | None = None) -> _Iter:
        start, end = _keys.partial_composite_key_range_from(object_type, attributes, start_attributes, end_attributes)
        return self._cut(self._c.scan(start, end))

    def get_state_by_partial_composite_key_with_pagination(
            self, object_type: str, attributes: Sequence[str], page_size: int, bookmark: str = "") -> QueryPage:
        start, end = _keys.partial_composite_key_range(object_type, attributes)
        _keys.check_bookmark(bookmark, start, end)
        return self._page(bookmark or start, end, page_size)

    def get_history_for_key(self, key: str) -> _Iter:
        """Always answers here; on the network only a peer that keeps a history database does (ipledger's
        peers keep none unless the consortium file asks), so the contract does not call it."""
        self._check_key(key)
        return _Iter(reversed(self._c.history.get(key, [])))

    # -- state-based endorsement -------------------------------------------------------------------------
    def set_state_validation_parameter(self, key: str, ep: bytes) -> None:
        self._check_key(key)
        self.validation_writes[key] = bytes(ep)

    def get_state_validation_parameter(self, key: str) -> bytes:
        return self._c.validation.get(key, b"")

    # -- private data ----------------------------------------------------------------------------------
    def _collection(self, collection: str) -> frozenset[str]:
        members = self._ledger.collections.get(collection)
        if members is None:
            raise PeerError(f"collection {collection} could not be found")
        return members

    def _check_member(self, collection: str) -> None:
        if self._msp_id not in self._collection(collection):
            raise PeerError(f"tx creator does not have read access permission on privatedata in "
                            f"chaincodeName:ipledger collectionName: {collection}")

    def get_private_data(self, collection: str, key: str) -> bytes:
        self._check_member(collection)
        self._check_key(key)
        return self._c.private.get(collection, {}).get(key, b"")

    def get_private_data_hash(self, collection: str, key: str) -> bytes:
        self._collection(collection)
        value = self._c.private.get(collection, {}).get(key)
        return hashlib.sha256(value).digest() if value else b""

    def put_private_data(self, collection: str, key: str, value: bytes) -> None:
        self._collection(collection)  # memberOnlyWrite is false: anyone may write
        self._check_key(key)
        self.private_writes.setdefault(collection, {})[key] = bytes(value)

    def del_private_data(self, collection: str, key: str) -> None:
        self._collection(collection)
        self.private_writes.setdefault(collection, {})[key] = None

    def purge_private_data(self, collection: str, key: str) -> None:
        self.del_private_data(collection, key)

    def get_private_data_by_range(self, collection: str, start_key: str, end_key: str) -> _Iter:
        self._check_member(collection)
        data = self._c.private.get(collection, {})
        start = _keys.range_start_key(start_key)
        return _Iter(KV(k, data[k]) for k in sorted(data) if k >= start and (not end_key or k < end_key))

    # -- events and other chaincodes ---------------------------------------------------------------------
    def set_event(self, name: str, payload: bytes) -> None:
        if not name:
            raise PeerError("event name can not be empty string")
        self.event = (name, bytes(payload))

    def invoke_chaincode(self, chaincode_name: str, args: Sequence[bytes], channel: str = "") -> tuple[int, str, bytes]:
        raise NotImplementedError("MemStub does not run other chaincodes")


class MemLedger:
    """World state across transactions, with the commit-or-discard step of a peer.

    ``ledger.now`` is both the default transaction timestamp and the endorsing
    peer's wall clock (:meth:`peer_clock`, to inject into the contract). Each
    invoke without an explicit ``ts`` advances ``now`` by ``tick`` so that
    consecutive transactions have distinct, increasing timestamps.
    """

    DEFAULT_COLLECTIONS = {"commercial": frozenset({"CustomsMSP", "OperatorMSP"})}

    def __init__(self, now: _dt.datetime | None = None,
                 collections: Mapping[str, Iterable[str]] | None = None,
                 tick: _dt.timedelta = _dt.timedelta(milliseconds=1)):
        self.now = (now or _dt.datetime.now(UTC)).astimezone(UTC)
        self.tick = tick
        cols = self.DEFAULT_COLLECTIONS if collections is None else collections
        self.collections = {name: frozenset(members) for name, members in cols.items()}
        self._committed = _Committed()
        self._tx_counter = 0
        self.events: list[tuple[str, str, bytes]] = []  # (tx_id, name, payload) of committed txs

    # -- clock -----------------------------------------------------------------------------------------
    def peer_clock(self) -> _dt.datetime:
        return self.now

    # -- running transactions ------------------------------------------------------------------------------
    def _next_tx_id(self) -> str:
        self._tx_counter += 1
        return hashlib.sha256(f"memledger-tx-{self._tx_counter}".encode()).hexdigest()

    def stub(self, function: str = "", args: Sequence[Any] = (), *, msp: str = "OperatorMSP",
             role: str = "client", ts: _dt.datetime | None = None,
             transient: Mapping[str, Any] | None = None, eori: str | None = None,
             common_name: str = "", proposed_args: Sequence[bytes] | None = None) -> MemStub:
        """A stub for one transaction (not yet run). Each of ``args`` is JSON-encoded, as a client of
        the contract API does; pass ``bytes`` to send an argument exactly as given."""
        if ts is None:
            ts = self.now
            self.now = self.now + self.tick
        attrs = (("eori", eori),) if eori else ()
        pem = identity_pem(msp, role, common_name, attrs)
        raw_args = [a.decode() if isinstance(a, bytes) else json.dumps(a) for a in args]
        tmap = {k: (v if isinstance(v, bytes) else json.dumps(v).encode()) for k, v in (transient or {}).items()}
        return MemStub(self, tx_id=self._next_tx_id(), timestamp=ts, msp_id=msp, certificate_pem=pem,
                       function=function, args=raw_args, transient=tmap, proposed_args=proposed_args)

    def invoke(self, contract: Any, fn: str, args: Sequence[Any] = (), msp: str = "OperatorMSP",
               ts: _dt.datetime | None = None, transient: Mapping[str, Any] | None = None, *,
               role: str = "client", eori: str | None = None, common_name: str = "",
               commit: bool = True, proposed_args: Sequence[bytes] | None = None) -> TxResult:
        """Run one transaction; commit its writes if it succeeded (and ``commit``). ``proposed_args``: the input
        of the proposal, when the contract is not what it was made to (another chaincode's call of it)."""
        stub = self.stub(fn, args, msp=msp, role=role, ts=ts, transient=transient, eori=eori,
                         common_name=common_name, proposed_args=proposed_args)
        status, message, payload = contract.invoke(stub, fn, stub.get_function_and_parameters()[1])
        ok = status < ERROR_THRESHOLD
        if ok and commit:
            self.commit(stub)
        return TxResult(status, message, payload, stub.event if ok else None, stub.get_tx_id())

    def evaluate(self, contract: Any, fn: str, args: Sequence[Any] = (), msp: str = "OperatorMSP",
                 ts: _dt.datetime | None = None, **kw: Any) -> TxResult:
        """Run a transaction and discard its writes (the Gateway's Evaluate)."""
        return self.invoke(contract, fn, args, msp, ts, commit=False, **kw)

    def commit(self, stub: MemStub) -> None:
        c = self._committed
        ts, tx_id = stub.get_tx_timestamp(), stub.get_tx_id()
        for key, value in stub.writes.items():
            if value is None:
                existed = key in c.state
                c.delete(key)
                if existed:
                    c.history.setdefault(key, []).append(KeyModification(tx_id, b"", ts, True))
            else:
                c.put(key, value)
                c.history.setdefault(key, []).append(KeyModification(tx_id, value, ts, False))
        for collection, writes in stub.private_writes.items():
            data = c.private.setdefault(collection, {})
            for key, value in writes.items():
                if value is None:
                    data.pop(key, None)
                else:
                    data[key] = value
        for key, ep in stub.validation_writes.items():
            if ep:
                c.validation[key] = ep
            else:               # an empty validation parameter is none: the chaincode policy judges the key
                c.validation.pop(key, None)
        if stub.event is not None:
            self.events.append((tx_id, stub.event[0], stub.event[1]))

    # -- inspection ------------------------------------------------------------------------------------
    def snapshot(self) -> tuple:
        """An immutable copy of everything a transaction can change, for 'nothing written' checks."""
        c = self._committed
        return (
            tuple(sorted(c.state.items())),
            tuple(sorted((n, tuple(sorted(d.items()))) for n, d in c.private.items())),
            tuple(sorted(c.validation.items())),
            tuple(sorted((k, len(v)) for k, v in c.history.items())),
            len(self.events),
        )

    @property
    def state(self) -> Mapping[str, bytes]:
        return dict(self._committed.state)

    def private(self, collection: str) -> Mapping[str, bytes]:
        return dict(self._committed.private.get(collection, {}))

    def validation_parameter(self, key: str) -> bytes:
        return self._committed.validation.get(key, b"")

    def validation_parameters(self) -> Mapping[str, bytes]:
        """Every key carrying a key-level policy, with it."""
        return dict(self._committed.validation)

    def as_recorded_before(self, member: str) -> None:
        """Every stored record as a contract before ``member`` existed wrote it: that member taken out wherever it
        is, at any depth (what a test of a rule that keeps earlier records' meaning starts from)."""
        import json

        from ipledger.chaincode.contract.state import canonical_json

        def strip(value):
            if isinstance(value, dict):
                return {k: strip(v) for k, v in value.items() if k != member}
            return [strip(v) for v in value] if isinstance(value, list) else value
        for key, raw in self.state.items():
            if f'"{member}"'.encode() in raw:
                self._committed.put(key, canonical_json(strip(json.loads(raw))))
