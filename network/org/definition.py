"""An organisation's public definition: the one file it hands to the others.

Written by the organisation from its own identity tree (network/org/identities.py)
and read by everyone else: the founder builds the genesis block from these
files only, and a channel admin proposes a newcomer's admission from one. It
holds public material only — and :func:`load` refuses a file holding anything
that looks like a private key::

    {"format": "ipledger-org-definition/1",
     "msp_id": "CustomsMSP", "name": "customs", "domain": "customs.ipledger.example",
     "description": "...", "role": "application" | "orderer",
     "ca_certs": [PEM], "tls_ca_certs": [PEM], "crls": [PEM],
     "node_ous": {"client": "client", "peer": "peer", "admin": "admin", "orderer": "orderer"},
     "anchor_peers": ["host:port"],
     "peers": [{"name": "peer0", "host": "...", "port": 7051}],
     "orderers": [{"name": "orderer0", "host": "...", "port": 7050,
                   "tls_cert": PEM, "identity_cert": PEM}]}

:func:`materialise` turns a definition back into the public MSP directory
Fabric's tools read (``cacerts/``, ``tlscacerts/``, ``crls/``, ``config.yaml``).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ipledger.network.consortium import domain_ok, msp_id_ok, name_ok
from ipledger.network.files import own_directory, write_atomically
from ipledger.network.org.identities import NODE_OUS, OrgIdentities

FORMAT = "ipledger-org-definition/1"


class DefinitionError(ValueError):
    """A definition file is missing, malformed, or holds what it must not."""


def write_public(path: Path, data: bytes) -> Path:
    """A public file (0644) in place of ``path`` (a received directory may hold links: one to the organisation's
    CA key must not make a definition overwrite it: :func:`~ipledger.network.files.write_atomically`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(path, data, 0o644)


@dataclass
class Definition:
    msp_id: str
    name: str
    domain: str
    role: str
    ca_certs: list[str]
    tls_ca_certs: list[str]
    crls: list[str] = field(default_factory=list)
    description: str = ""
    anchor_peers: list[str] = field(default_factory=list)
    peers: list[dict] = field(default_factory=list)
    orderers: list[dict] = field(default_factory=list)
    node_ous: dict = field(default_factory=lambda: {ou: ou for ou in NODE_OUS})

    def as_dict(self) -> dict:
        return {"format": FORMAT, "msp_id": self.msp_id, "name": self.name, "domain": self.domain,
                "description": self.description, "role": self.role, "ca_certs": self.ca_certs,
                "tls_ca_certs": self.tls_ca_certs, "crls": self.crls, "node_ous": self.node_ous,
                "anchor_peers": self.anchor_peers, "peers": self.peers,
                "orderers": self.orderers}

    def save(self, path: Path) -> Path:
        return write_public(Path(path), (json.dumps(self.as_dict(), indent=2) + "\n").encode())

    # -- what the others check ------------------------------------------------------------------
    def fingerprints(self) -> dict:
        return {"ca": [fingerprint(p) for p in self.ca_certs],
                "tls_ca": [fingerprint(p) for p in self.tls_ca_certs]}

    @property
    def ca_file_name(self) -> str:
        return f"ca.{self.domain}-cert.pem"

    @property
    def tls_ca_file_name(self) -> str:
        return f"tlsca.{self.domain}-cert.pem"


def fingerprint(pem: str | bytes) -> str:
    """SHA-256 of a certificate's DER, hex (what the summaries print)."""
    cert = x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def from_identities(ids: OrgIdentities, *, name: str, role: str, description: str = "",
                    peers: list[dict] = (), orderers: list[dict] = (),
                    anchor_peers: list[str] | None = None) -> Definition:
    """The definition of the organisation whose identity tree is ``ids``.

    ``orderers`` entries are ``{"name", "host", "port", "fqdn"}``: their TLS and
    identity certificates are read from the tree (consenters are named by them).
    """
    crls = [p.read_text() for p in sorted((ids.msp / "crls").glob("*.pem"))]
    ords = []
    for o in orderers:
        d = ids.identity_dir(o["fqdn"], "orderer")
        try:
            tls = (d / "tls" / "server.crt").read_text()
            [signcert] = sorted((d / "msp" / "signcerts").glob("*.pem"))
        except (OSError, ValueError) as e:
            raise DefinitionError(f"orderer {o['fqdn']} has no identity in {d}") from e
        ords.append({"name": o["name"], "host": o["host"], "port": o["port"],
                     "tls_cert": tls, "identity_cert": signcert.read_text()})
    anchors = list(anchor_peers) if anchor_peers is not None else \
        [f"{p['host']}:{p['port']}" for p in peers]
    return Definition(
        msp_id=ids.msp_id, name=name, domain=ids.domain, role=role, description=description,
        ca_certs=[ids.ca.cert_file.read_text()], tls_ca_certs=[ids.tlsca.cert_file.read_text()],
        crls=crls, anchor_peers=anchors if role == "application" else [],
        peers=[{"name": p["name"], "host": p["host"], "port": p["port"]} for p in peers],
        orderers=ords)


def load(path: Path | str) -> Definition:
    """Read and check a definition file (certificates parse, CA certificates are CAs,
    consenter certificates are issued by the org's CAs, no private key anywhere)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise DefinitionError(f"cannot read organisation definition {path}: {e.strerror}") from e
    if "PRIVATE KEY" in text:
        raise DefinitionError(f"{path} contains a private key: a definition must hold public "
                              "material only; do not send this file to anyone")
    try:
        raw = json.loads(text)
    except ValueError as e:
        raise DefinitionError(f"{path} is not JSON: {e}") from e
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise DefinitionError(f"{path} is not an ipledger organisation definition "
                              f"(format {FORMAT}; write one with 'ipledger org definition')")
    try:
        d = Definition(**{k: v for k, v in raw.items() if k != "format"})
    except TypeError as e:
        raise DefinitionError(f"{path}: {e}") from e
    _check(d, path)
    return d


def _certs(pems: list[str], what: str, where: Path) -> list[x509.Certificate]:
    out = []
    for p in pems:
        try:
            out.append(x509.load_pem_x509_certificate(p.encode()))
        except (ValueError, AttributeError) as e:
            raise DefinitionError(f"{where}: a {what} is not a PEM certificate") from e
    return out


def _issued_by(cert: x509.Certificate, cas: list[x509.Certificate]) -> bool:
    for ca in cas:
        try:
            cert.verify_directly_issued_by(ca)
            return True
        except (ValueError, TypeError, Exception):  # noqa: BLE001 - InvalidSignature and kin
            continue
    return False


def _check_shape(d: Definition, where: Path) -> None:
    """The fields' types and names, before anything reads them: a definition comes from another
    organisation, and its MSP id and domain name files and directories here."""
    if not msp_id_ok(d.msp_id):
        raise DefinitionError(f"{where}: msp_id {str(d.msp_id)[:80]!r} must look like 'CustomsMSP' (letters and "
                              "digits, ending in MSP)")
    if not domain_ok(d.domain):
        raise DefinitionError(f"{where}: domain {str(d.domain)[:80]!r} must be a DNS name")
    for name in ("name", "description", "role"):
        if not isinstance(getattr(d, name), str):
            raise DefinitionError(f"{where}: '{name}' must be a string")
    for name in ("ca_certs", "tls_ca_certs", "crls", "anchor_peers"):
        value = getattr(d, name)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise DefinitionError(f"{where}: '{name}' must be a list of strings")
    for name in ("peers", "orderers"):
        value = getattr(d, name)
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise DefinitionError(f"{where}: '{name}' must be a list of objects")
    # the organisation's and its nodes' names become file names here (the consenters' certificates)
    for name in [d.name] + [node.get("name") for node in d.peers + d.orderers]:
        if not name_ok(name):
            raise DefinitionError(f"{where}: name {str(name)[:80]!r} must be lower-case letters, digits and '-'")
    if not isinstance(d.node_ous, dict) or set(d.node_ous) != set(NODE_OUS) \
            or not all(isinstance(v, str) for v in d.node_ous.values()):
        raise DefinitionError(f"{where}: 'node_ous' must name the OU of each of {', '.join(NODE_OUS)}")


def _check(d: Definition, where: Path) -> None:
    _check_shape(d, where)
    if d.role not in ("application", "orderer"):
        raise DefinitionError(f"{where}: role must be 'application' or 'orderer'")
    if not d.msp_id.endswith("MSP"):
        raise DefinitionError(f"{where}: msp_id {d.msp_id!r} must look like 'CustomsMSP'")
    cas = _certs(d.ca_certs, "CA certificate", where)
    tls_cas = _certs(d.tls_ca_certs, "TLS CA certificate", where)
    if not cas or not tls_cas:
        raise DefinitionError(f"{where}: a CA and a TLS CA certificate are needed")
    for c in cas + tls_cas:
        try:
            if not c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
                raise DefinitionError(f"{where}: {c.subject.rfc4514_string()} is not a CA")
        except x509.ExtensionNotFound as e:
            raise DefinitionError(f"{where}: {c.subject.rfc4514_string()} is not a CA") from e
    for crl in d.crls:
        try:
            x509.load_pem_x509_crl(crl.encode())
        except ValueError as e:
            raise DefinitionError(f"{where}: a CRL does not parse") from e
    for o in d.orderers:
        for key in ("name", "host", "port", "tls_cert", "identity_cert"):
            if key not in o:
                raise DefinitionError(f"{where}: orderer entry without '{key}'")
        if not _issued_by(_certs([o["tls_cert"]], "TLS certificate", where)[0], tls_cas):
            raise DefinitionError(f"{where}: {o['name']}'s TLS certificate is not issued by "
                                  f"{d.msp_id}'s TLS CA")
        if not _issued_by(_certs([o["identity_cert"]], "certificate", where)[0], cas):
            raise DefinitionError(f"{where}: {o['name']}'s certificate is not issued by "
                                  f"{d.msp_id}'s CA")
    for a in d.anchor_peers:
        host, _, port = a.rpartition(":")
        if not host or not port.isdigit():
            raise DefinitionError(f"{where}: anchor peer {a!r} is not HOST:PORT")


def materialise(d: Definition, msp_dir: Path) -> Path:
    """The public MSP directory of ``d`` (what configtxgen reads as an org's ``MSPDir``): its directories never
    links, its files written through :func:`~ipledger.network.files.write_atomically` (a link found in a file's
    place is replaced, never written through)."""
    msp_dir = own_directory(Path(msp_dir))
    for sub in ("cacerts", "tlscacerts", "crls"):
        for old in own_directory(msp_dir / sub).glob("*.pem"):
            old.unlink()   # a link among them: the link goes, not what it points to
    for i, p in enumerate(d.ca_certs):
        write_atomically(msp_dir / "cacerts" / (d.ca_file_name if i == 0 else f"ca{i}.pem"), p.encode())
    for i, p in enumerate(d.tls_ca_certs):
        write_atomically(msp_dir / "tlscacerts" / (d.tls_ca_file_name if i == 0 else f"tlsca{i}.pem"), p.encode())
    for i, p in enumerate(d.crls):
        write_atomically(msp_dir / "crls" / f"crl{i}.pem", p.encode())
    ca = f"cacerts/{d.ca_file_name}"
    ous = {f"{ou.capitalize()}OUIdentifier": {"Certificate": ca,
                                              "OrganizationalUnitIdentifier": d.node_ous[ou]}
           for ou in NODE_OUS}
    write_atomically(msp_dir / "config.yaml",
                     yaml.safe_dump({"NodeOUs": {"Enable": True, **ous}}, sort_keys=False).encode())
    return msp_dir
