"""Where a prefill's time goes: each part of a decoder block timed alone, times the layer count.

    python scripts/profile_prefill.py [--model PATH] [--batch 11] [--tokens 175] [--cached 40] [--inside]

Shapes are those of the engine's document segment (a batch of documents on top of the cached
instructions). MLX is lazy, so each part is evaluated on its own; the sum is close to, not equal
to, a real forward pass, which the last line measures for comparison.

`--inside` times the parts inside one real forward pass instead: the engine's own CPU functions
(the dense matmul, SiLU times up, attention) are wrapped before the model loads, and each first
evaluates what is pending before it (norms and residuals before a matmul; RoPE and the KV cache's
writes before attention), so a part's time includes the memory state of a real pass (page
faults, caches), which parts timed alone on warm inputs don't show.
"""
from __future__ import annotations

import argparse
import time
from collections import Counter

from engine.runtime import device

device.start()  # the fast BLAS before MLX, as loading a model does

import mlx.core as mx

from engine.runtime.kv import SegmentCache
from engine.runtime.loading import load_model


def timed(fn, repeats: int = 3) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def install_timers(totals: Counter) -> None:
    """Wrap the engine's dense matmul and CPU kernels (our modules) to add their seconds to
    `totals`; must run before the model loads, which binds the kernels."""
    from engine.runtime import kernels, quantized

    matmul = quantized.times_transposed

    def timed_matmul(x, weight):
        start = time.perf_counter()
        mx.eval(x)
        pending = time.perf_counter()
        mx.eval(weight)
        dequantized = time.perf_counter()
        y = matmul(x, weight)
        mx.eval(y)
        totals["work pending before a matmul"] += pending - start
        totals["dequantizing weights"] += dequantized - pending
        totals[f"matmul by a {weight.shape[0]} x {weight.shape[1]} weight"] += time.perf_counter() - dequantized
        return y

    def timed_kernel(name, label, pending_label):
        kernel = kernels.KERNELS[name]

        def timed(*args, **kwargs):
            start = time.perf_counter()
            mx.eval([a for a in args if isinstance(a, mx.array)])
            ready = time.perf_counter()
            out = kernel(*args, **kwargs)
            mx.eval(out)
            if pending_label:
                totals[pending_label] += ready - start
            totals[label] += time.perf_counter() - ready
            return out
        return timed

    quantized.times_transposed = timed_matmul
    kernels.KERNELS["swiglu"] = timed_kernel("swiglu", "SiLU * up", None)
    kernels.KERNELS["scaled_dot_product_attention"] = timed_kernel(
        "scaled_dot_product_attention", "attention (QK^T, softmax, PV)", "work pending before attention (RoPE, KV writes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--batch", type=int, default=11)
    parser.add_argument("--tokens", type=int, default=175)
    parser.add_argument("--cached", type=int, default=40, help="tokens of cached instructions")
    parser.add_argument("--inside", action="store_true", help="time the parts inside one real forward pass")
    args = parser.parse_args()
    totals: Counter = Counter()
    if args.inside:
        install_timers(totals)
    lm = load_model(args.model)
    inner = lm.model.model
    block = inner.layers[0]
    attn, mlp = block.self_attn, block.mlp
    n_layers = len(inner.layers)
    b, length, t = args.batch, args.tokens, args.cached + args.tokens
    d = lm.config.get("hidden_size") or block.input_layernorm.weight.shape[0]
    h = mx.random.normal((b, length, d))
    x = block.input_layernorm(h)
    q = attn.q_proj(x).reshape(b, length, attn.n_heads, -1).transpose(0, 2, 1, 3)
    k = mx.random.normal((b, attn.n_kv_heads, t, q.shape[-1]))
    mask = mx.ones((b, 1, length, t), dtype=mx.bool_)
    gate = mlp.gate_proj(x)
    mx.eval(h, x, q, k, mask, gate)
    from engine.runtime import kernels

    on_cpu = lm.compute_dtype == mx.float32  # loading used our kernels on CPU only
    module = kernels if on_cpu else __import__(type(lm.model).__module__, fromlist=["_"])

    parts = {
        "q/k/v projections": lambda: mx.eval(attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)),
        "attention (QK^T, softmax, PV)": lambda: mx.eval(
            module.scaled_dot_product_attention(q, k, k, cache=None, scale=attn.scale, mask=mask)),
        "output projection": lambda: mx.eval(attn.o_proj(x.reshape(b, length, -1))),
        "RoPE": lambda: mx.eval(attn.rope(q), attn.rope(k)),
        "MLP gate+up matmuls": lambda: mx.eval(mlp.gate_proj(x), mlp.up_proj(x)),
        "SiLU * up": lambda: mx.eval(module.swiglu(gate, gate)),
        "MLP down matmul": lambda: mx.eval(mlp.down_proj(gate)),
        "RMSNorm x2 + residuals": lambda: mx.eval(block.input_layernorm(h) + h, block.post_attention_layernorm(h) + h),
    }
    tokens = b * length
    print(f"{lm.name}: batch {b} x {length} tokens on {args.cached} cached, {n_layers} layers, {mx.default_device()}")
    if not args.inside:
        times = {name: timed(fn) * n_layers for name, fn in parts.items()}
        report(times, "sum of parts", tokens)

    ids = mx.random.randint(0, 1000, (b, length))
    head = [SegmentCache() for _ in inner.layers]
    for c in head:
        c.begin_segment(mx.array([args.cached]))
    mx.eval(inner(mx.random.randint(0, 1000, (1, args.cached)), cache=head))

    def forward():
        cache = [c.fork(b) for c in head]
        for c in cache:
            c.begin_segment(mx.array([length] * b))
        mx.eval(inner(ids, cache=cache))

    if args.inside:
        forward()
        totals.clear()
        start = time.perf_counter()
        forward()
        real = time.perf_counter() - start
        report(dict(totals), "sum of the timed parts", tokens)
    else:
        real = timed(forward)
    print(f"  {'real forward pass':48s} {real * 1000:8.1f} ms  -> {tokens / real:.0f} tokens/s")


def report(times: dict, total_label: str, tokens: int) -> None:
    total = sum(times.values())
    for name, secs in sorted(times.items(), key=lambda kv: -kv[1]):
        print(f"  {name:48s} {secs * 1000:8.1f} ms  {100 * secs / total:5.1f}%")
    print(f"  {total_label:48s} {total * 1000:8.1f} ms  -> {tokens / total:.0f} tokens/s")


if __name__ == "__main__":
    main()
