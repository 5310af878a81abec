"""The contract's test Scenario, driven through real peers instead of the in-memory ledger.

Same methods and results as ``ipledger.chaincode.testing.scenario.Scenario`` (so the §8
steps and the role-matrix events are reused as they are), but every submit is
endorsed, ordered and committed on the real channel through the Gateway, and
``refused`` proves "nothing written" by the channel height not moving.
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

from ipledger.chaincode.testing.memstub import TxResult
from ipledger.chaincode.testing.scenario import CUSTOMS_MSP, Scenario, iso
from ipledger.gateway.client import EndorseError, EvaluateError

UTC = dt.timezone.utc


def _transient(transient: dict | None) -> dict | None:
    if not transient:
        return None
    return {k: v if isinstance(v, bytes) else json.dumps(v).encode() for k, v in transient.items()}


class RealScenario(Scenario):
    def __init__(self, clients, chaincode: str):
        self.clients = clients
        self.chaincode = chaincode
        self.day = dt.datetime.now(UTC).replace(microsecond=0)
        self.ledger = None
        self.customs_msp = CUSTOMS_MSP   # as the package's manifest names it (customs_msp)
        self.broker_eori = self.operator_eori = None  # cryptogen certs carry no EORI attribute
        self.register_parties()   # customs register the holder and the broker (re-registering replaces)

    def height(self) -> int:
        net = self.clients.net
        return net.peer_height(net.consortium.node("peer0.customs"))

    def submit(self, fn: str, event: dict, msp: str, ts: dt.datetime | None = None,
               transient: dict | None = None, user: str = "User1", **_: Any) -> TxResult:
        event = dict(event)
        event.setdefault("event_id", f"real-{fn}-{id(event)}-{dt.datetime.now(UTC).timestamp()}")
        event.setdefault("occurred_at", iso(ts or dt.datetime.now(UTC)))
        contract = self.clients.contract(msp, self.chaincode, user)
        try:
            r = contract.submit(fn, [json.dumps(event)], transient=_transient(transient),
                                timestamp=ts)
        except EndorseError as e:
            if e.chaincode_status is None and e.chaincode_error is None:
                raise
            return TxResult(e.chaincode_status or 500, e.chaincode_message or "", b"", None, e.tx_id)
        self.wait_committed_everywhere(r.block_number)
        return TxResult(200, "", r.result, ("ipledger.events", b""), r.tx_id)

    def wait_committed_everywhere(self, block_number: int, timeout: float = 15) -> None:
        """The submit returned once the submitter's peer committed the block; the tests then
        read on other orgs' peers, so wait until every peer has it."""
        import time
        net = self.clients.net
        deadline = time.monotonic() + timeout
        for peer in net.consortium.peers:
            while (net.peer_height(peer) or 0) <= block_number:
                assert time.monotonic() < deadline, f"{peer.id} did not commit block {block_number}"
                time.sleep(0.05)

    def query(self, fn: str, *args: Any, msp: str | None = None, ts: dt.datetime | None = None,
              user: str = "User1", **_: Any) -> Any:
        contract = self.clients.contract(msp or self.customs_msp, self.chaincode, user)
        try:
            raw = contract.evaluate(fn, [json.dumps(a) for a in args], timestamp=ts)
        except EvaluateError as e:
            raise AssertionError(f"{fn} failed: {e.chaincode_message or e}") from None
        return json.loads(raw) if raw else None

    def evaluate_result(self, fn: str, *args: Any, msp: str, user: str = "User1") -> TxResult:
        contract = self.clients.contract(msp, self.chaincode, user)
        try:
            raw = contract.evaluate(fn, [json.dumps(a) for a in args])
        except EvaluateError as e:
            return TxResult(e.chaincode_status or 500, e.chaincode_message or "", b"", None, e.tx_id)
        return TxResult(200, "", raw, None, "")

    def refused(self, code: str, result_of, *args: Any, **kw: Any) -> dict:
        before = self.height()
        res = result_of(*args, **kw)
        assert not res.ok, f"expected {code}, but the transaction was accepted: {res.payload[:300]!r}"
        assert res.error_code == code, f"expected {code}, got {res.message}"
        assert self.height() == before, "a refused transaction reached the ledger"
        return res.json()["details"]
