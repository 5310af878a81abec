"""One reading of the contract's moments for pages, charts and reports (``gateway/moments.py``)."""

import datetime as dt

import pytest

from ipledger.gateway import moments


@pytest.mark.parametrize("text, expected", [
    ("2027-06-02T15:58:51.123456Z", dt.datetime(2027, 6, 2, 15, 58, 51, 123456, tzinfo=dt.timezone.utc)),
    ("2027-06-02T15:58:51Z", dt.datetime(2027, 6, 2, 15, 58, 51, tzinfo=dt.timezone.utc)),
    ("2027-06-02T17:58:51+02:00", dt.datetime(2027, 6, 2, 15, 58, 51, tzinfo=dt.timezone.utc)),
    ("2027-06-02T15:58:51", dt.datetime(2027, 6, 2, 15, 58, 51, tzinfo=dt.timezone.utc)),   # no zone: UTC
])
def test_a_moment_is_read_in_utc(text, expected):
    when = moments.parse(text)
    assert when == expected and when.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize("text", [None, "", "2027-06-02", "not a moment at all", 42])
def test_what_is_not_a_moment_reads_as_none(text):
    assert moments.parse(text) is None


@pytest.mark.parametrize("text, shown", [
    ("2027-06-02T15:58:51.999999Z", "2027-06-02 15:58:51"),
    ("2027-06-02T23:30:00-01:00", "2027-06-03 00:30:00"),   # shown in UTC, the day after
    ("2027-06-02", "2027-06-02"),                            # a date stays a date
    ("whenever", "whenever"),
    (None, ""),
])
def test_a_moment_is_shown_to_the_second_in_utc(text, shown):
    assert moments.to_second(text) == shown


def test_now_is_stamped_to_the_second_in_utc():
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    stamp = moments.now_text()
    after = dt.datetime.now(dt.timezone.utc)
    assert stamp.endswith("Z") and len(stamp) == 20
    assert before <= moments.parse(stamp) <= after


def test_a_moment_or_unix_seconds_is_stamped_to_the_second_in_utc():
    paris = dt.timezone(dt.timedelta(hours=2))
    assert moments.text(dt.datetime(2027, 6, 2, 17, 58, 51, 999999, tzinfo=paris)) == "2027-06-02T15:58:51Z"
    assert moments.text(1_811_779_131.9) == "2027-05-31T15:58:51Z"
    later = moments.parse(moments.now_text(dt.timedelta(days=2))) - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(days=2) - dt.timedelta(seconds=5) < later <= dt.timedelta(days=2)
