"""POST /api/v1/events/batch semantics, and the GET endpoints."""
from __future__ import annotations

import pytest

from .fakes import endorse_error, evaluate_error, grant_body, move_body, place_body, unavailable

BATCH = "/api/v1/events/batch"


def _ids(ledger):
    return [s["event"]["event_id"] for s in ledger.submits]


def test_batch_is_sequential_and_reports_every_item(as_org, ledger):
    ledger.fail_submits_for["move-2"] = endorse_error("QuantityExceedsBalance", "600 > 500",
                                                      {"lot_id": "L1", "balance": 500})
    as_org("OperatorMSP").post("/api/v1/events", json=move_body("move-0"))  # recorded before: a replay below
    ledger.submits.clear()
    items = [move_body("move-0"), move_body("move-1"), move_body("move-2"),
             {**move_body("move-3"), "quantity": -1}, move_body("move-4")]
    r = as_org("OperatorMSP").post(BATCH, json={"events": items})
    assert r.status_code == 200, r.json
    results = r.json["results"]
    assert [x["index"] for x in results] == [0, 1, 2, 3, 4]
    assert [x["outcome"] for x in results] == ["REPLAYED", "COMMITTED", "REFUSED", "REFUSED", "COMMITTED"]
    assert [x["status"] for x in results] == [200, 201, 409, 400, 201]
    assert [x["event_id"] for x in results] == ["move-0", "move-1", "move-2", "move-3", "move-4"]
    assert results[2]["problem"]["type"].endswith("/quantity-exceeds-balance")
    assert results[2]["problem"]["details"]["balance"] == 500
    assert results[3]["problem"]["type"].endswith("/invalid-event")
    assert results[3]["problem"]["errors"][0]["path"] == "/quantity"
    assert results[1]["tx_id"] == ledger.recorded["move-1"][1]["tx_id"]
    assert results[0]["tx_id"] == ledger.recorded["move-0"][1]["tx_id"] and "replay_tx_id" in results[0]
    assert r.json["summary"] == {"total": 5, "committed": 2, "replayed": 1, "refused": 2, "failed": 0,
                                 "not_attempted": 0}
    # in order; the invalid item never reached the ledger
    assert _ids(ledger) == ["move-0", "move-1", "move-2", "move-4"]
    assert {s["org"] for s in ledger.submits} == {"OperatorMSP"}


def test_stop_on_error_reports_the_rest_as_not_attempted(as_org, ledger):
    ledger.fail_submits_for["b"] = endorse_error("DeadlinePassed")
    items = [move_body("a"), move_body("b"), move_body("c"), move_body("d")]
    r = as_org("OperatorMSP").post(BATCH, json={"events": items, "stop_on_error": True})
    res = r.json["results"]
    assert [x["outcome"] for x in res] == ["COMMITTED", "REFUSED", "NOT_ATTEMPTED", "NOT_ATTEMPTED"]
    assert [x["status"] for x in res] == [201, 409, None, None]
    assert res[2]["event_id"] == "c"
    assert r.json["summary"]["not_attempted"] == 2
    assert _ids(ledger) == ["a", "b"]


def test_unreachable_network_stops_the_batch_with_retry_after(as_org, ledger):
    ledger.fail_submits_for["b"] = unavailable()
    r = as_org("OperatorMSP").post(BATCH, json=[move_body("a"), move_body("b"), move_body("c")])  # bare array
    assert r.status_code == 200
    assert [x["outcome"] for x in r.json["results"]] == ["COMMITTED", "FAILED", "NOT_ATTEMPTED"]
    assert r.json["results"][1]["status"] == 503
    assert r.headers["Retry-After"] == "7"
    assert r.json["summary"] == {"total": 3, "committed": 1, "replayed": 0, "refused": 0, "failed": 1,
                                 "not_attempted": 1}
    # sending the batch again after the outage: the first item is a replay, the rest recorded
    del ledger.fail_submits_for["b"]
    again = as_org("OperatorMSP").post(BATCH, json=[move_body("a"), move_body("b"), move_body("c")])
    assert [x["outcome"] for x in again.json["results"]] == ["REPLAYED", "COMMITTED", "COMMITTED"]
    assert "Retry-After" not in again.headers


@pytest.mark.parametrize("body, status", [
    ({"events": []}, 400), ([], 400), ({"items": []}, 400), ("x", 400),
    ({"events": [move_body()], "stop_on_error": "yes"}, 400),
    ({"events": [move_body()], "extra": 1}, 400),
    ({"events": [move_body(f"m{i}") for i in range(11)]}, 413),   # max_batch is 10 in these tests
])
def test_bad_batches_are_refused_whole(as_org, ledger, body, status):
    r = as_org("OperatorMSP").post(BATCH, json=body)
    assert r.status_code == status and r.mimetype == "application/problem+json"
    assert ledger.submits == []


def test_batch_items_that_are_not_objects(as_org, ledger):
    r = as_org("OperatorMSP").post(BATCH, json=[1, move_body("ok")])
    assert [x["outcome"] for x in r.json["results"]] == ["REFUSED", "COMMITTED"]
    assert r.json["results"][0]["event_id"] is None


# ------------------------------------------------------------------------------------------ queries

@pytest.mark.parametrize("path, function, args", [
    ("/api/v1/authorisations/FRIPO000001", "GetAuthorisation", ["FRIPO000001"]),
    ("/api/v1/authorisations/FRIPO000001/balances", "GetBalances", ["FRIPO000001"]),
    ("/api/v1/authorisations/FRIPO000001/alerts", "GetAlerts", ["FRIPO000001", None]),
    ("/api/v1/authorisations/FRIPO000001/alerts?as_of=2026-08-30", "GetAlerts", ["FRIPO000001", "2026-08-30"]),
    ("/api/v1/authorisations/FRIPO000001/events?from=2026-03-01", "GetEventsInPeriod",
     ["FRIPO000001", "2026-03-01", None]),
    ("/api/v1/authorisations/FRIPO000001/events?from=2026-03-01T00:00:00Z&to=2026-03-03",
     "GetEventsInPeriod", ["FRIPO000001", "2026-03-01T00:00:00Z", "2026-03-03"]),
    ("/api/v1/authorisations/FRIPO000001/bill-of-discharge-data?period_end=2026-03-01",
     "GetBillOfDischargeData", ["FRIPO000001", "2026-03-01", None]),
    ("/api/v1/authorisations/FRIPO000001/bill-of-discharge-data?as_of=2026-03-03T10:00:00%2B01:00",
     "GetBillOfDischargeData", ["FRIPO000001", None, "2026-03-03T10:00:00+01:00"]),
    ("/api/v1/bills-of-discharge/BOD-FRIPO000001-2026-03-01", "GetBillOfDischarge", ["BOD-FRIPO000001-2026-03-01"]),
    ("/api/v1/lots/L1", "GetLot", ["L1"]),
    ("/api/v1/lots/L1/history", "GetLotHistory", ["L1"]),
    ("/api/v1/batches/B1", "GetBatch", ["B1"]),
    ("/api/v1/batches/B1/history", "GetBatchHistory", ["B1"]),
    # identifiers may hold '/' (a batch's default id is <operation>/<n>), sent as '/' or '%2F'
    ("/api/v1/batches/OP1/1", "GetBatch", ["OP1/1"]),
    ("/api/v1/batches/OP1%2F1/history", "GetBatchHistory", ["OP1/1"]),
    ("/api/v1/lots/L%2F9", "GetLot", ["L/9"]),
    ("/api/v1/lots/L/9/history", "GetLotHistory", ["L/9"]),
    ("/api/v1/parameters", "GetParameters", []),
    ("/api/v1/parties", "GetParties", []),
    ("/api/v1/declarations/26FR000110000001R8", "GetDeclaration", ["26FR000110000001R8"]),
])
def test_queries_call_the_contract_as_the_keys_org(as_org, ledger, path, function, args):
    ledger.answers[function] = {"answer": function}
    r = as_org("BrokerMSP", "viewer").get(path)
    assert r.status_code == 200, r.json
    assert r.json["answer"] == function
    assert ledger.evaluations == [{"org": "BrokerMSP", "function": function, "args": args}]


def test_history_is_an_audit_trail_with_block_numbers(as_org, ledger):
    first = as_org("BrokerMSP").post("/api/v1/events", json=place_body()).json
    second = as_org("OperatorMSP").post("/api/v1/events", json=move_body()).json
    ledger.answers["GetLotHistory"] = {"lot_id": "L1", "history": [
        {"tx_id": first["tx_id"], "recorded_at": "2026-03-02T09:00:00.000000Z", "event_type": "PlaceUnderProcedure",
         "submitted_by": {"msp_id": "BrokerMSP", "name": "User1@broker", "role": "client"}},
        {"tx_id": second["tx_id"], "recorded_at": "2026-03-02T09:00:01.000000Z", "event_type": "MoveGoods",
         "submitted_by": {"msp_id": "OperatorMSP", "name": "User1@operator", "role": "client"}},
    ]}
    r = as_org("CustomsMSP", "viewer").get("/api/v1/lots/L1/history")
    trail = r.json["history"]
    assert [(e["tx_id"], e["block_number"], e["submitting_org"]) for e in trail] == [
        (first["tx_id"], first["block_number"], "BrokerMSP"),
        (second["tx_id"], second["block_number"], "OperatorMSP")]


def test_events_in_period_carry_block_numbers_and_unknown_tx_gives_null(as_org, ledger):
    done = as_org("OperatorMSP").post("/api/v1/events", json=move_body()).json
    ledger.answers["GetEventsInPeriod"] = {"events": [{"tx_id": done["tx_id"]}, {"tx_id": "99" * 32}]}
    r = as_org("OperatorMSP").get("/api/v1/authorisations/FRIPO000001/events?from=2026-03-01")
    assert [e["block_number"] for e in r.json["events"]] == [done["block_number"], None]


def test_a_declarations_items_carry_block_numbers_and_submitting_orgs(as_org, ledger):
    placed = as_org("BrokerMSP").post("/api/v1/events", json=place_body()).json
    moved = as_org("OperatorMSP").post("/api/v1/events", json=move_body()).json
    by = lambda org: {"msp_id": org, "name": "User1", "role": "client"}  # noqa: E731
    ledger.answers["GetDeclaration"] = {"mrn": "26FR000110000001R8", "items": [
        {"item_no": 1, "type": "PLACEMENT", "events": [
            {"tx_id": placed["tx_id"], "submitted_by": by("BrokerMSP")},
            {"tx_id": moved["tx_id"], "submitted_by": by("OperatorMSP")}]},
        {"item_no": 2, "type": "PLACEMENT", "events": []},
        {"item_no": 3, "type": "EXIT", "events": [{"tx_id": "99" * 32, "submitted_by": by("BrokerMSP")}]},
    ]}
    r = as_org("CustomsMSP", "viewer").get("/api/v1/declarations/26FR000110000001R8")
    assert r.status_code == 200, r.json
    items = r.json["items"]
    assert [[(e["tx_id"], e["block_number"], e["submitting_org"]) for e in i["events"]] for i in items] == [
        [(placed["tx_id"], placed["block_number"], "BrokerMSP"), (moved["tx_id"], moved["block_number"], "OperatorMSP")],
        [], [("99" * 32, None, "BrokerMSP")]]


@pytest.mark.parametrize("path", [
    "/api/v1/authorisations/not-an-id",
    "/api/v1/authorisations/FRIPO000001/alerts?as_of=yesterday",
    "/api/v1/authorisations/FRIPO000001/alerts?as_of=2026-02-30",
    "/api/v1/authorisations/FRIPO000001/alerts?as_of=2026-03-01T10:00:00",     # no zone
    "/api/v1/authorisations/FRIPO000001/events",                                # from is required
    "/api/v1/authorisations/FRIPO000001/bill-of-discharge-data?period_end=2026-03-01&as_of=2026-03-01",
    "/api/v1/authorisations/FRIPO000001/bill-of-discharge-data?period_end=2026-03-01T00:00:00Z",
    "/api/v1/bills-of-discharge/BOD-x",
    "/api/v1/lots/-L1",
    "/api/v1/batches/" + "B" * 65,
    "/api/v1/authorisations/FRIPO000001/alerts?as_of=9999-12-31",               # after 8999: the contract's last
    "/api/v1/authorisations/FRIPO000001/events?from=2026-01-01&to=9000-01-01T00:00:00Z",
    "/api/v1/feed?limit=%C2%B2",                                                # '²' is a digit, not an integer
    "/api/v1/feed?limit=" + "9" * 5000,
    "/api/v1/webhooks/deliveries?limit=%C2%B2",
    "/api/v1/declarations/26fr000110000001R8",                                  # an MRN's letters are capitals
    "/api/v1/declarations/26FR000110000001R8%0A",
])
def test_bad_parameters_are_400_before_any_ledger_call(as_org, ledger, path):
    r = as_org("OperatorMSP").get(path)
    assert r.status_code == 400, r.json
    assert r.json["type"] == "https://ipledger.example/problems/invalid-parameter"
    assert ledger.evaluations == []


def test_not_found_and_not_permitted_from_the_contract(as_org, ledger):
    ledger.evaluate_failures.append(evaluate_error("NotFound", "no lot L9", {"lot_id": "L9"}))
    r = as_org("OperatorMSP").get("/api/v1/lots/L9")
    assert r.status_code == 404 and r.json["type"].endswith("/not-found") and r.json["details"] == {"lot_id": "L9"}
    ledger.evaluate_failures.append(evaluate_error("NotPermitted", "the broker holds no mandate"))
    r = as_org("BrokerMSP").get("/api/v1/lots/L1")
    assert r.status_code == 403 and r.json["type"].endswith("/not-permitted")


def test_customs_grant_as_customs(as_org, ledger):
    r = as_org("CustomsMSP").post("/api/v1/events", json=grant_body())
    assert r.status_code == 201 and ledger.submits[0]["function"] == "GrantAuthorisation"
    assert ledger.submits[0]["transient"] == {}


@pytest.mark.parametrize("lot_id", ["P/history", "P/audit"])
def test_a_lot_its_own_path_could_not_reach_is_refused_before_the_ledger(as_org, ledger, lot_id):
    """``/lots/P/history`` is lot P's trail: a lot ``P/history`` could never be read by its own path (asked for,
    P's trail came back, 200). The schemas the gateway checks bodies against refuse such ids; nothing is sent."""
    r = as_org("BrokerMSP").post("/api/v1/events", json=place_body(lot_id=lot_id))
    assert r.status_code == 400 and r.json["type"].endswith("/invalid-event"), r.json
    assert r.json["errors"][0]["path"] == "/lot_id" and ledger.submits == []
