"""An organisation's own directory (identities, definition, node configs), and the whole
consortium generated on one machine as if on separate hosts.

Identities: network/org/identities.py; public definitions: network/org/definition.py;
the genesis block from definitions only: network/channel/founding.py. This module
writes every node's core.yaml / orderer.yaml (see layout.py for where).
"""
from __future__ import annotations

from pathlib import Path

import yaml

from ipledger.network import consortium
from ipledger.network.channel import founding
from ipledger.network.org import identities, own_process
from ipledger.network.org import definition as definition_mod
from ipledger.network.consortium import Consortium, Node, Org
from ipledger.network.org.definition import Definition
from ipledger.network.org.processes import CHAINCODE_SETTINGS
from ipledger.network.errors import printable
from ipledger.network.files import write_atomically
from ipledger.network.layout import Layout, per_channel

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILDER_DIR = REPO_ROOT / "chaincode" / "builder"


class GenerateError(RuntimeError):
    """The network's configuration cannot be generated (a network already generated there, a step failed);
    nothing is started."""


# In the state directory while ``generate`` runs: a run cut short (a disk error, a full disk, ^C) leaves it,
# and the next ``network up``/``generate`` goes on where it stopped instead of taking the organisations
# made so far for another host's.
GENERATING = ".generating"


def interrupted(lay: Layout) -> bool:
    """Whether a ``generate`` on this machine was cut short (it goes on from there when run again)."""
    return (lay.root / GENERATING).exists()


def org_ready(lay: Layout, org: Org) -> bool:
    """Whether ``org``'s own directory is complete: ``init_org`` writes its definition last."""
    return (lay.org_home(org) / "definition.json").exists()


# ----------------------------------------------------------------------------- an organisation

def init_org(c: Consortium, lay: Layout, org: Org, log=print) -> Definition:
    """What an organisation does on its own host: create its CA and TLS CA, its nodes' and
    users' identities (Admin, User1), its nodes' configurations, and write its public
    definition to ``<org home>/definition.json``. Only its own directory is written.

    Run again after it was cut short, it goes on where it stopped: what its CA registered is kept,
    what it had begun and not registered is made again."""
    home = lay.org_home(org)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    home.chmod(0o700)
    ids = identities.OrgIdentities(lay.org_dir(org), org.msp_id, org.domain)
    if not ids.created:
        ids.create()
    registered = {e.name for e in ids.register()}
    for n in org.nodes:
        if n.fqdn not in registered:
            ids.issue(n.fqdn, n.kind, hosts=[n.host])
    for user, role in (("Admin", "admin"), *((("User1", "client"),) if org.peers else ())):
        if ids.user_name(user) not in registered:
            ids.add_user(user, role)
    for n in org.nodes:
        generate_node(c, lay, n)
    d = org_definition(lay, org)
    log(f"  {org.msp_id}: its own CA, TLS CA and {len(org.nodes)} node(s) in {home}")
    return d


def org_definition(lay: Layout, org: Org, anchor_peers: list[str] | None = None,
                   save: bool = True) -> Definition:
    """The organisation's public definition, from its identity tree; saved in its home unless ``save``
    is false (one written to a file of the admin's choice only: ``org definition --output``)."""
    ids = identities.OrgIdentities(lay.org_dir(org), org.msp_id, org.domain)
    def entries(nodes):
        return [{"name": n.name, "host": n.host, "port": n.port, "fqdn": n.fqdn} for n in nodes]
    d = definition_mod.from_identities(
        ids, name=org.name, role="orderer" if org.is_orderer else "application",
        description=org.description, peers=entries(org.peers), orderers=entries(org.orderers),
        anchor_peers=anchor_peers)
    if save:
        d.save(lay.org_home(org) / "definition.json")
    return d


def publish_definition(lay: Layout, org: Org) -> Path:
    """Hand the definition over: copy it from the org's home to the consortium's public files
    (on several machines: send the file to the founder)."""
    src = lay.org_home(org) / "definition.json"
    definition_mod.load(src)
    return definition_mod.write_public(lay.definition_file(org.msp_id), src.read_bytes())


# ----------------------------------------------------------------------------- nodes

def peer_config(c: Consortium, lay: Layout, n: Node) -> dict:
    tls = lay.node_tls(n)
    data = lay.data_dir(n)
    return {
        "peer": {
            "id": n.fqdn,
            "networkId": "ipledger",
            "listenAddress": n.address,
            "address": n.address,
            "addressAutoDetect": False,
            "chaincodeListenAddress": f"{n.host}:{n.chaincode_port}",
            "chaincodeAddress": f"{n.host}:{n.chaincode_port}",
            "gateway": {"enabled": True, "endorsementTimeout": "30s",
                        "broadcastTimeout": "30s", "dialTimeout": "2m"},
            # The deliver stream from the orderer is idle between blocks: ping it every 10 s (the
            # orderer permits it, General.Keepalive.ServerMinInterval) so that after a network
            # partition longer than the orderer's TCP user timeout (which drops the connection) the
            # peer reconnects within seconds, not after Fabric's default 60 s of silence.
            "keepalive": {"interval": "7200s", "timeout": "20s", "minInterval": "60s",
                          "client": {"interval": "60s", "timeout": "20s"},
                          "deliveryClient": {"interval": "10s", "timeout": "10s"}},
            "gossip": {
                "bootstrap": n.address,
                "useLeaderElection": False,
                "orgLeader": True,
                "membershipTrackerInterval": "1s",
                "endpoint": n.address,
                "externalEndpoint": n.address,
                "maxBlockCountToStore": 10,
                "maxPropagationBurstLatency": "10ms",
                "maxPropagationBurstSize": 10,
                "propagateIterations": 1,
                "propagatePeerNum": 3,
                "pullInterval": "4s",
                "pullPeerNum": 3,
                # Tighter than Fabric's defaults so cross-org membership (needed by the
                # Gateway's endorsement planning) converges in seconds after a join.
                "requestStateInfoInterval": "1s",
                "publishStateInfoInterval": "1s",
                "stateInfoRetentionInterval": None,
                "publishCertPeriod": "10s",
                "skipBlockVerification": False,
                "dialTimeout": "3s",
                "connTimeout": "2s",
                "recvBuffSize": 20,
                "sendBuffSize": 200,
                "digestWaitTime": "1s",
                "requestWaitTime": "1500ms",
                "responseWaitTime": "2s",
                "aliveTimeInterval": "2s",
                "aliveExpirationTimeout": "10s",
                "reconnectInterval": "2s",
                "maxConnectionAttempts": 120,
                "msgExpirationFactor": 20,
                "election": {"startupGracePeriod": "15s", "membershipSampleInterval": "1s",
                             "leaderAliveThreshold": "10s", "leaderElectionDuration": "5s"},
                "pvtData": {
                    "pullRetryThreshold": "60s",
                    "transientstoreMaxBlockRetention": 20000,
                    "pushAckTimeout": "3s",
                    "btlPullMargin": 10,
                    "reconcileBatchSize": 10,
                    "reconcileSleepInterval": "1m",
                    "reconciliationEnabled": True,
                    "skipPullingInvalidTransactionsDuringCommit": False,
                    "implicitCollectionDisseminationPolicy": {"requiredPeerCount": 0,
                                                              "maxPeerCount": 1},
                },
                "state": {"enabled": False, "checkInterval": "10s", "responseTimeout": "3s",
                          "batchSize": 10, "blockBufferSize": 20, "maxRetries": 3},
            },
            "tls": {
                "enabled": True,
                "clientAuthRequired": False,
                "cert": {"file": str(tls / "server.crt")},
                "key": {"file": str(tls / "server.key")},
                "rootcert": {"file": str(tls / "ca.crt")},
                "clientRootCAs": {"files": [str(tls / "ca.crt")]},
                "clientCert": {"file": str(tls / "server.crt")},
                "clientKey": {"file": str(tls / "server.key")},
            },
            "authentication": {"timewindow": "15m"},
            "fileSystemPath": str(data),
            "BCCSP": _bccsp(),
            "mspConfigPath": str(lay.node_msp(n)),
            "localMspId": n.org.msp_id,
            "client": {"connTimeout": "3s"},
            "deliveryclient": {
                "blockGossipEnabled": False,
                "reconnectTotalTimeThreshold": "3600s",
                "connTimeout": "3s",
                "reConnectBackoffThreshold": "3600s",
                "blockCensorshipTimeoutKey": "30s",
                "minimalReconnectInterval": "100ms",
                "addressOverrides": None,
                "policy": "cluster",
            },
            "localMspType": "bccsp",
            "profile": {"enabled": False, "listenAddress": "127.0.0.1:6060"},
            "handlers": {
                "authFilters": [{"name": "DefaultAuth"}, {"name": "ExpirationCheck"},
                                {"name": "TimeWindowCheck"}],
                "decorators": [{"name": "DefaultDecorator"}],
                "endorsers": {"escc": {"name": "DefaultEndorsement", "library": None}},
                "validators": {"vscc": {"name": "DefaultValidation", "library": None}},
            },
            "validatorPoolSize": None,
            "discovery": {"enabled": True, "authCacheEnabled": True, "authCacheMaxSize": 1000,
                          "authCachePurgeRetentionRatio": 0.75,
                          "orgMembersAllowedAccess": False},
            "limits": {"concurrency": {"endorserService": 2500, "deliverService": 2500,
                                       "gatewayService": 500}},
            "maxRecvMsgSize": 104857600,
            "maxSendMsgSize": 104857600,
        },
        # No Docker engine: an empty endpoint keeps /healthz from pinging Docker.
        "vm": {"endpoint": ""},
        "chaincode": {
            "id": {"path": None, "name": None},
            "pull": False,
            "externalBuilders": [{
                "name": "ipledger-python",
                "path": str(BUILDER_DIR),
                # with the chaincode's own settings, which the builder hands on (chaincode/shim/README.md)
                "propagateEnvironment": ["HOME", "PATH", "IPLEDGER_PYTHON",
                                         *(f"IPLEDGER_CHAINCODE_{name}" for name in CHAINCODE_SETTINGS)],
            }],
            "installTimeout": "300s",
            "startuptimeout": "60s",
            "executetimeout": "30s",
            "mode": "net",
            "keepalive": 0,
            "system": {"_lifecycle": "enable", "cscc": "enable", "lscc": "enable",
                       "qscc": "enable"},
            "logging": {"level": "info", "shim": "warning",
                        "format": "%{time:2006-01-02 15:04:05.000 MST} [%{module}] "
                                  "%{shortfunc} -> %{level:.4s} %{id:03x} %{message}"},
            "runtimeParams": {"useWriteBatch": True, "maxSizeWriteBatch": 1000,
                              "useGetMultipleKeys": True, "maxSizeGetMultipleKeys": 1000},
        },
        "ledger": {
            "blockchain": None,
            "state": {"stateDatabase": "goleveldb", "totalQueryLimit": 100000},
            "history": {"enableHistoryDatabase": n.history_database},  # consortium.Node says why
            "pvtdataStore": {"collElgProcMaxDbBatchSize": 5000,
                             "collElgProcDbBatchesInterval": 1000,
                             "deprioritizedDataReconcilerInterval": "60m",
                             "purgeInterval": 100, "purgedKeyAuditLogging": True},
            "snapshots": {"rootDir": str(data / "snapshots")},
        },
        "operations": _operations(n.host, n.operations_port, tls, lower=True),
        "metrics": {"provider": "prometheus"},
    }


def orderer_config(c: Consortium, lay: Layout, n: Node) -> dict:
    tls = lay.node_tls(n)
    data = lay.data_dir(n)
    return {
        "General": {
            "ListenAddress": n.host,
            "ListenPort": n.port,
            "TLS": {"Enabled": True, "PrivateKey": str(tls / "server.key"),
                    "Certificate": str(tls / "server.crt"), "RootCAs": [str(tls / "ca.crt")],
                    "ClientAuthRequired": False, "ClientRootCAs": None},
            # Peers ping their deliver streams every 10 s (peer.keepalive.deliveryClient).
            "Keepalive": {"ServerMinInterval": "10s", "ServerInterval": "7200s",
                          "ServerTimeout": "20s"},
            "Backoff": {"BaseDelay": "1s", "Multiplier": 1.6, "MaxDelay": "2m"},
            "MaxRecvMsgSize": 104857600,
            "MaxSendMsgSize": 104857600,
            "Throttling": {"Rate": 0, "InactivityTimeout": "5s"},
            # Consensus traffic (Raft or BFT) shares the main listener (and so its TLS).
            "Cluster": {"SendBufferSize": 100,
                        "ClientCertificate": str(tls / "server.crt"),
                        "ClientPrivateKey": str(tls / "server.key"),
                        "RootCAs": [str(tls / "ca.crt")]},
            "BootstrapMethod": "none",
            "LocalMSPDir": str(lay.node_msp(n)),
            "LocalMSPID": n.org.msp_id,
            "Profile": {"Enabled": False, "Address": "127.0.0.1:6060"},
            "BCCSP": _bccsp(),
            "Authentication": {"TimeWindow": "15m"},
        },
        "FileLedger": {"Location": str(data / "ledger")},
        "Debug": {"BroadcastTraceDir": None, "DeliverTraceDir": None},
        "Operations": _operations(n.host, n.operations_port, tls, lower=False),
        "Metrics": {"Provider": "prometheus"},
        "Admin": {
            "ListenAddress": f"{n.host}:{n.admin_port}",
            "TLS": {"Enabled": True, "Certificate": str(tls / "server.crt"),
                    "PrivateKey": str(tls / "server.key"), "RootCAs": [str(tls / "ca.crt")],
                    "ClientAuthRequired": True,
                    # osnadmin is run by the admins of the organisation running the orderer: their
                    # client certificates come from its orderer administration CA, which issues no other
                    "ClientRootCAs": [str(lay.admin_tls_ca(n.org))]},
        },
        "ChannelParticipation": {"Enabled": True, "MaxRequestBodySize": "1 MB"},
        "Consensus": ({"WALDir": str(data / "smartbft" / "wal")} if c.consensus == "BFT" else
                      {"WALDir": str(data / "etcdraft" / "wal"),
                       "SnapDir": str(data / "etcdraft" / "snapshot")}),
    }


def _bccsp() -> dict:
    return {"Default": "SW", "SW": {"Hash": "SHA2", "Security": 256,
                                    "FileKeyStore": {"KeyStore": None}}}


def _operations(host: str, port: int, tls: Path, lower: bool) -> dict:
    if lower:  # core.yaml spells keys in camelCase
        return {"listenAddress": f"{host}:{port}",
                "tls": {"enabled": True, "cert": {"file": str(tls / "server.crt")},
                        "key": {"file": str(tls / "server.key")},
                        # /healthz is open; /metrics needs a client certificate
                        # issued by the org's TLS CA (e.g. the org admin's).
                        "clientAuthRequired": False,
                        "clientRootCAs": {"files": [str(tls / "ca.crt")]}}}
    return {"ListenAddress": f"{host}:{port}",
            "TLS": {"Enabled": True, "Certificate": str(tls / "server.crt"),
                    "PrivateKey": str(tls / "server.key"), "ClientAuthRequired": False,
                    "ClientRootCAs": [str(tls / "ca.crt")]}}


def generate_nodes(c: Consortium, lay: Layout) -> None:
    for n in c.nodes:
        generate_node(c, lay, n)


def generate_node(c: Consortium, lay: Layout, n: Node) -> None:
    """One node's directory and core.yaml / orderer.yaml."""
    d = lay.node_dir(n)
    d.mkdir(parents=True, exist_ok=True)
    lay.data_dir(n).mkdir(exist_ok=True)
    if n.kind == "peer":
        _write_yaml(d / "core.yaml", peer_config(c, lay, n))
    else:
        _write_yaml(d / "orderer.yaml", orderer_config(c, lay, n))


# ----------------------------------------------------------------------------- all

def generate(c: Consortium, lay: Layout, *, log=print) -> None:
    """Every organisation of the consortium on this machine, each in its own directory, as
    on separate hosts: each creates its own identities and definition; the definitions (public
    files only) are handed to the consortium's public directory; the founder builds the
    genesis block from them; each organisation checks the block before anything joins."""
    channels = per_channel(c, lay)
    resuming = interrupted(lay)
    if not resuming and any(clay.genesis_block.exists() for _, clay in channels):
        raise GenerateError(f"{lay.root} already holds a generated network; "
                            "use 'ipledger network down --purge' first to start over")
    lay.root.mkdir(parents=True, exist_ok=True)
    lay.root.chmod(0o700)
    if resuming:
        log(f"  a generation in {lay.root} was cut short: going on where it stopped")
    (lay.root / GENERATING).touch()
    lay.public.mkdir(parents=True, exist_ok=True)
    _write_yaml(lay.consortium_file, consortium.to_dict(c))
    step = "the consortium's public files"
    try:
        for org in c.all_orgs:
            step = f"{org.msp_id}'s own directory ({lay.org_home(org)})"
            if not org_ready(lay, org):   # its keys made in a process of its own (own_process)
                own_process.call(init_org, c, lay, org, log=log)
            publish_definition(lay, org)
        for view, clay in channels:
            step = f"the genesis block of '{view.channel}' ({clay.genesis_block})"
            if not clay.genesis_block.exists():
                founding.found(view, clay, log=log)
            block = clay.genesis_block.read_bytes()
            for org in view.all_orgs:
                check_block(clay, org, block, members=[o.msp_id for o in view.orgs], channel=view)
    except (OSError, identities.IdentityError, definition_mod.DefinitionError, TimeoutError) as e:
        raise GenerateError(f"generating {step} failed: {e}\nNothing was started. Remove the cause and run "
                            "'ipledger network up' (or 'network generate') again: it goes on where it "
                            "stopped") from e
    (lay.root / GENERATING).unlink()
    log("  every organisation found its own definition in the genesis block"
        + (" of each of its channels" if c.per_holder else ""))


def check_block(lay: Layout, org: Org, block: bytes | None = None,
                members: list[str] | None = None, channel: Consortium | None = None) -> None:
    """``org`` checks that the genesis block holds its own definition as it wrote it; given
    ``members``, that the channel's application organisations are exactly those (with a channel
    per holder, nobody else's peers may receive its blocks); given ``channel`` (the consortium
    as this channel sees it), that the channel's policies are the consortium's (customs and the
    holder change the channel)."""
    block = block if block is not None else lay.genesis_block.read_bytes()
    own = definition_mod.load(lay.org_home(org) / "definition.json")
    problems = founding.check_own(block, own)
    if members is not None:
        problems += founding.check_members(block, members)
    if channel is not None:
        problems += founding.check_policies(block, channel)
    if problems:
        raise GenerateError(f"{org.msp_id} refuses the genesis block {lay.genesis_block}:\n  "
                            + "\n  ".join(map(printable, problems)))


def _write_yaml(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, yaml.safe_dump(data, sort_keys=False, default_flow_style=False).encode())
