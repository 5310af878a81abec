"""HTTPS and client certificates (optional mutual TLS) for ``ipledger gateway serve``.

    --tls-cert FILE --tls-key FILE       serve HTTPS (TLS 1.2 or newer); the key file must be 0600
    --client-ca [ORG=]FILE | consortium  trust client certificates issued by these CAs (repeatable);
                                         ORG= binds the certificates a CA issues to that organisation,
                                         ``consortium`` = the TLS CA of the gateway's organisation, bound to it
    --client-cert required|optional      (default: required when a client CA is given)

:class:`TLSOptions` holds the options as given. :meth:`TLSOptions.load` checks them before gunicorn
forks (files, the key's mode, that the certificate matches the key, the organisations) and returns a
:class:`ServerTLS`: the server's ``ssl.SSLContext`` and :meth:`ServerTLS.identify`, which attributes a
verified client certificate to an organisation by the CA that issued it.

:func:`install` adds the rule to the app: a request with a client certificate of org X whose
credential (API key, dashboard session or login form) belongs to org Y != X is refused with 403
``client-certificate-mismatch``. The API key stays required: the certificate is a second factor.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization

from ipledger.gateway.filestore import require_owner_only

CONSORTIUM = "consortium"
CLIENT_CERT_MODES = ("required", "optional")
ENVIRON_KEY = "ipledger.client_certificate"  # the request's ClientCertificate (set by install's middleware)
PROBLEM = "client-certificate-mismatch"
_MSP_ID = re.compile(r"^[A-Za-z0-9.-]{1,64}$")  # as gateway/auth.py accepts for a key's org


class TLSError(ValueError):
    """The TLS options cannot be used (the message says why)."""


@dataclass(frozen=True)
class ClientCA:
    """A CA certificate trusted for client certificates; ``org`` None: not bound to an organisation."""
    org: str | None
    source: str
    cert: x509.Certificate


@dataclass(frozen=True)
class ClientCertificate:
    """What the gateway knows of a verified client certificate (never the certificate itself)."""
    subject: str
    issuer: str
    org: str | None          # the organisation its issuing CA is bound to
    known_issuer: bool       # its issuer is one of the configured CAs (False: issued by an intermediate CA)


# ------------------------------------------------------------------------------------------ options

@dataclass(frozen=True)
class TLSOptions:
    """The TLS options of ``gateway serve`` / ``gateway start``, as given on the command line."""
    cert_file: str | None = None
    key_file: str | None = None
    client_cas: tuple[str, ...] = ()
    client_cert: str | None = None

    @classmethod
    def from_args(cls, args) -> "TLSOptions":
        return cls(args.tls_cert, args.tls_key, tuple(args.client_ca or ()), args.client_cert)

    @property
    def https(self) -> bool:
        return bool(self.cert_file)

    def check_combination(self) -> None:
        """The options that make no sense together (no file is read)."""
        if bool(self.cert_file) != bool(self.key_file):
            raise TLSError("--tls-cert and --tls-key go together: give the server certificate and its key")
        if self.client_cas and not self.cert_file:
            raise TLSError("--client-ca needs HTTPS: give --tls-cert and --tls-key too")
        if self.client_cert is not None and not self.client_cas:
            raise TLSError("--client-cert needs --client-ca (the CAs whose client certificates are accepted)")
        if self.client_cert is not None and self.client_cert not in CLIENT_CERT_MODES:
            raise TLSError(f"--client-cert must be one of {', '.join(CLIENT_CERT_MODES)}, not {self.client_cert!r}")

    def files(self) -> list[str]:
        """The files the options name, as absolute paths (what a gateway run in a container is given)."""
        out = [_absolute(f) for f in (self.cert_file, self.key_file) if f]
        return out + [_absolute(path) for _, path in map(_split_ca_spec, self.client_cas) if path]

    def argv(self) -> list[str]:
        """The options as ``gateway serve`` arguments, with absolute paths (for ``gateway start``)."""
        out: list[str] = []
        if self.cert_file:
            out += ["--tls-cert", _absolute(self.cert_file), "--tls-key", _absolute(self.key_file)]
        for spec in self.client_cas:
            org, path = _split_ca_spec(spec)
            out += ["--client-ca", spec if path is None else (f"{org}={_absolute(path)}" if org else _absolute(path))]
        if self.client_cert:
            out += ["--client-cert", self.client_cert]
        return out

    def load(self, org_tls_cas: Mapping[str, Path | str]) -> "ServerTLS | None":
        """Check everything and build the server's TLS settings (None: plain HTTP).

        ``org_tls_cas``: the gateway's own organisation -> its TLS CA certificate file (the only
        organisation ``ORG=`` may name; ``consortium`` uses its file)."""
        self.check_combination()
        if not self.cert_file:
            return None
        chain = read_certs(self.cert_file, "--tls-cert")
        key = read_private_key(self.key_file, "--tls-key")
        if spki(chain[0].public_key()) != spki(key.public_key()):
            raise TLSError(f"the certificate in {self.cert_file} (--tls-cert) does not match the private key in "
                           f"{self.key_file} (--tls-key)")
        expires = chain[0].not_valid_after_utc
        if expires < dt.datetime.now(dt.timezone.utc):
            raise TLSError(f"the server certificate in {self.cert_file} expired on {expires:%Y-%m-%d %H:%M} UTC")
        client_cas = self._client_cas(org_tls_cas)
        mode = self.client_cert or ("required" if client_cas else None)
        server = ServerTLS(Path(self.cert_file).resolve(), Path(self.key_file).resolve(), client_cas, mode)
        server.context()  # what OpenSSL itself refuses (an unsupported key, …) fails here, before the fork
        return server

    def _client_cas(self, org_tls_cas: Mapping[str, Path | str]) -> tuple[ClientCA, ...]:
        cas: list[ClientCA] = []
        for spec in self.client_cas:
            org, path = _split_ca_spec(spec)
            if path is None:  # consortium
                if not org_tls_cas:
                    raise TLSError("--client-ca consortium: the state directory describes no organisation")
                for msp_id, ca_file in org_tls_cas.items():
                    cas += [ClientCA(msp_id, f"{msp_id}'s TLS CA", c) for c in _read_cas(str(ca_file), spec)]
                continue
            if org is not None and org not in org_tls_cas:
                known = ", ".join(org_tls_cas) or "none"
                raise TLSError(f"unknown organisation {org!r} in --client-ca {spec}; the organisations of this "
                               f"network are: {known}")
            cas += [ClientCA(org, path, c) for c in _read_cas(path, spec)]
        seen: dict[bytes, ClientCA] = {}
        for ca in cas:
            first = seen.setdefault(ca.cert.fingerprint(hashes.SHA256()), ca)
            if first.org != ca.org:
                raise TLSError(f"the CA certificate {ca.cert.subject.rfc4514_string()!r} is given for "
                               f"{first.org or 'no organisation'} ({first.source}) and for "
                               f"{ca.org or 'no organisation'} ({ca.source}): a CA can vouch for one "
                               f"organisation only")
        return tuple(seen.values())


def org_tls_cas(config) -> dict[str, Path]:
    """Each application organisation of a :class:`ipledger.gateway.config.GatewayConfig` -> its TLS CA file
    (cryptogen's ``tlsca``, which also issues the org's users' TLS client certificates)."""
    return {o.msp_id: Path(o.tls_root_cert) for o in config.orgs.values()}


# ------------------------------------------------------------------------------------------ serving

@dataclass
class ServerTLS:
    """Checked TLS settings: the server's SSL context and the client CAs with their organisations."""
    cert_file: Path
    key_file: Path
    client_cas: tuple[ClientCA, ...] = ()
    client_cert: str | None = None          # "required" | "optional" | None (no client certificates)
    _contexts: dict[int, ssl.SSLContext] = field(default_factory=dict, repr=False)

    @property
    def binds_orgs(self) -> bool:
        return any(ca.org for ca in self.client_cas)

    def context(self) -> ssl.SSLContext:
        """The server's SSL context, built once per process (gunicorn asks for one per connection)."""
        ctx = self._contexts.get(os.getpid())
        if ctx is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            try:
                ctx.load_cert_chain(self.cert_file, self.key_file)
            except ssl.SSLError as exc:
                raise TLSError(f"OpenSSL refuses the server certificate or key ({exc.reason or exc})") from None
            if self.client_cas:
                ctx.load_verify_locations(cadata="".join(
                    ca.cert.public_bytes(serialization.Encoding.PEM).decode("ascii") for ca in self.client_cas))
                # every given CA certificate is a trust anchor, an intermediate CA too
                ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
                ctx.verify_mode = ssl.CERT_REQUIRED if self.client_cert == "required" else ssl.CERT_OPTIONAL
            self._contexts[os.getpid()] = ctx
        return ctx

    def gunicorn_options(self) -> dict:
        """gunicorn settings: certfile/keyfile turn TLS on; the ``ssl_context`` hook supplies the context
        (with the client CAs of several files, which gunicorn's single ``ca_certs`` file cannot)."""
        return {"certfile": str(self.cert_file), "keyfile": str(self.key_file),
                "cert_reqs": self.context().verify_mode, "ssl_context": self._gunicorn_ssl_context}

    def _gunicorn_ssl_context(self, conf, default_ssl_context_factory) -> ssl.SSLContext:
        return self.context()

    def identify(self, der: bytes) -> ClientCertificate:
        """The organisation of a client certificate OpenSSL has verified: its issuing CA's."""
        cert = x509.load_der_x509_certificate(der)
        subject, issuer = cert.subject.rfc4514_string()[:256], cert.issuer.rfc4514_string()[:256]
        for ca in self.client_cas:
            try:
                cert.verify_directly_issued_by(ca.cert)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return ClientCertificate(subject, issuer, ca.org, True)
        return ClientCertificate(subject, issuer, None, False)

    def refusal(self, cert: ClientCertificate, credential_org: str) -> str | None:
        """Why a credential of ``credential_org`` may not be used with ``cert`` (None: it may)."""
        if cert.org is not None and cert.org != credential_org:
            return (f"the client certificate belongs to {cert.org}, the credential to {credential_org}: a "
                    f"request must carry the certificate and the API key of one organisation")
        if not cert.known_issuer and self.binds_orgs:
            return ("the client certificate was not issued directly by one of the gateway's client CAs (an "
                    "intermediate CA?), so its organisation is unknown; the gateway must be given that CA")
        return None


# ------------------------------------------------------------------------------------------ the app

def install(app, server: ServerTLS) -> None:
    """Attribute each request's client certificate, and refuse credentials of another organisation.

    A WSGI middleware (outermost, so the dashboard mounted under /dashboard sees it too) reads the
    verified peer certificate from the TLS socket gunicorn passes in ``environ["gunicorn.socket"]``."""
    from flask import g, request, session

    from ipledger.gateway.api.common import presented_key, state
    from ipledger.gateway import problems
    from ipledger.gateway.problems import Problem

    inner = app.wsgi_app

    def with_client_certificate(environ, start_response):
        environ.pop(ENVIRON_KEY, None)
        sock = environ.get("gunicorn.socket")
        der = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
        if der:
            environ[ENVIRON_KEY] = server.identify(der)
        return inner(environ, start_response)

    app.wsgi_app = with_client_certificate

    def credential_orgs() -> list[str]:
        """The organisations of the credentials this request carries (valid ones only: an invalid key
        is answered 401 by the route as usual)."""
        orgs = []
        keys = state().keys
        presented = [presented_key()]
        if request.method == "POST" and request.mimetype in ("application/x-www-form-urlencoded",
                                                             "multipart/form-data"):
            presented.append(request.form.get("api_key"))  # the dashboard's login form
        for key in presented:
            principal = keys.authenticate(key) if key else None
            if principal is not None:
                orgs.append(principal.org)
        return orgs

    def mismatch(cert: ClientCertificate, orgs: list[str]) -> Problem | None:
        for org in orgs:
            reason = server.refusal(cert, org)
            if reason:
                return Problem(403, PROBLEM, reason, extra={"certificate_org": cert.org, "credential_org": org})
        return None

    @app.before_request
    def _check_api():
        cert = request.environ.get(ENVIRON_KEY)
        if cert is None:
            return None
        if isinstance(getattr(g, "log_extra", None), dict):
            g.log_extra.update(client_cert_org=cert.org, client_cert_subject=cert.subject)
        problem = mismatch(cert, credential_orgs())
        if problem is not None:
            raise problem  # rendered by the app's problem handler (request id, log)
        return None

    pages = app.extensions.get("ipledger_dashboard")  # the dashboard: its own Flask app, session cookies
    if pages is not None:
        @pages.before_request
        def _check_dashboard():
            cert = request.environ.get(ENVIRON_KEY)
            if cert is None:
                return None
            orgs = credential_orgs() + ([session["org"]] if session.get("org") else [])
            problem = mismatch(cert, orgs)
            if problem is None:
                return None
            return problems.response(problem)


# ------------------------------------------------------------------------------------------ files

def _absolute(path: str | None) -> str:
    return str(Path(path).resolve()) if path else ""


def _split_ca_spec(spec: str) -> tuple[str | None, str | None]:
    """``consortium`` -> (None, None); ``ORG=FILE`` -> (ORG, FILE); ``FILE`` -> (None, FILE)."""
    if spec == CONSORTIUM:
        return None, None
    org, sep, path = spec.partition("=")
    if sep and _MSP_ID.match(org) and path:
        return org, path
    return None, spec


def _read(path: str, option: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise TLSError(f"{option}: no such file: {path}") from None
    except IsADirectoryError:
        raise TLSError(f"{option}: {path} is a directory, not a PEM file") from None
    except OSError as exc:
        raise TLSError(f"{option}: cannot read {path} ({exc.strerror})") from None


def read_certs(path: str, option: str) -> list[x509.Certificate]:
    data = _read(path, option)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        raise TLSError(f"{option}: {path} holds no PEM certificate")
    return certs


def _read_cas(path: str, spec: str) -> list[x509.Certificate]:
    certs = read_certs(path, f"--client-ca {spec}")
    for cert in certs:
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise TLSError(f"--client-ca {spec}: {cert.subject.rfc4514_string()!r} in {path} is not a CA "
                           f"certificate (no basicConstraints CA:TRUE); give the CA that issues the client "
                           f"certificates")
    return certs


def read_private_key(path: str, option: str):
    """The unencrypted PEM private key in ``path``, refused unless the file is readable by its owner only
    (``option`` names where the path came from, for the messages). Shared with :mod:`ipledger.gateway.client_tls`."""
    try:
        require_owner_only(Path(path), f"{option}: private key", TLSError)
    except FileNotFoundError:
        raise TLSError(f"{option}: no such file: {path}") from None
    except OSError as exc:
        raise TLSError(f"{option}: cannot read {path} ({exc.strerror})") from None
    data = _read(path, option)
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TLSError(f"{option}: {path} is encrypted; no passphrase can be asked for: give an unencrypted key "
                       f"(mode 0600)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise TLSError(f"{option}: {path} holds no PEM private key") from None


def spki(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
