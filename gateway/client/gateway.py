"""The Gateway client: evaluate and submit transactions through a peer's Gateway service.

    gateway = Gateway.connect(endpoint, identity, signer)
    contract = gateway.network("inward-processing").contract("ipledger")
    contract.evaluate("GetBalances", ["FRIPO000001"])        # -> bytes
    contract.submit("PlaceUnderProcedure", [json_text])       # -> SubmitResult

Submit = Endorse (the Gateway collects endorsements and returns the prepared
transaction) -> sign the envelope payload -> Submit (to the orderers) ->
CommitStatus (waits until the peer has validated the block holding the tx).
A transaction invalidated for MVCC_READ_CONFLICT / PHANTOM_READ_CONFLICT, and an
endorsement the Gateway could not plan ("no combination of peers can be derived
which satisfy the endorsement policy"), are retried with a NEW proposal (new
nonce, new transaction id), at most ``RetryPolicy.retries`` times.

Objects are immutable after construction; one grpc channel is shared and
grpc channels are thread-safe, so a Gateway/Contract may be used from any
number of threads.
"""
from __future__ import annotations

import logging
import random
import time
from datetime import datetime
from dataclasses import dataclass
from typing import Mapping, Sequence

import grpc
from fabric_protos.gateway import gateway_pb2, gateway_pb2_grpc
from fabric_protos.peer import transaction_pb2

from ipledger.network.fabric.connection import Endpoint, dial
from ipledger.network.fabric.errors import (CommitError, CommitStatusError, EndorseError, EvaluateError, GatewayError,
                     SubmitError)
from ipledger.network.fabric.identity import X509Identity
from ipledger.gateway.client.proposal import Arg, build_proposal
from ipledger.network.fabric.signing import Signer, sha256
from ipledger.gateway.client.transaction import PreparedTransaction, TransactionParseError, parse_prepared_transaction

log = logging.getLogger(__name__)

RETRYABLE_VALIDATION_CODES = frozenset({
    transaction_pb2.MVCC_READ_CONFLICT,
    transaction_pb2.PHANTOM_READ_CONFLICT,
})
ENDORSEMENT_MISMATCH = "ProposalResponsePayloads do not match"
# Fabric's gateway simulates first on a peer of its own org and asks the other orgs only
# if that succeeded; this is its answer when one of those later endorsers failed.
COLLECT_FAILED = "failed to collect enough transaction endorsements"
PLANNING_ERROR = "no combination of peers can be derived which satisfy the endorsement policy"


@dataclass(frozen=True)
class Timeouts:
    """Deadline in seconds of each gRPC call."""
    evaluate: float = 5.0
    endorse: float = 15.0
    submit: float = 5.0
    commit_status: float = 60.0


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a transaction that may succeed when re-run.

    retries: retries after the first attempt (0 disables retrying);
    backoff: first delay in seconds, doubled on each retry up to max_backoff,
    with random jitter (50-100 % of the delay).
    """
    retries: int = 3
    backoff: float = 0.2
    max_backoff: float = 2.0

    def delay(self, retry: int) -> float:
        base = min(self.max_backoff, self.backoff * (2 ** retry))
        return base * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class SubmitResult:
    tx_id: str
    result: bytes
    block_number: int
    status: str           # TxValidationCode name: "VALID"
    attempts: int = 1


def _validation_code_name(code: int) -> str:
    try:
        return transaction_pb2.TxValidationCode.Name(code)
    except ValueError:
        return f"UNKNOWN_CODE_{code}"


def is_planning_error(error: GatewayError) -> bool:
    return error.code == grpc.StatusCode.FAILED_PRECONDITION and PLANNING_ERROR in error.message


def is_endorsement_mismatch(error: GatewayError) -> bool:
    """The endorsing peers simulated against different world-state versions (one had
    committed a block the other had not yet): nothing was ordered, a new proposal is safe."""
    return error.code == grpc.StatusCode.ABORTED and (
        ENDORSEMENT_MISMATCH in error.message
        or any(ENDORSEMENT_MISMATCH in d.message for d in error.details))


def is_lagging_endorser(error: GatewayError) -> bool:
    """The gateway's own peer simulated the proposal successfully, but the chaincode on another
    org's peer refused it: that peer has not yet committed the block the proposal builds on (a
    transaction the caller just saw committed on its own peer). Nothing was ordered; the same
    proposal made a moment later, when that peer has caught up, is safe."""
    return error.code == grpc.StatusCode.ABORTED and COLLECT_FAILED in error.message \
        and (error.chaincode_status is not None or error.chaincode_error is not None)


def _retryable(error: GatewayError) -> bool:
    if isinstance(error, CommitError):
        return error.validation_code in RETRYABLE_VALIDATION_CODES
    return isinstance(error, EndorseError) and (is_planning_error(error)
                                                 or is_endorsement_mismatch(error)
                                                 or is_lagging_endorser(error))


class Gateway:
    """A client identity connected to one peer's Gateway service."""

    def __init__(self, channel: grpc.Channel, identity: X509Identity, signer: Signer, *,
                 timeouts: Timeouts = Timeouts(), retry: RetryPolicy = RetryPolicy(),
                 tls_cert_hash: bytes | None = None, _owns_channel: bool = False):
        self.channel = channel
        self.identity = identity
        self.signer = signer
        self.timeouts = timeouts
        self.retry = retry
        self.tls_cert_hash = tls_cert_hash
        self._stub = gateway_pb2_grpc.GatewayStub(channel)
        self._owns_channel = _owns_channel

    @classmethod
    def connect(cls, endpoint: Endpoint, identity: X509Identity, signer: Signer, **kwargs) -> "Gateway":
        """Dial ``endpoint`` over TLS; :meth:`close` closes that channel."""
        return cls(dial(endpoint), identity, signer, tls_cert_hash=endpoint.client_cert_hash,
                   _owns_channel=True, **kwargs)

    @property
    def stub(self) -> gateway_pb2_grpc.GatewayStub:
        return self._stub

    def network(self, channel_id: str) -> "Network":
        return Network(self, channel_id)

    def close(self) -> None:
        if self._owns_channel:
            self.channel.close()

    def __enter__(self) -> "Gateway":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def sign(self, message: bytes) -> bytes:
        return self.signer.sign_digest(sha256(message))


@dataclass(frozen=True)
class Network:
    gateway: Gateway
    channel_id: str

    def contract(self, chaincode: str) -> "Contract":
        return Contract(self.gateway, self.channel_id, chaincode)

    def chaincode_events(self, chaincode: str, *, start_block: int | None = None, checkpoint=None,
                         timeout: float | None = None):
        """Events of ``chaincode``: from the next block committed (default), from
        ``start_block``, or after a checkpoint (block, tx id) if it holds one."""
        from ipledger.gateway.client.events import ChaincodeEventStream
        return ChaincodeEventStream(self.gateway, self.channel_id, chaincode, start_block=start_block,
                                    checkpoint=checkpoint, timeout=timeout)

    def blocks(self, start: int | None = 0, stop: int | None = None, *, timeout: float | None = None):
        """Full blocks from the connected peer's Deliver service (see :mod:`.deliver`)."""
        from ipledger.network.fabric.deliver import deliver_blocks
        return deliver_blocks(self.gateway.channel, self.gateway.identity, self.gateway.signer,
                              self.channel_id, start=start, stop=stop,
                              tls_cert_hash=self.gateway.tls_cert_hash, timeout=timeout)


@dataclass(frozen=True)
class Contract:
    gateway: Gateway
    channel_id: str
    chaincode: str

    # -- evaluate -------------------------------------------------------------
    def evaluate(self, function: str, args: Sequence[Arg] = (), transient: Mapping[str, Arg] | None = None,
                 endorsing_orgs: Sequence[str] | None = None, *, timeout: float | None = None,
                 timestamp: datetime | None = None) -> bytes:
        """Run ``function`` on one peer without ordering anything; its return value.

        ``timestamp`` overrides the proposal's timestamp (default: now); peers refuse
        one outside their ``peer.authentication.timewindow``.
        """
        gw = self.gateway
        proposal = build_proposal(gw.identity, self.channel_id, self.chaincode, function, args, transient,
                                  timestamp=timestamp)
        request = gateway_pb2.EvaluateRequest(
            transaction_id=proposal.tx_id, channel_id=self.channel_id,
            proposed_transaction=proposal.sign(gw.signer),
            target_organizations=list(endorsing_orgs or ()))
        try:
            response = gw.stub.Evaluate(request, timeout=timeout or gw.timeouts.evaluate)
        except grpc.RpcError as exc:
            raise EvaluateError.from_rpc_error(exc, proposal.tx_id) from None
        return response.result.payload

    # -- submit -----------------------------------------------------------------
    def submit(self, function: str, args: Sequence[Arg] = (), transient: Mapping[str, Arg] | None = None,
               endorsing_orgs: Sequence[str] | None = None, *, timeout: float | None = None,
               timestamp: datetime | None = None) -> SubmitResult:
        """Endorse, order and wait for the commit of ``function(*args)``.

        ``timeout`` bounds the whole call, retries included (each gRPC call still
        has its own deadline from :class:`Timeouts`). Raises EndorseError,
        SubmitError, CommitStatusError, or CommitError for an invalid transaction.
        """
        gw = self.gateway
        deadline = None if timeout is None else time.monotonic() + timeout
        attempt = 0
        while True:
            attempt += 1
            retries_left = attempt <= gw.retry.retries
            try:
                return self._submit_once(function, args, transient, endorsing_orgs, deadline, attempt,
                                         timestamp)
            except GatewayError as exc:
                exc.attempts = attempt
                if not (retries_left and _retryable(exc)):
                    raise
                log.info("tx %s failed (attempt %d), retrying with a new proposal: %s",
                         exc.tx_id, attempt, exc.message)
            delay = gw.retry.delay(attempt - 1)
            if deadline is not None:
                delay = min(delay, max(0.0, deadline - time.monotonic()))
            time.sleep(delay)

    def _submit_once(self, function, args, transient, endorsing_orgs, deadline, attempt,
                     timestamp=None) -> SubmitResult:
        """One attempt: the protocol's three steps, each a method below."""
        proposal = build_proposal(self.gateway.identity, self.channel_id, self.chaincode, function, args, transient,
                                  timestamp=timestamp)
        prepared = self._endorse(proposal, endorsing_orgs, deadline)
        self._order(prepared, deadline)
        status = self._commit_status(prepared.tx_id, deadline)
        name = _validation_code_name(status.result)
        if status.result != transaction_pb2.VALID:
            raise CommitError(prepared.tx_id, status.result, name, status.block_number)
        return SubmitResult(tx_id=prepared.tx_id, result=prepared.result, block_number=status.block_number,
                            status=name, attempts=attempt)

    def _endorse(self, proposal, endorsing_orgs, deadline: float | None) -> PreparedTransaction:
        """Endorse: the Gateway has the proposal endorsed as the chaincode's policy asks and returns the
        prepared transaction (an envelope to sign), checked to be the one proposed."""
        gw, tx_id = self.gateway, proposal.tx_id
        request = gateway_pb2.EndorseRequest(
            transaction_id=tx_id, channel_id=self.channel_id,
            proposed_transaction=proposal.sign(gw.signer),
            endorsing_organizations=list(endorsing_orgs or ()))
        try:
            endorsed = gw.stub.Endorse(request, timeout=_within(gw.timeouts.endorse, deadline, EndorseError, tx_id))
        except grpc.RpcError as exc:
            raise EndorseError.from_rpc_error(exc, tx_id) from None
        try:
            prepared = parse_prepared_transaction(endorsed.prepared_transaction)
        except TransactionParseError as exc:
            raise EndorseError(str(exc), tx_id=tx_id) from None
        if prepared.tx_id != tx_id:
            raise EndorseError(f"the Gateway returned a prepared transaction for tx {prepared.tx_id!r}, "
                               f"not for the proposed one", tx_id=tx_id)
        return prepared

    def _order(self, prepared: PreparedTransaction, deadline: float | None) -> None:
        """Submit: the envelope, signed by the client, sent to the orderers."""
        gw, envelope = self.gateway, prepared.envelope
        envelope.signature = gw.sign(envelope.payload)
        try:
            gw.stub.Submit(gateway_pb2.SubmitRequest(transaction_id=prepared.tx_id, channel_id=self.channel_id,
                                                     prepared_transaction=envelope),
                           timeout=_within(gw.timeouts.submit, deadline, SubmitError, prepared.tx_id))
        except grpc.RpcError as exc:
            raise SubmitError.from_rpc_error(exc, prepared.tx_id) from None

    def _commit_status(self, tx_id: str, deadline: float | None) -> gateway_pb2.CommitStatusResponse:
        """CommitStatus: waits until the Gateway's peer has validated the block holding the transaction."""
        gw = self.gateway
        request = gateway_pb2.CommitStatusRequest(channel_id=self.channel_id, transaction_id=tx_id,
                                                  identity=gw.identity.serialize()).SerializeToString()
        signed = gateway_pb2.SignedCommitStatusRequest(request=request, signature=gw.sign(request))
        try:
            return gw.stub.CommitStatus(signed, timeout=_within(gw.timeouts.commit_status, deadline,
                                                                CommitStatusError, tx_id))
        except grpc.RpcError as exc:
            raise CommitStatusError.from_rpc_error(exc, tx_id) from None


def _within(step_timeout: float, deadline: float | None, error: type[GatewayError], tx_id: str) -> float:
    """The step's own timeout, shortened to what is left of the overall deadline."""
    if deadline is None:
        return step_timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("submit timeout expired before this step", code=grpc.StatusCode.DEADLINE_EXCEEDED,
                    tx_id=tx_id)
    return min(step_timeout, left)
