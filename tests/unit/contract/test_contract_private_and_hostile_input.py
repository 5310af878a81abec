"""Private data and hostile inputs: the commercial collection, the transient map and the shim's decoding of hostile
arguments.

The ``commercial`` collection (customs and the holder read the customs values, the broker only their hashes),
the transient map (commercial data for an act that takes none, members named twice, text that is no JSON or no
UTF-8), the shim's decoding of hostile arguments (members named twice, numbers out of range, deep nesting,
unknown functions) and what the broker can read after the holder placed goods. Each refusal leaves the ledger
unchanged (``Scenario.refused``). Findings: commercial data sent with an act that takes none were silently
dropped; a member named twice (event or transient map) was taken with its last value, where the gateway refuses
it; commercial data without a ``nonce`` were accepted, and their hash — on the broker's peer — gave the value
away to a few thousand guesses (now refused: ``InvalidEvent``)."""
from __future__ import annotations

import hashlib
import json

import pytest

from ipledger.chaincode.contract import InwardProcessingContract
from ipledger.chaincode.contract.state import canonical_json
from ipledger.chaincode.shim.contract_api import Contract, transaction
from ipledger.chaincode.testing.scenario import AUTH_ID, SITE1, SITE2, USED_TYRES, Scenario, iso, mrn

SECRET = "98765.43"          # a customs value no other field of the scenario holds
NONCE = "f3a9c1d27be84e0a9d6c5b4a3f2e1d0c"


def placement(lot_id: str, **extra) -> dict:
    return {"authorisation_id": AUTH_ID, "lot_id": lot_id, "mrn": mrn("I", 7000 + len(lot_id) * 37 + sum(map(ord, lot_id))),
            "item_no": 1, "procedure": "5100", "cn": USED_TYRES, "description": "used tyres", "quantity": 10,
            "unit": "p/st", "net_mass_g": 90_000, "origin": "MA", "site": SITE1, **extra}


def value(amount: str, nonce: str | None = NONCE) -> dict:
    data = {"customs_value": {"amount": amount, "currency": "EUR"}}
    return {"commercial": {**data, "nonce": nonce} if nonce else data}


def move_event(s: Scenario, **extra) -> dict:
    return {"authorisation_id": AUTH_ID, "lot_id": "L1", "quantity": 1, "from_site": SITE1, "to_site": SITE2,
            "event_id": f"mv-{s.ledger.now.timestamp()}", "occurred_at": iso(s.ledger.now), **extra}


# ------------------------------------------------------------------------------------------- the transient map

def test_commercial_data_for_an_act_that_takes_none_are_refused(s):
    """The gateway refuses them ("takes no commercial data"); the contract dropped them silently, so a direct
    client believed an invoice price recorded (and confidential) that was nowhere."""
    for act, event, msp in (("MoveGoods", move_event(s), "OperatorMSP"),
                            ("RecordControl", {"authorisation_id": AUTH_ID, "site": SITE1,
                                               "counted": [{"lot_id": "L1", "qty": 1000}]}, "CustomsMSP")):
        details = s.refused("InvalidEvent", s.submit, act, event, msp,
                            transient={"commercial": {"invoice_price": {"amount": "1.00", "currency": "EUR"}}})
        assert details["field"] == "commercial"
    # other transient keys are not commercial data and stay ignored (nothing reads or records them)
    s.accepted(s.submit("MoveGoods", move_event(s), "OperatorMSP", transient={"trace": b"abc"}))


def test_transient_commercial_naming_a_member_twice_is_refused(s):
    """Last-wins would record a value other than the one a first-wins reader (or the sender's own check) saw."""
    raw = (b'{"customs_value":{"amount":"1.00","currency":"EUR"},'
           b'"customs_value":{"amount":"2.00","currency":"EUR"},"nonce":"' + NONCE.encode() + b'"}')
    s.refused("InvalidEvent", s.submit, "PlaceUnderProcedure", placement("LD1"), "OperatorMSP",
              transient={"commercial": raw})
    inner = (b'{"customs_value":{"amount":"1.00","amount":"2.00","currency":"EUR"},"nonce":"' + NONCE.encode() + b'"}')
    s.refused("InvalidEvent", s.submit, "PlaceUnderProcedure", placement("LD2"), "OperatorMSP",
              transient={"commercial": inner})


@pytest.mark.parametrize("raw", [b"\xff\xfe{}", b"{", b"[]", b'"25000.00"', b"NaN", b"{}",
                                 b'{"customs_value":{"amount":"1.00","currency":"EUR"},"extra":1}',
                                 b'{"customs_value":{"amount":"1.00","currency":"EUR"},"nonce":"' + b"\\ud800" * 16 + b'"}',
                                 b'{"customs_value":{"amount":"1.00","currency":"EUR"},"nonce":"short"}',
                                 b'{"customs_value":{"amount":"' + b"9" * 100_000 + b'","currency":"EUR"}}',
                                 b"[" * 100_000 + b"]" * 100_000])
def test_unreadable_commercial_data_are_refused_by_name(s, raw):
    s.refused("InvalidEvent", s.submit, "PlaceUnderProcedure", placement("LU1"), "OperatorMSP",
              transient={"commercial": raw})


def test_commercial_data_in_the_public_event_are_refused(s):
    """Every event schema is closed: a customs value put beside the event (on every peer, in clear) is refused."""
    s.refused("InvalidEvent", s.submit, "PlaceUnderProcedure",
              placement("LP1", customs_value={"amount": SECRET, "currency": "EUR"}), "OperatorMSP",
              transient=value(SECRET))
    s.refused("InvalidEvent", s.submit, "PlaceUnderProcedure", placement("LP2", commercial=value(SECRET)["commercial"]),
              "OperatorMSP", transient=value(SECRET))


# ------------------------------------------------------------------------------------------- what the broker reads

def _everything_the_broker_reads(s: Scenario) -> list[bytes]:
    reads = [("GetLot", "LS1"), ("GetLotHistory", "LS1"), ("GetBalances", AUTH_ID), ("GetAlerts", AUTH_ID),
             ("GetEventsInPeriod", AUTH_ID, s.D(-1).date().isoformat(), None),
             ("GetBillOfDischargeData", AUTH_ID), ("GetAuthorisation", AUTH_ID), ("GetDeclaration", s.ls1_mrn),
             ("GetParameters",), ("GetParties",)]
    out = []
    for fn, *args in reads:
        res = s.ledger.evaluate(s.contract, fn, args, "BrokerMSP")
        assert res.ok, (fn, res.message)
        out.append(res.payload)
    return out


def test_the_broker_reads_no_customs_value_of_the_holder(s):
    """domain.md §2: the broker sees no commercial values, hash only — in no query, event, log, alert, bill or
    public state, and not in the error of a refused transaction of its own about that lot."""
    s.ls1_mrn = placement("LS1")["mrn"]
    s.accepted(s.submit("PlaceUnderProcedure", placement("LS1"), "OperatorMSP", transient=value(SECRET)))
    s.accepted(s.submit("ExitGoods", {"authorisation_id": AUTH_ID, "lot_id": "LS1", "quantity": 2, "procedure": "3151",
                                      "mrn": mrn("E", 7100)}, "OperatorMSP",
                        transient={"commercial": {"invoice_price": {"amount": "12345.67", "currency": "EUR"},
                                                  "nonce": NONCE}}))
    public = [v for v in s.ledger.state.values()] + [p for _tx, _n, p in s.ledger.events]
    for blob in public + _everything_the_broker_reads(s):
        assert SECRET.encode() not in blob and b"12345.67" not in blob and NONCE.encode() not in blob
    lot = s.lot("LS1", msp="BrokerMSP")
    assert "commercial" not in lot and len(lot["commercial_hash"]) == 64
    assert s.lot("LS1", msp="OperatorMSP")["commercial"]["customs_value"]["amount"] == SECRET
    refused = s.exit(10_000, lot_id="LS1")                  # the broker's own refused exit names no value
    assert not refused.ok and SECRET not in refused.message


def test_commercial_data_without_a_nonce_are_refused(s):
    """Without a nonce the broker's peer holds SHA-256 of the private record ({lot_id, customs_value}), found by
    trying amounts: the contract refuses such data, whoever sends them (the REST gateway adds a nonce of its own,
    a client of Fabric's gateway might not)."""
    res = s.submit("PlaceUnderProcedure", placement("LN1"), "OperatorMSP", transient=value("25000.00", nonce=None))
    if res.ok:   # what the broker learns: the value, from its hash, in a few thousand tries
        digest = s.lot("LN1", msp="BrokerMSP")["commercial_hash"]
        found = [f"{n}.00" for n in range(20_000, 30_001)
                 if hashlib.sha256(canonical_json({"lot_id": "LN1", **value(f"{n}.00", None)["commercial"]})).hexdigest()
                 == digest]
        assert not found, f"the broker recovered the customs value {found} from its hash"
    assert res.error_code == "InvalidEvent" and "nonce" in res.message


# ------------------------------------------------------------------------------------------- hostile arguments

def test_an_event_naming_a_member_twice_is_refused(s):
    """Last-wins recorded {"quantity": 2} from a transaction whose argument, read by any first-wins parser (an
    auditor reading the block), says 1; the gateway refuses such a body, the contract now does too."""
    for raw in ('"quantity":1,"quantity":2', '"lot_id":"L1","lot_id":"L1"'):
        event = json.dumps(move_event(s))[:-1].replace('"quantity": 1, ', "").replace('"lot_id": "L1", ', "")
        arg = (event + ", " + raw + "}").encode()
        s.refused("InvalidArguments", s.ledger.invoke, s.contract, "MoveGoods", [arg], "OperatorMSP")
    nested = json.dumps(move_event(s)).replace('"from_site"', '"x": {"a": 1, "a": 2}, "from_site"').encode()
    s.refused("InvalidArguments", s.ledger.invoke, s.contract, "MoveGoods", [nested], "OperatorMSP")
    # a query argument too
    assert s.ledger.evaluate(s.contract, "GetLot", [b'{"a":1,"a":1}'], "CustomsMSP").error_code == "InvalidArguments"


@pytest.mark.parametrize("quantity, code", [("1e400", "InvalidEvent"), ("-1e400", "InvalidEvent"), ("NaN", "InvalidEvent"),
                                             ("Infinity", "InvalidEvent"), ("-0", "InvalidEvent"), ("-0.0", "InvalidEvent"),
                                             ("1.0000000000000001", "InvalidArguments"), ("9" * 5000, "InvalidArguments"),
                                             ("1" + "0" * 400, "InvalidArguments"), ("1E2", "InvalidEvent")])
def test_numbers_out_of_range_are_refused_by_name(s, quantity, code):
    event = json.dumps(move_event(s))
    arg = event.replace('"quantity": 1', f'"quantity": {quantity}').encode()
    assert arg != event.encode()
    s.refused(code, s.ledger.invoke, s.contract, "MoveGoods", [arg], "OperatorMSP")


@pytest.mark.parametrize("arg", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 900 + b"1" + b"}" * 900,
                                 b"not json", b"\"L1\"\n\"L2\""])
def test_hostile_arguments_are_refused_by_name(s, arg):
    code = s.ledger.invoke(s.contract, "MoveGoods", [arg], "OperatorMSP").error_code
    assert code in ("InvalidArguments", "InvalidEvent")
    s.refused(code, s.ledger.invoke, s.contract, "MoveGoods", [arg], "OperatorMSP")


def test_unknown_functions_and_argument_counts_are_refused_by_name(s):
    event = move_event(s)
    for fn, args, code in (("DeleteEverything", [event], "UnknownFunction"), ("ipledger:Nope", [event], "UnknownFunction"),
                           ("other:MoveGoods", [event], "UnknownFunction"), ("_record", [event], "UnknownFunction"),
                           ("__init__", [], "UnknownFunction"), ("MoveGoods", [], "InvalidArguments"),
                           ("MoveGoods", [event, event], "InvalidArguments"),
                           ("MoveGoods", [event] * 10_000, "InvalidArguments")):
        s.refused(code, s.ledger.invoke, s.contract, fn, args, "OperatorMSP")
    status, message, _ = s.contract.invoke(s.ledger.stub("x", msp="OperatorMSP"), b"\xff", [])
    assert status == 500 and json.loads(message)["code"] == "UnknownFunction"
    # an argument that is no UTF-8 (the shim hands it over as bytes)
    status, message, _ = s.contract.invoke(s.ledger.stub("MoveGoods", msp="OperatorMSP"), "MoveGoods", [b"\xff\xfe"])
    assert status == 500 and json.loads(message)["code"] == "InvalidArguments"


def test_the_contract_api_refuses_members_named_twice_for_any_contract():
    """The shim's decoding (contract_api) is the contract's: one rule for every argument of every contract."""

    class Echo(Contract):
        name = "echo"

        @transaction(submit=False)
        def Echo(self, stub, value):
            return value

    assert Echo().invoke(None, "Echo", ['{"a":{"b":1,"c":2}}']) == (200, "", b'{"a":{"b":1,"c":2}}')
    status, message, _ = Echo().invoke(None, "Echo", ['[{"b":1},{"b":2,"b":2}]'])
    assert status == 500 and json.loads(message)["code"] == "InvalidArguments" and "b" in json.loads(message)["message"]


def test_one_event_gives_one_record_whatever_the_order_of_its_members(s):
    """Determinism: the write set, answer and chaincode event of an event do not depend on the order in which its
    members (or its commercial data's) were sent — two peers parsing two serialisations agree."""
    event = placement("LO1", event_id="lo-1", occurred_at=iso(s.ledger.now))
    commercial = value(SECRET)["commercial"]
    ts = s.ledger.now
    results = []
    for order in (sorted, lambda keys: sorted(keys, reverse=True)):
        stub = s.ledger.stub("PlaceUnderProcedure", [json.dumps({k: event[k] for k in order(event)}).encode()],
                             msp="OperatorMSP", ts=ts, transient={
                                 "commercial": json.dumps({k: commercial[k] for k in order(commercial)}).encode()})
        stub._tx_id = "0" * 64
        status, message, payload = s.contract.invoke(stub, "PlaceUnderProcedure", stub.get_function_and_parameters()[1])
        assert status == 200, message
        results.append((payload, stub.event, stub.writes, stub.private_writes))
    assert results[0] == results[1]


def test_through_the_shim_a_member_named_twice_and_stray_commercial_data_are_refused():
    """The same refusals over the real stub (arguments and transient map as the peer sends them in the proposal):
    nothing is written, and the refusal names the rule."""
    import datetime as dt

    from ipledger.chaincode.testing.memstub import identity_pem
    from tests.unit.shim.shim_fakepeer import CCM, FakePeer, make_signed_proposal
    from tests.unit.shim.shim_helpers import run, shim_client

    when = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)
    contract = InwardProcessingContract(clock=lambda: when, customs_msp="CustomsMSP")
    event = {"authorisation_id": AUTH_ID, "lot_id": "L1", "quantity": 1, "from_site": SITE1, "to_site": SITE2,
             "event_id": "mv-shim", "occurred_at": iso(when)}
    cases = (
        ([b"MoveGoods", json.dumps(event).encode()[:-1] + b', "quantity": 2}'], {}, "InvalidArguments"),
        ([b"MoveGoods", json.dumps(event).encode()],
         {"commercial": b'{"invoice_price":{"amount":"1.00","currency":"EUR"}}'}, "InvalidEvent"),
    )

    async def scenario():
        async with shim_client(contract, FakePeer()) as (peer, _client, _task):
            for args, transient, code in cases:
                proposal = make_signed_proposal(txid="t-" + code, channel="ch1", mspid="OperatorMSP", args=args,
                                                cert_pem=identity_pem("OperatorMSP"), transient=transient,
                                                timestamp=when.replace(tzinfo=None))
                reply = await peer.transaction(*args, txid="t-" + code, proposal=proposal)
                response = peer.response(reply)
                assert response.status == 500 and json.loads(response.message)["code"] == code, response.message
            assert not peer.requests(CCM.PUT_STATE, CCM.WRITE_BATCH_STATE, CCM.DEL_STATE)

    run(scenario())
