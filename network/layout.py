"""Where everything lives inside a state directory.

    <state>/
      consortium.yaml          the description the state was generated from
      crypto/                  cryptogen output (MSP trees, TLS material)
      channel/configtx.yaml    channel definition fed to configtxgen
      channel/genesis.block    the channel's first block
      nodes/<node-id>/         per node: core.yaml | orderer.yaml, data/, node.log, node.pid
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .consortium import Node, Org


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def consortium_file(self) -> Path:
        return self.root / "consortium.yaml"

    @property
    def crypto(self) -> Path:
        return self.root / "crypto"

    @property
    def channel_dir(self) -> Path:
        return self.root / "channel"

    @property
    def genesis_block(self) -> Path:
        return self.channel_dir / "genesis.block"

    def node_dir(self, node: Node) -> Path:
        return self.root / "nodes" / node.id

    def data_dir(self, node: Node) -> Path:
        return self.node_dir(node) / "data"

    def log_file(self, node: Node) -> Path:
        return self.node_dir(node) / "node.log"

    def pid_file(self, node: Node) -> Path:
        return self.node_dir(node) / "node.pid"

    # -- crypto material (cryptogen's tree) -------------------------------------
    def org_dir(self, org: Org) -> Path:
        kind = "ordererOrganizations" if org.is_orderer else "peerOrganizations"
        return self.crypto / kind / org.domain

    def org_msp(self, org: Org) -> Path:
        return self.org_dir(org) / "msp"

    def node_crypto(self, node: Node) -> Path:
        sub = "orderers" if node.kind == "orderer" else "peers"
        return self.org_dir(node.org) / sub / node.fqdn

    def node_msp(self, node: Node) -> Path:
        return self.node_crypto(node) / "msp"

    def node_tls(self, node: Node) -> Path:
        return self.node_crypto(node) / "tls"

    def tls_ca(self, org: Org) -> Path:
        return self.org_dir(org) / "tlsca" / f"tlsca.{org.domain}-cert.pem"

    def user_dir(self, org: Org, user: str = "Admin") -> Path:
        return self.org_dir(org) / "users" / f"{user}@{org.domain}"

    def user_msp(self, org: Org, user: str = "Admin") -> Path:
        return self.user_dir(org, user) / "msp"

    def user_tls(self, org: Org, user: str = "Admin") -> Path:
        return self.user_dir(org, user) / "tls"
