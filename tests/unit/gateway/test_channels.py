"""A gateway serving several holders' channels (customs' on a consortium with a channel per holder):
each call goes to one channel — the one named (``?channel=``), the one holding the authorisation, for a grant
the one where the holder is registered — and a query is answered by the channel that knows the item."""
from __future__ import annotations

import json

import pytest

from ipledger.chaincode.testing import mrns
from ipledger.gateway.app import create_app

from tests.unit.dashboard.signin import sign_in

from .conftest import bearer
from .fakes import FakeLedger, evaluate_error, grant_body

PROBLEMS = "https://ipledger.example/problems/"
A, B = "ip-plant-a", "ip-plant-b"
EXIT_MRN = mrns.exit_mrn(7)


class ChannelLedgers:
    """One FakeLedger per channel behind the gateway's Ledger interface (calls carry ``channel``)."""

    def __init__(self, channels):
        self.by_channel = {ch: FakeLedger() for ch in channels}
        self.calls: list[tuple[str, str]] = []  # (channel, function)

    def orgs(self):
        return ["CustomsMSP"]

    def _of(self, channel, function):
        assert channel is not None, f"{function}: a gateway of several channels must name the channel"
        self.calls.append((channel, function))
        return self.by_channel[channel]

    def submit(self, org, function, args, transient=None, *, channel=None):
        return self._of(channel, function).submit(org, function, args, transient)

    def evaluate(self, org, function, args, *, timeout=None, channel=None, transient=None):
        return self._of(channel, function).evaluate(org, function, args, timeout=timeout, transient=transient)

    def block_number(self, org, tx_id, *, channel=None):
        return self._of(channel, "GetBlockByTxID").block_number(org, tx_id)

    def config_block(self, org, *, channel=None):
        return self._of(channel, "GetConfigBlock").config_block(org)

    def close(self):
        pass


def knows(ids: dict[str, set[str]]):
    """An evaluate answer: the item if its id (first argument) is in ``ids[function]``, else NotFound."""
    def answer(org, args):
        if args and args[0] in ids:
            return {"id": args[0]}
        raise evaluate_error("NotFound", f"{args[0]} not found")
    return answer


@pytest.fixture
def ledgers():
    return ChannelLedgers((A, B))


@pytest.fixture
def app(config, ledgers, keys):
    return create_app(config.with_(channel=A, channels=(A, B), customs_msp="CustomsMSP"), ledger=ledgers)


@pytest.fixture
def customs(app, keys):
    client = app.test_client()
    headers = bearer(keys[("CustomsMSP", "clerk")])

    class Caller:
        def post(self, body, **params):
            return client.post("/api/v1/events", json=body, headers=headers, query_string=params)

        def get(self, path, **params):
            return client.get(path, headers=headers, query_string=params)

    return Caller()


def set_answers(ledgers, channel, **answers):
    ledgers.by_channel[channel].answers.update(answers)


def problem(r, status, name):
    assert r.status_code == status, r.get_data(as_text=True)
    body = r.get_json()
    assert body["type"] == PROBLEMS + name, body
    return body


def event(event_type, **fields):
    return {"type": event_type, "event_id": f"ev-{event_type}-{len(json.dumps(fields))}",
            "occurred_at": "2026-03-02T09:00:00Z", **fields}


def test_an_event_goes_to_the_channel_of_its_authorisation(customs, ledgers):
    for channel, auth in ((A, "FRIPOA000001"), (B, "FRIPOB000001")):
        set_answers(ledgers, channel, GetAuthorisation=knows({auth: 1}))
    r = customs.post(event("ConfirmExit", authorisation_id="FRIPOB000001", mrn=EXIT_MRN,
                           exit_date="2026-03-02"))
    assert r.status_code == 201, r.get_data(as_text=True)
    assert r.get_json()["channel"] == B
    assert [s["function"] for s in ledgers.by_channel[B].submits] == ["ConfirmExit"]
    assert ledgers.by_channel[A].submits == []
    # an event looks on every channel each time (not on a remembered route): test_an_id_granted_on_a_second_…
    ledgers.calls.clear()
    r = customs.post(event("SuspendAuthorisation", authorisation_id="FRIPOB000001", reason="audit"))
    assert r.status_code == 201, r.get_data(as_text=True)
    assert (A, "GetAuthorisation") in ledgers.calls and ledgers.calls[-1] == (B, "SuspendAuthorisation")


def test_an_authorisation_on_no_channel_is_not_found_and_nothing_is_submitted(customs, ledgers):
    for channel in (A, B):
        set_answers(ledgers, channel, GetAuthorisation=knows({}))
    r = customs.post(event("ConfirmExit", authorisation_id="FRIPOZ000009", mrn=EXIT_MRN,
                           exit_date="2026-03-02"))
    problem(r, 404, "not-found")
    assert all(not fake.submits for fake in ledgers.by_channel.values())


def test_a_grant_goes_where_customs_registered_the_holder(customs, ledgers):
    register = {"parties": [{"msp_id": "PlantBMSP", "role": "holder", "status": "REGISTERED",
                             "eoris": ["DE33333333333333"]}]}
    set_answers(ledgers, A, GetParties={"parties": []}, GetAuthorisation=knows({}))
    set_answers(ledgers, B, GetParties=register, GetAuthorisation=knows({}))
    r = customs.post(grant_body("grant-b2", authorisation_id="FRIPOB000002", holder_eori="DE33333333333333"))
    assert r.status_code == 201 and r.get_json()["channel"] == B, r.get_data(as_text=True)
    # a holder registered nowhere: customs must name the channel
    r = customs.post(grant_body("grant-b3", authorisation_id="FRIPOB000003", holder_eori="FR99999999999999"))
    body = problem(r, 400, "channel-required")
    assert sorted(body["channels"]) == [A, B]


def test_acts_of_a_whole_channel_need_its_name(customs, ledgers):
    r = customs.post(event("SetParameters", parameters={"warn_days": 20}))
    problem(r, 400, "channel-required")
    r = customs.post(event("SetParameters", parameters={"warn_days": 20}), channel="ip-plant-z")
    problem(r, 400, "unknown-channel")
    r = customs.post(event("SetParameters", parameters={"warn_days": 20}), channel=A)
    assert r.status_code == 201 and r.get_json()["channel"] == A
    assert [s["function"] for s in ledgers.by_channel[A].submits] == ["SetParameters"]


def test_a_query_is_answered_by_the_channel_that_knows_the_item(customs, ledgers):
    set_answers(ledgers, A, GetLot=knows({"L1": 1, "LA": 1}))
    set_answers(ledgers, B, GetLot=knows({"L1": 1}))
    assert customs.get("/api/v1/lots/LA").get_json() == {"id": "LA"}
    body = problem(customs.get("/api/v1/lots/L1"), 409, "ambiguous-channel")
    assert body["channels"] == [A, B]
    ledgers.calls.clear()
    assert customs.get("/api/v1/lots/L1", channel=B).status_code == 200
    assert ledgers.calls == [(B, "GetLot")]
    problem(customs.get("/api/v1/lots/LZ"), 404, "not-found")


def test_a_ledger_failure_is_not_hidden_by_a_not_found_elsewhere(customs, ledgers):
    set_answers(ledgers, A, GetLot=knows({}))
    ledgers.by_channel[B].down = True
    problem(customs.get("/api/v1/lots/L9"), 503, "service-unavailable")


def test_members_of_every_channel(customs, ledgers):
    body = customs.get("/api/v1/members").get_json()
    assert [c["channel"] for c in body["channels"]] == [A, B]
    assert customs.get("/api/v1/members", channel=B).get_json()["channel"] == B


def test_the_members_page_shows_every_channel(app, keys):
    client = app.test_client()
    assert sign_in(client, keys[("CustomsMSP", "viewer")]).status_code == 302
    html = client.get("/dashboard/members").get_data(as_text=True)
    assert f'data-testid="channel-{A}"' in html and f'data-testid="channel-{B}"' in html
    assert html.count('<table data-testid="members">') == 2


def test_an_authorisation_id_names_one_authorisation_on_the_whole_ledger(customs, ledgers):
    set_answers(ledgers, A, GetAuthorisation=knows({"FRIPOA000001": 1}))
    set_answers(ledgers, B, GetAuthorisation=knows({}), GetParties={"parties": [
        {"msp_id": "PlantBMSP", "role": "holder", "status": "REGISTERED", "eoris": ["DE33333333333333"]}]})
    r = customs.post(grant_body("grant-dup", authorisation_id="FRIPOA000001", holder_eori="DE33333333333333"))
    assert problem(r, 409, "already-exists")["channels"] == [A]
    assert all(not fake.submits for fake in ledgers.by_channel.values())


def test_a_failing_channel_fails_the_search_rather_than_answer_for_the_wrong_holder(customs, ledgers):
    """L1 is on both channels; with B's peer failing, A's L1 is not given as *the* L1."""
    set_answers(ledgers, A, GetLot=knows({"L1": 1}))
    ledgers.by_channel[B].down = True
    problem(customs.get("/api/v1/lots/L1"), 503, "service-unavailable")
    assert customs.get("/api/v1/lots/L1", channel=A).status_code == 200


def test_a_failing_channel_is_not_a_missing_channel_name(customs, ledgers):
    set_answers(ledgers, A, GetParties={"parties": []}, GetAuthorisation=knows({}))
    ledgers.by_channel[B].down = True
    r = customs.post(grant_body("grant-down", authorisation_id="FRIPOB000009", holder_eori="DE33333333333333"))
    problem(r, 503, "service-unavailable")


def test_a_whole_channel_query_names_its_channel(customs, ledgers):
    body = problem(customs.get("/api/v1/parameters"), 400, "channel-required")
    assert body["channels"] == [A, B]
    assert customs.get("/api/v1/parameters", channel=B).status_code == 200


def test_ready_only_when_every_channel_answers(app, ledgers):
    client = app.test_client()
    r = client.get("/readyz")
    assert r.status_code == 200 and r.get_json()["orgs"] == {f"CustomsMSP on {A}": "ok", f"CustomsMSP on {B}": "ok"}
    ledgers.by_channel[B].down = True
    r = client.get("/readyz")
    assert r.status_code == 503 and r.get_json()["orgs"][f"CustomsMSP on {B}"].startswith("unavailable")


def test_an_audit_trail_takes_the_channel_as_the_query_does(customs, ledgers):
    """Two holders both number a lot L1: its audit trail was 409 ambiguous-channel "name one with the 'channel'
    parameter" — which the audit routes ignored, so customs could not get that trail at all."""
    for channel in (A, B):
        set_answers(ledgers, channel, GetLotHistory=knows({"L1": 1}), GetBatchHistory=knows({"B1": 1}))
    problem(customs.get("/api/v1/lots/L1/audit"), 409, "ambiguous-channel")
    problem(customs.get("/api/v1/batches/B1/audit"), 409, "ambiguous-channel")
    ledgers.calls.clear()
    r = customs.get("/api/v1/lots/L1/audit", channel=B)
    assert r.status_code == 200 and r.get_json() == {"lot_id": "L1", "entries": []}
    assert customs.get("/api/v1/batches/B1/audit", channel=A, format="csv").status_code == 200
    assert ledgers.calls == [(B, "GetLotHistory"), (A, "GetBatchHistory")]
    problem(customs.get("/api/v1/lots/L1/audit", channel="ip-plant-z"), 400, "unknown-channel")


def test_the_dashboard_shows_a_lot_two_holders_number_alike_on_the_channel_chosen(app, ledgers, keys):
    """Customs' dashboard: lot L1 on both holders' channels was a 409 page with no way to choose; now that page
    links the lot on each channel, ``?channel=`` shows it there, and the authorisation page's links name the
    channel of the authorisation."""
    def lot_on(channel):
        return lambda org, args: {"lot_id": args[0], "authorisation_id": f"FRIPO{channel[-1].upper()}000001",
                                  "mrn": f"mrn-on-{channel}", "item_no": 1, "unit": "p/st"}
    for channel in (A, B):
        set_answers(ledgers, channel, GetLot=lot_on(channel), GetLotHistory={"lot_id": "L1", "history": []})
    client = app.test_client()
    assert sign_in(client, keys[("CustomsMSP", "viewer")]).status_code == 302
    r = client.get("/dashboard/lots/L1")
    html = r.get_data(as_text=True)
    assert r.status_code == 409 and "text/html" in r.content_type
    assert f'href="/dashboard/lots/L1?channel={A}"' in html and f'href="/dashboard/lots/L1?channel={B}"' in html
    ledgers.calls.clear()
    r = client.get(f"/dashboard/lots/L1?channel={B}")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and f"mrn-on-{B}" in html and f"mrn-on-{A}" not in html
    assert f"/dashboard/lots/L1/audit.csv?channel={B}" in html
    assert f'href="/dashboard/authorisations/FRIPOB000001?channel={B}"' in html   # its authorisation, on B
    assert {channel for channel, _ in ledgers.calls} == {B}
    assert client.get("/dashboard/lots/L1?channel=ip-plant-z").status_code == 400
    # the authorisation page links its lots on its own channel
    auth_b = "FRIPOB000001"
    set_answers(ledgers, A, GetAuthorisation=knows({}))
    set_answers(ledgers, B, GetAuthorisation=lambda org, args: {"authorisation_id": args[0], "input_goods": []},
                GetBalances={"balances": [], "ceilings": []}, GetAlerts={"alerts": []}, GetCeilingUse={"from": "2026-01-01T00:00:00Z", "ceilings": []},
                GetBillOfDischargeData={"lots": [{"lot_id": "L1", "remaining": 1}], "remaining": []})
    html = client.get(f"/dashboard/authorisations/{auth_b}").get_data(as_text=True)
    assert f'href="/dashboard/lots/L1?channel={B}"' in html
    # a gateway upgraded before the contract: the page without its charts, said so — not a failed page

    def before_ceiling_use(org, args):
        raise evaluate_error("UnknownFunction", "unknown function 'GetCeilingUse'")
    set_answers(ledgers, B, GetCeilingUse=before_ceiling_use)
    r = client.get(f"/dashboard/authorisations/{auth_b}")
    assert r.status_code == 200 and "does not chart the ceilings yet" in r.get_data(as_text=True)
    assert f'href="/dashboard/lots/L1?channel={B}"' in r.get_data(as_text=True)


def test_the_dashboard_shows_a_batch_two_holders_number_alike_on_the_channel_chosen(app, ledgers, keys):
    """Batch B1 on both holders' channels: as for a lot, a 409 page linking it on each channel; ``?channel=`` shows
    it there — every query of the page (the batch, its history, its authorisation's alerts and bill data) on that
    channel —, its links carry the channel, and the authorisation page links its products on its channel."""
    def batch_on(channel):
        auth_id = f"FRIPO{channel[-1].upper()}000001"
        return lambda org, args: {"batch_id": args[0], "authorisation_id": auth_id, "operation_id": f"OP-{channel}",
                                  "cn": "40121200", "kind": "MAIN", "unit": "p/st", "produced": 5, "balance": 5,
                                  "stock": {"S1": 5}, "status": "OPEN", "deadline": "2027-01-01T00:00:00Z",
                                  "shares": [{"lot_id": "L1", "qty": 5, "input_qty": 5}]}
    for channel in (A, B):
        set_answers(ledgers, channel, GetBatch=batch_on(channel), GetBatchHistory={"batch_id": "B1", "history": []},
                    GetAlerts={"alerts": [{"type": "LossRateHigh", "subject": "BATCH:B1",
                                           "authorisation_id": f"FRIPO{channel[-1].upper()}000001"}]},
                    GetBillOfDischargeData={"lots": [], "processing": [], "disposals": [], "losses": [],
                                            "remaining": []})
    client = app.test_client()
    assert sign_in(client, keys[("CustomsMSP", "viewer")]).status_code == 302
    r = client.get("/dashboard/batches/B1")
    html = r.get_data(as_text=True)
    assert r.status_code == 409 and "text/html" in r.content_type
    assert f'href="/dashboard/batches/B1?channel={A}"' in html and f'href="/dashboard/batches/B1?channel={B}"' in html
    ledgers.calls.clear()
    r = client.get(f"/dashboard/batches/B1?channel={B}")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and f"OP-{B}" in html and f"OP-{A}" not in html
    assert f"/dashboard/batches/B1/audit.csv?channel={B}" in html
    assert f'href="/dashboard/authorisations/FRIPOB000001?channel={B}"' in html
    assert f'href="/dashboard/lots/L1?channel={B}"' in html                     # its lineage, on B
    assert f'href="/dashboard/batches/B1?channel={B}"' in html                  # its alert names it, on B
    assert {channel for channel, _ in ledgers.calls} == {B}
    assert client.get("/dashboard/batches/B1?channel=ip-plant-z").status_code == 400
    auth_b = "FRIPOB000001"
    set_answers(ledgers, A, GetAuthorisation=knows({}))
    set_answers(ledgers, B, GetAuthorisation=lambda org, args: {"authorisation_id": args[0], "input_goods": []},
                GetBalances={"balances": [], "ceilings": []}, GetCeilingUse={"ceilings": []},
                GetBillOfDischargeData={"lots": [], "remaining": [
                    {"goods": "BATCH", "id": "B1", "cn": "40121200", "unit": "p/st", "quantity": 5}]})
    html = client.get(f"/dashboard/authorisations/{auth_b}").get_data(as_text=True)
    assert f'href="/dashboard/batches/B1?channel={B}"' in html


def test_an_id_granted_on_a_second_holders_channel_is_refused_for_events_by_every_worker(customs, ledgers):
    """A worker that had answered a query of FRIPO000001 on A remembered that route, and once the same id was
    granted on B too (a grant no gateway could refuse: its check sees only the channels it serves), sent a
    customs act of that id to A without a word — another worker answered 409. Now an event looks on every
    channel: 409 ambiguous-channel, nothing submitted; naming the channel sends it there."""
    set_answers(ledgers, A, GetAuthorisation=knows({"FRIPO000001": 1}))
    set_answers(ledgers, B, GetAuthorisation=knows({}))
    assert customs.get("/api/v1/authorisations/FRIPO000001").status_code == 200     # the route remembered: A
    set_answers(ledgers, B, GetAuthorisation=knows({"FRIPO000001": 1}))               # granted on B since
    suspend = event("SuspendAuthorisation", authorisation_id="FRIPO000001", reason="audit")
    assert problem(customs.post(suspend), 409, "ambiguous-channel")["channels"] == [A, B]
    assert all(not fake.submits for fake in ledgers.by_channel.values())
    r = customs.post(suspend, channel=B)
    assert r.status_code == 201 and r.get_json()["channel"] == B and ledgers.by_channel[A].submits == []


@pytest.fixture
def duplicate(app, ledgers):
    """FRIPO000001 on both holders' channels, FRIPO000002 on A only; the gateway knows both ids."""
    def only(ids, answer):
        """``answer`` for an authorisation of ``ids``, else NotFound (as the contract answers)."""
        def evaluate(org, args):
            if args[0] not in ids:
                raise evaluate_error("NotFound", f"{args[0]} not found")
            return answer(org, args)
        return evaluate

    for channel, ids in ((A, {"FRIPO000001", "FRIPO000002"}), (B, {"FRIPO000001"})):
        set_answers(ledgers, channel, GetAuthorisation=only(ids, lambda org, args, channel=channel: {
            "authorisation_id": args[0], "holder_eori": f"holder-on-{channel}"}),
            GetAlerts=only(ids, lambda org, args, channel=channel: {"alerts": [{"type": "CeilingNear",
                                                                                "authorisation_id": args[0], "on": channel}]}),
            GetBalances=only(ids, lambda org, args: {"balances": [], "ceilings": []}),
            GetBillOfDischargeData=only(ids, lambda org, args, channel=channel: {
                "holder_eori": f"holder-on-{channel}", "lots": [], "document_hash": channel,
                "remaining": [{"goods": "LOT", "id": f"L-{channel}", "cn": "40122000", "quantity": 1,
                               "unit": "p/st", "deadline": "2026-09-01T00:00:00Z", "status": "OPEN"}]}))
    for auth_id in ("FRIPO000001", "FRIPO000002"):
        app.extensions["ipledger_live"].store.add_authorisation(auth_id, "CustomsMSP")
    return app


def test_views_across_holders_show_an_id_on_two_channels_on_each(duplicate, customs, keys):
    """One id on two holders' channels took every view of customs across holders down — the alerts (even with
    ``?channel=``), the known authorisations, the inventory: 409 for every holder. Each now shows the id on each
    channel, naming it; with ``?channel=`` that channel's only."""
    r = customs.get("/api/v1/alerts")
    assert r.status_code == 200, r.get_data(as_text=True)
    assert sorted((a["authorisation_id"], a["on"], a.get("channel")) for a in r.get_json()["alerts"]) == \
        [("FRIPO000001", A, A), ("FRIPO000001", B, B), ("FRIPO000002", A, A)]   # every alert names its channel
    r = customs.get("/api/v1/alerts", channel=B)
    assert r.status_code == 200 and [(a["authorisation_id"], a["on"]) for a in r.get_json()["alerts"]] == \
        [("FRIPO000001", B)]
    assert customs.get("/api/v1/dashboard/authorisations").get_json()["authorisations"] == \
        ["FRIPO000001", "FRIPO000002"]
    r = customs.get("/api/v1/reports/inventory", as_of="2026-06-01")
    assert r.status_code == 200, r.get_data(as_text=True)
    assert [(s["authorisation_id"], s.get("channel"), s["holder_eori"]) for s in r.get_json()["authorisations"]] == \
        [("FRIPO000001", A, f"holder-on-{A}"), ("FRIPO000001", B, f"holder-on-{B}"), ("FRIPO000002", None, f"holder-on-{A}")]
    client = duplicate.test_client()
    assert sign_in(client, keys[("CustomsMSP", "viewer")]).status_code == 302
    html = client.get("/dashboard/").get_data(as_text=True)
    assert f'href="/dashboard/authorisations/FRIPO000001?channel={B}"' in html
    assert f'href="/dashboard/authorisations/FRIPO000001?channel={A}"' in html


def test_views_across_holders_look_on_every_channel_even_after_a_query_remembered_one(app, ledgers, customs):
    """A worker that answered a query of FRIPO000001 while it was on A alone remembered A; once it was granted on B
    too, its views across holders showed A's alerts and stock alone, unlabelled. They look on every channel."""
    set_answers(ledgers, A, GetAuthorisation=knows({"FRIPO000001": 1}))
    set_answers(ledgers, B, GetAuthorisation=knows({}))
    assert customs.get("/api/v1/authorisations/FRIPO000001").status_code == 200     # the route remembered: A
    for channel in (A, B):
        set_answers(ledgers, channel, GetAuthorisation=knows({"FRIPO000001": 1}),
                    GetAlerts=lambda org, args, channel=channel: {"alerts": [{"type": "CeilingNear", "on": channel,
                                                                              "authorisation_id": args[0]}]})
    app.extensions["ipledger_live"].store.add_authorisation("FRIPO000001", "CustomsMSP")
    r = customs.get("/api/v1/alerts")
    assert sorted((a["on"], a.get("channel")) for a in r.get_json()["alerts"]) == [(A, A), (B, B)]


def test_time_alerts_of_an_id_on_two_channels_are_delivered_for_each(duplicate, ledgers, tmp_path):
    """The webhook poll of time alerts asked each known id without a channel: an id on two holders' channels was
    409 at every poll and its time alerts never went out. Each channel's are delivered, naming the channel."""
    from ipledger.gateway.webhooks import AlertRouter, Deliveries, Dispatcher, Subscriptions

    for channel, ids in ((A, {"FRIPO000001", "FRIPO000002"}), (B, {"FRIPO000001"})):
        set_answers(ledgers, channel, GetAlerts=lambda org, args, channel=channel, ids=ids: {"alerts": [
            {"type": "DeadlineOverdue", "subject": f"LOT:L-{channel}", "source": "DERIVED",
             "authorisation_id": args[0], "details": {}}] if args[0] == "FRIPO000001" else []}
            if args[0] in ids else (_ for _ in ()).throw(evaluate_error("NotFound", "not found")))
    live = duplicate.extensions["ipledger_live"]
    subs = Subscriptions(tmp_path / "webhooks.json")
    subs.add("https://customs.example/hook", "CustomsMSP")
    deliveries = Deliveries(live.store)
    router = AlertRouter(subs, deliveries, live.visibility, duplicate.extensions["ipledger"].service, live.store)
    with duplicate.app_context():
        assert router.poll_time_alerts() == 2
    sent = []
    dispatcher = Dispatcher(subs, deliveries, router=router, visibility=live.visibility,
                            post=lambda url, body, headers, timeout: sent.append(json.loads(body)) or 204)
    while dispatcher.run_once():   # a subscription's deliveries go one after the other
        pass
    assert sorted((b["alert"]["subject"], b["channel"], b["alert"]["channel"]) for b in sent) == \
        [(f"LOT:L-{A}", A, A), (f"LOT:L-{B}", B, B)]



def test_a_view_across_holders_asks_each_channel_once_for_an_id_on_two(app, ledgers, customs):
    """The alerts of an id on two holders' channels were looked up on every channel, found on both, then asked of
    each channel again: twice the round trips for every duplicated id. Each channel's first answer is shown."""
    for channel in (A, B):
        set_answers(ledgers, channel, GetAlerts=lambda org, args, channel=channel: {"alerts": [
            {"type": "CeilingNear", "on": channel, "authorisation_id": args[0]}]})
    app.extensions["ipledger_live"].store.add_authorisation("FRIPO000001", "CustomsMSP")
    ledgers.calls.clear()
    r = customs.get("/api/v1/alerts")
    assert r.status_code == 200, r.get_data(as_text=True)
    assert sorted((a["on"], a["channel"]) for a in r.get_json()["alerts"]) == [(A, A), (B, B)]
    assert sorted(call for call in ledgers.calls if call[1] == "GetAlerts") == [(A, "GetAlerts"), (B, "GetAlerts")]


def test_the_dashboards_downloads_are_of_the_channel_its_page_shows(duplicate, keys):
    """FRIPO000001 on both holders' channels: its page on B links its downloads on B (the authorisation page's
    links named no channel: on this gateway they could only be answered 409); each is B's document; without a
    channel a download is the 409 page linking the same download on each channel; an unknown channel is a 400."""
    client = duplicate.test_client()
    assert sign_in(client, keys[("CustomsMSP", "viewer")]).status_code == 302
    page = "/dashboard/authorisations/FRIPO000001"
    html = client.get(page, query_string={"channel": B}).get_data(as_text=True)
    for document in ("audit.csv", "audit.json", "bill-of-discharge.pdf", "bill-of-discharge.csv"):
        assert f'href="{page}/{document}?channel={B}"' in html, document
    bill = client.get(f"{page}/bill-of-discharge.csv", query_string={"channel": B})
    assert bill.status_code == 200 and bill.headers["Content-Disposition"].startswith("attachment;")
    text = bill.get_data(as_text=True)
    assert f"L-{B}" in text and f"L-{A}" not in text   # its stock on B only
    r = client.get(f"{page}/bill-of-discharge.csv")
    html = r.get_data(as_text=True)
    assert r.status_code == 409 and r.mimetype == "text/html"
    assert f'href="{page}/bill-of-discharge.csv?channel={A}"' in html
    assert f'href="{page}/bill-of-discharge.csv?channel={B}"' in html
    assert client.get(f"{page}/audit.csv", query_string={"channel": "ip-plant-z"}).status_code == 400


def test_the_409_page_of_a_download_keeps_the_question_on_each_channel(duplicate, keys):
    """An id on two holders' channels: the 409 page of the March bill linked the same download on each channel
    without ``?period_end=`` — each link the bill as of now. The links keep the request's parameters."""
    client = duplicate.test_client()
    assert sign_in(client, keys[("CustomsMSP", "viewer")]).status_code == 302
    page = "/dashboard/authorisations/FRIPO000001"
    r = client.get(f"{page}/bill-of-discharge.csv", query_string={"period_end": "2026-03-31"})
    html = r.get_data(as_text=True).replace("&amp;", "&")
    assert r.status_code == 409
    for channel in (A, B):
        assert f'href="{page}/bill-of-discharge.csv?period_end=2026-03-31&channel={channel}"' in html, html


@pytest.mark.parametrize("query", ["_external=1&_scheme=http&_anchor=x", "lot_id=L2", "_method=POST", "endpoint=x"])
def test_the_409_page_builds_its_links_from_the_query_not_from_url_for_options(app, ledgers, keys, query):
    """The 409 page passed the request's query keys to url_for as arguments: ``?_external=1&_scheme=http`` made
    absolute plain-HTTP links on the request's Host, ``?lot_id=L2`` or ``?_method=POST`` a 500. The query is
    encoded after the page's own path."""
    for channel in (A, B):
        set_answers(ledgers, channel, GetLot=lambda org, args: {"lot_id": args[0], "authorisation_id": "FRIPO000001"})
    client = app.test_client()
    assert sign_in(client, keys[("CustomsMSP", "viewer")]).status_code == 302
    r = client.get(f"/dashboard/lots/L1?{query}")
    html = r.get_data(as_text=True).replace("&amp;", "&")
    assert r.status_code == 409, html
    for channel in (A, B):
        assert f'href="/dashboard/lots/L1?{query.replace("#", "%23")}&channel={channel}"' in html, html
