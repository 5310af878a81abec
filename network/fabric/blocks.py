"""Block hashes, block metadata and block files.

- The *header hash* is SHA-256 of the ASN.1 DER encoding of
  ``SEQUENCE { INTEGER number, OCTET STRING previous_hash, OCTET STRING data_hash }``
  (``protoutil.BlockHeaderBytes``); block N+1's ``previous_hash`` is block N's header hash.
- The *data hash* is SHA-256 of the concatenated transaction envelopes
  (``protoutil.ComputeBlockDataHash``).
- Metadata: ``SIGNATURES`` (0) holds ``common.Metadata{value = OrdererBlockMetadata
  {last_config, consenter_metadata}, signatures}``, each ``MetadataSignature`` signing
  ``value + signature_header (or identifier_header) + header bytes``;
  ``TRANSACTIONS_FILTER`` (2) holds one validation code per transaction, written by
  the committing peer (neither hashed into the header nor signed by the orderer).
- Block files (``--save``/``--from-file``): one serialized ``common.Block`` per file,
  named ``<number, 10 digits>.block``.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from fabric_protos.common import common_pb2

from ipledger.network.fabric import der

SIGNATURES = common_pb2.SIGNATURES
LAST_CONFIG = common_pb2.LAST_CONFIG
TRANSACTIONS_FILTER = common_pb2.TRANSACTIONS_FILTER


def header_bytes(header: common_pb2.BlockHeader) -> bytes:
    return der.element(0x30, der.integer(header.number) + der.element(0x04, header.previous_hash)
                       + der.element(0x04, header.data_hash))


def header_hash(header: common_pb2.BlockHeader) -> bytes:
    return hashlib.sha256(header_bytes(header)).digest()


def data_hash(data: common_pb2.BlockData) -> bytes:
    return hashlib.sha256(b"".join(data.data)).digest()


def tx_filter(block: common_pb2.Block) -> bytes:
    md = block.metadata.metadata
    return bytes(md[TRANSACTIONS_FILTER]) if len(md) > TRANSACTIONS_FILTER else b""


def signatures_metadata(block: common_pb2.Block) -> common_pb2.Metadata:
    md = block.metadata.metadata
    if len(md) <= SIGNATURES or not md[SIGNATURES]:
        return common_pb2.Metadata()
    return common_pb2.Metadata.FromString(md[SIGNATURES])


def last_config_index(block: common_pb2.Block) -> int | None:
    """The last config block number the orderer signed into the block (None if absent)."""
    md = signatures_metadata(block)
    if md.value:
        return common_pb2.OrdererBlockMetadata.FromString(md.value).last_config.index
    raw = block.metadata.metadata
    if len(raw) > LAST_CONFIG and raw[LAST_CONFIG]:
        lc = common_pb2.Metadata.FromString(raw[LAST_CONFIG])
        return common_pb2.LastConfig.FromString(lc.value).index
    return None


# ----------------------------------------------------------------------------- files

def block_file(directory: Path, number: int) -> Path:
    return Path(directory) / f"{number:010d}.block"


def save_block(directory: Path, block: common_pb2.Block, raw: bytes | None = None) -> Path:
    path = block_file(directory, block.header.number)
    path.write_bytes(raw if raw is not None else block.SerializeToString())
    return path


def block_files(directory: Path) -> list[tuple[int, Path]]:
    """The block files of a directory, by the number in their name (a reader checks they run from 0 on)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a directory")
    files = []
    for p in directory.glob("*.block"):
        stem = p.stem
        if stem.isdigit():
            files.append((int(stem), p))
    files.sort()
    if not files:
        raise FileNotFoundError(f"no block files (NNNNNNNNNN.block) in {directory}")
    return files
