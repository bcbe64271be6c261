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
