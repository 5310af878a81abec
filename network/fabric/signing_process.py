"""A signer whose private key stays in a child process of its own.

A process that acts for several organisations on one machine — the benchmarks' load generator, the integration
tests' harness, an operator's tool — must still never hold two organisations' private keys (the promise: each
organisation's keys with their owner only). :func:`load_identity_apart` gives an identity (its certificate, read
here) and a :class:`SigningProcess`: the same interface as :class:`~.signing.Signer`, the key read and used only
by a child (``python -I -m ipledger.network.fabric.signing_process MSP_DIR MSP_ID``), which loads it with
:func:`~.local_msp.load_identity` (its file mode checked, the key matched to the certificate) and then signs the
SHA-256 digests sent to it. The child ends when its input closes: with :meth:`SigningProcess.close`, or when
this process ends, however it ends.

The pipe protocol, on the child's standard input and output: the child first answers ``OK`` and the public key
(SubjectPublicKeyInfo DER, after a 2-byte length), or ``ER`` and a message; then, for each 32-byte digest it
reads, a 1-byte length and the DER signature (low S).
"""
from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from ipledger.network.fabric.identity import X509Identity
from ipledger.network.fabric.msp import MSPError
from ipledger.network.fabric.signing import sha256

__all__ = ["SigningProcess", "load_identity_apart"]

_SPKI = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
START_TIMEOUT_S = 60.0   # the child's start: the interpreter, cryptography, the key
SIGN_TIMEOUT_S = 30.0    # one signature


class SigningProcess:
    """Signs SHA-256 digests with the key of an MSP directory held by a child process; thread-safe."""

    def __init__(self, msp_dir: Path | str, msp_id: str):
        self.msp_dir = Path(msp_dir)
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-m", "ipledger.network.fabric.signing_process", str(self.msp_dir), msp_id],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, close_fds=True)
        try:
            status = self._read(2, START_TIMEOUT_S)
            body = self._read(int.from_bytes(self._read(2, START_TIMEOUT_S), "big"), START_TIMEOUT_S)
            if status != b"OK":
                raise MSPError(body.decode("utf-8", "replace") or f"the signing process of {self.msp_dir} failed")
            self.public_key = serialization.load_der_public_key(body)
        except BaseException:
            self.close()
            raise

    def _read(self, n: int, timeout: float) -> bytes:
        """``n`` bytes from the child within ``timeout`` seconds (MSPError, naming what it said, otherwise)."""
        out = b""
        poll = select.poll()   # not select(): a process with many connections has descriptors past 1024
        poll.register(self._proc.stdout, select.POLLIN)
        while len(out) < n:
            ready = poll.poll(timeout * 1000)
            chunk = self._proc.stdout.read(n - len(out)) if ready else None
            if not chunk:
                self._proc.kill()
                said = self._proc.stderr.read(2000).decode("utf-8", "replace").strip().splitlines()[-1:]
                raise MSPError(f"the signing process of {self.msp_dir} "
                               f"{'ended' if ready else 'did not answer in time'}" + (f": {said[0]}" if said else ""))
            out += chunk
        return out

    def sign_digest(self, digest: bytes) -> bytes:
        """DER-encoded low-S ECDSA signature of a 32-byte SHA-256 digest, made by the child."""
        if len(digest) != 32:
            raise ValueError(f"expected a 32-byte SHA-256 digest, got {len(digest)} bytes")
        with self._lock:
            try:
                self._proc.stdin.write(digest)
            except (BrokenPipeError, ValueError):
                raise MSPError(f"the signing process of {self.msp_dir} ended") from None
            return self._read(self._read(1, SIGN_TIMEOUT_S)[0], SIGN_TIMEOUT_S)

    def sign(self, message: bytes) -> bytes:
        return self.sign_digest(sha256(message))

    def close(self) -> None:
        """End the child (it ends by itself when this process ends)."""
        with self._lock:
            if self._proc.stdin and not self._proc.stdin.closed:
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            for stream in (self._proc.stdout, self._proc.stderr):
                if stream:
                    stream.close()

    def __enter__(self) -> "SigningProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load_identity_apart(msp_dir: Path | str, msp_id: str) -> tuple[X509Identity, SigningProcess]:
    """The identity of an MSP directory (its certificate) and a signer whose key only a child process reads."""
    from ipledger.network.fabric.local_msp import load_certificate
    identity = load_certificate(msp_dir, msp_id)
    signer = SigningProcess(msp_dir, msp_id)
    if identity.certificate.public_key().public_bytes(*_SPKI) != signer.public_key.public_bytes(*_SPKI):
        signer.close()
        raise MSPError(f"the key of {msp_dir} is not that of its certificate")
    return identity, signer


def _serve(msp_dir: str, msp_id: str) -> int:
    """The child: load the key, answer with its public key, then sign each digest read until the input ends."""
    from ipledger.network.fabric.local_msp import load_identity
    out, inp = sys.stdout.buffer, sys.stdin.buffer
    try:
        _identity, signer = load_identity(msp_dir, msp_id)
    except (MSPError, OSError, ValueError) as exc:
        message = str(exc).encode()[:60000]
        out.write(b"ER" + len(message).to_bytes(2, "big") + message)
        out.flush()
        return 1
    spki = signer.public_key.public_bytes(*_SPKI)
    out.write(b"OK" + len(spki).to_bytes(2, "big") + spki)
    out.flush()
    while True:
        digest = b""
        while len(digest) < 32:
            chunk = os.read(inp.fileno(), 32 - len(digest))
            if not chunk:
                return 0
            digest += chunk
        signature = signer.sign_digest(digest)
        out.write(bytes([len(signature)]) + signature)
        out.flush()


if __name__ == "__main__":
    sys.exit(_serve(sys.argv[1], sys.argv[2]))
