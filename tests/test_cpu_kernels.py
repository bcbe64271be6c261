"""The CPU kernels agree with MLX's own functions to float32 precision."""
import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from engine.runtime import kernels as cpu_kernels
from mlx_lm.models.base import scaled_dot_product_attention as reference_attention


def test_swiglu_matches_silu_times_up():
    gate = mx.random.normal((4, 33, 96)) * 6
    up = mx.random.normal((4, 33, 96))
    expected = nn.silu(gate) * up
    np.testing.assert_allclose(np.array(cpu_kernels.swiglu(gate, up)), np.array(expected), atol=1e-5, rtol=1e-5)


def test_gelu_matches_mlx_and_only_gemma_mlp_reads_it():
    """Our GELU against mlx's `nn.gelu_approx`, and a gemma3_text model's MLP gets it while its
    other modules and a llama model's keep mlx's names (their code reads no `nn.gelu_approx`)."""
    x = mx.array(np.random.default_rng(1).normal(0, 4, (16, 512)).astype(np.float32))
    np.testing.assert_allclose(np.array(cpu_kernels.gelu_approx(x)), np.array(nn.gelu_approx(x)), atol=2e-6)
    half = x.astype(mx.float16)
    assert cpu_kernels.gelu_approx(half).dtype == mx.float16
    from tinymodels import build_model

    gemma, _ = build_model("gemma3_text")
    cpu_kernels.use_fast_kernels(gemma)
    mlp = gemma.model.layers[0].mlp
    assert type(mlp).__call__.__globals__["nn"].gelu_approx is cpu_kernels.gelu_approx
    assert type(mlp).__call__.__globals__["nn"].Linear is nn.Linear
    assert type(gemma.model.layers[0].self_attn).__call__.__globals__["nn"] is nn
    llama, _ = build_model("llama")
    assert cpu_kernels.use_fast_kernels(llama) > 0
    assert all(type(m).__call__.__globals__.get("nn", nn) is nn for _, m in llama.named_modules())


def test_softmax_matches_mlx_and_gives_masked_keys_nothing():
    scores = mx.random.normal((2, 3, 5, 9)) * 10
    masked = mx.where(mx.arange(9) < 6, scores, mx.array(-1e30))
    ours = cpu_kernels.softmax_in_place(np.array(masked))
    np.testing.assert_allclose(ours, np.array(mx.softmax(masked, axis=-1)), atol=1e-6)
    assert ours[..., 6:].max() < 1e-25


# scores budget: all at once; two documents at a time (6 heads x 18 keys x 7 queries x 4 bytes =
# 3,024 bytes each); three queries of one document at a time (the last piece has one)
BUDGETS = {"whole": cpu_kernels.SCORES_BUDGET, "documents": 2 * 3024, "queries": 3 * 432}


@pytest.mark.parametrize("pieces", list(BUDGETS))
@pytest.mark.parametrize("mask_kind", ["causal", "bool", "additive", "none"])
def test_attention_matches_mlx(mask_kind, pieces, monkeypatch):
    monkeypatch.setattr(cpu_kernels, "SCORES_BUDGET", BUDGETS[pieces])
    b, heads, kv, length, cached, dim = 3, 6, 2, 7, 11, 16
    q = mx.random.normal((b, heads, length, dim))
    k = mx.random.normal((b, kv, cached + length, dim))
    v = mx.random.normal((b, kv, cached + length, dim))
    if mask_kind == "bool":
        mask = mx.random.uniform(shape=(b, 1, length, cached + length)) > 0.4
        mask = mask | (mx.arange(cached + length)[None, :] == (cached + mx.arange(length))[:, None])
    elif mask_kind == "additive":
        mask = mx.random.normal((b, 1, length, cached + length)) * 3
    else:
        mask = "causal" if mask_kind == "causal" else None
    ours = cpu_kernels.scaled_dot_product_attention(q, k, v, None, 0.25, mask)
    theirs = reference_attention(q, k, v, None, scale=0.25, mask=mask)
    np.testing.assert_allclose(np.array(ours), np.array(theirs), atol=2e-6)


def _parent_cache(parents: int, kv: int, dim: int, lengths: list[int]):
    """A SegmentCache holding one padded segment of the given real lengths per row."""
    from engine.runtime.kv import SegmentCache

    cache = SegmentCache()
    cache.begin_segment(mx.array(lengths, dtype=mx.int32))
    width = max(lengths)
    cache.update_and_fetch(mx.random.normal((parents, kv, width, dim)), mx.random.normal((parents, kv, width, dim)))
    return cache


# rows of one piece: whole parents (3 x 2 rows at once, or 1 parent of 2 rows), or one row at a time
BRANCH_BUDGETS = {"whole": cpu_kernels.SCORES_BUDGET, "parents": 2 * 6 * 5 * 18 * 4, "rows": 6 * 5 * 18 * 4}


@pytest.mark.parametrize("pieces", list(BRANCH_BUDGETS))
@pytest.mark.parametrize("children", [1, 2, 3])
def test_branch_attention_matches_mlx_on_the_joined_keys(children, pieces, monkeypatch):
    """Rows reading their parent's keys in place get what mlx-lm's attention gives over the parent's
    keys repeated per row and joined with the rows' own, under the same mask (padded parent
    slots, padded own tokens, causal own keys)."""
    from engine.runtime.kv import BranchCache

    monkeypatch.setattr(cpu_kernels, "SCORES_BUDGET", BRANCH_BUDGETS[pieces])
    parents, heads, kv, dim, length = 3, 6, 2, 16, 5
    parent = _parent_cache(parents, kv, dim, [13, 9, 11])  # 13 slots, the last 4 and 2 padding in two rows
    branch = BranchCache(parent, children)
    rows = parents * children
    branch.begin_segment(mx.array(([5, 2, 4] * children)[:rows], dtype=mx.int32))
    own_mask = branch.make_mask(length)
    q = mx.random.normal((rows, heads, length, dim))
    own_k, own_v = branch.update_and_fetch(mx.random.normal((rows, kv, length, dim)),
                                           mx.random.normal((rows, kv, length, dim)))
    ours = cpu_kernels.scaled_dot_product_attention(q, own_k, own_v, cache=branch, scale=0.25, mask=own_mask)
    k, v, mask = branch.materialized(own_k, own_v, own_mask)
    assert k.shape[2] == 13 + length and mask.shape == (rows, 1, length, 13 + length)
    expected = reference_attention(q, k, v, cache=None, scale=0.25, mask=mask)
    np.testing.assert_allclose(np.array(ours), np.array(expected), atol=2e-5, rtol=1e-4)
    # the same through the kernel's fallback for other dtypes, which joins the keys itself
    half = cpu_kernels.scaled_dot_product_attention(q.astype(mx.float16), own_k.astype(mx.float16),
                                                    own_v.astype(mx.float16), cache=branch, scale=0.25, mask=own_mask)
    np.testing.assert_allclose(np.array(half.astype(mx.float32)), np.array(expected), atol=2e-2)
