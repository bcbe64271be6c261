"""Write any model Verdict can load as an MLX folder that mlx-lm's own `load` and mlx_lm.server
can serve: config.json, safetensors (through mlx-lm's `save_model` / `save_config`), and the
tokenizer files (tokenizer.json from `engine.model.tokenizer`, tokenizer_config.json and
chat_template.jinja).

GGUF tensors kept quantized by the loader (Q4_0, Q4_1, Q8_0) stay quantized, each module's bits
written into the config. llama GGUFs store Q and K rows permuted for llama.cpp's interleaved RoPE;
the export permutes them back and uses the standard RoPE, so the folder has the Hugging Face
layout. Floating-point tensors (and quantization scales) are written as `dtype`: float32 (the
default) keeps the arithmetic of Verdict's CPU path, so a server's logits match the local ones.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Union

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_map

from engine.model.sources import ModelError, find_default_model
from engine.model.tokenizer import Tokenizer

DTYPES = {"float32": mx.float32, "float16": mx.float16, "bfloat16": mx.bfloat16}


def _unpermute_rows(w: mx.array, n_head: int) -> mx.array:
    """Undo llama.cpp's Q/K row permutation (rows = output features; also scales, biases, bias)."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _standard_rope(model: nn.Module, config: dict[str, Any]) -> None:
    """Turn a llama GGUF's permuted Q/K + interleaved RoPE into the Hugging Face layout."""
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    for layer in model.model.layers:
        attn = layer.self_attn
        for proj, n in ((attn.q_proj, heads), (attn.k_proj, kv_heads)):
            proj.update({name: _unpermute_rows(value, n) for name, value in proj.parameters().items()})
        if not hasattr(attn.rope, "traditional"):
            raise ModelError(f"{type(attn.rope).__name__}: can't switch this RoPE to the standard layout")
        attn.rope.traditional = False
    config["rope_traditional"] = False


def _tokenizer_files(tokenizer: Tokenizer, out: Path, context_length: int) -> None:
    tokenizer.backend.save(str(out / "tokenizer.json"))
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": tokenizer.bos_token,
        "eos_token": tokenizer.eos_token,
        "add_bos_token": tokenizer.add_bos,
        "model_max_length": context_length,
        "clean_up_tokenization_spaces": False,
    }
    if tokenizer.chat_template:
        config["chat_template"] = tokenizer.chat_template
        (out / "chat_template.jinja").write_text(tokenizer.chat_template, encoding="utf-8")
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    special = {k: v for k, v in (("bos_token", tokenizer.bos_token), ("eos_token", tokenizer.eos_token)) if v}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=1), encoding="utf-8")


def export_mlx(model: Union[str, Path, None], out_dir: Union[str, Path], dtype: str = "float32",
               dequantize: bool = False) -> Path:
    """Write `model` (a .gguf file, an MLX folder, or None for the default model) to `out_dir` as
    an MLX folder; returns the folder. `dequantize`: dense weights (exactly the quantized values).
    Raises ModelError."""
    from mlx_lm.utils import dequantize_model, save_config, save_model

    from engine.runtime.loading import read_model

    if dtype not in DTYPES:
        raise ModelError(f"--dtype must be one of {', '.join(DTYPES)}")
    path = Path(model).expanduser() if model else find_default_model()
    out = Path(out_dir).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ModelError(f"{out} exists and is not empty")
    if not path.exists():
        raise ModelError(f"model not found: {path}")
    net, tokenizer, config = read_model(path)  # MLX-native quantizations stay quantized
    if any(type(layer.self_attn.rope).__name__ == "_FrequencyFactorRoPE" for layer in net.model.layers):
        raise ModelError(f"{path.name}: RoPE frequency factors (rope_freqs) can't be written as an MLX config yet")
    config = dict(config)
    if config.get("model_type") == "llama" and config.get("rope_traditional"):
        _standard_rope(net, config)
    target = DTYPES[dtype]
    if dequantize:  # through float32 scales, so the dense weights are the quantized values exactly
        net.update(tree_map(lambda a: a.astype(mx.float32) if mx.issubdtype(a.dtype, mx.floating) else a,
                            net.parameters()))
        dequantize_model(net)
    net.update(tree_map(lambda a: a.astype(target) if mx.issubdtype(a.dtype, mx.floating) else a, net.parameters()))
    quantized = {name: {"group_size": m.group_size, "bits": m.bits}
                 for name, m in net.named_modules() if isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding))}
    config.pop("quantization", None)
    config.pop("quantization_config", None)
    if quantized:
        first = next(iter(quantized.values()))
        config["quantization"] = {**first, **quantized}
    config["torch_dtype"] = dtype
    mx.eval(net.parameters())
    out.mkdir(parents=True, exist_ok=True)
    try:
        save_model(out, net, donate_model=False)
        save_config(config, out / "config.json")
        _tokenizer_files(tokenizer, out, int(config.get("max_position_embeddings", 2048)))
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return out
