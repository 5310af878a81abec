"""A schema compiled into one Python predicate: is this instance valid? — the fast path of validation.

``jsonschema`` walks a schema for every instance (reference resolution, a validator object per
``$ref``, an error generator per keyword): about 0.5–1 ms for one event, a sixth of the chaincode's
CPU per transaction and as much again in the gateway (docs/benchmarks.md). Almost every event is valid, so
:func:`ipledger.chaincode.contract.schemas.errors` first asks the predicate compiled here and runs
``jsonschema`` only when it says no, to describe the violations. ``jsonschema`` stays the reference:
the predicate is exact for the keywords it compiles — each mirrors ``jsonschema``'s Draft 2020-12
rule, with the same type checker (the chaincode's strict ``integer``), the same format checks and the
same ``re.search`` — and a schema using any other keyword is not compiled at all
(:class:`Unsupported`; that event type is then always validated by ``jsonschema``).
``tests/unit/contract/test_schemas_compiled.py`` checks the two agree on generated instances.
"""
from __future__ import annotations

import numbers
import re
from typing import Any, Callable

from jsonschema import FormatChecker

__all__ = ["Unsupported", "compile_schema"]

Predicate = Callable[[Any], bool]

# Keywords that only annotate (no effect on validity).
_ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "$comment", "title", "description", "examples", "default",
                          "deprecated", "readOnly", "writeOnly"})


class Unsupported(ValueError):
    """The schema uses a keyword (or a form of one) the compiler does not mirror exactly."""


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Number) and not isinstance(x, bool)


# jsonschema's Draft 2020-12 type checker, with ``integer`` redefined as the chaincode's validator does.
_TYPES: dict[str, Predicate] = {
    "array": lambda x: isinstance(x, list),
    "boolean": lambda x: isinstance(x, bool),
    "integer": lambda x: isinstance(x, int) and not isinstance(x, bool),
    "null": lambda x: x is None,
    "number": _is_number,
    "object": lambda x: isinstance(x, dict),
    "string": lambda x: isinstance(x, str),
}


def _all(checks: list[Predicate]) -> Predicate:
    if not checks:
        return lambda x: True
    if len(checks) == 1:
        return checks[0]
    checks_t = tuple(checks)
    return lambda x: all(check(x) for check in checks_t)


class _Compiler:
    def __init__(self, root: dict, formats: FormatChecker) -> None:
        self.root = root
        self.formats = formats
        self.refs: dict[str, Predicate] = {}

    # Each keyword's check is written as the negation of jsonschema's error condition (``not x < minimum``
    # rather than ``x >= minimum``), so that even a NaN is judged as jsonschema judges it.

    def compile(self, schema: Any) -> Predicate:
        if schema is True:
            return lambda x: True
        if schema is False:
            return lambda x: False
        if not isinstance(schema, dict):
            raise Unsupported(f"a schema must be an object or a boolean, got {schema!r}")
        checks: list[Predicate] = []
        props = schema.get("properties", {})
        for key, value in schema.items():
            if key in _ANNOTATIONS:
                if key == "$id" and schema is not self.root:
                    raise Unsupported("$id below the root changes how references resolve")
                continue
            make = getattr(self, "_kw_" + key.lstrip("$"), None)
            if make is None:
                raise Unsupported(f"keyword {key!r} is not compiled")
            check = make(value, props)
            if check is not None:
                checks.append(check)
        return _all(checks)

    # -- references ---------------------------------------------------------------------------
    def _kw_ref(self, ref: str, _props: dict) -> Predicate:
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise Unsupported(f"only local references are compiled, not {ref!r}")
        if ref not in self.refs:
            target: Any = self.root
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, dict) or part not in target:
                    raise Unsupported(f"unresolvable reference {ref!r}")
                target = target[part]
            self.refs[ref] = lambda x: False  # a cycle through this reference is not expected
            self.refs[ref] = self.compile(target)
        refs = self.refs
        return lambda x: refs[ref](x)

    # -- any instance -------------------------------------------------------------------------------
    def _kw_type(self, value: Any, _props: dict) -> Predicate:
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not names or any(n not in _TYPES for n in names):
            raise Unsupported(f"type {value!r}")
        tests = tuple(_TYPES[n] for n in names)
        if len(tests) == 1:
            return tests[0]
        return lambda x: any(t(x) for t in tests)

    def _kw_enum(self, value: Any, _props: dict) -> Predicate:
        # jsonschema compares with its ``equal``: against a string that is plain ==, so an enum of strings
        # admits exactly those strings
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise Unsupported("only enums of strings are compiled")
        allowed = frozenset(value)
        return lambda x: isinstance(x, str) and x in allowed

    def _kw_const(self, value: Any, _props: dict) -> Predicate:
        if not isinstance(value, str):
            raise Unsupported("only string constants are compiled")
        return lambda x: isinstance(x, str) and x == value

    def _kw_oneOf(self, value: Any, _props: dict) -> Predicate:
        subs = tuple(self.compile(s) for s in value)
        return lambda x: sum(1 for s in subs if s(x)) == 1

    def _kw_format(self, value: Any, _props: dict) -> Predicate | None:
        if value not in self.formats.checkers:
            return None  # jsonschema, too, lets a format it has no check for pass
        formats = self.formats
        return lambda x: formats.conforms(x, value)

    # -- strings -------------------------------------------------------------------------------
    def _kw_pattern(self, value: str, _props: dict) -> Predicate:
        search = re.compile(value).search
        return lambda x: not isinstance(x, str) or search(x) is not None

    def _kw_minLength(self, value: int, _props: dict) -> Predicate:
        return lambda x: not isinstance(x, str) or not len(x) < value

    def _kw_maxLength(self, value: int, _props: dict) -> Predicate:
        return lambda x: not isinstance(x, str) or not len(x) > value

    # -- numbers -------------------------------------------------------------------------------
    def _kw_minimum(self, value: Any, _props: dict) -> Predicate:
        return lambda x: not _is_number(x) or not x < value

    def _kw_maximum(self, value: Any, _props: dict) -> Predicate:
        return lambda x: not _is_number(x) or not x > value

    def _kw_exclusiveMinimum(self, value: Any, _props: dict) -> Predicate:
        return lambda x: not _is_number(x) or not x <= value

    def _kw_exclusiveMaximum(self, value: Any, _props: dict) -> Predicate:
        return lambda x: not _is_number(x) or not x >= value

    # -- arrays --------------------------------------------------------------------------------
    def _kw_items(self, value: Any, _props: dict) -> Predicate:
        item = self.compile(value)
        return lambda x: not isinstance(x, list) or all(item(i) for i in x)

    def _kw_minItems(self, value: int, _props: dict) -> Predicate:
        return lambda x: not isinstance(x, list) or not len(x) < value

    def _kw_maxItems(self, value: int, _props: dict) -> Predicate:
        return lambda x: not isinstance(x, list) or not len(x) > value

    def _kw_uniqueItems(self, value: Any, _props: dict) -> Predicate | None:
        if not value:
            return None
        try:  # jsonschema's own rule (1 and 1.0 are the same item, True and 1 are not)
            from jsonschema._utils import uniq
        except ImportError as exc:  # pragma: no cover - another jsonschema
            raise Unsupported("uniqueItems needs jsonschema's uniq") from exc
        return lambda x: not isinstance(x, list) or uniq(x)

    # -- objects -------------------------------------------------------------------------------
    def _kw_required(self, value: list, _props: dict) -> Predicate:
        names = tuple(value)
        return lambda x: not isinstance(x, dict) or all(n in x for n in names)

    def _kw_minProperties(self, value: int, _props: dict) -> Predicate:
        return lambda x: not isinstance(x, dict) or not len(x) < value

    def _kw_properties(self, value: dict, _props: dict) -> Predicate:
        compiled = tuple((name, self.compile(sub)) for name, sub in value.items())

        def check(x: Any) -> bool:
            if not isinstance(x, dict):
                return True
            for name, sub in compiled:
                if name in x and not sub(x[name]):
                    return False
            return True

        return check

    def _kw_additionalProperties(self, value: Any, props: dict) -> Predicate:
        known = frozenset(props)
        if value is False:
            return lambda x: not isinstance(x, dict) or known.issuperset(x)
        extra = self.compile(value)
        return lambda x: not isinstance(x, dict) or all(extra(v) for k, v in x.items() if k not in known)


def compile_schema(schema: dict, formats: FormatChecker) -> Predicate:
    """The predicate of ``schema`` (references local to it, ``#/...``), checking ``formats`` as given;
    raises :class:`Unsupported` if any part of it cannot be mirrored exactly."""
    return _Compiler(schema, formats).compile(schema)
