"""What one authorisation's growing history does to its bills: a bill reads the log up to its cut-off only.

A bill of discharge reads the log of every month up to its cut-off. It read the cut-off's month whole, so every event
the plant recorded after the cut-off — in that same month, between the bill's endorsement and its commit — made Fabric
invalidate the bill (a phantom read: a key added inside a range it read), and a busy plant's bill could be refused
again on every retry. The log of the cut-off's month is now read up to the cut-off only."""
from __future__ import annotations

import datetime as dt

from ipledger.chaincode.contract import InwardProcessingContract
from ipledger.chaincode.testing.scenario import AUTH_ID, Scenario


def _log_key_ranges(s: Scenario, monkeypatch) -> list[tuple[str, str]]:
    """Every range of the authorisation's log the next transactions read, as (start, end) keys."""
    seen: list[tuple[str, str]] = []
    committed = s.ledger._committed
    real = committed.scan
    prefix = "\x00log\x00" + AUTH_ID + "\x00"

    def range_(start, end):
        if start.startswith(prefix):
            seen.append((start, end))
        return real(start, end)
    monkeypatch.setattr(committed, "scan", range_)
    return seen


def test_a_bill_reads_the_log_up_to_its_cut_off_not_what_is_recorded_after_it(monkeypatch):
    s = Scenario.with_l1(InwardProcessingContract)
    period_end = (s.D(0).replace(day=1) + dt.timedelta(days=40)).replace(day=1) - dt.timedelta(days=1)  # a month end
    s.wait_until(period_end + dt.timedelta(days=3, hours=9))
    s.accepted(s.move(10, "BOURGES-1", "BOURGES-2", lot_id="L1"))      # recorded after the cut-off, same month as the bill
    later = s.ledger.now
    data = s.query("GetBillOfDischargeData", AUTH_ID, period_end.date().isoformat(), msp="OperatorMSP")
    ranges = _log_key_ranges(s, monkeypatch)
    s.accepted(s.submit("SubmitBillOfDischarge", {"authorisation_id": AUTH_ID,
                                                  "period_end": period_end.date().isoformat(),
                                                  "document_hash": data["document_hash"]}, "OperatorMSP"))
    assert ranges, "the bill read no range of the log"
    # the key an entry recorded after the move (by a concurrent event, say) would have: in no range the bill read
    month = later.strftime("%Y-%m")
    after = s.ledger.stub("GetLot", []).create_composite_key(
        "log", [AUTH_ID, month, (later + dt.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "tx"])
    assert not any(start <= after < end for start, end in ranges), ranges
    # and every entry before the cut-off is in one of them (the bill is whole)
    before = s.ledger.stub("GetLot", []).create_composite_key(
        "log", [AUTH_ID, period_end.strftime("%Y-%m"), period_end.strftime("%Y-%m-%dT23:59:59.999999Z"), "tx"])
    assert any(start <= before < end for start, end in ranges), ranges
