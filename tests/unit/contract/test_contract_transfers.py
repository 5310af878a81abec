"""A transfer between two authorisations (procedure 5151, inward processing after inward processing): one
declaration item discharges the goods from the first authorisation (``ExitGoods``) and places them under the
second (``PlaceUnderProcedure``). On one ledger the item's two sides are recorded in either order, each once,
for the same goods code, unit and quantity; every other reuse of a declaration item stays a
``DuplicateDeclaration``. A second authorisation elsewhere (another channel) places under its own declaration."""
from __future__ import annotations

import pytest

from ipledger.chaincode.contract import InwardProcessingContract
from ipledger.chaincode.testing.scenario import AUTH_ID, Scenario, mrn

OTHER = "FRIPO000002"


@pytest.fixture
def s():
    sc = Scenario.with_l1(InwardProcessingContract)
    sc.accepted(sc.grant(OTHER))
    return sc


def _unchanged(s, refuse):
    before = s.ledger.snapshot()
    refuse()
    assert s.ledger.snapshot() == before


def test_the_exit_then_the_reception_under_the_same_declaration(s):
    transfer = mrn("I", 880001)
    s.accepted(s.exit(100, lot_id="L1", procedure="5151", mrn_=transfer))
    placed = s.accepted(s.place("L1-B", 100, mrn_=transfer, auth_id=OTHER, procedure="5151"))
    assert (placed["lot"]["procedure"], placed["lot"]["mrn"]) == ("5151", transfer)
    assert s.lot("L1")["balance"] == 900 and s.lot("L1-B")["balance"] == 100
    items = s.query("GetDeclaration", transfer, msp="CustomsMSP")["items"]
    assert sorted((i["type"], i["authorisation_id"], i["item_no"]) for i in items) == [
        ("EXIT", AUTH_ID, 1), ("PLACEMENT", OTHER, 1)]


def test_the_reception_first_then_the_exit(s):
    transfer = mrn("I", 880002)
    s.accepted(s.place("L1-B", 40, mrn_=transfer, auth_id=OTHER, procedure="5151"))
    s.accepted(s.exit(40, lot_id="L1", procedure="5151", mrn_=transfer))
    assert s.lot("L1")["balance"] == 960


def test_each_side_once_and_for_the_same_goods(s):
    transfer = mrn("I", 880003)
    s.accepted(s.exit(100, lot_id="L1", procedure="5151", mrn_=transfer))
    for refuse in (lambda: s.refused("TransferMismatch", s.place, "X1", 99, mrn_=transfer, auth_id=OTHER,
                                     procedure="5151"),
                   lambda: s.refused("DuplicateDeclaration", s.place, "X2", 100, mrn_=transfer, auth_id=OTHER),
                   lambda: s.refused("DuplicateDeclaration", s.place, "X3", 100, mrn_=transfer, procedure="5151"),
                   lambda: s.refused("DuplicateDeclaration", s.exit, 100, lot_id="L1", procedure="5151",
                                     mrn_=transfer)):
        _unchanged(s, refuse)
    s.accepted(s.place("L1-B", 100, mrn_=transfer, auth_id=OTHER, procedure="5151"))
    _unchanged(s, lambda: s.refused("DuplicateDeclaration", s.place, "L1-C", 100, mrn_=transfer, auth_id=OTHER,
                                    procedure="5151"))


def test_a_mismatch_names_the_fields_not_the_other_sides_figures(s):
    transfer = mrn("I", 880007)
    s.accepted(s.exit(100, lot_id="L1", procedure="5151", mrn_=transfer))
    details = s.refused("TransferMismatch", s.place, "X1", 99, mrn_=transfer, auth_id=OTHER, procedure="5151")
    assert details == {"mrn": transfer, "item_no": 1, "differ": ["quantity"]}


def test_other_declarations_are_not_transfers(s):
    released = mrn("I", 880004)
    s.accepted(s.exit(10, lot_id="L1", procedure="4051", mrn_=released))
    _unchanged(s, lambda: s.refused("DuplicateDeclaration", s.place, "Y1", 10, mrn_=released, auth_id=OTHER,
                                    procedure="5151"))
    placed = mrn("I", 880005)
    s.accepted(s.place("Y2", 10, mrn_=placed, auth_id=OTHER))
    _unchanged(s, lambda: s.refused("DuplicateDeclaration", s.exit, 10, lot_id="L1", procedure="5151",
                                    mrn_=placed))


def test_a_reception_whose_exit_is_not_on_this_ledger_places_under_its_own_declaration(s):
    s.accepted(s.place("Z1", 25, mrn_=mrn("I", 880006), auth_id=OTHER, procedure="5151"))
    assert s.lot("Z1")["procedure"] == "5151"


# ---------------------------------------------------------------------------------------- a transfer awaits its reception

def _unreceived(s, as_of) -> list[dict]:
    from ipledger.chaincode.testing.scenario import iso
    return [a["details"] for a in s.query("GetAlerts", AUTH_ID, iso(as_of))["alerts"] if a["type"] == "ExitUnconfirmed"]


def _confirm(s, transfer):
    return s.submit("ConfirmExit", {"authorisation_id": AUTH_ID, "mrn": transfer,
                                    "exit_date": s.ledger.now.date().isoformat()}, "CustomsMSP")


def test_a_transfer_never_received_is_flagged_as_a_re_export_never_confirmed_is(s):
    """The exit discharges the goods from this authorisation; until their reception under the other one is
    recorded, they are under no procedure known here — not a trace, after ``exit_confirm_days``."""
    transfer = mrn("I", 880010)
    s.accepted(s.exit(300, lot_id="L1", procedure="5151", mrn_=transfer))
    assert _unreceived(s, s.D(90)) == []
    [late] = _unreceived(s, s.D(91))
    assert (late["mrn"], late["item_no"], late["procedure"], late["quantity"], late["id"]) == \
        (transfer, 1, "5151", 300, "L1")
    s.wait_until(s.D(95))
    s.accepted(s.place("L1-B", 300, mrn_=transfer, auth_id=OTHER, procedure="5151"))   # received at last
    assert _unreceived(s, s.D(96)) == []
    assert [a["mrn"] for a in _unreceived(s, s.D(92))] == [transfer]      # as it stood before the reception
    s.refused("InvalidState", _confirm, s, transfer)                     # its reception is the proof


def test_a_transfer_received_first_awaits_nothing(s):
    transfer = mrn("I", 880011)
    s.accepted(s.place("L1-B", 40, mrn_=transfer, auth_id=OTHER, procedure="5151"))
    s.accepted(s.exit(40, lot_id="L1", procedure="5151", mrn_=transfer))
    assert _unreceived(s, s.D(100)) == []
    s.wait_until(s.D(100))
    assert _unreceived(s, s.D(100)) == []


def test_customs_confirm_a_transfer_received_under_an_authorisation_elsewhere(s):
    from ipledger.chaincode.testing.scenario import iso
    transfer = mrn("I", 880012)
    s.accepted(s.exit(300, lot_id="L1", procedure="5151", mrn_=transfer))
    s.wait_until(s.D(91))
    assert [a["mrn"] for a in _unreceived(s, s.D(91))] == [transfer]
    s.accepted(_confirm(s, transfer))
    assert _unreceived(s, s.D(92)) == []
    s.refused("InvalidState", _confirm, s, transfer)
    [line] = [d for d in s.query("GetBillOfDischargeData", AUTH_ID, None, iso(s.ledger.now))["disposals"]
              if d["mrn"] == transfer]
    assert line["procedure"] == "5151" and line["exit_confirmed"]["exit_date"] == s.ledger.now.date().isoformat()


def test_a_transfer_recorded_before_transfers_awaited_their_reception_stays_as_it_was(s, monkeypatch):
    """An exit under 5151 recorded by the contract before this rule carries no mark and no record: no alert
    appears for it in any view, past or present, and there is nothing for customs to confirm."""
    from ipledger.chaincode.contract import declarations, discharge
    transfer = mrn("I", 880013)
    with monkeypatch.context() as m:   # the former contract: a transfer's exit awaited nothing
        m.setattr(declarations, "other_side", lambda *args: {"type": "PLACEMENT"})
        m.setattr(discharge, "received_first", lambda *args: None)   # nor wrote to the receiver's side
        s.accepted(s.exit(300, lot_id="L1", procedure="5151", mrn_=transfer))
    s.wait_until(s.D(120))
    assert _unreceived(s, s.D(110)) == [] and _unreceived(s, s.D(120)) == []
    details = s.refused("InvalidState", _confirm, s, transfer)
    assert details == {"mrn": transfer}


def _bill_lines(s, as_of=None, period_end=None):
    from ipledger.chaincode.testing.scenario import iso
    bill = s.query("GetBillOfDischargeData", AUTH_ID, period_end, None if period_end else iso(as_of or s.ledger.now))
    return bill, {d["mrn"]: d for d in bill["disposals"] if d["procedure"] == "5151"}


def test_the_bill_shows_whether_a_transfer_was_received_on_this_ledger(s):
    """A 5151 disposal line says when and in which transaction the goods were received under the other
    authorisation (before the bill's cut-off), so the bill tells a received transfer from one never received;
    not the other authorisation's record."""
    received, never, first = mrn("I", 880020), mrn("I", 880021), mrn("I", 880022)
    s.accepted(s.exit(100, lot_id="L1", procedure="5151", mrn_=received))
    s.accepted(s.exit(100, lot_id="L1", procedure="5151", mrn_=never))
    s.wait_until(s.D(1))
    placed = s.accepted(s.place("L1-B", 100, mrn_=received, auth_id=OTHER, procedure="5151"))
    s.accepted(s.place("L1-C", 50, mrn_=first, auth_id=OTHER, procedure="5151"))     # received before its exit
    s.accepted(s.exit(50, lot_id="L1", procedure="5151", mrn_=first))
    _, lines = _bill_lines(s)
    assert lines[received]["received"] == {"recorded_at": placed["recorded_at"], "tx_id": placed["tx_id"]}
    assert lines[never]["received"] is None
    assert lines[first]["received"]["tx_id"] and lines[first]["exit_confirmed"] is None
    # as of a moment before the reception, the transfer was not received yet
    _, before = _bill_lines(s, as_of=s.D(0.5))
    assert before[received]["received"] is None


def test_a_bill_submitted_before_receptions_were_shown_keeps_its_hash(s):
    import copy
    from ipledger.chaincode.contract.state import digest
    transfer = mrn("I", 880023)
    s.accepted(s.exit(100, lot_id="L1", procedure="5151", mrn_=transfer))
    s.accepted(s.place("L1-B", 100, mrn_=transfer, auth_id=OTHER, procedure="5151"))
    period_end = s.D(185).date().isoformat()
    s.wait_until(s.D(186))
    bill, lines = _bill_lines(s, period_end=period_end)
    assert lines[transfer]["received"] is not None
    stored = s.accepted(s.submit("SubmitBillOfDischarge", {"authorisation_id": AUTH_ID, "period_end": period_end,
                                                           "document_hash": bill["document_hash"]}, "OperatorMSP"))
    assert stored["bill"]["receptions_shown"] is True
    assert _bill_lines(s, period_end=period_end)[0]["document_hash"] == bill["document_hash"]
    # the same bill as the previous contract recorded it (no receptions_shown): its lines, and hash, as then
    s.ledger.as_recorded_before("receptions_shown")
    then, lines = _bill_lines(s, period_end=period_end)
    assert "received" not in lines[transfer]
    old_format = copy.deepcopy(bill)          # the bill as the previous contract computed it: no 'received'
    del old_format["document_hash"]
    for line in old_format["disposals"]:
        del line["received"]
    for lot in old_format["lots"]:
        lot.pop("customs_value", None)        # shown to customs and the holder beside the hash, not in it
    assert then["document_hash"] == digest(old_format) != bill["document_hash"]
    # queried and submitted again, it keeps the previous contract's lines and hash
    s.accepted(s.submit("DecideBillOfDischarge", {"authorisation_id": AUTH_ID, "bill_id": f"BOD-{AUTH_ID}-{period_end}",
                                                  "decision": "QUERIED"}, "CustomsMSP"))
    s.wait_until(s.D(187))
    again = s.accepted(s.submit("SubmitBillOfDischarge", {"authorisation_id": AUTH_ID, "period_end": period_end,
                                                          "document_hash": then["document_hash"]}, "OperatorMSP"))
    assert "receptions_shown" not in again["bill"] and again["bill"]["revision"] == 2
    assert _bill_lines(s, period_end=period_end)[0]["document_hash"] == then["document_hash"]


def test_the_bill_says_which_items_a_confirmation_confirmed_as_the_contract_did(s):
    """One declaration, item 1 a transfer (received on this ledger), item 2 a re-export; customs confirm the
    declaration without naming items: the contract confirms the re-export only (the transfer's reception is its
    proof), and the bill says so — not 'exit confirmed' for the received transfer."""
    m = mrn("E", 880030)
    s.accepted(s.exit(100, lot_id="L1", procedure="5151", mrn_=m, item_no=1))
    s.accepted(s.exit(50, lot_id="L1", procedure="3151", mrn_=m, item_no=2))
    s.wait_until(s.D(1))
    s.accepted(s.place("L1-B", 100, mrn_=m, auth_id=OTHER, procedure="5151"))
    s.wait_until(s.D(2))
    res = s.accepted(_confirm(s, m))
    assert [c["item_no"] for c in res["confirmed"]] == [2]
    lines = {d["item_no"]: d for d in _bill_lines(s)[0]["disposals"] if d["mrn"] == m}
    assert lines[1]["exit_confirmed"] is None and lines[1]["received"] is not None
    assert lines[2]["exit_confirmed"] is not None


def test_a_reception_timestamped_before_the_senders_submitted_bill_is_out_of_order(s):
    """The sending authorisation's bill, submitted, says whether its transfers were received by its cut-off: a
    reception stamped before that cut-off (a client clock behind, within max_clock_skew_s) but sent after the
    submission would change it."""
    import datetime as dt
    from ipledger.chaincode.contract import timestamps
    m = mrn("E", 880031)
    s.accepted(s.exit(100, lot_id="L1", procedure="5151", mrn_=m))
    period_end = s.D(185).date()
    cutoff = timestamps.end_of(period_end)
    s.wait_until(cutoff + dt.timedelta(seconds=30))
    bill, _ = _bill_lines(s, period_end=period_end.isoformat())
    s.accepted(s.submit("SubmitBillOfDischarge", {"authorisation_id": AUTH_ID, "period_end": period_end.isoformat(),
                                                  "document_hash": bill["document_hash"]}, "OperatorMSP"))
    details = s.refused("OutOfOrder", s.place, "L1-B", 100, mrn_=m, auth_id=OTHER, procedure="5151",
                        ts=cutoff - dt.timedelta(seconds=30))
    assert details["closed_until"] == timestamps.fmt(cutoff)
    s.accepted(s.place("L1-B", 100, mrn_=m, auth_id=OTHER, procedure="5151"))     # at its own time: received
    assert _bill_lines(s, period_end=period_end.isoformat())[0]["document_hash"] == bill["document_hash"]


def test_the_bill_follows_the_contracts_confirmation_under_clock_skew(s):
    """The reception committed first but stamped later than the confirmation committed after it (both within
    max_clock_skew_s): the contract confirmed the re-export only, and the bill says the same — it reads the
    records the confirmation wrote, not the log's timestamps."""
    import datetime as dt
    m = mrn("E", 880032)
    confirmed = _skewed_reception_and_confirmation(s, m)
    assert [c["item_no"] for c in confirmed["confirmed"]] == [2]
    s.wait_until(s.ledger.now + dt.timedelta(seconds=400))
    lines = {d["item_no"]: d for d in _bill_lines(s)[0]["disposals"] if d["mrn"] == m}
    assert lines[1]["exit_confirmed"] is None and lines[1]["received"] is not None
    assert lines[2]["exit_confirmed"]["tx_id"] == confirmed["tx_id"]
    items = {i["item_no"]: [e["event_type"] for e in i["events"]]
             for i in s.query("GetDeclaration", m)["items"] if i["type"] == "EXIT"}
    assert items == {1: ["ExitGoods"], 2: ["ExitGoods", "ConfirmExit"]}


def test_a_transfer_confirmed_received_elsewhere_can_still_be_received_here_late(s):
    """Customs confirmed the transfer received elsewhere; the receiver is on this ledger after all and records
    its placement late: accepted (else its goods could never be recorded), and the sender's bill line shows
    both the confirmation and the reception."""
    m = mrn("E", 880033)
    s.accepted(s.exit(300, lot_id="L1", procedure="5151", mrn_=m))
    s.wait_until(s.D(1))
    s.accepted(_confirm(s, m))
    s.wait_until(s.D(2))
    s.accepted(s.place("L1-B", 300, mrn_=m, auth_id=OTHER, procedure="5151"))
    line = _bill_lines(s)[1][m]
    assert line["exit_confirmed"] is not None and line["received"] is not None


def test_a_bill_submitted_before_confirmations_were_read_from_records_keeps_its_reading(s):
    """A bill submitted by an earlier contract read which items a ConfirmExit confirmed from the log (every item
    of the MRN awaiting one): recomputed, it reads them so again (its hash); a new bill reads the records."""
    m = mrn("E", 880034)
    _skewed_reception_and_confirmation(s, m)
    period_end = s.D(185).date().isoformat()
    s.wait_until(s.D(186))
    bill, lines = _bill_lines(s, period_end=period_end)
    assert lines[m]["exit_confirmed"] is None                      # item 1 (the transfer) was not confirmed
    stored = s.accepted(s.submit("SubmitBillOfDischarge", {"authorisation_id": AUTH_ID, "period_end": period_end,
                                                           "document_hash": bill["document_hash"]}, "OperatorMSP"))
    assert stored["bill"]["confirmations_recorded"] is True
    s.ledger.as_recorded_before("confirmations_recorded")                 # as an earlier contract recorded it
    then = s.query("GetBillOfDischargeData", AUTH_ID, period_end, None)
    item1 = [d for d in then["disposals"] if d["mrn"] == m and d["item_no"] == 1][0]
    assert item1["exit_confirmed"] is not None and then["document_hash"] != bill["document_hash"]




def _skewed_reception_and_confirmation(s, m: str) -> dict:
    """Under declaration ``m``: item 1 a transfer, item 2 a re-export; a day later the reception of item 1,
    committed first but stamped 200 s ahead, then customs' ConfirmExit naming no items, stamped 100 s ahead
    (both within max_clock_skew_s). The confirmation's result."""
    import datetime as dt
    s.accepted(s.exit(100, lot_id="L1", procedure="5151", mrn_=m, item_no=1))
    s.accepted(s.exit(50, lot_id="L1", procedure="3151", mrn_=m, item_no=2))
    s.wait_until(s.D(1))
    now = s.ledger.now
    s.accepted(s.place("L1-B", 100, mrn_=m, auth_id=OTHER, procedure="5151", ts=now + dt.timedelta(seconds=200)))
    return s.accepted(s.submit("ConfirmExit", {"authorisation_id": AUTH_ID, "mrn": m,
                                               "exit_date": now.date().isoformat()}, "CustomsMSP",
                               ts=now + dt.timedelta(seconds=100)))

