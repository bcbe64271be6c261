"""A general answer probe for any model, fitted from the shipped corpus (`verdict models calibrate`).

The corpus is resources/general: yes/no questions over genres of real text, labeled by structure
the text does not state (manifest.json says how). For each genre every question is asked of every
document once, keeping the margin and the hidden state after one layer (70% of the depth: layer
21 of 30, as the default model's shipped probe) minus the question's content-free state; each
genre is cached on disk as it finishes, so an interrupted run goes on where it stopped. The probe
is the shipped recipe: one logistic regression (L2 100, each question's classes weighted alike)
on the training genres, its log-odds scaled by a Platt fitted on leave-one-genre-out decisions,
judged on the held-out genres against the raw margin. It is saved under the model's fingerprint
in the user's data folder, where `engine.gather.general_probe` finds it.
"""
from __future__ import annotations

import functools
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from engine.confidence import metrics
from engine.confidence.calibrate import NULL_TEXTS, fit_platt, platt_prior
from engine.confidence.general import GeneralProbe, fitted_probes_dir, save_general_probe
from engine.confidence.probe import default_layer
from engine.atomic import atomic_path
from engine.folders import data_dir
from engine.gather import content_free, probe_fingerprint
from engine.types import Document

LAYER_FRACTION = 0.7
L2 = 100.0
MAX_CHARS = 1500


def corpus_dir() -> Path:
    """resources/general of the source tree or the packaged app."""
    frozen = getattr(sys, "_MEIPASS", None)
    root = Path(frozen) if frozen else Path(__file__).resolve().parents[1]
    return root / "resources" / "general"


def probe_layer(n_layers: int) -> int:
    """The layer the probe reads: 70% of the depth."""
    return default_layer(n_layers, LAYER_FRACTION)


@dataclass
class GenreFeatures:
    """One genre, scored: per document and question the margin, label (1/0/-1: none) and state."""

    questions: list[str]
    labels: np.ndarray  # (n, q) int8
    margin: np.ndarray  # (n, q)
    hidden: np.ndarray  # (n, q, D): state minus the question's content-free state


def _genre_rows(genre: str, max_docs: int) -> tuple[list[dict], list[str]]:
    rows = [json.loads(line) for line in (corpus_dir() / f"{genre}.jsonl").read_text(encoding="utf-8").splitlines()]
    questions = sorted({q for r in rows for q in r["labels"]})
    if max_docs and len(rows) > max_docs:
        rows = rows[:max_docs]
    return rows, questions


def score_genre(clf, genre: str, layer: int, max_docs: int = 0, step: Optional[Callable[[int], None]] = None
                ) -> GenreFeatures:
    """Ask every question of the genre of every document (each prefilled once for all of them)."""
    rows, questions = _genre_rows(genre, max_docs)
    docs = [Document(id=str(r["id"]), text=r["text"][:MAX_CHARS]) for r in rows]
    n, q = len(docs), len(questions)
    margin, hidden, filled = np.full((n, q), np.nan), None, np.zeros((n, q), bool)
    position = {question: j for j, question in enumerate(questions)}
    for v in clf.score_iter(questions, docs, layers=[layer]):
        if hidden is None and v.ok:
            hidden = np.zeros((n, q, len(v.states[layer])), dtype=np.float32)
        i, j = v.document_index, position[v.question]
        if v.ok:
            margin[i, j], hidden[i, j] = v.raw_margin, v.states[layer]
            filled[i, j] = True
        if step is not None:
            step(1)
    null = np.zeros((q, hidden.shape[2]), dtype=np.float32)
    for j, question in enumerate(questions):
        try:
            null[j] = content_free(clf, question, [layer])[1][layer]
        except ValueError:  # no content-free document could be scored: nothing to subtract
            pass
    labels = np.array([[(-1 if r["labels"].get(question) is None else int(bool(r["labels"][question])))
                        for question in questions] for r in rows], dtype=np.int8)
    labels[~filled] = -1  # a document that could not be scored is left out
    return GenreFeatures(questions, labels, margin, (hidden - null[None]).astype(np.float16))


def _save(path: Path, features: GenreFeatures) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, durable=False) as tmp:
        np.savez(tmp, questions=np.array(features.questions), labels=features.labels, margin=features.margin,
                 hidden=features.hidden)


def _load(path: Path) -> Optional[GenreFeatures]:
    try:
        with np.load(path) as d:
            return GenreFeatures([str(x) for x in d["questions"]], d["labels"], d["margin"], d["hidden"])
    except (OSError, ValueError, KeyError):
        return None


def _pairs(genres: dict[str, GenreFeatures]) -> tuple[np.ndarray, ...]:
    """(genre, question, y, margin, x) over every labeled pair."""
    parts = []
    for genre, f in genres.items():
        doc, q = np.nonzero(f.labels >= 0)
        parts.append((np.full(len(doc), genre), np.array(f.questions)[q], f.labels[doc, q] == 1,
                      f.margin[doc, q], f.hidden[doc, q].astype(np.float64)))
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(5))


def _fit(question: np.ndarray, y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(mean, scale, w, b) with each question's two classes weighing the same (the rarer repeated)."""
    keep = []
    for q in np.unique(question):
        m = np.flatnonzero(question == q)
        pos, neg = m[y[m]], m[~y[m]]
        if len(pos) and len(neg):
            small, large = (pos, neg) if len(pos) < len(neg) else (neg, pos)
            keep += [large, np.tile(small, len(large) // len(small)), small[: len(large) % len(small)]]
    if not keep:
        raise ValueError("too few documents: no question has both a yes and a no among them")
    rows = np.concatenate(keep)
    mean = x[rows].mean(axis=0)
    scale = x[rows].std(axis=0)
    scale[scale < 1e-6] = 1.0
    with metrics.numpy_blas_threads(1):
        fit = metrics.logistic_regression((x[rows] - mean) / scale, y[rows], L2)
    return mean, scale, fit.w, float(fit.b)


def _mean_auc(question: np.ndarray, y: np.ndarray, s: np.ndarray) -> float:
    aucs = [metrics.auc(y[question == q], s[question == q]) for q in np.unique(question)]
    aucs = [a for a in aucs if np.isfinite(a)]
    return float(np.mean(aucs)) if aucs else float("nan")


def fit_general(fingerprint: str, layer: int, train: dict[str, GenreFeatures], held: dict[str, GenreFeatures],
                info: Optional[dict] = None) -> GeneralProbe:
    """The general probe from scored genres: fitted on `train`, scaled by a Platt on its
    leave-one-genre-out decisions there, judged on `held` (mean AUC per question, and the raw
    margin's)."""
    genre, question, y, margin, x = _pairs(train)
    pooled = np.zeros(len(y))
    for g in np.unique(genre):
        m = genre == g
        mean, scale, w, b = _fit(question[~m], y[~m], x[~m])
        pooled[m] = ((x[m] - mean) / scale) @ w + b
    platt = fit_platt(pooled, y, l2=1e-3)
    prior = None  # the Bayesian Platt's prior (engine.confidence.decide), in the shipped scale
    if platt.a > 0:
        try:
            prior = platt_prior(pooled, y, question).rescaled(platt.a, platt.b).to_dict()
        except ValueError:  # fewer than three questions with both answers
            pass
    mean, scale, w, b = _fit(question, y, x)
    heldout = heldout_margin = float("nan")
    if held:
        _, hq, hy, hmargin, hx = _pairs(held)
        heldout = _mean_auc(hq, hy, ((hx - mean) / scale) @ w + b)
        heldout_margin = _mean_auc(hq, hy, hmargin)
    return GeneralProbe(fingerprint, layer, mean, scale, w * platt.a, float(b * platt.a + platt.b),
                        heldout_auc=heldout, heldout_auc_margin=heldout_margin,
                        info={**(info or {}), "platt_from_logo": [platt.a, platt.b], "l2": L2,
                              **({"platt_prior": prior} if prior else {}),
                              "train_genres": sorted(train), "heldout_genres": sorted(held),
                              "train_pairs": int(len(y)), "built_by": "verdict models calibrate"},
                        subtract_null=True, null_texts=tuple(NULL_TEXTS), label_free_band=float("inf"))


def calibrate_model(clf, *, max_docs: int = 0, folder: Optional[Path] = None,
                    say: Callable[[str], None] = lambda line: None,
                    step: Optional[Callable[[int], None]] = None) -> tuple[GeneralProbe, Path]:
    """Score the corpus with `clf` (each genre cached as it finishes: a second call goes on where an
    interrupted one stopped), fit its general probe and save it (`folder`, default the user's);
    returns the probe and the path of its .json."""
    manifest = json.loads((corpus_dir() / "manifest.json").read_text(encoding="utf-8"))
    fingerprint = probe_fingerprint(clf)
    if fingerprint is None:
        raise ValueError("this backend returns no hidden states: a general probe can't be fitted through it")
    layer = probe_layer(clf.n_layers)
    cache = data_dir() / "general-features" / f"{fingerprint}-layer{layer}-docs{max_docs or 'all'}"
    scored: dict[str, GenreFeatures] = {}
    for genre in manifest["train_genres"] + manifest["held_out_genres"]:
        path = cache / f"{genre}.npz"
        features = _load(path)
        if features is None:
            say(f"scoring {genre}")
            features = score_genre(clf, genre, layer, max_docs, step)
            _save(path, features)
        else:
            say(f"{genre}: already scored")
            if step is not None:
                step(int(features.labels.shape[0] * features.labels.shape[1]))
        scored[genre] = features
    train = {g: scored[g] for g in manifest["train_genres"]}
    held = {g: scored[g] for g in manifest["held_out_genres"]}
    probe = fit_general(fingerprint, layer, train, held, {"model": getattr(clf, "model_name", "")})
    return probe, save_general_probe(probe, folder or fitted_probes_dir())


@functools.lru_cache(maxsize=None)
def _corpus_counts(max_docs: int) -> tuple[int, int, int]:
    """(documents, document-question pairs, characters read) of the corpus, read once (it ships
    with the code)."""
    manifest = json.loads((corpus_dir() / "manifest.json").read_text(encoding="utf-8"))
    documents = pairs = characters = 0
    for genre in manifest["train_genres"] + manifest["held_out_genres"]:
        rows, questions = _genre_rows(genre, max_docs)
        documents, pairs = documents + len(rows), pairs + len(rows) * len(questions)
        characters += sum(min(len(r["text"]), MAX_CHARS) for r in rows) + len(rows) * sum(map(len, questions))
    return documents, pairs, characters


def corpus_size(max_docs: int = 0) -> int:
    """(document, question) pairs `calibrate_model` scores, for a progress bar."""
    return _corpus_counts(max_docs)[1]


def corpus_documents(max_docs: int = 0) -> int:
    """Documents `calibrate_model` prefills (each once for all its genre's questions)."""
    return _corpus_counts(max_docs)[0]


def corpus_characters(max_docs: int = 0) -> int:
    """Characters `calibrate_model` has the model read (each document as cut, and each question
    asked after it), for an estimate of its time."""
    return _corpus_counts(max_docs)[2]
