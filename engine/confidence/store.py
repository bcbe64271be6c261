"""The calibrator store: one file per model key and question under the user's data folder.

A saved calibrator (its settings and, when it has one, its probe's arrays) is ONE JSON file,
``probes/<model>/<question-slug>-<hash>.json``, written to a temporary file with a name of its
own (several processes may save at once) and moved into place (`engine.atomic`): a reader
sees the old file or the new one, never a mix of two writers or a half-written file.

Files of the earlier format (a ``.json`` beside a ``.npz`` of arrays) are still read. A file
that can't be read (empty, truncated, not ours) is set aside as ``<name>.damaged-<stamp>``,
with a warning, and treated as absent: later runs work and can save again.

``model`` in these functions is the key that calibrators are kept by, chosen by the caller: the
pipeline keys them by the model's content fingerprint (`engine.model.fingerprint`), so a renamed
file keeps its calibrators and other weights under the same name don't get them.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from engine.atomic import atomic_write
from engine.confidence.probe import Probe
from engine.folders import data_dir

FORMAT = 2
_ARRAYS = ("mean", "scale", "w")


class StoreWarning(UserWarning):
    """A saved calibrator could not be read and was set aside."""


class DamagedFile(ValueError):
    """A saved calibrator that can't be read; the message says why."""


def calibrator_key(model: str, question: str) -> str:
    """A file-name-safe key for one model key and question."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", question.strip().lower()).strip("-")[:48] or "question"
    digest = hashlib.sha256(f"{model}\n{question.strip()}".encode()).hexdigest()[:12]
    return f"{slug}-{digest}"


def calibrator_path(model: str, question: str, folder: Optional[Path] = None) -> Path:
    """Where the calibrator for this model key and question lives, without a suffix."""
    model_slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model) or "model"
    return Path(folder or data_dir() / "probes") / model_slug / calibrator_key(model, question)


# --- saving -------------------------------------------------------------------------------------
def save_calibrator_file(
    model: str, question: str, probe: Optional[Probe], extra: Optional[dict] = None, folder: Optional[Path] = None
) -> Path:
    """Save the settings ``extra`` (a calibrator's) and ``probe`` (or none) for this model key
    and question, atomically, as one file; returns its path."""
    base = calibrator_path(model, question, folder)
    base.parent.mkdir(parents=True, exist_ok=True)
    record = {"format": FORMAT, "model": model, "question": question,
              "probe": None if probe is None else _probe_record(probe), "extra": extra}
    path = base.with_name(base.name + ".json")
    with atomic_write(path, "wb") as fh:
        fh.write((json.dumps(record, indent=1) + "\n").encode("utf-8"))
    legacy = base.with_name(base.name + ".npz")  # the earlier format's arrays: superseded now
    try:
        legacy.unlink()
    except OSError:
        pass
    return path


def _probe_record(probe: Probe) -> dict:
    finite = lambda v: None if not np.isfinite(v) else float(v)  # noqa: E731
    arrays = {}
    for name in _ARRAYS:
        values = np.ascontiguousarray(getattr(probe, name), dtype="<f8")
        arrays[name] = {"shape": list(values.shape), "f8": base64.b64encode(values.tobytes()).decode("ascii")}
    return {
        "model": probe.model,
        "question": probe.question,
        "layer": probe.layer,
        "b": probe.b,
        "l2": probe.l2,
        "n_positive": probe.n_positive,
        "n_negative": probe.n_negative,
        "cv_auc": finite(probe.cv_auc),
        "cv_auc_margin": finite(probe.cv_auc_margin),
        "created": probe.created,
        "arrays": arrays,
    }


def save_probe(probe: Probe, folder: Optional[Path] = None) -> Path:
    """Save a probe alone (a calibrator saves its probe with its own settings: Calibrator.save)."""
    return save_calibrator_file(probe.model, probe.question, probe, None, folder)


def load_probe(model: str, question: str, folder: Optional[Path] = None) -> Optional[Probe]:
    """The saved probe for this model and question, or None."""
    found = load_calibrator_file(model, question, folder)
    return None if found is None else found[0]


# --- loading ------------------------------------------------------------------------------------
def load_calibrator_file(
    model: str,
    question: str,
    folder: Optional[Path] = None,
    *,
    on_damaged: Optional[Callable[[str], None]] = None,
) -> Optional[tuple[Optional[Probe], Optional[dict]]]:
    """(probe or None, extra) saved for this model key and question, or None if nothing usable
    is saved. A damaged file is set aside and reported to ``on_damaged`` (default: a
    :class:`StoreWarning`), then treated as absent."""
    base = calibrator_path(model, question, folder)
    path = base.with_name(base.name + ".json")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        _report(f"the saved calibrator {path} could not be read ({exc.strerror or exc}); ignored", on_damaged)
        return None
    npz = base.with_name(base.name + ".npz")
    try:
        record = json.loads(data)
        if not isinstance(record, dict):
            raise DamagedFile("not a saved calibrator")
        info = record.get("probe")
        if info is None:
            return None, record.get("extra")
        if record.get("format", 1) >= FORMAT:
            arrays = _decode_arrays(info.get("arrays"))
        elif npz.is_file():
            arrays = _read_npz(npz)
        else:  # the earlier format without its arrays: the settings still hold
            return None, record.get("extra")
        return _probe_from(info, arrays), record.get("extra")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # json, base64, numpy, missing keys
        damaged = [path] + ([npz] if npz.exists() and record_format(data) < FORMAT else [])
        aside = [_set_aside(p) for p in damaged]
        where = ", ".join(str(a or p) for a, p in zip(aside, damaged))
        _report(f"the saved calibrator for {question!r} could not be read ({_reason(exc)}); "
                f"it was set aside ({where}) and is ignored", on_damaged)
        return None


def record_format(data: bytes) -> int:
    """The format number of a saved file's bytes (1 when unreadable or unmarked)."""
    try:
        return int(json.loads(data).get("format", 1))
    except Exception:
        return 1


def _decode_arrays(arrays: Any) -> dict[str, np.ndarray]:
    if not isinstance(arrays, dict):
        raise DamagedFile("its probe has no arrays")
    out = {}
    for name in _ARRAYS:
        entry = arrays[name]
        values = np.frombuffer(base64.b64decode(entry["f8"], validate=True), dtype="<f8")
        out[name] = values.reshape(entry["shape"]).astype(np.float64)
    return out


def _read_npz(npz: Path) -> dict[str, np.ndarray]:
    import zipfile

    try:
        with np.load(npz) as arrays:
            return {name: np.array(arrays[name]) for name in _ARRAYS}
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DamagedFile(f"its arrays ({npz.name}) are damaged: {_reason(exc)}") from None


def _probe_from(info: dict, arrays: dict[str, np.ndarray]) -> Probe:
    if not (arrays["mean"].shape == arrays["scale"].shape == arrays["w"].shape):
        raise DamagedFile("its probe's arrays do not match")
    nan = float("nan")
    return Probe(
        model=info["model"],
        question=info["question"],
        layer=int(info["layer"]),
        mean=arrays["mean"],
        scale=arrays["scale"],
        w=arrays["w"],
        b=float(info["b"]),
        l2=float(info["l2"]),
        n_positive=int(info.get("n_positive", 0)),
        n_negative=int(info.get("n_negative", 0)),
        cv_auc=nan if info.get("cv_auc") is None else float(info["cv_auc"]),
        cv_auc_margin=nan if info.get("cv_auc_margin") is None else float(info["cv_auc_margin"]),
        created=float(info.get("created", 0.0)),
    )


def _set_aside(path: Path) -> Optional[Path]:
    """Rename a damaged file out of the way; None when it can't be (read-only folder)."""
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    try:
        os.replace(path, aside)
    except OSError:
        return None
    return aside


def _report(message: str, on_damaged: Optional[Callable[[str], None]]) -> None:
    if on_damaged is not None:
        on_damaged(message)
    else:
        warnings.warn(message, StoreWarning, stacklevel=3)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]
