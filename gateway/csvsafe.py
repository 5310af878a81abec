"""CSV cells that a spreadsheet will not run (OWASP "CSV injection").

Every CSV the gateway writes (reports, audit trails, the import report) goes through :func:`cell`:

* a number the gateway writes from a number (``int``/``float`` — quantities, block numbers) stays a number:
  ``-5`` is written ``-5``;
* any text — and text is everything that came from an event, a certificate or a caller, even when it looks
  like a number (``"-5"``) — that starts, past any spaces and double quotes, with ``=``, ``+``, ``-``, ``@``, a tab
  or a carriage return gets a leading apostrophe (``'=HYPERLINK(…)``): Excel, LibreOffice and Google Sheets then
  show it as text and never evaluate it;
* and so does every place inside a text where a spreadsheet may start a cell of its own: a spreadsheet in a
  locale whose list separator is ``;`` (France, and most of the EU) opens a comma-separated file by splitting
  each line at every ``;`` and every line break, honouring no quote that is not at the start of its own cell —
  so ``x;=cmd|…`` would give it a cell ``=cmd|…``. After each ``;``, line feed or carriage return followed —
  past any spaces and double quotes — by one of those characters, an apostrophe is inserted (``x;'=cmd|…``).
  Nothing else of the text changes: the original is the cell without the apostrophes inserted at those places
  (an apostrophe the text itself had there stays, so ``;'=`` in a cell may be either);
* lists and objects are written as JSON (starting with ``[`` or ``{``, hence inert);
* a decimal the gateway writes from the contract's decimal text (:class:`~decimal.Decimal`, e.g. a negative yield
  deviation ``-2.5``) is a number too, written in full (``-0.00000005``, never ``5E-8``).

Quoting (``,``, ``"``, line breaks inside a cell) is left to :mod:`csv`.
"""
from __future__ import annotations

import json
import re
from decimal import Decimal

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# where a spreadsheet may start a cell inside one of ours (the start, or after a ';' or a line break) that it could
# take for a formula (past spaces and double quotes, which a cell may start with)
_FORMULA_CELL = re.compile(r"""(?:^|(?<=[;\n\r]))(?=[ "]*[""" + re.escape("".join(FORMULA_STARTS)) + "])")


def neutralise(text: str) -> str:
    """``text``, with an apostrophe wherever a spreadsheet could start a cell it would take for a formula."""
    return _FORMULA_CELL.sub("'", text)


def cell(value) -> str:
    """One CSV cell: None empty, numbers as numbers, anything else as inert text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (list, dict)):
        return neutralise(json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True))
    return neutralise(str(value))
