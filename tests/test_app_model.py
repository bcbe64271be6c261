"""The table model, its proxy, colours and export, without threads; and the --self-test entry point."""
from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QAbstractItemModelTester

from app import theme
from app.documents import display_name, text_document
from app.export import export_rows, format_for_path, tab_separated
from app.table_model import (
    DONE,
    ERROR,
    IDLE,
    ColumnKindRole,
    DocumentRow,
    ResultsFilter,
    ResultsModel,
    SortRole,
    VerdictRole,
    verdict_counts,
)
from engine.rows import ROW_FIELDS
from engine.types import Document, Verdict


def v(question: str, margin: float, doc: str = "d") -> Verdict:
    return Verdict(document_id=doc, question=question, verdict="yes" if margin > 0 else "no", margin=margin,
                   raw_margin=margin, probability=1 / (1 + math.exp(-margin)), label_mass=0.9, tokens=10, seconds=0.5)


def rows(n: int) -> list[DocumentRow]:
    return [DocumentRow(key=i + 1, name=f"doc {i}", document=Document(id=f"d{i}", text=f"text number {i}")) for i in range(n)]


def test_model_tester_and_columns(qtbot):
    model = ResultsModel()
    tester = QAbstractItemModelTester(model, QAbstractItemModelTester.FailureReportingMode.Warning)
    proxy = ResultsFilter()
    proxy.setSourceModel(model)
    proxy_tester = QAbstractItemModelTester(proxy, QAbstractItemModelTester.FailureReportingMode.Warning)
    model.set_questions(["Q1", "Q2"])
    assert model.columnCount() == 1 + 2 + 5
    model.add_rows(rows(5))
    assert [model.index(0, c).data(ColumnKindRole) for c in range(8)] == [
        "name", "verdict", "verdict", "confidence", "margin", "tokens", "time", "status"]
    assert model.headerData(1, Qt.Orientation.Horizontal) == "Q1 · Q1"
    model.set_verdict(1, v("Q1", 2.0))
    assert model.row_for_key(1).status == IDLE  # one question still missing
    model.set_verdict(1, v("Q2", -1.0))
    assert model.row_for_key(1).status == DONE
    assert model.set_verdict(1, v("gone", 1.0)) is None  # a stale question is ignored
    assert model.set_verdict(99, v("Q1", 1.0)) is None  # a removed row is ignored
    index = model.index(0, 1)
    assert (index.data(), index.data(VerdictRole)) == ("Yes · 88%", "yes")  # the words the chip shows
    assert model.index(0, model.column_of("Margin")).data() == "+2.00"
    model.set_active_question(1)
    assert model.index(0, model.column_of("Margin")).data() == "-1.00"
    assert model.index(0, model.column_of("Confidence")).data() == f"{1 - 1 / (1 + math.exp(1)):.0%}"
    model.remove_keys([2, 4, 5])
    assert [r.key for r in model.rows] == [1, 3]
    model.set_questions(["Q2"])
    assert set(model.row_for_key(1).verdicts) == {"Q2"}
    model.clear()
    del tester, proxy_tester  # alive to here: pytest-qt fails a test on any qt.modeltest warning


def test_failed_rows_are_red_with_the_reason():
    model = ResultsModel()
    model.set_questions(["Q"])
    row = DocumentRow(1, "bad.pdf", Document(id="bad.pdf", text="", error="the PDF is encrypted"))
    row.settle(["Q"])
    model.add_rows([row])
    assert row.status == ERROR
    status = model.index(0, model.column_of("Status"))
    assert status.data() == "Error" and status.data(Qt.ItemDataRole.ToolTipRole) == "the PDF is encrypted"
    assert model.index(0, 0).data(Qt.ItemDataRole.ForegroundRole) == theme.error_row_colors().foreground
    assert model.index(0, 1).data(VerdictRole) == "error"


def test_proxy_sorts_numbers_filters_verdicts_and_searches():
    model = ResultsModel()
    model.set_questions(["Q"])
    model.add_rows(rows(6))
    for key, margin in zip(range(1, 6), [0.5, -2.0, 3.0, -0.1, 10.0]):
        model.set_verdict(key, v("Q", margin))
    proxy = ResultsFilter()
    proxy.setSourceModel(model)
    proxy.sort(model.column_of("Margin"), Qt.SortOrder.DescendingOrder)
    assert [proxy.index(r, model.column_of("Margin")).data() for r in range(5)] == [
        "+10.00", "+3.00", "+0.50", "-0.10", "-2.00"]
    assert proxy.index(0, 1).data(SortRole) == 10.0
    proxy.set_verdict_filter("no")
    assert proxy.rowCount() == 2
    proxy.set_verdict_filter("all")
    proxy.set_search_text("NUMBER 3")
    assert proxy.rowCount() == 1
    counts = verdict_counts(model.rows, "Q")
    assert counts == {"all": 6, "yes": 3, "no": 2, "uncertain": 0, "error": 0}


@pytest.mark.parametrize("dark", [False, True])
def test_chip_colours_are_readable_on_both_palettes(qapp, dark):
    palette = theme.palette_for("dark" if dark else "light")
    assert theme.is_dark(palette) == dark
    base = palette.color(palette.ColorRole.Base)
    for verdict in ("yes", "no", "uncertain", "error", "pending"):
        chip = theme.chip_colors(verdict, palette)
        assert theme.contrast_ratio(chip.foreground, chip.background) >= 4.5, verdict
        # the chip stands out from the row it sits in
        assert abs(chip.background.lightness() - base.lightness()) > 8 or verdict == "pending"
    row = theme.error_row_colors(palette)
    assert theme.contrast_ratio(row.foreground, row.background) >= 4.5
    text = palette.color(palette.ColorRole.Text)
    assert theme.contrast_ratio(text, base) >= 7
    assert theme.contrast_ratio(text, theme.highlight_color(palette)) >= 4.5
    yes, no = theme.chip_colors("yes", palette), theme.chip_colors("no", palette)
    assert yes.background != no.background  # and the words differ too: colour is never the only cue


def test_names_and_pasted_documents():
    assert display_name(Document(id="/a/b/c.txt", text=""), ["/a/b/c.txt"]) == "c.txt"
    assert display_name(Document(id="/a/b/sub/c.txt", text=""), ["/a/b"]) == "sub/c.txt"
    assert display_name(Document(id="/a/b/c.txt", text=""), ["/a/b/"]) == "c.txt"
    assert display_name(Document(id="/elsewhere/x.md", text=""), ["/a"]) == "x.md"
    assert display_name(Document(id="/a/docs.zip!sub/c.txt", text=""), ["/a/docs.zip"]) == "docs.zip!sub/c.txt"
    assert display_name(Document(id="/a/in.mbox:#2 <m@x>", text=""), ["/a/in.mbox"]) == "in.mbox:#2 <m@x>"
    assert display_name(Document(id="/a/docs.zip!c.txt", text=""), ["/a"]) == "docs.zip!c.txt"
    name, doc = text_document("\n\n  Meeting notes  \nline two", 3)
    assert name == "Pasted 3: Meeting notes" and doc.id == "pasted-3" and doc.source is None
    assert text_document("x" * 100, 1)[0].endswith("…")


def test_export_formats_and_tsv(tmp_path):
    assert format_for_path("a.JSONL") == "jsonl" and format_for_path("a.csv") == "csv" and format_for_path("a") == "csv"
    row = DocumentRow(1, "a", Document(id="a", text="t", source="/x/a"), verdicts={"Q": v("Q", 1.0, "a")})
    unscored = DocumentRow(2, "b", Document(id="b", text="t"))
    path = tmp_path / "out.jsonl"
    assert export_rows(path, [row, unscored], ["Q"], "jsonl") == 1
    (record,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert list(record)[: len(ROW_FIELDS)] == ROW_FIELDS and record["path"] == "/x/a"
    assert not list(tmp_path.glob("*.part"))
    with pytest.raises(OSError):
        export_rows(tmp_path / "no" / "such" / "dir.csv", [row], ["Q"], "csv")
    assert tab_separated([["a\tb", "c\nd"], ["1", "2"]]) == "a b\tc d\n1\t2\n"
    assert tab_separated([["=1+1", "-A1", "@A1", "ok"]]) == "'=1+1\t'-A1\t'@A1\tok\n"  # pasted, never run
    # numbers as shown stay numbers: no formula starts like one
    assert tab_separated([["+1.63", "-0.5", "62%", "1,204", "+1.6e3"]]) == "+1.63\t-0.5\t62%\t1,204\t'+1.6e3\n"
    csv_path = tmp_path / "formula.csv"
    formula = DocumentRow(1, "=cmd", Document(id="=cmd|' /C calc'!A0", text="t"), verdicts={"Q": v("Q", -1.0, "=cmd|' /C calc'!A0")})
    export_rows(csv_path, [formula], ["Q"], "csv")
    (exported,) = csv.DictReader(csv_path.open(newline="", encoding="utf-8"))
    assert exported["id"] == "'=cmd|' /C calc'!A0" and float(exported["margin"]) == -1.0


def test_self_test_entry_point(default_model_path):
    """What packaging runs: start, load the default model, score a sample, print the verdict, exit 0."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-m", "app", "--self-test"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "self-test: ok" in done.stdout
    assert any(f" -> {kind} " in done.stdout for kind in ("yes", "no", "uncertain"))  # calibrated, label-free
