"""Where a prefill's time goes: each part of a decoder block timed alone, times the layer count.

    python scripts/profile_prefill.py [--model PATH] [--batch 11] [--tokens 175] [--cached 40]

Shapes are those of the engine's document segment (a batch of documents on top of the cached
instructions). MLX is lazy, so each part is evaluated on its own; the sum is close to, not equal
to, a real forward pass, which the last line measures for comparison.
"""
from __future__ import annotations

import argparse
import time

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--batch", type=int, default=11)
    parser.add_argument("--tokens", type=int, default=175)
    parser.add_argument("--cached", type=int, default=40, help="tokens of cached instructions")
    args = parser.parse_args()
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
    times = {name: timed(fn) * n_layers for name, fn in parts.items()}
    total = sum(times.values())
    tokens = b * length
    print(f"{lm.name}: batch {b} x {length} tokens on {args.cached} cached, {n_layers} layers, {mx.default_device()}")
    for name, secs in sorted(times.items(), key=lambda kv: -kv[1]):
        print(f"  {name:32s} {secs * 1000:8.1f} ms  {100 * secs / total:5.1f}%")
    print(f"  {'sum of parts':32s} {total * 1000:8.1f} ms  -> {tokens / total:.0f} tokens/s")

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

    real = timed(forward)
    print(f"  {'real forward pass':32s} {real * 1000:8.1f} ms  -> {tokens / real:.0f} tokens/s")


if __name__ == "__main__":
    main()
