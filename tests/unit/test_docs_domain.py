"""docs/domain.md — the project's own copy of the domain specification — against the contract it describes.

It fails when the page stops matching the contract in a way a test can see: an act of the act table
(``chaincode/contract/acts.py``) missing from §4, or performed by someone else there; a named rule of
``chaincode/contract/errors.py`` missing from §5 (or a rule §5 names that the contract no longer has); an
alert the contract raises missing from §6; a customs parameter or its default differing from ``params.py``;
the §8 scenario's test data no longer in §8; a section that code or tests cite ("docs/domain.md §5") gone.
And it fails when a file under ``chaincode/`` cites a path outside the repository (the pilot's specification
used to be cited where only one machine had it).
"""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path


from ipledger.chaincode.contract import acts, errors, params, time_rules
from ipledger.chaincode.testing import scenario

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = ROOT / "docs" / "domain.md"
TEXT = DOMAIN.read_text(encoding="utf-8")
CONTRACT = ROOT / "chaincode" / "contract"


def section(number: str) -> str:
    """The text of ``## <number>. …`` up to the next ``## `` heading."""
    match = re.search(rf"^## {re.escape(number)}\. .*?(?=^## |\Z)", TEXT, flags=re.M | re.S)
    assert match, f"docs/domain.md has no section {number}"
    return match.group(0)


def headings() -> set[str]:
    return set(re.findall(r"^## (\d+[a-z]?)\. ", TEXT, flags=re.M))


# ------------------------------------------------------------------------------------------ §4 the acts

def test_every_act_of_the_act_table_is_named():
    missing = [name for name in acts.NAMES if f"`{name}`" not in TEXT]
    assert missing == [], f"acts of chaincode/contract/acts.py that docs/domain.md does not name: {missing}"


def test_section_4_lists_the_acts_of_the_table_in_its_order_performed_by_whom_the_table_says():
    rows = re.findall(r"^\| `([A-Za-z]+)` \| ([^|]+) \|", section("4"), flags=re.M)
    assert [name for name, _ in rows] == list(acts.NAMES), "one row per act, in the act table's order"
    assert {name: by.strip() for name, by in rows} == {act.name: act.performed_by for act in acts.TABLE}


# ------------------------------------------------------------------------------------------ §5 the rules

def _rule_classes() -> set[str]:
    return {name for name, value in vars(errors).items()
            if isinstance(value, type) and issubclass(value, errors._Rule) and value is not errors._Rule}


def test_every_named_rule_of_errors_py_is_a_row_of_section_5_and_every_row_is_a_rule():
    assert _rule_classes() == set(errors.RULES), "errors.RULES lists every rule class"
    rows = set(re.findall(r"^\| `([A-Za-z]+)` \|", section("5"), flags=re.M))
    assert sorted(set(errors.RULES) - rows) == [], "rules of errors.py without a row in docs/domain.md §5"
    assert sorted(rows - set(errors.RULES)) == [], "rows of docs/domain.md §5 that errors.py does not raise"


# ------------------------------------------------------------------------------------------ §6 alerts, parameters

def _alerts_the_contract_raises() -> set[str]:
    """Alert types in the contract's source: recorded ones (``raise_alert(tx, <authorisation>, "<Type>"``),
    time ones (``_derived("<Type>"``), and LateRecording (a constant)."""
    found = {time_rules.LATE_RECORDING}
    for path in sorted(CONTRACT.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        found.update(re.findall(r"raise_alert\(\s*tx,\s*[^,]+,\s*\"([A-Za-z]+)\"", text))
        found.update(re.findall(r"_derived\(\s*\"([A-Za-z]+)\"", text))
    return found


def test_every_alert_the_contract_raises_is_in_section_6():
    found = _alerts_the_contract_raises()
    assert {"YieldDeviation", "CeilingNear", "DeadlineOverdue", "ExitUnconfirmed", "LateRecording"} <= found, \
        "the search of the contract's source for alert types no longer finds them: update this test"
    text = section("6")
    assert sorted(a for a in found if f"`{a}`" not in text) == [], "alerts docs/domain.md §6 does not name"


def test_section_6_gives_every_customs_parameter_with_its_default():
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| (\d+(?:\.\d+)?) \|", section("6"), flags=re.M))
    assert rows == {name: str(value) for name, value in params.DEFAULTS.items()}


# ------------------------------------------------------------------------------------------ §8 the scenario

def test_section_8_uses_the_test_data_of_the_scenario():
    text = section("8")
    data = [scenario.AUTH_ID, scenario.HOLDER, scenario.BROKER_EORI, scenario.OFFICE, scenario.USED_TYRES,
            scenario.RETREADED, scenario.RUBBER_WASTE, scenario.SITE1, scenario.SITE2, scenario.PLACE_MRN_L1,
            scenario.EXIT_MRN_B1, scenario.CUSTOMS_MSP, *(msp for msp, _role, _eoris in scenario.PARTIES)]
    assert [d for d in data if d not in text] == []
    fields = scenario.authorisation_fields(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc))
    for product in fields["processed_products"]:
        assert f"`{product['kind']}`" in text, f"§8 gives {product['cn']} its kind {product['kind']}"
    assert f"discharge period {fields['discharge_period_days']} days" in text
    assert f"`yield_block_pct` {fields['yield_block_pct']}" in text
    assert f"`yield_warn_pct` {fields['yield_warn_pct']}" in text
    assert f"ceiling {fields['input_goods'][0]['max_qty']:,} p/st" in text


# ------------------------------------------------------------------------------------------ citations

_CITATION = re.compile(r"domain\.md(?:,? (?:§|section )(\d+[a-z]?)(?:-§(\d+[a-z]?))?)?")


def _text_files(*folders: Path):
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts or path.suffix in (".pyc", ".png", ".gz"):
                continue
            try:
                yield path, path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue


def test_the_sections_that_code_and_tests_cite_exist():
    have = headings()
    cited = {}
    for path, text in _text_files(ROOT / "chaincode", ROOT / "gateway", ROOT / "network", ROOT / "tests"):
        for first, last in _CITATION.findall(text):
            for number in (first, last):
                if number and number not in have:
                    cited.setdefault(number, []).append(str(path.relative_to(ROOT)))
    assert cited == {}, f"sections cited but not in docs/domain.md (it has {sorted(have)})"


def test_the_contract_cites_the_repository_copy():
    """Every mention of the specification in the contract's modules names docs/domain.md."""
    loose = [(path.name, line.strip()) for path in sorted(CONTRACT.glob("*.py"))
             for line in path.read_text(encoding="utf-8").splitlines()
             if re.search(r"(?<!docs/)domain\.md", line)]
    assert loose == []


def test_the_links_of_docs_domain_md_resolve():
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", TEXT)
    assert targets, "docs/domain.md links to the contract's documents"
    assert [t for t in targets if "://" not in t and not (DOMAIN.parent / t).resolve().exists()] == []


_OUTSIDE = re.compile(
    r"(?<![\w.])(?:/(?:work|home|Users|mnt)/[^\s`'\")\]]+"   # absolute paths of one machine
    r"|~/[^\s`'\")\]]+"                                      # a user's home
    r"|(?:\.\./)+[^\s`'\")\]]*)"                             # relative paths: checked against the root below
)


def _outside_citations(path: Path, text: str) -> list[str]:
    out = []
    for match in _OUTSIDE.findall(text):
        if match.startswith("../"):
            target = (path.parent / match).resolve()
            if target == ROOT or ROOT in target.parents:
                continue
        out.append(match.rstrip(".,;:"))
    return out


def _all_outside_citations() -> set[tuple[str, str]]:
    found = set()
    for path, text in [*_text_files(ROOT / "chaincode"), (DOMAIN, TEXT)]:
        for citation in _outside_citations(path, text):
            found.add((str(path.relative_to(ROOT)), citation))
    return found


def test_no_file_under_chaincode_cites_a_path_outside_the_repository():
    assert sorted(_all_outside_citations()) == []


def test_the_outside_path_check_finds_what_it_should():
    here = CONTRACT / "README.md"
    assert _outside_citations(here, "see `/work/shared/domain.md` §5") == ["/work/shared/domain.md"]
    assert _outside_citations(here, "see ../../../shared/domain.md") == ["../../../shared/domain.md"]
    assert _outside_citations(here, "see [the spec](../../docs/domain.md)") == []
    assert _outside_citations(here, "docs/domain.md §5 and domain.md §8") == []
