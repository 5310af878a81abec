"""Contract API dispatch rules (no network)."""
import json

import pytest

from ipledger.chaincode.shim.contract_api import ChaincodeError, Contract, transaction


class QuantityExceedsBalance(ChaincodeError):
    code = "QuantityExceedsBalance"


class Ledger(Contract):
    """Test ledger."""

    name = "ipledger"

    @transaction
    def Discharge(self, stub, auth_id, quantity):
        """Discharge a quantity."""
        if quantity > 3:
            raise QuantityExceedsBalance("not enough left", balance=3, requested=quantity)
        return {"auth": auth_id, "left": 3 - quantity, "b": [1, 2]}

    @transaction(submit=False)
    def Read(self, stub, auth_id):
        return None

    @transaction(name="Renamed")
    def _internal(self, stub):
        return "ok"

    @transaction
    def Crash(self, stub):
        raise KeyError("missing thing")

    @transaction
    def NotJson(self, stub):
        return b"raw"

    @transaction
    def Inner(self, stub):
        # a TypeError raised inside the method is not an arity error
        return len(5)

    def helper(self, stub):  # not a transaction
        return 1


def err(res):
    status, message, payload = res
    assert status == 500 and payload == b""
    return json.loads(message)


def test_success_payload_is_compact_sorted_json():
    status, message, payload = Ledger().invoke(None, "Discharge", ['"A1"', "2"])
    assert (status, message) == (200, "")
    assert payload == b'{"auth":"A1","b":[1,2],"left":1}'


def test_contract_prefix_and_none_result():
    assert Ledger().invoke(None, "ipledger:Read", ['"A1"']) == (200, "", b"")
    assert Ledger().invoke(None, "Renamed", []) == (200, "", b'"ok"')
    e = err(Ledger().invoke(None, "other:Read", ['"A1"']))
    assert e["code"] == "UnknownFunction"


def test_business_error_is_500_with_json_code():
    e = err(Ledger().invoke(None, "Discharge", ['"A1"', "5"]))
    assert e == {"code": "QuantityExceedsBalance", "message": "not enough left",
                 "details": {"balance": 3, "requested": 5}}


def test_unknown_function_and_non_transactions():
    for fn in ("Nope", "helper", "_internal", ""):
        assert err(Ledger().invoke(None, fn, []))["code"] == "UnknownFunction", fn


def test_arity_and_json_errors():
    e = err(Ledger().invoke(None, "Discharge", ['"A1"']))
    assert e["code"] == "InvalidArguments" and e["details"]["expected"] == ["auth_id", "quantity"]
    e = err(Ledger().invoke(None, "Discharge", ["A1", "2"]))
    assert e["code"] == "InvalidArguments" and "argument 1 is not valid JSON" in e["message"]
    e = err(Ledger().invoke(None, "Discharge", [b"\xff\xfe", "2"]))
    assert e["code"] == "InvalidArguments" and "UTF-8" in e["message"]


def test_other_exceptions_are_internal_errors_without_traceback():
    e = err(Ledger().invoke(None, "Crash", []))
    assert e["code"] == "InternalError" and "missing thing" in e["message"]
    assert "Traceback" not in e["message"]
    e = err(Ledger().invoke(None, "Inner", []))
    assert e["code"] == "InternalError"
    e = err(Ledger().invoke(None, "NotJson", []))
    assert e["code"] == "InternalError" and "JSON" in e["message"]


@pytest.mark.parametrize("fn", ["org.hyperledger.fabric:GetMetadata", "GetMetadata"])
def test_metadata(fn):
    status, _, payload = Ledger().invoke(None, fn, [])
    assert status == 200
    md = json.loads(payload)
    txs = {t["name"]: t for t in md["contracts"]["ipledger"]["transactions"]}
    assert set(txs) == {"Discharge", "Read", "Renamed", "Crash", "NotJson", "Inner"}
    assert txs["Discharge"]["tag"] == ["submit"] and txs["Discharge"]["submit"] is True
    assert txs["Read"]["tag"] == ["evaluate"] and txs["Read"]["submit"] is False
    assert txs["Discharge"]["description"] == "Discharge a quantity."
    assert [p["name"] for p in txs["Discharge"]["parameters"]] == ["auth_id", "quantity"]


def test_chaincode_error_attributes():
    e = QuantityExceedsBalance("m", a=1)
    assert (e.code, e.message, e.details, str(e)) == ("QuantityExceedsBalance", "m", {"a": 1}, "m")
    assert ChaincodeError("x").code == "ChaincodeError"
