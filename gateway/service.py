"""What the API does with the ledger: submit an event (with idempotent replays), run a query,
add block numbers to audit trails. Fabric failures become :class:`Problem` here."""
from __future__ import annotations

import json
import logging
import random
import time
from typing import Any

from .config import GatewayConfig
from .ledger import Ledger, UnknownOrg
from .observability import Metrics
from .problems import Problem, from_gateway_error, race_kind
from .validation import NonceKey, ParsedEvent

log = logging.getLogger("gateway.service")


def _json_arg(value: Any) -> str:
    """A query argument: every contract argument is JSON text (a string is quoted)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    code = getattr(exc, "chaincode_error", None)
    if code is not None:
        return "chaincode_error"
    name = getattr(getattr(exc, "code", None), "name", None)
    return name.lower() if name else "error"


class LedgerService:
    def __init__(self, ledger: Ledger, config: GatewayConfig, metrics: Metrics):
        self.ledger = ledger
        self.config = config
        self.metrics = metrics
        self.nonce = NonceKey(config.nonce_key_file)
        self.sleep = time.sleep

    # -- plumbing ---------------------------------------------------------------------------------------
    def _call(self, call: str, function: str, fn, *args, retry_transient: bool = False, **kw):
        """Run one ledger call, timed; a failure becomes a Problem. With ``retry_transient`` (submits), a
        transaction refused only because a concurrent one, created later, committed first (OutOfOrder,
        see :func:`race_kind`) is tried again, at most ``config.race_retries`` times."""
        attempt = 0
        while True:
            try:
                return self._timed(call, function, fn, *args, **kw)
            except Problem:
                raise
            except Exception as e:  # noqa: BLE001
                # Endorsement mismatches are retried by the Fabric client itself; here only
                # the contract's OutOfOrder from a timestamp race with a concurrent client.
                if retry_transient and attempt < self.config.race_retries and \
                        race_kind(e) == "out-of-order":
                    attempt += 1
                    log.info("%s %s raced concurrent transactions (%s); trying again (%d)", call, function,
                             race_kind(e), attempt, extra={"function": function, "tx_id": getattr(e, "tx_id", None)})
                    self.sleep(random.uniform(0.05, 0.25) * attempt)
                    continue
                raise self._problem(call, function, e) from None

    def _timed(self, call: str, function: str, fn, *args, **kw):
        started = time.perf_counter()
        exc: BaseException | None = None
        try:
            return fn(*args, **kw)
        except BaseException as e:
            exc = e
            raise
        finally:
            self.metrics.fabric.labels(call, function, _outcome(exc)).observe(time.perf_counter() - started)

    def _problem(self, call: str, function: str, e: Exception) -> Problem:
        if isinstance(e, UnknownOrg):
            return Problem(403, "forbidden", f"this gateway does not act for {e.args[0]}")
        problem = from_gateway_error(e, self.config.retry_after_s)
        if problem.status >= 500:
            cc = getattr(e, "chaincode_error", None)
            # a chaincode error's text may quote event data: log its code only
            why = f"chaincode error {cc.get('code')}" if cc is not None else str(e)
            log.warning("%s %s failed: %s", call, function, why,
                        extra={"function": function, "outcome": _outcome(e), "tx_id": getattr(e, "tx_id", None),
                               "error_type": type(e).__name__})
        return problem

    def evaluate_json(self, org: str, function: str, *args: Any) -> Any:
        raw = self._call("evaluate", function, self.ledger.evaluate, org, function, [_json_arg(a) for a in args])
        return _decode(raw, function)

    def block_number(self, org: str, tx_id: str) -> int | None:
        try:
            return self._call("block_lookup", "GetBlockByTxID", self.ledger.block_number, org, tx_id)
        except Problem as p:
            log.warning("block of tx %s not found (%s)", tx_id, p.name, extra={"tx_id": tx_id})
            return None

    def channel_members(self, org: str) -> dict:
        """The channel's organisations from its current config block, read as ``org``
        (see network/membership.py), with the consortium file's descriptions."""
        from network.membership import describe_block
        raw = self._call("evaluate", "GetConfigBlock", self.ledger.config_block, org)
        try:
            members = describe_block(raw)
        except Exception as e:  # noqa: BLE001 - an unreadable block is the peer's fault, not the caller's
            log.error("the config block is unreadable: %s", type(e).__name__)
            raise Problem(502, "ledger-error", "the peer returned an unreadable config block") from None
        for entry in members["organisations"]:
            entry["description"] = self.config.descriptions.get(entry["msp_id"], "")
        return {"channel": self.config.channel, **members}

    # -- events -------------------------------------------------------------------------------------------
    def submit_event(self, org: str, parsed: ParsedEvent) -> tuple[int, dict]:
        """Submit one event as ``org``: (201, outcome) when recorded now, (200, outcome) for a replay of
        an event already recorded (the original transaction), or raise a Problem."""
        parsed = self.nonce.apply(parsed)
        try:
            res = self._call("submit", parsed.type, self.ledger.submit, org, parsed.type, [parsed.argument()],
                             parsed.transient(), retry_transient=True)
        except Problem as p:
            self.metrics.events.labels(parsed.type, "refused" if p.status < 500 else "failed").inc()
            raise
        result = _decode(res.result, parsed.type)
        original_tx = result.get("tx_id") if isinstance(result, dict) else None
        outcome = {"event_id": parsed.event_id, "type": parsed.type, "org": org}
        if original_tx and original_tx != res.tx_id:
            # the contract answered with the result recorded the first time: nothing was written now
            outcome.update(status="REPLAYED", tx_id=original_tx, block_number=self.block_number(org, original_tx),
                           recorded_at=result.get("recorded_at"), replay_tx_id=res.tx_id, result=result)
            self.metrics.events.labels(parsed.type, "replayed").inc()
            return 200, outcome
        outcome.update(status="COMMITTED", tx_id=res.tx_id, block_number=res.block_number,
                       recorded_at=result.get("recorded_at") if isinstance(result, dict) else None, result=result)
        self.metrics.events.labels(parsed.type, "committed").inc()
        return 201, outcome

    # -- audit trails ---------------------------------------------------------------------------------------
    def with_blocks(self, org: str, entries: list[dict]) -> list[dict]:
        """Add ``block_number`` to entries carrying a ``tx_id`` (at most ``block_lookups`` look-ups)."""
        budget = self.config.block_lookups
        known: dict[str, int | None] = {}
        out = []
        for entry in entries:
            tx_id = entry.get("tx_id") if isinstance(entry, dict) else None
            if not isinstance(tx_id, str):
                out.append(entry)
                continue
            if tx_id not in known:
                if budget <= 0:
                    known[tx_id] = None
                else:
                    budget -= 1
                    known[tx_id] = self.block_number(org, tx_id)
            out.append({**entry, "block_number": known[tx_id]})
        return out


def _decode(raw: bytes, function: str) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        log.error("%s returned a payload that is not JSON", function, extra={"function": function})
        raise Problem(502, "ledger-error", "the contract returned an unreadable answer") from None
