"""Run a fixed set of transactions and print everything a peer would return or write, one canonical
JSON line per transaction. ``test_contract_determinism`` runs this file in several processes with
different ``PYTHONHASHSEED`` values and compares the outputs byte for byte.

Four independent ledgers, each starting with customs registering the parties of §8 (the contract takes
customs' MSP id from ``IPLEDGER_CUSTOMS_MSP``, as deployed):

0. the register of parties: EORIs given in any order, a second holder, a refused EORI already taken,
   a withdrawal and a registration again, ``GetParties``;
1. the example scenario of domain.md §8, refused variants, replays and queries included;
2. an authorisation with five goods codes whose ceilings are all lowered at once (several
   ``CeilingNear`` changes in one transaction);
3. a seeded random sequence of every kind of event (the randomness is the test's: the same seed in
   every process), ending with a bill of discharge.

Usage: ``python tests/unit/contract/determinism_run.py`` (from the repository root).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import random
import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    os.environ.setdefault("IPLEDGER_CUSTOMS_MSP", "CustomsMSP")  # the deployment names customs

from ipledger.chaincode.contract import InwardProcessingContract  # noqa: E402
from ipledger.chaincode.testing.memstub import MemLedger  # noqa: E402
from ipledger.chaincode.testing.scenario import (AUTH_ID, RETREADED, RUBBER_WASTE, SITE1, SITE2, USED_TYRES,  # noqa: E402
                                        Scenario, authorisation_fields, evidence, iso, retreaded, waste)
from ipledger.chaincode.testing.mrns import mrn as valid_mrn  # noqa: E402

DAY_S = 86400
RECLAIMED = "40030000"  # reclaimed rubber: a secondary product with a rate of yield


class RecordingLedger(MemLedger):
    """A MemLedger that writes a transcript line for every transaction it runs."""

    def __init__(self, out, label: str, **kw):
        super().__init__(**kw)
        self.out, self.label, self.n = out, label, 0
        self._last = None

    def stub(self, *args, **kw):
        self._last = super().stub(*args, **kw)
        return self._last

    def invoke(self, contract, fn, args=(), *a, commit: bool = True, **kw):
        res = super().invoke(contract, fn, args, *a, commit=commit, **kw)
        stub = self._last
        self.n += 1
        line = {
            "ledger": self.label, "n": self.n, "fn": fn, "args": list(args), "committed": res.ok and commit,
            "status": res.status, "message": res.message, "payload": res.payload.decode("utf-8"),
            "event": None if res.event is None else [res.event[0], res.event[1].decode("utf-8")],
            "writes": sorted([k, None if v is None else v.decode("utf-8")] for k, v in stub.writes.items()),
            "private_writes": sorted([c, sorted([k, None if v is None else v.hex()] for k, v in w.items())]
                                     for c, w in stub.private_writes.items()),
            "validation_writes": sorted([k, v.hex()] for k, v in stub.validation_writes.items()),
        }
        self.out.write(json.dumps(line, sort_keys=True, ensure_ascii=True) + "\n")
        return res


def scenario(out, label: str) -> Scenario:
    s = Scenario(InwardProcessingContract, register=False)
    s.ledger = RecordingLedger(out, label, now=s.day)
    s.contract = InwardProcessingContract(clock=s.ledger.peer_clock)  # customs: IPLEDGER_CUSTOMS_MSP
    s.register_parties()
    return s


def register_of_parties(out) -> None:
    """RegisterParty with EORIs in any order, EoriTaken, a second holder, WithdrawParty, GetParties."""
    s = scenario(out, "register")
    s.register("PlantBMSP", "holder", ["FR99999999999999", "FR55555555555555", "FR77777777777777"], name="Plant B")
    s.register("BrokerBMSP", "representative", ["FR55555555555555"])                   # EoriTaken
    s.register("BrokerBMSP", "representative", ["FR44444444444444", "FR33333333333333"])
    s.query("GetParties")
    s.query("GetParties", msp="PlantBMSP")
    s.withdraw("BrokerBMSP", reason="mandate ended")
    s.register("BrokerBMSP", "representative", ["FR33333333333333"])
    s.register("OperatorMSP", "holder", ["FR12345678901234", "FR11111111111111"])
    s.query("GetParties")


def example_scenario(out) -> None:
    """domain.md §8, steps 1-9."""
    s = scenario(out, "section8")
    s.grant()
    step1 = {"event_id": "broker-0001", "authorisation_id": AUTH_ID, "occurred_at": iso(s.D()), "lot_id": "L1",
             "mrn": "26FR000110000001R8", "item_no": 1, "procedure": "5100", "cn": USED_TYRES,
             "description": "used pneumatic tyres for retreading", "quantity": 1000, "unit": "p/st",
             "net_mass_g": 9_500_000, "origin": "MA", "site": SITE1}
    value = {"commercial": {"customs_value": {"amount": "25000.00", "currency": "EUR"}, "nonce": "nonce-of-lot-L1-0"}}
    s.submit("PlaceUnderProcedure", step1, "BrokerMSP", transient=value)
    s.move(400, SITE1, SITE2, lot_id="L1")
    s.process("OP0", [("L1", 500)], [retreaded(480, "B0"), waste(1200, "W0")])        # refused variant
    s.process("OP1", [("L1", 500)], [retreaded(495, "B1"), waste(1200, "B2")])
    s.exit(495, batch_id="B1", procedure="3151", mrn_="26FR000110000007A7")
    s.exit(600, lot_id="L1", msp="OperatorMSP", mrn_=valid_mrn(8, "A"))                 # refused
    s.place("L2", 4200, mrn_=valid_mrn(2))
    s.place("L3", 400, mrn_=valid_mrn(3))                                                # CeilingExceeded
    for as_of in (s.D(1), s.D(151), s.D(181)):
        s.query("GetAlerts", AUTH_ID, iso(as_of))
    s.query("GetBalances", AUTH_ID)
    s.query("GetBillOfDischargeData", AUTH_ID, None, iso(s.D(1)), msp="OperatorMSP")
    s.query("GetLotHistory", "L1", msp="BrokerMSP")
    s.query("GetDeclaration", "26FR000110000001R8", msp="BrokerMSP")
    s.submit("PlaceUnderProcedure", step1, "BrokerMSP", transient=value)                # replay: original result
    s.submit("PlaceUnderProcedure", {**step1, "quantity": 999}, "BrokerMSP", transient=value)  # DuplicateEvent
    s.set_parameters(max_clock_skew_s=200 * DAY_S)
    later = s.D(181)
    s.move(10, SITE1, SITE2, lot_id="L1", ts=later)                                     # DeadlinePassed
    s.exit(100, lot_id="L1", procedure="3151", ts=later + dt.timedelta(minutes=1), mrn_=valid_mrn(9, "A"))
    s.query("GetBillOfDischargeData", AUTH_ID, s.D(180).date().isoformat(), ts=later + dt.timedelta(minutes=2))


def lowered_ceilings(out) -> None:
    """Five goods codes, four of them placed near the ceiling, then every ceiling lowered at once."""
    s = scenario(out, "ceilings")
    codes = ["40122000", "40121000", "40129000", "40111000", "40131000"]
    inputs = [{"cn": c, "description": "tyres", "unit": "p/st", "max_qty": 1000} for c in codes]
    rates = [{"input_cn": c, "output_cn": RETREADED, "output_per_input": 1} for c in codes]
    s.grant(input_goods=inputs, yield_rates=rates)
    for i, cn in enumerate(codes[:4]):
        s.place(f"C{i}", 850, cn=cn, mrn_=valid_mrn(100 + i))
    s.submit("AmendAuthorisation", {"authorisation_id": AUTH_ID, **authorisation_fields(
        s.day, input_goods=[{**e, "max_qty": 900} for e in inputs], yield_rates=rates)}, "CustomsMSP")
    s.query("GetAlerts", AUTH_ID)
    s.query("GetBalances", AUTH_ID)


def random_sequence(out, seed: int = 20260302, events: int = 160) -> None:
    """Every kind of event in a seeded random order, on an authorisation with a main product, a
    secondary product with a rate of yield and waste."""
    rnd = random.Random(seed)
    s = scenario(out, "random")
    s.grant(processed_products=[
        {"cn": RETREADED, "kind": "MAIN", "unit": "p/st", "description": "retreaded tyres"},
        {"cn": RECLAIMED, "kind": "SECONDARY", "unit": "kg", "description": "reclaimed rubber"},
        {"cn": RUBBER_WASTE, "kind": "WASTE", "unit": "kg", "description": "rubber waste"}],
        yield_rates=[{"input_cn": USED_TYRES, "output_cn": RETREADED, "output_per_input": 1},
                     {"input_cn": USED_TYRES, "output_cn": RECLAIMED, "output_per_input": 2.5}],
        input_goods=[{"cn": USED_TYRES, "description": "used tyres", "unit": "p/st", "max_qty": 6000}])
    s.set_parameters(max_clock_skew_s=400 * DAY_S)
    lots, batches, exits, n_mrn = [], [], [], 1000
    t = s.D()
    for n in range(1, events + 1):
        t += dt.timedelta(hours=rnd.randint(1, 30))
        goods = [("lot_id", x) for x in lots] + [("batch_id", x) for x in batches]
        kind = rnd.choice(["place", "place", "move", "process", "process", "process", "exit", "exit", "lose",
                           "control", "extend", "confirm", "suspend"] if lots else ["place"])
        n_mrn += 1
        if kind == "place":
            lot_id = f"L{n}"
            if s.place(lot_id, rnd.randint(1, 900), site=rnd.choice([SITE1, SITE1, SITE2]), mrn_=valid_mrn(n_mrn),
                       msp=rnd.choice(["BrokerMSP", "OperatorMSP"]), ts=t).ok:
                lots.append(lot_id)
        elif kind == "move":
            ref = rnd.choice(goods)
            frm = rnd.choice([SITE1, SITE2])
            s.move(rnd.randint(1, 100), frm, SITE2 if frm == SITE1 else SITE1, ts=t, **{ref[0]: ref[1]})
        elif kind == "process":
            ins = [(lot, rnd.randint(1, 60)) for lot in rnd.sample(lots[-4:], min(len(lots[-4:]), rnd.randint(1, 2)))]
            total = sum(q for _, q in ins)
            outputs = []
            if rnd.random() < 0.9:
                outputs.append(retreaded(max(1, total * rnd.randint(97, 102) // 100), f"B{n}"))
            if rnd.random() < 0.8:
                outputs.append({"cn": RECLAIMED, "qty": max(1, total * 5 * rnd.randint(97, 102) // 200),
                                "unit": "kg", "kind": "SECONDARY", "batch_id": f"S{n}"})
            if rnd.random() < 0.5 or not outputs:
                outputs.append(waste(rnd.randint(1, 300), f"W{n}"))
            if s.process(f"OP{n}", ins, outputs, site=rnd.choice([SITE1, SITE1, SITE2]), ts=t).ok:
                batches.extend(o["batch_id"] for o in outputs)
        elif kind == "exit":
            ref = rnd.choice(goods)
            res = s.exit(rnd.randint(1, 150), procedure=rnd.choice(["3151", "4051", "7151", "5151"]),
                         mrn_=valid_mrn(n_mrn, "A"), msp=rnd.choice(["BrokerMSP", "OperatorMSP"]), ts=t,
                         **{ref[0]: ref[1]})
            if res.ok and res.json()["exit"]["procedure"] == "3151":
                exits.append(res.json()["exit"]["mrn"])
        elif kind == "lose":
            ref = rnd.choice(goods)
            s.lose(rnd.randint(1, 60), reason=rnd.choice(["NATURE", "FORCE_MAJEURE", "DESTROYED"]), ts=t,
                   **{ref[0]: ref[1]})
        elif kind == "control":
            site = rnd.choice([SITE1, SITE2])
            counted = [{ref[0]: ref[1], "qty": rnd.randint(0, 500)} for ref in rnd.sample(goods, min(3, len(goods)))]
            s.submit("RecordControl", {"authorisation_id": AUTH_ID, "site": site, "counted": counted,
                                       "findings": "count"}, "CustomsMSP", ts=t)
        elif kind == "extend":
            chosen = rnd.sample(lots, min(len(lots), 2))
            s.submit("ExtendDischargePeriod", {"authorisation_id": AUTH_ID, "lot_ids": chosen,
                                               "new_deadline": iso(t + dt.timedelta(days=200))}, "CustomsMSP", ts=t)
        elif kind == "confirm" and exits:
            s.submit("ConfirmExit", {"authorisation_id": AUTH_ID, "mrn": exits.pop(0),
                                     "exit_date": t.date().isoformat()}, "CustomsMSP", ts=t)
        elif kind == "suspend":
            s.submit("SuspendAuthorisation", {"authorisation_id": AUTH_ID, "reason": "audit"}, "CustomsMSP", ts=t)
            s.submit("ReinstateAuthorisation", {"authorisation_id": AUTH_ID, "reason": "done"}, "CustomsMSP",
                     ts=t + dt.timedelta(minutes=1))
        if n % 40 == 0:
            s.query("GetAlerts", AUTH_ID, iso(t + dt.timedelta(days=150)), ts=t + dt.timedelta(minutes=2))
            s.query("GetBalances", AUTH_ID, ts=t + dt.timedelta(minutes=2))
    end = t + dt.timedelta(days=1)
    s.query("GetBillOfDischargeData", AUTH_ID, None, iso(end), ts=end, msp="OperatorMSP")
    period_end = (s.D(190)).date().isoformat()
    ts = max(end, s.D(191)) + dt.timedelta(hours=1)
    bill = s.query("GetBillOfDischargeData", AUTH_ID, period_end, ts=ts, msp="OperatorMSP")
    s.submit("SubmitBillOfDischarge", {"authorisation_id": AUTH_ID, "period_end": period_end,
                                       "document_hash": bill["document_hash"]}, "OperatorMSP", ts=ts)
    s.submit("RecordLoss", {"authorisation_id": AUTH_ID, "lot_id": lots[0], "quantity": 1, "reason": "DESTROYED",
                            "evidence_hash": evidence("end")}, "OperatorMSP", ts=ts + dt.timedelta(minutes=1))


def main(out=sys.stdout) -> None:
    register_of_parties(out)
    example_scenario(out)
    lowered_ceilings(out)
    random_sequence(out)


if __name__ == "__main__":
    main()
