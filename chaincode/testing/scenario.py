"""Test data of domain.md §8 and small builders of events, for unit tests and demos.

Dates are relative to a day D (the ledger's start time), as in the specification.

The contract names no organisation: a :class:`Scenario` configures the in-memory contract with customs'
MSP id (``CUSTOMS_MSP`` unless told otherwise, as the deployment would) and, as customs, registers the
parties of §8 at its start (:data:`PARTIES`: ``OperatorMSP`` the holder of ``HOLDER``, ``BrokerMSP`` a
representative with ``BROKER_EORI``), so that the scenarios read as before.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
from typing import Any

from ipledger.chaincode.testing import mrns
from ipledger.chaincode.testing.memstub import MemLedger, TxResult

UTC = dt.timezone.utc

AUTH_ID = "FRIPO000001"
HOLDER = "FR12345678901234"
BROKER_EORI = "FR98765432109876"
OFFICE = "FR000110"
USED_TYRES, RETREADED, RUBBER_WASTE = "40122000", "40121200", "40040000"
SITE1, SITE2 = "BOURGES-1", "BOURGES-2"
PLACE_MRN_L1 = mrns.PLACE_MRN_L1   # 26FR000110000001R8 (domain.md §8)
EXIT_MRN_B1 = mrns.EXIT_MRN_B1     # 26FR000110000007A7

CUSTOMS_MSP = "CustomsMSP"
# The register of parties a Scenario starts with: (MSP id, role, EORIs).
PARTIES = (("OperatorMSP", "holder", (HOLDER,)), ("BrokerMSP", "representative", (BROKER_EORI,)))

_ids = itertools.count(1)


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def nonce_of(event: dict) -> str:
    """A nonce for an event's commercial data, the same each time the event is sent (as the REST gateway derives
    one from its own secret): the contract refuses commercial data without one."""
    return hashlib.sha256(json.dumps(event, sort_keys=True).encode()).hexdigest()[:32]


def evidence(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def mrn(kind: str, n: int) -> str:
    """A valid MRN (:mod:`ipledger.chaincode.testing.mrns`) numbered ``n``: ``kind`` ``I`` gives an import
    declaration's (procedure category ``R``), ``E`` an export declaration's (``A``)."""
    category = {"I": mrns.IMPORT, "E": mrns.EXPORT}.get(kind, kind)
    if n < 1_000_000:
        return mrns.mrn(n, category)                      # 26FR000110 + n on 6 digits, as in domain.md
    return mrns.from_unique(f"{n:012d}", category)        # a long test session: n on all 12 digits


def authorisation_fields(day: dt.datetime, **overrides: Any) -> dict:
    """The authorisation of §8, valid D−30 → D+335."""
    fields = {
        "holder_eori": HOLDER,
        "supervising_office": OFFICE,
        "valid_from": (day - dt.timedelta(days=30)).date().isoformat(),
        "valid_to": (day + dt.timedelta(days=335)).date().isoformat(),
        "sites": [SITE1, SITE2],
        "input_goods": [{"cn": USED_TYRES, "description": "used pneumatic tyres", "unit": "p/st", "max_qty": 5000}],
        "processed_products": [
            {"cn": RETREADED, "kind": "MAIN", "unit": "p/st", "description": "retreaded tyres"},
            {"cn": RUBBER_WASTE, "kind": "WASTE", "unit": "kg", "description": "rubber waste"},
        ],
        "yield_rates": [{"input_cn": USED_TYRES, "output_cn": RETREADED, "output_per_input": 1}],
        "yield_warn_pct": 0.5,
        "yield_block_pct": 2,
        "discharge_period_days": 180,
        "broker_mandates": [BROKER_EORI],
    }
    fields.update(overrides)
    return fields


class Scenario:
    """A MemLedger and contract with the three parties, and one method per kind of event.

    Every method returns the :class:`TxResult`; ``occurred_at`` defaults to the ledger time of the
    transaction. ``ts`` sets the transaction timestamp (else the ledger clock, which ticks 1 ms per tx).

    ``customs_msp`` is the deployment's customs MSP the contract is configured with (None: the contract
    reads ``IPLEDGER_CUSTOMS_MSP`` as deployed); ``register=False`` starts with an empty register of
    parties (customs alone can act); ``collections`` overrides the private data collections' members.
    """

    def __init__(self, contract_factory, day: dt.datetime | None = None, *, customs_msp: str | None = CUSTOMS_MSP,
                 register: bool = True, collections: dict | None = None):
        self.day = day or dt.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
        self.ledger = MemLedger(now=self.day, collections=collections)
        self.customs_msp = customs_msp or CUSTOMS_MSP   # who acts as customs in the methods below
        self.contract = contract_factory(clock=self.ledger.peer_clock, customs_msp=customs_msp)
        # the 'eori' attribute of the parties' certificates (None: an identity without one, e.g. from
        # cryptogen, acting for every EORI customs registered for its organisation)
        self.broker_eori: str | None = None
        self.operator_eori: str | None = None
        if register:
            self.register_parties()

    @classmethod
    def with_l1(cls, contract_factory) -> "Scenario":
        """Step 1 of domain.md §8 done: the authorisation granted and lot L1 (1,000 p/st) placed."""
        sc = cls(contract_factory)
        sc.accepted(sc.grant())
        sc.accepted(sc.place("L1", 1000, mrn_=PLACE_MRN_L1))
        return sc

    # -- plumbing ------------------------------------------------------------------------------------
    def D(self, days: float = 0) -> dt.datetime:
        return self.day + dt.timedelta(days=days)

    def wait_until(self, moment: dt.datetime) -> None:
        """Let time pass: the ledger clock (the peers' clock and default timestamps) jumps to ``moment``."""
        assert moment >= self.ledger.now, "time does not run backwards"
        self.ledger.now = moment

    def submit(self, fn: str, event: dict, msp: str, ts: dt.datetime | None = None,
               transient: dict | None = None, **kw: Any) -> TxResult:
        event = dict(event)
        event.setdefault("event_id", f"ev-{next(_ids)}")
        event.setdefault("occurred_at", iso(ts or self.ledger.now))
        self._identity(msp, kw)
        return self.ledger.invoke(self.contract, fn, [event], msp, ts, transient, **kw)

    def _identity(self, msp: str, kw: dict) -> None:
        """The party's certificate attribute ``eori`` unless the call gives one (or None)."""
        default = {"BrokerMSP": self.broker_eori, "OperatorMSP": self.operator_eori}.get(msp)
        if "eori" not in kw and default:
            kw["eori"] = default

    def query(self, fn: str, *args: Any, msp: str | None = None, ts: dt.datetime | None = None, **kw: Any) -> Any:
        msp = msp or self.customs_msp
        self._identity(msp, kw)
        res = self.ledger.evaluate(self.contract, fn, list(args), msp, ts, **kw)
        if not res.ok:
            raise AssertionError(f"{fn} failed: {res.message}")
        return res.json()

    def refused(self, code: str, result_of, *args: Any, **kw: Any) -> dict:
        """Run ``result_of(*args, **kw)`` (a method returning a TxResult), assert it was refused with
        ``code`` and that the ledger did not change at all; return the error ``details``."""
        before = self.ledger.snapshot()
        res = result_of(*args, **kw)
        assert not res.ok, f"expected {code}, but the transaction was accepted: {res.payload[:300]!r}"
        assert res.error_code == code, f"expected {code}, got {res.message}"
        assert res.event is None
        assert self.ledger.snapshot() == before, "a refused transaction changed the ledger"
        return res.json()["details"]

    def accepted(self, res: TxResult) -> dict:
        assert res.ok, res.message
        return res.json()

    # -- events ----------------------------------------------------------------------------------------
    def register(self, msp_id: str, role: str, eoris: Any, *, name: str | None = None,
                 ts: dt.datetime | None = None, msp: str | None = None, **extra: Any) -> TxResult:
        """Customs (or ``msp``) enter ``msp_id`` in the register of parties."""
        event = {"msp_id": msp_id, "role": role, "eoris": list(eoris), **extra}
        if name is not None:
            event["name"] = name
        return self.submit("RegisterParty", event, msp or self.customs_msp, ts=ts)

    def register_parties(self) -> None:
        """Customs register the parties of §8 (:data:`PARTIES`)."""
        for msp_id, role, eoris in PARTIES:
            self.accepted(self.register(msp_id, role, eoris))

    def withdraw(self, msp_id: str, *, ts: dt.datetime | None = None, msp: str | None = None,
                 **extra: Any) -> TxResult:
        """Customs (or ``msp``) withdraw ``msp_id`` from the register of parties."""
        return self.submit("WithdrawParty", {"msp_id": msp_id, **extra}, msp or self.customs_msp, ts=ts)

    def grant(self, auth_id: str = AUTH_ID, **overrides: Any) -> TxResult:
        return self.submit("GrantAuthorisation", {"authorisation_id": auth_id,
                                                  **authorisation_fields(self.day, **overrides)}, self.customs_msp)

    def set_parameters(self, ts: dt.datetime | None = None, **parameters: Any) -> TxResult:
        return self.submit("SetParameters", {"parameters": parameters}, self.customs_msp, ts=ts)

    def place(self, lot_id: str, qty: int, *, mrn_: str | None = None, item_no: int = 1, site: str = SITE1,
              cn: str = USED_TYRES, unit: str = "p/st", msp: str = "BrokerMSP", value: str = "1000.00",
              auth_id: str = AUTH_ID, ts: dt.datetime | None = None, **extra: Any) -> TxResult:
        event = {"authorisation_id": auth_id, "lot_id": lot_id, "mrn": mrn_ or mrn("I", next(_ids)),
                 "item_no": item_no, "procedure": "5100", "cn": cn, "description": "used tyres", "quantity": qty,
                 "unit": unit, "net_mass_g": qty * {"kg": 1000, "g": 1}.get(unit, 9000),   # a mass: the quantity itself
                 "origin": "MA", "site": site, **extra}
        commercial = {"customs_value": {"amount": value, "currency": "EUR"}, "nonce": nonce_of(event)}
        return self.submit("PlaceUnderProcedure", event, msp, ts=ts, transient={"commercial": commercial})

    def move(self, qty: int, frm: str, to: str, *, lot_id: str | None = None, batch_id: str | None = None,
             msp: str = "OperatorMSP", ts: dt.datetime | None = None, **extra: Any) -> TxResult:
        ref = {"lot_id": lot_id} if lot_id else {"batch_id": batch_id}
        return self.submit("MoveGoods", {"authorisation_id": AUTH_ID, **ref, "quantity": qty, "from_site": frm,
                                         "to_site": to, **extra}, msp, ts=ts)

    def process(self, op_id: str, inputs: list[tuple[str, int]], outputs: list[dict], *, site: str = SITE1,
                msp: str = "OperatorMSP", ts: dt.datetime | None = None, **extra: Any) -> TxResult:
        return self.submit("RecordProcessing", {
            "authorisation_id": AUTH_ID, "operation_id": op_id, "site": site,
            "inputs": [{"lot_id": lot, "qty": q} for lot, q in inputs], "outputs": outputs, **extra}, msp, ts=ts)

    def exit(self, qty: int, *, lot_id: str | None = None, batch_id: str | None = None, procedure: str = "3151",
             mrn_: str | None = None, msp: str = "BrokerMSP", ts: dt.datetime | None = None, **extra: Any) -> TxResult:
        ref = {"lot_id": lot_id} if lot_id else {"batch_id": batch_id}
        return self.submit("ExitGoods", {"authorisation_id": AUTH_ID, **ref, "quantity": qty, "procedure": procedure,
                                         "mrn": mrn_ or mrn("E", next(_ids)), **extra}, msp, ts=ts)

    def lose(self, qty: int, *, lot_id: str | None = None, batch_id: str | None = None, reason: str = "NATURE",
             msp: str = "OperatorMSP", ts: dt.datetime | None = None, **extra: Any) -> TxResult:
        ref = {"lot_id": lot_id} if lot_id else {"batch_id": batch_id}
        return self.submit("RecordLoss", {"authorisation_id": AUTH_ID, **ref, "quantity": qty, "reason": reason,
                                          "evidence_hash": evidence(f"loss {qty}"), **extra}, msp, ts=ts)

    def lot(self, lot_id: str, msp: str | None = None, **kw: Any) -> dict:
        return self.query("GetLot", lot_id, msp=msp or self.customs_msp, **kw)

    def batch(self, batch_id: str, msp: str | None = None, **kw: Any) -> dict:
        return self.query("GetBatch", batch_id, msp=msp or self.customs_msp, **kw)


def retreaded(qty: int, batch_id: str | None = None) -> dict:
    out = {"cn": RETREADED, "qty": qty, "unit": "p/st", "kind": "MAIN"}
    return {**out, "batch_id": batch_id} if batch_id else out


def waste(qty_kg: int, batch_id: str | None = None) -> dict:
    out = {"cn": RUBBER_WASTE, "qty": qty_kg, "unit": "kg", "kind": "WASTE"}
    return {**out, "batch_id": batch_id} if batch_id else out
