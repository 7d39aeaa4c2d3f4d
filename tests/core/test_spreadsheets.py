"""CSV downloads staff open in a spreadsheet show every cell as text: nothing in them runs as a formula."""

import csv
import io

import pytest

from covidxray.spreadsheets import spreadsheet_cell, spreadsheet_csv_lines


@pytest.mark.parametrize("value", ["=1+1", "+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", '=HYPERLINK("http://x")'])
def test_a_cell_that_would_start_a_formula_is_prefixed_with_a_quote(value):
    assert spreadsheet_cell(value) == "'" + value


@pytest.mark.parametrize(("value", "text"), [("COVID/a.png", "COVID/a.png"), (3, "3"), (None, ""), ("a=b", "a=b")])
def test_other_cells_are_written_as_they_are(value, text):
    assert spreadsheet_cell(value) == text


def test_the_lines_are_one_csv_file_with_every_cell_neutralised():
    lines = list(spreadsheet_csv_lines(("split", "path"), [("train", "=cmd|' /C calc'!A0"), ("test", "a,b.png")]))

    assert len(lines) == 3
    assert list(csv.reader(io.StringIO("".join(lines)))) == [
        ["split", "path"],
        ["train", "'=cmd|' /C calc'!A0"],
        ["test", "a,b.png"],
    ]
