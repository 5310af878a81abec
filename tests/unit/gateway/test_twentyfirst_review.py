"""The twenty-first review's findings on the gateway (docs/status.md): an integer of thousands of digits was
refused with Python's own advice about its digit limit; the contract and the gateway now refuse integers of more
than 30 digits by name, the same on every host."""
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
