"""Quantized layers multiplied through the dense float32 BLAS, for the CPU path.

MLX's quantized matmul runs at ~70 M weights/s on the CPU (no BLAS behind it), so small quantized
models used to run with every weight dequantized to float32 once, at load: the default
135M-parameter model then held 513 MiB of weights for a 98 MB file. Here the weights stay as the
file has them (4 or 8 bits, float32 scales and biases per group of 32: under 1.3 bytes a weight),
and each matmul dequantizes its weight with `mx.dequantize` (~1 G weights/s on two cores) into a
temporary and multiplies in float32 through the BLAS. The temporary holds exactly the values the
load-time dequantization kept, and the product is the same BLAS call, so the scores are the same;
a forward pass costs one extra pass over the weights, a few percent of a batch of documents.

`dense_matmuls(model)` gives the model instance's `QuantizedLinear` and `QuantizedEmbedding`
modules a subclass doing this (the embedding's row lookup already dequantizes only the rows it
gathers; its `as_linear`, the tied output head, goes through the BLAS in blocks of rows, so the
whole float32 table never exists at once). Nothing in MLX or mlx-lm is modified.
"""
from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from engine.runtime import numpy_blas

# Rows of a weight dequantized at a time in the output head: a 576-wide block is ~9 MiB.
BLOCK_ROWS = 4096


def _dequantized(module: nn.Module, lo: int = 0, hi: int | None = None) -> mx.array:
    """Rows lo:hi of the module's weight, dequantized (in its scales' dtype)."""
    biases = module.get("biases")
    return mx.dequantize(
        module["weight"][lo:hi], scales=module["scales"][lo:hi], biases=None if biases is None else biases[lo:hi],
        group_size=module.group_size, bits=module.bits, mode=module.mode,
    )


def times_transposed(x: mx.array, weight: mx.array) -> mx.array:
    """x @ weight.T, through numpy's BLAS where `numpy_blas` is active (MLX's is the reference one)."""
    if numpy_blas.active() and x.dtype == weight.dtype == mx.float32:
        return numpy_blas.linear(x, weight)
    product = x @ weight.T
    mx.eval(product)  # the dequantized weight is freed now, not when the whole forward pass runs
    return product


class DenseQuantizedLinear(nn.QuantizedLinear):
    """`nn.QuantizedLinear` multiplied as a dense layer: its weight dequantized for each call."""

    def __call__(self, x: mx.array) -> mx.array:
        y = times_transposed(x, _dequantized(self))
        return y + self["bias"] if "bias" in self else y


class DenseQuantizedEmbedding(nn.QuantizedEmbedding):
    """`nn.QuantizedEmbedding` whose `as_linear` (a tied output head) is a dense matmul."""

    def as_linear(self, x: mx.array) -> mx.array:
        rows = self["weight"].shape[0]
        parts = [times_transposed(x, _dequantized(self, lo, min(lo + BLOCK_ROWS, rows)))
                 for lo in range(0, rows, BLOCK_ROWS)]
        return parts[0] if len(parts) == 1 else mx.concatenate(parts, axis=-1)


_DENSE = {nn.QuantizedLinear: DenseQuantizedLinear, nn.QuantizedEmbedding: DenseQuantizedEmbedding}


def dense_matmuls(model: nn.Module) -> int:
    """Switch the model instance's affine-quantized linear and embedding layers to dense matmuls
    on their dequantized weights; returns how many were switched."""
    switched = 0
    for _, module in model.named_modules():
        dense = _DENSE.get(type(module))
        if dense is not None and getattr(module, "mode", "affine") == "affine":
            module.__class__ = dense
            switched += 1
    return switched

