"""A bill of discharge computed from its own period, not from the whole log (billing._replayed).

Once a bill is submitted whose record says the indexes were whole at its cut-off (``goods_indexed``), the next
period's bill reads that period's log and the histories of the goods it lists (the lots indexed under a date of the
period, ``auth.due``; the goods the previous bill carries; the goods those share entries with) and the grant and
amendments (``auth.terms``) — not every entry since the grant. These tests hold it to the bill the whole log gives,
to the byte, over plants' months of random events, and check that a gap in the indexes (events recorded by a
contract that did not write them) sends the bills back to the whole log for good.
"""
from __future__ import annotations

import datetime as dt
import json
import random
from unittest import mock

import pytest

from ipledger.chaincode.contract import InwardProcessingContract, billing, eventlog, goods, keys
from ipledger.chaincode.testing.scenario import (AUTH_ID, RETREADED, SITE1, SITE2, USED_TYRES, Scenario,
                                                 authorisation_fields, mrn, retreaded, waste)

DAY_S = 86400


def _data(s: Scenario, period_end: str) -> dict:
    return s.query("GetBillOfDischargeData", AUTH_ID, period_end, msp="OperatorMSP")


def _whole_log_data(s: Scenario, period_end: str) -> dict:
    """The bill as the whole log gives it (the period's own reading switched off)."""
    with mock.patch.object(billing, "_from_the_period", return_value=None):
        return _data(s, period_end)


def _record(s: Scenario, period_end: str) -> dict:
    return s.query("GetBillOfDischarge", f"BOD-{AUTH_ID}-{period_end}")


def _bill(s: Scenario, period_end: str) -> dict:
    """The bill of ``period_end`` computed both ways (they must agree), then submitted: its record."""
    data = _data(s, period_end)
    assert data == _whole_log_data(s, period_end)
    s.accepted(s.submit("SubmitBillOfDischarge", {"authorisation_id": AUTH_ID, "period_end": period_end,
                                                  "document_hash": data["document_hash"]}, "OperatorMSP"))
    return _record(s, period_end)


def _month_end_before(moment: dt.datetime) -> str:
    return (moment.date().replace(day=1) - dt.timedelta(days=1)).isoformat()


class _Spy:
    """Counts the bills computed from their own period — whenever the indexes allow it, whatever it costs
    (billing._worth_it, tested on its own below)."""

    def __init__(self, monkeypatch):
        self.bounded = 0
        monkeypatch.setattr(billing, "_worth_it", lambda *args: True)
        real = billing._from_the_period

        def spy(*args):
            found = real(*args)
            self.bounded += found is not None
            return found
        monkeypatch.setattr(billing, "_from_the_period", spy)


class Plant:
    """A plant's days of random acts (a refused act writes nothing, so no model of the goods is needed): placements,
    some recorded late (declared before their deadline had passed), moves, processing of one or two lots, exits of
    every kind, losses, extensions, exit confirmations and amendments of the rate of yield."""

    def __init__(self, seed: int):
        self.r = random.Random(seed)
        self.s = Scenario(InwardProcessingContract)
        self.terms = {"discharge_period_days": 20,
                      "valid_to": (self.s.day + dt.timedelta(days=700)).date().isoformat(),
                      "input_goods": [{"cn": USED_TYRES, "description": "used pneumatic tyres", "unit": "p/st",
                                       "max_qty": 10 ** 6}]}
        self.s.accepted(self.s.set_parameters(max_clock_skew_s=60 * DAY_S))
        self.s.accepted(self.s.grant(**self.terms))
        self.n = 0
        self.lots: list[str] = []
        self.batches: list[str] = []
        self.exports: list[str] = []   # MRNs of re-exports, for ConfirmExit

    def day(self) -> None:
        """A few acts, then the clock moves on a day."""
        for _ in range(self.r.randint(1, 4)):
            getattr(self, self.r.choice(("place", "place", "late", "move", "process", "exit", "exit", "batch_exit",
                                         "lose", "extend", "confirm", "amend")))()
        self.s.wait_until(self.s.ledger.now + dt.timedelta(days=1))

    def month(self) -> str:
        """Days until the month changes: the period end of the month just ended."""
        start = self.s.ledger.now.month
        while self.s.ledger.now.month == start:
            self.day()
        return _month_end_before(self.s.ledger.now)

    def _next(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def place(self, late_days: int = 0) -> None:
        lot_id = self._next("L")
        declared = self.s.ledger.now - dt.timedelta(days=late_days)
        if self.s.place(lot_id, self.r.randint(5, 40), occurred_at=declared.isoformat()).ok:
            self.lots.append(lot_id)

    def late(self) -> None:
        self.place(late_days=self.r.choice((3, 25, 40)))   # 25, 40: its deadline passed before it was recorded

    def move(self) -> None:
        if self.lots:
            self.s.move(self.r.randint(1, 5), SITE1, SITE2, lot_id=self.r.choice(self.lots))

    def process(self) -> None:
        if not self.lots:
            return
        inputs = sorted(set(self.r.sample(self.lots, min(len(self.lots), self.r.choice((1, 1, 2))))))
        qty = self.r.randint(1, 3)
        batch, scrap = self._next("B"), self._next("W")
        if self.s.process(self._next("OP"), [(lot, qty) for lot in inputs],
                          [retreaded(qty * len(inputs), batch), waste(1, scrap)]).ok:
            self.batches += [batch, scrap]

    def exit(self) -> None:
        if self.lots:
            self._exit({"lot_id": self.r.choice(self.lots)})

    def batch_exit(self) -> None:
        if self.batches:
            self._exit({"batch_id": self.r.choice(self.batches)})

    def _exit(self, ref: dict) -> None:
        procedure = self.r.choice(("3151", "3151", "4051", "7151"))
        declaration = mrn("E" if procedure == "3151" else "I", 900_000 + self.n)
        self.n += 1
        if self.s.exit(self.r.randint(1, 6), procedure=procedure, mrn_=declaration, **ref).ok and procedure == "3151":
            self.exports.append(declaration)

    def lose(self) -> None:
        if self.batches:
            self.s.lose(1, batch_id=self.r.choice(self.batches), reason=self.r.choice(("NATURE", "DESTROYED")))

    def extend(self) -> None:
        if self.lots:
            new = self.s.ledger.now + dt.timedelta(days=self.r.choice((3, 15, 40)))
            self.s.submit("ExtendDischargePeriod", {"authorisation_id": AUTH_ID, "lot_ids": [self.r.choice(self.lots)],
                                                    "new_deadline": new.isoformat(), "reason": "repairs"}, "CustomsMSP")

    def confirm(self) -> None:
        if self.exports:
            self.s.submit("ConfirmExit", {"authorisation_id": AUTH_ID, "mrn": self.r.choice(self.exports),
                                          "exit_date": self.s.ledger.now.date().isoformat()}, "CustomsMSP")

    def amend(self) -> None:
        if self.r.random() < 0.3:
            rate = self.r.choice((1, 0.98))
            fields = authorisation_fields(self.s.day, **self.terms,
                                          yield_rates=[{"input_cn": USED_TYRES, "output_cn": RETREADED,
                                                        "output_per_input": rate}])
            self.s.submit("AmendAuthorisation", {"authorisation_id": AUTH_ID, **fields}, "CustomsMSP")


def test_the_random_plant_is_a_plant():
    """Most of its acts are accepted (else the bills below would say little)."""
    plant = Plant(1)
    for _ in range(30):
        plant.day()
    assert len(plant.lots) >= 20 and len(plant.batches) >= 6 and plant.exports


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_each_bill_from_its_period_is_the_bill_of_the_whole_log(monkeypatch, seed):
    spy = _Spy(monkeypatch)
    plant = Plant(seed)
    s = plant.s
    billed = []
    for _month in range(6):
        period_end = plant.month()
        assert _bill(s, period_end)[billing.INDEXED] is True
        billed.append(period_end)
        if plant.r.random() < 0.4:   # customs query it; the holder submits it again a day later
            s.accepted(s.submit("DecideBillOfDischarge", {"authorisation_id": AUTH_ID,
                                                          "bill_id": f"BOD-{AUTH_ID}-{period_end}",
                                                          "decision": "QUERIED", "note": "n"}, "CustomsMSP"))
            plant.day()
            assert _bill(s, period_end)[billing.INDEXED] is True
    assert spy.bounded >= 5   # every bill after the first, from its own period
    for period_end in billed:   # each submitted bill computed again, both ways, keeps its hash
        data = _data(s, period_end)
        assert data == _whole_log_data(s, period_end)
        assert data["document_hash"] == _record(s, period_end)["document_hash"]
        assert data["proof"]["conservation_holds"]


def test_the_next_bill_reads_the_log_of_its_own_period_only(monkeypatch):
    """What it is for: after the first bill, the log is read from the previous bill's cut-off on — the goods' own
    histories give the rest — so a bill costs its period, not the authorisation's whole history."""
    monkeypatch.setattr(billing, "_worth_it", lambda *args: True)
    plant = Plant(5)
    s = plant.s
    plant.month()
    first = plant.month()
    _bill(s, first)
    second = plant.month()
    read = []
    real = eventlog.entries

    def entries(state, scope, start, end, *args, **kw):
        read.append(start)
        return real(state, scope, start, end, *args, **kw)
    monkeypatch.setattr(eventlog, "entries", entries)
    data = _data(s, second)
    assert read == [billing.timestamps.parse_datetime(data["scope"]["period_start"])]
    assert data["lots"] and data["scope"]["period_start"] == _record(s, first)["cutoff"]


def _due_key(lot: dict, when: str) -> str:
    return "\x00" + "\x00".join(keys.auth_due(lot["authorisation_id"], when, lot["lot_id"])) + "\x00"


def test_a_gap_in_the_indexes_sends_the_bills_back_to_the_whole_log(monkeypatch):
    """A lot placed by a contract that did not index it (its ``auth.due`` key missing: as after going back to such a
    contract and forward again) is in its bill all the same — computed from the whole log — and that bill does not
    say the indexes were whole, so no later bill is computed from its period."""
    spy = _Spy(monkeypatch)
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant(discharge_period_days=20))
    s.accepted(s.place("L1", 10))
    s.wait_until(s.D(40))
    assert _bill(s, _month_end_before(s.D(40)))[billing.INDEXED] is True
    s.accepted(s.place("L2", 10))
    key = _due_key(s.lot("L2"), s.lot("L2")["deadline"])
    assert key in s.ledger.state
    s.ledger._committed.delete(key)
    s.wait_until(s.D(95))   # L2's deadline (D+60) is in the month before
    record = _bill(s, _month_end_before(s.D(95)))
    assert "L2" in record["lots"] and billing.INDEXED not in record
    s.accepted(s.place("L3", 10))
    s.wait_until(s.D(125))
    record = _bill(s, _month_end_before(s.D(125)))
    assert "L3" in record["lots"] and billing.INDEXED not in record
    assert spy.bounded == 0


def test_each_placement_extension_grant_and_amendment_writes_its_index_key():
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant(discharge_period_days=20))
    s.accepted(s.place("L1", 10))
    placed = s.lot("L1")["deadline"]
    new = (s.ledger.now + dt.timedelta(days=30)).isoformat()
    s.accepted(s.submit("ExtendDischargePeriod", {"authorisation_id": AUTH_ID, "lot_ids": ["L1"],
                                                  "new_deadline": new, "reason": "repairs"}, "CustomsMSP"))
    lot = s.lot("L1")
    assert sorted(k for k in s.ledger.state if k.startswith(f"\x00{keys.AUTH_DUE}\x00")) == \
        sorted(_due_key(lot, when) for when in (placed, lot["deadline"]))
    s.accepted(s.submit("AmendAuthorisation", {"authorisation_id": AUTH_ID,
                                               **authorisation_fields(s.day, discharge_period_days=30)}, "CustomsMSP"))
    assert len([k for k in s.ledger.state if k.startswith(f"\x00{keys.AUTH_TERMS}\x00{AUTH_ID}\x00")]) == 2


def _log_of(s: Scenario) -> list[dict]:
    """The authorisation's committed log entries, in ledger order."""
    prefix = f"\x00{keys.LOG}\x00{AUTH_ID}\x00"
    found = [json.loads(raw) for key, raw in s.ledger.state.items() if key.startswith(prefix)]
    return sorted(found, key=lambda e: (e["recorded_at"], e["tx_id"]))


@pytest.mark.parametrize("seed", [6, 7, 8])
def test_a_book_that_keeps_some_goods_has_each_as_the_whole_log_does(seed):
    """The book a bill replays into keeps a few goods (goods.MemoryBook ``only``): replaying the entries of their
    histories alone, each kept record comes out exactly as the whole log's replay gives it — a kept lot's counts
    of the products of batches left out included — for any choice of goods that keeps a kept batch's lots."""
    plant = Plant(seed)
    for _ in range(50):
        plant.day()
    log = _log_of(plant.s)
    whole = goods.MemoryBook()
    for entry in log:
        for effect in entry["effects"]:
            goods.apply(whole, effect, entry["recorded_at"], entry["tx_id"])
    r = random.Random(seed)
    for _ in range(20):
        kept = set(r.sample(sorted(whole.records), r.randint(1, len(whole.records) // 3)))
        kept |= {(goods.LOT, share["lot_id"]) for kind, gid in list(kept) if kind == goods.BATCH
                 for share in whole.get(kind, gid)["shares"]}
        book = goods.MemoryBook(only=kept)
        for entry in log:
            effects = [e for e in entry["effects"] if any(goods.concerns(e, kind, gid) for kind, gid in kept)]
            for effect in effects:
                goods.apply(book, effect, entry["recorded_at"], entry["tx_id"])
        assert book.records == {key: whole.records[key] for key in kept}


def test_a_bill_is_read_from_its_period_when_that_costs_less_than_the_whole_log():
    """Reading a good's history is a round trip of its own: a young authorisation's bill reads its whole log (a few
    pages), an old one's its period and the goods of it (their count against the log's size at the period's pace)."""
    day = dt.datetime(2027, 1, 31, 23, 59, 59, 999999, tzinfo=dt.timezone.utc)
    month = billing._Window(dt.date(2027, 1, 31), None, day, day - dt.timedelta(days=31), {}, {}, set())
    period = [{}] * 1000   # a month of 1,000 events, 200 lots due in it
    assert not billing._worth_it(200, period, month, day - dt.timedelta(days=62))       # 2 months: 2,000 events
    assert billing._worth_it(200, period, month, day - dt.timedelta(days=31 * 12))      # a year: 12,000
    assert not billing._worth_it(2000, period, month, day - dt.timedelta(days=31 * 12))  # ten times the goods
    assert billing._worth_it(0, [], month, day - dt.timedelta(days=62))                 # nothing to read at all
