"""The compiled schema predicates (chaincode/contract/schemas/compiled.py) judge exactly as jsonschema.

A predicate that said "valid" where jsonschema finds a violation would let a malformed event onto the
ledger, so this is a differential test: every event the determinism run posts (every act of the act
table, valid ones and refused ones) is validated both ways, and so is each of its mutants — every
field replaced by values of every JSON type and by edge cases (NaN, 1.0, booleans, long strings, an
impossible date), every field removed, an unknown field added, at every depth, and every optional field
the event does not carry added with each of those values.
"""
from __future__ import annotations

import copy
import io
import json
import math

import pytest
from tests.unit.contract import determinism_run

from ipledger.chaincode.contract import schemas
from ipledger.chaincode.contract.schemas.compiled import Unsupported, compile_schema

REPLACEMENTS = [None, True, False, 0, 1, -1, 1.0, 0.5, -0.0, 2**63, math.nan, math.inf, "", "x", "x" * 15, "x" * 16,
                "A" * 300, "A" * 600, "A" * 5000,
                "5100", "2026-02-30", "2026-12-03T10:00:00Z", "2026-12-03T10:00:00", "FR12345678901234", [], [1],
                ["a", "a"], {}, {"x": 1}]


def _seeds() -> list[tuple[str, dict]]:
    seen: list[tuple[str, dict]] = []
    real_errors = schemas.errors

    def spy(event_type, instance):
        seen.append((event_type, copy.deepcopy(instance)))
        return real_errors(event_type, instance)

    schemas.errors = spy
    try:
        determinism_run.main(io.StringIO())
    finally:
        schemas.errors = real_errors
    # three acts the run does not post
    moment = {"event_id": "ev-extra", "occurred_at": "2026-12-03T10:00:00.000000Z"}
    seen.append(("DropKeyPolicies", dict(moment)))
    seen.append(("RevokeAuthorisation", {**moment, "authorisation_id": determinism_run.AUTH_ID, "reason": "fraud"}))
    seen.append(("DecideBillOfDischarge", {**moment, "authorisation_id": determinism_run.AUTH_ID,
                                           "bill_id": f"BOD-{determinism_run.AUTH_ID}-2026-01-01",
                                           "decision": "ACCEPTED"}))
    # per act, one event of each shape (set of fields, at every depth) is enough to mutate
    unique = {}
    for event_type, instance in seen:
        shape = json.dumps(sorted(map(repr, _key_paths(instance))))
        unique.setdefault((event_type, shape), (event_type, instance))
    return list(unique.values())


def _key_paths(node):
    return [tuple(p for p in path if isinstance(p, str)) for path in _paths(node)]


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def _mutants(instance, properties=()):
    for name in properties:          # the optional fields the event does not carry, with every value
        if name not in instance:
            for value in REPLACEMENTS:
                yield {**instance, name: value}
    for path in _paths(instance):
        for value in REPLACEMENTS:
            m = copy.deepcopy(instance)
            if not path:
                yield value
                continue
            parent = m
            for p in path[:-1]:
                parent = parent[p]
            parent[path[-1]] = value
            yield m
        if path:
            m = copy.deepcopy(instance)
            parent = m
            for p in path[:-1]:
                parent = parent[p]
            del parent[path[-1]]
            yield m
        node = instance
        for p in path:
            node = node[p]
        if isinstance(node, dict):
            m = copy.deepcopy(instance)
            target = m
            for p in path:
                target = target[p]
            target["unexpected"] = 1
            yield m


@pytest.fixture(scope="module")
def seeds(monkeypatch_module):
    return _seeds()


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    mp.setenv("IPLEDGER_CUSTOMS_MSP", "CustomsMSP")
    yield mp
    mp.undo()


def test_every_schema_compiles():
    for event_type in schemas.EVENT_TYPES + schemas.TRANSIENT_SCHEMAS:
        assert schemas._valid(event_type) is not None, event_type


def test_the_seeds_cover_every_act(seeds):
    assert {t for t, _ in seeds} >= set(schemas.EVENT_TYPES)
    for event_type, instance in seeds:   # valid ones among them for every act
        if event_type in ("RevokeAuthorisation", "DecideBillOfDischarge", "DropKeyPolicies"):
            assert schemas.errors(event_type, instance) == [], event_type


def test_compiled_predicates_agree_with_jsonschema_on_every_mutant(seeds):
    checked = disagreements = 0
    examples = []
    for event_type, instance in seeds:
        valid = schemas._valid(event_type)
        reference = schemas.validator(event_type)
        properties = reference.schema.get("properties", {})
        for mutant in [instance, *_mutants(instance, properties)]:
            fast = valid(mutant)
            slow = next(reference.iter_errors(mutant), None) is None
            checked += 1
            if fast != slow:
                disagreements += 1
                examples.append((event_type, mutant, fast, slow))
    assert checked > 5000
    assert not disagreements, examples[:5]


def test_errors_is_empty_exactly_when_valid_and_describes_the_rest(seeds):
    event_type, instance = next((t, i) for t, i in seeds if t == "MoveGoods")
    assert schemas.errors(event_type, instance) == []
    bad = {**instance, "quantity": 1.0}
    assert schemas.errors(event_type, bad) == [{"path": "/quantity", "message": "1.0 is not of type 'integer'"}]


@pytest.mark.parametrize("schema", [
    {"patternProperties": {"^x": {}}},
    {"type": "object", "properties": {"a": {"$ref": "other.json#/a"}}},
    {"enum": [1, 2]},
    {"properties": {"a": {"$id": "https://example/x"}}},
    {"if": {"required": ["a"]}, "then": {"required": ["b"]}},
])
def test_a_keyword_not_mirrored_exactly_is_not_compiled(schema):
    with pytest.raises(Unsupported):
        compile_schema(schema, schemas.FORMATS)


def test_the_predicate_decides_valid_and_jsonschema_alone_when_there_is_none(monkeypatch):
    bad = {"event_id": 1}
    monkeypatch.setattr(schemas, "_valid", lambda _event_type: lambda _instance: True)
    assert schemas.errors("MoveGoods", bad) == []          # the fast path answers when it says valid
    monkeypatch.setattr(schemas, "_valid", lambda _event_type: None)
    found = schemas.errors("MoveGoods", bad)               # no predicate: jsonschema decides
    assert {"path": "/event_id", "message": "1 is not of type 'string'"} in found


def test_a_schema_asked_for_by_many_threads_at_once_is_built_once():
    """A gateway worker's first requests come on many threads at once: they must not each check and
    compile the same schema (schemas._once_per_type), and all must get the one built."""
    import threading
    import time

    builds = []

    @schemas._once_per_type
    def build(event_type):
        builds.append(event_type)
        time.sleep(0.05)   # long enough for every thread to miss the cache
        return object()

    start = threading.Barrier(16)
    got = []

    def ask():
        start.wait()
        got.append(build("MoveGoods"))

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert builds == ["MoveGoods"]
    assert len(got) == 16 and all(g is got[0] for g in got)
    assert build("ExitGoods") is not got[0] and builds == ["MoveGoods", "ExitGoods"]
    assert schemas.validator("MoveGoods") is schemas.validator("MoveGoods")
