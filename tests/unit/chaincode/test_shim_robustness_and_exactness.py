"""The chaincode's determinism, shim robustness and exactness: every transaction gets an answer, and text and numbers
read alike on every host.

F1 — the shim sent no answer at all for a transaction whose reply could not be built: a response message that is
not Unicode text (a lone surrogate, e.g. from an argument echoed in an error's details: protobuf refuses to encode
it), a status outside int32, or a contract raising a ``BaseException`` that is no ``Exception``. ``_execute``'s
``finally`` marked the transaction finished with no reply, so the guard in ``_switch`` sent nothing either: the peer
waited for the transaction until its execute timeout. Every transaction is now answered (an ERROR when no
COMPLETED can be built).

F2 — the contract API's error JSON (``ChaincodeError.to_json``, ``error_message``) kept a lone surrogate of a message
or detail as it was: no UTF-8 encoding exists for it, so the message could not be sent (F1). It is now written as
its JSON escape (``\\ud800``): valid JSON, the same value once decoded.

F3 — a query argument holding a lone surrogate (``"L1\\ud800"``: JSON lets a client write one) passed the contract's
key-part check and failed in the composite-key encoding as an ``InternalError`` (``ValueError``), where the contract
answers ``InvalidIdentifier`` for every key part it is asked for.

F4 — an argument or a transient entry nested deeper than the interpreter's recursion limit failed to decode with a
``RecursionError``: an ``InternalError`` rather than ``InvalidArguments`` (``InvalidEvent`` for the transient map),
the answer to every other argument that is not JSON the contract can read.

F5 — the event log's month bucket (``timestamps.month_of``) used ``strftime("%Y")``, whose padding of years before
1000 depends on the C library (glibc: ``999``; others ``0999``): keys written on one platform differed from another
peer's, and from the months every reader scans (``months_between``: ``0999-03``), so such an event was in no period.
"""
from __future__ import annotations

import datetime as dt
import json

import pytest

from ipledger.chaincode.contract import InwardProcessingContract, timestamps
from ipledger.chaincode.shim.contract_api import ChaincodeError, Contract, error_message, transaction
from ipledger.chaincode.testing.scenario import AUTH_ID, SITE1, USED_TYRES, Scenario, mrn
from tests.unit.shim.shim_fakepeer import CCM, FakePeer
from tests.unit.shim.shim_helpers import run, shim_client

pytestmark = pytest.mark.timeout(120)

UTC = dt.timezone.utc


@pytest.fixture
def s() -> Scenario:
    return Scenario.with_l1(InwardProcessingContract)


# ---------------------------------------------------------------------------------------- F1, F2: always an answer

class _Fatal(BaseException):
    """Not an Exception: what a contract could raise beyond ``Contract.invoke``'s reach."""


class Awkward(Contract):
    name = "awkward"

    @transaction
    def Surrogate(self, stub, text):
        raise ChaincodeError(f"cannot use {text}", value=text)

    @transaction
    def Fatal(self, stub):
        stub.put_state("half", b"written")
        raise _Fatal("stop")

    @transaction
    def Fine(self, stub):
        return "fine"


class RawStatus:
    """A contract (no Contract API) answering a status no protobuf int32 holds."""

    def invoke(self, stub, function, args):
        return (2**40, "", b"") if function == "Huge" else (200, "", b'"fine"')


@pytest.mark.parametrize("mode", ["inline", "threads"])
def test_a_reply_that_cannot_be_encoded_still_answers_the_peer(mode):
    workers = {"max_workers": 4} if mode == "threads" else {}

    async def body():
        async with shim_client(Awkward(), **workers) as (peer, _client, task):
            done = await peer.transaction("Surrogate", '"L1\\ud800"', timeout=5)
            reply = FakePeer.response(done)
            assert reply.status == 500
            error = json.loads(reply.message)   # valid UTF-8, valid JSON: the escape decodes to the same text
            assert error["code"] == "ChaincodeError" and error["details"]["value"] == "L1\ud800"
            assert FakePeer.response(await peer.transaction("Fine", timeout=5)).status == 200
            assert not task.done()

    run(body())


@pytest.mark.parametrize("mode", ["inline", "threads"])
def test_a_contract_raising_a_base_exception_still_answers_the_peer(mode):
    workers = {"max_workers": 4} if mode == "threads" else {}

    async def body():
        async with shim_client(Awkward(), **workers) as (peer, _client, task):
            done = await peer.transaction("Fatal", timeout=5)
            assert done.type == CCM.ERROR and done.payload == b"chaincode shim failure"
            assert FakePeer.response(await peer.transaction("Fine", timeout=5)).status == 200
            assert not task.done()

    run(body())


def test_a_status_outside_int32_still_answers_the_peer():
    async def body():
        async with shim_client(RawStatus()) as (peer, _client, task):
            done = await peer.transaction("Huge", timeout=5)
            assert done.type == CCM.ERROR
            assert FakePeer.response(await peer.transaction("Fine", timeout=5)).status == 200
            assert not task.done()

    run(body())


def test_error_json_is_utf8_whatever_the_text():
    for text in (ChaincodeError("bad \ud800", value="\udfff\\", ok="é").to_json(),
                 error_message("InternalError", "x\udc80y", {"type": "ValueError"})):
        raw = text.encode("utf-8")                       # raised UnicodeEncodeError
        decoded = json.loads(raw)
        assert "\ud800" in decoded.get("message", "") or decoded["message"] == "x\udc80y"
    assert json.loads(ChaincodeError("bad \ud800", value="\udfff\\", ok="é").to_json().encode())["details"] == \
        {"value": "\udfff\\", "ok": "é"}
    assert ChaincodeError("plain é", n=1).to_json() == '{"code":"ChaincodeError","details":{"n":1},"message":"plain é"}'


def test_the_contract_answers_a_query_echoing_a_surrogate_in_utf8(s):
    res = s.ledger.evaluate(s.contract, "GetEventsInPeriod", [AUTH_ID, "2026-01-01", "\ud800" * 10], "CustomsMSP")
    assert not res.ok and res.error_code in ("InvalidEvent", "InvalidIdentifier")
    res.message.encode("utf-8")


# ---------------------------------------------------------------------------------------- F3: surrogates in key parts

@pytest.mark.parametrize("fn, arg", [("GetLot", "L1\ud800"), ("GetAuthorisation", "FR\udfff"),
                                     ("GetDeclaration", "\ud800"), ("GetBatchHistory", "B\udc00"),
                                     ("GetBillOfDischarge", "BOD-\ud800-2026-01-31")])
def test_query_arguments_with_a_lone_surrogate_are_invalid_identifiers(s, fn, arg):
    res = s.ledger.evaluate(s.contract, fn, [arg], "CustomsMSP")
    assert res.error_code == "InvalidIdentifier", res.message
    res.message.encode("utf-8")


def test_require_key_part_refuses_lone_surrogates():
    from ipledger.chaincode.contract.errors import InvalidIdentifier
    from ipledger.chaincode.contract.identifiers import require_key_part

    assert require_key_part("L1-é-\U0001F600") == "L1-é-\U0001F600"   # text, astral characters included
    for bad in ("\ud800", "a\udfffb"):
        with pytest.raises(InvalidIdentifier):
            require_key_part(bad)


# ---------------------------------------------------------------------------------------- F4: nesting

def test_an_argument_nested_too_deeply_is_invalid_arguments(s):
    deep = ("[" * 100_000 + "]" * 100_000).encode()
    res = s.ledger.evaluate(s.contract, "GetLot", [deep], "CustomsMSP")
    assert res.error_code == "InvalidArguments", res.message


def test_a_transient_entry_nested_too_deeply_is_invalid_event(s):
    deep = ('{"customs_value":' + "[" * 100_000 + "]" * 100_000 + "}").encode()
    event = {"authorisation_id": AUTH_ID, "lot_id": "L2", "mrn": mrn("I", 424242), "item_no": 1,
             "procedure": "5100", "cn": USED_TYRES, "description": "used tyres", "quantity": 10, "unit": "p/st",
             "origin": "MA", "site": SITE1}
    res = s.submit("PlaceUnderProcedure", event, "BrokerMSP", transient={"commercial": deep})
    assert res.error_code == "InvalidEvent", res.message


# ---------------------------------------------------------------------------------------- F5: month buckets

def test_the_month_bucket_is_fixed_width_on_every_platform():
    early = dt.datetime(999, 3, 2, 9, 0, tzinfo=UTC)
    assert timestamps.month_of(early) == "0999-03" == timestamps.months_between(early, early)[0]
    assert timestamps.month_of(dt.datetime(2026, 11, 30, 23, 59, tzinfo=UTC)) == "2026-11"


def test_events_of_a_ledger_time_before_year_1000_are_in_their_period():
    sc = Scenario(InwardProcessingContract, day=dt.datetime(999, 3, 2, 9, 0, tzinfo=UTC))
    sc.accepted(sc.grant())
    sc.accepted(sc.place("L1", 10))
    events = sc.query("GetEventsInPeriod", AUTH_ID, "0999-01-01", "0999-12-31")["events"]
    assert [e["event_type"] for e in events] == ["GrantAuthorisation", "PlaceUnderProcedure"]


# ---------------------------------------------------------------------------------------- F6: exact numbers only

def _grant_text(s: Scenario, auth_id: str, rate_text: str) -> bytes:
    """A grant event as the JSON text a client sends, its rate of yield written as ``rate_text``."""
    from ipledger.chaincode.testing.scenario import authorisation_fields
    event = {"authorisation_id": auth_id, "event_id": f"grant-{auth_id}", "occurred_at": s.ledger.now.isoformat(),
             **authorisation_fields(s.day)}
    return json.dumps(event).replace('"output_per_input": 1', f'"output_per_input": {rate_text}').encode()


def test_a_rate_with_more_digits_than_a_double_holds_is_refused_and_changes_nothing(s):
    """F6 — a number in an argument was parsed as a float: ``1.0000000000000001`` was applied as 1, silently (the
    gateway refuses it, a client of the peers could send it). It is refused by name; the ledger is unchanged."""
    before = dict(s.ledger._committed.state)
    res = s.ledger.invoke(s.contract, "GrantAuthorisation", [_grant_text(s, "FRIPOEXACT", "1.0000000000000001")],
                          s.customs_msp)
    assert res.error_code == "InvalidArguments", res.message
    assert "1.0000000000000001" in res.message and "digits" in res.message
    assert s.ledger._committed.state == before


@pytest.mark.parametrize("n, text", list(enumerate(["1.5", "0.1", "1.50", "2e0", "0.30000000000000004"])))
def test_a_rate_a_double_holds_exactly_is_taken(s, n, text):
    auth_id = f"FRIPOEXACT{n}"
    res = s.ledger.invoke(s.contract, "GrantAuthorisation", [_grant_text(s, auth_id, text)], s.customs_msp)
    assert res.error_code is None, res.message
    assert s.query("GetAuthorisation", auth_id)["yield_rates"][0]["output_per_input"] is not None


@pytest.mark.parametrize("text", ["0e425000001", "0e1000000000000000000", "1E-99999", "5e+00001"])
def test_a_number_with_a_long_exponent_is_refused_the_same_on_every_host(s, text):
    """Python's decimal numbers refuse exponents past a limit that depends on the build (past
    425,000,000 on a 32-bit host, 10^18 on a 64-bit one: an ``InternalError`` there), so one peer would take an
    argument another refuses — every exponent of more than four digits is refused by name, on every host."""
    before = dict(s.ledger._committed.state)
    res = s.ledger.invoke(s.contract, "GrantAuthorisation", [_grant_text(s, "FRIPOEXP", text)], s.customs_msp)
    assert res.error_code == "InvalidArguments", res.message
    assert s.ledger._committed.state == before


def test_a_short_exponent_is_still_read(s):
    res = s.ledger.invoke(s.contract, "GrantAuthorisation", [_grant_text(s, "FRIPOEXP5", "1e0000")], s.customs_msp)
    assert res.error_code is None, res.message
