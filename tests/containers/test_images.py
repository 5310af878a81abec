"""The images of network/org/containers, built and run on a real engine (IPLEDGER_CONTAINER_TESTS=1)."""
from __future__ import annotations

import asyncio
import ipaddress
import time

import pytest

from ipledger.network.org import binaries
from ipledger.network.org.containers import images

BENCHMARK_RANGE = ipaddress.ip_network("198.18.0.0/15")


@pytest.fixture(scope="module")
def engine():
    return images.client()


@pytest.fixture(scope="module")
def built(engine):
    results = images.build_all(c=engine)
    return {r.name: r for r in results}


def run(engine, tag: str, cmd, **kw) -> str:
    """Run ``cmd`` to its end; the container and its anonymous volumes (VOLUME) are removed."""
    container = engine.containers.run(tag, cmd, detach=True, **kw)
    try:
        status = container.wait(timeout=120)
        out = container.logs(stdout=True, stderr=True).decode()
        assert status.get("StatusCode") == 0, out
        return out
    finally:
        container.remove(v=True, force=True)


def test_a_second_build_builds_nothing(engine, built):
    again = images.build_all(c=engine)
    assert [r.name for r in again] == ["base", "peer", "orderer", "ccaas", "gateway"]
    assert all(r.cached for r in again), [(r.name, r.tag) for r in again if not r.cached]
    assert {r.name: r.tag for r in again} == {n: r.tag for n, r in built.items()}


def test_every_image_carries_its_input_hash(engine, built):
    for name, r in built.items():
        labels = engine.images.get(r.tag).labels
        assert labels[f"{images.LABEL}.image"] == name
        assert r.tag.split(":")[1].endswith(labels[f"{images.LABEL}.inputs"][:12])


def test_base_is_debian_bookworm_with_python_311(engine, built):
    out = run(engine, built["base"].tag,
              ["python3", "-c", "import sys, venv, ssl; print(sys.version_info[:2]); "
                                "print(open('/etc/debian_version').read().strip())"])
    assert "(3, 11)" in out and out.split()[-1].startswith("12.")


def test_peer_and_orderer_are_the_pinned_fabric(engine, built):
    for name, cmd in (("peer", ["peer", "version"]), ("orderer", ["orderer", "version"])):
        out = run(engine, built[name].tag, cmd)
        assert f"Version: {binaries.VERSION}" in out and f"Commit SHA: {binaries.SHORT}" in out, out
    assert "osnadmin" in run(engine, built["orderer"].tag, ["osnadmin", "--help"])


def test_the_peer_image_detects_a_ccaas_package_with_the_builder(engine, built):
    script = ("mkdir -p /tmp/src /tmp/meta && echo '{\"type\": \"ipledger-ccaas\", \"label\": \"x\"}' "
              "> /tmp/meta/metadata.json && /opt/ipledger/chaincode/builder/bin/detect /tmp/src /tmp/meta "
              "&& echo detected")
    assert "detected" in run(engine, built["peer"].tag, ["sh", "-c", script])
    out = run(engine, built["peer"].tag, ["sh", "-c", "$IPLEDGER_PYTHON -m pip --version; ls /etc/hyperledger/fabric"])
    assert "pip" in out and "core.yaml" in out


def test_the_bridge_uses_the_benchmarking_range_only(engine, built):
    for net in engine.networks.list():
        for cfg in net.attrs.get("IPAM", {}).get("Config") or []:
            if cfg.get("Subnet"):
                assert ipaddress.ip_network(cfg["Subnet"]).subnet_of(BENCHMARK_RANGE), (net.name, cfg)


def test_the_chaincode_service_registers_with_a_peer_that_dials_it(engine, built):
    """The CCaaS container serves Chaincode.Connect: a fake peer (tests/unit/shim) dials it on its
    bridge address and gets REGISTER with the chaincode id, then runs a transaction on it."""
    from tests.unit.shim.shim_fakepeer import CCM, FakePeer

    ccid = "ipledger_1.0:" + "0" * 64
    # without its TLS pair it does not listen at all (the fake peer below speaks plaintext: said on purpose)
    refused = engine.containers.run(built["ccaas"].tag, environment={"CHAINCODE_ID": ccid}, detach=True)
    try:
        assert refused.wait(timeout=60)["StatusCode"] == 2
        assert b"CHAINCODE_TLS_CERT_FILE and CHAINCODE_TLS_KEY_FILE must be set" in refused.logs()
    finally:
        refused.remove(force=True)
    container = engine.containers.run(
        built["ccaas"].tag, detach=True,
        environment={"CHAINCODE_ID": ccid, "IPLEDGER_CUSTOMS_MSP": "CustomsMSP", "CHAINCODE_TLS_DISABLED": "true"})
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            container.reload()
            if "listening on" in container.logs().decode():
                break
            assert container.status in ("created", "running"), container.logs().decode()
            time.sleep(0.2)
        else:
            pytest.fail(f"the chaincode service did not start:\n{container.logs().decode()}")
        ip = container.attrs["NetworkSettings"]["IPAddress"]
        assert ipaddress.ip_address(ip) in BENCHMARK_RANGE

        async def dial():
            peer = FakePeer()
            task = await peer.connect_to(f"{ip}:9999")
            await asyncio.wait_for(peer.ready.wait(), 10)
            msg = await peer.transaction("NoSuchFunction", timeout=10)
            await peer.disconnect()
            await asyncio.wait_for(task, 5)
            return peer.registered_name, msg

        name, msg = asyncio.run(dial())
        assert name == ccid
        assert msg.type in (CCM.COMPLETED, CCM.ERROR)
    finally:
        container.remove(v=True, force=True)


def test_the_gateway_image_runs_the_ipledger_cli(engine, built):
    out = run(engine, built["gateway"].tag, ["gateway", "serve", "--help"])
    assert "--bind" in out
    out = run(engine, built["gateway"].tag, ["--help"])
    assert "gateway" in out
    pkgs = run(engine, built["gateway"].tag, ["-c", "import ipledger.gateway.app, flask, gunicorn, grpc; print('ok')"],
               entrypoint="python")
    assert pkgs.strip() == "ok"
    # the PDF reports find their Unicode font in the image
    fonts = run(engine, built["gateway"].tag, ["-c", "from ipledger.gateway import reports; print(sorted(reports.unicode_font_files()))"],
                entrypoint="python")
    assert fonts.strip() == "['', 'B']", fonts
