"""Model loading: MLX-format folders and GGUF files into a `LoadedModel` ready for prefill (where
models come from is `sources`); the architecture allow-list; CPU or GPU preparation."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from engine.runtime import device as backend

backend.start()  # loading.py is imported only to load a model: the fast BLAS before MLX

import mlx.core as mx  # noqa: E402
import mlx.nn as nn  # noqa: E402
from mlx.utils import tree_map  # noqa: E402

from engine.runtime.sources import ModelError, find_default_model  # noqa: E402,F401  (ModelError: re-exported)
from engine.runtime.tokenizer import Tokenizer  # noqa: E402

# On CPU, dequantize when the float32 weights stay under this size (the fast BLAS path).
DEQUANTIZE_LIMIT_BYTES = 6 * 2**30


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


def _load_folder(folder: Path) -> tuple[nn.Module, Tokenizer, dict[str, Any]]:
    from mlx_lm.utils import load_model as mlx_lm_load_model

    if not (folder / "config.json").exists():
        raise ModelError(f"{folder} is not an MLX model folder (no config.json)")
    model, config = mlx_lm_load_model(folder, lazy=False)
    tokenizer = Tokenizer.from_folder(folder)
    from engine.runtime.hub import repo_of_snapshot

    # A hub snapshot folder is named by its commit: name the model after its repo instead.
    config.setdefault("name", (repo_of_snapshot(folder) or folder.name).split("/")[-1])
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

    from engine.runtime.ggufinfo import is_gguf

    path = Path(spec).expanduser() if spec else find_default_model()
    if not path.exists():
        raise ModelError(f"model not found: {path}")
    try:
        if path.is_dir():
            model, tokenizer, config = _load_folder(path)
        elif is_gguf(path):  # by its magic bytes: Ollama's blobs have no suffix
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
