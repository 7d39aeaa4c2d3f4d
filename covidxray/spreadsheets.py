"""CSV downloads that staff open in a spreadsheet: every cell shown as text, never run as a formula."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence

# A cell starting with one of these is read as a formula by Excel, LibreOffice and Google Sheets
# (OWASP "CSV injection"): a file path or name chosen by someone else could then run in staff's spreadsheet.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value) -> str:
    """The value as text; one that would start a formula gets a leading single quote, which shows it as text."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


class _Line:
    """What csv.writer writes into: each row comes back as one line, so rows stream as they are made."""

    def write(self, line: str) -> str:
        return line


def spreadsheet_csv_lines(header: Sequence[str], rows: Iterable[Sequence]) -> Iterator[str]:
    """The header and each row as a CSV line, every cell through spreadsheet_cell."""
    writer = csv.writer(_Line())
    yield writer.writerow([spreadsheet_cell(name) for name in header])
    for row in rows:
        yield writer.writerow([spreadsheet_cell(value) for value in row])
