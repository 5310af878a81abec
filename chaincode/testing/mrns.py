"""Valid EU MRNs for tests and demos (UCC IA Annex B; domain.md §2b).

An MRN has 18 characters: year (2 digits), country (2 letters), a unique
identifier (12 alphanumerics), a procedure-category letter (position 17, e.g.
``R`` import, ``A`` export) and a check character (position 18) computed over
the first 17 as in ISO 6346. The contract refuses any other string
(``InvalidMrn``), so tests must build their MRNs here instead of inventing them::

    from ipledger.chaincode.testing.mrns import placement_mrn, exit_mrn, mrn
    placement_mrn(1)   # '26FR000110000001R8'  (domain.md §8, lot L1)
    exit_mrn(7)        # '26FR000110000007A7'  (domain.md §8, exit of B1)
    mrn(42, "R", country="DE", office="DE4711")

This module is self-contained on purpose (it does not import the contract), so
tests compare two independent implementations of the check digit.
"""
from __future__ import annotations

import re

__all__ = ["IMPORT", "EXPORT", "PLACE_MRN_L1", "EXIT_MRN_B1", "check_digit", "mrn", "from_unique",
           "placement_mrn", "exit_mrn", "with_bad_check_digit"]

IMPORT = "R"   # Annex B: import declaration only (placements, releases after IP)
EXPORT = "A"   # Annex B: export only (re-exports)

# ISO 6346 letter values: A=10, B=12 … skipping the multiples of 11 (11, 22, 33).
_VALUES: dict[str, int] = {str(d): d for d in range(10)}
_v = 10
for _c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
    if _v % 11 == 0:
        _v += 1
    _VALUES[_c] = _v
    _v += 1
del _v, _c

_FIRST17 = re.compile(r"[0-9]{2}[A-Z]{2}[A-Z0-9]{12}[A-Z]")


def check_digit(first17: str) -> str:
    """The check character of an MRN's first 17 characters: Σ value(c_i)·2^i mod 11, 10 → 0."""
    if len(first17) != 17 or not _FIRST17.fullmatch(first17):
        raise ValueError(f"not the first 17 characters of an MRN: {first17!r}")
    return str(sum(_VALUES[c] << i for i, c in enumerate(first17)) % 11 % 10)


def from_unique(unique: str, category: str = IMPORT, *, year: str = "26", country: str = "FR") -> str:
    """The MRN ``year + country + unique (12 alphanumerics) + category + check digit``."""
    first17 = f"{year}{country}{unique}{category}"
    return first17 + check_digit(first17)


def mrn(n: int, category: str = IMPORT, *, year: str = "26", country: str = "FR", office: str = "000110") -> str:
    """The ``n``-th MRN of an office (6 characters) and a procedure category: the unique identifier is the
    office followed by ``n`` on 6 digits, as in domain.md (``26FR000110000001R8``)."""
    if not 0 <= n < 1_000_000:
        raise ValueError(f"n must have at most 6 digits: {n}")
    return from_unique(f"{office}{n:06d}", category, year=year, country=country)


def placement_mrn(n: int, **kw) -> str:
    """An import declaration's MRN (category ``R``): placements under the procedure."""
    return mrn(n, IMPORT, **kw)


def exit_mrn(n: int, **kw) -> str:
    """An export declaration's MRN (category ``A``): re-exports."""
    return mrn(n, EXPORT, **kw)


def with_bad_check_digit(valid: str) -> str:
    """The same MRN with a wrong check character (for tests of the refusal)."""
    return valid[:17] + str((int(valid[17]) + 1) % 10)


PLACE_MRN_L1 = placement_mrn(1)   # 26FR000110000001R8
EXIT_MRN_B1 = exit_mrn(7)         # 26FR000110000007A7
assert (PLACE_MRN_L1, EXIT_MRN_B1) == ("26FR000110000001R8", "26FR000110000007A7")
