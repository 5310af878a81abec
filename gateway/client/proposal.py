"""Building and signing a chaincode transaction proposal.

Layout of the bytes the peer checks (all nested protobufs are carried serialized):

    SignedProposal{proposal_bytes, signature = sign(sha256(proposal_bytes))}
      Proposal{header, payload}
        Header{channel_header, signature_header}
          ChannelHeader{type ENDORSER_TRANSACTION, channel_id, tx_id, timestamp, epoch 0,
                        extension = ChaincodeHeaderExtension{chaincode_id{name}}}
          SignatureHeader{creator, nonce}
        ChaincodeProposalPayload{input = ChaincodeInvocationSpec{ChaincodeSpec{
                        chaincode_id{name}, input = ChaincodeInput{args = [fn, *args]}}},
                        transient_map}

tx_id = hex(sha256(nonce + creator)), with a fresh random 24-byte nonce per proposal.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import Mapping, Sequence

from fabric_protos.common import common_pb2
from fabric_protos.peer import chaincode_pb2, proposal_pb2

from ipledger.network.fabric.headers import make_timestamp, transaction_id
from ipledger.network.fabric.identity import X509Identity
from ipledger.network.fabric.signing import Signer, sha256

NONCE_LENGTH = 24

Arg = str | bytes


def _bytes(value: Arg, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"{what} must be str or bytes, not {type(value).__name__}")


@dataclass(frozen=True)
class Proposal:
    """An unsigned proposal: its transaction id, nonce and the exact bytes to sign."""
    channel_id: str
    chaincode: str
    tx_id: str
    nonce: bytes
    proposal_bytes: bytes

    def sign(self, signer: Signer) -> proposal_pb2.SignedProposal:
        return proposal_pb2.SignedProposal(proposal_bytes=self.proposal_bytes,
                                           signature=signer.sign_digest(sha256(self.proposal_bytes)))


def build_proposal(identity: X509Identity, channel_id: str, chaincode: str, function: str,
                   args: Sequence[Arg] = (), transient: Mapping[str, Arg] | None = None, *,
                   nonce: bytes | None = None, timestamp: datetime | None = None) -> Proposal:
    """A new proposal (new nonce, hence new tx id) to invoke ``function(*args)``."""
    if not channel_id:
        raise ValueError("a channel id is required")
    if not chaincode:
        raise ValueError("a chaincode name is required")
    if not function:
        raise ValueError("a transaction function name is required")
    if isinstance(args, (str, bytes)):
        raise TypeError("args must be a sequence of str/bytes, not a single str/bytes")
    if nonce is None:
        nonce = os.urandom(NONCE_LENGTH)
    elif len(nonce) != NONCE_LENGTH:
        raise ValueError(f"the nonce must be {NONCE_LENGTH} bytes")

    creator = identity.serialize()
    tx_id = transaction_id(nonce, creator)
    chaincode_id = chaincode_pb2.ChaincodeID(name=chaincode)

    channel_header = common_pb2.ChannelHeader(
        type=common_pb2.ENDORSER_TRANSACTION,
        channel_id=channel_id,
        tx_id=tx_id,
        timestamp=make_timestamp(timestamp),
        epoch=0,
        extension=proposal_pb2.ChaincodeHeaderExtension(chaincode_id=chaincode_id).SerializeToString(),
    )
    signature_header = common_pb2.SignatureHeader(creator=creator, nonce=nonce)
    header = common_pb2.Header(channel_header=channel_header.SerializeToString(),
                               signature_header=signature_header.SerializeToString())

    invocation = chaincode_pb2.ChaincodeInvocationSpec(chaincode_spec=chaincode_pb2.ChaincodeSpec(
        chaincode_id=chaincode_id,
        input=chaincode_pb2.ChaincodeInput(
            args=[_bytes(function, "function")] + [_bytes(a, "argument") for a in args]),
    ))
    payload = proposal_pb2.ChaincodeProposalPayload(
        input=invocation.SerializeToString(),
        TransientMap={str(k): _bytes(v, f"transient value {k!r}") for k, v in (transient or {}).items()},
    )
    proposal = proposal_pb2.Proposal(header=header.SerializeToString(), payload=payload.SerializeToString())
    return Proposal(channel_id=channel_id, chaincode=chaincode, tx_id=tx_id, nonce=nonce,
                    proposal_bytes=proposal.SerializeToString())
