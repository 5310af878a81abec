"""Every Fabric listener speaks TLS only; keys on disk are private."""
import stat
from concurrent.futures import ThreadPoolExecutor
import urllib.error
import urllib.request

import grpc
import pytest

pytestmark = pytest.mark.fabric


def grpc_plaintext_connects(address: str) -> bool:
    channel = grpc.insecure_channel(address)
    try:
        grpc.channel_ready_future(channel).result(timeout=2)
        return True
    except grpc.FutureTimeoutError:
        return False
    finally:
        channel.close()


def http_plaintext_answers_ok(host: str, port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=2) as r:
            return r.status == 200
    except urllib.error.HTTPError as e:
        return e.code == 200
    except OSError:
        return False


def test_every_grpc_port_refuses_plaintext(fabric_network):
    net = fabric_network
    addresses = [n.address for n in net.consortium.nodes]
    addresses += [f"{p.host}:{p.chaincode_port}" for p in net.consortium.peers]
    with ThreadPoolExecutor(len(addresses)) as pool:
        accepted = [a for a, ok in zip(addresses, pool.map(grpc_plaintext_connects, addresses))
                    if ok]
    assert accepted == [], f"accepted a plaintext gRPC client: {accepted}"


def test_every_http_port_refuses_plaintext(fabric_network):
    net = fabric_network
    ports = [(n.host, n.operations_port) for n in net.consortium.nodes]
    ports += [(o.host, o.admin_port) for o in net.consortium.orderers]
    for host, port in ports:
        assert not http_plaintext_answers_ok(host, port), f"{host}:{port} answered plain HTTP"
    # ...while the same operations endpoint answers over TLS.
    assert all(net.healthy(n) for n in net.consortium.nodes)


def test_private_keys_and_state_dir_are_private(fabric_network):
    root = fabric_network.layout.root
    keys = [p for p in root.rglob("*") if p.is_file() and
            (p.parent.name == "keystore" or p.suffix == ".key")]
    assert len(keys) > 10
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert stat.S_IMODE(root.stat().st_mode) == 0o700


def test_node_logs_hold_no_private_key(fabric_network):
    for n in fabric_network.consortium.nodes:
        text = fabric_network.layout.log_file(n).read_text(errors="replace")
        assert "PRIVATE KEY" not in text
