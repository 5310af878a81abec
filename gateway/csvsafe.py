"""CSV cells that a spreadsheet will not run (OWASP "CSV injection").

Every CSV the gateway writes (reports, audit trails, the import report) goes through :func:`cell`:

* a number the gateway writes from a number (``int``/``float`` — quantities, block numbers) stays a number:
  ``-5`` is written ``-5``;
* any text — and text is everything that came from an event, a certificate or a caller, even when it looks
  like a number (``"-5"``) — that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a
  leading apostrophe (``'=HYPERLINK(…)``): Excel, LibreOffice and Google Sheets then show it as text and never
  evaluate it. The rest of the text is unchanged, so the original is the cell minus that apostrophe;
* lists and objects are written as JSON (starting with ``[`` or ``{``, hence inert);
* a decimal the gateway writes from the contract's decimal text (:class:`~decimal.Decimal`, e.g. a negative yield
  deviation ``-2.5``) is a number too, written in full (``-0.00000005``, never ``5E-8``).

Quoting (``,``, ``"``, line breaks inside a cell) is left to :mod:`csv`.
"""
from __future__ import annotations

import json
from decimal import Decimal

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str) -> str:
    """``text``, with a leading ``'`` if a spreadsheet could take it for a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


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
