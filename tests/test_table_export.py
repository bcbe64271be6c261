"""Verdict columns added to the original table from the app's rows (app.table_export), read back
with openpyxl and Python's csv; no window needed."""
from __future__ import annotations

import csv
import datetime

import openpyxl
import pytest

from engine.types import Verdict

from app.documents import TableChoice, table_documents
from app.table_export import OriginalChanged, add_verdict_columns, source_tables
from app.table_model import DocumentRow

Q = "Is it a complaint?"


def _rows(path, text_column, sheet=None):
    docs = table_documents(TableChoice(str(path), (text_column,), None, sheet))
    return [DocumentRow(key=n, name=d.id, document=d) for n, d in enumerate(docs)]


def test_a_workbook_gets_its_verdict_columns_with_its_own_cells_as_they_were(tmp_path):
    path = tmp_path / "reviews.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Reviews"
    original = [("stars", "review", "when"), (1, "Broken on arrival", datetime.datetime(2026, 3, 1, 9, 30)),
                (5, "Lovely", None), (3, "Fine", datetime.datetime(2026, 3, 2))]
    for line in original:
        sheet.append(line)
    book.save(path)

    rows = _rows(path, "review", sheet="Reviews")
    assert source_tables(rows)[0].suggested_output() == str(tmp_path / "reviews-verdicts.xlsx")
    rows[0].verdicts[Q] = Verdict(document_id=rows[0].document.id, question=Q, verdict="yes", probability=0.91234)
    rows[2].labels[Q] = "no"
    out = tmp_path / "reviews-verdicts.xlsx"
    assert add_verdict_columns(source_tables(rows)[0], rows[:1] + rows[2:], [Q], str(out)) == (3, 2)

    back = openpyxl.load_workbook(out)
    assert back.sheetnames == ["Reviews"]
    cells = [list(r) for r in back["Reviews"].iter_rows(values_only=True)]
    assert [c[:3] for c in cells] == [list(r) for r in original]  # numbers stay numbers, dates stay dates
    assert cells[0][3:] == [f"{Q} — verdict", f"{Q} — probability", f"{Q} — label"]
    assert [c[3:] for c in cells[1:]] == [["yes", 0.9123, None], [None, None, None], [None, None, "no"]]


def test_a_ragged_row_is_written_back_as_it_was_with_error_cells(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_bytes(b"note,author\r\nBuy milk,ana\r\nOne,two,three\r\nCall Bob,li\r\n")
    rows = _rows(path, "note")
    assert [r.document.meta["row"] for r in rows] == [2, 3, 4] and rows[1].document.error
    out = tmp_path / "notes-verdicts.csv"
    add_verdict_columns(source_tables(rows)[0], rows, [Q], str(out))
    assert out.read_bytes().startswith(b"note,author,") and b"\r\n" in out.read_bytes()  # its own line ends
    with open(out, encoding="utf-8", newline="") as fh:
        lines = list(csv.reader(fh))
    assert lines[1:] == [["Buy milk", "ana", "", "", ""], ["One", "two", "error", "", "", "three"],
                         ["Call Bob", "li", "", "", ""]]


def test_a_changed_original_is_refused_and_nothing_is_written(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("note,author\nBuy milk,ana\n", encoding="utf-8")
    rows = _rows(path, "note")
    path.write_text("note,author\nBuy bread,ana\n", encoding="utf-8")  # same size: the time tells
    import os

    os.utime(path, ns=(rows[0].document.meta["table"]["stamp"][1] + 10**9,) * 2)
    out = tmp_path / "out.csv"
    with pytest.raises(OriginalChanged, match="notes.csv has changed since it was added"):
        add_verdict_columns(source_tables(rows)[0], rows, [Q], str(out))
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["notes.csv"]
