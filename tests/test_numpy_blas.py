"""numpy's BLAS for MLX's CPU path (no system OpenBLAS) gives what MLX's own layers give."""
import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from engine.runtime import kernels, numpy_blas
from mlx_lm.models.base import scaled_dot_product_attention as reference_attention


@pytest.fixture
def numpy_path(monkeypatch):
    """Route the kernels through numpy's BLAS for one test (whatever BLAS this machine has)."""
    monkeypatch.setattr(numpy_blas, "_active", True)


@pytest.mark.parametrize("bias", [False, True])
def test_numpy_linear_matches_mlx_linear(bias):
    layer = nn.Linear(48, 80, bias=bias)
    x = mx.random.normal((3, 7, 48))
    ours = numpy_blas.NumpyLinear(layer)
    np.testing.assert_allclose(np.array(ours(x)), np.array(layer(x)), atol=1e-5, rtol=1e-5)
    assert ours(x).dtype == mx.float32 and ours(x).shape == (3, 7, 80)


def test_attention_through_numpy_matches_mlx(numpy_path):
    q = mx.random.normal((2, 6, 5, 16))
    k = mx.random.normal((2, 2, 9, 16))
    v = mx.random.normal((2, 2, 9, 16))
    ours = kernels.scaled_dot_product_attention(q, k, v, None, 0.25, "causal")
    theirs = reference_attention(q, k, v, None, scale=0.25, mask="causal")
    np.testing.assert_allclose(np.array(ours), np.array(theirs), atol=2e-6)


def test_a_model_on_numpy_blas_scores_like_mlx(tiny_model_dir, monkeypatch):
    from engine import Classifier

    docs = ["The invoice is overdue; please pay EUR 40 today.", "A recipe for lemon tart. " * 30, "ok"]
    # both loads keep MLX's own matmuls (a machine without system OpenBLAS would swap at load):
    # the reference is MLX's, and the swap below is this test's
    monkeypatch.setenv("VERDICT_NUMPY_BLAS", "0")
    monkeypatch.setenv("VERDICT_FLOAT32_WEIGHTS", "1")  # float32 nn.Linear layers to swap (quantized ones: test_quantized)
    reference = Classifier.load(tiny_model_dir)
    expected = [v.raw_margin for v in reference.classify("Is this about money?", docs)]

    monkeypatch.setattr(numpy_blas, "_active", False)
    classifier = Classifier.load(tiny_model_dir)
    swapped = numpy_blas.install(classifier.backend.lm.model)
    assert swapped > 0 and numpy_blas.active()
    assert not any(type(m) is nn.Linear for m in classifier.backend.lm.model.modules())
    got = [v.raw_margin for v in classifier.classify("Is this about money?", docs)]
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_numpy_reports_its_bundled_openblas():
    from pathlib import Path

    bundled = list((Path(np.__file__).parent.parent / "numpy.libs").glob("*openblas*"))
    if not bundled:
        pytest.skip("this numpy is not a PyPI wheel with its own OpenBLAS")
    assert "openblas" in numpy_blas.numpy_blas_name().lower()


def test_blas_threads_from_the_environment(monkeypatch):
    monkeypatch.setenv("VERDICT_BLAS_THREADS", "3")
    assert numpy_blas.blas_threads() == 3
    monkeypatch.setenv("VERDICT_BLAS_THREADS", "many")
    assert numpy_blas.blas_threads() in (None, 1)
