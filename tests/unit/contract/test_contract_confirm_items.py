"""ConfirmExit naming its declaration's items (fifteenth review).

A confirmation took the MRN alone and confirmed every item recorded under it: an item a declarant added to a
real re-export's declaration for goods that never left rode on the real exit's confirmation, and
``ExitUnconfirmed`` — the one follow-up of a re-export — never came. Customs may now name the items they saw
leave, each with its quantity (``items``): only those are confirmed, an item named with another quantity than
its exit recorded is ``ExitMismatch``, and the others go on awaiting their confirmation.
"""
from __future__ import annotations

import pytest

from ipledger.chaincode.testing.mrns import mrn as valid_mrn
from ipledger.chaincode.testing.scenario import AUTH_ID, iso

M = valid_mrn(920001, "A")   # one export declaration, two items


@pytest.fixture
def s(s):
    """L1 (1,000 p/st): item 1 of M re-exports 100 of it (it left), item 2 another 900 (it did not)."""
    s.accepted(s.exit(100, lot_id="L1", mrn_=M, item_no=1))
    s.accepted(s.exit(900, lot_id="L1", mrn_=M, item_no=2))
    s.wait_until(s.D(3))
    return s


def confirm(s, items=None, **extra):
    event = {"authorisation_id": AUTH_ID, "mrn": M, "exit_date": s.D(2).date().isoformat(), **extra}
    if items is not None:
        event["items"] = [{"item_no": n, "quantity": q} for n, q in items]
    return s.submit("ConfirmExit", event, "CustomsMSP")


def unconfirmed(s, days: int) -> list[tuple]:
    alerts = s.query("GetAlerts", AUTH_ID, iso(s.D(days)))["alerts"]
    return [(a["details"]["mrn"], a["details"]["item_no"], a["details"]["quantity"])
            for a in alerts if a["type"] == "ExitUnconfirmed"]


def test_only_the_items_named_are_confirmed_and_the_others_still_await(s):
    res = s.accepted(confirm(s, [(1, 100)]))
    assert [(c["item_no"], c["quantity"]) for c in res["confirmed"]] == [(1, 100)]
    assert unconfirmed(s, 120) == [(M, 2, 900)]
    bill = s.query("GetBillOfDischargeData", AUTH_ID, None, iso(s.D(3)))
    assert [(d["item_no"], d["exit_confirmed"] is not None) for d in bill["disposals"]] == [(1, True), (2, False)]
    # the second item, once customs saw it leave, by a later confirmation
    s.wait_until(s.D(4))
    s.accepted(confirm(s, [(2, 900)], exit_date=s.D(3).date().isoformat()))
    assert unconfirmed(s, 120) == []


def test_an_item_named_with_another_quantity_is_exit_mismatch(s):
    details = s.refused("ExitMismatch", confirm, s, [(1, 100), (2, 90)])
    assert details == {"mrn": M, "item_no": 2, "confirmed": 90, "recorded": 900, "unit": "p/st"}
    assert unconfirmed(s, 120) == [(M, 1, 100), (M, 2, 900)]


@pytest.mark.parametrize("items, code", [
    ([(3, 100)], "NotFound"),                  # no such item under the declaration
    ([(1, 100), (1, 100)], "InvalidEvent"),    # an item named twice
])
def test_items_that_name_no_pending_exit_are_refused(s, items, code):
    s.refused(code, confirm, s, items)


def test_an_item_confirmed_already_awaits_nothing(s):
    s.accepted(confirm(s, [(1, 100)]))
    s.wait_until(s.D(4))
    details = s.refused("InvalidState", confirm, s, [(1, 100)])
    assert details["item_no"] == 1


def test_without_items_every_pending_item_is_confirmed_as_before(s):
    res = s.accepted(confirm(s))
    assert [(c["item_no"], c["quantity"]) for c in res["confirmed"]] == [(1, 100), (2, 900)]
    assert unconfirmed(s, 120) == []


@pytest.mark.parametrize("items", [[], [{"item_no": 1}], [{"item_no": 1, "quantity": 100, "unit": "p/st"}],
                                   [{"item_no": 0, "quantity": 100}], [{"item_no": 1, "quantity": 0}]])
def test_malformed_items_are_invalid_events(s, items):
    event = {"authorisation_id": AUTH_ID, "mrn": M, "exit_date": s.D(2).date().isoformat(), "items": items}
    s.refused("InvalidEvent", s.submit, "ConfirmExit", event, "CustomsMSP")


def test_the_alerts_of_a_past_moment_replay_the_items_named(s):
    """GetAlerts as of a past moment is rebuilt from the event log: a confirmation naming item 1 there
    leaves item 2 unconfirmed too."""
    s.wait_until(s.D(100))
    s.accepted(confirm(s, [(1, 100)]))
    s.wait_until(s.D(200))
    assert unconfirmed(s, 150) == [(M, 2, 900)]
    assert unconfirmed(s, 50) == []              # not yet due then


def test_the_declaration_view_shows_each_item_its_own_exit_and_confirmation(s):
    """GetDeclaration: an exit item's events are those naming that item — its ExitGoods, a ConfirmExit that
    confirmed it — not the other items' of the same goods."""
    s.accepted(confirm(s, [(1, 100)]))
    items = {i["item_no"]: [(e["event_type"], e["event"].get("item_no")) for e in i["events"]]
             for i in s.query("GetDeclaration", M)["items"]}
    assert items == {1: [("ExitGoods", 1), ("ConfirmExit", None)], 2: [("ExitGoods", 2)]}


def test_the_declaration_view_shows_each_item_the_confirmation_that_confirmed_it(s):
    """Two confirmations naming no items, one after the other item was recorded: each item shows the one that
    confirmed it, as its record says — not every confirmation of the MRN."""
    first = s.accepted(confirm(s, [(1, 100)]))
    s.wait_until(s.D(4))
    second = s.accepted(confirm(s))                   # names none: confirms item 2, the one left
    items = {i["item_no"]: [e["tx_id"] for e in i["events"] if e["event_type"] == "ConfirmExit"]
             for i in s.query("GetDeclaration", M)["items"]}
    assert items == {1: [first["tx_id"]], 2: [second["tx_id"]]}
