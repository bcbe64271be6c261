"""The command line's one progress bar (engine.cli.output.Progress, tqdm underneath)."""
from __future__ import annotations

import io
import os

from engine.cli.output import Progress
from terminal import on_a_terminal


def test_rows_move_the_bar_a_document_at_a_time():
    def draw(fd):
        with os.fdopen(os.dup(fd), "w") as stream:
            show(stream)

    def show(stream):
        bar = Progress(3 * 2, stream, per_document=2)  # three documents, two questions each
        for _ in range(5):
            bar.step()
        assert bar.bar.n == 2  # the third document has one row of two
        bar.step()
        bar.close()

    shown = on_a_terminal(draw)
    assert "100%" in shown and "3/3" in shown and "docs/s" in shown


def test_nothing_is_drawn_where_stderr_is_no_terminal():
    stream = io.StringIO()
    bar = Progress(4, stream)
    for _ in range(4):
        bar.step()
    bar.close()
    assert stream.getvalue() == "" and not bar.enabled
