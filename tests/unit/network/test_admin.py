"""Consortium administration, the pure parts (no Fabric): config updates, their
summaries, signatures and the policy evaluation that decides whether an update
may be submitted."""
from __future__ import annotations

import argparse
import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from fabric_protos.common import common_pb2, configtx_pb2
from fabric_protos.peer import policy_pb2

from ipledger.network.cli import admin
from ipledger.network.cli import consortium
from ipledger.network.fabric.config import ConfigError, anchor_peers, anchor_peers_value, config_from_block, show
from ipledger.network.fabric.config_signatures import evaluate, sign_update, signer_for_identity, signers
from ipledger.network.fabric.config_update import (apply_update, check_update, compute_update, delta_set,
                                                   read_envelope, required_policies, summarize, update_envelope)
from ipledger.network.fabric.policy import (PolicyError, implicit_meta_policy, parse_signature_policy, render_policy,
                                            signature_policy)
from tests.unit.network.channel_config import FakeOrg, msp_dir

CHANNEL = "inward-processing"


def with_audit(base, orgs):
    new = configtx_pb2.Config()
    new.CopyFrom(base)
    new.channel_group.groups["Application"].groups["AuditMSP"].CopyFrom(orgs["AuditMSP"].group(
        anchors=("127.0.0.1:7140",)))
    return new


def signed(update: configtx_pb2.ConfigUpdate, *identities) -> configtx_pb2.ConfigUpdateEnvelope:
    """A ConfigUpdateEnvelope signed by (org, role) identities."""
    cue = configtx_pb2.ConfigUpdateEnvelope(config_update=update.SerializeToString())
    for org, role in identities:
        cert, key = org.ids[role]
        cue.signatures.append(sign_update(cue, org.msp_id, cert, key))
    return cue


def satisfied(config, update, cue) -> bool:
    sigs = signers(config, cue)
    return all(evaluate(config, r.policy, sigs).satisfied
               for r in required_policies(config, update))


# ----------------------------------------------------------------------------- compute / apply

def test_add_org_update_bumps_application_and_needs_its_admins(base, orgs):
    update = compute_update(base, with_audit(base, orgs), CHANNEL)
    assert update.channel_id == CHANNEL
    ws = update.write_set.groups["Application"]
    assert ws.version == base.channel_group.groups["Application"].version + 1
    assert ws.groups["AuditMSP"].version == 0 and "MSP" in ws.groups["AuditMSP"].values
    # Unchanged orgs travel as empty shells at their current version.
    assert ws.groups["CustomsMSP"] == configtx_pb2.ConfigGroup(version=0)
    delta = {show(path) for _, path in delta_set(update)}
    assert "/Channel/Application" in delta and "/Channel/Application/AuditMSP/MSP" in delta
    assert "/Channel/Application/CustomsMSP" not in delta
    assert [show(r.policy) for r in required_policies(base, update)] == ["/Channel/Application/Admins"]
    assert check_update(base, update) == []


@pytest.mark.parametrize("change", ["add", "remove", "anchors", "policy", "channel-policy"])
def test_apply_of_computed_update_gives_the_proposed_config(base, orgs, change):
    new = configtx_pb2.Config()
    new.CopyFrom(base)
    app = new.channel_group.groups["Application"]
    if change == "add":
        new = with_audit(base, orgs)
    elif change == "remove":
        del app.groups["BrokerMSP"]
    elif change == "anchors":
        app.groups["BrokerMSP"].values["AnchorPeers"].value = anchor_peers_value(
            ["localhost:7130", "127.0.0.1:7131"])
    elif change == "policy":
        app.policies["Endorsement"].policy.CopyFrom(implicit_meta_policy("ANY Endorsement"))
    else:
        new.channel_group.policies["Readers"].policy.CopyFrom(implicit_meta_policy("ALL Readers"))
    update = compute_update(base, new, CHANNEL)
    result = apply_update(base, update)
    # Same content as proposed; only versions of changed elements move on.
    assert _strip_versions(result.channel_group) == _strip_versions(new.channel_group)
    assert result.sequence == base.sequence + 1
    assert check_update(base, update) == []


def _strip_versions(g: configtx_pb2.ConfigGroup) -> configtx_pb2.ConfigGroup:
    out = configtx_pb2.ConfigGroup()
    out.CopyFrom(g)

    def strip(x):
        x.version = 0
        for v in x.values.values():
            v.version = 0
        for p in x.policies.values():
            p.version = 0
        for sub in x.groups.values():
            strip(sub)
    strip(out)
    return out


def test_required_policy_follows_each_elements_mod_policy(base, orgs):
    new = configtx_pb2.Config()
    new.CopyFrom(base)
    app = new.channel_group.groups["Application"]
    app.groups["BrokerMSP"].values["AnchorPeers"].value = anchor_peers_value(["localhost:7130"])
    u = compute_update(base, new, CHANNEL)
    # A value's mod_policy is relative to its group: the org's own Admins.
    assert [show(r.policy) for r in required_policies(base, u)] == [
        "/Channel/Application/BrokerMSP/Admins"]
    new2 = configtx_pb2.Config()
    new2.CopyFrom(base)
    new2.channel_group.policies["Readers"].policy.CopyFrom(implicit_meta_policy("ALL Readers"))
    u2 = compute_update(base, new2, CHANNEL)
    assert [show(r.policy) for r in required_policies(base, u2)] == ["/Channel/Admins"]


def test_no_change_and_stale_updates_are_reported(base, orgs):
    with pytest.raises(ConfigError, match="no differences"):
        compute_update(base, base, CHANNEL)
    update = compute_update(base, with_audit(base, orgs), CHANNEL)
    # Meanwhile another update went through: this one was computed against old versions.
    other = configtx_pb2.Config()
    other.CopyFrom(base)
    del other.channel_group.groups["Application"].groups["BrokerMSP"]
    moved_on = apply_update(base, compute_update(base, other, CHANNEL))
    problems = check_update(moved_on, update)
    assert any("stale" in p and "/Channel/Application" in p for p in problems)


def test_envelope_round_trip_and_config_block_decoding(base, orgs):
    update = compute_update(base, with_audit(base, orgs), CHANNEL)
    env = update_envelope(update)
    _, cue, back = read_envelope(env.SerializeToString())
    assert back == update and list(cue.signatures) == []
    payload = common_pb2.Payload()
    payload.ParseFromString(env.payload)
    ch = common_pb2.ChannelHeader()
    ch.ParseFromString(payload.header.channel_header)
    assert (ch.type, ch.channel_id) == (common_pb2.CONFIG_UPDATE, CHANNEL)

    cenv = configtx_pb2.ConfigEnvelope(config=base)
    block_payload = common_pb2.Payload(
        header=common_pb2.Header(channel_header=common_pb2.ChannelHeader(
            type=common_pb2.CONFIG, channel_id=CHANNEL).SerializeToString()),
        data=cenv.SerializeToString())
    block = common_pb2.Block(header=common_pb2.BlockHeader(number=7))
    block.data.data.append(common_pb2.Envelope(payload=block_payload.SerializeToString())
                           .SerializeToString())
    config, number = config_from_block(block.SerializeToString())
    assert (config, number) == (base, 7)
    with pytest.raises(ConfigError, match="not a config update"):
        read_envelope(block.data.data[0])


# ----------------------------------------------------------------------------- summaries

def test_summary_of_an_added_org_lists_its_public_definition(base, orgs):
    lines = summarize(base, with_audit(base, orgs))
    assert lines[0] == "add application organisation AuditMSP"
    text = "\n".join(lines)
    assert "MSP id AuditMSP" in text and "root CA CN=ca.AuditMSP" in text
    assert "NodeOUs: admin=admin, client=client, peer=peer" in text
    assert "policy Admins: OR('AuditMSP.admin')" in text
    assert "anchor peers: 127.0.0.1:7140" in text
    assert all(line.startswith("    ") for line in lines[1:])


def test_summary_of_removal_anchor_and_policy_changes(base):
    new = configtx_pb2.Config()
    new.CopyFrom(base)
    app = new.channel_group.groups["Application"]
    del app.groups["BrokerMSP"]
    app.groups["CustomsMSP"].values["AnchorPeers"].value = anchor_peers_value(["localhost:7110"])
    app.policies["Endorsement"].policy.CopyFrom(implicit_meta_policy("ANY Endorsement"))
    assert summarize(base, new) == [
        "remove application organisation BrokerMSP (its admins, nodes and clients lose access "
        "to the channel)",
        "AnchorPeers of /Channel/Application/CustomsMSP: 127.0.0.1:7110 → localhost:7110",
        "policy /Channel/Application/Endorsement: MAJORITY Endorsement → ANY Endorsement",
    ]
    assert summarize(base, base) == []


def test_summary_shown_to_signers_is_recomputed_from_the_update_bytes(base, orgs, tmp_path):
    proposed = with_audit(base, orgs)
    upd = admin.UpdateFile.create(tmp_path / "add.pb", base, 3, proposed, CHANNEL,
                                  {"kind": "add-org", "org": "AuditMSP"})
    meta = json.loads((tmp_path / "add.json").read_text())
    assert meta["requires"] == ["/Channel/Application/Admins"]
    assert meta["summary"][0] == "add application organisation AuditMSP"
    # A proposer who edits the text summary changes nothing a signer sees.
    meta["summary"] = ["harmless cosmetic change"]
    (tmp_path / "add.json").write_text(json.dumps(meta))
    loaded = admin.UpdateFile.load(tmp_path / "add.pb")
    assert loaded.summary()[0] == "add application organisation AuditMSP"
    assert loaded.update == upd.update


# ----------------------------------------------------------------------------- policy language

def test_policy_language_encodes_like_fabric_policydsl():
    # validation_parameter Fabric's peer CLI committed for this policy (querycommitted).
    committed = base64.b64decode(
        "CkgSEBIOCAESAggAEgIIARICCAIaEBIOCgpDdXN0b21zTVNQEAMaERIPCgtPcGVyYXRvck1TUBADGg8SDQoJ"
        "QnJva2VyTVNQEAM=")
    app_policy = policy_pb2.ApplicationPolicy()
    app_policy.ParseFromString(committed)
    text = "OR('CustomsMSP.peer','OperatorMSP.peer','BrokerMSP.peer')"
    assert parse_signature_policy(text).SerializeToString() == \
        app_policy.signature_policy.SerializeToString()


@pytest.mark.parametrize("text,rendered", [
    ("OR('A.admin')", "OR('A.admin')"),
    ("and('A.peer', \"B.peer\")", "AND('A.peer', 'B.peer')"),
    ("OutOf(2, 'A.admin', 'B.admin', 'C.admin')", "OutOf(2, 'A.admin', 'B.admin', 'C.admin')"),
    ("OR('A.member', AND('B.client', 'C.orderer'))", "OR('A.member', AND('B.client', 'C.orderer'))"),
])
def test_policy_language_round_trip(text, rendered):
    policy = signature_policy(text)
    assert render_policy(policy) == rendered
    assert render_policy(signature_policy(rendered)) == rendered


@pytest.mark.parametrize("bad", ["OR('A.boss')", "XOR('A.admin')", "OR('A.admin'",
                                 "OutOf(3, 'A.admin', 'B.admin')", "OR('A.admin') extra", ""])
def test_policy_language_errors(bad):
    with pytest.raises(PolicyError):
        parse_signature_policy(bad)


def test_implicit_meta_rules():
    assert render_policy(implicit_meta_policy("majority Admins")) == "MAJORITY Admins"
    with pytest.raises(PolicyError):
        implicit_meta_policy("MOST Admins")


# ----------------------------------------------------------------------------- evaluation

def test_majority_of_three_needs_two_admin_signatures(base, orgs):
    update = compute_update(base, with_audit(base, orgs), CHANNEL)
    c, o, b = orgs["CustomsMSP"], orgs["OperatorMSP"], orgs["BrokerMSP"]
    assert not satisfied(base, update, signed(update))
    assert not satisfied(base, update, signed(update, (c, "admin")))
    assert satisfied(base, update, signed(update, (c, "admin"), (o, "admin")))
    assert satisfied(base, update, signed(update, (b, "admin"), (c, "admin"), (o, "admin")))
    ev = evaluate(base, ("Channel", "Application", "Admins"),
                  signers(base, signed(update, (c, "admin"))))
    assert (ev.needed, ev.have, ev.satisfied) == (2, 1, False)
    assert [(ch.path, ch.satisfied) for ch in ev.children] == [
        ("/Channel/Application/BrokerMSP/Admins", False),
        ("/Channel/Application/CustomsMSP/Admins", True),
        ("/Channel/Application/OperatorMSP/Admins", False)]


def test_majority_of_four_needs_three(base, orgs):
    four = apply_update(base, compute_update(base, with_audit(base, orgs), CHANNEL))
    gone = configtx_pb2.Config()
    gone.CopyFrom(four)
    del gone.channel_group.groups["Application"].groups["AuditMSP"]
    update = compute_update(four, gone, CHANNEL)
    c, o, b, a = (orgs[m] for m in ("CustomsMSP", "OperatorMSP", "BrokerMSP", "AuditMSP"))
    assert not satisfied(four, update, signed(update, (c, "admin"), (o, "admin")))
    assert satisfied(four, update, signed(update, (c, "admin"), (o, "admin"), (a, "admin")))
    assert satisfied(four, update, signed(update, (c, "admin"), (o, "admin"), (b, "admin")))


def test_what_does_not_count(base, orgs):
    update = compute_update(base, with_audit(base, orgs), CHANNEL)
    c, o = orgs["CustomsMSP"], orgs["OperatorMSP"]
    # The same admin twice counts once.
    cue = signed(update, (c, "admin"), (c, "admin"))
    sigs = signers(base, cue)
    assert [s.duplicate for s in sigs] == [False, True]
    assert not satisfied(base, update, cue)
    # Clients and peers are members, not admins.
    cue = signed(update, (c, "admin"), (o, "client"))
    sigs = signers(base, cue)
    assert [(s.msp_id, s.is_admin, s.roles) for s in sigs] == [
        ("CustomsMSP", True, {"member", "admin"}), ("OperatorMSP", False, {"member", "client"})]
    assert not satisfied(base, update, signed(update, (c, "admin"), (o, "peer")))
    # A joining org's admin is not (yet) an admin of the channel.
    cue = signed(update, (c, "admin"), (orgs["AuditMSP"], "admin"))
    audit = signers(base, cue)[1]
    assert not audit.known_msp and not audit.counts and "not an organisation" in audit.problem
    assert not satisfied(base, update, cue)
    # An "admin" certificate of OperatorMSP issued by somebody else's CA.
    rogue = FakeOrg("OperatorMSP")
    cue = signed(update, (c, "admin"), (rogue, "admin"))
    s = signers(base, cue)[1]
    assert s.signature_valid and not s.cert_valid and "does not chain to a CA of OperatorMSP" in s.problem
    assert not satisfied(base, update, cue)
    # A signature over other bytes.
    cue = signed(update, (c, "admin"), (o, "admin"))
    cue.signatures[1].signature = cue.signatures[0].signature
    s = signers(base, cue)[1]
    assert not s.signature_valid and not s.counts
    assert not satisfied(base, update, cue)


def test_the_submitter_signature_is_counted_once(base, orgs):
    update = compute_update(base, with_audit(base, orgs), CHANNEL)
    c, o = orgs["CustomsMSP"], orgs["OperatorMSP"]
    upd = admin.UpdateFile(None, update_envelope(update), signed(update, (c, "admin")), update,
                           {}, base)
    same = signer_for_identity(base, "CustomsMSP", c.ids["admin"][0])
    assert not admin.assess(upd, extra=[same])["satisfied"]
    other = signer_for_identity(base, "OperatorMSP", o.ids["admin"][0])
    assert admin.assess(upd, extra=[other])["satisfied"]


def test_signature_rule_variants(base, orgs):
    c, o, b = orgs["CustomsMSP"], orgs["OperatorMSP"], orgs["BrokerMSP"]
    new = configtx_pb2.Config()
    new.CopyFrom(base)
    app = new.channel_group.groups["Application"]
    app.policies["Admins"].policy.CopyFrom(
        signature_policy("OutOf(2, 'CustomsMSP.admin', 'OperatorMSP.admin', 'BrokerMSP.admin')"))
    app.policies["Readers"].policy.CopyFrom(implicit_meta_policy("ALL Readers"))
    update = compute_update(new, with_audit(new, orgs), CHANNEL)
    assert not satisfied(new, update, signed(update, (b, "admin")))
    assert satisfied(new, update, signed(update, (b, "admin"), (o, "admin")))
    sigs = signers(new, signed(update, (c, "admin"), (o, "client"), (b, "peer")))
    assert evaluate(new, ("Channel", "Application", "Readers"), sigs).satisfied  # ALL Readers
    assert not evaluate(new, ("Channel", "Application", "Nope"), sigs).satisfied


def test_signatures_are_low_s_and_verify(orgs, base):
    update = compute_update(base, with_audit(base, orgs), CHANNEL)
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    for _ in range(20):
        cue = signed(update, (orgs["CustomsMSP"], "admin"))
        _, s = decode_dss_signature(cue.signatures[0].signature)
        assert s <= n // 2
        assert signers(base, cue)[0].signature_valid


def test_sign_from_an_msp_directory(tmp_path, base, orgs):
    c, o = orgs["CustomsMSP"], orgs["OperatorMSP"]
    upd = admin.UpdateFile.create(tmp_path / "u.pb", base, 0, with_audit(base, orgs), CHANNEL,
                                  {"kind": "add-org", "org": "AuditMSP"})
    for org in (c, o):
        msp_dir(tmp_path / org.msp_id, *org.ids["admin"])
    log = []
    admin.sign(admin.UpdateFile.load(upd.path), "CustomsMSP", tmp_path / "CustomsMSP", log.append)
    a = admin.assess(admin.UpdateFile.load(upd.path))
    assert not a["satisfied"] and a["policies"][0]["have"] == 1
    admin.sign(admin.UpdateFile.load(upd.path), "CustomsMSP", tmp_path / "CustomsMSP", log.append)
    assert "signed already" in log[-1]
    admin.sign(admin.UpdateFile.load(upd.path), "OperatorMSP", tmp_path / "OperatorMSP", log.append)
    a = admin.assess(admin.UpdateFile.load(upd.path))
    assert a["satisfied"]
    assert [(s["msp_id"], s["admin"]) for s in a["signatures"]] == [("CustomsMSP", True),
                                                                     ("OperatorMSP", True)]
    text = "\n".join(admin.format_assessment(a))
    assert "Ready to submit." in text and "add application organisation AuditMSP" in text
    (tmp_path / "OperatorMSP" / "keystore" / "priv_sk").chmod(0o644)
    with pytest.raises(admin.AdminError, match="wider than 0600"):
        admin.sign(admin.UpdateFile.load(upd.path), "OperatorMSP", tmp_path / "OperatorMSP")


def test_anchor_peer_values():
    g = configtx_pb2.ConfigGroup()
    g.values["AnchorPeers"].value = anchor_peers_value(["127.0.0.1:7110", "peer1.example:8051"])
    assert anchor_peers(g) == ["127.0.0.1:7110", "peer1.example:8051"]
    with pytest.raises(ConfigError):
        anchor_peers_value(["no-port"])


def _subcommands(parser) -> dict:
    """The sub-parsers of ``parser`` by name."""
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices


def test_the_dispatch_tables_cover_every_command():
    root = argparse.ArgumentParser()
    admin.add_commands(root.add_subparsers(dest="group"))
    commands = _subcommands(_subcommands(root)["admin"])
    assert set(commands) == set(admin.COMMANDS)
    assert set(_subcommands(commands["propose"])) == set(admin.PROPOSALS)
    net = argparse.ArgumentParser()
    consortium.add_network_commands(net.add_subparsers(dest="cmd"))
    assert set(_subcommands(net)) == set(consortium.NETWORK_COMMANDS)


def test_live_sign_refuses_an_update_for_another_channel(tmp_path, base, orgs):
    """An update for channel B whose base config is channel A's: checked against A's live config it showed
    A's changes and said "the changes shown are those it makes", while the signature is valid on B."""
    c = orgs["CustomsMSP"]
    msp = tmp_path / "msp"
    (msp / "signcerts").mkdir(parents=True)
    (msp / "keystore").mkdir()
    cert, key = c.ids["admin"]
    (msp / "signcerts" / "cert.pem").write_bytes(cert)
    (msp / "keystore" / "priv_sk").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (msp / "keystore" / "priv_sk").chmod(0o600)
    upd = admin.UpdateFile.create(tmp_path / "u.pb", base, 3, with_audit(base, orgs), "holder-b",
                                  {"kind": "add-org", "org": "AuditMSP"})

    class FakeNet:
        consortium = argparse.Namespace(channel=CHANNEL)

        def channel_config(self, msp_id=None):
            return base, 3

    args = argparse.Namespace(update=upd.path, as_org="CustomsMSP", msp_dir=msp, live=True, offline=False,
                              yes=True, channel=CHANNEL, state_dir=None, consortium=None, base_port=None)
    real = admin._net
    admin._net = lambda a: FakeNet()
    try:
        with pytest.raises(admin.Refused, match="holder-b"):
            admin._sign(args)
        with pytest.raises(admin.Refused, match="holder-b"):
            admin._status(argparse.Namespace(update=upd.path, live=True, as_org=None, json=False, channel=CHANNEL,
                                             state_dir=None, consortium=None, base_port=None))
    finally:
        admin._net = real
    assert not admin.UpdateFile.load(upd.path).cue.signatures


def test_summary_shows_who_may_change_what_an_update_adds(base, orgs):
    """An added organisation whose group (or MSP) another party's admins may modify, or a new policy modifiable
    by one member alone: what signers were shown left the mod_policy out, so they approved, unknowingly, that
    the operator alone could later replace the new organisation's CA."""
    new = with_audit(base, orgs)
    audit = new.channel_group.groups["Application"].groups["AuditMSP"]
    audit.mod_policy = "/Channel/Application/OperatorMSP/Admins"
    audit.values["MSP"].mod_policy = "/Channel/Application/OperatorMSP/Admins"
    new.channel_group.groups["Application"].policies["Extra"].CopyFrom(configtx_pb2.ConfigPolicy(
        mod_policy="/Channel/Application/OperatorMSP/Admins", policy=signature_policy("OR('OperatorMSP.admin')")))
    text = "\n".join(summarize(base, new))
    assert "mod_policy of the organisation: /Channel/Application/OperatorMSP/Admins" in text
    assert "mod_policy of value MSP: /Channel/Application/OperatorMSP/Admins" in text
    assert "mod_policy of policy /Channel/Application/Extra: /Channel/Application/OperatorMSP/Admins" in text
    # the usual case, its own admins: nothing more than before
    assert "mod_policy" not in "\n".join(summarize(base, with_audit(base, orgs)))


def test_summary_shows_a_revocation_list_taken_out_of_an_msp(base, orgs):
    """An update of a member's MSP that only drops its revocation list (un-revoking a compromised admin) was
    shown as 'MSP of …: <same text> → <same text>': the signer could not see that anything changed."""
    import datetime as dt
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from fabric_protos.msp import msp_config_pb2
    from tests.unit.network.channel_config import NOW

    o = orgs["OperatorMSP"]
    admin_cert = x509.load_pem_x509_certificate(o.ids["admin"][0])
    crl = (x509.CertificateRevocationListBuilder().issuer_name(o.ca.subject)
           .last_update(NOW - dt.timedelta(minutes=1)).next_update(NOW + dt.timedelta(days=30))
           .add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(admin_cert.serial_number)
                                    .revocation_date(NOW - dt.timedelta(minutes=1)).build())
           .sign(o.ca_key, hashes.SHA256()))
    msp = o.msp()
    fc = msp_config_pb2.FabricMSPConfig.FromString(msp.config)
    fc.revocation_list.append(crl.public_bytes(serialization.Encoding.PEM))
    revoked = configtx_pb2.Config()
    revoked.CopyFrom(base)
    value = revoked.channel_group.groups["Application"].groups["OperatorMSP"].values["MSP"]
    value.value = msp_config_pb2.MSPConfig(type=0, config=fc.SerializeToString()).SerializeToString()
    lines = summarize(revoked, base)    # the revocation list taken out
    assert len(lines) == 1
    before, after = lines[0].split(" → ")
    assert before.split(": ", 1)[1] != after
    assert f"revocation list of CN=ca.OperatorMSP: 1 revoked ({admin_cert.serial_number:x})" in before
    # any other field the description leaves out: still shown as a change
    fc2 = msp_config_pb2.FabricMSPConfig.FromString(o.msp().config)
    fc2.organizational_unit_identifiers.add(certificate=o.ids["admin"][0], organizational_unit_identifier="x")
    other = configtx_pb2.Config()
    other.CopyFrom(base)
    other.channel_group.groups["Application"].groups["OperatorMSP"].values["MSP"].value = \
        msp_config_pb2.MSPConfig(type=0, config=fc2.SerializeToString()).SerializeToString()
    assert "changed in fields not shown" in summarize(base, other)[0]
