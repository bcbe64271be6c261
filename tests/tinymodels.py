"""Tiny random-weight models written to disk the way real ones are published.

`write_mlx_folder` writes an MLX-format folder (config.json, safetensors, tokenizer.json,
tokenizer_config.json with a ChatML template) through mlx-lm's own save functions;
`write_gguf` writes a GGUF file with gguf-py, quantizing with gguf-py's reference quantizers
and permuting llama's Q/K rows the way llama.cpp's converter does. Both share one byte-level BPE
vocabulary, so every path through the engine can be tested without downloads.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten

CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
WORDS = ["Yes", "No", "yes", "no", "Ġyes", "Ġno", "ĠYes", "ĠNo", "Ġthe", "Ġdocument", "Question", "Document", "Answer"]


def _byte_vocab() -> tuple[list[str], list[tuple[str, str]]]:
    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = sorted(ByteLevel.alphabet())
    tokens = list(SPECIALS) + alphabet
    merges: list[tuple[str, str]] = []
    for word in WORDS:  # add each word through a chain of merges
        current = word[0]
        for ch in word[1:]:
            merges.append((current, ch))
            current += ch
            if current not in tokens:
                tokens.append(current)
    return tokens, list(dict.fromkeys(merges))


def tokenizer_json() -> dict:
    tokens, merges = _byte_vocab()
    return {
        "version": "1.0",
        "added_tokens": [
            {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
            for i, t in enumerate(SPECIALS)
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "vocab": {t: i for i, t in enumerate(tokens)}, "merges": [list(m) for m in merges]},
    }


def vocab_size() -> int:
    return len(_byte_vocab()[0])


def model_config(arch: str = "llama", tie: bool = True, hidden: int = 64) -> dict:
    """A tiny config; `hidden` 256 makes rows long enough for K-quant blocks (256 weights)."""
    config = {
        "model_type": arch,
        "hidden_size": hidden,
        "num_hidden_layers": 2,
        "intermediate_size": 2 * hidden,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5,
        "vocab_size": vocab_size(),
        "max_position_embeddings": 2048,
        "rope_theta": 10000.0,
        "tie_word_embeddings": tie,
        "head_dim": hidden // 4,
    }
    if arch == "gemma3_text":  # layer 1 local (a window of 24 tokens), layer 2 global
        config.update(sliding_window=24, sliding_window_pattern=2, query_pre_attn_scalar=hidden // 4)
    return config


def build_model(arch: str = "llama", tie: bool = True, seed: int = 0, hidden: int = 64):
    from mlx_lm.utils import _get_classes

    config = model_config(arch, tie, hidden)
    model_class, args_class = _get_classes(config)
    mx.random.seed(seed)
    model = model_class(args_class.from_dict(config))
    mx.eval(model.parameters())
    return model, config


def write_mlx_folder(folder: Path, arch: str = "llama", *, tie: bool = True, quantize_bits: Optional[int] = None,
                     seed: int = 0, chat_template: bool = True) -> Path:
    """Write a tiny random model as an MLX-format folder and return its path."""
    from mlx_lm.utils import save_config, save_model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model, config = build_model(arch, tie, seed)
    if quantize_bits:
        nn.quantize(model, group_size=32, bits=quantize_bits)
        config["quantization"] = {"group_size": 32, "bits": quantize_bits}
    save_model(folder, model, donate_model=False)
    save_config(config, folder / "config.json")
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer_json()), encoding="utf-8")
    tok_config = {"bos_token": None, "eos_token": "<|im_end|>", "add_bos_token": False}
    if chat_template:
        tok_config["chat_template"] = CHATML_TEMPLATE
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_config), encoding="utf-8")
    return folder


def _permute_for_llamacpp(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf permutation of llama Q/K rows (for interleaved RoPE)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


_GGUF_NAMES = {
    "model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output",
    "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
    "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
}


def _gguf_name(name: str) -> str:
    stem, _, kind = name.rpartition(".")
    if stem.startswith("model.layers."):
        _, _, idx, rest = stem.split(".", 3)
        return f"blk.{idx}.{_GGUF_NAMES[rest]}.{kind}"
    return f"{_GGUF_NAMES[stem]}.{kind}"


def _encode(w: np.ndarray, quant: str) -> np.ndarray:
    """`w` (rows, cols) as ggml `quant` blocks: gguf-py's quantizers, or ours for K-quants."""
    import gguf
    from gguf.quants import quantize

    from ggml_blocks import quantize_q4_k, quantize_q6_k

    if quant == "Q4_K":
        return quantize_q4_k(w)
    if quant == "Q6_K":
        return quantize_q6_k(w)
    return quantize(w, getattr(gguf.GGMLQuantizationType, quant))


def write_gguf(path: Path, arch: str = "llama", *, tie: bool = True, quant="Q8_0", seed: int = 0,
               extra_tensors: Optional[dict[str, np.ndarray]] = None, hidden: int = 64,
               pre: Optional[str] = None, tokenizer_model: str = "gpt2", name: Optional[str] = None,
               chat_template: str = CHATML_TEMPLATE, bos_token_id: int = 1):
    """Write a tiny random model as a GGUF file; return (path, the float model it encodes).

    `quant` applies to 2-D weight matrices ("F32", "F16", "Q8_0", "Q4_0", "Q4_1", "Q5_0",
    "Q5_1", and with `hidden=256` "Q4_K", "Q6_K"), or is a function (tensor name -> type);
    norms and biases stay F32. The returned model holds the dequantized weights, as a float
    reference.
    """
    import gguf
    from gguf.quants import dequantize

    model, config = build_model(arch, tie, seed, hidden)
    pick = quant if callable(quant) else (lambda _name: quant)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(name or f"tiny-{arch}")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_key_length(config["head_dim"])
    writer.add_value_length(config["head_dim"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_rope_freq_base(config["rope_theta"])
    tokens, merges = _byte_vocab()
    writer.add_tokenizer_model(tokenizer_model)
    writer.add_tokenizer_pre(pre or ("qwen2" if arch.startswith("qwen") else "smollm"))
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in SPECIALS else 1 for t in tokens])
    writer.add_token_merges([f"{a} {b}" for a, b in merges])
    writer.add_eos_token_id(2)
    writer.add_bos_token_id(bos_token_id)
    writer.add_add_bos_token(False)
    writer.add_chat_template(chat_template)

    reference = {}
    for name, value in tree_flatten(model.parameters()):
        w = np.array(value, dtype=np.float32)
        gguf_w = w
        if arch == "llama" and name.endswith(("q_proj.weight", "k_proj.weight")):
            heads = config["num_attention_heads"] if "q_proj" in name else config["num_key_value_heads"]
            gguf_w = _permute_for_llamacpp(w, heads)
        kind = pick(_gguf_name(name))
        if w.ndim == 2 and kind != "F32":
            qtype = getattr(gguf.GGMLQuantizationType, kind)
            if kind == "F16":
                data = gguf_w.astype(np.float16)
                back = data.astype(np.float32)
            else:
                data = _encode(gguf_w, kind)
                back = dequantize(data, qtype).reshape(gguf_w.shape)
            writer.add_tensor(_gguf_name(name), data, raw_dtype=None if kind == "F16" else qtype)
            if arch == "llama" and name.endswith(("q_proj.weight", "k_proj.weight")):
                back = _unpermute(back, heads)
            reference[name] = back
        else:
            writer.add_tensor(_gguf_name(name), gguf_w)
            reference[name] = w
    for name, value in (extra_tensors or {}).items():
        writer.add_tensor(name, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    model.load_weights([(k, mx.array(v)) for k, v in reference.items()])
    return Path(path), model


def _unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
