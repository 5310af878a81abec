"""The chaincode's admission of each organisation's transactions is a setting (admission.py): the chaincode
process reads ``CHAINCODE_ADMISSION_PER_ORG`` and ``CHAINCODE_ADMISSION_WAIT_S`` (a peer's own chaincode gets them
from the peer's ``IPLEDGER_CHAINCODE_*`` through the external builder, as the log level), refuses a value it would
have to guess at start, by name, and each stream runs with them."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from ipledger.chaincode.shim import admission, client, server
from ipledger.chaincode.shim.admission import PER_ORG_RUNNING, WAIT_MAX_S, settings
from tests.unit.shim.shim_fakepeer import FakePeer
from tests.unit.shim.shim_helpers import run, shim_client

BUILDER = Path(__file__).resolve().parents[3] / "chaincode" / "builder"


def test_unset_settings_are_the_defaults():
    assert settings({}) == (PER_ORG_RUNNING, WAIT_MAX_S)
    assert settings({"CHAINCODE_ADMISSION_PER_ORG": " ", "CHAINCODE_ADMISSION_WAIT_S": ""}) == (16, 5.0)


def test_settings_are_read():
    assert settings({"CHAINCODE_ADMISSION_PER_ORG": "4", "CHAINCODE_ADMISSION_WAIT_S": "2.5"}) == (4, 2.5)
    assert settings({"CHAINCODE_ADMISSION_WAIT_S": "30"}) == (16, 30.0)


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "four", "٣", "1e3"])
def test_a_per_organisation_count_that_is_not_a_whole_number_of_at_least_one_is_refused(value):
    with pytest.raises(ValueError, match="CHAINCODE_ADMISSION_PER_ORG"):
        settings({"CHAINCODE_ADMISSION_PER_ORG": value})


@pytest.mark.parametrize("value", ["0", "-2", "nan", "inf", "31", "soon"])
def test_a_wait_not_above_zero_and_within_the_peers_deadline_is_refused(value):
    with pytest.raises(ValueError, match="CHAINCODE_ADMISSION_WAIT_S"):
        settings({"CHAINCODE_ADMISSION_WAIT_S": value})
    assert not math.isnan(WAIT_MAX_S)


def test_each_stream_runs_with_the_settings(monkeypatch):
    monkeypatch.setenv("CHAINCODE_ADMISSION_PER_ORG", "3")
    monkeypatch.setenv("CHAINCODE_ADMISSION_WAIT_S", "1.5")

    class Empty:
        pass

    async def body():
        async with shim_client(Empty(), FakePeer()) as (_peer, chaincode, _task):
            used = chaincode.session._admission
            assert (used.per_org, used.wait_max_s) == (3, 1.5)
    run(body())


@pytest.mark.parametrize("entry", [client.main, server.main])
def test_the_chaincode_does_not_start_on_a_bad_setting(entry, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("CHAINCODE_ADMISSION_PER_ORG", "0")
    for name, value in (("CHAINCODE_SERVER_ADDRESS", "127.0.0.1:0"), ("CHAINCODE_ID", "cc:1"),
                        ("CHAINCODE_TLS_DISABLED", "true")):
        monkeypatch.setenv(name, value)
    args = (["tests.unit.shim.test_admission_settings:Nothing", str(tmp_path / "chaincode.json")]
            if entry is client.main else ["--contract", "tests.unit.shim.test_admission_settings:Nothing"])
    with pytest.raises(SystemExit) as stopped:
        entry(args)
    assert stopped.value.code == 2
    assert "CHAINCODE_ADMISSION_PER_ORG='0': a whole number of transactions, at least 1" in capsys.readouterr().err


class Nothing:
    """A contract never loaded: the setting is refused first."""


def test_the_external_builder_hands_the_peers_chaincode_settings_on(monkeypatch):
    monkeypatch.syspath_prepend(str(BUILDER))
    sys.modules.pop("ccbuilder", None)
    import ccbuilder
    peer_env = {"PATH": "/usr/bin", "IPLEDGER_CHAINCODE_LOG_LEVEL": "DEBUG",
                "IPLEDGER_CHAINCODE_ADMISSION_PER_ORG": "8", "IPLEDGER_CHAINCODE_ADMISSION_WAIT_S": "2",
                "IPLEDGER_CUSTOMS_MSP": "AttackerMSP"}
    env = ccbuilder.chaincode_environment(peer_env, {"customs_msp": "CustomsMSP"})
    assert (env["CHAINCODE_LOG_LEVEL"], env["CHAINCODE_ADMISSION_PER_ORG"], env["CHAINCODE_ADMISSION_WAIT_S"]) == \
        ("DEBUG", "8", "2")
    assert env["IPLEDGER_CUSTOMS_MSP"] == "CustomsMSP" and env["MALLOC_ARENA_MAX"] == "2"
    assert "CHAINCODE_LOG_LEVEL" not in ccbuilder.chaincode_environment({"PATH": "/usr/bin"}, {})
    assert admission.PER_ORG_ENV == "CHAINCODE_" + "ADMISSION_PER_ORG"   # the names the builder writes


def test_every_peer_propagates_the_chaincodes_settings_to_its_builder(monkeypatch, tmp_path):
    """Natively the peer inherits them from the environment it is started in (processes.node_environment); in a
    container, each peer and chaincode service is given those set where the network is brought up."""
    from ipledger.network import consortium
    from ipledger.network.layout import Layout
    from ipledger.network.org import generate
    monkeypatch.syspath_prepend(str(BUILDER))
    sys.modules.pop("ccbuilder", None)
    import ccbuilder
    from ipledger.network.org import processes
    assert processes.CHAINCODE_SETTINGS == ccbuilder.CHAINCODE_SETTINGS   # the builder's own copy, on the peer's host
    assert processes.chaincode_settings({"IPLEDGER_CHAINCODE_ADMISSION_WAIT_S": "3", "OTHER": "x"}) == \
        ccbuilder.chaincode_settings({"IPLEDGER_CHAINCODE_ADMISSION_WAIT_S": "3", "OTHER": "x"})
    c, lay = consortium.load(base_port=21000), Layout(tmp_path / "state")
    for node in c.peers:
        [builder] = generate.peer_config(c, lay, node)["chaincode"]["externalBuilders"]
        assert {f"IPLEDGER_CHAINCODE_{s}" for s in ccbuilder.CHAINCODE_SETTINGS} <= set(builder["propagateEnvironment"])


def test_containers_get_the_settings_given_where_the_network_comes_up(monkeypatch, tmp_path):
    from ipledger.network import consortium
    from ipledger.network.layout import Layout
    from ipledger.network.org.containers import services
    monkeypatch.setenv("IPLEDGER_CHAINCODE_ADMISSION_PER_ORG", "6")
    monkeypatch.delenv("IPLEDGER_CHAINCODE_ADMISSION_WAIT_S", raising=False)
    c, lay = consortium.load(base_port=21000), Layout(tmp_path / "state")
    peer = c.peers[0]
    assert services.node_service(lay, peer, "img").environment["IPLEDGER_CHAINCODE_ADMISSION_PER_ORG"] == "6"
    assert "IPLEDGER_CHAINCODE_ADMISSION_PER_ORG" not in services.node_service(lay, c.orderers[0], "img").environment
    served = services.chaincode_service(lay, peer.org, "ipledger_1", "ipledger_1:abc", "127.0.0.1:9999",
                                        "CustomsMSP", tmp_path / "tls", "img").environment
    assert served["CHAINCODE_ADMISSION_PER_ORG"] == "6" and "CHAINCODE_ADMISSION_WAIT_S" not in served
