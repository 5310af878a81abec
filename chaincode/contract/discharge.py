"""Discharge of the procedure (UCC art. 215, 257): exits by declaration, losses and
destruction, confirmation of exit, and extension of the period for discharge.

Discharge stays possible when the authorisation is suspended, revoked or
expired, and after the deadline: the holder must still be able to end the
procedure for goods already placed. When an exit or loss names a batch, the
discharge is attributed to the batch's source lots first-in-first-out by
placement time.
"""
from __future__ import annotations

from ipledger.chaincode.contract import (authorisations, controls, declarations, goods, keys, shares, time_rules,
                                        timestamps)
from ipledger.chaincode.contract.errors import ExitMismatch, InvalidEvent, InvalidState, NotFound, OutOfOrder
from ipledger.chaincode.contract.state import canonical_json

RE_EXPORT, TRANSFER = declarations.RE_EXPORT, declarations.TRANSFER


def _take(tx, event: dict, op: str) -> tuple[str, str, dict]:
    """The common part of an exit and a loss: checks, then the effect posted."""
    auth = authorisations.get(tx.state, event["authorisation_id"])
    kind, goods_id = goods.goods_ref(event)
    record = goods.load(tx, kind, goods_id, auth["authorisation_id"])
    goods.require_unit(record, event.get("unit"), goods_id)
    time_rules.not_before_goods(tx.occurred_at, record, kind, goods_id)
    if event.get("site") is not None:
        authorisations.require_site_or_goods_there(auth, event["site"], [record])  # withdrawn: goods may leave
    qty = event["quantity"]
    effect = {"op": op, "kind": kind, "id": goods_id, "qty": qty,
              "sites": goods.take_from_sites(record, qty, event.get("site"), kind, goods_id),
              "attribution": shares.fifo_attribution(record, qty, duty_bearing=op == "exit" and
                                                    event["procedure"] == declarations.RELEASE)
              if kind == goods.BATCH else None}
    # what posting it will read, in one round trip: the balance shard, the lots a batch's attribution
    # discharges, a lot's CeilingNear alert (its input stock falls: alert_rules.review reads it) and, for an
    # exit, a control's difference standing where the goods leave (controls.standing_difference), for a loss
    # its LossRateHigh alert
    reads = goods.reads_of_taking(kind, record, effect["attribution"])
    if kind == goods.LOT and (ceiling := authorisations.ceiling_alert_key(auth, record["cn"])) is not None:
        reads.append(ceiling)
    if op == "exit":
        reads += [key for _site, key in controls.difference_keys(auth["authorisation_id"], kind, goods_id,
                                                                  effect["sites"])]
    else:   # a loss: its LossRateHigh, raised or cleared (alert_rules.review)
        reads.append(keys.alert(auth["authorisation_id"], "LossRateHigh", f"{kind}:{goods_id}"))
    tx.state.prefetch(reads)
    return kind, goods_id, effect


def exit_goods(tx, event: dict) -> dict:
    """ExitGoods: goods leave the procedure by a declaration (3151 re-export, 4051 release for free
    circulation, 7151 customs warehousing, 5151 inward processing under another authorisation).
    Quantity ≤ balance (at the site, if named); the declaration (MRN + item) must be new — or, for a 5151
    transfer, the reception another authorisation recorded first (``declarations.claim``). A re-export
    awaits ConfirmExit, a transfer its reception under the other authorisation on this ledger (or ConfirmExit,
    when that authorisation is elsewhere): until then the goods are out of this procedure and in no other
    one known here. ``exit_confirm_days`` count from when its declaration was accepted (``occurred_at``, at most
    the ledger time: ``time_rules.legal_time``), as the period for discharge does."""
    item_no = event.get("item_no", 1)
    kind, goods_id, effect = _take(tx, event, "exit")
    record = tx.state.get(keys.goods(kind, goods_id))
    declaration = declarations.claim(tx.state, event["mrn"], item_no, {
        "type": "EXIT", "procedure": event["procedure"], "authorisation_id": event["authorisation_id"],
        "cn": record["cn"], "unit": record["unit"], "quantity": event["quantity"]})
    # a re-export awaits ConfirmExit, a transfer its reception (or ConfirmExit when it is received elsewhere) —
    # unless the reception was recorded first: ExitUnconfirmed counts from the legally relevant date of the exit
    received = declarations.other_side(tx.state, event["mrn"], item_no, declaration)   # the reception, if first
    awaits_reception = event["procedure"] == TRANSFER and received is None
    effect.update({"procedure": event["procedure"], "mrn": event["mrn"], "item_no": item_no,
                   **({"awaits_reception": True} if awaits_reception else {})})   # for the replays (bill, alerts)
    # a difference a control found where the goods leave stays with their declaration (the next count there would
    # match the book); a transfer's goes with them to the receiving authorisation when it is on this ledger
    found = controls.standing_difference(tx, event["authorisation_id"], kind, goods_id, effect["sites"])
    goods.post(tx, effect)
    record = tx.state.get(keys.goods(kind, goods_id))
    tx.state.put(declaration, {
        "type": "EXIT", "authorisation_id": event["authorisation_id"], "goods": kind, "id": goods_id,
        "mrn": event["mrn"], "item_no": item_no, "procedure": event["procedure"], "quantity": event["quantity"],
        "cn": record["cn"], "unit": record["unit"], "attribution": effect["attribution"], "occurred_at": event["occurred_at"],
        "recorded_at": tx.recorded_at, "tx_id": tx.tx_id, "exit_confirmed": None,
        **({"difference_found": found} if found else {}),
    })
    if received is not None:
        received_first(tx, event, item_no, received, found)
    if event["procedure"] == RE_EXPORT or awaits_reception:
        tx.state.put(keys.unconfirmed_exit(event["authorisation_id"], event["mrn"], item_no), {
            "goods": kind, "id": goods_id, "quantity": event["quantity"], "procedure": event["procedure"],
            "declared_at": timestamps.fmt(time_rules.legal_time(tx)), "occurred_at": event["occurred_at"],
            "recorded_at": tx.recorded_at})
    if tx.commercial is not None:
        tx.stub.put_private_data(keys.COMMERCIAL_COLLECTION,
                                 tx.state.key(keys.commercial_exit(event["mrn"], item_no)),
                                 canonical_json({"mrn": event["mrn"], "item_no": item_no, **tx.commercial}))
    return {"exit": {"goods": kind, "id": goods_id, "quantity": event["quantity"], "unit": record["unit"],
                     "procedure": event["procedure"], "mrn": event["mrn"], "item_no": item_no,
                     "attribution": effect["attribution"]},
            kind.lower(): goods.view(kind, record, tx.now)}


def received_first(tx, event: dict, item_no: int, received: dict, found: dict | None) -> None:
    """A transfer's exit recorded after its reception (``received``) may write in the receiving authorisation's
    log — so never before the cut-off of a bill it submitted (OutOfOrder, time_rules.after_bills): customs are
    told there when the reception gave its lot a later declaration date than this exit's
    (time_rules.review_transfer_date), and a control's difference standing where the goods left (``found``) goes
    where the received goods are now (controls.carry_transfer)."""
    time_rules.after_bills(tx, authorisations.get(tx.state, received["authorisation_id"]))
    lot = tx.state.get(keys.lot(received["id"]))
    time_rules.review_transfer_date(tx, event, item_no, received, goods.declared_at(lot))
    if found:
        controls.carry_transfer(tx, {"authorisation_id": event["authorisation_id"], "mrn": event["mrn"],
                                     "item_no": item_no}, received, found)


def record_loss(tx, event: dict) -> dict:
    """RecordLoss: goods lost by their nature, by force majeure, or destroyed with no waste left
    (``DESTROYED`` counts as a discharge, UCC art. 215(1)). Quantity ≤ balance."""
    kind, goods_id, effect = _take(tx, event, "lose")
    effect.update({"reason": event["reason"], "evidence_hash": event["evidence_hash"]})
    goods.post(tx, effect)
    record = tx.state.get(keys.goods(kind, goods_id))
    return {"loss": {"goods": kind, "id": goods_id, "quantity": event["quantity"], "unit": record["unit"],
                     "reason": event["reason"], "evidence_hash": event["evidence_hash"],
                     "attribution": effect["attribution"]},
            kind.lower(): goods.view(kind, record, tx.now)}


def confirm_exit(tx, event: dict) -> dict:
    """ConfirmExit: customs confirm that re-exported goods (3151) left the customs territory, or that goods
    transferred (5151) to an authorisation not on this ledger were received under it — with ``items``, the
    items named, each with the quantity its exit recorded (ExitMismatch otherwise; NotFound for an item that
    is no such exit, InvalidState for one that awaits nothing); without, every item under the MRN that awaits
    a confirmation. OutOfOrder: an exit date before the declaration, or a confirmation timestamped at or before
    the exit it confirms."""
    auth_id, mrn = event["authorisation_id"], event["mrn"]
    authorisations.get(tx.state, auth_id)
    exits = [(attrs, d) for attrs, d in tx.state.scan(keys.DECLARATION, mrn)
             if d["type"] == "EXIT" and d["procedure"] in (RE_EXPORT, TRANSFER) and d["authorisation_id"] == auth_id]
    if not exits:
        raise NotFound(f"no re-export or transfer under declaration {mrn} for {auth_id}", mrn=mrn)
    # a transfer received on this ledger needs no confirmation (its reception is the proof)
    pending = [(attrs, d) for attrs, d in exits if d["exit_confirmed"] is None
               and tx.state.exists(keys.unconfirmed_exit(auth_id, mrn, int(attrs[1])))]
    if event.get("items") is not None:
        pending = _named_items(mrn, auth_id, event["items"], exits, pending)
    if not pending:
        raise InvalidState(f"nothing under {mrn} awaits a confirmation: its re-exports are confirmed, its transfers "
                           "received on this ledger (or recorded before transfers awaited their reception)", mrn=mrn)
    exit_day = timestamps.parse_date(event["exit_date"], "exit_date")
    confirmed = []
    for (_mrn, item), decl in pending:
        if tx.recorded_at <= decl["recorded_at"]:   # the log, the bill and the alerts replay it after the re-export
            raise OutOfOrder("the confirmation is timestamped at or before the exit it confirms", mrn=mrn,
                             item_no=int(item), last_change=decl["recorded_at"], ledger_time=tx.recorded_at)
        if exit_day < timestamps.parse_datetime(decl["occurred_at"]).date():
            raise OutOfOrder("exit_date is before the exit declaration", exit_date=event["exit_date"],
                             declared_at=decl["occurred_at"])
        if timestamps.start_of(exit_day) > tx.now:
            raise InvalidEvent("exit_date is in the future", exit_date=event["exit_date"])
        decl["exit_confirmed"] = {"exit_date": event["exit_date"], "recorded_at": tx.recorded_at, "tx_id": tx.tx_id}
        tx.state.put(keys.declaration(mrn, int(item)), decl)
        tx.state.delete(keys.unconfirmed_exit(auth_id, mrn, int(item)))
        tx.refer(decl["goods"], decl["id"])
        confirmed.append({"mrn": mrn, "item_no": int(item), "goods": decl["goods"], "id": decl["id"],
                          "quantity": decl["quantity"]})
    return {"confirmed": confirmed, "exit_date": event["exit_date"]}


def _named_items(mrn: str, auth_id: str, named: list[dict], exits: list, pending: list) -> list:
    """The pending exits a ConfirmExit names in ``items``, in the order named, each checked."""
    by_item = {int(attrs[1]): (attrs, d) for attrs, d in exits}
    awaiting = {int(attrs[1]) for attrs, _d in pending}
    chosen, seen = [], set()
    for item in named:
        n = item["item_no"]
        if n in seen:
            raise InvalidEvent(f"items names item {n} twice", mrn=mrn, item_no=n)
        seen.add(n)
        if n not in by_item:
            raise NotFound(f"no re-export or transfer under declaration {mrn} item {n} for {auth_id}",
                           mrn=mrn, item_no=n)
        recorded = by_item[n][1]["quantity"]
        if item["quantity"] != recorded:
            raise ExitMismatch(f"declaration {mrn} item {n}: confirmed {item['quantity']}, the exit recorded "
                               f"{recorded} {by_item[n][1]['unit']}", mrn=mrn, item_no=n,
                               confirmed=item["quantity"], recorded=recorded, unit=by_item[n][1]["unit"])
        if n not in awaiting:
            raise InvalidState(f"declaration {mrn} item {n} awaits no confirmation: confirmed already, or a "
                               "transfer received on this ledger", mrn=mrn, item_no=n)
        chosen.append(by_item[n])
    return chosen


def extend_discharge_period(tx, event: dict) -> dict:
    """ExtendDischargePeriod (UCC art. 257(4)): customs set a later deadline for open lots; batches
    made from them follow (a batch's deadline is the earliest of the source lots whose share is still
    in it). OutOfOrder: a new deadline before the cut-off of a bill already submitted (it would be in no bill)."""
    auth_id = event["authorisation_id"]
    auth = authorisations.get(tx.state, auth_id)
    new_deadline = timestamps.fmt(timestamps.parse_datetime(event["new_deadline"], "new_deadline"))
    lots = {}
    for lot_id in event["lot_ids"]:
        lot = goods.load(tx, goods.LOT, lot_id, auth_id)
        time_rules.not_before_goods(tx.occurred_at, lot, goods.LOT, lot_id)   # no extension of goods not yet there
        if goods.is_discharged(goods.LOT, lot):
            raise InvalidState(f"lot {lot_id} is discharged", lot_id=lot_id)
        if new_deadline <= lot["deadline"]:
            raise InvalidEvent(f"the new deadline is not later than {lot_id}'s deadline {lot['deadline']}",
                               lot_id=lot_id, deadline=lot["deadline"], new_deadline=new_deadline)
        lots[lot_id] = lot
    closed = auth.get("closed_until")
    if closed and new_deadline < closed:
        raise OutOfOrder(f"a bill of discharge of {auth_id} covers the time up to {closed}: a new deadline before "
                         "it would be in no bill", authorisation_id=auth_id, closed_until=closed,
                         new_deadline=new_deadline)
    new_lots = {lot_id: new_deadline for lot_id in lots}
    new_batches = {}
    for batch_id in sorted({b for lot in lots.values() for b in lot["products"]}):
        batch = tx.state.get(keys.batch(batch_id))
        # each share with its lot's deadline as this extension leaves it (a share of a batch recorded before
        # shares carried deadlines takes its lot's), then the one rule of shares.batch_deadline
        dated = [{**share, "deadline": new_lots.get(share["lot_id"]) or share.get("deadline")
                   or tx.state.get(keys.lot(share["lot_id"]))["deadline"]} for share in batch["shares"]]
        earliest = shares.batch_deadline({**batch, "shares": dated})
        if earliest != batch["deadline"]:
            new_batches[batch_id] = earliest
    goods.post(tx, {"op": "extend", "lots": new_lots, "batches": new_batches})
    return {"lots": new_lots, "batches": new_batches}
