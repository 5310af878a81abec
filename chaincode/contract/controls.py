"""Customs controls of the records (UCC art. 214: records approved by customs; art. 48 post-release
controls): goods counted at a site are compared with the book stock there."""
from __future__ import annotations

from ipledger.chaincode.contract import alerts, authorisations, goods, time_rules
from ipledger.chaincode.contract.errors import InvalidEvent


def record_control(tx, event: dict) -> dict:
    """RecordControl: never refused for a difference nor for its site — goods found at a site the authorisation does
    not name are counted against a book of 0 there (an item counted twice is refused: InvalidEvent; a control
    timestamped at or before the last change of goods it counts is: OutOfOrder); a difference raises ``BalanceDiscrepancy``,
    a count that matches the book clears an earlier one. The control changes no balance: corrections
    are separate events (e.g. RecordLoss)."""
    auth = authorisations.get(tx.state, event["authorisation_id"])
    site = event["site"]
    records = []
    counted: set[tuple[str, str]] = set()
    for item in event["counted"]:
        kind, goods_id = goods.goods_ref(item)
        if (kind, goods_id) in counted:   # two counts of one item: which would the alert stand for?
            raise InvalidEvent(f"counted lists {kind.lower()} {goods_id} twice", goods=kind, id=goods_id)
        counted.add((kind, goods_id))
        record = goods.load(tx, kind, goods_id, auth["authorisation_id"])
        # the count is compared with the book as it stands: the control comes after its last change in ledger time
        time_rules.after_last_change(tx, record, kind, goods_id)
        records.append((item, kind, goods_id, record))
    # any site: goods found where they may not be (book 0 there) are what a control must be able to record
    lines = []
    for item, kind, goods_id, record in records:
        goods.require_unit(record, item.get("unit"), goods_id)
        book = record["stock"].get(site, 0)
        difference = item["qty"] - book
        subject = f"{kind}:{goods_id}@{site}"
        line = {"goods": kind, "id": goods_id, "site": site, "book": book, "counted": item["qty"],
                "difference": difference, "unit": record["unit"]}
        if difference:
            alerts.raise_alert(tx, auth["authorisation_id"], "BalanceDiscrepancy", subject,
                               {**line, "findings": event.get("findings", "")})
        else:
            alerts.clear_alert(tx, auth["authorisation_id"], "BalanceDiscrepancy", subject)
        tx.refer(kind, goods_id)
        lines.append(line)
    return {"site": site, "lines": lines, "discrepancies": sum(1 for line in lines if line["difference"])}
