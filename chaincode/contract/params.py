"""Customs parameters stored on the ledger (docs/domain.md §4-§6).

Thresholds and limits are customs' choice, not constants of the code: customs
changes them with a ``SetParameters`` transaction and every peer reads the same
values from the world state. Only customs' act writes the key (judged, like every key,
by the chaincode policy: ``endorsement.py``).

Who the parties are is not a parameter: the register of parties (``parties.py``)
replaced ``party_eoris``, and a value of it left on an older ledger is ignored.
"""
from __future__ import annotations

from typing import Any

from ipledger.chaincode.contract import keys
from ipledger.chaincode.contract.endorsement import drop_key_policy

DEFAULTS: dict[str, Any] = {
    "late_recording_days": 2,   # recorded more than this many days after occurred_at: LateRecording
    "max_clock_skew_s": 300,    # tx timestamp vs the endorsing peer's clock (ClockSkew)
    "warn_days": 30,            # DeadlineApproaching
    "yield_warn_pct": 2,        # default of an authorisation's yield_warn_pct (YieldDeviation)
    "yield_block_pct": 5,       # default of an authorisation's yield_block_pct (YieldOutOfTolerance)
    "ceiling_warn_pct": 90,     # CeilingNear
    "loss_warn_pct": 1,         # LossRateHigh
    "exit_confirm_days": 90,    # ExitUnconfirmed
    "auth_warn_days": 60,       # AuthorisationExpiring
    "bill_warn_days": 10,       # BillOfDischargeDue: warn this many days before the due date
}

BILL_DUE_DAYS = 30  # DA art. 175(1): the bill of discharge is due within 30 days (law, not a parameter)


# Parameters renamed since customs may have set them on a ledger: old name -> new name.
RENAMED = {"backdate_max_days": "late_recording_days"}  # once a refusal limit, now the LateRecording one
# Parameters no longer in force, ignored where an older ledger has them.
REMOVED = frozenset({"party_eoris"})  # the register of parties (RegisterParty) took its place


def _current_names(stored: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in stored.items() if k not in RENAMED and k not in REMOVED}
    for old, new in sorted(RENAMED.items()):
        if old in stored and new not in stored:
            out[new] = stored[old]
    return out


def load(state) -> dict[str, Any]:
    """The parameters in force: the defaults overlaid with what customs set."""
    stored = state.get(keys.params()) or {}
    return {**DEFAULTS, **_current_names(stored)}


def set_parameters(tx, event: dict) -> dict:
    """``SetParameters``: customs change the given parameters; the others keep their value. Only
    customs' choices are stored, so a parameter customs never set follows the default."""
    from ipledger.chaincode.contract.errors import InvalidEvent

    changed = event["parameters"]
    stored = {**_current_names(tx.state.get(keys.params()) or {}), **changed}
    effective = {**DEFAULTS, **stored}
    if effective["yield_warn_pct"] > effective["yield_block_pct"]:
        raise InvalidEvent("yield_warn_pct must not exceed yield_block_pct",
                           yield_warn_pct=effective["yield_warn_pct"], yield_block_pct=effective["yield_block_pct"])
    tx.state.put(keys.params(), stored)
    drop_key_policy(tx.stub, tx.state.key(keys.params()))
    tx.params = effective
    return {"parameters": effective, "changed": sorted(changed)}
