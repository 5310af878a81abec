"""Decoding the rich gRPC status a Fabric Gateway attaches to its errors.

The Gateway puts a ``google.rpc.Status`` in the ``grpc-status-details-bin``
trailing metadata; its ``details`` are ``google.protobuf.Any`` values, of which
the ``gateway.ErrorDetail`` ones say which peer/orderer failed and why.
``google.rpc.status_pb2`` (googleapis-common-protos) is not a dependency here,
so a wire-compatible definition of Status/Any is built in a private descriptor
pool (it never touches the default pool, so installing googleapis later cannot
clash with it).
"""
from __future__ import annotations

from dataclasses import dataclass

from fabric_protos.gateway import gateway_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

STATUS_DETAILS_KEY = "grpc-status-details-bin"
_ERROR_DETAIL_TYPE = gateway_pb2.ErrorDetail.DESCRIPTOR.full_name  # "gateway.ErrorDetail"


def _build_status_class():
    f = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="ipledger/rpc_status.proto",
                                              package="ipledger.rpcstatus", syntax="proto3")
    any_ = file.message_type.add(name="Any")
    any_.field.add(name="type_url", number=1, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    any_.field.add(name="value", number=2, type=f.TYPE_BYTES, label=f.LABEL_OPTIONAL)
    status = file.message_type.add(name="Status")
    status.field.add(name="code", number=1, type=f.TYPE_INT32, label=f.LABEL_OPTIONAL)
    status.field.add(name="message", number=2, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    status.field.add(name="details", number=3, type=f.TYPE_MESSAGE, label=f.LABEL_REPEATED,
                     type_name=".ipledger.rpcstatus.Any")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("ipledger.rpcstatus.Status"))


RpcStatus = _build_status_class()


@dataclass(frozen=True)
class ErrorDetail:
    """One endpoint's part of a Gateway error."""
    address: str
    msp_id: str
    message: str


def decode_status(data: bytes):
    """The ``google.rpc.Status`` message (code, message, details) in ``data``."""
    return RpcStatus.FromString(data)


def error_details_from_status(data: bytes) -> list[ErrorDetail]:
    """The ``gateway.ErrorDetail`` entries of a serialized ``google.rpc.Status``."""
    try:
        status = decode_status(data)
    except DecodeError:
        return []
    details = []
    for any_ in status.details:
        if any_.type_url.rsplit("/", 1)[-1] != _ERROR_DETAIL_TYPE:
            continue
        try:
            d = gateway_pb2.ErrorDetail.FromString(any_.value)
        except DecodeError:
            continue
        details.append(ErrorDetail(address=d.address, msp_id=d.msp_id, message=d.message))
    return details


def error_details_from_metadata(metadata) -> list[ErrorDetail]:
    """ErrorDetail entries from gRPC trailing metadata (a sequence of (key, value))."""
    for key, value in metadata or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            return error_details_from_status(value)
    return []
