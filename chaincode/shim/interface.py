"""The stub interface every ipledger contract is written against.

Two implementations exist and must stay interchangeable:

* ``ipledger.chaincode.shim`` — the real one, talking to a Fabric peer over the
  chaincode gRPC stream (``peer/chaincode_shim.proto``);
* ``ipledger.chaincode.testing.memstub`` — a fast in-memory one for unit tests of
  contract rules.

Contract code is synchronous: the shim runs each transaction in a greenlet of
its event loop (or, with ``--worker-threads``, in a worker thread) and every call
below suspends that transaction until the peer answers, while the stream keeps
serving other transactions. Names follow the Go shim
(``GetState`` → ``get_state``) so the Fabric documentation applies.

Conventions
-----------
* Keys are ``str``; values are ``bytes``. A missing key reads as ``b""``
  (Fabric's convention) — use :meth:`get_state` and test for emptiness.
* Composite keys follow Go's encoding: ``"\\x00" + object_type + "\\x00" +
  attr + "\\x00" ...``; an attribute containing U+0000 or U+10FFFF is
  refused with ``ValueError``; empty attributes are allowed.
* Range and partial-key iterators are context managers and plain iterables of
  :class:`KV`; they are always closed (on exhaustion, ``close()`` or ``with``).
* Errors the peer returns (``ERROR`` messages) raise :class:`PeerError`.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Iterator, Mapping, Optional, Protocol, Sequence, runtime_checkable


class PeerError(Exception):
    """The peer refused a stub call (it answered with an ERROR message)."""


@dataclass(frozen=True)
class KV:
    key: str
    value: bytes
    namespace: str = ""


@dataclass(frozen=True)
class KeyModification:
    tx_id: str
    value: bytes
    timestamp: _dt.datetime  # timezone-aware UTC
    is_delete: bool


@dataclass(frozen=True)
class QueryPage:
    """One page of a paginated range / partial-key query."""

    items: list[KV]
    fetched_records_count: int
    bookmark: str


@runtime_checkable
class StateIterator(Protocol):
    def __iter__(self) -> Iterator[KV]: ...
    def close(self) -> None: ...
    def __enter__(self) -> "StateIterator": ...
    def __exit__(self, *exc) -> None: ...


@runtime_checkable
class HistoryIterator(Protocol):
    def __iter__(self) -> Iterator[KeyModification]: ...
    def close(self) -> None: ...
    def __enter__(self) -> "HistoryIterator": ...
    def __exit__(self, *exc) -> None: ...


@runtime_checkable
class ChaincodeStub(Protocol):
    # -- transaction context -------------------------------------------------
    def get_tx_id(self) -> str: ...
    def get_channel_id(self) -> str: ...
    def get_tx_timestamp(self) -> _dt.datetime: ...  # timezone-aware UTC
    def get_creator(self) -> bytes: ...  # serialized msp.SerializedIdentity
    def get_mspid(self) -> str: ...  # MSP id of the creator
    def get_creator_certificate_pem(self) -> bytes: ...
    def get_transient(self) -> Mapping[str, bytes]: ...
    def get_signed_proposal(self) -> bytes: ...  # serialized peer.SignedProposal
    # ipledger's own: (chaincode name, arguments) of the signed proposal's invocation — another chaincode's
    # when this one is called by it —, None when there is no proposal or its input does not parse
    def get_proposed_call(self) -> Optional[tuple[str, list[bytes]]]: ...
    def get_binding(self) -> bytes: ...
    def get_function_and_parameters(self) -> tuple[str, list[str]]: ...
    def get_args(self) -> list[bytes]: ...

    # -- world state -----------------------------------------------------------
    def get_state(self, key: str) -> bytes: ...
    def get_multiple_states(self, keys: Sequence[str]) -> list[bytes]: ...
    def put_state(self, key: str, value: bytes) -> None: ...
    def del_state(self, key: str) -> None: ...
    def get_state_by_range(self, start_key: str, end_key: str) -> StateIterator: ...
    def get_state_by_range_with_pagination(
        self, start_key: str, end_key: str, page_size: int, bookmark: str = ""
    ) -> QueryPage: ...
    def create_composite_key(self, object_type: str, attributes: Sequence[str]) -> str: ...
    def split_composite_key(self, key: str) -> tuple[str, list[str]]: ...
    def get_state_by_partial_composite_key(
        self, object_type: str, attributes: Sequence[str]
    ) -> StateIterator: ...
    # ipledger's own: the keys of the partial composite key from ``start_attributes`` on (a range within it), and
    # before ``end_attributes`` when given
    def get_state_by_partial_composite_key_from(
        self, object_type: str, attributes: Sequence[str], start_attributes: Sequence[str],
        end_attributes: Optional[Sequence[str]] = None,
    ) -> StateIterator: ...
    def get_state_by_partial_composite_key_with_pagination(
        self, object_type: str, attributes: Sequence[str], page_size: int, bookmark: str = ""
    ) -> QueryPage: ...
    # only on a peer that keeps a history database (consortium file: history_database); others refuse
    def get_history_for_key(self, key: str) -> HistoryIterator: ...

    # -- state-based endorsement -----------------------------------------------
    def set_state_validation_parameter(self, key: str, ep: bytes) -> None: ...
    def get_state_validation_parameter(self, key: str) -> bytes: ...

    # -- private data -------------------------------------------------------------
    def get_private_data(self, collection: str, key: str) -> bytes: ...
    def get_private_data_hash(self, collection: str, key: str) -> bytes: ...
    def put_private_data(self, collection: str, key: str, value: bytes) -> None: ...
    def del_private_data(self, collection: str, key: str) -> None: ...
    def purge_private_data(self, collection: str, key: str) -> None: ...
    def get_private_data_by_range(
        self, collection: str, start_key: str, end_key: str
    ) -> StateIterator: ...

    # -- events and other chaincodes ---------------------------------------------
    def set_event(self, name: str, payload: bytes) -> None: ...  # last call wins
    def invoke_chaincode(
        self, chaincode_name: str, args: Sequence[bytes], channel: str = ""
    ) -> tuple[int, str, bytes]: ...  # (status, message, payload)
