"""File ▸ Add Verdict Columns to the Original: a table whose rows are documents of the session is
written back with every row and column as they are in the file, followed by each question's
verdict, probability and label columns, through the writer of ``verdict classify --table-in …
--wide`` (:class:`engine.table_out.TableSink`), so the two files are the same.

A row not scored yet, and one the user removed from the session, gets empty verdict cells: the
original is never shortened. A table that changed or vanished since it was read is refused
(:class:`OriginalChanged`) and nothing is written.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Optional

from engine.atomic import atomic_path
from engine.rows import OutputError
from engine.table_out import TableSink
from engine.intake.table import TableError, open_table
from engine.rows import verdict_cells
from engine.types import Document

from app.table_model import DocumentRow


class OriginalChanged(Exception):
    """The original table is not as it was read, or is gone; the message says so in one sentence."""


@dataclass(frozen=True)
class SourceTable:
    """A table (a file, and for a workbook its sheet) whose rows are documents of the session."""

    path: str
    sheet: Optional[str] = None

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def suggested_output(self) -> str:
        """``<name>-verdicts`` beside the original, as CSV (a TSV stays TSV) or .xlsx for a workbook."""
        root, suffix = os.path.splitext(self.path)
        suffix = ".xlsx" if suffix.lower() in (".xlsx", ".xlsm") else suffix or ".csv"
        return f"{root}-verdicts{suffix}"


def table_stamp(path: str) -> list[int]:
    """What tells a file changed: its size and modification time (ns). OSError when it is gone."""
    info = os.stat(path)
    return [info.st_size, info.st_mtime_ns]


def source_table(doc: Document) -> Optional[SourceTable]:
    """The table ``doc`` is a row of, or None (a file, pasted text, a row of an older session)."""
    table = doc.meta.get("table")
    if not isinstance(table, dict) or doc.meta.get("row") is None or not doc.source:
        return None
    return SourceTable(doc.source, table.get("sheet"))


def source_tables(rows: Iterable[DocumentRow]) -> list[SourceTable]:
    """The tables the session's documents are rows of, in the order they were added."""
    return list(dict.fromkeys(t for t in (source_table(r.document) for r in rows) if t is not None))


def add_verdict_columns(table: SourceTable, rows: Iterable[DocumentRow], questions: list[str],
                        output: str) -> tuple[int, int]:
    """Write ``table`` to ``output`` with each question's verdict, probability and label columns
    from the session's ``rows``; returns (rows written, rows with a verdict or label).

    Written beside ``output`` and moved onto it at the end, so a failed write leaves no half file
    (and ``output`` may be the original itself). Raises :class:`OriginalChanged` when the table
    is not as it was read, OutputError when ``output`` can't be written.
    """
    mine = [r for r in rows if source_table(r.document) == table]
    try:
        now = table_stamp(table.path)
    except OSError:
        raise OriginalChanged(f"{table.name} is no longer at {os.path.dirname(table.path) or '.'}, "
                              "so no verdict columns were written.") from None
    if any(r.document.meta["table"].get("stamp") != now for r in mine):
        raise OriginalChanged(f"{table.name} has changed since it was added, so no verdict columns were written "
                              "(add it again to score it as it is now).")
    try:
        original = open_table(table.path, sheet=table.sheet)
    except TableError as exc:
        raise OriginalChanged(f"{exc}; no verdict columns were written.") from None
    by_number: dict[int, DocumentRow] = {}
    for row in mine:  # a table added twice: its first rows
        by_number.setdefault(row.document.meta["row"], row)

    written = answered = 0
    try:
        with atomic_path(output) as partial:
            sink = TableSink(original, str(partial))
            sink.header(questions)
            for record in original.records():
                row = by_number.get(record.number)
                if row is None:  # removed from the session: its cells stay empty
                    cells = verdict_cells(questions, {}, {})
                else:
                    cells = verdict_cells(questions, row.verdicts, row.labels, row.document.error)
                    answered += bool(row.verdicts or row.labels or row.document.error)
                sink.row(record, cells)
                written += 1
            sink.close()
    except OSError as exc:
        raise OutputError(f"cannot write {output}: {exc.strerror or exc}") from None
    return written, answered
