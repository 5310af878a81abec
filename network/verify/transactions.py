"""Transactions of a block, unpacked and checked for form as a committing peer does.

``core/common/validation/msgvalidation.go`` (``ValidateTransaction``) and the
dispatcher of ``core/committer/txvalidator/v20``: the envelope and its header
parse; the type is ENDORSER_TRANSACTION or CONFIG; epoch is 0; nonce and creator
are set; for endorser transactions the tx id is hex(SHA-256(nonce + creator)),
there is exactly one action, its proposal hash is SHA-256(channel header +
action signature header + chaincode proposal payload), the chaincode named in the
header extension is the one in the response, with a version, events belong to it,
and no namespace appears twice in the read-write set.

A transaction marked VALID that fails any of these is an inconsistency.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from fabric_protos.common import common_pb2
from fabric_protos.ledger.rwset import rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2
from fabric_protos.peer import chaincode_event_pb2, proposal_pb2, proposal_response_pb2, \
    transaction_pb2

from ipledger.network.fabric.headers import transaction_id

CODE_NAMES = {v: k for k, v in transaction_pb2.TxValidationCode.items()}
VALID = transaction_pb2.VALID
ENDORSEMENT_POLICY_FAILURE = transaction_pb2.ENDORSEMENT_POLICY_FAILURE
READ_CONFLICTS = (transaction_pb2.MVCC_READ_CONFLICT, transaction_pb2.PHANTOM_READ_CONFLICT)
_HASH_OF_NOTHING = hashlib.sha256(b"").digest()


def deletes(write: kv_rwset_pb2.KVWrite) -> bool:
    """Whether a committing peer applies ``write`` as a delete: flagged so, or with an empty value (Fabric's
    ``IsKVWriteDelete``, FAB-18386: older peers wrote deletes of that form)."""
    return write.is_delete or not write.value


def deletes_hashed(write: kv_rwset_pb2.KVWriteHash) -> bool:
    """The same for a private data write's hash: flagged a delete or a purge, no value hash, or the hash of
    nothing (``IsKVWriteHashDelete``)."""
    return write.is_delete or write.is_purge or not write.value_hash or bytes(write.value_hash) == _HASH_OF_NOTHING


class TxFormatError(ValueError):
    """A transaction is not in the form a peer accepts; ``code`` is the validation code Fabric gives it."""

    def __init__(self, code: str, message: str, tx_id: str | None = None):
        super().__init__(message)
        self.code = code
        self.tx_id = tx_id


@dataclass
class CollectionSet:
    name: str
    hashed: kv_rwset_pb2.HashedRWSet


@dataclass
class NamespaceSet:
    namespace: str
    kv: kv_rwset_pb2.KVRWSet
    collections: list[CollectionSet] = field(default_factory=list)

    def writes_something(self) -> bool:
        """Fabric's txWritesToNamespace."""
        if self.kv.writes or self.kv.metadata_writes:
            return True
        return any(c.hashed.hashed_writes or c.hashed.metadata_writes for c in self.collections)


@dataclass
class Tx:
    index: int
    envelope: common_pb2.Envelope
    payload: common_pb2.Payload
    chdr: common_pb2.ChannelHeader
    shdr: common_pb2.SignatureHeader
    # endorser transactions only
    chaincode: str = ""
    chaincode_version: str = ""
    prp_bytes: bytes = b""
    endorsements: list = field(default_factory=list)
    namespaces: list[NamespaceSet] = field(default_factory=list)
    form_error: TxFormatError | None = None   # set when the header is sound but the body is not

    @property
    def tx_id(self) -> str:
        return self.chdr.tx_id

    @property
    def type(self) -> int:
        return self.chdr.type

    @property
    def type_name(self) -> str:
        try:
            return common_pb2.HeaderType.Name(self.chdr.type)
        except ValueError:
            return str(self.chdr.type)


def _parse(cls, data: bytes, code: str, what: str):
    try:
        return cls.FromString(data)
    except Exception as exc:  # noqa: BLE001 - protobuf DecodeError
        raise TxFormatError(code, f"{what} does not parse: {exc}") from None


def parse_tx(raw: bytes, index: int, *, genesis: bool = False) -> Tx:
    """Unpack and form-check one envelope (raises TxFormatError with Fabric's code name)."""
    env = _parse(common_pb2.Envelope, raw, "INVALID_OTHER_REASON", "the envelope")
    payload = _parse(common_pb2.Payload, env.payload, "BAD_PAYLOAD", "the payload")
    if not payload.HasField("header"):
        raise TxFormatError("BAD_COMMON_HEADER", "the payload has no header")
    chdr = _parse(common_pb2.ChannelHeader, payload.header.channel_header, "BAD_COMMON_HEADER",
                  "the channel header")
    shdr = _parse(common_pb2.SignatureHeader, payload.header.signature_header, "BAD_COMMON_HEADER",
                  "the signature header")
    tx = Tx(index, env, payload, chdr, shdr)
    if chdr.type not in (common_pb2.ENDORSER_TRANSACTION, common_pb2.CONFIG):
        raise TxFormatError("UNSUPPORTED_TX_PAYLOAD", f"transaction type {tx.type_name}")
    if chdr.epoch != 0:
        raise TxFormatError("BAD_COMMON_HEADER", f"epoch {chdr.epoch}, expected 0", chdr.tx_id)
    if genesis:
        return tx
    if not shdr.nonce:
        raise TxFormatError("BAD_COMMON_HEADER", "the signature header has no nonce", chdr.tx_id)
    if not shdr.creator:
        raise TxFormatError("BAD_COMMON_HEADER", "the signature header has no creator", chdr.tx_id)
    if chdr.type == common_pb2.ENDORSER_TRANSACTION:
        try:
            _parse_endorser(tx)
        except TxFormatError as exc:
            exc.tx_id = chdr.tx_id
            tx.form_error = exc
    return tx


def _parse_endorser(tx: Tx) -> None:
    expected = transaction_id(tx.shdr.nonce, tx.shdr.creator)
    if tx.chdr.tx_id != expected:
        raise TxFormatError("BAD_PROPOSAL_TXID", f"tx id {tx.chdr.tx_id!r} is not "
                                                 f"SHA-256(nonce + creator) = {expected}")
    bad = "INVALID_ENDORSER_TRANSACTION"
    t = _parse(transaction_pb2.Transaction, tx.payload.data, bad, "the transaction")
    if len(t.actions) != 1:
        raise TxFormatError(bad, f"{len(t.actions)} actions, Fabric supports exactly one")
    action = t.actions[0]
    ashdr = _parse(common_pb2.SignatureHeader, action.header, bad, "the action's signature header")
    if not ashdr.nonce or not ashdr.creator:
        raise TxFormatError(bad, "the action's signature header lacks a nonce or a creator")
    cap = _parse(transaction_pb2.ChaincodeActionPayload, action.payload, bad, "the chaincode action payload")
    if not cap.HasField("action"):
        raise TxFormatError(bad, "the chaincode action payload has no endorsed action")
    prp = _parse(proposal_response_pb2.ProposalResponsePayload, cap.action.proposal_response_payload,
                 bad, "the proposal response payload")
    if not cap.chaincode_proposal_payload:
        raise TxFormatError(bad, "no chaincode proposal payload")
    phash = hashlib.sha256(tx.payload.header.channel_header + action.header
                           + cap.chaincode_proposal_payload).digest()
    if phash != prp.proposal_hash:
        raise TxFormatError(bad, "the proposal hash in the endorsed response does not match the "
                                 "transaction's header and proposal payload")
    ext = _parse(proposal_pb2.ChaincodeHeaderExtension, tx.chdr.extension, "BAD_HEADER_EXTENSION",
                 "the chaincode header extension")
    cc_action = _parse(proposal_pb2.ChaincodeAction, prp.extension, "BAD_RESPONSE_PAYLOAD",
                       "the chaincode action")
    rws = _parse(rwset_pb2.TxReadWriteSet, cc_action.results, "BAD_RWSET", "the read-write set")
    if not ext.HasField("chaincode_id"):
        raise TxFormatError("INVALID_OTHER_REASON", "no chaincode id in the header extension")
    if not cc_action.HasField("chaincode_id"):
        raise TxFormatError("INVALID_OTHER_REASON", "no chaincode id in the chaincode action")
    name = ext.chaincode_id.name
    if not name:
        raise TxFormatError("INVALID_CHAINCODE", "empty chaincode name")
    if name != cc_action.chaincode_id.name:
        raise TxFormatError("INVALID_CHAINCODE", f"inconsistent chaincode ids {name!r} / "
                                                 f"{cc_action.chaincode_id.name!r}")
    if not cc_action.chaincode_id.version:
        raise TxFormatError("INVALID_CHAINCODE", "empty chaincode version")
    if cc_action.events:
        ev = _parse(chaincode_event_pb2.ChaincodeEvent, cc_action.events, "INVALID_OTHER_REASON",
                    "the chaincode event")
        if ev.chaincode_id != name:
            raise TxFormatError("INVALID_OTHER_REASON", f"event of chaincode {ev.chaincode_id!r} "
                                                        f"in a transaction of {name!r}")
    seen = set()
    for ns in rws.ns_rwset:
        if ns.namespace in seen:
            raise TxFormatError("ILLEGAL_WRITESET", f"namespace {ns.namespace!r} appears twice")
        seen.add(ns.namespace)
        kv = _parse(kv_rwset_pb2.KVRWSet, ns.rwset, "BAD_RWSET", f"the read-write set of {ns.namespace}")
        colls = [CollectionSet(c.collection_name,
                               _parse(kv_rwset_pb2.HashedRWSet, c.hashed_rwset, "BAD_RWSET",
                                      f"the hashed read-write set of {ns.namespace}/{c.collection_name}"))
                 for c in ns.collection_hashed_rwset]
        tx.namespaces.append(NamespaceSet(ns.namespace, kv, colls))
    tx.chaincode = name
    tx.chaincode_version = cc_action.chaincode_id.version
    tx.prp_bytes = cap.action.proposal_response_payload
    tx.endorsements = list(cap.action.endorsements)
