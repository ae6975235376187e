"""CSV for spreadsheets: every export goes through `csv_text`, so that no cell runs as a formula.

A text cell starting with =, +, -, @, tab, CR or LF (OWASP's CSV injection list, plus NUL and
the full-width forms some spreadsheets also read as formulas) is written with a leading
apostrophe, which spreadsheets take as "this is text" and do not show. Numbers are data and
are written as they are.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

FORMULA_STARTS = (
    *("=", "+", "-", "@", "\t", "\r", "\n", "\0"),
    *("\uff1d", "\uff0b", "\uff0d", "\uff20"),  # full-width = + - @
)


def cell(value: object) -> str:
    """`value` as a cell a spreadsheet shows as text."""
    if value is None:
        return ""
    if isinstance(value, int | float):  # bool included
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """The table as CSV (RFC 4180 quoting), header first, every cell through `cell`."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([cell(h) for h in header])
    writer.writerows([cell(v) for v in row] for row in rows)
    return out.getvalue()
