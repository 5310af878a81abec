"""A channel config shaped like ipledger's genesis block, built in memory (no Fabric): orgs with
their own CA, NodeOUs and anchor peers; used by the admin and membership tests."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fabric_protos.common import common_pb2, configtx_pb2
from fabric_protos.msp import msp_config_pb2

from ipledger.network.fabric.config import anchor_peers_value
from ipledger.network.fabric.policy import implicit_meta_policy, signature_policy

NOW = dt.datetime.now(dt.timezone.utc)


def _name(cn: str, ou: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if ou:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    return x509.Name(attrs)


def _cert(subject, issuer, key, signing_key, ca=False, days=1):
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(minutes=5))
            .not_valid_after(NOW + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            # Fabric's MSP needs the issuing CA's Subject Key Identifier (to match CRLs).
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(signing_key, hashes.SHA256()))


def pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def msp_dir(path: Path, cert: bytes, key) -> Path:
    """An MSP directory as `admin sign --msp-dir` reads it: ``signcerts/cert.pem`` and a 0600 ``keystore/priv_sk``."""
    (path / "signcerts").mkdir(parents=True)
    (path / "keystore").mkdir()
    (path / "signcerts" / "cert.pem").write_bytes(cert)
    k = path / "keystore" / "priv_sk"
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    k.chmod(0o600)
    return path


class FakeOrg:
    """An org with its own CA (NodeOUs on), an admin, a client and a peer identity."""

    def __init__(self, msp_id: str):
        self.msp_id = msp_id
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = _cert(_name(f"ca.{msp_id}"), _name(f"ca.{msp_id}"), self.ca_key, self.ca_key,
                        ca=True)
        self.ids = {role: self.issue(f"{role}@{msp_id}", role) for role in ("admin", "client",
                                                                              "peer")}

    def issue(self, cn: str, ou: str, ca_key=None, issuer=None):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(_name(cn, ou), issuer or self.ca.subject, key, ca_key or self.ca_key)
        return pem(cert), key

    def msp(self) -> msp_config_pb2.MSPConfig:
        ous = msp_config_pb2.FabricNodeOUs(
            enable=True,
            admin_ou_identifier=msp_config_pb2.FabricOUIdentifier(
                certificate=pem(self.ca), organizational_unit_identifier="admin"),
            client_ou_identifier=msp_config_pb2.FabricOUIdentifier(
                certificate=pem(self.ca), organizational_unit_identifier="client"),
            peer_ou_identifier=msp_config_pb2.FabricOUIdentifier(
                certificate=pem(self.ca), organizational_unit_identifier="peer"))
        fc = msp_config_pb2.FabricMSPConfig(name=self.msp_id, root_certs=[pem(self.ca)],
                                            tls_root_certs=[pem(self.ca)], fabric_node_ous=ous)
        return msp_config_pb2.MSPConfig(type=0, config=fc.SerializeToString())

    def group(self, anchors=("127.0.0.1:7110",)) -> configtx_pb2.ConfigGroup:
        g = configtx_pb2.ConfigGroup(mod_policy="Admins")
        m = self.msp_id
        for name, rule in (("Readers", f"OR('{m}.admin', '{m}.peer', '{m}.client')"),
                           ("Writers", f"OR('{m}.admin', '{m}.client')"),
                           ("Admins", f"OR('{m}.admin')"),
                           ("Endorsement", f"OR('{m}.peer')")):
            g.policies[name].CopyFrom(configtx_pb2.ConfigPolicy(
                mod_policy="Admins", policy=signature_policy(rule)))
        g.values["MSP"].CopyFrom(configtx_pb2.ConfigValue(
            mod_policy="Admins", value=self.msp().SerializeToString()))
        g.values["AnchorPeers"].CopyFrom(configtx_pb2.ConfigValue(
            mod_policy="Admins", value=anchor_peers_value(list(anchors))))
        return g


def _meta(rule: str) -> configtx_pb2.ConfigPolicy:
    return configtx_pb2.ConfigPolicy(mod_policy="Admins", policy=implicit_meta_policy(rule))


def make_config(orgs: list[FakeOrg], orderer: FakeOrg) -> configtx_pb2.Config:
    """A channel config shaped like ipledger's genesis block (generate.configtx)."""
    root = configtx_pb2.ConfigGroup(mod_policy="Admins")
    for name, rule in (("Readers", "ANY Readers"), ("Writers", "ANY Writers"),
                       ("Admins", "MAJORITY Admins")):
        root.policies[name].CopyFrom(_meta(rule))
    app = root.groups["Application"]
    app.mod_policy = "Admins"
    for name, rule in (("Readers", "ANY Readers"), ("Writers", "ANY Writers"),
                       ("Admins", "MAJORITY Admins"),
                       ("LifecycleEndorsement", "MAJORITY Endorsement"),
                       ("Endorsement", "MAJORITY Endorsement")):
        app.policies[name].CopyFrom(_meta(rule))
    for o in orgs:
        app.groups[o.msp_id].CopyFrom(o.group())
    ordg = root.groups["Orderer"]
    ordg.mod_policy = "Admins"
    for name, rule in (("Readers", "ANY Readers"), ("Writers", "ANY Writers"),
                       ("Admins", "MAJORITY Admins"), ("BlockValidation", "ANY Writers")):
        ordg.policies[name].CopyFrom(_meta(rule))
    og = orderer.group(anchors=())
    del og.values["AnchorPeers"]
    ordg.groups[orderer.msp_id].CopyFrom(og)
    return configtx_pb2.Config(sequence=0, channel_group=root)


def config_block(config: configtx_pb2.Config, number: int, channel: str = "inward-processing") -> bytes:
    """A config block holding ``config``, as cscc GetConfigBlock returns it."""
    payload = common_pb2.Payload(
        header=common_pb2.Header(channel_header=common_pb2.ChannelHeader(
            type=common_pb2.CONFIG, channel_id=channel).SerializeToString()),
        data=configtx_pb2.ConfigEnvelope(config=config).SerializeToString())
    block = common_pb2.Block(header=common_pb2.BlockHeader(number=number))
    block.data.data.append(common_pb2.Envelope(payload=payload.SerializeToString()).SerializeToString())
    return block.SerializeToString()
