"""The register of parties: which organisation of the channel plays which role, for which EORIs.

Customs keep it on the ledger, one entry per organisation (key ``party/<msp_id>``, written by customs'
acts only)::

    {"msp_id": "OperatorMSP", "role": "holder", "eoris": ["FR12345678901234"], "name": "Plant A",
     "status": "REGISTERED", "registered_at": ..., "withdrawn_at": null, "version": 1}

* ``RegisterParty`` enters an organisation as an authorisation **holder** or a customs
  **representative** (UCC art. 18) with the EORIs it acts for. Registering it again replaces the entry
  (another role, other EORIs); the event log keeps every version.
* An EORI belongs to one registered party only (``EoriTaken``), and customs' own organisation is customs
  by deployment, never a holder or representative (``CustomsNotRegistrable``).
* ``WithdrawParty`` withdraws an organisation: the entry stays, marked ``WITHDRAWN``, its EORIs are free
  again, and its identities are refused (``PartyWithdrawn``) until customs register it again.

Adding an authorisation holder to the ledger is therefore: its organisation joins the channel, customs
register its role, customs grant it an authorisation. The contract names no organisation.

The entry is canonical on every peer: EORIs sorted, no field depending on anything but the event and
the transaction.
"""
from __future__ import annotations

from ipledger.chaincode.contract import keys
from ipledger.chaincode.contract.acts import HOLDER, REPRESENTATIVE
from ipledger.chaincode.contract.endorsement import drop_key_policy
from ipledger.chaincode.contract.errors import CustomsNotRegistrable, EoriTaken, InvalidState, NotFound

ROLES = (HOLDER, REPRESENTATIVE)  # the roles customs register (customs is customs by deployment)

REGISTERED = "REGISTERED"
WITHDRAWN = "WITHDRAWN"


# ---------------------------------------------------------------------------------------- reading

def entry(state, msp_id: str) -> dict | None:
    """The register entry of ``msp_id`` (registered or withdrawn), or None."""
    return state.get(keys.party(msp_id))


def entries(state) -> list[dict]:
    """Every entry of the register, in MSP id order (one range read)."""
    return [value for _attrs, value in state.scan(keys.PARTY)]


def holds(state, eori: str, role: str) -> dict | None:
    """The registered party (in ``role``) that holds ``eori``, or None."""
    return next((e for e in entries(state)
                 if e["status"] == REGISTERED and e["role"] == role and eori in e["eoris"]), None)


# ---------------------------------------------------------------------------------------- customs acts

def _save(tx, party: dict) -> None:
    key = keys.party(party["msp_id"])
    tx.state.put(key, party)
    drop_key_policy(tx.stub, tx.state.key(key))


def register_party(tx, event: dict) -> dict:
    """RegisterParty: enter (or replace) an organisation's role and EORIs in the register."""
    msp_id = event["msp_id"]
    if msp_id == tx.customs_msp:
        raise CustomsNotRegistrable(f"{msp_id} is customs on this deployment: it cannot be registered as a "
                                    f"{event['role']}", msp_id=msp_id, role=event["role"])
    eoris = sorted(event["eoris"])
    for other in entries(tx.state):
        if other["msp_id"] == msp_id or other["status"] != REGISTERED:
            continue
        taken = [e for e in eoris if e in other["eoris"]]
        if taken:
            raise EoriTaken(f"EORI {taken[0]} belongs to {other['msp_id']} (a registered {other['role']})",
                            eori=taken[0], msp_id=msp_id, registered_to=other["msp_id"])
    previous = entry(tx.state, msp_id)
    party = {"msp_id": msp_id, "role": event["role"], "eoris": eoris, "name": event.get("name"),
             "status": REGISTERED, "registered_at": tx.recorded_at, "withdrawn_at": None,
             "version": previous["version"] + 1 if previous else 1}
    _save(tx, party)
    return {"party": party, "previous": previous}


def withdraw_party(tx, event: dict) -> dict:
    """WithdrawParty: the organisation's identities may no longer act or read; the entry stays."""
    msp_id = event["msp_id"]
    party = entry(tx.state, msp_id)
    if party is None:
        raise NotFound(f"{msp_id} is not in the register of parties", msp_id=msp_id)
    if party["status"] == WITHDRAWN:
        raise InvalidState(f"{msp_id} was already withdrawn", msp_id=msp_id, withdrawn_at=party["withdrawn_at"])
    party = {**party, "status": WITHDRAWN, "withdrawn_at": tx.recorded_at, "version": party["version"] + 1}
    _save(tx, party)
    return {"party": party}
