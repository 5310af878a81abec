"""One act table (chaincode/contract/acts.py): every transaction function that records an event, every
event schema and every OpenAPI event type has a row in it, and every row has all three; the lists
derived from it (roles.ACTS, schemas.EVENT_TYPES, the commercial acts, PERFORMED_BY) say what it says;
no other list names an act it does not know; and the documentation that lists the acts agrees with it.
The documentation describes performers by role, never by organisation."""
from __future__ import annotations

import ast
import re
from importlib import resources
from pathlib import Path

from ipledger.chaincode.contract import InwardProcessingContract, acts, roles, schemas
from ipledger.chaincode.contract.contract import COMMERCIAL_ACTS
from ipledger.gateway import validation
from ipledger.gateway.feed import visibility
from ipledger.gateway.openapi import PERFORMED_BY, openapi_document

ROOT = Path(__file__).resolve().parents[3]
NAMES = set(acts.NAMES)


def _differs(found: set[str], what: str) -> str:
    return (f"{what} without a row in the act table: {sorted(found - NAMES)}; "
            f"rows of the act table without {what}: {sorted(NAMES - found)}")


def _recorded_acts() -> dict[str, str]:
    """Each method of the contract that records an event (``self._record(stub, "<act>", ...)``): its name
    and the act it records."""
    tree = ast.parse((ROOT / "chaincode" / "contract" / "contract.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "InwardProcessingContract")
    found = {}
    for fn in cls.body:
        if not isinstance(fn, ast.FunctionDef):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "_record" \
                    and len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
                found[fn.name] = node.args[1].value
    return found


def test_the_table_is_well_formed():
    assert len(acts.TABLE) == len(NAMES) == 19, "one row per act"
    assert acts.NAMES == tuple(a.name for a in acts.TABLE) and set(acts.BY_NAME) == NAMES
    for act in acts.TABLE:
        assert act.performers and len(set(act.performers)) == len(act.performers), act.name
        assert list(act.performers) == [r for r in acts.ROLES if r in act.performers], act.name
        assert isinstance(act.commercial, bool), act.name
        assert act.changes and "\n" not in act.changes and len(act.changes) <= 120, act.name
        assert not re.search(r"MSP\b", act.changes), act.name


def test_every_act_the_contract_records_is_a_row_and_every_row_is_recorded():
    recorded = _recorded_acts()
    assert {fn: act for fn, act in recorded.items() if fn != act} == {}, "a function records the act it is named"
    assert set(recorded.values()) == NAMES, _differs(set(recorded.values()), "a transaction recording an event")
    submits = {name for name, info in InwardProcessingContract.transactions().items() if info.submit}
    assert submits == NAMES, _differs(submits, "a submit transaction")


def test_every_schema_is_a_row_and_every_row_has_its_schema():
    files = {p.name[:-len(".json")] for p in resources.files("ipledger.chaincode.contract.schemas").iterdir()
             if p.name.endswith(".json")}
    events = files - {"common", *schemas.TRANSIENT_SCHEMAS}
    assert events == NAMES, _differs(events, "an event schema")
    assert schemas.EVENT_TYPES == acts.NAMES == validation.EVENT_TYPES
    for name in acts.NAMES:
        assert schemas.load_schema(name)["title"] == name


def test_every_openapi_event_type_is_a_row_and_says_what_the_row_says():
    components = openapi_document()["components"]["schemas"]
    documented = set(components["Event"]["discriminator"]["mapping"])
    assert documented == NAMES, _differs(documented, "an OpenAPI event type")
    assert [r["$ref"].rsplit("/", 1)[-1] for r in components["Event"]["oneOf"]] == list(acts.NAMES)
    assert components["SubmitOutcome"]["properties"]["type"]["enum"] == list(acts.NAMES)
    assert PERFORMED_BY == {act.name: act.performed_by for act in acts.TABLE}
    for act in acts.TABLE:
        schema = components[act.name]
        assert schema["description"].endswith(f" Performed by: {act.performed_by}."), act.name
        assert ("commercial" in schema["properties"]) is act.commercial, act.name


def test_the_contract_checks_the_roles_and_the_commercial_data_of_the_table():
    assert roles.ACTS == {act.name: frozenset(act.performers) for act in acts.TABLE}
    assert (roles.CUSTOMS, roles.HOLDER, roles.REPRESENTATIVE) == acts.ROLES
    commercial = {act.name for act in acts.TABLE if act.commercial}
    assert COMMERCIAL_ACTS == validation.COMMERCIAL_EVENTS == commercial == set(acts.COMMERCIAL)


def test_no_other_list_names_an_act_the_table_does_not_know():
    for name, listed in {"validation.CUSTOMS_VALUE_REQUIRED": validation.CUSTOMS_VALUE_REQUIRED,
                         "feed.visibility.VISIBILITY_CHANGING": visibility.VISIBILITY_CHANGING,
                         "feed.visibility.CHANNEL_WIDE": visibility.CHANNEL_WIDE,
                         "feed.visibility.PARTY_EVENTS": visibility.PARTY_EVENTS}.items():
        assert set(listed) <= NAMES, f"{name}: {sorted(set(listed) - NAMES)}"
    assert validation.CUSTOMS_VALUE_REQUIRED <= validation.COMMERCIAL_EVENTS


def test_the_documentation_says_the_roles_the_contract_checks():
    words = {frozenset({roles.CUSTOMS}): "customs", frozenset({roles.HOLDER}): "the holder",
             frozenset({roles.HOLDER, roles.REPRESENTATIVE}): "the holder, or a representative with a mandate"}
    for act, performers in roles.ACTS.items():
        assert PERFORMED_BY[act] == words[performers], act
    assert not [v for v in PERFORMED_BY.values() if re.search(r"MSP\b", v)]


def test_the_contract_readme_lists_the_acts_of_the_table():
    """chaincode/contract/README.md: its table of transactions names the acts in the table's order, each
    performed by whom the table says, and names the table as the source."""
    text = (ROOT / "chaincode" / "contract" / "README.md").read_text()
    table = text.split("| transaction | by |", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `([A-Za-z]+)` \| ([^|]+) \|", table, flags=re.M)
    assert [name for name, _ in rows] == list(acts.NAMES)
    assert {name: by.strip() for name, by in rows} == {act.name: act.performed_by for act in acts.TABLE}
    assert "`acts.py`" in text


def test_the_other_documents_count_the_acts_of_the_table():
    events = (ROOT / "chaincode" / "contract" / "EVENTS.md").read_text()
    assert re.findall(r"(\d+) submit transactions", events) == [str(len(acts.TABLE))] * 2
    assert "`acts.py`" in events
    gateway = (ROOT / "gateway" / "README.md").read_text()
    assert f"{len(acts.TABLE)} in all: the contract's act table, `chaincode/contract/acts.py`" in gateway
