"""Who may do what (docs/domain.md §2) — by role, never by organisation name.

The caller's **role** comes from its organisation (MSP id):

* ``customs`` — the organisation the deployment names (``deployment.py``, ``IPLEDGER_CUSTOMS_MSP``);
* ``holder`` or ``representative`` — as customs entered the organisation in the register of parties
  (``parties.py``, ``RegisterParty``), with the EORIs it acts for;
* anything else is refused: an organisation on the channel but not in the register (``UnknownParty``),
  or one customs withdrew (``PartyWithdrawn``). Fail closed.

Only ``client`` identities (Fabric NodeOU) use the contract: ``admin`` identities manage identities and
channel membership and can neither act nor read *(design)*.

Acts (:data:`ACTS`, from the act table ``acts.py``): customs acts are customs'; the holder's records
(movements, processing, losses, the bill of discharge) are the holder's; declarations (placement, exit)
are the holder's or a representative's (UCC art. 18 customs representation).

**Standing** for an authorisation: a holder acts for the authorisations granted to one of its registered
EORIs (``holder_eori``); a representative for those whose ``broker_mandates`` name one of its EORIs.

The certificate attribute ``eori`` (Fabric CA, extension 1.2.3.4.5.6.7.8.1) may **narrow** an identity:
when present it must be one of its organisation's registered EORIs (else ``EoriNotRegistered``) and the
identity then acts for that EORI only; without it the identity acts for all of its organisation's EORIs.
A party's own CA can never widen what customs registered.

Reads follow the same standing: customs read everything; a holder its authorisations and their goods,
commercial data included; a representative the authorisations it holds a mandate for, and only the hash
of commercial data.

Only a proposal **to the contract** is recorded or answered (:func:`require_direct_call`), never another
chaincode's call of it.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from ipledger.chaincode.contract import acts, identifiers, parties
from ipledger.chaincode.contract.errors import EoriNotRegistered, NotPermitted, PartyWithdrawn, UnknownParty

CUSTOMS = acts.CUSTOMS
HOLDER = acts.HOLDER
REPRESENTATIVE = acts.REPRESENTATIVE

CLIENT = "client"
FABRIC_CA_ATTRS_OID = x509.ObjectIdentifier("1.2.3.4.5.6.7.8.1")

# who performs each act of docs/domain.md §4: the act table (acts.py), as sets for the check
ACTS: dict[str, frozenset[str]] = {act.name: frozenset(act.performers) for act in acts.TABLE}


@dataclass(frozen=True)
class Caller:
    """The identity that signed the proposal, from its certificate."""
    msp_id: str
    ous: tuple[str, ...]
    name: str
    cert_eori: str | None

    @property
    def ou(self) -> str:
        """``admin`` or ``client`` (Fabric NodeOUs); another OU name, or "" when there is none."""
        for ou in ("admin", "client", "peer", "orderer"):
            if ou in self.ous:
                return ou
        return self.ous[0] if self.ous else ""

    def public(self) -> dict:
        """How the caller appears in the event log (``role``: its NodeOU)."""
        return {"msp_id": self.msp_id, "name": self.name, "role": self.ou}


@dataclass(frozen=True)
class Party:
    """The caller as a party to the procedure: its role and the EORIs it acts for (customs: none)."""
    msp_id: str
    role: str
    eoris: tuple[str, ...] = ()


@functools.lru_cache(maxsize=256)
def _parse_certificate(pem: bytes) -> tuple[tuple[str, ...], str, str | None]:
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return (), "", None
    ous = tuple(a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME))
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    eori = None
    try:
        ext = cert.extensions.get_extension_for_oid(FABRIC_CA_ATTRS_OID)
        eori = json.loads(ext.value.value).get("attrs", {}).get("eori")
    except (x509.ExtensionNotFound, ValueError, AttributeError):
        pass
    return ous, (str(cns[0].value) if cns else ""), eori


def caller_of(stub) -> Caller:
    ous, name, eori = _parse_certificate(bytes(stub.get_creator_certificate_pem()))
    return Caller(msp_id=stub.get_mspid(), ous=ous, name=name, cert_eori=eori)


# -- rules ------------------------------------------------------------------------------------------------

def require_direct_call(stub) -> None:
    """NotPermitted when the contract runs for another chaincode's call (chaincode to chaincode) rather than for
    a proposal to it: the signed proposal's input is then not this invocation's. Such a call sees the state as
    it was before the transaction, not what the transaction's earlier calls wrote — two exits of one lot in one
    transaction each find it whole, and the last write wins — and its chaincode event is dropped, so no feed or
    webhook hears of it. (A chaincode that only passes on its own proposal unchanged runs the act once, as a
    proposal would; putting such a chaincode on the channel takes customs and the holder, docs/admin.md.)"""
    call = stub.get_proposed_call()
    if call is None or call[1] != stub.get_args():
        raise NotPermitted("the contract records and answers proposals to it, not another chaincode's call of it",
                           proposed_chaincode=call[0] if call is not None else None)


# The longest common name a certificate may carry (X.520 ub-common-name): the name recorded as who submitted
CALLER_NAME_MAX = 64


def require_client(caller: Caller, act: str) -> None:
    """NotPermitted unless the identity is a ``client`` (admins do not use the contract)."""
    if caller.ou != CLIENT:
        raise NotPermitted(f"{act} needs a client identity (this one is {caller.ou or 'without role'})",
                           act=act, msp_id=caller.msp_id, role=caller.ou)


def require_recordable_name(caller: Caller, act: str) -> None:
    """NotPermitted unless the certificate's common name, recorded with a new event as who submitted it, is what
    the records can hold: one line of at most 64 characters, as any text of an event — each member's own CA
    issues its certificates, and the name goes into the log and every member's chaincode event. (An event
    recorded before this rule is answered as recorded when sent again.)"""
    if not identifiers.is_one_line_text(caller.name, CALLER_NAME_MAX):
        raise NotPermitted(f"{act}: the certificate's common name is not one line of at most {CALLER_NAME_MAX} "
                           "characters without control, separator or direction characters; the organisation's CA "
                           "must issue this client another certificate", act=act, msp_id=caller.msp_id)


def identify(caller: Caller, customs_msp: str, state, act: str) -> Party:
    """The caller's party: customs by deployment, else its organisation's entry in the register, narrowed
    to its certificate's EORI if it names one. Fail closed: not a client, not registered, withdrawn, or a
    certificate EORI customs did not register for the organisation — refused."""
    require_client(caller, act)
    if caller.msp_id == customs_msp:
        return Party(caller.msp_id, CUSTOMS)
    entry = parties.entry(state, caller.msp_id)
    if entry is None:
        raise UnknownParty(f"{caller.msp_id} is not in the register of parties: customs register its role "
                           f"(RegisterParty) before its identities act or read", act=act, msp_id=caller.msp_id)
    if entry["status"] != parties.REGISTERED:
        raise PartyWithdrawn(f"customs withdrew {caller.msp_id} from the register of parties", act=act,
                             msp_id=caller.msp_id, withdrawn_at=entry["withdrawn_at"])
    eoris = tuple(entry["eoris"])
    if caller.cert_eori is not None:
        if caller.cert_eori not in eoris:
            raise EoriNotRegistered(f"the certificate names EORI {str(caller.cert_eori)[:40]!r}, which customs did "
                                    f"not register for {caller.msp_id}", act=act, msp_id=caller.msp_id,
                                    eori=str(caller.cert_eori)[:40], registered=list(eoris))
        eoris = (caller.cert_eori,)
    return Party(caller.msp_id, entry["role"], eoris)


def require_act(party: Party, act: str) -> None:
    """NotPermitted unless the party's role performs ``act``."""
    if party.role not in ACTS[act]:
        raise NotPermitted(f"{act} is not an act of a {party.role} ({party.msp_id})", act=act,
                           msp_id=party.msp_id, role=party.role, allowed=sorted(ACTS[act]))


def has_standing(party: Party, authorisation: dict) -> bool:
    """Does the party act for this authorisation? Customs always; a holder for its own; a representative
    with a mandate."""
    if party.role == CUSTOMS:
        return True
    if party.role == HOLDER:
        return authorisation["holder_eori"] in party.eoris
    if party.role == REPRESENTATIVE:
        mandates = authorisation.get("broker_mandates") or []
        return any(eori in mandates for eori in party.eoris)
    return False


def require_standing(party: Party, authorisation: dict, act: str) -> None:
    """NotPermitted unless the party acts for this authorisation (acts and reads alike)."""
    if has_standing(party, authorisation):
        return
    why = ("holds no mandate for this authorisation" if party.role == REPRESENTATIVE
           else "is not the holder of this authorisation")
    raise NotPermitted(f"the {party.role} {party.msp_id} {why}", act=act, msp_id=party.msp_id, role=party.role,
                       authorisation_id=authorisation["authorisation_id"], eoris=list(party.eoris))


def sees_commercial_data(party: Party) -> bool:
    """Members of the ``commercial`` collection: customs and the holder, not a representative."""
    return party.role in (CUSTOMS, HOLDER)
