"""A fake Fabric client for the gateway's unit tests, and builders of events (domain.md §8 data).

``FakeLedger`` implements the gateway's Ledger interface. Submits behave like
the contract's idempotency: a new event_id is recorded in a new "block"; the
same event_id with the same content returns the ORIGINAL result (with a new,
no-op transaction id); other content raises DuplicateEvent. Failures are
scripted with ``fail_submit`` / ``fail_evaluate``.
"""
from __future__ import annotations

import hashlib
import contextlib
import itertools
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc

from ipledger.gateway.client import CommitError, EndorseError, ErrorDetail, EvaluateError

AUTH_ID = "FRIPO000001"
HOLDER = "FR12345678901234"
SITE1, SITE2 = "BOURGES-1", "BOURGES-2"
OCCURRED = "2026-03-02T09:00:00Z"


def endorse_error(code: str, message: str = "refused", details: dict | None = None, tx_id: str = "ab" * 32):
    """What the Gateway client raises when the contract refuses a submit (as a real peer reports it)."""
    text = json.dumps({"code": code, "message": message, "details": details or {}})
    return EndorseError("failed to endorse transaction, see attached details for more info",
                        code=grpc.StatusCode.ABORTED, tx_id=tx_id,
                        details=[ErrorDetail("127.0.0.1:7101", "CustomsMSP", f"chaincode response 500, {text}")])


def not_in_a_block(tx_id: str):
    """What a peer's qscc answers GetBlockByTxID for a transaction id in none of its blocks."""
    text = f"chaincode response 500, Failed to get block for txID {tx_id}, error no such transaction ID [{tx_id}] in index"
    return EvaluateError(f"evaluate call to endorser returned error: {text}", code=grpc.StatusCode.UNKNOWN,
                         details=[ErrorDetail("127.0.0.1:7101", "OperatorMSP", text)])


def evaluate_error(code: str, message: str = "refused", details: dict | None = None):
    text = json.dumps({"code": code, "message": message, "details": details or {}})
    return EvaluateError(f"evaluate call to endorser returned error: chaincode response 500, {text}",
                         code=grpc.StatusCode.UNKNOWN, tx_id="cd" * 32,
                         details=[ErrorDetail("127.0.0.1:7101", "OperatorMSP", f"chaincode response 500, {text}")])


def unavailable(step=EndorseError):
    return step("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:7101: "
                "Failed to connect to remote host: Connection refused", code=grpc.StatusCode.UNAVAILABLE)


def timed_out(step=EndorseError):
    return step("Deadline Exceeded", code=grpc.StatusCode.DEADLINE_EXCEEDED, tx_id="ef" * 32)


def endorsement_mismatch(tx_id: str = "56" * 32):
    """Endorsing peers that simulated against different world-state versions (concurrent commits)."""
    return EndorseError("failed to collect enough transaction endorsements, see attached details for more info",
                        code=grpc.StatusCode.ABORTED, tx_id=tx_id,
                        details=[ErrorDetail("127.0.0.1:7111", "CustomsMSP", "ProposalResponsePayloads do not match")])


def mvcc_conflict(tx_id: str = "12" * 32):
    return CommitError(tx_id, 11, "MVCC_READ_CONFLICT", 42)


@dataclass
class Result:
    tx_id: str
    result: bytes
    block_number: int
    status: str = "VALID"
    attempts: int = 1


@dataclass
class FakeLedger:
    org_list: tuple[str, ...] = ("CustomsMSP", "OperatorMSP", "BrokerMSP")
    submits: list[dict] = field(default_factory=list)
    evaluations: list[dict] = field(default_factory=list)
    answers: dict = field(default_factory=dict)          # function -> value (JSON-able) or callable(org, args)
    submit_failures: list = field(default_factory=list)  # exceptions raised by the next submits, in order
    evaluate_failures: list = field(default_factory=list)
    fail_submits_for: dict = field(default_factory=dict)  # event_id -> exception (every time)
    down: bool = False
    closed: bool = False

    def __post_init__(self):
        self._lock = threading.Lock()
        self._tx = itertools.count(1)
        self._block = itertools.count(5)
        self._height = 5
        self.recorded: dict[str, tuple[str, dict]] = {}   # event_id -> (content hash, result)
        self.blocks: dict[str, int] = {}
        self._config_block: bytes | None = None

    def orgs(self):
        return list(self.org_list)

    def _tx_id(self) -> str:
        return hashlib.sha256(f"tx-{next(self._tx)}".encode()).hexdigest()

    def submit(self, org, function, args, transient=None):
        for a in [*args, *(transient or {}).values()]:
            a.encode("utf-8") if isinstance(a, str) else bytes(a)  # as building the real proposal does
        with self._lock:
            event = json.loads(args[0])
            self.submits.append({"org": org, "function": function, "args": list(args), "event": event,
                                 "transient": dict(transient or {})})
            if self.down:
                raise unavailable()
            if event.get("event_id") in self.fail_submits_for:
                raise self.fail_submits_for[event["event_id"]]
            if self.submit_failures:
                raise self.submit_failures.pop(0)
            tx_id = self._tx_id()
            self._height += 1
            content = hashlib.sha256(json.dumps([org, function, event, {k: v.decode() for k, v in
                                                                        (transient or {}).items()}],
                                                sort_keys=True).encode()).hexdigest()
            seen = self.recorded.get(event["event_id"])
            block = next(self._block)
            self.blocks[tx_id] = block
            if seen is not None:
                if seen[0] != content:
                    raise endorse_error("DuplicateEvent", f"event_id {event['event_id']} was already used for "
                                                          f"other content",
                                        {"event_id": event["event_id"], "original_tx_id": seen[1]["tx_id"]}, tx_id)
                return Result(tx_id, json.dumps(seen[1]).encode(), block)
            result = {"event_type": function, "event_id": event["event_id"], "tx_id": tx_id,
                      "recorded_at": "2026-03-02T09:00:00.000000Z"}
            self.recorded[event["event_id"]] = (content, result)
            return Result(tx_id, json.dumps(result).encode(), block)

    def evaluate(self, org, function, args, *, timeout=None, transient=None):
        with self._lock:
            self.evaluations.append({"org": org, "function": function, "args": [json.loads(a) for a in args]})
            if self.down:
                raise unavailable(EvaluateError)
            if self.evaluate_failures:
                raise self.evaluate_failures.pop(0)
        answer = self.answers.get(function, {"function": function})
        if callable(answer):
            answer = answer(org, [json.loads(a) for a in args])
        if isinstance(answer, bytes):
            return answer
        return json.dumps(answer).encode()

    def height(self, org):
        """One past the last block: each submit that reached the fake's ledger made a block."""
        with self._lock:
            self.evaluations.append({"org": org, "function": "GetChainInfo", "args": []})
            if self.down:
                raise unavailable(EvaluateError)
            return self._height

    def block_number(self, org, tx_id):
        if self.down:
            raise unavailable(EvaluateError)
        if tx_id not in self.blocks:
            raise not_in_a_block(tx_id)
        return self.blocks[tx_id]

    def config_block(self, org):
        with self._lock:
            self.evaluations.append({"org": org, "function": "GetConfigBlock", "args": []})
            if self.down:
                raise unavailable(EvaluateError)
            if self._config_block is None:
                self._config_block = default_config_block()
            return self._config_block

    def close(self):
        self.closed = True


def default_config_block() -> bytes:
    """Block 2 holding a channel config of the three application orgs and the orderer org."""
    from tests.unit.network.channel_config import FakeOrg, config_block, make_config
    orgs = [FakeOrg(m) for m in ("CustomsMSP", "OperatorMSP", "BrokerMSP")]
    return config_block(make_config(orgs, FakeOrg("OrdererMSP")), 2)


# ------------------------------------------------------------------------------------------ events

def grant_body(event_id: str = "grant-1", **overrides) -> dict:
    body = {
        "type": "GrantAuthorisation", "event_id": event_id, "authorisation_id": AUTH_ID, "occurred_at": OCCURRED,
        "holder_eori": HOLDER, "supervising_office": "FR000110", "valid_from": "2026-01-31",
        "valid_to": "2027-01-31", "sites": [SITE1, SITE2],
        "input_goods": [{"cn": "40122000", "description": "used tyres", "unit": "p/st", "max_qty": 5000}],
        "processed_products": [{"cn": "40121200", "kind": "MAIN", "unit": "p/st"},
                               {"cn": "40040000", "kind": "WASTE", "unit": "kg"}],
        "yield_rates": [{"input_cn": "40122000", "output_cn": "40121200", "output_per_input": 1}],
        "yield_warn_pct": 0.5, "yield_block_pct": 2, "discharge_period_days": 180,
        "broker_mandates": ["FR98765432109876"],
    }
    body.update(overrides)
    return body


def place_body(event_id: str = "place-L1", lot_id: str = "L1", quantity: int = 1000, value: str = "25000.00",
               **overrides) -> dict:
    body = {
        "type": "PlaceUnderProcedure", "event_id": event_id, "authorisation_id": AUTH_ID, "occurred_at": OCCURRED,
        "lot_id": lot_id, "mrn": "26FR000110000001R8", "item_no": 1, "procedure": "5100", "cn": "40122000",
        "description": "used tyres", "quantity": quantity, "unit": "p/st", "net_mass_g": 9_000_000,
        "origin": "MA", "site": SITE1,
        "commercial": {"customs_value": {"amount": value, "currency": "EUR"}},
    }
    body.update(overrides)
    return body


def move_body(event_id: str = "move-1", quantity: int = 400, **overrides) -> dict:
    body = {"type": "MoveGoods", "event_id": event_id, "authorisation_id": AUTH_ID, "occurred_at": OCCURRED,
            "lot_id": "L1", "quantity": quantity, "from_site": SITE1, "to_site": SITE2}
    body.update(overrides)
    return body


@contextlib.contextmanager
def dripping_subscriber(tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """A webhook subscriber on 127.0.0.1 that reads the request, answers its status line, then one header byte
    every 0.1 s for 6 s (over TLS with ``tls``, a server context); yields its URL and stops when left."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    done = threading.Event()

    def serve():
        try:
            raw, _ = listener.accept()
            with (tls.wrap_socket(raw, server_side=True) if tls else raw) as conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                for _ in range(60):
                    if done.wait(0.1):
                        break
                    conn.sendall(b"a")
        except OSError:
            pass
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{listener.getsockname()[1]}/hook"
    finally:
        done.set()
        thread.join(10)
        listener.close()
