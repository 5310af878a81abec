"""A declaration item (an MRN's item) across holders' channels: the rule, and customs' watch over it.

**The rule** (docs/domain.md §2b): a declaration item is used once — by a placement or by an exit — or by the two
sides of one IP-to-IP transfer (procedure 5151: the exit under one authorisation, the reception under another)
naming the same goods (:func:`conflict`). On one channel the contract enforces it (``DuplicateDeclaration``,
``TransferMismatch``). Across holders' channels (a channel per holder, docs/deployment.md) no contract sees both
uses:

* a gateway serving several channels refuses, before submitting, an item another of its channels uses against the
  rule (``LedgerService._refuse_a_declaration_used_elsewhere``, with :func:`conflict`);
* a representative with a gateway per holder, or two holders' own gateways, are not stopped. Customs' peer holds
  every holder's channel, so **customs' gateway watches** (:mod:`ipledger.gateway.feed.declarations`): an
  item its feed shows used on two channels against the rule raises a ``DeclarationAcrossChannels`` alert — sent
  to customs' webhook subscriptions, listed by ``GET /api/v1/declarations/across-channels`` and on customs'
  alerts page. The ledger is not changed: customs decide (a control, a revocation), as for the contract's alerts.
"""
from __future__ import annotations

from ipledger.chaincode.contract.schemas import TRANSFER_GOODS_FIELDS, TRANSFER_PROCEDURE

# The sides an item's declaration record names (its ``type``), by the act that uses the item.
PLACEMENT, EXIT = "PLACEMENT", "EXIT"
SIDES = {"PlaceUnderProcedure": PLACEMENT, "ExitGoods": EXIT}
# The transfer procedure and the goods both its sides name alike: common.json's, as the contract reads them.
TRANSFER = TRANSFER_PROCEDURE
GOODS_FIELDS = TRANSFER_GOODS_FIELDS
ALERT_TYPE = "DeclarationAcrossChannels"
DUPLICATE, MISMATCH = "duplicate-declaration", "transfer-mismatch"


def conflict(one: dict, other: dict) -> tuple[str, list[str]] | None:
    """Whether two uses of one declaration item break the rule. A use: ``side`` (PLACEMENT or EXIT), ``procedure``
    and the goods fields it names. None for the two sides of one 5151 transfer naming the same goods;
    ``("transfer-mismatch", fields that differ)`` for such sides naming other goods (a field one side does not
    name is not compared); ``("duplicate-declaration", [])`` for any other two uses. Used across channels only,
    where the two sides are under two holders' authorisations (the contract, on one channel, also asks that the
    authorisations differ)."""
    if {one.get("side"), other.get("side")} == {PLACEMENT, EXIT} and one.get("procedure") == other.get("procedure") \
            == TRANSFER:
        differ = [f for f in GOODS_FIELDS if f in one and f in other and one[f] != other[f]]
        return (MISMATCH, differ) if differ else None
    return DUPLICATE, []
