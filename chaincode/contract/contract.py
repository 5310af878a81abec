"""The ipledger contract: inward processing (UCC art. 256-258) on a shared ledger.

One submit transaction per act of docs/domain.md §4 (the act table, ``acts.py``: who performs it, whether it
carries commercial data, what it changes), each taking the event as one JSON object; evaluate-only
queries for the audit view of §7.

The contract names no organisation: customs is the organisation the deployment names
(``deployment.py``, ``IPLEDGER_CUSTOMS_MSP``), every other party is what customs entered in the
register of parties on the ledger (``parties.py``). Without a configured customs MSP every act and query
is refused (DeploymentNotConfigured).

Every submit transaction goes through the same steps (:meth:`InwardProcessingContract._record`):

1. ClockSkew      — the transaction timestamp is close to this peer's clock;
2. InvalidEvent   — the event matches its JSON Schema (``schemas/<EventType>.json``; InvalidMrn when
                    an MRN is the only problem) and every identifier in it is whole (InvalidIdentifier);
3. idempotency    — an ``event_id`` the same organisation used before returns the original result
                    (same content; nothing is written, so whatever the sender's standing now) or is a
                    DuplicateEvent (other content);
4. NotPermitted   — a client identity of customs or of a registered party (UnknownParty,
                    PartyWithdrawn, EoriNotRegistered: fail closed) whose role performs the act, with
                    standing for the authorisation: the holder's own, a representative's by mandate;
5. OutOfOrder     — the business time is not in the future;
6. the act itself — its own rules (see the module of each act), then the alerts it changes
                    (LateRecording when recorded more than ``late_recording_days`` after it occurred);
7. the record     — event log, goods history, idempotency record and one chaincode event.

A refused event raises a named rule (``errors.py``) and writes nothing.
"""
from __future__ import annotations

import re
from typing import Any, Callable

from ipledger.chaincode.shim.contract_api import ChaincodeError, Contract, transaction
from ipledger.chaincode.contract import (acts, alert_rules, authorisations, billing, controls, deployment, discharge,
                                        endorsement, eventlog, goods, identifiers, keys, params, parties, placement,
                                        processing, queries, roles, schemas, time_rules)
from ipledger.chaincode.contract.context import Tx
from ipledger.chaincode.contract.errors import InvalidEvent
from ipledger.chaincode.contract.timestamps import wall_clock

# Acts whose commercial data (customs value, prices) travel in the transient map, key "commercial" (acts.py).
COMMERCIAL_ACTS = frozenset(acts.COMMERCIAL)


# Acts that read their declaration (MRN + item) whenever they succeed: it must be new.
READS_DECLARATION = frozenset({"PlaceUnderProcedure", "ExitGoods"})
# A field read ahead must be safe in a key, no more: printable ASCII, at most 128 characters — looser than
# any identifier pattern of the schemas (schemas/common.json), which judge the event after the read-ahead.
_READABLE_ID = re.compile(r"[\x21-\x7e]{1,128}")


def read_first(msp_id: str, customs_msp: str | None, act: str, event: Any) -> list[tuple]:
    """The keys a recorded event reads whenever it succeeds — the caller's entry in the register of parties
    (customs has none), its idempotency record, its authorisation, the lot or batch it names, the
    declaration it makes — fetched with the parameters in one round trip to the peer (``Tx.begin``).

    Computed before the event is validated, so only from fields that already look like identifiers; a
    read ahead of a transaction that then fails is never committed, and one that succeeds reads these
    keys anyway (the read set is the same)."""
    if not isinstance(event, dict):
        return []
    ident = lambda name: isinstance(event.get(name), str) and _READABLE_ID.fullmatch(event[name])  # noqa: E731
    out = [] if msp_id == customs_msp else [keys.party(msp_id)]
    if ident("event_id"):
        out.append(keys.event(msp_id, event["event_id"]))
    if ident("authorisation_id"):
        out.append(keys.authorisation(event["authorisation_id"]))
    if ident("lot_id"):
        out.append(keys.lot(event["lot_id"]))
    if ident("batch_id"):
        out.append(keys.batch(event["batch_id"]))
    item_no = event.get("item_no", 1)
    if act in READS_DECLARATION and ident("mrn") and type(item_no) is int:
        out.append(keys.declaration(event["mrn"], item_no))
    if act == "MoveGoods" and ident("authorisation_id") and ident("from_site") and (ident("lot_id") or ident("batch_id")):
        kind, goods_id = (goods.LOT, event["lot_id"]) if ident("lot_id") else (goods.BATCH, event["batch_id"])
        # a difference standing where the goods leave, which they carry (controls.carry_discrepancy)
        out.append(keys.alert(event["authorisation_id"], controls.DISCREPANCY,
                              controls.subject(kind, goods_id, event["from_site"])))
    return out


class InwardProcessingContract(Contract):
    """Records of the inward-processing procedure shared by customs, the authorisation holder and its
    customs broker (UCC art. 210-215, 255-258; DA art. 175)."""

    name = "ipledger"

    def __init__(self, clock: Callable[[], Any] | None = None, customs_msp: str | None = None):
        """``clock`` is the endorsing peer's clock, used only for the ClockSkew rule (injectable for tests).
        ``customs_msp`` is customs' MSP id; None (the default, as the shim creates the contract) reads it
        from the deployment, ``IPLEDGER_CUSTOMS_MSP`` — an empty value is no customs at all."""
        self._clock = clock or wall_clock
        self._customs_msp = deployment.customs_msp_from_environment() if customs_msp is None else customs_msp

    # ------------------------------------------------------------------------------ authorisations (customs)

    @transaction
    def GrantAuthorisation(self, stub, event):
        """Customs grant an authorisation for inward processing (UCC art. 211)."""
        return self._record(stub, "GrantAuthorisation", event, authorisations.grant)

    @transaction
    def AmendAuthorisation(self, stub, event):
        """Customs amend an authorisation; all fields are replaced and apply forward only."""
        return self._record(stub, "AmendAuthorisation", event, authorisations.amend)

    @transaction
    def SuspendAuthorisation(self, stub, event):
        """Customs suspend an authorisation (UCC art. 28): no placement or processing, discharge continues."""
        return self._record(stub, "SuspendAuthorisation", event, authorisations.suspend)

    @transaction
    def ReinstateAuthorisation(self, stub, event):
        """Customs lift the suspension of an authorisation."""
        return self._record(stub, "ReinstateAuthorisation", event, authorisations.reinstate)

    @transaction
    def RevokeAuthorisation(self, stub, event):
        """Customs revoke an authorisation (UCC art. 28); goods placed must still be discharged."""
        return self._record(stub, "RevokeAuthorisation", event, authorisations.revoke)

    @transaction
    def ExtendDischargePeriod(self, stub, event):
        """Customs extend the period for discharge of open lots (UCC art. 257(4))."""
        return self._record(stub, "ExtendDischargePeriod", event, discharge.extend_discharge_period)

    # ------------------------------------------------------------------------------ goods (holder, broker)

    @transaction
    def PlaceUnderProcedure(self, stub, event):
        """Goods placed under inward processing, procedure 5100 (UCC art. 256); by the holder or its broker."""
        return self._record(stub, "PlaceUnderProcedure", event, placement.place_under_procedure)

    @transaction
    def MoveGoods(self, stub, event):
        """The holder moves goods between authorised sites (records, UCC art. 214)."""
        return self._record(stub, "MoveGoods", event, placement.move_goods)

    @transaction
    def RecordProcessing(self, stub, event):
        """The holder records a processing operation, checked against the rate of yield (UCC art. 255)."""
        return self._record(stub, "RecordProcessing", event, processing.record_processing)

    @transaction
    def RecordLoss(self, stub, event):
        """The holder records goods lost or destroyed (UCC art. 215)."""
        return self._record(stub, "RecordLoss", event, discharge.record_loss)

    @transaction
    def ExitGoods(self, stub, event):
        """Goods or products leave the procedure by a declaration (UCC art. 215); by the holder or its broker."""
        return self._record(stub, "ExitGoods", event, discharge.exit_goods)

    # ------------------------------------------------------------------------------ supervision (customs)

    @transaction
    def ConfirmExit(self, stub, event):
        """Customs confirm the exit of re-exported goods."""
        return self._record(stub, "ConfirmExit", event, discharge.confirm_exit)

    @transaction
    def RecordControl(self, stub, event):
        """Customs record a control: goods counted at a site against the records (UCC art. 214)."""
        return self._record(stub, "RecordControl", event, controls.record_control)

    # ------------------------------------------------------------------------------ bill of discharge

    @transaction
    def SubmitBillOfDischarge(self, stub, event):
        """The holder submits the bill of discharge for a period (DA art. 175)."""
        return self._record(stub, "SubmitBillOfDischarge", event, billing.submit)

    @transaction
    def DecideBillOfDischarge(self, stub, event):
        """Customs accept or query a submitted bill of discharge."""
        return self._record(stub, "DecideBillOfDischarge", event, billing.decide)

    # ------------------------------------------------------------------------------ parameters (customs)

    @transaction
    def SetParameters(self, stub, event):
        """Customs change parameters of the procedure (thresholds, limits); the alerts judged against a changed
        threshold are judged again (alert_rules.review_thresholds)."""
        def set_parameters(tx, event):
            result = params.set_parameters(tx, event)
            alert_rules.review_thresholds(tx, result["changed"])
            return result
        return self._record(stub, "SetParameters", event, set_parameters)

    # ------------------------------------------------------------------------------ the register of parties (customs)

    @transaction
    def RegisterParty(self, stub, event):
        """Customs enter an organisation in the register of parties: holder or representative, and its EORIs."""
        return self._record(stub, "RegisterParty", event, parties.register_party)

    @transaction
    def WithdrawParty(self, stub, event):
        """Customs withdraw an organisation from the register of parties: its identities are refused."""
        return self._record(stub, "WithdrawParty", event, parties.withdraw_party)

    # ------------------------------------------------------------------------------ the ledger itself (customs)

    @transaction
    def DropKeyPolicies(self, stub, event):
        """Customs remove the key-level policies an earlier version of the contract left (endorsement.py)."""
        return self._record(stub, "DropKeyPolicies", event, endorsement.drop_key_policies)

    # ------------------------------------------------------------------------------ queries (evaluate)

    @transaction(submit=False)
    def GetAuthorisation(self, stub, authorisation_id):
        """An authorisation with its status at the ledger time."""
        tx = self._reader(stub, "GetAuthorisation", authorisation_id=authorisation_id)
        return queries.get_authorisation(tx, authorisation_id)

    @transaction(submit=False)
    def GetLot(self, stub, lot_id):
        """A lot with balance and status; customs value for customs and the holder, its hash for the broker."""
        return queries.get_lot(self._reader(stub, "GetLot", lot_id=lot_id), lot_id)

    @transaction(submit=False)
    def GetBatch(self, stub, batch_id):
        """A batch of processed products with its lineage."""
        return queries.get_batch(self._reader(stub, "GetBatch", batch_id=batch_id), batch_id)

    @transaction(submit=False)
    def GetBalances(self, stub, authorisation_id):
        """Balances of an authorisation by goods code and unit, and the use of its ceilings."""
        tx = self._reader(stub, "GetBalances", authorisation_id=authorisation_id)
        return queries.get_balances(tx, authorisation_id)

    @transaction(submit=False)
    def GetLotHistory(self, stub, lot_id):
        """Every event of a lot, with transaction ids and timestamps."""
        return queries.get_lot_history(self._reader(stub, "GetLotHistory", lot_id=lot_id), lot_id)

    @transaction(submit=False)
    def GetBatchHistory(self, stub, batch_id):
        """Every event of a batch, with transaction ids and timestamps."""
        return queries.get_batch_history(self._reader(stub, "GetBatchHistory", batch_id=batch_id), batch_id)

    @transaction(submit=False)
    def GetDeclaration(self, stub, mrn):
        """A declaration (MRN) with its items and all their events (audit view)."""
        return queries.get_declaration(self._reader(stub, "GetDeclaration"), mrn)

    @transaction(submit=False)
    def GetEventsInPeriod(self, stub, authorisation_id, start, end, limit=None, after=None):
        """Events of an authorisation recorded in [start, end) (dates or date-times), in pages when asked."""
        tx = self._reader(stub, "GetEventsInPeriod", authorisation_id=authorisation_id)
        return queries.get_events_in_period(tx, authorisation_id, start, end, limit, after)

    @transaction(submit=False)
    def GetCeilingUse(self, stub, authorisation_id, start):
        """The use of each ceiling since ``start``, after each event that changed it, ending at its use now."""
        tx = self._reader(stub, "GetCeilingUse", authorisation_id=authorisation_id)
        return queries.get_ceiling_use(tx, authorisation_id, start)

    @transaction(submit=False)
    def GetAlerts(self, stub, authorisation_id, as_of=None):
        """Recorded and time alerts of an authorisation at ``as_of`` (default: the ledger time)."""
        tx = self._reader(stub, "GetAlerts", authorisation_id=authorisation_id)
        return queries.get_alerts(tx, authorisation_id, as_of)

    @transaction(submit=False)
    def GetBillOfDischargeData(self, stub, authorisation_id, period_end=None, as_of=None):
        """The bill-of-discharge data for a period end, or the audit view as of a date (DA art. 175)."""
        tx = self._reader(stub, "GetBillOfDischargeData", authorisation_id=authorisation_id)
        return queries.get_bill_of_discharge_data(tx, authorisation_id, period_end, as_of)

    @transaction(submit=False)
    def GetBillOfDischarge(self, stub, bill_id):
        """A submitted bill of discharge and its decision."""
        return queries.get_bill_of_discharge(self._reader(stub, "GetBillOfDischarge"), bill_id)

    @transaction(submit=False)
    def GetParameters(self, stub):
        """The customs parameters in force."""
        return queries.get_parameters(self._reader(stub, "GetParameters"))

    @transaction(submit=False)
    def GetParties(self, stub):
        """The register of parties: every entry for customs, its own for a registered party."""
        return queries.get_parties(self._reader(stub, "GetParties"))

    # ------------------------------------------------------------------------------ the common steps

    def _reader(self, stub, what: str, **item: Any) -> Tx:
        """The context of a query: a configured deployment and an identified party, else refused. The caller's
        entry in the register and the ``authorisation_id``, ``lot_id`` or ``batch_id`` the query names are read
        with the parameters, in one round trip."""
        tx = Tx.begin(stub, self._customs_msp, what, read_first(stub.get_mspid(), self._customs_msp, what, item))
        tx.party = roles.identify(tx.caller, tx.customs_msp, tx.state, what)
        return tx

    def _record(self, stub, act: str, event: Any, handler: Callable[[Tx, dict], dict]) -> dict:
        # DeploymentNotConfigured first; then the parameters and the keys every such event reads, together
        tx = Tx.begin(stub, self._customs_msp, act, read_first(stub.get_mspid(), self._customs_msp, act, event))
        time_rules.no_clock_skew(tx, self._clock())
        if not isinstance(event, dict):
            raise InvalidEvent(f"{act} takes one JSON object (the event)")
        try:
            schemas.validate(act, event)
            identifiers.require_whole(event)
        except InvalidEvent:
            # an event recorded before a rule of its text was added (a tab in a description) is answered as
            # recorded when sent again, not refused as if it had never been
            if (original := self._recorded_before(tx, act, event)) is not None:
                return original
            raise
        roles.require_client(tx.caller, act)
        tx.commercial = self._commercial(tx, act)
        # the caller's organisation sent this event_id before: the original result (same content; it writes
        # nothing) whatever its standing now, or DuplicateEvent. Refusing a resend after a mandate ended would tell
        # a sender who never got its answer that an event on the ledger was not recorded.
        original = eventlog.replay(tx, act, event)
        if original is not None:
            return original
        if act not in COMMERCIAL_ACTS and "commercial" in tx.stub.get_transient():
            raise InvalidEvent(f"{act} takes no commercial data (only {', '.join(sorted(COMMERCIAL_ACTS))}): "
                               f"nothing would record them", field="commercial")
        if tx.commercial is not None and "nonce" not in tx.commercial:
            # the hash of the private record is on every member's peer, a representative's too: without a nonce
            # it gives a customs value away to anyone trying amounts. (A resend of an event recorded before this
            # rule is answered above, as recorded.)
            raise InvalidEvent("commercial data need a 'nonce' (16 to 128 characters, random for each event, "
                               "the same on a resend): without one the hash a representative sees gives the "
                               "amounts away", field="commercial")
        roles.require_recordable_name(tx.caller, act)
        tx.party = roles.identify(tx.caller, tx.customs_msp, tx.state, act)
        roles.require_act(tx.party, act)
        if "authorisation_id" in event and tx.party.role != roles.CUSTOMS:
            roles.require_standing(tx.party, authorisations.get(tx.state, event["authorisation_id"]), act)
        if "authorisation_id" in event and act != "GrantAuthorisation":
            time_rules.within_open_time(tx, authorisations.get(tx.state, event["authorisation_id"]))
        tx.occurred_at = time_rules.business_time(tx, event)
        result = handler(tx, event)
        time_rules.review_lateness(tx, act, event)
        alert_rules.review(tx)
        return eventlog.record(tx, act, event, result)

    def _recorded_before(self, tx: Tx, act: str, event: dict) -> dict | None:
        """The original result of an event its sender's organisation recorded before, sent again whole, when
        today's schemas refuse it; None otherwise (the refusal stands)."""
        event_id = event.get("event_id")
        if not (isinstance(event_id, str) and identifiers.is_identifier(event_id)):
            return None
        if schemas.unstorable(event):   # NaN, a lone surrogate: no event was ever recorded with one
            return None
        try:
            roles.require_client(tx.caller, act)
            tx.commercial = self._commercial(tx, act)
            return eventlog.replay(tx, act, event)
        except ChaincodeError:   # not a client, unreadable commercial data, another content: the refusal stands
            return None

    @staticmethod
    def _commercial(tx: Tx, act: str) -> dict | None:
        """The commercial data of an act that carries them (the act table), validated; None for an act that takes
        none (``_record`` refuses a new event of such an act sent some — recorded nowhere, they would be lost
        silently; the gateway refuses them too). Other keys of the transient map are no commercial data: nothing
        reads them."""
        if act not in COMMERCIAL_ACTS:   # sent some all the same: refused after the replay check (_record)
            return None
        data = tx.transient_json("commercial")
        if data is not None:
            schemas.validate("commercial", data)
            identifiers.require_whole(data)
        return data
