"""The SignedProposal bytes, field by field."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest
from fabric_protos.common import common_pb2
from fabric_protos.peer import chaincode_pb2, proposal_pb2

from ipledger.gateway.client import build_proposal, transaction_id

from .fakes import decode_proposal, verify_by_creator

WHEN = datetime(2025, 3, 14, 9, 26, 53, 589_793, tzinfo=timezone.utc)


def test_proposal_fields(identity, signer):
    nonce = bytes(range(24))
    p = build_proposal(identity, "inward-processing", "ipledger", "PlaceUnderProcedure",
                       ["IP-1", b"\x00\xffbin"], {"price": b"12.50", "note": "ok"},
                       nonce=nonce, timestamp=WHEN)
    signed = p.sign(signer)
    proposal, header, chdr, shdr, payload, spec = decode_proposal(signed)

    creator = identity.serialize()
    expected_tx = hashlib.sha256(nonce + creator).hexdigest()
    assert p.tx_id == expected_tx == transaction_id(nonce, creator)
    assert len(p.tx_id) == 64

    assert chdr.type == common_pb2.ENDORSER_TRANSACTION == 3
    assert chdr.channel_id == "inward-processing"
    assert chdr.tx_id == expected_tx
    assert chdr.epoch == 0
    assert chdr.timestamp.seconds == int(WHEN.timestamp()) and chdr.timestamp.nanos == 589_793_000
    ext = proposal_pb2.ChaincodeHeaderExtension.FromString(chdr.extension)
    assert ext.chaincode_id.name == "ipledger"

    assert shdr.creator == creator and shdr.nonce == nonce

    assert spec.chaincode_id.name == "ipledger"
    assert spec.type == chaincode_pb2.ChaincodeSpec.UNDEFINED  # as fabric-gateway: the peer does not use it
    assert list(spec.input.args) == [b"PlaceUnderProcedure", b"IP-1", b"\x00\xffbin"]
    assert dict(payload.TransientMap) == {"price": b"12.50", "note": b"ok"}

    assert verify_by_creator(shdr.creator, signed.proposal_bytes, signed.signature) == "OperatorMSP"


def test_each_proposal_has_a_fresh_24_byte_nonce_and_tx_id(identity):
    a = build_proposal(identity, "ch", "cc", "Fn")
    b = build_proposal(identity, "ch", "cc", "Fn")
    assert len(a.nonce) == len(b.nonce) == 24
    assert a.nonce != b.nonce and a.tx_id != b.tx_id
    assert a.tx_id == hashlib.sha256(a.nonce + identity.serialize()).hexdigest()


def test_default_timestamp_is_now(identity):
    p = build_proposal(identity, "ch", "cc", "Fn")
    _, _, chdr, *_ = decode_proposal(proposal_pb2.SignedProposal(proposal_bytes=p.proposal_bytes))
    stamped = chdr.timestamp.ToDatetime(tzinfo=timezone.utc)
    assert abs(stamped - datetime.now(timezone.utc)) < timedelta(seconds=5)


def test_no_transient_gives_an_empty_map(identity):
    p = build_proposal(identity, "ch", "cc", "Fn", [])
    *_, payload, spec = decode_proposal(proposal_pb2.SignedProposal(proposal_bytes=p.proposal_bytes))
    assert dict(payload.TransientMap) == {} and list(spec.input.args) == [b"Fn"]


@pytest.mark.parametrize("kwargs, error", [
    (dict(channel_id=""), "channel"),
    (dict(chaincode=""), "chaincode"),
    (dict(function=""), "function"),
    (dict(nonce=b"short"), "24 bytes"),
    (dict(timestamp=datetime(2025, 1, 1)), "timezone-aware"),
])
def test_bad_input_is_refused(identity, kwargs, error):
    args = dict(channel_id="ch", chaincode="cc", function="Fn") | kwargs
    with pytest.raises(ValueError, match=error):
        build_proposal(identity, args.pop("channel_id"), args.pop("chaincode"), args.pop("function"), **args)


def test_a_single_string_is_not_taken_for_a_list_of_args(identity):
    with pytest.raises(TypeError, match="sequence"):
        build_proposal(identity, "ch", "cc", "Fn", "IP-1")
    with pytest.raises(TypeError, match="str or bytes"):
        build_proposal(identity, "ch", "cc", "Fn", [42])
