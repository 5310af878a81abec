"""The layout the architecture describes (docs/architecture.md), checked on the source itself.

- Every package is installed under the ``ipledger`` namespace, and pyproject.toml lists them all.
- No module imports the repository's folders by their bare names (``network``, ``gateway``,
  ``chaincode``): on a path where they are importable, that would load a second copy.
- The import graph of our modules has no cycle. Every ``import`` counts, those inside functions too:
  a lazy import hides a cycle from the interpreter, not from a reader.
- Dependencies point one way: the contract at the bottom (it ships alone to the peers), the Fabric
  library above it, an organisation's nodes, channels and the verifier above that, the REST gateway
  above those, and the command line at the top, imported by nothing.
"""
from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FOLDERS = ("chaincode", "network", "gateway")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["ipledger", *parts])


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for folder in FOLDERS for p in sorted((REPO / folder).rglob("*.py"))
            if "builder" not in p.relative_to(REPO).parts}   # the external builder runs as plain scripts


MODULES = _sources()


def _resolve(name: str) -> str | None:
    """The module of ours that ``name`` (a module, or a name inside one) lives in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> set[str]:
    """Every module of ours that ``module`` imports, anywhere in its body."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(filter(None, (_resolve(a.name) for a in node.names)))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[:len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            for alias in node.names:
                target = _resolve(f"{base}.{alias.name}") if f"{base}.{alias.name}" in MODULES else _resolve(base)
                if target:
                    found.add(target)
    found.discard(module)
    return found


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert _cycles(GRAPH) == []


# (layer, module prefixes) from the bottom up; a module may import its own layer and those below
LAYERS = [
    ("contract", ("ipledger.chaincode",)),
    ("fabric library", ("ipledger.network.fabric",)),
    ("organisations, channels, verifier", ("ipledger.network",)),
    ("gateway", ("ipledger.gateway",)),
    ("command line", ("ipledger.network.cli",)),
]


def _layer(module: str) -> int:
    best, length = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > length:
                best, length = i, len(prefix)
    assert best is not None, module
    return best


def test_dependencies_point_down():
    upward = sorted(f"{m} ({LAYERS[_layer(m)][0]}) imports {d} ({LAYERS[_layer(d)][0]})"
                    for m, deps in GRAPH.items() for d in deps if _layer(d) > _layer(m))
    assert upward == []


def test_the_gateway_uses_of_the_contract_only_its_schemas_errors_and_act_table():
    allowed = ("ipledger.chaincode.contract.schemas", "ipledger.chaincode.contract.errors",
               "ipledger.chaincode.contract.acts")
    wrong = sorted(f"{m} imports {d}" for m, deps in GRAPH.items() if m.startswith("ipledger.gateway.")
                   for d in deps if d.startswith("ipledger.chaincode") and d not in allowed)
    assert wrong == []


def test_the_gateway_uses_of_the_network_only_the_fabric_library_and_the_consortium_description():
    allowed = ("ipledger.network.fabric", "ipledger.network.consortium", "ipledger.network.layout",
               "ipledger.network.files")   # the one way of writing a file, shared
    wrong = sorted(f"{m} imports {d}" for m, deps in GRAPH.items() if m.startswith("ipledger.gateway.")
                   for d in deps if d.startswith("ipledger.network")
                   and not any(d == a or d.startswith(a + ".") for a in allowed))
    assert wrong == []


def test_the_contract_ships_alone():
    wrong = sorted(f"{m} imports {d}" for m, deps in GRAPH.items() if m.startswith("ipledger.chaincode")
                   for d in deps if not d.startswith("ipledger.chaincode"))
    assert wrong == []


def _python_files():
    for folder in (*FOLDERS, "tests", "bench", "scripts"):
        yield from sorted((REPO / folder).rglob("*.py"))


# Python code inside a string (``python -c``, a launcher): an import of a bare folder name
_CODE_IN_STRING = re.compile(r"(?:^|[\s;\"'])(?:from|import) (?:" + "|".join(FOLDERS) + r")(?:[.\s]|$)", re.M)


def test_nothing_imports_the_folders_by_their_bare_names():
    bare = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            bare += [f"{path.relative_to(REPO)}:{node.lineno} {n}" for n in names
                     if n.split(".")[0] in FOLDERS]
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and path != Path(__file__).resolve()
                    and _CODE_IN_STRING.search(node.value)):
                bare.append(f"{path.relative_to(REPO)}:{node.lineno} code in a string: {node.value[:60]!r}")
    assert bare == []


def test_code_in_strings_is_checked_too():
    assert _CODE_IN_STRING.search("import sys; from gateway import reports")
    assert _CODE_IN_STRING.search("from chaincode.shim.client import main")
    assert not _CODE_IN_STRING.search("from ipledger.gateway import reports")
    assert not _CODE_IN_STRING.search("the gateway imports network/fabric")


def test_pyproject_installs_every_package_under_the_namespace():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {m for m, p in MODULES.items() if p.name == "__init__.py"}
    assert set(meta["packages"]) == packages
    assert meta["package-dir"] == {f"ipledger.{f}": f for f in FOLDERS}
    assert "ipledger" not in packages  # a namespace: other distributions may add to it


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_folder_is_a_package(folder):
    assert (REPO / folder / "__init__.py").is_file()


LONG_FILE = 500   # lines


def _long_files() -> list[Path]:
    tracked = [p for top in (*FOLDERS, "tests", "bench", "scripts") for p in sorted((REPO / top).rglob("*.py"))]
    return [p for p in tracked if ".venv" not in p.parts and len(p.read_text().splitlines()) > LONG_FILE]


def test_a_file_over_500_lines_says_at_its_top_why_it_is_one_file():
    """The brief's rule: a module longer than about 500 lines says, in its docstring, why it is one file
    ("One file …"), so that a reader knows whether to split it or to read it whole."""
    missing = []
    for path in _long_files():
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        if not re.search(r"\bone file\b", doc, re.IGNORECASE):
            missing.append(str(path.relative_to(REPO)))
    assert not missing, f"over {LONG_FILE} lines without saying why they are one file: {missing}"


def test_the_long_file_rule_sees_long_files():
    assert any(p.name == "handler.py" for p in _long_files())   # the shim's handler, some 670 lines
