"""Identifiers match whole (issue 13, point 3).

JSON Schema patterns ``^…$`` accept a trailing newline under Python's ``re.search`` (which jsonschema
uses), so an MRN + "\\n" was a second declaration and an event_id + "\\n" a second idempotency key.
Every identifier is now matched as a whole string without control characters, and MRNs are real EU
MRNs: 18 characters, procedure-category letter at position 17, ISO 6346 check digit at position 18.
"""
from __future__ import annotations

import datetime as dt
import itertools
import json
import random
import string

import pytest

from ipledger.chaincode.contract.schemas import EVENT_TYPES, TRANSIENT_SCHEMAS, load_schema
from ipledger.chaincode.testing import mrns
from ipledger.chaincode.testing.scenario import AUTH_ID, SITE1, SITE2, Scenario, authorisation_fields, iso, retreaded

BAD_ENDINGS = ("\n", "\r\n", "\x00", "\x00X", "\t", "\x1f", "\x85")



def refused(s: Scenario, res_of, *args, **kw) -> str:
    """The code of a refusal that wrote nothing."""
    before = s.ledger.snapshot()
    res = res_of(*args, **kw)
    assert not res.ok, f"accepted: {res.payload[:200]!r}"
    assert res.event is None and s.ledger.snapshot() == before
    return res.error_code


# ---------------------------------------------------------------------------------------- what was measured on main

def test_the_mrn_of_an_earlier_placement_plus_a_newline_is_not_a_new_declaration(s):
    for ending in BAD_ENDINGS:
        assert refused(s, s.place, "L2", 10, mrn_=mrns.PLACE_MRN_L1 + ending) == "InvalidMrn"
    assert s.query("GetDeclaration", mrns.PLACE_MRN_L1)["items"][0]["id"] == "L1"


def test_an_event_id_plus_a_newline_is_not_a_second_idempotency_key(s):
    event = {"event_id": "mv-1", "authorisation_id": AUTH_ID, "lot_id": "L1", "quantity": 10,
             "from_site": SITE1, "to_site": SITE2, "occurred_at": iso(s.ledger.now)}
    s.accepted(s.submit("MoveGoods", event, "OperatorMSP"))
    for ending in BAD_ENDINGS:
        assert refused(s, s.submit, "MoveGoods", {**event, "event_id": "mv-1" + ending}, "OperatorMSP") \
            == "InvalidEvent"
    assert s.lot("L1")["stock"] == {SITE1: 990, SITE2: 10}  # moved once


# ---------------------------------------------------------------------------------------- every identifier of every act

def _events(s: Scenario) -> dict[str, tuple[str, str, dict, dict | None]]:
    """act -> (msp, act, valid event, transient) in the state of the fixture."""
    value = {"commercial": {"customs_value": {"amount": "1.00", "currency": "EUR"}, "nonce": "nonce-identifiers"}}
    period = (s.day - dt.timedelta(days=1)).date().isoformat()
    return {
        "grant": ("CustomsMSP", "GrantAuthorisation",
                  {"authorisation_id": "FRIPO000009", **authorisation_fields(s.day)}, None),
        "place": ("BrokerMSP", "PlaceUnderProcedure",
                  {"authorisation_id": AUTH_ID, "lot_id": "L9", "mrn": mrns.placement_mrn(9009), "item_no": 1,
                   "procedure": "5100", "cn": "40122000", "description": "tyres", "quantity": 5, "unit": "p/st",
                   "origin": "MA", "site": SITE1}, value),
        "move": ("OperatorMSP", "MoveGoods",
                 {"authorisation_id": AUTH_ID, "lot_id": "L1", "quantity": 5, "from_site": SITE1,
                  "to_site": SITE2}, None),
        "process": ("OperatorMSP", "RecordProcessing",
                    {"authorisation_id": AUTH_ID, "operation_id": "OP9", "site": SITE1,
                     "inputs": [{"lot_id": "L1", "qty": 5}], "outputs": [retreaded(5, "B9")]}, None),
        "exit": ("BrokerMSP", "ExitGoods",
                 {"authorisation_id": AUTH_ID, "lot_id": "L1", "quantity": 1, "procedure": "3151",
                  "mrn": mrns.exit_mrn(9009)}, None),
        "extend": ("CustomsMSP", "ExtendDischargePeriod",
                   {"authorisation_id": AUTH_ID, "lot_ids": ["L1"], "new_deadline": iso(s.D(300))}, None),
        "control": ("CustomsMSP", "RecordControl",
                    {"authorisation_id": AUTH_ID, "site": SITE1, "counted": [{"lot_id": "L1", "qty": 1000}]}, None),
        "decide": ("CustomsMSP", "DecideBillOfDischarge",
                   {"authorisation_id": AUTH_ID, "bill_id": f"BOD-{AUTH_ID}-{period}", "decision": "ACCEPTED"},
                   None),
        "register": ("CustomsMSP", "RegisterParty",
                     {"msp_id": "PlantBMSP", "role": "holder", "eoris": ["FR55555555555555"]}, None),
        "withdraw": ("CustomsMSP", "WithdrawParty", {"msp_id": "BrokerMSP"}, None),
    }


CASES = [  # (event, path to an identifier inside it)
    ("grant", ("authorisation_id",)), ("grant", ("holder_eori",)), ("grant", ("supervising_office",)),
    ("grant", ("sites", 0)), ("grant", ("broker_mandates", 0)), ("grant", ("valid_from",)),
    ("grant", ("input_goods", 0, "cn")), ("grant", ("yield_rates", 0, "output_cn")),
    ("place", ("event_id",)), ("place", ("authorisation_id",)), ("place", ("lot_id",)), ("place", ("mrn",)),
    ("place", ("cn",)), ("place", ("site",)), ("place", ("origin",)), ("place", ("occurred_at",)),
    ("move", ("lot_id",)), ("move", ("from_site",)), ("move", ("to_site",)),
    ("process", ("operation_id",)), ("process", ("inputs", 0, "lot_id")), ("process", ("outputs", 0, "batch_id")),
    ("exit", ("mrn",)), ("extend", ("lot_ids", 0)), ("control", ("counted", 0, "lot_id")),
    ("decide", ("bill_id",)), ("register", ("msp_id",)), ("register", ("eoris", 0)), ("register", ("role",)),
    ("withdraw", ("msp_id",)),
]


def _set(event: dict, path: tuple, ending: str) -> dict:
    event = json.loads(json.dumps(event))
    *parents, last = path
    target = event
    for p in parents:
        target = target[p]
    target[last] = target[last] + ending
    return event


@pytest.mark.parametrize("ending", ["\n", "\x00"])
@pytest.mark.parametrize("name, path", CASES, ids=["/".join(map(str, p)) + f"@{n}" for n, p in CASES])
def test_every_identifier_is_matched_whole(s, name, path, ending):
    msp, act, event, transient = _events(s)[name]
    event = {"event_id": f"id-{name}", "occurred_at": iso(s.ledger.now), **event}
    code = refused(s, s.submit, act, _set(event, path, ending), msp, transient=transient)
    assert code == ("InvalidMrn" if path[-1] == "mrn" else "InvalidEvent")


def test_a_registered_msp_id_is_matched_whole(s):
    code = refused(s, s.register, "BrokerMSP\n", "representative", ["FR98765432109876"])
    assert code == "InvalidEvent"
    code = refused(s, s.withdraw, "BrokerMSP\x00")
    assert code == "InvalidEvent"


def test_every_schema_pattern_refuses_a_trailing_newline():
    """Not only the contract's validator: any consumer of the schemas (Python's re.search or an
    ECMA-262 engine) reads the patterns as whole-string matches."""
    patterns = []

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "pattern":
                    patterns.append(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for name in (*EVENT_TYPES, *TRANSIENT_SCHEMAS, "common"):
        walk(load_schema(name))
    assert len(patterns) > 20
    for p in set(patterns):
        assert p.startswith("^") and p.endswith("$(?!\\n)"), p


def test_queries_match_identifiers_whole(s):
    for fn, arg in (("GetLot", "L1\n"), ("GetLotHistory", "L1\x00"), ("GetAuthorisation", AUTH_ID + "\n"),
                    ("GetDeclaration", mrns.PLACE_MRN_L1 + "\n")):
        res = s.ledger.evaluate(s.contract, fn, [arg], "CustomsMSP")
        assert res.error_code == "InvalidIdentifier", (fn, res.message)


def test_explicit_check_behind_the_schemas():
    """The contract checks identifiers itself, after the schema (a schema edit cannot reopen the hole)."""
    from ipledger.chaincode.contract import identifiers
    from ipledger.chaincode.contract.errors import InvalidEvent, InvalidIdentifier

    identifiers.require_whole({"lot_id": "L1", "sites": ["A"], "inputs": [{"lot_id": "L2"}],
                               "msp_id": "BrokerMSP", "eoris": ["FR1"], "description": "two\nlines"})
    for event in ({"lot_id": "L1\n"}, {"sites": ["A", "B\x00"]}, {"inputs": [{"lot_id": "L\t2"}]},
                  {"msp_id": "Broker\nMSP"}, {"eoris": ["FR1", "FR\n2"]}, {"event_id": "é"}):
        with pytest.raises(InvalidIdentifier) as info:
            identifiers.require_whole(event)
        assert isinstance(info.value, InvalidEvent)


# ---------------------------------------------------------------------------------------- MRNs for real

def test_domain_examples_are_valid_mrns():
    from ipledger.chaincode.contract.identifiers import is_mrn, mrn_problem

    for value in ("26FR000110000001R8", "26FR000110000007A7"):
        assert is_mrn(value) and mrn_problem(value) is None


@pytest.mark.parametrize("value, why", [
    ("26FR000110000001R9", "check digit"),         # position 18 is 8
    ("26FR000110000001R", "18 characters"),        # 17 characters
    ("26FR000110000001R80", "18 characters"),
    ("26FR0001100000011" + "8", "position 17"),    # a digit where the procedure category goes
    ("26fr000110000001R8", "country"),
    ("2XFR000110000001R8", "year"),
    ("26FR000110I0000001", "position 17"),         # the old test MRNs
    ("26FR000110E0000007", "position 17"),
    ("26FR00011000000-R8", "alphanumerics"),
    ("26FR000110000001R8\n", "control"),
])
def test_invalid_mrns_are_refused_with_a_named_rule(s, value, why):
    from ipledger.chaincode.contract.identifiers import is_mrn, mrn_problem

    assert not is_mrn(value) and why in mrn_problem(value)
    before = s.ledger.snapshot()
    res = s.place("L2", 10, mrn_=value)
    assert res.error_code == "InvalidMrn" and s.ledger.snapshot() == before
    details = res.json()["details"]
    assert details["errors"][0]["path"] == "/mrn" and why in details["errors"][0]["message"]
    assert s.exit(1, lot_id="L1", mrn_=value).error_code == "InvalidMrn"
    confirm = {"authorisation_id": AUTH_ID, "mrn": value, "exit_date": s.day.date().isoformat()}
    assert s.submit("ConfirmExit", confirm, "CustomsMSP").error_code == "InvalidMrn"


def test_an_invalid_mrn_among_other_violations_is_an_invalid_event(s):
    res = s.place("L2", 0, mrn_=mrns.with_bad_check_digit(mrns.placement_mrn(2)))
    assert res.error_code == "InvalidEvent"
    assert [e["path"] for e in res.json()["details"]["errors"]] == ["/mrn", "/quantity"]


def test_the_contract_and_the_test_helper_agree_on_check_digits():
    from ipledger.chaincode.contract.identifiers import is_mrn, mrn_check_digit

    rng = random.Random(13)
    alnum = string.digits + string.ascii_uppercase
    for _ in range(2000):
        first17 = (f"{rng.randrange(100):02d}" + "".join(rng.choices(string.ascii_uppercase, k=2))
                   + "".join(rng.choices(alnum, k=12)) + rng.choice(string.ascii_uppercase))
        digit = mrns.check_digit(first17)
        assert mrn_check_digit(first17) == digit
        assert is_mrn(first17 + digit)
        assert not is_mrn(first17 + str((int(digit) + 1) % 10))
    for n, category in itertools.product((0, 1, 7, 999999), "RA"):
        assert is_mrn(mrns.mrn(n, category))


def test_the_check_digit_catches_every_single_character_error():
    """ISO 6346 weights 2^i mod 11 are all different and non-zero: one wrong character always changes
    the check digit (unless 10 → 0 hides it)."""
    from ipledger.chaincode.contract.identifiers import is_mrn

    valid = mrns.PLACE_MRN_L1
    alnum = string.digits + string.ascii_uppercase
    caught = missed = 0
    for i in range(4, 16):
        for c in alnum:
            if c != valid[i]:
                if is_mrn(valid[:i] + c + valid[i + 1:]):
                    missed += 1
                else:
                    caught += 1
    assert caught > 10 * max(missed, 1)


@pytest.mark.parametrize("ending", ["/history", "/audit"])
def test_a_lot_or_batch_id_ending_in_the_name_of_its_trail_is_refused(s, ending):
    """``/lots/P/history`` is lot P's trail on the REST API, so a lot ``P/history`` (an id may hold ``/``) could
    never be read by its own path — asked for, the gateway answered P's trail. Such ids are refused; ids that
    merely contain the word are not."""
    assert refused(s, s.place, "P" + ending, 10, mrn_=mrns.mrn(90)) == "InvalidEvent"
    assert refused(s, s.process, "OP9", [("L1", 10)], [retreaded(10, "B" + ending)]) == "InvalidEvent"
    s.accepted(s.place("P" + ending + "s", 10, mrn_=mrns.mrn(91)))
    s.accepted(s.place("history/P", 10, mrn_=mrns.mrn(92)))
    # only new ids: one an earlier contract recorded is still referred to (it must be able to leave the procedure)
    assert refused(s, s.exit, 1, lot_id="P" + ending, mrn_=mrns.mrn(93, "A")) == "NotFound"
    assert refused(s, s.lose, 1, batch_id="B" + ending, reason="DESTROYED") == "NotFound"
