"""Conservation of goods against an independent model (issue 13, point 1).

Hypothesis drives random placements, movements, processing operations, exits and losses through the
contract. A small model written for this test — its own bookkeeping, not the contract's arithmetic —
predicts which events the contract must accept or refuse (and with which rule), and after every event
the ledger must agree with it:

* every unit placed is in exactly one place: in its lot's stock, exited (per procedure code), lost or
  destroyed, or consumed into processed products — under the procedure while a product made from it
  (main, secondary or waste) is left, discharged once all of them have gone;
* a lot is DISCHARGED exactly when nothing of it and nothing derived from it is left — also when its
  share of a batch is 0 units (a small batch from several lots): the inputs it gave are in that batch
  until the batch has gone;
* the balances, the deadline alerts and the bill of discharge count waste like any product;
* every disposal in the bill states the input goods it stands for, and once a batch has gone the input
  goods of its disposals and losses add up to exactly what each source lot gave the operation.

The model lays a batch's units out share after share, in the lots' placement order: a batch disposal
takes the next units of that line (first in, first out), and a share of 0 units is a point on it that
leaves with the disposal taking the unit after it, or the batch's last unit.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from fractions import Fraction as F

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from ipledger.chaincode.contract import InwardProcessingContract
from ipledger.chaincode.testing.scenario import AUTH_ID, RETREADED, RUBBER_WASTE, SITE1, SITE2, USED_TYRES, Scenario, iso
from ipledger.chaincode.testing.mrns import mrn as valid_mrn

RECLAIMED, TUBES = "40030000", "40131000"
SITES = (SITE1, SITE2)
UNIT = {USED_TYRES: "p/st", TUBES: "p/st", RETREADED: "p/st", RECLAIMED: "kg", RUBBER_WASTE: "kg"}
KIND = {RETREADED: "MAIN", RECLAIMED: "SECONDARY", RUBBER_WASTE: "WASTE"}
RATES = {USED_TYRES: {RETREADED: F(1), RECLAIMED: F(5, 2)}, TUBES: {RECLAIMED: F(1, 2)}}
CEILING = {USED_TYRES: 3000, TUBES: 2000}
BLOCK_PCT = F(2)
PROCEDURES = ("3151", "4051", "7151", "5151")
REASONS = ("NATURE", "FORCE_MAJEURE", "DESTROYED")
SMALL = st.integers(1, 3)   # small batches and inputs: a lot's share of a batch can be 0 units
ALL = st.just(0)            # an exit or loss of everything left (at the site): lots and batches run empty


def grant(s: Scenario) -> None:
    s.accepted(s.grant(
        input_goods=[{"cn": cn, "description": cn, "unit": UNIT[cn], "max_qty": q} for cn, q in CEILING.items()],
        processed_products=[{"cn": cn, "kind": kind, "unit": UNIT[cn]} for cn, kind in KIND.items()],
        yield_rates=[{"input_cn": i, "output_cn": o, "output_per_input": float(r) if r.denominator > 1 else int(r)}
                     for i, outs in RATES.items() for o, r in outs.items()],
        yield_block_pct=int(BLOCK_PCT)))


# ---------------------------------------------------------------------------------------- the model

@dataclass
class Share:
    lot: str
    qty: int        # product units of the batch that came from this lot (may be 0)
    input: int      # units of the lot consumed by the operation
    released: int = 0   # of its units, those released for free circulation (4051)
    gives: bool = False  # a share of 0 units whose lot gives the product (too little for one unit)
    by_releases: int = 0  # of its input (a share of 0 units that gives), what releases stated of it
    stated: int = 0       # of its input (a share of 0 units that gives), what all disposals stated of it


@dataclass
class Record:
    kind: str       # LOT or BATCH
    cn: str
    entered: int
    stock: dict[str, int]
    consumed: int = 0
    exited: dict[str, int] = field(default_factory=dict)
    lost: int = 0
    shares: list[Share] = field(default_factory=list)      # batches: in the lots' placement order
    released: int = 0                                        # batches: units released for free circulation
    derived: list[tuple[str, int]] = field(default_factory=list)   # lots: (batch, index of the share)

    @property
    def balance(self) -> int:
        return sum(self.stock.values())

    @property
    def gone(self) -> int:
        """Units that have left the procedure: a batch's first ``gone`` units (FIFO)."""
        return self.entered - self.balance

    def spans(self):
        """(share, first unit, end) of each share on the batch's line of units."""
        start = 0
        for sh in self.shares:
            yield sh, start, start + sh.qty
            start += sh.qty

    def share_left(self, i: int) -> bool:
        """Has share ``i`` of this batch left the procedure? A share of units when its units have gone; a
        share of 0 units when the whole batch has (its lot's input is in every unit, or in none)."""
        sh, start, end = list(self.spans())[i]
        return self.gone >= end if sh.qty else self.gone == self.entered


class Model:
    def __init__(self):
        self.lots: dict[str, Record] = {}       # in placement order
        self.batches: dict[str, Record] = {}
        self.disposals: list[tuple] = []        # (procedure, goods, id, qty, ((lot, input qty), ...))
        self.losses: list[tuple] = []

    def record(self, goods: str, gid: str) -> Record:
        return (self.lots if goods == "LOT" else self.batches)[gid]

    # -- predictions: the rule that refuses the event, or None -------------------------------------------
    def place(self, lot: str, cn: str, qty: int, site: str) -> str | None:
        if sum(r.balance for r in self.lots.values() if r.cn == cn) + qty > CEILING[cn]:
            return "CeilingExceeded"
        self.lots[lot] = Record("LOT", cn, qty, {site: qty})
        return None

    def move(self, goods: str, gid: str, qty: int, frm: str, to: str) -> str | None:
        r = self.record(goods, gid)
        if r.stock.get(frm, 0) < qty:
            return "QuantityExceedsBalance"
        self._take(r, {frm: qty})
        r.stock[to] = r.stock.get(to, 0) + qty
        return None

    def process(self, op: str, inputs: list[tuple[str, int]], outputs: list[tuple[str, int]], site: str) -> str | None:
        if any(self.lots[lot].stock.get(site, 0) < q for lot, q in inputs):
            return "QuantityExceedsBalance"
        expected: dict[str, F] = {}
        for lot, q in inputs:
            for cn, rate in RATES[self.lots[lot].cn].items():
                expected[cn] = expected.get(cn, F(0)) + q * rate
        if any(KIND[cn] == "MAIN" and cn not in expected for cn, _ in outputs):
            return "GoodsNotCovered"
        # a product is checked like a main one when it alone accounts for an input (no rate to a main product)
        accounting = {cn for lot, _ in inputs if all(KIND[c] != "MAIN" for c in RATES[self.lots[lot].cn])
                      for cn in RATES[self.lots[lot].cn]}
        for cn, exp in expected.items():
            actual = sum(q for c, q in outputs if c == cn)
            if (KIND[cn] == "MAIN" or cn in accounting) and abs(actual - exp) * 100 > BLOCK_PCT * exp:
                return "YieldOutOfTolerance"       # a secondary product beside a main one: an alert, no block
        order = sorted(inputs, key=lambda lq: list(self.lots).index(lq[0]))
        for lot, q in inputs:
            self._take(self.lots[lot], {site: q})
            self.lots[lot].consumed += q
        for n, (cn, produced) in enumerate(outputs, start=1):
            # shared by what each lot gives of the product at its rate; a product without a rate by the inputs
            weights = [q * RATES[self.lots[lot].cn].get(cn, 0) for lot, q in order] if cn in expected \
                else [q for _, q in order]
            total = sum(weights)
            shares = [Share(lot, int(produced * w // total), q) for (lot, q), w in zip(order, weights)]
            for sh in [sh for sh, w in zip(shares, weights) if w > 0][:produced - sum(sh.qty for sh in shares)]:
                sh.qty += 1
            for sh, w in zip(shares, weights):
                sh.gives = w > 0 and sh.qty == 0
            # lots giving none of the product come last on its line of units
            shares = [sh for sh, w in zip(shares, weights) if w > 0] + [sh for sh, w in zip(shares, weights) if w == 0]
            batch_id = f"{op}/{n}"
            self.batches[batch_id] = Record("BATCH", cn, produced, {site: produced}, shares=shares)
            for i, sh in enumerate(shares):
                self.lots[sh.lot].derived.append((batch_id, i))
        return None

    def dispose(self, goods: str, gid: str, qty: int, site: str | None, procedure: str | None,
                reason: str | None) -> str | None:
        r = self.record(goods, gid)
        if (r.stock.get(site, 0) if site else r.balance) < qty:
            return "QuantityExceedsBalance"
        first, end = r.gone, r.gone + qty       # the batch units this disposal takes
        if site:
            self._take(r, {site: qty})
        else:
            taken, rest = {}, qty
            for s in sorted(r.stock):
                taken[s] = min(rest, r.stock[s])
                rest -= taken[s]
            self._take(r, taken)
        if goods == "LOT":
            inputs = ((gid, qty),)
        else:  # first in, first out over the source lots: units [first, end) of the batch's line
            # the input of the shares of 0 units whose lot gives the product is in every unit of the batch: all
            # of it together, releases state it in proportion to the batch's units released (rounded up), the
            # other disposals in proportion to its other units gone (rounded down), the last units the rest
            giving = [sh for sh in r.shares if sh.gives]
            total = sum(sh.input for sh in giving)
            if end == r.entered:
                due = total - sum(sh.stated for sh in giving)
            elif procedure == "4051":
                due = -(-total * (r.released + qty) // r.entered) - sum(sh.by_releases for sh in giving)
            else:
                due = total * (first - r.released + qty) // r.entered - sum(sh.stated - sh.by_releases for sh in giving)
            inputs = []
            for sh, start, stop in r.spans():
                if sh.qty:
                    before, after = (min(max(x - start, 0), sh.qty) for x in (first, end))
                    if after > before:   # the input goods of the units taken, counted cumulatively: over
                        # the share's releases for free circulation rounded up (duty is due on them), over
                        # its other discharges down
                        taken = after - before
                        if procedure == "4051":
                            ceil = lambda units: -(-sh.input * units // sh.qty)  # noqa: E731
                            inputs.append((sh.lot, ceil(sh.released + taken) - ceil(sh.released)))
                            sh.released += taken
                        else:
                            others = before - sh.released
                            inputs.append((sh.lot, sh.input * (others + taken) // sh.qty - sh.input * others // sh.qty))
                elif sh.gives:
                    take = min(max(due, 0), sh.input - sh.stated)
                    if take or end == r.entered:
                        inputs.append((sh.lot, take))
                        event("the last units took a share of 0 units" if end == r.entered else
                              f"a {'release' if procedure == '4051' else 'disposal'} stated a share of 0 units ahead")
                        sh.stated += take
                        sh.by_releases += take if procedure == "4051" else 0
                        due -= take
                elif start == end == r.entered:
                    inputs.append((sh.lot, sh.input))   # a lot giving none of the product: with the last units
                    event("a share of 0 units left")
            if procedure == "4051":
                r.released += qty
            inputs = tuple(inputs)
        if procedure:
            r.exited[procedure] = r.exited.get(procedure, 0) + qty
            self.disposals.append((procedure, goods, gid, qty, inputs))
        else:
            r.lost += qty
            self.losses.append((reason, goods, gid, qty, inputs))
        return None

    @staticmethod
    def _take(r: Record, sites: dict[str, int]) -> None:
        for s, q in sites.items():
            r.stock[s] -= q
            if not r.stock[s]:
                del r.stock[s]

    # -- where every unit of a lot is ----------------------------------------------------------------------
    def places(self, lot: str) -> dict[str, int]:
        """The lot's units by place; consumed units are 'in products' while any product made from them is
        left (their share of it not gone), 'discharged through products' afterwards."""
        r = self.lots[lot]
        by_op: dict[str, list[tuple[int, bool]]] = {}   # operation -> (input, share left) per batch
        for batch_id, i in r.derived:
            b = self.batches[batch_id]
            by_op.setdefault(batch_id.split("/")[0], []).append((b.shares[i].input, b.share_left(i)))
        in_products = sum(shares[0][0] for shares in by_op.values() if not all(left for _, left in shares))
        return {"stock": r.balance, "exited": sum(r.exited.values()), "lost": r.lost,
                "in products": in_products, "discharged through products": r.consumed - in_products}

    def discharged(self, lot: str) -> bool:
        where = self.places(lot)
        return where["stock"] == 0 and where["in products"] == 0


# ---------------------------------------------------------------------------------------- the ledger side

def world(s: Scenario, object_type: str) -> dict[str, dict]:
    stub = s.ledger.stub()
    with stub.get_state_by_partial_composite_key(object_type, []) as it:
        return {stub.split_composite_key(kv.key)[1][0]: json.loads(kv.value) for kv in it}


def check(s: Scenario, m: Model) -> None:
    lots, batches = world(s, "lot"), world(s, "batch")
    assert sorted(lots) == sorted(m.lots) and sorted(batches) == sorted(m.batches)
    for gid, r in list(m.lots.items()) + list(m.batches.items()):
        rec = (lots if r.kind == "LOT" else batches)[gid]
        assert (rec["cn"], rec["unit"], rec["stock"], rec["exited"], rec["lost"], rec.get("consumed", 0)) == \
            (r.cn, UNIT[r.cn], r.stock, r.exited, r.lost, r.consumed), gid
    for lot in m.lots:
        where = m.places(lot)
        assert sum(where.values()) == m.lots[lot].entered and min(where.values()) >= 0   # exactly one place
        status = s.lot(lot)["status"]
        assert (status == "DISCHARGED") is m.discharged(lot), (lot, where)
        if status == "DISCHARGED":   # everything derived from it has left: its share of each batch, even of 0 units
            assert all(m.batches[b].share_left(i) for b, i in m.lots[lot].derived), lot

    sums: dict[tuple, dict] = {}
    for r in list(m.lots.values()) + list(m.batches.values()):
        b = sums.setdefault(("INPUT" if r.kind == "LOT" else "PRODUCT", r.cn, UNIT[r.cn]),
                            {"entered": 0, "stock": 0, "consumed": 0, "exited": {}, "lost": 0})
        b["entered"] += r.entered
        b["stock"] += r.balance
        b["consumed"] += r.consumed
        b["lost"] += r.lost
        for p, q in r.exited.items():
            b["exited"][p] = b["exited"].get(p, 0) + q
    balances = s.query("GetBalances", AUTH_ID)["balances"]
    assert {(b["category"], b["cn"], b["unit"]): {k: b[k] for k in ("entered", "stock", "consumed", "exited", "lost")}
            for b in balances} == sums

    left = sorted((r.kind, gid, r.balance) for gid, r in list(m.lots.items()) + list(m.batches.items()) if r.balance)
    alerts = s.query("GetAlerts", AUTH_ID, iso(s.D(175)))["alerts"]
    assert sorted((a["details"]["goods"], a["details"]["id"], a["details"]["balance"]) for a in alerts
                  if a["type"] == "DeadlineApproaching") == left

    bill = s.query("GetBillOfDischargeData", AUTH_ID, None, iso(s.ledger.now))
    assert sorted((x["goods"], x["id"], x["quantity"]) for x in bill["remaining"]) == left
    assert [(d["procedure"], d["goods"], d["id"], d["quantity"], tuple((i["lot_id"], i["quantity"])
             for i in d["input_goods"])) for d in bill["disposals"]] == m.disposals
    assert [(x["reason"], x["goods"], x["id"], x["quantity"], tuple((i["lot_id"], i["quantity"])
             for i in x["input_goods"])) for x in bill["losses"]] == m.losses
    # the input goods of a batch's disposals and losses: at most what each lot gave, exactly that once it has gone
    stated: dict[str, dict[str, int]] = {gid: {} for gid in m.batches}
    for line in bill["disposals"] + bill["losses"]:
        for g in line["input_goods"] if line["goods"] == "BATCH" else ():
            stated[line["id"]][g["lot_id"]] = stated[line["id"]].get(g["lot_id"], 0) + g["quantity"]
    for gid, r in m.batches.items():
        gave, got = {sh.lot: sh.input for sh in r.shares}, stated[gid]
        assert all(q <= gave[lot] for lot, q in got.items()), (gid, got, gave)
        if r.balance == 0:
            assert got == gave, (gid, got, gave)
    # a release for free circulation states at least the exact proportion of the input goods it stands for
    # (UCC art. 86(3)): of each share of units, and of the shares of 0 units whose lot gives the product, together
    released: dict[str, dict[str, int]] = {gid: {} for gid in m.batches}
    for line in bill["disposals"]:
        for g in line["input_goods"] if line["goods"] == "BATCH" and line["procedure"] == "4051" else ():
            released[line["id"]][g["lot_id"]] = released[line["id"]].get(g["lot_id"], 0) + g["quantity"]
    for gid, r in m.batches.items():
        got = released[gid]
        assert all(got.get(sh.lot, 0) * sh.qty >= sh.input * sh.released for sh in r.shares if sh.qty), (gid, got)
        giving = [sh for sh in r.shares if sh.gives]
        assert sum(got.get(sh.lot, 0) for sh in giving) * r.entered >= sum(sh.input for sh in giving) * r.released, \
            (gid, got)
    assert bill["proof"]["conservation_holds"] is True


class ConservationMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.s = Scenario(InwardProcessingContract)
        grant(self.s)
        self.m = Model()
        self.n = 0

    def _run(self, expected: str | None, call):
        before = self.s.ledger.snapshot()
        res = call()
        event(f"{res.json().get('event_type') if res.ok else '-'}: {expected or 'accepted'}")
        if expected is None:
            assert res.ok, res.message
        else:
            assert res.error_code == expected, (expected, res.message if not res.ok else res.payload[:300])
            assert self.s.ledger.snapshot() == before

    def _goods(self, data):
        """Any lot or batch; half the time one of the newest batches (products just made, left soon)."""
        refs = [("LOT", x) for x in self.m.lots] + [("BATCH", x) for x in self.m.batches]
        newest = [("BATCH", x) for x in list(self.m.batches)[-3:]]
        return data.draw(st.sampled_from(refs) | st.sampled_from(newest) if newest else st.sampled_from(refs))

    def _all_or(self, qty: int, goods: str, gid: str, site: str | None) -> int:
        """``qty``, or for ALL what is left of the goods (at ``site``); 1 if nothing is."""
        r = self.m.record(goods, gid)
        return qty or (r.stock.get(site, 0) if site else r.balance) or 1

    def _mrn(self, category: str) -> str:
        self.n += 1
        return valid_mrn(self.n, category)

    @initialize(data=st.data(), tyres=st.integers(1, 900), tubes=st.integers(1, 900), process=st.booleans())
    def first_lots(self, data, tyres, tubes, process):
        """Two lots; half the time processed at once into products and a few kg of waste (Hypothesis tries
        subsets of the rules in each example: this way there is often such a batch to dispose of)."""
        self.place(USED_TYRES, tyres, SITE1)
        self.place(TUBES, tubes, SITE1)
        if process:
            self.process(data, SITE1, little_waste=True)

    @rule(cn=st.sampled_from(sorted(CEILING)), qty=st.integers(1, 900), site=st.sampled_from(SITES))
    def place(self, cn, qty, site):
        mrn = self._mrn("R")
        lot = f"L{self.n}"
        expected = self.m.place(lot, cn, qty, site)
        self._run(expected, lambda: self.s.place(lot, qty, cn=cn, unit=UNIT[cn], site=site, mrn_=mrn))

    @rule(data=st.data(), qty=st.integers(1, 400), frm=st.sampled_from(SITES))
    def move(self, data, qty, frm):
        goods, gid = self._goods(data)
        to = SITE2 if frm == SITE1 else SITE1
        expected = self.m.move(goods, gid, qty, frm, to)
        ref = {"lot_id": gid} if goods == "LOT" else {"batch_id": gid}
        self._run(expected, lambda: self.s.move(qty, frm, to, **ref))

    @rule(data=st.data(), site=st.sampled_from(SITES), little_waste=st.booleans())
    def process(self, data, site, little_waste):
        """An operation, accepted or refused. With ``little_waste`` one meant to be accepted — two lots or
        more, an even number of units of each within its stock (whole units at the rates of yield), every
        product at its rate — with a few kg of waste, of which a lot's share can be 0 kg."""
        if little_waste:
            there = [lot for lot, r in self.m.lots.items() if r.stock.get(site, 0) >= 2]
            if not there:
                return
            chosen = data.draw(st.lists(st.sampled_from(there), min_size=min(2, len(there)), max_size=3, unique=True))
            inputs = [(lot, 2 * data.draw(st.integers(1, self.m.lots[lot].stock[site] // 2))) for lot in chosen]
        else:
            there = [lot for lot, r in self.m.lots.items() if r.stock.get(site)] or list(self.m.lots)
            chosen = data.draw(st.lists(st.sampled_from(there), min_size=1, max_size=3, unique=True))
            inputs = [(lot, data.draw(SMALL | st.integers(1, self.m.lots[lot].stock.get(site, 0) + 10)))
                      for lot in chosen]
        expected: dict[str, F] = {}
        for lot, q in inputs:
            for cn, rate in RATES[self.m.lots[lot].cn].items():
                expected[cn] = expected.get(cn, F(0)) + q * rate
        outputs = []
        for cn in (RETREADED, RECLAIMED):
            if little_waste:
                how = "rate" if cn in expected else "none"
            else:
                how = data.draw(st.sampled_from(["rate"] * 6 + ["omit", "tiny"])) if cn in expected \
                    else data.draw(st.sampled_from(["none"] * 4 + ["unrated"]))
            if how == "rate":
                pct = 0 if little_waste else data.draw(st.integers(-3, 3))
                outputs.append((cn, max(1, int(expected[cn] * (100 + pct) / 100))))
            elif how in ("tiny", "unrated"):
                outputs.append((cn, 1))
        if little_waste or data.draw(st.booleans()) or not outputs:
            outputs.append((RUBBER_WASTE, data.draw(SMALL if little_waste else st.integers(1, 500))))
        self.n += 1
        op = f"OP{self.n}"
        prediction = self.m.process(op, inputs, outputs, site)
        if prediction is None and any(sh.qty == 0 for n in range(len(outputs))
                                      for sh in self.m.batches[f"{op}/{n + 1}"].shares):
            event("a batch with a share of 0 units")
        self._run(prediction, lambda: self.s.process(op, inputs, [
            {"cn": cn, "qty": q, "unit": UNIT[cn], "kind": KIND[cn]} for cn, q in outputs], site=site))

    @rule(data=st.data(), qty=ALL | SMALL | st.integers(1, 600), procedure=st.sampled_from(PROCEDURES),
          site=st.sampled_from((None,) + SITES))
    def exit(self, data, qty, procedure, site):
        goods, gid = self._goods(data)
        qty = self._all_or(qty, goods, gid, site)
        expected = self.m.dispose(goods, gid, qty, site, procedure, None)
        ref = {"lot_id": gid} if goods == "LOT" else {"batch_id": gid}
        extra = {"site": site} if site else {}
        self._run(expected, lambda: self.s.exit(qty, procedure=procedure, mrn_=self._mrn("A"), **ref, **extra))

    @rule(data=st.data(), procedure=st.sampled_from(PROCEDURES + (None,)))
    def a_unit_of_a_batch_with_shares_of_0_units(self, data, procedure):
        """One unit of a batch holding shares of 0 units of lots that give it, more being left: the disposals
        the shares' input is spread over, releases and others in any order (a loss when ``procedure`` is None)."""
        batches = [gid for gid, r in self.m.batches.items() if r.balance >= 2 and any(sh.gives for sh in r.shares)]
        if not batches:
            return
        gid = data.draw(st.sampled_from(batches))
        expected = self.m.dispose("BATCH", gid, 1, None, procedure, None if procedure else "DESTROYED")
        if procedure:
            self._run(expected, lambda: self.s.exit(1, procedure=procedure, mrn_=self._mrn("A"), batch_id=gid))
        else:
            self._run(expected, lambda: self.s.lose(1, reason="DESTROYED", batch_id=gid))

    @rule(data=st.data(), qty=ALL | SMALL | st.integers(1, 300), reason=st.sampled_from(REASONS))
    def lose(self, data, qty, reason):
        goods, gid = self._goods(data)
        qty = self._all_or(qty, goods, gid, None)
        expected = self.m.dispose(goods, gid, qty, None, None, reason)
        ref = {"lot_id": gid} if goods == "LOT" else {"batch_id": gid}
        self._run(expected, lambda: self.s.lose(qty, reason=reason, **ref))

    @invariant()
    def ledger_agrees_with_the_model(self):
        check(self.s, self.m)


TestConservation = ConservationMachine.TestCase
TestConservation.settings = settings(max_examples=30, stateful_step_count=30, deadline=None,
                                     suppress_health_check=[HealthCheck.too_slow])
