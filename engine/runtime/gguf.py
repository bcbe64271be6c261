"""Load a GGUF file (llama, qwen2, qwen3, gemma3 architectures) as an mlx-lm model plus its tokenizer.

Every file is checked in Python first (`engine.model.gguf_file`): header, metadata, tensor
table and data ranges, so a hostile or truncated file fails with one line instead of reaching
MLX's native parser. Then the architecture (`engine.model.architectures`) and the tokenizer
are checked, before any weight is read.

Tensors: a file of F32, F16, Q4_0, Q4_1 and Q8_0 tensors only goes through `mx.load`, which
keeps the quantized ones as MLX affine triples (group size 32), correctly. Any other file is
read with numpy and converted tensor by tensor (`engine.runtime.gguf_quants`): Q4_K, Q5_0,
Q5_1 (and Q4_0/Q4_1/Q8_0) are repacked into MLX 4/5/8-bit exactly; every other type is
dequantized by gguf-py and kept float32 (CPU, small models, which run dequantized anyway) or
requantized to MLX 8-bit (GPU, or models too big to run as float32). MLX never sees Q4_K
(`mx.load` decodes it wrongly, silently) nor the types it can't read. Slow conversions are
cached, keyed by the file's sha256. Bits are inferred per tensor from the shapes, since files
mix them. llama-architecture files have their Q and K rows permuted for llama.cpp's interleaved
RoPE: we keep them and use the traditional (interleaved) RoPE, which is equivalent. Gemma 3
files keep llama.cpp's own names for its extra norms, and their norm weights as llama.cpp
multiplies by them: llama.cpp's converter stores Gemma's 1 + w, and mlx-lm's Gemma norm adds
the 1 itself, so the loader takes it off again.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable, Optional

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from engine.atomic import atomic_path
from engine.model.architectures import check_architecture, model_type_of
from engine.model.gguf_file import GGUFHeader, read_header, tensor_bytes
from engine.runtime.gguf_quants import FLOAT_TYPES, GROUP_SIZE, MLX_NATIVE_TYPES, REPACKED_TYPES, bits_of, convert
from engine.model.tokenizer import Tokenizer

Progress = Callable[[str, int, int], None]
GGUF_GROUP_SIZE = GROUP_SIZE
# Conversions slower than this many bytes of dequantized (not repacked) tensors are cached.
CACHE_MIN_BYTES = 128 << 20


_TENSOR_NAMES = [
    (r"^token_embd\.", "model.embed_tokens."),
    (r"^output_norm\.", "model.norm."),
    (r"^output\.", "lm_head."),
    (r"^blk\.(\d+)\.attn_norm\.", r"model.layers.\1.input_layernorm."),
    (r"^blk\.(\d+)\.ffn_norm\.", r"model.layers.\1.post_attention_layernorm."),
    (r"^blk\.(\d+)\.attn_q\.", r"model.layers.\1.self_attn.q_proj."),
    (r"^blk\.(\d+)\.attn_k\.", r"model.layers.\1.self_attn.k_proj."),
    (r"^blk\.(\d+)\.attn_v\.", r"model.layers.\1.self_attn.v_proj."),
    (r"^blk\.(\d+)\.attn_output\.", r"model.layers.\1.self_attn.o_proj."),
    (r"^blk\.(\d+)\.attn_q_norm\.", r"model.layers.\1.self_attn.q_norm."),
    (r"^blk\.(\d+)\.attn_k_norm\.", r"model.layers.\1.self_attn.k_norm."),
    (r"^blk\.(\d+)\.ffn_gate\.", r"model.layers.\1.mlp.gate_proj."),
    (r"^blk\.(\d+)\.ffn_up\.", r"model.layers.\1.mlp.up_proj."),
    (r"^blk\.(\d+)\.ffn_down\.", r"model.layers.\1.mlp.down_proj."),
]
# Gemma 3 norms around each sub-block (llama.cpp's names; `ffn_norm` is its pre-MLP norm there).
_GEMMA3_NAMES = [
    (r"^blk\.(\d+)\.post_attention_norm\.", r"model.layers.\1.post_attention_layernorm."),
    (r"^blk\.(\d+)\.ffn_norm\.", r"model.layers.\1.pre_feedforward_layernorm."),
    (r"^blk\.(\d+)\.post_ffw_norm\.", r"model.layers.\1.post_feedforward_layernorm."),
]
# llama.cpp's Gemma 3: every sixth layer global, the others local with RoPE base 10,000 (neither
# is in the file), and queries scaled by the head size except in the 27B model (62 layers).
GEMMA3_SLIDING_PATTERN = 6
GEMMA3_LOCAL_ROPE_BASE = 10000.0


class GGUFError(ValueError):
    """The GGUF file can't be loaded; the message says why and what is supported."""


def mlx_name(gguf_name: str, arch: str = "llama") -> str:
    """The mlx-lm parameter path of a GGUF tensor name in a file of architecture `arch`."""
    for pattern, repl in (_GEMMA3_NAMES if arch == "gemma3" else []) + _TENSOR_NAMES:
        new, n = re.subn(pattern, repl, gguf_name)
        if n:
            return new
    raise GGUFError(f"unexpected tensor {gguf_name!r} in GGUF file")


def _meta_value(meta: dict[str, Any], key: str, default: Any = None) -> Any:
    value = meta.get(key, default)
    return value.item() if hasattr(value, "item") else value


def decodable_types() -> frozenset[str]:
    """Every tensor type this loader reads: MLX's own, the repacked ones, gguf-py's decoders."""
    from gguf import GGMLQuantizationType
    from gguf.quants import _type_traits

    decoded = {t.name for t in GGMLQuantizationType if t in _type_traits}
    return frozenset(decoded | MLX_NATIVE_TYPES | REPACKED_TYPES | FLOAT_TYPES)


def model_args(meta: dict[str, Any], header: GGUFHeader) -> dict[str, Any]:
    """An mlx-lm config dict for the GGUF file's architecture (refused unless allowed)."""
    arch = str(_meta_value(meta, "general.architecture", ""))
    check_architecture(arch, gguf=True)
    shapes = {t.name: t.shape for t in header.tensors}
    if "token_embd.weight" not in shapes:
        raise GGUFError(f"{header.path.name}: no token_embd.weight tensor")

    def get(key: str, default: Any = None) -> Any:
        return _meta_value(meta, f"{arch}.{key}", default)

    def count(key: str, default: Any = None, limit: int = 1 << 20) -> int:
        value = get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 < int(value) <= limit:
            raise GGUFError(f"{header.path.name}: metadata {arch}.{key} is {value!r}, not a count up to {limit}")
        return int(value)

    heads = count("attention.head_count")
    hidden = count("embedding_length")
    layers, ffn = count("block_count"), count("feed_forward_length")
    kv_heads = count("attention.head_count_kv", heads)
    head_dim = count("attention.key_length", max(1, hidden // heads))
    context = count("context_length", 4096, limit=1 << 24)
    if heads % kv_heads:
        raise GGUFError(f"{header.path.name}: {heads} attention heads can't share {kv_heads} KV heads")
    rope_base = get("rope.freq_base", 10000.0 if arch == "llama" else 1000000.0)
    if not isinstance(rope_base, (int, float, np.floating)) or not 0 < float(rope_base) < 1e12:
        raise GGUFError(f"{header.path.name}: metadata {arch}.rope.freq_base is {rope_base!r}")
    vocab = shapes["token_embd.weight"][0]
    config: dict[str, Any] = {
        "model_type": model_type_of(arch, gguf=True),
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "intermediate_size": ffn,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "rms_norm_eps": float(get("attention.layer_norm_rms_epsilon", 1e-6)),
        "vocab_size": int(vocab),
        "max_position_embeddings": context,
        "rope_theta": float(rope_base),
        "tie_word_embeddings": "output.weight" not in shapes,
        "head_dim": head_dim,
    }
    if arch == "llama":
        config["rope_traditional"] = True  # the Q/K rows are permuted for interleaved RoPE
        config["attention_bias"] = "blk.0.attn_q.bias" in shapes
    if arch == "gemma3":
        window = count("attention.sliding_window", limit=1 << 24)
        config.update(
            sliding_window=window,
            sliding_window_pattern=GEMMA3_SLIDING_PATTERN,
            rope_local_base_freq=GEMMA3_LOCAL_ROPE_BASE,
            query_pre_attn_scalar=hidden / heads if layers == 62 else head_dim,
        )
    if arch == "qwen2" and "blk.0.attn_q.bias" not in shapes:
        raise GGUFError("qwen2 GGUF file without attention biases is not a qwen2 model")
    scaling = get("rope.scaling.type")
    if scaling == "linear":
        config["rope_scaling"] = {"type": "linear", "factor": float(get("rope.scaling.factor", 1.0))}
    elif scaling not in (None, "none"):
        raise GGUFError(f"RoPE scaling {scaling!r} is not supported; supported: linear")
    return config


def check_tokenizer_metadata(meta: dict[str, Any], name: str) -> None:
    """The shapes of the tokenizer metadata, before the tokenizer is built from them."""
    tokens = meta.get("tokenizer.ggml.tokens")
    if not isinstance(tokens, list) or not tokens:
        raise GGUFError(f"{name}: tokenizer.ggml.tokens is missing or not a list of strings")
    merges = meta.get("tokenizer.ggml.merges", [])
    if not isinstance(merges, list) or any(" " not in m for m in merges):
        raise GGUFError(f"{name}: tokenizer.ggml.merges is not a list of 'left right' pairs")
    types = meta.get("tokenizer.ggml.token_type")
    if types is not None and (not isinstance(types, np.ndarray) or len(types) != len(tokens)):
        raise GGUFError(f"{name}: tokenizer.ggml.token_type doesn't give one type per token")
    for key in ("tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"):
        value = meta.get(key)
        if value is not None and (not isinstance(value, int) or not 0 <= value < len(tokens)):
            raise GGUFError(f"{name}: {key} is {value!r}, outside the {len(tokens)} tokens")


class _FrequencyFactorRoPE(nn.Module):
    """RoPE with per-dimension frequency factors (the `rope_freqs` tensor of Llama 3 GGUFs)."""

    def __init__(self, dims: int, base: float, traditional: bool, factors: mx.array):
        super().__init__()
        self.dims = dims
        self.traditional = traditional
        exponents = mx.arange(0, dims, 2, dtype=mx.float32) / dims
        self._freqs = (base**exponents) * factors.astype(mx.float32)

    def __call__(self, x: mx.array, offset: Any = 0) -> mx.array:
        return mx.fast.rope(
            x, self.dims, traditional=self.traditional, base=None, scale=1.0, offset=offset, freqs=self._freqs
        )


def _keep_float(header: GGUFHeader, gpu: bool, float_limit_bytes: int) -> bool:
    """Dequantized types stay float32 on CPU when the whole model fits as float32 (it then runs
    dequantized through BLAS anyway); otherwise they're requantized to MLX 8-bit."""
    params = sum(int(np.prod(t.shape)) for t in header.tensors)
    return not gpu and params * 4 <= float_limit_bytes


def _convert_all(header: GGUFHeader, keep_float: bool, float_dtype: Any, progress: Optional[Progress]) -> dict[str, mx.array]:
    total = sum(t.nbytes for t in header.tensors)
    done = 0
    out: dict[str, mx.array] = {}
    for info in header.tensors:
        parts = convert(tensor_bytes(header, info), info.type_name, info.shape, keep_float=keep_float)
        stem = info.name[: -len(".weight")] if info.name.endswith(".weight") else info.name
        for suffix, value in parts.items():
            array = mx.array(value)
            if suffix == "weight" and value.dtype == np.float32 and info.type_name in FLOAT_TYPES - {"F32"}:
                array = array.astype(float_dtype)  # BF16/F64: float16 on a GPU
            out[info.name if suffix == "weight" else f"{stem}.{suffix}"] = array
        mx.eval(list(out.values())[-len(parts):])
        done += info.nbytes
        if progress:
            progress(f"converting {header.path.name}", done, total)
    return out


def read_weights(
    header: GGUFHeader, *, keep_float: bool, float_dtype: Any = mx.float32, progress: Optional[Progress] = None
) -> dict[str, mx.array]:
    """The file's tensors as MLX arrays, GGUF names kept (`<name>.scales`/`.biases` added for
    quantized ones). Conversions of more than CACHE_MIN_BYTES of dequantized tensors are saved
    once under the cache, keyed by the file's sha256 and the float/8-bit choice."""
    unknown = header.tensor_types() - decodable_types()
    if unknown:
        raise GGUFError(
            f"{header.path.name}: tensors of type {', '.join(sorted(unknown))} can't be decoded "
            "(gguf-py has no decoder for them)"
        )
    if header.tensor_types() <= MLX_NATIVE_TYPES:
        return mx.load(str(header.path), format="gguf")  # checked by read_header; MLX decodes these correctly
    slow = sum(t.nbytes for t in header.tensors if t.type_name not in REPACKED_TYPES | {"F32", "F16"})
    min_bytes = int(os.environ.get("VERDICT_GGUF_CACHE_MIN_BYTES", CACHE_MIN_BYTES))
    if slow < min_bytes:
        return _convert_all(header, keep_float, float_dtype, progress)

    from engine.model.fingerprint import file_sha256
    from engine.folders import cache_dir

    mode = "f32" if keep_float else f"q8-{str(float_dtype).rsplit('.', 1)[-1]}"
    target = cache_dir() / "gguf" / f"{file_sha256(header.path, progress)}.{mode}.safetensors"
    if target.is_file():
        try:
            return mx.load(str(target))
        except Exception:  # a damaged cache entry is rebuilt
            target.unlink(missing_ok=True)
    weights = _convert_all(header, keep_float, float_dtype, progress)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target, durable=False) as tmp:
            mx.save_safetensors(str(tmp), weights)
    except OSError:
        pass  # no cache (read-only or full disk): the next load converts again
    return weights


def load_gguf(
    path: Path,
    *,
    gpu: bool = False,
    float_limit_bytes: int = 6 * 2**30,
    progress: Optional[Progress] = None,
    float_weights: Optional[Callable[[nn.Module], bool]] = None,
) -> tuple[nn.Module, Tokenizer, dict[str, Any]]:
    """Build the mlx-lm model, tokenizer and config a GGUF file describes. `float_weights`, when
    given, may fill the model's plain (unquantized) layers from elsewhere (weights converted on
    an earlier start); when it returns True the file's tensors are not read."""
    from engine.runtime.model_classes import model_classes

    header = read_header(path)
    meta = header.metadata
    config = model_args(meta, header)
    check_tokenizer_metadata(meta, header.path.name)
    tokenizer = Tokenizer.from_gguf_metadata(meta)
    arch = str(_meta_value(meta, "general.architecture", ""))
    names = {t.name: mlx_name(t.name, arch) for t in header.tensors if t.name != "rope_freqs.weight"}
    model_class, args_class = model_classes(config["model_type"])
    model = model_class(args_class.from_dict(config))
    if config["tie_word_embeddings"] and "lm_head" in model:  # a class that always builds one (Gemma 3)
        model.pop("lm_head")
        model.tie_word_embeddings = True

    config["tensor_types"] = sorted(header.tensor_types())
    config["name"] = Path(path).stem  # general.name is often a training-run label
    config["gguf_names"] = [meta.get(k) for k in ("general.name", "general.basename", "general.finetune")]
    has_rope_factors = any(t.name == "rope_freqs.weight" for t in header.tensors)  # not a parameter
    if float_weights is not None and not has_rope_factors and float_weights(model):
        return model, tokenizer, config
    keep_float = _keep_float(header, gpu, float_limit_bytes)
    weights = read_weights(header, keep_float=keep_float, float_dtype=mx.float16 if gpu else mx.float32, progress=progress)
    rope_factors = weights.pop("rope_freqs.weight", None)
    renamed: dict[str, mx.array] = {}
    for name, value in weights.items():
        for suffix in (".scales", ".biases"):
            if name.endswith(suffix):
                renamed[names[name[: -len(suffix)] + ".weight"][: -len(".weight")] + suffix] = value
                break
        else:
            renamed[names[name]] = value
    if arch == "gemma3":
        renamed = {name: value - 1.0 if name.endswith("norm.weight") else value for name, value in renamed.items()}
    quantized = {
        name[: -len(".scales")]: bits_of(renamed[name[: -len(".scales")] + ".weight"], renamed[name])
        for name in renamed
        if name.endswith(".scales")
    }

    def predicate(path: str, module: nn.Module) -> Any:
        bits = quantized.get(path)
        return {"group_size": GGUF_GROUP_SIZE, "bits": int(bits)} if bits else False

    if quantized:
        nn.quantize(model, class_predicate=predicate)
    model.load_weights(list(renamed.items()), strict=True)
    if rope_factors is not None:
        for layer in model.model.layers:
            attn = layer.self_attn
            attn.rope = _FrequencyFactorRoPE(
                attn.rope.dims, config["rope_theta"], config.get("rope_traditional", False), rope_factors
            )
    config["quantization"] = {"group_size": GGUF_GROUP_SIZE, "bits": sorted(set(quantized.values()))}
    return model, tokenizer, config
