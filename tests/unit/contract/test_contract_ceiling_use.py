"""``GetCeilingUse``: each ceiling's use since a moment, worked back from its use now over the events recorded since —
what the dashboard's chart of an authorisation reads, instead of the whole event log from the grant (which grows
with the authorisation's history: some 1.2 KB an event, past the peers' 100 MB message limit at about 80,000
events). Checked against the use replayed forward from the grant over the whole log (:func:`forward`, written
here from the specification: a lot's stock counts under the most specific entry covering its code), at every
moment of a history that places, moves, processes, exits and loses goods under two ceilings — one of an 8-digit
code, one of its heading."""
from __future__ import annotations

import datetime as dt

import pytest

from ipledger.chaincode.contract import InwardProcessingContract
from ipledger.chaincode.testing.scenario import AUTH_ID, SITE2, USED_TYRES, Scenario, retreaded

OTHER_TYRES = "40121300"   # under the heading 4012, not under the 8-digit entry
INPUT_GOODS = [{"cn": "4012", "description": "tyres", "unit": "p/st", "max_qty": 100_000},
               {"cn": USED_TYRES, "description": "used pneumatic tyres", "unit": "p/st", "max_qty": 5_000}]


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture(scope="module")
def plant() -> Scenario:
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant(input_goods=INPUT_GOODS))
    steps = [
        lambda: s.place("L1", 1000), lambda: s.place("H1", 300, cn=OTHER_TYRES),
        lambda: s.move(200, "BOURGES-1", SITE2, lot_id="L1"),
        lambda: s.process("OP1", [("L1", 100)], [retreaded(100, "B1")]),
        lambda: s.exit(40, lot_id="L1", procedure="3151"), lambda: s.lose(5, lot_id="H1", reason="NATURE"),
        lambda: s.place("L2", 400), lambda: s.exit(60, batch_id="B1"),
        lambda: s.exit(100, lot_id="H1", procedure="4051"), lambda: s.process("OP2", [("L2", 30)], [retreaded(30, "B2")]),
        lambda: s.lose(3, lot_id="L2", reason="DESTROYED"),
    ]
    for n, step in enumerate(steps):
        s.wait_until(s.D(1 + n / 2))
        s.accepted(step())
    return s


def forward(s: Scenario) -> dict[tuple[str, str], list[tuple[str, int]]]:
    """Each ceiling's use after each event that changed it, replayed from the grant: {(entry cn, unit): [(ledger
    time, use)]}."""
    def ceiling(cn: str, unit: str) -> tuple[str, str] | None:
        entry = max((e for e in INPUT_GOODS if cn == e["cn"] or cn.startswith(e["cn"]) and len(e["cn"]) == 4),
                    key=lambda e: len(e["cn"]))
        return (entry["cn"], unit) if entry["unit"] == unit else None

    lot_ceiling: dict[str, tuple[str, str]] = {}
    use: dict[tuple[str, str], int] = {}
    series: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for entry in s.query("GetEventsInPeriod", AUTH_ID, s.D(-1).date().isoformat(), None)["events"]:
        changed = set()
        for e in entry["effects"]:
            if e["op"] == "place":
                key = lot_ceiling[e["lot"]["lot_id"]] = ceiling(e["lot"]["cn"], e["lot"]["unit"])
                delta = e["lot"]["placed"]
            elif e["op"] == "consume":
                key, delta = lot_ceiling[e["lot_id"]], -e["qty"]
            elif e["op"] in ("exit", "lose") and e["kind"] == "LOT":
                key, delta = lot_ceiling[e["id"]], -e["qty"]
            else:
                continue
            if key is None:
                continue
            use[key] = use.get(key, 0) + delta
            changed.add(key)
        for key in sorted(changed):
            series.setdefault(key, []).append((entry["recorded_at"], use[key]))
    return series


def test_the_use_since_any_moment_is_the_use_replayed_from_the_grant(plant):
    s = plant
    whole = forward(s)
    assert set(whole) == {("4012", "p/st"), (USED_TYRES, "p/st")}
    moments = sorted({at for points in whole.values() for at, _q in points})
    starts = [iso(s.D(-1)), s.D(3).date().isoformat(), *moments, iso(s.ledger.now + dt.timedelta(days=1))]
    for start in starts:
        answer = s.query("GetCeilingUse", AUTH_ID, start)
        balances = {(c["cn"], c["unit"]): c["quantity"] for c in s.query("GetBalances", AUTH_ID)["ceilings"]}
        assert [(c["cn"], c["unit"]) for c in answer["ceilings"]] == [("4012", "p/st"), (USED_TYRES, "p/st")]
        lo = answer["from"]
        for c in answer["ceilings"]:
            points = whole[(c["cn"], c["unit"])]
            before = [q for at, q in points if at < lo]
            assert c["at_start"] == (before[-1] if before else 0), (start, c["cn"])
            assert [(p["recorded_at"], p["quantity"]) for p in c["points"]] == [(at, q) for at, q in points if at >= lo]
            assert (c["points"][-1]["quantity"] if c["points"] else c["at_start"]) == c["quantity"] \
                == balances[(c["cn"], c["unit"])]


def test_the_answer_grows_with_the_period_asked_not_with_the_history(plant):
    s = plant
    late = s.query("GetCeilingUse", AUTH_ID, iso(s.D(5.5)))
    assert sum(len(c["points"]) for c in late["ceilings"]) == 2       # OP2's consumption and L2's destruction
    assert {c["cn"]: c["at_start"] for c in late["ceilings"]} == {"4012": 195, USED_TYRES: 1260}


def test_a_malformed_start_is_refused_by_name(plant):
    res = plant.ledger.evaluate(plant.contract, "GetCeilingUse", [AUTH_ID, "2026-13-01"], "CustomsMSP")
    assert not res.ok and res.error_code == "InvalidEvent" and "from" in res.message


def test_the_events_a_lagging_clock_put_after_the_querys_moment_are_counted_too():
    """The use now (the balances) counts every committed event; the log was read up to a day after the query's own
    timestamp only, so a gateway whose clock lagged by more gave a use at ``start`` that never was."""
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant(input_goods=INPUT_GOODS))
    s.wait_until(s.D(1))
    s.accepted(s.place("L1", 1000))
    s.wait_until(s.D(5))
    s.accepted(s.place("L2", 10))
    c = next(c for c in s.query("GetCeilingUse", AUTH_ID, iso(s.D(0.5)), ts=s.D(3))["ceilings"]
             if c["cn"] == USED_TYRES)
    assert c["at_start"] == 0 and [p["quantity"] for p in c["points"]] == [1000, 1010] and c["quantity"] == 1010


def test_a_busy_ceiling_answers_its_latest_changes_from_where_they_start(monkeypatch):
    from ipledger.chaincode.contract import queries
    monkeypatch.setattr(queries, "CEILING_POINTS_MAX", 3)
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant(input_goods=INPUT_GOODS))
    for n in range(5):
        s.wait_until(s.D(1 + n))
        s.accepted(s.place(f"L{n}", 10 * (n + 1)))
    c = next(c for c in s.query("GetCeilingUse", AUTH_ID, iso(s.D(0)))["ceilings"] if c["cn"] == USED_TYRES)
    assert c["truncated"] and [p["quantity"] for p in c["points"]] == [60, 100, 150]
    assert c["at_start"] == 30 and c["since"] == c["points"][0]["recorded_at"]
    whole = next(c for c in s.query("GetCeilingUse", AUTH_ID, iso(s.D(3.5)))["ceilings"] if c["cn"] == USED_TYRES)
    assert "truncated" not in whole and whole["since"].startswith(s.D(3.5).date().isoformat())
