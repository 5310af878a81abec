"""Integers of more than 30 digits are refused by name, the same on every host; a contract too busy with the
organisation's other transactions is a 503 to send again."""
from __future__ import annotations

import pytest

from ipledger.gateway import jsonread

from .conftest import bearer

EVENT = ('{"type": "MoveGoods", "event_id": "e1", "occurred_at": "2026-12-03T10:00:00.000000Z", '
         '"authorisation_id": "FRIPO000001", "lot_id": "L1", "from_site": "A", "to_site": "B", "quantity": %s}')


@pytest.mark.parametrize("digits", [31, 5000])
def test_an_integer_of_more_than_30_digits_is_refused_by_name(client, keys, ledger, digits):
    r = client.post("/api/v1/events", data=EVENT % ("7" * digits),
                    headers={**bearer(keys[("OperatorMSP", "clerk")]), "Content-Type": "application/json"})
    assert r.status_code == 400 and r.get_json()["type"].endswith("/bad-request")
    assert "more than 30 digits" in r.get_json()["detail"]
    assert "sys.set_int_max_str_digits" not in r.get_json()["detail"]
    assert ledger.submits == []


def test_integers_up_to_30_digits_are_read():
    assert jsonread.loads('{"q": %s}' % ("9" * 30)) == {"q": int("9" * 30)}
    assert jsonread.loads('[-%s]' % ("9" * 30)) == [-int("9" * 30)]
    with pytest.raises(jsonread.Unreadable, match="more than 30 digits"):
        jsonread.loads('[-%s]' % ("9" * 31))


@pytest.mark.parametrize("reading, says", [(False, "nothing was recorded"), (True, "nothing was changed")])
def test_a_contract_too_busy_with_the_organisations_other_transactions_is_503_to_send_again(reading, says):
    """The chaincode's fair admission answers a proposal that waited too long for its organisation's turn (ERROR,
    which the peer passes on as a failure of the simulation): nothing ran — a 503 to send again."""
    import grpc

    from ipledger.gateway.client import EndorseError
    from ipledger.gateway.problems import from_gateway_error
    from ipledger.network.fabric.errors import ErrorDetail
    detail = ("error in simulation: transaction returned with failure: chaincode busy with OperatorMSP's other "
              "transactions for more than 5 s: nothing was done, send it again")
    exc = EndorseError("failed to endorse transaction, see attached details for more info",
                       code=grpc.StatusCode.ABORTED, tx_id="ab" * 32,
                       details=[ErrorDetail("127.0.0.1:7120", "CustomsMSP", detail)])
    problem = from_gateway_error(exc, 7, reading=reading)
    assert (problem.status, problem.headers["Retry-After"], problem.extra["reason"]) == (503, "7", "contract-busy")
    assert says in problem.detail
