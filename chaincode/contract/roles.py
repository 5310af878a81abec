"""Who may do what (domain.md §2): the caller's org from its MSP id, its role from the
certificate's NodeOU, and the broker's mandate from the authorisation.

* Customs acts require a ``client`` identity of ``CustomsMSP``.
* Holder acts require a ``client`` identity of ``OperatorMSP``.
* Declarations (placement and exit, UCC art. 18 customs representation) may also
  be lodged by a ``client`` of ``BrokerMSP`` — only for authorisations whose
  ``broker_mandates`` list the broker's EORI.
* ``admin`` identities manage identities and channel membership: they cannot use
  the contract at all (neither acts nor queries) *(design)*.

Reads: customs see everything; the holder sees its authorisations and goods and
the commercial data; the broker sees the authorisations it holds a mandate for,
and only the hash of commercial data.

The EORI of an identity comes from the customs parameter ``party_eoris``
(MSP id → EORI), the register customs keep on the ledger; failing an entry there,
from the Fabric CA attribute ``eori`` in its certificate (extension
1.2.3.4.5.6.7.8.1). The register wins: a party's own CA cannot make its
identities someone customs registered otherwise. Fail closed: an operator or
broker identity whose EORI is known neither way may not act or read
(``UnknownParty``).
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from .errors import NotPermitted, UnknownParty

CUSTOMS = "CustomsMSP"
OPERATOR = "OperatorMSP"
BROKER = "BrokerMSP"
ORGS = (CUSTOMS, OPERATOR, BROKER)

CLIENT = "client"
FABRIC_CA_ATTRS_OID = x509.ObjectIdentifier("1.2.3.4.5.6.7.8.1")

# -- the acts of domain.md §4 and who performs them ----------------------------------------------------
CUSTOMS_ACTS = frozenset({
    "GrantAuthorisation", "AmendAuthorisation", "SuspendAuthorisation", "ReinstateAuthorisation",
    "RevokeAuthorisation", "ExtendDischargePeriod", "ConfirmExit", "RecordControl",
    "DecideBillOfDischarge", "SetParameters",
})
HOLDER_ACTS = frozenset({"MoveGoods", "RecordProcessing", "RecordLoss", "SubmitBillOfDischarge"})
DECLARATION_ACTS = frozenset({"PlaceUnderProcedure", "ExitGoods"})  # holder, or broker with a mandate

ALLOWED_ORGS: dict[str, frozenset[str]] = {
    **{act: frozenset({CUSTOMS}) for act in CUSTOMS_ACTS},
    **{act: frozenset({OPERATOR}) for act in HOLDER_ACTS},
    **{act: frozenset({OPERATOR, BROKER}) for act in DECLARATION_ACTS},
}


@dataclass(frozen=True)
class Caller:
    msp_id: str
    ous: tuple[str, ...]
    name: str
    cert_eori: str | None

    @property
    def role(self) -> str:
        """``admin`` or ``client`` (Fabric NodeOUs); another OU name, or "" when there is none."""
        for ou in ("admin", "client", "peer", "orderer"):
            if ou in self.ous:
                return ou
        return self.ous[0] if self.ous else ""

    def eori(self, params: dict) -> str | None:
        """The party's EORI: customs' register ``party_eoris`` first, then the certificate attribute."""
        return params.get("party_eoris", {}).get(self.msp_id) or self.cert_eori or None

    def public(self) -> dict:
        """How the caller appears in the event log."""
        return {"msp_id": self.msp_id, "name": self.name, "role": self.role}


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

def require_client(caller: Caller, act: str) -> None:
    if caller.msp_id not in ORGS:
        raise NotPermitted(f"{caller.msp_id} is not a party to the procedure", act=act, msp_id=caller.msp_id)
    if caller.role != CLIENT:
        raise NotPermitted(f"{act} needs a client identity (this one is {caller.role or 'without role'})",
                           act=act, msp_id=caller.msp_id, role=caller.role)


def require_act(caller: Caller, act: str) -> None:
    """NotPermitted unless the caller's org performs ``act`` and the caller is a client identity."""
    require_client(caller, act)
    if caller.msp_id not in ALLOWED_ORGS[act]:
        raise NotPermitted(f"{act} is not an act of {caller.msp_id}", act=act, msp_id=caller.msp_id,
                           allowed=sorted(ALLOWED_ORGS[act]))


def has_mandate(caller: Caller, authorisation: dict, params: dict) -> bool:
    eori = caller.eori(params)
    return eori is not None and eori in authorisation.get("broker_mandates", [])


def require_known_party(caller: Caller, params: dict, act: str) -> str:
    """UnknownParty (fail closed) unless the operator's or broker's EORI is known; the EORI."""
    eori = caller.eori(params)
    if eori is None:
        raise UnknownParty(f"the EORI of {caller.msp_id} is unknown: customs register it (SetParameters "
                           f"party_eoris) before its identities act or read", act=act, msp_id=caller.msp_id,
                           eori=None)
    return eori


def require_standing(caller: Caller, authorisation: dict, params: dict, act: str) -> None:
    """The caller acts for *this* authorisation: its EORI must be known (fail closed); the broker needs
    a mandate; the operator must be the holder."""
    if caller.msp_id in (BROKER, OPERATOR):
        eori = require_known_party(caller, params, act)
        if caller.msp_id == BROKER and not has_mandate(caller, authorisation, params):
            raise NotPermitted("the broker holds no mandate for this authorisation", act=act,
                               authorisation_id=authorisation["authorisation_id"], eori=eori)
        if caller.msp_id == OPERATOR and eori != authorisation["holder_eori"]:
            raise NotPermitted("the operator is not the holder of this authorisation", act=act,
                               authorisation_id=authorisation["authorisation_id"], eori=eori)


def require_read(caller: Caller, authorisation: dict, params: dict, what: str) -> None:
    """Visibility of an authorisation and its goods (domain.md §2)."""
    require_client(caller, what)
    if caller.msp_id != CUSTOMS:
        require_standing(caller, authorisation, params, what)


def sees_commercial_data(caller: Caller) -> bool:
    """Members of the ``commercial`` collection: customs and the holder, not the broker."""
    return caller.msp_id in (CUSTOMS, OPERATOR)
