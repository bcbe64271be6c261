"""Faster activation and attention functions for MLX's CPU backend, scoped to our own models.

Measured on the 2-core Linux machines (MLX 0.32 CPU wheel): `mx.exp` runs at ~55 M elements/s,
15x slower than numpy's, and it sits inside SiLU (every MLP) and inside the softmax of
`mx.fast.scaled_dot_product_attention`; MLX's elementwise ops on the CPU are slow in general
(masking the attention scores with `mx.where` cost more than both attention matmuls). So on float32
both run in numpy around MLX's matmuls: SiLU times up through numpy's tanh, and the attention's
masking and softmax between its two matmuls, with one conversion in and one out. Those matmuls stay
on MLX's BLAS: numpy's own would bring a second pool of BLAS threads to the same cores. Other
dtypes keep MLX's arithmetic (SiLU through a rational tanh fused by `mx.compile`).

Gemma's GELU (`nn.gelu_approx`, a tanh) goes the same way as SiLU.

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
from engine.runtime.kv import BranchCache

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
def _swiglu_mlx(gate: mx.array, up: mx.array) -> mx.array:
    return gate * (0.5 + 0.5 * _tanh(0.5 * gate)) * up


def swiglu(gate: mx.array, up: mx.array) -> mx.array:
    """silu(gate) * up, with silu(x) = x * (1 + tanh(x / 2)) / 2: in numpy for float32 operands of
    one shape, else in MLX."""
    if gate.dtype != mx.float32 or up.dtype != mx.float32 or gate.shape != up.shape:
        return _swiglu_mlx(gate, up)
    g, u = np.asarray(gate), np.asarray(up)
    out = np.multiply(g, np.float32(0.5))
    np.tanh(out, out=out)
    out += np.float32(1.0)
    out *= g
    out *= u
    out *= np.float32(0.5)
    return mx.array(out)


_GELU_C = float(np.sqrt(2 / np.pi))


def gelu_approx(x: mx.array) -> mx.array:
    """mlx's `nn.gelu_approx`, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), in numpy for
    float32 (Gemma's MLP: a quarter of its forward pass in MLX's elementwise ops), else MLX's."""
    if x.dtype != mx.float32:
        return nn.gelu_approx(x)
    v = np.asarray(x)
    out = np.multiply(v, v)
    out *= np.float32(0.044715)
    out += np.float32(1.0)
    out *= v
    out *= np.float32(_GELU_C)
    np.tanh(out, out=out)
    out += np.float32(1.0)
    out *= v
    out *= np.float32(0.5)
    return mx.array(out)


class _NNWithFastGelu(types.ModuleType):
    """`mlx.nn` as an mlx-lm module's code sees it, with `gelu_approx` ours: every other name is
    mlx.nn's own."""

    gelu_approx = staticmethod(gelu_approx)

    def __getattr__(self, name: str) -> Any:
        return getattr(nn, name)


def softmax_in_place(a: np.ndarray) -> np.ndarray:
    """Softmax over the last axis of a float32 numpy array, overwriting it (numpy's exp is
    vectorised; MLX's CPU exp is ~15x slower, and at 4k-token contexts the softmax dominates a
    prefill).

    Inputs below -60 after the max is subtracted are clamped there: exp(-60) < 1e-26 is nothing
    to a float32 sum, and it keeps values out of the denormal range, which the next matmul would
    crawl through (x86 computes denormals ~100x slower; measured 0.1 s -> 11 s).
    """
    _softmax_parts_in_place(a)
    return a


def _softmax_parts_in_place(*parts: np.ndarray) -> None:
    """`softmax_in_place` over the keys of several arrays taken together (their last axes joined),
    each overwritten with its share."""
    top = parts[0].max(axis=-1, keepdims=True)
    for part in parts[1:]:
        np.maximum(top, part.max(axis=-1, keepdims=True), out=top)
    for part in parts:
        part -= top
        np.maximum(part, -60.0, out=part)
        np.exp(part, out=part)
    total = parts[0].sum(axis=-1, keepdims=True)
    for part in parts[1:]:
        total += part.sum(axis=-1, keepdims=True)
    for part in parts:
        part /= total


# Bytes of float32 scores masked and softmaxed at a time. A batch's scores together run to tens of
# MiB (13 documents x 9 heads x 140 queries x 826 keys: 54 MiB), and each numpy pass over them
# then goes to memory; in pieces of a few MiB they stay in the cache (that shape: 136 -> 50 ms).
SCORES_BUDGET = 4 << 20


def _additive_mask(mask: Any, length: int, t: int) -> Optional[np.ndarray]:
    """The mask as float32 (rows or 1, 1, length, t): 0 where a query sees a key, -1e30 where not."""
    if mask is None:
        return None
    if isinstance(mask, str):  # "causal"
        mask = np.arange(t)[None, :] <= (t - length + np.arange(length))[:, None]
    mask = np.asarray(mask)
    mask = mask.reshape((1,) * (4 - mask.ndim) + mask.shape)
    if mask.dtype == np.bool_:
        # a broadcast add of floats is vectorised; np.putmask with the boolean mask is ~10x slower
        return np.where(mask, np.float32(0.0), np.float32(-1e30))
    return mask.astype(np.float32, copy=False)


def _attend(queries: mx.array, keys: mx.array, values: mx.array, scale: float,
            mask: Optional[np.ndarray]) -> mx.array:
    b, n_heads, length, dim = queries.shape
    n_kv, t = keys.shape[1], keys.shape[2]
    rep = n_heads // n_kv
    # Query heads that share a KV head are stacked along the rows: one plain batched matmul per
    # KV head (broadcast batch dimensions take a much slower matmul path).
    q = (queries * scale).reshape(b, n_kv, rep * length, dim)
    # the matmuls stay on MLX's BLAS: numpy's own would bring a second pool of BLAS threads to
    # the same cores (unless numpy's is the one in use)
    matmul = numpy_blas.matmul if numpy_blas.active() else mx.matmul
    product = matmul(q, keys.swapaxes(-1, -2))
    mx.eval(product)
    # the product is ours alone, so its buffer is overwritten in place (no copy of the scores)
    scores = np.asarray(product).reshape(b, n_kv, rep, length, t)
    if not scores.flags.writeable:
        scores = scores.copy()
    if mask is not None:  # (rows or 1, 1, L, T) -> (rows or 1, 1, 1, L, T)
        scores += mask[:, :, None]
    probs = mx.array(softmax_in_place(scores).reshape(b, n_kv, rep * length, t))
    out = matmul(probs, values).reshape(b, n_heads, length, dim)
    mx.eval(out)
    return out


def _attend_branch(queries: mx.array, keys: mx.array, values: mx.array, scale: float, own_mask: np.ndarray,
                   parent_keys: mx.array, parent_values: mx.array, parent_mask: np.ndarray) -> mx.array:
    """Attention of P x m rows (m per parent row, in order) over their parent row's keys and their
    own: one softmax over both, with the parent's keys multiplied once for all m rows."""
    b, n_heads, length, dim = queries.shape
    parents, n_kv, t = parent_keys.shape[0], parent_keys.shape[1], parent_keys.shape[2]
    m, rep, s = b // parents, n_heads // n_kv, keys.shape[2]
    matmul = numpy_blas.matmul if numpy_blas.active() else mx.matmul
    q = queries * scale
    # one parent's rows, every head sharing a KV head, stacked as the rows of one matmul
    stacked = q.reshape(parents, m, n_kv, rep, length, dim).transpose(0, 2, 1, 3, 4, 5)
    to_parent = matmul(stacked.reshape(parents, n_kv, m * rep * length, dim), parent_keys.swapaxes(-1, -2))
    to_own = matmul(q.reshape(b, n_kv, rep * length, dim), keys.swapaxes(-1, -2))
    mx.eval(to_parent, to_own)
    a, o = np.asarray(to_parent), np.asarray(to_own)
    a = a if a.flags.writeable else a.copy()
    o = o if o.flags.writeable else o.copy()
    a6 = a.reshape(parents, n_kv, m, rep, length, t)
    o6 = o.reshape(parents, m, n_kv, rep, length, s).transpose(0, 2, 1, 3, 4, 5)  # a view: written in place
    a6 += parent_mask.reshape(parents, 1, 1, 1, 1, t)
    o6 += own_mask.reshape(parents, m, 1, 1, length, s).transpose(0, 2, 1, 3, 4, 5)
    _softmax_parts_in_place(a6, o6)
    from_parent = matmul(mx.array(a.reshape(parents, n_kv, m * rep * length, t)), parent_values)
    from_parent = from_parent.reshape(parents, n_kv, m, rep, length, dim).transpose(0, 2, 1, 3, 4, 5)
    out = from_parent.reshape(b, n_heads, length, dim) + matmul(
        mx.array(o.reshape(b, n_kv, rep * length, s)), values).reshape(b, n_heads, length, dim)
    mx.eval(out)
    return out


def branch_attention(queries: mx.array, keys: mx.array, values: mx.array, cache: BranchCache, scale: float,
                     mask: Any) -> mx.array:
    """Float32 attention for the rows of a `BranchCache` (`keys`, `values`: the rows' own), in
    pieces whose scores fit `SCORES_BUDGET`: whole parents with all their rows, or some of one
    parent's rows."""
    own = _additive_mask(mask, queries.shape[2], keys.shape[2])
    if own is None or own.shape[0] != queries.shape[0]:
        raise ValueError("a branch's attention needs its own per-row mask (BranchCache.make_mask)")
    parent = np.where(np.asarray(cache.parent_valid), np.float32(0.0), np.float32(-1e30))
    m, n_heads, length = cache.children, queries.shape[1], queries.shape[2]
    rows = max(1, SCORES_BUDGET // (n_heads * length * cache.length * 4))  # rows whose scores fit
    pieces = []
    if rows >= m:  # whole parents at a time
        step = rows // m
        spans = [(lo, min(lo + step, cache.parents), 0, m) for lo in range(0, cache.parents, step)]
    else:  # some of one parent's rows at a time
        spans = [(p, p + 1, lo, min(lo + rows, m)) for p in range(cache.parents) for lo in range(0, m, rows)]
    for p_lo, p_hi, c_lo, c_hi in spans:
        sl = slice(p_lo * m + c_lo, (p_hi - 1) * m + c_hi)  # rows c_lo of parent p_lo to c_hi of p_hi - 1
        pieces.append(_attend_branch(
            queries[sl], keys[sl], values[sl], scale, own[sl],
            cache.parent_keys[p_lo:p_hi], cache.parent_values[p_lo:p_hi], parent[p_lo:p_hi]))
    return pieces[0] if len(pieces) == 1 else mx.concatenate(pieces, axis=0)


def scaled_dot_product_attention(
    queries: mx.array,
    keys: mx.array,
    values: mx.array,
    cache: Any,
    scale: float,
    mask: Optional[Any],
    sinks: Optional[mx.array] = None,
) -> mx.array:
    """mlx-lm's attention signature: for float32, BLAS matmuls around a masked numpy softmax, in
    pieces of the batch (or of one document's queries) whose scores fit `SCORES_BUDGET`. The rows
    of a `BranchCache` read their parent's keys in place (`branch_attention`)."""
    if sinks is not None or hasattr(cache, "bits") or queries.dtype != mx.float32:
        from mlx_lm.models.base import scaled_dot_product_attention as reference

        if isinstance(cache, BranchCache) and not cache.joined:
            keys, values, mask = cache.materialized(keys, values, mask)
        if isinstance(cache, BranchCache):
            cache = None
        return reference(queries, keys, values, cache=cache, scale=scale, mask=mask, sinks=sinks)
    if isinstance(cache, BranchCache) and not cache.joined:
        return branch_attention(queries, keys, values, cache, scale, mask)
    b, n_heads, length, _ = queries.shape
    t = keys.shape[2]
    mask = _additive_mask(mask, length, t)
    query_bytes = n_heads * t * 4  # the scores of one query position
    rows = SCORES_BUDGET // (query_bytes * length)
    if rows >= b:
        return _attend(queries, keys, values, scale, mask)

    def mask_rows(lo: int, hi: int) -> Optional[np.ndarray]:
        return None if mask is None else mask if mask.shape[0] == 1 else mask[lo:hi]

    if rows >= 1:  # whole documents at a time
        return mx.concatenate([
            _attend(queries[lo : lo + rows], keys[lo : lo + rows], values[lo : lo + rows], scale,
                    mask_rows(lo, lo + rows))
            for lo in range(0, b, rows)], axis=0)
    step = max(1, SCORES_BUDGET // query_bytes)  # a long document: its queries a piece at a time
    per_row = []
    for row in range(b):
        m = mask_rows(row, row + 1)
        per_row.append(mx.concatenate([
            _attend(queries[row : row + 1, :, lo : lo + step], keys[row : row + 1], values[row : row + 1], scale,
                    m if m is None or m.shape[2] == 1 else m[:, :, lo : lo + step])
            for lo in range(0, length, step)], axis=2))
    return mx.concatenate(per_row, axis=0)


KERNELS = {"swiglu": swiglu, "scaled_dot_product_attention": scaled_dot_product_attention}
# Module-level names whose attribute is the kernel (`nn.gelu_approx`): swapped only where `__call__`
# reads that attribute.
_KERNEL_ATTRIBUTES = {("nn", "gelu_approx"): _NNWithFastGelu("mlx.nn")}
_FAST_CLASSES: dict[type, type] = {}


def _fast_class(cls: type) -> Optional[type]:
    """A subclass of `cls` whose `__call__` is the same code seeing our kernels under mlx-lm's
    names, or None when its `__call__` uses none of them."""
    if cls in _FAST_CLASSES:
        return _FAST_CLASSES[cls]
    call = cls.__call__
    code = getattr(call, "__code__", None)
    fast = None
    names = set(getattr(code, "co_names", ()))
    swaps = {name: fn for name, fn in KERNELS.items() if name in names}
    swaps.update({name: module for (name, attribute), module in _KERNEL_ATTRIBUTES.items()
                  if {name, attribute} <= names and call.__globals__.get(name) is nn})
    if swaps:
        scope = dict(call.__globals__)
        scope.update(swaps)
        fast_call = types.FunctionType(code, scope, call.__name__, call.__defaults__, call.__closure__)
        fast_call.__kwdefaults__ = call.__kwdefaults__
        fast = type(cls.__name__, (cls,), {"__call__": fast_call, "__module__": __name__,
                                            "__qualname__": f"Fast{cls.__qualname__}"})
    _FAST_CLASSES[cls] = fast
    return fast


def reads_branch_caches(module: nn.Module) -> bool:
    """True when this attention module's class is one of ours, whose attention reads a
    `BranchCache` (stock mlx-lm's attention would see only the rows' own keys)."""
    cls = type(module)
    return cls in _FAST_CLASSES.values() and "scaled_dot_product_attention" in cls.__call__.__code__.co_names


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
