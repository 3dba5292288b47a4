"""Parsing the CSV files users write or export from a spreadsheet (job and prompt lists, data manifests), with
one-line errors.

Split into lines first, Python's reader joined a quoted field that spans lines without its newline ("calm
<newline> guitar" became one unknown word, "calmguitar"), and a quote left open swallowed every row after it without
a word. Here the text is read as one stream: a quoted newline stays a newline, an open quote is refused.
"""

from __future__ import annotations

import csv
import io

from sae.errors import UserError


def parse_csv(text: str, where: str) -> tuple[list[dict[str, str]], list[str]]:
    """The rows of a CSV `text` (header first) as dicts, and the header's column names; `where` names the file in
    the error (one line) raised for a malformed one."""
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    rows: list[dict[str, str]] = []
    start = 1  # the line the record being read starts on
    try:
        header = reader.fieldnames or []  # the header first
        if twice := next((c for i, c in enumerate(header) if c in header[:i]), None):  # DictReader keeps the last
            raise UserError(f"{where}: column {twice!r} appears twice in the header; keep one")
        start = reader.reader.line_num + 1
        for row in reader:
            rows.append(dict(row))
            start = reader.reader.line_num + 1
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):  # read on to the end: said where the quote opened
            raise UserError(f"{where}: not a readable CSV (a quote opened on line {start} is never closed)") from None
        raise UserError(f"{where}: not a readable CSV (line {reader.reader.line_num}: {exc})") from None
    return rows, list(reader.fieldnames or ())
