"""The named rules of docs/domain.md §5: one exception per way an event can be refused.

Raising any of these makes the contract answer status 500 with the JSON message
``{"code": <class name>, "message": ..., "details": {...}}`` and the transaction
writes nothing (Fabric discards the write set of a failed proposal).

The gateway may import this module (and of the contract only this one, ``schemas`` and ``acts``) to map
codes to HTTP problems: ``RULES`` lists every code.
"""
from __future__ import annotations

from ipledger.chaincode.shim.contract_api import ChaincodeError

__all__ = [
    "ChaincodeError", "RULES",
    "InvalidEvent", "NotPermitted", "AuthorisationNotActive", "AuthorisationExpired", "GoodsNotCovered",
    "SiteNotAuthorised", "CeilingExceeded", "QuantityExceedsBalance", "UnitMismatch", "YieldOutOfTolerance",
    "DeadlinePassed", "DuplicateEvent", "DuplicateDeclaration", "OutOfOrder", "ClockSkew",
    "NotFound", "AlreadyExists", "InvalidState", "PeriodNotEnded", "HashMismatch",
    "InvalidIdentifier", "InvalidMrn", "UnknownParty",
    "DeploymentNotConfigured", "PartyWithdrawn", "EoriNotRegistered", "EoriTaken", "CustomsNotRegistrable",
    "HolderNotRegistered", "TransferMismatch", "ExitMismatch", "LedgerInconsistent",
]


class _Rule(ChaincodeError):
    """Base of the named rules; ``code`` is the class name."""

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        cls.code = cls.__name__


# -- docs/domain.md §5 -------------------------------------------------------------------------------

class InvalidEvent(_Rule):
    """Schema violation: missing field, bad cn/mrn/eori/office_id format, non-positive quantity,
    or dates and rates that do not make sense together; a number that is not finite, text with an
    unpaired surrogate, a date after 8999-12-31 (``schemas.unstorable``, ``schemas.LAST_YEAR``); an
    item counted twice in one control."""


class NotPermitted(_Rule):
    """The caller may not use the contract this way: by another chaincode's call of it rather than a proposal
    to it (roles.require_direct_call); or its role may not perform this act — customs acts are customs', holder
    acts the holder's, declarations the holder's or a representative's — or its identity is not a ``client`` (admins manage
    identities, they do not use the contract), or it has no standing for this authorisation: a holder acts
    for the authorisations granted to one of its registered EORIs, a representative only for those whose
    ``broker_mandates`` name one of its EORIs (§2)."""


class UnknownParty(NotPermitted):
    """Fail closed: an organisation acts or reads only in a role — customs, the organisation the deployment
    names, or a holder or representative customs entered in the register of parties (``RegisterParty``).
    An organisation that is neither is refused, never allowed: being on the channel is not a role."""


class AuthorisationNotActive(_Rule):
    """The authorisation is suspended or revoked (UCC art. 211, 28)."""


class AuthorisationExpired(_Rule):
    """The ledger time is outside the authorisation's validity."""


class GoodsNotCovered(_Rule):
    """An input or output CN code (or a rate of yield) is not in the authorisation: goods placed under a
    code it does not cover, a processed product it does not name (or of another kind), a main product
    without a rate of yield from the operation's inputs, or inputs consumed that have no rate of yield at
    all (what they became could not be accounted for)."""


class SiteNotAuthorised(_Rule):
    """The site is not one of the authorisation's sites. Goods still at a site an amendment withdrew may only
    leave it (a movement to an authorised site, an exit, a loss) and be counted there by customs."""


class CeilingExceeded(_Rule):
    """The quantity under the procedure for a CN entry would pass its ``max_qty``."""


class QuantityExceedsBalance(_Rule):
    """A movement, consumption, loss or exit above the balance (at that site)."""


class UnitMismatch(_Rule):
    """Quantities in different units would be compared or added."""


class YieldOutOfTolerance(_Rule):
    """The rate of yield (UCC art. 255): for every main product that an authorised rate gives from the consumed
    inputs, the quantity obtained must be within ``yield_block_pct`` of the expected Σ input × rate —
    |actual / expected − 1| ≤ ``yield_block_pct``, a main product not reported counting as 0. An operation that
    produces less (or more) than the rates say is refused: goods cannot leave the procedure by being processed
    into nothing. The same holds for a product that alone accounts for an input with no rate to a main
    product. (Other secondary products and waste are recorded without a block; their deviation beyond
    ``yield_warn_pct`` is a ``YieldDeviation`` alert.)"""


class DeadlinePassed(_Rule):
    """A move or a processing of goods whose period for discharge has ended (art. 257): overdue goods may still
    leave the procedure (exit, loss, destruction), have their period extended, be controlled, and their exits
    confirmed — not be worked on or moved about."""


class DuplicateEvent(_Rule):
    """The same organisation already used this ``event_id`` for different content. Event ids are per
    submitting organisation (the idempotency record is keyed by MSP id and event id): another
    organisation's ids can be neither taken first nor probed, and the ``original_tx_id`` of the error is
    always the caller's own transaction."""


class DuplicateDeclaration(_Rule):
    """The declaration (``mrn`` + item number) was already used — by a placement or an exit; a transfer between
    two authorisations (5151) uses it twice, its exit and its reception once each (``declarations.claim``)."""


class TransferMismatch(_Rule):
    """The two sides of a 5151 transfer name the same goods: the reception under the second authorisation has
    the goods code, unit and quantity of the exit from the first (whichever is recorded first), or goods would
    appear or vanish between the two authorisations."""


class ExitMismatch(_Rule):
    """A confirmation of exit that names its declaration's items gives each one's quantity as the exit
    recorded it: customs confirm what their own system shows left, and an item recorded with more goods than
    left (or one customs did not see leave) is not confirmed — it goes on awaiting its confirmation."""


class OutOfOrder(_Rule):
    """Business time (``occurred_at``) in the future — later than the ledger time beyond
    ``max_clock_skew_s`` — or before the goods' placement (or production); or a transaction timestamped
    before the last recorded change of the goods it touches (changes, or counts in a control), before the grant
    of its authorisation or at or before its last amendment or change of status — and such a change at or before
    an act already recorded on the authorisation —, at or before the re-export it confirms, at or before the submission of the bill it decides (or the decision that queried a bill submitted
    again), or before the cut-off of a bill of discharge already submitted for that authorisation; a new bill of
    discharge for a period before one already billed. A client's timestamp may lag the peers' clocks by up to
    ``max_clock_skew_s``: without these rules an act committed after another could be timestamped before it, and
    the event log, the histories, the bill of discharge and the alerts as of a past date, which replay the
    ledger in ledger-time order, would not show what the ledger holds. An event recorded late is not refused: it is
    accepted with its own ``occurred_at`` and, beyond ``late_recording_days``, raises the alert
    ``LateRecording`` (the ledger time is never backdated)."""


class ClockSkew(_Rule):
    """The transaction timestamp differs from the endorsing peer's clock by more than
    ``max_clock_skew_s``. Within it the timestamp is the ledger time every rule is judged at: an act stamped
    just before a deadline and endorsed up to ``max_clock_skew_s`` after it is in time."""


# -- implied by the specification ----------------------------------------------------------------------

class NotFound(_Rule):
    """An authorisation, lot, batch, declaration or bill that does not exist (in this authorisation)."""


class AlreadyExists(_Rule):
    """An authorisation, lot, batch or processing operation id that is already used."""


class InvalidState(_Rule):
    """The object is not in a state that allows the act (e.g. reinstating an authorisation that is not
    suspended, extending a discharged lot, deciding a bill that is not submitted, submitting a bill while
    the bill of an earlier period of the authorisation is QUERIED)."""


class PeriodNotEnded(_Rule):
    """A bill of discharge for a period that has not ended yet (DA art. 175)."""


class HashMismatch(_Rule):
    """The submitted bill-of-discharge hash differs from the one the ledger computes."""


# -- identifiers ------------------------------------------------------------------------------

class LedgerInconsistent(_Rule):
    """Records written together are read together: a history reference names the event-log entry its own
    transaction wrote, an entry that takes goods from a lot names a lot on the ledger, an effect in the log is
    one this contract applies. One without the other is a damaged ledger (or one written by a later version of
    the contract): the answer is refused, never given shorter or without the missing part, and nothing is
    written. Logged in the chaincode's log as well: the peer's operator has a ledger to look at."""

    logged = True


class InvalidIdentifier(InvalidEvent):
    """An identifier — event, authorisation, lot, batch, operation or bill id, MRN, EORI, office, site,
    CN code, MSP id, date — is matched as a whole string: no trailing newline, no control character
    (U+0000 separates the attributes of composite keys), no lone surrogate (no key can hold one), nothing but
    its pattern's printable ASCII. Checked
    on every event after its schema, and on every key the contract reads or writes (query arguments
    included), so one identifier can never name two keys."""


class InvalidMrn(InvalidEvent):
    """An MRN is an EU MRN (UCC IA Annex B; docs/domain.md §2b): 18 characters — year (2 digits), country
    (2 letters), a unique identifier (12 digits or capital letters), the procedure-category letter at
    position 17 and at position 18 the check digit computed over the first 17 as in ISO 6346 (digits keep
    their value, letters A=10, B=12 … skipping 11, 22, 33; character i weighted 2^i; sum mod 11; 10 gives
    0); matched whole. Raised when the MRN is the event's only problem (else InvalidEvent lists it among
    the others)."""


# -- the register of parties ------------------------------------------------------------------

class DeploymentNotConfigured(_Rule):
    """Who customs is, is a fact of the deployment, not of the code: the contract reads the customs MSP id
    from ``IPLEDGER_CUSTOMS_MSP`` (the package manifest's ``customs_msp``, set by the builder's ``run``; the
    chaincode service's environment). Without it no organisation could be told to be customs, so every act
    and every query is refused and nothing is written — the contract never guesses."""


class PartyWithdrawn(NotPermitted):
    """Customs withdrew the organisation from the register of parties (``WithdrawParty``): its identities
    may neither act nor read until customs register it again. The register keeps the entry, and the event
    log its history."""


class EoriNotRegistered(NotPermitted):
    """An identity's certificate names an EORI (Fabric CA attribute ``eori``) that customs did not register
    for its organisation. The attribute narrows an identity to one of its organisation's EORIs; it never
    adds one: a party's own CA cannot make its identities act for someone customs did not register."""


class EoriTaken(_Rule):
    """An EORI belongs to one registered party only: customs cannot register an EORI for an organisation
    while another registered organisation holds it (withdraw or re-register that one first). Otherwise two
    organisations would both act for one holder or representative."""


class CustomsNotRegistrable(_Rule):
    """Customs' own organisation (the deployment's customs MSP) plays the customs role by deployment; it
    cannot be entered in the register of parties as a holder or representative, so one organisation never
    both supervises and acts for a holder."""


class HolderNotRegistered(_Rule):
    """An authorisation is granted to a holder customs have registered: its ``holder_eori`` must be an EORI
    of a registered party in the role ``holder`` (not a representative's, not unknown), so that every
    authorisation on the ledger has an organisation that can act on it (UCC art. 211: the authorisation
    is granted to a person customs know). A representative places goods under an authorisation only while
    its holder is still so registered (it declares on the holder's behalf)."""


RULES: tuple[str, ...] = tuple(
    cls.code for cls in (
        InvalidEvent, NotPermitted, AuthorisationNotActive, AuthorisationExpired, GoodsNotCovered,
        SiteNotAuthorised, CeilingExceeded, QuantityExceedsBalance, UnitMismatch, YieldOutOfTolerance,
        DeadlinePassed, DuplicateEvent, DuplicateDeclaration, OutOfOrder, ClockSkew,
        NotFound, AlreadyExists, InvalidState, PeriodNotEnded, HashMismatch,
        InvalidIdentifier, InvalidMrn, UnknownParty,
        DeploymentNotConfigured, PartyWithdrawn, EoriNotRegistered, EoriTaken, CustomsNotRegistrable,
        HolderNotRegistered, TransferMismatch, ExitMismatch, LedgerInconsistent,
    )
)
