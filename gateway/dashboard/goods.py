"""The dashboard's pages of goods: a lot, and a batch of processed products (main, secondary or waste) — what the
contract's GetLot and GetBatch answer, the goods' audit trail (:meth:`ipledger.gateway.audit.AuditTrail.lot`,
``.batch``) and, for a batch, the operation that made it with its yield lines, its disposals and losses (its
authorisation's bill-of-discharge data, as the authorisation page reads it) and its alerts.

Each page queries the contract as the session's organisation: what a broker or a holder may not read (another
holder's lot or batch) is a 404, as an id not in use. On a gateway of several holders' channels an id may be on two of
them (each holder numbers its own goods): ``?channel=`` names one, as the other pages' links do, and without it such an
id answers 409 with a link to each channel (:func:`ipledger.gateway.dashboard.ui._error_page`); every query of the page
goes to the channel that answered, and its links carry it.

Also the alerts' goods (:func:`alert_goods`): the lot or batch an alert's subject names, which the pages link."""
from __future__ import annotations

from flask import Blueprint, render_template

from ipledger.gateway.api.common import ID_PATTERNS, live, whole
from ipledger.gateway.dashboard.ui import evaluate, login_required, ok_id, page_item, shown_channel

bp = Blueprint("goods", __name__)

# the alerts whose subject names goods: ``LOT:<id>`` / ``BATCH:<id>``, with ``@<site>`` for a control's difference
_GOODS_ALERTS = frozenset({"BalanceDiscrepancy", "LossRateHigh", "DeadlineApproaching", "DeadlineOverdue"})
_ID_OF = {"LOT": "lot_id", "BATCH": "batch_id"}


@bp.app_template_filter("alert_goods")
def alert_goods(alert: dict) -> tuple[str, str] | None:
    """``("LOT" | "BATCH", id)`` of the goods ``alert`` is about (its subject ``LOT:L1``, ``BATCH:B1@SITE``), None for
    an alert about something else (a goods code, an operation's yield, a declaration) or a subject not of that form."""
    if alert.get("type") not in _GOODS_ALERTS:
        return None
    kind, colon, rest = str(alert.get("subject") or "").partition(":")
    goods_id = rest.partition("@")[0]   # a lot or batch id has no '@'
    if not colon or kind not in _ID_OF or not whole(ID_PATTERNS[_ID_OF[kind]], goods_id):
        return None
    return kind, goods_id


@bp.get("/lots/<ident:lot_id>")
@login_required
def lot(principal, lot_id):
    """A lot, the products made from it and its audit trail."""
    lot_id = ok_id("lot_id", lot_id)
    channel, data = page_item(principal.org, "GetLot", lot_id)
    trail = live().audit.lot(principal.org, lot_id, channel)
    return render_template("dashboard/lot.html", principal=principal, lot=data, trail=trail["entries"],
                           channel=shown_channel(channel))


@bp.get("/batches/<ident:batch_id>")
@login_required
def batch(principal, batch_id):
    """A batch: its goods, balance per site, status and deadline; the operation that made it (its yield lines); its
    shares — the lots it was made from, the units and the input each stands for —; its disposals and losses; its
    alerts; its audit trail."""
    batch_id = ok_id("batch_id", batch_id)
    org = principal.org
    channel, data = page_item(org, "GetBatch", batch_id)
    auth_id = data.get("authorisation_id")
    bill = evaluate(org, "GetBillOfDischargeData", auth_id, None, None, channel=channel)
    operation = next((op for op in bill.get("processing") or []
                      if op.get("operation_id") == data.get("operation_id")), None)
    lot_units = {lot.get("lot_id"): lot.get("unit") for lot in bill.get("lots") or []}
    lot_units.update({i.get("lot_id"): i.get("unit") for i in (operation or {}).get("inputs") or []})
    yield_subject = f"{data.get('operation_id')}/{data.get('cn')}"   # a YieldDeviation of its operation and goods
    alerts = [a for a in evaluate(org, "GetAlerts", auth_id, None, channel=channel).get("alerts", [])
              if alert_goods(a) == ("BATCH", batch_id)
              or (a.get("type") == "YieldDeviation" and a.get("subject") == yield_subject)]
    trail = live().audit.batch(org, batch_id, channel)
    return render_template("dashboard/batch.html", principal=principal, batch=data, operation=operation,
                           lot_units=lot_units, disposals=_disposals(bill, batch_id), alerts=alerts,
                           trail=trail["entries"], channel=shown_channel(channel))


def _disposals(bill: dict, batch_id: str) -> list[dict]:
    """The batch's exits and losses, as its bill-of-discharge data lists them, in the order they were recorded."""
    ours = [{"what": "exit", "code": d.get("procedure"), **d} for d in bill.get("disposals") or []
            if d.get("goods") == "BATCH" and d.get("id") == batch_id]
    ours += [{"what": "loss", "code": x.get("reason"), **x} for x in bill.get("losses") or []
             if x.get("goods") == "BATCH" and x.get("id") == batch_id]
    return sorted(ours, key=lambda d: (d.get("recorded_at") or "", d.get("tx_id") or ""))
