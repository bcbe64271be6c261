"""`verdict models calibrate`: a general probe fitted for a model from the shipped corpus, kept per
genre as it goes (so an interrupted run goes on), found by the runtime afterwards; and the fit
itself against genres whose answer direction is known."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from engine.general_fit import GenreFeatures, fit_general, probe_layer


def _genre(rng, direction: np.ndarray, questions: int = 4, n: int = 60, noise: float = 1.0) -> GenreFeatures:
    d = len(direction)
    labels = (rng.random((n, questions)) < 0.3).astype(np.int8)
    hidden = rng.normal(size=(n, questions, d)) * noise + labels[..., None] * direction
    return GenreFeatures([f"q{i}" for i in range(questions)], labels, rng.normal(size=(n, questions)),
                         hidden.astype(np.float16))


def test_the_fit_finds_the_direction_every_genre_shares_and_judges_held_out_genres_by_it():
    rng = np.random.default_rng(0)
    direction = np.zeros(16)
    direction[:4] = 1.5
    train = {f"g{i}": _genre(rng, direction) for i in range(4)}
    held = {"h": _genre(rng, direction)}
    probe = fit_general("a" * 64, 3, train, held)
    cosine = probe.w @ direction / np.linalg.norm(probe.w) / np.linalg.norm(direction)
    assert cosine > 0.9
    assert probe.heldout_auc > 0.9 and abs(probe.heldout_auc_margin - 0.5) < 0.1  # the margins here are noise
    assert probe.info["platt_from_logo"][0] > 0 and probe.subtract_null and probe.layer == 3
    assert probe.label_free_band == float("inf")
    # the Bayesian Platt's prior, in the shipped scale: the held-out genre's own calibration of the
    # shipped log-odds lies within it
    from engine.confidence.calibrate import fit_platt
    from engine.confidence.decide import PlattPrior

    prior = PlattPrior.from_dict(probe.info["platt_prior"])
    h = held["h"]
    scores = (h.hidden[:, 0].astype(np.float64) - probe.mean) / probe.scale @ probe.w + probe.b
    truth = fit_platt(scores, h.labels[:, 0] == 1)
    for value, mean, var in ((truth.a, prior.mean[0], prior.cov[0][0]), (truth.b, prior.mean[1], prior.cov[1][1])):
        assert abs(value - mean) < 3 * np.sqrt(var)
    assert prior.mean[0] > 0


def test_the_layer_is_seventy_percent_of_the_depth():
    assert probe_layer(30) == 21 and probe_layer(2) == 1 and probe_layer(1) == 1


def _calibrate(model, data):
    return subprocess.run([sys.executable, "-m", "engine.cli", "models", "calibrate", "--model", str(model),
                           "--max-docs", "3"], capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "VERDICT_DATA_DIR": str(data)})


def test_calibrate_fits_saves_and_resumes_and_the_runtime_uses_it(tiny_model_dir, tmp_path, monkeypatch):
    from engine import Classifier
    from engine.gather import calibrator_for, general_probe

    data = tmp_path / "data"
    monkeypatch.setenv("VERDICT_DATA_DIR", str(data))
    monkeypatch.setenv("VERDICT_GENERAL_PROBES", str(tmp_path / "none-shipped"))
    clf = Classifier.load(tiny_model_dir)
    assert general_probe(clf) is None
    first = _calibrate(tiny_model_dir, data)
    assert first.returncode == 0, first.stderr
    assert "scoring manpages" in first.stderr and "held-out genres: mean AUC" in first.stderr
    probe = general_probe(clf)
    assert probe is not None and probe.layer == probe_layer(clf.n_layers) and probe.subtract_null
    assert first.stdout.strip().endswith(".json")
    assert calibrator_for(clf, "Is it a test?", use_saved=False).general is not None

    cached = sorted((data / "general-features").glob("*/*.npz"))
    assert len(cached) == 8  # one file per genre of the corpus
    cached[0].unlink()  # as if interrupted before the first genre was kept
    again = _calibrate(tiny_model_dir, data)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("already scored") == 7 and again.stderr.count("scoring ") == 1
    refit = general_probe(clf)
    assert refit.w == pytest.approx(probe.w, abs=1e-5) and refit.b == pytest.approx(probe.b, abs=1e-5)


def test_calibrate_refuses_a_bad_count_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "engine.cli", "models", "calibrate", "--max-docs", "-1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "--max-docs" in done.stderr
