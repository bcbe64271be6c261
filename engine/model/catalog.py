"""The models a user already has, found without network: the embedded default, the Hugging Face
cache, LM Studio's models folder and Ollama's store.

Finding is cheap (folder walks, manifests); `describe` reads each GGUF header (or an MLX
folder's config.json) for the architecture and quantization and checks the architecture
allow-list, so a listing says up front which models Verdict will refuse and why.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Optional

from engine.model import hub
from engine.model.gguf_file import is_gguf, read_gguf_info

SOURCES = ("default", "hf", "lmstudio", "ollama")
SOURCE_TITLES = {"default": "Built in", "hf": "Hugging Face cache", "lmstudio": "LM Studio", "ollama": "Ollama"}
OLLAMA_MODEL = "application/vnd.ollama.image.model"
OLLAMA_TENSOR = "application/vnd.ollama.image.tensor"


@dataclass(frozen=True)
class ModelEntry:
    """One model on disk. `name` and `path` are both accepted by `--model`."""

    name: str
    source: str  # default | hf | lmstudio | ollama
    path: Optional[str]
    format: str  # gguf | mlx
    quant: Optional[str] = None
    size_bytes: Optional[int] = None
    architecture: Optional[str] = None
    supported: bool = True
    reason: Optional[str] = None  # why it is not supported

    def row(self) -> dict:
        """The JSON row of `verdict models list --format json`."""
        return asdict(self)


def supported_architectures() -> tuple[str, ...]:
    """The architecture allow-list the runtime enforces at load time (read without MLX)."""
    from engine.model.architectures import SUPPORTED_ARCHITECTURES

    return tuple(SUPPORTED_ARCHITECTURES)


# --- finding ------------------------------------------------------------------------------------
def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def is_mlx_folder(folder: Path) -> bool:
    """A folder with config.json and safetensors weights (as mlx-community publishes them)."""
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def find_default() -> Iterator[ModelEntry]:
    from engine.model.sources import DEFAULT_MODEL_FILE, default_model_candidates

    name = DEFAULT_MODEL_FILE[: -len(".gguf")]
    for candidate in default_model_candidates():
        if candidate.is_file():
            yield ModelEntry(name, "default", str(candidate), "gguf", size_bytes=candidate.stat().st_size)
            return
    yield ModelEntry(name, "default", None, "gguf", supported=False,
                     reason="not installed: run `verdict models fetch-default`")


def find_hf_cache() -> Iterator[ModelEntry]:
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(hub.cache_dir())
    except (CacheNotFound, OSError, ValueError):
        return
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model" or not repo.revisions:
            continue
        revisions = sorted(repo.revisions, key=lambda r: ("main" in r.refs, r.last_modified), reverse=True)
        snapshot = Path(revisions[0].snapshot_path)
        if is_mlx_folder(snapshot):
            yield ModelEntry(repo.repo_id, "hf", str(snapshot), "mlx", size_bytes=_folder_size(snapshot))
        ggufs = sorted(p for p in snapshot.rglob("*") if p.is_file() and is_gguf(p))
        labels = [hub.quant_label(p.name) for p in ggufs]
        for path, label in zip(ggufs, labels):
            unique = label is not None and labels.count(label) == 1
            rel = path.relative_to(snapshot).as_posix()
            name = f"{repo.repo_id}:{label}" if unique else f"{repo.repo_id}/{rel}"
            yield ModelEntry(name, "hf", str(path), "gguf", size_bytes=path.stat().st_size)


def lmstudio_home() -> Path:
    """LM Studio's home: ~/.lmstudio-home-pointer, else ~/.cache/lm-studio if it exists, else ~/.lmstudio."""
    pointer = Path.home() / ".lmstudio-home-pointer"
    try:
        target = pointer.read_text(encoding="utf-8").strip()
        if target:
            return Path(target).expanduser()
    except OSError:
        pass
    legacy = Path.home() / ".cache" / "lm-studio"
    return legacy if legacy.is_dir() else Path.home() / ".lmstudio"


def lmstudio_models_dir() -> Path:
    """`downloadsFolder` from LM Studio's settings.json when set, else <home>/models."""
    home = lmstudio_home()
    try:
        settings = json.loads((home / "settings.json").read_text(encoding="utf-8"))
        folder = settings.get("downloadsFolder") if isinstance(settings, dict) else None
        if isinstance(folder, str) and folder.strip():
            return Path(folder).expanduser()
    except (OSError, ValueError):
        pass
    return home / "models"


def find_lmstudio() -> Iterator[ModelEntry]:
    root = lmstudio_models_dir()
    if not root.is_dir():
        return
    for repo_dir in sorted(p for p in root.glob("*/*") if p.is_dir()):
        key = repo_dir.relative_to(root).as_posix()
        if is_mlx_folder(repo_dir):
            yield ModelEntry(key, "lmstudio", str(repo_dir), "mlx", size_bytes=_folder_size(repo_dir))
        for path in sorted(p for p in repo_dir.rglob("*") if p.is_file() and is_gguf(p)):
            name = f"{key}/{path.relative_to(repo_dir).as_posix()}"
            yield ModelEntry(name, "lmstudio", str(path), "gguf", size_bytes=path.stat().st_size)


def ollama_models_dir() -> Path:
    """$OLLAMA_MODELS, else ~/.ollama/models."""
    return Path(os.environ.get("OLLAMA_MODELS") or Path.home() / ".ollama" / "models").expanduser()


def _ollama_name(parts: tuple[str, ...]) -> str:
    host, *rest = parts
    *path, tag = rest
    if host == "registry.ollama.ai" and path[:1] == ["library"]:
        path = path[1:]
    elif host != "registry.ollama.ai":
        path = [host] + path
    return "/".join(path) + ":" + tag


def find_ollama() -> Iterator[ModelEntry]:
    root = ollama_models_dir()
    manifests = root / "manifests"
    if not manifests.is_dir():
        return
    for manifest in sorted(p for p in manifests.rglob("*") if p.is_file()):
        parts = manifest.relative_to(manifests).parts
        if len(parts) < 3:
            continue
        name = _ollama_name(parts)
        try:
            layers = json.loads(manifest.read_text(encoding="utf-8")).get("layers") or []
            types = [layer.get("mediaType") for layer in layers]
        except (OSError, ValueError, AttributeError):
            yield ModelEntry(name, "ollama", str(manifest), "gguf", supported=False,
                             reason="unreadable Ollama manifest")
            continue
        if OLLAMA_TENSOR in types:
            yield ModelEntry(name, "ollama", str(manifest), "gguf", supported=False,
                             reason="per-tensor layers (a newer Ollama format) are not supported")
            continue
        models = [layer for layer in layers if layer.get("mediaType") == OLLAMA_MODEL]
        if len(models) != 1 or not str(models[0].get("digest", "")).startswith("sha256:"):
            yield ModelEntry(name, "ollama", str(manifest), "gguf", supported=False,
                             reason="the manifest names no single model layer")
            continue
        blob = root / "blobs" / models[0]["digest"].replace(":", "-", 1)
        if not blob.is_file():
            yield ModelEntry(name, "ollama", str(blob), "gguf", supported=False, reason="its model blob is missing")
            continue
        yield ModelEntry(name, "ollama", str(blob), "gguf", size_bytes=blob.stat().st_size)


_FINDERS = {"default": find_default, "hf": find_hf_cache, "lmstudio": find_lmstudio, "ollama": find_ollama}


def find_models(sources: tuple[str, ...] = SOURCES) -> list[ModelEntry]:
    """Every model on disk (names and paths only; see `describe`)."""
    entries: list[ModelEntry] = []
    for source in sources:
        entries.extend(_FINDERS[source]())
    return entries


# --- describing ----------------------------------------------------------------------------------
def describe(entry: ModelEntry, allowed: Optional[tuple[str, ...]] = None) -> ModelEntry:
    """The entry with architecture, quantization and whether Verdict supports it (and why not;
    `allowed`: the allow-list as the message names it)."""
    if not entry.supported or entry.path is None:
        return entry
    allowed = allowed if allowed is not None else supported_architectures()
    path = Path(entry.path)
    quant, arch = entry.quant, None
    try:
        if entry.format == "gguf":
            if not is_gguf(path):
                return replace(entry, supported=False, reason="not a GGUF file (no GGUF magic bytes)")
            info = read_gguf_info(path)
            arch, quant = info.architecture, info.quant or quant
        else:
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
            arch = config.get("model_type")
            q = config.get("quantization") or {}
            quant = f"{q['bits']}-bit" if isinstance(q, dict) and "bits" in q else "float"
    except (OSError, ValueError) as exc:  # GGUFFormatError is a ValueError
        return replace(entry, supported=False, reason=f"unreadable: {exc}")
    entry = replace(entry, architecture=arch, quant=quant)
    from engine.model.architectures import is_supported

    if not is_supported(str(arch), gguf=entry.format == "gguf"):
        return replace(entry, supported=False,
                       reason=f"architecture {arch!r} is not supported (supported: {', '.join(allowed)})")
    return entry


def list_models(sources: tuple[str, ...] = SOURCES) -> list[ModelEntry]:
    """Every model on disk, described (no network)."""
    allowed = supported_architectures()
    return [describe(e, allowed) for e in find_models(sources)]


def find_by_name(name: str, sources: tuple[str, ...] = SOURCES) -> Optional[ModelEntry]:
    """The model listed under `name` (exactly, then case-insensitively), or None."""
    entries = [e for e in find_models(sources) if e.path]
    for match in (lambda e: e.name == name, lambda e: e.name.lower() == name.lower()):
        found = [e for e in entries if match(e)]
        if found:
            return found[0]
    return None
