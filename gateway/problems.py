"""RFC 9457 problem details (``application/problem+json``) and the mapping of every failure to one.

Every error answer of the API is a problem object::

    {"type": "https://ipledger.example/problems/quantity-exceeds-balance",
     "title": "Quantity exceeds balance", "status": 409,
     "detail": "600 p/st of L1 asked, 500 at BOURGES-1",
     "instance": "urn:ipledger:request:5f0c…", "request_id": "5f0c…",
     "code": "QuantityExceedsBalance", "details": {...the contract's details...}}

``type`` is stable per chaincode error code (the code in kebab case under
:data:`PROBLEM_BASE`) and per gateway failure (``unauthenticated``,
``forbidden``, ``service-unavailable``…). :data:`PROBLEM_TYPES` lists them all
with their HTTP status; the OpenAPI document and the docs page are generated
from it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import grpc

from ipledger.chaincode.contract.errors import RULES  # the contract's stable error codes (allowed import)

PROBLEM_BASE = "https://ipledger.example/problems/"
MEDIA_TYPE = "application/problem+json"

# -- chaincode error codes -> HTTP status ----------------------------------------------------------------
_CONFLICT = 409
CHAINCODE_STATUS: dict[str, int] = {
    "InvalidEvent": 400,
    "InvalidMrn": 400,          # an InvalidEvent: the MRN's length, category letter or check digit
    "InvalidIdentifier": 400,   # an InvalidEvent: an identifier with a newline or a control character
    "NotPermitted": 403,
    "UnknownParty": 403,        # a NotPermitted: the org is not in customs' register of parties (fail closed)
    "PartyWithdrawn": 403,      # a NotPermitted: customs withdrew the org from the register
    "EoriNotRegistered": 403,   # a NotPermitted: the certificate's eori is not one customs registered for the org
    "NotFound": 404,
    "AuthorisationNotActive": _CONFLICT,
    "AuthorisationExpired": _CONFLICT,
    "GoodsNotCovered": _CONFLICT,
    "SiteNotAuthorised": _CONFLICT,
    "CeilingExceeded": _CONFLICT,
    "QuantityExceedsBalance": _CONFLICT,
    "UnitMismatch": _CONFLICT,
    "YieldOutOfTolerance": _CONFLICT,
    "DeadlinePassed": _CONFLICT,
    "DuplicateEvent": _CONFLICT,
    "DuplicateDeclaration": _CONFLICT,
    "TransferMismatch": _CONFLICT,       # the two sides of a 5151 transfer name other goods
    "ExitMismatch": _CONFLICT,           # ConfirmExit: an item named with another quantity than its exit's
    "OutOfOrder": _CONFLICT,
    "AlreadyExists": _CONFLICT,
    "InvalidState": _CONFLICT,
    "PeriodNotEnded": _CONFLICT,
    "HashMismatch": _CONFLICT,
    "EoriTaken": _CONFLICT,              # RegisterParty: the EORI belongs to another registered party
    "CustomsNotRegistrable": _CONFLICT,  # RegisterParty: customs' own organisation is not a holder or representative
    "HolderNotRegistered": _CONFLICT,    # GrantAuthorisation / a representative's placement: the holder is not registered
    # the gateway host's clock differs from the endorsing peers': not the caller's fault
    "ClockSkew": 502,
    # the deployed contract does not know which organisation is customs (IPLEDGER_CUSTOMS_MSP): not the caller's
    "DeploymentNotConfigured": 502,
    # the ledger holds a record without the one written with it: a damaged ledger, not the caller's request
    "LedgerInconsistent": 502,
    # codes of the shim's contract API (chaincode/shim/contract_api.py)
    "InvalidArguments": 502,  # the gateway's arguments do not fit the deployed contract: version mismatch
    "UnknownFunction": 502,   # the deployed contract does not know the function: version mismatch
    "InternalError": 502,     # a bug in the contract; its text is not passed on
}
# chaincode codes whose message/details are not passed on to the caller
_OPAQUE_CODES = frozenset({"InternalError", "UnknownFunction"})
# refusals that other events can cure: the goods, batch or declaration not recorded yet, a balance a placement or
# move has still to bring, a ceiling an exit has still to free, an authorisation customs have still to reinstate, a
# period they have still to extend. An ERP catching up on a backlog in another order than the goods moved gets
# these for events sent before the ones they depend on: their problem says ``"may_succeed_later": true`` (send
# again after the others; ``ipledger import`` does), every other refusal stays final whatever follows.
MAY_SUCCEED_LATER = frozenset({"NotFound", "QuantityExceedsBalance", "CeilingExceeded", "AuthorisationNotActive",
                               "DeadlinePassed"})


def slug(code: str) -> str:
    """``QuantityExceedsBalance`` -> ``quantity-exceeds-balance``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", code).lower()


def title_of(code_or_slug: str) -> str:
    words = slug(code_or_slug).replace("-", " ")
    return words[:1].upper() + words[1:]


def type_uri(name: str) -> str:
    return PROBLEM_BASE + name


# gateway-level problem types (slug -> (status, title))
GATEWAY_PROBLEMS: dict[str, tuple[int, str]] = {
    "bad-request": (400, "Bad request"),
    "invalid-event": (400, "Invalid event"),          # same type as the chaincode's InvalidEvent
    "invalid-parameter": (400, "Invalid parameter"),
    # a gateway serving several holders' channels (customs'): which one a call is for
    "channel-required": (400, "Channel required"),
    "unknown-channel": (400, "Unknown channel"),
    "unauthenticated": (401, "Unauthenticated"),
    "forbidden": (403, "Forbidden"),
    # mutual TLS: the client certificate's organisation is not the API key's (gateway/tls.py)
    "client-certificate-mismatch": (403, "Client certificate mismatch"),
    "not-found": (404, "Not found"),
    "method-not-allowed": (405, "Method not allowed"),
    "transaction-conflict": (409, "Transaction conflict"),
    "ambiguous-channel": (409, "Ambiguous channel"),    # an id found on several holders' channels
    "payload-too-large": (413, "Payload too large"),
    # refused by gunicorn before the app sees the request (gateway/server.py write_problem)
    "uri-too-long": (414, "URI too long"),
    "expectation-failed": (417, "Expectation failed"),
    "request-header-fields-too-large": (431, "Request header fields too large"),
    "not-implemented": (501, "Not implemented"),   # a transfer coding gunicorn does not take
    "unsupported-media-type": (415, "Unsupported media type"),
    # a cap on open live-feed streams (gateway/dashboard/streams.py); Retry-After
    "too-many-requests": (429, "Too many requests"),
    "internal-error": (500, "Internal error"),
    "ledger-error": (502, "Ledger error"),
    "service-unavailable": (503, "Service unavailable"),
    "gateway-timeout": (504, "Gateway timeout"),
}


def problem_types() -> dict[str, dict]:
    """Every problem type the API can answer: URI -> {status, title, code?}."""
    out = {}
    for name, (status, title) in GATEWAY_PROBLEMS.items():
        out[type_uri(name)] = {"status": status, "title": title}
    for code in (*RULES, *CHAINCODE_STATUS):
        out[type_uri(slug(code))] = {"status": CHAINCODE_STATUS.get(code, _CONFLICT), "title": title_of(code),
                                     "code": code}
    return dict(sorted(out.items()))


@dataclass(eq=False)
class Problem(Exception):
    """An error answer. Raise it anywhere in a request; the app renders it."""
    status: int
    name: str                      # the slug of the type URI
    detail: str = ""
    title: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        super().__init__(self.detail)
        if self.title is None:
            self.title = GATEWAY_PROBLEMS.get(self.name, (None, title_of(self.name)))[1]

    @property
    def type(self) -> str:
        return type_uri(self.name)

    def body(self, request_id: str | None) -> dict[str, Any]:
        body = {"type": self.type, "title": self.title, "status": self.status, "detail": self.detail}
        if request_id:
            body["instance"] = f"urn:ipledger:request:{request_id}"
            body["request_id"] = request_id
        for k, v in self.extra.items():
            body.setdefault(k, v)
        return body


# the problems of what Werkzeug refuses before a view runs (or a view aborts with), by HTTP status
HTTP_PROBLEMS = {400: "bad-request", 401: "unauthenticated", 403: "forbidden", 404: "not-found",
                 405: "method-not-allowed", 413: "payload-too-large", 415: "unsupported-media-type"}


def from_http_exception(exc, detail: str | None = None) -> Problem:
    """The problem for a Werkzeug ``HTTPException`` (its status's, ``bad-request`` or ``internal-error`` for
    another), with ``detail`` (default: the exception's description) and, for a 405, the ``Allow`` header every
    405 must carry."""
    status = exc.code or 500
    name = HTTP_PROBLEMS.get(status)
    if name is None:
        name = "bad-request" if 400 <= status < 500 else "internal-error"
        status = GATEWAY_PROBLEMS[name][0]
    problem = Problem(status, name, exc.description or "" if detail is None else detail)
    if status == 405 and getattr(exc, "valid_methods", None):
        problem.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
    return problem


def response(problem: Problem, request_id: str | None = None):
    """The problem+json answer of ``problem``, with its headers (``Retry-After``, ``Allow``,
    ``WWW-Authenticate``): every part of the gateway answers its problems so."""
    from flask import jsonify
    answer = jsonify(problem.body(request_id))
    answer.status_code = problem.status
    answer.mimetype = MEDIA_TYPE
    for k, v in problem.headers.items():
        answer.headers[k] = v
    return answer


def gateway_problem(name: str, detail: str, **extra) -> Problem:
    status, title = GATEWAY_PROBLEMS[name]
    return Problem(status, name, detail, title, extra)


def chaincode_problem(error: dict, tx_id: str | None = None) -> Problem:
    """The problem for the contract's ``{"code", "message", "details"}``."""
    code = str(error.get("code") or "ChaincodeError")
    status = CHAINCODE_STATUS.get(code, _CONFLICT)  # an unknown (new) rule is a refusal of the event
    extra: dict[str, Any] = {"code": code}
    if code in _OPAQUE_CODES:
        detail = "the contract failed to process the request" if code == "InternalError" \
            else "the deployed contract does not provide this function"
    else:
        detail = str(error.get("message") or title_of(code))
        details = error.get("details")
        if details:
            extra["details"] = details
            if code in ("InvalidEvent", "InvalidMrn") and isinstance(details, dict) and "errors" in details:
                extra["errors"] = details["errors"]
    if code in MAY_SUCCEED_LATER:
        extra["may_succeed_later"] = True
    if tx_id:
        extra["tx_id"] = tx_id
    return Problem(status, slug(code), detail, title_of(code), extra)


ENDORSEMENT_MISMATCH = "ProposalResponsePayloads do not match"


def race_kind(exc: Exception) -> str | None:
    """Why a submit failed only because of concurrent transactions on the same keys, or None:

    * ``endorsement-mismatch`` — the endorsing peers simulated against different versions of the world
      state (one had committed a block the other had not yet): Endorse fails with ABORTED, "failed to
      collect enough transaction endorsements ... ProposalResponsePayloads do not match";
    * ``out-of-order`` — the contract's OutOfOrder for a transaction timestamped before the last change of
      the goods (details ``last_change``): a concurrent transaction, created later, committed first.

    Nothing was ordered in either case, so a new proposal (new timestamp, fresh state) is safe.
    (MVCC read conflicts are retried by the Fabric client itself.)"""
    from ipledger.gateway.client import EndorseError

    if not isinstance(exc, EndorseError):
        return None
    cc = exc.chaincode_error
    if cc is not None:
        details = cc.get("details")
        if cc.get("code") == "OutOfOrder" and isinstance(details, dict) and "last_change" in details:
            return "out-of-order"
        return None
    if exc.code == grpc.StatusCode.ABORTED and any(ENDORSEMENT_MISMATCH in d.message for d in exc.details):
        return "endorsement-mismatch"
    return None



# FAILED_PRECONDITION texts of Fabric's gateway meaning "not enough endorsers reachable".
# Fabric's gateway, asked to evaluate on organisations none of whose peers runs the chaincode (FAILED_PRECONDITION)
NO_PEER_TO_EVALUATE = "no peers available to evaluate chaincode"
ENDORSERS_UNREACHABLE = (
    "no combination of peers can be derived which satisfy the endorsement policy",
    "not in the distribution policy of the private data collection",
)

# an endorsing peer's contract process stopped during the simulation, did not answer within the peer's execute
# timeout, or could not be started (Fabric's core/chaincode): the proposal was not ordered
CONTRACT_NOT_RUNNING = (
    "chaincode stream terminated",
    CONTRACT_TIMED_OUT := "timeout expired while executing transaction",
    "could not launch chaincode",
    "chaincode registration failed",
)


# the answer of a contract whose fair admission ran nothing of a proposal that waited too long for its
# organisation's turn (chaincode/shim/admission.py BUSY; the gateway may use of the chaincode only its contract)
CONTRACT_BUSY = "chaincode busy"


def _endorser_texts(exc) -> tuple[str, ...]:
    return (exc.message, *(d.message for d in exc.details))


def contract_not_running(exc) -> bool:
    """The peer answered, its contract did not (its process stopped, hung past the execute timeout, or could not be
    launched): an endorsement or evaluation that failed with no answer of the contract in it."""
    from ipledger.gateway.client import EndorseError, EvaluateError

    return isinstance(exc, (EndorseError, EvaluateError)) and exc.chaincode_error is None \
        and exc.chaincode_status is None and any(m in text for text in _endorser_texts(exc) for m in CONTRACT_NOT_RUNNING)


def _query_ran_out_of_time(exc) -> bool:
    """A query the contract was still running when the peer's execute timeout ended it (a long history): asked again
    it runs as long; what helps is a narrower period."""
    return contract_not_running(exc) and any(CONTRACT_TIMED_OUT in text for text in _endorser_texts(exc))


def _peer_clock(exc) -> bool:
    """The refusal is the contract's ClockSkew: about a peer's clock, which no retry sets right."""
    return isinstance(exc.chaincode_error, dict) and exc.chaincode_error.get("code") == "ClockSkew"


def from_gateway_error(exc: Exception, retry_after: int, reading: bool = False) -> Problem:
    """Map a ``ipledger.gateway.client`` error (or a connection failure) to a problem. Never leaks internals:
    peer addresses and gRPC texts go to the log, not to the caller. ``reading``: the call was a query (an
    evaluation), which records nothing whatever its fate."""
    from fabric_protos.peer import transaction_pb2

    from ipledger.gateway.client import CommitError, CommitStatusError, EndorseError, GatewayError
    from ipledger.gateway.client.gateway import RETRYABLE_VALIDATION_CODES, is_lagging_endorser

    tx = {"tx_id": exc.tx_id} if getattr(exc, "tx_id", None) else {}
    retry = {"Retry-After": str(retry_after)}
    if race_kind(exc) == "out-of-order":
        # left after the service's own retries: the event is not refused, a concurrent transaction won the race
        details = exc.chaincode_error.get("details")
        return Problem(409, "transaction-conflict",
                       "a concurrent transaction on the same goods, created later, committed first; nothing was "
                       "recorded: send the event again (same event_id)",
                       extra={**tx, "reason": "out-of-order", **({"details": details} if details else {})},
                       headers=retry)
    if isinstance(exc, GatewayError) and is_lagging_endorser(exc) and not _peer_clock(exc):
        # left after the client's retries: the gateway's own peer accepted the proposal, another organisation's
        # peer (which has not caught up, or is ahead) refused it — the ledger has not refused the event. (Not a
        # ClockSkew: that peer's clock, not its blocks — the contract's answer below says so.)
        return Problem(503, "service-unavailable",
                       "the endorsing organisations' peers do not agree yet (one of them has not caught up with the "
                       "latest blocks); nothing was recorded: send the event again (same event_id)",
                       extra={**tx, "reason": "endorsers-disagree",
                              "code": str(exc.chaincode_error.get("code")) if exc.chaincode_error else None},
                       headers=retry)
    if isinstance(exc, GatewayError) and exc.chaincode_error is not None:
        return chaincode_problem(exc.chaincode_error, exc.tx_id)
    if isinstance(exc, CommitError):
        if exc.validation_code in RETRYABLE_VALIDATION_CODES:
            return Problem(409, "transaction-conflict",
                           "the transaction conflicted with concurrent transactions on the records it read (the same "
                           "goods, the authorisation's balances — a placement counts its ceiling —, a declaration "
                           "item) and was not committed; send the event again (same event_id)",
                           extra={**tx, "validation_code": exc.validation_code_name}, headers=retry)
        if exc.validation_code == transaction_pb2.DUPLICATE_TXID:
            # another copy of this very transaction (ordered twice) is in a block already, VALID or not: unknown
            return Problem(503, "service-unavailable",
                           "the transaction was ordered more than once and this copy was not the one that counts; "
                           "the event may or may not be recorded: send it again with the same event_id (replays "
                           "are safe)", extra={**tx, "validation_code": exc.validation_code_name}, headers=retry)
        return Problem(502, "ledger-error", f"the ledger did not commit the transaction "
                                            f"({exc.validation_code_name})",
                       extra={**tx, "validation_code": exc.validation_code_name})
    if race_kind(exc) == "endorsement-mismatch":
        return Problem(409, "transaction-conflict",
                       "concurrent transactions on the records it reads (the same goods, the authorisation's "
                       "balances, a declaration item) kept the endorsing peers from agreeing; send the event again "
                       "(same event_id)", extra={**tx, "reason": "endorsement-mismatch"},
                       headers=retry)
    code = getattr(exc, "code", None)
    if isinstance(exc, CommitStatusError) and code != grpc.StatusCode.DEADLINE_EXCEEDED:
        # Submit succeeded: the orderers have the transaction, only its fate is unknown. Never a final
        # "refused" (the caller could record the event again under another event_id): send it again.
        return Problem(503, "service-unavailable",
                       "the transaction was sent for ordering but its commit status could not be read; the event "
                       "may or may not be recorded: send it again with the same event_id (replays are safe)",
                       extra=tx, headers=retry)
    if code == grpc.StatusCode.FAILED_PRECONDITION and NO_PEER_TO_EVALUATE in str(exc):
        # a read is evaluated on the organisation's own peer only (gateway/ledger.py): that peer does not run the
        # contract yet — installed again after its ledger was rebuilt, or still catching up
        return Problem(503, "service-unavailable",
                       "this organisation's own peer cannot answer yet (the contract not installed on it, or its "
                       "ledger being rebuilt); nothing was changed: try again later", extra=tx, headers=retry)
    if isinstance(exc, EndorseError) and exc.chaincode_error is None and exc.chaincode_status is None and any(
            CONTRACT_BUSY in text for text in (exc.message, *(d.message for d in exc.details))):
        # an endorsing peer's contract had too many of this organisation's transactions waiting (its fair
        # admission, chaincode/shim/admission.py): it ran nothing of this one
        return Problem(503, "service-unavailable",
                       "the contract on an endorsing organisation's peer is busy with this organisation's other "
                       "transactions; " + ("nothing was changed: ask again" if reading else
                                           "nothing was recorded: send the event again (same event_id)"),
                       extra={**tx, "reason": "contract-busy"}, headers=retry)
    if reading and _query_ran_out_of_time(exc):
        return Problem(504, "gateway-timeout",
                       "the query did not finish within the peer's time for a contract call (a query over a long "
                       "history: narrow its period); nothing was changed", extra={**tx, "reason": "query-timeout"},
                       headers=retry)
    if contract_not_running(exc):
        # no contract answered: a peer's contract process died or hung — the peer starts it again at the next
        # proposal — or could not start. Endorsement (or the evaluation) failed: nothing was sent for ordering.
        return Problem(503, "service-unavailable",
                       "the contract did not answer on " + ("the organisation's" if reading else "an endorsing "
                       "organisation's") + " peer (its process stopped, timed out or could not start); " +
                       ("nothing was changed: ask again" if reading else
                        "nothing was recorded: send the event again (same event_id)"),
                       extra={**tx, "reason": "contract-unavailable"}, headers=retry)
    # every endorser that failed could not be reached or did not answer in time (Fabric's endorsement timeout)
    unreachable_endorsers = code == grpc.StatusCode.ABORTED and bool(getattr(exc, "details", None)) \
        and all(any(c in d.message for c in ("code = Unavailable", "code = DeadlineExceeded")) for d in exc.details)
    if unreachable_endorsers or (code == grpc.StatusCode.FAILED_PRECONDITION and any(
            m in str(exc) for m in ENDORSERS_UNREACHABLE)):
        # Fabric's gateway could not find enough reachable peers of the organisations
        # that must endorse (or receive the private data): it clears when they are back.
        return Problem(503, "service-unavailable",
                       "not enough of the endorsing organisations' peers can be reached right now; "
                       "nothing was recorded: try again later (same event_id)", extra=tx, headers=retry)
    if reading and code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return Problem(504, "gateway-timeout",
                       "the query did not finish in time (a query over a long history: narrow its period); nothing "
                       "was changed", extra={**tx, "reason": "query-timeout"}, headers=retry)
    if reading and code == grpc.StatusCode.CANCELLED:
        return Problem(503, "service-unavailable", "the query was interrupted; nothing was changed: try again",
                       extra=tx, headers=retry)
    if code == grpc.StatusCode.CANCELLED or (isinstance(exc, ValueError) and "closed channel" in str(exc)):
        # The gateway's connection to its peer was closed under the request (a worker
        # shutting down): the transaction may have been ordered.
        return Problem(503, "service-unavailable",
                       "the request was interrupted; the event may or may not be recorded: send it again "
                       "with the same event_id (replays are safe)", extra=tx, headers=retry)
    if code == grpc.StatusCode.UNAVAILABLE or isinstance(exc, (ConnectionError, OSError)):
        return Problem(503, "service-unavailable", "the ledger network cannot be reached; try again later",
                       extra=tx, headers=retry)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return Problem(504, "gateway-timeout",
                       "the ledger did not answer in time; the event may or may not be recorded: send it again "
                       "with the same event_id (replays are safe)", extra=tx, headers=retry)
    if isinstance(exc, GatewayError) and exc.chaincode_status is not None and 400 <= exc.chaincode_status < 500:
        return Problem(400, "bad-request", exc.chaincode_message or "the contract refused the request", extra=tx)
    return Problem(502, "ledger-error", "the ledger refused or failed the request", extra=tx)
