"""Scoring without the model's own answer: each prompt stops at the deepest layer a probe reads.

The states there must be stock mlx-lm's after the same blocks, the blocks above must not run, and
the pipeline's rows must be the full pass's rows less the answer (`raw_margin`, `label_mass`)."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from engine.classifier import Classifier
from engine.intake import load_documents
from engine.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "resources" / "samples"
QUESTIONS = ["Is it a document?", "Does it talk about words?"]
TEXTS = ["the document", "Yes, the document is long and has words", "short"]


class CountedBlock:
    """A decoder block that counts its calls (what it returns is the block's own)."""

    def __init__(self, block) -> None:
        self.block, self.calls = block, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.block(*args, **kwargs)


def stock_margin(stock, clf, ids) -> float:
    logits = stock(mx.array([ids]))[0, -1].astype(mx.float32)
    logp = np.array(logits - mx.logsumexp(logits), dtype=np.float64)
    yes, no = clf.backend.yes_ids, clf.backend.no_ids
    return float(np.logaddexp.reduce(logp[yes]) - np.logaddexp.reduce(logp[no]))


def test_without_the_answer_each_prompt_stops_at_the_layer_asked_with_stock_mlx_lms_state(tiny_model_dir):
    from mlx_lm.utils import load_model as stock_load

    clf = Classifier.load(tiny_model_dir)
    stock, _ = stock_load(tiny_model_dir)
    backend = clf.backend
    assert backend.n_layers == 2
    backend._blocks = [CountedBlock(b) for b in backend._blocks]
    anything = lambda question, margins, states: [0.0] * len(margins)  # noqa: E731  (one window each here)

    shallow = clf.score(QUESTIONS, TEXTS, layers=[1], answer=False, window_score=anything)
    assert [b.calls for b in backend._blocks][1] == 0  # the block above the layer asked never ran
    assert backend._blocks[0].calls >= 2  # the instructions, the documents, the tails
    for v in shallow:
        assert math.isnan(v.raw_margin) and math.isnan(v.label_mass) and math.isnan(v.probability)
        assert v.verdict == "uncertain" and sorted(v.states) == [1]
        ids = mx.array([clf.encoder.encode(v.question, TEXTS[v.document_index]).all])
        h = stock.model.layers[0](stock.model.embed_tokens(ids), "causal", None)
        np.testing.assert_allclose(v.states[1], np.array(h[0, -1]), atol=1e-4)

    # The instructions kept from the shallow pass hold one block: a whole pass must not reuse them
    # as they are, and its margins are stock mlx-lm's.
    full = clf.score(QUESTIONS, TEXTS, layers=[1])
    assert backend._blocks[1].calls > 0
    for v, s in zip(full, shallow):
        np.testing.assert_allclose(v.states[1], s.states[1], atol=1e-5)
        ids = clf.encoder.encode(v.question, TEXTS[v.document_index]).all
        assert v.raw_margin == pytest.approx(stock_margin(stock, clf, ids), abs=1e-3)
        assert 0 < v.label_mass <= 1


def test_without_the_answer_a_score_needs_a_layer_and_a_window_scorer(tiny_classifier):
    with pytest.raises(ValueError, match="at least one layer"):
        tiny_classifier.score(QUESTIONS, TEXTS, answer=False, window_score=lambda q, m, s: list(m))
    with pytest.raises(ValueError, match="window_score"):
        tiny_classifier.score(QUESTIONS, TEXTS, layers=[1], answer=False)


def test_the_pipeline_gives_the_full_passes_rows_less_the_models_answer(default_classifier, tmp_path):
    """The default model's general probe reads layer 21 of 30: the same probabilities, scores and
    calls (over the batch, and for a document of two windows the same window) with the blocks
    above it left out."""
    docs = load_documents([SAMPLES])
    long_text = " ".join(d.text for d in docs) * 2  # past the 1,024-token window: two windows or more
    texts = [d.text for d in docs] + [long_text]
    questions = ["Is this about food or cooking?", "Does this ask the reader to pay money?"]
    pipeline = Pipeline(default_classifier, save=False, folder=tmp_path)
    assert all(pipeline.calibrator(q).layers == [21] for q in questions)
    full = list(pipeline.run(questions, texts))
    shallow = list(pipeline.run(questions, texts, answer=False))
    assert max(v.windows for v in full) >= 2
    assert [(v.document_id, v.question, v.verdict) for v in shallow] == [(v.document_id, v.question, v.verdict)
                                                                          for v in full]
    for a, b in zip(shallow, full):
        assert a.score == pytest.approx(b.score, abs=1e-4)
        assert a.probability == pytest.approx(b.probability, abs=1e-4)
        assert (a.windows, a.window_index) == (b.windows, b.window_index)
        assert math.isnan(a.raw_margin) and math.isnan(a.label_mass)
        assert math.isfinite(b.raw_margin) and math.isfinite(b.label_mass)
    assert not any("whole model" in note for note in pipeline.notes())


def test_where_the_margin_decides_every_prompt_goes_through_the_whole_model_with_a_note(tiny_classifier, tmp_path):
    pipeline = Pipeline(tiny_classifier, save=False, folder=tmp_path)  # no general probe for a tiny model
    assert pipeline.calibrator(QUESTIONS[0]).layers == []
    rows = list(pipeline.run(QUESTIONS[0], TEXTS, answer=False, decisions="row"))
    assert all(math.isfinite(v.raw_margin) and math.isfinite(v.label_mass) for v in rows)
    assert [v.score for v in rows] == pytest.approx([v.raw_margin for v in rows])
    assert any("every prompt went through the whole model" in note for note in pipeline.notes())


def test_the_cli_probe_only_rows_match_and_leave_the_answer_empty(tmp_path):
    def run(*extra):
        command = [sys.executable, "-m", "engine.cli", "classify", "-q", "Is this about food or cooking?",
                   str(SAMPLES), "-f", "jsonl", *extra]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT,
                              env={**os.environ, "VERDICT_DATA_DIR": str(tmp_path)})
        assert done.returncode == 0, done.stderr[-2000:]
        return [json.loads(line) for line in done.stdout.splitlines()], done.stderr

    full, _ = run()
    shallow, notes = run("--probe-only")
    assert "Traceback" not in notes and "RuntimeWarning" not in notes
    assert [r["id"] for r in shallow] == [r["id"] for r in full] and len(full) == 8
    for a, b in zip(shallow, full):
        assert (a["verdict"], a["error"]) == (b["verdict"], b["error"])
        assert a["probability"] == pytest.approx(b["probability"], abs=1e-4)
        assert a["raw_margin"] is None and a["label_mass"] is None
        assert b["raw_margin"] is not None and b["label_mass"] is not None
