"""Alerts (docs/domain.md §6): their records. Two kinds:

**Recorded alerts** are raised and cleared by transactions, stored under
``alert/<authorisation>/<type>/<subject>``, and every change (RAISED, UPDATED,
CLEARED) goes into the transaction's chaincode event:

* ``YieldDeviation``  — an accepted operation deviates from the rate of yield by more than
  ``yield_warn_pct`` (subject: operation id / output CN); stays raised (a historical fact).
* ``BalanceDiscrepancy`` — a control counted another quantity than the records (subject:
  ``LOT:<id>@<site>``), also raised where goods are moved to from a site where one stands, on the batches
  made there from them, and on the lot receiving them by a 5151 transfer (controls.carry_discrepancy,
  carry_found); cleared by a later control there that finds the book.
* ``CeilingNear`` — quantity under the procedure ≥ ``ceiling_warn_pct`` of ``max_qty`` (subject: the
  input-goods entry CN); cleared when it drops below.
* ``LossRateHigh`` — losses (nature, force majeure) / quantity entered > ``loss_warn_pct``
  (subject: ``LOT:<id>`` or ``BATCH:<id>``).
* ``AuthorisationSuspended`` — raised on suspension (and revocation, details.status = REVOKED),
  cleared on reinstatement.

**Time alerts** depend only on time and are computed when asked, from the
ledger time or an ``as_of`` date — never from the wall clock — so no
transaction (and no chaincode event) marks the moment they start:
``DeadlineApproaching``, ``DeadlineOverdue``, ``BillOfDischargeDue``,
``BillOfDischargeLate``, ``ExitUnconfirmed``, ``AuthorisationExpiring``.

This module keeps the recorded alerts (raise, clear, read) and imports nothing of the contract but its
keys, so every rule may raise one. When each alert holds — the reviews after a transaction and the
time alerts — is :mod:`ipledger.chaincode.contract.alert_rules`.
"""

from __future__ import annotations

from ipledger.chaincode.contract import keys

RECORDED, DERIVED = "RECORDED", "DERIVED"


# ---------------------------------------------------------------------------------------- recorded alerts

def raise_alert(tx, authorisation_id: str, alert_type: str, subject: str, details: dict) -> None:
    key = keys.alert(authorisation_id, alert_type, subject)
    current = tx.state.get(key)
    if current is not None and current["details"] == details:
        return
    tx.state.put(key, {
        "type": alert_type, "authorisation_id": authorisation_id, "subject": subject, "details": details,
        "raised_at": current["raised_at"] if current else tx.recorded_at,
        "raised_tx": current["raised_tx"] if current else tx.tx_id,
        "updated_at": tx.recorded_at, "updated_tx": tx.tx_id,
    })
    tx.alert_changes.append({"change": "UPDATED" if current else "RAISED", "type": alert_type,
                             "authorisation_id": authorisation_id, "subject": subject, "details": details})


def clear_alert(tx, authorisation_id: str, alert_type: str, subject: str) -> None:
    key = keys.alert(authorisation_id, alert_type, subject)
    current = tx.state.get(key)
    if current is None:
        return
    tx.state.delete(key)
    tx.alert_changes.append({"change": "CLEARED", "type": alert_type, "authorisation_id": authorisation_id,
                             "subject": subject, "details": current["details"]})


# ---------------------------------------------------------------------------------------- reading alerts

def recorded(state, authorisation_id: str) -> list[dict]:
    return [{**a, "source": RECORDED} for _k, a in state.scan(keys.ALERT, authorisation_id)]
