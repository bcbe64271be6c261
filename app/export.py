"""Export results as CSV or JSONL with the CLI's row contract, and rows as tab-separated text.

The rows come from ``engine.cli.verdict_row`` so a file exported from the window and one
written by ``verdict classify`` have the same fields, in the same order, with the same rounding.
"""
from __future__ import annotations

import os
from typing import Iterable, Iterator

from engine.cli.output import ROW_FIELDS, RowWriter, verdict_row
from engine.types import Verdict

from app.table_model import DocumentRow

FORMATS = ("csv", "jsonl")

__all__ = ["FORMATS", "ROW_FIELDS", "export_rows", "result_rows", "format_for_path", "tab_separated"]


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
                yield verdict_row(row.document, verdict)


def format_for_path(path: str | os.PathLike, fallback: str = "csv") -> str:
    """'csv' or 'jsonl' from a file name's suffix."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    return {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}.get(suffix, fallback)


def export_rows(path: str | os.PathLike, rows: Iterable[DocumentRow], questions: list[str], fmt: str) -> int:
    """Write ``rows`` to ``path`` as 'csv' or 'jsonl'; return how many result rows were written.

    Written to a temporary file first and renamed, so a failed export never leaves half a file
    where a good one was. Raises OSError when the file can't be written.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    path = os.fspath(path)
    partial = f"{path}.part"
    count = 0
    try:
        with open(partial, "w", encoding="utf-8", newline="") as out:
            writer = RowWriter(out, fmt)
            for record in result_rows(rows, questions):
                writer.write(record)
                count += 1
            writer.close()
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return count


def tab_separated(lines: Iterable[Iterable[str]]) -> str:
    """Cells as tab-separated lines (what spreadsheets take from the clipboard)."""

    def clean(cell: str) -> str:
        return " ".join(str(cell).split())  # tabs and newlines inside a cell would break the grid

    return "\n".join("\t".join(clean(c) for c in line) for line in lines) + "\n"
