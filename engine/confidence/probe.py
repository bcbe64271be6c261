"""Linear probes: a regularised logistic regression on the model's hidden state at the answer
position, trained from a user's labels for one question, saved per model and question.

Layers are numbered by how many decoder blocks the state has gone through: layer `n_layers`
(or -1) is the final state after the model's last norm; layer k < n_layers is the residual
stream after block k. The scoring backend captures them during its prefill
(`Classifier.score(..., layers=[...])`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from engine.scoring import resolve_layer as resolve_layer_of_count
from engine.confidence import metrics

L2_GRID = (1.0, 10.0, 100.0, 1000.0)
# Measured on resources/labeled with the default model (SmolLM2-135M, 30 layers), 12 random draws
# of 4/8/16/32 labels per class, AUC on the rest: the state after block 18 (60% of the depth)
# was the best or tied for best at every size on both questions (games 16+16: 0.986 vs 0.970 for
# the final state; science: 0.944 vs 0.940), and L2 = 100 on standardised features was the best
# or within 0.003 of it. Choosing layer and L2 by an inner cross-validation on the few labels
# themselves did worse than these fixed defaults at 8, 16 and 32 labels per class (by 0.003-0.016
# AUC), so selection is opt-in (`select=True`).
DEFAULT_L2 = 100.0
DEFAULT_LAYER_FRACTION = 0.6


def n_layers(clf) -> int:
    return clf.n_layers


def default_layer(clf_or_count, fraction: float = DEFAULT_LAYER_FRACTION) -> int:
    """The state after `fraction` of the blocks: by default the measured 60% for a question's
    probe (the final state for tiny models)."""
    count = clf_or_count if isinstance(clf_or_count, int) else n_layers(clf_or_count)
    return max(1, min(count, round(fraction * count)))


def resolve_layer(clf_or_count, layer: int) -> int:
    count = clf_or_count if isinstance(clf_or_count, int) else n_layers(clf_or_count)
    return resolve_layer_of_count(count, layer)


@dataclass
class Features:
    """What one classification pass gives for learning: margins, masses and hidden states."""

    ids: list[str]
    margin: np.ndarray  # raw margins (n,)
    label_mass: np.ndarray  # (n,)
    hidden: np.ndarray  # (n, len(layers), D)
    layers: list[int]


# --- the probe ------------------------------------------------------------------------------------
@dataclass
class Probe:
    """sigmoid(((h - mean) / scale) @ w + b) on the state after `layer` for one model and question."""

    model: str
    question: str
    layer: int  # resolved, 1..n_layers
    mean: np.ndarray
    scale: np.ndarray
    w: np.ndarray
    b: float
    l2: float
    n_positive: int = 0
    n_negative: int = 0
    cv_auc: float = float("nan")  # the probe's cross-validated AUC on its own labels
    cv_auc_margin: float = float("nan")  # the zero-shot margin's AUC on the same labels
    created: float = field(default_factory=time.time)
    oof: Optional[np.ndarray] = field(default=None, repr=False)  # out-of-fold log-odds of its labels (not saved)

    def decision(self, hidden) -> np.ndarray:
        """Log-odds for one state (D,) or a batch (n, D)."""
        h = np.asarray(hidden, dtype=np.float64)
        return ((h - self.mean) / self.scale) @ self.w + self.b

    def probability(self, hidden) -> np.ndarray:
        return metrics.sigmoid(self.decision(hidden))

    @property
    def beats_margin(self) -> bool:
        """Whether cross-validation on the labels says the probe ranks better than the margin."""
        return bool(np.isfinite(self.cv_auc) and self.cv_auc > np.nan_to_num(self.cv_auc_margin, nan=0.5))


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    return mean, scale


def fit_weights(x: np.ndarray, y: np.ndarray, l2: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Standardise x on itself and fit; returns (mean, scale, w, b)."""
    mean, scale = _standardise(x)
    fit = metrics.logistic_regression((x - mean) / scale, y, l2)
    return mean, scale, fit.w, fit.b


def cross_validated_scores(x: np.ndarray, y: np.ndarray, l2: float, k: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold probe log-odds for every labeled row (each from a probe that never saw it)."""
    y = np.asarray(y, dtype=bool)
    k = max(2, min(k, int(y.sum()), int((~y).sum())))
    out = np.zeros(len(y))
    for train, test in metrics.stratified_folds(y, k, seed):
        mean, scale, w, b = fit_weights(x[train], y[train], l2)
        out[test] = ((x[test] - mean) / scale) @ w + b
    return out


def fit_probe(
    features: Features,
    labels: Sequence[bool],
    *,
    model: str,
    question: str,
    layer: Optional[int] = None,
    l2: Optional[float] = None,
    select: bool = False,
    k: int = 5,
) -> Probe:
    """Fit a probe on labeled features (`labels` aligned with `features.ids`).

    The layer is `layer` if given, else the measured default (`default_layer`) when it was
    extracted, else the deepest extracted one; L2 is `l2` or DEFAULT_L2. With `select=True` both
    are chosen by k-fold cross-validated AUC among `features.layers` and L2_GRID instead (measured
    to help only with many labels). The probe's cross-validated AUC and the zero-shot margin's AUC
    on the same labels are stored, so callers can tell whether to use it (when chosen by `select`,
    that AUC is optimistic; evaluate.py gives an honest one).
    """
    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos < 2 or n_neg < 2:
        raise ValueError("a probe needs at least 2 labeled documents of each class")
    deepest = max(features.layers)
    if layer is not None:
        target = resolve_layer(deepest, layer)
        if target not in features.layers:
            raise ValueError(f"layer {layer} was not extracted (have {features.layers})")
        layer_choices = [target]
    elif select:
        layer_choices = list(features.layers)
    else:
        preferred = default_layer(deepest)
        layer_choices = [preferred if preferred in features.layers else deepest]
    l2_choices = [float(l2)] if l2 is not None else (list(L2_GRID) if select else [DEFAULT_L2])

    best: Optional[tuple[float, int, float, np.ndarray]] = None
    for lay in layer_choices:
        x = features.hidden[:, features.layers.index(lay)].astype(np.float64)
        for strength in l2_choices:
            oof = cross_validated_scores(x, y, strength, k)
            score = metrics.auc(y, oof)
            if best is None or score > best[0]:
                best = (score, lay, strength, oof)
    cv_auc, chosen_layer, chosen_l2, oof = best
    x = features.hidden[:, features.layers.index(chosen_layer)].astype(np.float64)
    mean, scale, w, b = fit_weights(x, y, chosen_l2)
    return Probe(
        model=model,
        question=question,
        layer=int(chosen_layer),
        mean=mean,
        scale=scale,
        w=w,
        b=float(b),
        l2=float(chosen_l2),
        n_positive=n_pos,
        n_negative=n_neg,
        cv_auc=float(cv_auc),
        cv_auc_margin=metrics.auc(y, features.margin),
        oof=oof,
    )
