"""A gateway Ledger that runs the real contract in memory (ipledger.chaincode.testing MemLedger), one block per
transaction, and keeps the chaincode events it emits — so the dashboard's unit tests see the contract's
real answers and visibility rules, and a fake event source can replay its events.

The ledger's clock starts at 09:00 UTC two days after the real clock's date (:func:`anchored_day`), and the tests
date their events and days from it (:func:`ledger_now`, ``body``, conftest's ``day``): a ledger that followed the
real clock put a test's events on two days when it ran across midnight UTC (a scenario's L1 placed at 23:59:59.9
and L2 at 00:00:00.1, a report's ``as_of`` one day before the test's next request), and the real clock never
catches up with a ledger two days ahead in the seconds a test lasts."""
from __future__ import annotations

import datetime as dt
import json
import threading
import time
import weakref
from dataclasses import dataclass

from ipledger.chaincode.contract import InwardProcessingContract
from ipledger.chaincode.testing.scenario import BROKER_EORI, Scenario
from ipledger.gateway.client import ChaincodeEvent

from ..gateway.fakes import endorse_error, evaluate_error, not_in_a_block


@dataclass
class Result:
    tx_id: str
    result: bytes
    block_number: int
    status: str = "VALID"
    attempts: int = 1


def anchored_day(today: dt.date | None = None) -> dt.datetime:
    """09:00 UTC two days after ``today`` (the real clock's date in UTC): a ledger day no test reaches the end of."""
    today = today or dt.datetime.now(dt.timezone.utc).date()
    return dt.datetime.combine(today + dt.timedelta(days=2), dt.time(9), dt.timezone.utc)


_latest: "weakref.ref[ContractLedger] | None" = None


def ledger_now() -> dt.datetime:
    """The time of the test's ledger (the ContractLedger created last), the ``occurred_at`` an ERP recording as it
    happens sends; the real clock when no ContractLedger is alive."""
    ledger = _latest() if _latest is not None else None
    return ledger.scenario.ledger.now if ledger is not None else dt.datetime.now(dt.timezone.utc)


class ContractLedger:
    def __init__(self, day: dt.datetime | None = None):
        global _latest
        self.scenario = Scenario(InwardProcessingContract, day=day or anchored_day())
        _latest = weakref.ref(self)
        self.lock = threading.Lock()
        self.height = 5
        self.blocks: dict[str, int] = {}
        self.events: list[ChaincodeEvent] = []
        self.changed = threading.Condition(self.lock)
        self.closed = False

    def orgs(self):
        return ["CustomsMSP", "OperatorMSP", "BrokerMSP"]

    @staticmethod
    def _kw(org):
        return {"eori": BROKER_EORI} if org == "BrokerMSP" else {}

    def _tick(self):
        real = dt.datetime.now(dt.timezone.utc)
        if real > self.scenario.ledger.now:
            self.scenario.ledger.now = real

    def submit(self, org, function, args, transient=None):
        with self.lock:
            self._tick()
            res = self.scenario.ledger.invoke(self.scenario.contract, function, [a.encode() for a in args], org,
                                              None, dict(transient or {}), **self._kw(org))
            if not res.ok:
                err = res.json()
                raise endorse_error(err["code"], err.get("message", ""), err.get("details"), res.tx_id)
            self.height += 1
            self.blocks[res.tx_id] = self.height
            if res.event is not None:
                self.events.append(ChaincodeEvent(block_number=self.height, tx_id=res.tx_id, chaincode="ipledger",
                                                  event_name=res.event[0], payload=res.event[1]))
            self.changed.notify_all()
            return Result(res.tx_id, res.payload, self.height)

    def evaluate(self, org, function, args, *, timeout=None, transient=None):
        with self.lock:
            self._tick()
            res = self.scenario.ledger.evaluate(self.scenario.contract, function, [a.encode() for a in args], org,
                                                transient=dict(transient or {}), **self._kw(org))
        if not res.ok:
            err = res.json()
            raise evaluate_error(err["code"], err.get("message", ""), err.get("details"))
        return res.payload

    def block_number(self, org, tx_id):
        if tx_id not in self.blocks:
            raise not_in_a_block(tx_id)
        return self.blocks[tx_id]

    def config_block(self, org):
        if not hasattr(self, "_config_block"):
            from tests.unit.gateway.fakes import default_config_block
            self._config_block = default_config_block()
        return self._config_block

    def close(self):
        self.closed = True


class ListSource:
    """Chaincode events of a ContractLedger from a checkpoint, then waiting for new ones (like the peer)."""

    def __init__(self, ledger: ContractLedger):
        self.ledger = ledger
        self.opened = []

    def open(self, checkpoint):
        stream = _Stream(self.ledger, checkpoint)
        self.opened.append(stream)
        return stream

    def close(self):
        pass


class _Stream:
    def __init__(self, ledger, checkpoint):
        self.ledger = ledger
        self.closed = False
        start = 0
        if checkpoint is not None and not checkpoint.empty:
            for i, e in enumerate(ledger.events):
                if e.block_number < checkpoint.block_number or (
                        e.block_number == checkpoint.block_number and checkpoint.tx_id
                        and e.tx_id == checkpoint.tx_id):
                    start = i + 1
        self.index = self.start = start

    def __iter__(self):
        return self

    def __next__(self):
        with self.ledger.lock:
            while not self.closed and self.index >= len(self.ledger.events):
                self.ledger.changed.wait(0.05)
            if self.closed:
                raise StopIteration
            event = self.ledger.events[self.index]
            self.index += 1
            return event

    def close(self):
        self.closed = True


def wait_for(predicate, timeout=10.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def body(event_type: str, event_id: str, **fields) -> dict:
    now = ledger_now().isoformat().replace("+00:00", "Z")
    return {"type": event_type, "event_id": event_id, "occurred_at": now, **fields}


def dumps(value) -> str:
    return json.dumps(value)
