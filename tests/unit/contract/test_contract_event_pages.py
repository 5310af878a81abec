"""``GetEventsInPeriod`` in pages: an authorisation's log answered whole grew past the peers' 100 MB message limit
(about 1.2 KB an event: near 80,000 events) and had to be held whole by every gateway asking. ``limit`` events at
most, and the answer's ``next`` given back as ``after``; the pages together are the period's events, each once,
in order — across months, and for events of one ledger moment."""
from __future__ import annotations

import pytest

from ipledger.chaincode.contract import InwardProcessingContract
from ipledger.chaincode.testing.scenario import AUTH_ID, Scenario

START, END = "2020-01-01", "2099-12-31"


@pytest.fixture(scope="module")
def plant() -> Scenario:
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant())
    for n in range(14):        # a placement every 9 days: the log spans several months
        s.wait_until(s.D(1 + 9 * n))
        s.accepted(s.place(f"P{n}", 10))
    moment = s.D(200)           # two events of one ledger moment (client clocks may agree to the microsecond)
    s.wait_until(moment)
    s.accepted(s.place("T1", 1, ts=moment))
    s.accepted(s.place("T2", 1, ts=moment))
    return s


def pages(s: Scenario, limit: int) -> list[list[dict]]:
    out, after = [], None
    while True:
        answer = s.query("GetEventsInPeriod", AUTH_ID, START, END, limit, after)
        out.append(answer["events"])
        after = answer.get("next")
        if after is None:
            return out
        assert len(answer["events"]) == limit


@pytest.mark.parametrize("limit", [1, 2, 5, 16, 17, 100])
def test_the_pages_together_are_the_whole_period_each_event_once_in_order(plant, limit):
    whole = plant.query("GetEventsInPeriod", AUTH_ID, START, END)["events"]
    assert len(whole) == 17 and "next" not in plant.query("GetEventsInPeriod", AUTH_ID, START, END)
    got = pages(plant, limit)
    assert [e["tx_id"] for page in got for e in page] == [e["tx_id"] for e in whole]
    assert len(got) == max(1, -(-len(whole) // limit))


def test_after_alone_gives_the_rest_of_the_period(plant):
    whole = plant.query("GetEventsInPeriod", AUTH_ID, START, END)["events"]
    first = plant.query("GetEventsInPeriod", AUTH_ID, START, END, 4)
    rest = plant.query("GetEventsInPeriod", AUTH_ID, START, END, None, first["next"])
    assert first["events"] + rest["events"] == whole and "next" not in rest


@pytest.mark.parametrize("limit, after, field", [
    (0, None, "limit"), (10_001, None, "limit"), (True, None, "limit"), ("5", None, "limit"), (2.5, None, "limit"),
    (5, "2026-01-01T00:00:00Z/abc", "after"), (5, 7, "after"),
    (5, "2026-01-01T00:00:00.000000Z/" + "g" * 64, "after"),
    # digits of other scripts ('\u0662' is ARABIC-INDIC TWO: a digit to Python's \\d) and a final newline
    (5, "\u0662026-01-01T00:00:00.000000Z/" + "a" * 64, "after"),
    (5, "2026-01-01T00:00:00.000000Z/" + "a" * 64 + "\n", "after")])
def test_a_malformed_page_is_refused_by_name(plant, limit, after, field):
    res = plant.ledger.evaluate(plant.contract, "GetEventsInPeriod", [AUTH_ID, START, END, limit, after], "CustomsMSP")
    assert not res.ok and res.error_code == "InvalidEvent" and res.json()["details"]["field"] == field, res.message
