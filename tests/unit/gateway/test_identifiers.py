"""Identifiers match whole at the gateway too (issue 13, point 3): early validation refuses what the
contract would refuse — a trailing newline or a control character in any identifier, an MRN that is
not an EU MRN — with a clear problem+json, and path parameters are matched whole."""
from __future__ import annotations

import pytest

from ipledger.chaincode.testing import mrns

from .fakes import move_body, place_body

EVENTS = "/api/v1/events"
PROBLEM = "application/problem+json"
PROBLEMS = "https://ipledger.example/problems/"


def _refused(r, name: str, code: str) -> dict:
    assert r.status_code == 400, r.json
    assert r.mimetype == PROBLEM
    p = r.json
    assert p["type"] == PROBLEMS + name and p["code"] == code and p["status"] == 400
    return p


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\x00", "\t"])
@pytest.mark.parametrize("field", ["event_id", "authorisation_id", "lot_id", "site", "cn", "origin",
                                   "occurred_at"])
def test_an_identifier_with_a_newline_or_control_character_is_400(as_org, ledger, field, ending):
    body = place_body(mrn=mrns.PLACE_MRN_L1)
    body[field] += ending
    p = _refused(as_org("BrokerMSP").post(EVENTS, json=body), "invalid-event", "InvalidEvent")
    assert {e["path"] for e in p["errors"]} == {f"/{field}"}
    assert ledger.submits == []


def test_the_mrn_of_a_declaration_plus_a_newline_is_400_invalid_mrn(as_org, ledger):
    assert as_org("BrokerMSP").post(EVENTS, json=place_body(mrn=mrns.PLACE_MRN_L1)).status_code == 201
    body = place_body(event_id="place-L2", lot_id="L2", mrn=mrns.PLACE_MRN_L1 + "\n")
    p = _refused(as_org("BrokerMSP").post(EVENTS, json=body), "invalid-mrn", "InvalidMrn")
    assert p["errors"][0]["path"] == "/mrn" and "control character" in p["errors"][0]["message"]
    assert len(ledger.submits) == 1


@pytest.mark.parametrize("value, why", [
    (mrns.with_bad_check_digit(mrns.PLACE_MRN_L1), "check digit"),
    (mrns.PLACE_MRN_L1[:17], "18 characters"),
    ("26FR000110I0000001", "position 17"),
    ("26fr000110000001R8", "country"),
])
def test_an_invalid_mrn_is_400_invalid_mrn_saying_why(as_org, ledger, value, why):
    p = _refused(as_org("BrokerMSP").post(EVENTS, json=place_body(mrn=value)), "invalid-mrn", "InvalidMrn")
    assert p["errors"] == [{"path": "/mrn", "message": p["errors"][0]["message"]}]
    assert why in p["errors"][0]["message"] and why in p["detail"]
    assert ledger.submits == []


def test_an_invalid_mrn_among_other_violations_is_invalid_event_listing_all(as_org, ledger):
    body = place_body(mrn=mrns.with_bad_check_digit(mrns.PLACE_MRN_L1), quantity=0)
    p = _refused(as_org("BrokerMSP").post(EVENTS, json=body), "invalid-event", "InvalidEvent")
    assert [e["path"] for e in p["errors"]] == ["/mrn", "/quantity"]
    assert "check digit" in p["errors"][0]["message"]


def test_valid_mrns_pass(as_org, ledger):
    for n, value in enumerate(("26FR000110000001R8", "26FR000110000007A7", mrns.placement_mrn(424242))):
        body = place_body(event_id=f"p-{n}", lot_id=f"L{n}", mrn=value)
        assert as_org("BrokerMSP").post(EVENTS, json=body).status_code == 201
    assert [s["event"]["mrn"] for s in ledger.submits][0] == "26FR000110000001R8"


def test_exit_and_confirmation_mrns_are_checked_too(as_org, ledger):
    exit_body = {"type": "ExitGoods", "event_id": "x-1", "authorisation_id": "FRIPO000001",
                 "occurred_at": "2026-03-02T09:00:00Z", "lot_id": "L1", "quantity": 1, "procedure": "3151",
                 "mrn": mrns.EXIT_MRN_B1 + "\n"}
    _refused(as_org("BrokerMSP").post(EVENTS, json=exit_body), "invalid-mrn", "InvalidMrn")
    confirm = {"type": "ConfirmExit", "event_id": "c-1", "authorisation_id": "FRIPO000001",
               "occurred_at": "2026-03-02T09:00:00Z", "mrn": mrns.with_bad_check_digit(mrns.EXIT_MRN_B1),
               "exit_date": "2026-03-02"}
    _refused(as_org("CustomsMSP").post(EVENTS, json=confirm), "invalid-mrn", "InvalidMrn")
    assert ledger.submits == []


def test_list_identifiers_and_msp_ids_are_matched_whole(as_org, ledger):
    party = {"type": "RegisterParty", "event_id": "p-1", "occurred_at": "2026-03-02T09:00:00Z",
             "msp_id": "BrokerMSP\n", "role": "representative", "eoris": ["FR98765432109876"]}
    _refused(as_org("CustomsMSP").post(EVENTS, json=party), "invalid-event", "InvalidEvent")
    party.update(msp_id="BrokerMSP", eoris=["FR11111111111111", "FR98765432109876\n"])
    _refused(as_org("CustomsMSP").post(EVENTS, json=party), "invalid-event", "InvalidEvent")
    move = move_body(event_id="m-1\n")
    _refused(as_org("OperatorMSP").post(EVENTS, json=move), "invalid-event", "InvalidEvent")
    assert ledger.submits == []


@pytest.mark.parametrize("path", ["/api/v1/lots/L1%0A", "/api/v1/lots/L1%00", "/api/v1/batches/B1%0A/history",
                                  "/api/v1/authorisations/FRIPO000001%0A", "/api/v1/lots/L1%0A/history",
                                  "/api/v1/bills-of-discharge/BOD-FRIPO000001-2026-03-01%0A"])
def test_path_identifiers_are_matched_whole(as_org, ledger, path):
    r = as_org("CustomsMSP").get(path)
    assert r.status_code == 400 and r.mimetype == PROBLEM, r.get_data(as_text=True)
    assert r.json["type"] == PROBLEMS + "invalid-parameter"
    assert ledger.evaluations == []


@pytest.mark.parametrize("query", ["as_of=2026-03-02%0A", "as_of=2026-03-02T09:00:00Z%0A"])
def test_date_parameters_are_matched_whole(as_org, ledger, query):
    r = as_org("CustomsMSP").get(f"/api/v1/authorisations/FRIPO000001/alerts?{query}")
    assert r.status_code == 400 and r.json["type"] == PROBLEMS + "invalid-parameter"
    assert ledger.evaluations == []


@pytest.mark.parametrize("code, status", [("InvalidMrn", 400), ("InvalidIdentifier", 400), ("UnknownParty", 403)])
def test_the_contracts_new_rules_are_clear_problems(as_org, ledger, code, status):
    from .fakes import endorse_error

    errors = [{"path": "/mrn", "message": "not an MRN: ..."}]
    ledger.submit_failures.append(endorse_error(code, f"{code} message", {"errors": errors}))
    r = as_org("BrokerMSP").post(EVENTS, json=place_body(mrn=mrns.PLACE_MRN_L1))
    assert r.status_code == status and r.mimetype == PROBLEM
    p = r.json
    from ipledger.gateway.problems import slug
    assert p["type"] == PROBLEMS + slug(code) and p["code"] == code and p["detail"] == f"{code} message"
    if code == "InvalidMrn":
        assert p["errors"] == errors
