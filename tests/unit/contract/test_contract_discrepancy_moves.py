"""A control's difference follows goods moved away from its site (fifteenth review).

A ``BalanceDiscrepancy`` stood for the goods at one site, and a count there matching the book cleared it. The
holder could move the book of the missing goods to another site on paper — ``MoveGoods`` needs no evidence —
so that the next count at the first site matched and cleared the alert, while the goods were nowhere. Goods
moved away from a site where a difference stands now raise the alert at their destination too (``moved_from``);
it clears there only by a count there.
"""
from __future__ import annotations

from ipledger.chaincode.testing.scenario import AUTH_ID, SITE1, SITE2


def control(s, site, qty, lot="L1"):
    return s.submit("RecordControl", {"authorisation_id": AUTH_ID, "site": site,
                                      "counted": [{"lot_id": lot, "qty": qty}]}, "CustomsMSP")


def discrepancies(s) -> dict[str, dict]:
    return {a["subject"]: a["details"] for a in s.query("GetAlerts", AUTH_ID)["alerts"]
            if a["type"] == "BalanceDiscrepancy"}


def test_moving_the_missing_goods_on_paper_does_not_clear_the_difference(s):
    s.wait_until(s.D(1))
    s.accepted(control(s, SITE1, 900))                       # L1: book 1,000, 100 missing
    assert set(discrepancies(s)) == {f"LOT:L1@{SITE1}"}
    s.wait_until(s.D(2))
    s.accepted(s.move(100, SITE1, SITE2, lot_id="L1"))       # the missing 100, booked elsewhere
    s.wait_until(s.D(3))
    s.accepted(control(s, SITE1, 900))                       # the first site now matches its book
    standing = discrepancies(s)
    assert set(standing) == {f"LOT:L1@{SITE2}"}
    assert standing[f"LOT:L1@{SITE2}"] | {"found_at": None} == {
        "goods": "LOT", "id": "L1", "site": SITE2, "moved_from": SITE1, "moved": 100, "found_unit": "p/st",
        "difference_found": -100, "found_at": None}
    # only a count where the goods are booked settles it: customs find nothing there
    s.wait_until(s.D(4))
    s.accepted(control(s, SITE2, 0))
    assert discrepancies(s)[f"LOT:L1@{SITE2}"]["difference"] == -100
    # the goods were found after all and brought there: the count matches, the alert clears
    s.wait_until(s.D(5))
    s.accepted(control(s, SITE2, 100))
    assert discrepancies(s) == {}


def test_a_carried_difference_goes_on_with_the_goods(s):
    """Carried to a second site, then moved on (back to the first, where a count had matched meanwhile): the
    difference a control found goes with them, as found then."""
    s.wait_until(s.D(1))
    s.accepted(control(s, SITE1, 900))
    s.wait_until(s.D(2))
    s.accepted(s.move(100, SITE1, SITE2, lot_id="L1"))
    s.wait_until(s.D(3))
    s.accepted(control(s, SITE1, 900))                       # matches: cleared at the first site
    first = discrepancies(s)[f"LOT:L1@{SITE2}"]
    s.wait_until(s.D(4))
    s.accepted(s.move(100, SITE2, SITE1, lot_id="L1"))
    back = discrepancies(s)[f"LOT:L1@{SITE1}"]
    assert (back["moved_from"], back["difference_found"], back["found_at"]) == (SITE2, -100, first["found_at"])


def test_moves_without_a_standing_difference_raise_nothing(s):
    s.wait_until(s.D(1))
    s.accepted(control(s, SITE1, 1000))
    s.wait_until(s.D(2))
    s.accepted(s.move(100, SITE1, SITE2, lot_id="L1"))
    assert discrepancies(s) == {}


def test_a_difference_already_standing_at_the_destination_is_kept_as_found(s):
    s.wait_until(s.D(1))
    s.accepted(s.move(100, SITE1, SITE2, lot_id="L1"))
    s.wait_until(s.D(2))
    s.accepted(control(s, SITE1, 850))
    s.accepted(control(s, SITE2, 90))
    before = discrepancies(s)[f"LOT:L1@{SITE2}"]
    s.wait_until(s.D(3))
    s.accepted(s.move(50, SITE1, SITE2, lot_id="L1"))
    assert discrepancies(s)[f"LOT:L1@{SITE2}"] == before


BEFORE_L1 = "2026-03-01T09:00:00Z"   # the day before L1 was placed (Scenario's day)


def test_a_control_dated_before_the_goods_existed_is_out_of_order(s):
    s.refused("OutOfOrder", s.submit, "RecordControl", {
        "authorisation_id": AUTH_ID, "site": SITE1, "counted": [{"lot_id": "L1", "qty": 1000}],
        "occurred_at": BEFORE_L1}, "CustomsMSP")


def test_an_extension_dated_before_the_goods_existed_is_out_of_order(s):
    s.refused("OutOfOrder", s.submit, "ExtendDischargePeriod", {
        "authorisation_id": AUTH_ID, "lot_ids": ["L1"], "new_deadline": s.D(300).isoformat().replace("+00:00", "Z"),
        "reason": "backlog", "occurred_at": BEFORE_L1}, "CustomsMSP")


def test_processing_the_missing_goods_on_paper_does_not_clear_the_difference(s):
    """The same bypass through RecordProcessing: the lot's missing 100 consumed into a batch on paper leaves the
    lot's book matching the count — the difference goes on with the products made from it at that site."""
    from ipledger.chaincode.testing.scenario import retreaded
    s.wait_until(s.D(1))
    s.accepted(control(s, SITE1, 900))
    s.wait_until(s.D(2))
    s.accepted(s.process("OP1", [("L1", 100)], [retreaded(100, "B1")]))
    s.wait_until(s.D(3))
    s.accepted(control(s, SITE1, 900))                       # the lot's book at the site: 900, as counted
    standing = discrepancies(s)
    assert set(standing) == {f"BATCH:B1@{SITE1}"}
    assert {k: standing[f"BATCH:B1@{SITE1}"][k] for k in ("processed_from", "operation_id", "difference_found",
                                                          "found_unit")} == {
        "processed_from": "L1", "operation_id": "OP1", "difference_found": -100, "found_unit": "p/st"}
    # counted where the products are booked: none there
    s.wait_until(s.D(4))
    s.accepted(s.submit("RecordControl", {"authorisation_id": AUTH_ID, "site": SITE1,
                                          "counted": [{"batch_id": "B1", "qty": 0}]}, "CustomsMSP"))
    assert discrepancies(s)[f"BATCH:B1@{SITE1}"]["difference"] == -100
