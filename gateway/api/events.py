"""POST /api/v1/events and /api/v1/events/batch: business events in, Fabric transactions out."""
from __future__ import annotations

import logging

from flask import g, jsonify

from ipledger.gateway.problems import Problem, gateway_problem
from ipledger.gateway.validation import parse_event
from ipledger.gateway.api.common import API_PREFIX, channel_param, read_json, require, state
from ipledger.gateway.api.routes import Routes, blueprint

log = logging.getLogger("ipledger.gateway.events")
ROUTES = Routes(API_PREFIX)

# 4xx answers that refuse nothing: the item is FAILED (send it again), not REFUSED
SEND_AGAIN = frozenset({"transaction-conflict"})


@ROUTES.post(
    "/events", id="submitEvent", permission="submit", channel=True,
    summary="Submit one business event",
    description="Validates the event against its JSON Schema, then submits the contract function of the same "
                "name as the key's organisation. `commercial` (PlaceUnderProcedure, ExitGoods) travels in "
                "the transient map only. `event_id` is the idempotency key, per organisation: the first time "
                "201 with the transaction id and block; the same event again 200 with the ORIGINAL "
                "transaction id; the same event_id with other content 409 duplicate-event. Identifiers are "
                "matched whole (no newline, no control character); an `mrn` must be an EU MRN (check digit "
                "included): 400 invalid-mrn. `occurred_at` may be days old (recorded late: alert "
                "LateRecording beyond the customs parameter late_recording_days), never in the future.",
    body={"$ref": "#/components/schemas/Event"},
    ok={"201": ("the event was recorded in a new transaction", "SubmitOutcome"),
        "200": ("replay: the event was already recorded; the original transaction", "SubmitOutcome")})
def post_event():
    principal = require("submit")
    body = read_json()
    if isinstance(body, dict):
        g.log_extra.update(event_type=_str(body.get("type")), event_id=_str(body.get("event_id")))
    parsed = parse_event(body)
    status, outcome = state().service.submit_event(principal.org, parsed, channel_param())
    g.log_extra.update(tx_id=outcome["tx_id"], block_number=outcome["block_number"], outcome=outcome["status"])
    return jsonify(outcome), status


@ROUTES.post(
    "/events/batch", id="submitEventBatch", permission="submit", channel=True,
    summary="Submit many business events, in order",
    description="Items are processed sequentially, in order, each in its own transaction: every item is "
                "committed (201), replayed (200), refused (4xx) or failed (5xx, or 409 transaction-conflict: to "
                "send again) on its own, and reported "
                "with its index. Nothing is silently skipped: with `stop_on_error` (default false) the "
                "items after the first refused one are reported NOT_ATTEMPTED; after a failed item (to send "
                "again: the ledger unreachable, a conflict) the batch always stops the same way — later items "
                "may depend on it — and the answer carries Retry-After. Send the batch again: items already "
                "recorded come back as replays.",
    body={"$ref": "#/components/schemas/BatchRequest"},
    ok={"200": ("the batch was processed; see each item's outcome", "BatchOutcome")})
def post_batch():
    principal = require("submit")
    body = read_json()
    items, stop_on_error = _batch_items(body)
    channel = channel_param()
    svc = state().service
    if channel is not None:
        svc.channels(channel)   # 400 unknown-channel for the whole batch: not a final refusal of each item
    results: list[dict] = []
    summary = {"total": len(items), "committed": 0, "replayed": 0, "refused": 0, "failed": 0, "not_attempted": 0}
    stopped_by: int | None = None
    retry_after = False   # stopped at an item to send again
    for index, item in enumerate(items):
        event_id = _str(item.get("event_id")) if isinstance(item, dict) else None
        event_type = _str(item.get("type")) if isinstance(item, dict) else None
        if stopped_by is not None:
            results.append({"index": index, "event_id": event_id, "type": event_type, "status": None,
                            "outcome": "NOT_ATTEMPTED"})
            summary["not_attempted"] += 1
            continue
        try:
            status, outcome = svc.submit_event(principal.org, parse_event(item), channel)
        except Problem as p:
            failed = p.status >= 500 or p.name in SEND_AGAIN  # not refused: the same item is to be sent again
            summary["failed" if failed else "refused"] += 1
            results.append({"index": index, "event_id": event_id, "type": event_type, "status": p.status,
                            "outcome": "FAILED" if failed else "REFUSED", "problem": p.body(g.request_id)})
            # an item to send again stops the batch, stop_on_error or not: the items after it may depend on it
            # (place, then move), and their refusal now (404: no such lot) would be a final answer, untrue once
            # the failed item is sent again as told
            if failed or stop_on_error:
                stopped_by = p.status
                retry_after = failed
            continue
        summary["committed" if status == 201 else "replayed"] += 1
        results.append({"index": index, "event_id": outcome["event_id"], "type": outcome["type"], "status": status,
                        "outcome": outcome["status"], "tx_id": outcome["tx_id"],
                        "block_number": outcome["block_number"], "recorded_at": outcome["recorded_at"],
                        **({"replay_tx_id": outcome["replay_tx_id"]} if "replay_tx_id" in outcome else {})})
    g.log_extra.update(items=len(items), outcome="batch")
    log.info("batch of %d events: %d committed, %d replayed, %d refused, %d failed, %d not attempted",
             len(items), summary["committed"], summary["replayed"], summary["refused"], summary["failed"],
             summary["not_attempted"], extra={"request_id": g.request_id, "org": principal.org})
    response = jsonify({"summary": summary, "results": results})
    if retry_after:
        response.headers["Retry-After"] = str(state().config.retry_after_s)
    return response, 200


def _batch_items(body) -> tuple[list, bool]:
    if isinstance(body, list):
        items, stop = body, False
    elif isinstance(body, dict) and isinstance(body.get("events"), list):
        unknown = sorted(set(body) - {"events", "stop_on_error"})
        if unknown:
            raise gateway_problem("bad-request", f"unknown member(s) of the batch: {', '.join(unknown)}")
        stop = body.get("stop_on_error", False)
        if not isinstance(stop, bool):
            raise gateway_problem("bad-request", "stop_on_error must be true or false")
        items = body["events"]
    else:
        raise gateway_problem("bad-request", "a batch is {\"events\": [event, ...], \"stop_on_error\": false} "
                                             "or a JSON array of events")
    if not items:
        raise gateway_problem("bad-request", "the batch is empty")
    limit = state().config.max_batch
    if len(items) > limit:
        raise Problem(413, "payload-too-large", f"a batch holds at most {limit} events ({len(items)} sent)")
    return items, stop


def _str(value) -> str | None:
    return value[:128] if isinstance(value, str) else None


bp = blueprint("events", __name__, ROUTES)
