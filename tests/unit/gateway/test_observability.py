"""Request ids, JSON logs without secrets, /healthz, /readyz, /metrics."""
from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

import pytest

from ipledger.gateway.client import EvaluateError
from ipledger.gateway.observability import JsonFormatter
from tests.unit.consortium_state import with_default_consortium

from .fakes import endorse_error, evaluate_error, place_body, unavailable


def test_request_id_is_echoed_or_generated(client, as_org):
    r = as_org("OperatorMSP").get("/api/v1/parameters", headers={"X-Request-Id": "erp-run-7.line-12"})
    assert r.headers["X-Request-Id"] == "erp-run-7.line-12"
    r = client.get("/api/v1/parameters", headers={"X-Request-Id": "erp-run-7"})  # 401: still echoed
    assert r.status_code == 401 and r.headers["X-Request-Id"] == "erp-run-7"
    assert r.json["instance"] == "urn:ipledger:request:erp-run-7"
    generated = client.get("/healthz", headers={"X-Request-Id": "bad id with spaces <script>"}).headers["X-Request-Id"]
    assert len(generated) == 32 and generated != "bad id with spaces"
    assert client.get("/healthz").headers["X-Request-Id"] != client.get("/healthz").headers["X-Request-Id"]


@pytest.fixture
def json_log():
    """Everything the app logs, formatted as the server writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_logs_are_json_with_context_and_no_secrets(as_org, keys, ledger, json_log):
    key = keys[("BrokerMSP", "clerk")]
    body = place_body(value="31415.92")
    ok = as_org("BrokerMSP").post("/api/v1/events", json=body, headers={"X-Request-Id": "req-1"})
    assert ok.status_code == 201
    ledger.submit_failures.append(endorse_error("InternalError", "crash while reading customs_value 31415.92"))
    as_org("BrokerMSP").post("/api/v1/events", json=place_body("p2", value="31415.92"))
    ledger.submit_failures.append(unavailable())
    as_org("BrokerMSP").post("/api/v1/events", json=place_body("p3", value="31415.92"))
    as_org("BrokerMSP").post("/api/v1/events", json=place_body("p4", value="bad value 31415.92"))
    text = json_log.getvalue()
    records = [json.loads(line) for line in text.splitlines()]
    assert records, "nothing logged"
    # no API key (nor its secret part), no Authorization header, no commercial value, no nonce
    secret = key.split("_", 2)[2]
    nonce = json.loads(ledger.submits[0]["transient"]["commercial"])["nonce"]
    for forbidden in (key, secret, "31415.92", "Bearer", nonce, "customs_value"):
        assert forbidden not in text, forbidden
    access = [r for r in records if r["logger"] == "ipledger.gateway.access"]
    first = next(r for r in access if r.get("request_id") == "req-1")
    assert first["status"] == 201 and first["org"] == "BrokerMSP" and first["role"] == "clerk"
    assert first["key_id"] == keys.ids[("BrokerMSP", "clerk")]
    assert first["event_type"] == "PlaceUnderProcedure" and first["event_id"] == "place-L1"
    assert first["tx_id"] == ok.json["tx_id"] and first["route"] == "/api/v1/events"
    refused = [r for r in access if r.get("status") == 502]
    assert refused and refused[0]["problem_type"] == "internal-error" and refused[0]["code"] == "InternalError"
    assert any(r.get("status") == 503 and r.get("problem_type") == "service-unavailable" for r in access)


def test_unhandled_exception_is_logged_with_type_but_no_text(app, as_org, json_log, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("customs value 777.77 leaked")

    monkeypatch.setattr(app.extensions["ipledger"].service, "evaluate_where", boom)
    r = as_org("OperatorMSP").get("/api/v1/parameters")
    assert r.status_code == 500
    text = json_log.getvalue()
    assert "777.77" not in text
    err = next(json.loads(line) for line in text.splitlines() if json.loads(line)["logger"] == "ipledger.gateway.error")
    assert err["error_type"] == "RuntimeError" and err["level"] == "error" and err["stack"]


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json == {"status": "ok", "orgs": ["BrokerMSP", "CustomsMSP", "OperatorMSP"]}


def test_readyz_evaluates_on_every_orgs_peer(client, ledger):
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json == {"status": "ready", "orgs": {"BrokerMSP": "ok", "CustomsMSP": "ok", "OperatorMSP": "ok"}}
    assert sorted(e["org"] for e in ledger.evaluations) == ["BrokerMSP", "CustomsMSP", "OperatorMSP"]
    assert {e["function"] for e in ledger.evaluations} == {"GetParameters"}


def test_readyz_is_503_with_retry_after_when_a_peer_is_down(client, ledger):
    original = ledger.evaluate

    def evaluate(org, function, args, **kw):
        if org == "BrokerMSP":
            raise unavailable(EvaluateError)
        return original(org, function, args, **kw)

    ledger.evaluate = evaluate
    r = client.get("/readyz")
    assert r.status_code == 503 and r.mimetype == "application/problem+json"
    assert r.headers["Retry-After"] == "7"
    assert r.json["orgs"] == {"BrokerMSP": "unavailable (UNAVAILABLE)", "CustomsMSP": "ok", "OperatorMSP": "ok"}


def test_readyz_names_the_contract_when_the_peer_answers_without_it(client, ledger):
    """The operator's peer answers but its contract does not (a package it cannot start, a process that died): not
    ready, and the answer says it is the contract, not the peer."""
    import grpc

    from ipledger.network.fabric.errors import ErrorDetail
    original = ledger.evaluate
    launch = "error in simulation: failed to execute transaction 7c1e: could not launch chaincode ipledger_1.4:ab"

    def evaluate(org, function, args, **kw):
        if org == "OperatorMSP":
            raise EvaluateError(f"evaluate call to endorser returned error: {launch}", code=grpc.StatusCode.ABORTED,
                                details=[ErrorDetail("127.0.0.1:7120", "OperatorMSP", launch)])
        return original(org, function, args, **kw)

    ledger.evaluate = evaluate
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json["orgs"]["OperatorMSP"] == "unavailable (the contract does not answer)"
    assert r.json["detail"] == "the peer of at least one organisation, or the contract on it, does not answer"


@pytest.mark.parametrize("refusal, ready", [("UnknownParty", True), ("PartyWithdrawn", True),
                                            ("EoriNotRegistered", True), ("DeploymentNotConfigured", False)])
def test_readyz_counts_the_contracts_refusal_of_an_unregistered_organisation_as_an_answer(client, ledger, refusal,
                                                                                          ready):
    """Before customs register the operator (RegisterParty, through customs' gateway) the contract refuses it:
    its peer and chaincode answer, so its gateway is ready; a contract deployed without customs is not."""
    original = ledger.evaluate

    def evaluate(org, function, args, **kw):
        if org == "OperatorMSP":
            raise evaluate_error(refusal)
        return original(org, function, args, **kw)

    ledger.evaluate = evaluate
    r = client.get("/readyz")
    assert (r.status_code == 200) is ready
    expected = f"ok ({refusal})" if ready else "unavailable (UNKNOWN)"
    assert r.json["orgs"] == {"BrokerMSP": "ok", "CustomsMSP": "ok", "OperatorMSP": expected}


def test_metrics_count_requests_by_route_and_status_and_time_fabric_calls(client, as_org, ledger):
    as_org("OperatorMSP").get("/api/v1/lots/L1")
    as_org("OperatorMSP").get("/api/v1/lots/L2")
    client.get("/api/v1/lots/L3")  # 401
    as_org("OperatorMSP").post("/api/v1/events", json=place_body())
    ledger.submit_failures.append(endorse_error("CeilingExceeded"))
    as_org("OperatorMSP").post("/api/v1/events", json=place_body("p2"))
    r = as_org("OperatorMSP", "viewer").get("/metrics")
    assert r.status_code == 200 and r.mimetype == "text/plain"
    text = r.get_data(as_text=True)
    assert 'ipledger_gateway_requests_total{method="GET",route="/api/v1/lots/<lot_id>",status="200"} 2.0' in text
    assert 'ipledger_gateway_requests_total{method="GET",route="/api/v1/lots/<lot_id>",status="401"} 1.0' in text
    assert 'ipledger_gateway_requests_total{method="POST",route="/api/v1/events",status="409"} 1.0' in text
    assert 'ipledger_gateway_request_duration_seconds_count{method="GET",route="/api/v1/lots/<lot_id>"} 3.0' in text
    assert ('ipledger_gateway_fabric_call_duration_seconds_count{call="evaluate",function="GetLot",outcome="ok"} 2.0'
            in text)
    assert ('ipledger_gateway_fabric_call_duration_seconds_count{call="submit",function="PlaceUnderProcedure",'
            'outcome="chaincode_error"} 1.0' in text)
    assert 'ipledger_gateway_events_total{outcome="committed",type="PlaceUnderProcedure"} 1.0' in text
    assert 'ipledger_gateway_events_total{outcome="refused",type="PlaceUnderProcedure"} 1.0' in text
    # no label for raw paths: unknown URLs share one
    client.get("/random/path/123")
    assert 'route="<unmatched>"' in as_org("OperatorMSP").get("/metrics").get_data(as_text=True)


def test_public_endpoints_need_no_key(client):
    for path in ("/healthz", "/readyz", "/api/v1/openapi.json", "/api/v1/docs"):
        assert client.get(path).status_code == 200, path
    assert client.get("/").status_code == 302


def test_metrics_need_a_key_of_the_gateway(client, as_org):
    """The counts tell the organisation's business volumes (placements, exits, bills of discharge by type and
    hour): no key, no metrics — as a Fabric node's /metrics needs a client certificate."""
    as_org("OperatorMSP").post("/api/v1/events", json=place_body("metrics-1"))
    r = client.get("/metrics")
    assert r.status_code == 401 and r.mimetype == "application/problem+json"
    assert "PlaceUnderProcedure" not in r.get_data(as_text=True)
    assert client.get("/metrics", headers={"Authorization": "Bearer not-a-key"}).status_code == 401
    text = as_org("OperatorMSP", "viewer").get("/metrics").get_data(as_text=True)
    assert 'ipledger_gateway_events_total{outcome="committed",type="PlaceUnderProcedure"} 1.0' in text


def _operator_here(state: Path) -> None:
    """A state directory with the default consortium and the operator's own directory (no keys yet)."""
    with_default_consortium(state)
    (state / "operator" / "crypto").mkdir(parents=True)


def test_config_from_state_dir_uses_the_orgs_own_user1_and_peer(tmp_path):
    from ipledger.gateway.config import ConfigError, GatewayConfig
    state = tmp_path / "state"
    _operator_here(state)
    cfg = GatewayConfig.from_state_dir(state, org="OperatorMSP")
    assert sorted(cfg.orgs) == ["OperatorMSP"]                   # its own identity only
    op = cfg.orgs["OperatorMSP"]
    assert op.msp_dir == state / "operator/crypto/users/User1@operator.ipledger.example/msp"
    assert op.peer_address == "127.0.0.1:7120"
    assert op.tls_root_cert.name == "tlsca.operator.ipledger.example-cert.pem"
    assert cfg.keys_file == state / "operator" / "gateway" / "api-keys.json"
    assert cfg.channel == "inward-processing" and cfg.chaincode == "ipledger"
    with pytest.raises(ConfigError, match="one organisation's"):
        GatewayConfig.from_state_dir(state, org="")


def test_fabric_ledger_connects_lazily_once_per_org(tmp_path, monkeypatch):
    """One Gateway connection per org per process, opened on first use and shared by threads."""
    import threading

    import ipledger.gateway.client as fabric
    from ipledger.gateway.config import GatewayConfig, OrgConnection
    from ipledger.gateway.ledger import FabricLedger, UnknownOrg

    connects = []

    class FakeContract:
        def evaluate(self, fn, args, transient=None, endorsing_orgs=None, timeout=None):
            assert endorsing_orgs == ["OperatorMSP"]   # read on its own organisation's peer
            return b"{}"

    class FakeGateway:
        def network(self, channel):
            assert channel == "inward-processing"
            return self

        def contract(self, name):
            return FakeContract()

        def close(self):
            connects.append("closed")

    monkeypatch.setattr(fabric, "load_identity", lambda msp_dir, msp_id: (msp_id, None))
    monkeypatch.setattr(fabric.Gateway, "connect", classmethod(
        lambda cls, endpoint, identity, signer, **kw: connects.append((endpoint.address, identity)) or FakeGateway()))
    cfg = GatewayConfig(orgs={"OperatorMSP": OrgConnection("OperatorMSP", tmp_path, "127.0.0.1:1", tmp_path / "ca")})
    led = FabricLedger(cfg)
    assert connects == []
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(led.evaluate("OperatorMSP", "GetParameters", [])))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [b"{}"] * 8   # every thread answered, through the one connection
    assert connects == [("127.0.0.1:1", "OperatorMSP")]
    with pytest.raises(UnknownOrg):
        led.evaluate("CustomsMSP", "GetParameters", [])
    led.close()
    assert connects[-1] == "closed"


def test_serve_runs_gunicorn_gthread_workers(tmp_path, monkeypatch, capsys):
    """`ipledger gateway serve` configures gunicorn (gthread, no preload) and checks the state first."""
    import shutil

    from ipledger.gateway import server
    from ipledger.network import cli

    state = tmp_path / "state"
    _operator_here(state)
    monkeypatch.delenv("IPLEDGER_GATEWAY_ORG", raising=False)
    assert cli.main(["--state-dir", str(state), "gateway", "serve"]) == 2
    err = capsys.readouterr().err
    assert "required: --org" in err and "CustomsMSP, OperatorMSP, BrokerMSP" in err
    assert cli.main(["--state-dir", str(state), "gateway", "serve", "--org", "EvilMSP"]) == 2
    assert "--org EvilMSP is not an organisation of this network" in capsys.readouterr().err
    assert cli.main(["--state-dir", str(state), "gateway", "serve", "--org", "OperatorMSP"]) == 2
    assert "no client identity (User1)" in capsys.readouterr().err

    (state / "operator/crypto/users/User1@operator.ipledger.example/msp").mkdir(parents=True)
    seen = {}
    monkeypatch.setattr(server.GatewayServer, "run", lambda self: seen.update(self.options, app=self))
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    try:
        assert cli.main(["--state-dir", str(state), "gateway", "serve", "--org", "OperatorMSP", "--bind", "127.0.0.1:18080",
                         "--workers", "3", "--threads", "4"]) == 0
        assert "no API key yet" in capsys.readouterr().err
        assert (seen["bind"], seen["workers"], seen["threads"]) == ("127.0.0.1:18080", 3, 4)
        assert seen["worker_class"] == "ipledger.gateway.server.GatewayWorker" and seen["preload_app"] is False
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(state / "operator" / "gateway" / "prometheus")
        cfg = seen["app"].gateway_config
        assert cfg.configure_logging and sorted(cfg.orgs) == ["OperatorMSP"]
        seen["app"].load_config()
        assert seen["app"].cfg.worker_class_str == "ipledger.gateway.server.GatewayWorker" and seen["app"].cfg.workers == 3
    finally:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        from prometheus_client import values
        values.ValueClass = values.get_value_class()
        shutil.rmtree(state / "operator" / "gateway", ignore_errors=True)


def test_gunicorn_formats_no_access_line_the_gateway_logs_each_request_itself():
    """The served gateway's gunicorn logger skips its access log (the request log above is the gateway's own):
    the default one would build an access line per request, here from a response it cannot read."""
    from gunicorn.config import Config
    from gunicorn.glogging import Logger
    from ipledger.gateway.server import gunicorn_options

    logger_class = gunicorn_options("127.0.0.1:1", 1, 2, 30, "info")["logger_class"]
    assert issubclass(logger_class, Logger)
    cfg = Config()
    cfg.set("logconfig_dict", {"version": 1, "disable_existing_loggers": False})
    assert logger_class(cfg).access(None, None, {}, None) is None
    with pytest.raises(AttributeError):
        Logger(cfg).access(None, None, {}, None)
