"""Reading the prepared transaction that the Gateway's Endorse returns.

The envelope's payload is what the client signs before Submit; the chaincode's
return value sits deep inside it:

    Envelope.payload -> Payload{header{channel_header -> ChannelHeader}, data -> Transaction}
      Transaction.actions[i].payload -> ChaincodeActionPayload.action.proposal_response_payload
        -> ProposalResponsePayload.extension -> ChaincodeAction.response.payload
"""
from __future__ import annotations

from dataclasses import dataclass

from fabric_protos.common import common_pb2
from fabric_protos.peer import proposal_pb2, proposal_response_pb2, transaction_pb2
from google.protobuf.message import DecodeError


class TransactionParseError(ValueError):
    """The peer's prepared transaction does not parse as an endorsed chaincode transaction."""


@dataclass(frozen=True)
class PreparedTransaction:
    tx_id: str
    channel_id: str
    result: bytes
    envelope: common_pb2.Envelope


def parse_prepared_transaction(envelope: common_pb2.Envelope) -> PreparedTransaction:
    try:
        payload = common_pb2.Payload.FromString(envelope.payload)
        channel_header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
        transaction = transaction_pb2.Transaction.FromString(payload.data)
    except DecodeError as exc:
        raise TransactionParseError(f"malformed prepared transaction: {exc}") from exc
    problems = []
    for action in transaction.actions:
        try:
            action_payload = transaction_pb2.ChaincodeActionPayload.FromString(action.payload)
            response_payload = proposal_response_pb2.ProposalResponsePayload.FromString(
                action_payload.action.proposal_response_payload)
            chaincode_action = proposal_pb2.ChaincodeAction.FromString(response_payload.extension)
        except DecodeError as exc:
            problems.append(str(exc))
            continue
        return PreparedTransaction(tx_id=channel_header.tx_id, channel_id=channel_header.channel_id,
                                   result=chaincode_action.response.payload, envelope=envelope)
    raise TransactionParseError("prepared transaction has no chaincode action"
                                + (f": {'; '.join(problems)}" if problems else ""))
