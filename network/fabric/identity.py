"""An X.509 client identity: the MSP it belongs to and its PEM certificate.

Fabric names the creator of every request by a serialized ``msp.SerializedIdentity``
(``mspid`` + the PEM bytes of the certificate). The bytes must be identical in every
message of a transaction, so they are computed once.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509
from fabric_protos.msp import identities_pb2


@dataclass(frozen=True)
class X509Identity:
    msp_id: str
    certificate_pem: bytes
    _creator: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.msp_id:
            raise ValueError("an identity needs an MSP id")
        pem = self.certificate_pem
        if isinstance(pem, str):
            pem = pem.encode()
            object.__setattr__(self, "certificate_pem", pem)
        try:
            x509.load_pem_x509_certificate(pem)
        except ValueError as exc:
            raise ValueError(f"identity of {self.msp_id}: not a PEM X.509 certificate: {exc}") from exc
        creator = identities_pb2.SerializedIdentity(mspid=self.msp_id, id_bytes=pem)
        object.__setattr__(self, "_creator", creator.SerializeToString())

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.certificate_pem)

    def serialize(self) -> bytes:
        """The serialized ``msp.SerializedIdentity`` (the "creator" of Fabric headers)."""
        return self._creator
