"""Faster scoring (Preferences): where a probe gives every question's chance of yes, the window
scores without the model's own answer. The scores are the whole model's, the detail pane shows
"–" for what was left out, labels recalibrate those rows from their kept states as the others,
and the choice is remembered. Headless; the tiny model with a general probe written here."""
from __future__ import annotations

import math

import pytest

from app import dialogs
from app import session as session_module
from app.settings import Settings
from engine.types import Document
from test_app import wait_scored
from test_general_probe import _ship

Q = "Does this document ask for a payment?"
TEXTS = {**{f"invoice-{i}": f"Invoice {i}: please pay ${100 + i} by Friday." for i in range(3)},
         **{f"recipe-{i}": f"Recipe {i}: rub butter into flour and bake." for i in range(3)}}


@pytest.fixture(autouse=True)
def own_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("VERDICT_DATA_DIR", str(tmp_path / "verdict-data"))
    monkeypatch.setattr(session_module, "REFIT_DELAY_MS", 50)


def add(window, prefix: str) -> None:
    window.add_documents([(f"{prefix}{name}", Document(id=f"{prefix}{name}", text=text))
                          for name, text in TEXTS.items()])


def verdicts(window, prefix: str) -> dict:
    return {r.name.removeprefix(prefix): r.verdicts[Q] for r in window.results.rows if r.name.startswith(prefix)}


def test_faster_scoring_gives_the_same_scores_and_labels_recalibrate_its_rows(qtbot, make_window, tiny_classifier,
                                                                             tmp_path, monkeypatch):
    _ship(tiny_classifier, tmp_path / "probes", monkeypatch, layer=1)  # the tiny model has 2 layers
    monkeypatch.setattr(dialogs, "keep_duplicates", lambda parent, names: True)  # the same texts, scored again
    window = make_window()
    window.question_bar.ask(Q)
    add(window, "whole-")
    wait_scored(qtbot, window, 6)
    assert window.controller.calibrators[Q].layers == [1]

    window.show_preferences()
    dialog = window.preferences
    assert not dialog.probe_only.isChecked()
    dialog.probe_only.click()
    assert Settings(tmp_path / "settings.ini").probe_only
    add(window, "faster-")
    wait_scored(qtbot, window, 12)
    whole, faster = verdicts(window, "whole-"), verdicts(window, "faster-")
    assert sorted(whole) == sorted(faster) == sorted(TEXTS)
    for name in TEXTS:
        assert math.isfinite(whole[name].raw_margin) and 0 < whole[name].label_mass <= 1
        assert math.isnan(faster[name].raw_margin) and math.isnan(faster[name].label_mass)
        assert faster[name].score == pytest.approx(whole[name].score, abs=1e-4)
    window.select_keys([next(r.key for r in window.results.rows if r.name == "faster-invoice-0")])
    numbers = window.detail.results()[0].numbers
    assert "(the model alone –)" in numbers.text() and "raw margin –" in numbers.toolTip()

    # Two labels of each refit the probe: every row is recalibrated from its kept state, the
    # faster ones too, to the same score as its whole-model twin.
    before = {name: v.score for name, v in whole.items()}
    for name, label in (("invoice-0", "yes"), ("invoice-1", "yes"), ("recipe-0", "no"), ("recipe-1", "no")):
        window.set_label(next(r.key for r in window.results.rows if r.name == f"whole-{name}"), Q, label)
    with qtbot.waitSignal(window.controller.refitFinished, timeout=180_000):
        pass
    qtbot.waitUntil(lambda: verdicts(window, "whole-")["invoice-2"].score != before["invoice-2"])
    whole, faster = verdicts(window, "whole-"), verdicts(window, "faster-")
    assert window.controller.calibrators[Q].n_labels == (2, 2)
    for name in TEXTS:
        assert whole[name].score != pytest.approx(before[name], abs=1e-6)
        assert faster[name].score == pytest.approx(whole[name].score, abs=1e-4)
        assert math.isnan(faster[name].raw_margin)

    # remembered: a relaunch scores the faster way from the start
    window.close()
    again = make_window()
    assert again.preferences is None or again.preferences.probe_only.isChecked()
    again.add_documents([("later", Document(id="later", text=TEXTS["invoice-2"]))])
    qtbot.waitUntil(lambda: any(r.name == "later" and Q in r.verdicts for r in again.results.rows), timeout=180_000)
    later = next(r for r in again.results.rows if r.name == "later").verdicts[Q]
    assert math.isnan(later.raw_margin) and math.isfinite(later.score)
