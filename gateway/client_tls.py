"""HTTPS towards the gateway for its own clients (``ipledger import``, ``ipledger report``).

    --ca-cert FILE        PEM bundle trusted for the gateway's server certificate (default: system trust)
    --client-cert FILE    client certificate (PEM, then any intermediate CAs) for mutual TLS ...
    --client-key FILE     ... and its private key (PEM, unencrypted, mode 0600 or stricter)

Each also from the environment (``IPLEDGER_GATEWAY_CA_CERT``, ``IPLEDGER_CLIENT_CERT``,
``IPLEDGER_CLIENT_KEY``); the command line wins. :meth:`ClientTLSOptions.load` checks the options
against the gateway URL (files, the key's mode, that the certificate matches the key; no option with
an ``http://`` URL, where it would be silently ignored; ``http://`` to this host only) and returns a :class:`ClientTLS`, whose
:meth:`ClientTLS.urlopen` is ``urllib.request.urlopen`` with the context, turning a TLS failure that
retrying cannot cure (unknown CA, host name mismatch, the gateway wanting or refusing a client
certificate, no TLS at all) into :class:`TLSFailure`, whose message names the cause.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl

# ssl, urllib.request and cryptography are imported where used: add_arguments runs for every ``ipledger`` command

ENV = {"ca_cert": "IPLEDGER_GATEWAY_CA_CERT", "client_cert": "IPLEDGER_CLIENT_CERT",
       "client_key": "IPLEDGER_CLIENT_KEY"}
OPTION = {"ca_cert": "--ca-cert", "client_cert": "--client-cert", "client_key": "--client-key"}

# verify codes of ssl.SSLCertVerificationError (OpenSSL's X509_V_ERR_*)
_UNTRUSTED = {2, 18, 19, 20, 21}
_EXPIRED, _NOT_YET_VALID = 10, 9
_NAME_MISMATCH = {62, 63, 64}  # host name, e-mail, IP address
# TLS alerts by which the gateway refuses the client certificate it was given
_CERT_REFUSED = {
    "TLSV1_ALERT_UNKNOWN_CA": "it was not issued by a CA the gateway trusts for client certificates",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "it has expired",
    "SSLV3_ALERT_BAD_CERTIFICATE": "it is not valid",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "it is not valid for a client",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "its type or purpose is not supported",
    "SSLV3_ALERT_CERTIFICATE_REVOKED": "it was revoked",
    "TLSV1_ALERT_ACCESS_DENIED": "access denied",
    "TLSV1_ALERT_DECRYPT_ERROR": "the handshake signature does not verify",
}
_NOT_TLS = {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST",
            "UNKNOWN_PROTOCOL"}
_VERSION = {"UNSUPPORTED_PROTOCOL", "NO_PROTOCOLS_AVAILABLE", "TLSV1_ALERT_PROTOCOL_VERSION"}


class ClientTLSError(ValueError):
    """The TLS options cannot be used (usage or file error; the message says why)."""


class TLSFailure(Exception):
    """The TLS connection to the gateway failed for a reason retrying cannot cure (the message names it)."""


def add_arguments(parser) -> None:
    """The options of a command that calls the gateway."""
    group = parser.add_argument_group("HTTPS to the gateway")
    group.add_argument("--ca-cert", metavar="FILE", default=None,
                       help=f"trust the gateway's certificate if issued by a CA in FILE (PEM; env {ENV['ca_cert']}; "
                            f"default: the system's CAs)")
    group.add_argument("--client-cert", metavar="FILE", default=None,
                       help=f"present this client certificate (PEM; env {ENV['client_cert']}); with --client-key")
    group.add_argument("--client-key", metavar="FILE", default=None,
                       help=f"the client certificate's private key (PEM, unencrypted, mode 0600; env "
                            f"{ENV['client_key']})")
    group.add_argument("--insecure-http", action="store_true",
                       help="allow an http:// gateway URL on another host (the API key and the events cross the "
                            "network in clear text: only inside a network you trust, e.g. a cluster's own)")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, without brackets) is this host: the one place plain HTTP may go —
    the gateway's own listening address (``server.plain_http_refused``), its clients' URL, a webhook's."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ClientTLSOptions:
    """The options as given: ``(path, where it came from)`` per option, or None."""
    ca_cert: tuple[str, str] | None = None
    client_cert: tuple[str, str] | None = None
    client_key: tuple[str, str] | None = None
    insecure_http: bool = False   # --insecure-http: http:// to another host, said out loud

    @classmethod
    def from_args(cls, args, environ=None) -> "ClientTLSOptions":
        environ = os.environ if environ is None else environ
        values: dict = {"insecure_http": bool(getattr(args, "insecure_http", False))}
        for name, env in ENV.items():
            given = getattr(args, name, None)
            if given:
                values[name] = (given, OPTION[name])
            elif environ.get(env):
                values[name] = (environ[env], env)
        return cls(**values)

    @property
    def given(self) -> list[str]:
        """Where the options given came from (``--ca-cert``, ``IPLEDGER_CLIENT_KEY`` …)."""
        return [opt[1] for opt in (self.ca_cert, self.client_cert, self.client_key) if opt]

    def load(self, url: str) -> "ClientTLS":
        """Check the options for ``url`` and build the client's SSL context (None for http, which is for this
        host only: the API key, and the customs values an import carries, would cross the network in clear text)."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ClientTLSError(f"the gateway URL {url!r} is not an http:// or https:// URL")
        if parts.scheme == "http" and not is_loopback(parts.hostname) and not self.insecure_http:
            raise ClientTLSError(f"the gateway URL {url} is plain HTTP to another host: the API key would cross the "
                                 f"network in clear text; use the gateway's https:// URL (or --insecure-http inside "
                                 f"a network you trust)")
        if parts.scheme == "http":
            if self.given:
                raise ClientTLSError(f"{', '.join(self.given)} given, but the gateway URL {url} is plain HTTP: "
                                     f"they would be ignored; use the gateway's https:// URL (or drop them)")
            return ClientTLS(url, self, None)
        if bool(self.client_cert) != bool(self.client_key):
            have, missing = (("client_cert", "client_key") if self.client_cert else ("client_key", "client_cert"))
            raise ClientTLSError(f"{getattr(self, have)[1]} needs {OPTION[missing]} (or {ENV[missing]}): give the "
                                 f"client certificate and its private key together")
        import ssl

        from cryptography.hazmat.primitives import serialization

        from ipledger.gateway.tls import TLSError, read_certs
        try:
            if self.ca_cert:
                certs = read_certs(*self.ca_cert)
                context = ssl.create_default_context(cadata="".join(
                    c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certs))
                context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # every certificate given is an anchor
            else:
                context = ssl.create_default_context()
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            if self.client_cert:
                self._load_client_certificate(context)
        except TLSError as exc:
            raise ClientTLSError(str(exc)) from None
        return ClientTLS(url, self, context)

    def _load_client_certificate(self, context: ssl.SSLContext) -> None:
        import ssl

        from ipledger.gateway.tls import read_certs, read_private_key, spki
        (cert_path, cert_src), (key_path, key_src) = self.client_cert, self.client_key
        chain = read_certs(cert_path, cert_src)
        key = read_private_key(key_path, key_src)
        if spki(chain[0].public_key()) != spki(key.public_key()):
            raise ClientTLSError(f"the certificate in {cert_path} ({cert_src}) does not match the private key in "
                                 f"{key_path} ({key_src})")
        expires = chain[0].not_valid_after_utc
        if expires < dt.datetime.now(dt.timezone.utc):
            raise ClientTLSError(f"the client certificate in {cert_path} ({cert_src}) expired on "
                                 f"{expires:%Y-%m-%d %H:%M} UTC")
        try:
            context.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as exc:
            raise ClientTLSError(f"OpenSSL refuses the client certificate or key ({exc.reason or exc})") from None


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect not followed: the 3xx is the answer (an HTTPError). urllib would send the request's headers
    (an API key, a webhook's signature) on to whatever host the answer names. Also the webhook sender's."""

    def redirect_request(self, *args, **kwargs):
        return None


@dataclass
class ClientTLS:
    """Checked client TLS settings for one gateway URL; ``context`` None: plain HTTP."""
    url: str
    options: ClientTLSOptions
    context: ssl.SSLContext | None

    def urlopen(self, request, timeout: float):
        """``urllib.request.urlopen`` with the context; a TLS failure that retrying cannot cure raises
        :class:`TLSFailure` (HTTP errors and transient connection failures pass through unchanged)."""
        import http.client
        import ssl
        import urllib.error
        import urllib.request
        # a connection cut in the handshake: the gateway may have sent an alert that the reset lost
        cut = (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError, http.client.RemoteDisconnected)
        # a redirect is not followed: urllib would send the request's Authorization header (the API key) on to
        # whatever host the answer names, and a page there answering 200 would pass for the gateway's answer;
        # the 3xx comes back as an HTTPError, which the caller reports
        handlers: list = [NoRedirect()]
        if self.context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=self.context))
        try:
            return urllib.request.build_opener(*handlers).open(request, timeout=timeout)
        except urllib.error.HTTPError:
            raise
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            if isinstance(cause, BaseException):
                message = self.failure(cause)
                if message is None and self.context is not None and isinstance(cause, cut):
                    message = self.probe(timeout)
                if message is not None:
                    raise TLSFailure(message) from None
            raise

    # -- what went wrong -----------------------------------------------------------------------------------
    def failure(self, exc: BaseException) -> str | None:
        """Why the TLS connection failed, when retrying cannot help (None: not such a failure)."""
        import ssl
        if not isinstance(exc, ssl.SSLError) or isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError,
                                                                 ssl.SSLWantReadError, ssl.SSLWantWriteError)):
            return None
        host = urllib.parse.urlsplit(self.url).hostname
        where = f"the gateway at {self.url}"
        trust = (f"the CAs in {self.options.ca_cert[0]} ({self.options.ca_cert[1]})" if self.options.ca_cert
                 else "the system's CAs")
        how_to_trust = ("" if self.options.ca_cert else
                        f"; give the CA that issued it with --ca-cert FILE (or {ENV['ca_cert']})")
        if isinstance(exc, ssl.SSLCertVerificationError):
            code, text = exc.verify_code, exc.verify_message
            if code in _NAME_MISMATCH:
                return (f"{where}: its certificate is not valid for {host!r} ({text}); use the host name or "
                        f"address the certificate was issued for in the URL")
            if code in _UNTRUSTED:
                return f"{where}: its certificate is not issued by a CA trusted here ({trust}: {text}){how_to_trust}"
            if code == _EXPIRED:
                return f"{where}: its certificate has expired ({text})"
            if code == _NOT_YET_VALID:
                return f"{where}: its certificate is not valid yet ({text}; check the clocks)"
            return f"{where}: its certificate cannot be verified ({text})"
        reason = exc.reason or ""
        if reason == "TLSV13_ALERT_CERTIFICATE_REQUIRED" or (
                reason == "SSLV3_ALERT_HANDSHAKE_FAILURE" and not self.options.client_cert):
            if self.options.client_cert:
                return f"{where} refused the TLS handshake ({reason})"
            return (f"{where} requires a client certificate (TLS alert: certificate required); give --client-cert "
                    f"FILE and --client-key FILE (or {ENV['client_cert']} and {ENV['client_key']})")
        if reason in _CERT_REFUSED and self.options.client_cert:
            return (f"{where} refused the client certificate {self.options.client_cert[0]}: "
                    f"{_CERT_REFUSED[reason]} (TLS alert: {_alert(reason)})")
        if reason in _NOT_TLS:
            return f"{where} does not answer TLS ({reason}); if it serves plain HTTP (on this host only), use an http:// URL"
        if reason in _VERSION:
            return f"{where}: no TLS version both sides accept (TLS 1.2 or newer) ({reason})"
        if "ALERT" in reason:
            return f"{where} ended the TLS handshake (TLS alert: {_alert(reason)})"
        if "CERTIFICATE" in reason:
            return f"{where}: TLS certificate problem ({reason})"
        return None

    def probe(self, timeout: float) -> str | None:
        """After a connection cut on an HTTPS connection: was it the gateway refusing us in the TLS handshake?

        With TLS 1.3 the gateway judges the client certificate (or its absence) after the client has
        finished the handshake and sent its request; its alert may then be lost to the reset. A bare
        handshake, then a read with nothing sent, receives that alert (or nothing: not a TLS problem)."""
        import socket
        import ssl
        parts = urllib.parse.urlsplit(self.url)
        try:
            with socket.create_connection((parts.hostname, parts.port or 443), timeout=min(timeout, 5.0)) as raw:
                with self.context.wrap_socket(raw, server_hostname=parts.hostname) as tls:
                    tls.settimeout(1.0)
                    tls.recv(1)
        except ssl.SSLError as exc:
            return self.failure(exc)
        except (OSError, ValueError):
            return None
        return None


def _alert(reason: str) -> str:
    """``TLSV13_ALERT_CERTIFICATE_REQUIRED`` -> ``certificate required``."""
    return reason.partition("_ALERT_")[2].replace("_", " ").lower() or reason
