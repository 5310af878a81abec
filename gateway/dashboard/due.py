"""When an authorisation and its lots are due, as the dashboard's pages show them: days left and a lot's status,
from the contract's answers and the ledger time they were given at (never the gateway's clock when the answer
has one)."""
from __future__ import annotations

import datetime as dt

from ipledger.gateway import moments


def days_until(text: str | None, at: dt.datetime | None = None) -> int | None:
    """Whole days from ``at`` (the ledger time of the contract's answer, when the page has one; else now, UTC) to
    the date ``text`` — an authorisation's validity, as ``AuthorisationExpiring`` counts it."""
    if not text:
        return None
    try:
        day = dt.date.fromisoformat(text[:10])
    except ValueError:
        return None
    return (day - (at or dt.datetime.now(dt.timezone.utc)).date()).days


def validity_left(auth: dict, at: dt.datetime | None) -> int | None:
    """The days left of an authorisation's validity while it is in force (ACTIVE or SUSPENDED); none once it is
    REVOKED or EXPIRED — its goods are still to be discharged, but its validity is over."""
    return days_until(auth.get("valid_to"), at) if auth.get("status") in ("ACTIVE", "SUSPENDED") else None


def lot_status(lot: dict, remaining: list[dict], at: dt.datetime) -> dict:
    """A lot's status and days left as the contract has them at ``at`` (the ledger time of its answer): DISCHARGED
    only when its own stock *and* its share of every batch made from it have gone (the bill's ``discharged``,
    ``goods.is_discharged``) — a lot of stock 0 whose waste is still under the procedure is not —, else OVERDUE
    after its deadline (the moment, not its day), else OPEN; days left as DeadlineApproaching counts them,
    whole days to the deadline's moment ((deadline − at).days), none once discharged."""
    status_of = {(r.get("goods"), r.get("id")): r.get("status") for r in remaining}
    deadline = moments.parse(lot.get("deadline"))
    if "discharged" in lot:
        discharged = bool(lot["discharged"])
    else:   # an older contract's answer: its own stock only
        discharged = not lot.get("remaining") and ("LOT", lot.get("lot_id")) not in status_of
    if discharged:
        return {"status": "DISCHARGED", "days_left": None}
    status = status_of.get(("LOT", lot.get("lot_id"))) or (
        "OVERDUE" if deadline is not None and at > deadline else "OPEN")
    return {"status": status, "days_left": (deadline - at).days if deadline is not None else None}
