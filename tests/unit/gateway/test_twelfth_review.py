"""Findings of the twelfth review (the REST gateway), each reproduced first."""
from __future__ import annotations

import json
import re

from .conftest import bearer
from .fakes import place_body


def _calls(ledger, function):
    return [e["args"] for e in ledger.evaluations if e["function"] == function]


def test_a_query_parameter_given_twice_is_refused_not_read_as_the_first(client, keys, ledger):
    """`?as_of=2026-01-01&as_of=2027-01-01` answered for 2026-01-01, saying nothing of the second (a body member
    named twice is a 400 for the same reason: which one is meant is not certain)."""
    h = bearer(keys[("OperatorMSP", "clerk")])
    for url in ("/api/v1/authorisations/FRIPO000001/alerts?as_of=2026-01-01&as_of=2027-01-01",
                "/api/v1/authorisations/FRIPO000001/bill-of-discharge-data?period_end=2026-06-30&period_end=2026-12-31",
                "/api/v1/reports/bill-of-discharge/FRIPO000001?as_of=2026-06-30&format=json&format=csv",
                "/api/v1/lots/L1?channel=a&channel=b"):
        before = len(ledger.evaluations)
        r = client.get(url, headers=h)
        assert r.status_code == 400 and r.mimetype == "application/problem+json", url
        assert r.get_json()["type"].endswith("/invalid-parameter") and "given 2 times" in r.get_json()["detail"]
        assert len(ledger.evaluations) == before, "nothing was asked of the ledger"
    assert client.get("/api/v1/authorisations/FRIPO000001/alerts?as_of=2026-01-01", headers=h).status_code == 200
    # the one parameter meant to repeat still does
    r = client.get("/api/v1/reports/inventory?as_of=2026-03-03&authorisation_id=FRIPO000001"
                   "&authorisation_id=FRIPO000002", headers=bearer(keys[("CustomsMSP", "viewer")]))
    assert r.status_code == 200, r.get_data(as_text=True)


def test_a_request_id_with_a_line_feed_is_replaced_not_answered_with_a_500(client, keys):
    r = client.get("/api/v1/lots/L1", headers=bearer(keys[("OperatorMSP", "clerk")]),
                   environ_overrides={"HTTP_X_REQUEST_ID": "abc\n"})
    assert r.status_code == 200 and re.fullmatch(r"[0-9a-f]{32}", r.headers["X-Request-Id"])


def test_errors_in_commercial_data_are_cut_as_the_events_are(client, keys):
    """400,000 unknown members of `commercial` made an 8.5 MB answer naming each twice."""
    h = {**bearer(keys[("OperatorMSP", "clerk")]), "Content-Type": "application/json"}
    body = place_body()
    body["commercial"] = {**body["commercial"], **{f"x{i}": i for i in range(100_000)}}
    r = client.post("/api/v1/events", data=json.dumps(body), headers=h)
    assert r.status_code == 400 and len(r.data) < 4_000
    messages = [e["message"] for e in r.get_json()["errors"]]
    assert messages and all(len(m) <= 300 for m in messages) and any(m.endswith("...") for m in messages)


def _signed_in(client, key):
    page = client.get("/dashboard/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    assert client.post("/dashboard/login", data={"csrf": csrf, "api_key": key}).status_code == 302
    page = client.get("/dashboard/").get_data(as_text=True)
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def test_the_dashboard_does_not_fold_look_alike_letters_into_another_id(client, keys, ledger):
    """`.upper()` made "frıpo000001" (a dotless i) and "ſ" (a long s) the ASCII id FRIPO000001 / S: the page
    then bookmarked an authorisation other than the one typed (the API refuses the same text)."""
    csrf = _signed_in(client, keys[("OperatorMSP", "viewer")])
    for typed in ("  frıpo000001\u2003", "FRIPO00000ſ", "ﬀRIPO000001"):
        before = len(_calls(ledger, "GetAuthorisation"))
        r = client.post("/dashboard/authorisations", data={"csrf": csrf, "authorisation_id": typed})
        assert r.status_code == 302 and "add_error=malformed" in r.headers["Location"], typed
        assert len(_calls(ledger, "GetAuthorisation")) == before
    r = client.post("/dashboard/authorisations", data={"csrf": csrf, "authorisation_id": " fripo000001 "})
    assert "added=FRIPO000001" in r.headers["Location"]   # ASCII lower case is still taken


def test_block_numbers_past_the_budget_keep_the_channel_asked():
    """`with_blocks` reused its `channel` argument for each look-up's answer: after the budget (or a tx not found)
    the entries said `"channel": null` and the next look-ups searched every channel instead of the one asked."""
    import types
    from ipledger.gateway.service import LedgerService
    svc = LedgerService.__new__(LedgerService)
    svc.config = types.SimpleNamespace(block_lookups=2, all_channels=["ip-a", "ip-b"])
    asked = []

    def locate(org, tx_id, channel=None):
        asked.append(channel)
        return (None, None) if tx_id == "t-lost" else (channel, 7)
    svc.locate = locate
    out = svc.with_blocks("CustomsMSP", [{"tx_id": "t-lost"}, {"tx_id": "t1"}, {"tx_id": "t2"}, {"n": 1}],
                          channel="ip-b")
    assert asked == ["ip-b", "ip-b"]
    assert [(e.get("channel"), e.get("block_number")) for e in out] == \
        [("ip-b", None), ("ip-b", 7), ("ip-b", None), (None, None)]
