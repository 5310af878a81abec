"""Goods left at a site an amendment withdrew may leave it (moved to an authorised site, exited, lost) and be counted
there; nothing enters it.

F1 — a site withdrawn by an amendment while goods lie there: the goods could neither be moved to an authorised
site, nor exited or lost naming that site, nor counted there by customs (``SiteNotAuthorised``): a hostile or
slow holder kept them out of every control, and a careful one could not bring them back to an authorised site.
Goods may now leave such a site (a movement to an authorised site, an exit, a loss) and customs may count them
there; nothing enters it and nothing is processed there."""
from __future__ import annotations

import pytest

from ipledger.chaincode.contract import InwardProcessingContract
from ipledger.chaincode.testing.scenario import (AUTH_ID, SITE1, SITE2, Scenario, authorisation_fields, retreaded)


@pytest.fixture
def sc():
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant())
    return s


def _withdraw_site2(sc) -> None:
    sc.accepted(sc.submit("AmendAuthorisation", {"authorisation_id": AUTH_ID,
                                                  **authorisation_fields(sc.day, sites=[SITE1])}, "CustomsMSP"))


def _control(sc, site: str, counted: list[dict]):
    return sc.submit("RecordControl", {"authorisation_id": AUTH_ID, "site": site, "counted": counted}, "CustomsMSP")


# ---------------------------------------------------------------------------------------- F1

def test_goods_left_at_a_withdrawn_site_can_be_moved_to_an_authorised_one(sc):
    sc.accepted(sc.place("L1", 100, site=SITE2))
    _withdraw_site2(sc)
    sc.accepted(sc.move(60, SITE2, SITE1, lot_id="L1"))
    assert sc.lot("L1")["stock"] == {SITE1: 60, SITE2: 40}
    # nothing enters the withdrawn site, nothing is processed there, nothing is taken there beyond its stock
    sc.refused("SiteNotAuthorised", sc.move, 10, SITE1, SITE2, lot_id="L1")
    sc.refused("SiteNotAuthorised", sc.process, "OP1", [("L1", 10)], [retreaded(10)], site=SITE2)
    sc.refused("QuantityExceedsBalance", sc.move, 41, SITE2, SITE1, lot_id="L1")


def test_goods_left_at_a_withdrawn_site_can_be_exited_or_lost_there(sc):
    sc.accepted(sc.place("L1", 100, site=SITE2))
    _withdraw_site2(sc)
    sc.accepted(sc.exit(30, lot_id="L1", site=SITE2))
    sc.accepted(sc.lose(10, lot_id="L1", site=SITE2, reason="DESTROYED"))
    lot = sc.lot("L1")
    assert lot["stock"] == {SITE2: 60} and lot["exited"] == {"3151": 30} and lot["lost"] == 10
    sc.refused("QuantityExceedsBalance", sc.exit, 61, lot_id="L1", site=SITE2)


def test_customs_count_goods_left_at_a_withdrawn_site(sc):
    sc.accepted(sc.place("L1", 100, site=SITE2))
    _withdraw_site2(sc)
    result = sc.accepted(_control(sc, SITE2, [{"lot_id": "L1", "qty": 90}]))
    assert result["lines"][0]["book"] == 100 and result["discrepancies"] == 1
    # goods found at a site never authorised: counted against a book of 0 there (domain.md §9)
    found = sc.accepted(_control(sc, "PARIS-9", [{"lot_id": "L1", "qty": 20}]))
    assert (found["lines"][0]["book"], found["lines"][0]["difference"]) == (0, 20)
    assert "LOT:L1@PARIS-9" in {a["subject"] for a in sc.query("GetAlerts", AUTH_ID)["alerts"]
                                if a["type"] == "BalanceDiscrepancy"}
    assert sc.lot("L1")["stock"] == {SITE2: 100}                                # a control changes no balance


def test_a_site_never_authorised_stays_refused_for_every_act(sc):
    sc.accepted(sc.place("L1", 100))
    sc.refused("SiteNotAuthorised", sc.move, 10, "PARIS-9", SITE1, lot_id="L1")
    sc.refused("SiteNotAuthorised", sc.exit, 10, lot_id="L1", site="PARIS-9")
    sc.refused("SiteNotAuthorised", sc.lose, 10, lot_id="L1", site="PARIS-9")
