"""Placing goods under inward processing (UCC art. 256; procedure code 5100, or 5151 for goods received from
another authorisation: ``declarations``) and moving them between the authorised sites."""
from __future__ import annotations

import datetime as dt

from ipledger.chaincode.contract import (authorisations, controls, declarations, goods, keys, roles, time_rules,
                                        timestamps)
from ipledger.chaincode.contract.errors import (AlreadyExists, CeilingExceeded, DeadlinePassed, InvalidEvent,
                                                UnitMismatch)
from ipledger.chaincode.contract.state import canonical_json


def place_under_procedure(tx, event: dict) -> dict:
    """PlaceUnderProcedure: a declaration item brings a new lot under the procedure.

    Refused unless the authorisation is ACTIVE and within its validity, its holder still registered when a
    representative declares for it, the CN code is covered (in the
    entry's unit), the site is authorised, the ceiling is kept and the declaration (MRN + item) is new — or, for
    a 5151 reception, the other side of a transfer another authorisation's exit recorded (``declarations.claim``).
    The lot's discharge deadline is the placement's legally relevant date — when the declaration was
    accepted (``occurred_at``, at most the ledger time: ``time_rules.legal_time``) — + the period for
    discharge in force at that date (art. 257; an amendment applies forward only); a placement recorded late
    does not get a later deadline. The customs value
    comes from the transient map into the private collection.
    """
    auth = authorisations.get(tx.state, event["authorisation_id"])
    lot_id, qty = event["lot_id"], event["quantity"]
    if tx.state.exists(keys.lot(lot_id)):
        raise AlreadyExists(f"lot {lot_id} exists", lot_id=lot_id)
    authorisations.require_in_force(auth, tx.now)
    if tx.party.role == roles.REPRESENTATIVE:
        authorisations.require_holder_registered(tx.state, auth)
    entry = authorisations.require_input_covered(auth, event["cn"])
    if event["unit"] != entry["unit"]:
        raise UnitMismatch(f"{event['cn']} is authorised in {entry['unit']}, not {event['unit']}",
                           cn=event["cn"], unit=entry["unit"], given=event["unit"])
    _require_net_mass_agrees(event)
    authorisations.require_site(auth, event["site"])
    used = authorisations.ceiling_usage(tx.state, auth, entry)
    if used + qty > entry["max_qty"]:
        raise CeilingExceeded(f"{used} + {qty} {entry['unit']} would pass the ceiling of {entry['max_qty']} "
                              f"for {entry['cn']}", cn=entry["cn"], under_procedure=used, requested=qty,
                              max_qty=entry["max_qty"])
    declared = {"type": "PLACEMENT", "authorisation_id": auth["authorisation_id"], "goods": goods.LOT, "id": lot_id,
                "mrn": event["mrn"], "item_no": event["item_no"], "procedure": event["procedure"], "cn": event["cn"],
                "unit": event["unit"], "quantity": qty, "site": event["site"], "recorded_at": tx.recorded_at,
                "tx_id": tx.tx_id}
    declaration = declarations.claim(tx.state, event["mrn"], event["item_no"], declared)
    if tx.commercial is None or "customs_value" not in tx.commercial:
        raise InvalidEvent("the customs value is missing (transient map, key 'commercial')", field="commercial")

    sent = declarations.other_side(tx.state, event["mrn"], event["item_no"], declaration)   # its exit, if first
    if sent is not None:   # one declaration, accepted once: the reception is never dated after its exit
        exit_declared = timestamps.parse_datetime(time_rules.declared_at(sent.get("occurred_at"), sent["recorded_at"]))
        if exit_declared < time_rules.legal_time(tx):
            tx.declared_at = exit_declared
    accepted = time_rules.legal_time(tx)   # when the declaration was accepted
    tx.not_in_force_then = authorisations.not_in_force_at(auth, accepted)
    period = authorisations.discharge_period_at(auth, accepted)
    if period > auth["discharge_period_days"]:   # declared before the period was shortened: customs are told
        tx.earlier_terms = {"discharge_period_days": period, "in_force_days": auth["discharge_period_days"]}
    earlier = authorisations.terms_at(auth, accepted)   # declared before an amendment: what its terms would refuse
    if earlier is not None and (refused := _refused_then(earlier, event)):
        tx.earlier_terms = {**(tx.earlier_terms or {}), **refused}
    deadline = accepted + dt.timedelta(days=period)
    lot = {
        "lot_id": lot_id, "authorisation_id": auth["authorisation_id"], "authorisation_version": auth["version"],
        "mrn": event["mrn"], "item_no": event["item_no"], "procedure": event["procedure"],
        "cn": event["cn"], "description": event["description"], "origin": event["origin"],
        "unit": event["unit"], "placed": qty, "net_mass_g": event.get("net_mass_g"),
        "accepted_at": tx.recorded_at, "occurred_at": event["occurred_at"], "tx_id": tx.tx_id,
        "deadline": timestamps.fmt(deadline), "original_deadline": timestamps.fmt(deadline), "extensions": [],
        "stock": {event["site"]: qty}, "consumed": 0, "exited": {}, "lost": 0, "lost_by_reason": {},
        "products": {},
        **({"declared_at": timestamps.fmt(accepted)} if tx.declared_at is not None else {}),   # the exit's date
    }
    if (since := goods.billed_from(lot)) is not None:   # recorded after its deadline: billed from then on
        lot["billed_from"] = since
    # what posting it reads, in one round trip: the lot's balance shard, its entry's CeilingNear alert
    tx.state.prefetch([*goods.balance_keys(goods.LOT, lot), authorisations.ceiling_alert_key(auth, lot["cn"])])
    goods.post(tx, {"op": "place", "lot": lot})
    tx.state.put(declaration, declared)
    if sent is not None:
        receive_transfer(tx, sent, event["mrn"], event["item_no"])
        if sent.get("difference_found"):   # the sender's goods left a site where a control's difference stood
            controls.carry_transfer(tx, sent, declared, sent["difference_found"])
    tx.stub.put_private_data(keys.COMMERCIAL_COLLECTION, tx.state.key(keys.commercial_lot(lot_id)),
                             canonical_json({"lot_id": lot_id, **tx.commercial}))
    return {"lot": goods.view(goods.LOT, tx.state.get(keys.lot(lot_id)), tx.now),
            "under_procedure": {"cn": entry["cn"], "quantity": used + qty, "unit": entry["unit"],
                                "max_qty": entry["max_qty"]}}


def _refused_then(earlier: dict, event: dict) -> dict:
    """What the terms in force when the declaration was accepted (``earlier``: authorisations.terms_at) would have
    refused of this placement — its site, its goods code in its unit —, for ``LateRecording``'s
    ``earlier_terms``; empty when they would have taken it."""
    then = {}
    if event["site"] not in earlier["sites"]:
        then["site_not_authorised_then"] = event["site"]
    entry = authorisations.input_entry(earlier, event["cn"])
    if entry is None or entry["unit"] != event["unit"]:
        then["goods_not_covered_then"] = {"cn": event["cn"], "unit": event["unit"]}
    return {"terms_until": earlier["until"], **then} if then else {}


GRAMS_PER_UNIT = {"kg": 1000, "g": 1}   # units of mass: the quantity is itself a net mass


def _require_net_mass_agrees(event: dict) -> None:
    """InvalidEvent: goods counted in a unit of mass are their net mass — a quantity in ``kg`` is the declared net
    mass to the whole kilogram (less than 1,000 g apart, whichever way it was rounded), one in ``g`` is it exactly.
    (In other units the net mass is declared beside the count and not compared.)"""
    grams, net = GRAMS_PER_UNIT.get(event["unit"]), event.get("net_mass_g")
    if grams is None or net is None:
        return
    if abs(net - event["quantity"] * grams) >= grams:
        raise InvalidEvent(f"{event['quantity']} {event['unit']} is not the net mass of {net} g declared with it",
                           field="net_mass_g", quantity=event["quantity"], unit=event["unit"], net_mass_g=net)


def move_goods(tx, event: dict) -> dict:
    """MoveGoods: goods change site; both sites authorised (or ``from_site`` withdrawn by an amendment while
    the goods lay there: they may leave it), quantity ≤ stock at ``from_site``;
    refused once the goods are overdue (DeadlinePassed)."""
    auth = authorisations.get(tx.state, event["authorisation_id"])
    kind, goods_id = goods.goods_ref(event)
    record = goods.load(tx, kind, goods_id, auth["authorisation_id"])
    if event["from_site"] == event["to_site"]:
        raise InvalidEvent("from_site and to_site are the same", site=event["from_site"])
    authorisations.require_site_or_goods_there(auth, event["from_site"], [record])  # a withdrawn site: goods leave
    authorisations.require_site(auth, event["to_site"])
    goods.require_unit(record, event.get("unit"), goods_id)
    time_rules.not_before_goods(tx.occurred_at, record, kind, goods_id)
    require_not_overdue(tx, record, kind, goods_id)
    goods.take_from_sites(record, event["quantity"], event["from_site"], kind, goods_id)
    goods.post(tx, {"op": "move", "kind": kind, "id": goods_id, "qty": event["quantity"],
                    "from": event["from_site"], "to": event["to_site"]})
    controls.carry_discrepancy(tx, auth["authorisation_id"], (kind, goods_id, event["from_site"]),
                               (kind, goods_id, event["to_site"]),
                               {"moved_from": event["from_site"], "moved": event["quantity"]})
    return {"goods": kind, "id": goods_id, "stock": tx.state.get(keys.goods(kind, goods_id))["stock"]}


def receive_transfer(tx, sent: dict, mrn: str, item_no: int) -> None:
    """A transfer's exit recorded first is received now: it no longer awaits (ExitUnconfirmed) — also after
    customs confirmed it received elsewhere (a receiver on this ledger recording late must be able to: the
    sender's bill line then shows both the confirmation and the reception). OutOfOrder when
    this reception is timestamped before the cut-off of a bill the sending authorisation submitted: that bill
    shows whether its transfers were received by then, and nothing may change it afterwards."""
    time_rules.after_bills(tx, authorisations.get(tx.state, sent["authorisation_id"]))
    tx.state.delete(keys.unconfirmed_exit(sent["authorisation_id"], mrn, item_no))


def require_not_overdue(tx, record: dict, kind: str, goods_id: str) -> None:
    """DeadlinePassed: after the period for discharge only exits, losses and extensions are accepted."""
    if goods.is_overdue(record, tx.now):
        raise DeadlinePassed(f"the period for discharge of {goods_id} ended at {record['deadline']}",
                             goods=kind, id=goods_id, deadline=record["deadline"], ledger_time=tx.recorded_at)
