"""Errors of the Gateway client.

Every failed gRPC call becomes a :class:`GatewayError` subclass naming the step
that failed (evaluate, endorse, submit, commit status, events, deliver) and
carrying the gRPC status code, the status message and the ``ErrorDetail``
entries the Gateway attached (which peer or orderer failed, and its message).
A deadline that expires keeps code ``DEADLINE_EXCEEDED`` (``.timed_out``).

A chaincode that fails returns a shim response with status >= 400; the peer's
Gateway reports it as ``chaincode response <status>, <message>`` in the details
(and, for evaluate, in the status message too). ``chaincode_status`` and
``chaincode_message`` give those two back; ``chaincode_error`` is the message
decoded as a JSON object, when it is one (ipledger's chaincode reports
``{"code": ..., "message": ..., "details": ...}``).
"""
from __future__ import annotations

import json
import re

import grpc

from ipledger.network.fabric.rpcstatus import ErrorDetail, error_details_from_metadata

_CHAINCODE_RESPONSE = re.compile(r"chaincode response (\d{3}), (.*)\Z", re.DOTALL)


class GatewayError(Exception):
    """A call to a peer's Gateway service failed; ``step`` names the protocol step (a subclass each), ``code`` the
    gRPC status, ``details`` each endorsing peer's own error, ``tx_id`` the transaction when there is one."""
    step = "gateway"

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None,
                 details: list[ErrorDetail] | tuple = (), tx_id: str | None = None):
        self.code = code
        self.message = message
        self.details = list(details)
        self.tx_id = tx_id
        self.attempts = 1  # submit: how many proposals were tried (retries + 1)
        self.chaincode_status, self.chaincode_message = _chaincode_response(message, self.details)
        self.chaincode_error = _json_object(self.chaincode_message)
        super().__init__(self._text())

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError, tx_id: str | None = None, **extra) -> "GatewayError":
        code = error.code() if hasattr(error, "code") else None
        message = (error.details() if hasattr(error, "details") else None) or str(error)
        trailers = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
        return cls(message, code=code, details=error_details_from_metadata(trailers), tx_id=tx_id, **extra)

    @property
    def timed_out(self) -> bool:
        return self.code == grpc.StatusCode.DEADLINE_EXCEEDED

    def _text(self) -> str:
        head = f"{self.step} error"
        if self.code is not None:
            head += f" ({self.code.name})"
        if self.tx_id:
            head += f" tx {self.tx_id}"
        lines = [f"{head}: {self.message}"]
        for d in self.details:
            lines.append(f"  - {d.msp_id} {d.address}: {d.message}")
        return "\n".join(lines)


class EvaluateError(GatewayError):
    """A query (``Evaluate``) failed: no peer answered, or the contract refused it."""
    step = "evaluate"


class EndorseError(GatewayError):
    """The proposal was not endorsed (``Endorse``): a peer or the contract refused it."""
    step = "endorse"


class SubmitError(GatewayError):
    """The endorsed transaction was not accepted for ordering (``Submit``)."""
    step = "submit"


class CommitStatusError(GatewayError):
    """The transaction's commit status could not be obtained (``CommitStatus``): it may or may
    not have committed."""
    step = "commit status"


class CommitError(GatewayError):
    """The transaction was ordered into a block but validated as invalid."""
    step = "commit"

    def __init__(self, tx_id: str, validation_code: int, validation_code_name: str, block_number: int):
        self.validation_code = validation_code
        self.validation_code_name = validation_code_name
        self.block_number = block_number
        super().__init__(f"transaction {tx_id} failed to commit in block {block_number} with status "
                         f"code {validation_code} ({validation_code_name})", tx_id=tx_id)


class ChaincodeEventsError(GatewayError):
    """The chaincode-event stream (``ChaincodeEvents``) failed."""
    step = "chaincode events"


class DeliverError(GatewayError):
    """The Deliver stream failed (gRPC error) or ended with a non-SUCCESS status."""
    step = "deliver"

    def __init__(self, message: str, *, status: str | None = None, **kw):
        self.status = status
        super().__init__(message, **kw)


def _chaincode_response(message: str, details: list[ErrorDetail]) -> tuple[int | None, str | None]:
    for text in [d.message for d in details] + [message]:
        # the Gateway may prefix its own words ("evaluate call to endorser returned error: ")
        idx = text.find("chaincode response ")
        if idx < 0:
            continue
        m = _CHAINCODE_RESPONSE.match(text, idx)
        if m:
            return int(m.group(1)), m.group(2)
    # a 4xx chaincode response reaches the client without the prefix: keep a JSON error body
    for text in [d.message for d in details]:
        if _json_object(text) is not None:
            return None, text
    return None, None


def _json_object(text: str | None) -> dict | None:
    if not text or not text.lstrip().startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
