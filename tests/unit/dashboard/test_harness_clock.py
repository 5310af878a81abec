"""The dashboard tests' clock is the ledger's (contract_ledger.py): events are dated and days counted from the
in-memory ledger's time, which starts at 09:00 UTC two days after the real clock's date — never from the real clock,
which may pass midnight UTC between a test's events or between two of its requests (a scenario's L1 and L2 placed on
two days, a report asked for as of one date and checked against the next)."""
from __future__ import annotations

import datetime as dt

from .conftest import day
from .contract_ledger import body, ledger_now


def test_events_and_days_are_dated_on_the_ledgers_clock_far_from_midnight(ledger):
    now = ledger.scenario.ledger.now
    assert dt.time(9) <= now.time() < dt.time(10)                     # a whole working day before midnight
    assert now.date() >= dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=1)   # the real clock is behind
    assert ledger_now() == now
    assert body("MoveGoods", "e-1")["occurred_at"] == now.isoformat().replace("+00:00", "Z")
    assert [day(-1), day(0), day(1)] == [(now.date() + dt.timedelta(days=n)).isoformat() for n in (-1, 0, 1)]
