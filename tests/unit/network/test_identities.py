"""Each organisation's own identities, its public definition, and founding from definitions only."""
import shutil
import stat

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from ipledger.network import consortium
from ipledger.network.org import definition
from ipledger.network.channel import founding
from ipledger.network.org import generate
from ipledger.network.org.identities import IdentityError, OrgIdentities, private_key_files
from ipledger.network.layout import Layout

from .test_generate import initialise

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
DOMAIN = "customs.ipledger.example"


@pytest.fixture
def ids(tmp_path):
    o = OrgIdentities(tmp_path / "customs" / "crypto", "CustomsMSP", DOMAIN)
    o.create()
    o.issue(f"peer0.{DOMAIN}", "peer", hosts=["198.18.0.11"])
    o.add_user("Admin", "admin")
    o.add_user("User1")
    return o


def _cert(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def _ou(cert):
    return [a.value for a in cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATIONAL_UNIT_NAME)]


def test_the_org_creates_its_cas_and_identities_with_node_ous(ids):
    ca = _cert(ids.ca.cert_file)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ids.ca.cert_file.read_bytes() != ids.tlsca.cert_file.read_bytes()
    ous = yaml.safe_load((ids.msp / "config.yaml").read_text())["NodeOUs"]
    assert ous["Enable"] is True
    assert {k: v["OrganizationalUnitIdentifier"] for k, v in ous.items() if k != "Enable"} == {
        "ClientOUIdentifier": "client", "PeerOUIdentifier": "peer", "AdminOUIdentifier": "admin",
        "OrdererOUIdentifier": "orderer"}
    for name, role in ((f"peer0.{DOMAIN}", "peer"), (f"Admin@{DOMAIN}", "admin"), (f"User1@{DOMAIN}", "client")):
        d = ids.identity_dir(name, role)
        [signcert] = (d / "msp" / "signcerts").glob("*.pem")
        cert = _cert(signcert)
        assert _ou(cert) == [role]
        cert.verify_directly_issued_by(ca)
        _, s = decode_dss_signature(cert.signature)
        assert s <= P256_N // 2, "low-S signature"
        assert stat.S_IMODE((d / "msp" / "keystore" / "priv_sk").stat().st_mode) == 0o600
        assert stat.S_IMODE((d / "msp" / "keystore").stat().st_mode) == 0o700
    tls = _cert(ids.identity_dir(f"peer0.{DOMAIN}", "peer") / "tls" / "server.crt")
    tls.verify_directly_issued_by(_cert(ids.tlsca.cert_file))
    sans = tls.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"peer0.{DOMAIN}" in sans.get_values_for_type(x509.DNSName)
    assert {str(a) for a in sans.get_values_for_type(x509.IPAddress)} == {"198.18.0.11", "127.0.0.1"}
    for key in (ids.ca.key_file, ids.tlsca.key_file, ids.admin_tlsca.key_file):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(ids.root.stat().st_mode) == 0o700


def test_only_admins_get_an_orderer_administration_certificate(ids, tmp_path):
    """Orderers' admin endpoints trust the administration CA alone: it issues the admins' osnadmin
    client certificates and nothing else, and it is not part of the public definition."""
    admin_ca = _cert(ids.admin_tlsca.cert_file)
    assert admin_ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    admin_tls = ids.identity_dir(f"Admin@{DOMAIN}", "admin") / "tls"
    _cert(admin_tls / "osnadmin.crt").verify_directly_issued_by(admin_ca)
    assert stat.S_IMODE((admin_tls / "osnadmin.key").stat().st_mode) == 0o600
    for name, role in ((f"User1@{DOMAIN}", "client"), (f"peer0.{DOMAIN}", "peer")):
        tls = ids.identity_dir(name, role) / "tls"
        assert not (tls / "osnadmin.crt").exists()
        for crt in tls.glob("*.crt"):
            with pytest.raises(ValueError):
                _cert(crt).verify_directly_issued_by(admin_ca)
    d = definition.from_identities(ids, name="customs", role="application")
    assert ids.admin_tlsca.cert_file.read_text() not in d.save(tmp_path / "d.json").read_text()


def test_an_existing_ca_is_never_overwritten(ids):
    before = ids.ca.key_file.read_bytes()
    with pytest.raises(IdentityError, match="already holds CustomsMSP's CA"):
        ids.create()
    assert ids.ca.key_file.read_bytes() == before
    with pytest.raises(IdentityError, match="already exists"):
        ids.add_user("User1")


def test_add_user_renew_and_revoke(ids):
    d = ids.add_user("clerk2")
    [signcert] = (d / "msp" / "signcerts").glob("*.pem")
    old = _cert(signcert)
    renewed = ids.renew("clerk2", days=30)
    assert renewed.public_key() == old.public_key() and renewed.serial_number != old.serial_number
    assert _cert(signcert) == renewed
    crl_file = ids.revoke("clerk2")
    crl = x509.load_pem_x509_crl(crl_file.read_bytes())
    ca = _cert(ids.ca.cert_file)
    assert crl.is_signature_valid(ca.public_key())
    # Fabric matches a CRL to its CA by the CRL's authority key id = the CA's subject key id
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki == ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert {r.serial_number for r in crl} == {old.serial_number, renewed.serial_number}
    assert all(e.revoked_at for e in ids.register() if e.name == f"clerk2@{DOMAIN}")
    with pytest.raises(IdentityError, match="no valid identity named 'clerk2'"):
        ids.renew("clerk2")
    with pytest.raises(IdentityError, match="no valid identity"):
        ids.revoke("nobody")


def test_the_definition_is_public_and_checked(ids, tmp_path):
    d = definition.from_identities(ids, name="customs", role="application",
                                   peers=[{"name": "peer0", "host": "198.18.0.11", "port": 7051}])
    path = d.save(tmp_path / "CustomsMSP.json")
    text = path.read_text()
    assert "PRIVATE KEY" not in text
    loaded = definition.load(path)
    assert loaded.anchor_peers == ["198.18.0.11:7051"]
    assert loaded.fingerprints()["ca"] == [definition.fingerprint(ids.ca.cert_file.read_text())]
    msp = definition.materialise(loaded, tmp_path / "pub" / "msp")
    assert (msp / "cacerts" / f"ca.{DOMAIN}-cert.pem").read_bytes() == ids.ca.cert_file.read_bytes()
    assert yaml.safe_load((msp / "config.yaml").read_text())["NodeOUs"]["Enable"] is True
    assert private_key_files(msp.parent) == []
    # a definition carrying a key is refused, and so is one that is not a definition
    leaked = tmp_path / "leak.json"
    leaked.write_text(text.replace('"description": ""', '"description": "' +
                                   ids.ca.key_file.read_text().replace("\n", "\\n") + '"'))
    with pytest.raises(definition.DefinitionError, match="contains a private key"):
        definition.load(leaked)
    (tmp_path / "other.json").write_text('{"values": {}}')
    with pytest.raises(definition.DefinitionError, match="not an ipledger organisation definition"):
        definition.load(tmp_path / "other.json")


@pytest.mark.parametrize("field, value, message", [
    ("msp_id", "../../../../tmp/elsewhere/pwnedMSP", "must look like 'CustomsMSP'"),   # names a file here
    ("msp_id", 7, "must look like 'CustomsMSP'"),
    ("msp_id", "CustomsMSP\n", "must look like 'CustomsMSP'"),
    ("domain", "x/../../../../tmp/elsewhere", "must be a DNS name"),
    ("crls", [1], "'crls' must be a list of strings"),
    ("anchor_peers", [7051], "'anchor_peers' must be a list of strings"),
    ("ca_certs", None, "'ca_certs' must be a list of strings"),
    ("peers", 5, "'peers' must be a list of objects"),
    ("node_ous", {"client": "client"}, "'node_ous' must name the OU of each of"),
])
def test_a_malformed_definition_is_refused_with_what_is_wrong(ids, tmp_path, field, value, message):
    """A definition comes from another organisation: every field is checked before anything uses it (an
    MSP id or a domain names files and directories here), with a clear error, never a traceback."""
    import json

    d = definition.from_identities(ids, name="customs", role="application",
                                   peers=[{"name": "peer0", "host": "198.18.0.11", "port": 7051}])
    raw = json.loads(d.save(tmp_path / "good.json").read_text())
    raw[field] = value
    (tmp_path / "bad.json").write_text(json.dumps(raw))
    with pytest.raises(definition.DefinitionError, match=message):
        definition.load(tmp_path / "bad.json")
    assert not (tmp_path.parent / "elsewhere").exists()


def test_a_consenter_certificate_must_be_the_orgs_own(tmp_path):
    o = OrgIdentities(tmp_path / "o", "OrdererMSP", "orderer.example")
    o.create()
    o.issue("orderer0.orderer.example", "orderer")
    other = OrgIdentities(tmp_path / "x", "XMSP", "x.example")
    other.create()
    other.issue("orderer0.x.example", "orderer")
    d = definition.from_identities(o, name="orderer", role="orderer", orderers=[
        {"name": "orderer0", "host": "h", "port": 7050, "fqdn": "orderer0.orderer.example"}])
    d.orderers[0]["tls_cert"] = (other.identity_dir("orderer0.x.example", "orderer") / "tls" /
                                 "server.crt").read_text()
    with pytest.raises(definition.DefinitionError, match="not issued by OrdererMSP's TLS CA"):
        definition.load(d.save(tmp_path / "o.json"))


def test_no_org_directory_holds_another_orgs_key_and_the_public_part_none(tmp_path):
    c = consortium.load(base_port=21000)
    lay = Layout(tmp_path / "state")
    initialise(c, lay)
    keys = {org.msp_id: {p.read_bytes() for p in private_key_files(lay.org_home(org))}
            for org in c.all_orgs}
    for a in keys:
        assert keys[a], f"{a} has its own keys"
        for b in keys:
            if a != b:
                assert not keys[a] & keys[b]
    assert private_key_files(lay.public) == []
    assert stat.S_IMODE(lay.org_home(c.org("CustomsMSP")).stat().st_mode) == 0o700


# --------------------------------------------------------------- founding, with configtxgen

@pytest.fixture(scope="module")
def founded(tmp_path_factory):
    from ipledger.network.org import binaries
    if binaries.missing():
        pytest.fail("Fabric binaries missing: run 'ipledger fabric install'")
    c = consortium.load(base_port=21000)
    lay = Layout(tmp_path_factory.mktemp("orgs") / "state")
    initialise(c, lay)
    # The founder has the public files only: no organisation's directory.
    founder = Layout(tmp_path_factory.mktemp("founder") / "state")
    shutil.copytree(lay.definitions_dir, founder.definitions_dir)
    founding.found(c, founder, log=lambda *_: None)
    return c, lay, founder


@pytest.mark.fabric
def test_the_genesis_block_is_built_from_public_definitions_only(founded):
    c, lay, founder = founded
    assert [p.name for p in founder.root.iterdir()] == ["consortium"]
    assert private_key_files(founder.root) == []
    s = founding.summary(founder.genesis_block.read_bytes())
    assert set(s["application_orgs"]) == {"CustomsMSP", "OperatorMSP", "BrokerMSP"}
    assert set(s["orderer_orgs"]) == {"OrdererMSP"}
    assert s["application_policies"]["Admins"] == "AND('CustomsMSP.admin', 'OperatorMSP.admin')"
    assert s["consensus"] == "etcdraft" and len(s["consenters"]) == 1
    text = "\n".join(founding.format_summary(s))
    assert "CustomsMSP" in text and "Consensus: etcdraft, 1 consenter(s)" in text


@pytest.mark.fabric
def test_each_org_finds_its_own_definition_and_notices_a_substitute(founded, tmp_path):
    c, lay, founder = founded
    block = founder.genesis_block.read_bytes()
    for org in c.all_orgs:
        own = definition.load(lay.org_home(org) / "definition.json")
        assert founding.check_own(block, own) == []
    # A founder that swapped the operator's CA for one of its own making: the operator notices.
    fake = OrgIdentities(tmp_path / "fake", "OperatorMSP", "operator.ipledger.example")
    fake.create()
    swapped = founder.root.parent / "swapped"
    shutil.copytree(founder.definitions_dir, Layout(swapped).definitions_dir)
    d = definition.load(Layout(swapped).definition_file("OperatorMSP"))
    d.ca_certs = [fake.ca.cert_file.read_text()]
    d.save(Layout(swapped).definition_file("OperatorMSP"))
    founding.found(c, Layout(swapped), log=lambda *_: None)
    operator = definition.load(lay.org_home(c.org("OperatorMSP")) / "definition.json")
    problems = founding.check_own(Layout(swapped).genesis_block.read_bytes(), operator)
    assert problems == ["OperatorMSP's CA certificate in the block is not ours"]
    with pytest.raises(generate.GenerateError, match="OperatorMSP refuses the genesis block"):
        generate.check_block(lay, c.org("OperatorMSP"), Layout(swapped).genesis_block.read_bytes())


def test_founding_needs_every_definition(tmp_path):
    c = consortium.load(base_port=21000)
    lay = Layout(tmp_path / "state")
    with pytest.raises(founding.FoundingError, match="missing: OrdererMSP, CustomsMSP, OperatorMSP, BrokerMSP"):
        founding.found(c, lay)



def test_a_private_key_is_found_by_its_pem_block_not_by_its_armour_text_quoted_in_code(ids, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = elsewhere / "ssh.py"
    code.write_text('_SK_START = b"-----BEGIN OPENSSH PRIVATE KEY-----"\n_SK_END = b"-----END OPENSSH PRIVATE KEY-----"\n')
    key = next(iter(private_key_files(ids.root)))
    copied = elsewhere / "copied_sk"
    copied.write_bytes(key.read_bytes())
    assert private_key_files(elsewhere) == [copied]


def test_a_revoked_identity_is_issued_again_with_a_new_key_under_its_name(ids):
    """A key compromised: revoked, then a new key and certificate under the same name (the gateway's User1, a
    peer named in the consortium file), on no CRL; the old certificates stay revoked."""
    peer = f"peer0.{DOMAIN}"
    old_user = _cert(next((ids.identity_dir(f"User1@{DOMAIN}", "client") / "msp" / "signcerts").glob("*.pem")))
    old_peer_tls = _cert(ids.identity_dir(peer, "peer") / "tls" / "server.crt")
    with pytest.raises(IdentityError, match="not revoked: revoke it first"):
        ids.reissue("User1")
    with pytest.raises(IdentityError, match="no identity named 'nobody'"):
        ids.reissue("nobody")
    ids.revoke("User1")
    with pytest.raises(IdentityError, match="revoked: 'ipledger org reissue'"):
        ids.add_user("User1")
    d = ids.reissue("User1")
    new_user = _cert(next((d / "msp" / "signcerts").glob("*.pem")))
    assert new_user.public_key() != old_user.public_key() and new_user.subject == old_user.subject
    assert _ou(new_user) == _ou(old_user)
    crl = x509.load_pem_x509_crl(ids.crl_file.read_bytes())
    assert old_user.serial_number in {r.serial_number for r in crl}
    assert new_user.serial_number not in {r.serial_number for r in crl}
    assert [e.revoked_at is None for e in ids.register() if e.name == f"User1@{DOMAIN}"] == [False, True]
    assert stat.S_IMODE((d / "msp" / "keystore" / "priv_sk").stat().st_mode) == 0o600
    ids.revoke(peer)
    d = ids.reissue(peer)
    new_tls = _cert(d / "tls" / "server.crt")
    san = lambda c: sorted(map(str, c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value))  # noqa: E731
    assert san(new_tls) == san(old_peer_tls) and new_tls.public_key() != old_peer_tls.public_key()


def test_an_orderer_is_not_issued_again(tmp_path):
    o = OrgIdentities(tmp_path / "orderer" / "crypto", "OrdererMSP", "orderer.ipledger.example")
    o.create()
    o.issue("orderer0.orderer.ipledger.example", "orderer")
    o.revoke("orderer0.orderer.ipledger.example")
    with pytest.raises(IdentityError, match="consenter update"):
        o.reissue("orderer0.orderer.ipledger.example")


def test_the_chaincode_services_tls_pair_is_warned_of_before_it_ends(ids):
    """The chaincode service's TLS pair is in no register (and inside the chaincode package): `org identities`
    warns of it as of the signing certificates."""
    import datetime as dt
    d = ids.chaincode_service_tls()
    assert ids.chaincode_service_ending() == []
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3 * 365)
    assert [p.name for p, _end in ids.chaincode_service_ending(now=later)] == ["client.crt", "server.crt"]
    assert all(p.parent == d for p, _end in ids.chaincode_service_ending(now=later))
