"""POST /api/v1/events: early validation, transient commercial data, idempotency, problem mapping."""
from __future__ import annotations

import json

import grpc
import pytest

from ipledger.chaincode.contract.errors import RULES
from ipledger.gateway.client import CommitError, EvaluateError, SubmitError
from ipledger.gateway.problems import CHAINCODE_STATUS

from .fakes import (endorse_error, endorsement_mismatch, grant_body, move_body, mvcc_conflict, place_body,
                    timed_out, unavailable)

EVENTS = "/api/v1/events"
PROBLEM = "application/problem+json"


def test_place_is_submitted_as_the_keys_org_with_commercial_data_in_the_transient_map_only(as_org, ledger):
    body = place_body()
    r = as_org("BrokerMSP").post(EVENTS, json=body)
    assert r.status_code == 201, r.json
    assert len(ledger.submits) == 1
    sub = ledger.submits[0]
    assert sub["org"] == "BrokerMSP" and sub["function"] == "PlaceUnderProcedure"
    expected_event = {k: v for k, v in body.items() if k not in ("type", "commercial")}
    assert sub["event"] == expected_event
    assert "25000.00" not in sub["args"][0] and "commercial" not in sub["args"][0]
    commercial = json.loads(sub["transient"]["commercial"])
    assert commercial["customs_value"] == {"amount": "25000.00", "currency": "EUR"}
    # the gateway adds a nonce derived from the event_id (the broker sees only the hash)
    assert len(commercial["nonce"]) == 32
    out = r.json
    assert out["status"] == "COMMITTED" and out["org"] == "BrokerMSP"
    assert out["event_id"] == "place-L1" and out["type"] == "PlaceUnderProcedure"
    assert out["tx_id"] == ledger.recorded["place-L1"][1]["tx_id"] and len(out["tx_id"]) == 64
    assert out["block_number"] == ledger.blocks[out["tx_id"]]
    assert out["recorded_at"] == "2026-03-02T09:00:00.000000Z"
    assert out["result"]["event_id"] == "place-L1"


def test_caller_nonce_is_kept(as_org, ledger):
    body = place_body(commercial={"customs_value": {"amount": "1.00", "currency": "EUR"}, "nonce": "n" * 20})
    assert as_org("OperatorMSP").post(EVENTS, json=body).status_code == 201
    assert json.loads(ledger.submits[0]["transient"]["commercial"])["nonce"] == "n" * 20


def test_replay_returns_the_original_transaction_with_200(as_org, ledger):
    first = as_org("BrokerMSP").post(EVENTS, json=place_body())
    again = as_org("BrokerMSP").post(EVENTS, json=place_body())
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["status"] == "REPLAYED"
    assert again.json["tx_id"] == first.json["tx_id"]
    assert again.json["block_number"] == first.json["block_number"]
    assert again.json["replay_tx_id"] != first.json["tx_id"]
    # the same nonce both times: the replay has the same content
    t1, t2 = (json.loads(s["transient"]["commercial"]) for s in ledger.submits)
    assert t1 == t2


def test_same_event_id_other_content_is_409_duplicate_event(as_org):
    first = as_org("BrokerMSP").post(EVENTS, json=place_body())
    other = as_org("BrokerMSP").post(EVENTS, json=place_body(quantity=999))
    assert other.status_code == 409 and other.mimetype == PROBLEM
    p = other.json
    assert p["type"] == "https://ipledger.example/problems/duplicate-event"
    assert p["code"] == "DuplicateEvent" and p["title"] == "Duplicate event"
    assert p["details"]["original_tx_id"] == first.json["tx_id"]
    assert p["instance"] == f"urn:ipledger:request:{other.headers['X-Request-Id']}"


# ------------------------------------------------------------------------------------------ validation

def _invalid(r, path):
    assert r.status_code == 400, r.json
    assert r.mimetype == PROBLEM
    p = r.json
    assert p["type"] == "https://ipledger.example/problems/invalid-event"
    assert path in [e["path"] for e in p["errors"]], p["errors"]
    assert path in p["detail"] or p["errors"][0]["path"] in p["detail"]
    return p


@pytest.mark.parametrize("mutate, path", [
    (lambda b: b.pop("mrn"), "/"),                                 # missing required field
    (lambda b: b.update(event_id=b["event_id"] + "\n"), "/event_id"),  # matched whole (MRNs: test_identifiers.py)
    (lambda b: b.update(cn="4012200"), "/cn"),
    (lambda b: b.update(quantity=0), "/quantity"),
    (lambda b: b.update(quantity=10.5), "/quantity"),
    (lambda b: b.update(quantity="10"), "/quantity"),
    (lambda b: b.update(unit="pieces"), "/unit"),
    (lambda b: b.update(procedure="3151"), "/procedure"),
    (lambda b: b.update(authorisation_id="FR-IPO-1"), "/authorisation_id"),
    (lambda b: b.update(occurred_at="2026-03-02 09:00"), "/occurred_at"),
    (lambda b: b.update(org="CustomsMSP"), "/"),                    # no org in the body: additionalProperties
    (lambda b: b.update(type="PlaceGoods"), "/type"),
    (lambda b: b.pop("type"), "/type"),
    (lambda b: b.pop("commercial"), "/commercial"),
    (lambda b: b.update(commercial={"invoice_price": {"amount": "1", "currency": "EUR"}}), "/commercial/customs_value"),
    (lambda b: b.update(commercial={"customs_value": {"amount": "25 000", "currency": "EUR"}}),
     "/commercial/customs_value/amount"),
])
def test_schema_violations_are_400_with_the_offending_field_and_nothing_is_submitted(as_org, ledger, mutate, path):
    body = place_body()
    mutate(body)
    p = _invalid(as_org("BrokerMSP").post(EVENTS, json=body), path)
    assert p["code"] == "InvalidEvent"
    assert ledger.submits == []


def test_integral_json_numbers_are_integers(as_org, ledger):
    """JSON has one number type: 1000.0 and 1e3 are the integer 1000 (as JSON Schema says); the
    contract's strict validator gets a real integer."""
    text = json.dumps(place_body()).replace('"quantity": 1000', '"quantity": 1000.0').replace(
        '"item_no": 1', '"item_no": 1e0')
    assert '1000.0' in text and '1e0' in text
    r = as_org("BrokerMSP").post(EVENTS, data=text, headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.json
    arg = ledger.submits[0]["args"][0]
    assert '"quantity":1000,' in arg and '"item_no":1,' in arg


@pytest.mark.parametrize("field, value", [("occurred_at", "2026-02-30T10:00:00Z"),
                                          ("occurred_at", "2026-03-02T24:61:00Z")])
def test_dates_off_the_calendar_are_400(as_org, ledger, field, value):
    p = _invalid(as_org("BrokerMSP").post(EVENTS, json=place_body(**{field: value})), f"/{field}")
    assert "is not a 'date-time'" in p["detail"]
    body = grant_body(valid_to="2027-02-29")
    _invalid(as_org("CustomsMSP").post(EVENTS, json=body), "/valid_to")
    assert ledger.submits == []


def test_missing_field_is_named(as_org):
    body = place_body()
    del body["lot_id"]
    p = _invalid(as_org("BrokerMSP").post(EVENTS, json=body), "/")
    assert "'lot_id' is a required property" in p["detail"]


def test_commercial_errors_do_not_echo_the_confidential_value(as_org):
    body = place_body(commercial={"customs_value": {"amount": "SECRET-9876", "currency": "EUR"}})
    r = as_org("BrokerMSP").post(EVENTS, json=body)
    assert r.status_code == 400
    assert "SECRET-9876" not in r.get_data(as_text=True)


def test_commercial_data_refused_for_other_event_types(as_org, ledger):
    body = grant_body(commercial={"customs_value": {"amount": "1.00", "currency": "EUR"}})
    _invalid(as_org("CustomsMSP").post(EVENTS, json=body), "/commercial")
    assert ledger.submits == []


def test_every_event_type_is_validated_with_the_contracts_schema(as_org, ledger):
    from ipledger.chaincode.contract.schemas import EVENT_TYPES
    for event_type in EVENT_TYPES:
        r = as_org("CustomsMSP").post(EVENTS, json={"type": event_type, "event_id": "x"})
        p = _invalid(r, "/")
        assert p["detail"].startswith(f"{event_type}: ")
    assert ledger.submits == []


@pytest.mark.parametrize("data, content_type, status, name", [
    (b"{not json", "application/json", 400, "bad-request"),
    (b'{"quantity": NaN}', "application/json", 400, "bad-request"),
    (b'{"quantity": 1e400}', "application/json", 400, "bad-request"),
    (b'{"quantity": 1e100000000000000000000}', "application/json", 400, "bad-request"),
    (b'[' * 100000 + b']' * 100000, "application/json", 400, "bad-request"),
    (b'{"type": "MoveGoods", "event_id": "\\ud800"}', "application/json", 400, "bad-request"),
    (b"", "application/json", 400, "bad-request"),
    (b"\xff\xfe", "application/json", 400, "bad-request"),
    (b"[1, 2]", "application/json", 400, "invalid-event"),
    (b"type=MoveGoods", "application/x-www-form-urlencoded", 415, "unsupported-media-type"),
    (b'{"type": "MoveGoods"}', "text/plain", 415, "unsupported-media-type"),
])
def test_malformed_bodies(as_org, ledger, data, content_type, status, name):
    r = as_org("OperatorMSP").post(EVENTS, data=data, headers={"Content-Type": content_type})
    assert r.status_code == status and r.mimetype == PROBLEM
    assert r.json["type"] == f"https://ipledger.example/problems/{name}"
    assert ledger.submits == []


def test_body_too_large_is_413(client, keys, config, ledger):
    from ipledger.gateway.app import create_app
    small = create_app(config.with_(max_body_bytes=1000), ledger=ledger).test_client()
    r = small.post(EVENTS, json=place_body(description="x" * 2000),
                   headers={"Authorization": f"Bearer {keys[('OperatorMSP', 'clerk')]}"})
    assert r.status_code == 413 and r.json["type"].endswith("/payload-too-large")


# ------------------------------------------------------------------------------------------ problems

SHIM_CODES = ("InvalidArguments", "UnknownFunction", "InternalError")


def test_every_contract_error_code_has_a_mapping():
    assert set(RULES) <= set(CHAINCODE_STATUS)


@pytest.mark.parametrize("code", [*RULES, *SHIM_CODES])
def test_every_chaincode_error_code_becomes_its_problem(as_org, ledger, code):
    expected = CHAINCODE_STATUS[code]
    details = {"lot_id": "L1", "balance": 500, "requested": 600}
    ledger.submit_failures.append(endorse_error(code, f"message of {code} with internals", details))
    r = as_org("OperatorMSP").post(EVENTS, json=place_body())
    assert r.status_code == expected, r.json
    assert r.mimetype == PROBLEM
    p = r.json
    from ipledger.gateway.problems import slug
    assert p["type"] == f"https://ipledger.example/problems/{slug(code)}"
    assert p["status"] == expected and p["code"] == code and p["title"]
    assert p["request_id"] == r.headers["X-Request-Id"]
    if code in ("InternalError", "UnknownFunction"):
        assert "internals" not in r.get_data(as_text=True) and "details" not in p
    else:
        assert p["detail"] == f"message of {code} with internals"
        assert p["details"] == details


def test_problem_type_uris_are_the_kebab_case_codes():
    from ipledger.gateway.problems import slug
    assert slug("QuantityExceedsBalance") == "quantity-exceeds-balance"
    assert slug("ClockSkew") == "clock-skew"
    assert slug("NotFound") == "not-found"


def test_chaincode_invalid_event_passes_its_error_list(as_org, ledger):
    errors = [{"path": "/valid_to", "message": "valid_to is before valid_from"}]
    ledger.submit_failures.append(endorse_error("InvalidEvent", "valid_to is before valid_from", {"errors": errors}))
    r = as_org("CustomsMSP").post(EVENTS, json=grant_body())
    assert r.status_code == 400 and r.json["errors"] == errors


@pytest.mark.parametrize("exc", [unavailable(), unavailable(SubmitError), SubmitError(
    "no orderers could successfully process transaction", code=grpc.StatusCode.UNAVAILABLE)])
def test_network_unreachable_is_503_with_retry_after(as_org, ledger, exc):
    ledger.submit_failures.append(exc)
    r = as_org("OperatorMSP").post(EVENTS, json=place_body())
    assert r.status_code == 503 and r.mimetype == PROBLEM
    assert r.headers["Retry-After"] == "7"
    assert r.json["type"].endswith("/service-unavailable")
    assert "127.0.0.1" not in r.get_data(as_text=True)  # no peer addresses to the caller


def test_unreachable_on_queries_is_503_too(as_org, ledger):
    ledger.evaluate_failures.append(unavailable(EvaluateError))
    r = as_org("OperatorMSP").get("/api/v1/lots/L1")
    assert r.status_code == 503 and r.headers["Retry-After"] == "7"


def test_timeout_is_504_with_retry_after_and_the_tx_id(as_org, ledger):
    ledger.submit_failures.append(timed_out())
    r = as_org("OperatorMSP").post(EVENTS, json=place_body())
    assert r.status_code == 504 and r.headers["Retry-After"] == "7"
    assert r.json["tx_id"] == "ef" * 32 and "same event_id" in r.json["detail"]


def test_mvcc_conflict_after_retries_is_409_transaction_conflict(as_org, ledger):
    ledger.submit_failures.append(mvcc_conflict())
    r = as_org("OperatorMSP").post(EVENTS, json=place_body())
    assert r.status_code == 409 and r.json["type"].endswith("/transaction-conflict")
    assert r.json["validation_code"] == "MVCC_READ_CONFLICT" and r.headers["Retry-After"] == "7"


@pytest.fixture
def no_sleep(app):
    waits = []
    app.extensions["ipledger"].service.sleep = waits.append
    return waits


def test_endorsement_mismatch_left_after_the_clients_retries_is_409_transaction_conflict(
        as_org, ledger, no_sleep):
    # The Fabric client retries mismatches itself (tests/unit/gateway_client); one that
    # still reaches the service is reported at once, not retried a second time.
    ledger.submit_failures += [endorsement_mismatch()]
    r = as_org("OperatorMSP").post(EVENTS, json=place_body())
    assert r.status_code == 409 and r.json["type"].endswith("/transaction-conflict")
    assert r.json["reason"] == "endorsement-mismatch" and r.headers["Retry-After"] == "7"
    assert len(ledger.submits) == 1 and no_sleep == []


def test_out_of_order_from_a_timestamp_race_is_retried_but_a_real_one_is_not(as_org, ledger, no_sleep):
    race = endorse_error("OutOfOrder", "L1 was last changed at ...", {"last_change": "2026-03-02T09:00:00Z",
                                                                     "ledger_time": "2026-03-02T08:59:59Z"})
    ledger.submit_failures.append(race)
    assert as_org("OperatorMSP").post(EVENTS, json=place_body()).status_code == 201
    assert len(ledger.submits) == 2
    backdated = endorse_error("OutOfOrder", "occurred_at is backdated more than 2 day(s)", {"backdate_max_days": 2})
    ledger.submit_failures.append(backdated)
    r = as_org("OperatorMSP").post(EVENTS, json=place_body("p2"))
    assert r.status_code == 409 and r.json["type"].endswith("/out-of-order")
    assert len(ledger.submits) == 3


def test_other_invalid_commit_is_502(as_org, ledger):
    ledger.submit_failures.append(CommitError("34" * 32, 10, "ENDORSEMENT_POLICY_FAILURE", 9))
    r = as_org("OperatorMSP").post(EVENTS, json=place_body())
    assert r.status_code == 502 and r.json["type"].endswith("/ledger-error")


def test_unexpected_exception_is_a_problem_500_without_internals(app, as_org, monkeypatch):
    svc = app.extensions["ipledger"].service

    def boom(*a, **k):
        raise KeyError("very internal secret state")

    monkeypatch.setattr(svc, "submit_event", boom)
    r = as_org("OperatorMSP").post(EVENTS, json=place_body())
    assert r.status_code == 500 and r.mimetype == PROBLEM
    assert r.json["type"].endswith("/internal-error")
    assert "secret" not in r.get_data(as_text=True) and "KeyError" not in r.get_data(as_text=True)
    assert r.json["request_id"] == r.headers["X-Request-Id"]


def test_contract_answer_that_is_not_json_is_502(as_org, ledger):
    ledger.answers["GetLot"] = b"\x00not json"
    r = as_org("OperatorMSP").get("/api/v1/lots/L1")
    assert r.status_code == 502 and r.json["type"].endswith("/ledger-error")


def test_unknown_route_and_method_are_problems(client):
    r = client.get("/api/v1/nothing")
    assert r.status_code == 404 and r.mimetype == PROBLEM
    r = client.get(EVENTS)
    assert r.status_code == 405 and r.mimetype == PROBLEM and "POST" in r.headers["Allow"]


@pytest.mark.parametrize("code, message, details", [
    ("FAILED_PRECONDITION", "requires endorsement from organisation(s) that are not in the distribution "
                            "policy of the private data collection(s): [commercial]", []),
    ("FAILED_PRECONDITION", "no combination of peers can be derived which satisfy the endorsement policy", []),
    ("ABORTED", "failed to collect enough transaction endorsements",
     ["rpc error: code = Unavailable desc = connection error: connect: connection refused"]),
    ("CANCELLED", "Channel closed!", []),
    # an endorsing peer that did not answer within Fabric's endorsement timeout: nothing was ordered
    ("ABORTED", "failed to collect enough transaction endorsements",
     ["rpc error: code = DeadlineExceeded desc = context deadline exceeded"]),
    ("ABORTED", "failed to collect enough transaction endorsements",
     ["rpc error: code = DeadlineExceeded desc = context deadline exceeded",
      "rpc error: code = Unavailable desc = connection error: connect: connection refused"]),
])
def test_unreachable_endorsers_or_an_interrupted_call_are_503_with_retry_after(code, message, details):
    import grpc

    from ipledger.gateway.client import EndorseError
    from ipledger.network.fabric.errors import ErrorDetail
    from ipledger.gateway.problems import from_gateway_error
    exc = EndorseError(message, code=getattr(grpc.StatusCode, code), tx_id="ab" * 32,
                       details=[ErrorDetail("127.0.0.1:7120", "OperatorMSP", d) for d in details])
    problem = from_gateway_error(exc, 7)
    assert (problem.status, problem.headers["Retry-After"]) == (503, "7")


@pytest.mark.parametrize("exc", [ConnectionRefusedError(), TimeoutError(), OSError("network is unreachable"),
                                 ValueError("Cannot invoke RPC on closed channel!")])
def test_a_failure_outside_grpc_is_a_problem_to_send_again(exc):
    """Not a gRPC error (a connection refused, a closed channel): a 503 with Retry-After, never an exception
    out of the mapping (a 500 the importer does not retry, and a batch cut short without its report)."""
    from ipledger.gateway.problems import from_gateway_error
    problem = from_gateway_error(exc, 7)
    assert (problem.status, problem.headers["Retry-After"]) == (503, "7")


def test_a_peer_whose_clock_is_off_is_not_told_as_a_peer_catching_up():
    import grpc

    from ipledger.gateway.client import EndorseError
    from ipledger.network.fabric.errors import ErrorDetail
    from ipledger.gateway.problems import from_gateway_error
    text = '{"code":"ClockSkew","message":"the transaction timestamp is 400 s from this peer\'s clock","details":{}}'
    exc = EndorseError("failed to collect enough transaction endorsements, see attached details for more info",
                       code=grpc.StatusCode.ABORTED, tx_id="ab" * 32,
                       details=[ErrorDetail("127.0.0.1:7101", "CustomsMSP", f"chaincode response 500, {text}")])
    problem = from_gateway_error(exc, 7)
    assert problem.name == "clock-skew" and problem.extra.get("reason") != "endorsers-disagree"


@pytest.mark.parametrize("message, details", [
    # the gateway's own peer: its contract process killed during the simulation
    ("failed to endorse transaction, see attached details for more info",
     ["error in simulation: failed to execute transaction 7c1e: error sending: chaincode stream terminated"]),
    # another organisation's peer: its contract process killed, or hung past the peer's execute timeout
    ("failed to collect enough transaction endorsements, see attached details for more info",
     ["rpc error: code = Unknown desc = error in simulation: failed to execute transaction 7c1e: error sending: "
      "chaincode stream terminated"]),
    ("failed to collect enough transaction endorsements, see attached details for more info",
     ["error in simulation: failed to execute transaction 7c1e: timeout expired while executing transaction"]),
    ("failed to endorse transaction, see attached details for more info",
     ["error in simulation: failed to execute transaction 7c1e: could not launch chaincode ipledger_1.0:ab: "
      "chaincode registration failed: connection refused"]),
])
def test_a_contract_process_that_died_is_503_nothing_recorded(message, details):
    """No contract answered (its process on an endorsing peer stopped, hung or could not start): endorsement failed,
    nothing was ordered — a 503 to send again, not a 502 that reads as final."""
    import grpc

    from ipledger.gateway.client import EndorseError
    from ipledger.network.fabric.errors import ErrorDetail
    from ipledger.gateway.problems import from_gateway_error
    exc = EndorseError(message, code=grpc.StatusCode.ABORTED, tx_id="ab" * 32,
                       details=[ErrorDetail("127.0.0.1:7120", "OperatorMSP", d) for d in details])
    problem = from_gateway_error(exc, 7)
    assert (problem.status, problem.headers["Retry-After"], problem.extra["reason"]) == (
        503, "7", "contract-unavailable")
    assert "nothing was recorded" in problem.detail


def test_a_query_to_a_contract_its_peer_cannot_start_is_503_ask_again():
    """An evaluation answered by the peer with no contract in it (a package committed that its peer cannot start):
    a 503 naming the contract, nothing changed — not a 502 that reads as final."""
    import grpc

    from ipledger.gateway.client import EvaluateError
    from ipledger.network.fabric.errors import ErrorDetail
    from ipledger.gateway.problems import from_gateway_error
    launch = ("error in simulation: failed to execute transaction 7c1e: could not launch chaincode ipledger_1.4:ab: "
              "chaincode registration failed: container exited with 1")
    exc = EvaluateError(f"evaluate call to endorser returned error: {launch}", code=grpc.StatusCode.ABORTED,
                        tx_id="cd" * 32, details=[ErrorDetail("127.0.0.1:7120", "OperatorMSP", launch)])
    problem = from_gateway_error(exc, 7, reading=True)
    assert (problem.status, problem.extra["reason"]) == (503, "contract-unavailable")
    assert "the contract did not answer on the organisation's peer" in problem.detail
    assert "could not start" in problem.detail and "nothing was changed: ask again" in problem.detail


def test_a_query_the_peer_s_execute_timeout_ended_is_504_narrow_it():
    """A query still running when the peer's execute timeout ended it (a long history) would run as long again: a
    504 query-timeout saying to narrow it, not a 503 to ask again; a submit that timed out so stays a 503."""
    import grpc

    from ipledger.gateway.client import EndorseError, EvaluateError
    from ipledger.network.fabric.errors import ErrorDetail
    from ipledger.gateway.problems import from_gateway_error
    timed_out = "error in simulation: failed to execute transaction 7c1e: timeout expired while executing transaction"
    query = EvaluateError(f"evaluate call to endorser returned error: {timed_out}", code=grpc.StatusCode.ABORTED,
                          details=[ErrorDetail("127.0.0.1:7120", "CustomsMSP", timed_out)])
    problem = from_gateway_error(query, 7, reading=True)
    assert (problem.status, problem.extra["reason"]) == (504, "query-timeout") and "narrow" in problem.detail
    submit = EndorseError("failed to endorse transaction, see attached details for more info",
                          code=grpc.StatusCode.ABORTED, details=[ErrorDetail("127.0.0.1:7120", "CustomsMSP", timed_out)])
    assert from_gateway_error(submit, 7).extra["reason"] == "contract-unavailable"


def test_a_contract_refusal_that_quotes_such_words_stays_the_contract_s_refusal():
    import grpc

    from ipledger.gateway.client import EndorseError
    from ipledger.network.fabric.errors import ErrorDetail
    from ipledger.gateway.problems import from_gateway_error
    text = '{"code":"InvalidEvent","message":"description: chaincode stream terminated","details":{}}'
    exc = EndorseError("failed to endorse transaction, see attached details for more info",
                       code=grpc.StatusCode.ABORTED, tx_id="ab" * 32,
                       details=[ErrorDetail("127.0.0.1:7120", "OperatorMSP", f"chaincode response 500, {text}")])
    assert from_gateway_error(exc, 7).status == 400
    # the contract answered (a status), in words that are not its JSON error: it ran, so not "contract-unavailable"
    exc = EndorseError("failed to endorse transaction, see attached details for more info",
                       code=grpc.StatusCode.ABORTED, tx_id="ab" * 32,
                       details=[ErrorDetail("127.0.0.1:7120", "OperatorMSP",
                                            "chaincode response 500, chaincode stream terminated")])
    assert exc.chaincode_status == 500 and exc.chaincode_error is None
    assert from_gateway_error(exc, 7).status == 502


def test_aborted_for_another_reason_stays_502():
    import grpc

    from ipledger.gateway.client import EndorseError
    from ipledger.network.fabric.errors import ErrorDetail
    from ipledger.gateway.problems import from_gateway_error
    exc = EndorseError("failed to endorse", code=grpc.StatusCode.ABORTED, tx_id="ab" * 32,
                       details=[ErrorDetail("127.0.0.1:7120", "OperatorMSP", "chaincode definition mismatch")])
    assert from_gateway_error(exc, 7).status == 502


def test_a_chunked_body_that_reaches_the_limit_is_refused_not_cut_short_and_submitted(app, keys, ledger):
    """A body without Content-Length (chunked) is read only up to the limit: a valid event followed by 8 MiB
    of padding and garbage must be refused whole (413), never submitted as the part that was read."""
    import io

    from werkzeug.test import EnvironBuilder, run_wsgi_app

    from .conftest import bearer
    event = json.dumps(move_body("chunked-1")).encode()
    for tail in (b" " * (9 * 2**20) + b"NOT JSON }}}", b" " * (9 * 2**20)):
        environ = EnvironBuilder(path="/api/v1/events", method="POST", content_type="application/json",
                                 headers=bearer(keys[("OperatorMSP", "clerk")])).get_environ()
        environ.pop("CONTENT_LENGTH", None)
        environ["wsgi.input"], environ["wsgi.input_terminated"] = io.BytesIO(event + tail), True
        body, status, headers = run_wsgi_app(app, environ, buffered=True)
        assert status.startswith("413"), status
        assert json.loads(b"".join(body))["type"].endswith("/payload-too-large")
    assert ledger.submits == []
