"""Acceptance: a year at the tyre-retreading plant, played through the REST gateway (domain.md, gateway/README.md).

One file, one long test for the year: the harness's fixtures (``ledger``, ``keys``, ``app``, ``api`` in conftest.py) are function-scoped
(they live in ``tmp_path``), so a module-scoped state shared by several test functions is not possible without
changing the harness; each step of the year builds on the previous ones and is checked where it happens.

Everything is done as an ERP or the organisations' users would: HTTP requests to the Flask app with the
organisations' API keys — never a direct contract call. Time passes by moving the in-memory ledger's clock
forward (``ledger.scenario.ledger.now``: the transaction timestamp and the endorsing peer's clock, as
test_page_figures.py does); every event's ``occurred_at`` is that ledger time, so nothing is backdated.
Day D is the harness ledger's start, 09:00 UTC two days after the real clock's date (contract_ledger.anchored_day):
a step at D + n.1 falls on day n whatever the hour the suite runs (a D taken from the real clock at 23:59 put
D + 55.1 on day 56), and the real clock, which the ledger follows when it is ahead, never catches up with the year.

Expected figures are computed here from domain.md's rules, not read from the system:
authorisation valid D−30 → D+335, input 40122000 used tyres (p/st, ceiling 5,000), main product 40121200
retreaded tyres (p/st, rate of yield 1 → 1), secondary 40040000 rubber waste (kg, no yield check), tolerances
left to their defaults (warn 2 %, block 5 %), discharge period 90 days, sites BOURGES-1 and BOURGES-2.

Where the project departs from the shared specification on purpose (docs/domain.md, "Deviations": a lot's
deadline from the declaration's acceptance (`occurred_at`, art. 257), late recording alerted rather than
refused, an authorisation without tolerances following customs' parameters, a batch's deadline from the lots
still in it), the year does not lean on the difference.
"""
from __future__ import annotations

import datetime as dt
import hashlib

from .conftest import BROKER_EORI, HOLDER

AUTH, OTHER_AUTH = "FRIPO000123", "FRIPO000124"
OFFICE = "FR000110"
S1, S2 = "BOURGES-1", "BOURGES-2"
USED, RETREADED, WASTE = "40122000", "40121200", "40040000"
PERIOD = 90
PROBLEM = "https://ipledger.example/problems/"


# -- MRNs as domain.md §2b defines them (year, country, 12 alphanumerics, category, ISO 6346 check) -------------
def _value(c: str) -> int:
    if c.isdigit():
        return int(c)
    v, table = 10, {}
    for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        v += v % 11 == 0          # 11, 22, 33 skipped
        table[letter] = v
        v += 1
    return table[c]


def mrn(n: int, category: str) -> str:
    head = f"26FR{n:012d}{category}"
    return head + str(sum(_value(c) * 2 ** i for i, c in enumerate(head)) % 11 % 10)


IMPORT, EXPORT = "R", "A"
MRN = {"L1": mrn(900001, IMPORT), "L2": mrn(900002, IMPORT), "L3": mrn(900003, IMPORT), "L9": mrn(900009, IMPORT),
       "M1": mrn(900011, IMPORT), "X1": mrn(900101, EXPORT), "X2": mrn(900102, IMPORT), "X3": mrn(900103, EXPORT),
       "X4": mrn(900104, IMPORT), "X5": mrn(900105, EXPORT), "X6": mrn(900106, EXPORT)}


def evidence(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Plant:
    """The year's actors: the ledger clock (day D + n) and HTTP calls with each organisation's key."""

    def __init__(self, api, ledger):
        self.api, self.ledger = api, ledger
        self.D = ledger.scenario.ledger.now

    # time
    def at(self, days: float) -> None:
        moment = self.D + dt.timedelta(days=days)
        assert moment > self.ledger.scenario.ledger.now, "the year only moves forward"
        self.ledger.scenario.ledger.now = moment

    def day(self, days: float) -> str:
        return (self.D + dt.timedelta(days=days)).date().isoformat()

    # calls
    def ev(self, event_type: str, event_id: str, **fields) -> dict:
        now = self.ledger.scenario.ledger.now.isoformat().replace("+00:00", "Z")
        return {"type": event_type, "event_id": event_id, "occurred_at": now, **fields}

    def post(self, body: dict, org: str, status: int = 201) -> dict:
        return self.api.post(body, org, status)

    def refused(self, body: dict, org: str, status: int, problem: str, code: str | None = None,
                unchanged: tuple[str, ...] = ()) -> dict:
        """A refusal with the named problem, and nothing written: the goods named in ``unchanged`` (API paths)
        and the authorisation's event log read the same before and after."""
        before = {p: self.get(p, "CustomsMSP") for p in unchanged}
        log = self.log()
        p = self.post(body, org, status)
        assert p["type"] == PROBLEM + problem, p
        if code:
            assert p["code"] == code, p
        assert {q: self.get(q, "CustomsMSP") for q in unchanged} == before
        assert self.log() == log
        return p

    def log(self):
        """The authorisation's event log (GetEventsInPeriod) as customs read it (404 before the grant)."""
        r = self.api.get(f"/api/v1/authorisations/{AUTH}/events?from={self.day(-30)}", "CustomsMSP")
        return r.status_code, r.get_json().get("events") if r.status_code == 200 else None

    def get(self, path: str, org: str, status: int = 200):
        r = self.api.get(path, org)
        assert r.status_code == status, (path, r.get_data(as_text=True))
        return r.get_json()

    def lot(self, lot_id: str, org: str = "OperatorMSP") -> dict:
        return self.get(f"/api/v1/lots/{lot_id}", org)

    def batch(self, batch_id: str, org: str = "OperatorMSP") -> dict:
        return self.get(f"/api/v1/batches/{batch_id}", org)

    def alerts(self, as_of: str | None = None) -> list[dict]:
        q = f"?as_of={as_of}" if as_of else ""
        return self.get(f"/api/v1/authorisations/{AUTH}/alerts{q}", "CustomsMSP")["alerts"]

    def alert_types(self, as_of: str | None = None) -> set[str]:
        return {a["type"] for a in self.alerts(as_of)}

    # events
    def grant(self, auth_id=AUTH, mandates=(BROKER_EORI,), event_id=None, **over) -> dict:
        fields = dict(authorisation_id=auth_id, holder_eori=HOLDER, supervising_office=OFFICE,
                      valid_from=self.day(-30), valid_to=self.day(335), sites=[S1, S2],
                      input_goods=[{"cn": USED, "description": "used tyres", "unit": "p/st", "max_qty": 5000}],
                      processed_products=[{"cn": RETREADED, "kind": "MAIN", "unit": "p/st"},
                                          {"cn": WASTE, "kind": "SECONDARY", "unit": "kg"}],
                      yield_rates=[{"input_cn": USED, "output_cn": RETREADED, "output_per_input": 1}],
                      discharge_period_days=PERIOD, broker_mandates=list(mandates))
        return self.ev("GrantAuthorisation", event_id or f"grant-{auth_id}", **{**fields, **over})

    def place(self, lot_id, qty, site, value, auth_id=AUTH, event_id=None) -> dict:
        return self.ev("PlaceUnderProcedure", event_id or f"erp-place-{lot_id}", authorisation_id=auth_id,
                       lot_id=lot_id, mrn=MRN[lot_id], item_no=1, procedure="5100", cn=USED,
                       description="used truck tyres", quantity=qty, unit="p/st", net_mass_g=qty * 55_000,
                       origin="MA", site=site, commercial={"customs_value": {"amount": value, "currency": "EUR"}})

    def process(self, event_id, op_id, site, inputs, main_batch, main_qty, waste_batch=None, waste_kg=0) -> dict:
        outputs = [{"batch_id": main_batch, "cn": RETREADED, "qty": main_qty, "unit": "p/st", "kind": "MAIN"}]
        if waste_batch:
            outputs.append({"batch_id": waste_batch, "cn": WASTE, "qty": waste_kg, "unit": "kg", "kind": "SECONDARY"})
        return self.ev("RecordProcessing", event_id, authorisation_id=AUTH, operation_id=op_id, site=site,
                       inputs=[{"lot_id": lot, "qty": q} for lot, q in inputs], outputs=outputs)

    def exit(self, event_id, goods_id, qty, procedure, mrn_, batch=True) -> dict:
        key = "batch_id" if batch else "lot_id"
        return self.ev("ExitGoods", event_id, authorisation_id=AUTH, **{key: goods_id}, quantity=qty,
                       procedure=procedure, mrn=mrn_)


def stock(record: dict) -> dict:
    return {site: q for site, q in record["stock"].items() if q}


def test_a_year_at_the_retreading_plant(api, ledger):
    y = Plant(api, ledger)
    assert mrn(110000001, "R") == "26FR000110000001R8" and mrn(110000007, "A") == "26FR000110000007A7"   # §2b

    # == D: customs register the holder and its broker, and grant the authorisation (§2, §3) ==================
    reg = y.post(y.ev("RegisterParty", "reg-plant", msp_id="OperatorMSP", role="holder", eoris=[HOLDER],
                      name="Retreading plant, Bourges"), "CustomsMSP")
    assert reg["status"] == "COMMITTED" and reg["result"]["party"]["status"] == "REGISTERED"
    reg = y.post(y.ev("RegisterParty", "reg-broker", msp_id="BrokerMSP", role="representative",
                      eoris=[BROKER_EORI], name="Customs broker"), "CustomsMSP")
    assert reg["result"]["party"]["role"] == "representative"
    y.refused(y.ev("RegisterParty", "reg-self", msp_id="OperatorMSP", role="holder", eoris=[HOLDER]),
              "OperatorMSP", 403, "not-permitted")                    # only customs keep the register
    y.refused(y.grant(event_id="grant-by-plant"), "OperatorMSP", 403, "not-permitted")
    granted = y.post(y.grant(), "CustomsMSP")["result"]["authorisation"]
    assert granted["status"] == "ACTIVE" and granted["sites"] == [S1, S2] and granted["version"] == 1
    auth = y.get(f"/api/v1/authorisations/{AUTH}", "BrokerMSP")          # the broker holds a mandate
    assert auth["holder_eori"] == HOLDER and auth["discharge_period_days"] == PERIOD
    # a second authorisation of the same holder, without a mandate for the broker
    y.post(y.grant(OTHER_AUTH, mandates=()), "CustomsMSP")

    # == D: the broker places L1 (1,000 p/st at BOURGES-1, 25,000 EUR) ========================================
    place_l1 = y.place("L1", 1000, S1, "25000.00")
    first = y.post(place_l1, "BrokerMSP")
    assert first["status"] == "COMMITTED" and first["org"] == "BrokerMSP"
    l1 = y.lot("L1")
    assert (l1["placed"], l1["balance"], stock(l1), l1["status"]) == (1000, 1000, {S1: 1000}, "OPEN")
    assert l1["mrn"] == MRN["L1"] and l1["deadline"][:10] == y.day(PERIOD)     # acceptance + 90 days (§3)
    assert l1["commercial"]["customs_value"] == {"amount": "25000.00", "currency": "EUR"}   # the holder sees it
    # an operator's placement in the other authorisation
    y.post(y.place("M1", 100, S1, "2500.00", auth_id=OTHER_AUTH), "OperatorMSP")

    # == D+1: L2, 800 p/st at BOURGES-2, 20,000 EUR ===========================================================
    y.at(1)
    y.post(y.place("L2", 800, S2, "20000.00"), "BrokerMSP")
    assert y.lot("L2")["deadline"][:10] == y.day(1 + PERIOD)
    # the same declaration (MRN + item) again: refused, nothing written
    dup = y.place("L2", 800, S2, "20000.00", event_id="erp-place-L2b")
    y.refused({**dup, "lot_id": "L2B"}, "BrokerMSP", 409, "duplicate-declaration", "DuplicateDeclaration",
              unchanged=("/api/v1/lots/L2",))
    balances = y.get(f"/api/v1/authorisations/{AUTH}/balances", "CustomsMSP")
    (ceiling,) = balances["ceilings"]
    assert (ceiling["cn"], ceiling["quantity"], ceiling["max_qty"]) == (USED, 1800, 5000)

    # == D+2: the operator moves 300 of L1 to BOURGES-2 (§4 MoveGoods) =========================================
    y.at(2)
    y.post(y.ev("MoveGoods", "erp-move-1", authorisation_id=AUTH, lot_id="L1", quantity=300, from_site=S1,
                to_site=S2), "OperatorMSP")
    assert stock(y.lot("L1")) == {S1: 700, S2: 300} and y.lot("L1")["balance"] == 1000
    y.refused(y.ev("MoveGoods", "erp-move-2", authorisation_id=AUTH, lot_id="L1", quantity=301, from_site=S2,
                   to_site=S1), "OperatorMSP", 409, "quantity-exceeds-balance", "QuantityExceedsBalance",
              unchanged=("/api/v1/lots/L1",))
    y.refused(y.ev("MoveGoods", "erp-move-3", authorisation_id=AUTH, lot_id="L1", quantity=10, from_site=S1,
                   to_site="VIERZON-1"), "OperatorMSP", 409, "site-not-authorised", "SiteNotAuthorised",
              unchanged=("/api/v1/lots/L1",))
    y.refused(y.ev("MoveGoods", "brk-move", authorisation_id=AUTH, lot_id="L1", quantity=10, from_site=S1,
                   to_site=S2), "BrokerMSP", 403, "not-permitted", unchanged=("/api/v1/lots/L1",))

    # == D+5: OP1 at BOURGES-1: 500 of L1 → 495 retreaded (B1) + 2,000 kg waste (B2): 1 % ≤ 2 %, no alert =====
    y.at(5)
    op1 = y.post(y.process("erp-op1", "OP1", S1, [("L1", 500)], "B1", 495, "B2", 2000), "OperatorMSP")
    assert op1["status"] == "COMMITTED"
    assert y.batch("B1")["produced"] == 495 and y.batch("B2")["produced"] == 2000
    b1 = y.batch("B1")
    assert b1["source_lots"] == [{"lot_id": "L1", "qty": 500}] and b1["deadline"] == y.lot("L1")["deadline"]
    assert (b1["kind"], b1["cn"], b1["unit"], stock(b1)) == ("MAIN", RETREADED, "p/st", {S1: 495})
    l1 = y.lot("L1")
    assert (l1["consumed"], l1["balance"], stock(l1)) == (500, 500, {S1: 200, S2: 300})
    assert "YieldDeviation" not in y.alert_types()

    # == D+10: OP2 at BOURGES-2: 300 of L1 + 200 of L2 → 485 (3 %: over warn 2 %, under block 5 %) ============
    y.at(10)
    y.post(y.process("erp-op2", "OP2", S2, [("L1", 300), ("L2", 200)], "B3", 485, "B4", 1500), "OperatorMSP")
    (dev,) = [a for a in y.alerts() if a["type"] == "YieldDeviation"]
    assert dev["authorisation_id"] == AUTH and "OP2" in (dev["subject"] + str(dev["details"]))
    assert y.lot("L1")["consumed"] == 800 and stock(y.lot("L1")) == {S1: 200}
    assert y.lot("L2")["balance"] == 600 and stock(y.lot("L2")) == {S2: 600}
    # OP3 first sent with 200 → 188 (6 % > 5 %): YieldOutOfTolerance, nothing written
    y.refused(y.process("erp-op3-bad", "OP3", S1, [("L1", 200)], "B5", 188), "OperatorMSP", 409,
              "yield-out-of-tolerance", "YieldOutOfTolerance", unchanged=("/api/v1/lots/L1",))
    assert api.get("/api/v1/batches/B5", "OperatorMSP").status_code == 404
    # processing more than the stock at the site: refused
    y.refused(y.process("erp-op3-much", "OP3", S1, [("L1", 201)], "B5", 201), "OperatorMSP", 409,
              "quantity-exceeds-balance", "QuantityExceedsBalance", unchanged=("/api/v1/lots/L1",))

    # == D+12: OP3 again: 200 of L1 → 200 (exact yield) ========================================================
    y.at(12)
    y.post(y.process("erp-op3", "OP3", S1, [("L1", 200)], "B5", 200), "OperatorMSP")
    l1 = y.lot("L1")
    assert (l1["consumed"], l1["balance"], stock(l1)) == (1000, 0, {})

    # == D+20: the broker re-exports B1 (495, 3151); customs confirm the exit =================================
    y.at(20)
    y.post(y.exit("brk-exit-B1", "B1", 495, "3151", MRN["X1"]), "BrokerMSP")
    assert y.batch("B1")["exited"] == {"3151": 495}
    y.refused(y.ev("ConfirmExit", "brk-confirm", authorisation_id=AUTH, mrn=MRN["X1"], exit_date=y.day(20)),
              "BrokerMSP", 403, "not-permitted")
    y.post(y.ev("ConfirmExit", "cus-confirm-X1", authorisation_id=AUTH, mrn=MRN["X1"], exit_date=y.day(20)),
           "CustomsMSP")
    # an export MRN used twice: refused (the exit MRN is unused, §4)
    y.refused(y.exit("brk-exit-B3-dup", "B3", 1, "3151", MRN["X1"]), "BrokerMSP", 409, "duplicate-declaration",
              "DuplicateDeclaration", unchanged=("/api/v1/batches/B3",))

    # == D+25: 97 of B3 released for free circulation (4051): FIFO from L1's share (291 of 485) ===============
    y.at(25)
    y.post(y.exit("erp-exit-B3-4051", "B3", 97, "4051", MRN["X2"]), "OperatorMSP")
    assert y.batch("B3")["exited"] == {"4051": 97}
    y.refused(y.exit("erp-exit-B3-too-much", "B3", 389, "3151", MRN["X6"]), "OperatorMSP", 409,
              "quantity-exceeds-balance", "QuantityExceedsBalance", unchanged=("/api/v1/batches/B3",))

    # == D+30: a loss by nature of 10 tyres of L2 (10 / 800 = 1.25 % > 1 % → LossRateHigh) =====================
    y.at(30)
    y.post(y.ev("RecordLoss", "erp-loss-1", authorisation_id=AUTH, lot_id="L2", quantity=10, site=S2,
                reason="NATURE", evidence_hash=evidence("casings split in storage")), "OperatorMSP")
    l2 = y.lot("L2")
    assert (l2["lost"], l2["balance"], stock(l2)) == (10, 590, {S2: 590})
    assert "LossRateHigh" in y.alert_types()

    # == D+35: 10 retreaded tyres of B5 destroyed (no waste: a discharge) =====================================
    y.at(35)
    y.post(y.ev("RecordLoss", "erp-destroy-1", authorisation_id=AUTH, batch_id="B5", quantity=10, site=S1,
                reason="DESTROYED", evidence_hash=evidence("destruction certificate 2026-117")), "OperatorMSP")
    assert y.batch("B5")["lost"] == 10 and y.batch("B5")["balance"] == 190

    # == D+45: customs control at BOURGES-2 count 585 of L2 against 590 in the books → BalanceDiscrepancy =====
    y.at(45)
    y.refused(y.ev("RecordControl", "op-control", authorisation_id=AUTH, site=S2,
                   counted=[{"lot_id": "L2", "qty": 585}]), "OperatorMSP", 403, "not-permitted")
    y.post(y.ev("RecordControl", "cus-control-1", authorisation_id=AUTH, site=S2,
                counted=[{"lot_id": "L2", "qty": 585}, {"batch_id": "B3", "qty": 388}, {"batch_id": "B4", "qty": 1500}],
                findings="5 casings of L2 missing"), "CustomsMSP")
    (disc,) = [a for a in y.alerts() if a["type"] == "BalanceDiscrepancy"]
    assert "L2" in disc["subject"] + str(disc["details"])
    assert y.lot("L2")["balance"] == 590          # a control reports, it does not correct the books

    # == D+50: customs extend L2's deadline from D+91 to D+150 ===============================================
    y.at(50)
    new_deadline = (y.D + dt.timedelta(days=150)).isoformat().replace("+00:00", "Z")
    y.post(y.ev("ExtendDischargePeriod", "cus-extend-L2", authorisation_id=AUTH, lot_ids=["L2"],
                new_deadline=new_deadline, reason="retreading line under repair"), "CustomsMSP")
    assert y.lot("L2")["deadline"][:10] == y.day(150)

    # == D+55: suspension: placements and processing refused, exits accepted ==================================
    y.at(55)
    y.post(y.ev("SuspendAuthorisation", "cus-suspend", authorisation_id=AUTH, reason="records late"), "CustomsMSP")
    assert y.get(f"/api/v1/authorisations/{AUTH}", "OperatorMSP")["status"] == "SUSPENDED"
    assert "AuthorisationSuspended" in y.alert_types()
    y.at(55.1)
    y.refused(y.place("L9", 100, S1, "2500.00"), "BrokerMSP", 409, "authorisation-not-active",
              "AuthorisationNotActive")
    assert api.get("/api/v1/lots/L9", "CustomsMSP").status_code == 404
    y.refused(y.process("erp-op-susp", "OP9", S2, [("L2", 100)], "B9", 100), "OperatorMSP", 409,
              "authorisation-not-active", "AuthorisationNotActive", unchanged=("/api/v1/lots/L2",))
    y.post(y.exit("brk-exit-B5", "B5", 190, "3151", MRN["X3"]), "BrokerMSP")
    assert y.batch("B5")["balance"] == 0
    y.post(y.ev("ConfirmExit", "cus-confirm-X3", authorisation_id=AUTH, mrn=MRN["X3"], exit_date=y.day(55)),
           "CustomsMSP")

    # == D+60: reinstatement; L3 placed (1,200 p/st at BOURGES-1, 30,000 EUR) =================================
    y.at(60)
    y.post(y.ev("ReinstateAuthorisation", "cus-reinstate", authorisation_id=AUTH, reason="records up to date"),
           "CustomsMSP")
    assert y.get(f"/api/v1/authorisations/{AUTH}", "OperatorMSP")["status"] == "ACTIVE"
    y.at(60.1)
    y.post(y.place("L3", 1200, S1, "30000.00"), "BrokerMSP")
    assert y.lot("L3")["deadline"][:10] == y.day(60 + PERIOD)

    # == D+65: an ERP batch: move, an impossible operation (refused), an operation (committed) =================
    y.at(65)
    batch = [y.ev("MoveGoods", "erp-b-move", authorisation_id=AUTH, lot_id="L3", quantity=200, from_site=S1,
                  to_site=S2),
             y.process("erp-b-op-bad", "OP4", S2, [("L3", 1000)], "B6", 990),
             y.process("erp-b-op", "OP5", S1, [("L3", 400)], "B7", 396, "B8", 1600)]
    r = api.client.post("/api/v1/events/batch", json={"events": batch, "stop_on_error": False},
                        headers={"Authorization": f"Bearer {api.keys[('OperatorMSP', 'clerk')]}"})
    assert r.status_code == 200, r.get_data(as_text=True)
    out = r.get_json()
    assert [i["outcome"] for i in out["results"]] == ["COMMITTED", "REFUSED", "COMMITTED"]
    assert [i["index"] for i in out["results"]] == [0, 1, 2]
    assert out["results"][1]["problem"]["type"] == PROBLEM + "quantity-exceeds-balance"
    assert out["summary"] == {"total": 3, "committed": 2, "replayed": 0, "refused": 1, "failed": 0,
                              "not_attempted": 0}
    assert api.get("/api/v1/batches/B6", "OperatorMSP").status_code == 404
    l3 = y.lot("L3")
    assert (l3["consumed"], l3["balance"], stock(l3)) == (400, 800, {S1: 600, S2: 200})
    assert y.batch("B7")["produced"] == 396
    # the batch sent again: every recorded item REPLAYED, the refused one refused again
    again = api.client.post("/api/v1/events/batch", json={"events": batch},
                            headers={"Authorization": f"Bearer {api.keys[('OperatorMSP', 'clerk')]}"}).get_json()
    assert [i["outcome"] for i in again["results"]] == ["REPLAYED", "REFUSED", "REPLAYED"]
    assert again["results"][2]["tx_id"] == out["results"][2]["tx_id"]
    assert y.lot("L3")["balance"] == 800

    # == D+66: replay of the L1 placement (§8 step 9) =========================================================
    y.at(66)
    replay = y.post(place_l1, "BrokerMSP", status=200)
    assert replay["status"] == "REPLAYED" and replay["tx_id"] == first["tx_id"]
    assert replay["block_number"] == first["block_number"]
    other = y.refused({**place_l1, "quantity": 999}, "BrokerMSP", 409, "duplicate-event", "DuplicateEvent",
                      unchanged=("/api/v1/lots/L1",))
    assert other["details"]["original_tx_id"] == first["tx_id"]

    # == D+70 … D+80: the rest of the products leave =========================================================
    y.at(70)
    y.post(y.exit("erp-exit-B2", "B2", 2000, "4051", MRN["X4"]), "OperatorMSP")      # waste sold in the EU
    y.at(75)
    y.post(y.exit("brk-exit-B4", "B4", 1500, "3151", MRN["X5"]), "BrokerMSP")        # waste re-exported
    y.at(80)
    y.post(y.exit("brk-exit-B3", "B3", 388, "3151", MRN["X6"]), "BrokerMSP")
    for b in ("B1", "B2", "B3", "B4", "B5"):
        assert y.batch(b)["balance"] == 0, b
    l1 = y.lot("L1")
    assert l1["status"] == "DISCHARGED" and l1["balance"] == 0      # nothing left of it nor of its products
    # conservation (§5): lot placed = Σ stock + consumed + Σ exited + lost; batch produced = Σ stock + Σ exited + lost
    for lot_id in ("L1", "L2", "L3"):
        rec = y.lot(lot_id)
        assert rec["placed"] == (sum(rec["stock"].values()) + rec["consumed"] + sum(rec["exited"].values())
                                 + rec["lost"]), lot_id
    for b in ("B1", "B2", "B3", "B4", "B5", "B7", "B8"):
        rec = y.batch(b)
        assert rec["produced"] == sum(rec["stock"].values()) + sum(rec["exited"].values()) + rec["lost"], b

    # == alerts as of a date (§6) ============================================================================
    # D+125: L2 (590, due D+150) and L3 (800 + its products, due D+150) within 30 days
    approaching = [a for a in y.alerts(y.day(125)) if a["type"] == "DeadlineApproaching"]
    assert {a["details"]["id"] for a in approaching} >= {"L2", "L3"}
    assert not [a for a in approaching if a["details"]["id"] == "L1"]
    assert "DeadlineOverdue" not in y.alert_types(y.day(125))
    overdue = [a for a in y.alerts(y.day(151)) if a["type"] == "DeadlineOverdue"]
    assert {a["details"]["id"] for a in overdue} >= {"L2", "L3"}
    # D+171: the re-exports of D+75 and D+80 are unconfirmed for more than 90 days; X1 and X3 were confirmed
    unconfirmed = [a for a in y.alerts(y.day(171)) if a["type"] == "ExitUnconfirmed"]
    assert MRN["X5"] in str(unconfirmed) and MRN["X6"] in str(unconfirmed)
    assert MRN["X1"] not in str(unconfirmed) and MRN["X3"] not in str(unconfirmed)

    # == D+101: the bill of discharge for the period ending D+100 (§7) ========================================
    y.at(101)
    period_end = y.day(100)
    data = y.get(f"/api/v1/authorisations/{AUTH}/bill-of-discharge-data?period_end={period_end}", "OperatorMSP")
    # 1. lots whose deadline falls in the period: L1 (D+90), L2 (D+91, extended to D+150); not L3 (D+150)
    lots = {line["lot_id"]: line for line in data["lots"]}
    assert set(lots) == {"L1", "L2"}
    assert lots["L1"]["mrn"] == MRN["L1"] and lots["L1"]["quantity"] == 1000 and lots["L1"]["unit"] == "p/st"
    assert lots["L1"]["customs_value"] == {"amount": "25000.00", "currency": "EUR"}
    assert lots["L2"]["customs_value"] == {"amount": "20000.00", "currency": "EUR"}
    assert [(r["output_cn"], r["output_per_input"]) for r in lots["L1"]["rates_of_yield"]] == [(RETREADED, 1)]
    # 2. the products of each lot, through the lineage
    assert {p["batch_id"] for p in lots["L1"]["products"]} == {"B1", "B2", "B3", "B4", "B5"}
    assert {p["batch_id"] for p in lots["L2"]["products"]} == {"B3", "B4"}
    assert {p["batch_id"]: p["quantity"] for p in lots["L2"]["products"] if p["kind"] == "MAIN"} == {"B3": 194}
    # processing in the period: OP1 0.99, OP2 0.97, OP3 1.0 (the refused first OP3 is not there)
    assert {p["operation_id"]: [y_["actual_per_input"] for y_ in p["yield"]] for p in data["processing"]} == {
        "OP1": ["0.99"], "OP2": ["0.97"], "OP3": ["1"]}
    # 3. disposals by procedure with MRN and quantity, and the input goods each stands for (FIFO):
    disposals = {(d["mrn"], d["procedure"], d["id"], d["quantity"]): d for d in data["disposals"]}
    assert set(disposals) == {(MRN["X1"], "3151", "B1", 495), (MRN["X2"], "4051", "B3", 97),
                              (MRN["X3"], "3151", "B5", 190), (MRN["X4"], "4051", "B2", 2000),
                              (MRN["X5"], "3151", "B4", 1500), (MRN["X6"], "3151", "B3", 388)}

    def inputs(d):
        return sorted((i["lot_id"], i["quantity"]) for i in d["input_goods"] if i["quantity"])
    assert inputs(disposals[(MRN["X1"], "3151", "B1", 495)]) == [("L1", 500)]       # 495 / 0.99
    assert inputs(disposals[(MRN["X2"], "4051", "B3", 97)]) == [("L1", 100)]        # 97 of L1's 291 = 100 of 300
    assert inputs(disposals[(MRN["X3"], "3151", "B5", 190)]) == [("L1", 190)]
    assert inputs(disposals[(MRN["X6"], "3151", "B3", 388)]) == [("L1", 200), ("L2", 200)]  # 194 + 194
    # re-exports confirmed by customs carry the confirmation; the others none yet
    assert {d["mrn"]: (d["exit_confirmed"] or {}).get("exit_date") for d in data["disposals"]
            if d["procedure"] == "3151"} == {MRN["X1"]: y.day(20), MRN["X3"]: y.day(55), MRN["X5"]: None,
                                             MRN["X6"]: None}
    # 4. losses and destructions with their evidence
    losses = {(l["reason"], l["id"], l["quantity"]): l for l in data["losses"]}
    assert set(losses) == {("NATURE", "L2", 10), ("DESTROYED", "B5", 10)}
    assert losses[("NATURE", "L2", 10)]["evidence_hash"] == evidence("casings split in storage")
    assert inputs(losses[("DESTROYED", "B5", 10)]) == [("L1", 10)]
    # 5. remaining: L2's 590, carried forward under the extension; nothing flagged overdue
    assert [(r["id"], r["quantity"], r["status"]) for r in data["remaining"]] == [("L2", 590, "CARRIED_FORWARD")]
    # totals
    t = data["totals"]
    assert t["placed"] == [{"cn": USED, "unit": "p/st", "quantity": 1800}]
    assert t["consumed"] == [{"cn": USED, "unit": "p/st", "quantity": 1200}]
    assert {(r["kind"], r["cn"], r["quantity"]) for r in t["produced"]} == {("MAIN", RETREADED, 1180),
                                                                           ("SECONDARY", WASTE, 3500)}
    assert {(r["procedure"], r["cn"], r["quantity"]) for r in t["exited"]} == {
        ("3151", RETREADED, 1073), ("4051", RETREADED, 97), ("4051", WASTE, 2000), ("3151", WASTE, 1500)}
    assert {(r["reason"], r["cn"], r["quantity"]) for r in t["lost"]} == {("NATURE", USED, 10),
                                                                        ("DESTROYED", RETREADED, 10)}
    # 6. proof: conservation, the control and the alerts in the period, the transactions
    assert data["proof"]["conservation_holds"] is True
    assert [c["site"] for c in data["proof"]["controls"]] == [S2]
    assert {"YieldDeviation", "BalanceDiscrepancy"} <= {a["type"] for a in data["proof"]["alerts"]}
    # the broker reads the bill without customs values (hash only), same document
    broker = y.get(f"/api/v1/authorisations/{AUTH}/bill-of-discharge-data?period_end={period_end}", "BrokerMSP")
    assert all("customs_value" not in line for line in broker["lots"])
    assert broker["document_hash"] == data["document_hash"]
    # submitted by the operator: a wrong hash refused, the right one recorded; the broker may not submit
    submit = y.ev("SubmitBillOfDischarge", "erp-bill-1", authorisation_id=AUTH, period_end=period_end,
                  document_hash=data["document_hash"])
    y.refused({**submit, "event_id": "brk-bill"}, "BrokerMSP", 403, "not-permitted")
    y.refused({**submit, "event_id": "erp-bill-0", "document_hash": evidence("another document")}, "OperatorMSP",
              409, "hash-mismatch", "HashMismatch")
    y.refused({**submit, "event_id": "erp-bill-early", "period_end": y.day(101)}, "OperatorMSP", 409,
              "period-not-ended", "PeriodNotEnded")
    bill = y.post(submit, "OperatorMSP")["result"]["bill"]
    assert bill["status"] == "SUBMITTED" and bill["document_hash"] == data["document_hash"]
    # due: period end + 30 days, i.e. by the end of D+130 (given as the exclusive bound, 00:00 of the next day)
    due = dt.datetime.fromisoformat(bill["due"].replace("Z", "+00:00"))
    assert (due - dt.timedelta(microseconds=1)).date().isoformat() == y.day(130) and bill["period_end"] == period_end
    y.at(102)
    y.refused(y.ev("DecideBillOfDischarge", "erp-self-accept", authorisation_id=AUTH, bill_id=bill["bill_id"],
                   decision="ACCEPTED"), "OperatorMSP", 403, "not-permitted")
    y.post(y.ev("DecideBillOfDischarge", "cus-accept-1", authorisation_id=AUTH, bill_id=bill["bill_id"],
                decision="ACCEPTED", note="in order"), "CustomsMSP")
    stored = y.get(f"/api/v1/bills-of-discharge/{bill['bill_id']}", "OperatorMSP")
    assert stored["status"] == "ACCEPTED" and stored["document_hash"] == data["document_hash"]
    report = y.get(f"/api/v1/reports/bill-of-discharge/{AUTH}?period_end={period_end}", "CustomsMSP")
    assert report["document_hash"] == data["document_hash"]

    # == the inventory report at D+101 (goods under the procedure) ============================================
    inv = y.get(f"/api/v1/reports/inventory?as_of={y.day(101)}&authorisation_id={AUTH}", "CustomsMSP")
    lines = {(l["goods"], l["id"]): l["quantity"] for l in inv["lines"]}
    assert lines == {("LOT", "L2"): 590, ("LOT", "L3"): 800, ("BATCH", "B7"): 396, ("BATCH", "B8"): 1600}
    totals = {(t_["goods"], t_["cn"]): t_["quantity"] for t_ in inv["totals"]}
    assert totals == {("LOT", USED): 1390, ("BATCH", RETREADED): 396, ("BATCH", WASTE): 1600}
    # as of D+3 (before any processing): L1 1,000 and L2 800
    early = y.get(f"/api/v1/reports/inventory?as_of={y.day(3)}&authorisation_id={AUTH}", "CustomsMSP")
    assert {(l["goods"], l["id"]): l["quantity"] for l in early["lines"]} == {("LOT", "L1"): 1000, ("LOT", "L2"): 800}

    # == the audit trail of L1 ===============================================================================
    history = y.get("/api/v1/lots/L1/history", "CustomsMSP")
    entries = history["history"]
    kinds = [e["event_type"] for e in entries]
    assert kinds[:4] == ["PlaceUnderProcedure", "MoveGoods", "RecordProcessing", "RecordProcessing"]
    assert kinds.count("RecordProcessing") == 3          # OP1, OP2, OP3 — no refused attempt, no replay
    assert entries[0]["submitting_org"] == "BrokerMSP" and entries[1]["submitting_org"] == "OperatorMSP"
    assert all(e["tx_id"] and e["block_number"] and e["recorded_at"] for e in entries)
    assert entries[0]["tx_id"] == first["tx_id"]

    # == what the broker may and may not see =================================================================
    seen = y.lot("L1", "BrokerMSP")
    assert "commercial" not in seen and "customs_value" not in str(seen) and seen["commercial_hash"]
    assert "25000" not in api.get("/api/v1/lots/L1/history", "BrokerMSP").get_data(as_text=True)
    broker_inv = api.get(f"/api/v1/reports/inventory?as_of={y.day(101)}&authorisation_id={AUTH}", "BrokerMSP")
    assert broker_inv.status_code == 200 and "30000" not in broker_inv.get_data(as_text=True)
    assert api.get("/api/v1/lots/M1", "BrokerMSP").status_code in (403, 404)          # no mandate
    assert api.get(f"/api/v1/authorisations/{OTHER_AUTH}", "BrokerMSP").status_code in (403, 404)
    assert y.lot("M1", "OperatorMSP")["placed"] == 100
    # a viewer key submits nothing
    r = api.client.post("/api/v1/events", json=y.ev("MoveGoods", "v-move", authorisation_id=AUTH, lot_id="L3",
                                                     quantity=1, from_site=S1, to_site=S2),
                        headers={"Authorization": f"Bearer {api.keys[('OperatorMSP', 'viewer')]}"})
    assert r.status_code == 403 and r.get_json()["type"] == PROBLEM + "forbidden"

    # == D+152: past L2's and L3's deadlines (D+150): only exits, losses and extensions (§4) ====================
    y.at(152)
    assert y.lot("L3")["status"] == "OVERDUE" and y.lot("L2")["status"] == "OVERDUE"
    assert {"L2", "L3"} <= {a["details"]["id"] for a in y.alerts() if a["type"] == "DeadlineOverdue"}
    y.refused(y.ev("MoveGoods", "erp-move-late", authorisation_id=AUTH, lot_id="L3", quantity=10, from_site=S1,
                   to_site=S2), "OperatorMSP", 409, "deadline-passed", "DeadlinePassed", unchanged=("/api/v1/lots/L3",))
    y.refused(y.process("erp-op-late", "OP6", S1, [("L3", 100)], "B9", 100), "OperatorMSP", 409,
              "deadline-passed", "DeadlinePassed", unchanged=("/api/v1/lots/L3",))
    y.post(y.exit("brk-exit-L3", "L3", 600, "3151", mrn(900107, EXPORT), batch=False), "BrokerMSP")
    assert y.lot("L3")["balance"] == 200 and stock(y.lot("L3")) == {S2: 200}
    # an extension is still accepted for the overdue lot; a discharged lot (L1) is not open: refused
    y.post(y.ev("ExtendDischargePeriod", "cus-extend-L3", authorisation_id=AUTH, lot_ids=["L3"],
                new_deadline=(y.D + dt.timedelta(days=200)).isoformat().replace("+00:00", "Z")), "CustomsMSP")
    assert y.lot("L3")["status"] == "OPEN"
    y.refused(y.ev("ExtendDischargePeriod", "cus-extend-L1", authorisation_id=AUTH, lot_ids=["L1"],
                   new_deadline=(y.D + dt.timedelta(days=200)).isoformat().replace("+00:00", "Z")), "CustomsMSP",
              409, "invalid-state", "InvalidState", unchanged=("/api/v1/lots/L1",))
