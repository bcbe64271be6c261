"""`verdict evaluate`: how good are the verdicts for a question, measured on the user's labels.

One classification pass over the labeled documents (keeping the hidden states of the probe's
layer and the final one), then stratified k-fold cross-validation: every number below is computed
on documents whose labels the fitted parts never saw.

  raw         sigmoid(raw margin)                       no labels
  contextual  sigmoid(margin - mean null margin)        no labels (Zhao et al. 2021)
  batch       sigmoid(margin - median margin)           no labels (Zhou et al. 2023)
  calibrated  the label-free default: the general probe where one ships for the model and beat
              the margin on held-out genres, else calibrate.DEFAULT_SHIFT (none, see below)
  platt       Platt scaling of the margin, fitted on the training folds
  probe       linear probe on the hidden state + Platt on its out-of-fold log-odds
  general     the model's shipped general probe (engine.confidence.general)    no labels
  general_platt  Platt on the general probe's log-odds, fitted on the training folds

plus the probe's learning curve (pooled out-of-fold AUC when each fold trains on only 4, 8, 16, 32
labels per class, averaged over `repeats` draws) and, per method, the coverage and accuracy of the
decided (not "uncertain") verdicts at the band.

What these gave for the default model on `resources/labeled`, and why the label-free shifts are
off by default: docs/calibration-defaults.md.
"""
from __future__ import annotations

import json
import math
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

from engine.confidence import metrics
from engine.confidence.calibrate import (
    DEFAULT_BAND,
    DEFAULT_MASS_FLOOR,
    DEFAULT_SHIFT,
    Calibrator,
    batch_shift,
    fit_platt,
    read_labels,
)
from engine.confidence.general import GeneralProbe
from engine.confidence.probe import Features, default_layer
from engine.types import Document

METHODS = ("raw", "contextual", "batch", "calibrated", "platt", "probe", "general", "general_platt")
CURVE_SIZES = (4, 8, 16, 32)


def records_to_documents(records: Iterable[Mapping]) -> tuple[list[Document], dict[str, bool]]:
    """Documents and their labels from labeled records (`id`, `text`, `label`)."""
    records = list(records)
    labels = read_labels(records)
    docs, seen = [], set()
    for i, r in enumerate(records):
        doc_id = str(r.get("id", i))
        if doc_id in seen:
            raise ValueError(f"duplicate id {doc_id!r} in the labeled records")
        seen.add(doc_id)
        docs.append(Document(id=doc_id, text=str(r.get("text", ""))))
    return docs, labels


def _scores(y: np.ndarray, p: np.ndarray, mass: np.ndarray, band: float, floor: float) -> dict:
    z = np.log(np.clip(p, 1e-12, 1)) - np.log(np.clip(1 - p, 1e-12, 1))
    decided = (np.abs(z) >= band) & (mass >= floor)
    return {
        "auc": metrics.auc(y, p),
        "accuracy": metrics.accuracy(y, p),
        "brier": metrics.brier(y, p),
        "ece": metrics.ece(y, p),
        "coverage": float(decided.mean()),
        "accuracy_decided": float(((p[decided] > 0.5) == y[decided]).mean()) if decided.any() else float("nan"),
    }


def _subset(features: Features, index: np.ndarray) -> Features:
    return Features(
        ids=[features.ids[i] for i in index],
        margin=features.margin[index],
        label_mass=features.label_mass[index],
        hidden=features.hidden[index],
        layers=features.layers,
    )


def _fold_log_odds(
    features: Features, y: np.ndarray, train: np.ndarray, test: np.ndarray, layer: int, probe: bool, k: int, **cal
) -> np.ndarray:
    cal_ = Calibrator(question="", **cal).fit_labels(_subset(features, train), y[train], probe=probe, probe_layer=layer, k=k)
    if probe:
        cal_.use_probe = True  # this row of the table is the probe itself, whether or not it won
    column = features.layers.index(cal_.probe.layer) if probe else None
    return np.array(
        [cal_.log_odds(features.margin[i], features.hidden[i, column] if probe else None) for i in test]
    )


def evaluate_features(
    features: Features,
    labels: Sequence[bool],
    *,
    null_margin: float = float("nan"),
    probe_layer: Optional[int] = None,
    k: int = 5,
    seed: int = 0,
    curve_sizes: Sequence[int] = CURVE_SIZES,
    repeats: int = 3,
    band: float = DEFAULT_BAND,
    mass_floor: float = DEFAULT_MASS_FLOOR,
    general: GeneralProbe | None = None,
    general_null=None,
) -> dict:
    """The cross-validated comparison on already extracted features (see `evaluate`). With a
    `general` probe whose layer was extracted, its label-free log-odds are a method too
    (`general_null`: the question's content-free state, when the probe reads the difference)."""
    y = np.asarray(labels, dtype=bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 < 2 or n0 < 2:
        raise ValueError(f"evaluation needs at least 2 labeled documents of each class (have {n1} yes, {n0} no)")
    k = max(2, min(k, n1, n0))
    layer = probe_layer if probe_layer is not None else default_layer(max(features.layers))
    margin, mass = features.margin, features.label_mass
    with metrics.numpy_blas_threads(1):
        log_odds = {
            "raw": margin.copy(),
            "contextual": margin - (null_margin if np.isfinite(null_margin) else 0.0),
            "batch": margin - batch_shift(margin),
        }
        log_odds["calibrated"] = log_odds[{"none": "raw"}.get(DEFAULT_SHIFT, DEFAULT_SHIFT)]
        log_odds["platt"], log_odds["probe"] = np.zeros(len(y)), np.zeros(len(y))
        for train, test in metrics.stratified_folds(y, k, seed):
            log_odds["platt"][test] = _fold_log_odds(features, y, train, test, layer, False, k)
            log_odds["probe"][test] = _fold_log_odds(features, y, train, test, layer, True, k)
        if general is not None and general.layer in features.layers:
            z = general.decision(features.hidden[:, features.layers.index(general.layer)], general_null)
            log_odds["general"], log_odds["general_platt"] = z, np.zeros(len(y))
            for train, test in metrics.stratified_folds(y, k, seed):
                log_odds["general_platt"][test] = fit_platt(z[train], y[train], prior=(1.0, 0.0)).logit(z[test])
            if general.beats_margin:  # then it is the label-free default a run uses
                log_odds["calibrated"] = z

        curve = {}
        rng = np.random.default_rng(seed)
        for size in curve_sizes:
            aucs = []
            for rep in range(repeats):
                pooled = np.full(len(y), np.nan)
                for train, test in metrics.stratified_folds(y, k, seed + 1 + rep):
                    pos, neg = train[y[train]], train[~y[train]]
                    if min(len(pos), len(neg)) < size:
                        break
                    small = np.concatenate([rng.choice(pos, size, replace=False), rng.choice(neg, size, replace=False)])
                    pooled[test] = _fold_log_odds(features, y, small, test, layer, True, min(k, size))
                if np.isfinite(pooled).all():
                    aucs.append(metrics.auc(y, pooled))
            if aucs:
                curve[str(size)] = float(np.mean(aucs))

    general_is_default = general is not None and "general" in log_odds and general.beats_margin
    label_free_general = ("general", "calibrated") if general_is_default else ("general",)
    bands = {name: general.band_before_labels(band) if name in label_free_general else band for name in log_odds}
    methods = {name: _scores(y, metrics.sigmoid(z), mass, bands[name], mass_floor) for name, z in log_odds.items()}
    return {
        "methods": methods,
        "learning_curve": curve,
        "n": int(len(y)),
        "n_yes": n1,
        "n_no": n0,
        "folds": k,
        "probe_layer": int(layer),
        "layers": int(max(features.layers)),
        "null_margin": None if not np.isfinite(null_margin) else float(null_margin),
        "median_margin": float(np.median(margin)),
        "band": band,
        "mass_floor": mass_floor,
        "calibrated_is": "general" if general_is_default else DEFAULT_SHIFT,
    } | ({} if "general" not in bands else {
        # the band of the label-free general rows; null: infinite (none is confident before labels)
        "general_band": bands["general"] if math.isfinite(bands["general"]) else None})


def layer_scan(features: Features, labels: Sequence[bool], *, k: int = 5, seed: int = 0, repeats: int = 3,
               size: int = 16) -> dict:
    """Per extracted layer: the probe's pooled out-of-fold AUC with all training labels ("all")
    and with `size` labels per class (mean over `repeats` draws)."""
    y = np.asarray(labels, dtype=bool)
    out = {}
    rng = np.random.default_rng(seed)
    with metrics.numpy_blas_threads(1):
        for lay in features.layers:
            full, small = np.zeros(len(y)), []
            for train, test in metrics.stratified_folds(y, k, seed):
                full[test] = _fold_log_odds(features, y, train, test, lay, True, k)
            for rep in range(repeats):
                pooled = np.zeros(len(y))
                for train, test in metrics.stratified_folds(y, k, seed + 1 + rep):
                    pos, neg = train[y[train]], train[~y[train]]
                    n = min(size, len(pos), len(neg))
                    pick = np.concatenate([rng.choice(pos, n, replace=False), rng.choice(neg, n, replace=False)])
                    pooled[test] = _fold_log_odds(features, y, pick, test, lay, True, min(k, n))
                small.append(metrics.auc(y, pooled))
            out[str(lay)] = {"all": metrics.auc(y, full), str(size): float(np.mean(small))}
    return out


def format_table(result: Mapping) -> str:
    """A plain-text table of an `evaluate` result."""
    def cell(value, width=9):
        return f"{value:>{width}.3f}" if isinstance(value, (int, float)) and math.isfinite(value) else f"{'-':>{width}}"

    lines = []
    if result.get("question"):
        lines.append(f"question: {result['question']}")
    if result.get("model"):
        lines.append(f"model:    {result['model']}")
    lines.append(
        f"{result['n']} labeled documents ({result.get('n_yes', '?')} yes, {result.get('n_no', '?')} no), "
        f"{result.get('folds', '?')}-fold cross-validation; probe on layer {result.get('probe_layer', '?')}"
        f" of {result.get('layers', '?')}"
    )
    band = result.get("band", DEFAULT_BAND)
    header = f"{'method':<12}{'AUC':>9}{'accuracy':>9}{'Brier':>9}{'ECE':>9}   {'coverage':>9}{'acc@cov':>9}"
    lines += ["", header, "-" * len(header)]
    for name, m in result["methods"].items():
        lines.append(
            f"{name:<12}{cell(m['auc'])}{cell(m['accuracy'])}{cell(m['brier'])}{cell(m['ece'])}   "
            f"{cell(m.get('coverage'))}{cell(m.get('accuracy_decided'))}"
        )
    lines.append(f"(coverage: share not 'uncertain' at band {band:g} and label mass >= {result.get('mass_floor', DEFAULT_MASS_FLOOR):g};"
                 " acc@cov: accuracy on those)")
    if "general_band" in result:
        rows = "general and calibrated" if result.get("calibrated_is") == "general" else "general"
        lines.append(f"({rows}: label-free, so the general probe's own band: "
                     + ("none is confident before labels)" if result["general_band"] is None
                        else f"{result['general_band']:g})"))
    if result.get("learning_curve"):
        lines.append("")
        lines.append("probe AUC with N labels per class: " + ", ".join(
            f"{size}: {auc:.3f}" for size, auc in result["learning_curve"].items()))
    if result.get("layer_auc"):
        lines.append("")
        lines.append("probe AUC per layer (all training labels / 16 per class):")
        for lay, row in result["layer_auc"].items():
            values = " / ".join(f"{v:.3f}" for v in row.values())
            lines.append(f"  layer {lay:>3}: {values}")
    if result.get("null_margin") is not None:
        lines.append(f"content-free null margin {result['null_margin']:+.3f}, median margin {result['median_margin']:+.3f}")
    return "\n".join(lines)


def read_jsonl(path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
