"""The general answer probe: one linear read-out of the hidden state at the answer position, fit
offline on many yes/no questions over many genres of real text, so it can judge questions it
never saw. It ships per model, tied to the model file's content (sha256), in
`resources/general_probes/<sha256>.npz` + `.json`; `scripts/eval_general_probe.py` measures and
writes it. A calibrator uses it before the user has labeled anything, when its AUC on held-out
genres beat the raw margin's (`beats_margin`).

A probe may read the state *minus the question's content-free state* (`subtract_null`): the mean
state of the same prompt around content-free documents (`null_texts`), so what the question alone
puts in the state cancels. Its `label_free_band` says how far from 0 its log-odds must be for a
verdict without labels to count as confident: chosen on the training genres for a stated precision
(`info["band_precision_target"]`); infinite when no band reached it, so no verdict without labels
is called confident.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.atomic import atomic_path, atomic_write
from engine.folders import data_dir



@dataclass
class GeneralProbe:
    """log-odds = ((h - mean) / scale) @ w + b on the state after `layer` (1..n_layers)."""

    fingerprint: str  # sha256 of the model file's content
    layer: int
    mean: np.ndarray
    scale: np.ndarray
    w: np.ndarray
    b: float
    heldout_auc: float = float("nan")  # mean AUC over the held-out genres' questions
    heldout_auc_margin: float = float("nan")  # the raw margin's, on the same questions
    info: dict = field(default_factory=dict)  # how it was trained and measured
    subtract_null: bool = False  # reads state - content-free state of the same question
    null_texts: tuple[str, ...] = ()  # the content-free documents that state is the mean over
    label_free_band: float = 1.0  # |log-odds| a verdict needs without labels to be confident

    def decision(self, hidden, null_state=None) -> np.ndarray:
        """Log-odds of "yes" for one state (D,) or a batch (n, D); `null_state` (D,) is the
        question's content-free state, needed when the probe reads the difference."""
        return self.features(hidden, null_state) @ self.w + self.b

    def features(self, hidden, null_state=None) -> np.ndarray:
        """The standardised input its weights read, for one state (D,) or a batch (n, D)."""
        h = np.asarray(hidden, dtype=np.float64)
        if self.subtract_null:
            if null_state is None:
                raise ValueError("this general probe reads the state minus the question's content-free state")
            h = h - np.asarray(null_state, dtype=np.float64)
        return (h - self.mean) / self.scale

    def band_before_labels(self, band: float) -> float:
        """The uncertain band for its verdicts before labels: `band`, or its own when wider."""
        return max(band, self.label_free_band)

    @property
    def identity(self) -> str:
        """A short hash of what the probe computes: a Platt fitted on its log-odds belongs to it."""
        digest = hashlib.sha256(json.dumps([self.fingerprint, self.layer, round(self.b, 9), self.subtract_null,
                                            list(self.null_texts)]).encode())
        for array in (self.mean, self.scale, self.w):
            digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
        return digest.hexdigest()[:16]

    @property
    def beats_margin(self) -> bool:
        """Whether it ranked held-out questions better than the raw margin did."""
        return bool(np.isfinite(self.heldout_auc) and self.heldout_auc > np.nan_to_num(self.heldout_auc_margin, nan=0.5))


def general_probe_key(fingerprint: str) -> str:
    """The file name a general probe for a model is kept under, from the model's content
    fingerprint (`engine.model.fingerprint.model_fingerprint`): a model file's sha256 itself
    (the name a shipped probe has), else the sha256 of the fingerprint (a folder's is no file name)."""
    if fingerprint.startswith("sha256:"):
        return fingerprint.removeprefix("sha256:")
    return hashlib.sha256(fingerprint.encode("utf-8")).hexdigest()


def probes_dir() -> Path:
    """Where general probes ship: resources/general_probes of the source tree or packaged app."""
    base = os.environ.get("VERDICT_GENERAL_PROBES")
    if base:
        return Path(base)
    import sys

    frozen = getattr(sys, "_MEIPASS", None)
    root = Path(frozen) if frozen else Path(__file__).resolve().parents[2]
    return root / "resources" / "general_probes"


def fitted_probes_dir() -> Path:
    """Where general probes fitted on this computer (`verdict models calibrate`) are kept: beside
    the calibrators, in the user's data folder."""
    return data_dir() / "general_probes"


def save_general_probe(probe: GeneralProbe, folder: Path | None = None) -> Path:
    """Write `<fingerprint>.npz` (arrays, float32) and `<fingerprint>.json`; returns the .json path."""
    folder = Path(folder or probes_dir())
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / probe.fingerprint
    with atomic_path(base.with_suffix(".npz")) as tmp:
        np.savez(tmp, mean=probe.mean.astype(np.float32), scale=probe.scale.astype(np.float32),
                 w=probe.w.astype(np.float32))
    meta = {"format": 2, "fingerprint": probe.fingerprint, "layer": probe.layer, "b": probe.b,
            "input": "state minus content-free state" if probe.subtract_null else "state",
            "null_texts": list(probe.null_texts),
            "label_free_band": probe.label_free_band if np.isfinite(probe.label_free_band) else None,
            "heldout_auc": probe.heldout_auc, "heldout_auc_margin": probe.heldout_auc_margin, "info": probe.info}
    path = base.with_suffix(".json")
    with atomic_write(path) as fh:
        fh.write(json.dumps(meta, indent=1) + "\n")
    return path


def load_general_probe(fingerprint: str, folder: Path | None = None) -> GeneralProbe | None:
    """The general probe shipped for this model content, or None (none for it, or unreadable)."""
    base = Path(folder or probes_dir()) / fingerprint
    try:
        meta = json.loads(base.with_suffix(".json").read_text())
        with np.load(base.with_suffix(".npz")) as arrays:
            mean, scale, w = (arrays[k].astype(np.float64) for k in ("mean", "scale", "w"))
        if meta.get("fingerprint") != fingerprint or not (mean.shape == scale.shape == w.shape):
            return None
        subtract_null = meta.get("input", "state") == "state minus content-free state"
        null_texts = tuple(str(t) for t in meta.get("null_texts", ()))
        if subtract_null and not null_texts:
            return None
        band = meta.get("label_free_band", 1.0)
        return GeneralProbe(fingerprint, int(meta["layer"]), mean, scale, w, float(meta["b"]),
                            float(meta.get("heldout_auc", "nan")), float(meta.get("heldout_auc_margin", "nan")),
                            dict(meta.get("info", {})), subtract_null, null_texts,
                            float("inf") if band is None else float(band))
    except (OSError, ValueError, KeyError, TypeError):
        return None
