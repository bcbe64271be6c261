"""What calibration needs from a classifier, gathered as arrays.

`engine.confidence` works on numbers only and never calls a classifier: the pipeline (and `verdict
evaluate`) score what a calibrator needs here and hand it over as arrays — the margins, masses
and hidden states of labeled documents, the content-free margin and state of a question, the ids
a question's prompt puts before the document, and the model's general probe.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import zipfile
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

from engine.atomic import atomic_path
from engine.confidence.calibrate import (
    DEFAULT_BAND,
    DEFAULT_MASS_FLOOR,
    DEFAULT_RECALL,
    DEFAULT_SHIFT,
    NULL_TEXTS,
    Calibrator,
    batch_shift,
    text_key,
)
from engine.confidence.evaluate import CURVE_SIZES, evaluate_features, layer_scan, records_to_documents
from engine.confidence.general import GeneralProbe, fitted_probes_dir, general_probe_key, load_general_probe
from engine.confidence.probe import Features, default_layer, resolve_layer
from engine.model.fingerprint import FORMATS as FINGERPRINT_FORMATS
from engine.model.fingerprint import model_fingerprint
from engine.folders import cache_dir
from engine.types import Verdict, as_document


def labeled_features(clf, question: str, documents: Iterable, layers: Sequence[int] = (-1,),
                     kept: Optional[Mapping[str, Verdict]] = None) -> Features:
    """Score `documents` once and keep their margins, masses and the hidden states after `layers`.
    Documents that fail (empty, unreadable) are left out. `kept` (document id -> a raw verdict of
    this question already scored, with its `states`) stands in for scoring a document again
    wherever it carries the state after every wanted layer."""
    wanted = [resolve_layer(clf.n_layers, layer) for layer in layers]
    documents = list(documents)
    reuse = {i: v for i, v in (kept or {}).items()
             if v.ok and all(n in (v.states or {}) for n in wanted)}
    if reuse:
        scored = {v.document_id: v for v in clf.score(question, [d for d in documents if _id(d) not in reuse],
                                                       layers=wanted)}
        verdicts = [dataclasses.replace(reuse[_id(d)], document_id=_id(d)) if _id(d) in reuse else scored[_id(d)]
                    for d in documents if _id(d) in reuse or _id(d) in scored]
    else:
        verdicts = clf.score(question, documents, layers=wanted)
    ok = [v for v in verdicts if v.ok]
    return Features(
        ids=[v.document_id for v in ok],
        margin=np.array([v.raw_margin for v in ok], dtype=np.float64),
        label_mass=np.array([v.label_mass for v in ok], dtype=np.float64),
        hidden=np.stack([np.stack([v.states[n] for n in wanted]).astype(np.float32) for v in ok])
        if ok and wanted else np.zeros((len(ok), len(wanted), 0)),
        layers=wanted,
    )


def _id(document) -> str:
    """The id a document is scored under (a plain text's id is its position, never kept)."""
    return getattr(document, "id", None) or ""


def content_free(clf, question: str, layers: Sequence[int] = (), nulls: Sequence[str] = NULL_TEXTS
                 ) -> tuple[float, dict[int, np.ndarray]]:
    """The mean raw margin of content-free documents for this question, and their mean hidden
    state after each of `layers` (one small batch). Raises ValueError when none can be scored.
    With a local model it is kept in the cache folder, keyed by everything it depends on: the
    model's content, its compute dtype and the exact ids of each content-free prompt."""
    remembered = _content_free_file(clf, question, layers, nulls)
    if remembered is not None:
        try:
            with np.load(remembered) as saved:
                margin = float(saved["margin"])
                states = {layer: saved[f"state_{layer}"] for layer in layers}
            if np.isfinite(margin) and all(s.ndim == 1 and np.isfinite(s).all() for s in states.values()):
                return margin, states
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass  # none yet, or unreadable: scored again and written anew
    verdicts = [v for v in clf.score(question, list(nulls), layers=list(layers)) if v.ok]
    if not verdicts:
        raise ValueError("no content-free document could be scored")
    states = {layer: np.mean([np.asarray(v.states[layer], dtype=np.float64) for v in verdicts], axis=0)
              for layer in layers}
    margin = float(np.mean([v.raw_margin for v in verdicts]))
    if remembered is not None and len(verdicts) == len(nulls):
        try:
            remembered.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(remembered, durable=False) as tmp:
                np.savez(tmp, margin=margin, **{f"state_{layer}": state for layer, state in states.items()})
        except OSError:
            pass  # a read-only cache only costs scoring them again
    return margin, states


def _content_free_file(clf, question: str, layers: Sequence[int], nulls: Sequence[str]) -> Optional[Path]:
    """Where a local model's content-free margin and states for these prompts are kept; None
    for a backend without a model file here (an inference server may change its model)."""
    backend = getattr(clf, "backend", None)
    fingerprint = str(getattr(backend, "fingerprint", "") or "")
    lm = getattr(backend, "lm", None)
    if lm is None or not fingerprint.startswith(FINGERPRINT_FORMATS) or not hasattr(clf, "encoder_for"):
        return None
    encoder = clf.encoder_for(question)
    key = {"format": 1, "fingerprint": fingerprint, "dtype": str(lm.compute_dtype), "layers": sorted(int(n) for n in layers),
           "prompts": [encoder.encode(question, null).all for null in nulls]}
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()
    return cache_dir() / "content-free" / f"{digest}.npz"


def null_state(clf, question: str, general: Optional[GeneralProbe]) -> Optional[np.ndarray]:
    """The question's content-free state that a difference-reading general probe subtracts
    (None when the probe reads the plain state, or there is no probe)."""
    if general is None or not general.subtract_null:
        return None
    return content_free(clf, question, [general.layer], general.null_texts)[1][general.layer]


def prompt_key(clf, question: str) -> Optional[tuple]:
    """What a question's prompt around the document depends on beyond the question itself: the
    ids before the document (instructions, worked examples). None for a classifier without them."""
    encoder_for = getattr(clf, "encoder_for", None)
    return None if encoder_for is None else tuple(encoder_for(question).head_ids(question))


def probe_fingerprint(clf) -> Optional[str]:
    """What a general probe for this classifier's model is kept under (`general_probe_key` of the
    model's content fingerprint). None for a backend that returns no hidden states (an inference
    server: there is nothing to read) or a model with no file here."""
    backend = getattr(clf, "backend", clf)
    if not getattr(backend, "supports_states", True):
        return None
    fingerprint = str(getattr(backend, "fingerprint", "") or "")
    if not fingerprint.startswith(FINGERPRINT_FORMATS):  # a backend that did not hash its model
        path = getattr(getattr(backend, "lm", None), "path", None)
        if path is None or not Path(path).exists():
            return None
        fingerprint = model_fingerprint(Path(path))
    return general_probe_key(fingerprint)


def general_probe(clf, folder: Optional[Path] = None) -> Optional[GeneralProbe]:
    """The general probe for a classifier's model, or None: the one shipped for it, else one fitted
    here by `verdict models calibrate` (`folder`: look only there)."""
    fingerprint = probe_fingerprint(clf)
    if fingerprint is None:
        return None
    for where in ([folder] if folder is not None else [None, fitted_probes_dir()]):
        probe = load_general_probe(fingerprint, where)
        n_layers = getattr(clf, "n_layers", None)
        if probe is not None and not (isinstance(n_layers, int) and not 1 <= probe.layer <= n_layers):
            return probe
    return None


def with_general(cal: Calibrator, clf, general: Optional[GeneralProbe]) -> Calibrator:
    """`cal` set to use `general` for `clf`'s prompts of its question (the content-free state
    scored here when the probe reads the difference)."""
    try:
        null = null_state(clf, cal.question, general)
    except ValueError as exc:  # the content-free documents could not be scored: nothing to subtract
        return cal.set_general(general, None, None, problem=str(exc))
    return cal.set_general(general, null, prompt_key(clf, cal.question) if null is not None else None)


def refreshed(cal: Calibrator, clf) -> Calibrator:
    """`cal` itself, or a new calibrator with its content-free state computed again when the
    question's prompt changed since (`cal` is left as it was: another thread may be reading it)."""
    if cal.needs_null_state(prompt_key(clf, cal.question)):
        return with_general(cal.copy(), clf, cal.general)
    return cal


def fit_calibrator(
    clf,
    question: str,
    documents: Iterable,
    labels: Optional[Mapping[str, bool]] = None,
    *,
    shift_method: str = DEFAULT_SHIFT,
    band: float = DEFAULT_BAND,
    mass_floor: float = DEFAULT_MASS_FLOOR,
    probe: bool = True,
    probe_layer: Optional[int] = None,
    recall_target: float = DEFAULT_RECALL,
    general: bool = True,
    kept: Optional[Mapping[str, Verdict]] = None,
) -> Calibrator:
    """A calibrator for `question`, fitted to `labels` (document id -> yes/no) of `documents`
    (only the labeled ones are scored here, and of those only the ones without a `kept` raw
    verdict: see `labeled_features`). Without labels: label-free settings, with the model's
    general probe when one ships for it and it beat the raw margin on held-out genres
    (`general=False`: never)."""
    cal = Calibrator(
        question=question,
        model=clf.fingerprint,  # saved calibrators belong to these weights, not to a file name
        shift_method=shift_method,
        band=band,
        mass_floor=mass_floor,
        recall_target=recall_target,
    )
    if shift_method == "contextual":
        cal.set_contextual(content_free(clf, question)[0])
    with_general(cal, clf, general_probe(clf) if general else None)
    if not labels:
        cal.use_general = cal.general is not None and cal.general.beats_margin
        return cal
    docs = [as_document(d, i) for i, d in enumerate(documents)]
    labeled = [d for d in docs if d.id in labels]
    missing = set(labels) - {d.id for d in labeled}
    if missing:
        cal.notes.append(f"{len(missing)} labeled ids are not among the documents")
    layer = probe_layer if probe_layer is not None else default_layer(clf.n_layers)
    wanted = [layer] if probe else []
    if cal.general is not None:
        wanted.append(cal.general.layer)
    features = labeled_features(clf, question, labeled, layers=list(dict.fromkeys(wanted)), kept=kept)
    if shift_method == "batch":
        cal.shift = batch_shift(features.margin)
    y = [labels[i] for i in features.ids]
    texts = {d.id: d.text for d in labeled}
    notes = cal.notes
    cal.fit_labels(features, y, probe=probe, probe_layer=layer if probe else None,
                   keys=[text_key(texts[i]) for i in features.ids])
    cal.notes = notes + cal.notes
    return cal


def calibrator_for(
    clf,
    question: str,
    documents: Optional[Sequence] = None,
    labels: Optional[Mapping[str, bool]] = None,
    *,
    use_saved: bool = True,
    save: bool = True,
    folder: Optional[Path] = None,
    kept: Optional[Mapping[str, Verdict]] = None,
    **settings,
) -> Calibrator:
    """The calibrator a run should use for `question`: fitted to `labels` of `documents` (and
    saved, so later runs without labels use it), else the one saved for this model and question,
    else the label-free defaults. `settings` (band, mass_floor, shift_method, probe, ...) override
    what is saved. `kept`: raw verdicts already scored for labeled documents (`labeled_features`)."""
    if labels:
        cal = fit_calibrator(clf, question, documents or [], labels, kept=kept, **settings)
        if save:
            try:
                cal.save(folder)
            except OSError as exc:
                cal.notes.append(f"the calibrator could not be saved ({exc.strerror or exc})")
        return cal
    problems: list[str] = []
    cal = Calibrator.load(clf.fingerprint, question, folder, on_damaged=problems.append) if use_saved else None
    if cal is None:
        cal = fit_calibrator(clf, question, [], None, **{k: v for k, v in settings.items() if k != "probe"})
        cal.notes.extend(problems)
        return cal
    for name in ("band", "mass_floor"):
        if name in settings:
            setattr(cal, name, settings[name])
    if settings.get("shift_method") and settings["shift_method"] != cal.shift_method:
        cal.shift_method, cal.shift = settings["shift_method"], 0.0
        if cal.shift_method == "contextual":
            cal.set_contextual(content_free(clf, question)[0])
    if settings.get("probe") is False:
        cal.use_probe = False
    return with_general(cal, clf, general_probe(clf) if settings.get("general", True) else None)


def evaluate(
    clf,
    question: str,
    records: Iterable[Mapping],
    *,
    k: int = 5,
    seed: int = 0,
    probe_layer: Optional[int] = None,
    curve_sizes: Sequence[int] = CURVE_SIZES,
    repeats: int = 3,
    band: float = DEFAULT_BAND,
    mass_floor: float = DEFAULT_MASS_FLOOR,
    scan_layers: bool = False,
) -> dict:
    """Evaluate raw, label-free calibrated, Platt-scaled and probe verdicts for `question` by
    k-fold cross-validation over labeled `records` (mappings with `id`, `text`, `label`).

    Returns {"methods": {name: {"auc", "accuracy", "brier", "ece", "coverage",
    "accuracy_decided"}}, "learning_curve": {"4": auc, ...}, "n": count, ...}; see the module
    docstring for the methods. Documents that cannot be scored (empty text) are left out of `n`.
    With `scan_layers`, every layer's probe is measured too (`"layer_auc"`: the AUC with all
    training folds, and with 16 labels per class): how the default layer was chosen.
    """
    docs, labels = records_to_documents(records)
    layer = probe_layer if probe_layer is not None else default_layer(clf.n_layers)
    general = general_probe(clf)
    wanted = set(range(1, clf.n_layers + 1)) if scan_layers else {layer, clf.n_layers}
    if general is not None:
        wanted.add(general.layer)
    features = labeled_features(clf, question, docs, layers=sorted(wanted))
    y = [labels[i] for i in features.ids]
    result = evaluate_features(
        features,
        y,
        null_margin=content_free(clf, question)[0],
        probe_layer=layer,
        k=k,
        seed=seed,
        curve_sizes=curve_sizes,
        repeats=repeats,
        band=band,
        mass_floor=mass_floor,
        general=general,
        general_null=null_state(clf, question, general),
    )
    result["question"] = question
    result["model"] = clf.model_name
    if scan_layers:
        result["layer_auc"] = layer_scan(features, y, k=k, seed=seed, repeats=repeats)
    return result
