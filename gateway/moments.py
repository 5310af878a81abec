"""Moments as the gateway reads and shows them: one parser and one formatter for every page, chart and report.

The contract writes its moments in RFC 3339, UTC (``2027-06-02T15:58:51.123456Z``); a date alone (``2027-06-02``)
is a day, not a moment. Pages and reports show a moment to the second in UTC, the heading or the filter naming
the zone."""

from __future__ import annotations

import datetime as dt

UTC = dt.timezone.utc


def text(moment: dt.datetime | float) -> str:
    """A moment (an aware date-time, or Unix seconds) to the second in UTC, as the gateway stamps what it generates
    (``2027-06-02T15:58:51Z``)."""
    when = dt.datetime.fromtimestamp(moment, UTC) if isinstance(moment, (int, float)) else moment.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def now_text(later: dt.timedelta = dt.timedelta()) -> str:
    """The present moment (or ``later`` than now) to the second, as :func:`text` writes it."""
    return text(dt.datetime.now(UTC) + later)


def parse(text: str | None) -> dt.datetime | None:
    """A moment the contract wrote, as an aware date-time in UTC; one without a zone is read as UTC; None for
    anything that is not a moment (a missing value, a date alone, other text)."""
    if not isinstance(text, str) or len(text) <= 10:
        return None
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def to_second(text: str | None) -> str:
    """A moment to the second in UTC (``2027-06-02 15:58:51``), the zone left to the caller to name; anything
    else as it is (a date stays a date, None becomes empty)."""
    when = parse(text)
    if when is None:
        return "" if text is None else str(text)
    return when.strftime("%Y-%m-%d %H:%M:%S")
