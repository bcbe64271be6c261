"""Verdicts added to the user's own table: `verdict classify --table-in FILE --wide`, and the app's "Add
Verdict Columns to the Original".

Every row of the table is written back as it was, every column in order, followed by each
question's verdict, probability and label columns (`engine.rows.verdict_cells`). Only the new cells
are made spreadsheet-safe; the user's cells are the user's.

Where the rows go follows `--output`'s name: ``.xlsx`` writes a workbook (one sheet, named as the
one read; cell values as they were, formulas as their last computed values), anything else, and
standard output, CSV. A CSV table is written back in its own encoding (byte-order mark included),
delimiter, quote character, line ending and quoting; a workbook read into CSV is written as UTF-8
with commas.
"""
from __future__ import annotations

import csv
import io
import os
import sys
from typing import Any, Iterator, Optional

from engine.rows import OutputError, verdict_cells, verdict_header, verdicts_by_document
from engine.intake.table import CsvFormat, Record, Table
from engine.types import Document, Verdict

UTF8_CSV = CsvFormat(encoding="utf-8", bom=False, delimiter=",", quotechar='"', doublequote=True, escapechar=None,
                     lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)


def writes_workbook(output: Optional[str]) -> bool:
    """Whether `--output` names a workbook (.xlsx)."""
    return bool(output) and output.lower().endswith(".xlsx")


class TableSink:
    """Where the table's rows go back: :meth:`header`, one :meth:`row` per record, :meth:`close`."""

    def __init__(self, table: Table, output: Optional[str]) -> None:
        self.table, self.output = table, output
        self.width = len(table.header)
        self.name = output or "standard output"
        if writes_workbook(output):
            self._book = _Workbook(table.sheet or "Sheet1")
            self._csv = None
        else:
            self._book = None
            self._csv = _CsvOut(output, table.csv_format or UTF8_CSV)

    def header(self, questions: list[str]) -> None:
        self._write(list(self.table.header) + verdict_header(questions))

    def row(self, record: Record, cells: list[Any]) -> None:
        """The record's cells, then the new cells; cells past the header's width (a ragged
        row, a note beside a sheet) stay after the new ones, so the new columns line up."""
        own = list(record.cells)
        padded = own[: self.width] + [None] * (self.width - len(own))
        self._write(padded + cells + own[self.width:])

    def close(self) -> None:
        try:
            if self._book is not None:
                self._book.save(self.output)
            else:
                self._csv.close()
        except OSError as exc:
            raise OutputError(f"cannot write {self.name}: {exc.strerror or exc}") from None

    def abandon(self) -> None:
        """After an interruption: keep what CSV rows are written; a workbook is written whole or not at all."""
        if self._csv is not None:
            try:
                self._csv.close()
            except OSError:
                pass

    def _write(self, cells: list[Any]) -> None:
        try:
            if self._book is not None:
                self._book.append(cells)
            else:
                self._csv.write(cells)
        except OSError as exc:
            raise OutputError(f"cannot write {self.name}: {exc.strerror or exc}") from None


def write_table_wide(table: Table, output: Optional[str], rows: Iterator[Verdict], docs: list[Document],
                     questions: list[str], given_labels, progress) -> bool:
    """Write the table back with the verdict columns, from rows in input order (one document per
    table record, as `iter_table_documents` made them); returns whether any row failed.
    `given_labels(doc)` gives the user's labels of a document by question."""
    sink = TableSink(table, output)
    failed = False
    records = table.records()
    done = 0
    try:
        sink.header(questions)
        for index, verdicts in verdicts_by_document(rows, progress):
            failed |= any(v.error is not None for v in verdicts.values())
            while done <= index:  # one record per document, in the same order
                record, doc = next(records), docs[done]
                sink.row(record, verdict_cells(questions, verdicts if done == index else {}, given_labels(doc),
                                               doc.error))
                done += 1
    except KeyboardInterrupt:
        sink.abandon()
        raise
    sink.close()
    return failed


class _CsvOut:
    def __init__(self, output: Optional[str], fmt: CsvFormat) -> None:
        self.owned = bool(output)
        if output:
            try:
                raw = open(output, "wb")
            except OSError as exc:
                raise OutputError(f"cannot write {output}: {exc.strerror or exc}") from None
        else:
            sys.stdout.flush()
            raw = sys.stdout.buffer
        self.stream = io.TextIOWrapper(raw, encoding=fmt.encoding, errors="replace", newline="", write_through=True)
        if fmt.bom:
            self.stream.write("\ufeff")
        self.writer = csv.writer(self.stream, **fmt.writer_options())

    def write(self, cells: list[Any]) -> None:
        self.writer.writerow(["" if c is None else c for c in cells])

    def close(self) -> None:
        self.stream.flush()
        if self.owned:
            self.stream.close()
        else:
            self.stream.detach()  # standard output stays open


class _Workbook:
    def __init__(self, title: str) -> None:
        from openpyxl import Workbook

        self.book = Workbook(write_only=True)
        self.sheet = self.book.create_sheet(title=title[:31])

    def append(self, cells: list[Any]) -> None:
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        line = []
        for value in cells:
            if isinstance(value, str):
                cell = WriteOnlyCell(self.sheet, ILLEGAL_CHARACTERS_RE.sub("", value))
                cell.data_type = "s"  # text that starts with "=" stays text, as it was read
                line.append(cell)
            else:
                line.append(value)
        self.sheet.append(line)

    def save(self, path: str) -> None:
        partial = f"{path}.part"
        try:
            self.book.save(partial)
            os.replace(partial, path)
        finally:
            if os.path.exists(partial):
                os.remove(partial)
