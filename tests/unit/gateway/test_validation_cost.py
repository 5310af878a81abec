"""An invalid event costs little to refuse: an array beyond its schema's ``maxItems`` is refused by its
length, before the schema's walk describes every item (a 4 MB body of a million bad items took a minute of
CPU), a body of more arrays and objects than any event has is refused before it is parsed, and the answer lists
the first violations."""
from __future__ import annotations

import json
import time

from ipledger.chaincode.contract import schemas
from ipledger.gateway.validation import MAX_ERRORS, oversized_arrays

from .fakes import grant_body, move_body

EVENTS = "/api/v1/events"
JSON = {"Content-Type": "application/json"}


def _grant_with_input_goods(as_org, item: str, n: int):
    """A grant posted with ``n`` copies of the JSON ``item`` as its input goods: the answer, and the CPU seconds the
    request took."""
    body = grant_body(event_id="g-big")
    body["input_goods"] = "@@"
    text = json.dumps(body).replace('"@@"', "[" + ",".join([item] * n) + "]")
    started = time.process_time()
    r = as_org("CustomsMSP").post(EVENTS, data=text, headers=JSON)
    return r, time.process_time() - started


def test_a_million_bad_items_are_refused_before_they_are_parsed(as_org, ledger):
    r, spent = _grant_with_input_goods(as_org, "{}", 1_000_000)
    assert r.status_code == 400 and r.json["type"].endswith("/bad-request"), r.json
    assert "more arrays and objects than" in r.json["detail"]
    assert spent < 5, f"{spent:.1f} s of CPU to refuse it"
    assert ledger.submits == []


def test_fifty_thousand_bad_items_are_refused_by_the_arrays_length_at_once(as_org, ledger):
    r, spent = _grant_with_input_goods(as_org, '{"description": "an item of nothing it needs"}', 50_000)
    assert r.status_code == 400 and r.json["type"].endswith("/invalid-event"), r.json
    assert r.json["errors"] == [{"path": "/input_goods",
                                 "message": "has 50000 items, more than the 200 allowed (maxItems)"}]
    assert r.json["detail"].startswith("GrantAuthorisation: /input_goods: has 50000 items")
    assert spent < 5, f"{spent:.1f} s of CPU to refuse it"   # parsing the body is most of it
    assert ledger.submits == []


def test_within_the_caps_the_answer_lists_the_first_violations(as_org, ledger):
    body = grant_body(event_id="g-many", yield_rates=[{}] * 1000)
    r = as_org("CustomsMSP").post(EVENTS, json=body)
    assert r.status_code == 400
    assert len(r.json["errors"]) == MAX_ERRORS
    assert r.json["errors"][0]["path"].startswith("/yield_rates/")


def test_an_oversized_array_is_named_wherever_the_schema_caps_it():
    assert oversized_arrays("MoveGoods", move_body()) == []                 # no array in MoveGoods
    processing = {"inputs": [{"lot_id": "L1", "qty": 1}] * 501, "outputs": [{}] * 100}
    assert oversized_arrays("RecordProcessing", processing) == [
        {"path": "/inputs", "message": "has 501 items, more than the 500 allowed (maxItems)"}]
    assert oversized_arrays("RecordProcessing", {"inputs": "not an array"}) == []   # the schema walk says so


def _arrays_without_max_items(node, path=""):
    if isinstance(node, dict):
        if node.get("type") == "array" and "maxItems" not in node:
            yield path or "/"
        for key, value in node.items():
            yield from _arrays_without_max_items(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _arrays_without_max_items(value, f"{path}/{i}")


def test_every_array_of_every_schema_has_a_max_items():
    """The bound on a refusal's cost rests on it: an array without ``maxItems`` would be walked whole."""
    for name in (*schemas.EVENT_TYPES, *schemas.TRANSIENT_SCHEMAS):
        assert list(_arrays_without_max_items(schemas.load_schema(name))) == [], name
