"""Consortium description → crypto material, channel genesis block, node configs.

Fabric's own tools do the cryptography and the block encoding (cryptogen,
configtxgen); this module writes their inputs and every node's core.yaml /
orderer.yaml. Output goes into a state directory (see layout.py).
"""
from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import yaml

from . import fabric
from . import consortium
from .consortium import Consortium, Node, Org
from .layout import Layout

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILDER_DIR = REPO_ROOT / "chaincode" / "builder"


class GenerateError(RuntimeError):
    pass


# ----------------------------------------------------------------------------- crypto

def cryptogen_config(c: Consortium) -> dict:
    def specs(org: Org) -> list[dict]:
        return [{"Hostname": n.name, "SANS": sorted({"127.0.0.1", "localhost", n.host})}
                for n in org.nodes]

    return {
        "OrdererOrgs": [{
            "Name": c.orderer_org.name, "Domain": c.orderer_org.domain,
            "EnableNodeOUs": True, "Specs": specs(c.orderer_org),
        }],
        "PeerOrgs": [{
            "Name": o.name, "Domain": o.domain, "EnableNodeOUs": True,
            "Specs": specs(o), "Users": {"Count": 1},
        } for o in c.orgs],
    }


def generate_crypto(c: Consortium, lay: Layout) -> None:
    cfg = lay.root / "crypto-config.yaml"
    _write_yaml(cfg, cryptogen_config(c))
    _tool([fabric.binary("cryptogen"), "generate", f"--config={cfg}", f"--output={lay.crypto}"])
    protect_secrets(lay.crypto)


def extend_crypto(c: Consortium, lay: Layout) -> None:
    """Crypto material for organisations and nodes added since generation (cryptogen extend).

    Existing material (every CA and key) is kept as it is.
    """
    cfg = lay.root / "crypto-config.yaml"
    _write_yaml(cfg, cryptogen_config(c))
    _tool([fabric.binary("cryptogen"), "extend", f"--config={cfg}", f"--input={lay.crypto}"])
    protect_secrets(lay.crypto)


def protect_secrets(root: Path) -> None:
    """Private keys 0600, their directories 0700 (cryptogen leaves them wider)."""
    for path in root.rglob("*"):
        if path.is_file() and (path.parent.name == "keystore" or path.suffix == ".key"
                               or path.name == "priv_sk"):
            path.chmod(0o600)
            path.parent.chmod(0o700)


# ----------------------------------------------------------------------------- channel

def _sig(rule: str) -> dict:
    return {"Type": "Signature", "Rule": rule}


def _meta(rule: str) -> dict:
    return {"Type": "ImplicitMeta", "Rule": rule}


def application_org(msp_id: str, msp_dir: Path, anchor_peers: list[str]) -> dict:
    """An application organisation as configtx.yaml declares it (also used by
    ``ipledger admin org definition`` for an organisation joining later)."""
    anchors = []
    for address in anchor_peers:
        host, _, port = address.rpartition(":")
        anchors.append({"Host": host, "Port": int(port)})
    return {
        "Name": msp_id, "ID": msp_id, "MSPDir": str(msp_dir),
        "Policies": {
            "Readers": _sig(f"OR('{msp_id}.admin', '{msp_id}.peer', '{msp_id}.client')"),
            "Writers": _sig(f"OR('{msp_id}.admin', '{msp_id}.client')"),
            "Admins": _sig(f"OR('{msp_id}.admin')"),
            "Endorsement": _sig(f"OR('{msp_id}.peer')"),
        },
        "AnchorPeers": anchors,
    }


def configtx(c: Consortium, lay: Layout) -> dict:
    o = c.orderer_org
    orderer_org = {
        "Name": o.msp_id, "ID": o.msp_id, "MSPDir": str(lay.org_msp(o)),
        "Policies": {
            "Readers": _sig(f"OR('{o.msp_id}.member')"),
            "Writers": _sig(f"OR('{o.msp_id}.member')"),
            "Admins": _sig(f"OR('{o.msp_id}.admin')"),
        },
        "OrdererEndpoints": [n.address for n in o.nodes],
    }
    # Anchor peers go into the genesis block: gossip across orgs, and so the
    # Gateway's service discovery, needs them from the start.
    app_orgs = [application_org(org.msp_id, lay.org_msp(org), [n.address for n in org.nodes])
                for org in c.orgs]
    tls = lambda n: str(lay.node_tls(n) / "server.crt")  # noqa: E731
    return {"Profiles": {"IPLedgerChannel": {
        "Policies": {
            "Readers": _meta("ANY Readers"),
            "Writers": _meta("ANY Writers"),
            # Channel membership and policy changes need a majority of org admins.
            "Admins": _meta("MAJORITY Admins"),
        },
        "Capabilities": {"V3_0": True},
        "Orderer": {
            "OrdererType": "etcdraft",
            "EtcdRaft": {"Consenters": [
                {"Host": n.host, "Port": n.port, "ClientTLSCert": tls(n), "ServerTLSCert": tls(n)}
                for n in o.nodes]},
            "BatchTimeout": c.batch_timeout,
            "BatchSize": {"MaxMessageCount": c.max_message_count,
                          "AbsoluteMaxBytes": "99 MB", "PreferredMaxBytes": "2 MB"},
            "Organizations": [orderer_org],
            "Policies": {
                "Readers": _meta("ANY Readers"),
                "Writers": _meta("ANY Writers"),
                "Admins": _meta("MAJORITY Admins"),
                "BlockValidation": _meta("ANY Writers"),
            },
            "Capabilities": {"V2_0": True},
        },
        "Application": {
            "Organizations": app_orgs,
            "Policies": {
                "Readers": _meta("ANY Readers"),
                "Writers": _meta("ANY Writers"),
                "Admins": _meta("MAJORITY Admins"),
                "LifecycleEndorsement": _meta("MAJORITY Endorsement"),
                "Endorsement": _meta("MAJORITY Endorsement"),
            },
            "Capabilities": {"V2_5": True},
        },
    }}}


def generate_channel(c: Consortium, lay: Layout) -> None:
    lay.channel_dir.mkdir(parents=True, exist_ok=True)
    _write_yaml(lay.channel_dir / "configtx.yaml", configtx(c, lay))
    _tool([fabric.binary("configtxgen"), "-configPath", str(lay.channel_dir),
           "-profile", "IPLedgerChannel", "-channelID", c.channel,
           "-outputBlock", str(lay.genesis_block)])


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
                "propagateEnvironment": ["HOME", "PATH", "IPLEDGER_PYTHON",
                                         "IPLEDGER_CHAINCODE_LOG_LEVEL"],
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
            "history": {"enableHistoryDatabase": True},
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
            # Raft traffic shares the main listener (and so its TLS).
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
                    "ClientRootCAs": [str(lay.tls_ca(c.orderer_org))]},
        },
        "ChannelParticipation": {"Enabled": True, "MaxRequestBodySize": "1 MB"},
        "Consensus": {"WALDir": str(data / "etcdraft" / "wal"),
                      "SnapDir": str(data / "etcdraft" / "snapshot")},
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
    """Generate everything into an empty (or absent) state directory."""
    if lay.genesis_block.exists():
        raise GenerateError(f"{lay.root} already holds a generated network; "
                            "use 'ipledger network down --purge' first to start over")
    lay.root.mkdir(parents=True, exist_ok=True)
    lay.root.chmod(0o700)
    _write_yaml(lay.consortium_file, consortium.to_dict(c))
    log(f"  crypto material for {len(c.orgs) + 1} organisations (cryptogen)")
    generate_crypto(c, lay)
    log(f"  channel '{c.channel}' genesis block (configtxgen)")
    generate_channel(c, lay)
    log(f"  configuration of {len(c.nodes)} nodes")
    generate_nodes(c, lay)


def _write_yaml(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))


def _tool(cmd: list[str]) -> str:
    env = dict(os.environ, FABRIC_LOGGING_SPEC="warning")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    if proc.returncode != 0:
        raise GenerateError(f"{Path(cmd[0]).name} failed (exit {proc.returncode}):\n"
                            f"{proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def is_private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0
