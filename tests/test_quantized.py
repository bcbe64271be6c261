"""Quantized layers kept quantized on the CPU and multiplied as dense layers (engine.runtime.quantized):
the same scores as dequantizing every weight to float32 at load, in a fraction of the memory."""
import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten

from engine.runtime import numpy_blas
from engine.runtime.loading import load_model
from engine.runtime.local import LocalBackend, fuse_unshared
from engine.runtime.quantized import DenseQuantizedEmbedding, DenseQuantizedLinear
from engine.scoring import Segment
from tinymodels import write_gguf

PROMPT = "<|im_start|>user\nIs the document yes or no? Answer.<|im_end|>\n<|im_start|>assistant\n"


def _stored_bytes(lm):
    return sum(v.nbytes for _, v in tree_flatten(lm.model.parameters()))


def _both(monkeypatch, path):
    """The model loaded twice: quantized layers kept (the default), and float32 weights kept."""
    monkeypatch.delenv("VERDICT_FLOAT32_WEIGHTS", raising=False)
    kept = load_model(path)
    monkeypatch.setenv("VERDICT_FLOAT32_WEIGHTS", "1")
    dense = load_model(path)
    monkeypatch.delenv("VERDICT_FLOAT32_WEIGHTS")
    return kept, dense


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3"])
@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("quant", ["Q8_0", "Q4_1", "Q5_0"])
def test_kept_quantized_scores_as_the_float32_weights(tmp_path, monkeypatch, arch, tie, quant):
    monkeypatch.setenv("VERDICT_CACHE_DIR", str(tmp_path / "cache"))
    path, reference = write_gguf(tmp_path / f"m.{quant}.gguf", arch, tie=tie, quant=quant)
    kept, dense = _both(monkeypatch, path)
    kinds = {type(m) for m in kept.model.modules()}
    assert DenseQuantizedLinear in kinds and nn.Linear not in kinds
    assert DenseQuantizedEmbedding in kinds
    assert not any(isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding)) for m in dense.model.modules())
    ids = kept.tokenizer.encode(PROMPT)
    ours, theirs = LocalBackend(kept).logits_for_ids(ids), LocalBackend(dense).logits_for_ids(ids)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    expected = np.array(reference(mx.array([ids]))[0, -1].astype(mx.float32))  # the float model the file encodes
    np.testing.assert_allclose(ours, expected, atol=1e-4)
    assert _stored_bytes(kept) < _stored_bytes(dense) / 2


def test_the_numpy_blas_path_multiplies_the_same(tmp_path, monkeypatch):
    monkeypatch.setenv("VERDICT_CACHE_DIR", str(tmp_path / "cache"))
    path, _ = write_gguf(tmp_path / "m.Q4_1.gguf", "qwen2", tie=True, quant="Q4_1")
    lm = load_model(path)
    backend = LocalBackend(lm)
    ids = lm.tokenizer.encode(PROMPT)
    monkeypatch.setattr(numpy_blas, "_active", False)
    through_mlx = backend.logits_for_ids(ids)
    monkeypatch.setattr(numpy_blas, "_active", True)
    through_numpy = backend.logits_for_ids(ids)
    np.testing.assert_allclose(through_numpy, through_mlx, atol=1e-5)


def test_the_tied_head_in_blocks_equals_one_product(monkeypatch):
    table = nn.QuantizedEmbedding.from_embedding(nn.Embedding(1000, 64), group_size=32, bits=4)
    table.scales, table.biases = table.scales.astype(mx.float32), table.biases.astype(mx.float32)
    table.__class__ = DenseQuantizedEmbedding
    x = mx.random.normal((3, 64), key=mx.random.key(1))
    whole = x @ mx.dequantize(table.weight, table.scales, table.biases, 32, 4).T
    monkeypatch.setattr("engine.runtime.quantized.BLOCK_ROWS", 300)  # 300, 300, 300, 100
    np.testing.assert_allclose(np.array(table.as_linear(x)), np.array(whole), atol=1e-5)


def test_the_default_model_keeps_its_quantized_weights_and_its_margins(default_model_path, monkeypatch):
    kept, dense = _both(monkeypatch, default_model_path)
    assert _stored_bytes(kept) < _stored_bytes(dense) / 3  # 4- and 8-bit with float32 scales
    documents = ["A command-line tool that compresses files with the zstd algorithm.",
                 "A platform game with twelve levels and a dragon."]
    margins = []
    for lm in (kept, dense):
        backend = LocalBackend(lm)
        prompts = [[Segment(tuple(lm.tokenizer.encode(f"<|im_start|>user\n{d}\nIs this a game?<|im_end|>\n"
                                                      "<|im_start|>assistant\n")))] for d in documents]
        margins.append([s.margin for s in backend.score(prompts)])
    np.testing.assert_allclose(margins[0], margins[1], atol=1e-4)


def test_unshared_segments_are_prefilled_in_one_pass():
    first, doc, other_doc = Segment((1, 2), "instructions"), Segment((3, 4)), Segment((5,))
    tail, other_tail = Segment((6,)), Segment((7,))
    assert fuse_unshared([[first, doc, tail]]) == [[first, Segment((3, 4, 6))]]
    # a document asked two questions is prefilled once for both; a document asked one is joined
    fused = fuse_unshared([[first, doc, tail], [first, doc, other_tail], [first, other_doc, tail]])
    assert fused == [[first, doc, tail], [first, doc, other_tail], [first, Segment((5, 6))]]
    assert fuse_unshared([[first], [first, doc]]) == [[first], [first, doc]]
