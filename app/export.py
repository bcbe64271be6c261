"""Export results, and rows as tab-separated text.

Three formats: 'wide' (CSV, one row per document: name, path, then each question's verdict,
probability and the user's label: ``engine.rows``' layout, which ``verdict classify --wide``
writes too), and the CLI's long rows as 'csv' or 'jsonl' (one row per document and question, from
``engine.rows.verdict_row``, plus the user's ``label``), so a file exported from the window
and one written by ``verdict classify`` share fields and rounding.
"""
from __future__ import annotations

import csv
import os
import re
from typing import Iterable, Iterator

from engine.atomic import atomic_write
from engine.rows import ROW_FIELDS, RowWriter, spreadsheet_safe, verdict_row, wide_header, wide_row
from engine.types import Verdict

from app.table_model import DocumentRow

FORMATS = ("wide", "csv", "jsonl")
LABEL_FIELD = "label"  # appended to the CLI's fields in the long formats: the user's answer, or empty

__all__ = ["FORMATS", "ROW_FIELDS", "export_rows", "result_rows", "wide_rows", "format_for_path", "with_extension",
           "tab_separated"]


def result_rows(rows: Iterable[DocumentRow], questions: list[str]) -> Iterator[dict]:
    """One row per document and question, documents in table order, questions in column order.

    A document that could not be read gets an ``error`` verdict for each question, as in the CLI;
    a document not scored yet has no verdict and is left out.
    """
    for row in rows:
        for question in questions:
            verdict = row.verdicts.get(question)
            if verdict is None and row.document.error:
                verdict = Verdict(document_id=row.document.id, question=question, verdict="error",
                                  error=row.document.error)
            if verdict is not None:
                yield {**verdict_row(row.document, verdict), LABEL_FIELD: row.labels.get(question, "")}


def wide_rows(rows: Iterable[DocumentRow], questions: list[str]) -> Iterator[list]:
    """A header, then one row per document: name, path, and per question its verdict, P(yes)
    and the user's label (the layout of ``verdict classify --wide``)."""
    yield wide_header(questions)
    for row in rows:
        yield wide_row(row.name, row.document.source, questions, row.verdicts, row.labels, row.document.error)


def format_for_path(path: str | os.PathLike, fallback: str = "csv") -> str:
    """'csv' or 'jsonl' from a file name's suffix."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    return {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}.get(suffix, fallback)


def with_extension(path: str, fmt: str) -> str:
    """``path`` with the extension of ``fmt`` (.csv or .jsonl) in place of a wrong or missing one."""
    root, suffix = os.path.splitext(path)
    wanted = ".jsonl" if fmt == "jsonl" else ".csv"
    if suffix.lower() == wanted or (fmt == "jsonl" and suffix.lower() == ".ndjson"):
        return path
    return (root if suffix.lower() in (".csv", ".jsonl", ".json", ".ndjson", ".tsv", ".txt") else path) + wanted


def export_rows(path: str | os.PathLike, rows: Iterable[DocumentRow], questions: list[str], fmt: str) -> int:
    """Write ``rows`` to ``path`` as 'wide', 'csv' or 'jsonl'; return how many rows of results
    were written (documents for 'wide', document × question pairs otherwise).

    Written to a temporary file first and renamed, so a failed export never leaves half a file
    where a good one was. Raises OSError when the file can't be written.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    count = 0
    with atomic_write(path, newline="") as out:
        if fmt == "wide":
            writer = csv.writer(out)
            for n, line in enumerate(wide_rows(rows, questions)):
                writer.writerow(line)
                count = n
        else:  # the CLI's rows (CSV: its columns, then the label)
            writer = RowWriter(out, fmt, more_fields=[LABEL_FIELD])
            for record in result_rows(rows, questions):
                writer.write(record)
                count += 1
            writer.close()
    return count


# A number as the table shows it (+1.63, -0.5, 62%, 1,204): pasted as a number, since no formula starts so.
_NUMBER = re.compile(r"[+-]?\d[\d,]*(\.\d+)?%?")


def tab_separated(lines: Iterable[Iterable[str]]) -> str:
    """Cells as tab-separated lines (what spreadsheets take from the clipboard), formula-safe."""

    def clean(cell: str) -> str:
        text = " ".join(str(cell).split())  # tabs and newlines inside a cell would break the grid
        return text if _NUMBER.fullmatch(text) else spreadsheet_safe(text)

    return "\n".join("\t".join(clean(c) for c in line) for line in lines) + "\n"
