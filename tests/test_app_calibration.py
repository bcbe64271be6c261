"""Labels in the window feed calibration: 2+ yes and 2+ no labels refit the question's calibrator
on the scoring thread (debounced), the new calibrator is re-applied to the verdicts already in the
table from their raw margins and kept hidden states (no rescoring), the detail pane says which
calibrator is in use and how good it is, and a relaunch keeps the calibrated verdicts."""
from __future__ import annotations

import math
import sqlite3
import threading

import numpy as np
import pytest
from PySide6.QtCore import Qt

from app import session as session_module
from app.table_model import DONE, VerdictRole
from engine.types import Document
from test_app import wait_scored

Q = "Does this document ask for a payment?"


@pytest.fixture(autouse=True)
def own_data_dir(tmp_path, monkeypatch):
    """Saved calibrators of this test only (kept across a relaunch within the test)."""
    monkeypatch.setenv("VERDICT_DATA_DIR", str(tmp_path / "verdict-data"))


@pytest.fixture
def quick_refit(monkeypatch):
    monkeypatch.setattr(session_module, "REFIT_DELAY_MS", 50)


def scored_window(qtbot, make_window, n: int = 4):
    window = make_window()
    window.question_bar.ask(Q)
    pay = [(f"invoice-{i}", f"Invoice {i}: please pay ${100 + i} by Friday.") for i in range(n)]
    food = [(f"recipe-{i}", f"Recipe {i}: rub butter into flour and bake.") for i in range(n)]
    window.add_documents([(name, Document(id=name, text=text)) for name, text in pay + food])
    wait_scored(qtbot, window, 2 * n)
    return window


def key_of(window, name: str) -> int:
    return next(r.key for r in window.results.rows if r.name == name)


def pane_text(window) -> str:
    result = window.detail.results()[0]
    return result.numbers.text() + "\n" + result.numbers.toolTip() + "\n" + result.calibration.text()


def test_labels_refit_the_calibrator_and_verdicts_are_recalibrated_in_place(qtbot, make_window):
    window = scored_window(qtbot, make_window)
    controller = window.controller
    raw = {r.key: r.verdicts[Q] for r in window.results.rows}
    assert all(v.score == v.raw_margin for v in raw.values())  # label-free: the model's margin is the score
    assert all(window.session.states.get((k, Q)) is not None for k in raw)  # states kept in memory, for a probe
    window.select_keys([key_of(window, "invoice-0")])
    assert "No labels yet" in pane_text(window)

    refits, scores = [], []
    original_refit, original_score = controller.refit, controller.score
    controller.refit = lambda *a: refits.append(a[0]) or original_refit(*a)
    controller.score = lambda *a: scores.append(a) or original_score(*a)
    finished, fitted_on = [], []
    controller.refitFinished.connect(lambda q, cal: finished.append((q, cal)))
    # the worker's pipeline fits calibrators: record the thread each fit runs on
    pipeline = controller._worker._pipeline
    original_fit = pipeline.fit
    pipeline.fit = lambda *a, **k: fitted_on.append(threading.get_ident()) or original_fit(*a, **k)

    result = window.detail.results()[0]
    qtbot.mouseClick(result.yes_button, Qt.MouseButton.LeftButton)  # the pane's button
    assert "Recalibrating" not in pane_text(window)  # 1 yes, 0 no: not enough
    window.select_keys([key_of(window, "invoice-1")])
    window.table.setFocus()
    qtbot.keyClick(window.table, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier)
    window.select_keys([key_of(window, "recipe-0")])
    qtbot.keyClick(window.table, Qt.Key.Key_N)  # Label No
    window.select_keys([key_of(window, "recipe-1")])
    window.label_no_action.trigger()
    assert {r.name: r.labels.get(Q) for r in window.results.rows if r.labels} == {
        "invoice-0": "yes", "invoice-1": "yes", "recipe-0": "no", "recipe-1": "no"}
    assert "Recalibrating on 4 labels" in pane_text(window)
    with qtbot.waitSignal(controller.refitFinished, timeout=180_000):
        pass
    assert len(refits) == 1 and len(finished) == 1  # debounced: one refit for the burst of four labels
    question, cal = finished[0]
    assert question == Q and cal.n_labels == (2, 2) and cal.method == "probe"
    assert not scores  # re-applied from the kept states: nothing scored again
    # fitted on the scoring thread, never on the GUI's (the direct slot runs there just after the
    # queued one is posted, so the GUI thread can get here first: wait for it)
    qtbot.waitUntil(lambda: bool(fitted_on))
    assert threading.get_ident() not in fitted_on

    for row in window.results.rows:
        v = row.verdicts[Q]
        assert v.raw_margin == raw[row.key].raw_margin and v.label_mass == raw[row.key].label_mass
        assert v.score != v.raw_margin and math.isclose(v.probability, 1 / (1 + math.exp(-v.margin)), rel_tol=1e-6)
        n = window.results.row_number(row.key)
        shown = window.results.index(n, window.results.question_column(0)).data(VerdictRole)
        assert shown == v.verdict in ("yes", "no", "uncertain")
    # the probe separates these labels: the labeled documents come out on their side
    assert window.results.rows[0].verdicts[Q].score > 0 > window.results.rows[4].verdicts[Q].score
    text = pane_text(window)
    assert "Calibrated by a probe on 4 labels (2 yes, 2 no): cross-validated AUC" in text
    assert "raw margin" in text and "label mass" in text
    assert "Recalibrated" in window.statusBar().currentMessage()
    with sqlite3.connect(window.store.path) as db:  # what a relaunch shows
        stored = dict(db.execute("SELECT doc_key, margin FROM verdicts"))
    assert all(math.isclose(stored[r.key], r.verdicts[Q].margin) for r in window.results.rows)

    # a new document is scored through the new calibrator
    window.add_text("Invoice 99: please pay $99 by Monday.")
    wait_scored(qtbot, window, 9)
    new = window.results.rows[-1].verdicts[Q]
    assert new.score != new.raw_margin


def test_labels_of_one_class_do_not_refit_and_the_pane_says_what_is_needed(qtbot, make_window, quick_refit):
    window = scored_window(qtbot, make_window, n=3)
    refits = []
    window.controller.refit = lambda *a: refits.append(a)
    for name in ("invoice-0", "invoice-1", "invoice-2"):
        window.set_label(key_of(window, name), Q, "yes")
    window.select_keys([key_of(window, "invoice-0")])
    qtbot.waitUntil(lambda: not window.refit_pending(Q))  # the debounce ran out
    assert not refits
    text = pane_text(window)
    assert "3 yes and 0 no labels so far: label at least 2 of each to calibrate" in text
    assert all(r.verdicts[Q].score == r.verdicts[Q].raw_margin for r in window.results.rows)


def test_relaunch_keeps_calibrated_verdicts_and_the_calibrator(qtbot, make_window, quick_refit):
    window = scored_window(qtbot, make_window)
    for name, label in (("invoice-0", "yes"), ("invoice-1", "yes"), ("recipe-0", "no"), ("recipe-1", "no")):
        window.set_label(key_of(window, name), Q, label)
    with qtbot.waitSignal(window.controller.refitFinished, timeout=180_000):
        pass
    before = {r.name: (r.verdicts[Q].verdict, r.verdicts[Q].margin, r.verdicts[Q].raw_margin)
              for r in window.results.rows}
    window.close()

    again = make_window()
    qtbot.waitUntil(lambda: Q in again.controller.calibrators, timeout=180_000)
    after = {r.name: (r.verdicts[Q].verdict, r.verdicts[Q].margin, r.verdicts[Q].raw_margin)
             for r in again.results.rows}
    assert {n: v for n, (v, _, _) in after.items()} == {n: v for n, (v, _, _) in before.items()}
    assert sorted(after) == sorted(before)
    assert [x for n in sorted(after) for x in after[n][1:]] == pytest.approx(
        [x for n in sorted(before) for x in before[n][1:]], abs=1e-9)  # the same sums, perhaps in another order
    assert all(m != raw for _, m, raw in after.values())
    assert all(r.status == DONE for r in again.results.rows)
    cal = again.controller.calibrators[Q]  # loaded by the engine, without labels
    assert cal.method == "probe" and cal.n_labels == (2, 2)
    assert not again.controller.busy and not again.refit_pending(Q)  # same labels: nothing to refit
    again.select_keys([key_of(again, "recipe-3")])
    assert "Calibrated by a probe on 4 labels" in pane_text(again)

    # the hidden states came back from the session database (float16), for the same model
    assert len(again.session.states) == 8
    assert all(again.session.states[(r.key, Q)].dtype == np.float16 for r in again.results.rows)
    # a fifth label after the relaunch recalibrates in place: no scoring job is sent
    jobs = []
    again.controller._worker.chunkStarted.connect(lambda *a: jobs.append(a), Qt.ConnectionType.DirectConnection)
    original_score = again.controller.score
    again.controller.score = lambda *a: jobs.append(a) or original_score(*a)
    again.table.setFocus()
    qtbot.keyClick(again.table, Qt.Key.Key_N)  # Label No, on the selected recipe-3
    assert next(r for r in again.results.rows if r.name == "recipe-3").labels == {Q: "no"}
    with qtbot.waitSignal(again.controller.refitFinished, timeout=180_000):
        pass
    assert not jobs and not again.controller.busy
    assert again.controller.calibrators[Q].n_labels == (2, 3)
    assert "Calibrated by a probe on 5 labels (2 yes, 3 no)" in pane_text(again)
    relabeled = {r.name: r.verdicts[Q].margin for r in again.results.rows}
    assert all(relabeled[n] != raw for n, (_, _, raw) in after.items())
    assert relabeled != {n: m for n, (_, m, _) in after.items()}  # the new calibrator was applied

    # with a different model the stored states are not used: they are the other model's
    again.close()
    with sqlite3.connect(again.store.path) as db:
        assert db.execute("SELECT count(*) FROM states").fetchone()[0] == 8
        db.execute("UPDATE state SET value = 'another model' WHERE name = 'states_model'")
    third = make_window()
    qtbot.waitUntil(lambda: third.session._states_key != "another model", timeout=180_000)
    assert not third.session.states
    with sqlite3.connect(third.store.path) as db:
        assert db.execute("SELECT count(*) FROM states").fetchone()[0] == 0


def test_an_uncertain_verdict_says_which_way_it_leans_when_only_the_label_free_band_held_it_back():
    """Inside the usual band a verdict could go either way; outside it (the general probe's wider
    label-free band), the sentence says where it leans and why it is not called."""
    from app.detail_pane import lead_sentence
    from engine.types import Verdict

    def sentence(margin: float) -> str:
        v = Verdict(document_id="d", question=Q, verdict="uncertain", margin=margin,
                    probability=1 / (1 + math.exp(-margin)), raw_margin=0.3)
        return lead_sentence(v, "a general probe")

    assert "could go either way (a 38% chance of yes)" in sentence(-0.5)
    assert "leans no, but not reliably enough to call without labels (a 9% chance of yes)" in sentence(-2.3)
    assert "leans yes" in sentence(1.7)


def test_a_refit_in_the_window_gives_the_rows_the_pipeline_gives_for_the_same_labels(
        qtbot, make_window, tiny_classifier, tmp_path, monkeypatch, quick_refit):
    """The window keeps one hidden state per verdict and re-applies a refit calibrator to it: the
    state must be the one the calibrator reads. With a general probe on another layer than a
    question probe's default, the window once fed the wrong layer to it; here every verdict after
    a refit in the window is checked against `Pipeline.run` with the same labels."""
    from engine.pipeline import Pipeline
    from test_general_probe import _ship

    # with a Platt prior, so that with 2 + 2 labels the Bayesian Platt decides, in both
    probe = _ship(tiny_classifier, tmp_path / "probes", monkeypatch, layer=2, subtract_null=True,
                  null_texts=("N/A", "None"),
                  info={"platt_prior": {"mean": [1.0, 0.0], "cov": [[0.5, 0.0], [0.0, 0.5]]}})
    window = scored_window(qtbot, make_window, n=5)
    assert window.controller.state_layer == probe.layer  # the state kept is the one the general probe reads
    given = {"invoice-0": "yes", "invoice-1": "yes", "recipe-0": "no", "recipe-1": "no"}
    for name, label in given.items():
        window.set_label(key_of(window, name), Q, label)
    with qtbot.waitSignal(window.controller.refitFinished, timeout=180_000):
        pass
    qtbot.waitUntil(lambda: not window.refit_pending(Q))
    cal = window.controller.calibrators[Q]
    assert cal.layers == [probe.layer] and sum(cal.n_labels) == 4 and cal.platt_prior is not None
    assert window.session.refit_rescored == 0  # fitted from the kept answers and states alone

    documents = [r.document for r in window.results.rows]
    pipeline = Pipeline(tiny_classifier, save=False, folder=tmp_path / "elsewhere")
    pipeline.fit(Q, [d for d in documents if d.id in given], {i: y == "yes" for i, y in given.items()})
    expected = list(pipeline.run(Q, documents))
    assert pipeline.calibrators[Q].method == cal.method
    for row, v in zip(window.results.rows, expected):
        got = row.verdicts[Q]
        assert got.score == pytest.approx(v.score, abs=1e-3), row.name
        assert got.verdict == v.verdict, row.name
        assert got.probability == pytest.approx(v.probability, abs=1e-2), row.name


def test_batch_calibration_shifts_by_the_whole_job_as_the_pipeline_does(qtbot, make_window, tiny_classifier):
    """With the batch shift (`--calibration batch`) the window's verdicts are `Pipeline.run`'s over
    the same documents: one job is one batch, its shift the median margin of all of them, not of
    each chunk the worker hands the engine (the first chunk, one document, would be shifted to 0)."""
    from engine import Pipeline
    from engine.confidence.calibrate import batch_shift

    texts = {f"invoice-{i}": f"Invoice {i}: please pay ${100 + 7 * i} by Friday." for i in range(5)}
    texts |= {f"recipe-{i}": f"Recipe {i}: whisk {i + 2} eggs with sugar and bake." for i in range(5)}
    settings = {"shift_method": "batch"}
    window = make_window()
    window.controller._worker._pipeline.settings.update(settings)  # before any calibrator is made
    window.question_bar.ask(Q)
    window.add_documents([(name, Document(id=name, text=text)) for name, text in texts.items()])
    wait_scored(qtbot, window, len(texts))

    reference = Pipeline(tiny_classifier, settings=settings, save=False)
    reference.rule = window.session.rule
    expected = dict(zip(texts, reference.run(Q, [Document(id=n, text=t) for n, t in texts.items()])))
    shift = batch_shift(e.raw_margin for e in expected.values())
    first = expected["invoice-0"]
    assert abs(first.raw_margin - shift) > 1e-3  # a shift from the first chunk alone would differ
    for row in window.results.rows:
        v, e = row.verdicts[Q], expected[row.name]
        assert v.raw_margin == pytest.approx(e.raw_margin, abs=1e-3), row.name
        assert v.score == pytest.approx(v.raw_margin - shift, abs=1e-3), row.name
        assert v.score == pytest.approx(e.score, abs=1e-3), row.name
        assert v.verdict == e.verdict, row.name
        assert v.probability == pytest.approx(e.probability, abs=1e-3), row.name


def test_a_refit_without_kept_states_scores_the_labeled_documents_and_says_so(qtbot, make_window, quick_refit):
    """Where the labeled documents' states are not at hand (dropped for another model, or over
    the memory bound), the refit scores them again: the status bar says so until it is done."""
    window = scored_window(qtbot, make_window)
    del window.session.states[(key_of(window, "invoice-0"), Q)]
    messages = []
    window.session.message.connect(lambda text, ms: messages.append(text))
    for name, label in (("invoice-0", "yes"), ("invoice-1", "yes"), ("recipe-0", "no"), ("recipe-1", "no")):
        window.set_label(key_of(window, name), Q, label)
    with qtbot.waitSignal(window.controller.refitFinished, timeout=180_000):
        pass
    assert window.session.refit_rescored == 1
    assert any("scoring 1 labeled document again" in m for m in messages)
    assert window.controller.calibrators[Q].n_labels == (2, 2)
    assert "Recalibrated" in window.statusBar().currentMessage()


def test_explanations_wait_for_the_refit_and_those_of_documents_no_longer_shown_are_dropped(
        qtbot, make_window, quick_refit):
    """The deciding paragraph of the document shown is scored on the scoring thread, like a refit:
    one of a document left behind is dropped (asked for again if it is shown again), and while a
    refit is pending none is asked for (the refit changes the answer it would explain), so the
    refit is not queued behind explanations."""
    window = make_window()
    window.question_bar.ask(Q)
    docs = [(f"letter-{i}", f"Letter {i}: the invoice of ${100 + i} is attached to this message.\n\n"
                            f"Please pay it by Friday, or bake a lemon tart with {i} eggs instead.") for i in range(6)]
    keys = window.add_documents([(name, Document(id=name, text=text)) for name, text in docs])
    wait_scored(qtbot, window, 6)
    session = window.session
    window.select_keys([keys[0]])
    window.select_keys([keys[1]])  # moved on at once: the first is never asked for
    # asked for: its job queued or, on a quick scoring thread, already answered (never polled for the
    # job alone, which can come and go between two polls)
    qtbot.waitUntil(lambda: (keys[1], Q) in session.passages, timeout=180_000)
    assert all(k == keys[1] for k, *_ in session._passage_jobs.values()) and (keys[0], Q) not in session.passages
    session._passage_jobs.clear()  # (as if its answer were still to come: the job stays queued)
    session._passage_jobs[-1] = (keys[1], Q, 0.0, [])
    session.passages[(keys[1], Q)] = (0.0, None, 0)  # what asking for it leaves until the answer comes
    window.select_keys([keys[0]])  # shown long enough: asked for, and the other one's dropped
    qtbot.waitUntil(lambda: (keys[0], Q) in session.passages, timeout=180_000)
    assert -1 not in session._passage_jobs and all(k == keys[0] for k, *_ in session._passage_jobs.values())
    assert (keys[1], Q) not in session.passages  # so that showing it again asks again
    window.select_keys([keys[1]])
    qtbot.waitUntil(lambda: session.passage(keys[1], Q) is not None, timeout=180_000)

    for key, label in zip(keys[2:], ("yes", "yes", "no", "no")):
        window.set_label(key, Q, label)
    window.select_keys([keys[5]])
    assert session.refit_pending(Q) and session.passage(keys[5], Q) is None
    assert not session._passage_jobs  # nothing queued before the refit
    with qtbot.waitSignal(window.controller.refitFinished, timeout=180_000):
        pass
    qtbot.waitUntil(lambda: session.passage(keys[5], Q) is not None, timeout=180_000)  # asked for after it
