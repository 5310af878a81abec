"""Fixtures of the channel-administration tests: the consortium's organisations (each with its own CA,
made by :mod:`tests.unit.network.channel_config`) and the channel config they found."""
import pytest

from tests.unit.network.channel_config import FakeOrg, make_config


@pytest.fixture(scope="module")
def orgs():
    return {m: FakeOrg(m) for m in ("CustomsMSP", "OperatorMSP", "BrokerMSP", "AuditMSP",
                                    "OrdererMSP")}


@pytest.fixture
def base(orgs):
    return make_config([orgs["CustomsMSP"], orgs["OperatorMSP"], orgs["BrokerMSP"]],
                       orgs["OrdererMSP"])
