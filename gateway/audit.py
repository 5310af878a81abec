"""The audit trail of a lot, a batch or an authorisation (domain.md §7: who, when, which orgs endorsed).

Every entry of the contract's history (``GetLotHistory`` / ``GetBatchHistory``) or event log
(``GetEventsInPeriod``) — queried as the caller's org, so the contract's visibility rules apply — with:

* ``tx_id``, ``block_number`` (``qscc GetBlockByTxID``), ``recorded_at`` (ledger time), ``event_type``,
  ``event_id``, ``occurred_at``;
* ``submitting_org`` and ``submitter_subject`` — the MSP and the certificate subject of the creator of
  the transaction, read from the block;
* ``endorsing_orgs`` / ``endorsers`` — from the transaction's endorsements in the block, read from the
  caller's org's peer with the Deliver service (:mod:`ipledger.network.fabric.deliver`) — each block once for the
  answer's transactions in it, at most ``block_reads`` blocks an answer —, cached per transaction in the feed
  database (blocks never change). Only transactions the caller's query returned are looked up, so nothing of
  another org's transactions is shown.

Exported as JSON or CSV (:func:`to_csv`; formula-like text made inert, see :mod:`ipledger.gateway.csvsafe`).
"""
from __future__ import annotations

import contextlib
import csv
import io
import logging
import threading
from typing import Protocol

from cryptography import x509
from fabric_protos.common import common_pb2
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import transaction_pb2

from ipledger.gateway.csvsafe import cell as csv_cell
from ipledger.gateway.csvsafe import neutralise

log = logging.getLogger("ipledger.gateway.audit")

CSV_COLUMNS = ("block_number", "tx_id", "recorded_at", "event_type", "event_id", "occurred_at", "authorisation_id",
               "submitting_org", "submitter_subject", "endorsing_orgs", "endorsers", "validation_code", "lots",
               "batches", "event")


class BlockReader(Protocol):
    # channel: on a gateway of several channels, the transaction's (None: the gateway's first)
    def block(self, org: str, number: int, channel: str | None = None) -> common_pb2.Block: ...


class FabricBlockReader:
    """Blocks from an org's own peer through Deliver (one Gateway connection per org, opened lazily)."""

    def __init__(self, config):
        self.config = config
        self._gateways: dict = {}
        self._signers: list = []
        self._lock = threading.Lock()

    def _gateway(self, org: str):
        with self._lock:
            gw = self._gateways.get(org)
            if gw is None:
                from ipledger.gateway.client import Endpoint, Gateway
                from ipledger.gateway.ledger import load_org_identity
                conn = self.config.orgs[org]
                identity, signer = load_org_identity(self.config, conn)
                self._signers.append(signer)
                gw = Gateway.connect(Endpoint(conn.peer_address, tls_root_cert=conn.tls_root_cert,
                                              server_name=conn.server_name), identity, signer)
                self._gateways[org] = gw
            return gw

    def block(self, org: str, number: int, channel: str | None = None) -> common_pb2.Block:
        stream = self._gateway(org).network(channel or self.config.channel).blocks(number, number, timeout=30)
        try:
            return next(iter(stream))
        finally:
            stream.close()

    def close(self) -> None:
        with self._lock:
            for gw in self._gateways.values():
                with contextlib.suppress(Exception):
                    gw.close()
            self._gateways.clear()
            from ipledger.gateway.ledger import close_signer
            for signer in self._signers:
                close_signer(signer)
            self._signers.clear()


def _identity(raw: bytes) -> dict:
    sid = identities_pb2.SerializedIdentity.FromString(raw)
    subject = None
    try:
        subject = x509.load_pem_x509_certificate(sid.id_bytes).subject.rfc4514_string()
    except ValueError:
        pass
    return {"msp_id": sid.mspid, "subject": subject}


def transaction_info(block: common_pb2.Block, tx_id: str) -> dict | None:
    """Creator, endorsers and validation code of ``tx_id`` in ``block`` (None if it is not there)."""
    flags = b""
    if len(block.metadata.metadata) > common_pb2.TRANSACTIONS_FILTER:
        flags = block.metadata.metadata[common_pb2.TRANSACTIONS_FILTER]
    for index, raw in enumerate(block.data.data):
        envelope = common_pb2.Envelope.FromString(raw)
        payload = common_pb2.Payload.FromString(envelope.payload)
        channel_header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
        if channel_header.tx_id != tx_id:
            continue
        signature_header = common_pb2.SignatureHeader.FromString(payload.header.signature_header)
        creator = _identity(signature_header.creator)
        endorsers = []
        if channel_header.type == common_pb2.ENDORSER_TRANSACTION:
            tx = transaction_pb2.Transaction.FromString(payload.data)
            for action in tx.actions:
                cap = transaction_pb2.ChaincodeActionPayload.FromString(action.payload)
                endorsers.extend(_identity(e.endorser) for e in cap.action.endorsements)
        code = flags[index] if index < len(flags) else None
        return {"tx_id": tx_id, "block_number": int(block.header.number), "creator": creator,
                "endorsers": endorsers, "endorsing_orgs": sorted({e["msp_id"] for e in endorsers}),
                "validation_code": transaction_pb2.TxValidationCode.Name(code) if code is not None else None}
    return None


class AuditTrail:
    """``block_reads``: at most this many blocks read from the peer for one answer (each block once, for every
    transaction of the answer in it); the entries of blocks past it show no endorsers until a later answer has
    read them (the cache keeps what was read)."""

    def __init__(self, service, store, reader: BlockReader | None, block_reads: int = 500):
        self.service = service
        self.store = store
        self.reader = reader
        self.block_reads = block_reads

    def endorsements(self, org: str, entries: list[dict]) -> dict[str, dict]:
        """``{tx id: creator, endorsers and validation code}`` of the entries' transactions: from the cache, else
        from their blocks on ``org``'s peer (an entry another authorisation's act wrote is not looked up)."""
        own = [e for e in entries if isinstance(e.get("tx_id"), str) and e.get("by_authorisation") is None]
        found = self.store.endorsements_of([e["tx_id"] for e in own]) if self.store is not None else {}
        missing: dict[tuple[str | None, int], list[str]] = {}
        for entry in own:
            tx_id, number = entry["tx_id"], entry.get("block_number")
            if tx_id not in found and isinstance(number, int) and self.reader is not None:
                wanted = missing.setdefault((entry.get("channel"), number), [])
                if tx_id not in wanted:
                    wanted.append(tx_id)
        for (channel, number), tx_ids in list(missing.items())[:self.block_reads]:
            try:
                block = self.reader.block(org, number, channel) if channel else self.reader.block(org, number)
            except Exception as exc:  # noqa: BLE001 - the trail is still useful without endorsers
                log.warning("block %s not read: %s", number, type(exc).__name__,
                            extra={"tx_id": tx_ids[0], "block_number": number, "error_type": type(exc).__name__})
                continue
            for tx_id in tx_ids:
                info = transaction_info(block, tx_id)
                if info is not None:
                    found[tx_id] = info
                    if self.store is not None:
                        self.store.save_endorsement(tx_id, info)
        return found

    def _entries(self, org: str, raw: list[dict], channel: str | None = None) -> list[dict]:
        entries = self.service.with_blocks(org, raw, channel)
        known = self.endorsements(org, entries)
        out = []
        for entry in entries:
            submitted_by = entry.get("submitted_by") or {}
            # an act of another authorisation that changed this one's alerts (a 5151 exit recorded after its
            # reception): its log says which transaction, not who submitted or endorsed it (another company's)
            foreign = entry.get("by_authorisation") is not None
            info = {} if foreign else known.get(entry.get("tx_id")) or {}
            creator = info.get("creator") or {}
            out.append({
                "block_number": entry.get("block_number"), "tx_id": entry.get("tx_id"),
                "recorded_at": entry.get("recorded_at"), "event_type": entry.get("event_type"),
                "event_id": entry.get("event_id"), "occurred_at": entry.get("occurred_at"),
                "authorisation_id": entry.get("authorisation_id") or (entry.get("event") or {}).get("authorisation_id"),
                "submitting_org": submitted_by.get("msp_id") or creator.get("msp_id"),
                "submitted_by": submitted_by.get("name"),
                "submitter_subject": creator.get("subject"),
                "endorsing_orgs": info.get("endorsing_orgs"), "endorsers": info.get("endorsers"),
                "validation_code": info.get("validation_code"),
                "lots": entry.get("lots"), "batches": entry.get("batches"), "event": entry.get("event"),
            })
        return out

    # ``channel``: on a gateway of several channels, the one named by the caller (``?channel=``: two holders may
    # both number a lot L1); None: the one channel that knows the item
    def lot(self, org: str, lot_id: str, channel: str | None = None) -> dict:
        channel, data = self.service.evaluate_where(org, "GetLotHistory", lot_id, channel=channel)
        return {"lot_id": lot_id, "entries": self._entries(org, data.get("history", []), channel)}

    def batch(self, org: str, batch_id: str, channel: str | None = None) -> dict:
        channel, data = self.service.evaluate_where(org, "GetBatchHistory", batch_id, channel=channel)
        return {"batch_id": batch_id, "entries": self._entries(org, data.get("history", []), channel)}

    def authorisation(self, org: str, authorisation_id: str, start: str | None = None, end: str | None = None,
                      channel: str | None = None, page: tuple = ()) -> dict:
        """``page``: the contract's ``limit, after`` of a page of the events (none: the whole period); the
        answer's ``next`` is there while more follow."""
        if start is None:
            auth = self.service.evaluate_json(org, "GetAuthorisation", authorisation_id, channel=channel)
            start = (auth.get("granted_at") or "2000-01-01")[:10]
        channel, data = self.service.evaluate_where(org, "GetEventsInPeriod", authorisation_id, start, end, *page,
                                                    channel=channel)
        return {"authorisation_id": authorisation_id, "from": data.get("from"), "to": data.get("to"),
                "entries": self._entries(org, data.get("events", []), channel),
                **({"next": data["next"]} if data.get("next") else {})}


def _cell(value) -> str:
    """A list of ids as ``a;b`` (none: an empty cell, not ``[]``); anything else as the CSV's other cells."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return neutralise(";".join(value))
    return csv_cell(value)  # formula-like text made inert (gateway/csvsafe.py)


def to_csv(entries: list[dict]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for e in entries:
        row = dict(e)
        row["endorsers"] = ";".join(f"{x['msp_id']}:{x.get('subject') or ''}" for x in (e.get("endorsers") or []))
        w.writerow([_cell(row.get(c)) for c in CSV_COLUMNS])
    return out.getvalue()
