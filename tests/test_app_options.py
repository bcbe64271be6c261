"""Per-question options in the window: "Use Labeled Documents as Examples" and "Think About the
Uncertain Ones", driven through their actions on real widgets (offscreen) with the tiny model.

What the window shows is checked against the engine asked directly (a Classifier of the same
model given the same examples, a Pipeline asked to think), whose own tests hold it to stock
mlx-lm; and a model served over HTTP (the tests' own server), which can't think, disables the
option."""
from __future__ import annotations

import pytest

from app import session as session_module
from app.options import EXAMPLES, THINK, THINK_TOKENS, THINK_UNAVAILABLE
from app.session_store import DB_FILE, SessionStore
from app.settings import Settings
from app.window import MainWindow
from engine import Classifier, Example, Pipeline
from engine.confidence.calibrate import text_key
from engine.pipeline import decided
from engine.types import Document
from fakeserver import FakeServer
from test_app import wait_scored
from tinymodels import vocab_size

Q1 = "Does this document ask for a payment?"
Q2 = "Is this about cooking?"
TEXTS = {"invoice-0": "Invoice 0: please pay $100 by Friday.", "invoice-1": "Invoice 1: please pay $101 by Monday.",
         "recipe-0": "Recipe 0: rub butter into flour and bake.", "recipe-1": "Recipe 1: whisk two eggs with sugar."}


@pytest.fixture(autouse=True)
def own_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("VERDICT_DATA_DIR", str(tmp_path / "verdict-data"))
    monkeypatch.setattr(session_module, "REFIT_DELAY_MS", 50)


@pytest.fixture(scope="module")
def engine_clf(tiny_model_dir):
    return Classifier.load(tiny_model_dir)


def scored_window(qtbot, make_window, questions=(Q1, Q2), texts=TEXTS, settings=None):
    window = make_window()
    if settings:  # calibration settings of the window's pipeline, before any calibrator is made
        window.controller._worker._pipeline.settings.update(settings)
    for n, question in enumerate(questions):
        if n:
            window.question_bar.add_question()
        window.question_bar.ask(question)
    window.add_documents([(name, Document(id=name, text=text)) for name, text in texts.items()])
    wait_scored(qtbot, window, len(texts))
    return window


def key_of(window, name: str) -> int:
    return next(r.key for r in window.results.rows if r.name == name)


def raw(window, question: str) -> dict[str, float]:
    return {r.name: r.verdicts[question].raw_margin for r in window.results.rows}


def wait_rescored(qtbot, window, question: str, before: dict) -> None:
    """Every row's answer to ``question`` replaced (not stale), and nothing left to score."""
    qtbot.waitUntil(lambda: not window.controller.busy and all(
        question not in r.stale and r.verdicts[question] is not before[r.key] for r in window.results.rows),
        timeout=180_000)


def engine_margins(clf, question: str, examples: list[Example]) -> dict[str, float]:
    clf.set_examples(examples)
    try:
        return {name: v.raw_margin for name, v in zip(TEXTS, clf.score(question, list(TEXTS.values())))}
    finally:
        clf.set_examples([])


def test_labeled_documents_as_examples_rescore_only_that_question(qtbot, make_window, engine_clf):
    window = scored_window(qtbot, make_window)
    tabs = window.question_bar.tabs
    assert window.session.active_question == Q2
    tabs.customContextMenuRequested.emit(tabs.tabRect(0).center())  # right-click on Q1's tab
    menu = window.question_bar.tab_menu
    qtbot.waitUntil(menu.isVisible)
    assert window.session.active_question == Q1  # the menu's options are Q1's
    assert menu.actions() == [window.examples_action, window.think_action]
    menu.hide()
    plain1, plain2 = raw(window, Q1), raw(window, Q2)
    assert plain1 == pytest.approx(engine_margins(engine_clf, Q1, []), abs=2e-3)
    window.set_label(key_of(window, "invoice-0"), Q1, "yes")
    window.set_label(key_of(window, "recipe-0"), Q1, "no")
    window.set_label(key_of(window, "recipe-1"), Q2, "yes")  # another question's label is not shown for Q1
    qtbot.waitUntil(lambda: not window.refit_pending(Q1))
    assert not window.examples_action.isChecked() and window.examples_action.isEnabled()
    before = {r.key: r.verdicts[Q1] for r in window.results.rows}
    others = {r.key: r.verdicts[Q2] for r in window.results.rows}

    window.examples_action.trigger()  # Questions ▸ Use Labeled Documents as Examples, for the active Q1
    assert window.examples_action.isChecked() and window.session.options_for(Q1).examples
    assert not window.session.options_for(Q2).examples
    assert all(Q1 in r.stale and Q2 not in r.stale for r in window.results.rows)  # only Q1 is asked again
    wait_rescored(qtbot, window, Q1, before)
    shown = [Example(TEXTS["invoice-0"], True, Q1), Example(TEXTS["recipe-0"], False, Q1)]
    with_two = engine_margins(engine_clf, Q1, shown)
    assert raw(window, Q1) == pytest.approx(with_two, abs=2e-3)
    assert all(abs(raw(window, Q1)[n] - plain1[n]) > 1e-3 for n in TEXTS)  # the examples changed every margin
    assert all(r.verdicts[Q2] is others[r.key] for r in window.results.rows)  # Q2 was not scored again
    assert raw(window, Q2) == plain2
    window.select_keys([key_of(window, "invoice-1")])
    assert "shown to the model as worked examples" in window.detail.results()[0].calibration.text()

    # a label given while the option is on: Q1 is scored again (after the labels settle) with it shown
    before = {r.key: r.verdicts[Q1] for r in window.results.rows}
    window.set_label(key_of(window, "invoice-1"), Q1, "yes")
    wait_rescored(qtbot, window, Q1, before)
    three = shown[:1] + [Example(TEXTS["invoice-1"], True, Q1)] + shown[1:]
    assert raw(window, Q1) == pytest.approx(engine_margins(engine_clf, Q1, three), abs=2e-3)
    assert raw(window, Q1) != pytest.approx(with_two, abs=1e-3)

    # saved with the session: a relaunch has it on, and shows the same examples
    window.close()
    again = make_window()
    wait_scored(qtbot, again, len(TEXTS))
    assert again.session.options_for(Q1).examples and again.examples_action.isChecked()
    before = {r.key: r.verdicts[Q1] for r in again.results.rows}
    again.question_bar.ask(Q1)  # Return on the unchanged question: everything asked again
    wait_rescored(qtbot, again, Q1, before)
    assert raw(again, Q1) == pytest.approx(engine_margins(engine_clf, Q1, three), abs=2e-3)

    # off again: the plain prompt's margins come back
    again.examples_action.trigger()
    assert not again.session.options_for(Q1).examples
    before = {r.key: r.verdicts[Q1] for r in again.results.rows}
    wait_rescored(qtbot, again, Q1, before)
    assert raw(again, Q1) == pytest.approx(plain1, abs=2e-3)


def test_thinking_about_the_uncertain_ones_shows_what_the_model_wrote(qtbot, make_window, engine_clf):
    window = scored_window(qtbot, make_window, questions=(Q1,))
    assert window.think_action.isEnabled() and not window.think_action.isChecked()
    rows = {r.name: r for r in window.results.rows}
    assert all(r.verdicts[Q1].verdict == "uncertain" and r.verdicts[Q1].reasoning is None for r in rows.values())
    window.select_keys([key_of(window, "invoice-0")])
    result = window.detail.results()[0]
    assert result.reasoning.isHidden()
    before = {r.key: r.verdicts[Q1] for r in window.results.rows}

    window.think_action.trigger()
    assert window.think_action.isChecked() and window.session.options_for(Q1).think
    wait_rescored(qtbot, window, Q1, before)
    reference = {name: v for name, v in zip(TEXTS, Pipeline(engine_clf, save=False).run(
        Q1, list(TEXTS.values()), deliberate=THINK_TOKENS))}
    for name, row in rows.items():
        v = row.verdicts[Q1]
        assert v.reasoning and v.reasoning == reference[name].reasoning
        assert v.raw_margin == pytest.approx(reference[name].raw_margin, abs=2e-3)
        assert v.raw_margin != pytest.approx(before[row.key].raw_margin, abs=1e-4)
        assert window.session.states[(row.key, Q1)] is not None  # the one-pass state, kept for refits
    result = window.detail.results()[0]
    assert not result.reasoning.isHidden()
    thought = rows["invoice-0"].verdicts[Q1].reasoning
    assert thought[:20] in result.reasoning.text()
    assert f"up to {THINK_TOKENS} tokens" in result.calibration.text()

    # a relaunch shows the same answers, with what the model wrote, and the option on
    thoughts = {r.name: r.verdicts[Q1].reasoning for r in window.results.rows}
    window.close()
    window = make_window()
    assert window.think_action.isChecked()
    assert {r.name: r.verdicts[Q1].reasoning for r in window.results.rows} == thoughts
    window.select_keys([key_of(window, "invoice-0")])
    assert thought[:20] in window.detail.results()[0].reasoning.text()

    before = {r.key: r.verdicts[Q1] for r in window.results.rows}
    window.think_action.trigger()  # off: one pass again, no reasoning
    wait_rescored(qtbot, window, Q1, before)
    assert all(r.verdicts[Q1].reasoning is None for r in window.results.rows)
    assert window.detail.results()[0].reasoning.isHidden()


def test_thinking_is_disabled_saying_why_for_a_model_on_a_server(qtbot, tmp_path, tiny_model_dir, dialog_calls):
    from engine.remote import RemoteBackend

    with FakeServer("vllm", vocab_size()) as server:
        backends = []

        def load(path):
            backends.append(RemoteBackend(server.url, tiny_model_dir))
            return Classifier(backends[-1])

        window = MainWindow(Settings(tmp_path / "settings.ini"), SessionStore(tmp_path / "data" / DB_FILE),
                            model=None, load=load)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitUntil(lambda: not window.controller.loading, timeout=180_000)
        try:
            window.question_bar.ask(Q1)
            window.add_text("Invoice 7: please pay $70 by Friday.")
            wait_scored(qtbot, window, 1)
            assert not window.controller.can_think
            assert not window.think_action.isEnabled() and window.think_action.toolTip() == THINK_UNAVAILABLE
            assert window.examples_action.isEnabled()
            verdict = window.results.rows[0].verdicts[Q1]
            window.session.set_option(Q1, THINK, True)  # saved, but nothing to do with this model
            assert not window.controller.busy and window.results.rows[0].verdicts[Q1] is verdict
            assert not window.think_action.isChecked()
            window.select_keys([window.results.rows[0].key])
            assert "not used" in window.detail.results()[0].calibration.text()
            window.session.set_option(Q1, EXAMPLES, True)  # no labels yet: the prompt is the same
            assert not window.controller.busy and window.results.rows[0].verdicts[Q1] is verdict
        finally:
            window.close()
            for backend in backends:
                backend.close()


def test_a_refit_while_thinking_gives_what_the_engine_gives(qtbot, make_window, engine_clf):
    """Which rows the model thinks about depends on the calibrator: after labels refit it, the
    rows that think are scored again, and every answer is the engine's for the same labels.
    (The tiny model's label mass is far below the floor, so the floor is off here: its answers
    can then be sure.)"""
    texts = {**{f"invoice-{i}": f"Invoice {i}: please pay ${100 + i} by Friday." for i in range(4)},
             **{f"recipe-{i}": f"Recipe {i}: rub butter into flour and bake." for i in range(4)}}
    settings = {"band": 2.0, "mass_floor": 0.0}
    window = scored_window(qtbot, make_window, questions=(Q1,), texts=texts, settings=settings)
    assert all(r.verdicts[Q1].verdict == "uncertain" for r in window.results.rows)
    window.think_action.trigger()
    before = {r.key: r.verdicts[Q1] for r in window.results.rows}
    wait_rescored(qtbot, window, Q1, before)
    labels = {"invoice-0": True, "invoice-1": True, "recipe-0": False, "recipe-1": False}
    with qtbot.waitSignal(window.controller.refitFinished, timeout=180_000):
        for name, yes in labels.items():
            window.set_label(key_of(window, name), Q1, "yes" if yes else "no")
    qtbot.waitUntil(lambda: not window.controller.busy and not any(Q1 in r.stale for r in window.results.rows),
                    timeout=180_000)
    cal = window.controller.calibrators[Q1]
    assert cal.n_labels == (2, 2)

    reference = Pipeline(engine_clf, settings=settings, save=False)
    reference.fit(Q1, [Document(id=n, text=texts[n]) for n in labels], labels)
    assert reference.calibrators[Q1].method == cal.method
    # which rows think is the calibrator's (each row alone, by its band): one pass through the new
    # probe leaves them uncertain, thought about they come out sure; then the window decides them
    # over the batch with the labels held, as `decided` does for the pipeline
    each = list(reference.run(Q1, list(texts.values()), deliberate=THINK_TOKENS, decisions="row"))
    assert all(e.reasoning and e.verdict != "uncertain" for e in each)
    keys = {n: text_key(t) for n, t in enumerate(texts.values())}
    batch = decided([(0, v) for v in each], reference.calibrators, window.session.rule, keys)
    expected = dict(zip(texts, [v for _, v in batch]))
    for row in window.results.rows:
        v, e = row.verdicts[Q1], expected[row.name]
        assert (v.verdict, v.reasoning) == (e.verdict, e.reasoning), row.name
        assert v.score == pytest.approx(e.score, abs=2e-2, rel=2e-2), row.name
        assert v.probability == pytest.approx(e.probability, abs=2e-2), row.name
