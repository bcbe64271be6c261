"""Logistic regression and Platt scaling on synthetic data; the calibrator on the tiny model."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine.confidence import metrics
from engine.confidence.calibrate import Calibrator, batch_shift, fit_platt, read_labels
from engine.confidence.probe import Features
from engine.gather import content_free, fit_calibrator
from engine.types import Document, Verdict


# --- logistic regression -------------------------------------------------------------------------
def test_logistic_regression_recovers_known_weights():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 3))
    w, b = np.array([1.5, -2.0, 0.0]), 0.5
    y = rng.random(4000) < metrics.sigmoid(x @ w + b)  # non-separable
    fit = metrics.logistic_regression(x, y, l2=1e-3)
    assert fit.converged
    assert np.allclose(fit.w, w, atol=0.15) and fit.b == pytest.approx(b, abs=0.15)


def test_logistic_regression_on_separable_data_stays_finite():
    x = np.array([[-2.0], [-1.0], [1.0], [2.0]])
    y = np.array([0, 0, 1, 1])
    fit = metrics.logistic_regression(x, y, l2=1.0)
    assert fit.converged and np.isfinite(fit.w).all()
    p = fit.predict(x)
    assert (p[2:] > 0.5).all() and (p[:2] < 0.5).all()
    assert 0.01 < p.min() and p.max() < 0.99  # the L2 keeps it from 0/1
    # weaker regularisation, steeper fit, still finite
    assert metrics.logistic_regression(x, y, l2=1e-3).w[0] > fit.w[0]


def test_logistic_regression_wide_data_matches_the_primal_solution():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(10, 40))  # fewer rows than features: solved in the rows' span
    y = rng.random(10) < 0.5
    wide = metrics.logistic_regression(x, y, l2=2.0)
    primal = metrics.logistic_regression(x, y, l2=2.0, prior_w=np.zeros(40))  # a prior forces the direct path
    assert np.allclose(wide.w, primal.w, atol=1e-5) and wide.b == pytest.approx(primal.b, abs=1e-5)


# --- Platt scaling -------------------------------------------------------------------------------
def test_platt_recovers_scale_and_offset():
    rng = np.random.default_rng(2)
    s = rng.normal(scale=2.0, size=3000)
    y = rng.random(3000) < metrics.sigmoid(0.5 * s - 1.0)
    platt = fit_platt(s, y)
    assert platt.a == pytest.approx(0.5, abs=0.1) and platt.b == pytest.approx(-1.0, abs=0.15)


def test_platt_with_two_plus_two_labels_does_not_explode():
    platt = fit_platt([3.0, 2.5, -1.0, -2.0], [True, True, False, False])
    p = platt([3.0, -2.0])
    assert 0 < platt.a < 2
    assert 0.55 < p[0] < 0.95 and 0.05 < p[1] < 0.45


def test_platt_learns_an_inverted_score():
    rng = np.random.default_rng(3)
    s = rng.normal(size=200)
    y = s < 0  # the score runs against the labels
    assert fit_platt(s, y).a < 0


def test_platt_needs_both_classes():
    with pytest.raises(ValueError):
        fit_platt([1.0, 2.0], [True, True])


# --- the calibrator ------------------------------------------------------------------------------
def _verdict(raw, mass=0.8, **kw):
    return Verdict(document_id="d", question="q", verdict="yes" if raw > 0 else "no", margin=raw,
                   raw_margin=raw, probability=float(metrics.sigmoid(raw)), label_mass=mass, **kw)


def test_uncertain_band_and_mass_floor():
    cal = Calibrator(question="q", band=1.0, mass_floor=0.2)
    assert cal.apply(_verdict(2.0)).verdict == "yes"
    assert cal.apply(_verdict(-2.0)).verdict == "no"
    assert cal.apply(_verdict(0.5)).verdict == "uncertain"
    assert cal.apply(_verdict(-0.99)).verdict == "uncertain"
    assert cal.apply(_verdict(5.0, mass=0.1)).verdict == "uncertain"
    assert Calibrator(question="q", band=0.0, mass_floor=0.0).apply(_verdict(0.01)).verdict == "yes"


def test_apply_keeps_raw_margin_and_shifts_margin():
    cal = Calibrator(question="q", shift_method="contextual", shift=-1.5, band=0.0)
    out = cal.apply(_verdict(-1.0))
    assert out.raw_margin == -1.0
    assert out.margin == pytest.approx(0.5) and out.probability == pytest.approx(float(metrics.sigmoid(0.5)))
    assert out.verdict == "yes"
    error = Verdict(document_id="e", question="q", verdict="error", error="unreadable")
    assert cal.apply(error) is error


def test_batch_calibration_centres_on_the_median():
    assert batch_shift([1.0, -3.0, 2.0, float("nan")]) == pytest.approx(1.0)
    cal = Calibrator(question="q", shift_method="batch", band=0.0)
    raw = [_verdict(m) for m in (-3.0, -2.0, -1.0, 0.0, 4.0)]
    other = Verdict(document_id="x", question="another question", verdict="yes", raw_margin=100.0, margin=100.0)
    batch = cal.for_batch(raw + [other])  # the pipeline's own step: its question's rows only
    assert batch.shift == pytest.approx(-1.0) and cal.shift == 0.0  # a new value; the kept one is as it was
    out = [batch.apply(v) for v in raw]
    assert [v.margin for v in out] == pytest.approx([-2.0, -1.0, 0.0, 1.0, 5.0])
    assert [v.verdict for v in out] == ["no", "no", "no", "yes", "yes"]  # a margin of exactly 0 is not a yes


def test_fit_labels_uses_the_probe_when_it_wins_and_sets_a_recall_threshold():
    rng = np.random.default_rng(4)
    n, d = 40, 12
    y = np.arange(n) % 2 == 0
    hidden = rng.normal(size=(n, 1, d)) + np.where(y, 2.5, -2.5)[:, None, None] * np.eye(d)[0]
    margin = rng.normal(size=n)  # uninformative zero-shot margin
    features = Features([str(i) for i in range(n)], margin, np.full(n, 0.7), hidden, [3])
    cal = Calibrator(question="q", model="m").fit_labels(features, y)
    assert cal.use_probe and cal.method == "probe" and cal.layers == [3]
    assert cal.probe.cv_auc > 0.9
    p = np.array([float(metrics.sigmoid(cal.log_odds(m, h))) for m, h in zip(margin, hidden[:, 0])])
    assert metrics.auc(y, p) > 0.9
    assert cal.threshold is not None and (p[y] >= cal.threshold).mean() >= 0.9


def test_read_labels():
    assert read_labels([{"id": 1, "label": True}, {"id": "b", "label": "no"}, {"id": "c", "label": "Yes"}]) == {
        "1": True, "b": False, "c": True}
    with pytest.raises(ValueError):
        read_labels([{"id": "x", "label": "maybe"}])


# --- on the tiny model ---------------------------------------------------------------------------
def _calibrated_run(clf, cal, documents):
    """The pipeline's rows for `documents` with `cal` as the question's calibrator."""
    from engine.pipeline import Pipeline

    pipeline = Pipeline(clf, save=False)
    pipeline.calibrators[cal.question] = cal
    return list(pipeline.run(cal.question, documents, decisions="row"))  # the calibrator alone


def test_contextual_calibration_on_the_tiny_model(tiny_classifier):
    nulls = [v.raw_margin for v in tiny_classifier.score("Is it a test?", ["N/A", "[MASK]", "None"])]
    shift = content_free(tiny_classifier, "Is it a test?")[0]
    assert shift == pytest.approx(float(np.mean(nulls)), abs=1e-5)
    cal = fit_calibrator(tiny_classifier, "Is it a test?", [], shift_method="contextual", band=0.0, mass_floor=0.0)
    verdicts = _calibrated_run(tiny_classifier, cal, ["the document", "Yes no yes"])
    for v in verdicts:
        assert v.margin == pytest.approx(v.raw_margin - shift, abs=1e-5)
        assert v.verdict == ("yes" if v.margin > 0 else "no")


def test_fit_calibrator_with_labels_on_the_tiny_model_and_round_trip(tiny_classifier, tmp_path, monkeypatch):
    monkeypatch.setenv("VERDICT_DATA_DIR", str(tmp_path))
    docs = [Document(id=f"d{i}", text=f"document {i} " + "the " * i) for i in range(10)]
    labels = {f"d{i}": i % 2 == 0 for i in range(8)}  # two documents unlabeled
    cal = fit_calibrator(tiny_classifier, "Is it even?", docs, labels)
    assert cal.n_labels == (4, 4) and cal.platt is not None and cal.probe is not None
    out = _calibrated_run(tiny_classifier, cal, docs)
    assert len(out) == 10 and all(v.verdict in ("yes", "no", "uncertain") for v in out)
    assert all(v.hidden is None for v in out)
    path = cal.save()
    assert path.is_file() and str(path).startswith(str(tmp_path))
    again = Calibrator.load(tiny_classifier.fingerprint, "Is it even?")
    assert again is not None and again.to_dict() == cal.to_dict()
    assert (again.probe is None) == (cal.probe is None)
    out_again = _calibrated_run(tiny_classifier, again, docs)
    assert [v.margin for v in out_again] == pytest.approx([v.margin for v in out], abs=1e-5)
    assert Calibrator.load(tiny_classifier.fingerprint, "Another question?") is None


def test_calibrator_for_fits_saves_and_reloads(tiny_classifier, tmp_path):
    from engine.gather import calibrator_for

    docs = [Document(id=f"d{i}", text=f"text {i} " + "no " * i) for i in range(8)]
    labels = {d.id: i < 4 for i, d in enumerate(docs)}
    fitted = calibrator_for(tiny_classifier, "Is it short?", docs, labels, folder=tmp_path)
    assert fitted.platt is not None
    loaded = calibrator_for(tiny_classifier, "Is it short?", folder=tmp_path, band=0.25)
    assert loaded.platt == fitted.platt and loaded.band == 0.25
    fresh = calibrator_for(tiny_classifier, "Is it short?", folder=tmp_path, use_saved=False)
    assert fresh.platt is None and fresh.method == "margin"


# --- the general probe refit to labels (its own weights as the prior) ------------------------------
def _general_and_truth(d: int = 40, seed: int = 0):
    """A general probe whose direction is partly right for a question whose true direction is known."""
    from engine.confidence.general import GeneralProbe

    rng = np.random.default_rng(seed)
    truth = rng.normal(size=d)
    other = rng.normal(size=d)
    w0 = 0.6 * truth / np.linalg.norm(truth) + 0.8 * other / np.linalg.norm(other)  # cos 0.6 with the truth
    general = GeneralProbe("0" * 64, 3, np.zeros(d), np.ones(d), w0, 0.0, info={"platt_from_logo": [0.25, -0.5]})
    general = dataclasses.replace(general, w=general.w * 0.25, b=-0.5)  # shipped with its temperature folded in

    def draw(n):
        x = rng.normal(size=(n, d))
        return x, x @ truth + 0.5 * rng.normal(size=n) > 0

    return general, truth, draw


def test_a_refit_general_probe_never_ranks_much_worse_and_learns_from_more_labels():
    from engine.confidence.calibrate import anchor

    general, truth, draw = _general_and_truth()
    test_x, test_y = draw(4000)
    before = metrics.auc(test_y, general.decision(test_x))
    gains = {}
    for k in (1, 4, 32):
        aucs = []
        for seed in range(5):
            x, y = draw(400)
            rng = np.random.default_rng(seed)
            pick = np.concatenate([rng.choice(np.flatnonzero(y), k, replace=False),
                                   rng.choice(np.flatnonzero(~y), k, replace=False)])
            w, b = anchor(general, x[pick], y[pick], 10.0)
            aucs.append(metrics.auc(test_y, test_x @ w + b))
        gains[k] = float(np.mean(aucs)) - before
    assert gains[1] > -0.02  # one label of each moves it a little, never much for the worse
    assert gains[32] > gains[4] > gains[1] and gains[32] > 0.05  # more labels, more of the truth


def test_under_an_overwhelming_prior_the_refit_keeps_the_shipped_weights_in_their_scale():
    from engine.confidence.calibrate import anchor

    general, _, draw = _general_and_truth(seed=1)
    x, y = draw(50)
    w, b = anchor(general, x[:2], np.array([bool(y[0]), not bool(y[0])]), 1e9)  # an overwhelming prior
    assert w == pytest.approx(general.w, abs=1e-6)  # the direction and the shipped temperature stay
    assert abs(b - general.b) < 0.25 * 2  # the bias (the share of yes) is the labels' to move, a little


def test_labeled_documents_are_scored_as_the_refit_scores_documents_it_never_saw():
    """A refit on 16 + 16 labels in many dimensions separates its own labels whatever they say; the
    score each labeled document gets from the refit without it must not: on labels that are pure
    noise it ranks them at chance, and on real labels as the refit ranks fresh documents."""
    from engine.confidence.calibrate import anchor, held_out_scores

    general, _, draw = _general_and_truth(seed=2)
    test_x, test_y = draw(4000)
    rng = np.random.default_rng(0)
    inside, held, unseen, noise_inside, noise_held = [], [], [], [], []
    for _ in range(4):
        x, y = draw(400)
        pick = np.concatenate([rng.choice(np.flatnonzero(y), 16, replace=False),
                               rng.choice(np.flatnonzero(~y), 16, replace=False)])
        w, b = anchor(general, x[pick], y[pick], 10.0)
        inside.append(metrics.auc(y[pick], x[pick] @ w + b))
        held.append(metrics.auc(y[pick], held_out_scores(general, x[pick], y[pick], 10.0)))
        unseen.append(metrics.auc(test_y, test_x @ w + b))
        noise = rng.permutation(y[pick])
        w, b = anchor(general, x[pick], noise, 10.0)
        noise_inside.append(metrics.auc(noise, x[pick] @ w + b))
        noise_held.append(metrics.auc(noise, held_out_scores(general, x[pick], noise, 10.0)))
    assert np.mean(noise_inside) > 0.9 and np.mean(noise_held) < 0.65
    assert abs(np.mean(held) - np.mean(unseen)) < 0.05 < np.mean(inside) - np.mean(unseen)
    # beyond `folds` documents, each fold is scored by the refit on the others
    x, y = draw(80)
    folded = held_out_scores(general, x, y, 10.0, folds=8)
    w, b = anchor(general, x[np.arange(80) % 8 != 3], y[np.arange(80) % 8 != 3], 10.0)
    assert folded[np.arange(80) % 8 == 3] == pytest.approx(x[np.arange(80) % 8 == 3] @ w + b)


def test_the_calibrator_says_how_well_scores_that_never_saw_the_labels_rank_them():
    """`unseen_auc`, which the batch decisions gate on: with one label of each class, the label-free
    general probe's AUC on them (a refit on both has seen both); from two of each, the AUC of the
    scores the refit without each gives (`held_out_scores`), which are also the anchors' scores. It
    is saved and loaded with the calibrator."""
    from engine.confidence.calibrate import ANCHOR_L2, held_out_scores

    general, _, draw = _general_and_truth(seed=4)
    x, y = draw(200)
    z = general.decision(x)
    wrong_way = [int(np.flatnonzero(y)[np.argmin(z[y])]), int(np.flatnonzero(~y)[np.argmax(z[~y])])]

    def features(rows):
        return Features([f"d{i}" for i in rows], np.zeros(len(rows)), np.ones(len(rows)), x[rows][:, None, :], [3])

    cal = Calibrator(question="q", general=general, use_general=True)
    cal.fit_labels(features(wrong_way), [True, False])
    assert cal.method == "anchored" and cal.unseen_auc == 0.0
    rows = list(np.flatnonzero(y)[:3]) + list(np.flatnonzero(~y)[:3])
    cal.fit_labels(features(rows), list(y[rows]))
    expected = metrics.auc(y[rows], held_out_scores(general, x[rows], y[rows], ANCHOR_L2))
    assert cal.unseen_auc == pytest.approx(expected)
    assert metrics.auc(y[rows], [cal.anchors[f"d{i}"][0] for i in rows]) == pytest.approx(expected)
    assert Calibrator.from_dict(cal.to_dict()).unseen_auc == pytest.approx(expected)
    assert np.isnan(Calibrator.from_dict({"question": "q"}).unseen_auc)  # saved before it was kept
