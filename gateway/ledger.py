"""The app's view of Fabric: submit and evaluate as an org, and find a transaction's block.

:class:`FabricLedger` holds one :class:`ipledger.gateway.client.Gateway` connection per
org, opened lazily on first use in each worker process (never before
gunicorn forks: gRPC channels do not survive a fork) and shared by the
worker's threads (gRPC channels are thread-safe). Tests inject any object
with the same methods (see ``tests/unit/gateway/fakes.py``).
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Mapping, Protocol, Sequence

from ipledger.gateway.config import GatewayConfig

log = logging.getLogger(__name__)


class Ledger(Protocol):
    def orgs(self) -> list[str]: ...

    # ``channel``: one of the gateway's channels (None: its first, the only one of most gateways)
    def submit(self, org: str, function: str, args: Sequence[str],
               transient: Mapping[str, bytes] | None = None, *,
               channel: str | None = None):  # -> SubmitResult-like (tx_id, result, block_number)
        ...

    def evaluate(self, org: str, function: str, args: Sequence[str], *, timeout: float | None = None,
                 channel: str | None = None, transient: Mapping[str, bytes] | None = None) -> bytes: ...

    def block_number(self, org: str, tx_id: str, *, channel: str | None = None) -> int | None: ...

    def height(self, org: str, *, channel: str | None = None) -> int: ...

    def config_block(self, org: str, *, channel: str | None = None) -> bytes: ...

    def close(self) -> None: ...


class UnknownOrg(LookupError):
    """The gateway has no identity for this org (a key names an org the gateway does not serve)."""


def load_org_identity(config: GatewayConfig, conn) -> tuple:
    """The client identity and signer of ``conn``'s organisation: its key read here, or only by a child process
    of its own with ``config.key_in_child_process`` (a signer to close then)."""
    if config.key_in_child_process:
        from ipledger.network.fabric.signing_process import load_identity_apart
        return load_identity_apart(conn.msp_dir, conn.msp_id)
    from ipledger.gateway.client import load_identity
    return load_identity(conn.msp_dir, conn.msp_id)


def close_signer(signer) -> None:
    """End a signer :func:`load_org_identity` gave: a child process's ends with it; one in this process has
    nothing to end."""
    close = getattr(signer, "close", None)
    if close is not None:
        close()


class FabricLedger:
    def __init__(self, config: GatewayConfig):
        self.config = config
        self._lock = threading.Lock()
        self._gateways: dict = {}
        self._signers: list = []   # each organisation's (a child process's, with key_in_child_process)
        self._blocks: OrderedDict[tuple[str, str], int] = OrderedDict()  # (channel, tx id) -> block
        self._blocks_lock = threading.Lock()

    def orgs(self) -> list[str]:
        return sorted(self.config.orgs)

    def _gateway(self, org: str):
        gw = self._gateways.get(org)
        if gw is not None:
            return gw
        with self._lock:
            gw = self._gateways.get(org)
            if gw is None:
                from ipledger.gateway.client import Endpoint, Gateway, RetryPolicy, Timeouts
                conn = self.config.orgs.get(org)
                if conn is None:
                    raise UnknownOrg(org)
                identity, signer = load_org_identity(self.config, conn)
                self._signers.append(signer)
                endpoint = Endpoint(conn.peer_address, tls_root_cert=conn.tls_root_cert,
                                    server_name=conn.server_name)
                timeouts = Timeouts(evaluate=self.config.evaluate_timeout, endorse=30.0, submit=10.0,
                                    commit_status=self.config.submit_timeout)
                gw = Gateway.connect(endpoint, identity, signer, timeouts=timeouts,
                                     retry=RetryPolicy(retries=5, backoff=0.1, max_backoff=2.0))
                self._gateways[org] = gw
                log.info("connected to the peer of %s", org, extra={"org": org})
        return gw

    def _contract(self, org: str, chaincode: str | None = None, channel: str | None = None):
        return self._gateway(org).network(channel or self.config.channel).contract(chaincode or self.config.chaincode)

    def submit(self, org, function, args, transient=None, *, channel=None):
        return self._contract(org, channel=channel).submit(function, list(args), transient=transient,
                                                           timeout=self.config.submit_timeout)

    def evaluate(self, org, function, args, *, timeout=None, channel=None, transient=None):
        """``function`` run on ``org``'s own peer (:meth:`_read`)."""
        return self._read(self._contract(org, channel=channel), org, function, list(args), timeout, transient)

    def _read(self, contract, org: str, function: str, args: list, timeout: float | None = None,
              transient: Mapping[str, bytes] | None = None) -> bytes:
        """An evaluation on ``org``'s own peer, never another organisation's: an organisation reads its own copy of
        the ledger — and another's peer does not hold its private data (a query of a lot's customs value answered
        by the representative's peer fails). Its peer not ready (the contract not installed yet, a ledger being
        rebuilt) is an unavailable ledger (503), not another organisation's answer."""
        return contract.evaluate(function, args, transient, endorsing_orgs=[org],
                                 timeout=timeout or self.config.evaluate_timeout)

    def block_number(self, org: str, tx_id: str, *, channel: str | None = None) -> int | None:
        """The number of the block holding ``tx_id`` (qscc GetBlockByTxID; cached: blocks never change)."""
        channel = channel or self.config.channel
        with self._blocks_lock:
            if (channel, tx_id) in self._blocks:
                self._blocks.move_to_end((channel, tx_id))
                return self._blocks[(channel, tx_id)]
        from fabric_protos.common import common_pb2
        raw = self._read(self._contract(org, "qscc", channel), org, "GetBlockByTxID", [channel, tx_id])
        block = common_pb2.Block.FromString(raw)
        number = int(block.header.number)
        with self._blocks_lock:
            self._blocks[(channel, tx_id)] = number
            while len(self._blocks) > 100_000:
                self._blocks.popitem(last=False)
        return number

    def height(self, org: str, *, channel: str | None = None) -> int:
        """The channel's height on the org's peer (qscc GetChainInfo): one past its last committed block."""
        from fabric_protos.common import ledger_pb2
        channel = channel or self.config.channel
        raw = self._read(self._contract(org, "qscc", channel), org, "GetChainInfo", [channel])
        return int(ledger_pb2.BlockchainInfo.FromString(raw).height)

    def config_block(self, org: str, *, channel: str | None = None) -> bytes:
        """The channel's current config block (cscc GetConfigBlock; its ACL is the channel's Readers)."""
        channel = channel or self.config.channel
        return self._read(self._contract(org, "cscc", channel), org, "GetConfigBlock", [channel])

    def close(self) -> None:
        with self._lock:
            for gw in self._gateways.values():
                try:
                    gw.close()
                except Exception:  # noqa: BLE001 - closing is best effort
                    pass
            self._gateways.clear()
            for signer in self._signers:
                close_signer(signer)
            self._signers.clear()
