"""Where models come from: a path, a model the user already has, or a Hugging Face repo.

`resolve_model(spec)` turns what a user typed after `--model` into a local path:
1. an existing path (a GGUF file, recognised by its magic bytes, or an MLX folder);
2. a name from `verdict models list` (the default, LM Studio, Ollama, the Hugging Face cache);
3. a hub reference, `org/repo` (an MLX repo) or `org/repo:QUANT` (a GGUF file), downloaded
   into the Hugging Face cache, or taken from it offline.
No MLX and no Qt here. `ggufinfo` and `hub` import nothing of the engine, so the runtime may
use them (magic bytes, hub snapshot names); `catalog` reads the runtime's architecture
allow-list, which starts the local runtime (fast BLAS, then MLX).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from engine.sources.hub import DownloadCancelled, HubError, Progress

__all__ = ["resolve_model", "ModelSourceError", "DownloadCancelled", "HubError"]


class ModelSourceError(HubError):
    """`--model` names nothing Verdict can find; the message is one line a user can act on."""


def resolve_model(spec: str, *, progress: Optional[Progress] = None,
                  cancel: Optional[Callable[[], bool]] = None) -> Path:
    """A local path for `spec` (a path, a listed model name or a hub reference); may download."""
    from engine.sources import catalog, hub

    path = Path(spec).expanduser()
    if path.exists():
        return path
    ref = hub.parse_ref(spec)
    local = catalog.find_by_name(spec, sources=("default", "lmstudio", "ollama") if ref else catalog.SOURCES)
    if local is not None:
        return Path(local.path)
    if ref is not None:
        try:
            return hub.download(spec, progress=progress, cancel=cancel)
        except hub.RepoNotFound as exc:  # perhaps a mistyped relative path: say both
            raise ModelSourceError(f"model not found: {spec} is no local path or listed model, and {exc}") from exc
    raise ModelSourceError(
        f"model not found: {spec} (give a path, a name from `verdict models list`, "
        "or a Hugging Face repo as org/repo or org/repo:QUANT)"
    )
