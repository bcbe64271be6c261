"""The CPU-ready weights of a GGUF model, kept on disk so a later start skips converting them.

On the CPU a small quantized GGUF runs with float32 weights (`engine.runtime.loading`): every
start would read the quantized tensors, widen the scales and dequantize each layer again (about
0.7 s for the 98 MB default model on a 2-core machine). The result is saved once, as a
safetensors file in the cache folder named by the model's content fingerprint, and loaded from
there next time (a plain read of the float32 tensors: about 0.25 s for the default model).
This is the `VERDICT_FLOAT32_WEIGHTS=1` path; by default quantized layers stay quantized
(`engine.runtime.quantized`) and nothing is converted. The folder keeps the most recently used
files (read or written), at most KEEP_FILES of them and KEEP_BYTES together; a new file evicts
the least recently used beyond that.

A file that is truncated, unreadable, written for another fingerprint or format, or whose tensors
don't match the model's parameters (names, shapes, dtypes) is removed and rebuilt from the GGUF.
It is written atomically, so a reader never sees half of one.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from engine.atomic import atomic_path
from engine.folders import cache_dir

FORMAT = "verdict-cpu-float32/1"  # bump when what is stored changes meaning
# The folder keeps the most recently used files within both limits (the one just written stays).
KEEP_FILES = 32
KEEP_BYTES = 2 * 2**30


def cache_file(fingerprint: str) -> Path:
    """Where the CPU float32 weights of the model with this content fingerprint are kept."""
    digest = fingerprint.split(":", 1)[1] if fingerprint.startswith("sha256:") else hashlib.sha256(
        fingerprint.encode()).hexdigest()
    return cache_dir() / "weights" / f"{digest}.cpu-float32.safetensors"


def load_into(model: nn.Module, fingerprint: str) -> bool:
    """Fill `model`'s parameters from the cache; False (and no cache file left) when there is no
    usable one. The model must already have the float layers the cached weights were saved from."""
    path = cache_file(fingerprint)
    if not path.is_file():
        return False
    try:
        weights, meta = mx.load(str(path), return_metadata=True)
        expected = {name: (tuple(v.shape), v.dtype) for name, v in tree_flatten(model.parameters())}
        found = {name: (tuple(v.shape), v.dtype) for name, v in weights.items()}
        if meta.get("format") != FORMAT or meta.get("fingerprint") != fingerprint or found != expected:
            raise ValueError("the cached weights are not this model's")
        model.load_weights(list(weights.items()), strict=True)
        mx.eval(model.parameters())
    except (OSError, RuntimeError, ValueError):  # MLX reports truncation as RuntimeError
        path.unlink(missing_ok=True)
        return False
    try:
        os.utime(path)  # used now: the last to be evicted
    except OSError:
        pass
    return True


def save(model: nn.Module, fingerprint: str) -> Optional[Path]:
    """Keep `model`'s (float32) parameters for the next start; None when the cache can't be
    written (read-only or full disk: the next start converts again)."""
    path = cache_file(fingerprint)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, durable=False) as tmp:
            mx.save_safetensors(str(tmp), dict(tree_flatten(model.parameters())),
                                metadata={"format": FORMAT, "fingerprint": fingerprint})
    except (OSError, RuntimeError):
        return None
    evict(path.parent, keep=path)
    return path


def evict(folder: Path, keep: Optional[Path] = None, files: Optional[int] = None,
          total_bytes: Optional[int] = None) -> list[Path]:
    """Remove the least recently used weight files of `folder` until at most `files` (default
    KEEP_FILES) remain and they take at most `total_bytes` (KEEP_BYTES) together; `keep` stays
    whatever its size. Returns the removed files."""
    files = KEEP_FILES if files is None else files
    total_bytes = KEEP_BYTES if total_bytes is None else total_bytes
    entries = []
    for entry in folder.glob("*.safetensors"):
        if entry.name.startswith("."):  # another process's file still being written (`atomic_path`)
            continue
        try:
            stat = entry.stat()
        except OSError:  # removed meanwhile by another process
            continue
        entries.append((entry == keep, stat.st_mtime_ns, stat.st_size, entry))
    entries.sort(reverse=True)  # the kept one first, then the most recently used
    removed, count, size = [], 0, 0
    for is_kept, _, nbytes, entry in entries:
        if not is_kept and (count + 1 > files or size + nbytes > total_bytes):
            entry.unlink(missing_ok=True)
            removed.append(entry)
        else:
            count, size = count + 1, size + nbytes
    return removed
