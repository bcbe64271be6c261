"""A long document scored alone says how far into it scoring is, in its row, in the detail pane
and in the status bar, all from the same words (`app.status_area.parts_text`)."""
from __future__ import annotations

from app.table_model import DONE, status_text
from test_app import Q1, wait_scored

LONG = "Chapter one. " + " ".join(f"Sentence number {i} talks about the weather." for i in range(400))


def test_the_parts_of_a_long_document_are_counted_in_the_row_pane_and_status_bar(qtbot, make_window):
    window = make_window()
    window.question_bar.ask(Q1)
    seen = []  # (parts read, of, the row's status text, its verdict cell, the status bar, the pane)

    def on_parts(key: int, done: int, total: int) -> None:  # connected after the window's own slots
        row = window.results.row_for_key(key)
        cell = window.results.index(window.results.row_number(key), window.results.question_column(0)).data()
        window.select_keys([key])
        seen.append((done, total, status_text(row), cell, window.status.progress_label.text(),
                     window.detail.status.text()))

    window.controller.documentParts.connect(on_parts)
    key = window.add_text(LONG)
    wait_scored(qtbot, window, 1)
    row = window.results.row_for_key(key)
    windows = row.verdicts[Q1].windows
    assert windows > 1  # the tiny model's 512-token context cuts it into parts
    reading = [s for s in seen if s[1]]
    assert reading and all(total == windows for _, total, *_ in reading)
    assert [done for done, *_ in reading] == sorted(done for done, *_ in reading)  # never backwards
    assert reading[0][0] == 0 and reading[-1][0] == windows  # from "0 of N" (cut) to all read
    done, total, status, cell, bar, pane = reading[1]
    assert status == f"Scoring… {done} of {total} parts read"
    assert cell == f"{done} of {total} parts read"
    assert f"{done} of {total} parts read" in bar and "0 of 1 scored" in bar
    assert pane.startswith(status)
    assert seen[-1][:2] == (0, 0)  # the verdict ends it
    assert row.status == DONE and status_text(row) == "Done"
    assert "parts read" not in window.status.progress_label.text()
