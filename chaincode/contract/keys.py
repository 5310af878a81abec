"""Composite key design: every query of the contract is a point read or a range read.

A key is a tuple ``(object_type, *attributes)``; :class:`state.State` turns it
into a Fabric composite key (``\\x00type\\x00attr\\x00...``). A partial
composite key query on a prefix of the attributes is a range read on the
peer's state database — never a scan of the whole channel.

==================  ==========================================  =====================================
object type         attributes                                  answers
==================  ==========================================  =====================================
``auth``            authorisation_id                            the authorisation
``params``          —                                           customs parameters (customs)
``party``           msp_id                                      the register of parties: an
                                                                organisation's role and EORIs
                                                                (customs)
``lot``             lot_id                                      one lot
``batch``           batch_id                                    one product batch
``op``              operation_id                                one processing operation
``auth.lot``        authorisation_id, lot_id                    an authorisation's lots
``auth.batch``      authorisation_id, batch_id                  an authorisation's batches
``auth.loss``       authorisation_id, LOT|BATCH, goods id       the lots and batches that lost goods
                                                                (LossRateHigh is judged again for these
                                                                alone when customs change
                                                                ``loss_warn_pct``)
``auth.due``        authorisation_id, date, lot_id              the lots a bill of the period holding that
                                                                date lists: each lot at its deadline as it
                                                                counts for bills (``goods.billed_at``),
                                                                and at each deadline an extension gave it
``auth.terms``      authorisation_id, recorded_at, tx_id        the grant and each amendment (their ``log``
                                                                entries): with ``auth.due``, what a bill
                                                                reads besides its own period's log
``auth.loss.index`` —                                           the index above holds every such lot
                                                                and batch (ledgers written before it:
                                                                built at the first such change)
``bal``             authorisation_id, category, cn, unit,       balance per goods code and unit, in
                    shard                                       ``BALANCE_SHARDS`` parts (by lot or batch
                                                                id): a range read sums them
``bal.empty``       authorisation_id, category, cn, unit,       a shard of ``bal`` whose stock is 0 (every
                    shard                                       lot or batch counted in it discharged): its
                                                                flows kept for ``GetBalances``, out of the
                                                                ceiling's range read of ``bal``
``decl``            mrn, item_no                                DuplicateDeclaration; mrn → its events
``decl.transfer``   mrn, item_no                                the second side of a 5151 transfer (its
                                                                exit or its reception, whichever came later)
``unconfirmed``     authorisation_id, mrn, item_no              re-exports awaiting ConfirmExit, transfers
                                                                awaiting their reception (or ConfirmExit)
``log``             scope, YYYY-MM, recorded_at, tx_id           a period's events (month buckets)
``lot.log``         lot_id, recorded_at, tx_id                  a lot's history: each value
                                                                ``{"scope", "month"}`` names the
                                                                ``log`` entry (ledgers written before
                                                                hold a copy of the event instead)
``batch.log``       batch_id, recorded_at, tx_id                a batch's history (the same)
``alert``           authorisation_id, type, subject              recorded alerts
``bill``            authorisation_id, period_end                bills of discharge of an authorisation
``event``           msp_id, event_id                            idempotency record (event ids are per
                                                                submitting organisation)
==================  ==========================================  =====================================

``recorded_at`` is :func:`timestamps.fmt` (fixed width), so keys sort by ledger time.

Balance shards: every event on a lot or batch changes the balances of its goods code. One key per
code would be rewritten by every such event of the authorisation, and Fabric refuses all but one of the
transactions of a block that write the same key (MVCC): a plant's events would commit one per block.
Each lot or batch therefore counts in one of ``BALANCE_SHARDS`` keys (by a hash of its id: the same shard
on every peer), so events on different lots rarely meet; the ceiling check and ``GetBalances`` read the
shards of an authorisation in one range read and add them up — a bounded read, whatever the number of
lots. The trade-off: a placement's range read conflicts with any concurrent change to the authorisation's
input balances (the ceiling is one shared quantity), as before. A shard whose stock falls to 0 moves to
``bal.empty`` (and back when goods counted in it come under the procedure again): the ceiling's read then covers
the shards holding goods under the procedure, not every shard an authorisation's history ever filled — a
placement costs the same after years of lots as after the first ones; ``GetBalances`` reads both ranges.
No key part may hold a control character (``identifiers.require_key_part``: U+0000 separates the
parts, and ``"L1\n"`` must not name a second lot): every builder below checks its parts and answers
``InvalidIdentifier`` — for submitted events and query arguments alike.
Private data (collection ``commercial``) uses ``commercial.lot`` / ``commercial.exit``.
"""
from __future__ import annotations

import hashlib

from ipledger.chaincode.contract.identifiers import require_key_part

AUTHORISATION = "auth"
PARAMS = "params"
PARTY = "party"
LOT = "lot"
BATCH = "batch"
OPERATION = "op"
AUTH_LOTS = "auth.lot"
AUTH_BATCHES = "auth.batch"
AUTH_LOSSES = "auth.loss"
AUTH_DUE = "auth.due"
AUTH_TERMS = "auth.terms"
LOSS_INDEX_BUILT = "auth.loss.index"
BALANCE = "bal"
BALANCE_EMPTY = "bal.empty"
DECLARATION = "decl"
DECLARATION_TRANSFER = "decl.transfer"
UNCONFIRMED_EXIT = "unconfirmed"
LOG = "log"
LOT_LOG = "lot.log"
BATCH_LOG = "batch.log"
ALERT = "alert"
BILL = "bill"
EVENT = "event"

CHANNEL_SCOPE = "_channel"  # log scope of events that concern no single authorisation (SetParameters,
                            # RegisterParty, WithdrawParty)

COMMERCIAL_COLLECTION = "commercial"
COMMERCIAL_LOT = "commercial.lot"
COMMERCIAL_EXIT = "commercial.exit"


def _k(object_type: str, *parts) -> tuple:
    """A key tuple whose string parts hold no control character."""
    for part in parts:
        if isinstance(part, str):
            require_key_part(part)
    return (object_type, *parts)


def authorisation(authorisation_id: str) -> tuple:
    return _k(AUTHORISATION, authorisation_id)


def params() -> tuple:
    return _k(PARAMS)


def party(msp_id: str) -> tuple:
    """An organisation's entry in the register of parties."""
    return _k(PARTY, msp_id)


def lot(lot_id: str) -> tuple:
    return _k(LOT, lot_id)


def batch(batch_id: str) -> tuple:
    return _k(BATCH, batch_id)


def goods(kind: str, goods_id: str) -> tuple:
    """``kind`` is ``LOT`` or ``BATCH``."""
    return lot(goods_id) if kind == "LOT" else batch(goods_id)


def operation(operation_id: str) -> tuple:
    return _k(OPERATION, operation_id)


def auth_lot(authorisation_id: str, lot_id: str) -> tuple:
    return _k(AUTH_LOTS, authorisation_id, lot_id)


def auth_batch(authorisation_id: str, batch_id: str) -> tuple:
    return _k(AUTH_BATCHES, authorisation_id, batch_id)


def auth_loss(authorisation_id: str, kind: str, goods_id: str) -> tuple:
    """A lot or batch (``kind`` ``LOT`` or ``BATCH``) of the authorisation that lost goods."""
    return _k(AUTH_LOSSES, authorisation_id, kind, goods_id)


def auth_due(authorisation_id: str, when: str, lot_id: str) -> tuple:
    """A lot of the authorisation whose bills of discharge count it at ``when`` (a ledger time as text)."""
    return _k(AUTH_DUE, authorisation_id, when, lot_id)


def auth_terms(authorisation_id: str, recorded_at: str, tx_id: str) -> tuple:
    """The grant or an amendment of the authorisation, recorded at ``recorded_at`` by ``tx_id``."""
    return _k(AUTH_TERMS, authorisation_id, recorded_at, tx_id)


def loss_index_built() -> tuple:
    return _k(LOSS_INDEX_BUILT)


BALANCE_SHARDS = 256


def balance_shard(goods_id: str) -> str:
    """The balance shard a lot or batch counts in: SHA-256 of its id, modulo ``BALANCE_SHARDS`` (fixed width,
    so the shards of a goods code sort together; never Python's per-process ``hash``)."""
    digest = hashlib.sha256(goods_id.encode("utf-8")).digest()
    return f"{int.from_bytes(digest[:4], 'big') % BALANCE_SHARDS:03d}"


def balance(authorisation_id: str, category: str, cn: str, unit: str, goods_id: str) -> tuple:
    """The balance shard of (authorisation, category, cn, unit) that ``goods_id`` counts in."""
    return _k(BALANCE, authorisation_id, category, cn, unit, balance_shard(goods_id))


def empty_balance(authorisation_id: str, category: str, cn: str, unit: str, goods_id: str) -> tuple:
    """Where the shard of :func:`balance` is kept while its stock is 0."""
    return _k(BALANCE_EMPTY, authorisation_id, category, cn, unit, balance_shard(goods_id))


def declaration(mrn: str, item_no: int) -> tuple:
    return _k(DECLARATION, mrn, f"{item_no:03d}")


def declaration_transfer(mrn: str, item_no: int) -> tuple:
    return _k(DECLARATION_TRANSFER, mrn, f"{item_no:03d}")


def unconfirmed_exit(authorisation_id: str, mrn: str, item_no: int) -> tuple:
    return _k(UNCONFIRMED_EXIT, authorisation_id, mrn, f"{item_no:03d}")


def log(scope: str, month: str, recorded_at: str, tx_id: str) -> tuple:
    return _k(LOG, scope, month, recorded_at, tx_id)


def lot_log(lot_id: str, recorded_at: str, tx_id: str) -> tuple:
    return _k(LOT_LOG, lot_id, recorded_at, tx_id)


def batch_log(batch_id: str, recorded_at: str, tx_id: str) -> tuple:
    return _k(BATCH_LOG, batch_id, recorded_at, tx_id)


def alert(authorisation_id: str, alert_type: str, subject: str) -> tuple:
    return _k(ALERT, authorisation_id, alert_type, subject)


def bill(authorisation_id: str, period_end: str) -> tuple:
    return _k(BILL, authorisation_id, period_end)


def event(msp_id: str, event_id: str) -> tuple:
    """The idempotency record of ``event_id`` as submitted by ``msp_id``."""
    return _k(EVENT, msp_id, event_id)


def commercial_lot(lot_id: str) -> tuple:
    return _k(COMMERCIAL_LOT, lot_id)


def commercial_exit(mrn: str, item_no: int) -> tuple:
    return _k(COMMERCIAL_EXIT, mrn, f"{item_no:03d}")
