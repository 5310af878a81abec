"""The consortium file's hostile or mistaken values, the identity lifecycle, and a half-done `network up` run again.
Each test failed on the code before its fix."""
import stat
from types import SimpleNamespace

import pytest
import yaml
from cryptography import x509

from ipledger.network import consortium
from ipledger.network.consortium import ConsortiumError
from ipledger.network.org.identities import IdentityError, OrgIdentities
from tests.unit.network.channel_config import msp_dir

DOMAIN = "customs.ipledger.example"


def default_raw():
    return yaml.safe_load(consortium.DEFAULT_FILE.read_text())


def bft_raw():
    return yaml.safe_load(consortium.DEFAULT_FILE.with_name("consortium-bft.yaml").read_text())


# ----------------------------------------------------------------------------- the consortium file

def test_customs_named_as_the_holder_is_refused():
    """customs AND holder = customs alone would govern the channel (the contract's definition, who is on it)."""
    raw = default_raw()
    raw["customs"], raw["holder"] = "CustomsMSP", "CustomsMSP"
    with pytest.raises(ConsortiumError, match="holder.*customs|customs.*holder"):
        consortium.parse(raw)


def test_two_organisations_with_one_name_are_refused():
    """The name is the organisation's directory: two of them would share one CA and one set of keys."""
    raw = default_raw()
    raw["organisations"][1]["name"] = raw["organisations"][0].get("name", "customs")
    raw["organisations"][1]["peers"] = [{"name": "peer1"}]
    with pytest.raises(ConsortiumError, match="name 'customs'.*(twice|both)"):
        consortium.parse(raw)


def test_two_organisations_with_one_domain_are_refused():
    raw = default_raw()
    raw["organisations"][1]["domain"] = "customs.ipledger.example"
    raw["organisations"][0]["domain"] = "customs.ipledger.example"
    with pytest.raises(ConsortiumError, match="domain customs.ipledger.example.*(twice|both)"):
        consortium.parse(raw)


@pytest.mark.parametrize("where", ["org", "peer", "netns"])
def test_a_name_ending_in_a_newline_is_refused(where):
    raw = default_raw()
    org = raw["organisations"][1]
    if where == "org":
        org["name"] = "operator\n"
    elif where == "peer":
        org["peers"] = [{"name": "peer0\n"}]
    else:
        for o in raw["organisations"]:
            o["peers"] = [{"name": "peer0", "netns": "ns1\n"}]
    with pytest.raises(ConsortiumError, match="not a network namespace name|must be lower-case|needs a name"):
        consortium.parse(raw)


@pytest.mark.parametrize("host", ["127.0.0.1; touch /tmp/x", "../../etc", "a b", "$(id)", "host\n", 7, ""])
def test_a_host_that_is_no_address_is_refused(host):
    raw = default_raw()
    raw["organisations"][1]["peers"] = [{"name": "peer0", "host": host}]
    with pytest.raises(ConsortiumError, match="host"):
        consortium.parse(raw)


def test_a_top_level_host_that_is_no_address_is_refused():
    raw = default_raw()
    raw["host"] = "localhost`id`"
    with pytest.raises(ConsortiumError, match="host"):
        consortium.parse(raw)


def test_host_names_and_addresses_still_pass():
    raw = default_raw()
    raw["organisations"][1]["peers"] = [{"name": "peer0", "host": "peer0.Operator.example"}]
    raw["organisations"][2]["peers"] = [{"name": "peer0", "host": "198.18.0.2"}]
    c = consortium.parse(raw)
    assert c.node("peer0.operator").host == "peer0.Operator.example"


def test_bft_consenters_of_one_organisation_making_a_quorum_alone_are_refused():
    """4 consenters, quorum 3: the holder running 3 would sign every block alone."""
    raw = bft_raw()
    raw["organisations"][0]["orderers"] = ["orderer0"]
    raw["organisations"][1]["orderers"] = ["orderer0", "orderer1", "orderer2"]
    raw["organisations"][2].pop("orderers")
    with pytest.raises(ConsortiumError, match="OperatorMSP.*quorum"):
        consortium.parse(raw)
    consortium.parse(bft_raw())   # customs two of four, the operator and the broker one each: accepted


# ----------------------------------------------------------------------------- identities

@pytest.fixture
def ids(tmp_path):
    o = OrgIdentities(tmp_path / "customs" / "crypto", "CustomsMSP", DOMAIN)
    o.create()
    o.issue(f"peer0.{DOMAIN}", "peer", hosts=["198.18.0.11"])
    o.add_user("Admin", "admin")
    return o


@pytest.mark.parametrize("name", ["../../evil", "a/b", "..", "", "-rf", "x y", "x\n"])
def test_a_user_name_that_is_no_plain_name_is_refused(ids, tmp_path, name):
    before = {p for p in tmp_path.rglob("*")}
    with pytest.raises(IdentityError, match="user name"):
        ids.add_user(name)
    assert {p for p in tmp_path.rglob("*")} == before


def test_renewing_a_node_renews_its_tls_certificate_too(ids):
    """The TLS certificate expired on its old date although the node was renewed: its TLS broke then."""
    d = ids.identity_dir(f"peer0.{DOMAIN}", "peer")
    old_tls = x509.load_pem_x509_certificate((d / "tls" / "server.crt").read_bytes())
    key_before = (d / "tls" / "server.key").read_bytes()
    cert = ids.renew(f"peer0.{DOMAIN}", days=4000)
    tls = x509.load_pem_x509_certificate((d / "tls" / "server.crt").read_bytes())
    assert tls.serial_number != old_tls.serial_number
    assert abs((tls.not_valid_after_utc - cert.not_valid_after_utc).total_seconds()) <= 5
    assert tls.public_key() == old_tls.public_key() and (d / "tls" / "server.key").read_bytes() == key_before
    assert tls.extensions.get_extension_for_class(x509.SubjectAlternativeName).value == \
        old_tls.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert stat.S_IMODE((d / "tls" / "server.key").stat().st_mode) == 0o600


def test_renewing_an_admin_renews_its_osnadmin_certificate_too(ids):
    d = ids.identity_dir(f"Admin@{DOMAIN}", "admin")
    old = x509.load_pem_x509_certificate((d / "tls" / "osnadmin.crt").read_bytes())
    cert = ids.renew("Admin", days=4000)
    new = x509.load_pem_x509_certificate((d / "tls" / "osnadmin.crt").read_bytes())
    assert new.serial_number != old.serial_number
    assert abs((new.not_valid_after_utc - cert.not_valid_after_utc).total_seconds()) <= 5
    assert x509.load_pem_x509_certificate((d / "tls" / "client.crt").read_bytes()).not_valid_after_utc > \
        old.not_valid_after_utc
    new.verify_directly_issued_by(ids.admin_tlsca.cert)


def test_org_renew_passes_its_days(monkeypatch, tmp_path, capsys):
    """`ipledger org renew --days D` ignored D (every renewal got the default three years)."""
    from ipledger.network.cli import org as org_cli
    seen = {}

    class FakeIds:
        def __init__(self, *a):
            pass

        def renew(self, name, days=None):
            seen["days"] = days
            return SimpleNamespace(serial_number=1, not_valid_after_utc=__import__("datetime").datetime(2030, 1, 1))

    lay = SimpleNamespace(is_local=lambda org: True, org_dir=lambda org: tmp_path)
    org = SimpleNamespace(msp_id="CustomsMSP", domain=DOMAIN)
    net = SimpleNamespace(layout=lay, consortium=SimpleNamespace(org=lambda m: org))
    monkeypatch.setattr(org_cli, "_net", lambda args: net)
    monkeypatch.setattr(org_cli.identities, "OrgIdentities", FakeIds)
    args = SimpleNamespace(group="org", cmd="renew", org="CustomsMSP", name="User1", days=30)
    assert org_cli._run(args) == 0
    assert seen["days"] == 30


# ----------------------------------------------------------------------------- a generation cut short

@pytest.mark.fabric
def test_a_generation_cut_short_by_a_disk_error_goes_on_when_run_again(tmp_path):
    """The operator's directory fails half-way (its CA and identities made, its nodes' configurations not): the second
    run took the operator for another host's organisation ('no genesis block … on separate hosts') or
    refused its CA; now the error names what to do and the second run completes the same CA."""
    from ipledger.network.layout import Layout
    from ipledger.network.org import binaries, generate
    from ipledger.network.org.nodes import Nodes
    if binaries.missing():
        pytest.fail("Fabric binaries missing: run 'ipledger fabric install'")
    c, lay = consortium.load(base_port=21000), Layout(tmp_path / "state")
    operator = c.org("OperatorMSP")
    obstacle = lay.org_home(operator) / "nodes"
    obstacle.parent.mkdir(parents=True)
    obstacle.write_text("a disk error")   # the operator's node configurations cannot be written
    with pytest.raises(generate.GenerateError, match="(?s)OperatorMSP.*run 'ipledger network up'.*again"):
        generate.generate(c, lay, log=lambda *_: None)
    assert not lay.genesis_block.exists() and generate.interrupted(lay)
    ca_key = (lay.org_dir(operator) / "ca" / "priv_sk").read_bytes()
    net = Nodes(c, lay, "native")
    assert not net.generated   # `network up` generates again instead of waiting for another host's block
    obstacle.unlink()
    generate.generate(c, lay, log=lambda *_: None)
    assert lay.genesis_block.exists() and not generate.interrupted(lay)
    assert (lay.org_dir(operator) / "ca" / "priv_sk").read_bytes() == ca_key   # the same CA, carried on
    names = [e.name for e in OrgIdentities(lay.org_dir(operator), "OperatorMSP", operator.domain).register()]
    assert sorted(names) == sorted(set(names)) and "Admin@operator.ipledger.example" in names
    assert net.generated
    with pytest.raises(generate.GenerateError, match="already holds a generated network"):
        generate.generate(c, lay, log=lambda *_: None)


def test_an_identity_begun_and_not_registered_is_made_again_a_registered_one_refused(ids):
    d = ids.identity_dir(f"clerk@{DOMAIN}", "client")
    (d / "msp" / "keystore").mkdir(parents=True)
    (d / "msp" / "keystore" / "priv_sk").write_text("half written")
    ids.add_user("clerk")
    assert (d / "tls" / "client.key").exists()
    with pytest.raises(IdentityError, match="already exists"):
        ids.add_user("clerk")


def test_a_ca_whose_register_is_lost_is_never_made_again(ids):
    ids.register_file.unlink()
    key = ids.ca.key_file.read_bytes()
    with pytest.raises(IdentityError, match="already holds"):
        ids.create()
    with pytest.raises(IdentityError, match="register"):
        ids.add_user("clerk")
    assert ids.ca.key_file.read_bytes() == key


@pytest.mark.fabric
def test_add_holder_cut_short_before_its_channel_is_founded_goes_on_when_run_again(tmp_path, monkeypatch):
    """configtxgen failed after the holder and its channel were written to the consortium file: a second run was
    refused ('already in the consortium') and `network up` asked to purge; now it goes on."""
    from ipledger.network.channel import founding
    from ipledger.network.cli import consortium as cli_consortium
    from ipledger.network.errors import AdminError
    from ipledger.network.layout import Layout
    from ipledger.network.org import binaries, generate
    from ipledger.network.org.nodes import Nodes
    if binaries.missing():
        pytest.fail("Fabric binaries missing: run 'ipledger fabric install'")
    c = consortium.load(consortium.DEFAULT_FILE.with_name("consortium-holders.yaml"), base_port=22000)
    lay = Layout(tmp_path / "state")
    generate.generate(c, lay, log=lambda *_: None)
    real_found = founding.found

    def failing(*a, **k):
        raise founding.FoundingError("configtxgen failed (exit 1): no space left on device")
    monkeypatch.setattr(cli_consortium.founding, "found", failing)
    with pytest.raises(founding.FoundingError):
        cli_consortium.network_add_holder(Nodes(c, lay, "native"), "PlantCMSP", "ip-plant-c", log=lambda *_: None)
    monkeypatch.setattr(cli_consortium.founding, "found", real_found)
    net = Nodes(consortium.load(lay.consortium_file), lay, "native")
    assert "ip-plant-c" in net.consortium.channel_names() and not net.generated
    lines = []
    cli_consortium.network_add_holder(net, "PlantCMSP", "ip-plant-c", log=lines.append)
    assert net.on_channel("ip-plant-c").layout.genesis_block.exists() and net.generated
    assert "going on" in lines[0]
    with pytest.raises(AdminError, match="exists already"):
        cli_consortium.network_add_holder(net, "PlantCMSP", "ip-plant-c", log=lambda *_: None)
    # a removed organisation's directory is not taken over by a new one of the same name
    (lay.root / "audit").mkdir()
    (lay.root / "audit" / "definition.json").write_text("{}")
    with pytest.raises(AdminError, match="already holds an organisation's identities"):
        cli_consortium._add_local_org(net, "", "AuditMSP", channels=["ip-plant-c"])
    assert "AuditMSP" not in [o.msp_id for o in consortium.load(lay.consortium_file).orgs]


# ----------------------------------------------------------------------------- revocation

def _crl_serials(path):
    return {r.serial_number for r in x509.load_pem_x509_crl(path.read_bytes())}


def test_a_revocation_reaches_the_local_msps_of_the_organisations_nodes(ids):
    """A peer checks its local administrators (chaincode install, channel join) against its local MSP, which
    had no CRL: a revoked admin still installed code on its organisation's peers."""
    admin = [e for e in ids.register() if e.name == f"Admin@{DOMAIN}"][0]
    ids.revoke("Admin")
    node_msp = ids.identity_dir(f"peer0.{DOMAIN}", "peer") / "msp"
    assert admin.serial in _crl_serials(node_msp / "crls" / "crl.pem")
    # a node issued after the revocation starts with the CRL too
    ids.issue(f"peer1.{DOMAIN}", "peer")
    assert admin.serial in _crl_serials(ids.identity_dir(f"peer1.{DOMAIN}", "peer") / "msp" / "crls" / "crl.pem")


def test_org_identities_warns_of_certificates_about_to_end(ids, monkeypatch, capsys):
    """Nothing warned before a node's or user's certificate ended (and the node was refused)."""
    from ipledger.network.cli import org as org_cli
    ids.add_user("clerk")
    ids.renew("clerk", days=10)            # its newest certificate ends in 10 days
    ids.renew(f"peer0.{DOMAIN}", days=4000)
    lay = SimpleNamespace(is_local=lambda org: True, org_dir=lambda org: ids.root)
    org = SimpleNamespace(msp_id="CustomsMSP", domain=DOMAIN)
    net = SimpleNamespace(layout=lay, consortium=SimpleNamespace(org=lambda m: org))
    monkeypatch.setattr(org_cli, "_net", lambda args: net)
    assert org_cli._run(SimpleNamespace(group="org", cmd="identities", org="CustomsMSP", json=False)) == 0
    err = capsys.readouterr().err
    assert f"warning: clerk@{DOMAIN}'s certificate ends" in err and f"--name clerk@{DOMAIN}" in err
    assert "peer0" not in err and "Admin" not in err
    assert [e.name for e in ids.expiring(within_days=4001)] == [f"peer0.{DOMAIN}", f"Admin@{DOMAIN}",
                                                                f"clerk@{DOMAIN}"]


# ----------------------------------------------------------------------------- signing for another organisation

def test_an_admin_of_one_organisation_cannot_sign_for_another(tmp_path, base, orgs):
    """`admin sign --as CustomsMSP --msp-dir <the operator's admin>` added a signature claiming customs with the
    operator's certificate (a note only, exit 0): refused now, the update file unchanged."""
    from ipledger.network.cli import admin
    from tests.unit.network.test_admin import CHANNEL, with_audit
    upd = admin.UpdateFile.create(tmp_path / "u.pb", base, 0, with_audit(base, orgs), CHANNEL,
                                  {"kind": "add-org", "org": "AuditMSP"})
    before = upd.path.read_bytes()
    operator_admin = msp_dir(tmp_path / "op", *orgs["OperatorMSP"].ids["admin"])
    with pytest.raises(admin.AdminError, match="not a valid identity of CustomsMSP"):
        admin.sign(admin.UpdateFile.load(upd.path), "CustomsMSP", operator_admin, lambda *_: None)
    assert upd.path.read_bytes() == before
    # an organisation outside the channel signs nothing either
    audit_admin = msp_dir(tmp_path / "audit", *orgs["AuditMSP"].ids["admin"])
    with pytest.raises(admin.AdminError, match="not a valid identity of AuditMSP"):
        admin.sign(admin.UpdateFile.load(upd.path), "AuditMSP", audit_admin, lambda *_: None)
    # its own admin signs
    admin.sign(admin.UpdateFile.load(upd.path), "OperatorMSP", operator_admin, lambda *_: None)
    assert upd.path.read_bytes() != before


def test_a_revocation_run_again_writes_its_crl_again(ids):
    """A revoke cut short after the register was saved (before the CRL or the definition) could not be run
    again ('has issued no valid identity'), leaving the revocation off the CRL."""
    serial = [e for e in ids.register() if e.name == f"Admin@{DOMAIN}"][0].serial
    orig = ids.write_crl
    ids.write_crl = lambda: (_ for _ in ()).throw(OSError(28, "No space left on device"))
    with pytest.raises(OSError):
        ids.revoke("Admin")
    ids.write_crl = orig
    assert ids.revoke("Admin") == ids.crl_file
    assert serial in _crl_serials(ids.crl_file)
    with pytest.raises(IdentityError, match="no valid identity named 'nobody'"):
        ids.revoke("nobody")
