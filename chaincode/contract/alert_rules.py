"""When alerts hold (docs/domain.md §6): the reviews after each transaction (ceilings, loss rates)
and the time alerts, computed when asked from the ledger time or an ``as_of`` date, never the wall
clock. The alerts' records are :mod:`ipledger.chaincode.contract.alerts`'s.
"""
from __future__ import annotations

import datetime as dt
from fractions import Fraction

from ipledger.chaincode.contract import (authorisations, billing, declarations, eventlog, goods, keys, time_rules,
                                         timestamps)
from ipledger.chaincode.contract.alerts import DERIVED, RECORDED, clear_alert, raise_alert, recorded
from ipledger.chaincode.contract.decimals import exact, text_beside
from ipledger.chaincode.contract.params import BILL_DUE_DAYS


def _derived(alert_type: str, authorisation_id: str, subject: str, details: dict) -> dict:
    return {"type": alert_type, "authorisation_id": authorisation_id, "subject": subject, "details": details,
            "source": DERIVED}


def review(tx) -> None:
    """After a transaction's effects: ceilings and loss rates of the goods it touched.

    Goods placed: the ceiling's use is read again (CeilingNear raised, updated or cleared). Goods gone
    (an exit, a loss, processing): the use only fell, so it can only clear or lower a CeilingNear that is
    up; when none is, nothing is read — events leaving the procedure do not read the authorisation's
    balances, and so do not conflict with each other. A change of the thresholds: :func:`review_thresholds`."""
    for auth_id, cn in sorted(tx.review_ceilings):
        auth = authorisations.get(tx.state, auth_id)
        entry = authorisations.input_entry(auth, cn)
        if entry is not None:
            authorisations.review_ceiling_entry(tx, auth, entry["cn"])
    for auth_id, cn in sorted(tx.ceilings_decreased):
        if (auth_id, cn) in tx.review_ceilings:
            continue
        auth = authorisations.get(tx.state, auth_id)
        entry = authorisations.input_entry(auth, cn)
        if entry is not None and tx.state.exists(keys.alert(auth_id, "CeilingNear", entry["cn"])):
            authorisations.review_ceiling_entry(tx, auth, entry["cn"])
    for kind, goods_id in sorted(tx.review_losses):
        _review_loss_rate(tx, kind, goods_id, tx.state.get(keys.goods(kind, goods_id)))


def _review_loss_rate(tx, kind: str, goods_id: str, record: dict) -> None:
    """LossRateHigh: raised while lost (destruction apart) / entered > ``loss_warn_pct`` %, else cleared."""
    lost = sum(q for reason, q in record["lost_by_reason"].items() if reason != "DESTROYED")
    whole = goods.entered(kind, record)
    threshold = exact(tx.params["loss_warn_pct"])
    if lost * 100 > threshold * whole:
        raise_alert(tx, record["authorisation_id"], "LossRateHigh", f"{kind}:{goods_id}",
                    {"goods": kind, "id": goods_id, "lost": lost, "entered": whole, "unit": record["unit"],
                     "pct": text_beside(Fraction(lost * 100, whole), threshold)})
    else:
        clear_alert(tx, record["authorisation_id"], "LossRateHigh", f"{kind}:{goods_id}")


def review_thresholds(tx, changed) -> None:
    """Customs changed ``ceiling_warn_pct`` or ``loss_warn_pct`` (SetParameters): the alerts judged against it —
    CeilingNear of every input entry, LossRateHigh of every lot and batch that lost goods — are judged again
    now, for every authorisation on the channel, and raised or cleared (§6: the thresholds are customs'
    parameters; an alert is not left as judged under the old value until the next placement or loss)."""
    ceilings, losses = "ceiling_warn_pct" in changed, "loss_warn_pct" in changed
    if ceilings:
        for _attrs, auth in tx.state.scan(keys.AUTHORISATION):
            for cn in sorted(entry["cn"] for entry in auth["input_goods"]):   # in CN order, as every review
                authorisations.review_ceiling_entry(tx, auth, cn)
    if losses:
        found = _goods_with_losses(tx)
        tx.state.prefetch([keys.goods(kind, goods_id) for kind, goods_id in found])
        for kind, goods_id in found:
            _review_loss_rate(tx, kind, goods_id, tx.state.get(keys.goods(kind, goods_id)))


def _goods_with_losses(tx) -> list[tuple[str, str]]:
    """The lots and batches of the channel that lost goods, ``(kind, id)`` by authorisation, kind and id: the
    index ``auth.loss`` (every loss writes its entry), read alone — not every lot of the channel, which a busy
    channel's events would change while customs' transaction is endorsed (MVCC and phantom conflicts on every
    retry). A ledger written before the index had lots with losses not in it: the first change reads every lot
    and batch once, as before, and writes their entries and ``auth.loss.index``."""
    if tx.state.exists(keys.loss_index_built()):
        return [(kind, goods_id) for (_auth, kind, goods_id), _ in tx.state.scan(keys.AUTH_LOSSES)]
    found = []
    for _attrs, auth in tx.state.scan(keys.AUTHORISATION):
        auth_id = auth["authorisation_id"]
        for kind, index in ((goods.BATCH, keys.AUTH_BATCHES), (goods.LOT, keys.AUTH_LOTS)):
            ids = [goods_id for (_a, goods_id), _ in tx.state.scan(index, auth_id)]
            tx.state.prefetch([keys.goods(kind, goods_id) for goods_id in ids])
            for goods_id in ids:
                if tx.state.get(keys.goods(kind, goods_id))["lost"]:
                    tx.state.put(keys.auth_loss(auth_id, kind, goods_id), {})
                    found.append((kind, goods_id))
    tx.state.put(keys.loss_index_built(), {})
    return found


def _bill_lists(bill: dict, lot: dict, when: dt.datetime) -> bool:
    """Whether a bill lists ``lot`` for its deadline counted at ``when`` (``goods.billed_at``): ``when`` falls
    in the bill's period, and the lot was recorded before the bill's cut-off — a bill's replay holds no lot
    recorded later (one recorded after its deadline by an older version of the contract, before
    ``billed_from`` was stored for it, is in no bill: the alert stays, for customs to settle)."""
    cutoff = timestamps.parse_datetime(bill["cutoff"])
    return ((bill["period_start"] is None or timestamps.parse_datetime(bill["period_start"]) <= when)
            and when < cutoff and timestamps.parse_datetime(lot["accepted_at"]) < cutoff)


def _carried_disposals(state, source: dict, covered: list[dict], as_of: dt.datetime) -> dict[str, list[str]]:
    """The goods the latest bill submitted (or accepted) left OVERDUE and the next bill carries
    (``billing.carried_goods``, the bill's own rule) that have been exited or lost since its cut-off, by ``as_of``,
    by the day of their first such disposal: ``{day: ["LOT:L1", …]}``. The next bill lists those disposals
    (``carried_from``), due 30 days after that day — else, with no later lot's period ending (a revoked
    authorisation), nothing would ask for it. Read: as of a past moment, the log already replayed
    (:func:`records_then`); now, the history of each such goods changed since the bill, from its cut-off on, up
    to its first disposal."""
    if not covered:
        return {}
    latest = max(covered, key=lambda b: b["period_end"])
    cutoff, moment = latest["cutoff"], timestamps.fmt(as_of)
    lots = {r["lot_id"]: r for r in source["lots"]}
    batches = {r["batch_id"]: r for r in source["batches"]}
    carried = billing.carried_goods(latest, lots, batches, timestamps.parse_datetime(cutoff))

    def disposes(entry: dict, kind: str, goods_id: str) -> bool:
        return any(e["op"] in ("exit", "lose") and e["kind"] == kind and e["id"] == goods_id for e in entry["effects"])

    first: dict[tuple[str, str], str] = {}
    if "log" in source:   # as of a past moment: the entries replayed, in ledger order
        for entry in source["log"]:
            if entry["recorded_at"] >= cutoff:   # its disposals of carried goods (not every carried goods' check)
                disposed = {(e["kind"], e["id"]) for e in entry["effects"] if e["op"] in ("exit", "lose")}
                for kind, goods_id in sorted((disposed & carried) - first.keys()):
                    first[(kind, goods_id)] = entry["recorded_at"]
    else:
        for kind, goods_id in sorted(carried):
            record = lots.get(goods_id) if kind == goods.LOT else batches.get(goods_id)
            if record is None or record.get("updated_at", cutoff) < cutoff:
                continue   # unchanged since the bill
            for entry in eventlog.history_from(state, kind, goods_id, cutoff):
                if entry["recorded_at"] > moment:
                    break
                if disposes(entry, kind, goods_id):
                    first[(kind, goods_id)] = entry["recorded_at"]
                    break
    out: dict[str, list[str]] = {}
    for (kind, goods_id), recorded_at in sorted(first.items()):
        out.setdefault(recorded_at[:10], []).append(f"{kind}:{goods_id}")
    return out


def records_now(state, auth: dict) -> dict:
    """What the alerts of an authorisation are computed from: its lots, batches, bills, re-exports awaiting
    ConfirmExit, transfers awaiting their reception and recorded alerts, as they are now."""
    auth_id = auth["authorisation_id"]
    lot_keys = [keys.lot(lot_id) for (_a, lot_id), _ in state.scan(keys.AUTH_LOTS, auth_id)]
    batch_keys = [keys.batch(b_id) for (_a, b_id), _ in state.scan(keys.AUTH_BATCHES, auth_id)]
    state.prefetch(lot_keys + batch_keys)   # one round trip per batch of keys, not one per lot
    return {
        "auth": auth,
        "lots": [state.get(k) for k in lot_keys],
        "batches": [state.get(k) for k in batch_keys],
        "bills": [b for _k, b in state.scan(keys.BILL, auth_id)],
        "unconfirmed": [((mrn, int(item)), pending)
                        for (_a, mrn, item), pending in state.scan(keys.UNCONFIRMED_EXIT, auth_id)],
        "recorded": recorded(state, auth_id),
    }


def records_then(state, auth: dict, as_of: dt.datetime) -> dict:
    """The same records as they stood at ``as_of`` (included), a moment before the ledger time: replayed from the
    event log (``eventlog.book_before``, as the audit view of that moment) — goods, the re-exports not confirmed and the
    transfers not received by then,
    the bills submitted by then with the decision in force then, the recorded alerts raised and not cleared by
    then, the authorisation's status and terms then. So a past ``as_of`` shows the alerts that held at that
    moment, not today's records judged at an earlier date."""
    log, book = eventlog.book_before(state, auth, as_of + dt.timedelta(microseconds=1))
    stored = {b["period_end"]: b for _k, b in state.scan(keys.BILL, auth["authorisation_id"])}
    bills, pending, raised, terms = {}, {}, {}, {}
    for entry in log:
        for e in entry["effects"]:
            # re-exports, and transfers recorded before their reception (discharge.exit_goods marks them)
            if e["op"] == "exit" and declarations.awaits_confirmation(e):
                received = declarations.reception(state, e["mrn"], e["item_no"]) if e.get("awaits_reception") else None
                pending[(e["mrn"], e["item_no"])] = {
                    "goods": e["kind"], "id": e["id"], "quantity": e["qty"], "procedure": e["procedure"],
                    # its legally relevant date, as discharge.exit_goods
                    "declared_at": time_rules.declared_at(entry["occurred_at"], entry["recorded_at"]),
                    "occurred_at": entry["occurred_at"],
                    "recorded_at": entry["recorded_at"], "received_at": received and received["recorded_at"]}
        act, event = entry["event_type"], entry["event"]
        if act in ("GrantAuthorisation", "AmendAuthorisation"):
            terms = authorisations.fields_of(event)
        elif act == "SubmitBillOfDischarge":
            bills[event["period_end"]] = {**stored[event["period_end"]], "status": "SUBMITTED"}
        elif act == "DecideBillOfDischarge":
            period_end = event["bill_id"][-10:]
            bills[period_end] = {**bills[period_end], "status": event["decision"]}
        for change in entry["alerts"]:
            key = (change["type"], change["subject"])
            if change["change"] == "CLEARED":
                raised.pop(key, None)
                continue
            first = raised.get(key)
            raised[key] = {"type": change["type"], "authorisation_id": change["authorisation_id"],
                           "subject": change["subject"], "details": change["details"],
                           "raised_at": first["raised_at"] if first else entry["recorded_at"],
                           "raised_tx": first["raised_tx"] if first else entry["tx_id"],
                           "updated_at": entry["recorded_at"], "updated_tx": entry["tx_id"], "source": RECORDED}
    moment = timestamps.fmt(as_of)
    # confirmed by then (the bill's reading of the same log), or transfers received (on this ledger, under the other
    # authorisation) by then: no longer awaiting
    confirmed = declarations.exit_confirmations(state, log)
    pending = {k: p for k, p in pending.items()
               if k not in confirmed and not (p["received_at"] and p["received_at"] <= moment)}
    history = [h for h in auth["status_history"] if h["recorded_at"] <= moment] or auth["status_history"][:1]
    records = sorted(book.records.items())
    return {
        "auth": {**auth, **terms, "status": history[-1]["status"]},
        "lots": [r for (kind, _id), r in records if kind == goods.LOT],
        "batches": [r for (kind, _id), r in records if kind == goods.BATCH],
        "bills": [bills[p] for p in sorted(bills)],
        "unconfirmed": sorted(pending.items()),
        "recorded": [raised[k] for k in sorted(raised)],
        "log": log,   # the entries replayed (_carried_disposals reads the disposals since the last bill there)
    }


def time_alerts(state, auth: dict, as_of: dt.datetime, params: dict, source: dict | None = None) -> list[dict]:
    """The time alerts of an authorisation at ``as_of``, from ``source`` (:func:`records_now` by default)."""
    source = records_now(state, auth) if source is None else source
    auth = source["auth"]
    auth_id = auth["authorisation_id"]
    out = []
    warn = dt.timedelta(days=params["warn_days"])
    lots, batches = source["lots"], source["batches"]

    # DeadlineApproaching / DeadlineOverdue: goods still under the procedure, waste included (UCC art. 257)
    for kind, records in ((goods.LOT, lots), (goods.BATCH, batches)):
        for rec in records:
            if goods.balance(rec) == 0:
                continue
            goods_id = rec["lot_id"] if kind == goods.LOT else rec["batch_id"]
            due = goods.deadline(rec)
            details = {"goods": kind, "id": goods_id, "balance": goods.balance(rec), "unit": rec["unit"],
                       "cn": rec["cn"], "deadline": rec["deadline"]}
            if as_of > due:
                out.append(_derived("DeadlineOverdue", auth_id, f"{kind}:{goods_id}", details))
            elif due - as_of <= warn:
                out.append(_derived("DeadlineApproaching", auth_id, f"{kind}:{goods_id}",
                                    {**details, "days_left": (due - as_of).days}))

    # BillOfDischargeDue / Late: DA art. 175, 30 days after the period for discharge ends — and after the day of
    # the first disposal of goods the last bill left overdue, which the next bill lists (_carried_disposals)
    bills = source["bills"]
    covered = [b for b in bills if b["status"] in ("SUBMITTED", "ACCEPTED")]
    by_day: dict[str, list[str]] = {}
    for lot in lots:
        deadline = goods.billed_at(lot, goods.deadline(lot))
        if any(_bill_lists(b, lot, deadline) for b in covered):
            continue
        by_day.setdefault(deadline.date().isoformat(), []).append(lot["lot_id"])
    carried = _carried_disposals(state, source, covered, as_of)
    for day in carried:
        by_day.setdefault(day, [])
    for day, lot_ids in sorted(by_day.items()):
        due = timestamps.end_of(dt.date.fromisoformat(day)) + dt.timedelta(days=BILL_DUE_DAYS)
        details = {"period_end": day, "due": timestamps.fmt(due), "lots": sorted(lot_ids),
                   **({"carried": carried[day]} if day in carried else {})}
        if as_of > due:
            out.append(_derived("BillOfDischargeLate", auth_id, day, details))
        elif due - as_of <= dt.timedelta(days=params["bill_warn_days"]):
            out.append(_derived("BillOfDischargeDue", auth_id, day, details))

    # ExitUnconfirmed: a re-export without ConfirmExit — or a transfer (5151) neither received on this ledger nor
    # confirmed — more than exit_confirm_days after its legally relevant date (declared_at: when the declaration
    # was accepted, at most the ledger time; see discharge.exit_goods)
    limit = dt.timedelta(days=params["exit_confirm_days"])
    unit_of = {**{(goods.LOT, r["lot_id"]): r["unit"] for r in source["lots"]},
               **{(goods.BATCH, r["batch_id"]): r["unit"] for r in source["batches"]}}
    for (mrn, item), pending in source["unconfirmed"]:
        if as_of - timestamps.parse_datetime(pending["declared_at"]) > limit:
            out.append(_derived("ExitUnconfirmed", auth_id, f"{mrn}/{int(item)}", {
                "mrn": mrn, "item_no": int(item), "procedure": pending.get("procedure", declarations.RE_EXPORT),
                "declared_at": pending["declared_at"],
                "occurred_at": pending["occurred_at"], "recorded_at": pending["recorded_at"],
                "goods": pending["goods"], "id": pending["id"], "quantity": pending["quantity"],
                "unit": unit_of.get((pending["goods"], pending["id"]))}))

    # AuthorisationExpiring: validity ends within auth_warn_days
    end = authorisations.validity(auth)[1]
    if auth["status"] != authorisations.REVOKED and as_of < end <= as_of + dt.timedelta(days=params["auth_warn_days"]):
        out.append(_derived("AuthorisationExpiring", auth_id, auth_id,
                            {"valid_to": auth["valid_to"], "days_left": (end - as_of).days}))
    return out


def current(state, auth: dict, as_of: dt.datetime, params: dict, now: dt.datetime | None = None) -> list[dict]:
    """Every alert of the authorisation at ``as_of``: recorded ones and time ones, sorted. An ``as_of`` before
    ``now`` (the ledger time) reads the records as they stood then (:func:`records_then`); at or after it, the
    records as they are (looking ahead)."""
    past = now is not None and as_of < now
    source = records_then(state, auth, as_of) if past else records_now(state, auth)
    found = source["recorded"] + time_alerts(state, auth, as_of, params, source)
    return sorted(found, key=lambda a: (a["type"], a["subject"]))
