"""Decisions over a batch: from one score per document and a few labels (or none) to P(yes) and
calls a user can trust at a target precision, and which documents to label next.

The score is whatever ranks the documents for a question (the general probe's log-odds, a probe
anchored on it, or the model's raw margin). Where the unlabeled documents of a batch fall into
two groups along it, the boundary lies between the groups before any label; the labels anchor the
groups. The model is a two-component Gaussian mixture on the score with one shared variance, so
P(yes | score) is logistic in the score, fitted by EM with each labeled document held at its class.
How sure the fit itself is comes from refitting it on bootstrap re-weightings of the batch: a
document is called only where the probability of the call being right reaches the target in
nearly every refit, and only when the two groups are separated by at least a gate (in standard
deviations) chosen on labeled topical questions. A batch without two separated groups (a weak
ranking) stays uncertain; a separated one is called.

From a few labels of each class on, where the score comes with a prior on its calibration (how
its Platt slope and intercept varied across the questions it was fitted on), a Bayesian Platt
decides instead: the posterior of the calibration given the labels, and a call where the
predictive probability reaches the target. Which decision decides from how many labels is a
measured table (`DECISIONS_FROM`): where none was right often enough on genres the score never
saw, it is "none", and nothing is called.

Everything here is numpy on arrays: no model, no classifier, no state.
"""
from __future__ import annotations

import dataclasses
import math
import threading
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np

from engine.confidence import metrics
from engine.types import Verdict

DEFAULT_TARGET = 0.90
YES, NO, UNCERTAIN = "yes", "no", "uncertain"
_INIT_QUANTILES = (0.2, 0.5, 0.8)
_VAR_FLOOR = 1e-4  # of the batch's variance: keeps EM away from a collapsed component


# The separation gate per target precision: for each target, the smallest gate at which the
# calls on everyday topical questions the probes never saw (the tuning genres of the general set,
# with 0 to 16 labels per class) were right at least that often (scripts/eval_decisions.py
# choose-v2, by the rule in scripts/decisions_rule_v2.md; the README has the tables). A target
# between two entries takes the stricter one; above the last, nothing is called.
GATES_BY_TARGET = ((0.75, 0.0), (0.80, 0.0), (0.85, 2.5), (0.90, 3.0), (0.95, 3.5))

# Which decision decides, by the labels of each class (the smaller count): from each listed count
# on, the one named. "mixture": the two groups of the batch; "platt": the Bayesian Platt on the
# score's prior; "prevalence" / "prevalence-q": the Bayesian Platt on the likelihood ratio with the
# batch's own prevalence, calling on the mean / on the low quantile of its draws; "none": no calls.
# Chosen per count on questions of genres the probe never saw (leave-one-genre-out), as the one
# that called most at the target with no question far below it, "none" where no decision reached
# the target (scripts/decisions_rule_v6.md, _v8.md, _v9.md; the README has the tables). A decision whose
# prior the score lacks falls back to the Bayesian Platt, where the score has its prior, else to
# what `WITHOUT_PRIOR_FROM` names.
PLATT_FROM = 2
# The prevalence decisions' prior on the batch's share of "yes": the Beta with the mean and variance
# of the general probe's 49 training questions' shares (0.27 on average). A flat prior let a batch
# whose scores the likelihood ratio misfits run to a share of 0.9 (scripts/decisions_rule_v8.md).
PREVALENCE_PRIOR = (1.2, 3.2)
DECISIONS_FROM = ((0, "none"), (1, "prevalence-q"), (2, "prevalence"), (4, "prevalence-q"), (8, "prevalence"))
# How well scores that did not see the labels must rank them before anything is called, by the
# labels of each class (the least AUC): with one of each the label-free score must put the yes label
# above the no label; from two, the leave-one-out scores must rank the labels at 0.75; from eight,
# nothing is asked. Labels that contradict the ranking say it is poor, which a calibration whose
# prior keeps its slope positive would otherwise not hear (scripts/decisions_rule_v9.md).
UNSEEN_AUC_FROM = ((1, 1.0), (2, 0.75), (8, 0.0))
# What decides, by the labels of each class, for a score with no prior on its calibration (the
# model's raw margin: a server, a model without a general probe), where the table names a decision
# that needs one: on the raw margins of 84 questions the mixture was right 69-75% of the time with
# 0-2 labels of each class, and called nothing wrong from 4 (scripts/decisions_rule_v11.md).
WITHOUT_PRIOR_FROM = ((0, "none"), (4, "mixture"))
# Where a batch's documents stand apart in two groups along a score with a prior, the mixture calls
# them whatever the table names: from each listed count of labels of each class on, the separation
# (pooled standard deviations) the groups need; without labels, the groups must also lie on either
# side of the score's own zero (`DecisionRule.apart_straddles`). Infinite: never
# (scripts/decisions_rule_v12.md).
APART_FROM = ((0, math.inf),)
# The least separation a batch of n documents needs, whatever the gate: 1.2 + SMALL_BATCH_FLOOR/sqrt(n).
# One Gaussian group of scores exceeds 1.2 + 13.2/sqrt(n) 5% of the time (simulated), but real small
# batches split into groups that look apart more often: under that floor the raw margin's mixture
# called batches of 12 documents at 50-83% right (scripts/decisions_rule_v13.md).
SMALL_BATCH_FLOOR = 19.8
_WITH_PRIORS = object()  # `DecisionRule.calls_from`'s default: a score with every prior it can use


def gate_for_target(target: float) -> float:
    """The measured separation gate for calls right with probability `target`."""
    for listed, gate in GATES_BY_TARGET:
        if target <= listed + 1e-9:
            return gate
    return math.inf


@dataclass(frozen=True)
class DecisionRule:
    """How calls are made: the target precision, the mixture's separation gate (in pooled standard
    deviations; calls only above it; None: the one measured for the target), its bootstrap refits
    (and the prevalence's posterior draws, twice as many) and the quantile of their probabilities
    a call must clear, which decision decides from how many labels of each class
    (`DECISIONS_FROM`), the Beta prior of the prevalence decisions on the batch's share of
    "yes" (`PREVALENCE_PRIOR`; (1, 1): flat), how well scores that did not see the labels must
    rank them for any call (`UNSEEN_AUC_FROM`), what decides for a score without a prior
    (`WITHOUT_PRIOR_FROM`), from what separation the mixture overrules the table (`APART_FROM`,
    `apart_straddles`) and the least separation a small batch needs (`SMALL_BATCH_FLOOR`)."""

    target: float = DEFAULT_TARGET
    gate: Optional[float] = None
    refits: int = 30
    quantile: float = 0.1
    seed: int = 0
    decisions: tuple[tuple[int, str], ...] = DECISIONS_FROM
    prevalence_prior: tuple[float, float] = PREVALENCE_PRIOR
    unseen_auc_from: tuple[tuple[int, float], ...] = UNSEEN_AUC_FROM
    without_prior: tuple[tuple[int, str], ...] = WITHOUT_PRIOR_FROM
    apart_from: tuple[tuple[int, float], ...] = APART_FROM
    small_batch_floor: float = SMALL_BATCH_FLOOR
    apart_straddles: bool = True

    def __post_init__(self) -> None:
        if not 0.5 < self.target < 1.0:
            raise ValueError("the target precision must be above 0.5 and below 1")
        if self.gate is None:
            object.__setattr__(self, "gate", gate_for_target(self.target))

    @staticmethod
    def _listed(table: tuple[tuple[int, str], ...], labels_per_class: int) -> str:
        """The decision `table` names for this many labels of each class (the mixture where it
        names none)."""
        return next((d for k, d in reversed(table) if labels_per_class >= k), "mixture")

    def decision_for(self, labels_per_class: int, prior: Optional["PlattPrior"]) -> str:
        """The decision for a batch with this many labels of each class (the smaller count) and a
        score with this prior (None: none known; then `without_prior` decides where the table
        names a decision that needs one)."""
        name = self._listed(self.decisions, labels_per_class)
        if name.startswith("prevalence") and (prior is None or prior.without_prevalence is None):
            name = "platt" if labels_per_class >= PLATT_FROM else "no prior"
        if name == "no prior" or (name == "platt" and prior is None):
            return self._listed(self.without_prior, labels_per_class)
        return name

    def unseen_auc_floor(self, labels_per_class: int) -> float:
        """The least AUC with which scores that did not see the labels must rank them for any call
        (0: none asked)."""
        return next((f for k, f in reversed(self.unseen_auc_from) if labels_per_class >= k), 0.0)

    def apart_gate(self, labels_per_class: int) -> float:
        """The separation at which a batch's two groups are called by the mixture, whatever
        `decisions` names, for a score with a prior (infinite: never)."""
        return next((g for k, g in reversed(self.apart_from) if labels_per_class >= k), math.inf)

    def holds_back(self, labels_per_class: int, ranked: float) -> bool:
        """Whether labels that scores which never saw them rank at AUC `ranked` (NaN: unknown)
        hold every call back: under the floor for this many labels of each class."""
        floor = self.unseen_auc_floor(labels_per_class)
        return floor > 0 and not ranked >= floor

    def calls_from(self, labels_per_class: int = 0, prior=_WITH_PRIORS) -> Optional[int]:
        """The fewest labels of each class, at least `labels_per_class`, with which the rule calls
        anything for a score with this prior (as `decision_for`; by default a score with every
        prior it can use), None: never."""
        counts = sorted({labels_per_class} | {k for k, _ in self.decisions + self.without_prior
                                              if k > labels_per_class})
        if prior is _WITH_PRIORS:
            return next((k for k in counts if self._listed(self.decisions, k) != "none"), None)
        return next((k for k in counts if self.decision_for(k, prior) != "none"), None)

    def gate_for(self, n: int) -> float:
        """The separation a batch of `n` documents must show: the gate, or more for a small batch,
        where even one group of documents splits into two that look apart (`SMALL_BATCH_FLOOR`)."""
        return max(self.gate, 1.2 + self.small_batch_floor / math.sqrt(max(n, 1)))


@dataclass(frozen=True)
class BatchDecision:
    """P(yes) and the call for every document of a batch, with what the calls rest on."""

    probability: np.ndarray  # (n,) P(yes), the mean over the refits
    calls: tuple[str, ...]  # yes / no / uncertain per document (labeled ones: their label)
    separation: float  # of the two groups, in pooled standard deviations (median over refits)
    prevalence: float  # the estimated share of "yes"
    n_labels: tuple[int, int]  # (yes, no) labels used
    gate: float = math.inf  # the rule's separation gate
    method: str = "mixture"  # the decision that decided (DecisionRule.decisions)
    unseen_auc: float = math.nan  # how well scores that did not see the labels rank them
    held_back: bool = False  # the labels ranked under the rule's floor for them: nothing called

    @property
    def separated(self) -> bool:
        """Whether the probabilities are to be used at all: a Bayesian Platt's always, the
        mixture's where its groups are apart by the rule's gate (when not, nothing is called),
        never where the decision is "none" or the labels held the calls back."""
        if self.method == "none" or self.held_back:
            return False
        return self.method != "mixture" or (math.isfinite(self.separation) and self.separation >= self.gate)

    @property
    def called(self) -> int:
        return sum(c != UNCERTAIN for c in self.calls)


# --- the mixture -----------------------------------------------------------------------------------
def _em(s: np.ndarray, weight: np.ndarray, fixed: np.ndarray, mu0: np.ndarray, mu1: np.ndarray,
        iters: int = 150, tol: float = 1e-6, group: Optional[np.ndarray] = None) -> tuple[np.ndarray, ...]:
    """Shared-variance two-Gaussian EM on scores `s` (n,), run for F fits at once: `weight` (F, n)
    are each fit's document weights, `fixed` (n,) or (F, n) is 1/0 for a labeled yes/no and NaN
    otherwise, `mu0`, `mu1` (F,) the starting means. The fits of one `group` (F,) (default: all
    one) stop together, when each of them has converged: a group gives what it would alone.
    Returns (pi, mu0, mu1, var, loglik), each (F,)."""
    var_floor = max(float(np.var(s)), 1e-12) * _VAR_FLOOR
    fixed = np.broadcast_to(fixed, weight.shape)
    free = np.isnan(fixed)
    pinned = np.where(free, 0.0, np.nan_to_num(fixed))
    group = np.zeros(len(weight), dtype=int) if group is None else np.asarray(group)
    var = np.full(mu0.shape, max(float(np.var(s)) / 4, var_floor))
    pi = np.full(mu0.shape, 0.5)
    mu0, mu1 = np.array(mu0, dtype=np.float64), np.array(mu1, dtype=np.float64)
    previous = np.full(mu0.shape, -np.inf)
    loglik = previous.copy()
    total = weight.sum(axis=1)
    live = np.arange(len(weight))  # the fits of the groups still running
    w, fr, pin, tot = weight, free, pinned, total
    for _ in range(iters):
        p_, m0, m1, v = pi[live], mu0[live], mu1[live], var[live]
        l1 = np.log(p_)[:, None] - (s[None] - m1[:, None]) ** 2 / (2 * v[:, None])
        l0 = np.log1p(-p_)[:, None] - (s[None] - m0[:, None]) ** 2 / (2 * v[:, None])
        r = np.where(fr, metrics.sigmoid(l1 - l0), pin)
        w1, w0 = w * r, w * (1 - r)
        pi[live] = np.clip((w1.sum(axis=1) + 1.0) / (tot + 2.0), 1e-3, 1 - 1e-3)  # Beta(2, 2) prior
        m1 = (w1 @ s + 1e-9 * m1) / (w1.sum(axis=1) + 1e-9)
        m0 = (w0 @ s + 1e-9 * m0) / (w0.sum(axis=1) + 1e-9)
        mu1[live], mu0[live] = m1, m0
        var[live] = v = np.maximum((w1 * (s[None] - m1[:, None]) ** 2 + w0 * (s[None] - m0[:, None]) ** 2
                                    ).sum(axis=1) / tot, var_floor)
        mix = np.logaddexp(l1, l0)
        loglik[live] = ll = (w * np.where(fr, mix, np.where(pin > 0, l1, l0))).sum(axis=1) \
            - 0.5 * tot * np.log(2 * np.pi * v)
        converged = np.abs(ll - previous[live]) <= tol * np.maximum(1.0, np.abs(ll))
        previous[live] = ll
        g = group[live]
        unsettled = np.bincount(g, weights=~converged, minlength=group.max() + 1) > 0
        still = unsettled[g]
        if not still.all():  # a group that has stopped keeps the values it stopped with
            live = live[still]
            if not len(live):
                break
            w, fr, pin, tot = weight[live], free[live], pinned[live], total[live]
    return pi, mu0, mu1, var, loglik


def _starts(s: np.ndarray, fixed: np.ndarray) -> list[tuple[float, float]]:
    """Starting means: splits of the batch at a few quantiles, and the labeled classes' means."""
    starts = []
    for q in _INIT_QUANTILES:
        cut = np.quantile(s, q)
        low, high = s[s <= cut], s[s > cut]
        if len(low) and len(high):
            starts.append((float(low.mean()), float(high.mean())))
    yes, no = s[fixed == 1], s[fixed == 0]
    if len(yes) and len(no):
        starts.append((float(no.mean()), float(yes.mean())))
        starts.append((float(yes.mean()), float(no.mean())))  # the labels may run against the score
    return starts or [(float(s.min()), float(s.max()))]


def _fits(s: np.ndarray, fixed: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, ...]:
    """The best of several starts for each weighting (F, n): (pi, mu0, mu1, var), each (F,)."""
    starts = _starts(s, fixed)
    f = len(weights)
    w = np.repeat(weights, len(starts), axis=0)
    mu0 = np.tile([a for a, _ in starts], f)
    mu1 = np.tile([b for _, b in starts], f)
    pi, mu0, mu1, var, loglik = _em(s, w, fixed, mu0, mu1)
    best = loglik.reshape(f, len(starts)).argmax(axis=1) + np.arange(f) * len(starts)
    pi, mu0, mu1, var = pi[best], mu0[best], mu1[best], var[best]
    if not np.any(~np.isnan(fixed)):  # no labels: "yes" is the group the score puts higher
        swap = mu1 < mu0
        pi, mu0, mu1 = np.where(swap, 1 - pi, pi), np.where(swap, mu1, mu0), np.where(swap, mu0, mu1)
    return pi, mu0, mu1, var


def _mixture_logit(s: np.ndarray, pi, mu0, mu1, var) -> np.ndarray:
    """log P(yes | s) / P(no | s) for each fit (F,) and score (n,): (F, n)."""
    a = (mu1 - mu0) / var
    b = np.log(pi / (1 - pi)) - (mu1 ** 2 - mu0 ** 2) / (2 * var)
    return a[:, None] * s[None] + b[:, None]


def _pinned(n: int, labels: Optional[Mapping[int, bool]]) -> np.ndarray:
    fixed = np.full(n, np.nan)
    for index, label in (labels or {}).items():
        fixed[int(index)] = 1.0 if label else 0.0
    return fixed


# --- the Bayesian Platt ----------------------------------------------------------------------------
@dataclass(frozen=True)
class PlattPrior:
    """A Gaussian prior on Platt's (slope, intercept) for P(yes) = sigmoid(slope * score + intercept):
    what the score's calibration was across many questions. `without_prevalence`, where known, is
    the same with each question's own log-odds of "yes" taken out of its intercept: the prior on
    the score's likelihood ratio alone, for a batch whose prevalence is estimated from the batch."""

    mean: tuple[float, float]
    cov: tuple[tuple[float, float], tuple[float, float]]
    without_prevalence: Optional["PlattPrior"] = None

    @classmethod
    def fit(cls, params, ridge: float = 1e-3, without_prevalence: Optional["PlattPrior"] = None) -> "PlattPrior":
        """From per-question Platt fits (m, 2)."""
        params = np.asarray(params, dtype=np.float64)
        cov = np.cov(params.T) + ridge * np.eye(2)
        return cls(tuple(map(float, params.mean(axis=0))), tuple(tuple(map(float, row)) for row in cov),
                   without_prevalence)

    def rescaled(self, a: float, c: float) -> "PlattPrior":
        """The same prior for the score a * s + c."""
        m = np.array([[1 / a, 0.0], [-c / a, 1.0]])
        mean = m @ np.array(self.mean)
        cov = m @ np.array(self.cov) @ m.T
        inner = self.without_prevalence.rescaled(a, c) if self.without_prevalence is not None else None
        return PlattPrior(tuple(map(float, mean)), tuple(tuple(map(float, row)) for row in cov), inner)

    def to_dict(self) -> dict:
        out = {"mean": list(self.mean), "cov": [list(row) for row in self.cov]}
        if self.without_prevalence is not None:
            out["without_prevalence"] = self.without_prevalence.to_dict()
        return out

    @classmethod
    def from_dict(cls, data) -> Optional["PlattPrior"]:
        """The prior saved by `to_dict`, or None when missing or malformed (a malformed
        `without_prevalence` alone is dropped)."""
        try:
            mean = np.asarray(data["mean"], dtype=np.float64)
            cov = np.asarray(data["cov"], dtype=np.float64)
            if mean.shape != (2,) or cov.shape != (2, 2) or not (np.all(np.isfinite(mean)) and np.all(np.isfinite(cov))):
                return None
            np.linalg.cholesky(cov)  # positive definite
            inner = data.get("without_prevalence")
        except (KeyError, TypeError, ValueError, AttributeError, np.linalg.LinAlgError):
            return None
        inner = cls.from_dict(inner) if inner is not None else None
        if inner is not None:
            inner = dataclasses.replace(inner, without_prevalence=None)
        return cls(tuple(map(float, mean)), tuple(tuple(map(float, row)) for row in cov), inner)


def _laplace(s: np.ndarray, labels: Mapping[int, bool], prior: PlattPrior, offset: float = 0.0
             ) -> tuple[np.ndarray, np.ndarray]:
    """The Laplace posterior (mean, covariance) of Platt's (slope, intercept) under `prior`, given
    the labeled scores (`labels`: index into `s` -> yes), the labels' log-odds being
    slope * s + intercept + `offset`."""
    m0, p0 = np.array(prior.mean), np.linalg.inv(np.array(prior.cov))
    theta = m0.copy()
    idx = np.array([int(i) for i in labels], dtype=int)
    y = np.array([1.0 if labels[i] else 0.0 for i in labels])
    x = np.stack([s[idx], np.ones(len(idx))], axis=1) if len(idx) else np.zeros((0, 2))
    for _ in range(50):
        q = metrics.sigmoid(x @ theta + offset)
        grad = x.T @ (q - y) + p0 @ (theta - m0)
        hess = (x * (q * (1 - q))[:, None]).T @ x + p0
        step = np.linalg.solve(hess, grad)
        theta = theta - step
        if np.max(np.abs(step)) < 1e-9:
            break
    q = metrics.sigmoid(x @ theta + offset)
    return theta, np.linalg.inv((x * (q * (1 - q))[:, None]).T @ x + p0)


def bayes_platt(scores, labels: Optional[Mapping[int, bool]], prior: PlattPrior) -> np.ndarray:
    """Predictive P(yes) per score under the Laplace posterior of Platt's (slope, intercept) given
    the labeled scores (`labels`: index into `scores` -> yes), by the probit approximation of the
    logistic-Gaussian integral: the fewer and the more contradictory the labels, the nearer 0.5."""
    s = np.asarray(scores, dtype=np.float64)
    theta, cov = _laplace(s, dict(labels or {}), prior)
    xs = np.stack([s, np.ones_like(s)], axis=1)
    mu = xs @ theta
    v = np.einsum("ij,jk,ik->i", xs, cov, xs)
    return metrics.sigmoid(mu / np.sqrt(1 + math.pi * v / 8))


_PREVALENCE_LOGITS = np.linspace(-7.0, 7.0, 113)  # prevalence 0.1% to 99.9%, finer near the ends


def prevalence_platt(scores, labels: Optional[Mapping[int, bool]], prior: PlattPrior, draws: int = 64,
                     seed: int = 0, prevalence_prior: tuple[float, float] = (1.0, 1.0),
                     joint: bool = False) -> np.ndarray:
    """P(yes) per score, (draws, n), with the batch's own prevalence in it: log-odds
    slope * s + offset + logit(prevalence). (slope, offset) are drawn from their Laplace posterior
    under `prior` (a prior with each question's prevalence taken out of its intercept) given the
    labels, read as sampled by class (where both classes are labeled; the prior alone otherwise);
    for each draw, the prevalence's posterior on a grid from its Beta(a, b) prior
    (`prevalence_prior`; 1, 1: flat) and the unlabeled scores, and each P(yes) is the mean over it,
    or (`joint`) at one prevalence drawn from it, so that the draws carry how unsure the prevalence
    is too. Where the scores say little (a flat slope), the prevalence stays as unsure as its
    prior, and so does every P(yes)."""
    s = np.asarray(scores, dtype=np.float64)
    labels = dict(labels or {})
    k_yes = sum(1 for v in labels.values() if v)
    k_no = len(labels) - k_yes
    if k_yes and k_no:
        theta, cov = _laplace(s, labels, prior, offset=math.log(k_yes / k_no))
    else:
        theta, cov = np.array(prior.mean), np.array(prior.cov)
    rng = np.random.default_rng(seed)
    thetas = rng.multivariate_normal(theta, cov, size=draws, method="cholesky")  # (D, 2)
    ratio = thetas[:, :1] * s[None] + thetas[:, 1:]  # (D, n) log-likelihood ratios
    free = np.ones(len(s), bool)
    free[[int(i) for i in labels]] = False
    logit_pi = _PREVALENCE_LOGITS
    log_pi, log_rest = -np.logaddexp(0.0, -logit_pi), -np.logaddexp(0.0, logit_pi)
    a, b = prevalence_prior  # Beta(a, b) on a grid even in the log-odds: its density times pi (1 - pi)
    log_prior = a * log_pi + b * log_rest
    out = np.empty_like(ratio)
    for d in range(draws):  # one draw at a time: (grid, n) arrays, whatever the batch's size
        loglik = log_prior + np.logaddexp(log_pi[:, None] + ratio[d, free][None], log_rest[:, None]).sum(axis=1)
        post = np.exp(loglik - loglik.max())
        keep = post > 1e-9 * post.sum()  # the rest of the grid adds nothing to any probability
        post = post[keep] / post[keep].sum()
        if joint:
            out[d] = metrics.sigmoid(ratio[d] + rng.choice(logit_pi[keep], p=post))
        else:
            out[d] = post @ metrics.sigmoid(ratio[d][None] + logit_pi[keep][:, None])
    return out


def unseen_ranking(scores, labels: Mapping[int, bool], unseen_auc: Optional[float] = None) -> float:
    """How well scores that did not see the labels rank them (AUC): `unseen_auc` where it is a
    number, else the labeled documents' scores as given (index into `scores` -> yes)."""
    if unseen_auc is not None and math.isfinite(unseen_auc):
        return float(unseen_auc)
    s = np.asarray(scores, dtype=np.float64)
    at = [int(i) for i in labels]
    return metrics.auc([bool(labels[i]) for i in labels], s[at]) if at else float("nan")


def decide(scores, labels: Optional[Mapping[int, bool]] = None, rule: DecisionRule = DecisionRule(),
           prior: Optional[PlattPrior] = None, unseen_auc: Optional[float] = None) -> BatchDecision:
    """P(yes) and calls for every document of a batch from its scores (n,) and the labels given
    (index into `scores` -> yes). A score that is not finite gets P(yes) NaN and "uncertain".
    Labeled documents keep their label as their call and P(yes) 1 or 0. `prior`: what the score's
    calibration was across questions; with the labels of each class, it says which decision
    decides (`DecisionRule.decision_for`). `unseen_auc`: how well scores that did not see the
    labels rank them (`Calibrator.unseen_auc`); None or NaN: the labeled documents' scores as given,
    which is that where each is the score of a fit without it. Below the rule's floor
    (`DecisionRule.unseen_auc_floor`) nothing is called."""
    raw = np.asarray(scores, dtype=np.float64)
    key = (raw.tobytes(), tuple(sorted((int(i), bool(y)) for i, y in (labels or {}).items())), rule, prior,
           unseen_auc)
    decision = _remember(_DECIDED, key, lambda: _decide(raw, labels, rule, prior, unseen_auc))
    return dataclasses.replace(decision, probability=decision.probability.copy())


def _remember(memo: dict, key: tuple, compute):
    """``memo[key]``, computed first when missing; the oldest entries beyond _REMEMBERED go."""
    with _MEMO_LOCK:
        if key in memo:
            return memo[key]
    value = compute()
    with _MEMO_LOCK:
        memo[key] = value
        while len(memo) > _REMEMBERED:
            del memo[next(iter(memo))]
    return value


_DECIDED: dict[tuple, BatchDecision] = {}  # the last few decisions: the window asks again after each label


def _labels_held(raw: np.ndarray, labels: Optional[Mapping[int, bool]]
                 ) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray, tuple[int, int]]:
    """A decision's start: which scores are numbers, P(yes) and calls with each labeled document
    held at its label (NaN and uncertain elsewhere), the labels over the scored documents (1/0/NaN)
    and the (yes, no) counts."""
    n = len(raw)
    ok = np.isfinite(raw)
    probability = np.full(n, np.nan)
    calls = [UNCERTAIN] * n
    fixed_all = _pinned(n, labels)
    for i in np.flatnonzero(~np.isnan(fixed_all)):
        calls[i] = YES if fixed_all[i] == 1 else NO
        probability[i] = fixed_all[i]
    return ok, probability, calls, fixed_all[ok], (int(np.sum(fixed_all == 1)), int(np.sum(fixed_all == 0)))


def _decide(raw: np.ndarray, labels: Optional[Mapping[int, bool]], rule: DecisionRule,
            prior: Optional[PlattPrior], unseen_auc: Optional[float] = None) -> BatchDecision:
    ok, probability, calls, fixed, n_labels = _labels_held(raw, labels)
    s = raw[ok]
    free = np.isnan(fixed)
    method = rule.decision_for(min(n_labels), prior)
    ranked = float("nan")
    if method != "none":
        ranked = unseen_ranking(s, {j: bool(fixed[j] == 1) for j in np.flatnonzero(~free)}, unseen_auc)
    held_back = method != "none" and rule.holds_back(min(n_labels), ranked)
    apart = rule.apart_gate(min(n_labels)) if prior is not None and prior.without_prevalence is not None else math.inf
    if math.isfinite(apart) and not held_back and method != "mixture":
        mixed, (no_mean, yes_mean) = mixture(raw, labels, rule, ranked)
        gate = max(apart, mixed.gate)
        straddle = min(n_labels) > 0 or not rule.apart_straddles or no_mean < 0 < yes_mean
        if mixed.separation >= gate and straddle:
            return dataclasses.replace(mixed, gate=gate)
    if method == "none" or held_back:  # P(yes) is the score's own log-odds: it ranks, and calls nothing
        probability[np.flatnonzero(ok)[free]] = metrics.sigmoid(s[free])
        return BatchDecision(probability, tuple(calls), float("nan"), float("nan"), n_labels, rule.gate, method,
                             ranked, held_back)
    if method != "mixture":
        given = {j: bool(fixed[j] == 1) for j in np.flatnonzero(~free)}
        if method == "platt":
            pb = low = high = bayes_platt(s, given, prior)
            prevalence = float("nan")
        else:
            draws = prevalence_platt(s, given, prior.without_prevalence, draws=2 * max(rule.refits, 8), seed=rule.seed,
                                     prevalence_prior=rule.prevalence_prior, joint=method == "prevalence-qj")
            pb = draws.mean(axis=0)
            prevalence = float(pb[free].mean()) if free.any() else float("nan")
            low, high = pb, pb
            if method in ("prevalence-q", "prevalence-qj"):
                low, high = np.quantile(draws, rule.quantile, axis=0), np.quantile(draws, 1 - rule.quantile, axis=0)
        for j, i in enumerate(np.flatnonzero(ok)):
            if free[j]:
                probability[i] = pb[j]
                calls[i] = YES if low[j] >= rule.target else NO if high[j] <= 1 - rule.target else UNCERTAIN
        return BatchDecision(probability, tuple(calls), float("nan"), prevalence, n_labels, rule.gate, method, ranked)
    return mixture(raw, labels, rule, ranked)[0]


def mixture(raw: np.ndarray, labels: Optional[Mapping[int, bool]], rule: DecisionRule, ranked: float = math.nan
            ) -> tuple[BatchDecision, tuple[float, float]]:
    """The mixture's decision on a batch's scores, with its two groups' means in the score's units
    (the "no" group's first; NaN where it could not be fitted)."""
    ok, probability, calls, fixed, n_labels = _labels_held(raw, labels)
    s = raw[ok]
    free = np.isnan(fixed)
    if int(free.sum()) < 2 or len(np.unique(s)) < 3:
        unfitted = BatchDecision(probability, tuple(calls), float("nan"), float("nan"), n_labels, rule.gate)
        return unfitted, (math.nan, math.nan)
    centre, spread = float(np.median(s)), float(np.std(s)) or 1.0
    s = (s - centre) / spread  # the fit is the same on any affine copy of the score
    rng = np.random.default_rng(rule.seed)
    weights = np.ones((1 + rule.refits, len(s)))
    if rule.refits:  # bootstrap re-weightings of the unlabeled documents; labeled ones always count once
        counts = rng.multinomial(int(free.sum()), np.full(int(free.sum()), 1 / free.sum()), size=rule.refits)
        weights[1:, free] = counts
    pi, mu0, mu1, var = _fits(s, fixed, weights)
    p = metrics.sigmoid(_mixture_logit(s, pi, mu0, mu1, var))  # (F, n)
    separation = np.abs(mu1 - mu0) / np.sqrt(var)
    sep = float(np.median(separation))
    mean = p.mean(axis=0) if rule.refits else p[0]
    low = np.quantile(p, rule.quantile, axis=0) if rule.refits else p[0]
    high = np.quantile(p, 1 - rule.quantile, axis=0) if rule.refits else p[0]
    gate = rule.gate_for(len(s))
    for j, i in enumerate(np.flatnonzero(ok)):
        if not free[j]:
            continue
        probability[i] = mean[j]
        if sep >= gate:
            if low[j] >= rule.target:
                calls[i] = YES
            elif high[j] <= 1 - rule.target:
                calls[i] = NO
    means = (centre + spread * float(np.median(mu0)), centre + spread * float(np.median(mu1)))
    return BatchDecision(probability, tuple(calls), sep, float(np.median(pi)), n_labels, gate,
                         unseen_auc=ranked), means


def decide_verdicts(verdicts: Sequence[Verdict], rule: DecisionRule, *, pinned: Mapping[int, bool] | None = None,
                    extra: Sequence[tuple[float, bool]] = (), mass_floor: float = 0.0,
                    prior: Optional[PlattPrior] = None, pinned_scores: Mapping[int, float] | None = None,
                    unseen_auc: Optional[float] = None) -> list[Verdict]:
    """One question's verdicts decided over the batch: each row's `score` (the calibrator's
    log-odds) goes into `decide`, with the rows of labeled documents (`pinned`: document index ->
    yes) held at their labels and `extra` labeled documents outside the batch (score, label) added.
    Each row comes back with P(yes), its log-odds as `margin`, and the call; a labeled row keeps its
    probability and gets its label's call, and so does every row of a batch without two groups
    apart enough to trust (too small, or below the rule's gate; then "uncertain"). A row whose
    label mass is below `mass_floor` stays uncertain. Errors pass through. The same document
    listed twice (same `document_index`) counts once. `prior`: the Platt prior of the score, for
    `decide`. `pinned_scores`: document index -> the score a labeled document is decided by, when
    not its row's (the score it had when it was labeled). `unseen_auc`: as for `decide`."""
    pinned = pinned or {}
    pinned_scores = pinned_scores or {}
    slot: dict[int, int] = {}  # document index -> position in the batch
    scores: list[float] = []
    labels: dict[int, bool] = {}
    for v in verdicts:
        if not v.ok or not math.isfinite(v.score) or v.document_index in slot:
            continue
        slot[v.document_index] = len(scores)
        if v.document_index in pinned:
            labels[len(scores)] = bool(pinned[v.document_index])
        scores.append(pinned_scores.get(v.document_index, v.score) if v.document_index in pinned else v.score)
    for score, label in extra:
        labels[len(scores)] = bool(label)
        scores.append(float(score))
    decision = decide(scores, labels, rule, prior, unseen_auc)
    out = []
    for v in verdicts:
        i = slot.get(v.document_index) if v.ok and math.isfinite(v.score) else None
        if i is None:
            out.append(v)
            continue
        call = decision.calls[i]
        if i not in labels and math.isfinite(v.label_mass) and v.label_mass < mass_floor:
            call = UNCERTAIN
        p = float(decision.probability[i])
        if i in labels or not decision.separated or not math.isfinite(p):
            # labeled, or no two groups to trust: the calibrator's own probability, from the score
            # (not `v.probability`, which an earlier decision over the batch may have replaced)
            p = float(metrics.sigmoid(v.score))
        p = min(max(p, 1e-9), 1 - 1e-9) if math.isfinite(p) else p  # so that margin is its log-odds
        out.append(dataclasses.replace(v, probability=p, margin=metrics.logit(p), verdict=call))
    return out


def suggest(scores, labels: Optional[Mapping[int, bool]] = None, rule: DecisionRule = DecisionRule(),
            count: int = 1, candidates: int = 16, prior: Optional[PlattPrior] = None,
            unseen_auc: Optional[float] = None) -> list[int]:
    """The unlabeled documents (indices into `scores`) whose label would bring the most calls, best
    first: for a shortlist of uncertain documents spread over the scores, the calls a quick refit
    (no bootstrap) makes with each answer, weighed by how likely that answer is now. Ties go to
    the document nearest even odds. Documents already called are not suggested while any is
    uncertain. `prior` and `unseen_auc` (for the calls made now; each answer tried is read off the
    labeled scores): as for `decide`."""
    s = np.asarray(scores, dtype=np.float64)
    return list(_ranked(s, dict(labels or {}), rule, candidates, prior, unseen_auc)[:count])


def _ranked(s: np.ndarray, labels: dict[int, bool], rule: DecisionRule, candidates: int,
            prior: Optional[PlattPrior], unseen_auc: Optional[float] = None) -> tuple[int, ...]:
    """The whole ranking `suggest` takes its first few from (the last few asked are remembered:
    the window asks for the same batch's suggestions several times after each label)."""
    key = (s.tobytes(), tuple(sorted((int(i), bool(y)) for i, y in labels.items())), rule, candidates, prior,
           unseen_auc)
    return _remember(_RANKED, key, lambda: _rank(s, labels, rule, candidates, prior, unseen_auc))


def _rank(s: np.ndarray, labels: dict[int, bool], rule: DecisionRule, candidates: int,
          prior: Optional[PlattPrior], unseen_auc: Optional[float] = None) -> tuple[int, ...]:
    current = decide(s, labels, rule, prior, unseen_auc)
    open_ = [i for i in range(len(s)) if i not in labels and np.isfinite(s[i]) and current.calls[i] == UNCERTAIN]
    if not open_:
        open_ = [i for i in range(len(s)) if i not in labels and np.isfinite(s[i])]
    ranked: tuple[int, ...] = ()
    if open_:
        p_now = np.nan_to_num(current.probability, nan=0.5)
        order = sorted(open_, key=lambda i: s[i])
        picks = np.unique(np.linspace(0, len(order) - 1, min(candidates, len(order))).round().astype(int))
        shortlist = list(dict.fromkeys([order[j] for j in picks] +
                                       sorted(open_, key=lambda i: abs(p_now[i] - 0.5))[: max(2, candidates // 4)]))
        quick = dataclasses.replace(rule, refits=0)
        called = called_with(s, [{**labels, i: answer} for i in shortlist for answer in (True, False)], quick, prior)
        gain = {}
        for n, i in enumerate(shortlist):
            p = float(np.clip(p_now[i], 0.05, 0.95))
            gain[i] = (p * called[2 * n] + (1 - p) * called[2 * n + 1], -abs(p_now[i] - 0.5))
        ranked = tuple(sorted(shortlist, key=lambda i: gain[i], reverse=True))
    return ranked


_REMEMBERED = 8  # decisions and rankings kept (the GUI and the scoring thread may both ask)
_MEMO_LOCK = threading.Lock()
_RANKED: dict[tuple, tuple[int, ...]] = {}


def called_with(scores, label_sets: Sequence[Mapping[int, bool]], rule: DecisionRule,
                prior: Optional[PlattPrior] = None) -> list[int]:
    """`decide(scores, labels, rule, prior).called` for each of `label_sets`, for a rule without
    bootstrap refits: the mixture's EM runs for all of them at once (what `suggest` weighs)."""
    if rule.refits:
        raise ValueError("called_with decides without bootstrap refits (rule.refits = 0)")
    raw = np.asarray(scores, dtype=np.float64)
    ok = np.isfinite(raw)
    out: list[Optional[int]] = [None] * len(label_sets)
    jobs = []  # (index, fixed over the scored documents, labels given)
    for k, labels in enumerate(label_sets):
        _, _, _, fixed, n_labels = _labels_held(raw, labels)
        by_mixture = rule.decision_for(min(n_labels), prior) == "mixture"
        if by_mixture and rule.holds_back(min(n_labels), unseen_ranking(raw, labels)):
            out[k] = sum(n_labels)  # the labels hold the calls back, as in `decide`
        elif by_mixture and int(np.isnan(fixed).sum()) >= 2 and len(np.unique(raw[ok])) >= 3:
            jobs.append((k, fixed, sum(n_labels)))
        else:
            out[k] = decide(raw, labels, rule, prior).called
    if jobs:
        s = raw[ok]
        s = (s - float(np.median(s))) / (float(np.std(s)) or 1.0)  # as `decide` does
        starts = [_starts(s, fixed) for _, fixed, _ in jobs]
        group = np.repeat(np.arange(len(jobs)), [len(st) for st in starts])
        fixed = np.stack([jobs[g][1] for g in group])
        mu0 = np.array([a for st in starts for a, _ in st])
        mu1 = np.array([b for st in starts for _, b in st])
        pi, mu0, mu1, var, loglik = _em(s, np.ones(fixed.shape), fixed, mu0, mu1, group=group)
        gate = rule.gate_for(len(s))
        for g, (k, fixed_g, labeled) in enumerate(jobs):
            rows = np.flatnonzero(group == g)
            best = rows[loglik[rows].argmax()]
            fit = pi[[best]], mu0[[best]], mu1[[best]], var[[best]]
            if not np.any(~np.isnan(fixed_g)) and fit[2][0] < fit[1][0]:  # no labels: "yes" is the higher group
                fit = 1 - fit[0], fit[2], fit[1], fit[3]
            p = metrics.sigmoid(_mixture_logit(s, *fit))[0]
            separation = float(np.abs(fit[2] - fit[1])[0] / np.sqrt(fit[3][0]))
            free = np.isnan(fixed_g)
            sure = np.sum(free & ((p >= rule.target) | (p <= 1 - rule.target))) if separation >= gate else 0
            out[k] = labeled + int(sure)
    return [int(n) for n in out]


# --- measuring calls ------------------------------------------------------------------------------
def oracle_coverage(y, scores, target: float = DEFAULT_TARGET) -> float:
    """The largest share of documents that hindsight thresholds (yes above one, no below another)
    could call with at least `target` of the calls right."""
    y = np.asarray(y, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    n = len(y)
    if n == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    ys = y[order]
    # calling the top i "yes" and the bottom j "no" (i + j <= n): right = yes in top i + no in bottom j
    top_right = np.concatenate([[0], np.cumsum(ys)])  # (n+1,)
    bottom_right = np.concatenate([[0], np.cumsum(~ys[::-1])])  # (n+1,)
    i = np.arange(n + 1)[:, None]
    j = np.arange(n + 1)[None, :]
    valid = i + j <= n
    calls = i + j
    right = top_right[:, None] + bottom_right[None, :]
    good = valid & (right >= target * calls - 1e-9) & (calls > 0)
    return float(calls[good].max() / n) if good.any() else 0.0


def call_quality(y, calls) -> tuple[int, int]:
    """(calls made, calls right) of `calls` (yes/no/uncertain) against labels `y`."""
    y = np.asarray(y, dtype=bool)
    made = right = 0
    for truth, call in zip(y, calls):
        if call != UNCERTAIN:
            made += 1
            right += (call == YES) == truth
    return made, right
