"""Key custody and secrets, and the admin commands' edge cases.

Offline, as the other tests of tests/unit/network: no Fabric, no network, subprocesses replaced where a
node or a gateway would be started. The findings: ``admin sign`` blocked by a forged signature carrying the
signer's certificate; a renewal cut short left a certificate in use that a revocation missed; the command's
``CORE_*``/``ORDERER_*`` settings (another organisation's MSP and keys) reached every organisation's nodes and
peer CLI; a gateway started in the background, and configtxgen/configtxlator, got the command's secrets;
text of an update file could drive the signer's terminal; ``webhooks add --secret`` did not say a command line
is visible to others.
"""
from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ipledger.network import consortium as consortium_mod
from ipledger.network.channel import updates
from ipledger.network.cli import admin
from ipledger.network.layout import Layout
from ipledger.network.org import identities, processes
from ipledger.network.org.nodes import Nodes
from tests.unit.network.channel_config import msp_dir
from tests.unit.network.test_admin import CHANNEL, with_audit


# ----------------------------------------------------------------------------- admin sign

def test_sign_is_not_blocked_by_a_forged_signature_carrying_the_signers_certificate(tmp_path, base, orgs):
    """A certificate is public: anyone handling the update file can add a "signature" of customs' admin whose
    bytes do not verify. ``admin sign --as CustomsMSP`` then said "this identity has signed already; the
    update is unchanged" and added nothing, so the update could never be submitted — while the orderer
    (Fabric's SignatureSetToValidIdentities) de-duplicates only signatures that verify."""
    c, o = orgs["CustomsMSP"], orgs["OperatorMSP"]
    upd = admin.UpdateFile.create(tmp_path / "u.pb", base, 0, with_audit(base, orgs), CHANNEL,
                                  {"kind": "add-org", "org": "AuditMSP"})
    forged = updates.sign_update(upd.cue, "CustomsMSP", c.ids["admin"][0], o.ids["admin"][1])  # wrong key
    upd.add_signature(forged)
    log: list[str] = []
    updates.sign(admin.UpdateFile.load(upd.path), "CustomsMSP", msp_dir(tmp_path / "c", *c.ids["admin"]), log.append)
    updates.sign(admin.UpdateFile.load(upd.path), "OperatorMSP", msp_dir(tmp_path / "o", *o.ids["admin"]), log.append)
    a = admin.assess(admin.UpdateFile.load(upd.path))
    assert not any("signed already" in line for line in log), log
    assert [(s["msp_id"], s["counts"]) for s in a["signatures"]] == [
        ("CustomsMSP", False), ("CustomsMSP", True), ("OperatorMSP", True)]
    assert a["satisfied"]


# ----------------------------------------------------------------------------- renew cut short

def test_a_renewal_cut_short_leaves_no_certificate_a_revocation_misses(tmp_path, monkeypatch):
    """``renew`` wrote the new certificate into the identity's MSP, then recorded its serial in the CA's
    register. Cut short between the two (a full disk, ^C), the identity used a certificate the register did
    not know: a later ``revoke`` put only the register's serials on the CRL, and the certificate in use —
    the one to end — stayed valid on the channel."""
    ids = identities.OrgIdentities(tmp_path / "crypto", "OperatorMSP", "operator.example")
    ids.create()
    ids.add_user("clerk2")
    real = ids._save_register
    calls = []

    def cut_short(reg):
        calls.append(1)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ids, "_save_register", cut_short)
    with pytest.raises(OSError):
        ids.renew("clerk2", days=30)
    monkeypatch.setattr(ids, "_save_register", real)
    ids.revoke("clerk2")
    [cert_file] = (ids.identity_dir(ids.user_name("clerk2"), "client") / "msp" / "signcerts").glob("*.pem")
    in_use = identities.load_cert(cert_file)
    crl = x509.load_pem_x509_crl(ids.crl_file.read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(in_use.serial_number) is not None


# ----------------------------------------------------------------------------- environments

@pytest.fixture
def local_net(tmp_path):
    """Two local organisations' directories (as ``scripts/up`` makes them on one machine), no keys made."""
    c = consortium_mod.load(base_port=24000)
    lay = Layout(tmp_path / "state")
    for org in c.orgs:
        (lay.org_dir(org) / "ca").mkdir(parents=True)
        (lay.org_dir(org) / "ca" / "priv_sk").write_text("")   # is_local
    return Nodes(c, lay, "native")


def _another_orgs_fabric_settings(lay: Layout, other) -> dict[str, str]:
    """What an administrator of ``other`` exports to run Fabric's CLIs by hand (fabric-samples' way)."""
    admin_dir = lay.user_dir(other)
    return {"CORE_PEER_LOCALMSPID": other.msp_id, "CORE_PEER_MSPCONFIGPATH": str(admin_dir / "msp"),
            "CORE_PEER_TLS_CLIENTAUTHREQUIRED": "true",
            "CORE_PEER_TLS_CLIENTKEY_FILE": str(admin_dir / "tls" / "client.key"),
            "CORE_PEER_TLS_KEY_FILE": str(admin_dir / "tls" / "client.key"),
            "ORDERER_GENERAL_LOCALMSPDIR": str(admin_dir / "msp"),
            "ORDERER_GENERAL_LOCALMSPID": other.msp_id}


def test_nodes_take_no_fabric_settings_from_the_commands_environment(local_net, monkeypatch):
    """Fabric reads ``CORE_*`` (peer) and ``ORDERER_*`` (orderer) variables as overrides of its config file. A
    command run with customs' admin settings exported (``CORE_PEER_MSPCONFIGPATH`` …, as fabric-samples
    teach) started every organisation's nodes — and ran every peer CLI — with them: the operator's peer
    signing with customs' admin key, a process holding two organisations' keys. A node's settings are its
    own configuration file's; the peer CLI's are those :meth:`Nodes.peer_cli` sets."""
    net, lay = local_net, local_net.layout
    customs = net.consortium.org(net.consortium.customs)
    operator = next(o for o in net.consortium.orgs if o.msp_id != customs.msp_id and o.peers)
    foreign = _another_orgs_fabric_settings(lay, customs)
    for k, v in foreign.items():
        monkeypatch.setenv(k, v)
    started = []

    class FakePopen:
        pid = 4242

        def __init__(self, args, **kw):
            started.append(kw["env"])

    monkeypatch.setattr(processes.subprocess, "Popen", FakePopen)
    monkeypatch.setattr(processes.binaries, "binary", lambda kind: f"/fabric/bin/{kind}")
    nodes = [operator.peers[0], *net.consortium.orderers[:1]]
    for node in nodes:
        lay.node_dir(node).mkdir(parents=True, exist_ok=True)
        processes.start(lay, node)
    ran = []
    monkeypatch.setattr("ipledger.network.org.nodes._run", lambda cmd, env, check, timeout=60: ran.append(env))
    net.peer_cli(operator.peers[0], ["channel", "list"])
    for env in [*started, *ran]:
        leaked = {k: env[k] for k in foreign if k in env and env[k] == foreign[k]}
        assert not leaked, leaked
    assert started[0]["FABRIC_CFG_PATH"] == str(lay.node_dir(operator.peers[0]))
    assert ran[0]["CORE_PEER_LOCALMSPID"] == operator.msp_id


def test_a_gateway_started_in_the_background_gets_no_secret_of_the_commands_environment(tmp_path, monkeypatch):
    """``gateway start --org M`` ran M's gateway with the whole environment of the command: on one machine an
    API key, a webhook secret or another organisation's client key exported for ``ipledger import`` or
    ``report`` ended in M's gateway process (its /proc/<pid>/environ). The gateway's own settings pass
    (``IPLEDGER_SSE_MAX_PER_KEY`` too, although its name says KEY)."""
    from ipledger.network.cli import gateway_daemon as daemon
    secrets_ = {"IPLEDGER_API_KEY": "ipk_0123456789ab_" + "x" * 43, "IPLEDGER_WEBHOOK_SECRET": "whsec",
                "IPLEDGER_CLIENT_KEY": "/state/customs/crypto/users/User1/tls/client.key", "PGPASSWORD": "p"}
    for k, v in {**secrets_, "IPLEDGER_SSE_MAX_PER_KEY": "3", "IPLEDGER_LIVE_FEED": "1"}.items():
        monkeypatch.setenv(k, v)
    seen = {}

    class FakePopen:
        pid = 4343

        def __init__(self, cmd, **kw):
            seen.update(kw)

        def poll(self):
            return None

    monkeypatch.setattr(daemon, "_containers", lambda state_dir: None)
    monkeypatch.setattr(daemon, "running", lambda state_dir, org: None)
    monkeypatch.setattr(daemon, "healthy", lambda url, cert=None, **probe: True)
    monkeypatch.setattr(daemon.subprocess, "Popen", FakePopen)
    monkeypatch.setattr("ipledger.gateway.config.gateway_dir_of",
                        lambda state_dir, org: Path(state_dir) / org / "gateway")
    daemon.start(tmp_path, org="OperatorMSP", log=lambda *_: None)
    env = seen.get("env")
    assert env is not None, "the gateway inherits the command's whole environment"
    assert not set(secrets_) & set(env)
    assert env["IPLEDGER_SSE_MAX_PER_KEY"] == "3" and env["IPLEDGER_LIVE_FEED"] == "1"
    assert env["PATH"] == os.environ["PATH"]


def test_fabric_tools_get_no_secret_of_the_commands_environment(tmp_path, monkeypatch):
    """configtxgen (founding a channel) and configtxgen/configtxlator (a proposal) ran with the command's whole
    environment, secret-named variables included, where the nodes and the peer CLI get none."""
    from ipledger.network.channel import founding, proposals
    monkeypatch.setenv("IPLEDGER_API_KEY", "ipk_0123456789ab_" + "y" * 43)
    monkeypatch.setenv("IPLEDGER_WEBHOOK_SECRET", "whsec")
    envs = []

    def fake_run(cmd, **kw):
        envs.append(kw["env"])
        if "-outputBlock" in cmd:
            Path(cmd[cmd.index("-outputBlock") + 1]).write_bytes(b"block")
        return subprocess.CompletedProcess(cmd, 0, "{}", "")

    monkeypatch.setattr(founding.subprocess, "run", fake_run)
    monkeypatch.setattr(proposals.subprocess, "run", fake_run)
    monkeypatch.setattr(founding.binaries, "binary", lambda name: f"/fabric/bin/{name}")
    monkeypatch.setattr(proposals.binaries, "binary", lambda name: f"/fabric/bin/{name}")
    monkeypatch.setattr(founding, "configtx", lambda c, lay, defs: {})
    c = consortium_mod.load(base_port=24100)
    founding.genesis_block(c, Layout(tmp_path / "state"), {}, log=lambda *_: None)
    proposals._tool(["configtxlator", "version"])
    assert len(envs) == 2
    for env in envs:
        assert "IPLEDGER_API_KEY" not in env and "IPLEDGER_WEBHOOK_SECRET" not in env
        assert env["FABRIC_LOGGING_SPEC"] == "warning"


def test_what_an_update_file_carries_cannot_drive_the_signers_terminal(tmp_path, base, orgs):
    """``admin sign`` shows a signer the update's changes and its signatures, then asks to sign. Anything in the
    file is the proposer's (or whoever handled the file): a "signature" whose MSP id or certificate subject holds
    terminal control sequences (cursor up, erase line) could overwrite the changes shown with harmless ones, or
    an INVALID flag with a valid one. The verifier escapes such characters; the assessment
    printed them as they were."""
    import datetime as dt
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x\x1b[3A\r\x1b[2K  add anchor peer\u202e")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    upd = admin.UpdateFile.create(tmp_path / "u.pb", base, 0, with_audit(base, orgs), CHANNEL,
                                  {"kind": "add-org", "org": "AuditMSP"})
    upd.add_signature(updates.sign_update(upd.cue, "CustomsMSP\x1b[1A\r\x1b[2K", cert.public_bytes(
        serialization.Encoding.PEM), key))
    upd.add_signature(updates.sign_update(upd.cue, "CustomsMSP", cert.public_bytes(serialization.Encoding.PEM), key))
    text = "\n".join(admin.format_assessment(admin.assess(admin.UpdateFile.load(upd.path))))
    assert "\\x1b" in text                                   # shown, escaped
    assert not [ch for ch in text if not ch.isprintable() and ch != "\n"], repr(text)


def test_every_secret_option_of_the_command_line_says_to_prefer_its_variable():
    """A command line is visible to every user of the host (``ps``, /proc/<pid>/cmdline): ``import`` and ``report``
    said so of ``--api-key``; ``webhooks add --secret`` (the HMAC secret the receiver trusts) did not."""
    from ipledger.network.cli import gateway as gateway_cli
    root = argparse.ArgumentParser()
    gateway_cli.register(root.add_subparsers(dest="group"))
    found = []

    def walk(parser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)
            elif any(o in ("--secret", "--api-key") for o in action.option_strings):
                found.append((action.option_strings[0], action.help))
    walk(root)
    assert {o for o, _ in found} == {"--secret", "--api-key"}
    for option, text in found:
        assert "prefer the env" in text, (option, text)


def test_the_members_listing_escapes_what_the_members_wrote_into_the_channel():
    """``admin members`` prints the live configuration: an organisation changes its own anchor peers (and its
    orderers' endpoints) with its own admin's signature alone, and can put terminal control sequences there."""
    from ipledger.network.channel import live
    m = {"channel": "inward-processing", "config_block": 7, "admins_policy": "AND(…)", "not_in_channel": [],
         "organisations": [
             {"msp_id": "OperatorMSP", "role": "application", "description": "operator",
              "anchor_peers": ["peer0\x1b[2A\r\x1b[2K:7051"], "peers": []},
             {"msp_id": "OrdererMSP", "role": "orderer", "description": "ordering\u202e",
              "endpoints": ["orderer0\x07:7050"]}]}
    text = "\n".join(live.format_members(m))
    assert not [ch for ch in text if not ch.isprintable() and ch != "\n"], repr(text)
    assert "peer0\\x1b[2A" in text


def test_a_genesis_block_shown_for_checking_cannot_hide_its_refusal(tmp_path, monkeypatch):
    """``channel inspect`` and ``network up`` show a genesis block the founder made and each member checks: names
    and endpoints in it are the founder's text. A conceal sequence (``ESC[8m``) in one would hide the "REFUSE
    this block" lines printed after it."""
    from ipledger.network.channel import founding
    from ipledger.network.org import generate
    evil = "orderer0\x1b[8m"
    s = {"block": 0, "sha256": "ab" * 32, "consensus": "etcdraft",
         "application_policies": {"Admins": "AND(…)\x1b[8m"},
         "application_orgs": {"Op\x1b[8mMSP": {"root_ca_sha256": ["cd" * 32], "tls_root_ca_sha256": ["ef" * 32],
                                               "node_ous": True, "crls": 0, "anchor_peers": [evil + ":7051"],
                                               "policies": {"Admins": "OR('x')"}}},
         "orderer_orgs": {"OrdererMSP": {"root_ca_sha256": ["01" * 32], "endpoints": [evil + ":7050"]}},
         "consenters": [{"address": evil + ":7050", "tls_cert_sha256": "02" * 32}]}
    text = "\n".join(founding.format_summary(s))
    assert not [ch for ch in text if not ch.isprintable() and ch != "\n"], repr(text)
    c = consortium_mod.load(base_port=24200)
    org = c.orgs[0]
    monkeypatch.setattr(generate.definition_mod, "load", lambda path: None)
    monkeypatch.setattr(generate.founding, "check_own", lambda block, own: [f"the block names {evil}"])
    with pytest.raises(generate.GenerateError) as refused:
        generate.check_block(Layout(tmp_path), org, b"block")
    assert "\x1b" not in str(refused.value) and "orderer0\\x1b[8m" in str(refused.value)
