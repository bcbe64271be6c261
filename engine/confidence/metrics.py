"""Small statistics in numpy: ranking and calibration metrics, folds, and L2 logistic regression.

Everything takes plain arrays: `y` is 0/1 (or bool), `p` a probability of the positive class,
`s` any score where larger means "more likely yes". No MLX here.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np


@contextmanager
def numpy_blas_threads(count: int = 1) -> Iterator[None]:
    """Run numpy's own BLAS (the OpenBLAS bundled in its wheel) with `count` threads for a while,
    through threadpoolctl. The fits here are small (a few hundred rows), and OpenBLAS's default
    of a thread per core makes them many times slower on a busy machine. Any other BLAS in the
    process (the one MLX uses) is not touched; where numpy has none threadpoolctl can set
    (macOS Accelerate), this does nothing."""
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()
    numpy_own = [lib.filepath for lib in controller.lib_controllers
                 if lib.user_api == "blas" and "numpy" in lib.filepath]
    with controller.select(filepath=numpy_own).limit(limits=int(count)):
        yield


def sigmoid(x):
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -x))



def logit(p: float, eps: float = 1e-12) -> float:
    """log(p / (1 - p)) for one probability, clipped to [eps, 1 - eps] (NaN stays NaN)."""
    if not math.isfinite(p):
        return float("nan")
    p = min(max(p, eps), 1 - eps)
    return math.log(p / (1 - p))


def auc(y, s) -> float:
    """Area under the ROC curve: P(score of a random positive > that of a random negative),
    ties counting one half (the Mann-Whitney statistic). NaN if a class is missing."""
    y = np.asarray(y, dtype=bool)
    s = np.asarray(s, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    # average ranks over ties (1-based)
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def accuracy(y, p, threshold: float = 0.5) -> float:
    y = np.asarray(y, dtype=bool)
    return float(np.mean((np.asarray(p) > threshold) == y))


def brier(y, p) -> float:
    """Mean squared error of the probability against the 0/1 outcome."""
    y = np.asarray(y, dtype=np.float64)
    return float(np.mean((np.asarray(p, dtype=np.float64) - y) ** 2))


def ece(y, p, bins: int = 10) -> float:
    """Expected calibration error: over `bins` equal-width probability bins, the share-weighted
    mean of |mean predicted probability - observed frequency of yes|. (Bins are [0, .1), ...,
    [.9, 1.0]; the last one includes 1.)"""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    index = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.sum() * abs(p[mask].mean() - y[mask].mean())
    return float(total / len(y))


def log_loss(y, p, eps: float = 1e-12) -> float:
    y = np.asarray(y, dtype=np.float64)
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def stratified_folds(y, k: int, seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs of k folds that keep the class balance of `y`."""
    y = np.asarray(y, dtype=bool)
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=int)
    for cls in (True, False):
        idx = np.flatnonzero(y == cls)
        rng.shuffle(idx)
        fold[idx] = np.arange(len(idx)) % k
    for f in range(k):
        yield np.flatnonzero(fold != f), np.flatnonzero(fold == f)


def recall_threshold(y, s, target: float) -> float:
    """The largest score threshold t such that `s >= t` still finds at least `target` of the
    positives (the labeled ones): what to cut at to "find 95% of the yes documents"."""
    y = np.asarray(y, dtype=bool)
    pos = np.sort(np.asarray(s, dtype=np.float64)[y])[::-1]
    if len(pos) == 0:
        raise ValueError("a recall threshold needs at least one positive label")
    need = int(np.ceil(target * len(pos) - 1e-9))
    return float(pos[max(need, 1) - 1])


@dataclass
class LogisticFit:
    """p = sigmoid(x @ w + b)."""

    w: np.ndarray
    b: float
    iterations: int = 0
    converged: bool = True

    def decision(self, x) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) @ self.w + self.b

    def predict(self, x) -> np.ndarray:
        return sigmoid(self.decision(x))


def logistic_regression(
    x,
    y,
    l2: float = 1.0,
    *,
    prior_w: Optional[np.ndarray] = None,
    prior_b: float = 0.0,
    l2_b: float = 0.0,
    targets: Optional[np.ndarray] = None,
    max_iter: int = 100,
    tol: float = 1e-8,
    offset: Optional[np.ndarray] = None,
) -> LogisticFit:
    """L2-regularised logistic regression by Newton's method (IRLS) with a backtracking step.

    Minimises  sum_i CE(t_i, sigmoid(x_i.w + b)) + l2/2 |w - prior_w|^2 + l2_b/2 (b - prior_b)^2,
    with t = y unless soft `targets` are given (Platt's smoothed targets). With l2 > 0 the
    optimum is unique even for separable data. When there are fewer samples than features, the fit
    runs in the span of the samples around the prior (w = prior_w + V z from the SVD x = U S V^T),
    which gives the same minimiser at the cost of an n x n problem. `offset` (n,) is added to
    every sample's log-odds.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    t = np.asarray(y if targets is None else targets, dtype=np.float64)
    n, d = x.shape
    base = np.zeros(n) if offset is None else np.asarray(offset, dtype=np.float64).reshape(n)
    if d > n and l2 > 0:
        # w = prior_w + V z with V spanning the samples: only z (r <= n numbers) is fitted, the same
        # minimiser (the prior's pull on the rest of w is zero) at the cost of an n x n problem
        centre = np.zeros(d) if prior_w is None else np.asarray(prior_w, dtype=np.float64).reshape(d)
        _, s, vt = np.linalg.svd(x, full_matrices=False)
        keep = s > s[0] * 1e-10 if len(s) else s > 0
        basis = vt[keep].T  # (d, r)
        fit = logistic_regression(
            x @ basis, y, l2, prior_b=prior_b, l2_b=l2_b, targets=targets, max_iter=max_iter, tol=tol,
            offset=base + x @ centre,
        )
        return LogisticFit(centre + basis @ fit.w, fit.b, fit.iterations, fit.converged)

    prior = np.zeros(d) if prior_w is None else np.asarray(prior_w, dtype=np.float64).reshape(d)
    theta = np.concatenate([prior, [prior_b]])  # start at the prior
    xb = np.hstack([x, np.ones((n, 1))])
    reg = np.concatenate([np.full(d, float(l2)), [float(l2_b)]])
    centre = np.concatenate([prior, [prior_b]])

    def objective(th):
        z = xb @ th + base
        # CE with soft targets, computed stably: log(1+e^z) - t z
        return float(np.sum(np.logaddexp(0.0, z) - t * z) + 0.5 * np.sum(reg * (th - centre) ** 2))

    value = objective(theta)
    converged = False
    for it in range(1, max_iter + 1):  # noqa: B007  (the count is returned after the loop)
        p = sigmoid(xb @ theta + base)
        grad = xb.T @ (p - t) + reg * (theta - centre)
        weights = p * (1 - p)
        hess = (xb * weights[:, None]).T @ xb + np.diag(reg) + 1e-10 * np.eye(d + 1)
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        scale = 1.0
        while True:
            candidate = theta - scale * step
            new_value = objective(candidate)
            if new_value <= value + 1e-4 * scale * -float(grad @ step) or scale < 1e-8:
                break
            scale *= 0.5
        theta, improvement = candidate, value - new_value
        value = new_value
        if abs(improvement) <= tol * max(1.0, abs(value)) or np.max(np.abs(scale * step)) < tol:
            converged = True
            break
    return LogisticFit(theta[:d], float(theta[d]), it, converged)
