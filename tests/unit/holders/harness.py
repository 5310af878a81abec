"""Several holders' channels in one process: one ContractLedger (the real contract, in memory) per channel behind the
gateway's Ledger interface, whose calls name the channel."""
from __future__ import annotations

from tests.unit.dashboard.contract_ledger import ContractLedger, ListSource, body, wait_for  # noqa: F401

A, B = "ip-plant-a", "ip-plant-b"


class ChannelContractLedgers:
    def __init__(self, channels=(A, B), orgs=("CustomsMSP", "OperatorMSP", "BrokerMSP", "PlantBMSP")):
        self.by_channel = {}
        for i, channel in enumerate(channels):
            ledger = ContractLedger()
            ledger.scenario.ledger._tx_counter = i * 1_000_000   # transaction ids differ across channels, as on Fabric
            ledger.height = 5 + i * 1000                          # and each channel has its own chain of blocks
            self.by_channel[channel] = ledger
        self._orgs = list(orgs)

    def orgs(self):
        return list(self._orgs)

    def _of(self, channel):
        assert channel is not None, "a gateway of several channels must name the channel"
        return self.by_channel[channel]

    def submit(self, org, function, args, transient=None, *, channel=None):
        return self._of(channel).submit(org, function, args, transient)

    def evaluate(self, org, function, args, *, timeout=None, channel=None, transient=None):
        return self._of(channel).evaluate(org, function, args, timeout=timeout, transient=transient)

    def height(self, org, *, channel=None):
        return self._of(channel).height

    def block_number(self, org, tx_id, *, channel=None):
        return self._of(channel).block_number(org, tx_id)

    def config_block(self, org, *, channel=None):
        return self._of(channel).config_block(org)

    def close(self):
        pass
