"""An ERP's backlog imported in another order than the goods moved (the twenty-first review): the refusals other
events can cure say so (``may_succeed_later``), and ``ipledger import`` sends those lines again after the rest of
the file, by their ``occurred_at``, instead of recording them REFUSED for good. The REST API and the importer
over the real contract in memory (contract_ledger.ContractLedger), through a real HTTP server."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest

from ipledger.chaincode.testing import mrns
from ipledger.gateway.importer import Importer
from tests.unit.loopback import served

from .conftest import AUTH, RETREADED, SITE1, SITE2, WASTE, bearer, grant, place
from .contract_ledger import ledger_now


def ago(days: float) -> str:
    return (ledger_now() - dt.timedelta(days=days)).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def ev(kind: str, event_id: str, when: str, **fields) -> dict:
    return {"type": kind, "event_id": event_id, "occurred_at": when, "authorisation_id": AUTH, **fields}


def backlog() -> list[dict]:
    """A week of the plant, in business order: placed, moved, processed, exited, a loss."""
    return [
        {**place("L1", 1000, mrns.placement_mrn(1)), "event_id": "erp-1", "occurred_at": ago(7)},
        ev("MoveGoods", "erp-2", ago(6), lot_id="L1", quantity=400, from_site=SITE1, to_site=SITE2),
        ev("RecordProcessing", "erp-3", ago(5), operation_id="OP1", site=SITE2, inputs=[{"lot_id": "L1", "qty": 400}],
           outputs=[{"batch_id": "B1", "cn": RETREADED, "qty": 398, "unit": "p/st", "kind": "MAIN"},
                    {"batch_id": "B2", "cn": WASTE, "qty": 100, "unit": "kg", "kind": "WASTE"}]),
        ev("ExitGoods", "erp-4", ago(4), batch_id="B1", quantity=398, procedure="3151", mrn=mrns.exit_mrn(1)),
        ev("RecordLoss", "erp-5", ago(3), lot_id="L1", quantity=5, reason="NATURE", evidence_hash="a" * 64),
    ]


@pytest.fixture
def server(app):
    with served(app) as url:
        yield url


class CountingImporter(Importer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sent: list[str] = []

    def _post(self, body, line):
        self.sent.append(body["event_id"])
        return super()._post(body, line)


def importer(server, keys) -> CountingImporter:
    return CountingImporter(server, keys[("OperatorMSP", "clerk")], progress=None, sleep=lambda _s: None)


def write(tmp_path, bodies: list[dict]):
    path = tmp_path / "backlog.jsonl"
    path.write_text("".join(json.dumps(b) + "\n" for b in bodies))
    return path


def report(path) -> dict[str, dict]:
    return {row["event_id"]: row for row in csv.DictReader(io.StringIO(path.read_text()))}


def test_a_refusal_another_event_can_cure_says_so_and_a_final_one_does_not(client, keys, api):
    api.post(grant(), "CustomsMSP")
    move = ev("MoveGoods", "early-1", ago(1), lot_id="L1", quantity=10, from_site=SITE1, to_site=SITE2)
    r = client.post("/api/v1/events", json=move, headers=bearer(keys[("OperatorMSP", "clerk")]))
    assert r.status_code == 404 and r.get_json()["code"] == "NotFound"
    assert r.get_json()["may_succeed_later"] is True
    api.post({**place("L1", 1000, mrns.placement_mrn(1)), "occurred_at": ago(2)}, "OperatorMSP")
    too_much = ev("ExitGoods", "early-2", ago(0.5), lot_id="L1", quantity=1001, procedure="3151",
                  mrn=mrns.exit_mrn(1))
    r = client.post("/api/v1/events", json=too_much, headers=bearer(keys[("OperatorMSP", "clerk")]))
    assert r.status_code == 409 and r.get_json()["may_succeed_later"] is True      # a placement may still come
    wrong_site = {**move, "event_id": "final-1", "to_site": "PARIS-9"}
    r = client.post("/api/v1/events", json=wrong_site, headers=bearer(keys[("OperatorMSP", "clerk")]))
    assert r.status_code == 409 and r.get_json()["code"] == "SiteNotAuthorised"
    assert "may_succeed_later" not in r.get_json()


def test_a_backlog_listed_out_of_order_is_recorded_whole_each_event_once(server, keys, api, tmp_path):
    api.post(grant(), "CustomsMSP")
    b = backlog()
    path = write(tmp_path, [b[4], b[3], b[2], b[1], b[0]])   # the loss first, the placement last
    imp = importer(server, keys)
    assert imp.run(path, report=tmp_path / "r.csv") == 0
    rows = report(tmp_path / "r.csv")
    assert {e: r["outcome"] for e, r in rows.items()} == {f"erp-{n}": "COMMITTED" for n in range(1, 6)}
    # one pass after the file, by occurred_at: placement (in the file), move, processing, exit, loss
    assert imp.sent == ["erp-5", "erp-4", "erp-3", "erp-2", "erp-1", "erp-2", "erp-3", "erp-4", "erp-5"]
    lot = api.get("/api/v1/lots/L1", "OperatorMSP").get_json()
    assert (lot["consumed"], lot["lost"], lot["stock"]) == (400, 5, {SITE1: 595})
    assert api.get("/api/v1/batches/B1", "OperatorMSP").get_json()["stock"] == {}
    assert imp.run(path) == 0 and imp.sent[9:] == []            # all recorded: nothing sent again


def test_a_line_nothing_in_the_file_allows_is_refused_after_the_passes(server, keys, api, tmp_path):
    api.post(grant(), "CustomsMSP")
    orphan = ev("MoveGoods", "erp-9", ago(2), lot_id="L9", quantity=1, from_site=SITE1, to_site=SITE2)
    path = write(tmp_path, [orphan, backlog()[0]])
    imp = importer(server, keys)
    assert imp.run(path, report=tmp_path / "r.csv") == 1
    rows = report(tmp_path / "r.csv")
    assert rows["erp-1"]["outcome"] == "COMMITTED"
    assert (rows["erp-9"]["outcome"], rows["erp-9"]["status"], rows["erp-9"]["problem_type"]) == \
        ("REFUSED", "404", "not-found")
    assert "L9" in rows["erp-9"]["detail"]
    assert rows["erp-9"]["tx_id"] == ""                          # no transaction was ordered for it
    assert imp.sent == ["erp-9", "erp-1", "erp-9"]               # sent again once: the pass recorded nothing
    assert imp.run(path) == 1 and imp.sent[3:] == []             # REFUSED stays final ...


def test_retry_refused_sends_an_earlier_runs_refusals_again(server, keys, api, tmp_path):
    api.post(grant(), "CustomsMSP")
    move = ev("MoveGoods", "erp-2", ago(6), lot_id="L1", quantity=400, from_site=SITE1, to_site=SITE2)
    path = write(tmp_path, [move])
    imp = importer(server, keys)
    assert imp.run(path) == 1                                    # the placement is in another file
    api.post({**backlog()[0]}, "OperatorMSP")                    # ... which arrives
    assert imp.run(path, report=tmp_path / "r.csv", retry_refused=True) == 0
    assert report(tmp_path / "r.csv")["erp-2"]["outcome"] == "COMMITTED"
    assert api.get("/api/v1/lots/L1", "OperatorMSP").get_json()["stock"] == {SITE1: 600, SITE2: 400}


def test_the_cli_takes_retry_refused(monkeypatch, tmp_path):
    from ipledger.network import cli
    seen = {}

    def run(self, path, **kwargs):
        seen.update(kwargs)
        return 0
    monkeypatch.setattr(Importer, "run", run)
    monkeypatch.setenv("IPLEDGER_API_KEY", "k" * 43)
    path = tmp_path / "x.jsonl"
    path.write_text("")
    assert cli.main(["import", str(path), "--url", "http://127.0.0.1:9", "--retry-refused"]) == 0
    assert seen["retry_refused"] is True
