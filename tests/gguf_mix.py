"""Re-encode a GGUF model's weights as a llama.cpp "Q4_K_M"-style mix of tensor types.

llama.cpp's Q4_K_M gives most matrices Q4_K, and attn_v / ffn_down of some layers and the
output Q6_K; a row length that is not a multiple of 256 falls back from Q4_K to Q5_0 and from
Q6_K to Q8_0. `write_mix` applies those rules to any GGUF (metadata copied as is), quantizing
with gguf-py (Q5_0, Q8_0) and `ggml_blocks` (Q4_K, Q6_K).
"""
from __future__ import annotations

import struct
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


def _encode(values: np.ndarray, kind: str) -> np.ndarray:
    import gguf
    from gguf.quants import quantize

    from ggml_blocks import quantize_q4_k, quantize_q6_k

    if kind == "F32":
        return values.astype(np.float32)
    if kind == "Q4_K":
        return quantize_q4_k(values)
    if kind == "Q6_K":
        return quantize_q6_k(values)
    return quantize(values, gguf.GGMLQuantizationType[kind])


def write_mix(source: Path, target: Path, pick: Callable[[str, tuple[int, ...]], str] = q4_k_m_type,
              metadata: Optional[dict[str, Any]] = None) -> dict[str, str]:
    """Write `source`'s model to `target` with tensor types from `pick` and some `metadata`
    values replaced (same value types); return tensor name -> type.

    Without `metadata` the metadata bytes are copied as they are (gguf-py's reader takes ~10 s
    to parse a 50k-token vocabulary); with it, gguf-py rewrites them."""
    import gguf
    from gguf.quants import dequantize

    from engine.model.gguf_file import read_header, tensor_bytes

    header = read_header(source)
    chosen, blobs, infos = {}, [], []
    offset = 0
    for t in header.tensors:
        values = dequantize(np.asarray(tensor_bytes(header, t)), gguf.GGMLQuantizationType[t.type_name])
        kind = pick(t.name, t.shape)
        chosen[t.name] = kind
        data = np.ascontiguousarray(_encode(values.reshape(t.shape).astype(np.float32), kind)).tobytes()
        infos.append((t.name, t.shape, gguf.GGMLQuantizationType[kind], offset))
        blobs.append(data + b"\0" * (-len(data) % header.alignment))
        offset += len(blobs[-1])
    if metadata:
        return _write_with_gguf_py(source, target, chosen, metadata)
    with open(source, "rb") as fh:
        head = fh.read(header.tensor_info_offset)
    n_kv = struct.unpack_from("<Q", head, 16)[0]
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(infos), n_kv) + head[24:])
    for name, shape, qtype, off in infos:
        encoded = name.encode()
        out += struct.pack("<Q", len(encoded)) + encoded + struct.pack("<I", len(shape))
        out += b"".join(struct.pack("<Q", d) for d in reversed(shape)) + struct.pack("<IQ", int(qtype), off)
    out += b"\0" * (-len(out) % header.alignment)
    with open(target, "wb") as fh:
        fh.write(out)
        for blob in blobs:
            fh.write(blob)
    return chosen


def _write_with_gguf_py(source: Path, target: Path, chosen: dict[str, str], metadata: dict[str, Any]) -> dict[str, str]:
    import gguf
    from gguf.quants import dequantize

    reader = gguf.GGUFReader(str(source))
    arch = str(reader.fields["general.architecture"].contents())
    writer = gguf.GGUFWriter(str(target), arch)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, metadata.get(name, field.contents()), vtype, sub_type=sub)
    for tensor in reader.tensors:
        shape = tuple(int(d) for d in reversed(tensor.shape))
        values = dequantize(np.asarray(tensor.data), tensor.tensor_type).reshape(shape).astype(np.float32)
        kind = chosen[tensor.name]
        data = _encode(values, kind)
        writer.add_tensor(tensor.name, data, raw_dtype=None if kind == "F32" else gguf.GGMLQuantizationType[kind])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return chosen
