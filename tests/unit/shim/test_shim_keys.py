"""Composite key rules, checked against an independent byte-level model of Go's encoding."""
import pytest
from hypothesis import given, settings, strategies as st

from ipledger.chaincode.shim import keys


def go_create_composite_key(object_type: str, attributes: list[str]) -> bytes:
    """Go: "\\x00" + objectType + "\\x00" + (attr + "\\x00")* — on UTF-8 bytes."""
    out = b"\x00" + object_type.encode("utf-8") + b"\x00"
    for a in attributes:
        out += a.encode("utf-8") + b"\x00"
    return out


def go_split_composite_key(key: bytes) -> tuple[bytes, list[bytes]]:
    comps, start = [], 1
    for i in range(1, len(key)):
        if key[i] == 0:
            comps.append(key[start:i])
            start = i + 1
    return comps[0], comps[1:]


def go_valid(s: str) -> bool:
    return "\x00" not in s and "\U0010ffff" not in s


# any valid Unicode scalar (no surrogates), so U+0000 and U+10FFFF do occur
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
valid_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\U0010ffff"), max_size=12
)


@settings(max_examples=300, deadline=None)
@given(text, st.lists(text, max_size=5))
def test_create_matches_go_or_rejects(object_type, attributes):
    if go_valid(object_type) and all(go_valid(a) for a in attributes):
        key = keys.create_composite_key(object_type, attributes)
        assert key.encode("utf-8") == go_create_composite_key(object_type, attributes)
        t, attrs = go_split_composite_key(key.encode("utf-8"))
        assert (t.decode(), [a.decode() for a in attrs]) == (object_type, attributes)
    else:
        with pytest.raises(ValueError):
            keys.create_composite_key(object_type, attributes)


@settings(max_examples=300, deadline=None)
@given(valid_text, st.lists(valid_text, max_size=5))
def test_split_inverts_create(object_type, attributes):
    key = keys.create_composite_key(object_type, attributes)
    assert keys.split_composite_key(key) == (object_type, attributes)


@settings(max_examples=200, deadline=None)
@given(valid_text, st.lists(valid_text, max_size=3), st.lists(valid_text, min_size=1, max_size=3))
def test_partial_key_range_contains_extensions(object_type, prefix, suffix):
    start, end = keys.partial_composite_key_range(object_type, prefix)
    full = keys.create_composite_key(object_type, prefix + suffix)
    # Fabric compares keys as UTF-8 bytes
    assert start.encode() <= full.encode() < end.encode()
    assert end == start + "\U0010ffff"


def test_explicit_rules():
    assert keys.create_composite_key("", []) == "\x00\x00"
    assert keys.create_composite_key("t", ["", "a"]) == "\x00t\x00\x00a\x00"
    assert keys.split_composite_key("\x00t\x00\x00a\x00") == ("t", ["", "a"])
    for bad in ("a\x00b", "x\U0010ffff"):
        with pytest.raises(ValueError):
            keys.create_composite_key("t", [bad])
        with pytest.raises(ValueError):
            keys.create_composite_key(bad, [])
    with pytest.raises(ValueError):
        keys.create_composite_key("t", ["\ud800"])  # lone surrogate: not valid UTF-8
    with pytest.raises(TypeError):
        keys.create_composite_key("t", "abc")
    with pytest.raises(ValueError):
        keys.split_composite_key("plain")
    with pytest.raises(ValueError):
        keys.validate_simple_keys("ok", "\x00composite")
    assert keys.range_start_key("") == "\x01"
