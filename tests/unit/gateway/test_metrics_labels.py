"""Prometheus label values are bounded: whatever a client sends, the number of time series stays fixed
(issue 13, point 7) — unknown HTTP methods share one value, routes are URL rules, never raw paths."""
from __future__ import annotations

import re
import secrets

from ipledger.gateway.observability import route_label

from .fakes import place_body

KNOWN_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}


def _labels(text: str, name: str) -> set[str]:
    return set(re.findall(rf'\b{name}="([^"]*)"', text))


def test_unknown_http_methods_collapse_into_one_label_value(app, client, as_org):
    invented = [f"X{secrets.token_hex(4).upper()}" for _ in range(5)] + ["PROPFIND", "BREW", "TRACE"]
    for method in invented:
        r = client.open("/api/v1/lots/L1", method=method)
        assert r.status_code == 405 and r.mimetype == "application/problem+json"
    client.open("/healthz", method="get")                          # lower case: the same as GET
    text = as_org("OperatorMSP").get("/metrics").get_data(as_text=True)
    methods = _labels(text, "method")
    assert methods <= KNOWN_METHODS, methods - KNOWN_METHODS
    assert 'ipledger_gateway_requests_total{method="other",route="<unmatched>",status="405"} 8.0' in text


def test_routes_are_url_rules_and_event_types_are_known_ones(app, client, as_org):
    for n in range(5):
        as_org("OperatorMSP").get(f"/api/v1/lots/LOT{n}")
        client.get(f"/no/such/{secrets.token_hex(8)}")
        client.get(f"/api/v1/lots/LOT{n}/{secrets.token_hex(4)}/deeper")
        as_org("OperatorMSP").post("/api/v1/events", json={**place_body(f"p{n}"), "type": f"Nope{n}"})  # 400
    text = as_org("OperatorMSP").get("/metrics").get_data(as_text=True)
    rules = {route_label(rule) for rule in app.url_map.iter_rules()} | {"<unmatched>"}   # rules, not paths
    assert _labels(text, "route") <= rules, _labels(text, "route") - rules
    assert "/api/v1/lots/<lot_id>" in _labels(text, "route")
    assert not [t for t in _labels(text, "type") if t.startswith("Nope")]


def test_a_metric_that_cannot_be_written_never_changes_an_answer(app, as_org, ledger, caplog, tmp_path, monkeypatch):
    """Under ``gateway serve`` the figures are files (PROMETHEUS_MULTIPROC_DIR): a directory deleted underneath
    or a full disk made recording raise — after the commit, so a recorded event was answered 500, or 503 "the
    ledger network cannot be reached"."""
    import errno

    from .fakes import grant_body

    metrics = app.extensions["ipledger"].service.metrics
    for name in ("requests", "latency", "fabric", "events", "answers"):
        metric = getattr(metrics, name).metric

        def full(*_values, _m=metric):
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(metric, "labels", full)
    with caplog.at_level("WARNING", logger="ipledger.gateway.metrics"):
        first = as_org("CustomsMSP").post("/api/v1/events", json=grant_body())
        second = as_org("CustomsMSP").post("/api/v1/events", json=grant_body())
    assert first.status_code == 201 and first.get_json()["status"] == "COMMITTED"
    assert second.status_code == 200 and second.get_json()["status"] == "REPLAYED"
    assert "grant-1" in ledger.recorded
    failed = [r.getMessage() for r in caplog.records if r.name == "ipledger.gateway.metrics"]
    assert len(failed) == len({m.split()[1] for m in failed}) >= 3       # once per metric, not per request
    assert all("No space left on device" in m for m in failed)
