"""Conservation under concurrency, on the real network: transactions racing for the same goods.

What stops two transactions from spending the same goods is Fabric's check at commit — each transaction's reads
against the state it is committed on (MVCC) — and that the contract reads everything it decides on: the lot, the
authorisation's balance shards (range reads: a placement elsewhere is a phantom), the declaration item. A race is
then a conflict (the client proposes again, on the new state, and the contract refuses what no longer fits),
never a double spend. Each test races 20 transactions at once and checks the result from the ledger alone.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from ipledger.chaincode.testing import mrns
from ipledger.chaincode.testing.scenario import SITE1, USED_TYRES
from ipledger.gateway.client import CommitError, EndorseError
from ipledger.gateway.client.gateway import is_endorsement_mismatch

from .realscenario import RealScenario

pytestmark = pytest.mark.fabric

RACERS = 20
# a race lost: a conflict the client's new proposals did not get past (at commit, or the endorsing peers reading
# different versions), or (timestamped before the last change of the goods, which a later proposal committed
# first) OutOfOrder — nothing recorded either way
CONFLICTS = {"MVCC_READ_CONFLICT", "PHANTOM_READ_CONFLICT", "ENDORSEMENT_MISMATCH", "OutOfOrder"}


def _race(calls) -> tuple[list[str], list[str]]:
    """Run ``calls`` (each a RealScenario submit) at once: (tx ids committed, what refused the others — the
    contract's error code, or the validation code of a conflict the client's retries did not get past)."""
    def one(call):
        try:
            res = call()
        except CommitError as e:       # nothing was recorded
            return "refused", e.validation_code_name
        except EndorseError as e:      # the endorsing peers read different versions, still after the retries
            assert is_endorsement_mismatch(e), e
            return "refused", "ENDORSEMENT_MISMATCH"
        return ("ok", res.tx_id) if res.ok else ("refused", res.error_code)
    with ThreadPoolExecutor(RACERS) as pool:
        outcomes = list(pool.map(one, calls))
    return [v for k, v in outcomes if k == "ok"], [v for k, v in outcomes if k == "refused"]


def _absent(s: RealScenario, fn: str, *args) -> bool:
    try:
        s.query(fn, *args)
    except AssertionError as e:
        assert "NotFound" in str(e) or "not found" in str(e).lower(), e
        return True
    return False


@pytest.fixture(scope="module")
def race(clients, ipledger_chaincode):
    return RealScenario(clients, ipledger_chaincode.name)


def _granted(s: RealScenario, auth_id: str, max_qty: int) -> None:
    s.accepted(s.grant(auth_id, input_goods=[{"cn": USED_TYRES, "description": "used pneumatic tyres",
                                              "unit": "p/st", "max_qty": max_qty}]))


def test_exits_racing_for_one_lot_never_take_more_than_it_holds(race):
    s = race
    _granted(s, "FRIPO000771", 1000)
    # every declaration of this module its own (the shared network's other modules number theirs from 1)
    s.accepted(s.place("RACE-L1", 10, auth_id="FRIPO000771", mrn_=mrns.placement_mrn(77_099)))
    exits = [{"event_id": f"race-exit-{i}", "authorisation_id": "FRIPO000771", "lot_id": "RACE-L1", "quantity": 3,
              "procedure": "3151", "mrn": mrns.exit_mrn(77_100 + i)} for i in range(RACERS)]
    committed, refused = _race([lambda e=e: s.submit("ExitGoods", e, "BrokerMSP") for e in exits])
    assert 1 <= len(committed) <= 3 and set(refused) <= {"QuantityExceedsBalance", *CONFLICTS}, (committed, refused)
    lot = s.lot("RACE-L1")
    assert lot["exited"] == {"3151": 3 * len(committed)} and lot["balance"] == 10 - 3 * len(committed) >= 0, lot
    stood = [e["mrn"] for e in exits if not _absent(s, "GetDeclaration", e["mrn"])]
    assert len(stood) == len(committed)            # a declaration item for each exit committed, none for the others
    for mrn in stood:
        [item] = s.query("GetDeclaration", mrn)["items"]
        assert item["quantity"] == 3 and item["tx_id"] in committed and item["events"], item
    trail = [entry["tx_id"] for entry in s.query("GetLotHistory", "RACE-L1")["history"]]
    assert sorted(t for t in trail if t in committed) == sorted(committed)   # each exit in the trail, once


def test_placements_racing_for_one_ceiling_never_pass_it(race):
    s = race
    _granted(s, "FRIPO000772", 50)
    committed, refused = _race([lambda i=i: s.place(f"RACE-C{i}", 10, auth_id="FRIPO000772", site=SITE1,
                                                    mrn_=mrns.placement_mrn(77_200 + i)) for i in range(RACERS)])
    assert 1 <= len(committed) <= 5 and set(refused) <= {"CeilingExceeded", *CONFLICTS}, (committed, refused)
    [ceiling] = s.query("GetBalances", "FRIPO000772")["ceilings"]
    assert ceiling["quantity"] == 10 * len(committed) <= 50, ceiling
    placed = [i for i in range(RACERS) if not _absent(s, "GetLot", f"RACE-C{i}")]
    assert len(placed) == len(committed)           # a refused placement left no lot behind
