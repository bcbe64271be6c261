"""ggml tensor blocks for tests: random but valid blocks of every type, and small numpy ports of
quantizers for the K-quants (gguf-py can decode them but not write them).

Random bytes are valid codes for every type; only the float scale fields must be finite and of a
sane size, so those are overwritten (their byte offsets follow ggml's block structs).
"""
from __future__ import annotations

import numpy as np

# Byte offsets of the float16 scale fields in each type's block (ggml-common.h).
F16_FIELDS = {
    "Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0],
    "Q2_K": [80, 82], "Q3_K": [108], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208],
    "IQ2_XXS": [0], "IQ2_XS": [0], "IQ2_S": [0], "IQ3_XXS": [0], "IQ3_S": [0], "IQ1_S": [0],
    "IQ4_NL": [0], "IQ4_XS": [0], "TQ1_0": [52], "TQ2_0": [64],
}


def random_blocks(type_name: str, rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """(rows, row bytes) uint8 of random valid `type_name` blocks."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    rng = np.random.default_rng(seed)
    block, size = GGML_QUANT_SIZES[GGMLQuantizationType[type_name]]
    n = cols // block
    if type_name in ("F32", "F16", "BF16"):
        values = rng.normal(0, 0.5, size=(rows, cols)).astype(np.float32)
        if type_name == "F32":
            return values.view(np.uint8)
        if type_name == "F16":
            return values.astype(np.float16).view(np.uint8)
        return (values.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
    raw = rng.integers(0, 256, size=(rows, n, size), dtype=np.uint8)

    def scales(positive: bool = False) -> np.ndarray:
        d = rng.uniform(0.002, 0.05, size=(rows, n))
        if not positive:
            d *= rng.choice([-1, 1], size=(rows, n))
        return d.astype(np.float16)

    for offset in F16_FIELDS.get(type_name, []):
        raw[..., offset : offset + 2] = scales(positive=offset > 0 and type_name.endswith("_K"))[..., None].view(np.uint8)
    if type_name == "IQ1_M":  # the f16 scale is spread over the top nibbles of four uint16s
        bits = scales().view(np.uint16)
        sc = raw[..., 48:56].copy().view(np.uint16) & np.uint16(0x0FFF)
        for k, shift in enumerate((0, 4, 8, 12)):
            sc[..., k] |= ((bits >> np.uint16(shift)) & np.uint16(0xF)) << np.uint16(12)
        raw[..., 48:56] = sc.view(np.uint8)
    if type_name == "MXFP4":  # E8M0 exponent byte
        raw[..., 0] = rng.integers(118, 128, size=(rows, n))
    if type_name == "NVFP4":  # four UE4M3 scales, kept small
        raw[..., 0:4] = rng.integers(0x20, 0x40, size=(rows, n, 4))
    return raw.reshape(rows, n * size)


def _f16_bytes(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16)[..., None].view(np.uint8)


def quantize_q4_k(x: np.ndarray) -> np.ndarray:
    """A valid Q4_K encoding of float32 rows (cols % 256 == 0): per 32-weight sub-block a
    min/max affine fit, the 8 scales and mins quantized to 6 bits against the block's d/dmin."""
    rows, cols = x.shape
    sub = x.reshape(rows, cols // 256, 8, 32).astype(np.float32)
    lo = np.minimum(sub.min(-1), 0.0)
    scale = (sub.max(-1) - lo) / 15.0
    mins = -lo
    d = (scale.max(-1) / 63.0).astype(np.float16).astype(np.float32)
    dmin = (mins.max(-1) / 63.0).astype(np.float16).astype(np.float32)
    sc = np.clip(np.round(scale / np.where(d > 0, d, 1)[..., None]), 0, 63).astype(np.uint8)
    mn = np.clip(np.round(mins / np.where(dmin > 0, dmin, 1)[..., None]), 0, 63).astype(np.uint8)
    eff_scale = d[..., None] * sc
    eff_min = dmin[..., None] * mn
    q = np.round((sub + eff_min[..., None]) / np.where(eff_scale > 0, eff_scale, 1)[..., None])
    q = np.clip(q, 0, 15).astype(np.uint8)  # (rows, blocks, 8, 32)
    packed = np.empty((rows, cols // 256, 12), dtype=np.uint8)
    packed[..., 0:4] = (sc[..., :4] & 63) | ((sc[..., 4:] >> 4) << 6)
    packed[..., 4:8] = (mn[..., :4] & 63) | ((mn[..., 4:] >> 4) << 6)
    packed[..., 8:12] = (sc[..., 4:] & 0x0F) | ((mn[..., 4:] & 0x0F) << 4)
    qs = q.reshape(rows, cols // 256, 4, 2, 32)
    qs = (qs[..., 0, :] | (qs[..., 1, :] << 4)).reshape(rows, cols // 256, 128)
    blocks = np.concatenate([_f16_bytes(d), _f16_bytes(dmin), packed, qs], axis=-1)
    return blocks.reshape(rows, -1)


def quantize_q6_k(x: np.ndarray) -> np.ndarray:
    """A valid Q6_K encoding of float32 rows (cols % 256 == 0): per 16-weight sub-block a
    symmetric scale, the 16 scales as int8 against the block's d, codes in -32..31."""
    rows, cols = x.shape
    sub = x.reshape(rows, cols // 256, 16, 16).astype(np.float32)
    amax = np.abs(sub).max(-1)
    scale = amax / 31.0
    d = (scale.max(-1) / 127.0).astype(np.float16).astype(np.float32)
    sc = np.clip(np.round(scale / np.where(d > 0, d, 1)[..., None]), -128, 127).astype(np.int8)
    eff = d[..., None] * sc
    q = np.clip(np.round(sub / np.where(eff != 0, eff, 1)[..., None]), -32, 31).astype(np.int16) + 32
    q = q.astype(np.uint8).reshape(rows, cols // 256, 2, 4, 32)  # halves of 128: q1..q4 rows of 32
    q1, q2, q3, q4 = (q[..., i, :] for i in range(4))
    ql = np.concatenate([(q1 & 0x0F) | ((q3 & 0x0F) << 4), (q2 & 0x0F) | ((q4 & 0x0F) << 4)], axis=-1)
    qh = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6)
    blocks = np.concatenate(
        [ql.reshape(rows, cols // 256, 128), qh.reshape(rows, cols // 256, 64),
         sc.view(np.uint8), _f16_bytes(d)],
        axis=-1,
    )
    return blocks.reshape(rows, -1)
