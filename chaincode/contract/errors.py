"""The named rules of domain.md §5: one exception per way an event can be refused.

Raising any of these makes the contract answer status 500 with the JSON message
``{"code": <class name>, "message": ..., "details": {...}}`` and the transaction
writes nothing (Fabric discards the write set of a failed proposal).

The gateway may import this module (and only this one plus ``schemas``) to map
codes to HTTP problems: ``RULES`` lists every code.
"""
from __future__ import annotations

from chaincode.shim.contract_api import ChaincodeError

__all__ = [
    "ChaincodeError", "RULES",
    "InvalidEvent", "NotPermitted", "AuthorisationNotActive", "AuthorisationExpired", "GoodsNotCovered",
    "SiteNotAuthorised", "CeilingExceeded", "QuantityExceedsBalance", "UnitMismatch", "YieldOutOfTolerance",
    "DeadlinePassed", "DuplicateEvent", "DuplicateDeclaration", "OutOfOrder", "ClockSkew",
    "NotFound", "AlreadyExists", "InvalidState", "PeriodNotEnded", "HashMismatch",
]


class _Rule(ChaincodeError):
    """Base of the named rules; ``code`` is the class name."""

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        cls.code = cls.__name__


# -- domain.md §5 ------------------------------------------------------------------------------------

class InvalidEvent(_Rule):
    """Schema violation: missing field, bad cn/mrn/eori/office_id format, non-positive quantity,
    or dates and rates that do not make sense together."""


class NotPermitted(_Rule):
    """The caller's org or role may not perform this act, or the broker has no mandate (§2)."""


class AuthorisationNotActive(_Rule):
    """The authorisation is suspended or revoked (UCC art. 211, 28)."""


class AuthorisationExpired(_Rule):
    """The ledger time is outside the authorisation's validity."""


class GoodsNotCovered(_Rule):
    """An input or output CN code (or a rate of yield) is not in the authorisation."""


class SiteNotAuthorised(_Rule):
    """The site is not one of the authorisation's sites."""


class CeilingExceeded(_Rule):
    """The quantity under the procedure for a CN entry would pass its ``max_qty``."""


class QuantityExceedsBalance(_Rule):
    """A movement, consumption, loss or exit above the balance (at that site)."""


class UnitMismatch(_Rule):
    """Quantities in different units would be compared or added."""


class YieldOutOfTolerance(_Rule):
    """|actual / authorised − 1| > ``yield_block_pct`` for a main processed product (UCC art. 255)."""


class DeadlinePassed(_Rule):
    """An act other than exit, loss or extension on goods whose period for discharge has ended (art. 257)."""


class DuplicateEvent(_Rule):
    """The same ``event_id`` was already used with different content."""


class DuplicateDeclaration(_Rule):
    """The declaration (``mrn`` + item number) was already used."""


class OutOfOrder(_Rule):
    """Business time before the goods' placement, backdated beyond ``backdate_max_days`` or in the
    future, or a transaction timestamped before the last recorded change of the goods it touches."""


class ClockSkew(_Rule):
    """The transaction timestamp differs from the endorsing peer's clock by more than
    ``max_clock_skew_s``."""


# -- implied by the specification ----------------------------------------------------------------------

class NotFound(_Rule):
    """An authorisation, lot, batch, declaration or bill that does not exist (in this authorisation)."""


class AlreadyExists(_Rule):
    """An authorisation, lot, batch or processing operation id that is already used."""


class InvalidState(_Rule):
    """The object is not in a state that allows the act (e.g. reinstating an authorisation that is not
    suspended, extending a discharged lot, deciding a bill that is not submitted)."""


class PeriodNotEnded(_Rule):
    """A bill of discharge for a period that has not ended yet (DA art. 175)."""


class HashMismatch(_Rule):
    """The submitted bill-of-discharge hash differs from the one the ledger computes."""


RULES: tuple[str, ...] = tuple(
    cls.code for cls in (
        InvalidEvent, NotPermitted, AuthorisationNotActive, AuthorisationExpired, GoodsNotCovered,
        SiteNotAuthorised, CeilingExceeded, QuantityExceedsBalance, UnitMismatch, YieldOutOfTolerance,
        DeadlinePassed, DuplicateEvent, DuplicateDeclaration, OutOfOrder, ClockSkew,
        NotFound, AlreadyExists, InvalidState, PeriodNotEnded, HashMismatch,
    )
)
