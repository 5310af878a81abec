"""The in-memory stub keeps the Fabric semantics the contract relies on."""
from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from ipledger.chaincode.shim.contract_api import ChaincodeError, Contract, transaction
from ipledger.chaincode.shim.interface import ChaincodeStub, PeerError
from ipledger.chaincode.testing import MemLedger

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 1, tzinfo=UTC)


class Boom(ChaincodeError):
    code = "Boom"


class Probe(Contract):
    """A tiny contract to drive the ledger through the contract API."""

    name = "probe"

    @transaction
    def Put(self, stub, key, value):
        stub.put_state(key, value.encode())
        stub.set_event("first", b"1")
        stub.set_event("last", value.encode())
        return {"read_back": stub.get_state(key).decode()}

    @transaction
    def PutThenFail(self, stub, key, value):
        stub.put_state(key, value.encode())
        stub.put_private_data("commercial", key, b"secret")
        stub.set_event("never", b"")
        raise Boom("refused")

    @transaction
    def PutPrivate(self, stub, key, value):
        stub.put_private_data("commercial", key, value.encode())

    @transaction(submit=False)
    def ReadPrivate(self, stub, key):
        return {"value": stub.get_private_data("commercial", key).decode(),
                "hash": stub.get_private_data_hash("commercial", key).hex()}

    @transaction(submit=False)
    def Context(self, stub):
        return {"msp": stub.get_mspid(), "ts": stub.get_tx_timestamp().isoformat(),
                "transient": {k: v.decode() for k, v in stub.get_transient().items()},
                "pem": stub.get_creator_certificate_pem().decode()}


@pytest.fixture
def ledger():
    return MemLedger(now=T0)


def test_memstub_satisfies_the_stub_protocol(ledger):
    assert isinstance(ledger.stub(), ChaincodeStub)


def test_reads_see_committed_state_only_no_read_your_writes(ledger):
    probe = Probe()
    res = ledger.invoke(probe, "Put", ["k", "v1"])
    assert res.ok and res.json() == {"read_back": ""}  # not its own write
    res = ledger.invoke(probe, "Put", ["k", "v2"])
    assert res.json() == {"read_back": "v1"}  # the committed value, not v2
    assert ledger.state["k"] == b"v2"


def test_failed_transaction_writes_nothing_and_emits_nothing(ledger):
    probe = Probe()
    ledger.invoke(probe, "Put", ["k", "v1"])
    before = ledger.snapshot()
    res = ledger.invoke(probe, "PutThenFail", ["k", "bad"])
    assert res.status == 500 and res.error_code == "Boom" and res.event is None
    assert ledger.snapshot() == before
    assert ledger.state["k"] == b"v1" and ledger.private("commercial") == {}


def test_set_event_last_call_wins(ledger):
    out = ledger.invoke(Probe(), "Put", ["k", "payload"])
    assert out.event == ("last", b"payload")
    assert ledger.events[-1][1:] == ("last", b"payload")


def test_range_and_partial_composite_queries_are_sorted_and_separate(ledger):
    stub = ledger.stub()
    for k in ["b", "a", "c", "ab"]:
        stub.put_state(k, k.encode())
    for attrs in (["A", "2"], ["A", "10"], ["B", "1"], ["A", "1"]):
        stub.put_state(stub.create_composite_key("lot", attrs), b"x")
    ledger.commit(stub)
    stub = ledger.stub()
    assert [kv.key for kv in stub.get_state_by_range("", "")] == ["a", "ab", "b", "c"]  # no composite keys
    assert [kv.key for kv in stub.get_state_by_range("ab", "c")] == ["ab", "b"]  # end exclusive
    with stub.get_state_by_partial_composite_key("lot", ["A"]) as it:
        assert [stub.split_composite_key(kv.key)[1] for kv in it] == [["A", "1"], ["A", "10"], ["A", "2"]]
    page = stub.get_state_by_partial_composite_key_with_pagination("lot", [], 3)
    assert page.fetched_records_count == 3 and page.bookmark
    rest = stub.get_state_by_partial_composite_key_with_pagination("lot", [], 3, page.bookmark)
    assert [stub.split_composite_key(kv.key)[1] for kv in rest.items] == [["B", "1"]] and rest.bookmark == ""
    with pytest.raises(ValueError):
        stub.get_state_by_range(stub.create_composite_key("lot", []), "")


def test_composite_keys_use_go_encoding(ledger):
    stub = ledger.stub()
    assert stub.create_composite_key("lot", ["A", "1"]) == "\x00lot\x00A\x001\x00"
    assert stub.split_composite_key("\x00lot\x00A\x001\x00") == ("lot", ["A", "1"])
    with pytest.raises(ValueError):
        stub.create_composite_key("lot", ["bad\x00"])


def test_private_data_membership_and_hash(ledger):
    probe = Probe()
    assert ledger.invoke(probe, "PutPrivate", ["L1", "25000"], msp="BrokerMSP").ok  # memberOnlyWrite false
    ok = ledger.evaluate(probe, "ReadPrivate", ["L1"], msp="OperatorMSP")
    assert ok.json() == {"value": "25000", "hash": hashlib.sha256(b"25000").hexdigest()}
    refused = ledger.evaluate(probe, "ReadPrivate", ["L1"], msp="BrokerMSP")
    assert refused.status == 500 and "read access" in refused.json()["message"]
    stub = ledger.stub(msp="BrokerMSP")
    assert stub.get_private_data_hash("commercial", "L1") == hashlib.sha256(b"25000").digest()
    with pytest.raises(PeerError):
        stub.get_private_data("commercial", "L1")


def test_history_per_key_newest_first_with_tx_ids_and_timestamps(ledger):
    probe = Probe()
    first = ledger.invoke(probe, "Put", ["k", "v1"], ts=T0)
    second = ledger.invoke(probe, "Put", ["k", "v2"], ts=T0 + dt.timedelta(hours=1))
    stub = ledger.stub()
    stub.del_state("k")
    ledger.commit(stub)
    hist = list(ledger.stub().get_history_for_key("k"))
    assert [(h.value, h.is_delete) for h in hist] == [(b"", True), (b"v2", False), (b"v1", False)]
    assert hist[1].tx_id == second.tx_id and hist[2].tx_id == first.tx_id
    assert hist[1].timestamp == T0 + dt.timedelta(hours=1)


def test_timestamp_creator_and_transient_are_controllable(ledger):
    ts = T0 + dt.timedelta(days=3)
    res = ledger.evaluate(Probe(), "Context", [], msp="CustomsMSP", ts=ts, role="admin",
                          transient={"commercial": b"{}"})
    out = res.json()
    assert out["msp"] == "CustomsMSP" and out["ts"] == ts.isoformat() and out["transient"] == {"commercial": "{}"}
    cert = x509.load_pem_x509_certificate(out["pem"].encode())
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)] == ["admin"]


def test_default_timestamps_increase(ledger):
    a, b = ledger.stub(), ledger.stub()
    assert b.get_tx_timestamp() > a.get_tx_timestamp() and a.get_tx_id() != b.get_tx_id()


def test_validation_parameters_are_buffered_until_commit(ledger):
    stub = ledger.stub()
    stub.set_state_validation_parameter("k", b"policy")
    assert stub.get_state_validation_parameter("k") == b""
    ledger.commit(stub)
    assert ledger.validation_parameter("k") == b"policy"


def test_creator_is_a_serialized_identity(ledger):
    from fabric_protos.msp import identities_pb2

    stub = ledger.stub(msp="BrokerMSP", eori="FR1")
    ident = identities_pb2.SerializedIdentity.FromString(stub.get_creator())
    assert ident.mspid == "BrokerMSP" and ident.id_bytes == stub.get_creator_certificate_pem()
    ext = x509.load_pem_x509_certificate(ident.id_bytes).extensions.get_extension_for_oid(
        x509.ObjectIdentifier("1.2.3.4.5.6.7.8.1"))
    assert json.loads(ext.value.value) == {"attrs": {"eori": "FR1"}}


def test_invoke_returns_status_message_payload_event(ledger):
    status, message, payload, event = ledger.invoke(Probe(), "Put", ["k", "v"])
    assert (status, message, json.loads(payload), event) == (200, "", {"read_back": ""}, ("last", b"v"))
    status, message, payload, event = ledger.invoke(Probe(), "PutThenFail", ["k", "v"])
    assert status == 500 and json.loads(message)["code"] == "Boom" and payload == b"" and event is None
