"""Model loading: MLX-format folders and GGUF files into a `LoadedModel` ready for prefill (where
models come from is `sources`); the architecture allow-list; CPU or GPU preparation."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

from engine.runtime import device as backend

backend.start()  # loading.py is imported only to load a model: the fast BLAS before MLX

import mlx.core as mx  # noqa: E402
import mlx.nn as nn  # noqa: E402
from mlx.utils import tree_flatten, tree_map, tree_unflatten  # noqa: E402

from engine.model.architectures import SUPPORTED_ARCHITECTURES  # noqa: E402,F401  (re-exported)
from engine.model.sources import ModelError, find_default_model  # noqa: E402  (ModelError: re-exported)
from engine.model.tokenizer import Tokenizer  # noqa: E402

# On CPU, multiply dequantized weights when they stay under this size as float32 (the fast BLAS path).
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
    # Content fingerprint (`engine.model.fingerprint`): "sha256:<hex>" for files,
    # "hf:<repo>@<commit>" for hub snapshots. Key saved calibrators and probes by it, not by name.
    fingerprint: str = ""
    # A prompt preset the model was trained for (e.g. "qwen3-reranker"), read from its metadata.
    preset: Optional[str] = None


def _load_folder(folder: Path) -> tuple[nn.Module, Tokenizer, dict[str, Any]]:
    import json

    from mlx_lm.utils import load_model as mlx_lm_load_model

    from engine.model.architectures import check_architecture
    from engine.model.hub import repo_of_snapshot

    if not (folder / "config.json").exists():
        raise ModelError(f"{folder} is not an MLX model folder (no config.json)")
    try:
        raw_config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{folder.name}: config.json can't be read ({exc})") from exc
    if not isinstance(raw_config, dict):
        raise ModelError(f"{folder.name}: config.json is not a JSON object")
    check_architecture(str(raw_config.get("model_type", "")), raw_config)  # before any weight is read
    tokenizer = Tokenizer.from_folder(folder)
    model, config = mlx_lm_load_model(folder, lazy=False)
    # A hub snapshot folder is named by its commit: name the model after its repo instead.
    config.setdefault("name", (repo_of_snapshot(folder) or folder.name).split("/")[-1])
    return model, tokenizer, config


def parameter_count(model: nn.Module) -> int:
    """How many weights the model has, a quantized weight counted as the values it stands for."""
    total = 0
    for _, module in tree_flatten(model.leaf_modules(), is_leaf=lambda m: isinstance(m, nn.Module)):
        if isinstance(module, (nn.QuantizedLinear, nn.QuantizedEmbedding)):
            total += module.weight.size * 32 // module.bits + (module.bias.size if "bias" in module else 0)
        else:
            total += sum(v.size for _, v in tree_flatten(module.parameters()))
    return total


def dequantize(model: nn.Module) -> int:
    """Replace the model's quantized linear and embedding layers by plain ones holding the
    dequantized weights (in the scales' dtype); returns how many were replaced."""
    swaps = []
    for path, module in model.named_modules():
        if isinstance(module, (nn.QuantizedLinear, nn.QuantizedEmbedding)):
            weight = mx.dequantize(module.weight, module.scales, module.biases, module.group_size, module.bits,
                                   mode=getattr(module, "mode", "affine"))
            if isinstance(module, nn.QuantizedEmbedding):
                plain: nn.Module = nn.Embedding(*weight.shape)
            else:
                plain = nn.Linear(weight.shape[1], weight.shape[0], bias="bias" in module)
                if "bias" in module:
                    plain.bias = module.bias
            plain.weight = weight
            swaps.append((path, plain))
    if swaps:
        model.update_modules(tree_unflatten(swaps))
    return len(swaps)


def float32_weights_wanted() -> bool:
    """``VERDICT_FLOAT32_WEIGHTS=1``: on the CPU, dequantize small quantized models once at load
    and keep the float32 weights (about 4x the memory), instead of dequantizing each layer's
    weight for each matmul (`engine.runtime.quantized`). The scores are the same either way."""
    return os.environ.get("VERDICT_FLOAT32_WEIGHTS") == "1"


def _prepare_for_backend(model: nn.Module) -> Any:
    """Choose the compute dtype: float16 on a GPU; float32 on CPU, where float16 is ~40x slower,
    with small quantized models' matmuls going through the optimized BLAS on dequantized weights
    (dequantized for each matmul, or once with `float32_weights_wanted`)."""
    if backend.is_gpu():
        return mx.float16
    # float32 scales first, so dequantized weights are exact (not rounded through float16).
    model.update(
        tree_map(
            lambda a: a.astype(mx.float32) if mx.issubdtype(a.dtype, mx.floating) and a.dtype != mx.float32 else a,
            model.parameters(),
        )
    )
    if parameter_count(model) * 4 <= DEQUANTIZE_LIMIT_BYTES:
        if float32_weights_wanted():
            dequantize(model)
        else:
            from engine.runtime.quantized import dense_matmuls

            dense_matmuls(model)
    from engine.runtime import numpy_blas

    if numpy_blas.wanted():  # no system OpenBLAS: numpy's, for the float32 matmuls
        numpy_blas.install(model)
    if os.environ.get("VERDICT_CPU_KERNELS", "1") != "0":
        from engine.runtime.kernels import use_fast_kernels

        use_fast_kernels(model)
    mx.eval(model.parameters())
    return mx.float32


def read_model(path: Path, **gguf_options: Any) -> tuple[nn.Module, Tokenizer, dict[str, Any]]:
    """The module, tokenizer and config of an MLX folder or a GGUF file (by its magic bytes),
    its architecture checked against the allow-list. Every failure is a `ModelError` naming the
    file. `gguf_options` go to `load_gguf`."""
    from engine.model.architectures import ArchitectureError, check_built_model
    from engine.runtime.gguf import GGUFError, load_gguf
    from engine.model.gguf_file import GGUFFormatError
    from engine.model.gguf_file import is_gguf
    from engine.model.tokenizer import TokenizerError

    try:
        if path.is_dir():
            model, tokenizer, config = _load_folder(path)
        elif is_gguf(path):
            model, tokenizer, config = load_gguf(path, **gguf_options)
        else:
            raise ModelError(f"{path.name}: expected an MLX model folder or a GGUF file")
        check_built_model(model, str(config.get("model_type")))
    except TokenizerError as exc:  # a bad BOS id, say: the file is named, the message says what
        raise ModelError(f"{path.name}: {exc}") from exc
    except (GGUFError, GGUFFormatError, ArchitectureError) as exc:
        raise ModelError(str(exc)) from exc
    except (ValueError, KeyError, OSError) as exc:
        raise ModelError(f"{path.name}: could not load the model ({exc})") from exc
    return model, tokenizer, config


def load_model(
    spec: Union[str, Path, None] = None, progress: Optional[Callable[[str, int, int], None]] = None
) -> LoadedModel:
    """Load a model: an MLX folder, a GGUF file (by its magic bytes, whatever its name), or
    (None) the embedded default model. Architectures outside the allow-list
    (`engine.model.architectures`) are refused. `progress(stage, done, total)` hears about
    slow steps (hashing and converting big GGUF files)."""
    from engine.model.architectures import prompt_limit
    from engine.model.fingerprint import detect_preset, model_fingerprint

    from engine.runtime import weight_cache
    from engine.model.gguf_file import is_gguf

    path = Path(spec).expanduser() if spec else find_default_model()
    if not path.exists():
        raise ModelError(f"model not found: {path}")
    fingerprint = model_fingerprint(path, progress)
    gpu = backend.is_gpu()
    # A GGUF on the CPU with float32 weights kept: what an earlier start converted is read back.
    cacheable = not gpu and path.is_file() and is_gguf(path) and float32_weights_wanted()
    from_cache: list[bool] = []

    def cached_weights(model: nn.Module) -> bool:
        from_cache.append(weight_cache.load_into(model, fingerprint))
        return from_cache[-1]

    model, tokenizer, config = read_model(
        path, gpu=gpu, float_limit_bytes=DEQUANTIZE_LIMIT_BYTES, progress=progress,
        **({"float_weights": cached_weights} if cacheable else {}),
    )
    tokenizer.name = path.name
    model.eval()
    converted_here = cacheable and not any(from_cache) and parameter_count(model) * 4 <= DEQUANTIZE_LIMIT_BYTES
    dtype = _prepare_for_backend(model)
    if converted_here and all(p.dtype == mx.float32 for _, p in tree_flatten(model.parameters())):
        weight_cache.save(model, fingerprint)
    model_type = str(config.get("model_type"))
    context = prompt_limit(model_type, config, int(config.get("max_position_embeddings") or config.get("context_length") or 2048))
    names = [path.name, config.get("name"), config.get("_name_or_path"), *config.get("gguf_names", [])]
    if path.is_dir():
        from engine.model.hub import repo_of_snapshot

        names.append(repo_of_snapshot(path))
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=str(config.get("name") or path.stem),
        path=path,
        model_type=model_type,
        context_length=context,
        compute_dtype=dtype,
        config=config,
        fingerprint=fingerprint,
        preset=detect_preset(model_type, names),
    )
