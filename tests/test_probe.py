"""Probes: middle-layer capture, fitting, and saving per model and question."""
from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from engine.confidence import metrics
from engine.gather import labeled_features as extract_features
from engine.confidence.probe import Features, default_layer, fit_probe, n_layers, resolve_layer
from engine.confidence.store import load_probe, calibrator_key, save_probe
from engine.folders import data_dir


def test_layer_numbering():
    assert default_layer(30) == 18  # measured on the default model (probe.py)
    assert default_layer(2) == 1
    assert resolve_layer(30, -1) == 30 and resolve_layer(30, 18) == 18
    with pytest.raises(ValueError):
        resolve_layer(30, 0)


def test_captured_states_equal_stock_mlx_lm_layer_outputs(tiny_model_dir, tiny_classifier):
    """States captured during the batched, cached prefill equal stock mlx-lm's own forward pass
    over each whole prompt: after block 1, and after the final norm."""
    from mlx_lm.utils import load_model as stock_load

    clf = tiny_classifier
    stock, _ = stock_load(tiny_model_dir)
    question, texts = "Is it a document?", ["the document", "Yes, the document is long and has words"]
    captured = clf.score(question, texts, layers=[1, -1])
    count = n_layers(clf)
    for text, v in zip(texts, captured):
        assert sorted(v.states) == [1, count]
        ids = mx.array([clf.encoder.encode(question, text).all])
        h = stock.model.embed_tokens(ids)
        h = stock.model.layers[0](h, "causal", None)
        np.testing.assert_allclose(v.states[1], np.array(h[0, -1]), atol=1e-4)
        final = stock.model(ids)[0, -1]  # every block and the final norm
        np.testing.assert_allclose(v.states[count], np.array(final), atol=1e-4)


def test_extract_features_skips_failed_documents(tiny_classifier):
    features = extract_features(tiny_classifier, "Is it?", ["one", "", "two"], layers=[1])
    assert features.ids == ["0", "2"]
    assert features.hidden.shape[:2] == (2, 1) and features.layers == [1]


def _separable(n=40, d=20, layers=(5, 10), seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2 == 0
    hidden = rng.normal(size=(n, len(layers), d))
    hidden[:, 0, 0] += np.where(y, 2.0, -2.0)  # the signal lives in the first extracted layer
    margin = rng.normal(size=n)
    return Features([f"d{i}" for i in range(n)], margin, np.full(n, 0.5), hidden.astype(np.float32), list(layers)), y


def test_fit_probe_defaults_and_selection():
    features, y = _separable()
    probe = fit_probe(features, y, model="m", question="q")  # default layer: 60% of 10 -> 6, absent -> deepest
    assert probe.layer == 10 and probe.l2 == 100.0
    chosen = fit_probe(features, y, model="m", question="q", select=True)
    assert chosen.layer == 5 and chosen.cv_auc > 0.9 and chosen.beats_margin
    assert metrics.auc(y, chosen.decision(features.hidden[:, 0])) > 0.95
    assert len(chosen.oof) == len(y)
    with pytest.raises(ValueError):
        fit_probe(features, y[:3] & False, model="m", question="q")


def test_probe_save_load_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("VERDICT_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path
    features, y = _separable()
    probe = fit_probe(features, y, model="Some/Model 1B", question="Is it?", layer=5)
    path = save_probe(probe)
    assert path.parent.parent == tmp_path / "probes" and path.suffix == ".json"
    again = load_probe("Some/Model 1B", "Is it?")
    assert again is not None and again.oof is None
    for name in ("model", "question", "layer", "b", "l2", "n_positive", "n_negative", "cv_auc", "cv_auc_margin"):
        assert getattr(again, name) == pytest.approx(getattr(probe, name)) if isinstance(getattr(probe, name), float) \
            else getattr(again, name) == getattr(probe, name)
    x = features.hidden[:, 0]
    np.testing.assert_allclose(again.decision(x), probe.decision(x))
    assert load_probe("Some/Model 1B", "Is it not?") is None
    assert load_probe("Other", "Is it?") is None


def test_calibrator_keys_are_per_model_and_question():
    assert calibrator_key("m", "Is it?") == calibrator_key("m", " Is it? ")
    assert calibrator_key("m", "Is it?") != calibrator_key("m", "Is it not?")
    assert calibrator_key("m", "Is it?") != calibrator_key("n", "Is it?")
    assert "/" not in calibrator_key("m", "a/b: c?")


def test_capture_on_a_qwen2_gguf(tiny_gguf):
    from engine import Classifier

    clf = Classifier.load(tiny_gguf)
    plain = clf.score("Is it?", ["one document", "another one"])
    captured = clf.score("Is it?", ["one document", "another one"], layers=[1, -1])
    for p, c in zip(plain, captured):
        assert c.raw_margin == pytest.approx(p.raw_margin, abs=1e-5) and p.states is None
        first, last = c.states[1], c.states[clf.n_layers]
        assert np.isfinite(first).all() and not np.allclose(first, last)


def test_numpy_blas_threads_limits_numpys_openblas_and_restores_it():
    """Read back through OpenBLAS's own getter (ctypes), not through threadpoolctl."""
    import ctypes

    from threadpoolctl import threadpool_info

    libs = [i for i in threadpool_info() if i["internal_api"] == "openblas" and "numpy" in i["filepath"]]
    if not libs:
        pytest.skip("numpy here has no OpenBLAS of its own")
    lib = ctypes.CDLL(libs[0]["filepath"])
    getter = next(getattr(lib, name) for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                                                  "openblas_get_num_threads") if hasattr(lib, name))
    before = getter()
    with metrics.numpy_blas_threads(1):
        assert getter() == 1
    assert getter() == before


def test_kept_verdicts_stand_in_for_scoring_a_document_again(tiny_classifier):
    """A refit from answers already scored (the window's kept states) uses them as they are: a kept
    verdict with every wanted layer's state is not scored again (its margin here is deliberately
    not the model's), one without that layer is scored, and the order follows the documents."""
    import dataclasses

    from engine.types import Document

    clf = tiny_classifier
    docs = [Document(id=f"d{i}", text=t) for i, t in enumerate(["Pay $5 now.", "A lemon tart.", "Pay the fine."])]
    fresh = extract_features(clf, "Is it a bill?", docs, layers=[1])
    scored = clf.score("Is it a bill?", docs, layers=[1])
    kept = {"d0": dataclasses.replace(scored[0], raw_margin=7.5, document_id="elsewhere"),
            "d2": dataclasses.replace(scored[2], states={2: scored[2].states[1]})}  # not the wanted layer
    mixed = extract_features(clf, "Is it a bill?", docs, layers=[1], kept=kept)
    assert mixed.ids == ["d0", "d1", "d2"]
    assert mixed.margin[0] == 7.5  # taken as kept, not scored
    np.testing.assert_allclose(mixed.margin[1:], fresh.margin[1:], atol=1e-5)  # scored (d2's kept state is another layer's)
    np.testing.assert_allclose(mixed.hidden, fresh.hidden, atol=1e-5)
    np.testing.assert_allclose(mixed.label_mass, fresh.label_mass, atol=1e-6)
