"""Labels to calibrators, and calibrators to words: what the window needs from `engine.confidence.calibrate`.

The fitting itself runs on the scoring thread (:meth:`app.worker.ScoringWorker.refit`); here are
the pure parts the GUI thread uses: which labels a question has, the documents and labels a refit
is sent with, re-applying a fitted calibrator to verdicts already in the table (numpy only, no
MLX: each verdict keeps its raw margin, label mass and, in memory, its hidden state), and the
sentences the detail pane shows about the calibrator in use.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable, Mapping, Optional

from engine.types import Document, Verdict

MIN_LABELS = 2  # per class, before a question's calibrator is fitted to its labels


def label_counts(rows: Iterable, question: str) -> tuple[int, int]:
    """(yes, no) labels for ``question`` on readable documents."""
    yes = no = 0
    for row in rows:
        label = row.labels.get(question)
        if label and not row.document.error:
            yes += label == "yes"
            no += label == "no"
    return yes, no


def enough_labels(counts: tuple[int, int]) -> bool:
    return counts[0] >= MIN_LABELS and counts[1] >= MIN_LABELS


def refit_request(rows: Iterable, question: str, states: Optional[Mapping[tuple[int, str], Any]] = None,
                  layer: int = 0) -> tuple[list[Document], dict[str, bool], dict[str, Verdict]]:
    """The labeled documents (ids made unique: the row keys), their labels, and the verdicts
    already scored for them that carry their hidden state after ``layer`` (from ``states``,
    (key, question) -> state): the refit applies those instead of scoring the documents again.
    A verdict the model thought before (its raw margin follows its reasoning) or one being
    replaced is not kept."""
    documents, labels, kept = [], {}, {}
    for row in rows:
        label = row.labels.get(question)
        if label and not row.document.error:
            doc_id = str(row.key)
            documents.append(dataclasses.replace(row.document, id=doc_id))
            labels[doc_id] = label == "yes"
            verdict = row.verdicts.get(question)
            state = (states or {}).get((row.key, question))
            if (state is not None and layer and verdict is not None and verdict.ok and not verdict.reasoning
                    and question not in row.stale and math.isfinite(verdict.raw_margin)):
                kept[doc_id] = dataclasses.replace(verdict, document_id=doc_id, states={layer: state})
    return documents, labels, kept


def reapply(cal: Any, verdict: Verdict, state: Optional[Any]) -> Optional[Verdict]:
    """``verdict`` calibrated again by ``cal`` from its raw margin and label mass (and ``state``,
    the hidden state at the probe's layer, when ``cal`` uses a probe). None when what ``cal``
    reads is not at hand (the document has to be scored again): a probe's state, or the margin of
    a verdict scored without the model's answer."""
    if not verdict.ok:
        return verdict
    if math.isnan(verdict.raw_margin) and not cal.layers:
        return None
    if cal.layers:
        if state is None:
            return None
        verdict = dataclasses.replace(verdict, states={cal.layers[0]: state})
    return cal.apply(verdict)


def _auc(x: float) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.2f}"


def _labels_phrase(n_yes: int, n_no: int) -> str:
    n = n_yes + n_no
    return f"{n} label{'s' if n != 1 else ''} ({n_yes} yes, {n_no} no)"


def describe(cal: Any, counts: tuple[int, int], pending: bool = False) -> list[str]:
    """Short sentences on the calibrator behind a question's verdicts (None: not known yet),
    given this session's label ``counts`` (yes, no) and whether a refit is on its way."""
    lines: list[str] = []
    fitted = cal is not None and cal.method not in ("margin", "general", "anchored") and sum(cal.n_labels) > 0
    if cal is not None and cal.method == "anchored":
        lines.append(f"The general probe, refit to {_labels_phrase(*cal.n_labels)} (its own weights as the prior)")
    if cal is not None and cal.method == "general":
        general = cal.general
        if sum(cal.n_labels):
            lines.append(f"Calibrated from the general probe on {_labels_phrase(*cal.n_labels)}")
        else:
            lines.append(f"Zero-shot through the general probe: AUC {_auc(general.heldout_auc)} on questions it never "
                         f"saw, vs {_auc(general.heldout_auc_margin)} for the model's own answer")
    if cal is None:
        lines.append("Calibration: loading…")
    elif fitted:
        n_yes, n_no = cal.n_labels
        probe = cal.probe
        if cal.method == "probe":
            lines.append(
                f"Calibrated by a probe on {_labels_phrase(n_yes, n_no)}: cross-validated AUC "
                f"{_auc(probe.cv_auc)} vs {_auc(probe.cv_auc_margin)} for the model's own answer"
            )
        else:
            line = f"Calibrated from the model's own answer on {_labels_phrase(n_yes, n_no)}"
            if probe is not None:
                line += (f": its AUC on them {_auc(probe.cv_auc_margin)}, a probe's cross-validated "
                         f"{_auc(probe.cv_auc)}")
            lines.append(line)
        if cal.threshold is not None and math.isfinite(cal.threshold):
            lines.append(f"For {cal.recall_target:.0%} recall, count P(yes) ≥ {cal.threshold:.2f} as yes")
    else:
        if counts == (0, 0):
            lines.append(f"No labels yet: label {MIN_LABELS}+ yes and {MIN_LABELS}+ no documents to calibrate")
        elif not enough_labels(counts):
            lines.append(f"{counts[0]} yes and {counts[1]} no labels so far: label at least {MIN_LABELS} "
                         "of each to calibrate")
        band = cal.effective_band
        if math.isinf(band):
            lines.append("Zero-shot: every verdict stays “Uncertain” until you label some (without labels, "
                         "confident verdicts were not right often enough on unseen kinds of text); "
                         "P(yes) still ranks them")
        else:
            lines.append(f"Zero-shot: “Uncertain” when P(yes) is between {1 / (1 + math.exp(band)):.2f} and "
                         f"{1 / (1 + math.exp(-band)):.2f}")
    if pending and enough_labels(counts):
        lines.append(f"Recalibrating on {_labels_phrase(*counts)}…")
    elif fitted and counts != tuple(cal.n_labels):
        if enough_labels(counts):
            lines.append(f"Your labels here: {counts[0]} yes, {counts[1]} no")
        else:
            lines.append(f"Your labels here: {counts[0]} yes, {counts[1]} no — label at least {MIN_LABELS} "
                         "of each to recalibrate")
    if cal is not None:
        lines += [note[:1].upper() + note[1:] for note in cal.notes]
    return lines


def basis(cal: Any) -> str:
    """What a question's verdicts rest on, in plain words (for the detail pane's first sentence)."""
    if cal is not None and cal.method == "general" and not sum(cal.n_labels):
        return "the model's reading of the text through a general probe (no labels used yet)"
    if cal is None or cal.method == "margin" or not sum(cal.n_labels):
        return "the model alone (no labels used yet)"
    if cal.method == "anchored":
        return f"the model's reading of the text through a general probe, tuned to your {sum(cal.n_labels)} labels"
    n = sum(cal.n_labels)
    if cal.method == "probe":
        return f"the model's reading of the text, tuned to your {n} labels"
    return f"the model's answer, calibrated on your {n} labels"


def summary(cal: Any) -> str:
    """One status-bar phrase for a calibrator just fitted."""
    how = {"probe": "a probe", "general": "the general probe", "anchored": "the general probe refit to the labels", "platt": "Platt scaling of the model's margin", "margin": "the model's margin"}[cal.method]
    return f"{how} on {_labels_phrase(*cal.n_labels)}"
