"""Default batch ids every act can name, a control's difference and a reception's dates on both sides of a 5151
transfer, and ids that cannot shadow a dashboard download."""
from __future__ import annotations

import datetime as dt

import pytest

from ipledger.chaincode.contract import InwardProcessingContract, timestamps
from ipledger.chaincode.testing.scenario import AUTH_ID, SITE1, SITE2, Scenario, iso, mrn, retreaded


@pytest.fixture
def s():
    return Scenario.with_l1(InwardProcessingContract)


def test_an_output_whose_default_batch_id_no_act_could_name_is_refused(s):
    """An operation id of 64 characters made its products ``<operation>/1``, 66 characters: no exit, loss, move or
    control could name them (a batch id is at most 64), so they — and the lot they came from — could never leave
    the procedure. Such an output must give its own batch_id."""
    op = "O" * 64
    details = s.refused("InvalidEvent", s.process, op, [("L1", 1000)], [retreaded(1000)])
    assert details["errors"] == [{"path": "/outputs/0/batch_id",
                                  "message": f"required: the default '{op}/1' is not a batch id"}]
    s.accepted(s.process(op, [("L1", 1000)], [retreaded(1000, "B-LONG-OP")]))
    s.accepted(s.exit(1000, batch_id="B-LONG-OP"))
    assert s.lot("L1")["status"] == "DISCHARGED"


def test_a_default_batch_id_of_64_characters_can_leave(s):
    op = "O" * 62
    (out,) = s.accepted(s.process(op, [("L1", 1000)], [retreaded(1000)]))["operation"]["outputs"]
    assert len(out["batch_id"]) == 64
    s.accepted(s.exit(1000, batch_id=out["batch_id"]))
    assert s.lot("L1")["status"] == "DISCHARGED"


AUTH_B = "FRIPO000002"


def _control(s, auth_id, site, counted):
    return s.accepted(s.submit("RecordControl", {"authorisation_id": auth_id, "site": site, "counted": counted},
                               "CustomsMSP"))


def _differences(s, auth_id, as_of=None):
    args = (auth_id,) if as_of is None else (auth_id, iso(as_of))
    return [a for a in s.query("GetAlerts", *args)["alerts"] if a["type"] == "BalanceDiscrepancy"]


def _received_first(s, n):
    """40 of L1 missing at SITE1 (a control's difference), and their 5151 transfer's reception recorded under
    AUTH_B before the exit."""
    s.accepted(s.grant(AUTH_B))
    _control(s, AUTH_ID, SITE1, [{"lot_id": "L1", "qty": 960}])
    transfer = mrn("I", n)
    s.accepted(s.place("LB", 40, mrn_=transfer, procedure="5151", auth_id=AUTH_B, site=SITE2))
    return transfer


def test_received_first_and_processed_since_the_difference_goes_to_the_products(s):
    """The reception recorded first, the received lot processed, then the exit: the difference went to the lot
    where its book was 0, and a count of nothing there cleared it while the products of the missing goods stood
    on the books. It goes to the batches made from the lot, where they are (as processed goods carry it)."""
    transfer = _received_first(s, 901)
    s.accepted(s.submit("RecordProcessing", {"authorisation_id": AUTH_B, "operation_id": "OPB", "site": SITE2,
                                             "inputs": [{"lot_id": "LB", "qty": 40}],
                                             "outputs": [retreaded(40, "BB")]}, "OperatorMSP"))
    s.accepted(s.exit(40, lot_id="L1", procedure="5151", mrn_=transfer, site=SITE1))
    (carried,) = _differences(s, AUTH_B)
    assert carried["subject"] == f"BATCH:BB@{SITE2}"
    assert carried["details"]["processed_from"] == "LB" and carried["details"]["transferred_from"] == AUTH_ID
    _control(s, AUTH_ID, SITE1, [{"lot_id": "L1", "qty": 960}])         # the sender's book matches now
    _control(s, AUTH_B, SITE2, [{"lot_id": "LB", "qty": 0}])
    assert [a["subject"] for a in _differences(s, AUTH_B)] == [f"BATCH:BB@{SITE2}"]


def test_the_receivers_log_holds_the_difference_its_goods_received(s):
    """The difference carried by the exit recorded after the reception was in the sender's log alone: the
    receiver's alerts as of a past moment and its bill missed it, the sender's showed it as theirs."""
    transfer = _received_first(s, 902)
    s.accepted(s.exit(40, lot_id="L1", procedure="5151", mrn_=transfer, site=SITE1))
    then = s.ledger.now
    s.wait_until(s.D(1))
    assert [a["subject"] for a in _differences(s, AUTH_B, then)] == [f"LOT:LB@{SITE2}"]
    assert {a["authorisation_id"] for a in _differences(s, AUTH_ID, then)} == {AUTH_ID}
    bill_a = s.query("GetBillOfDischargeData", AUTH_ID, None, iso(s.ledger.now))
    bill_b = s.query("GetBillOfDischargeData", AUTH_B, None, iso(s.ledger.now))
    assert {c["authorisation_id"] for c in bill_a["proof"]["alerts"]} == {AUTH_ID}
    assert [(c["change"], c["subject"]) for c in bill_b["proof"]["alerts"]] == [("RAISED", f"LOT:LB@{SITE2}")]
    _control(s, AUTH_B, SITE2, [{"lot_id": "LB", "qty": 40}])           # found after all: cleared, in B's log
    assert _differences(s, AUTH_B) == [] and _differences(s, AUTH_ID, s.ledger.now)[0]["subject"] == f"LOT:L1@{SITE1}"


def test_an_exit_from_a_site_where_a_difference_stands_keeps_it_on_its_declaration(s):
    """40 missing, then exactly 40 exited under 7151 (awaiting nothing): the next count matched and the
    difference stood nowhere. Every exit's declaration keeps the difference standing where its goods left."""
    _control(s, AUTH_ID, SITE1, [{"lot_id": "L1", "qty": 960}])
    m = mrn("E", 905)
    s.accepted(s.exit(40, lot_id="L1", procedure="7151", mrn_=m, site=SITE1))
    (item,) = s.query("GetDeclaration", m)["items"]
    assert item["difference_found"]["difference_found"] == -40 and item["difference_found"]["found_site"] == SITE1
    _control(s, AUTH_ID, SITE1, [{"lot_id": "L1", "qty": 960}])        # the book matches: cleared
    plain = mrn("E", 906)
    s.accepted(s.exit(10, lot_id="L1", procedure="3151", mrn_=plain, site=SITE1))
    assert "difference_found" not in s.query("GetDeclaration", plain)["items"][0]


def _late_recordings(s, auth_id):
    return [a for a in s.query("GetAlerts", auth_id)["alerts"] if a["type"] == "LateRecording"]


def test_a_reception_recorded_weeks_after_its_exit_runs_from_the_exits_date(s):
    """A 5151 transfer is one declaration, accepted once: the reception recorded 80 days after the exit, dated
    the day it was recorded, got a period from that later date — 80 days more, unseen. The received lot's period
    runs from the exit's date, and the reception is a late recording."""
    s.accepted(s.grant(AUTH_B))
    transfer = mrn("I", 903)
    exit_at = s.ledger.now
    s.accepted(s.exit(400, lot_id="L1", procedure="5151", mrn_=transfer, site=SITE1))
    s.wait_until(s.D(80))
    lot = s.accepted(s.place("LB", 400, mrn_=transfer, procedure="5151", auth_id=AUTH_B, site=SITE2))["lot"]
    assert lot["declared_at"] == timestamps.fmt(exit_at)
    assert lot["deadline"] == timestamps.fmt(exit_at + dt.timedelta(days=180))
    (late,) = _late_recordings(s, AUTH_B)
    assert late["details"]["declared_at"] == timestamps.fmt(exit_at) and late["details"]["late_by_s"] >= 79 * 86400
    bill = s.query("GetBillOfDischargeData", AUTH_B, None, iso(s.ledger.now))
    assert bill["lots"][0]["declared_at"] == timestamps.fmt(exit_at)


def test_a_reception_dated_on_its_exits_day_is_not_late(s):
    s.accepted(s.grant(AUTH_B))
    transfer = mrn("I", 907)
    s.accepted(s.exit(400, lot_id="L1", procedure="5151", mrn_=transfer, site=SITE1))
    s.wait_until(s.D(2))
    lot = s.accepted(s.place("LB", 400, mrn_=transfer, procedure="5151", auth_id=AUTH_B, site=SITE2))["lot"]
    assert _late_recordings(s, AUTH_B) == [] and lot["declared_at"] < lot["accepted_at"]


def test_an_exit_dated_before_its_reception_tells_customs_on_the_receiving_authorisation(s):
    """The mirror order: the reception recorded first, dated D30; the exit recorded after, dated D0. The lot's
    period ran from D30: customs are told on the receiving authorisation (its period is not cut afterwards)."""
    s.accepted(s.grant(AUTH_B))
    transfer = mrn("I", 908)
    exit_at = s.ledger.now
    s.wait_until(s.D(30))
    lot = s.accepted(s.place("LB", 400, mrn_=transfer, procedure="5151", auth_id=AUTH_B, site=SITE2))["lot"]
    s.accepted(s.exit(400, lot_id="L1", procedure="5151", mrn_=transfer, site=SITE1, occurred_at=iso(exit_at)))
    (late,) = _late_recordings(s, AUTH_B)
    assert late["subject"] == f"TRANSFER:{transfer}/1" and "event_id" not in late["details"]
    assert late["details"]["transfer"] == {"mrn": transfer, "item_no": 1, "declared_at": timestamps.fmt(exit_at),
                                           "received_lot_declared_at": lot["declared_at"]}
    # (the sender's own exit, recorded 30 days after it occurred, is late on its own authorisation)
    assert all("transfer" not in a["details"] for a in _late_recordings(s, AUTH_ID))
    assert s.lot("LB")["deadline"] == lot["deadline"]


# -- a 5151 transfer between two holders: what the sender's exit writes in the receiver's log ------------------------

EORI_B = "FR22222222222222"


@pytest.fixture
def two_holders():
    sc = Scenario.with_l1(InwardProcessingContract)
    sc.accepted(sc.register("HolderBMSP", "holder", [EORI_B]))
    sc.accepted(sc.grant(AUTH_B, holder_eori=EORI_B, broker_mandates=[]))
    return sc


def test_another_holders_log_gets_none_of_the_senders_act(two_holders):
    """The entry the sender's exit wrote in the receiver's log (its difference carried there) was a copy of the
    sender's: its lot, site, quantity, event id and clerk, readable by another company. It holds the transaction,
    the declaration item both recorded and the alert changes only."""
    s = two_holders
    _control(s, AUTH_ID, SITE1, [{"lot_id": "L1", "qty": 960}])
    transfer = mrn("I", 9101)
    s.accepted(s.place("LB", 40, mrn_=transfer, procedure="5151", auth_id=AUTH_B, site=SITE2, msp="HolderBMSP"))
    s.accepted(s.exit(40, lot_id="L1", procedure="5151", mrn_=transfer, site=SITE1))
    events = s.query("GetEventsInPeriod", AUTH_B, iso(s.D(-1)), iso(s.ledger.now + dt.timedelta(seconds=1)),
                     msp="HolderBMSP")["events"]
    (carried,) = [e for e in events if e["event_type"] == "ExitGoods"]
    assert carried["event"] == {"mrn": transfer, "item_no": 1, "procedure": "5151"}
    assert carried["submitted_by"] == {} and carried["event_id"] is None and carried["effects"] == []
    assert "L1" not in str(carried) and SITE1 not in str({k: v for k, v in carried.items() if k != "alerts"})
    assert [a["subject"] for a in carried["alerts"]] == [f"LOT:LB@{SITE2}"]


def test_an_exit_cannot_write_in_the_receivers_log_before_its_submitted_bill(two_holders):
    """An exit recorded after its reception, timestamped (within the clock skew) before the cut-off of a bill the
    receiver had submitted, changed that bill's hash. It is OutOfOrder, as a reception before the sender's is."""
    s = two_holders
    _control(s, AUTH_ID, SITE1, [{"lot_id": "L1", "qty": 960}])
    transfer = mrn("I", 9102)
    s.accepted(s.place("LB", 40, mrn_=transfer, procedure="5151", auth_id=AUTH_B, site=SITE2, msp="HolderBMSP"))
    end = dt.datetime(2026, 3, 31, 23, 59, 59, 999999, tzinfo=dt.timezone.utc)
    s.wait_until(end + dt.timedelta(seconds=30))
    data = s.query("GetBillOfDischargeData", AUTH_B, "2026-03-31", None, msp="HolderBMSP")
    s.accepted(s.submit("SubmitBillOfDischarge", {"authorisation_id": AUTH_B, "period_end": "2026-03-31",
                                                  "document_hash": data["document_hash"]}, "HolderBMSP"))
    details = s.refused("OutOfOrder", s.exit, 40, lot_id="L1", procedure="5151", mrn_=transfer, site=SITE1,
                        ts=end - dt.timedelta(seconds=60))
    assert details["authorisation_id"] == AUTH_B
    assert s.query("GetBillOfDischargeData", AUTH_B, "2026-03-31", None, msp="HolderBMSP")["document_hash"] == \
        data["document_hash"]


@pytest.mark.parametrize("goods_id", ["B1/audit.csv", "B1/audit.json"])
def test_a_new_id_ending_as_a_dashboard_download_is_refused(s, goods_id):
    """A batch ``B1/audit.csv`` had a page no link could open: its path was the download of batch B1's trail."""
    s.refused("InvalidEvent", s.process, "OP-X", [("L1", 10)], [retreaded(10, goods_id)])
    s.refused("InvalidEvent", s.place, goods_id, 10)
