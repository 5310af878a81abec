"""Bring the consortium's network up, report on it, take it down.

``up`` is idempotent: it generates what is missing, starts nodes that are not
running (so it also restarts one that died), joins the orderers and peers that
are not on the channel yet, and waits until every node is healthy.

It acts only for the organisations whose own directory is in the state
directory (network/layout.py): on one machine all of them, each as on its own
host; on separate machines the one (or few) that run there. Before any of them
first joins, each checks that the genesis block holds its definition as it wrote it;
not again once joined (its definition then changes by config update, the genesis
block stays as it was).

One file for one concept, the nodes of this host on their channels: start (through the runtime,
network/org/runtime.py), join, wait, probe (health, height, gossip) and the Fabric CLIs that do it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from fabric_protos.common import configtx_pb2

from ipledger.network import consortium as consortium_mod
from ipledger.network import files
from ipledger.network.channel import founding as founding_mod
from ipledger.network.org import binaries
from ipledger.network.org import generate
from ipledger.network.org import processes
from ipledger.network.org import own_process
from ipledger.network.org import runtime as runtime_mod
from ipledger.network.consortium import Consortium, Node, Org
from ipledger.network.errors import AdminError, NetworkError, printable
from ipledger.network.fabric.config import application_orgs, config_from_block, orderer_orgs
from ipledger.network.layout import Layout, per_channel, saved_consortium

# What a peer without a ledger of a channel its organisation joined before goes through once joined (a disk lost
# or replaced, or a peer new to the organisation): docs/deployment.md, section 3; tests/integration/test_faults.py.
REJOIN_NOTE = (
    "  {peer} had no ledger of channel '{channel}', which {org} joined before (a disk lost or replaced, or a peer "
    "new to {org}): it takes every block from the ordering service, and the private data of its collections from "
    "the other members' peers. A block carrying private data that no running peer can give it ({org}'s chaincode "
    "approvals, when this is its only peer) waits up to a minute for it (peer.gossip.pvtData.pullRetryThreshold) "
    "and is committed without it. Then install the contract on it: ipledger chaincode deploy")

# A native node found stopped with its pid file still there: no 'network down' stopped it.
UNCLEAN_STOP = ("{node} had stopped without 'network down' (a crash, a kill, a power loss): what it logged before "
                "is in 'ipledger network logs {node}'")

# An orderer without a ledger of a channel its organisation joined before, while the channel has gone on: joined
# again from the genesis block it would start another chain beside the one the peers hold (one orderer), or crash
# as soon as its Raft leader finds its log gone (several).
LOST_ORDERER = (
    "{orderer} holds no ledger of channel '{channel}', which {org} joined before, and the channel has gone on "
    "(height {height}): joined again from the genesis block it would order another chain than the one the peers "
    "hold (a single orderer), or crash as soon as its Raft leader finds its log gone (several). Put back its "
    "newest ledger (nodes/{orderer}/, docs/operations.md §1); a consenter whose ledger is lost for good is "
    "removed from the consenter set and added again by a config update, then joined by hand with the channel's "
    "latest config block (osnadmin channel join): not automated")
# The orderers' ledgers behind the peers': an orderer restored from an older copy.
BEHIND_ORDERERS = (
    "the orderers of channel '{channel}' hold its blocks up to height {ours}, its peers up to {theirs}: an orderer "
    "restored from an older copy would order new blocks under numbers the peers already hold, which they refuse — "
    "nothing could be recorded again. Stopped {stopped}: put back its newest ledger (docs/operations.md §1)")


@dataclass
class Nodes:
    """This host's nodes: the consortium bound to the state directory that holds its files
    (the organisations whose own directory is there). Not to be confused with the gateway client's
    :class:`ipledger.gateway.client.Network` (a channel seen through a peer's Gateway service)."""

    consortium: Consortium
    layout: Layout
    # native processes or containers (network/org/runtime.py): None until asked, then the state
    # directory's recorded runtime, else native
    runtime_name: str | None = None

    @classmethod
    def open(cls, state_dir: Path, consortium_file: Path | None = None,
             base_port: int | None = None, runtime: str | None = None) -> "Nodes":
        """Use the state directory's saved description if it has one. ``runtime`` (native or
        docker; default IPLEDGER_RUNTIME, then the one recorded) is checked against the record."""
        lay = Layout(Path(state_dir).resolve())
        if (lay.root / "crypto").is_dir() and (lay.root / "consortium.yaml").is_file():
            raise NetworkError(
                f"{lay.root} holds a network of the former one-directory layout (every "
                "organisation's keys in one crypto/ tree); its identities cannot become the "
                "organisations' own. Stop it and start again: 'ipledger network down --purge' "
                "(this deletes its ledgers), then 'ipledger network up'")
        try:
            c = saved_consortium(lay, consortium_file, base_port)
        except consortium_mod.ConsortiumError as e:
            if lay.consortium_file.exists() or consortium_file is not None:
                raise   # the file is invalid: said as the CLI says a consortium file's errors
            raise NetworkError(str(e)) from None
        try:
            name = runtime_mod.choose(lay, runtime)
        except runtime_mod.RuntimeChoiceError as e:
            raise NetworkError(str(e)) from None
        return cls(c, lay, name)

    @property
    def runtime(self) -> runtime_mod.Runtime:
        """How this host runs its nodes (one object per Nodes and runtime)."""
        name = self.runtime_name or runtime_mod.choose(self.layout, None)
        cached = self.__dict__.get("_runtime")
        if cached is None or cached.name != name:
            cached = self.__dict__["_runtime"] = runtime_mod.open_runtime(self.layout, name)
        return cached

    @property
    def generated(self) -> bool:
        channels = self.local_channels() or self.channels()  # nothing of ours yet: every one is to do
        return not generate.interrupted(self.layout) and all(ch.layout.genesis_block.exists() for ch in channels)

    def local_channels(self) -> list["Nodes"]:
        """The channels one of this host's organisations is on (a holder's host has its own channel's
        genesis block only: another holder's is none of its business)."""
        return [ch for ch in self.channels() if ch.local_orgs]

    def channels(self) -> list["Nodes"]:
        """One Nodes per channel: the channel's view of the consortium and its files (just
        this one for a consortium with one shared channel)."""
        return [Nodes(view, lay, self.runtime_name) for view, lay in per_channel(self.consortium, self.layout)]

    def on_channel(self, channel: str | None) -> "Nodes":
        """The Nodes of ``channel`` (None: the only one; with a channel per holder, name it)."""
        chans = self.channels()
        if channel is None:
            if len(chans) > 1:
                raise NetworkError(f"name the channel (--channel): one of "
                                   f"{', '.join(self.consortium.channel_names())}")
            return chans[0]
        for ch in chans:
            if ch.consortium.channel == channel:
                return ch
        raise NetworkError(f"unknown channel {channel!r}; channels are: "
                           f"{', '.join(self.consortium.channel_names())}")

    @property
    def local_orgs(self) -> list:
        """The organisations (orderer org included) whose own directory is here."""
        return [o for o in self.consortium.all_orgs if self.layout.is_local(o)]

    @property
    def local_nodes(self) -> list[Node]:
        local = {o.msp_id for o in self.local_orgs}
        return [n for n in self.consortium.nodes if n.org.msp_id in local]

    @property
    def local_peers(self) -> list[Node]:
        return [n for n in self.local_nodes if n.kind == "peer"]

    def local_org(self, msp_id: str | None = None):
        """An application organisation of this host (``msp_id``'s, checked, or the first)."""
        if msp_id:
            org = self.consortium.org(msp_id)
            if not self.layout.is_local(org):
                raise NetworkError(f"{msp_id}'s own directory is not in {self.layout.root}: its "
                                   "keys are on its own host; run this there")
            return org
        for org in self.consortium.orgs:
            if self.layout.is_local(org):
                return org
        raise NetworkError(f"no application organisation has its directory in {self.layout.root}")

    def check_genesis(self, log=print) -> set[str]:
        """Before it first joins, every local founding organisation checks the genesis block: its own
        definition as it wrote it, the channel's policies, the whole configuration as the consortium
        file and the public definitions give it, and that nobody the consortium file does not name is
        on the channel (on a holder's channel, this last at every start). An organisation absent from
        the block is one admitted later, by a config update: 'up' leaves its nodes out until the channel
        has admitted it. Once an organisation has joined (it recorded the digest of the block it
        accepted, or its nodes hold the channel's ledger), the block is not checked again: the channel's
        configuration changes by signed config updates — the organisation's own definition too (a
        revocation list, its anchor peers, a renewed CA) —, while the genesis block stays as it was.
        A genesis block other than the one it accepted is checked as at a first join, whatever ledgers its
        nodes hold. Returns the MSP ids of the local founding organisations that join for
        the first time."""
        block = self.layout.genesis_block.read_bytes()
        config, _ = config_from_block(block)
        in_block = set(application_orgs(config)) | set(orderer_orgs(config))
        digest = hashlib.sha256(block).hexdigest()
        founding_orgs = [org for org in self.local_orgs if org.msp_id in in_block]
        first = {org.msp_id for org in founding_orgs if not self.joined_before(org, digest)}
        if self.consortium.per_holder or first:
            members = {o.msp_id for o in self.consortium.orgs}
            strangers = sorted(set(application_orgs(config)) - members)
            if strangers:
                raise NetworkError(f"the genesis block {self.layout.genesis_block} puts {', '.join(strangers)} "
                                   f"on channel '{self.consortium.channel}', whose members are "
                                   f"{', '.join(sorted(members))}: refused")
        for org in (o for o in founding_orgs if o.msp_id in first):
            try:
                generate.check_block(self.layout, org, block, channel=self.consortium)
            except generate.GenerateError as e:
                raise NetworkError(str(e)) from None
        if first:
            # the whole configuration, as the consortium file and the public definitions give it: who may
            # modify each element, the ordering organisations and consenters, the other members' MSPs
            problems = founding_mod.check_rebuilt(block, self.consortium, self.layout)
            if problems:
                raise NetworkError(f"{', '.join(sorted(first))} refuse the genesis block {self.layout.genesis_block}:\n  "
                                   + "\n  ".join(map(printable, problems)))
        for org in founding_orgs:
            if org.msp_id in first:
                accepted = self.accepted_file(org)
                accepted.parent.mkdir(mode=0o700, exist_ok=True)
                files.write_atomically(accepted, (digest + "\n").encode())
        return first

    def accepted_file(self, org: Org) -> Path:
        """Where ``org`` records the digest of this channel's genesis block once it has checked it."""
        return self.layout.org_home(org) / "accepted-genesis" / f"{self.consortium.channel}.sha256"

    def joined_before(self, org: Org, digest: str) -> bool:
        """Whether ``org`` accepted the genesis block of ``digest`` (sha256) before — or, when it recorded no
        digest (joined with an earlier ipledger), a native node of it on this host already holds this channel's
        ledger. A recorded digest of another block decides alone: that block is not the one it accepted, and is
        checked as at a first join whatever ledgers its nodes hold (a node without one would join from it)."""
        accepted = self.accepted_file(org)
        if accepted.exists():
            return accepted.read_text().strip() == digest
        ch = self.consortium.channel
        for n in self.local_nodes:
            if n.org.msp_id == org.msp_id:
                data = self.layout.data_dir(n)
                ledger = data / "ledger" / "chains" if n.kind == "orderer" else data / "ledgersData" / "chains" / "chains"
                if (ledger / ch).exists():
                    return True
        return False

    # ------------------------------------------------------------------ commands

    def generate(self, log=print) -> None:
        log(f"Generating the network into {self.layout.root}")
        generate.generate(self.consortium, self.layout, log=log)

    def up(self, log=print, timeout: float = 60.0) -> list[str]:
        """Bring this host's nodes up (see the module's docstring); the ids of the nodes that should now be running —
        not the peers of an organisation the channel has not admitted yet, which are left out."""
        started = time.monotonic()
        for cmd in ("peer", "orderer", "osnadmin"):
            binaries.binary(cmd)
        if self.runtime.name == runtime_mod.DOCKER:
            from ipledger.network.org.containers.services import check_host_ports
            check_host_ports(self.consortium, self.local_nodes)
            log("Running the nodes as containers (--runtime docker): images first")
            self.runtime.tags(log)
        if not self.generated:
            if self.local_orgs and len(self.local_orgs) < len(self.consortium.all_orgs) and \
                    not generate.interrupted(self.layout):
                raise NetworkError(
                    f"no genesis block in {self.layout.genesis_block}: on separate hosts the "
                    "founder builds it from every organisation's definition ('ipledger channel "
                    "found') and sends it to each; copy it there, then run 'network up' again")
            self.generate(log=log)
        if self.runtime.name == runtime_mod.DOCKER:
            from ipledger.network.org.containers.services import ensure_scope
            # before the record: a recorded state without one is an older one
            ensure_scope(self.layout, runtime_mod.recorded(self.layout) is not None)
        runtime_mod.record(self.layout, self.runtime.name)
        channels = self.local_channels()
        first_join = [ch.check_genesis(log) for ch in channels]
        # Organisations added after generation (ipledger network add-org) run only
        # once the channel's admins have added them to the channel configuration.
        founding = set().union(*(ch.founding_orgs() for ch in channels))
        local = self.local_nodes
        nodes = [n for n in local if n.kind == "orderer" or n.org.msp_id in founding]
        self._start(nodes, log, timeout, "all nodes already running")
        orderers = [n for n in local if n.kind == "orderer"]
        # /healthz answers before the channel participation API listens: wait for it, or a restarted
        # orderer would look unjoined
        self._wait(lambda: [n.id for n in orderers if not _reachable(n.host, n.admin_port)],
                   "accepting admin connections", timeout, log)
        running = [n.id for n in nodes]
        for ch, first in zip(channels, first_join):
            running += [n.id for n in ch._join_channel(log, timeout, first) if n.id not in running]
        log(f"Network up in {time.monotonic() - started:.1f} s")
        return running

    def _join_channel(self, log, timeout: float, first: set[str] = frozenset()) -> list[Node]:
        """This channel's local orderers and admitted peers join it; wait until they have its
        first block and, when every peer is local, gossip with each other. ``first``: the founding
        organisations joining for the first time (check_genesis); a peer of another founding
        organisation without a ledger of the channel gets :data:`REJOIN_NOTE` logged. Returns the peers of
        organisations added later that the channel admitted (started here)."""
        c = self.consortium
        founding = self.founding_orgs()
        local = self.local_nodes
        orderers = [n for n in local if n.kind == "orderer"]
        peers = [n for n in local if n.kind == "peer" and n.org.msp_id in founding]
        self._orderers_hold_the_chain(orderers, peers, first)
        # all at once: a BFT consenter answers its join only once its chain has started (some seconds each)
        joining = [n for n in orderers if not self.orderer_joined(n)]
        failed = []
        with ThreadPoolExecutor(max_workers=max(1, len(joining))) as pool:
            for n, future in [(n, pool.submit(self._osnadmin_join, n)) for n in joining]:
                try:
                    future.result()
                except Exception as exc:   # noqa: BLE001 - each named below, the others' joins waited for
                    failed.append(f"{n.id}: {exc}")
                else:
                    log(f"  {n.id} joined channel '{c.channel}'")
        if failed:
            raise NetworkError(f"orderer(s) could not join channel '{c.channel}':\n" + "\n".join(failed))
        self._join_peers(peers, log, joined_before=founding - set(first))
        later = [o for o in c.orgs if o.msp_id not in founding and self.layout.is_local(o)]
        admitted = self._up_later_orgs(later, log, timeout) if later else []
        peers += admitted
        self._wait(lambda: [n.id for n in peers if (self.peer_height(n) or 0) < 1],
                   f"on channel '{c.channel}'", timeout, log)
        # The Gateway plans endorsements from gossip membership: wait until every peer
        # sees every other peer of the channel, or cross-org submits would fail. On a host
        # that runs only some of the peers, the others may not be up yet: 'network status'
        # shows how many each local peer knows.
        if len(peers) == len(c.peers):
            self.wait_gossip(peers, len(peers), timeout, log)
        # A Raft service started again elects its leader again, and takes no transaction until then: the first
        # events after a restart of the whole consortium were answered 503. When every consenter runs here,
        # wait for the leader (on separate hosts the others' consenters are not ours to see).
        if c.consensus == "etcdraft" and orderers and len(orderers) == len(c.orderers):
            self._wait(lambda: [] if any(self.raft_leader(n) for n in orderers) else [n.id for n in orderers],
                       f"led by a Raft leader on channel '{c.channel}'", timeout, log)
        return admitted

    def _orderers_hold_the_chain(self, orderers: list[Node], peers: list[Node], first: set[str]) -> None:
        """NetworkError before an orderer is joined again, or lets the channel go on, where its ledger is not the
        chain the channel's peers hold: an orderer of an organisation that joined before (not in ``first``) without
        a ledger of a channel that has gone on (:data:`LOST_ORDERER`); and, when every consenter runs here, their
        ledgers all behind the local peers' — restored from an older copy (:data:`BEHIND_ORDERERS`). The orderers
        in question are stopped first, before anyone's event is ordered on them. On separate hosts, what this host
        sees."""
        # the peers' heights first: the orderers cut blocks before the peers commit them, so read after, theirs are
        # at least as high — unless their ledgers went back (a channel under load goes on between the two reads)
        peer_heights = [h for h in (self.peer_height(n) for n in peers) if h is not None]
        theirs = max(peer_heights, default=0)

        def orderer_heights() -> dict[str, int | None]:
            return {n.id: self.orderer_height(n) for n in orderers}

        heights = orderer_heights()
        for _ in range(10):   # an orderer just started may list its channels a moment after it answers
            if all(h is not None for h in heights.values()) or theirs <= 1:
                break
            time.sleep(0.5)
            heights = orderer_heights()
        height = max([h for h in heights.values() if h is not None] + peer_heights, default=0)
        for n in orderers:
            if heights[n.id] is None and n.org.msp_id not in first and height > 1:
                self.runtime.stop(n)
                raise NetworkError(LOST_ORDERER.format(orderer=n.id, channel=self.consortium.channel,
                                                       org=n.org.msp_id, height=height))
        ours = max((h for h in heights.values() if h is not None), default=None)
        if ours is not None and len(orderers) == len(self.consortium.orderers) and ours < theirs:
            for n in orderers:
                self.runtime.stop(n)
            raise NetworkError(BEHIND_ORDERERS.format(channel=self.consortium.channel, ours=ours, theirs=theirs,
                                                      stopped=", ".join(n.id for n in orderers)))

    def wait_gossip(self, peers: list[Node], total: int, timeout: float, log=print) -> None:
        """Until each of ``peers`` knows ``total - 1`` other peers through gossip."""
        self._wait(lambda: [n.id for n in peers
                            if (self.gossip_peers_known(n) or 0) < total - 1],
                   "in gossip contact with every other peer", timeout, log)

    def stopped_uncleanly(self, n: Node) -> bool:
        """Whether native node ``n`` is not running though its pid file is still there: it stopped without
        ``network down`` (which removes the file) — it crashed, was killed, or the host lost its power."""
        return (self.runtime.name == runtime_mod.NATIVE and self.layout.pid_file(n).exists()
                and self.runtime.running(n) is None)

    def _start(self, nodes: list[Node], log, timeout: float, none_msg: str | None = None) -> None:
        rt = self.runtime
        to_start = [n for n in nodes if rt.running(n) is None]
        for n in to_start:
            unclean = self.stopped_uncleanly(n)
            try:
                ident = rt.start(n)
            except processes.StartError as e:
                raise NetworkError(str(e)) from None
            where = f" (network namespace {n.netns})" if n.netns else ""
            what = "pid" if rt.name == runtime_mod.NATIVE else "container"
            log(f"  started {n.id:<20} {what} {ident:<12} {n.address}{where}")
            if unclean:
                log(f"    {UNCLEAN_STOP.format(node=n.id)}")
        if not to_start and none_msg:
            log(f"  {none_msg}")
        self._wait(lambda: [n.id for n in nodes if not self.healthy(n)], "healthy",
                   timeout, log)

    def _join_peers(self, peers: list[Node], log, joined_before: set[str] = frozenset()) -> None:
        """Join each of ``peers`` that has no ledger of the channel; for a peer of an organisation in
        ``joined_before`` (one that lost its disk, or a new one), say what catching up takes."""
        for n in peers:
            if self.peer_height(n) is None:
                self._peer_join(n)
                log(f"  {n.id} joined channel '{self.consortium.channel}'")
                if n.org.msp_id in joined_before:
                    log(REJOIN_NOTE.format(peer=n.id, org=n.org.msp_id, channel=self.consortium.channel))

    def founding_orgs(self) -> set[str]:
        """MSP ids of the application organisations in the channel's genesis block."""
        config, _ = config_from_block(self.layout.genesis_block.read_bytes())
        return set(application_orgs(config))

    def acting_org(self, msp_id: str | None = None, exclude: str | None = None) -> Org:
        """The organisation whose admin (and first peer) talks to the network for a command: ``msp_id``,
        else a local application organisation other than ``exclude`` — a founding one first, then one
        whose first peer runs."""
        if msp_id:
            org = self.consortium.org(msp_id)
            if org.is_orderer:
                raise AdminError(f"{msp_id} is the orderer organisation; use an application org")
            return org
        founding = self.founding_orgs() if self.generated else set()
        candidates = [o for o in self.consortium.orgs if o.msp_id != exclude and self.layout.is_local(o)]
        candidates.sort(key=lambda o: (o.msp_id not in founding, self.runtime.running(o.peers[0]) is None))
        if not candidates:
            raise AdminError("no application organisation to act through")
        return candidates[0]

    def channel_config(self, msp_id: str | None = None,
                       exclude: str | None = None) -> tuple[configtx_pb2.Config, int]:
        """The channel's current config and its block number, fetched from a peer by an org admin
        (:meth:`acting_org`)."""
        org = self.acting_org(msp_id, exclude)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "config.block"
            r = self.peer_cli(org.peers[0], ["channel", "fetch", "config", str(out),
                                             "-c", self.consortium.channel], check=False)
            if r.returncode != 0 or not out.exists():
                raise AdminError(f"cannot fetch the config of channel '{self.consortium.channel}' "
                                 f"from {org.peers[0].id} as {org.msp_id} admin:\n"
                                 f"{(r.stderr or r.stdout).strip()}")
            return config_from_block(out.read_bytes())

    def channel_block(self, number: int, msp_id: str | None = None, exclude: str | None = None) -> bytes:
        """Block ``number`` of the channel, fetched from a peer by an org admin (:meth:`acting_org`)."""
        org = self.acting_org(msp_id, exclude)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "block"
            r = self.peer_cli(org.peers[0], ["channel", "fetch", str(number), str(out),
                                             "-c", self.consortium.channel], check=False)
            if r.returncode != 0 or not out.exists():
                raise AdminError(f"cannot fetch block {number} of channel '{self.consortium.channel}' from "
                                 f"{org.peers[0].id} as {org.msp_id} admin:\n{(r.stderr or r.stdout).strip()}")
            return out.read_bytes()

    def _up_later_orgs(self, orgs, log, timeout: float) -> list[Node]:
        """Start and join the peers of later-added orgs that the channel config has admitted."""
        config, _ = self.channel_config()
        members = set(application_orgs(config))
        peers = []
        for org in orgs:
            if org.msp_id in members:
                peers += org.peers
            else:
                log(f"  {org.msp_id} is not in the channel configuration (yet): "
                    f"{', '.join(n.id for n in org.peers)} left out; its admission is an "
                    "update signed by the channel's admins (ipledger admin propose add-org)")
        if peers:
            self._start(peers, log, timeout)
            self._join_peers(peers, log)
        return peers

    def down(self, purge: bool = False, log=print) -> None:
        rt = self.runtime
        for n in reversed(self.consortium.nodes):
            unclean = self.stopped_uncleanly(n)
            if rt.stop(n):
                log(f"  stopped {n.id}")
            elif unclean:
                log(f"  {n.id} was not running: {UNCLEAN_STOP.format(node=n.id)}")
        if rt.name == runtime_mod.DOCKER:
            # the chaincode services go with the nodes (native chaincode processes die with their peer);
            # with --purge the ledgers' volumes and the gateways' containers too
            rt.stop_chaincode_services(log)
            if purge:
                rt.purge(log)
        if purge and self.layout.root.exists():
            shutil.rmtree(self.layout.root)
            log(f"  removed {self.layout.root}")

    def status(self) -> list[dict]:
        """The nodes of this host's organisations."""
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(self._node_status, self.local_nodes))

    def _node_status(self, n: Node) -> dict:
        rt = self.runtime
        ident = rt.running(n)
        native = rt.name == runtime_mod.NATIVE
        s = NodeStatus(
            node=n.id, kind=n.kind, msp_id=n.org.msp_id, pid=int(ident) if ident and native else None,
            address=n.address, operations=f"{n.host}:{n.operations_port}",
            healthy=bool(ident) and self.healthy(n), log=rt.where(n), runtime=rt.name,
            container=None if native else ident)
        # a node on several channels (customs' peers, the orderers): each channel's own figures
        chans = [ch for ch in self.channels() if n in ch.consortium.nodes]
        if n.kind == "peer":
            # with containers the peer launches nothing: the chaincode services listen beside it
            s.chaincode_address = (f"{n.host}:{n.chaincode_port}" if native else
                                   ", ".join(sorted(set(rt.chaincode_services(n.org).values()))) or None)
            if s.healthy:
                s.channels = {ch.consortium.channel: {"height": ch.peer_height(n),
                                                      "gossip_peers_known": ch.gossip_peers_known(n)}
                              for ch in chans}
                s.channel_height = _least(v["height"] for v in s.channels.values())
                s.gossip_peers_known = _least(v["gossip_peers_known"] for v in s.channels.values())
        else:
            s.admin = f"{n.host}:{n.admin_port}"
            if s.healthy:
                infos = {ch.consortium.channel: ch._orderer_channel_or_none(n) or {} for ch in chans}
                s.channels = {name: {"joined": info.get("status") == "active", "height": info.get("height")}
                              for name, info in infos.items()}
                s.channel_joined = all(v["joined"] for v in s.channels.values())
                s.channel_height = _least(v["height"] for v in s.channels.values())
        return asdict(s)

    # ------------------------------------------------------------------ probes

    def healthy(self, n: Node) -> bool:
        """GET /healthz on the node's operations endpoint (TLS) answers 200."""
        url = f"https://{n.host}:{n.operations_port}/healthz"
        ctx = ssl.create_default_context(cafile=str(self.layout.node_tls(n) / "ca.crt"))
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError, ssl.SSLError):
            return False

    def metrics(self, n: Node) -> str:
        """The node's Prometheus metrics (needs the org admin's TLS client certificate)."""
        tls = self.layout.user_tls(n.org)   # read in a process of the node's organisation alone (own_process)
        return own_process.fetch_with_client_cert(f"https://{n.host}:{n.operations_port}/metrics",
                                                  self.layout.node_tls(n) / "ca.crt", tls / "client.crt",
                                                  tls / "client.key")

    def gauge(self, n: Node, name: str) -> float | None:
        """A channel's gauge from the node's metrics: 0 when the node does not report it (yet), None when its
        operations endpoint does not answer."""
        try:
            text = self.metrics(n)
        except (urllib.error.URLError, OSError, ssl.SSLError):
            return None
        return channel_gauge(text, name, self.consortium.channel)

    def gossip_peers_known(self, n: Node) -> int | None:
        """How many other peers of the channel this peer knows through gossip."""
        value = self.gauge(n, "gossip_membership_total_peers_known")
        return None if value is None else int(value)

    def raft_leader(self, n: Node) -> bool:
        """Whether this orderer is the Raft leader of the channel (its ``consensus_etcdraft_is_leader`` gauge)."""
        return self.gauge(n, "consensus_etcdraft_is_leader") == 1

    def peer_height(self, n: Node) -> int | None:
        """Channel height seen by the peer with its org admin's identity; None if not joined."""
        out = self.peer_cli(n, ["channel", "getinfo", "-c", self.consortium.channel],
                            check=False)
        if out.returncode != 0:
            return None
        text = out.stdout + out.stderr
        start = text.find("{")
        try:
            return int(json.loads(text[start:text.rfind("}") + 1])["height"])
        except (ValueError, KeyError):
            return None

    def orderer_channel(self, n: Node) -> dict | None:
        """What the orderer's channel participation API says of the channel (name, status, height, ...); None when
        it answers that the orderer is not on it (404). NetworkError when it does not answer so (unreachable, a TLS
        refusal of the admin's certificate, another status): no conclusion is drawn from a failed question."""
        out = self._osnadmin(n, ["channel", "list", "--channelID", self.consortium.channel], check=False)
        status = re.match(r"Status: (\d+)", out.stdout)
        if out.returncode == 0 and status and status.group(1) == "404":
            return None
        text = out.stdout
        try:
            info = json.loads(text[text.find("{"):text.rfind("}") + 1]) if status and status.group(1) == "200" else None
        except ValueError:
            info = None
        if out.returncode != 0 or not isinstance(info, dict):
            raise NetworkError(f"{n.id}: its channel participation API did not say whether it is on channel "
                               f"'{self.consortium.channel}': {printable((out.stdout + out.stderr).strip())[-300:]}")
        return info

    def _orderer_channel_or_none(self, n: Node) -> dict | None:
        """:meth:`orderer_channel`, None when it cannot be asked (a report, not a decision)."""
        try:
            return self.orderer_channel(n)
        except NetworkError:
            return None

    def orderer_joined(self, n: Node) -> bool:
        return (self.orderer_channel(n) or {}).get("status") == "active"

    def orderer_height(self, n: Node) -> int | None:
        """The channel's height in this orderer's ledger; None when it is not on the channel."""
        height = (self.orderer_channel(n) or {}).get("height")
        return height if isinstance(height, int) else None

    # ------------------------------------------------------------------ Fabric CLIs

    def peer_cli(self, n: Node, args: list[str], *, check: bool = True,
                 msp_id: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run the peer CLI against node ``n`` as an admin of ``msp_id`` (default: n's org)."""
        org = self.consortium.org(msp_id) if msp_id else n.org
        lay = self.layout
        env = dict(processes.node_environment(os.environ),
                   FABRIC_CFG_PATH=str(lay.node_dir(n)),
                   FABRIC_LOGGING_SPEC="warning",
                   CORE_PEER_LOCALMSPID=org.msp_id,
                   CORE_PEER_MSPCONFIGPATH=str(lay.user_msp(org)),
                   CORE_PEER_ADDRESS=n.address,
                   CORE_PEER_TLS_ENABLED="true",
                   CORE_PEER_TLS_ROOTCERT_FILE=str(lay.tls_ca(n.org)))
        if not self.layout.is_local(org):
            raise NetworkError(f"acting as {org.msp_id}'s admin needs its own directory, which "
                               f"is not in {self.layout.root}")
        return _run([binaries.binary("peer"), *args], env, check, timeout)

    def orderer(self) -> Node:
        """An orderer to send a channel update or a chaincode definition to (a BFT or Raft service
        orders what any of its consenters receives): a healthy one of this host's, else the first
        whose listen port answers, else the first."""
        local = [n for n in self.consortium.orderers if self.layout.is_local(n.org)]
        for n in local:
            if self.runtime.running(n) is not None and self.healthy(n):
                return n
        for n in self.consortium.orderers:
            if n not in local and _reachable(n.host, n.port):
                return n
        return self.consortium.orderers[0]

    def orderer_args(self) -> list[str]:
        """The peer CLI's arguments to reach :meth:`orderer` over TLS."""
        o = self.orderer()
        return ["-o", o.address, "--tls", "--cafile", str(self.layout.tls_ca(o.org))]

    def _osnadmin(self, n: Node, args: list[str], check: bool = True):
        """osnadmin against ``n``'s admin endpoint, as an admin of the organisation running it."""
        lay, o = self.layout, n.org
        tls = lay.user_tls(o)
        return _run([binaries.binary("osnadmin"), *args, "-o", f"{n.host}:{n.admin_port}",
                     "--ca-file", str(lay.tls_ca(o)), "--client-cert", str(tls / "osnadmin.crt"),
                     "--client-key", str(tls / "osnadmin.key")], processes.fabric_environment(os.environ), check)

    def _osnadmin_join(self, n: Node) -> None:
        self._osnadmin(n, ["channel", "join", "--channelID", self.consortium.channel,
                           "--config-block", str(self.layout.genesis_block)])

    def _peer_join(self, n: Node) -> None:
        # Right after the orderer joins, Raft may still be electing a leader; the
        # peer's join itself only needs the block, so one retry covers start-up races.
        for attempt in range(5):
            out = self.peer_cli(n, ["channel", "join", "-b", str(self.layout.genesis_block)],
                                check=False)
            if out.returncode == 0 or "already exists" in out.stderr:
                return
            time.sleep(0.5 * (attempt + 1))
        raise NetworkError(f"{n.id} could not join the channel:\n{out.stderr.strip()}")

    def _wait(self, pending, what: str, timeout: float, log) -> None:
        deadline = time.monotonic() + timeout
        waiting = pending()
        shown = False
        while waiting:
            if time.monotonic() > deadline:
                rt = self.runtime
                tails = "\n".join(f"--- {nid}: {rt.where(self.consortium.node(nid))}\n"
                                  + ("\n".join(rt.log_lines(self.consortium.node(nid), 15)) or "(no log)")
                                  for nid in waiting)
                raise NetworkError(f"timed out after {timeout:.0f} s waiting for "
                                   f"{', '.join(waiting)} to be {what}\n{tails}")
            if not shown:
                log(f"  waiting for {', '.join(waiting)} to be {what} …")
                shown = True
            time.sleep(0.25)
            waiting = pending()


@dataclass
class NodeStatus:
    node: str
    kind: str
    msp_id: str
    pid: int | None
    address: str
    operations: str
    healthy: bool
    log: str
    runtime: str = runtime_mod.NATIVE
    container: str | None = None   # with --runtime docker: the node's container (short id)
    chaincode_address: str | None = None
    admin: str | None = None
    channel_height: int | None = None
    channel_joined: bool | None = None
    gossip_peers_known: int | None = None
    channels: dict | None = None  # per channel: height and gossip (peers), joined and height (orderers)


_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def channel_gauge(text: str, name: str, channel: str) -> float:
    """The value of gauge ``name`` for ``channel`` in a Prometheus text exposition (0 when not there)."""
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if line.startswith("#") or not head.startswith(name + "{"):
            continue
        metric, _, labels = head.partition("{")
        if metric == name and dict(_LABEL.findall(labels)).get("channel") == channel:
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 0.0


def _least(values) -> int | None:
    """The smallest of ``values`` (a node is as far as its slowest channel); None if one is."""
    values = list(values)
    return None if not values or None in values else min(values)


def _run(cmd: list[str], env: dict, check: bool,
         timeout: float = 60) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise NetworkError(f"{Path(cmd[0]).name} {' '.join(cmd[1:3])} failed "
                           f"(exit {out.returncode}):\n{(out.stderr or out.stdout).strip()}")
    return out


def _reachable(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
