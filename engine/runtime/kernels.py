"""Faster activation and attention functions for MLX's CPU backend, scoped to our own models.

Measured on the 2-core Linux machines (MLX 0.32 CPU wheel): `mx.exp` runs at ~55 M elements/s,
15x slower than numpy's, and it sits inside SiLU (every MLP) and inside the softmax of
`mx.fast.scaled_dot_product_attention`. With float32 matmuls on OpenBLAS those two took ~40% of a
prefill of short documents and most of a prefill of long ones. Here SiLU uses a rational tanh
(Eigen's `generic_fast_tanh_float`, error < 3e-7) fused by `mx.compile`, and attention uses BLAS
matmuls around a numpy softmax.

`use_fast_kernels(model)` gives the attention and MLP modules *of that model instance* a subclass
whose `__call__` is mlx-lm's own code bound to these functions instead of the module-level ones.
Nothing in `mlx_lm` is modified: another model in the same process, stock mlx-lm included, keeps
mlx-lm's kernels. On a GPU nothing is replaced.
"""
from __future__ import annotations

import types
from typing import Any, Optional

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from engine.runtime import numpy_blas

_TANH_CLAMP = 7.90531110763549805
_TANH_P = (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05, 5.12229709037114e-08,
           -8.60467152213735e-11, 2.00018790482477e-13, -2.76076847742355e-16)
_TANH_Q = (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06)


def _tanh(x: mx.array) -> mx.array:
    x = mx.clip(x, -_TANH_CLAMP, _TANH_CLAMP)
    x2 = x * x
    p = mx.array(_TANH_P[-1], dtype=x.dtype)
    for c in reversed(_TANH_P[:-1]):
        p = p * x2 + c
    q = mx.array(_TANH_Q[-1], dtype=x.dtype)
    for c in reversed(_TANH_Q[:-1]):
        q = q * x2 + c
    return x * p / q


@mx.compile
def swiglu(gate: mx.array, up: mx.array) -> mx.array:
    """silu(gate) * up, with silu(x) = x * (1 + tanh(x / 2)) / 2."""
    return gate * (0.5 + 0.5 * _tanh(0.5 * gate)) * up


def softmax(scores: mx.array) -> mx.array:
    """Softmax over the last axis, computed by numpy (its exp is vectorised; MLX's CPU exp is
    ~15x slower, and at 4k-token contexts the softmax dominates a prefill).

    Inputs below -60 after the max is subtracted are clamped there: exp(-60) < 1e-26 is nothing
    to a float32 sum, and it keeps values out of the denormal range, which the next matmul would
    crawl through (x86 computes denormals ~100x slower; measured 0.1 s -> 11 s).
    """
    a = np.array(scores, dtype=np.float32, copy=True)
    a -= a.max(axis=-1, keepdims=True)
    np.maximum(a, -60.0, out=a)
    np.exp(a, out=a)
    a /= a.sum(axis=-1, keepdims=True)
    return mx.array(a)


def scaled_dot_product_attention(
    queries: mx.array,
    keys: mx.array,
    values: mx.array,
    cache: Any,
    scale: float,
    mask: Optional[Any],
    sinks: Optional[mx.array] = None,
) -> mx.array:
    """mlx-lm's attention signature, computed with BLAS matmuls and the fast softmax."""
    if sinks is not None or hasattr(cache, "bits"):
        from mlx_lm.models.base import scaled_dot_product_attention as reference

        return reference(queries, keys, values, cache=cache, scale=scale, mask=mask, sinks=sinks)
    b, n_heads, length, dim = queries.shape
    n_kv, t = keys.shape[1], keys.shape[2]
    rep = n_heads // n_kv
    # Query heads that share a KV head are stacked along the rows: one plain batched matmul per
    # KV head (broadcast batch dimensions take a much slower matmul path on CPU).
    q = (queries * scale).reshape(b, n_kv, rep * length, dim)
    matmul = numpy_blas.matmul if numpy_blas.active() and queries.dtype == mx.float32 else mx.matmul
    scores = matmul(q, keys.swapaxes(-1, -2)).reshape(b, n_kv, rep, length, t)
    if isinstance(mask, str):  # "causal"
        mask = mx.arange(t)[None, :] <= (t - length + mx.arange(length))[:, None]
    if mask is not None:
        if mask.ndim == 4:  # (B, 1, L, T) -> (B, 1, 1, L, T)
            mask = mx.expand_dims(mask, 2)
        if mask.dtype == mx.bool_:
            scores = mx.where(mask, scores, mx.array(-1e30, dtype=scores.dtype))
        else:  # an additive mask
            scores = scores + mask
    probs = softmax(scores).reshape(b, n_kv, rep * length, t)
    return matmul(probs, values).reshape(b, n_heads, length, dim)


KERNELS = {"swiglu": swiglu, "scaled_dot_product_attention": scaled_dot_product_attention}
_FAST_CLASSES: dict[type, type] = {}


def _fast_class(cls: type) -> Optional[type]:
    """A subclass of `cls` whose `__call__` is the same code seeing our kernels under mlx-lm's
    names, or None when its `__call__` uses neither."""
    if cls in _FAST_CLASSES:
        return _FAST_CLASSES[cls]
    call = cls.__call__
    code = getattr(call, "__code__", None)
    fast = None
    if code is not None and any(name in code.co_names for name in KERNELS):
        scope = dict(call.__globals__)
        scope.update({name: fn for name, fn in KERNELS.items() if name in code.co_names})
        fast_call = types.FunctionType(code, scope, call.__name__, call.__defaults__, call.__closure__)
        fast_call.__kwdefaults__ = call.__kwdefaults__
        fast = type(cls.__name__, (cls,), {"__call__": fast_call, "__module__": __name__,
                                            "__qualname__": f"Fast{cls.__qualname__}"})
    _FAST_CLASSES[cls] = fast
    return fast


def use_fast_kernels(model: nn.Module) -> int:
    """Switch the attention and MLP modules of this model instance to our kernels; returns how
    many modules were switched (0: the architecture calls neither kernel by name)."""
    switched = 0
    for _, module in model.named_modules():
        fast = _fast_class(type(module))
        if fast is not None:
            module.__class__ = fast
            switched += 1
    return switched
