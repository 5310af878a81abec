"""Chaincode definitions as committed through ``_lifecycle``, replayed from the blocks.

``_lifecycle`` keeps each committed definition in its public state
(``core/chaincode/lifecycle``)::

    namespaces/metadata/<name>                 StateMetadata{datatype "ChaincodeDefinition", fields}
    namespaces/fields/<name>/Sequence          StateData{Int64}
    namespaces/fields/<name>/EndorsementInfo   StateData{Bytes: ChaincodeEndorsementInfo}
    namespaces/fields/<name>/ValidationInfo    StateData{Bytes: ChaincodeValidationInfo
                                                         {validation_plugin, validation_parameter}}
    namespaces/fields/<name>/Collections       StateData{Bytes: CollectionConfigPackage}

Only fields that change are rewritten by a later commit, so the writes of every
VALID transaction to the ``_lifecycle`` namespace are applied in order, and the
definition in force for block N is read from the state as it was after block N-1
(peers validate a block against the committed state).
"""
from __future__ import annotations

from dataclasses import dataclass

from fabric_protos.peer import collection_pb2
from google.protobuf.message import DecodeError
from fabric_protos.peer.lifecycle import chaincode_definition_pb2, db_pb2

LIFECYCLE = "_lifecycle"
IMPLICIT_PREFIX = "_implicit_org_"


class DefinitionError(ValueError):
    """A committed definition's state does not parse (a VALID ``_lifecycle`` write the verifier cannot read)."""


@dataclass(frozen=True)
class Definition:
    name: str
    sequence: int
    version: str
    validation_plugin: str
    validation_parameter: bytes          # serialized peer.ApplicationPolicy
    collections: dict[str, collection_pb2.StaticCollectionConfig]
    committed_in_block: int


class LifecycleState:
    """The public key/values of the ``_lifecycle`` namespace."""

    def __init__(self):
        self.values: dict[str, bytes] = {}
        self.written_in: dict[str, int] = {}

    def apply_write(self, key: str, value: bytes, is_delete: bool, block: int) -> None:
        if is_delete:
            self.values.pop(key, None)
        else:
            self.values[key] = value
        self.written_in[key] = block

    def _field(self, name: str, field: str) -> db_pb2.StateData | None:
        raw = self.values.get(f"namespaces/fields/{name}/{field}")
        return db_pb2.StateData.FromString(raw) if raw is not None else None

    def names(self) -> list[str]:
        prefix = "namespaces/metadata/"
        return sorted(k[len(prefix):] for k in self.values if k.startswith(prefix))

    def definition(self, name: str) -> Definition | None:
        """The definition committed for ``name`` (None if none); DefinitionError if its state does not parse."""
        try:
            return self._definition(name)
        except DecodeError as exc:
            raise DefinitionError(f"the state of {name!r}'s definition in {LIFECYCLE} does not parse: {exc}") \
                from None

    def _definition(self, name: str) -> Definition | None:
        meta_key = f"namespaces/metadata/{name}"
        raw = self.values.get(meta_key)
        if raw is None:
            return None
        meta = db_pb2.StateMetadata.FromString(raw)
        if meta.datatype != "ChaincodeDefinition":
            return None
        seq = self._field(name, "Sequence")
        ei = self._field(name, "EndorsementInfo")
        vi = self._field(name, "ValidationInfo")
        co = self._field(name, "Collections")
        endorsement = chaincode_definition_pb2.ChaincodeEndorsementInfo.FromString(ei.Bytes) \
            if ei is not None else chaincode_definition_pb2.ChaincodeEndorsementInfo()
        validation = chaincode_definition_pb2.ChaincodeValidationInfo.FromString(vi.Bytes) \
            if vi is not None else chaincode_definition_pb2.ChaincodeValidationInfo()
        collections = {}
        if co is not None and co.Bytes:
            pkg = collection_pb2.CollectionConfigPackage.FromString(co.Bytes)
            for c in pkg.config:
                if c.HasField("static_collection_config"):
                    collections[c.static_collection_config.name] = c.static_collection_config
        return Definition(name, seq.Int64 if seq is not None else 0, endorsement.version,
                          validation.validation_plugin, validation.validation_parameter,
                          collections, self.written_in.get(f"namespaces/fields/{name}/Sequence", -1))
