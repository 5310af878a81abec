"""An organisation removed from the channel, and another later proposed under its MSP id.

The channel's records name organisations by MSP id — the contract's register of parties, the event ids each sent (its
idempotency records), the audit trails — so an organisation admitted under a removed one's MSP id, with another CA,
would take those over. ``admin propose add-org`` looks back through the channel's configs: the same MSP id under
another root CA is refused; the same organisation (its own CA) may come back."""
from __future__ import annotations

import pytest
from fabric_protos.common import common_pb2

from ipledger.network.channel.proposals import _root_fingerprints, earlier_members
from ipledger.network.errors import AdminError

from .channel_config import FakeOrg, config_block, make_config


def data_block(number: int, last_config: int) -> bytes:
    """A block of transactions whose orderer metadata names ``last_config`` as the config in force."""
    value = common_pb2.OrdererBlockMetadata(last_config=common_pb2.LastConfig(index=last_config)).SerializeToString()
    block = common_pb2.Block(header=common_pb2.BlockHeader(number=number))
    block.metadata.metadata.extend([common_pb2.Metadata(value=value).SerializeToString(), b"", b"", b"", b""])
    return block.SerializeToString()


@pytest.fixture
def chain():
    """Block 0: customs, the operator and broker A (BrokerMSP); block 3: A removed; block 5: the current config."""
    customs, operator, orderer = FakeOrg("CustomsMSP"), FakeOrg("OperatorMSP"), FakeOrg("OrdererMSP")
    broker_a = FakeOrg("BrokerMSP")
    founding = make_config([customs, operator, broker_a], orderer)
    removed = make_config([customs, operator], orderer)
    blocks = {0: config_block(founding, 0), 1: data_block(1, 0), 2: data_block(2, 0), 3: config_block(removed, 3),
              4: data_block(4, 3), 5: config_block(removed, 5)}
    # a config block's own orderer metadata names itself
    for n in (0, 3, 5):
        b = common_pb2.Block.FromString(blocks[n])
        b.metadata.metadata.extend([common_pb2.Metadata(value=common_pb2.OrdererBlockMetadata(
            last_config=common_pb2.LastConfig(index=n)).SerializeToString()).SerializeToString(), b"", b"", b"", b""])
        blocks[n] = b.SerializeToString()
    fetched: list[int] = []

    def fetch(n: int) -> bytes:
        fetched.append(n)
        return blocks[n]
    return fetch, fetched, broker_a


def test_an_organisation_once_on_the_channel_is_found_with_its_ca(chain):
    fetch, fetched, broker_a = chain
    found = earlier_members(fetch, 5)
    assert set(found) == {"CustomsMSP", "OperatorMSP", "BrokerMSP"}
    block, group = found["BrokerMSP"]
    assert block == 0 and _root_fingerprints(group) == _root_fingerprints(broker_a.group())
    assert _root_fingerprints(group) != _root_fingerprints(FakeOrg("BrokerMSP").group())   # another CA, same id
    assert sorted(set(fetched)) == [0, 2, 3, 4]       # the configs and the blocks that point back to them


def test_a_chain_that_names_no_earlier_config_is_refused(chain):
    fetch, _, _ = chain

    def broken(n: int) -> bytes:
        return data_block(4, 4) if n == 4 else fetch(n)
    with pytest.raises(AdminError, match="block 4 of the channel names block 4 as its config"):
        earlier_members(broken, 5)

    def ahead(n: int) -> bytes:
        return data_block(4, 7) if n == 4 else fetch(n)
    with pytest.raises(AdminError, match="names no earlier config block"):
        earlier_members(ahead, 5)


def test_the_genesis_block_has_no_earlier_config(chain):
    fetch, fetched, _ = chain
    assert earlier_members(fetch, 0) == {} and fetched == []
