"""Balance answers given again while the channel's height is unchanged (gateway/answers.py)."""
from __future__ import annotations

import pytest

from ipledger.gateway.answers import AnswerCache
from ipledger.gateway.app import create_app
from ipledger.gateway.config import ConfigError, GatewayConfig

from .conftest import bearer
from .fakes import AUTH_ID, FakeLedger, evaluate_error, grant_body


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_an_answer_is_given_again_for_its_height_only():
    cache = AnswerCache(5.0)
    cache.put("k", 7, b"seven")
    assert cache.get("k", 7) == b"seven"
    assert cache.get("k", 8) is None       # a block was committed since: dropped
    assert cache.get("k", 7) is None       # and not given again for the old height either
    assert cache.get("other", 7) is None


def test_an_answer_older_than_max_age_is_not_given_again():
    clock = Clock()
    cache = AnswerCache(2.0, clock=clock)
    cache.put("k", 7, b"seven")
    clock.now += 1.9
    assert cache.get("k", 7) == b"seven"
    clock.now += 0.2
    assert cache.get("k", 7) is None


def test_the_least_recently_used_answer_goes_first():
    cache = AnswerCache(5.0, size=2)
    cache.put("a", 1, b"a")
    cache.put("b", 1, b"b")
    assert cache.get("a", 1) == b"a"       # a is now the most recent
    cache.put("c", 1, b"c")
    assert (cache.get("a", 1), cache.get("b", 1), cache.get("c", 1)) == (b"a", None, b"c")
    assert len(cache) == 2


def test_no_cache_without_a_positive_age():
    with pytest.raises(ValueError):
        AnswerCache(0)


# --------------------------------------------------------------------------- through the API


@pytest.fixture
def cached(tmp_path, keystore, keys):
    """An app whose balance answers are kept (as a served gateway's), over a fake ledger whose balances
    follow its submits."""
    ledger = FakeLedger()
    ledger.answers["GetBalances"] = lambda org, args: {"authorisation_id": args[0], "org": org,
                                                       "submits": len(ledger.submits)}
    config = GatewayConfig(keys_file=keystore.path, nonce_key_file=tmp_path / "state" / "gateway" / "nonce.key",
                           query_cache_s=5.0)
    client = create_app(config, ledger=ledger).test_client()

    def get(org="CustomsMSP", auth=AUTH_ID):
        r = client.get(f"/api/v1/authorisations/{auth}/balances", headers=bearer(keys[(org, "viewer")]))
        return r

    def evaluated(function="GetBalances"):
        return sum(1 for e in ledger.evaluations if e["function"] == function)

    return ledger, client, get, evaluated


def test_a_repeated_balance_query_reads_the_height_and_not_the_contract(cached, keys):
    ledger, client, get, evaluated = cached
    first = get()
    assert first.status_code == 200 and first.json["submits"] == 0
    for _ in range(3):
        again = get()
        assert again.status_code == 200 and again.json == first.json
    assert evaluated() == 1 and evaluated("GetChainInfo") == 4
    metrics = client.get("/metrics", headers=bearer(keys[("CustomsMSP", "viewer")])).get_data(as_text=True)
    assert 'ipledger_gateway_query_answers_total{function="GetBalances",outcome="reused"} 3.0' in metrics
    assert 'ipledger_gateway_query_answers_total{function="GetBalances",outcome="evaluated"} 1.0' in metrics


def test_a_commit_makes_the_next_query_evaluate_again(cached, keys):
    ledger, client, get, evaluated = cached
    assert get().json["submits"] == 0
    r = client.post("/api/v1/events", json=grant_body("grant-cache"), headers=bearer(keys[("CustomsMSP", "clerk")]))
    assert r.status_code == 201, r.get_json()
    assert get().json["submits"] == 1      # the height moved: not the answer of before
    assert evaluated() == 2


def test_a_commit_by_anyone_else_is_seen_too(cached):
    """The height is the peer's: a block written without this gateway drops the kept answer all the same."""
    ledger, client, get, evaluated = cached
    assert get().json["submits"] == 0
    ledger.submits.append({"by": "another gateway"})
    ledger._height += 1
    assert get().json["submits"] == 1


def test_answers_are_kept_per_org_and_authorisation(cached):
    ledger, client, get, evaluated = cached
    assert get("CustomsMSP").json["org"] == "CustomsMSP"
    assert get("OperatorMSP").json["org"] == "OperatorMSP"
    assert get("CustomsMSP", "FRIPO000002").json["authorisation_id"] == "FRIPO000002"
    assert evaluated() == 3
    get("CustomsMSP"), get("OperatorMSP")
    assert evaluated() == 3


def test_a_refusal_is_not_kept(cached):
    ledger, client, get, evaluated = cached
    ledger.evaluate_failures.append(evaluate_error("NotFound", "no authorisation FRIPO000009"))
    assert get(auth="FRIPO000009").status_code == 404
    assert get(auth="FRIPO000009").status_code == 200   # asked again, answered this time
    assert evaluated() == 2


def test_other_queries_are_always_evaluated(cached, keys):
    ledger, client, get, evaluated = cached
    for _ in range(2):
        assert client.get(f"/api/v1/authorisations/{AUTH_ID}/alerts",
                          headers=bearer(keys[("CustomsMSP", "viewer")])).status_code == 200
    assert evaluated("GetAlerts") == 2 and evaluated("GetChainInfo") == 0


def test_a_peer_down_while_reading_the_height_is_a_503(cached):
    ledger, client, get, evaluated = cached
    assert get().status_code == 200
    ledger.down = True
    r = get()
    assert r.status_code == 503 and r.headers["Retry-After"]


def test_off_in_process_by_default_and_its_setting_checked():
    assert GatewayConfig().query_cache_s == 0
    from ipledger.gateway.config import SERVED_QUERY_CACHE_S, _seconds
    assert SERVED_QUERY_CACHE_S > 0
    assert _seconds("IPLEDGER_QUERY_CACHE_S", "0") == 0
    for bad in ("-1", "soon", "inf", "nan"):
        with pytest.raises(ConfigError, match="IPLEDGER_QUERY_CACHE_S"):
            _seconds("IPLEDGER_QUERY_CACHE_S", bad)
