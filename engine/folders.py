"""Where Verdict keeps its files: the one answer for the engine, the CLI and the app.

The data folder holds what a user made (calibrators, general probes fitted here, the app's
session); the cache folder holds what can be made again (the default model, converted GGUF
weights, file fingerprints). `VERDICT_DATA_DIR` and `VERDICT_CACHE_DIR` override them.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

DATA_DIR_ENV = "VERDICT_DATA_DIR"
CACHE_DIR_ENV = "VERDICT_CACHE_DIR"


def data_dir() -> Path:
    """The user's data folder: ``~/Library/Application Support/Verdict`` on macOS, else
    ``$XDG_DATA_HOME/verdict`` (``~/.local/share/verdict``)."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV])
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "Verdict"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "verdict"


def cache_dir() -> Path:
    """The user's cache folder: ``~/Library/Caches/Verdict`` on macOS, else
    ``$XDG_CACHE_HOME/verdict`` (``~/.cache/verdict``)."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "Verdict"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "verdict"
