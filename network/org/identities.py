"""An organisation's own identities: its CA and TLS CA, node, admin and client identities.

Each organisation runs this on its own host, in its own directory; no other
organisation's key is ever involved. The tree is the one Fabric's tools read
(the layout cryptogen writes, so every node and CLI finds its files where it
expects them)::

    <crypto>/                                   0700
      ca/ca.<domain>-cert.pem  ca/priv_sk        the identity CA (key 0600)
      ca/issued.json                             serial, subject, role, file, revoked (the CA's register)
      tlsca/tlsca.<domain>-cert.pem  tlsca/priv_sk   the TLS CA
      admintlsca/admintlsca.<domain>-cert.pem  admintlsca/priv_sk
                                                 the orderer administration CA: it issues the admins'
                                                 osnadmin client certificates (users/Admin@…/tls/osnadmin.*)
                                                 and nothing else; an orderer's admin endpoint trusts it
                                                 alone, so no client, peer or user TLS certificate of the
                                                 organisation can remove an orderer from a channel
      msp/                                       the org's MSP (public): cacerts/, tlscacerts/,
                                                 config.yaml (NodeOUs), crls/
      peers/<fqdn>/{msp,tls}   orderers/<fqdn>/{msp,tls}   users/<Name>@<domain>/{msp,tls}

Identities carry their role as a NodeOU (``peer``, ``orderer``, ``admin``,
``client``); node TLS certificates name the node's host, its FQDN,
``localhost`` and ``127.0.0.1``. Certificates are ECDSA P-256 / SHA-256 with
low-S signatures, as Fabric expects. Beyond creating them, an organisation can
add a user, renew a certificate (same key, new validity) and revoke one (a CRL
in ``msp/crls/``, which reaches the channel through the org's public
definition and a config update signed by its admin).

This is not a general CA: no enrolment protocol, no intermediate CAs.

One file, one object (:class:`OrgIdentities`): issuing, renewing and revoking all go through
the organisation's CAs and their register (``issued.json``) and write the same tree, so they read together.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ipledger.network.fabric.local_msp import MSPError, load_private_key
from ipledger.network.files import write_atomically
from ipledger.network.fabric.signing import is_low_s

ROLES = ("peer", "orderer", "admin", "client")
CA_YEARS = 10
LEAF_DAYS = 3 * 365
CRL_DAYS = 365
EXPIRY_WARNING_DAYS = 30
# A user's short name (``clerk2`` of ``clerk2@<domain>``): one path component of ``users/``, nothing else.
_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class IdentityError(RuntimeError):
    """An identity cannot be created, renewed or revoked; the message says why."""


# ----------------------------------------------------------------------------- files

def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def _write(path: Path, data: bytes, private: bool = False) -> None:
    _mkdir(path.parent)
    write_atomically(path, data, 0o600 if private else 0o644)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError) as e:
        raise IdentityError(f"cannot read certificate {path}: {e}") from e


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        return load_private_key(path)
    except (OSError, MSPError) as e:
        raise IdentityError(f"cannot read private key {path}: {e}") from e


# ----------------------------------------------------------------------------- certificates

def _sign(builder: x509.CertificateBuilder, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    """Sign until the ECDSA signature has a low S (Fabric rejects high-S signatures elsewhere
    and re-encodes certificates that have one; a low-S certificate is the same bytes everywhere)."""
    for _ in range(64):
        cert = builder.sign(key, hashes.SHA256())
        if is_low_s(cert.signature):
            return cert
    raise IdentityError("could not produce a low-S certificate signature")  # pragma: no cover


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _name(cn: str, org: str, ou: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "EU"),
             x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
    if ou:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _ca_cert(key: ec.EllipticCurvePrivateKey, cn: str, org: str) -> x509.Certificate:
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (x509.CertificateBuilder()
               .subject_name(_name(cn, org)).issuer_name(_name(cn, org))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=365 * CA_YEARS))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                            key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, data_encipherment=False,
                                            key_agreement=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH,
                                                     ExtendedKeyUsageOID.SERVER_AUTH]),
                              critical=False)
               .add_extension(ski, critical=False))
    return _sign(builder, key)


@dataclass
class CA:
    """A CA of this organisation: its certificate and key on disk."""

    cert_file: Path
    key_file: Path

    @property
    def cert(self) -> x509.Certificate:
        return load_cert(self.cert_file)

    def issue(self, public_key, cn: str, org: str, ou: str | None, *, tls: bool,
              hosts: list[str] = (), days: int = LEAF_DAYS,
              serial: int | None = None) -> x509.Certificate:
        ca_cert, ca_key = self.cert, _load_key(self.key_file)
        now = _now()
        not_after = min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
        builder = (x509.CertificateBuilder()
                   .subject_name(_name(cn, org, ou)).issuer_name(ca_cert.subject)
                   .public_key(public_key).serial_number(serial or x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(not_after)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=tls,
                                                key_cert_sign=False, crl_sign=False,
                                                content_commitment=False, data_encipherment=False,
                                                key_agreement=False, encipher_only=False,
                                                decipher_only=False), critical=True)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                       ca_cert.extensions.get_extension_for_class(
                           x509.SubjectKeyIdentifier).value), critical=False))
        if tls:
            builder = builder.add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        if hosts:
            sans = []
            for h in dict.fromkeys(hosts):
                try:
                    sans.append(x509.IPAddress(ipaddress.ip_address(h)))
                except ValueError:
                    sans.append(x509.DNSName(h))
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return _sign(builder, ca_key)


# ----------------------------------------------------------------------------- the organisation

NODE_OUS = ("client", "peer", "admin", "orderer")


@dataclass
class Issued:
    """One entry of the CA's register."""

    name: str          # e.g. peer0.customs.ipledger.example, Admin@customs.ipledger.example
    role: str          # peer | orderer | admin | client
    serial: int
    not_after: str
    revoked_at: str | None = None


class OrgIdentities:
    """The identity tree of one organisation, in ``crypto`` (its own directory)."""

    def __init__(self, crypto: Path, msp_id: str, domain: str):
        self.root = Path(crypto)
        self.msp_id = msp_id
        self.domain = domain

    # -- paths ----------------------------------------------------------------------------------
    @property
    def ca(self) -> CA:
        d = self.root / "ca"
        return CA(d / f"ca.{self.domain}-cert.pem", d / "priv_sk")

    @property
    def tlsca(self) -> CA:
        d = self.root / "tlsca"
        return CA(d / f"tlsca.{self.domain}-cert.pem", d / "priv_sk")

    @property
    def admin_tlsca(self) -> CA:
        d = self.root / "admintlsca"
        return CA(d / f"admintlsca.{self.domain}-cert.pem", d / "priv_sk")

    @property
    def msp(self) -> Path:
        return self.root / "msp"

    @property
    def register_file(self) -> Path:
        return self.root / "ca" / "issued.json"

    @property
    def crl_file(self) -> Path:
        return self.msp / "crls" / "crl.pem"

    def identity_dir(self, name: str, role: str) -> Path:
        sub = {"peer": "peers", "orderer": "orderers"}.get(role, "users")
        return self.root / sub / name

    def user_name(self, user: str) -> str:
        return f"{user}@{self.domain}"

    @property
    def exists(self) -> bool:
        return self.ca.key_file.exists()

    @property
    def created(self) -> bool:
        """Whether :meth:`create` completed: it writes the (empty) register last."""
        return self.register_file.exists()

    # -- creation -------------------------------------------------------------------------------
    def create(self) -> None:
        """The CA, the TLS CA and the org MSP (public part). Refuses to overwrite a CA; a creation cut
        short (no register yet: the CA issued nothing) is made again from the start."""
        if self.created or any((self.root / sub).exists() for sub in ("peers", "orderers", "users")):
            raise IdentityError(f"{self.root} already holds {self.msp_id}'s CA; its keys are kept")
        _mkdir(self.root)
        for ca, cn in ((self.ca, f"ca.{self.domain}"), (self.tlsca, f"tlsca.{self.domain}"),
                       (self.admin_tlsca, f"admintlsca.{self.domain}")):
            key = ec.generate_private_key(ec.SECP256R1())
            _write(ca.key_file, _key_pem(key), private=True)
            _write(ca.cert_file, pem(_ca_cert(key, cn, self.domain)))
        self._write_msp(self.msp, signing=None)
        _mkdir(self.msp / "crls")
        self._save_register([])

    def _node_ous(self) -> dict:
        ca = f"cacerts/{self.ca.cert_file.name}"
        ous = {f"{ou.capitalize()}OUIdentifier": {"Certificate": ca,
                                                  "OrganizationalUnitIdentifier": ou}
               for ou in NODE_OUS}
        return {"NodeOUs": {"Enable": True, **ous}}

    def _write_msp(self, d: Path, signing: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
                   | None, name: str = "") -> None:
        _write(d / "cacerts" / self.ca.cert_file.name, self.ca.cert_file.read_bytes())
        _write(d / "tlscacerts" / self.tlsca.cert_file.name, self.tlsca.cert_file.read_bytes())
        _write(d / "config.yaml", yaml.safe_dump(self._node_ous(), sort_keys=False).encode())
        if signing:
            cert, key = signing
            _write(d / "signcerts" / f"{name}-cert.pem", pem(cert))
            _write(d / "keystore" / "priv_sk", _key_pem(key), private=True)

    def issue(self, name: str, role: str, hosts: list[str] = ()) -> Path:
        """A new identity ``name`` with ``role``: its MSP (signing key and certificate) and its
        TLS key pair (a server certificate for nodes, a client certificate for users)."""
        if role not in ROLES:
            raise IdentityError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        if not self.created:
            raise IdentityError(f"{self.msp_id} has no CA yet in {self.root} (or its register "
                                f"{self.register_file} is missing)")
        d = self.identity_dir(name, role)
        if any(e.name == name for e in self.register()):
            raise IdentityError(f"{name} already exists in {d}"
                                + (" (revoked: 'ipledger org reissue' gives it a new key)"
                                   if all(e.revoked_at for e in self.register() if e.name == name) else ""))
        return self._issue(name, role, hosts)

    def _issue(self, name: str, role: str, hosts: list[str] | tuple[str, ...] = ()) -> Path:
        d = self.identity_dir(name, role)
        if d.exists():   # begun and cut short before the CA registered it, or revoked and issued again: made anew
            shutil.rmtree(d)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self.ca.issue(key.public_key(), name, self.domain, role, tls=False)
        self._write_msp(d / "msp", (cert, key), name)
        node = role in ("peer", "orderer")
        if node and self.crl_file.exists():   # the revocations so far (write_crl)
            _write(d / "msp" / "crls" / self.crl_file.name, self.crl_file.read_bytes())
        tls_key = ec.generate_private_key(ec.SECP256R1())
        short = name.split(".")[0].split("@")[0]
        tls_hosts = [name, short, *hosts, "localhost", "127.0.0.1"] if node else []
        tls_cert = self.tlsca.issue(tls_key.public_key(), name, self.domain, None, tls=True,
                                    hosts=tls_hosts)
        stem = "server" if node else "client"
        _write(d / "tls" / "ca.crt", self.tlsca.cert_file.read_bytes())
        _write(d / "tls" / f"{stem}.crt", pem(tls_cert))
        _write(d / "tls" / f"{stem}.key", _key_pem(tls_key), private=True)
        if role == "admin":  # the osnadmin client certificate, from the orderer administration CA
            admin_key = ec.generate_private_key(ec.SECP256R1())
            admin_cert = self.admin_tlsca.issue(admin_key.public_key(), name, self.domain, None, tls=True)
            _write(d / "tls" / "osnadmin.crt", pem(admin_cert))
            _write(d / "tls" / "osnadmin.key", _key_pem(admin_key), private=True)
        reg = self.register()
        reg.append(Issued(name, role, cert.serial_number, cert.not_valid_after_utc.isoformat()))
        self._save_register(reg)
        return d

    @property
    def chaincode_service_dir(self) -> Path:
        return self.root / "chaincode"

    def chaincode_service_tls(self, hosts: list[str] = ()) -> Path:
        """TLS for the organisation's chaincode service (the contract run as a service beside its
        peers, network/org/containers): a server pair the service presents (for ``hosts``, localhost and
        127.0.0.1: issued again when a host is missing from it) and a client pair its peers present to
        it (created once), both from this organisation's TLS CA, in ``crypto/chaincode/``. No MSP
        identity: the service signs nothing."""
        d = self.chaincode_service_dir
        if not self.exists:
            raise IdentityError(f"{self.msp_id} has no CA yet in {self.root}")
        names = ["localhost", "127.0.0.1", *hosts]
        if not (d / "client.key").exists():
            _write(d / "ca.crt", self.tlsca.cert_file.read_bytes())
            self._tls_pair(d, "client", f"chaincode-client.{self.domain}", [])
        if not (d / "server.key").exists() or not _names_cover(load_cert(d / "server.crt"), names):
            self._tls_pair(d, "server", f"chaincode.{self.domain}", names)
        return d

    def _tls_pair(self, d: Path, stem: str, cn: str, hosts: list[str]) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self.tlsca.issue(key.public_key(), cn, self.domain, None, tls=True, hosts=hosts)
        _write(d / f"{stem}.crt", pem(cert))
        _write(d / f"{stem}.key", _key_pem(key), private=True)

    def add_user(self, user: str, role: str = "client") -> Path:
        """A user ``<user>@<domain>`` (``client`` or ``admin``)."""
        if role not in ("client", "admin"):
            raise IdentityError("a user is a 'client' or an 'admin'")
        if not isinstance(user, str) or not _USER.fullmatch(user):
            raise IdentityError(f"user name {str(user)[:40]!r}: use letters, digits, '.', '_' and '-' "
                                "(at most 64, starting with a letter or digit), e.g. clerk2")
        return self.issue(self.user_name(user), role)

    # -- renewal, revocation and a new key -------------------------------------------------------
    def reissue(self, name: str) -> Path:
        """A new key and certificate (and TLS pairs) for ``name``, every certificate of which is revoked — a
        key compromised or lost: the names the code and the consortium file use (the gateway's ``User1``, the
        CLI's ``Admin``, a peer) can be used again. The old certificates stay on the CRL; the new one is on no
        CRL, so the channel needs no update. A peer keeps its TLS names. Not an orderer: the channel's consenter
        set names its certificates (a consenter update, not automated)."""
        entries = [e for e in self.register() if e.name in (name, self.user_name(name))]
        if not entries:
            raise IdentityError(f"{self.msp_id} has issued no identity named {name!r}")
        entry = entries[-1]
        if any(e.revoked_at is None for e in entries):
            raise IdentityError(f"{entry.name} has a certificate that is not revoked: revoke it first "
                                f"('ipledger org revoke --org {self.msp_id} --name {name}'), or renew it "
                                f"('ipledger org renew') if its key is safe")
        if entry.role == "orderer":
            raise IdentityError(f"{entry.name} is an orderer: the channel's consenter set names its certificates, "
                                "so a new key for it needs a consenter update (not automated)")
        hosts: list[str] = []
        server = self.identity_dir(entry.name, entry.role) / "tls" / "server.crt"
        if entry.role == "peer" and server.exists():
            with contextlib.suppress(x509.ExtensionNotFound):
                names = load_cert(server).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                short = entry.name.split(".")[0]
                hosts = [n for n in [*names.get_values_for_type(x509.DNSName),
                                     *map(str, names.get_values_for_type(x509.IPAddress))]
                         if n not in (entry.name, short, "localhost", "127.0.0.1")]
        return self._issue(entry.name, entry.role, hosts)

    def _find(self, name: str) -> Issued:
        for entry in reversed(self.register()):
            if entry.name in (name, self.user_name(name)) and entry.revoked_at is None:
                return entry
        raise IdentityError(f"{self.msp_id} has issued no valid identity named {name!r}")

    def renew(self, name: str, days: int = LEAF_DAYS) -> x509.Certificate:
        """A new certificate for the same key, valid ``days`` from now; the old one stays valid
        until it expires (revoke it to end it sooner). The identity's TLS certificates (and an
        admin's osnadmin one) are issued again for their same keys and names, valid as long:
        otherwise they would end on their old date, the renewed node's or admin's TLS with them."""
        if not isinstance(days, int) or days < 1:
            raise IdentityError(f"--days {days!r}: a whole number of days, at least 1")
        entry = self._find(name)
        d = self.identity_dir(entry.name, entry.role)
        [cert_file] = (d / "msp" / "signcerts").glob("*.pem")
        old = load_cert(cert_file)
        cert = self.ca.issue(old.public_key(), entry.name, self.domain, entry.role, tls=False,
                             days=days)
        tls = [(ca, d / "tls" / f"{stem}.crt") for ca, stem in
               ((self.tlsca, "server"), (self.tlsca, "client"), (self.admin_tlsca, "osnadmin"))
               if (d / "tls" / f"{stem}.crt").exists()]
        renewed = [(path, self._reissue_tls(ca, load_cert(path), days)) for ca, path in tls]
        # registered before it is written: a renewal cut short between the two leaves no certificate in use
        # that the register (and so a revocation's CRL) does not know
        reg = self.register()
        reg.append(Issued(entry.name, entry.role, cert.serial_number,
                          cert.not_valid_after_utc.isoformat()))
        self._save_register(reg)
        _write(cert_file, pem(cert))
        for path, tls_cert in renewed:
            _write(path, pem(tls_cert))
        return cert

    def _reissue_tls(self, ca: CA, old: x509.Certificate, days: int) -> x509.Certificate:
        """``old`` (a TLS certificate of ``ca``) again: same key, common name and names, valid ``days``."""
        try:
            san = old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            hosts = [str(g.value) for g in san if isinstance(g, (x509.DNSName, x509.IPAddress))]
        except x509.ExtensionNotFound:
            hosts = []
        [cn] = old.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return ca.issue(old.public_key(), str(cn.value), self.domain, None, tls=True, hosts=hosts, days=days)

    def revoke(self, name: str) -> Path:
        """Revoke every certificate issued to ``name``; rewrite the CRL in ``msp/crls``.

        The CRL reaches the channel when the org's definition is updated there
        (``ipledger admin propose update-org``, signed by the org's admin)."""
        reg = self.register()
        hits = [e for e in reg if e.name in (name, self.user_name(name)) and e.revoked_at is None]
        if not hits and any(e.name in (name, self.user_name(name)) for e in reg):
            return self.write_crl()   # revoked already (a run cut short before its CRL or definition): again
        if not hits:
            raise IdentityError(f"{self.msp_id} has issued no valid identity named {name!r}")
        when = _now().isoformat()
        for e in hits:
            e.revoked_at = when
        self._save_register(reg)
        return self.write_crl()

    def write_crl(self) -> Path:
        ca_cert, ca_key = self.ca.cert, _load_key(self.ca.key_file)
        now = _now()
        revoked = [e for e in self.register() if e.revoked_at]
        builder = (x509.CertificateRevocationListBuilder()
                   .issuer_name(ca_cert.subject).last_update(now)
                   .next_update(now + dt.timedelta(days=CRL_DAYS))
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                       ca_cert.extensions.get_extension_for_class(
                           x509.SubjectKeyIdentifier).value), critical=False)
                   .add_extension(x509.CRLNumber(secrets.randbits(63)), critical=False))
        for e in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(e.serial)
                .revocation_date(dt.datetime.fromisoformat(e.revoked_at)).build())
        crl = builder.sign(ca_key, hashes.SHA256())
        _write(self.crl_file, crl.public_bytes(serialization.Encoding.PEM))
        # the nodes' local MSPs too: a peer checks its local administrators (chaincode install, channel
        # join) against its local MSP, which reads its crls/ when the node starts
        for msp in sorted([*self.root.glob("peers/*/msp"), *self.root.glob("orderers/*/msp")]):
            _write(msp / "crls" / self.crl_file.name, self.crl_file.read_bytes())
        return self.crl_file

    def expiring(self, within_days: int = EXPIRY_WARNING_DAYS, now: dt.datetime | None = None) -> list[Issued]:
        """The identities whose current (newest, unrevoked) certificate ends within ``within_days`` or has
        ended: to renew (``ipledger org renew``) before their nodes or users are refused."""
        limit = (now or _now()) + dt.timedelta(days=within_days)
        newest: dict[str, Issued] = {}
        for e in self.register():
            newest[e.name] = e
        return [e for e in newest.values() if e.revoked_at is None and self._ends(e) <= limit]

    def chaincode_service_ending(self, within_days: int = EXPIRY_WARNING_DAYS,
                                 now: dt.datetime | None = None) -> list[tuple[Path, dt.datetime]]:
        """The chaincode service's TLS certificates (:meth:`chaincode_service_tls`: in no register, inside the
        chaincode package) ending within ``within_days`` or ended, with their end: when they end, the
        organisation's peers no longer reach its contract."""
        limit = (now or _now()) + dt.timedelta(days=within_days)
        ends = [(path, load_cert(path).not_valid_after_utc)
                for path in sorted(self.chaincode_service_dir.glob("*.crt")) if path.name != "ca.crt"]
        return [(path, end) for path, end in ends if end <= limit]

    def _ends(self, entry: Issued) -> dt.datetime:
        """When the identity's certificate *in use* ends: the register's newest entry's date — unless a renewal cut
        short registered a certificate it never wrote (renew registers first), and the old one is still in use."""
        in_use = list((self.identity_dir(entry.name, entry.role) / "msp" / "signcerts").glob("*.pem"))
        if len(in_use) == 1:
            cert = load_cert(in_use[0])
            if cert.serial_number != entry.serial:
                return cert.not_valid_after_utc
        return dt.datetime.fromisoformat(entry.not_after)

    # -- the register ---------------------------------------------------------------------------
    def register(self) -> list[Issued]:
        try:
            return [Issued(**e) for e in json.loads(self.register_file.read_text())["issued"]]
        except FileNotFoundError:
            return []
        except (ValueError, KeyError, TypeError) as e:
            raise IdentityError(f"{self.register_file} is damaged: {e}") from e

    def _save_register(self, reg: list[Issued]) -> None:
        data = {"msp_id": self.msp_id, "issued": [e.__dict__ for e in reg]}
        _write(self.register_file, (json.dumps(data, indent=2) + "\n").encode(), private=True)


# A PEM private key block (PKCS#8, EC, RSA, OpenSSH, encrypted …): the armour lines around base64 — not
# the armour text alone, which libraries quote in their code (cryptography's ssh.py in a chaincode build).
_PEM_PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----\r?\n[A-Za-z0-9+/=:,\- \r\n]{40,}?"
                              rb"-----END [A-Z0-9 ]*PRIVATE KEY-----")


def private_key_files(root: Path) -> list[Path]:
    """Every file under ``root`` holding a private key (by content, not by name)."""
    found = []
    for path in Path(root).rglob("*"):
        try:
            if path.is_file() and path.stat().st_size < 65536 and _PEM_PRIVATE_KEY.search(path.read_bytes()):
                found.append(path)
        except OSError:
            continue
    return found


def _names_cover(cert: x509.Certificate, hosts: list[str]) -> bool:
    """Whether the certificate's subject alternative names include every one of ``hosts``."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    names = set(san.get_values_for_type(x509.DNSName)) | {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return set(hosts) <= names
