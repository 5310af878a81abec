"""Chaincode lifecycle on the real network: CCaaS, upgrade without downtime, status."""
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ipledger.network.channel.package import CHAINCODE_DIR, ChaincodeSpec, build_ccaas_package, package_id

from ipledger.network.channel.chaincode import Deployer
from tests.integration.conftest import STUBCHECK_DIR, free_base_port

pytestmark = pytest.mark.fabric
J = json.dumps
POLICY = "OR('CustomsMSP.peer','OperatorMSP.peer','BrokerMSP.peer')"


def _tls_pair(tmp: Path) -> tuple[str, Path, Path, str, str]:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate for the peers (mutual TLS);
    returns (CA PEM, server cert file, server key file, client cert PEM, client key PEM)."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ccaas test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))

    def issue(common_name: str, serial: int):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
                .issuer_name(ca_name).public_key(key.public_key()).serial_number(serial)
                .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([
                    x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1")),
                    x509.DNSName("localhost")]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        return (cert.public_bytes(serialization.Encoding.PEM),
                key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))

    server_cert, server_key = issue("127.0.0.1", 2)
    client_cert, client_key = issue("peers of the test network", 3)
    cert_file, key_file = tmp / "server.crt", tmp / "server.key"
    cert_file.write_bytes(server_cert)
    key_file.touch(mode=0o600)
    key_file.write_bytes(server_key)
    return (ca.public_bytes(serialization.Encoding.PEM).decode(), cert_file, key_file, client_cert.decode(),
            client_key.decode())


def test_chaincode_as_a_service_is_dialled_by_the_peers(fabric_network, clients, tmp_path):
    deployer = Deployer(fabric_network, log=lambda *_: None)
    port = free_base_port()
    ca_pem, cert, key, client_cert, client_key = _tls_pair(tmp_path)
    (tmp_path / "client-ca.crt").write_text(ca_pem)
    pkg = build_ccaas_package("stubcheck-ccaas", "stubcheck-ccaas_1.0", f"127.0.0.1:{port}",
                              tmp_path / "ccaas.tar.gz", root_cert=ca_pem, client_cert=client_cert,
                              client_key=client_key)
    env = dict(os.environ, CHAINCODE_SERVER_ADDRESS=f"127.0.0.1:{port}",
               CHAINCODE_ID=package_id(pkg), CHAINCODE_CONTRACT="stubcheck:StubCheck",
               CHAINCODE_TLS_CERT_FILE=str(cert), CHAINCODE_TLS_KEY_FILE=str(key),
               CHAINCODE_CLIENT_CA_CERT_FILE=str(tmp_path / "client-ca.crt"),
               PYTHONPATH=os.pathsep.join([str(CHAINCODE_DIR.parent), str(STUBCHECK_DIR.parent)]))
    server = subprocess.Popen([sys.executable, "-m", "ipledger.chaincode.shim.server"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        spec = ChaincodeSpec(name="stubcheck-ccaas", version="1.0", contract="stubcheck:StubCheck",
                             signature_policy=POLICY)
        deployer.deploy(spec, pkg)
        contract = clients.contract("CustomsMSP", "stubcheck-ccaas")
        r = contract.submit("Put", [J("ccaas"), J("served")])
        assert json.loads(r.result) == r.tx_id
        assert json.loads(clients.contract("BrokerMSP", "stubcheck-ccaas").evaluate(
            "Get", [J("ccaas")])) == "served"
        # The peer launched nothing: the service process is the chaincode.
        assert json.loads(contract.evaluate("Pid", [])) == server.pid
    finally:
        server.terminate()
        out = server.communicate(timeout=30)[0].decode(errors="replace")
    assert server.returncode == 0, out
    assert "mutual TLS" in out  # the peers got in with their client certificate, and only such clients can
    assert "served" not in out  # no payloads in the service's logs


def test_upgrade_bumps_the_sequence_without_downtime(fabric_network, clients, stubcheck):
    deployer = Deployer(fabric_network, log=lambda *_: None)
    contract = clients.contract("OperatorMSP", "stubcheck")
    before = deployer.committed("stubcheck")
    errors, calls, stop = [], [0], threading.Event()

    def traffic():
        while not stop.is_set():
            try:
                contract.submit("Put", [J("during-upgrade"), J(str(calls[0]))])
                calls[0] += 1
            except Exception as e:  # noqa: BLE001 — every failure is reported below
                errors.append(repr(e))

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        spec = ChaincodeSpec(name="stubcheck", version="2.0", contract="stubcheck:StubCheck",
                             sources=[CHAINCODE_DIR, STUBCHECK_DIR], signature_policy=POLICY,
                             collections_config=STUBCHECK_DIR / "collections.json")
        after = deployer.deploy(spec, upgrade=True)
    finally:
        time.sleep(1)
        stop.set()
        worker.join(timeout=60)
    assert (after["sequence"], after["version"]) == (before["sequence"] + 1, "2.0")
    assert errors == [] and calls[0] > 5
    status = deployer.status("stubcheck")
    assert status["committed"]["version"] == "2.0"
    assert all(len(ids) == 2 for ids in status["installed"].values())  # 1.0 and 2.0
    again = deployer.deploy(spec)  # same version: nothing to do
    assert again["sequence"] == after["sequence"]


def test_deploy_refuses_a_new_version_without_upgrade(fabric_network, stubcheck):
    deployer = Deployer(fabric_network, log=lambda *_: None)
    spec = ChaincodeSpec(name="stubcheck2", version="9.9", contract="stubcheck:StubCheck",
                         sources=[CHAINCODE_DIR, STUBCHECK_DIR], signature_policy=POLICY)
    with pytest.raises(Exception, match="use 'ipledger chaincode upgrade'"):
        deployer.deploy(spec)
