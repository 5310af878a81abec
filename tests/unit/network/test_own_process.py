"""No process holds two organisations' private keys (network/org/own_process.py): on one machine, each
organisation's identities are made, and its nodes' metrics read with its admin's TLS key, in a process of
that organisation alone. The check: an audit hook of this (the parent) process sees every file it opens;
a private key of any organisation opened here fails the test."""
from __future__ import annotations

import http.server
import ssl
import threading
from pathlib import Path

import pytest

from ipledger.network import consortium
from ipledger.network.layout import Layout
from ipledger.network.org import generate, identities, own_process
from tests.unit.network.opened_files import opened_here, private_keys
from tests.unit.shim.shim_helpers import make_pki

def _add(a: int, b: int, log=None) -> int:
    if log:
        log("adding", a, b)
    return a + b


def _fail(log=None) -> None:
    if log:
        log("about to fail")
    raise identities.IdentityError("refused in the child")


def _hang() -> None:
    import time
    time.sleep(60)


def test_a_call_returns_its_result_replays_its_log_and_raises_its_error():
    lines = []
    assert own_process.call(_add, 2, 3, log=lines.append) == 5
    assert lines == ["adding 2 3"]
    assert own_process.call(_add, 2, 3) == 5
    with pytest.raises(identities.IdentityError, match="refused in the child"):
        own_process.call(_fail, log=lines.append)
    assert lines[-1] == "about to fail"                 # what it logged before failing is not lost
    with pytest.raises(TimeoutError, match="_hang did not end within 1 s"):
        own_process.call(_hang, timeout=1)


@pytest.mark.fabric
def test_on_one_machine_each_organisations_keys_are_made_outside_this_process(tmp_path):
    c, lay = consortium.load(base_port=21000), Layout(tmp_path / "state")
    lines = []
    with opened_here() as paths:
        generate.generate(c, lay, log=lines.append)   # the channel founded, each organisation's check of it
    assert lay.genesis_block.exists()
    for org in c.all_orgs:   # every organisation has its keys, made in a process of its own
        keys = identities.private_key_files(lay.org_home(org))
        assert keys and all(k.stat().st_mode & 0o777 == 0o600 for k in keys), org.msp_id
        assert any(line.startswith(f"  {org.msp_id}: its own CA") for line in lines), lines
    assert private_keys(paths) == [], private_keys(paths)
    assert any(p.endswith("definition.json") for p in paths)   # the hook saw this process's own opens


@pytest.fixture
def tls_server(tmp_path):
    pki = make_pki(tmp_path / "pki")
    client = {"cert": tmp_path / "client.crt", "key": tmp_path / "client.key"}
    client["cert"].write_bytes(pki["client_cert"])
    client["key"].write_bytes(pki["client_key"])
    client["key"].chmod(0o600)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = f"peer {self.connection.getpeercert()['subject'][0][0][1]}\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=pki["files"]["ca.pem"])
    ctx.load_cert_chain(pki["files"]["server.pem"], pki["files"]["server.key"])
    ctx.verify_mode = ssl.CERT_REQUIRED
    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/metrics", Path(pki["files"]["ca.pem"]), client
    finally:
        server.shutdown()
        server.server_close()


def test_metrics_are_read_with_the_client_key_in_a_child_process(tls_server, tmp_path):
    url, ca, client = tls_server
    with opened_here() as paths:
        text = own_process.fetch_with_client_cert(url, ca, client["cert"], client["key"])
    assert text == "peer peer0\n"                       # the server saw the client certificate
    assert str(client["key"]) not in paths
    with pytest.raises(OSError, match="GET https://127.0.0.1"):   # without the right CA: refused, as OSError
        other = make_pki(tmp_path / "other")
        own_process.fetch_with_client_cert(url, Path(other["files"]["ca.pem"]), client["cert"], client["key"])


def test_fabric_processes_are_not_given_the_secrets_of_this_commands_environment():
    from ipledger.network.org import processes
    env = processes.fabric_environment({
        "PATH": "/usr/bin", "HOME": "/root", "IPLEDGER_API_KEY": "ipk_x", "IPLEDGER_WEBHOOK_SECRET": "s",
        "PGPASSWORD": "p", "GITHUB_TOKEN": "t", "AWS_SECRET_ACCESS_KEY": "a", "SSH_AUTH_SOCK": "/tmp/agent",
        "CORE_PEER_TLS_KEY_FILE": "/org/tls/server.key", "FABRIC_CFG_PATH": "/cfg", "IPLEDGER_PYTHON": "/py"})
    assert env == {"PATH": "/usr/bin", "HOME": "/root", "SSH_AUTH_SOCK": "/tmp/agent",
                   "CORE_PEER_TLS_KEY_FILE": "/org/tls/server.key", "FABRIC_CFG_PATH": "/cfg", "IPLEDGER_PYTHON": "/py"}


def test_chaincode_services_start_without_this_process_reading_their_packages(tmp_path):
    """An organisation's chaincode-service package carries its peers' client TLS key (connection.json):
    starting every local organisation's services (``network up`` with containers, ``chaincode deploy``) read
    each package here — its label, id and address — so this process held every organisation's key."""
    from types import SimpleNamespace
    from ipledger.network.channel import chaincode as ccmod
    from ipledger.network.channel.package import build_ccaas_package, package_id

    orgs = [SimpleNamespace(msp_id=f"{n}MSP", name=n, domain=f"{n.lower()}.example", peers=[object()])
            for n in ("Customs", "Operator")]
    root = tmp_path / "state"
    layout = SimpleNamespace(is_local=lambda o: True, org_home=lambda o: root / o.name,
                             org_dir=lambda o: root / o.name / "crypto")
    expected = {}
    for i, org in enumerate(orgs):
        out = ccmod.service_package_file(SimpleNamespace(layout=layout), org, "ipledger_1.0")
        out.parent.mkdir(parents=True)
        build_ccaas_package("ipledger", "ipledger_1.0", f"127.0.0.1:{7060 + i}", out, root_cert="CA",
                            client_cert="CERT", client_key=f"KEY OF {org.msp_id}")
        expected[org.msp_id] = ("ipledger_1.0", package_id(out), f"127.0.0.1:{7060 + i}")
    started = {}

    class Runtime:
        def start_chaincode(self, org, label, pid, address, customs, tls, log):
            started[org.msp_id] = (label, pid, address)
            return "cid"

    net = SimpleNamespace(layout=layout, runtime=Runtime(),
                          consortium=SimpleNamespace(orgs=orgs, customs="CustomsMSP", source=""))
    with opened_here() as paths:
        ccmod.resume_services(net, log=lambda *_: None)
        ids = {o.msp_id: ccmod.installed_package_id(p) for o in orgs for p in ccmod.service_packages(net, o)}
    assert started == expected
    assert ids == {m: e[1] for m, e in expected.items()}
    assert [p for p in paths if p.endswith(".ccaas.tar.gz")] == []
