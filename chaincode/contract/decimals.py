"""Exact numbers: rates and percentages are fractions inside the contract and decimal strings outside.

Quantities are integers. A rate of yield or a tolerance comes from an event or a parameter as a JSON
number (``0.99``, ``2.5``); the contract reads it as the exact decimal the sender wrote (a number no
float holds exactly, ``1.0000000000000001``, is refused before the contract sees it: ``InvalidArguments``
from the contract API's ``parse_float``), computes with
:class:`fractions.Fraction`, and writes every computed ratio or percentage as a decimal string
(``"0.99"``, ``"98.9583"``) — never a float, whose binary approximation and text form are not a
sound basis for byte-identical results on every endorsing peer, nor for a customs calculation.
"""
from __future__ import annotations

from fractions import Fraction

RATIO_PLACES = 6  # rates of yield: output per unit of input
PCT_PLACES = 4    # percentages
PCT_PLACES_MAX = 12   # a percentage beside a limit it passes by less than PCT_PLACES show (:func:`text_beside`)


def exact(value: int | float | str | Fraction) -> Fraction:
    """The exact value of a number as written: ``0.1`` is 1/10 (the shortest text of a JSON float is
    the decimal its sender wrote: the contract API refuses a number the float does not hold exactly)."""
    if isinstance(value, bool):
        raise TypeError("a truth value is not a number")
    if isinstance(value, (int, Fraction)):
        return Fraction(value)
    return Fraction(str(value))


def text(value: int | Fraction, places: int = RATIO_PLACES) -> str:
    """``value`` as a decimal string rounded half-even to ``places`` decimals, without trailing zeros:
    ``"1"``, ``"0.99"``, ``"98.9583"``."""
    scaled = round(Fraction(value) * 10 ** places)  # exact: Fraction rounds half to even
    whole, part = divmod(abs(scaled), 10 ** places)
    digits = f"{whole}.{part:0{places}d}".rstrip("0").rstrip(".")
    return f"-{digits}" if scaled < 0 else digits


def pct(part: int | Fraction, whole: int | Fraction) -> str:
    """``part`` as a percentage of ``whole`` (``"0"`` when ``whole`` is 0)."""
    return text(Fraction(part) * 100 / Fraction(whole), PCT_PLACES) if whole else "0"


def text_beside(value: Fraction, *limits: Fraction, places: int = PCT_PLACES) -> str:
    """``value`` as :func:`text`, with as many more decimals (up to :data:`PCT_PLACES_MAX`) as it takes not to
    read as one of ``limits`` it is not: a deviation of 5.00000001 % refused over a limit of 5 % is shown
    ``"5.00000001"``, never ``"5"`` beside ``"5"``."""
    while places < PCT_PLACES_MAX and any(value != limit and text(value, places) == text(limit, places)
                                          for limit in limits):
        places += 1
    return text(value, places)
