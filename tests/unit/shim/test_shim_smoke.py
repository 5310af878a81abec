import json

from tests.unit.shim.shim_helpers import CHAINCODE_ID, run, shim_client
from tests.unit.shim.shim_fakepeer import CCM, FakePeer

from ipledger.chaincode.shim.contract_api import Contract, transaction


class Echo(Contract):
    name = "echo"

    @transaction
    def Put(self, stub, key, value):
        stub.put_state(key, json.dumps(value).encode())
        return stub.get_state(key).decode() or None


def test_handshake_and_one_transaction():
    async def body():
        peer = FakePeer(use_write_batch=True, max_size_write_batch=5, use_get_multiple_keys=True)
        async with shim_client(Echo(), peer) as (peer, client, _):
            assert peer.registered_name == CHAINCODE_ID
            assert peer.received[0].type == CCM.REGISTER
            caps = client.session.capabilities
            assert caps.use_write_batch and caps.max_size_write_batch == 100
            assert caps.use_get_multiple_keys and caps.max_size_get_multiple_keys == 100
            peer.state["k"] = b"old"
            done = await peer.transaction("Put", '"k"', '{"a": 1}')
            r = FakePeer.response(done)
            assert r.status == 200, r.message
            assert json.loads(r.payload) == "old"
            assert peer.state["k"] == b'{"a": 1}'
            assert done.txid and done.channel_id == "ch1"

    run(body())
