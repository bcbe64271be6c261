"""GGUF tensor types turned into what MLX computes with, exactly where a mapping exists.

MLX's affine quantization stores, per group of `group_size` weights, w = scale * q + bias with
unsigned `bits`-bit codes packed little-endian into uint32 words. Several ggml types are exactly
that with group size 32, so their codes are repacked bit for bit and no rounding is added:

    Q4_0  w = d * (q - 8)              -> 4-bit, scale d, bias -8d
    Q4_1  w = d * q + m                -> 4-bit, scale d, bias m
    Q5_0  w = d * (q - 16)             -> 5-bit, scale d, bias -16d
    Q5_1  w = d * q + m                -> 5-bit, scale d, bias m
    Q8_0  w = d * q  (q signed)        -> 8-bit, codes q + 128, scale d, bias -128d
    Q4_K  w = d*sc_j * q - dmin*m_j    -> 4-bit, per 32-weight sub-block j: scale d*sc_j, bias -dmin*m_j

Every other type gguf-py can decode (Q2_K, Q3_K, Q5_K, Q6_K, the IQ types, TQ, MXFP4, BF16, ...)
has no exact MLX layout (Q6_K's sub-blocks are 16 weights, the IQ types use codebooks): it is
dequantized with `gguf.quants.dequantize`, one tensor at a time, and either kept as float32 or
requantized to MLX 8-bit with group size 32 (the loader decides; see `engine.runtime.gguf`).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

GROUP_SIZE = 32
REQUANT_BITS = 8
# Types `mx.load` decodes correctly and keeps quantized (checked against gguf-py, mlx 0.32.4).
MLX_NATIVE_TYPES = frozenset({"F32", "F16", "Q4_0", "Q4_1", "Q8_0"})
# Types repacked here without any rounding.
REPACKED_TYPES = frozenset({"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K"})
FLOAT_TYPES = frozenset({"F32", "F16", "BF16", "F64"})
_CHUNK_BYTES = 16 << 20


def _f16(raw: np.ndarray, start: int) -> np.ndarray:
    """The float16 field at byte `start` of each block, as float32 (blocks on the last-but-one axis)."""
    return raw[..., start : start + 2].copy().view(np.float16)[..., 0].astype(np.float32)


def pack_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    """Pack unsigned codes (rows, n) into MLX's uint32 words: a little-endian bit stream."""
    rows, n = codes.shape
    if bits == 8:
        packed = codes.astype(np.uint8)
    elif bits == 4:
        c = codes.astype(np.uint8).reshape(rows, n // 2, 2)
        packed = c[..., 0] | (c[..., 1] << 4)
    elif bits == 5:  # 8 codes fill 5 bytes; uint8 shifts drop the bits that move out
        c = [codes[:, k::8].astype(np.uint8) for k in range(8)]
        packed = np.stack(
            [
                c[0] | (c[1] << 5),
                (c[1] >> 3) | (c[2] << 2) | (c[3] << 7),
                (c[3] >> 1) | (c[4] << 4),
                (c[4] >> 4) | (c[5] << 1) | (c[6] << 6),
                (c[6] >> 2) | (c[7] << 3),
            ],
            axis=-1,
        )
    else:
        raise ValueError(f"no packing for {bits}-bit codes")
    return np.ascontiguousarray(packed).reshape(rows, -1).view(np.uint32)


def _nibbles_halves(qs: np.ndarray) -> np.ndarray:
    """ggml's 32-weight layout: the low nibbles are weights 0..15, the high ones 16..31."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-1)


def _blocks(raw: np.ndarray, block_bytes: int) -> np.ndarray:
    rows = raw.shape[0]
    return raw.reshape(rows, raw.shape[1] // block_bytes, block_bytes)


def _q4_0(raw):
    b = _blocks(raw, 18)
    d = _f16(b, 0)
    return _nibbles_halves(b[..., 2:]), 4, d, -8.0 * d


def _q4_1(raw):
    b = _blocks(raw, 20)
    return _nibbles_halves(b[..., 4:]), 4, _f16(b, 0), _f16(b, 2)


def _q5_codes(b: np.ndarray, qh_at: int) -> np.ndarray:
    high = np.unpackbits(b[..., qh_at : qh_at + 4], axis=-1, bitorder="little")  # bit j: weight j
    return _nibbles_halves(b[..., qh_at + 4 :]) | (high << 4)


def _q5_0(raw):
    b = _blocks(raw, 22)
    d = _f16(b, 0)
    return _q5_codes(b, 2), 5, d, -16.0 * d


def _q5_1(raw):
    b = _blocks(raw, 24)
    return _q5_codes(b, 4), 5, _f16(b, 0), _f16(b, 2)


def _q8_0(raw):
    b = _blocks(raw, 34)
    d = _f16(b, 0)
    codes = (b[..., 2:].view(np.int8).astype(np.int16) + 128).astype(np.uint8)
    return codes, 8, d, -128.0 * d


def q4_k_scales(scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 8 six-bit (scale, min) pairs of each Q4_K/Q5_K block from its 12 packed bytes."""
    s = scales.astype(np.uint8)
    lo, mid, hi = s[..., 0:4], s[..., 4:8], s[..., 8:12]
    sc = np.concatenate([lo & 63, (hi & 0x0F) | ((lo >> 6) << 4)], axis=-1)
    mn = np.concatenate([mid & 63, (hi >> 4) | ((mid >> 6) << 4)], axis=-1)
    return sc, mn


def _q4_k(raw):
    b = _blocks(raw, 144)  # d, dmin (f16), scales[12], qs[128]
    d, dmin = _f16(b, 0), _f16(b, 2)
    sc, mn = q4_k_scales(b[..., 4:16])
    qs = b[..., 16:].reshape(*b.shape[:-1], 4, 32)  # 4 chunks of 64 weights
    codes = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)  # chunk j: sub-blocks 2j, 2j+1
    scale = d[..., None] * sc.astype(np.float32)  # (rows, blocks, 8)
    bias = -(dmin[..., None] * mn.astype(np.float32))
    rows = raw.shape[0]
    return codes.reshape(rows, -1), 4, scale.reshape(rows, -1), bias.reshape(rows, -1)


_REPACK = {"Q4_0": _q4_0, "Q4_1": _q4_1, "Q5_0": _q5_0, "Q5_1": _q5_1, "Q8_0": _q8_0, "Q4_K": _q4_k}


def repack(raw: np.ndarray, type_name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(weight uint32, scales, biases, bits) of a repackable type; `raw` is (rows, row bytes)."""
    rows = raw.shape[0]
    step = max(1, _CHUNK_BYTES // max(1, raw.shape[1]))  # bounds the temporaries of big tensors
    parts = []
    for start in range(0, rows, step):
        codes, bits, scale, bias = _REPACK[type_name](np.asarray(raw[start : start + step]))
        n = codes.shape[0]
        parts.append((pack_codes(codes.reshape(n, -1), bits), scale.reshape(n, -1), bias.reshape(n, -1)))
    weight, scales, biases = (np.concatenate([p[i] for p in parts]) for i in range(3))
    return weight, scales.astype(np.float32), biases.astype(np.float32), bits


def dequantize(raw: np.ndarray, type_name: str, shape: tuple[int, ...]) -> np.ndarray:
    """float32 weights of any type gguf-py can decode, in numpy order `shape`."""
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize as gguf_dequantize

    qtype = GGMLQuantizationType[type_name]
    if type_name == "F32":
        return np.asarray(raw).view(np.float32).reshape(shape)
    if type_name == "BF16":  # the top half of a float32
        return (np.asarray(raw).view(np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(shape)
    return np.asarray(gguf_dequantize(np.asarray(raw), qtype), dtype=np.float32).reshape(shape)


def convert(raw: np.ndarray, type_name: str, shape: tuple[int, ...], *, keep_float: bool) -> dict[str, np.ndarray]:
    """One GGUF tensor as MLX parameters: {"weight"} (float) or {"weight", "scales", "biases"}.

    `raw` is the tensor's bytes shaped (rows..., row bytes). Matrices of a repackable type are
    repacked exactly. Other quantized matrices are dequantized, then kept as float32 when
    `keep_float`, else requantized to MLX 8-bit, group size 32. F16 stays float16; vectors and
    everything else become float32.
    """
    matrix = len(shape) == 2 and shape[-1] % GROUP_SIZE == 0
    if matrix and type_name in REPACKED_TYPES:
        weight, scales, biases, _ = repack(raw.reshape(shape[0], -1), type_name)
        return {"weight": weight, "scales": scales, "biases": biases}
    if type_name == "F16":
        return {"weight": np.asarray(raw).view(np.float16).reshape(shape)}
    values = dequantize(raw, type_name, shape)
    if keep_float or not matrix or type_name in FLOAT_TYPES:
        return {"weight": np.ascontiguousarray(values, dtype=np.float32)}
    return requantize(values)


def requantize(values: np.ndarray, bits: int = REQUANT_BITS) -> dict[str, np.ndarray]:
    """MLX affine quantization (group size 32) of float32 weights."""
    import mlx.core as mx

    weight, scales, biases = mx.quantize(mx.array(values), group_size=GROUP_SIZE, bits=bits)
    return {"weight": np.array(weight), "scales": np.array(scales), "biases": np.array(biases)}


def bits_of(weight: np.ndarray, scales: np.ndarray) -> Optional[int]:
    """The bits per code of an MLX quantized matrix, from its shapes (group size 32)."""
    in_features = scales.shape[-1] * GROUP_SIZE
    bits = weight.shape[-1] * 32 // in_features
    return bits if bits * in_features == weight.shape[-1] * 32 else None
