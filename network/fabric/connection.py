"""A gRPC channel to a Fabric peer over TLS.

One channel is meant to be shared by everything talking to that peer (Gateway,
Deliver); grpc channels are thread-safe.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

MAX_MESSAGE_BYTES = 100 * 1024 * 1024

# Fabric peers enforce a minimum client ping interval (peer.keepalive.minInterval,
# 60 s by default) and hang up on clients that ping more often: stay above it.
KEEPALIVE_TIME_MS = 120_000
KEEPALIVE_TIMEOUT_MS = 20_000


def _pem(value: bytes | str | Path | None, what: str) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    path = Path(value)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {what} {path}: {exc.strerror}") from exc


def tls_cert_hash(cert_pem: bytes | str | Path) -> bytes:
    """SHA-256 of a certificate's DER encoding (what Fabric binds Deliver requests to)."""
    cert = x509.load_pem_x509_certificate(_pem(cert_pem, "TLS certificate"))
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()


@dataclass(frozen=True)
class Endpoint:
    """Where and how to reach a peer.

    address: ``host:port``; tls_root_cert: the peer org's TLS CA (PEM bytes or a
    path); client_cert/client_key: for mutual TLS (both or neither);
    server_name: the host name in the peer's TLS certificate when it differs
    from the dialled host (e.g. dialling 127.0.0.1).
    """
    address: str
    tls_root_cert: bytes | str | Path
    client_cert: bytes | str | Path | None = None
    client_key: bytes | str | Path | None = None
    server_name: str | None = None

    @property
    def client_cert_hash(self) -> bytes | None:
        return tls_cert_hash(self.client_cert) if self.client_cert is not None else None


def channel_options(server_name: str | None = None) -> list[tuple[str, object]]:
    options: list[tuple[str, object]] = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
        options.append(("grpc.default_authority", server_name))
    return options


def dial(endpoint: Endpoint) -> grpc.Channel:
    """A TLS channel to ``endpoint`` (connects lazily, on the first call)."""
    if (endpoint.client_cert is None) != (endpoint.client_key is None):
        raise ValueError("mutual TLS needs both a client certificate and its key")
    root = _pem(endpoint.tls_root_cert, "TLS root certificate")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=root,
        private_key=_pem(endpoint.client_key, "TLS client key"),
        certificate_chain=_pem(endpoint.client_cert, "TLS client certificate"),
    )
    return grpc.secure_channel(endpoint.address, credentials, options=channel_options(endpoint.server_name))
