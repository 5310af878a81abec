"""The REST gateway against hostile input (repeated parameters, request ids, oversized errors, look-alike ids) and audit
trails' block look-ups within their budget."""
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


def test_block_numbers_the_feed_holds_need_no_look_up_and_no_budget(tmp_path):
    """A trail's block numbers were asked of the peer one transaction at a time (qscc GetBlockByTxID, a whole
    block each), at most 500 an answer: a bill's proof or an audit trail of more transactions showed `null` past
    them. Every transaction of the contract is in the feed database with its block: read there first."""
    import types
    from ipledger.gateway.feed.store import FeedStore
    from ipledger.gateway.service import LedgerService
    store = FeedStore(tmp_path / "dashboard.sqlite")
    store.add_events([(10 + n, f"t{n}", {"authorisation_id": "A", "events": []}, None) for n in range(5)])
    svc = LedgerService.__new__(LedgerService)
    svc.config = types.SimpleNamespace(block_lookups=1, all_channels=["ip"], channel="ip")
    svc.use_block_index(store)
    asked = []

    def locate(org, tx_id, channel=None):
        asked.append(tx_id)
        return ("ip", 99)
    svc.locate = locate
    entries = [{"tx_id": f"t{n}"} for n in range(5)] + [{"tx_id": "u1"}, {"tx_id": "u2"}]
    out = svc.with_blocks("OperatorMSP", entries)
    assert [e["block_number"] for e in out] == [10, 11, 12, 13, 14, 99, None]
    assert asked == ["u1"]     # only what the feed does not hold is looked up, within the budget
    store.save_endorsement("t1", {"creator": {"msp_id": "OperatorMSP"}})          # the audit trail's cache, read at once
    assert store.endorsements_of(["t1", "t2", "t1"]) == {"t1": {"creator": {"msp_id": "OperatorMSP"}}}

    # a gateway of several channels: a transaction found on another channel than the one asked is not taken
    many = FeedStore(tmp_path / "many.sqlite")
    many.add_events([(3, "ta", {"events": []}, "ip-a"), (4, "tb", {"events": []}, "ip-b")])
    svc.config = types.SimpleNamespace(block_lookups=0, all_channels=["ip-a", "ip-b"], channel="ip-a")
    svc.use_block_index(many)
    assert [(e["channel"], e["block_number"]) for e in svc.with_blocks("CustomsMSP", [{"tx_id": "ta"}, {"tx_id": "tb"}],
                                                                        channel="ip-b")] == [("ip-b", None), ("ip-b", 4)]
    assert [(e["channel"], e["block_number"]) for e in svc.with_blocks("CustomsMSP", [{"tx_id": "ta"}, {"tx_id": "tb"}])] \
        == [("ip-a", 3), ("ip-b", 4)]


def test_an_audit_trail_reads_each_block_once_and_at_most_its_budget_of_blocks(monkeypatch):
    """The trail's endorsers were read with one Deliver call per entry; with every entry's block number known (the
    feed), an authorisation's trail would read thousands. Each block is read once for its transactions, at most
    ``block_reads`` blocks an answer; what was read is cached, so the next answer reads the rest."""
    from ipledger.gateway.audit import AuditTrail

    class Service:
        def with_blocks(self, org, raw, channel):
            return [{**e, "block_number": int(e["tx_id"][1])} for e in raw]

    class Store:
        def __init__(self):
            self.saved = {}

        def endorsements_of(self, tx_ids):
            return {t: self.saved[t] for t in tx_ids if t in self.saved}

        def save_endorsement(self, tx_id, info):
            self.saved[tx_id] = info

    class Reader:
        def __init__(self):
            self.read = []

        def block(self, org, number):
            self.read.append(number)
            return number

    import ipledger.gateway.audit as audit_mod
    monkeypatch.setattr(audit_mod, "transaction_info", lambda block, tx_id: {
        "creator": {"msp_id": "OperatorMSP", "subject": tx_id}, "endorsing_orgs": ["CustomsMSP"], "endorsers": [],
        "validation_code": "VALID", "block_number": block})
    reader, store = Reader(), Store()
    trail = AuditTrail(Service(), store, reader, block_reads=2)
    raw = [{"tx_id": t} for t in ("t1a", "t1b", "t2a", "t3a", "t1a")]
    first = trail._entries("OperatorMSP", raw)
    assert reader.read == [1, 2]
    assert [e["submitter_subject"] for e in first] == ["t1a", "t1b", "t2a", None, "t1a"]
    second = trail._entries("OperatorMSP", raw)
    assert reader.read == [1, 2, 3] and second[3]["submitter_subject"] == "t3a"
