"""Where everything lives inside a state directory.

Each organisation has its own directory — its own host, as it were — and the
consortium's public files live apart from all of them::

    <state>/
      consortium/                 public files only (what the organisations exchange)
        consortium.yaml           the description the network was generated from (addresses)
        definitions/<MSP>.json    each organisation's public definition (network/org/definition.py)
        channel/msps/<MSP>/       public MSP directories rebuilt from the definitions
        channel/consenters/       consenters' public certificates, from the definitions
        channel/configtx.yaml     what configtxgen was given
        channel/genesis.block     the channel's first block
        channels/<name>/          with a channel per holder: each one's configtx.yaml,
                                  consenters/, genesis.block (the MSPs stay in channel/msps/)
        chaincode/, wheels/       chaincode packages (public code)
      <org name>/                 one organisation's own directory (0700): on its own host
        crypto/                   its CA, TLS CA and identities (network/org/identities.py)
        nodes/<node-id>/          per node: core.yaml | orderer.yaml, data/, node.log, node.pid
        gateway/                  its REST gateway: API keys, credentials.json, log, feed

On several machines each host's state directory holds ``consortium/`` (copies
of the public files) and the directories of the organisations it runs — one.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ipledger.network.consortium import Consortium, Node, Org

PUBLIC = "consortium"


@dataclass(frozen=True)
class Layout:
    root: Path
    # With a channel per holder, each channel's files live in ``channels/<name>/`` (a Layout
    # :meth:`for_channel`); a consortium with one shared channel keeps them in ``channel/``.
    channel: str | None = None

    def for_channel(self, channel: str | None) -> "Layout":
        return Layout(self.root, channel)

    # -- public files -----------------------------------------------------------------------------
    @property
    def public(self) -> Path:
        return self.root / PUBLIC

    @property
    def consortium_file(self) -> Path:
        return self.public / "consortium.yaml"

    @property
    def definitions_dir(self) -> Path:
        return self.public / "definitions"

    def definition_file(self, msp_id: str) -> Path:
        return self.definitions_dir / f"{msp_id}.json"

    @property
    def channel_dir(self) -> Path:
        return self.public / "channel" if self.channel is None else self.public / "channels" / self.channel

    @property
    def genesis_block(self) -> Path:
        return self.channel_dir / "genesis.block"

    def public_msp(self, msp_id: str) -> Path:
        return self.public / "channel" / "msps" / msp_id

    @property
    def chaincode_dir(self) -> Path:
        return self.public / "chaincode"

    @property
    def definitions_of_chaincode(self) -> Path:
        """Where the chaincode definitions committed on this layout's channel are recorded."""
        return self.chaincode_dir if self.channel is None else self.channel_dir

    @property
    def wheels_dir(self) -> Path:
        return self.public / "wheels"

    # -- an organisation's own directory ---------------------------------------------------------
    def org_home(self, org: Org) -> Path:
        return self.root / org.name

    def is_local(self, org: Org) -> bool:
        """Whether this state directory holds ``org``'s own identities (it runs on this host)."""
        return (self.org_dir(org) / "ca" / "priv_sk").exists()

    def gateway_dir(self, org: Org) -> Path:
        return self.org_home(org) / "gateway"

    def node_dir(self, node: Node) -> Path:
        return self.org_home(node.org) / "nodes" / node.id

    def data_dir(self, node: Node) -> Path:
        return self.node_dir(node) / "data"

    def log_file(self, node: Node) -> Path:
        return self.node_dir(node) / "node.log"

    def pid_file(self, node: Node) -> Path:
        return self.node_dir(node) / "node.pid"

    # -- identities (network/org/identities.py's tree) -------------------------------------------------
    def org_dir(self, org: Org) -> Path:
        return self.org_home(org) / "crypto"

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
        """The org's TLS CA certificate: its own copy on its host, else the public one."""
        name = f"tlsca.{org.domain}-cert.pem"
        own = self.org_dir(org) / "tlsca" / name
        return own if own.exists() else self.public_msp(org.msp_id) / "tlscacerts" / name

    def admin_tls_ca(self, org: Org) -> Path:
        """The org's orderer administration CA certificate (its orderers' admin endpoints trust it
        alone: it issues the admins' osnadmin client certificates only). Never public."""
        return self.org_dir(org) / "admintlsca" / f"admintlsca.{org.domain}-cert.pem"

    def user_dir(self, org: Org, user: str = "Admin") -> Path:
        return self.org_dir(org) / "users" / f"{user}@{org.domain}"

    def user_msp(self, org: Org, user: str = "Admin") -> Path:
        return self.user_dir(org, user) / "msp"

    def user_tls(self, org: Org, user: str = "Admin") -> Path:
        return self.user_dir(org, user) / "tls"


def per_channel(c: Consortium, lay: Layout) -> list[tuple[Consortium, Layout]]:
    """Each channel's view of the consortium with the layout of its files (one pair for a
    consortium with one shared channel, whose files stay in ``channel/``)."""
    if not c.per_holder:
        return [(c, lay)]
    return [(c.view(name), lay.for_channel(name)) for name in c.channel_names()]


def saved_consortium(layout: "Layout", consortium_file: Path | str | None = None, base_port: int | None = None):
    """The consortium of a state directory: the one saved there (``network up`` saves it), else ``consortium_file``
    (default: the shipped one, on ``base_port``). ConsortiumError when the saved file is missing but organisations
    made from it are here, and none was given: the shipped file is not the one their ports and hosts came from.
    The one reader of it, for the network commands and the gateway."""
    from ipledger.network import consortium as consortium_mod
    if layout.consortium_file.exists():
        return consortium_mod.load(layout.consortium_file)
    c = consortium_mod.load(consortium_file, base_port=base_port)
    if consortium_file is None and any(layout.is_local(o) for o in c.all_orgs):
        raise consortium_mod.ConsortiumError(
            f"{layout.consortium_file} is missing, but {layout.root} holds organisations made from it: restore it, "
            "or give --consortium with the file they were made from")
    return c

