"""Customs controls of the records (UCC art. 214: records approved by customs; art. 48 post-release
controls): goods counted at a site are compared with the book stock there."""
from __future__ import annotations

from ipledger.chaincode.contract import alerts, authorisations, goods, keys, time_rules
from ipledger.chaincode.contract.errors import InvalidEvent

DISCREPANCY = "BalanceDiscrepancy"


def subject(kind: str, goods_id: str, site: str) -> str:
    """A BalanceDiscrepancy's subject: the goods at one site, ``LOT:<id>@<site>``."""
    return f"{kind}:{goods_id}@{site}"


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
        time_rules.not_before_goods(tx.occurred_at, record, kind, goods_id)   # no count of goods not yet there
        # the count is compared with the book as it stands: the control comes after its last change in ledger time
        time_rules.after_last_change(tx, record, kind, goods_id)
        records.append((item, kind, goods_id, record))
    # any site: goods found where they may not be (book 0 there) are what a control must be able to record
    lines = []
    for item, kind, goods_id, record in records:
        goods.require_unit(record, item.get("unit"), goods_id)
        book = record["stock"].get(site, 0)
        difference = item["qty"] - book
        line = {"goods": kind, "id": goods_id, "site": site, "book": book, "counted": item["qty"],
                "difference": difference, "unit": record["unit"]}
        if difference:
            alerts.raise_alert(tx, auth["authorisation_id"], DISCREPANCY, subject(kind, goods_id, site),
                               {**line, "findings": event.get("findings", "")})
        else:
            alerts.clear_alert(tx, auth["authorisation_id"], DISCREPANCY, subject(kind, goods_id, site))
        tx.refer(kind, goods_id)
        lines.append(line)
    return {"site": site, "lines": lines, "discrepancies": sum(1 for line in lines if line["difference"])}


def carry_discrepancy(tx, authorisation_id: str, source: tuple[str, str, str], to: tuple[str, str, str],
                      how: dict) -> None:
    """Goods (``source``: kind, id, site) where a control found a difference still standing carry it to what
    they become elsewhere (``to``): moved to another site (``how``: ``moved_from``, ``moved``) or processed into a
    batch (``processed_from``, ``operation_id``); see :func:`carry_found`.
    Otherwise the book of the missing goods, moved or processed on paper, would make the next count match and
    clear the alert while the goods are nowhere; it clears only by a count of ``to`` where it is."""
    standing = tx.state.get(keys.alert(authorisation_id, DISCREPANCY, subject(*source)))
    if standing is not None:
        carry_found(tx, authorisation_id, to, how, _found(standing))


def difference_keys(authorisation_id: str, kind: str, goods_id: str, sites) -> list[tuple[str, str]]:
    """(site, key) of the ``BalanceDiscrepancy`` alert a control may have left on the goods at each of ``sites``,
    the sites by name: what :func:`standing_difference` reads (and an exit prefetches)."""
    return [(site, keys.alert(authorisation_id, DISCREPANCY, subject(kind, goods_id, site))) for site in sorted(sites)]


def standing_difference(tx, authorisation_id: str, kind: str, goods_id: str, sites) -> dict | None:
    """What a control found at one of ``sites`` of the goods and still stands (the first site by name), to be
    carried with them — a 5151 transfer's exit keeps it on its declaration for the reception to take up:
    ``found_site``, ``difference_found`` (in ``found_unit``), ``found_at``; None when no difference stands there."""
    for site, key in difference_keys(authorisation_id, kind, goods_id, sites):
        standing = tx.state.get(key)
        if standing is not None:
            return {"found_site": site, **_found(standing)}
    return None


def carry_found(tx, authorisation_id: str, to: tuple[str, str, str], how: dict, found: dict) -> None:
    """``to`` (kind, id, site, of ``authorisation_id``) gets a ``BalanceDiscrepancy`` of its own for a difference
    found elsewhere (``found``: the difference, in the counted goods' ``found_unit``, and when, ``found_at``: the
    control that found it), with how the goods came (``how``) — unless one stands there already."""
    to_subject = subject(*to)
    if tx.state.exists(keys.alert(authorisation_id, DISCREPANCY, to_subject)):
        return
    kind, goods_id, site = to
    alerts.raise_alert(tx, authorisation_id, DISCREPANCY, to_subject, {
        "goods": kind, "id": goods_id, "site": site, **how, **found})


def carry_transfer(tx, sent: dict, received: dict, found: dict) -> None:
    """A 5151 transfer's goods left a site where a control's difference stood (``found``, kept on the exit's
    declaration): the receiving authorisation's lot (``received``, the reception's declaration) gets it where its
    goods are now — at each of its sites, and on each batch made from it since at each of the batch's (processed,
    they carry it as :func:`carry_discrepancy` has processed goods do) —, or where it was received when none of
    them is left. Whichever side was recorded first: on reception, the new lot is all at its site. Otherwise the
    next count where the goods were would match the book and clear it while the goods are nowhere (§9 item 24)."""
    how = {"transferred_from": sent["authorisation_id"], "mrn": sent["mrn"], "item_no": sent["item_no"]}
    auth_id, lot_id = received["authorisation_id"], received["id"]
    lot = tx.state.get(keys.lot(lot_id))
    targets = [((goods.LOT, lot_id, site), how) for site in sorted(lot["stock"]) if lot["stock"][site]]
    for batch_id in sorted(lot.get("products", {})):
        batch = tx.state.get(keys.batch(batch_id))
        targets += [((goods.BATCH, batch_id, site), {**how, "processed_from": lot_id})
                    for site in sorted(batch["stock"]) if batch["stock"][site]]
    if not targets and received.get("site"):   # (a reception recorded before its site was kept: on its record only)
        targets = [((goods.LOT, lot_id, received["site"]), how)]
    for to, carried in targets:
        carry_found(tx, auth_id, to, carried, found)


def _found(standing: dict) -> dict:
    """The difference a standing alert stands for: the control's own, or (carried there itself) the one it carries."""
    found = standing["details"]
    if "difference" not in found:   # carried here itself: the difference a control found elsewhere
        return {"difference_found": found["difference_found"],
                "found_unit": found.get("found_unit", found.get("unit")), "found_at": found["found_at"]}
    return {"difference_found": found["difference"], "found_unit": found["unit"], "found_at": standing["updated_at"]}
