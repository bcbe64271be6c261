"""Load a GGUF file (llama, qwen2, qwen3 architectures) as an mlx-lm model plus its tokenizer.

`mx.load` keeps Q4_0, Q4_1 and Q8_0 tensors quantized as MLX affine triples (group size 32); the
bits are inferred per tensor from the shapes, since files mix them (SmolLM2's Q4_1 file stores
`token_embd` as Q8_0). llama-architecture files have their Q and K rows permuted for llama.cpp's
interleaved RoPE: we keep them and use the traditional (interleaved) RoPE, which is equivalent.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from engine.runtime.tokenizer import Tokenizer

SUPPORTED_ARCHITECTURES = ("llama", "qwen2", "qwen3")
SUPPORTED_TYPES = "F32, F16, Q4_0, Q4_1, Q8_0 (kept quantized); BF16, Q4_K, Q6_K, Q2_K (expanded to float16)"
GGUF_GROUP_SIZE = 32

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


class GGUFError(ValueError):
    """The GGUF file can't be loaded; the message says why and what is supported."""


def mlx_name(gguf_name: str) -> str:
    """The mlx-lm parameter path of a GGUF tensor name."""
    for pattern, repl in _TENSOR_NAMES:
        new, n = re.subn(pattern, repl, gguf_name)
        if n:
            return new
    raise GGUFError(f"unexpected tensor {gguf_name!r} in GGUF file")


def _meta_value(meta: dict[str, Any], key: str, default: Any = None) -> Any:
    value = meta.get(key, default)
    return value.item() if hasattr(value, "item") else value


MLX_GGUF_TYPES = {"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q8_0", "Q4_K", "Q6_K", "Q2_K"}


def unsupported_tensor_types(path: Path) -> list[str]:
    """Names of the tensor types in a GGUF file that MLX can't read (read with gguf-py)."""
    from gguf import GGUFReader

    types = {t.tensor_type.name for t in GGUFReader(str(path)).tensors}
    return sorted(types - MLX_GGUF_TYPES)


def read_gguf(path: Path) -> tuple[dict[str, mx.array], dict[str, Any]]:
    """Tensors and metadata of a GGUF file, with unsupported tensor types named clearly."""
    try:
        return mx.load(str(path), format="gguf", return_metadata=True)  # Ollama blobs have no suffix
    except Exception as exc:  # MLX's message doesn't say which type it met
        try:
            found = unsupported_tensor_types(path)
        except Exception:  # not even gguf-py can read it
            found = []
        what = f"tensors of type {', '.join(found)}" if found else f"this file ({exc})"
        raise GGUFError(
            f"{Path(path).name}: MLX cannot read {what}. Supported tensor types: "
            f"{SUPPORTED_TYPES}. Files quantized as Q4_K_M/Q5_* often mix in Q5_0 tensors; use a "
            "Q4_0, Q4_1 or Q8_0 file, or an MLX-format folder."
        ) from exc


def model_args(meta: dict[str, Any], weights: dict[str, mx.array]) -> dict[str, Any]:
    """An mlx-lm config dict for the GGUF file's architecture."""
    arch = _meta_value(meta, "general.architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise GGUFError(
            f"GGUF architecture {arch!r} is not supported; supported: {', '.join(SUPPORTED_ARCHITECTURES)}"
        )

    def get(key: str, default: Any = None) -> Any:
        return _meta_value(meta, f"{arch}.{key}", default)

    heads = int(get("attention.head_count"))
    hidden = int(get("embedding_length"))
    vocab = weights["token_embd.scales" if "token_embd.scales" in weights else "token_embd.weight"].shape[0]
    config: dict[str, Any] = {
        "model_type": arch,
        "hidden_size": hidden,
        "num_hidden_layers": int(get("block_count")),
        "intermediate_size": int(get("feed_forward_length")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(get("attention.head_count_kv", heads)),
        "rms_norm_eps": float(get("attention.layer_norm_rms_epsilon", 1e-6)),
        "vocab_size": int(vocab),
        "max_position_embeddings": int(get("context_length", 4096)),
        "rope_theta": float(get("rope.freq_base", 10000.0 if arch == "llama" else 1000000.0)),
        "tie_word_embeddings": "output.weight" not in weights,
        "head_dim": int(get("attention.key_length", hidden // heads)),
    }
    if arch == "llama":
        config["rope_traditional"] = True  # the Q/K rows are permuted for interleaved RoPE
        config["attention_bias"] = "blk.0.attn_q.bias" in weights
    if arch == "qwen2" and "blk.0.attn_q.bias" not in weights:
        raise GGUFError("qwen2 GGUF file without attention biases is not a qwen2 model")
    scaling = get("rope.scaling.type")
    if scaling == "linear":
        config["rope_scaling"] = {"type": "linear", "factor": float(get("rope.scaling.factor", 1.0))}
    elif scaling not in (None, "none"):
        raise GGUFError(f"RoPE scaling {scaling!r} is not supported; supported: linear")
    return config


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


def load_gguf(path: Path) -> tuple[nn.Module, Tokenizer, dict[str, Any]]:
    """Build the mlx-lm model, tokenizer and config a GGUF file describes."""
    from mlx_lm.utils import _get_classes

    weights, meta = read_gguf(path)
    config = model_args(meta, weights)
    tokenizer = Tokenizer.from_gguf_metadata(meta)
    model_class, args_class = _get_classes(config)
    model = model_class(args_class.from_dict(config))

    rope_factors = weights.pop("rope_freqs.weight", None)
    renamed = {mlx_name(name): value for name, value in weights.items()}
    quantized = {
        name[: -len(".scales")]: renamed[name[: -len(".scales")] + ".weight"].shape[-1]
        // renamed[name].shape[-1]
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
    config["name"] = Path(path).stem  # general.name is often a training-run label
    return model, tokenizer, config
