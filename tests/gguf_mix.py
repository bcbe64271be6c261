"""Re-encode a GGUF model's weights as a llama.cpp "Q4_K_M"-style mix of tensor types.

llama.cpp's Q4_K_M gives most matrices Q4_K, and attn_v / ffn_down of some layers and the
output Q6_K; a row length that is not a multiple of 256 falls back from Q4_K to Q5_0 and from
Q6_K to Q8_0. `write_mix` applies those rules to any GGUF (metadata copied as is), quantizing
with gguf-py (Q5_0, Q8_0) and `ggml_blocks` (Q4_K, Q6_K).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np


def q4_k_m_type(name: str, shape: tuple[int, ...]) -> str:
    """The tensor type Q4_K_M gives a tensor, with llama.cpp's fallbacks for short rows."""
    if len(shape) != 2:
        return "F32"
    layer = int(name.split(".")[1]) if name.startswith("blk.") else -1
    more_bits = name in ("output.weight", "token_embd.weight") or (
        any(k in name for k in ("attn_v", "ffn_down")) and layer % 2 == 0
    )
    wanted = "Q6_K" if more_bits else "Q4_K"
    if shape[-1] % 256:
        wanted = {"Q6_K": "Q8_0", "Q4_K": "Q5_0"}[wanted]
    return wanted


def write_mix(source: Path, target: Path, pick: Callable[[str, tuple[int, ...]], str] = q4_k_m_type,
              metadata: Optional[dict[str, Any]] = None) -> dict[str, str]:
    """Write `source`'s model to `target` with tensor types from `pick` and some `metadata`
    values replaced (same value types); return tensor name -> type."""
    import gguf
    from gguf.quants import dequantize, quantize

    from ggml_blocks import quantize_q4_k, quantize_q6_k

    reader = gguf.GGUFReader(str(source))
    arch = str(reader.fields["general.architecture"].contents())
    writer = gguf.GGUFWriter(str(target), arch)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        value = (metadata or {}).get(name, field.contents())
        writer.add_key_value(name, value, vtype, sub_type=sub)
    chosen = {}
    for tensor in reader.tensors:
        shape = tuple(int(d) for d in reversed(tensor.shape))
        values = dequantize(np.asarray(tensor.data), tensor.tensor_type).reshape(shape).astype(np.float32)
        kind = pick(tensor.name, shape)
        chosen[tensor.name] = kind
        if kind == "F32":
            writer.add_tensor(tensor.name, values)
            continue
        qtype = gguf.GGMLQuantizationType[kind]
        if kind == "Q4_K":
            data = quantize_q4_k(values)
        elif kind == "Q6_K":
            data = quantize_q6_k(values)
        else:
            data = quantize(values, qtype)
        writer.add_tensor(tensor.name, data, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return chosen
