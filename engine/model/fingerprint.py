"""Model fingerprints and the facts read from a model's own metadata.

A fingerprint names a model's *content*, so two different files with the same name never share a
saved calibrator or probe, and a renamed copy keeps its own:

    sha256:<hex>             a model file (the sha256 of its bytes)
    hf:<org>/<name>@<commit> a Hugging Face cache snapshot folder (.../snapshots/<commit>/)
    dir-sha256:<hex>         any other folder (over its files' names and sha256s)

Hashing a multi-GB file takes seconds, so each file's sha256 is kept in
`<cache>/fingerprints.json`, keyed by its resolved path, size and modification time.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Callable, Optional

from engine.atomic import atomic_write
from engine.folders import cache_dir

FORMATS = ("sha256:", "hf:", "dir-sha256:")  # what a fingerprint starts with
Progress = Callable[[str, int, int], None]
_COMMIT = re.compile(r"[0-9a-f]{40}")
_MAX_ENTRIES = 512


def _cache_file() -> Path:
    return cache_dir() / "fingerprints.json"


def _read_cache() -> dict[str, Any]:
    try:
        data = json.loads(_cache_file().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(data: dict[str, Any]) -> None:
    target = _cache_file()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(target, durable=False) as fh:
            json.dump(data, fh)
    except OSError:
        pass  # a read-only cache only costs a rehash next time


def sha256_of(path: Path, progress: Optional[Progress] = None) -> str:
    """The sha256 of a file's bytes, read now (a download being checked is never remembered)."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256()
    done = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(8 << 20), b""):
            digest.update(block)
            done += len(block)
            if progress:
                progress(f"hashing {path.name}", done, size)
    return digest.hexdigest()


def file_sha256(path: Path, progress: Optional[Progress] = None) -> str:
    """The sha256 of a file's bytes, computed once per (path, size, mtime)."""
    path = Path(path).resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    cache = _read_cache()
    if isinstance(cache.get(key), str):
        return cache[key]
    value = sha256_of(path, progress)
    cache = _read_cache()
    cache = {k: v for k, v in cache.items() if not k.startswith(f"{path}|")}  # drop stale entries
    cache[key] = value
    _write_cache(dict(list(cache.items())[-_MAX_ENTRIES:]))
    return value


def hub_snapshot(folder: Path) -> Optional[tuple[str, str]]:
    """(repo id, commit) of a Hugging Face cache snapshot folder (.../snapshots/<commit>/), else None."""
    from engine.model.hub import repo_of_snapshot

    folder = Path(folder)
    repo = repo_of_snapshot(folder)
    if repo is None or folder.parent.name != "snapshots" or not _COMMIT.fullmatch(folder.name):
        return None
    return repo, folder.name


def model_fingerprint(path: Path, progress: Optional[Progress] = None) -> str:
    """The content fingerprint of a model file or folder (see the module docstring)."""
    path = Path(path)
    if path.is_file():
        return "sha256:" + file_sha256(path, progress)
    snapshot = hub_snapshot(path)
    if snapshot:
        return f"hf:{snapshot[0]}@{snapshot[1]}"
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(f"{item.relative_to(path).as_posix()}\0{file_sha256(item, progress)}\n".encode())
    return "dir-sha256:" + digest.hexdigest()


RERANKER_PRESET = "qwen3-reranker"


def detect_preset(model_type: str, names: list[Any]) -> Optional[str]:
    """The prompt preset a model was trained for, from its own names (GGUF `general.*`,
    config.json `_name_or_path`, the file, folder or hub repo name): Qwen3 rerankers get theirs."""
    text = " ".join(str(n) for n in names if n).lower()
    if model_type == "qwen3" and "reranker" in text:
        return RERANKER_PRESET
    return None
