"""What the API does with the ledger: submit an event (with idempotent replays), run a query,
add block numbers to audit trails. Fabric failures become :class:`Problem` here."""
from __future__ import annotations

import json
import logging
import random
import time
from typing import Any

from ipledger.gateway import declarations
from ipledger.gateway.answers import CACHED_QUERIES, AnswerCache
from ipledger.gateway.config import GatewayConfig
from ipledger.gateway.ledger import Ledger, UnknownOrg
from ipledger.gateway.observability import Metrics
from ipledger.gateway.problems import Problem, from_gateway_error, race_kind
from ipledger.gateway.validation import NonceKey, ParsedEvent

log = logging.getLogger("ipledger.gateway.service")


# queries of a whole channel: on a gateway of several, the caller names the channel
# what a peer answers for a transaction id in none of its blocks (qscc GetBlockByTxID's "no such transaction ID [..]
# in index"; "Entry not found in index" from earlier Fabric versions)
NOT_IN_A_BLOCK = ("no such transaction ID", "Entry not found in index")
CHANNEL_QUERIES = frozenset({"GetParameters", "GetParties"})
# queries whose first argument is an authorisation id (see _search)
AUTHORISATION_QUERIES = frozenset({"GetAuthorisation", "GetBalances", "GetAlerts", "GetEventsInPeriod",
                                   "GetCeilingUse", "GetBillOfDischargeData"})


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


def _route_of(function: str, args: tuple) -> str | None:
    """The authorisation id a query of one authorisation names (its channel is remembered), else None."""
    return args[0] if function in AUTHORISATION_QUERIES and args and isinstance(args[0], str) else None


class LedgerService:
    # where transactions are, known without asking the peer (:meth:`use_block_index`); None: every block number is
    # a look-up
    block_index = None

    def __init__(self, ledger: Ledger, config: GatewayConfig, metrics: Metrics):
        self.ledger = ledger
        self.config = config
        self.metrics = metrics
        self.nonce = NonceKey(config.nonce_key_file, make=config.make_secrets)
        self.sleep = time.sleep
        # balance answers given again while the channel's height is unchanged (gateway/answers.py)
        self.answers = AnswerCache(config.query_cache_s) if config.query_cache_s > 0 else None
        self._routes: dict[str, str] = {}  # authorisation id -> its channel (an authorisation never moves)

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
        problem = from_gateway_error(e, self.config.retry_after_s, reading=call != "submit")
        if problem.status >= 500:
            cc = getattr(e, "chaincode_error", None)
            # a chaincode error's text may quote event data: log its code only
            why = f"chaincode error {cc.get('code')}" if cc is not None else str(e)
            log.warning("%s %s failed: %s", call, function, why,
                        extra={"function": function, "outcome": _outcome(e), "tx_id": getattr(e, "tx_id", None),
                               "error_type": type(e).__name__})
        return problem

    # -- channels (a channel per holder: customs' gateway serves them all) ------------------------------------
    def channels(self, requested: str | None = None) -> tuple[str, ...]:
        """The channels a call may go to: the one ``requested`` (checked), else every channel served."""
        served = self.config.all_channels
        if requested is None:
            return served
        if requested not in served:
            raise Problem(400, "unknown-channel", f"this gateway serves the channel(s) {', '.join(served)}, "
                          f"not {requested!r}", extra={"parameter": "channel", "channels": list(served)})
        return (requested,)

    def _on(self, channel: str | None) -> dict:
        """The ledger call's ``channel`` argument: named on a gateway of several channels only."""
        return {"channel": channel} if channel and len(self.config.all_channels) > 1 else {}

    def _channel_required(self, what: str, channels: tuple[str, ...]) -> Problem:
        return Problem(400, "channel-required", f"{what} concerns one holder's channel: name it with the 'channel' "
                       f"parameter (one of {', '.join(channels)})",
                       extra={"parameter": "channel", "channels": list(channels)})

    def evaluate_json(self, org: str, function: str, *args: Any, channel: str | None = None) -> Any:
        """Run a query as ``org``. On a gateway of several channels without ``channel``: on every one,
        answered by the one that knows the item (:meth:`evaluate_where`)."""
        return self.evaluate_where(org, function, *args, channel=channel)[1]

    def evaluate_where(self, org: str, function: str, *args: Any, channel: str | None = None) -> tuple[str, Any]:
        """(channel, answer) of a query as ``org``: on ``channel``, the only one, or the one channel that knows
        the item (:meth:`_search`); a query of a whole channel (its parameters, its register) names it."""
        channels = self.channels(channel)
        json_args = [_json_arg(a) for a in args]
        if len(channels) == 1:
            return channels[0], _decode(self._evaluate_on(channels[0], org, function, json_args), function)
        if function in CHANNEL_QUERIES:
            raise self._channel_required(function, channels)
        return self._search(org, function, json_args, args)

    def _evaluate_on(self, channel: str, org: str, function: str, json_args: list[str]) -> bytes:
        on = self._on(channel)

        def evaluate() -> bytes:
            return self._call("evaluate", function, self.ledger.evaluate, org, function, json_args, **on)

        if self.answers is None or function not in CACHED_QUERIES:
            return evaluate()
        # the height first: the answer is then of this height's state or a newer one (gateway/answers.py)
        height = self._call("evaluate", "GetChainInfo", self.ledger.height, org, **on)
        key = (org, channel, function, tuple(json_args))
        answer = self.answers.get(key, height)
        if answer is not None:
            self.metrics.answers.labels(function, "reused").inc()
            return answer
        answer = evaluate()
        self.answers.put(key, height, answer)
        self.metrics.answers.labels(function, "evaluated").inc()
        return answer

    def evaluate_each(self, org: str, function: str, *args: Any, channel: str | None = None) -> list[tuple[str, Any]]:
        """(channel, answer) of a query of one authorisation on each channel that answers it: the one (or
        ``channel``), unless its id is on several holders' channels — a grant no gateway could refuse, the check
        of :meth:`channel_of_event` seeing only the channels it serves —, then every one of them, in the order of
        their names: a view across holders shows both rather than failing for every holder. Looked up on every
        channel each time, not on the route remembered for other queries (which would show the first holder's
        alone, unlabelled)."""
        if channel is not None or len(self.config.all_channels) == 1:
            return [self.evaluate_where(org, function, *args, channel=channel)]
        found = self._answers(org, function, [_json_arg(a) for a in args], args, remembered_route=False)
        return [(ch, _decode(found[ch], function)) for ch in sorted(found)]

    def _search(self, org: str, function: str, json_args: list[str], args: tuple,
                remembered_route: bool = True) -> tuple[str, Any]:
        """(channel, answer) of the one channel that answers ``function`` (:meth:`_answers`): found on two
        channels (two holders' own numbering of lots, or an authorisation id granted on both) it is 409
        ``ambiguous-channel``: name one. An authorisation's channel is remembered once found (unless not
        ``remembered_route``): it lives on one channel, its holder's."""
        found = self._answers(org, function, json_args, args, remembered_route)
        if len(found) > 1:
            raise Problem(409, "ambiguous-channel", f"{function}: answered on the channels {', '.join(sorted(found))}; "
                          "name one with the 'channel' parameter", extra={"channels": sorted(found)})
        (channel, raw), = found.items()
        route = _route_of(function, args)
        if route is not None:
            self._routes[route] = channel
        return channel, _decode(raw, function)

    def _answers(self, org: str, function: str, json_args: list[str], args: tuple,
                 remembered_route: bool = True) -> dict[str, bytes]:
        """Each channel's raw answer to ``function``, at least one: on the channel remembered for an
        authorisation (with ``remembered_route``; every channel if it no longer answers there), else on every
        channel — a lot, batch or bill id is looked up each time. A channel that fails (5xx) fails the lookup: it
        may hold the item too, and an answer from elsewhere could be the wrong holder's. Answered nowhere: the
        most telling refusal (a refusal of the request before a not found)."""
        route = _route_of(function, args)
        remembered = self._routes.get(route) if route is not None and remembered_route else None
        order = [remembered] if remembered else list(self.config.all_channels)
        found: dict[str, bytes] = {}
        refusals: list[Problem] = []
        for channel in order:
            try:
                found[channel] = self._evaluate_on(channel, org, function, json_args)
            except Problem as p:
                refusals.append(p)
        if not found and remembered:
            self._routes.pop(route, None)
            return self._answers(org, function, json_args, args, remembered_route=False)
        failed = [p for p in refusals if p.status >= 500]
        if failed and not remembered:
            raise failed[0]
        if not found:
            raise max(refusals, key=lambda p: p.status != 404)
        return found

    def channel_of_authorisation(self, org: str, authorisation_id: str) -> str:
        """The channel an event of ``authorisation_id`` goes to, as ``org`` may read it (its Problem otherwise):
        looked up on every channel each time, not on the route remembered for queries — an id granted since on
        a second holder's channel (a grant no gateway could refuse) is then 409 ``ambiguous-channel`` for every
        worker, rather than written to whichever channel one of them remembered."""
        if len(self.config.all_channels) == 1:
            return self.config.channel
        return self._search(org, "GetAuthorisation", [_json_arg(authorisation_id)], (authorisation_id,),
                            remembered_route=False)[0]

    def channel_of_event(self, org: str, parsed: ParsedEvent, requested: str | None) -> str:
        """Where an event goes: the ``requested`` channel, the only one, that of its authorisation, or for a
        grant the one channel where the holder is registered; else 400 ``channel-required``. A grant of an
        authorisation id another channel has is refused (409 ``already-exists``): an id names one
        authorisation on the whole ledger, whichever holder's channel it is on (a replay of the grant, on its
        own channel, is the contract's to answer)."""
        target = self._target_of_event(org, parsed, self.channels(requested))
        auth_id = parsed.event.get("authorisation_id")
        if parsed.type == "GrantAuthorisation" and isinstance(auth_id, str):
            self._refuse_an_id_taken_elsewhere(org, auth_id, target)
        if parsed.type in declarations.SIDES:
            self._refuse_a_declaration_used_elsewhere(org, parsed, target)
        return target

    def _target_of_event(self, org: str, parsed: ParsedEvent, channels: tuple[str, ...]) -> str:
        if len(channels) == 1:
            return channels[0]
        auth_id = parsed.event.get("authorisation_id")
        if isinstance(auth_id, str) and parsed.type != "GrantAuthorisation":
            return self.channel_of_authorisation(org, auth_id)
        holder = parsed.event.get("holder_eori")
        if parsed.type == "GrantAuthorisation" and isinstance(holder, str):
            registered = self._channels_registering(org, holder, channels)
            if len(registered) == 1:
                return registered[0]
        raise self._channel_required(parsed.type, channels)

    def _elsewhere(self, org: str, target: str, function: str, arg: str):
        """(channel, raw answer) of ``function(arg)`` as ``org`` on each channel served but ``target`` that answers
        it; a refusal (not there, not the caller's to see) is skipped, a failure (5xx) raised: the check it serves
        is not skipped."""
        for channel in self.config.all_channels:
            if channel == target:
                continue
            try:
                yield channel, self._evaluate_on(channel, org, function, [_json_arg(arg)])
            except Problem as p:
                if p.status >= 500:
                    raise

    def _refuse_an_id_taken_elsewhere(self, org: str, auth_id: str, target: str) -> None:
        for channel, _answer in self._elsewhere(org, target, "GetAuthorisation", auth_id):
            raise Problem(409, "already-exists", f"authorisation {auth_id} exists on another holder's channel",
                          extra={"channels": [channel]})

    def _refuse_a_declaration_used_elsewhere(self, org: str, parsed: ParsedEvent, target: str) -> None:
        """A declaration item (MRN + item) is used once — a placement or an exit —, or by the two sides of one 5151
        transfer. Each holder's channel checks its own items only: a gateway serving several (customs', a
        representative's mandated by several holders) looks at the others too, as ``org`` may read them
        (``GetDeclaration``: the items of authorisations it stands for), and refuses what one channel would —
        409 ``duplicate-declaration``, or ``transfer-mismatch`` when the other side of a transfer names other goods
        (the fields it can compare before the contract reads the goods). A gateway of one channel cannot see the
        others (docs/deployment.md, "Several holders"); another channel failing (5xx) fails the event, as for a
        grant: the check is not skipped."""
        mrn, item_no = parsed.event.get("mrn"), parsed.event.get("item_no", 1)
        if len(self.config.all_channels) == 1 or not isinstance(mrn, str) or type(item_no) is not int:
            return   # one channel: the contract checks; a malformed item: the contract refuses it
        use = {**parsed.event, "side": declarations.SIDES[parsed.type]}
        for channel, answer in self._elsewhere(org, target, "GetDeclaration", mrn):
            for item in (_decode(answer, "GetDeclaration") or {}).get("items", []):
                if not isinstance(item, dict) or item.get("item_no") != item_no:
                    continue
                found = declarations.conflict({**item, "side": item.get("type")}, use)
                if found is None:
                    continue
                problem, differ = found
                if problem == declarations.DUPLICATE:
                    raise Problem(409, "duplicate-declaration", f"declaration {mrn} item {item_no} is already used "
                                  f"on another holder's channel", extra={"mrn": mrn, "item_no": item_no,
                                                                         "channels": [channel]})
                raise Problem(409, "transfer-mismatch", f"declaration {mrn} item {item_no}: the other side of the "
                              f"transfer, on another holder's channel, names other goods ({', '.join(differ)} "
                              f"differ)", extra={"mrn": mrn, "item_no": item_no, "differ": differ,
                                                 "channels": [channel]})

    def _channels_registering(self, org: str, holder_eori: str, channels: tuple[str, ...]) -> list[str]:
        """The channels whose register of parties has a holder with ``holder_eori`` (a grant goes there)."""
        out = []
        for channel in channels:
            try:
                register = _decode(self._evaluate_on(channel, org, "GetParties", []), "GetParties")
            except Problem as p:
                if p.status >= 500:
                    raise  # the ledger failing is not the caller's missing channel
                continue
            if any(p.get("role") == "holder" and p.get("status") == "REGISTERED" and holder_eori in p.get("eoris", [])
                   for p in (register or {}).get("parties", []) if isinstance(p, dict)):
                out.append(channel)
        return out

    def block_number(self, org: str, tx_id: str, channel: str | None = None) -> int | None:
        return self.locate(org, tx_id, channel)[1]

    def locate(self, org: str, tx_id: str, channel: str | None = None) -> tuple[str | None, int | None]:
        """(channel, block number) of transaction ``tx_id``; (None, None) when no channel has it."""
        last = None
        for ch in self.channels(channel):
            try:
                return ch, self._call("block_lookup", "GetBlockByTxID", self.ledger.block_number, org, tx_id,
                                      **self._on(ch))
            except Problem as p:
                last = p
        log.warning("block of tx %s not found (%s)", tx_id, last.name if last else "-", extra={"tx_id": tx_id})
        return None, None

    def channel_members(self, org: str, channel: str | None = None) -> dict:
        """The channel's organisations from its current config block, read as ``org``
        (see network/fabric/membership.py), with the consortium file's descriptions. On a gateway of several
        channels without ``channel``: the first, and under ``channels`` every one."""
        channels = self.channels(channel)
        each = [self._members(org, ch) for ch in channels]
        if len(each) == 1:
            return each[0]
        return {**each[0], "channels": each}

    def _members(self, org: str, channel: str) -> dict:
        from ipledger.network.fabric.membership import describe_block
        raw = self._call("evaluate", "GetConfigBlock", self.ledger.config_block, org, **self._on(channel))
        try:
            members = describe_block(raw)
        except Exception as e:  # noqa: BLE001 - an unreadable block is the peer's fault, not the caller's
            log.error("the config block is unreadable: %s", type(e).__name__)
            raise Problem(502, "ledger-error", "the peer returned an unreadable config block") from None
        for entry in members["organisations"]:
            entry["description"] = self.config.descriptions.get(entry["msp_id"], "")
        return {"channel": channel, **members}

    # -- events -------------------------------------------------------------------------------------------
    def submit_event(self, org: str, parsed: ParsedEvent, channel: str | None = None) -> tuple[int, dict]:
        """Submit one event as ``org``: (201, outcome) when recorded now, (200, outcome) for a replay of
        an event already recorded (the original transaction), or raise a Problem. On a gateway of several
        channels the event goes to :meth:`channel_of_event`, named in the outcome."""
        parsed = self.nonce.apply(parsed)
        kw = self._on(self.channel_of_event(org, parsed, channel))
        try:
            res = self._call("submit", parsed.type, self.ledger.submit, org, parsed.type, [parsed.argument()],
                             parsed.transient(), retry_transient=True, **kw)
        except Problem as p:
            found = self._recorded_meanwhile(org, parsed, kw) if p.name == "transaction-conflict" else None
            if found is not None:
                self.metrics.events.labels(parsed.type, "replayed").inc()
                return 200, {"event_id": parsed.event_id, "type": parsed.type, "org": org, **kw, **found}
            self.metrics.events.labels(parsed.type, "refused" if p.status < 500 else "failed").inc()
            raise
        result = _decode(res.result, parsed.type)
        original_tx = result.get("tx_id") if isinstance(result, dict) else None
        outcome = {"event_id": parsed.event_id, "type": parsed.type, "org": org, **kw}
        if original_tx and original_tx != res.tx_id:
            # the contract answered with the result recorded the first time: nothing was written now
            outcome.update(status="REPLAYED", tx_id=original_tx,
                           block_number=self.block_number(org, original_tx, kw.get("channel")),
                           recorded_at=result.get("recorded_at"), replay_tx_id=res.tx_id, result=result)
            self.metrics.events.labels(parsed.type, "replayed").inc()
            return 200, outcome
        outcome.update(status="COMMITTED", tx_id=res.tx_id, block_number=res.block_number,
                       recorded_at=result.get("recorded_at") if isinstance(result, dict) else None, result=result)
        self.metrics.events.labels(parsed.type, "committed").inc()
        return 201, outcome

    def _recorded_meanwhile(self, org: str, parsed: ParsedEvent, kw: dict) -> dict | None:
        """The replay outcome of an event whose own transaction kept conflicting because the same event, sent at the
        same time (a resend crossing the first attempt), was recorded by another transaction: the event evaluated
        on the organisation's own peer answers with that transaction, which is in a block. None when it is not
        recorded (an evaluation of a new event answers with a transaction of its own, in no block), is refused (the
        same event_id with other content) or cannot be read: the conflict stands, to send again."""
        try:
            raw = self._call("evaluate", parsed.type, self.ledger.evaluate, org, parsed.type, [parsed.argument()],
                             transient=parsed.transient(), **kw)
            result = json.loads(raw)
        except (Problem, ValueError):
            return None
        original = result.get("tx_id") if isinstance(result, dict) else None
        if not isinstance(original, str):
            return None
        try:
            block = self._timed("block_lookup", "GetBlockByTxID", self.ledger.block_number, org, original, **kw)
        except Exception as exc:  # noqa: BLE001 - the conflict stands: the event is to be sent again either way
            # a new event's evaluation answers with a transaction of its own, in no block: the usual case
            if any(text in str(exc) for text in NOT_IN_A_BLOCK):
                log.info("after a conflict, %s is in no block of %s's peer: the event is not recorded", original, org,
                         extra={"org": org, "tx_id": original})
            else:
                log.warning("after a conflict, whether %s is in a block could not be read on %s's peer (%s)",
                            original, org, type(exc).__name__, extra={"org": org, "tx_id": original})
            return None
        if not isinstance(block, int):
            return None
        return {"status": "REPLAYED", "tx_id": original, "block_number": block,
                "recorded_at": result.get("recorded_at"), "result": result}

    # -- audit trails ---------------------------------------------------------------------------------------
    def use_block_index(self, index) -> None:
        """Read block numbers from ``index`` (``blocks_of(tx_ids)``: the feed database, which the dashboard's live
        services give here, gateway/dashboard/live.py) before asking the peer."""
        self.block_index = index

    def with_blocks(self, org: str, entries: list[dict], channel: str | None = None) -> list[dict]:
        """Add ``block_number`` to entries carrying a ``tx_id``, on a gateway of several channels their
        ``channel`` too. A transaction the feed database holds (``block_index``: every transaction of the contract
        has its chaincode event there once the live feed has stored it) is found there, on the channel asked;
        the others are looked up on the peer, at most ``block_lookups`` of them (the one a look-up found, else
        the channel asked: entries past the budget or not found keep it, and every look-up searches the channel
        asked, not all)."""
        budget = self.config.block_lookups
        several = len(self.config.all_channels) > 1
        known: dict[str, tuple[str | None, int | None]] = {}
        if self.block_index is not None:
            tx_ids = [e["tx_id"] for e in entries if isinstance(e, dict) and isinstance(e.get("tx_id"), str)]
            for tx_id, (found, block) in self.block_index.blocks_of(tx_ids).items():
                found = found or self.config.channel   # stored without a name on a gateway of one channel
                if channel is None or found == channel:
                    known[tx_id] = (found, block)
        out = []
        for entry in entries:
            tx_id = entry.get("tx_id") if isinstance(entry, dict) else None
            if not isinstance(tx_id, str):
                out.append(entry)
                continue
            if tx_id not in known:
                if budget <= 0:
                    known[tx_id] = (None, None)
                else:
                    budget -= 1
                    known[tx_id] = self.locate(org, tx_id, channel)
            found, block = known[tx_id]
            out.append({**entry, "block_number": block,
                        **({"channel": found if found is not None else channel} if several else {})})
        return out


def _decode(raw: bytes, function: str) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        log.error("%s returned a payload that is not JSON", function, extra={"function": function})
        raise Problem(502, "ledger-error", "the contract returned an unreadable answer") from None
