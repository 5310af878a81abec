"""The act table (docs/domain.md §2 and §4): every act the contract records, who performs it, whether it carries
commercial data, and what it changes — one row per act, and the one list of acts.

An act is a submit transaction of the contract and an event type of the same name: its JSON Schema is
``schemas/<name>.json``, the gateway accepts it as ``{"type": <name>, ...}``. Everything else that lists
acts derives from :data:`TABLE`:

* ``schemas.EVENT_TYPES`` — the event types, in the table's order;
* ``roles.ACTS`` — who may perform each act (``NotPermitted`` otherwise);
* ``contract.COMMERCIAL_ACTS`` — the acts whose commercial data (customs value, prices) travel in the
  transient map, key ``commercial``, never in the transaction;
* the gateway's ``validation.EVENT_TYPES`` and ``COMMERCIAL_EVENTS``, and ``openapi.PERFORMED_BY`` (the
  "Performed by" of each event in the REST documentation).

A new act is a row here, a transaction function in ``contract.py`` and a schema; a unit test
(``tests/unit/gateway/test_act_table.py``) fails until all of them, and the documentation, agree.

Roles, never organisations: ``customs`` is the organisation the deployment names; a ``holder`` or a
``representative`` is what customs entered in the register of parties (``parties.py``). A representative
acts only for the authorisations whose ``broker_mandates`` name one of its EORIs (UCC art. 18).

This module imports nothing: the gateway reads it as it reads ``schemas`` and ``errors``.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CUSTOMS", "HOLDER", "REPRESENTATIVE", "ROLES", "Act", "TABLE", "NAMES", "BY_NAME", "COMMERCIAL"]

CUSTOMS = "customs"
HOLDER = "holder"
REPRESENTATIVE = "representative"
ROLES = (CUSTOMS, HOLDER, REPRESENTATIVE)

# how the documentation names each role as a performer
_PERFORMER_WORDS = {CUSTOMS: "customs", HOLDER: "the holder", REPRESENTATIVE: "a representative with a mandate"}


@dataclass(frozen=True)
class Act:
    """One act: ``name`` (the transaction function and event type), the roles that may perform it (in the
    order of :data:`ROLES`), whether it carries commercial data, and what it changes."""
    name: str
    performers: tuple[str, ...]
    commercial: bool
    changes: str

    @property
    def performed_by(self) -> str:
        """Who performs the act, in words: ``customs``, ``the holder``, or ``the holder, or a representative
        with a mandate``."""
        return ", or ".join(_PERFORMER_WORDS[role] for role in self.performers)


_CUSTOMS = (CUSTOMS,)
_HOLDER = (HOLDER,)
_DECLARANT = (HOLDER, REPRESENTATIVE)  # a declaration: the holder, or its customs representative

TABLE: tuple[Act, ...] = (
    # -- authorisations
    Act("GrantAuthorisation", _CUSTOMS, False,
        "a new authorisation for inward processing, ACTIVE, to a registered holder (UCC art. 211)"),
    Act("AmendAuthorisation", _CUSTOMS, False,
        "every field of an authorisation but its holder, forward only; its version + 1"),
    Act("SuspendAuthorisation", _CUSTOMS, False,
        "an ACTIVE authorisation is SUSPENDED: no placement or processing, discharge continues (UCC art. 28)"),
    Act("ReinstateAuthorisation", _CUSTOMS, False,
        "a SUSPENDED authorisation is ACTIVE again"),
    Act("RevokeAuthorisation", _CUSTOMS, False,
        "an authorisation is REVOKED for good; goods placed must still be discharged (UCC art. 28)"),
    Act("ExtendDischargePeriod", _CUSTOMS, False,
        "a later deadline for discharge of open lots and the batches made from them (UCC art. 257(4))"),
    # -- goods
    Act("PlaceUnderProcedure", _DECLARANT, True,
        "a new lot under the procedure, by a declaration item, procedure 5100 (UCC art. 256)"),
    Act("MoveGoods", _HOLDER, False,
        "the site of goods under the procedure, between authorised sites (records, UCC art. 214)"),
    Act("RecordProcessing", _HOLDER, False,
        "lots consumed into batches of processed products, within the rates of yield (UCC art. 255)"),
    Act("RecordLoss", _HOLDER, False,
        "goods lost or destroyed leave the balance; destroyed goods are discharged (UCC art. 215)"),
    Act("ExitGoods", _DECLARANT, True,
        "goods or products leave the procedure by a declaration, i.e. are discharged (UCC art. 215)"),
    # -- supervision
    Act("ConfirmExit", _CUSTOMS, False,
        "a re-export is confirmed: the goods left the customs territory; or a transfer, received elsewhere"),
    Act("RecordControl", _CUSTOMS, False,
        "no balance: a count at a site raises or clears a BalanceDiscrepancy (UCC art. 214)"),
    # -- the bill of discharge
    Act("SubmitBillOfDischarge", _HOLDER, False,
        "a bill of discharge for a period, as the ledger computes it (DA art. 175)"),
    Act("DecideBillOfDischarge", _CUSTOMS, False,
        "a submitted bill of discharge is ACCEPTED or QUERIED"),
    # -- the channel: parameters and the register of parties
    Act("SetParameters", _CUSTOMS, False,
        "the customs parameters given; the others keep their value"),
    Act("RegisterParty", _CUSTOMS, False,
        "an organisation's role (holder or representative) and EORIs in the register of parties"),
    Act("WithdrawParty", _CUSTOMS, False,
        "an organisation is withdrawn from the register: its identities may no longer act or read"),
    # -- the ledger itself
    Act("DropKeyPolicies", _CUSTOMS, False,
        "no key keeps a key-level endorsement policy an earlier contract set: the chaincode's policy judges all"),
)

NAMES: tuple[str, ...] = tuple(act.name for act in TABLE)
BY_NAME: dict[str, Act] = {act.name: act for act in TABLE}
COMMERCIAL: tuple[str, ...] = tuple(act.name for act in TABLE if act.commercial)
