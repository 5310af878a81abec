"""A test chaincode exercising every stub call through a real peer.

Deployed by the integration tests next to the shim (package ``stubcheck``,
contract ``stubcheck:StubCheck``). Values travel as JSON strings; private
values arrive in the transient map (key ``value``) so they never appear in
the transaction.
"""
import os
import time

from ipledger.chaincode.shim.contract_api import ChaincodeError, Contract, transaction


class Refused(ChaincodeError):
    code = "Refused"


def _kv(items):
    return [{"key": kv.key, "value": kv.value.decode()} for kv in items]


class StubCheck(Contract):
    name = "stubcheck"

    # -- world state -------------------------------------------------------
    @transaction
    def Put(self, stub, key, value):
        stub.put_state(key, value.encode())
        return stub.get_tx_id()

    @transaction
    def PutMany(self, stub, pairs):
        for key, value in sorted(pairs.items()):
            stub.put_state(key, value.encode())
        return len(pairs)

    @transaction(submit=False)
    def Get(self, stub, key):
        return stub.get_state(key).decode()

    @transaction(submit=False)
    def GetMany(self, stub, keys):
        return [v.decode() for v in stub.get_multiple_states(keys)]

    @transaction
    def Delete(self, stub, key):
        stub.del_state(key)

    @transaction
    def Increment(self, stub, key):
        """Read-modify-write: concurrent calls on one key conflict (MVCC)."""
        value = int(stub.get_state(key).decode() or "0") + 1
        stub.put_state(key, str(value).encode())
        return value

    @transaction(submit=False)
    def Range(self, stub, start, end):
        with stub.get_state_by_range(start, end) as it:
            return _kv(it)

    @transaction(submit=False)
    def RangePage(self, stub, start, end, page_size, bookmark):
        page = stub.get_state_by_range_with_pagination(start, end, page_size, bookmark)
        return {"items": _kv(page.items), "fetched": page.fetched_records_count,
                "bookmark": page.bookmark}

    @transaction
    def PutComposite(self, stub, object_type, attributes, value):
        key = stub.create_composite_key(object_type, attributes)
        stub.put_state(key, value.encode())
        return stub.split_composite_key(key)

    @transaction(submit=False)
    def Partial(self, stub, object_type, attributes):
        with stub.get_state_by_partial_composite_key(object_type, attributes) as it:
            return [{"attributes": stub.split_composite_key(kv.key)[1],
                     "value": kv.value.decode()} for kv in it]

    @transaction(submit=False)
    def PartialFrom(self, stub, object_type, attributes, start_attributes):
        with stub.get_state_by_partial_composite_key_from(object_type, attributes, start_attributes) as it:
            return [stub.split_composite_key(kv.key)[1] for kv in it]

    @transaction(submit=False)
    def PartialBetween(self, stub, object_type, attributes, start_attributes, end_attributes):
        with stub.get_state_by_partial_composite_key_from(object_type, attributes, start_attributes,
                                                          end_attributes) as it:
            return [stub.split_composite_key(kv.key)[1] for kv in it]

    @transaction(submit=False)
    def ScanBetween(self, stub, object_type, attributes, start_attributes, end_attributes, cut_at):
        """The contract's bounded range read (as the log of a bill's last month is read), in reads of ``cut_at``."""
        from ipledger.chaincode.contract.state import State
        return [attrs for attrs, _value in State(stub, range_read_chunk=cut_at).scan_between(
            object_type, attributes, start_attributes, end_attributes)]

    @transaction(submit=False)
    def Scan(self, stub, object_type, attributes, cut_at):
        """The contract's whole-range read, in reads of at most ``cut_at`` records each."""
        from ipledger.chaincode.contract.state import State
        return [attrs for attrs, _value in State(stub, range_read_chunk=cut_at).scan(object_type, *attributes)]

    @transaction(submit=False)
    def PartialPage(self, stub, object_type, attributes, page_size, bookmark):
        page = stub.get_state_by_partial_composite_key_with_pagination(
            object_type, attributes, page_size, bookmark)
        return {"count": len(page.items), "fetched": page.fetched_records_count,
                "bookmark": page.bookmark}

    @transaction(submit=False)
    def History(self, stub, key):
        with stub.get_history_for_key(key) as it:
            return [{"tx_id": m.tx_id, "value": m.value.decode(), "is_delete": m.is_delete,
                     "timestamp": m.timestamp.isoformat()} for m in it]

    # -- state-based endorsement -------------------------------------------
    @transaction
    def SetKeyPolicy(self, stub, key, policy_hex):
        stub.set_state_validation_parameter(key, bytes.fromhex(policy_hex))

    @transaction(submit=False)
    def GetKeyPolicy(self, stub, key):
        return stub.get_state_validation_parameter(key).hex()

    # -- private data --------------------------------------------------------
    @transaction
    def PutPrivate(self, stub, collection, key):
        stub.put_private_data(collection, key, stub.get_transient()["value"])

    @transaction(submit=False)
    def GetPrivate(self, stub, collection, key):
        return stub.get_private_data(collection, key).decode()

    @transaction(submit=False)
    def GetPrivateHash(self, stub, collection, key):
        return stub.get_private_data_hash(collection, key).hex()

    @transaction
    def DeletePrivate(self, stub, collection, key):
        stub.del_private_data(collection, key)

    @transaction
    def PurgePrivate(self, stub, collection, key):
        stub.purge_private_data(collection, key)

    @transaction(submit=False)
    def PrivateRange(self, stub, collection, start, end):
        with stub.get_private_data_by_range(collection, start, end) as it:
            return _kv(it)

    # -- context, events, other chaincodes ----------------------------------
    @transaction(submit=False)
    def Context(self, stub):
        fn, params = stub.get_function_and_parameters()
        return {"tx_id": stub.get_tx_id(), "channel": stub.get_channel_id(),
                "mspid": stub.get_mspid(),
                "timestamp": stub.get_tx_timestamp().isoformat(),
                "creator_pem": stub.get_creator_certificate_pem().decode(),
                "creator_len": len(stub.get_creator()),
                "transient": sorted(stub.get_transient()),
                "signed_proposal_len": len(stub.get_signed_proposal()),
                "binding": stub.get_binding().hex(), "function": fn, "params": params}

    @transaction
    def Emit(self, stub, name, payload):
        stub.set_event("overwritten", b"first call loses")
        stub.set_event(name, payload.encode())
        stub.put_state(f"event~{stub.get_tx_id()}", payload.encode())

    @transaction
    def Call(self, stub, chaincode, args):
        status, message, payload = stub.invoke_chaincode(
            chaincode, [a.encode() for a in args])
        return {"status": status, "message": message, "payload": payload.decode()}

    @transaction
    def Refuse(self, stub, message):
        stub.put_state("refused", b"must not be written")
        raise Refused(message, reason="test")

    @transaction
    def Crash(self, stub):
        raise RuntimeError("boom in user code")

    @transaction(submit=False)
    def Pid(self, stub):
        return os.getpid()

    @transaction(submit=False)
    def Sleep(self, stub, seconds):
        time.sleep(seconds)
        return seconds

    @transaction(submit=False)
    def Exit(self, stub):
        os._exit(3)
