"""A model without a general probe: the window offers to fit one, fits it on the scoring thread
with progress and Cancel, then scores again with it (labels kept) and says how well it ranks the
held-out genres; a cancelled fit leaves no probe and the window goes on scoring. Headless; the
tiny random model and a few documents per genre of the corpus; no clocks."""
from __future__ import annotations

import json
import re

import pytest
from PySide6.QtCore import Qt

from app import general_probe
from app.table_model import DONE, QUEUED
from engine.types import Document
from test_app import wait_scored

Q = "Does this document ask for a payment?"


@pytest.fixture(autouse=True)
def own_data_dir(tmp_path, monkeypatch):
    """Probes fitted by this test only, and none shipped for the tiny model."""
    monkeypatch.setenv("VERDICT_DATA_DIR", str(tmp_path / "verdict-data"))
    monkeypatch.setenv("VERDICT_GENERAL_PROBES", str(tmp_path / "none-shipped"))
    return tmp_path / "verdict-data" / "general_probes"


def docs(n: int, start: int = 0) -> list[tuple[str, Document]]:
    return [(f"doc-{i}", Document(id=f"doc-{i}", text=f"Invoice {i}: please pay ${100 + i} by Friday."
                                  if i % 2 else f"Recipe {i}: rub butter into flour."))
            for i in range(start, start + n)]


def click(qtbot, button) -> None:
    assert button.isVisible() and button.isEnabled()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_the_offer_fits_a_probe_that_the_window_then_scores_with(qtbot, make_window, monkeypatch, own_data_dir,
                                                                   dialog_calls, tiny_model_dir, tmp_path):
    monkeypatch.setattr(general_probe, "GENERAL_FIT_DOCUMENTS", 3)
    window = make_window()
    bar = window.general_bar
    assert bar.isVisible() and bar.fit_button.isVisible() and window.fit_general_action.isEnabled()
    assert "has no general probe" in bar.label.text() and "minutes to an hour" in bar.label.text()
    window.question_bar.ask(Q)
    window.add_documents(docs(4))
    wait_scored(qtbot, window, 4)
    labeled = window.results.rows[1].key
    window.set_label(labeled, Q, "yes")
    qtbot.waitUntil(lambda: "at this session's speed" in bar.label.text())  # the speed is known now
    assert "186 questions about 24 documents" in bar.label.text()  # 3 documents of each of 8 genres
    raw = {r.key: r.verdicts[Q].raw_margin for r in window.results.rows}

    click(qtbot, bar.fit_button)
    assert bar.cancel_button.isVisible() and bar.progress.isVisible() and not bar.fit_button.isVisible()
    assert not window.fit_general_action.isEnabled()
    assert "scored when it ends" in bar.label.text()
    qtbot.waitUntil(lambda: bar.dismiss_button.isVisible(), timeout=300_000)
    assert bar.progress.value() == bar.progress.maximum() == 186
    qtbot.waitUntil(lambda: not window.controller.loading, timeout=180_000)  # loaded again, with the probe
    wait_scored(qtbot, window, 4)

    saved = list(own_data_dir.glob("*.json"))
    assert len(saved) == 1  # the probe, in the data folder, under the model's fingerprint
    meta = json.loads(saved[0].read_text())
    shown = re.search(r"AUC (\S+), the model's own yes or no (\S+)\.", bar.label.text())
    assert shown and shown.groups() == (f"{meta['heldout_auc']:.2f}", f"{meta['heldout_auc_margin']:.2f}")
    assert not bar.fit_button.isVisible() and not window.fit_general_action.isEnabled()  # nothing left to offer
    assert not window.controller.needs_general
    cal = window.controller.calibrators[Q]
    assert cal.general is not None and cal.general.heldout_auc == pytest.approx(meta["heldout_auc"])  # picked up
    # it ranks before labels only where it beat the model's own answer (a random tiny model: by chance)
    used = meta["heldout_auc"] > meta["heldout_auc_margin"]
    assert ("scored again with it" in bar.label.text()) == used and ("still ranks" in bar.label.text()) != used
    # scored again as the engine scores with the probe found in the data folder (a fresh classifier)
    from engine import Classifier
    from engine.pipeline import Pipeline

    rows = window.results.rows
    expected = Pipeline(Classifier.load(tiny_model_dir), save=False, folder=tmp_path / "elsewhere").run(
        Q, [r.document for r in rows])
    for row, verdict in zip(rows, expected):
        got = row.verdicts[Q]
        assert row.status == DONE and got.raw_margin == pytest.approx(raw[row.key], abs=1e-3)
        assert got.score == pytest.approx(verdict.score, abs=1e-3)
        assert (got.score != pytest.approx(got.raw_margin, abs=1e-6)) == used
    assert window.results.row_for_key(labeled).labels == {Q: "yes"}
    click(qtbot, bar.dismiss_button)
    assert not bar.isVisible()
    window.add_documents(docs(1, start=10))
    wait_scored(qtbot, window, 5)
    assert not bar.isVisible()  # read once: the end of a later run does not bring it back
    assert not dialog_calls

    window.close()
    again = make_window()  # a relaunch finds the probe: no offer
    assert not again.controller.needs_general and not again.general_bar.isVisible()


def test_cancel_leaves_no_probe_and_scoring_asked_for_meanwhile_runs_after(qtbot, make_window, monkeypatch,
                                                                           own_data_dir, dialog_calls):
    monkeypatch.setattr(general_probe, "GENERAL_FIT_DOCUMENTS", 0)  # the whole corpus: it is stopped long before
    window = make_window()
    bar = window.general_bar
    window.question_bar.ask(Q)
    window.fit_general_action.trigger()
    qtbot.waitUntil(lambda: bar.progress.value() > 0, timeout=300_000)
    assert "of 14,723 questions answered" in bar.label.text()
    window.add_documents(docs(2))  # waits behind the fit (one scoring thread)
    assert {r.status for r in window.results.rows} == {QUEUED}
    click(qtbot, bar.cancel_button)
    assert "Stopping" in bar.label.text()
    qtbot.waitUntil(lambda: bar.fit_button.isVisible(), timeout=300_000)
    assert "Fitting stopped" in bar.label.text() and "has no general probe" in bar.label.text()
    wait_scored(qtbot, window, 2)
    assert all(r.status == DONE for r in window.results.rows)
    assert not list(own_data_dir.glob("*")) and window.controller.needs_general
    assert window.fit_general_action.isEnabled() and not dialog_calls


def test_closing_the_window_stops_the_fit(qtbot, make_window, monkeypatch, own_data_dir):
    """Closing waits for the scoring thread: a fit still running is cancelled first, not finished."""
    monkeypatch.setattr(general_probe, "GENERAL_FIT_DOCUMENTS", 0)
    window = make_window()
    window.fit_general_probe()
    qtbot.waitUntil(lambda: window.general_bar.progress.value() > 0, timeout=300_000)
    window.close()
    assert not window.controller.thread.isRunning() and not list(own_data_dir.glob("*"))


def test_a_fit_that_fails_says_why_in_one_sentence_and_loses_nothing(qtbot, make_window, monkeypatch,
                                                                      own_data_dir, dialog_calls):
    monkeypatch.setattr(general_probe, "GENERAL_FIT_DOCUMENTS", 1)  # no question has both answers: nothing to fit
    window = make_window()
    bar = window.general_bar
    window.question_bar.ask(Q)
    window.add_documents(docs(2))
    wait_scored(qtbot, window, 2)
    window.set_label(window.results.rows[0].key, Q, "no")
    before = {r.key: r.verdicts[Q] for r in window.results.rows}
    click(qtbot, bar.fit_button)
    qtbot.waitUntil(lambda: not window.controller.fitting_general, timeout=300_000)
    text = bar.label.text()
    assert text.split(". ")[0] == ("Could not fit a general probe: too few documents: no question has both a yes "
                                   "and a no among them")  # one sentence, then the offer again
    assert "has no general probe" in text
    assert bar.fit_button.isVisible() and window.fit_general_action.isEnabled()  # it can be tried again
    assert {r.key: r.verdicts[Q] for r in window.results.rows} == before and window.results.rows[0].labels == {Q: "no"}
    assert not list(own_data_dir.glob("*")) and not dialog_calls
