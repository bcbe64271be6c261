"""From margins to verdicts users can trust: label-free shifts, "uncertain", and labels.

A `Calibrator` turns the engine's raw verdicts into calibrated ones for one question:

  1. label-free shift (optional): margin = raw_margin - shift, where shift is the mean margin of
     content-free documents ("contextual", Zhao et al. 2021) or the median margin of the documents
     being triaged ("batch", Zhou et al. 2023). Both are OFF by default: on the labeled sets in
     resources/labeled neither improved accuracy, Brier score and ECE together.
     `engine.confidence.evaluate` measures both again for any model and question.
  2. labels (optional): Platt scaling p = sigmoid(a * margin + b), fitted with a Gaussian prior
     centred on (0, 0) and smoothed targets, so 2 + 2 labels give modest probabilities instead of
     0/1; and, where the hidden states are available, a linear probe (`engine.confidence.probe`) whose own
     log-odds are Platt-scaled on out-of-fold predictions. The probe is used when its
     cross-validated AUC on the labels beats the margin's.
  3. the verdict: "uncertain" when |calibrated log-odds| < band or label mass < mass_floor (before
     labels, the general probe's own label-free band when wider: `effective_band`),
     otherwise "yes"/"no" by sign. Band 1.0: probability between 0.27 and 0.73 is "uncertain".
     The mass floor 0.1 is a safety net for a model that wants to answer something else entirely.

The measurements behind these defaults: docs/calibration-defaults.md.

`Verdict.raw_margin` always stays the model's margin; `margin` becomes the calibrated log-odds and
`probability` = sigmoid(margin).
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

from engine.confidence import metrics
from engine.confidence.decide import PlattPrior
from engine.confidence.general import GeneralProbe
from engine.confidence.probe import Features, Probe, fit_probe
from engine.confidence.store import load_calibrator_file, save_calibrator_file
from engine.types import Verdict

# Content-free documents for contextual calibration ("" cannot be scored: an empty document is an error).
NULL_TEXTS = ("N/A", "[MASK]", "None")
# Defaults measured on resources/labeled with the default model (docs/calibration-defaults.md).
DEFAULT_BAND = 1.0
DEFAULT_MASS_FLOOR = 0.1
DEFAULT_RECALL = 0.95
ANCHOR_L2: float | None = 10.0  # the refit's prior strength on the general probe (None: no refit)
# Whether a labeled document's score (its anchor, which the decisions calibrate on) is the one the
# refit without it gives, as an unseen document's would be, instead of the refit's own in-sample
# score, which separates its labels whatever the ranking (scripts/decisions_rule_v6.md). From two
# labels of each class: with one, leaving it out leaves its class unlabeled.
ANCHORS_HELD_OUT = True
DEFAULT_SHIFT = "none"  # neither label-free shift helped on the labeled sets
PLATT_L2 = 1.0
SHIFT_METHODS = ("none", "contextual", "batch")


def _sigmoid(x: float) -> float:
    return float(metrics.sigmoid(x))


# --- building blocks ------------------------------------------------------------------------------
def batch_shift(margins: Iterable[float]) -> float:
    """A robust centre of the margins of the documents being triaged: their median."""
    values = np.array([m for m in margins if np.isfinite(m)], dtype=np.float64)
    return float(np.median(values)) if len(values) else 0.0


@dataclass
class Platt:
    """p = sigmoid(a * x + b)."""

    a: float = 1.0
    b: float = 0.0

    def logit(self, x):
        return self.a * np.asarray(x, dtype=np.float64) + self.b

    def __call__(self, x):
        return metrics.sigmoid(self.logit(x))


def fit_platt(scores, labels, l2: float = PLATT_L2, prior: tuple[float, float] = (0.0, 0.0)) -> Platt:
    """Platt scaling with Platt's smoothed targets ((N+ + 1)/(N+ + 2) and 1/(N- + 2)) and a
    Gaussian prior of strength `l2` on both parameters, centred on `prior`: with few labels the
    probabilities stay modest, with many the labels decide. The slope may come out negative, which
    means the scores run against the labels."""
    x = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        raise ValueError("Platt scaling needs labels of both classes")
    targets = np.where(y, (n1 + 1) / (n1 + 2), 1 / (n0 + 2))
    fit = metrics.logistic_regression(
        x, y, l2, prior_w=np.array([prior[0]]), prior_b=prior[1], l2_b=l2, targets=targets
    )
    return Platt(float(fit.w[0]), float(fit.b))


def platt_prior(scores, labels, questions) -> PlattPrior:
    """The prior on Platt's parameters from one Platt fit per question (each needs both answers)
    of labeled scores: what the scores' calibration was across those questions; with it, the
    same with each question's own log-odds of "yes" taken out of its intercept
    (`PlattPrior.without_prevalence`)."""
    scores, labels, questions = np.asarray(scores, np.float64), np.asarray(labels, bool), np.asarray(questions)
    params, ratios = [], []
    for q in dict.fromkeys(questions.tolist()):
        m = questions == q
        if labels[m].any() and (~labels[m]).any():
            fit = fit_platt(scores[m], labels[m], l2=1e-2)
            params.append([fit.a, fit.b])
            ratios.append([fit.a, fit.b - metrics.logit(float(labels[m].mean()))])
    if len(params) < 3:
        raise ValueError("a Platt prior needs at least three questions with both answers")
    return PlattPrior.fit(np.array(params), without_prevalence=PlattPrior.fit(np.array(ratios)))


# --- the calibrator -------------------------------------------------------------------------------
@dataclass
class Calibrator:
    """Turns raw verdicts for one question into calibrated ones (see the module docstring)."""

    question: str
    model: str = ""
    shift_method: str = DEFAULT_SHIFT
    shift: float = 0.0
    band: float = DEFAULT_BAND
    mass_floor: float = DEFAULT_MASS_FLOOR
    platt: Optional[Platt] = None  # on the shifted margin
    probe: Optional[Probe] = None
    probe_platt: Optional[Platt] = None  # on the probe's log-odds
    use_probe: bool = False
    recall_target: float = DEFAULT_RECALL
    threshold: Optional[float] = None  # probability to cut at for `recall_target` (from labels)
    n_labels: tuple[int, int] = (0, 0)  # (yes, no)
    notes: list[str] = field(default_factory=list)
    general: GeneralProbe | None = None  # the model's shipped general probe (not saved: found by model)
    general_null: np.ndarray | None = None  # the question's content-free state, when the probe reads the difference
    general_prompt: tuple | None = None  # prompt_key when general_null was computed
    general_platt: Platt | None = None  # on the general probe's log-odds, from labels
    general_platt_for: str | None = None  # the identity of the general probe it was fitted on
    use_general: bool = False
    # the general probe refit to the labels, its prior centred on the shipped weights: (w, b) in the
    # shipped probe's standardised space and scale (None: the shipped weights)
    anchored: tuple[np.ndarray, float] | None = None
    # the labeled documents as the batch decision sees them: text digest (`text_key`) -> (score, label)
    anchors: dict[str, tuple[float, bool]] = field(default_factory=dict)
    # how well scores that did not see the labels rank them (AUC; NaN: no labels), for the decisions
    unseen_auc: float = float("nan")

    def __post_init__(self) -> None:
        if self.shift_method not in SHIFT_METHODS:
            raise ValueError(f"shift_method must be one of {SHIFT_METHODS}")

    # -- what it needs from the classifier --
    @property
    def layers(self) -> list[int]:
        """Layers whose states `apply` needs in `Verdict.states` (empty: none)."""
        if self.use_probe and self.probe is not None:
            return [self.probe.layer]
        return [self.general.layer] if self.general_active else []

    @property
    def general_active(self) -> bool:
        """Whether the probability comes from the general probe (no question probe in use)."""
        return self.use_general and self.general is not None and not (self.use_probe and self.probe is not None)

    @property
    def method(self) -> str:
        """Which score the probability comes from: probe, general, platt, or margin (zero-shot)."""
        if self.use_probe and self.probe is not None:
            return "probe"
        if self.general_active:
            return "anchored" if self.anchored is not None else "general"
        return "platt" if self.platt is not None else "margin"

    @property
    def platt_prior(self) -> Optional[PlattPrior]:
        """The prior on the calibration of this calibrator's score, where one is known: the general
        probe's (measured across the questions it was fitted on), for its log-odds as shipped or
        refit to the labels. None for any other score."""
        if self.method not in ("general", "anchored") or self.general_platt is not None or not self.general.info:
            return None
        return PlattPrior.from_dict(self.general.info.get("platt_prior"))

    @property
    def effective_band(self) -> float:
        """The band `decide` uses: without labels, the general probe's own label-free band when
        that is wider (infinite: no confident verdict before labels)."""
        if self.general_active and not sum(self.n_labels):
            return self.general.band_before_labels(self.band)
        return self.band

    def general_decision(self, hidden) -> np.ndarray:
        """The general probe's log-odds for one state (D,) or a batch (n, D) of this question (as
        refit to the labels, when it was)."""
        if self.anchored is None:
            return self.general.decision(hidden, self.general_null)
        w, b = self.anchored
        return self.general.features(hidden, self.general_null) @ w + b

    # -- label-free --
    def set_general(self, general: GeneralProbe | None, null_state: np.ndarray | None = None,
                    prompt: tuple | None = None, problem: str | None = None) -> "Calibrator":
        """Use this general probe (None: none) with this question's content-free state when it
        reads the difference (`null_state`, computed for the prompt `prompt`). `problem`: why that
        state could not be computed, so the probe is not used."""
        if (self.general_platt is not None or self.anchored is not None) and (
                general is None or general.identity != self.general_platt_for):
            # A Platt (or a refit) of another probe's log-odds says nothing about this one's.
            self.general_platt, self.anchored, self.use_general = None, None, False
            if general is not None:
                self.notes.append("the model's general probe changed since these labels were fitted: "
                                  "it is not used until they are fitted again")
        if problem is not None or (general is not None and general.subtract_null and null_state is None):
            self.notes.append(f"the general probe is not used: {problem or 'no content-free state'}")
            general, null_state = None, None
        self.general = general
        self.general_null = None if null_state is None else np.asarray(null_state, dtype=np.float64)
        if general is None:
            self.use_general = False
        self.general_prompt = prompt if self.general_null is not None else None
        return self

    def needs_null_state(self, prompt: tuple | None) -> bool:
        """Whether the content-free state must be computed again: the question's prompt around the
        document changed since (new worked examples)."""
        return self.general_null is not None and prompt != self.general_prompt

    def set_contextual(self, shift: float) -> "Calibrator":
        """Subtract the mean margin of content-free documents (`shift`) from every margin."""
        self.shift_method, self.shift = "contextual", float(shift)
        return self

    # -- scoring one verdict --
    def log_odds(self, raw_margin: float, state=None) -> float:
        """The calibrated log-odds of "yes" for one document (`state`: the hidden state after the
        probe's layer, needed when the probe is used)."""
        if self.use_probe and self.probe is not None and state is not None:
            z = float(self.probe.decision(np.asarray(state, dtype=np.float64)))
            return float(self.probe_platt.logit(z)) if self.probe_platt else z
        if self.general_active and state is not None:
            z = float(self.general_decision(np.asarray(state, dtype=np.float64)))
            return float(self.general_platt.logit(z)) if self.general_platt else z
        shifted = raw_margin - self.shift
        return float(self.platt.logit(shifted)) if self.platt else shifted

    def decide(self, log_odds: float, label_mass: float) -> str:
        if not np.isfinite(log_odds):
            return "uncertain"
        if abs(log_odds) < self.effective_band or (np.isfinite(label_mass) and label_mass < self.mass_floor):
            return "uncertain"
        return "yes" if log_odds > 0 else "no"

    def apply(self, verdict: Verdict) -> Verdict:
        """A calibrated copy of a raw verdict (errors pass through; `raw_margin` stays raw). A
        probe reads its layer from `verdict.states`, as `Classifier.score(..., layers=self.layers)`
        captures them; such a verdict needs no margin (scored with `answer=False`). The copy
        carries no states."""
        if not verdict.ok or not (self.layers or np.isfinite(verdict.raw_margin)):
            return verdict if verdict.states is None else dataclasses.replace(verdict, states=None)
        state = None
        if self.layers:
            state = (verdict.states or {}).get(self.layers[0])
            if state is None:
                raise ValueError(f"this calibrator uses a probe: score with layers={self.layers}")
        z = self.log_odds(verdict.raw_margin, state)
        return dataclasses.replace(
            verdict,
            score=z,
            margin=z,
            probability=_sigmoid(z),
            verdict=self.decide(z, verdict.label_mass),
            states=None,
        )

    def copy(self) -> "Calibrator":
        """An independent copy (nothing shared): what crosses to another thread or run."""
        return copy.deepcopy(self)

    def for_batch(self, verdicts: Iterable[Verdict]) -> "Calibrator":
        """The calibrator for this batch of raw verdicts of its question: with the batch method, a
        copy whose shift is their median margin (`batch_shift`); otherwise itself."""
        if self.shift_method != "batch":
            return self
        batch = self.copy()
        batch.shift = batch_shift(v.raw_margin for v in verdicts if v.ok and v.question == self.question)
        return batch

    # -- labels --
    def fit_labels(
        self,
        features: Features,
        labels: Sequence[bool],
        *,
        probe: bool = True,
        probe_layer: Optional[int] = None,
        k: int = 5,
        keys: Optional[Sequence[str]] = None,
        anchor_l2: Optional[float] = ANCHOR_L2,
    ) -> "Calibrator":
        """Fit Platt scaling (and a probe, from `features.hidden`) to labels aligned with
        `features.ids`, and the probability threshold for `recall_target`. The labeled documents
        are kept as `anchors` under `keys` (their `text_key`s; default: their ids). With a general
        probe, `anchor_l2` is the strength of the refit's prior on its weights (None: choose
        between the margin, the general probe and a question probe by their AUC on the labels)."""
        y = np.asarray(labels, dtype=bool)
        n1, n0 = int(y.sum()), int((~y).sum())
        if n1 < 1 or n0 < 1:
            raise ValueError("labels need at least one yes and one no document")
        self.n_labels = (n1, n0)
        self.notes = []
        margins = features.margin - self.shift
        self.platt = fit_platt(margins, y)
        if self.platt.a < 0 and metrics.auc(y, margins) < 0.4 and (self.general is None or anchor_l2 is None):
            self.notes.append(
                "the model's margin runs against these labels (negative Platt slope): "
                "its zero-shot answer to this question is not to be trusted"
            )
        scores = self.platt.logit(margins)  # in-sample, but Platt has two parameters
        unseen = margins  # a monotone calibration ranks as the label-free score does
        best_auc = metrics.auc(y, margins)
        self.general_platt, self.use_general, self.anchored = None, False, None
        if self.general is not None and self.general.layer in features.layers and anchor_l2 is not None:
            # The ranking stays the general probe's, refit toward the labels: its weights are the
            # prior, so a few labels move it a little and many move it more.
            x = self.general.features(features.hidden[:, features.layers.index(self.general.layer)], self.general_null)
            self.anchored = anchor(self.general, x, y, anchor_l2)
            self.use_general, self.general_platt_for = True, self.general.identity
            held_out = ANCHORS_HELD_OUT and min(n1, n0) >= 2
            scores = held_out_scores(self.general, x, y, anchor_l2) if held_out else x @ self.anchored[0] + self.anchored[1]
            unseen = scores if held_out else x @ self.general.w + self.general.b  # the label-free score
        elif self.general is not None and self.general.layer in features.layers:
            # Not fitted to these labels, so its AUC on them is an honest measurement.
            z = self.general_decision(features.hidden[:, features.layers.index(self.general.layer)])
            general_auc = metrics.auc(y, z)
            if np.isfinite(general_auc) and general_auc > np.nan_to_num(best_auc, nan=0.5):
                self.general_platt, self.use_general, best_auc = fit_platt(z, y, prior=(1.0, 0.0)), True, general_auc
                self.general_platt_for = self.general.identity
                scores = unseen = self.general_platt.logit(z)
        self.probe, self.probe_platt, self.use_probe = None, None, False
        if probe and self.anchored is None and n1 >= 2 and n0 >= 2 and features.hidden is not None and features.hidden.size:
            self.probe = fit_probe(features, y, model=self.model, question=self.question, layer=probe_layer, k=k)
            oof = self.probe.oof
            self.probe_platt = fit_platt(oof, y, prior=(1.0, 0.0))
            self.use_probe = bool(np.isfinite(self.probe.cv_auc) and self.probe.cv_auc > np.nan_to_num(best_auc, nan=0.5))
            if self.use_probe:
                scores = unseen = self.probe_platt.logit(oof)  # out of fold
            else:
                beaten = "the general probe" if self.use_general else "the margin"
                self.notes.append(f"the probe did not beat {beaten} in cross-validation: using {beaten}")
        self.threshold = _sigmoid(metrics.recall_threshold(y, scores, self.recall_target))
        self.unseen_auc = metrics.auc(y, unseen)
        self.anchors = {key: (float(score), bool(label))
                        for key, score, label in zip(keys if keys is not None else features.ids, scores, y)}
        return self

    # -- storage (next to the probe, per model and question) --
    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "model": self.model,
            "shift_method": self.shift_method,
            "shift": self.shift,
            "band": self.band,
            "mass_floor": self.mass_floor,
            "platt": None if self.platt is None else [self.platt.a, self.platt.b],
            "probe_platt": None if self.probe_platt is None else [self.probe_platt.a, self.probe_platt.b],
            "use_probe": self.use_probe,
            "general_platt": None if self.general_platt is None else [self.general_platt.a, self.general_platt.b],
            "use_general": self.use_general,
            "general_platt_for": self.general_platt_for,
            "recall_target": self.recall_target,
            "threshold": self.threshold,
            "n_labels": list(self.n_labels),
            "notes": list(self.notes),
            "anchors": [[doc_id, score, label] for doc_id, (score, label) in self.anchors.items()],
            "anchored": None if self.anchored is None else [[float(v) for v in self.anchored[0]], self.anchored[1]],
            "unseen_auc": self.unseen_auc if math.isfinite(self.unseen_auc) else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping, probe: Optional[Probe] = None) -> "Calibrator":
        return cls(
            question=data["question"],
            model=data.get("model", ""),
            shift_method=data.get("shift_method", "none"),
            shift=float(data.get("shift", 0.0)),
            band=float(data.get("band", DEFAULT_BAND)),
            mass_floor=float(data.get("mass_floor", DEFAULT_MASS_FLOOR)),
            platt=Platt(*data["platt"]) if data.get("platt") else None,
            probe=probe,
            probe_platt=Platt(*data["probe_platt"]) if data.get("probe_platt") else None,
            use_probe=bool(data.get("use_probe", False)) and probe is not None,
            general_platt=Platt(*data["general_platt"]) if data.get("general_platt") else None,
            use_general=bool(data.get("use_general", False)),
            general_platt_for=data.get("general_platt_for"),
            recall_target=float(data.get("recall_target", DEFAULT_RECALL)),
            threshold=data.get("threshold"),
            n_labels=tuple(data.get("n_labels", (0, 0))),
            notes=list(data.get("notes", [])),
            anchors={str(a[0]): (float(a[1]), bool(a[2])) for a in data.get("anchors", [])},
            anchored=(np.asarray(data["anchored"][0], dtype=np.float64), float(data["anchored"][1]))
            if data.get("anchored") else None,
            unseen_auc=float(data["unseen_auc"]) if data.get("unseen_auc") is not None else float("nan"),
        )

    def save(self, folder: Optional[Path] = None) -> Path:
        """Save under the user data folder (VERDICT_DATA_DIR overrides); returns the .json path."""
        return save_calibrator_file(self.model, self.question, self.probe, self.to_dict(), folder)

    @classmethod
    def load(
        cls, model: str, question: str, folder: Optional[Path] = None, *, on_damaged=None
    ) -> Optional["Calibrator"]:
        """The saved calibrator for this model key and question, or None (also when the saved
        one is damaged: it is set aside and reported to `on_damaged`, see engine.confidence.store)."""
        found = load_calibrator_file(model, question, folder, on_damaged=on_damaged)
        if found is None:
            return None
        probe, extra = found
        return cls.from_dict(extra or {"question": question, "model": model}, probe)


def anchor(general: GeneralProbe, x: np.ndarray, labels, l2: float) -> tuple[np.ndarray, float]:
    """The general probe refit to labeled documents (`x`: their standardised features), with a
    Gaussian prior of strength `l2` centred on its own weights; in its shipped scale. The shipped
    weights carry a temperature (Platt from leave-one-genre-out); the prior sits on the weights
    before it, the strength being measured there."""
    a, c = general.info.get("platt_from_logo", [1.0, 0.0]) if general.info else (1.0, 0.0)
    a = a if a and np.isfinite(a) and a > 0 else 1.0
    fit = metrics.logistic_regression(x, np.asarray(labels, dtype=bool), l2, prior_w=general.w / a,
                                      prior_b=(general.b - c) / a, l2_b=1.0)
    return fit.w * a, float(fit.b * a + c)


def held_out_scores(general: GeneralProbe, x: np.ndarray, labels, l2: float, folds: int = 64) -> np.ndarray:
    """Each labeled document's score from the general probe refit (`anchor`) without it: the
    score it would have as an unseen document. Leave-one-out up to `folds` documents; beyond,
    `folds` folds, each scored by the refit on the others. A fold that leaves one class without
    a label is scored by the refit on what is left all the same (the prior carries it)."""
    y = np.asarray(labels, dtype=bool)
    n = len(y)
    fold = np.arange(n) % folds if n > folds else np.arange(n)
    out = np.empty(n)
    for f in np.unique(fold):
        out_of_fold = fold == f
        w, b = anchor(general, x[~out_of_fold], y[~out_of_fold], l2)
        out[out_of_fold] = x[out_of_fold] @ w + b
    return out


def text_key(text: str) -> str:
    """What a labeled document is known by among a batch's documents: a digest of its text."""
    return hashlib.sha256(text.strip().encode("utf-8", "surrogatepass")).hexdigest()[:20]


def read_labels(records: Iterable[Mapping]) -> dict[str, bool]:
    """Labels from JSONL-like records: `id` and `label` (true/false, yes/no, 1/0)."""
    labels = {}
    for record in records:
        value = record.get("label")
        if isinstance(value, str):
            text = value.strip().lower()
            if text not in ("yes", "no", "true", "false", "1", "0", "y", "n"):
                raise ValueError(f"label {value!r} of {record.get('id')!r} is not yes/no")
            value = text in ("yes", "true", "1", "y")
        labels[str(record["id"])] = bool(value)
    return labels
