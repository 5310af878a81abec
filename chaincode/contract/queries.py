"""Evaluate-only queries (the audit view of docs/domain.md §7), with the visibility rules of §2.

Every query runs for an identified party (``tx.party``: customs, or a registered holder or
representative — ``contract._reader`` refuses anyone else) and shows an authorisation and its goods
only to a party with standing for it (``roles.require_standing``).

Time-dependent answers use the transaction timestamp or an ``as_of`` date,
never the wall clock, so every peer answers the same.
"""
from __future__ import annotations

import datetime as dt
import json
import re

from ipledger.chaincode.contract import (alert_rules, authorisations, billing, declarations, eventlog, goods, identifiers,
                                        keys, parties, roles, schemas, timestamps)
from ipledger.chaincode.contract.decimals import pct
from ipledger.chaincode.contract.errors import InvalidEvent, LedgerInconsistent, NotFound

_ID_MAX = 128


def _text(value, name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > _ID_MAX:
        raise InvalidEvent(f"{name} must be a non-empty string", field=name)
    return identifiers.require_key_part(value)  # InvalidIdentifier: matched whole, no control character


def _moment(tx, value, name: str) -> dt.datetime:
    """``value`` as a date-time (a date means its end, 24:00 UTC); the ledger time when None."""
    if value is None:
        return tx.now
    if isinstance(value, str) and len(value) == 10:
        return timestamps.end_of(timestamps.parse_date(value, name))
    return timestamps.parse_datetime(_text(value, name), name)


def _as_of(tx, value) -> dt.datetime:
    """The moment a view holds at, itself included: a date is its whole day, up to 23:59:59.999999 UTC — not the
    next day's first instant, which belongs to that day; the ledger time when None."""
    moment = _moment(tx, value, "as_of")
    if isinstance(value, str) and len(value) == 10:
        moment -= dt.timedelta(microseconds=1)
    return moment


def _readable_authorisation(tx, authorisation_id, what: str) -> dict:
    auth = authorisations.get(tx.state, _text(authorisation_id, "authorisation_id"))
    roles.require_standing(tx.party, auth, what)
    return auth


def _readable_by_its_id(tx, authorisation_id: str, missing: NotFound) -> None:
    """A lot, batch or bill asked for by its own id: to a party without standing for its authorisation it is
    ``missing`` — the very refusal of an id not in use. A NotPermitted would name another holder's authorisation
    and tell that the id is taken (an authorisation asked for by its id is refused NotPermitted: the caller named
    it)."""
    if not roles.has_standing(tx.party, authorisations.get(tx.state, authorisation_id)):
        raise missing


def _commercial(tx, private_key: tuple) -> dict:
    """Customs and the holder read the commercial data; a representative gets only its hash."""
    key = tx.state.key(private_key)
    if roles.sees_commercial_data(tx.party):
        raw = tx.stub.get_private_data(keys.COMMERCIAL_COLLECTION, key)
        return {"commercial": json.loads(raw) if raw else None}
    digest = tx.stub.get_private_data_hash(keys.COMMERCIAL_COLLECTION, key)
    return {"commercial_hash": digest.hex() if digest else None}


def get_authorisation(tx, authorisation_id) -> dict:
    auth = _readable_authorisation(tx, authorisation_id, "GetAuthorisation")
    return authorisations.view(auth, tx.now)


def get_lot(tx, lot_id) -> dict:
    lot = goods.StateBook(tx).get(goods.LOT, _text(lot_id, "lot_id"))
    _readable_by_its_id(tx, lot["authorisation_id"], goods.missing(goods.LOT, lot_id))
    return {**goods.view(goods.LOT, lot, tx.now), **_commercial(tx, keys.commercial_lot(lot_id))}


def get_batch(tx, batch_id) -> dict:
    batch = goods.StateBook(tx).get(goods.BATCH, _text(batch_id, "batch_id"))
    _readable_by_its_id(tx, batch["authorisation_id"], goods.missing(goods.BATCH, batch_id))
    return goods.view(goods.BATCH, batch, tx.now)


def get_balances(tx, authorisation_id) -> dict:
    """Balances by category, goods code and unit (kept incrementally), and the use of each ceiling
    (``pct``: a decimal string, like every ratio the contract computes)."""
    auth = _readable_authorisation(tx, authorisation_id, "GetBalances")
    balances = _balances(tx.state, auth)
    return {"authorisation_id": auth["authorisation_id"], "as_of": tx.recorded_at,
            "balances": list(balances.values()), "ceilings": _ceilings(auth, balances)}


def _balances(state, auth: dict) -> dict[tuple[str, str, str], dict]:
    """The authorisation's balances by (category, goods code, unit), in that order: its shards added up, those
    holding goods (``bal``) and those whose stock is 0 (``bal.empty``)."""
    found: dict[tuple[str, str, str], dict] = {}
    auth_id = auth["authorisation_id"]
    for (_auth, category, cn, unit, _shard), part in [*state.scan(keys.BALANCE, auth_id),
                                                      *state.scan(keys.BALANCE_EMPTY, auth_id)]:
        bal = found.setdefault((category, cn, unit), {
            "authorisation_id": auth["authorisation_id"], "category": category, "cn": cn, "unit": unit,
            "entered": 0, "stock": 0, "consumed": 0, "exited": {}, "lost": 0})
        for field in ("entered", "stock", "consumed", "lost"):
            bal[field] += part[field]
        for proc, q in sorted(part["exited"].items()):
            bal["exited"][proc] = bal["exited"].get(proc, 0) + q
    return {code: found[code] for code in sorted(found)}


def _ceilings(auth: dict, balances: dict[tuple[str, str, str], dict]) -> list[dict]:
    """The use of each input-goods entry's ceiling now, from the balances (:func:`_balances`; no second read)."""
    input_stocks = [(cn, unit, bal["stock"]) for (category, cn, unit), bal in balances.items()
                    if category == goods.INPUT]
    ceilings = []
    for entry in auth["input_goods"]:
        used = authorisations.usage_of(auth, entry, input_stocks)
        ceilings.append({"cn": entry["cn"], "unit": entry["unit"], "max_qty": entry["max_qty"], "quantity": used,
                         "pct": pct(used, entry["max_qty"])})
    return ceilings


CEILING_POINTS_MAX = 2_000   # changes of one ceiling in one GetCeilingUse answer: the latest


def get_ceiling_use(tx, authorisation_id, start) -> dict:
    """The use of each ceiling since ``start`` (a date: from its first instant; or a date-time): its use at its
    ``since`` (``at_start``) and after each event that changed it from then on (``points``: ledger time,
    transaction, quantity), ending at its use now — GetBalances' ``ceilings``. Worked back from the use now over the
    events recorded since ``start`` (every one of them, those a client's clock put after this query's moment too: the
    use now counts them), so what a chart of it reads grows with the period asked, not with the authorisation's
    history. A ceiling's ``since`` is ``start`` — or, when more than :data:`CEILING_POINTS_MAX` events changed it
    since, the moment of the first of the latest that many (``truncated``), so that a busy authorisation's answer
    stays bounded. Counted as the ceiling is (:func:`authorisations.ceiling_of`)."""
    auth = _readable_authorisation(tx, authorisation_id, "GetCeilingUse")
    lo = timestamps.start_of(timestamps.parse_date(start, "from")) if isinstance(start, str) and len(start) == 10 \
        else _moment(tx, start, "from")
    found = eventlog.since(tx.state, auth["authorisation_id"], max(lo, timestamps.parse_datetime(auth["granted_at"])))
    changes = _ceiling_changes(auth, found, _lot_codes(tx.state, found))
    out = []
    for now in _ceilings(auth, _balances(tx.state, auth)):
        steps = changes.get((now["cn"], now["unit"]), [])
        kept = steps[-CEILING_POINTS_MAX:]
        quantity = now["quantity"] - sum(qty for _at, _tx, qty in kept)
        first, points = quantity, []
        for recorded_at, tx_id, qty in kept:
            quantity += qty
            points.append({"recorded_at": recorded_at, "tx_id": tx_id, "quantity": quantity})
        truncated = len(steps) > len(kept)
        out.append({**now, "since": kept[0][0] if truncated else timestamps.fmt(lo), "at_start": first,
                    "points": points, **({"truncated": True} if truncated else {})})
    return {"authorisation_id": auth["authorisation_id"], "from": timestamps.fmt(lo), "as_of": tx.recorded_at,
            "ceilings": out}


def _lot_taken(effect: dict) -> str | None:
    """The lot whose stock an effect takes from (consumed by processing, exited, lost), else None."""
    if effect["op"] == "consume":
        return effect["lot_id"]
    if effect["op"] in ("exit", "lose") and effect["kind"] == goods.LOT:
        return effect["id"]
    return None


def _lot_codes(state, entries: list[dict]) -> dict[str, tuple[str, str]]:
    """``{lot id: (cn, unit)}`` of the lots the entries place or take from: those placed there from their placement,
    the others (placed before) read, in one round trip."""
    codes = {e["lot"]["lot_id"]: (e["lot"]["cn"], e["lot"]["unit"])
             for entry in entries for e in entry["effects"] if e["op"] == "place"}
    taken = sorted({_lot_taken(e) for entry in entries for e in entry["effects"]} - {None} - codes.keys())
    state.prefetch([keys.lot(lot_id) for lot_id in taken])
    for lot_id in taken:
        lot = state.get(keys.lot(lot_id))
        if lot is None:   # the log names a lot the state does not hold: a damaged ledger, not a smaller use
            raise LedgerInconsistent(f"the event log takes goods from lot {lot_id}, which is not on the ledger",
                                     lot_id=lot_id)
        codes[lot_id] = (lot["cn"], lot["unit"])
    return codes


def _ceiling_changes(auth: dict, entries: list[dict], codes: dict[str, tuple[str, str]]
                     ) -> dict[tuple[str, str], list[tuple[str, str, int]]]:
    """By ceiling, each entry's change of its use: ``(recorded_at, tx id, change)`` in ledger-time order —
    placements add the lot's quantity; consumption, exits and losses of a lot take theirs away."""
    changes: dict[tuple[str, str], list[tuple[str, str, int]]] = {}
    for entry in entries:
        change: dict[tuple[str, str], int] = {}
        for e in entry["effects"]:
            lot_id = e["lot"]["lot_id"] if e["op"] == "place" else _lot_taken(e)
            ceiling = authorisations.ceiling_of(auth, *codes[lot_id]) if lot_id is not None else None
            if ceiling is not None:
                change[ceiling] = change.get(ceiling, 0) + (e["lot"]["placed"] if e["op"] == "place" else -e["qty"])
        for ceiling, qty in sorted(change.items()):
            changes.setdefault(ceiling, []).append((entry["recorded_at"], entry["tx_id"], qty))
    return changes


def get_lot_history(tx, lot_id) -> dict:
    lot = goods.StateBook(tx).get(goods.LOT, _text(lot_id, "lot_id"))
    _readable_by_its_id(tx, lot["authorisation_id"], goods.missing(goods.LOT, lot_id))
    return {"lot_id": lot_id, "history": eventlog.history(tx.state, goods.LOT, lot_id)}


def get_batch_history(tx, batch_id) -> dict:
    batch = goods.StateBook(tx).get(goods.BATCH, _text(batch_id, "batch_id"))
    _readable_by_its_id(tx, batch["authorisation_id"], goods.missing(goods.BATCH, batch_id))
    return {"batch_id": batch_id, "history": eventlog.history(tx.state, goods.BATCH, batch_id)}


def get_declaration(tx, mrn) -> dict:
    """Audit view from a declaration (MRN) to all its events: each item (a placement or an exit) with the
    events of its goods that concern this MRN — for a placement, the whole history of the lot; for an exit, its
    commercial data (the invoice price given with it: to customs and the holder, its hash to a representative;
    the lot's customs value is GetLot's). Only the items of authorisations the caller stands for; NotFound when
    there is none."""
    mrn = _text(mrn, "mrn")
    items = []
    # a 5151 transfer's second side (exit or reception) is stored beside the item's own key
    stored = [*tx.state.scan(keys.DECLARATION, mrn), *tx.state.scan(keys.DECLARATION_TRANSFER, mrn)]
    for (_m, item), decl in sorted(stored, key=lambda entry: entry[0]):
        # an MRN's items may be under authorisations the caller does not stand for: those are not shown
        # (nor named), as if they did not exist
        if not roles.has_standing(tx.party, authorisations.get(tx.state, decl["authorisation_id"])):
            continue
        history = eventlog.history(tx.state, decl["goods"], decl["id"])
        commercial = {}
        if decl["type"] == "EXIT":
            history = [h for h in history if _concerns_item(tx.state, h, mrn, int(item))]
            commercial = _commercial(tx, keys.commercial_exit(mrn, int(item)))
        items.append({**decl, "item_no": int(item), **commercial, "events": history})
    if not items:
        raise NotFound(f"no declaration {mrn}", mrn=mrn)
    return {"mrn": mrn, "items": items}


def _concerns_item(state, entry: dict, mrn: str, item_no: int) -> bool:
    """Whether an event of exited goods concerns that declaration item: its exit, or the ConfirmExit of it."""
    event = entry["event"]
    if event.get("mrn") != mrn:
        return False
    if entry["event_type"] == "ConfirmExit":
        return declarations.confirmed_in(state, mrn, item_no, entry["tx_id"])
    return event.get("item_no", 1) == item_no


EVENTS_PAGE_MAX = schemas.EVENTS_PAGE_MAX   # events in one page of GetEventsInPeriod (common.json)


def get_events_in_period(tx, authorisation_id, start, end, limit=None, after=None) -> dict:
    """Events recorded (ledger time) in [start, end); a date as ``end`` includes that whole day. In pages when asked:
    ``limit`` events at most (1 to :data:`EVENTS_PAGE_MAX`), the answer's ``next`` — present while more follow —
    given back as ``after`` for the next page (the ``recorded_at/tx_id`` of the page's last event). Without
    ``limit``, the whole period in one answer."""
    auth = _readable_authorisation(tx, authorisation_id, "GetEventsInPeriod")
    lo = timestamps.start_of(timestamps.parse_date(start, "from")) if isinstance(start, str) and len(start) == 10 \
        else _moment(tx, start, "from")
    hi = _moment(tx, end, "to")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or not 1 <= limit <= EVENTS_PAGE_MAX):
        raise InvalidEvent(f"limit must be a whole number from 1 to {EVENTS_PAGE_MAX}", field="limit")
    cursor = None
    if after is not None:
        if not isinstance(after, str) or not re.search(schemas.EVENTS_PAGE_CURSOR, after):
            raise InvalidEvent("after must be the next of an earlier page (recorded_at/tx_id)", field="after")
        recorded_at, _slash, tx_id = after.partition("/")
        cursor = (recorded_at, tx_id)
    found = eventlog.entries(tx.state, auth["authorisation_id"], lo, hi, timestamps.parse_datetime(auth["granted_at"]),
                             after=cursor, limit=None if limit is None else limit + 1)
    answer = {"authorisation_id": auth["authorisation_id"], "from": timestamps.fmt(lo), "to": timestamps.fmt(hi),
              "events": found[:limit] if limit is not None else found}
    if limit is not None and len(found) > limit:
        last = found[limit - 1]
        answer["next"] = f"{last['recorded_at']}/{last['tx_id']}"
    return answer


def get_alerts(tx, authorisation_id, as_of=None) -> dict:
    auth = _readable_authorisation(tx, authorisation_id, "GetAlerts")
    moment = _as_of(tx, as_of)
    return {"authorisation_id": auth["authorisation_id"], "as_of": timestamps.fmt(moment),
            "alerts": alert_rules.current(tx.state, auth, moment, tx.params, now=tx.now)}


def get_bill_of_discharge_data(tx, authorisation_id, period_end=None, as_of=None) -> dict:
    """The bill of a period, or the audit view as of a moment (included): a date ``as_of`` is its whole day, up
    to 23:59:59.999999 UTC — like ``period_end`` and ``GetEventsInPeriod``, not the next day's first instant."""
    auth = _readable_authorisation(tx, authorisation_id, "GetBillOfDischargeData")
    if period_end is not None and as_of is not None:
        raise InvalidEvent("give period_end or as_of, not both")
    if period_end is not None:
        day = timestamps.parse_date(_text(period_end, "period_end"), "period_end")
        data = billing.compute(tx.state, auth, period_end=day)
    else:
        data = billing.compute(tx.state, auth, as_of=_as_of(tx, as_of))
    if roles.sees_commercial_data(tx.party):
        data = billing.with_commercial_values(tx.state, data)
    return data


def get_bill_of_discharge(tx, bill_id) -> dict:
    bill_id = _text(bill_id, "bill_id")
    bill = billing.get_bill(tx.state, bill_id)
    _readable_by_its_id(tx, bill["authorisation_id"], billing.missing_bill(bill_id))
    return bill


def get_parameters(tx) -> dict:
    return tx.params


def get_parties(tx) -> dict:
    """The register of parties: customs see every entry (withdrawn ones too), a registered party its own."""
    if tx.party.role == roles.CUSTOMS:
        found = parties.entries(tx.state)
    else:
        found = [parties.entry(tx.state, tx.party.msp_id)]
    return {"customs_msp": tx.customs_msp, "parties": found}
