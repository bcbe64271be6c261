"""The desktop window, driven the way a user drives it: drops, pastes, Return, clicks, quit
and relaunch. Headless (QT_QPA_PLATFORM=offscreen, set in conftest.py); the tiny random
model for almost everything, the real default model once."""
from __future__ import annotations

import csv
import json
import math
import sqlite3
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QFileOpenEvent, QGuiApplication, QDragEnterEvent, QDropEvent
from PySide6.QtTest import QAbstractItemModelTester
from PySide6.QtWidgets import QApplication

from app import dialogs
from app.application import VerdictApplication
from app.session_store import DB_FILE, SessionStore
from app.settings import Settings
from app.table_model import DONE, ERROR, IDLE
from app import theme
from app.window import MainWindow
from engine.rows import EXTRA_FIELDS, ROW_FIELDS

from app.application import binding_problem

if binding_problem():  # fail with the reason instead of aborting the whole test run later
    pytest.fail(binding_problem(), pytrace=False)

Q1 = "Does this document ask for a payment?"
Q2 = "Is this about cooking?"


def write_docs(folder: Path, count: int, text=lambda i: f"Document {i}: please pay invoice {i} of $120 by Friday.") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"doc-{i:03}.txt"
        path.write_text(text(i), encoding="utf-8")
        paths.append(path)
    return paths


def wait_scored(qtbot, window: MainWindow, count: int, timeout: int = 180_000) -> None:
    def scored() -> bool:
        rows = window.results.rows
        return len(rows) == count and all(r.status in (DONE, ERROR) for r in rows) and not window.controller.busy

    qtbot.waitUntil(scored, timeout=timeout)


def drop(widget, urls=(), text: str = "") -> None:
    """A real drag enter + drop with file URLs (or text) sent to ``widget``."""
    mime = QMimeData()
    if urls:
        mime.setUrls([QUrl.fromLocalFile(str(p)) for p in urls])
    if text:
        mime.setText(text)
    center = widget.rect().center()
    args = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    try:
        enter = QDragEnterEvent(QPointF(center), *args)  # Qt >= 6.12
    except TypeError:
        enter = QDragEnterEvent(center, *args)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    event = QDropEvent(QPointF(center), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)
    assert event.isAccepted()


def row_named(window: MainWindow, name: str):
    return next(r for r in window.results.rows if r.name == name)


def test_dropping_files_and_a_folder_scores_every_document(qtbot, tmp_path, make_window, dialog_calls):
    window = make_window()
    assert window.model_label.text() == "tiny-llama"
    assert not window.drop_zone.compact  # empty session: the big invitation
    window.question_bar.ask(Q1)
    single = write_docs(tmp_path / "loose", 1)[0]
    folder = tmp_path / "invoices"
    write_docs(folder, 2)
    write_docs(folder / "2024", 1, text=lambda i: "# Lemon tart\nRub butter into flour.")
    (folder / "scan.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (folder / ".DS_Store").write_bytes(b"\0\0")

    drop(window.drop_zone, urls=[single, folder])
    wait_scored(qtbot, window, 5)

    names = [r.name for r in window.results.rows]
    assert names == ["doc-000.txt", "2024/doc-000.txt", "doc-000.txt", "doc-001.txt", "scan.pdf"]
    assert window.drop_zone.compact
    for row in window.results.rows[:4]:
        assert row.status == DONE
        verdict = row.verdicts[Q1]
        # calibrated (label-free here): "uncertain" when the margin is small; the raw margin is kept
        assert verdict.verdict in ("yes", "no", "uncertain") and 0 <= verdict.probability <= 1
        assert math.isfinite(verdict.raw_margin) and verdict.hidden is None
    failed = row_named(window, "scan.pdf")
    assert failed.status == ERROR and failed.error
    n = window.results.row_number(failed.key)
    status_col = window.results.column_of("Status")
    assert window.results.data(window.results.index(n, status_col), Qt.ItemDataRole.ToolTipRole) == failed.error
    red = theme.error_row_colors().background
    assert window.results.data(window.results.index(n, 0), Qt.ItemDataRole.BackgroundRole) == red
    assert dialog_calls == []  # a failed document is a red row, nothing pops up


def test_drop_on_the_table_area_and_text_drops(qtbot, tmp_path, make_window):
    window = make_window()
    window.question_bar.ask(Q1)
    drop(window.drop_zone, text="Dinner tonight: pasta with garlic and lemon.")
    wait_scored(qtbot, window, 1)
    # once there are documents, a drop anywhere on the window (here: the table) adds documents too
    drop(window, urls=write_docs(tmp_path / "more", 2))
    wait_scored(qtbot, window, 3)
    assert window.results.rows[0].name.startswith("Pasted 1: Dinner tonight")


def test_each_paste_becomes_a_document(qtbot, make_window):
    window = make_window()
    window.question_bar.ask(Q1)
    window.table.setFocus()
    clipboard = QGuiApplication.clipboard()
    clipboard.setText("Your parcel is waiting. Pay the $2 customs fee at http://example.test to release it.")
    qtbot.keyClick(window.table, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    clipboard.setText("Minutes of the Tuesday planning meeting.\nAttendees: Ana, Bo.")
    window.paste_action.trigger()
    wait_scored(qtbot, window, 2)
    names = [r.name for r in window.results.rows]
    assert names[0].startswith("Pasted 1: Your parcel is waiting.") and names[0].endswith("…")
    assert names[1] == "Pasted 2: Minutes of the Tuesday planning meeting."
    assert window.results.rows[1].document.text.endswith("Attendees: Ana, Bo.")
    # in the question editor Ctrl+V pastes a sentence into the question instead
    window.question_bar.editor.setFocus()
    window.question_bar.editor.clear()
    clipboard.setText("Is this from a meeting?")
    qtbot.keyClick(window.question_bar.editor, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert window.question_bar.editor.toPlainText() == "Is this from a meeting?"
    assert len(window.results.rows) == 2


def test_default_model_scores_the_samples(qtbot, make_window, default_model_path):
    samples = Path(__file__).resolve().parent.parent / "resources" / "samples"
    window = make_window(model=default_model_path)
    window.question_bar.ask("Does this ask the reader to pay money?")
    window.add_paths([samples / "overdue-invoice.txt", samples / "lemon-tart-recipe.md"])
    wait_scored(qtbot, window, 2, timeout=180_000)
    for row in window.results.rows:
        v = row.verdicts["Does this ask the reader to pay money?"]
        assert v.verdict in ("yes", "no", "uncertain") and math.isfinite(v.margin) and v.tokens > 50
        assert v.label_mass > 0.1 and math.isfinite(v.raw_margin)
    assert "SmolLM2" in window.model_label.text() or "Smollm2" in window.model_label.text()


def test_cancel_midway_keeps_what_is_done_and_drops_late_results(qtbot, tmp_path, make_window):
    window = make_window()
    window.question_bar.ask(Q1)
    long_text = lambda i: f"Report {i}. " + "The quarterly numbers are in and they look fine. " * 8  # noqa: E731
    window.add_paths(write_docs(tmp_path / "many", 240, text=long_text))
    qtbot.waitUntil(lambda: any(r.status == DONE for r in window.results.rows), timeout=180_000)
    assert window.cancel_button.isVisible()
    qtbot.keyClick(window.table, Qt.Key.Key_Escape)  # QKeySequence.Cancel
    assert not window.controller.busy
    assert not window.cancel_button.isVisible()
    done = {r.key for r in window.results.rows if r.status == DONE}
    stopped = [r for r in window.results.rows if r.status == IDLE]
    assert done and stopped, "cancel should land midway"
    assert all("Cancelled" in r.note for r in stopped)
    # the worker finishes its batch after the cancel; a later job proves it has moved on
    window.add_text("One more document about payments.")
    qtbot.waitUntil(lambda: window.results.rows[-1].status == DONE and not window.controller.busy, timeout=180_000)
    assert {r.key for r in window.results.rows[:-1] if r.status == DONE} == done  # late results dropped
    assert all(not r.verdicts for r in stopped)


def test_return_rescores_and_a_second_question_gets_its_own_column(qtbot, tmp_path, make_window):
    window = make_window()
    window.add_paths(write_docs(tmp_path / "docs", 4))
    qtbot.waitUntil(lambda: len(window.results.rows) == 4)
    assert all(r.status == IDLE for r in window.results.rows)  # no question yet
    editor = window.question_bar.editor
    editor.setFocus()
    qtbot.keyClicks(editor, "Is this an invoice?")
    qtbot.keyClick(editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)  # a new line, not a submit
    assert window.results.questions == []
    qtbot.keyClicks(editor, "Answer strictly.")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    first = "Is this an invoice?\nAnswer strictly."
    assert window.results.questions == [first]
    wait_scored(qtbot, window, 4)

    editor.selectAll()
    qtbot.keyClicks(editor, Q1)
    qtbot.keyClick(editor, Qt.Key.Key_Return)  # editing the question and pressing Return asks "Ask again?"
    assert window.results.questions == [first]
    qtbot.keyClick(editor, Qt.Key.Key_Return)  # a second Return: asked again (a rename)
    assert window.results.questions == [Q1]
    wait_scored(qtbot, window, 4)
    assert all(set(r.verdicts) == {Q1} for r in window.results.rows)
    assert Q1 in window.settings.recent_questions and first in window.settings.recent_questions

    calls = []
    original = window.controller.score
    window.controller.score = lambda keys, docs, questions: calls.append(list(questions)) or original(keys, docs, questions)
    columns = window.results.columnCount()
    q1_answers = {r.key: r.verdicts[Q1] for r in window.results.rows}
    window.question_bar.add_question()
    qtbot.keyClicks(editor, Q2)
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    assert window.results.questions == [Q1, Q2]
    assert window.results.columnCount() == columns + 1
    assert calls == [[Q2]]  # a new question scores its own column only
    wait_scored(qtbot, window, 4)
    assert all(set(r.verdicts) == {Q1, Q2} for r in window.results.rows)
    assert all(r.verdicts[Q1] is q1_answers[r.key] for r in window.results.rows)  # Q1's answers untouched
    with sqlite3.connect(window.store.path) as db:
        assert db.execute("SELECT count(*) FROM verdicts").fetchone()[0] == 8

    window.question_bar.remove_question(0)
    assert window.results.questions == [Q2]
    assert all(r.status == DONE and set(r.verdicts) == {Q2} for r in window.results.rows)

    recent = window.question_bar.recent_menu.actions()
    assert recent[0].data() == Q2
    next(a for a in recent if a.data() == first).trigger()  # one click on a recent question adds it
    assert window.results.questions == [Q2, first] and window.question_bar.active == 1
    wait_scored(qtbot, window, 4)
    recent = window.question_bar.recent_menu.actions()
    next(a for a in recent if a.data() == Q2).trigger()  # one already asked: its tab is shown, nothing added
    assert window.results.questions == [Q2, first] and window.question_bar.active == 0


def test_detail_pane_labels_and_deciding_window(qtbot, tmp_path, make_window):
    window = make_window()
    window.question_bar.ask(Q1)
    long = "Chapter one. " + " ".join(f"Sentence number {i} talks about the weather." for i in range(120))
    window.add_documents([("long.txt", _doc("long", long)), ("short.txt", _doc("short", "Pay $5 now."))])
    wait_scored(qtbot, window, 2)
    long_row = row_named(window, "long.txt")
    verdict = long_row.verdicts[Q1]
    assert verdict.windows > 1  # the tiny model's 512-token context splits it

    window.select_keys([long_row.key])
    pane = window.detail
    assert pane.key == long_row.key
    assert pane.text.toPlainText() == long
    assert pane.highlighted_span() == verdict.window_span
    assert pane.window_note.isVisible()
    result = pane.results()[0]
    assert "Chance of yes" in result.numbers.text() and "raw margin" not in result.numbers.text()
    assert "raw margin" in result.numbers.toolTip() and "P(yes)" in result.numbers.toolTip()  # the terms, on hover

    qtbot.mouseClick(result.yes_button, Qt.MouseButton.LeftButton)
    assert long_row.labels == {Q1: "yes"}
    qtbot.mouseClick(result.no_button, Qt.MouseButton.LeftButton)
    assert long_row.labels == {Q1: "no"}
    qtbot.mouseClick(result.no_button, Qt.MouseButton.LeftButton)  # clicking the chosen label again clears it
    assert long_row.labels == {}
    qtbot.mouseClick(result.yes_button, Qt.MouseButton.LeftButton)

    short_row = row_named(window, "short.txt")
    window.select_keys([short_row.key])
    assert pane.highlighted_span() is None and not pane.window_note.isVisible()
    window.table.setFocus()
    window.label_no_action.trigger()  # keyboard labelling of the current row
    assert short_row.labels == {Q1: "no"}
    with sqlite3.connect(window.store.path) as db:
        assert sorted(db.execute("SELECT label FROM labels")) == [("no",), ("yes",)]


def test_export_csv_and_jsonl_and_copy_rows(qtbot, tmp_path, make_window, monkeypatch):
    window = make_window()
    window.question_bar.ask(Q1)
    window.question_bar.add_question()
    window.question_bar.ask(Q2)
    paths = write_docs(tmp_path / "docs", 3)
    broken = tmp_path / "docs" / "broken.docx"
    broken.write_bytes(b"PK not a zip")
    window.add_paths([tmp_path / "docs"])
    wait_scored(qtbot, window, 4)

    csv_path = tmp_path / "out.csv"
    assert window.export_results(csv_path) == 8
    with open(csv_path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ROW_FIELDS + EXTRA_FIELDS + ["label"]  # the CLI's columns, then the user's label
        rows = list(reader)
    ids = [(r["id"], r["question"]) for r in rows]
    assert ids == [(row.document.id, q) for row in window.results.rows for q in (Q1, Q2)]
    assert (str(paths[0]), Q1) in ids
    errors = [r for r in rows if r["verdict"] == "error"]
    assert len(errors) == 2 and all(r["error"] and r["path"] == str(broken) for r in errors)
    scored = [r for r in rows if r["verdict"] != "error"]
    assert all(0 <= float(r["probability"]) <= 1 and int(r["tokens"]) > 0 for r in scored)

    jsonl_path = tmp_path / "out.jsonl"
    monkeypatch.setattr(dialogs, "choose_export_path", lambda parent, suggested: (str(jsonl_path), "jsonl"))
    window.export_action.trigger()
    records = [json.loads(line) for line in jsonl_path.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 8 and list(records[0])[: len(ROW_FIELDS)] == ROW_FIELDS
    by_id = {(r["id"], r["question"]): r for r in records}
    first = next(r for r in window.results.rows if r.status == DONE)
    assert by_id[(first.document.id, Q2)]["margin"] == pytest.approx(first.verdicts[Q2].margin, abs=1e-6)

    window.table.setFocus()
    qtbot.keyClick(window.table, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)  # QKeySequence.SelectAll
    assert window.selected_keys() == [r.key for r in window.results.rows]
    window.select_keys([r.key for r in window.results.rows[:2]])
    qtbot.keyClick(window.table, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    lines = QGuiApplication.clipboard().text().splitlines()
    assert len(lines) == 3
    header = lines[0].split("\t")
    assert header[:3] == ["Name", Q1, Q2] and header[-3:] == ["Status", f"Your label: {Q1}", f"Your label: {Q2}"]
    assert lines[1].split("\t")[0] == window.results.rows[0].name == "broken.docx"
    assert lines[1].split("\t")[-3] == "Error" and lines[2].split("\t")[-3] == "Done"


def test_session_is_restored_after_relaunch(qtbot, tmp_path, make_window):
    window = make_window()
    window.question_bar.ask(Q1)
    window.question_bar.add_question()
    window.question_bar.ask(Q2)
    window.add_paths(write_docs(tmp_path / "docs", 3))
    window.add_text("Pasted note: buy flour and eggs.")
    wait_scored(qtbot, window, 4)
    first = window.results.rows[0]
    window.set_label(first.key, Q2, "no")
    window.question_bar.tabs.setCurrentIndex(0)
    before = [(r.name, r.document.text, r.document.source, {q: v.margin for q, v in r.verdicts.items()})
              for r in window.results.rows]
    window.resize(761, 503)  # the offscreen screen is 800x600
    window.close()

    again = make_window()
    assert again.results.questions == [Q1, Q2]
    assert again.question_bar.questions == [Q1, Q2] and again.question_bar.active == 0
    after = [(r.name, r.document.text, r.document.source, {q: v.margin for q, v in r.verdicts.items()})
             for r in again.results.rows]
    assert after == before
    assert all(r.status == DONE for r in again.results.rows)
    assert again.results.rows[0].labels == {Q2: "no"}
    assert not again.controller.busy  # nothing to score again
    assert (again.width(), again.height()) == (761, 503)
    # removed documents stay removed
    again.select_keys([again.results.rows[0].key])
    again.table.setFocus()
    qtbot.keyClick(again.table, Qt.Key.Key_Delete)
    assert len(again.results.rows) == 3
    again.close()
    third = make_window()
    assert [r.name for r in third.results.rows] == [b[0] for b in before[1:]]


def test_unfinished_documents_are_scored_after_relaunch(qtbot, tmp_path, make_window):
    window = make_window(model=tmp_path / "no-such-model.gguf")  # no model: documents wait
    window.question_bar.ask(Q1)
    window.add_paths(write_docs(tmp_path / "docs", 2))
    qtbot.waitUntil(lambda: len(window.results.rows) == 2 and all(r.status == IDLE for r in window.results.rows))
    assert "No model" in window.results.rows[0].note
    window.close()
    again = make_window()  # the tiny model loads, and what was left is scored
    wait_scored(qtbot, again, 2)


@pytest.mark.parametrize("kind", ["garbage", "newer"])
def test_unreadable_session_is_set_aside(qtbot, tmp_path, make_window, kind):
    data = tmp_path / "data"
    data.mkdir()
    db = data / DB_FILE
    if kind == "garbage":
        db.write_bytes(b"this is not a database" * 100)
    else:
        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA user_version = 99")
            conn.execute("CREATE TABLE future (x)")
    original = db.read_bytes()
    window = make_window()
    aside = [p for p in data.iterdir() if p.name.startswith(DB_FILE + ".")  and not p.name.endswith(("-wal", "-shm"))]
    assert len(aside) == 1 and aside[0].read_bytes() == original  # kept, not overwritten
    assert ("newer" if kind == "newer" else "unreadable") in aside[0].name
    message = window.statusBar().currentMessage()
    assert "could not be restored" in message and aside[0].name in message
    window.question_bar.ask(Q1)  # the new session works
    window.add_text("Hello")
    wait_scored(qtbot, window, 1)


def test_a_model_that_fails_to_load_opens_one_dialog(qtbot, tmp_path, make_window, dialog_calls):
    window = make_window()
    window.question_bar.ask(Q1)
    window.add_text("Please pay the invoice.")
    wait_scored(qtbot, window, 1)
    bogus = tmp_path / "broken.gguf"
    bogus.write_bytes(b"GGUF but not really")
    window.open_model(str(bogus))
    qtbot.waitUntil(lambda: not window.controller.loading)
    assert len(dialog_calls) == 1
    title, text, details = dialog_calls[0]
    assert "broken.gguf" in text and "MLX model folder" in details and "tiny-llama" in details
    assert window.model_label.text() == "tiny-llama"  # the previous model stays in use
    wait_scored(qtbot, window, 1)
    assert window.results.rows[0].status == DONE

    monkey_folder = tmp_path / "not-a-model"
    monkey_folder.mkdir()
    window.open_model(str(monkey_folder))
    qtbot.waitUntil(lambda: not window.controller.loading)
    assert len(dialog_calls) == 2 and "config.json" in dialog_calls[1][2]


def test_50_documents_are_scored_off_the_gui_thread_and_reach_it_as_queued_events(qtbot, tmp_path, make_window):
    """The GUI stays responsive because no scoring runs on its thread: every verdict is made on
    the scoring thread and handed over as an event the GUI's loop processes (counted here, no clock)."""
    import threading

    window = make_window()
    window.question_bar.ask(Q1)
    gui = threading.get_ident()
    made_on, handled_on = [], []
    direct = Qt.ConnectionType.DirectConnection  # runs in the emitting thread: where the verdict was made
    window.controller._worker.verdictReady.connect(lambda job, verdict: made_on.append(threading.get_ident()), direct)
    window.controller.verdictArrived.connect(lambda key, verdict: handled_on.append(threading.get_ident()))
    tester = QAbstractItemModelTester(window.results, QAbstractItemModelTester.FailureReportingMode.Warning)
    proxy_tester = QAbstractItemModelTester(window.proxy, QAbstractItemModelTester.FailureReportingMode.Warning)
    text = lambda i: f"Memo {i}. " + "Budget review, travel plans and a long list of action items. " * 6  # noqa: E731
    window.add_paths(write_docs(tmp_path / "fifty", 50, text=text))
    wait_scored(qtbot, window, 50)
    assert len(made_on) == 50 and gui not in made_on and len(set(made_on)) == 1
    assert handled_on == [gui] * 50  # each one delivered to the GUI thread by its event loop
    del tester, proxy_tester  # alive to here: pytest-qt fails a test on any qt.modeltest warning


def test_model_tester_passes_while_rows_are_added_updated_and_removed(qtbot, tmp_path, make_window, qtlog):
    window = make_window()
    testers = [QAbstractItemModelTester(m, QAbstractItemModelTester.FailureReportingMode.Warning)
               for m in (window.results, window.proxy)]
    window.question_bar.ask(Q1)
    window.add_paths(write_docs(tmp_path / "docs", 12))
    wait_scored(qtbot, window, 12)
    window.table.sortByColumn(window.results.question_column(0), Qt.SortOrder.DescendingOrder)
    window.question_bar.add_question()
    window.question_bar.ask(Q2)
    window.set_verdict_filter("yes")
    window.search.setText("doc-00")
    wait_scored(qtbot, window, 12)
    window.search.setText("")
    window.set_verdict_filter("all")
    window.select_keys([r.key for r in window.results.rows[2:5]])
    window.remove_selected()
    window.question_bar.remove_question(1)
    assert len(window.results.rows) == 9
    failures = [m.message for m in qtlog.records if "FAIL" in m.message]
    assert failures == [] and len(testers) == 2


def test_filter_by_verdict_and_search(qtbot, tmp_path, make_window):
    window = make_window()
    window.question_bar.ask(Q1)
    window.add_documents([(f"n{i}", _doc(f"n{i}", f"note {i} about apples" if i % 2 else f"note {i} about rent"))
                          for i in range(6)])
    window.add_documents([("bad", _doc("bad", "", error="could not read: permission denied"))])
    wait_scored(qtbot, window, 7)
    proxy = window.proxy
    counts = {kind: sum(1 for r in window.results.rows if r.status == DONE and r.verdicts[Q1].verdict == kind)
              for kind in ("yes", "no", "uncertain")}
    assert sum(counts.values()) == 6
    for kind, count in counts.items():
        window.set_verdict_filter(kind)
        assert proxy.rowCount() == count
    window.set_verdict_filter("error")
    assert proxy.rowCount() == 1
    qtbot.mouseClick(window.filter_buttons["all"], Qt.MouseButton.LeftButton)
    assert proxy.rowCount() == 7
    window.search.setText("APPLES")
    assert proxy.rowCount() == 3
    window.search.setText("n4")
    assert proxy.rowCount() == 1
    window.search.clear()
    qtbot.waitUntil(lambda: window.filter_buttons["error"].text() == "Errors 1")
    # sorting by the verdict column sorts by margin, numerically
    window.table.sortByColumn(window.results.question_column(0), Qt.SortOrder.DescendingOrder)
    margins = [window.results.rows[proxy.mapToSource(proxy.index(r, 0)).row()].verdicts.get(Q1) for r in range(7)]
    values = [v.margin for v in margins if v and not v.error]
    assert values == sorted(values, reverse=True)


def test_file_open_events_reach_the_window(qtbot, qapp, tmp_path, make_window):
    assert isinstance(qapp, VerdictApplication)  # conftest's qapp_cls: whichever test module runs first
    window = make_window()
    window.question_bar.ask(Q1)
    qapp.set_window(window)
    monkey_paths = write_docs(tmp_path / "picked", 1)
    dialogs_choose = dialogs.choose_files
    try:  # File ▸ Add Files… (QKeySequence.Open) goes through the replaceable file dialog
        dialogs.choose_files = lambda parent, directory: [str(p) for p in monkey_paths]
        window.add_files_action.trigger()
    finally:
        dialogs.choose_files = dialogs_choose
    wait_scored(qtbot, window, 1)
    paths = write_docs(tmp_path / "dock", 2)
    for path in paths:  # what macOS sends for files dropped on the Dock icon
        QApplication.sendEvent(qapp, QFileOpenEvent(str(path)))
    wait_scored(qtbot, window, 3)
    qapp.set_window(None)


def test_dark_and_light_appearance_paint(qtbot, tmp_path, make_window):
    window = make_window()
    window.question_bar.ask(Q1)
    window.add_documents([("a", _doc("a", "Pay $10")), ("b", _doc("b", "", error="file is empty"))])
    wait_scored(qtbot, window, 2)
    window.select_keys([window.results.rows[0].key])
    lightness = {}
    try:
        for scheme in ("dark", "light"):
            window.set_color_scheme(scheme)
            assert theme.is_dark() == (scheme == "dark")
            painted = window.grab().toImage()  # paints every delegate on this palette
            mean = painted.scaled(1, 1, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation)
            lightness[scheme] = mean.pixelColor(0, 0).lightness()
    finally:
        window.set_color_scheme("system")
    assert lightness["dark"] < 128 < lightness["light"], lightness


def _doc(doc_id: str, text: str, error: str | None = None):
    from engine.types import Document

    return Document(id=doc_id, text=text, error=error)


def test_the_model_is_loaded_and_used_only_on_the_scoring_thread(qtbot, tmp_path, tiny_model_dir, dialog_calls):
    import threading

    from engine import Classifier

    seen: dict[str, set] = {"load": set(), "classify": set()}

    def load(path):
        seen["load"].add(threading.get_ident())
        classifier = Classifier.load(path)
        original = classifier.score_iter

        def score_iter(*args, **kwargs):
            seen["classify"].add(threading.get_ident())
            yield from original(*args, **kwargs)

        classifier.score_iter = score_iter
        return classifier

    window = MainWindow(Settings(tmp_path / "s.ini"), SessionStore(tmp_path / DB_FILE), model=str(tiny_model_dir), load=load)
    qtbot.addWidget(window)
    window.question_bar.ask(Q1)
    window.add_paths(write_docs(tmp_path / "docs", 3))
    wait_scored(qtbot, window, 3)
    main = threading.get_ident()
    assert len(seen["load"]) == 1 and seen["load"] == seen["classify"] and main not in seen["load"]
    assert window.controller._worker.thread() is window.controller.thread
    window.close()
    assert not window.controller.thread.isRunning()



def test_the_detail_pane_shows_the_engines_notes_on_the_verdict(qtbot):
    """What the engine noted while reading a document (on the verdict: it never edits the
    window's Document) is shown beside the reader's own warnings, once."""
    from app.detail_pane import DetailPane
    from app.table_model import DocumentRow
    from engine.types import Document, Verdict

    pane = DetailPane()
    qtbot.addWidget(pane)
    note = "document is longer than the budget of 100 tokens: only its first 400 of 900 characters were read"
    verdict = Verdict(document_id="d", question=Q1, verdict="no", margin=-2.0, raw_margin=-2.0, probability=0.1,
                      warnings=(note, "from the reader"))
    row = DocumentRow(key=1, name="d.txt", document=Document(id="d", text="x" * 900, warnings=["from the reader"]),
                      status=DONE, verdicts={Q1: verdict})
    pane.show_row(row, [Q1], 0)
    shown = pane.status.text()
    assert note in shown and shown.count("from the reader") == 1
