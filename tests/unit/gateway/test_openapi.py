"""The OpenAPI 3.1 document: generated from the contract's schemas, complete, valid; the docs page."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from ipledger.chaincode.contract import schemas
from ipledger.chaincode.contract.errors import RULES
from ipledger.gateway.api.common import API_PREFIX
from ipledger.gateway.api.routes import openapi_path
from ipledger.gateway.openapi import OPERATIONS, event_request_schema, openapi_document
from ipledger.gateway.problems import slug

from .fakes import grant_body, move_body, place_body

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def doc():
    return openapi_document()


def _schema_validator(doc, name):
    """A validator of components/schemas/<name>, resolving '#/components/...' inside the document."""
    registry = Registry().with_resource("urn:openapi", DRAFT202012.create_resource(doc))
    return Draft202012Validator({"$ref": f"urn:openapi#/components/schemas/{name}"}, registry=registry)


def test_document_header(client, doc):
    served = client.get("/api/v1/openapi.json")
    assert served.status_code == 200 and served.json == doc
    assert doc["openapi"] == "3.1.0"
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "Authorization: Bearer <API key>"}
    assert doc["components"]["securitySchemes"]["apiKey"]["name"] == "X-API-Key"


def test_every_route_is_documented_and_every_documented_path_exists(app, doc):
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule == "/":
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((method.lower(), path))
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert routes == documented


def test_every_api_v1_rule_has_exactly_one_operation_and_every_operation_a_rule(app):
    """Counted, not as sets: a rule declared twice, or an operation without its route, fails."""
    rules = Counter()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(API_PREFIX + "/") or rule.rule == API_PREFIX:
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                rules[(method.lower(), openapi_path(rule.rule))] += 1
    operations = Counter((op["method"], op["path"]) for op in OPERATIONS if op["path"].startswith(API_PREFIX))
    assert rules and set(rules.values()) == {1}, [k for k, n in rules.items() if n > 1]
    assert set(operations.values()) == {1}, [k for k, n in operations.items() if n > 1]
    assert rules == operations
    ids = Counter(op["id"] for op in OPERATIONS)
    assert set(ids.values()) == {1}, [k for k, n in ids.items() if n > 1]


def test_the_document_does_not_depend_on_what_else_was_imported(doc):
    """ipledger.gateway.openapi alone, in a fresh interpreter, gives the whole document: the operations are the
    route modules' own, collected by ipledger.gateway.openapi, not added by whoever happens to be imported."""
    code = "import json, ipledger.gateway.openapi as o; print(json.dumps(o.openapi_document(), sort_keys=True))"
    fresh = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(fresh.stdout) == doc


def test_path_parameters_are_declared_with_their_patterns(doc):
    common = schemas.load_schema("common")["$defs"]
    for path, ops in doc["paths"].items():
        names = set(re.findall(r"{([a-z_]+)}", path))
        for op in ops.values():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == names, path
    lot = doc["paths"]["/api/v1/lots/{lot_id}"]["get"]["parameters"][0]
    assert lot["schema"]["pattern"] == common["lotId"]["pattern"] and lot["required"] is True


def test_every_ref_resolves(doc):
    refs = set()

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.add(node["$ref"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        node = doc
        for part in ref[2:].split("/"):
            node = node[part]
        assert isinstance(node, dict)
    assert not any("common.json" in r for r in refs)


def test_component_schemas_are_valid_json_schemas(doc):
    for name, schema in doc["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)


def test_event_schemas_are_the_contracts(doc):
    for event_type in schemas.EVENT_TYPES:
        source = schemas.load_schema(event_type)
        generated = doc["components"]["schemas"][event_type]
        assert set(generated["properties"]) - {"type", "commercial"} == set(source["properties"]), event_type
        assert generated["required"] == ["type", *source["required"]] + (
            ["commercial"] if event_type == "PlaceUnderProcedure" else [])
        assert generated["additionalProperties"] is False
        assert generated["properties"]["type"] == {"const": event_type, "description": "the event type"}
    # a $ref of the contract's schema points to the same definition in components
    place = doc["components"]["schemas"]["PlaceUnderProcedure"]
    assert place["properties"]["mrn"] == {"$ref": "#/components/schemas/mrn"}
    assert doc["components"]["schemas"]["mrn"]["pattern"] == schemas.load_schema("common")["$defs"]["mrn"]["pattern"]
    assert "commercial" in doc["components"]["schemas"]["ExitGoods"]["properties"]
    assert "commercial" not in doc["components"]["schemas"]["MoveGoods"]["properties"]


def test_documented_event_schema_accepts_what_the_gateway_accepts_and_refuses_bad_input(doc):
    v = _schema_validator(doc, "Event")
    for body in (place_body(), move_body(), grant_body()):
        assert not list(v.iter_errors(body)), body["type"]
    bad = place_body()
    bad["mrn"] = "short"
    assert list(v.iter_errors(bad))
    assert list(v.iter_errors({**move_body(), "type": "Nope"}))
    assert list(v.iter_errors({k: x for k, x in place_body().items() if k != "commercial"}))


def test_problem_types_are_documented(doc):
    enum = set(doc["components"]["schemas"]["Problem"]["properties"]["type"]["enum"])
    for code in RULES:
        assert f"https://ipledger.example/problems/{slug(code)}" in enum
    for name in ("unauthenticated", "forbidden", "service-unavailable", "invalid-event", "internal-error"):
        assert f"https://ipledger.example/problems/{name}" in enum
    events = doc["paths"]["/api/v1/events"]["post"]["responses"]
    assert {"200", "201", "400", "401", "403", "404", "409", "413", "415", "500", "502", "503", "504"} <= set(events)
    assert events["503"]["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert "Retry-After" in events["503"]["headers"]


def test_public_operations_have_no_security(doc):
    for path in ("/healthz", "/readyz", "/api/v1/openapi.json", "/api/v1/docs"):
        assert doc["paths"][path]["get"]["security"] == []
    for path, method in (("/api/v1/events", "post"), ("/metrics", "get")):   # the document's default: a key
        assert "security" not in doc["paths"][path][method]
    assert doc["security"] == [{"bearerAuth": []}, {"apiKey": []}]


def test_with_openapi_spec_validator_when_installed(doc):
    """The structural checks above always run; the official validator too when it is installed."""
    try:
        from openapi_spec_validator import validate
    except ImportError:
        assert doc["openapi"].startswith("3.1") and doc["paths"] and doc["info"]["title"]
        return
    validate(doc)


def test_request_schema_keeps_the_contracts_oneof():
    exit_ = event_request_schema("ExitGoods")
    assert exit_["oneOf"] == [{"required": ["lot_id"]}, {"required": ["batch_id"]}]


def test_docs_page_lists_operations_events_and_problems(client, doc):
    r = client.get("/api/v1/docs")
    assert r.status_code == 200 and r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    assert "http://" not in html.replace("https://ipledger.example", "")   # scripts: test_docs_page.py
    for path in doc["paths"]:
        assert f"<code>{path}</code>" in html, path
    for event_type in schemas.EVENT_TYPES:
        assert f'<h3 id="{event_type}">' in html
    assert "quantity-exceeds-balance" in html and "<code>customs_value</code>" not in html.split("Problems")[1]


SEED = int(__import__("os").environ.get("IPLEDGER_FUZZ_SEED", "20261123"))  # fixed: a fast, reproducible run


def test_schemathesis_finds_no_server_error_and_the_answers_match_the_document(app, keys):
    """A bounded property-based run over every operation of the document (positive and negative data)."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                                   status_code_conformance)

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    key = keys[("OperatorMSP", "clerk")]
    seen = {}
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path == "/api/v1/events/batch":
            continue  # generating arrays of events is slow; batch semantics have their own tests
        modes = [schemathesis.GenerationMode.POSITIVE]
        if op.method == "post" or "{" in op.path:
            modes.append(schemathesis.GenerationMode.NEGATIVE)
        for mode in modes:
            examples = (6 if mode == schemathesis.GenerationMode.POSITIVE else 3) if op.path == "/api/v1/events" else 2

            @seed(SEED)
            @settings(max_examples=examples, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
            @given(case=op.as_strategy(generation_mode=mode))
            def run(case):
                response = case.call(headers={"Authorization": f"Bearer {key}"})
                seen.setdefault(op.path, set()).add(response.status_code)
                case.validate_response(response, checks=checks)

            run()
    assert 201 in seen["/api/v1/events"] and 400 in seen["/api/v1/events"]
    assert 200 in seen["/api/v1/lots/{lot_id}"]
    assert all(s < 500 for statuses in seen.values() for s in statuses), seen


def test_openapi_document_is_json_serialisable_and_stable(doc):
    assert json.loads(json.dumps(doc)) == openapi_document()
