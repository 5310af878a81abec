"""Declarations (MRN + item number): each item is used once, by a placement or an exit — except a transfer
between two authorisations (procedure 5151, inward processing after inward processing), whose one declaration
item discharges goods from the first authorisation (``ExitGoods``) and places them under the second
(``PlaceUnderProcedure``). Its two sides come in either order (each holder's ERP posts its own): the first is
stored as any declaration item (``decl``), the second beside it (``decl.transfer``); each once, for the same
goods, on two different authorisations."""
from __future__ import annotations

from ipledger.chaincode.contract import keys, schemas
from ipledger.chaincode.contract.errors import DuplicateDeclaration, TransferMismatch

RE_EXPORT = "3151"   # awaits customs' ConfirmExit
TRANSFER = schemas.TRANSFER_PROCEDURE   # inward processing after inward processing: two sides, one declaration item
RELEASE = "4051"     # release for free circulation: import duty on the input goods it stands for (UCC art. 86(3))
SAME_GOODS = schemas.TRANSFER_GOODS_FIELDS   # cn, unit, quantity


def claim(state, mrn: str, item_no: int, record: dict) -> tuple:
    """The key to store ``record`` under — a ``PLACEMENT`` or ``EXIT`` of this declaration item, with its
    ``procedure``, ``authorisation_id``, ``cn``, ``unit`` and ``quantity``: the item's own key when it is new;
    beside it when ``record`` is the other side of a 5151 transfer recorded before. DuplicateDeclaration
    otherwise; TransferMismatch when the two sides name other goods. Writes nothing."""
    key = keys.declaration(mrn, item_no)
    first = state.get(key)
    if first is None:
        return key
    second = keys.declaration_transfer(mrn, item_no)
    if not _sides_of_one_transfer(first, record) or state.exists(second):
        raise DuplicateDeclaration(f"declaration {mrn} item {item_no} is already used", mrn=mrn, item_no=item_no)
    sent = {field: _goods_field(state, first, field) for field in SAME_GOODS}
    differ = [field for field in SAME_GOODS if sent[field] != record[field]]
    if differ:
        # which fields differ, not the other side's figures: it is another authorisation's record, which the
        # caller may not read (another holder's on a shared channel)
        raise TransferMismatch(f"declaration {mrn} item {item_no}: the other side of the transfer names other goods "
                               f"({', '.join(differ)} differ)", mrn=mrn, item_no=item_no, differ=differ)
    return second


def other_side(state, mrn: str, item_no: int, key: tuple) -> dict | None:
    """When ``key`` (what :func:`claim` gave) is the second side of a transfer, the first side's record."""
    return state.get(keys.declaration(mrn, item_no)) if key == keys.declaration_transfer(mrn, item_no) else None


def reception(state, mrn: str, item_no: int) -> dict | None:
    """The reception (a 5151 placement) recorded on this ledger for a transfer's declaration item, or None."""
    for key in (keys.declaration(mrn, item_no), keys.declaration_transfer(mrn, item_no)):
        record = state.get(key)
        if record is not None and record.get("type") == "PLACEMENT" and record.get("procedure") == TRANSFER:
            return record
    return None


def _sides_of_one_transfer(first: dict, record: dict) -> bool:
    return (first.get("procedure") == TRANSFER == record["procedure"]
            and {first.get("type"), record["type"]} == {"PLACEMENT", "EXIT"}
            and first.get("authorisation_id") != record["authorisation_id"])


def _goods_field(state, declared: dict, field: str):
    """A field of the goods a stored declaration item names (items stored before they carried it: from the goods
    themselves)."""
    if field in declared:
        return declared[field]
    goods = state.get(keys.goods(declared["goods"], declared["id"])) or {}
    return goods.get(field)


def confirmed_in(state, mrn: str, item_no: int, tx_id: str) -> bool:
    """Whether the ConfirmExit of transaction ``tx_id`` confirmed that item — as its record says
    (``exit_confirmed``, written by discharge.confirm_exit), never worked out again from the log: what reads the
    log (bills, alerts as of a past moment, the declaration view) follows what the contract did."""
    record = state.get(keys.declaration(mrn, item_no))
    return bool(record and (record.get("exit_confirmed") or {}).get("tx_id") == tx_id)


def _confirmation_records(log: list[dict]) -> list[tuple]:
    """The declaration records :func:`exit_confirmations` reads: at each ConfirmExit, those of its MRN's items exited
    before it (an item it does not read there, an earlier ConfirmExit read and confirmed)."""
    exited: dict[str, list[int]] = {}
    out: list[tuple] = []
    for entry in log:
        for mrn, item in _exits_awaiting(entry):
            exited.setdefault(mrn, []).append(item)
        if entry["event_type"] == "ConfirmExit":
            mrn = entry["event"]["mrn"]
            out.extend(keys.declaration(mrn, item) for item in exited.get(mrn, []))
    return out


def _exits_awaiting(entry: dict) -> list[tuple[str, int]]:
    """The (MRN, item) of the log entry's exits that await a ConfirmExit."""
    return [(e["mrn"], e["item_no"]) for e in entry["effects"] if e["op"] == "exit" and awaits_confirmation(e)]


def awaits_confirmation(effect: dict) -> bool:
    """Whether an exit (its effect in the log) awaits a ConfirmExit: a re-export, or a transfer recorded before its
    reception (``discharge.exit_goods`` marks it)."""
    return effect["procedure"] == RE_EXPORT or bool(effect.get("awaits_reception"))


def received_before(state, mrn: str, item_no: int, moment: str) -> dict | None:
    """A transfer's reception on this ledger recorded before ``moment`` (a ledger time as text), or None."""
    received = reception(state, mrn, item_no)
    return received if received is not None and received["recorded_at"] < moment else None


def exit_confirmations(state, log: list[dict], from_records: bool = True) -> dict[tuple[str, int], dict]:
    """Which items a ``ConfirmExit`` in ``log`` confirmed, by (MRN, item), each with its own confirmation: those whose
    record names its transaction (``declarations.confirmed_in``) — what discharge.confirm_exit did. The bill's lines
    and the alerts as of a past moment (``alert_rules.records_then``) read it alike. A bill submitted
    before (``from_records`` False) keeps the earlier reading: every item of the MRN awaiting one in log order."""
    if from_records:   # the records each ConfirmExit below looks at, read in one round trip
        state.prefetch(_confirmation_records(log))
    pending: dict[str, list[int]] = {}
    confirmed: dict[tuple[str, int], dict] = {}
    for entry in log:
        for mrn, item in _exits_awaiting(entry):
            pending.setdefault(mrn, []).append(item)
        if entry["event_type"] == "ConfirmExit":
            mrn = entry["event"]["mrn"]
            done = [item for item in pending.get(mrn, [])
                    if not from_records or confirmed_in(state, mrn, item, entry["tx_id"])]
            for item in done:
                confirmed[(mrn, item)] = {"exit_date": entry["event"]["exit_date"], "tx_id": entry["tx_id"]}
            pending[mrn] = [item for item in pending.get(mrn, []) if item not in done]
    return confirmed
