"""What the gateway reads of a JSON body: never more nested than it can walk, never a member named twice,
never a number rounded on the way to the ledger — each refused with a 400 that says which."""
from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction

import pytest

from ipledger.chaincode.contract import decimals
from ipledger.gateway.jsonread import MAX_DEPTH
from ipledger.gateway.problems import Problem
from ipledger.gateway.validation import parse_event

from .fakes import grant_body, move_body, place_body

EVENTS = "/api/v1/events"
JSON = {"Content-Type": "application/json"}
BAD_REQUEST = "https://ipledger.example/problems/bad-request"


def _with(body: dict, name: str, raw: str) -> str:
    """``body`` as JSON text with member ``name`` holding the JSON text ``raw``."""
    body = {**body, name: "@@"}
    return json.dumps(body).replace('"@@"', raw)


def _bad_request(response) -> str:
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/problem+json" and response.json["type"] == BAD_REQUEST
    return response.json["detail"]


# ------------------------------------------------------------------------------------------ nesting

def test_a_quantity_of_about_980_nested_arrays_is_a_400_not_a_500(as_org, ledger):
    """Just below the depth the JSON parser gives up at, the validators ran out of stack (500; where
    exactly depends on the stack already in use): the body is refused before, at every depth."""
    caller = as_org("OperatorMSP")
    answers = {depth: caller.post(EVENTS, data=_with(move_body(event_id=f"deep-{depth}"), "quantity",
                                                     "[" * depth + "]" * depth), headers=JSON)
               for depth in range(800, 1000)}
    assert [depth for depth, r in answers.items() if r.status_code >= 500] == []
    for depth, r in answers.items():
        assert f"more than {MAX_DEPTH} levels deep" in _bad_request(r), depth
    assert ledger.submits == []


def test_a_body_nested_beyond_the_bound_is_refused_before_validation(as_org, ledger):
    caller = as_org("OperatorMSP")
    deep = _with(move_body(event_id="deep"), "quantity", "[" * MAX_DEPTH + "]" * MAX_DEPTH)  # the body's level 1
    assert f"more than {MAX_DEPTH} levels deep" in _bad_request(caller.post(EVENTS, data=deep, headers=JSON))
    at_bound = _with(move_body(event_id="deep"), "quantity", "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1))
    r = caller.post(EVENTS, data=at_bound, headers=JSON)
    assert r.status_code == 400 and r.json["type"].endswith("/invalid-event")   # read; the schema refuses it
    commercial = {"customs_value": {"amount": "@@", "currency": "EUR"}}
    deep = _with(place_body(event_id="deep-c"), "commercial",
                 json.dumps(commercial).replace('"@@"', "{\"a\":" * 70 + "1" + "}" * 70))
    assert f"more than {MAX_DEPTH} levels deep" in _bad_request(as_org("BrokerMSP").post(EVENTS, data=deep,
                                                                                         headers=JSON))
    batch = '{"events": [' + _with(move_body(event_id="deep-b"), "quantity", "[" * 980 + "]" * 980) + "]}"
    assert f"more than {MAX_DEPTH} levels deep" in _bad_request(caller.post(f"{EVENTS}/batch", data=batch,
                                                                            headers=JSON))
    assert ledger.submits == []
    # an event as deep as its schema goes is read as before
    assert as_org("BrokerMSP").post(EVENTS, json=place_body()).status_code == 201


def test_an_event_too_deep_for_the_validators_is_an_invalid_event_not_a_crash():
    """Whatever reaches the event parser (not only a request body) ends as a 400, not a RecursionError."""
    value: list = []
    for _ in range(5000):
        value = [value]
    with pytest.raises(Problem) as caught:
        parse_event({**move_body(), "quantity": value})
    assert caught.value.status == 400 and caught.value.name == "invalid-event"
    assert "nested too deeply" in caught.value.detail


# ------------------------------------------------------------------------------------------ members named twice

def test_a_member_named_twice_is_refused_naming_it(as_org, ledger):
    caller = as_org("OperatorMSP")
    text = json.dumps(move_body(event_id="dup-1"))[:-1] + ', "quantity": 4000}'
    assert '"quantity": 400,' in text
    detail = _bad_request(caller.post(EVENTS, data=text, headers=JSON))
    assert "'quantity'" in detail and "more than once" in detail
    nested = json.dumps(place_body(event_id="dup-2")).replace(
        '"currency": "EUR"', '"currency": "EUR", "amount": "99999.00"')
    assert "'amount'" in _bad_request(as_org("BrokerMSP").post(EVENTS, data=nested, headers=JSON))
    batch = '{"events": [' + text + '], "stop_on_error": false}'
    assert "'quantity'" in _bad_request(caller.post(f"{EVENTS}/batch", data=batch, headers=JSON))
    assert ledger.submits == []


def test_every_json_body_the_gateway_reads_refuses_a_member_named_twice(as_org):
    r = as_org("CustomsMSP", "viewer").post("/api/v1/dashboard/authorisations", headers=JSON,
                                            data='{"authorisation_id": "FRIPO000001", "authorisation_id": "X"}')
    assert "'authorisation_id'" in _bad_request(r)


# ------------------------------------------------------------------------------------------ numbers

@pytest.mark.parametrize("text", ["0.123456789012345678901", "4.9999999999999999999", "1.00000000000000000001",
                                  "0.99000000000000000001", "1e-400"])
def test_a_number_a_float_cannot_hold_exactly_is_refused_not_rounded(as_org, ledger, text):
    body = _with(grant_body(event_id="g-digits"), "yield_block_pct", text)
    detail = _bad_request(as_org("CustomsMSP").post(EVENTS, data=body, headers=JSON))
    assert text in detail and "more digits than can be recorded exactly" in detail
    assert ledger.submits == []


@pytest.mark.parametrize("text", ["1.5", "0.25", "97.5", "0.1", "2.50", "1e-3", "0.30000000000000004"])
def test_decimals_a_float_holds_exactly_are_recorded_as_written(as_org, ledger, text):
    """The contract computes with the decimal the float's shortest text names (``decimals.exact``): that
    is the decimal the sender wrote."""
    body = _with(grant_body(event_id=f"g-{text}"), "yield_warn_pct", text)
    r = as_org("CustomsMSP").post(EVENTS, data=body, headers=JSON)
    assert r.status_code == 201, r.json
    sent = json.loads(ledger.submits[-1]["args"][0])["yield_warn_pct"]
    assert decimals.exact(sent) == Fraction(Decimal(text))


def test_integers_with_a_fraction_or_exponent_stay_integers(as_org, ledger):
    body = _with(move_body(event_id="m-int"), "quantity", "4.0e2")
    assert as_org("OperatorMSP").post(EVENTS, data=body, headers=JSON).status_code == 201
    assert ledger.submits[-1]["event"]["quantity"] == 400
