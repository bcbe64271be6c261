"""Metrics against hand-computed values, the evaluation's shape, and one run on the real model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.confidence import metrics
from engine.confidence.evaluate import evaluate_features, format_table
from engine.gather import evaluate
from engine.confidence.probe import Features

LABELED = Path(__file__).resolve().parent.parent / "resources" / "labeled"


def test_auc_by_hand():
    # positives 0.9, 0.4; negatives 0.8, 0.1: pairs won 0.9>0.8, 0.9>0.1, 0.4>0.1 -> 3 of 4
    assert metrics.auc([1, 0, 1, 0], [0.9, 0.8, 0.4, 0.1]) == pytest.approx(0.75)
    assert metrics.auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts one half
    assert metrics.auc([1, 1, 0], [0.2, 0.2, 0.2]) == pytest.approx(0.5)
    assert metrics.auc([0, 0, 1], [3, 2, 1]) == pytest.approx(0.0)
    assert np.isnan(metrics.auc([1, 1], [0.1, 0.2]))


def test_auc_matches_pair_counting():
    rng = np.random.default_rng(0)
    y = rng.random(60) < 0.4
    s = np.round(rng.normal(size=60), 1)  # with ties
    pos, neg = s[y], s[~y]
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert metrics.auc(y, s) == pytest.approx(pairs)


def test_brier_accuracy_ece_by_hand():
    assert metrics.brier([1, 0], [0.8, 0.4]) == pytest.approx((0.04 + 0.16) / 2)
    assert metrics.accuracy([1, 0, 1], [0.8, 0.4, 0.3]) == pytest.approx(2 / 3)
    # bin [0.1, 0.2): mean p 0.125, frequency 0.5; bin [0.9, 1]: mean p 0.925, frequency 1
    assert metrics.ece([0, 1, 1, 1], [0.1, 0.15, 0.9, 0.95]) == pytest.approx((2 * 0.375 + 2 * 0.075) / 4)
    assert metrics.ece([1, 0], [1.0, 0.0]) == pytest.approx(0.0)  # 1.0 falls in the last bin
    assert metrics.ece([1, 0, 1, 0], [0.5] * 4) == pytest.approx(0.0)


def test_recall_threshold():
    y, s = [1, 1, 1, 1, 0], [4, 3, 2, 1, 0]
    assert metrics.recall_threshold(y, s, 0.75) == 2  # s >= 2 finds 3 of the 4
    assert metrics.recall_threshold(y, s, 1.0) == 1
    assert metrics.recall_threshold(y, s, 0.95) == 1  # "find 95%" of 4 means all 4


def test_stratified_folds_cover_everything_once():
    y = np.array([True] * 7 + [False] * 13)
    seen = []
    for train, test in metrics.stratified_folds(y, 5, seed=3):
        assert set(train).isdisjoint(test)
        assert 1 <= y[test].sum() <= 2
        seen += list(test)
    assert sorted(seen) == list(range(20))


def _synthetic_features(n=80, d=16, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2 == 0
    direction = rng.normal(size=d)
    hidden = rng.normal(size=(n, 2, d)) + np.where(y, 1.0, -1.0)[:, None, None] * direction * 0.4
    margin = rng.normal(size=n) - 0.5  # zero-shot margin: noise that leans to "no"
    mass = rng.uniform(0.3, 0.9, size=n)
    return Features([f"d{i}" for i in range(n)], margin, mass, hidden.astype(np.float32), [1, 2]), y


def test_evaluate_features_shape_and_probe_wins():
    features, y = _synthetic_features()
    result = evaluate_features(features, y, null_margin=0.2, curve_sizes=(4, 8), repeats=1)
    assert set(result["methods"]) >= {"raw", "calibrated", "platt", "probe"}
    for m in result["methods"].values():
        assert set(m) >= {"auc", "accuracy", "brier", "ece"}
        assert 0 <= m["brier"] <= 1 and 0 <= m["ece"] <= 1
    assert set(result["learning_curve"]) == {"4", "8"}
    assert result["n"] == 80
    assert result["methods"]["probe"]["auc"] > result["methods"]["raw"]["auc"] + 0.2
    json.dumps(result)  # JSON-ready
    table = format_table(result)
    assert "probe" in table and "labels per class" in table


def test_evaluate_on_tiny_model(tiny_classifier):
    records = [{"id": f"r{i}", "text": f"document number {i} " + "word " * (i % 5), "label": i % 2 == 0}
               for i in range(12)]
    records.append({"id": "empty", "text": "", "label": True})  # cannot be scored: left out
    result = evaluate(tiny_classifier, "Is it even?", records, k=3, curve_sizes=(4,), repeats=1)
    assert result["n"] == 12
    assert set(result["methods"]) >= {"raw", "calibrated", "platt", "probe"}
    assert "4" in result["learning_curve"]


def test_probe_beats_margin_on_the_default_model(default_classifier):
    """The acceptance check on real texts, kept small (< 60 s on a busy 2-core box): the 16
    shortest descriptions of each class of the games set."""
    rows = [json.loads(line) for line in (LABELED / "debian_games.jsonl").open()]
    rows.sort(key=lambda r: len(r["text"]))
    yes = [r for r in rows if r["label"]][:16]
    no = [r for r in rows if not r["label"]][:16]
    result = evaluate(default_classifier, "Is this software a game?", yes + no, k=4, curve_sizes=(), repeats=1)
    methods = result["methods"]
    assert result["n"] == 32
    assert methods["probe"]["auc"] > methods["raw"]["auc"]
    assert methods["probe"]["auc"] > 0.85
