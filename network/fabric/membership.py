"""Who is on the channel: the organisations of a channel config, as plain data.

Pure protobuf code, shared by ``ipledger admin members`` (which adds the local
nodes' process state) and the gateway's read-only ``GET /api/v1/members``
(which reads the config block through ``cscc GetConfigBlock``)::

    {"config_block": 7, "sequence": 3,
     "admins_policy": "MAJORITY Admins",        # what a membership change needs
     "organisations": [{"msp_id": "CustomsMSP", "role": "application",
                        "anchor_peers": ["peer0.customs...:7110"], "admins": "OR('CustomsMSP.admin')",
                        "root_certificates": [{"subject": "CN=ca.customs...", "sha256": "ab12…",
                                               "not_after": "2036-11-21T12:00:00Z"}]}, …]}

Only public material of the config is described (certificates' subjects and
fingerprints, policies, addresses): the config block is readable by every
channel member anyway.
"""
from __future__ import annotations

import datetime as dt
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fabric_protos.common import configtx_pb2

from ipledger.network.fabric.config import (APPLICATION, anchor_peers, application_orgs, config_from_block, msp_of,
                                            orderer_endpoints, orderer_orgs)
from ipledger.network.fabric.policy import render_policy


def _policy(group: configtx_pb2.ConfigGroup, name: str) -> str:
    return render_policy(group.policies[name].policy) if name in group.policies else ""


def _certificate(pem: bytes) -> dict:
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return {"subject": None, "sha256": hashlib.sha256(pem).hexdigest(), "not_after": None}
    der = cert.public_bytes(Encoding.DER)
    not_after = cert.not_valid_after_utc.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"subject": cert.subject.rfc4514_string(), "sha256": hashlib.sha256(der).hexdigest(),
            "not_after": not_after}


def _roots(group: configtx_pb2.ConfigGroup) -> list[dict]:
    msp = msp_of(group)
    return [_certificate(bytes(c)) for c in msp.root_certs] if msp is not None else []


def describe(config: configtx_pb2.Config) -> dict:
    """The channel's organisations (application orgs first, then the orderer orgs, each by MSP id)."""
    orgs = []
    for msp_id, group in sorted(application_orgs(config).items()):
        orgs.append({"msp_id": msp_id, "role": "application", "anchor_peers": anchor_peers(group),
                     "admins": _policy(group, "Admins"), "root_certificates": _roots(group)})
    for msp_id, group in sorted(orderer_orgs(config).items()):
        orgs.append({"msp_id": msp_id, "role": "orderer", "endpoints": orderer_endpoints(group),
                     "admins": _policy(group, "Admins"), "root_certificates": _roots(group)})
    application = config.channel_group.groups.get(APPLICATION)
    return {"sequence": int(config.sequence),
            "admins_policy": _policy(application, "Admins") if application is not None else "",
            "organisations": orgs}


def describe_block(block_bytes: bytes) -> dict:
    """:func:`describe` of the config in a config block, with the block's number."""
    config, number = config_from_block(block_bytes)
    return {"config_block": number, **describe(config)}
