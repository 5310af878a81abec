"""Exactly once when processes die or requests cross, with the real contract in memory: a resend crossing its first
attempt is the replay of the recorded event. That answer was a 409 "not committed" about an event that IS on the
ledger; it is now the replay (200, the original transaction), and a 409 only when the event is not recorded."""
from __future__ import annotations

import dataclasses
import logging

import pytest

from ipledger.gateway.app import create_app

from tests.unit.dashboard.conftest import grant, place
from tests.unit.dashboard.contract_ledger import ContractLedger

from .conftest import bearer
from .fakes import mvcc_conflict
from .serving import state  # noqa: F401 - fixture

EVENTS = "/api/v1/events"


class ConflictingLedger(ContractLedger):
    """The contract in memory, whose next ``conflicts`` submits end MVCC_READ_CONFLICT (not committed)."""

    conflicts = 0

    def submit(self, org, function, args, transient=None):
        if self.conflicts:
            self.conflicts -= 1
            raise mvcc_conflict("ef" * 32)
        return super().submit(org, function, args, transient)


@pytest.fixture
def ledger():
    return ConflictingLedger()


@pytest.fixture
def client(ledger, keys, config):
    app = create_app(dataclasses.replace(config, customs_msp="CustomsMSP"), ledger=ledger)
    c = app.test_client()
    assert c.post(EVENTS, json=grant(), headers=bearer(keys[("CustomsMSP", "clerk")])).status_code == 201
    return c


def test_a_resend_whose_own_transaction_conflicted_is_the_replay_of_the_recorded_event(client, ledger, keys):
    broker = bearer(keys[("BrokerMSP", "clerk")])
    placement = place("L1", 1000, "26FR000110000001R8")     # commercial data: the replay is found with them
    first = client.post(EVENTS, json=placement, headers=broker)
    assert first.status_code == 201, first.json
    ledger.conflicts = 1
    again = client.post(EVENTS, json=placement, headers=broker)
    assert again.status_code == 200, again.json
    assert (again.json["status"], again.json["tx_id"], again.json["block_number"]) == (
        "REPLAYED", first.json["tx_id"], first.json["block_number"])
    assert "replay_tx_id" not in again.json                # this call's own transaction was not committed


def test_a_conflict_of_an_event_not_recorded_stays_a_conflict_to_send_again(client, ledger, keys, caplog):
    ledger.conflicts = 1
    with caplog.at_level(logging.INFO, logger="ipledger"):
        r = client.post(EVENTS, json=place("L2", 10, "26FR000110000002R7"),
                        headers=bearer(keys[("BrokerMSP", "clerk")]))
    assert r.status_code == 409 and r.json["type"].endswith("transaction-conflict"), r.json
    assert r.headers.get("Retry-After")
    # the look-up of the evaluation's own transaction finds no block: the usual case of a conflict, not a warning
    assert [rec.getMessage() for rec in caplog.records if rec.levelno >= logging.WARNING] == []
    assert any("is in no block" in rec.getMessage() for rec in caplog.records)


def test_a_conflict_of_an_event_id_used_for_other_content_stays_a_conflict(client, ledger, keys):
    broker = bearer(keys[("BrokerMSP", "clerk")])
    assert client.post(EVENTS, json=place("L3", 10, "26FR000110000003R6"), headers=broker).status_code == 201
    other = {**place("L3", 11, "26FR000110000003R6")}
    ledger.conflicts = 1
    r = client.post(EVENTS, json=other, headers=broker)
    assert r.status_code == 409 and r.json["type"].endswith("transaction-conflict"), r.json


# ------------------------------------------------------------------------ a query that runs past its time

def test_a_query_that_times_out_says_so_and_not_that_an_event_may_be_recorded(keys, config):
    """A query over a long history that outlives the gateway's query timeout was answered "the event may or may not
    be recorded: send it again with the same event_id" — about a read, which records nothing."""
    from .fakes import FakeLedger, timed_out
    from ipledger.gateway.client import EvaluateError
    ledger = FakeLedger()
    ledger.evaluate_failures.append(timed_out(EvaluateError))
    r = create_app(config, ledger=ledger).test_client().get(
        "/api/v1/authorisations/FRIPO000001/alerts", headers=bearer(keys[("OperatorMSP", "clerk")]))
    assert r.status_code == 504 and r.json["reason"] == "query-timeout", r.json
    assert "event" not in r.json["detail"] and "nothing was changed" in r.json["detail"]


def test_a_submit_that_times_out_still_says_it_may_be_recorded(keys, config):
    from .fakes import FakeLedger, timed_out
    from ipledger.gateway.client import CommitStatusError
    ledger = FakeLedger()
    ledger.submit_failures.append(timed_out(CommitStatusError))
    r = create_app(config, ledger=ledger).test_client().post(
        EVENTS, json=place("L5", 1, "26FR000110000005R4"), headers=bearer(keys[("BrokerMSP", "clerk")]))
    assert r.status_code == 504 and "may or may not be recorded" in r.json["detail"], r.json


def test_the_query_timeout_is_a_setting(monkeypatch, state):
    from ipledger.gateway.config import ConfigError, GatewayConfig
    state_dir = state
    assert GatewayConfig.from_state_dir(state_dir, org="OperatorMSP").evaluate_timeout == 10.0
    monkeypatch.setenv("IPLEDGER_QUERY_TIMEOUT_S", "25")
    assert GatewayConfig.from_state_dir(state_dir, org="OperatorMSP").evaluate_timeout == 25.0
    for bad in ("0", "soon"):
        monkeypatch.setenv("IPLEDGER_QUERY_TIMEOUT_S", bad)
        with pytest.raises(ConfigError, match="IPLEDGER_QUERY_TIMEOUT_S"):
            GatewayConfig.from_state_dir(state_dir, org="OperatorMSP")


def test_the_submit_timeout_is_a_setting(monkeypatch, state):
    from ipledger.gateway.config import ENVIRONMENT, ConfigError, GatewayConfig
    assert GatewayConfig.from_state_dir(state, org="OperatorMSP").submit_timeout == 60.0
    monkeypatch.setenv("IPLEDGER_SUBMIT_TIMEOUT_S", "20")
    assert GatewayConfig.from_state_dir(state, org="OperatorMSP").submit_timeout == 20.0
    assert "IPLEDGER_SUBMIT_TIMEOUT_S" in ENVIRONMENT   # passed to a gateway's container too
    for bad in ("0", "-3", "soon"):
        monkeypatch.setenv("IPLEDGER_SUBMIT_TIMEOUT_S", bad)
        with pytest.raises(ConfigError, match="IPLEDGER_SUBMIT_TIMEOUT_S"):
            GatewayConfig.from_state_dir(state, org="OperatorMSP")
