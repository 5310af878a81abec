"""A batch's shares of its source lots (docs/domain.md §5, UCC art. 255): how a batch is shared over the lots it
was made from, which shares a discharge of the batch takes — first in, first out — and the input goods each part
stands for, what of a share is left, and the batch's deadline. :mod:`goods` keeps the books these counts live in."""
from __future__ import annotations

from ipledger.chaincode.contract.errors import QuantityExceedsBalance


def fifo_attribution(batch: dict, qty: int, *, duty_bearing: bool = False) -> list[dict]:
    """Which source lots a discharge of ``qty`` from a batch discharges: first in, first out by
    placement time (docs/domain.md §5). ``batch["shares"]`` is already in placement order: the batch's units
    lie share after share, and a discharge takes the next ``qty`` of them.

    Each part also states the input goods it stands for: the lot's units consumed by the operation, in
    proportion to the part of the share (at the operation's actual yield), counted cumulatively over the
    share so that its parts add up to exactly its input once the whole share has gone. Where that proportion
    is not a whole number of units, a ``duty_bearing`` discharge (a release for free circulation: import
    duty is due on the input goods it stands for, UCC art. 86(3)) rounds up, every other one down, each
    counted apart (:func:`input_of_part`). Rounded down for all, the declarant could choose which units go out
    under which procedure so that releases state fewer input goods than they stand for (none at all when a
    unit stands for half an input unit); rounded this way the input goods a share's releases state are never
    fewer than their exact proportion, whatever the order and size of its discharges.

    A share of 0 units (a small batch from several lots) stands for its lot's input all the same: it goes
    with the discharge that reaches it — one that takes units after it, or the batch's last units — as a
    part of 0 units with all its input goods (those releases stated ahead of it aside). When its lot gives the
    product but too little for one unit (``gives``; not a lot that gives none of it, whose input goes with the
    batch's last units), a release before that point states its part of the share's input too — in proportion
    to the batch's units released, rounded up, as a part marked ``ahead`` (:func:`released_ahead`) —, or a
    declarant could release before the point and re-export after it, and the releases would state none of such
    lots' input. So once a batch has gone, its
    discharges have stated exactly the input of every source lot."""
    out, rest, not_reached = [], qty, []
    takes_the_last_units = qty == sum(share["qty"] - share["discharged"] for share in batch["shares"])
    for share in batch["shares"]:
        part = min(rest, share["qty"] - share["discharged"])
        rest -= part
        if share["qty"] == 0:  # reached when this discharge goes on past it, or empties the batch
            if not share_remains(share):
                continue
            if not (rest > 0 or takes_the_last_units):
                not_reached.append(share)
                continue
            input_qty = share["input_qty"] - share["input_discharged"]
        elif part > 0:
            input_qty = input_of_part(share, part, duty_bearing)
        else:
            continue
        out.append({"lot_id": share["lot_id"], "qty": part, "input_qty": input_qty})
    if rest:  # cannot happen while conservation holds: Σ shares = produced
        raise QuantityExceedsBalance(f"{batch['batch_id']}: shares exhausted", id=batch["batch_id"])
    giving = [share for share in not_reached if share.get("gives")]   # not the lots that give none of it
    if duty_bearing and giving:
        out.extend(released_ahead(batch, giving, qty))
    return out


def input_of_part(share: dict, part: int, duty_bearing: bool) -> int:
    """The input goods ``part`` more units of a share stand for. Its releases for free circulation (``released``
    units, ``input_released`` stated; absent until the first) and its other discharges are counted apart: the
    releases' input rounded up, the others' down, so with the last unit they add up to its input (ceil(x) +
    floor(n - x) = n). Earlier discharges count as the others' (a replay of the log counts them by procedure)."""
    released, input_released = share.get("released", 0), share.get("input_released", 0)
    if duty_bearing:
        return -(-share["input_qty"] * (released + part) // share["qty"]) - input_released
    others, input_others = share["discharged"] - released, share["input_discharged"] - input_released
    return share["input_qty"] * (others + part) // share["qty"] - input_others


def released_ahead(batch: dict, zero_shares: list[dict], qty: int) -> list[dict]:
    """The parts a release of ``qty`` units states of the shares of 0 units it does not reach: together, their
    input in proportion to the batch's units released, this one included — rounded up once, not per share —,
    less what earlier releases stated of them ahead (``ahead``); shared out in the shares' order, each up to
    the input it has left."""
    total_input = sum(share["input_qty"] for share in zero_shares)
    stated = sum(share.get("ahead", 0) for share in zero_shares)
    due = -(-total_input * (batch.get("released", 0) + qty) // batch["produced"]) - stated
    parts = []
    for share in zero_shares:
        take = min(due, share["input_qty"] - share["input_discharged"])
        if take > 0:
            parts.append({"lot_id": share["lot_id"], "qty": 0, "input_qty": take, "ahead": True})
            due -= take
    return parts


def share_remains(share: dict) -> bool:
    """Whether some of a source lot's share of a batch is still in the batch: units not yet discharged, or (a
    share of 0 units) the discharge that reaches it not yet recorded — its input not yet all stated, or, when
    releases stated some of it ahead (``ahead``), not ``reached``. The same reading for a lot's entry of the
    product (goods.is_discharged)."""
    if share["discharged"] < share["qty"] or share["input_discharged"] < share["input_qty"]:
        return True
    return "ahead" in share and not share.get("reached")


def shares_of(produced: int, inputs: list[tuple[dict, int]], weights: list | None = None) -> list[dict]:
    """Split a batch over its source lots in proportion to ``weights`` — what each lot gives of the product by
    its rate of yield (qty × rate, in the product's unit; 0 for a lot without a rate to it), see
    ``processing.share_weights`` — or, for a product without a rate from these inputs, to the quantity each lot
    gave; rounding remainders go to the earliest lots of a weight above 0. ``inputs`` are (lot, qty) in
    placement order, the order of the shares, except that lots of weight 0 come last. A share stands for
    the lot's whole input to the operation (``input_qty``): the products of one operation are joint
    products, each obtained from all its inputs. A share may be 0 units (1 unit from 2 lots): it still
    stands for its input, and is discharged with the batch (:func:`fifo_attribution`). Each share carries
    its lot's deadline (kept in step with the lot's extensions): the batch's is the earliest of the shares
    still in it (:func:`batch_deadline`)."""
    weights = [q for _, q in inputs] if weights is None else weights
    total = sum(weights)
    shares = [{"lot_id": lot["lot_id"], "qty": int(produced * w // total), "input_qty": q, "discharged": 0,
               "input_discharged": 0, "deadline": lot["deadline"]} for (lot, q), w in zip(inputs, weights)]
    rest = produced - sum(s["qty"] for s in shares)
    for s in [s for s, w in zip(shares, weights) if w > 0][:rest]:
        s["qty"] += 1
    for s in [s for s, w in zip(shares, weights) if w > 0 and s["qty"] == 0]:
        s["gives"] = True   # a lot that gives the product, with too few units for one: releases state it ahead
    # the lots that give the product first (placement order), then those that give none of it: their input goes
    # with the batch's last units, not with its first disposal
    return [s for s, w in zip(shares, weights) if w > 0] + [s for s, w in zip(shares, weights) if w == 0]


def batch_deadline(batch: dict) -> str:
    """A batch's deadline: the earliest deadline of the source lots whose share is still in it (a share that has
    all left, FIFO, no longer holds the batch to its lot's deadline); an empty batch follows all its lots. A
    batch recorded before shares carried their lot's deadline keeps the one it has."""
    holding = [share for share in batch["shares"] if share_remains(share)] or batch["shares"]
    if not all("deadline" in share for share in holding):
        return batch["deadline"]
    return min(share["deadline"] for share in holding)  # timestamps.fmt is fixed width: text order is time order
