"""Test doubles: crypto material, and a fake peer (Gateway + Deliver services) on real grpcio.

The fake peer checks what a real one checks first (signatures by the creator's
certificate, low-S) and records every request, so tests assert on what was sent.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import ipaddress
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2, gateway_pb2_grpc
from fabric_protos.msp import identities_pb2
from fabric_protos.orderer import ab_pb2
from fabric_protos.peer import (chaincode_pb2, events_pb2, events_pb2_grpc, proposal_pb2,
                                proposal_response_pb2, transaction_pb2)
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


# -- crypto material ------------------------------------------------------------------------
@dataclass
class Issued:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str = "ca.test") -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                                         key_cert_sign=True, crl_sign=True, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return Issued(key, cert)


def issue(ca: Issued, cn: str, sans: tuple[str, ...] = (), server: bool = False, client: bool = False) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1)))
    if sans:
        names = []
        for s in sans:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(s)))
            except ValueError:
                names.append(x509.DNSName(s))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return Issued(key, builder.sign(ca.key, hashes.SHA256()))


# -- checks a peer makes ----------------------------------------------------------------------
def verify_by_creator(creator: bytes, message: bytes, signature: bytes) -> str:
    """Verify ``signature`` over ``message`` with the creator's certificate; its MSP id.

    Raises on a bad signature or a high-S one (Fabric rejects those)."""
    ident = identities_pb2.SerializedIdentity.FromString(creator)
    cert = x509.load_pem_x509_certificate(ident.id_bytes)
    cert.public_key().verify(signature, message, ec.ECDSA(hashes.SHA256()))
    _, s = decode_dss_signature(signature)
    if s > P256_N // 2:
        raise ValueError("high-S signature")
    return ident.mspid


def decode_proposal(signed: proposal_pb2.SignedProposal):
    proposal = proposal_pb2.Proposal.FromString(signed.proposal_bytes)
    header = common_pb2.Header.FromString(proposal.header)
    chdr = common_pb2.ChannelHeader.FromString(header.channel_header)
    shdr = common_pb2.SignatureHeader.FromString(header.signature_header)
    payload = proposal_pb2.ChaincodeProposalPayload.FromString(proposal.payload)
    spec = chaincode_pb2.ChaincodeInvocationSpec.FromString(payload.input).chaincode_spec
    return proposal, header, chdr, shdr, payload, spec


# -- google.rpc.Status, built independently of the client's own definition -------------------
def _google_rpc_status_class():
    pool = descriptor_pool.DescriptorPool()
    any_file = descriptor_pb2.FileDescriptorProto()
    any_pb2.DESCRIPTOR.CopyToProto(any_file)
    pool.Add(any_file)
    f = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="google/rpc/status.proto", package="google.rpc",
                                              syntax="proto3", dependency=["google/protobuf/any.proto"])
    msg = file.message_type.add(name="Status")
    msg.field.add(name="code", number=1, type=f.TYPE_INT32, label=f.LABEL_OPTIONAL)
    msg.field.add(name="message", number=2, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    msg.field.add(name="details", number=3, type=f.TYPE_MESSAGE, label=f.LABEL_REPEATED,
                  type_name=".google.protobuf.Any")
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.Status"))


GoogleRpcStatus = _google_rpc_status_class()


def status_details_bin(code: grpc.StatusCode, message: str, details: list[gateway_pb2.ErrorDetail],
                       extra_any: list[any_pb2.Any] = ()) -> bytes:
    st = GoogleRpcStatus(code=code.value[0], message=message)
    for d in list(extra_any):
        st.details.add(type_url=d.type_url, value=d.value)
    for d in details:
        packed = any_pb2.Any()
        packed.Pack(d)
        st.details.add(type_url=packed.type_url, value=packed.value)
    return st.SerializeToString()


def abort_with_details(context, code: grpc.StatusCode, message: str, details: list[gateway_pb2.ErrorDetail]):
    context.set_trailing_metadata([("grpc-status-details-bin", status_details_bin(code, message, details))])
    context.abort(code, message)


def wait_until_cancelled(context, limit: float = 10.0) -> None:
    end = time.monotonic() + limit
    while context.is_active() and time.monotonic() < end:
        time.sleep(0.01)


# -- a prepared transaction as the Gateway builds it -----------------------------------------
def prepared_envelope(signed: proposal_pb2.SignedProposal, result: bytes) -> common_pb2.Envelope:
    proposal, header, *_ = decode_proposal(signed)
    chaincode_action = proposal_pb2.ChaincodeAction(response=proposal_response_pb2.Response(status=200, payload=result))
    prp = proposal_response_pb2.ProposalResponsePayload(
        proposal_hash=hashlib.sha256(signed.proposal_bytes).digest(),
        extension=chaincode_action.SerializeToString())
    cap = transaction_pb2.ChaincodeActionPayload(
        chaincode_proposal_payload=proposal.payload,
        action=transaction_pb2.ChaincodeEndorsedAction(proposal_response_payload=prp.SerializeToString()))
    tx = transaction_pb2.Transaction(actions=[transaction_pb2.TransactionAction(
        header=header.signature_header, payload=cap.SerializeToString())])
    payload = common_pb2.Payload(header=header, data=tx.SerializeToString())
    return common_pb2.Envelope(payload=payload.SerializeToString())


def default_result(spec: chaincode_pb2.ChaincodeSpec) -> bytes:
    return b"|".join([b"ok", spec.chaincode_id.name.encode(), *spec.input.args])


# -- the fake peer ---------------------------------------------------------------------------
@dataclass
class Recorded:
    evaluate: list = field(default_factory=list)
    endorse: list = field(default_factory=list)
    submit: list = field(default_factory=list)
    commit_status: list = field(default_factory=list)
    events: list = field(default_factory=list)
    deliver: list = field(default_factory=list)


class FakePeer(gateway_pb2_grpc.GatewayServicer, events_pb2_grpc.DeliverServicer):
    """Behaviour hooks (set by a test, cleared by reset()):

    on_evaluate / on_endorse / on_submit(request, context) -> response or None for the default;
    commit_codes: validation codes returned by successive CommitStatus calls (then VALID);
    commit_delay: seconds CommitStatus waits; events_script: list of ChaincodeEventsResponse,
    then the stream stays open until cancelled (events_end=True ends it instead);
    chain: blocks served by Deliver; deliver_status: status sent instead of blocks.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.recorded = Recorded()
        self.on_evaluate = self.on_endorse = self.on_submit = self.on_commit_status = None
        self.commit_codes: list[int] = []
        self.commit_block = 7
        self.events_script: list[gateway_pb2.ChaincodeEventsResponse] = []
        self.events_end = False
        self.chain = make_chain(5)
        self.deliver_status = None

    # Gateway ---------------------------------------------------------------
    def Evaluate(self, request, context):
        self.recorded.evaluate.append(request)
        _, _, _, shdr, _, spec = decode_proposal(request.proposed_transaction)
        try:
            verify_by_creator(shdr.creator, request.proposed_transaction.proposal_bytes,
                              request.proposed_transaction.signature)
        except Exception as exc:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"bad proposal signature: {exc}")
        if self.on_evaluate:
            response = self.on_evaluate(request, context)
            if response is not None:
                return response
        return gateway_pb2.EvaluateResponse(result=proposal_response_pb2.Response(
            status=200, payload=default_result(spec)))

    def Endorse(self, request, context):
        self.recorded.endorse.append(request)
        _, _, _, shdr, _, spec = decode_proposal(request.proposed_transaction)
        try:
            verify_by_creator(shdr.creator, request.proposed_transaction.proposal_bytes,
                              request.proposed_transaction.signature)
        except Exception as exc:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"bad proposal signature: {exc}")
        if self.on_endorse:
            response = self.on_endorse(request, context)
            if response is not None:
                return response
        return gateway_pb2.EndorseResponse(
            prepared_transaction=prepared_envelope(request.proposed_transaction, default_result(spec)))

    def Submit(self, request, context):
        self.recorded.submit.append(request)
        env = request.prepared_transaction
        if not env.signature:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "prepared transaction must be signed")
        payload = common_pb2.Payload.FromString(env.payload)
        shdr = common_pb2.SignatureHeader.FromString(payload.header.signature_header)
        try:
            verify_by_creator(shdr.creator, env.payload, env.signature)
        except Exception as exc:
            context.abort(grpc.StatusCode.ABORTED, f"received unsuccessful response from orderer: BAD_REQUEST ({exc})")
        if self.on_submit:
            response = self.on_submit(request, context)
            if response is not None:
                return response
        return gateway_pb2.SubmitResponse()

    def CommitStatus(self, request, context):
        self.recorded.commit_status.append(request)
        inner = gateway_pb2.CommitStatusRequest.FromString(request.request)
        try:
            verify_by_creator(inner.identity, request.request, request.signature)
        except Exception as exc:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"bad commit status signature: {exc}")
        if self.on_commit_status:
            response = self.on_commit_status(request, context)
            if response is not None:
                return response
        with self.lock:
            code = self.commit_codes.pop(0) if self.commit_codes else transaction_pb2.VALID
        return gateway_pb2.CommitStatusResponse(result=code, block_number=self.commit_block)

    def ChaincodeEvents(self, request, context):
        self.recorded.events.append(request)
        inner = gateway_pb2.ChaincodeEventsRequest.FromString(request.request)
        try:
            verify_by_creator(inner.identity, request.request, request.signature)
        except Exception as exc:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"bad events signature: {exc}")
        if inner.channel_id == "missing":
            context.abort(grpc.StatusCode.NOT_FOUND, "channel not found: missing")
        for response in self.events_script:
            yield response
        if not self.events_end:
            wait_until_cancelled(context)

    # Deliver ----------------------------------------------------------------
    def Deliver(self, request_iterator, context):
        envelope = next(request_iterator)
        self.recorded.deliver.append(envelope)
        payload = common_pb2.Payload.FromString(envelope.payload)
        shdr = common_pb2.SignatureHeader.FromString(payload.header.signature_header)
        try:
            verify_by_creator(shdr.creator, envelope.payload, envelope.signature)
        except Exception:
            yield events_pb2.DeliverResponse(status=common_pb2.FORBIDDEN)
            return
        # Fabric's mutual-TLS binding: the claimed client TLS cert hash must be the presented one's
        presented = (context.auth_context() or {}).get("x509_pem_cert")
        if presented:
            der = x509.load_pem_x509_certificate(presented[0]).public_bytes(serialization.Encoding.DER)
            chdr = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
            if chdr.tls_cert_hash != hashlib.sha256(der).digest():
                yield events_pb2.DeliverResponse(status=common_pb2.BAD_REQUEST)
                return
        if self.deliver_status is not None:
            yield events_pb2.DeliverResponse(status=self.deliver_status)
            return
        seek = ab_pb2.SeekInfo.FromString(payload.data)
        start = seek.start.specified.number if seek.start.HasField("specified") else len(self.chain) - 1
        stop = seek.stop.specified.number
        number = start
        while number <= stop:
            if number >= len(self.chain):
                wait_until_cancelled(context)  # BLOCK_UNTIL_READY: nothing more will come
                return
            yield events_pb2.DeliverResponse(block=self.chain[number])
            number += 1
        yield events_pb2.DeliverResponse(status=common_pb2.SUCCESS)


def make_chain(n: int) -> list[common_pb2.Block]:
    blocks, previous = [], b""
    for i in range(n):
        data = [f"envelope {i}.{j}".encode() for j in range(i % 3 + 1)]
        header = common_pb2.BlockHeader(number=i, previous_hash=previous,
                                        data_hash=hashlib.sha256(b"".join(data)).digest())
        blocks.append(common_pb2.Block(header=header, data=common_pb2.BlockData(data=data)))
        previous = hashlib.sha256(header.SerializeToString()).digest()
    return blocks


def start_server(peer: FakePeer, credentials: grpc.ServerCredentials | None = None) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    gateway_pb2_grpc.add_GatewayServicer_to_server(peer, server)
    events_pb2_grpc.add_DeliverServicer_to_server(peer, server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    return server, port


@contextlib.contextmanager
def serving(peer: FakePeer):
    """``peer`` listening on loopback for the length of the block, with an insecure channel to it: yields the
    channel; both closed on the way out."""
    server, port = start_server(peer)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield channel
    finally:
        channel.close()
        server.stop(grace=None)
