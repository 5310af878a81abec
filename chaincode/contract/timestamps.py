"""Timestamps and dates: parsing, the one canonical text form, day and month bounds (the rules
about time — ClockSkew, OutOfOrder, late recording — are in ``time_rules``).

Ledger time is the transaction timestamp (set by the client, checked against the
endorsing peer's clock, see ``time_rules.no_clock_skew``). Every timestamp the
contract writes uses :func:`fmt` — fixed width, UTC, microseconds — so that
timestamps sort as text inside composite keys.
"""
from __future__ import annotations

import datetime as dt
import re

from ipledger.chaincode.contract.errors import InvalidEvent

UTC = dt.timezone.utc
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def fmt(moment: dt.datetime) -> str:
    """``2026-05-09T10:00:00.000000Z``: fixed width for every year (``strftime("%Y")`` does not pad
    years before 1000 on every platform, and a business time may be that far back)."""
    m = moment.astimezone(UTC)
    return (f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}."
            f"{m.microsecond:06d}Z")


#: The last year of a date or date-time the contract takes: it adds periods to dates (a validity's
#: last day, a bill's 30 days), which must not run past the calendar's end (9999-12-31).
LAST_YEAR = 8999


def parse_datetime(text: str, field: str = "timestamp") -> dt.datetime:
    """An RFC 3339 date-time with an explicit offset (``Z`` or ``±hh:mm``), up to :data:`LAST_YEAR`."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise InvalidEvent(f"{field}: not an RFC 3339 date-time", field=field, value=text) from None
    if moment.tzinfo is None:
        raise InvalidEvent(f"{field}: the date-time needs a time zone (e.g. Z)", field=field, value=text)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
        raise InvalidEvent(f"{field}: the date-time is out of range", field=field, value=text) from None
    if moment.year > LAST_YEAR:
        raise InvalidEvent(f"{field}: after {LAST_YEAR}-12-31, the last date the contract computes with",
                           field=field, value=text)
    return moment


def parse_date(text: str, field: str = "date") -> dt.date:
    if not isinstance(text, str) or not _DATE.match(text):
        raise InvalidEvent(f"{field}: not a date (YYYY-MM-DD)", field=field, value=text)
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidEvent(f"{field}: not a calendar date", field=field, value=text) from None
    if day.year > LAST_YEAR:
        raise InvalidEvent(f"{field}: after {LAST_YEAR}-12-31, the last date the contract computes with",
                           field=field, value=text)
    return day


def start_of(day: dt.date) -> dt.datetime:
    """00:00 UTC of ``day``."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=UTC)


def end_of(day: dt.date) -> dt.datetime:
    """00:00 UTC of the day after ``day`` (an exclusive bound)."""
    return start_of(day) + dt.timedelta(days=1)


def month_of(moment: dt.datetime) -> str:
    """``YYYY-MM``: the bucket of the event log key (see keys.LOG), fixed width as :func:`months_between` reads
    them — never ``strftime("%Y")``, whose padding of years before 1000 depends on the C library."""
    m = moment.astimezone(UTC)
    return f"{m.year:04d}-{m.month:02d}"


def months_between(first: dt.datetime, last: dt.datetime) -> list[str]:
    """Every ``YYYY-MM`` from ``first`` to ``last`` inclusive."""
    y, m = first.year, first.month
    out = []
    while (y, m) <= (last.year, last.month):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def wall_clock() -> dt.datetime:
    """The endorsing peer's clock: the one legitimate wall-clock read (for ClockSkew only)."""
    return dt.datetime.now(UTC)
