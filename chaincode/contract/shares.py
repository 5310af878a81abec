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

    A share of 0 units (a small batch from several lots) stands for its lot's input all the same. When its lot
    gives the product but too little for one unit (``gives``), that input is in every unit of the batch: each
    discharge states its part of it, spread over the whole batch (:func:`spread_parts`), so that no order of
    releases and re-exports leaves the releases without it. A lot that gives none of the product (its input is
    not what the product stands for) goes with the batch's last units, as a part of 0 units with all its input
    goods. So once a batch has gone, its discharges have stated exactly the input of every source lot."""
    takes_the_last_units = qty == sum(share["qty"] - share["discharged"] for share in batch["shares"])
    spread = spread_parts(batch, qty, duty_bearing, takes_the_last_units)
    out, rest = [], qty
    for n, share in enumerate(batch["shares"]):
        part = min(rest, share["qty"] - share["discharged"])
        rest -= part
        if n in spread:
            out.append(spread[n])
        elif share["qty"] == 0 and not share.get("gives"):
            # reached when this discharge empties the batch — or goes on past it: a lot giving none of the product
            # comes last, so only a batch made before shares were marked ``gives`` has such a share before others
            if share_remains(share) and (rest > 0 or takes_the_last_units):
                out.append({"lot_id": share["lot_id"], "qty": 0,
                            "input_qty": share["input_qty"] - share["input_discharged"]})
        elif part > 0:
            out.append({"lot_id": share["lot_id"], "qty": part,
                        "input_qty": input_of_part(share, part, duty_bearing)})
    if rest:  # cannot happen while conservation holds: Σ shares = produced
        raise QuantityExceedsBalance(f"{batch['batch_id']}: shares exhausted", id=batch["batch_id"])
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


def spread_parts(batch: dict, qty: int, duty_bearing: bool, last: bool) -> dict[int, dict]:
    """The parts a discharge of ``qty`` units states of the shares of 0 units whose lot gives the product
    (``gives``), by their place in ``batch["shares"]``. Their input is spread over the batch's units as one
    share of all of them would be (:func:`input_of_part`, with the batch's units): together, the releases'
    part in proportion to the batch's units released, rounded up, the other discharges' in proportion to the
    batch's other units gone, rounded down — rounded once for all such shares, not per share — and the batch's
    last units state the rest. Shared out in the shares' order, each up to the input it has left; a part
    before the last units is marked ``ahead`` (its share, and its lot, stay under the procedure until the
    batch's last units have gone: the lot's input is in every unit). What releases stated of a share is its
    ``ahead`` count, the rest of its ``input_discharged`` the other discharges'."""
    zero = {n: share for n, share in enumerate(batch["shares"]) if share["qty"] == 0 and share.get("gives")}
    left = {n: share for n, share in zero.items() if share_remains(share)}
    if not left:
        return {}
    if last:   # the rest, and each share reached (a part of 0 input goods if it has none left)
        return {n: {"lot_id": share["lot_id"], "qty": 0, "input_qty": share["input_qty"] - share["input_discharged"]}
                for n, share in left.items()}
    total = sum(share["input_qty"] for share in zero.values())
    by_releases = sum(share.get("ahead", 0) for share in zero.values())
    released = batch.get("released", 0)
    if duty_bearing:
        due = -(-total * (released + qty) // batch["produced"]) - by_releases
    else:
        others = sum(share["discharged"] for share in batch["shares"]) - released
        by_others = sum(share["input_discharged"] for share in zero.values()) - by_releases
        due = total * (others + qty) // batch["produced"] - by_others
    parts = {}
    for n, share in left.items():
        take = min(due, share["input_qty"] - share["input_discharged"])
        if take > 0:
            parts[n] = {"lot_id": share["lot_id"], "qty": 0, "input_qty": take, "ahead": True}
            due -= take
    return parts


def share_remains(share: dict) -> bool:
    """Whether some of a source lot's share of a batch is still in the batch: units not yet discharged, or (a
    share of 0 units) its input not yet all stated, or, once a discharge stated some of it ahead of the batch's
    last units (``ahead``, :func:`spread_parts`), those units not yet gone (``reached``). The same reading for a
    lot's entry of the product (goods.is_discharged)."""
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
    stands for its input, spread over the batch's discharges or with its last units (:func:`fifo_attribution`). Each share carries
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
        s["gives"] = True   # a lot that gives the product, too little for one unit: spread over the batch
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
