"""The window's layout holds at the sizes people use, Details open and closed (each text widget's
required size against its given size, not screenshots); a relaunch comes back sorted and selected
as it was; space opens and closes Quick Look. Driven through the real window, offscreen."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QDialog

from app.window import DETAIL_MIN_WIDTH, SIDE_BY_SIDE_WIDTH
from layout_check import clipped_texts
from test_app import wait_scored
from test_app_window import Q1, long_names_scored, scored

SIZES = [(720, 480), (1024, 700), (1280, 800), (1440, 900)]


@pytest.fixture(autouse=True)
def own_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("VERDICT_DATA_DIR", str(tmp_path / "verdict-data"))


def test_no_text_is_clipped_at_any_size_with_details_open_or_closed(qtbot, make_window):
    window = long_names_scored(qtbot, make_window)
    window.select_keys([window.results.rows[1].key])
    found = {}
    for size in SIZES:
        for details in (False, True):
            for result in window.detail.results():
                result.details_button.setChecked(details)
            window.resize(*size)
            qtbot.waitUntil(lambda size=size: (window.width(), window.height()) == size)
            # the splitter settles a few event-loop turns after a resize: wait for no clipping, then read it
            for _ in range(50):
                if not clipped_texts(window):
                    break
                qtbot.wait(100)
            found[size, details] = clipped_texts(window)
            side_by_side = window.splitter.orientation() == Qt.Orientation.Horizontal
            assert side_by_side == (size[0] >= SIDE_BY_SIDE_WIDTH)
            # the pane is never a sliver: its minimum beside the table, the window's width below it
            assert window.detail.width() >= (DETAIL_MIN_WIDTH if side_by_side else size[0] - 4), (size, details)
            # nothing above the table is squeezed below what it needs (wrapped bars included)
            assert window.table_area.height() >= window.table_area.minimumSizeHint().height(), (size, details)
    assert found == {key: [] for key in found}


def test_clipped_texts_finds_squeezed_and_cut_texts(qtbot):
    """The measure itself: a label narrower than its text, a wrapped label shorter than its lines,
    a button cut by its parent's edge, and a text box shorter than a line are each reported."""
    from PySide6.QtWidgets import QLabel, QPlainTextEdit, QPushButton, QWidget

    window = QWidget()
    qtbot.addWidget(window)
    window.resize(400, 300)
    narrow = QLabel("A label with more text than room", window)
    narrow.setGeometry(0, 0, 40, 20)
    wrapped = QLabel("A wrapped label " * 8, window)
    wrapped.setWordWrap(True)
    wrapped.setGeometry(0, 30, 120, 16)
    box = QWidget(window)
    box.setGeometry(0, 100, 100, 40)
    cut = QPushButton("OK", box)
    cut.setGeometry(70, 0, cut.sizeHint().width(), cut.sizeHint().height())
    editor = QPlainTextEdit("text", window)
    editor.setGeometry(0, 200, 200, 8)
    fine = QLabel("Fits", window)
    fine.setGeometry(200, 0, 150, 30)
    window.show()
    qtbot.waitExposed(window)
    found = clipped_texts(window)
    assert len(found) == 4, found
    assert [any(what in f for f in found) for what in ("more text", "A wrapped", "'OK'", "QPlainTextEdit")] == [True] * 4
    assert not any("Fits" in f for f in found)


def test_relaunch_restores_sort_order_and_selection(qtbot, make_window):
    window = scored(qtbot, make_window, n=6)
    window.table.sortByColumn(0, Qt.SortOrder.DescendingOrder)
    shown = [window.table.key_at(r) for r in range(window.proxy.rowCount())]
    assert shown != sorted(shown)  # the sort changed the order
    picked = [shown[1], shown[3]]
    window.select_keys(picked)
    window.close()

    again = make_window()
    header = again.table.horizontalHeader()
    assert (header.sortIndicatorSection(), header.sortIndicatorOrder()) == (0, Qt.SortOrder.DescendingOrder)
    assert [again.table.key_at(r) for r in range(again.proxy.rowCount())] == shown
    assert again.selected_keys() == picked
    assert again.detail.key == picked[0]
    again.close()

    third = make_window()  # unsorted and nothing selected is restored too
    third.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
    third.table.clearSelection()
    third.close()
    fourth = make_window()
    assert fourth.table.horizontalHeader().sortIndicatorSection() == -1 and fourth.selected_keys() == []


def test_space_opens_and_closes_quick_look(qtbot, make_window):
    window = scored(qtbot, make_window, n=2)
    window.select_keys([window.results.rows[0].key])
    window.table.setFocus()

    def previews() -> list[QDialog]:
        return [w for w in QApplication.topLevelWidgets() if w.objectName() == "QuickLook" and w.isVisible()]

    qtbot.keyClick(window.table, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: len(previews()) == 1)
    assert previews()[0].windowTitle() == window.results.rows[0].name
    qtbot.keyClick(window.table, Qt.Key.Key_Space)  # from the table
    qtbot.waitUntil(lambda: not previews())
    qtbot.keyClick(window.table, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: len(previews()) == 1)
    preview = previews()[0]
    preview.activateWindow()
    qtbot.keyClick(preview.findChild(QDialog) or preview, Qt.Key.Key_Space)  # from the preview itself
    qtbot.waitUntil(lambda: not previews())


def test_rows_drag_out_as_their_files(qtbot, make_window, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    files = []
    for i in range(3):
        path = folder / f"note {i}.txt"
        path.write_text(f"Note {i}: please pay invoice {i} by Friday.", encoding="utf-8")
        files.append(path)
    window = make_window()
    window.question_bar.add_question()
    window.question_bar.ask(Q1)
    window.add_paths(files)
    window.add_text("A pasted note with no file behind it.\nSecond line.")
    wait_scored(qtbot, window, 4)
    by_name = {r.name: r.key for r in window.results.rows}
    pasted = next(k for name, k in by_name.items() if not name.startswith("note "))
    keys = [by_name["note 0.txt"], by_name["note 2.txt"], pasted]
    window.select_keys(keys)
    assert bool(window.table.model().flags(window.table.currentIndex()) & Qt.ItemFlag.ItemIsDragEnabled)
    mime = window.table.drag_data(window.selected_keys())
    # one URL per row from a file (a real path that exists), none for the pasted text
    assert sorted(u.toLocalFile() for u in mime.urls()) == sorted(str(files[n]) for n in (0, 2))
    assert all(u.isLocalFile() and (tmp_path / "docs" / u.fileName()).exists() for u in mime.urls())
    lines = mime.text().splitlines()
    assert len(lines) == 4 and "note 0.txt" in mime.text() and "note 1.txt" not in mime.text()
