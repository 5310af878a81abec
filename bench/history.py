"""Benchmark: what one authorisation's growing history costs the queries that read all of it.

The contract on its in-memory ledger (``chaincode/testing``: no network), one authorisation (a period for discharge
of 30 days). Each lot lives five events — placed, moved to the other site, processed whole into a retreaded batch
and waste, the batch re-exported, the waste destroyed: nothing of it left under the procedure — and the lots come 25
to a quarter of a day. The holder submits the bill of each month once the next one has ended. At each checkpoint it
runs the queries that read the authorisation's history: the alerts now (every lot and batch), the alerts as of an
hour before (the log replayed from the grant), the last month's bill-of-discharge data (not submitted yet: its own
month's log and the histories of its goods, the months before it being billed) and the same bill computed from the
whole log from the grant, as a bill is when the bills before it do not say the indexes were whole. For each: the
time on this machine's CPU and the round trips a real peer would answer (point reads, batches of up to 1,000 keys
of GetMultipleStates, and range reads counted per 100 records the contract takes from them, the peer's batch) — on
a real peer each round trip adds about 0.5 ms.

    .venv/bin/python bench/history.py [--checkpoints 2000,10000,40000]

A Markdown table at the end. The memory ledger is faster than a peer; the round trips are the same.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import sys
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ipledger.chaincode.contract import InwardProcessingContract, billing  # noqa: E402
from ipledger.chaincode.testing import memstub, mrns  # noqa: E402
from ipledger.chaincode.testing.scenario import AUTH_ID, Scenario, retreaded, waste  # noqa: E402

EVENTS_PER_LOT = 5
PEER_BATCH = 100        # records a peer hands over per answer of a range read
MULTIPLE_KEYS = 1000    # keys per GetMultipleStates (ipledger's peers: maxSizeGetMultipleKeys)


class RoundTrips:
    """Counts what the contract asks of the memory ledger as a peer would answer it: one round trip per point
    read, per batch of GetMultipleStates, per 100 records of a range read."""

    def __init__(self):
        self.point = self.batched = self.ranges = 0
        stub = memstub.MemStub
        get, cut = stub.get_state, stub._cut
        counter = self

        def get_state(self, key):
            counter.point += 1
            return get(self, key)

        def get_multiple_states(self, keys):
            counter.batched += (len(keys) + MULTIPLE_KEYS - 1) // MULTIPLE_KEYS
            return [get(self, k) for k in keys]

        def range_read(self, rows):
            counter.ranges += 1                      # the first answer, with up to PEER_BATCH records

            def counted():
                for n, row in enumerate(rows, 1):
                    if n > 1 and n % PEER_BATCH == 1:
                        counter.ranges += 1          # each further batch the contract asks for (QUERY_STATE_NEXT)
                    yield row
            return cut(self, counted())

        stub.get_state, stub.get_multiple_states, stub._cut = get_state, get_multiple_states, range_read

    def reset(self):
        self.point = self.batched = self.ranges = 0

    @property
    def total(self) -> int:
        return self.point + self.batched + self.ranges


def live_lot(s: Scenario, i: int) -> None:
    lot, batch, scrap = f"L{i}", f"B{i}", f"W{i}"
    s.accepted(s.place(lot, 10, mrn_=mrns.placement_mrn(100_000 + i)))
    s.accepted(s.move(10, "BOURGES-1", "BOURGES-2", lot_id=lot))
    s.accepted(s.process(f"OP{i}", [(lot, 10)], [retreaded(10, batch), waste(1, scrap)], site="BOURGES-2"))
    s.accepted(s.exit(10, batch_id=batch, procedure="3151", mrn_=mrns.exit_mrn(100_000 + i)))
    s.accepted(s.lose(1, batch_id=scrap, reason="DESTROYED"))


def month_ends(start: dt.date, now: dt.datetime) -> list[str]:
    """The last days of the months from ``start``'s to the one before ``now``'s."""
    ends, first = [], start.replace(day=1)
    while True:
        first = (first + dt.timedelta(days=32)).replace(day=1)
        if first > now.date().replace(day=1):
            return ends
        ends.append((first - dt.timedelta(days=1)).isoformat())


def bill_months_before(s: Scenario, billed: list[str]) -> str:
    """Submit the bill of every month ended before the last one (as a holder bills each month), and return the
    last month's end, not billed yet."""
    ends = month_ends(s.day.date(), s.ledger.now)
    for period_end in ends[:-1]:
        if period_end not in billed:
            data = s.query("GetBillOfDischargeData", AUTH_ID, period_end, msp="OperatorMSP")
            s.accepted(s.submit("SubmitBillOfDischarge", {"authorisation_id": AUTH_ID, "period_end": period_end,
                                                          "document_hash": data["document_hash"]}, "OperatorMSP"))
            billed.append(period_end)
    return ends[-1] if ends else (s.ledger.now - dt.timedelta(days=1)).date().isoformat()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoints", default="2000,10000,40000", help="events on the ledger at each measurement")
    args = ap.parse_args(argv)
    checkpoints = sorted(int(c) for c in args.checkpoints.split(","))
    trips = RoundTrips()
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant(discharge_period_days=30, input_goods=[{"cn": "40122000", "description": "used tyres",
                                                               "unit": "p/st", "max_qty": 10 ** 9}]))
    events, lots, rows, billed = 1, 0, [], []
    started = time.monotonic()
    for target in checkpoints:
        while events + EVENTS_PER_LOT <= target:
            if lots % 25 == 0:
                s.ledger.now += dt.timedelta(hours=6)
            live_lot(s, lots)
            lots, events = lots + 1, events + EVENTS_PER_LOT
        print(f"{events} events on the ledger ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
        period_end = bill_months_before(s, billed)   # the holder has billed every month but the last one
        queries = [("GetAlerts now", "GetAlerts", [AUTH_ID], False),
                   ("GetAlerts as of an hour before", "GetAlerts",
                    [AUTH_ID, (s.ledger.now - dt.timedelta(hours=1)).isoformat()], False),
                   ("the last month's bill data", "GetBillOfDischargeData", [AUTH_ID, period_end], False),
                   ("… the same bill from the whole log", "GetBillOfDischargeData", [AUTH_ID, period_end], True)]
        for name, function, query_args, whole_log in queries:
            trips.reset()
            with mock.patch.object(billing, "_from_the_period", return_value=None) if whole_log \
                    else contextlib.nullcontext():
                t = time.perf_counter()
                s.query(function, *query_args, msp="OperatorMSP")
                took = time.perf_counter() - t
            rows.append((events, name, took * 1000, trips.point, trips.batched, trips.ranges, trips.total))
            print(f"  {name}: {took * 1000:.0f} ms, {trips.total} round trips", file=sys.stderr, flush=True)
    print("| events | query | ms (memory ledger) | point reads · key batches · range pages | round trips |")
    print("|---|---|---|---|---|")
    for events, name, ms, point, batched, ranges, total in rows:
        print(f"| {events:,} | {name} | {ms:.0f} | {point} · {batched} · {ranges} | {total} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
