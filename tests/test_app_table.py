"""A table dropped on the window: the column dialog asks once which column holds the text,
previewing the first rows, and each row becomes a document. Headless (offscreen), the tiny model."""
from __future__ import annotations

import csv

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

from app import dialogs
from app.table_dialog import TableColumnsDialog
from app.table_export import source_tables
from test_app import Q1, drop, wait_scored

TICKETS = [
    ("T-1", "Refund", "The blender broke after two days. Please send my money back."),
    ("T-2", "Thanks", "The new recipe book is lovely, thank you for the quick delivery."),
    ("T-3", "Invoice", "Invoice 2231 of $120 is still unpaid; please pay it by Friday."),
]


def _open_dialog():
    return next((w for w in QApplication.topLevelWidgets() if isinstance(w, TableColumnsDialog) and w.isVisible()),
                None)


def _answer_the_dialog(qtbot, seen: dict, tries: int = 500) -> None:
    """Once the column dialog is open: note what it shows, name rows by `id`, read each row."""
    dialog = _open_dialog()
    if dialog is None:
        if tries:
            QTimer.singleShot(20, lambda: _answer_the_dialog(qtbot, seen, tries - 1))
        return
    seen["title"] = dialog.windowTitle()
    seen["header"] = [dialog.preview.horizontalHeaderItem(c).text() for c in range(dialog.preview.columnCount())]
    seen["preview"] = [[dialog.preview.item(r, c).text() for c in range(dialog.preview.columnCount())]
                       for r in range(dialog.preview.rowCount())]
    seen["guessed"] = dialog.text_column.currentText()
    dialog.id_column.setCurrentText("id")
    qtbot.mouseClick(dialog.read_button, Qt.MouseButton.LeftButton)


def test_a_dropped_csv_asks_once_which_column_holds_the_text(qtbot, tmp_path, make_window, monkeypatch):
    window = make_window()
    window.question_bar.ask(Q1)
    path = tmp_path / "tickets.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter=";")
        writer.writerow(["id", "subject", "body"])
        writer.writerows(TICKETS)
    seen: dict = {}
    QTimer.singleShot(0, lambda: _answer_the_dialog(qtbot, seen))
    drop(window.drop_zone, urls=[path])
    assert seen["title"] == "Rows of tickets.csv"
    assert seen["header"] == ["id", "subject", "body"] and seen["preview"] == [list(t) for t in TICKETS]
    assert seen["guessed"] == "body"  # the column with the most text
    wait_scored(qtbot, window, 3)
    rows = window.results.rows
    assert [r.name for r in rows] == ["T-1", "T-2", "T-3"]
    assert [r.document.text for r in rows] == [t[2] for t in TICKETS]
    assert [r.document.meta["passthrough"] for r in rows] == [{"subject": t[1]} for t in TICKETS]
    assert all(r.verdicts[Q1].verdict in ("yes", "no", "uncertain") for r in rows)

    asked = []  # dropped again: the choice is remembered, nothing is asked
    monkeypatch.setattr(dialogs, "choose_table_columns", lambda parent, table: asked.append(table))
    monkeypatch.setattr(dialogs, "keep_duplicates", lambda parent, names: True)
    drop(window.drop_zone, urls=[path])
    wait_scored(qtbot, window, 6)
    assert asked == [] and [r.name for r in window.results.rows[3:]] == ["T-1", "T-2", "T-3"]


def test_cancelling_the_column_dialog_adds_nothing(qtbot, tmp_path, make_window):
    window = make_window()
    path = tmp_path / "notes.tsv"
    path.write_text("note\tauthor\nBuy milk\tana\n", encoding="utf-8")

    def cancel(tries: int = 500) -> None:
        dialog = _open_dialog()
        if dialog is not None:
            dialog.reject()
        elif tries:
            QTimer.singleShot(20, lambda: cancel(tries - 1))

    QTimer.singleShot(0, cancel)
    window.add_paths([path])
    assert window.settings.table_columns(str(path)) is None and not window.loader.busy
    assert window.results.rows == []


def _read(path, delimiter=","):
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh, delimiter=delimiter))


def test_verdict_columns_go_back_into_the_original(qtbot, tmp_path, make_window, monkeypatch):
    """Drop a CSV, label one row, remove one, add the verdict columns to the original: every cell
    of the user's is as it was, every row is there, and the new cells are what the window shows."""
    window = make_window()
    window.question_bar.ask(Q1)
    file_menu = next(a.menu() for a in window.menuBar().actions() if a.text().replace("&", "") == "File")
    assert window.add_columns_action in file_menu.actions()
    assert not window.add_columns_action.isEnabled()  # no table yet
    rows = [("id", "subject", "body")] + [t if t[0] != "T-2" else ("T-2", "=1+1", t[2]) for t in TICKETS]
    path = tmp_path / "tickets.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, delimiter=";").writerows(rows)
    QTimer.singleShot(0, lambda: _answer_the_dialog(qtbot, {}))
    drop(window.drop_zone, urls=[path])
    wait_scored(qtbot, window, 3)
    assert window.add_columns_action.isEnabled()

    first, second, third = window.results.rows
    window.set_label(second.key, Q1, "yes")
    window.session.remove_documents([third.key])  # removed: its row stays, with empty cells
    offered = []
    monkeypatch.setattr(dialogs, "choose_table_output", lambda parent, suggested: offered.append(suggested) or
                        str(tmp_path / "out.csv"))
    window.add_columns_action.trigger()
    assert offered == [str(tmp_path / "tickets-verdicts.csv")]

    written = _read(tmp_path / "out.csv", delimiter=";")  # the original's delimiter
    assert written[0] == list(rows[0]) + [f"{Q1} — verdict", f"{Q1} — probability", f"{Q1} — label"]
    assert [line[:3] for line in written] == [list(r) for r in rows]  # "=1+1" is the user's: not escaped
    for line, row in zip(written[1:3], (first, second)):
        verdict = row.verdicts[Q1]
        assert line[3] == verdict.verdict and float(line[4]) == round(verdict.probability, 4)
    assert [line[5] for line in written[1:]] == ["", "yes", ""]
    assert written[3][3:] == ["", "", ""]

    path.write_text(path.read_text(encoding="utf-8") + "T-4;More;Another ticket\n", encoding="utf-8")
    assert window.add_verdict_columns(source_tables(window.results.rows)[0], tmp_path / "again.csv") == 0
    assert "tickets.csv has changed since it was added" in window.status.currentMessage()
    assert not (tmp_path / "again.csv").exists()
    path.unlink()
    assert window.add_verdict_columns(source_tables(window.results.rows)[0], tmp_path / "again.csv") == 0
    assert "tickets.csv is no longer at" in window.status.currentMessage()
    assert not (tmp_path / "again.csv").exists()


def test_with_rows_of_two_tables_the_user_chooses_which_gets_the_columns(qtbot, tmp_path, make_window, monkeypatch):
    window = make_window()
    window.question_bar.ask(Q1)
    paths = []
    for name, tickets in (("march.csv", TICKETS[:2]), ("april.tsv", TICKETS[2:])):
        path = tmp_path / name
        with open(path, "w", encoding="utf-8", newline="") as fh:
            csv.writer(fh, delimiter="\t" if name.endswith(".tsv") else ",").writerows([("id", "subject", "body")]
                                                                                       + tickets)
        paths.append(path)
        QTimer.singleShot(0, lambda: _answer_the_dialog(qtbot, {}))
        drop(window.drop_zone, urls=[path])
    wait_scored(qtbot, window, 3)
    asked, offered = [], []
    monkeypatch.setattr(dialogs, "choose_source_table", lambda parent, names: asked.append(names) or 1)
    monkeypatch.setattr(dialogs, "choose_table_output", lambda parent, suggested: offered.append(suggested) or
                        suggested)
    window.add_columns_action.trigger()
    assert asked == [[str(p) for p in paths]] and offered == [str(tmp_path / "april-verdicts.tsv")]
    written = _read(tmp_path / "april-verdicts.tsv", delimiter="\t")
    assert [line[:3] for line in written] == [["id", "subject", "body"], list(TICKETS[2])]
    assert written[1][3] == window.results.rows[2].verdicts[Q1].verdict
