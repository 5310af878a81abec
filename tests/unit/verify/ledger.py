"""Synthetic channels and blocks for the verifier's unit tests (no Fabric).

Builds a channel configuration shaped like ipledger's (three application orgs, an
orderer org, the same policies as ``network/org/generate.py``), orderer-signed blocks,
endorser transactions with endorsements, ``_lifecycle`` chaincode definitions and
config updates — all signed with keys from :mod:`.pki`.
"""
from __future__ import annotations

import hashlib
import os

from fabric_protos.common import common_pb2, configtx_pb2, configuration_pb2, policies_pb2
from fabric_protos.ledger.rwset import rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2
from fabric_protos.msp import msp_config_pb2
from fabric_protos.peer import chaincode_pb2, collection_pb2, policy_pb2, proposal_pb2, \
    proposal_response_pb2, transaction_pb2
from fabric_protos.peer.lifecycle import chaincode_definition_pb2, db_pb2

from ipledger.network.fabric import blocks as B
from ipledger.network.verify.verifier import Verifier
from ipledger.network.fabric.policy import implicit_meta_policy, parse_signature_policy, signature_policy

from .pki import Ident, Org

CHANNEL = "test-channel"


def _policy(p: policies_pb2.Policy, mod="Admins") -> configtx_pb2.ConfigPolicy:
    return configtx_pb2.ConfigPolicy(policy=p, mod_policy=mod)


def _value(msg, mod="Admins") -> configtx_pb2.ConfigValue:
    return configtx_pb2.ConfigValue(value=msg.SerializeToString(), mod_policy=mod)


def org_group(org: Org, application: bool = True) -> configtx_pb2.ConfigGroup:
    m = org.msp_id
    g = configtx_pb2.ConfigGroup(mod_policy="Admins")
    g.values["MSP"].CopyFrom(_value(msp_config_pb2.MSPConfig(type=0, config=org.msp_config().SerializeToString())))
    if application:
        pols = {"Readers": f"OR('{m}.admin', '{m}.peer', '{m}.client')",
                "Writers": f"OR('{m}.admin', '{m}.client')",
                "Admins": f"OR('{m}.admin')", "Endorsement": f"OR('{m}.peer')"}
    else:
        pols = {"Readers": f"OR('{m}.member')", "Writers": f"OR('{m}.member')", "Admins": f"OR('{m}.admin')"}
    for name, text in pols.items():
        g.policies[name].CopyFrom(_policy(signature_policy(text)))
    return g


def channel_config(apps: list[Org], orderer: Org) -> configtx_pb2.Config:
    root = configtx_pb2.ConfigGroup(mod_policy="Admins")
    root.values["HashingAlgorithm"].CopyFrom(_value(configuration_pb2.HashingAlgorithm(name="SHA256")))
    root.values["Capabilities"].CopyFrom(_value(configuration_pb2.Capabilities(
        capabilities={"V3_0": configuration_pb2.Capability()})))
    for name, rule in (("Readers", "ANY Readers"), ("Writers", "ANY Writers"), ("Admins", "MAJORITY Admins")):
        root.policies[name].CopyFrom(_policy(implicit_meta_policy(rule)))
    o = root.groups["Orderer"]
    o.mod_policy = "Admins"
    for name, rule in (("Readers", "ANY Readers"), ("Writers", "ANY Writers"), ("Admins", "MAJORITY Admins"),
                       ("BlockValidation", "ANY Writers")):
        o.policies[name].CopyFrom(_policy(implicit_meta_policy(rule)))
    o.groups[orderer.msp_id].CopyFrom(org_group(orderer, application=False))
    a = root.groups["Application"]
    a.mod_policy = "Admins"
    for name, rule in (("Readers", "ANY Readers"), ("Writers", "ANY Writers"), ("Admins", "MAJORITY Admins"),
                       ("LifecycleEndorsement", "MAJORITY Endorsement"), ("Endorsement", "MAJORITY Endorsement")):
        a.policies[name].CopyFrom(_policy(implicit_meta_policy(rule)))
    for org in apps:
        a.groups[org.msp_id].CopyFrom(org_group(org))
    return configtx_pb2.Config(sequence=0, channel_group=root)


def app_policy(text: str) -> bytes:
    return policy_pb2.ApplicationPolicy(signature_policy=parse_signature_policy(text)).SerializeToString()


def app_policy_ref(ref: str) -> bytes:
    return policy_pb2.ApplicationPolicy(channel_config_policy_reference=ref).SerializeToString()


def _payload(chdr: common_pb2.ChannelHeader, shdr: common_pb2.SignatureHeader, data: bytes) -> bytes:
    return common_pb2.Payload(header=common_pb2.Header(channel_header=chdr.SerializeToString(),
                                                       signature_header=shdr.SerializeToString()),
                              data=data).SerializeToString()


class Ledger:
    """A chain under construction: ``genesis()``, then ``block([...envelopes], codes)``."""

    def __init__(self, apps: list[Org], orderer: Org):
        self.apps = {o.msp_id: o for o in apps}
        self.orderer_org = orderer
        self.orderer = orderer.member("orderer")
        self.config = channel_config(apps, orderer)
        self.blocks: list[common_pb2.Block] = []
        self.last_config = 0

    # -- blocks ---------------------------------------------------------------------------------
    def genesis(self) -> common_pb2.Block:
        chdr = common_pb2.ChannelHeader(type=common_pb2.CONFIG, channel_id=CHANNEL)
        env = common_pb2.Envelope(payload=_payload(chdr, common_pb2.SignatureHeader(),
                                                   configtx_pb2.ConfigEnvelope(config=self.config).SerializeToString()))
        block = self._assemble([env.SerializeToString()], [0], sign=False)
        return block

    def _assemble(self, data: list[bytes], codes: list[int], sign: bool = True,
                  signer: Ident | None = None, last_config: int | None = None) -> common_pb2.Block:
        number = len(self.blocks)
        prev = B.header_hash(self.blocks[-1].header) if self.blocks else b""
        block = common_pb2.Block()
        block.header.number = number
        block.header.previous_hash = prev
        block.data.data.extend(data)
        block.header.data_hash = B.data_hash(block.data)
        md = [b""] * 5
        md[B.TRANSACTIONS_FILTER] = bytes(codes)
        if sign:
            value = common_pb2.OrdererBlockMetadata(
                last_config=common_pb2.LastConfig(index=self.last_config if last_config is None else last_config),
                consenter_metadata=common_pb2.Metadata().SerializeToString()).SerializeToString()
            who = signer or self.orderer
            shdr = common_pb2.SignatureHeader(creator=who.serialize(), nonce=os.urandom(24)).SerializeToString()
            sig = who.sign(value + shdr + B.header_bytes(block.header))
            md[B.SIGNATURES] = common_pb2.Metadata(value=value, signatures=[
                common_pb2.MetadataSignature(signature_header=shdr, signature=sig)]).SerializeToString()
        block.metadata.metadata.extend(md)
        self.blocks.append(block)
        return block

    def block(self, envelopes: list[bytes], codes: list[int] | None = None, **kw) -> common_pb2.Block:
        return self._assemble(envelopes, codes if codes is not None else [0] * len(envelopes), **kw)

    # -- transactions ---------------------------------------------------------------------------
    def endorser_tx(self, creator: Ident, chaincode: str, endorsers: list[Ident], *,
                    writes: dict | None = None, metadata: dict | None = None,
                    private: dict | None = None, extra_ns: dict | None = None,
                    version: str = "1.0", timestamp: int = 0) -> bytes:
        """An endorser transaction of ``chaincode`` writing public keys (``writes``: key -> value
        or None to delete), key metadata (``metadata``: key -> validation parameter bytes), private
        keys (``private``: collection -> {key: value}) and other namespaces (``extra_ns``)."""
        def ns_set(ns, w, md, priv):
            kv = kv_rwset_pb2.KVRWSet()
            for k, v in (w or {}).items():
                kv.writes.add(key=k, is_delete=v is None, value=v or b"")
            for k, vp in (md or {}).items():
                entries = [kv_rwset_pb2.KVMetadataEntry(name="VALIDATION_PARAMETER", value=vp)] if vp else []
                kv.metadata_writes.add(key=k, entries=entries)
            out = rwset_pb2.NsReadWriteSet(namespace=ns, rwset=kv.SerializeToString())
            for coll, kvs in (priv or {}).items():
                h = kv_rwset_pb2.HashedRWSet()
                for k, v in kvs.items():
                    h.hashed_writes.add(key_hash=hashlib.sha256(k.encode()).digest(), is_delete=v is None,
                                        value_hash=hashlib.sha256(v or b"").digest())
                out.collection_hashed_rwset.add(collection_name=coll, hashed_rwset=h.SerializeToString())
            return out

        rws = rwset_pb2.TxReadWriteSet(data_model=rwset_pb2.TxReadWriteSet.KV)
        rws.ns_rwset.append(ns_set(chaincode, writes, metadata, private))
        for ns, w in (extra_ns or {}).items():
            rws.ns_rwset.append(ns_set(ns, w, None, None))
        return endorsed_envelope(creator, chaincode, endorsers, rws, version, timestamp)

    def define(self, name: str, policy: bytes, creator: Ident, endorsers: list[Ident], *,
               sequence: int = 1, collections: list[collection_pb2.StaticCollectionConfig] = ()) -> bytes:
        """A ``_lifecycle`` commit of ``name``'s definition with endorsement policy ``policy``."""
        def sd(**kw):
            return db_pb2.StateData(**kw).SerializeToString()
        pkg = collection_pb2.CollectionConfigPackage(
            config=[collection_pb2.CollectionConfig(static_collection_config=c) for c in collections])
        writes = {
            f"namespaces/metadata/{name}": db_pb2.StateMetadata(
                datatype="ChaincodeDefinition",
                fields=["Collections", "EndorsementInfo", "Sequence", "ValidationInfo"]).SerializeToString(),
            f"namespaces/fields/{name}/Sequence": sd(Int64=sequence),
            f"namespaces/fields/{name}/EndorsementInfo": sd(Bytes=chaincode_definition_pb2.ChaincodeEndorsementInfo(
                version="1.0", endorsement_plugin="escc").SerializeToString()),
            f"namespaces/fields/{name}/ValidationInfo": sd(Bytes=chaincode_definition_pb2.ChaincodeValidationInfo(
                validation_plugin="vscc", validation_parameter=policy).SerializeToString()),
            f"namespaces/fields/{name}/Collections": sd(Bytes=pkg.SerializeToString()),
        }
        return self.endorser_tx(creator, "_lifecycle", endorsers, writes=writes, version="syscc")

    def config_update(self, new_config: configtx_pb2.Config, signers: list[Ident], *,
                      submitter: Ident | None = None, result: configtx_pb2.Config | None = None) -> bytes:
        """The orderer's CONFIG envelope for ``new_config`` (signed by ``signers``); ``result``
        lets a test carry a config other than the one the update produces."""
        from ipledger.network.fabric.config_update import compute_update
        update = compute_update(self.config, new_config, CHANNEL)
        ub = update.SerializeToString()
        cue = configtx_pb2.ConfigUpdateEnvelope(config_update=ub)
        for s in signers:
            sh = common_pb2.SignatureHeader(creator=s.serialize(), nonce=os.urandom(24)).SerializeToString()
            cue.signatures.add(signature_header=sh, signature=s.sign(sh + ub))
        sub = submitter or signers[0]
        upd_payload = _payload(common_pb2.ChannelHeader(type=common_pb2.CONFIG_UPDATE, channel_id=CHANNEL),
                               common_pb2.SignatureHeader(creator=sub.serialize(), nonce=os.urandom(24)),
                               cue.SerializeToString())
        last_update = common_pb2.Envelope(payload=upd_payload, signature=sub.sign(upd_payload))
        from ipledger.network.fabric.config_update import apply_update
        produced = result or apply_update(self.config, update)
        cenv = configtx_pb2.ConfigEnvelope(config=produced, last_update=last_update)
        chdr = common_pb2.ChannelHeader(type=common_pb2.CONFIG, channel_id=CHANNEL)
        payload = _payload(chdr, common_pb2.SignatureHeader(creator=self.orderer.serialize(), nonce=os.urandom(24)),
                           cenv.SerializeToString())
        return common_pb2.Envelope(payload=payload, signature=self.orderer.sign(payload)).SerializeToString()

    def config_block(self, envelope: bytes) -> common_pb2.Block:
        cenv = configtx_pb2.ConfigEnvelope.FromString(common_pb2.Payload.FromString(
            common_pb2.Envelope.FromString(envelope).payload).data)
        block = self._assemble([envelope], [0], last_config=len(self.blocks))
        self.config = cenv.config
        self.last_config = block.header.number
        return block


def verify_all(blocks, **kw) -> Verifier:
    """A Verifier (``kw``: its options) run over ``blocks`` in order, up to the first inconsistent one."""
    v = Verifier(**kw)
    for b in blocks:
        if not v.verify(b):
            break
    return v


def endorsed_envelope(creator: Ident, chaincode: str, endorsers: list[Ident], rws: rwset_pb2.TxReadWriteSet,
                      version: str = "1.0", timestamp: int = 0) -> bytes:
    """An endorser transaction of ``chaincode`` carrying exactly the read-write set ``rws``, endorsed by
    ``endorsers`` and signed by ``creator``, timestamped ``timestamp`` (Unix seconds)."""
    nonce = os.urandom(24)
    creator_bytes = creator.serialize()
    tx_id = hashlib.sha256(nonce + creator_bytes).hexdigest()
    ext = proposal_pb2.ChaincodeHeaderExtension(chaincode_id=chaincode_pb2.ChaincodeID(name=chaincode))
    chdr = common_pb2.ChannelHeader(type=common_pb2.ENDORSER_TRANSACTION, channel_id=CHANNEL, tx_id=tx_id,
                                    extension=ext.SerializeToString())
    chdr.timestamp.seconds = timestamp
    shdr = common_pb2.SignatureHeader(creator=creator_bytes, nonce=nonce)
    chdr_b, shdr_b = chdr.SerializeToString(), shdr.SerializeToString()
    action = proposal_pb2.ChaincodeAction(
        results=rws.SerializeToString(), response=proposal_response_pb2.Response(status=200),
        chaincode_id=chaincode_pb2.ChaincodeID(name=chaincode, version=version))
    ccpp = proposal_pb2.ChaincodeProposalPayload(input=b"invocation").SerializeToString()
    prp = proposal_response_pb2.ProposalResponsePayload(
        proposal_hash=hashlib.sha256(chdr_b + shdr_b + ccpp).digest(),
        extension=action.SerializeToString()).SerializeToString()
    endorsements = [proposal_response_pb2.Endorsement(endorser=e.serialize(), signature=e.sign(prp + e.serialize()))
                    for e in endorsers]
    cap = transaction_pb2.ChaincodeActionPayload(
        chaincode_proposal_payload=ccpp,
        action=transaction_pb2.ChaincodeEndorsedAction(proposal_response_payload=prp, endorsements=endorsements))
    tx = transaction_pb2.Transaction(actions=[transaction_pb2.TransactionAction(
        header=shdr_b, payload=cap.SerializeToString())])
    payload = common_pb2.Payload(header=common_pb2.Header(channel_header=chdr_b, signature_header=shdr_b),
                                 data=tx.SerializeToString()).SerializeToString()
    return common_pb2.Envelope(payload=payload, signature=creator.sign(payload)).SerializeToString()
