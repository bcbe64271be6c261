"""A window that never leaves the user guessing, driven through the real window (offscreen, the
tiny random model): undo never loses work (a property test over random action sequences), the
question box is not a trap, labeling keys work wherever focus is, names are plain text, and the
progress texts agree. No clocks."""
from __future__ import annotations

import math
import random
import re
import sqlite3

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QPushButton

from app import menus
from engine.cli.checks import MAX_QUESTION_CHARS
from test_app import wait_scored
from test_app_window import CTRL, Q1, Q2, docs, scored

Q3 = "Is this written to a customer?"
NAMES = [Q1, Q2, Q3, "Does it mention a date?", "Is it short?"]
SEQUENCES = 200


@pytest.fixture(autouse=True)
def own_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("VERDICT_DATA_DIR", str(tmp_path / "verdict-data"))


def _score(verdict) -> float:
    """What the model said, whatever calibrator is applied on top."""
    return verdict.margin if math.isnan(verdict.raw_margin) else verdict.raw_margin


def session_state(window) -> tuple:
    """Everything the user's work consists of: questions, the active one, and per document (in
    table order) its name, labels and the model's answers."""
    rows = tuple((r.name, tuple(sorted(r.labels.items())),
                  tuple(sorted((q, _score(v)) for q, v in r.verdicts.items()))) for r in window.results.rows)
    return (tuple(window.results.questions), window.results.active_question,
            tuple(window.question_bar.questions), rows)


def saved_state(window) -> tuple:
    """The same, as the session database holds it (what a relaunch shows)."""
    with sqlite3.connect(window.store.path) as db:
        names = dict(db.execute("SELECT key, name FROM documents"))
        labels = sorted((names[k], q, lab) for k, q, lab in db.execute("SELECT doc_key, question, label FROM labels"))
    stored = window.store.load()
    return tuple(stored.questions), stored.active_question, labels


def _rename(window, rng) -> None:
    bar = window.question_bar
    if bar.questions:  # to another text (the same text again is Ask Again, which changes nothing)
        bar.editor.setPlainText(rng.choice([q for q in NAMES if q != bar.questions[bar.active]]))
        bar.submit()  # the Ask button: the explicit way


def _add(window, rng) -> None:
    new = [q for q in NAMES if q not in window.question_bar.questions]
    if new:
        window.question_bar.add_question()
        window.question_bar.ask(rng.choice(new))


def _close(window, rng) -> None:
    if window.question_bar.questions:
        window.question_bar.remove_question(rng.randrange(len(window.question_bar.questions)))


def _label(window, rng) -> None:
    rows, questions = window.results.rows, window.results.questions
    if rows and questions:
        window.set_label(rng.choice(rows).key, rng.choice(questions), rng.choice(["yes", "no", None]))


def _remove(window, rng) -> None:
    if window.results.rows:
        window.select_keys([rng.choice(window.results.rows).key])
        window.remove_selected()


def _undo(window, rng) -> None:
    window.undo_action.trigger()


def _redo(window, rng) -> None:
    window.redo_action.trigger()


ACTIONS = [_rename, _rename, _add, _close, _label, _label, _label, _remove, _undo, _redo]


def test_undo_all_of_any_sequence_restores_the_session(qtbot, make_window):
    window = scored(qtbot, make_window, n=4, questions=(Q1, Q2))
    for row, label in zip(window.results.rows, ("yes", "no", "yes")):
        window.set_label(row.key, Q1, label)
    stack = window.session.undo_stack
    stack.clear()
    start, start_saved = session_state(window), saved_state(window)
    rng = random.Random(23)
    for sequence in range(SEQUENCES):
        steps = [rng.choice(ACTIONS) for _ in range(rng.randint(1, 6))]
        for step in steps:
            step(window, rng)
            if rng.random() < 0.3:
                QApplication.processEvents()  # let answers and refits of the edits land now and then
        while stack.canUndo():
            window.undo_action.trigger()
        assert session_state(window) == start, f"sequence {sequence}: {[s.__name__ for s in steps]}"
        if sequence % 25 == 0:
            assert saved_state(window) == start_saved, f"sequence {sequence}"
    wait_scored(qtbot, window, 4)  # late answers to undone edits are dropped, not shown
    assert session_state(window) == start and saved_state(window) == start_saved


def test_undo_of_a_rename_comes_before_an_earlier_close(qtbot, make_window):
    window = scored(qtbot, make_window, questions=(Q1, Q2, Q3))
    window.set_label(window.results.rows[0].key, Q2, "yes")
    before = session_state(window)
    window.question_bar.remove_question(2)  # close Q3
    window.select_question(1)
    editor = window.question_bar.editor
    editor.setFocus()
    editor.selectAll()
    qtbot.keyClicks(editor, "Is this about baking?")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.keyClick(editor, Qt.Key.Key_Return)  # confirms "Ask again?"
    assert window.results.questions == [Q1, "Is this about baking?"]
    assert window.undo_action.text() == "Undo Edit Question"
    qtbot.keyClick(window, Qt.Key.Key_Z, CTRL)
    assert window.results.questions == [Q1, Q2] and window.question_bar.questions == [Q1, Q2]
    assert window.results.rows[0].labels == {Q2: "yes"}
    assert all(Q2 in r.verdicts and not r.stale for r in window.results.rows)  # every answer back, current
    qtbot.keyClick(window, Qt.Key.Key_Z, CTRL)
    assert session_state(window) == before


# --- the question box -------------------------------------------------------------------------------
def test_the_question_box_is_not_focused_at_launch(qtbot, make_window):
    window = make_window()
    assert QApplication.focusWidget() is not window.question_bar.editor
    window.question_bar.ask(Q1)
    window.add_documents(docs(2))
    window.close()
    again = make_window()
    assert QApplication.focusWidget() is not again.question_bar.editor


def test_pasting_a_document_into_the_question_box_adds_a_document(qtbot, make_window):
    window = scored(qtbot, make_window, n=2)
    editor = window.question_bar.editor
    editor.setFocus()
    editor.clear()
    letter = "Dear customer,\nyour invoice 1432 of $120 is overdue.\nPlease pay by Friday."
    QGuiApplication.clipboard().setText(letter)
    qtbot.keyClick(editor, Qt.Key.Key_V, CTRL)
    assert editor.toPlainText() == ""
    assert len(window.results.rows) == 3 and window.results.rows[-1].document.text == letter
    assert "Pasted as a new document" in window.status.currentMessage()
    QGuiApplication.clipboard().setText("x" * 2000)  # one long line is a document too
    qtbot.keyClick(editor, Qt.Key.Key_V, CTRL)
    assert editor.toPlainText() == "" and len(window.results.rows) == 4
    QGuiApplication.clipboard().setText("Is this overdue?")  # a sentence goes into the question
    qtbot.keyClick(editor, Qt.Key.Key_V, CTRL)
    assert editor.toPlainText() == "Is this overdue?" and len(window.results.rows) == 4


def test_return_on_an_edited_question_asks_before_rescoring(qtbot, make_window):
    window = scored(qtbot, make_window, n=3)
    sent = []
    original = window.controller.score
    window.controller.score = lambda keys, d, questions: sent.append(list(questions)) or original(keys, d, questions)
    editor = window.question_bar.editor
    editor.setFocus()
    qtbot.keyClick(editor, Qt.Key.Key_Return)  # unchanged: nothing is scored again
    assert sent == [] and "Ask Again" in window.status.currentMessage()
    editor.selectAll()
    qtbot.keyClicks(editor, Q2)
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    assert sent == [] and window.results.questions == [Q1]
    assert "again" in window.status.currentMessage() and window.question_bar.ask_button.text() == "Ask Again?"
    qtbot.keyClicks(editor, " ")  # typing on withdraws the question
    assert window.question_bar.ask_button.text() == "Ask"
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    assert sent == []
    qtbot.mouseClick(window.question_bar.ask_button, Qt.MouseButton.LeftButton)  # the Ask button asks at once
    assert window.results.questions == [Q2] and sent == [[Q2]]
    assert window.question_bar.ask_button.text() == "Ask"


def test_a_question_longer_than_the_cli_allows_is_refused(qtbot, make_window):
    window = scored(qtbot, make_window, n=2)
    window.question_bar.add_question()
    long_question = "Does this document " + "really " * (MAX_QUESTION_CHARS // 7) + "ask for money?"
    assert len(long_question) > MAX_QUESTION_CHARS
    window.question_bar.editor.setPlainText(long_question)
    window.question_bar.submit()
    assert window.results.questions == [Q1] and not window.controller.busy
    message = window.status.currentMessage()
    assert f"{len(long_question):,} characters" in message and f"{MAX_QUESTION_CHARS:,}" in message
    assert window.question_bar.editor.toPlainText() == long_question  # nothing lost: the user shortens it


# --- keys and the row menu -------------------------------------------------------------------------------
# What Qt's standard keys become on the platforms Verdict runs on (Qt's qplatformtheme.cpp key
# bindings for Windows, macOS, X11 and KDE, as PortableText): the test machine only shows its own.
STANDARD_ELSEWHERE = {
    "undo_action": ["Ctrl+Z", "Alt+Backspace"],
    "redo_action": ["Ctrl+Y", "Ctrl+Shift+Z", "Alt+Shift+Backspace"],
    "close_action": ["Ctrl+W", "Ctrl+F4"],
    "quit_action": ["Ctrl+Q"],
    "copy_action": ["Ctrl+C", "Ctrl+Ins"],
    "paste_action": ["Ctrl+V", "Shift+Ins"],
    "find_action": ["Ctrl+F"],
    "help_action": ["F1", "Ctrl+?"],
    "remove_action": ["Del", "Meta+D"],
    "select_all_action": ["Ctrl+A"],
    "new_session_action": ["Ctrl+N"],
    "add_files_action": ["Ctrl+O"],
    "cancel_action": ["Esc", "Ctrl+."],
}


def key_map(window) -> dict[str, list[str]]:
    """Every key sequence of the window's actions and shortcuts, on any platform -> who takes it."""
    from PySide6.QtGui import QAction, QKeySequence, QShortcut

    owners: dict[int, str] = {id(getattr(window, name)): name for name in STANDARD_ELSEWHERE}
    taken: dict[str, set] = {}
    for action in {id(a): a for a in window.findChildren(QAction)}.values():
        who = owners.get(id(action), action.text())
        keys = {k.toString(QKeySequence.SequenceFormat.PortableText) for k in action.shortcuts()}
        keys |= set(STANDARD_ELSEWHERE.get(who, ()))
        for key in keys:
            taken.setdefault(key, set()).add(who)
    for shortcut in window.findChildren(QShortcut):
        for k in shortcut.keys():
            taken.setdefault(k.toString(QKeySequence.SequenceFormat.PortableText), set()).add(f"shortcut {k}")
    return {key: sorted(who) for key, who in taken.items() if key}


def test_no_two_commands_share_a_key_on_any_platform(qtbot, make_window):
    window = make_window()
    taken = key_map(window)
    assert "Ctrl+Y" in taken and "Y" in taken and "N" in taken and "U" in taken  # the map is the real one
    clashes = {key: who for key, who in taken.items() if len(who) > 1}
    assert clashes == {}


def test_labeling_keys_work_after_clicking_the_panes_buttons(qtbot, make_window):
    window = scored(qtbot, make_window, n=4)
    first = window.results.rows[0]
    window.select_keys([first.key])
    yes = next(b for b in window.detail.findChildren(QPushButton, "LabelYes") if b.isVisible())
    qtbot.mouseClick(yes, Qt.MouseButton.LeftButton)
    assert first.labels == {Q1: "yes"}
    focus = QApplication.focusWidget()
    assert focus is not None and focus.window() is window  # the keys have somewhere to go
    qtbot.keyClick(focus, Qt.Key.Key_N)  # Label No, wherever the focus went
    assert first.labels == {Q1: "no"}


def test_rows_have_a_context_menu(qtbot, make_window):
    from PySide6.QtGui import QContextMenuEvent

    window = scored(qtbot, make_window, n=3)
    second = window.results.rows[1]
    window.select_keys([window.results.rows[0].key])
    viewport = window.table.viewport()
    where = window.table.visualRect(window.table.model().index(1, 0)).center()
    QApplication.sendEvent(viewport, QContextMenuEvent(QContextMenuEvent.Reason.Mouse, where,
                                                       viewport.mapToGlobal(where)))
    popup = QApplication.activePopupWidget()
    assert popup is not None and window.selected_keys() == [second.key]  # the row under the pointer
    popup.close()
    menu = menus.row_menu(window)
    texts = [a.text() for a in menu.actions() if not a.isSeparator()]
    for wanted in ("Label Yes", "Label No", "Open", "Copy Rows", "Remove Selected Documents"):
        assert wanted in texts
    assert any(t.startswith("Show in") for t in texts)
    next(a for a in menu.actions() if a.text() == "Label Yes").trigger()
    assert second.labels == {Q1: "yes"}
    next(a for a in menu.actions() if a.text() == "Copy Rows").trigger()
    assert QGuiApplication.clipboard().text().splitlines()[1].startswith(second.name)
    next(a for a in menu.actions() if a.text() == "Remove Selected Documents").trigger()
    assert second.name not in [r.name for r in window.results.rows]


# --- plain text for names ---------------------------------------------------------------------------------
def shown_text(label) -> str:
    """What a QLabel shows: its markup rendered, or its text as it is."""
    from PySide6.QtGui import Qt as QtGui, QTextDocument

    rich = label.textFormat() == Qt.TextFormat.RichText or (
        label.textFormat() == Qt.TextFormat.AutoText and QtGui.mightBeRichText(label.text()))
    if not rich:
        return label.text()
    document = QTextDocument()
    document.setHtml(label.text())
    return document.toPlainText()


def test_names_are_plain_text_everywhere(qtbot, make_window, tmp_path):
    from PySide6.QtWidgets import QLabel

    folder = tmp_path / "odd names"
    folder.mkdir()
    names = ["Sam's invoice.txt", 'The "final" <b>offer & terms.txt']
    for name in names:
        (folder / name).write_text("Please pay invoice 1432 of $120 by Friday.", encoding="utf-8")
    window = make_window()
    window.question_bar.ask(Q1)
    window.add_paths([folder])
    wait_scored(qtbot, window, 2)
    shown_names = sorted(str(window.results.data(window.results.index(n, 0))) for n in range(2))
    assert [shown.endswith(name) for shown, name in zip(shown_names, sorted(names))] == [True, True]
    for row in window.results.rows:
        window.select_keys([row.key])
        shown = [shown_text(label) for label in window.findChildren(QLabel) if label.isVisibleTo(window)]
        assert row.name in shown  # the name, as it is
        assert any(str(folder / row.name) == text for text in shown)  # the path too
        assert not [t for t in shown if "&#x27;" in t or "&quot;" in t or "&amp;" in t or "&lt;" in t]


def test_copied_rows_keep_labels_and_numbers(qtbot, make_window):
    window = scored(qtbot, make_window, n=3)
    window.column_actions["Margin"].setChecked(True)
    first = window.results.rows[0]
    window.set_label(first.key, Q1, "yes")
    window.select_keys([r.key for r in window.results.rows])
    window.copy_selected()
    lines = [line.split("\t") for line in QGuiApplication.clipboard().text().splitlines()]
    header, cells = lines[0], lines[1]
    assert header[-1] == f"Your label: {Q1}" and cells[-1] == "yes" and lines[2][-1] == ""
    margin = cells[header.index(next(h for h in header if h.startswith("Margin")))]
    assert not margin.startswith("'") and float(margin) == pytest.approx(first.verdicts[Q1].margin, abs=0.01)


# --- one source for progress texts ------------------------------------------------------------------------
def test_progress_texts_agree_during_a_run(qtbot, make_window, tmp_path):
    from app.table_model import STATUS_TEXT
    from test_app import write_docs

    window = scored(qtbot, make_window, n=2)
    window.add_paths(write_docs(tmp_path / "more", 30, text=lambda i: f"Report {i}. " + "All is well here. " * 30))
    wait_scored(qtbot, window, 32)
    assert window.status.currentMessage().startswith("32 of 32 documents scored")
    status_column = next(c for c in range(window.results.columnCount())
                         if window.results.headerData(c, Qt.Orientation.Horizontal) == "Status")
    window.select_keys([window.results.rows[-1].key])
    checks = []

    def check(*_args) -> None:
        row = window.results.row_for_key(window.detail.key)
        pane = window.detail.status.text().split(" · ")[0]
        cell = window.results.data(window.results.index(window.results.row_number(row.key), status_column))
        left = window.status.currentMessage()
        busy = window.controller.busy
        checks.append((pane, cell, STATUS_TEXT[row.status], left if busy else "", window.status.progress_label.text()))

    window.controller.rowsScoring.connect(check)
    window.controller.progressChanged.connect(check)
    window.controller.verdictArrived.connect(check)
    qtbot.keyClick(window, Qt.Key.Key_R, CTRL)  # Ask Again: every document again
    assert window.status.currentMessage() == ""  # the last run's "32 of 32 scored" is gone
    wait_scored(qtbot, window, 32)
    assert {"Queued", "Scoring…", "Done"} <= {pane for pane, *_ in checks}  # the shown row went through each
    for pane, cell, status, left, right in checks:
        assert pane == cell == status  # the pane says what the row says
        assert "scored" not in left  # while it runs, only the right speaks of progress
        assert not re.search(r"(?<![\d.])0\.0 documents/s", right)
    from app.status_area import rate_text

    summary = window.status.currentMessage()
    assert summary.startswith("32 of 32 documents scored") and rate_text(window.status.rate) in summary
    assert rate_text(0.02) == "50 s per document" and rate_text(0) == ""


def test_labeling_keys_work_wherever_focus_is(qtbot, make_window):
    from PySide6.QtWidgets import QAbstractSpinBox, QLineEdit, QPlainTextEdit, QTextEdit, QWidget

    window = scored(qtbot, make_window, n=4)
    first = window.results.rows[0]
    window.select_keys([first.key])

    def typing_field(widget) -> bool:  # a field the user types into keeps its letters
        if isinstance(widget, (QLineEdit, QAbstractSpinBox)):
            return not widget.isReadOnly() if isinstance(widget, QLineEdit) else True
        return isinstance(widget, (QPlainTextEdit, QTextEdit)) and not widget.isReadOnly()

    places = [w for w in window.findChildren(QWidget) if w.isVisible() and w.focusPolicy() != Qt.FocusPolicy.NoFocus
              and not typing_field(w)]
    assert window.detail.text in places and window.table in places  # the document's text, read-only, too
    missed = []
    for widget in places:
        window.select_keys([first.key])
        widget.setFocus()
        before = first.labels.get(Q1)
        qtbot.keyClick(QApplication.focusWidget() or window, Qt.Key.Key_N)
        if first.labels.get(Q1) == before:
            missed.append(type(widget).__name__ + ":" + widget.objectName())
        window.set_label(first.key, Q1, None)
    assert missed == []
