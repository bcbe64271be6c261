"""The CPU float32 weights of a GGUF, kept in the cache folder: read back on the next start with
the same logits, and rebuilt when the file is truncated, damaged or another model's."""
import json
import struct

import mlx.core as mx
import numpy as np
import pytest

from engine.runtime import weight_cache
from engine.model.fingerprint import model_fingerprint
from engine.runtime.loading import load_model
from engine.runtime.local import LocalBackend
from tinymodels import write_gguf

PROMPT = "<|im_start|>user\nIs the document yes or no? Answer.<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture
def cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("VERDICT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _logits(path):
    lm = load_model(path)
    return LocalBackend(lm).logits_for_ids(lm.tokenizer.encode(PROMPT))


def _header(path):
    size = struct.unpack("<Q", path.read_bytes()[:8])[0]
    return json.loads(path.read_bytes()[8 : 8 + size])


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3"])
def test_the_second_start_reads_the_cache_and_scores_the_same(tmp_path, cache_folder, arch):
    path, reference = write_gguf(tmp_path / "m.Q4_1.gguf", arch, quant="Q4_1")
    cached = weight_cache.cache_file(model_fingerprint(path))
    assert cached.parent.parent == cache_folder and not cached.exists()
    first = _logits(path)
    assert cached.is_file()
    assert _header(cached)["__metadata__"]["fingerprint"] == model_fingerprint(path)
    stamp = cached.stat().st_mtime_ns
    second = _logits(path)
    assert cached.stat().st_mtime_ns == stamp  # read, not written again
    np.testing.assert_array_equal(second, first)
    lm = load_model(path)
    expected = np.array(reference(mx.array([lm.tokenizer.encode(PROMPT)]))[0, -1].astype(mx.float32))
    np.testing.assert_allclose(second, expected, atol=1e-4)


def test_the_cache_holds_the_dequantized_weights_not_the_quantized_ones(tmp_path, cache_folder):
    path, _ = write_gguf(tmp_path / "m.Q8_0.gguf", "llama", quant="Q8_0")
    load_model(path)
    tensors = {k: v for k, v in _header(weight_cache.cache_file(model_fingerprint(path))).items() if k != "__metadata__"}
    assert tensors and {v["dtype"] for v in tensors.values()} == {"F32"}
    assert not any(k.endswith((".scales", ".biases")) for k in tensors)


@pytest.mark.parametrize("damage", ["truncated", "header", "other model", "missing tensor"])
def test_a_damaged_cache_file_is_rebuilt(tmp_path, cache_folder, damage):
    path, _ = write_gguf(tmp_path / "m.Q4_0.gguf", "qwen2", quant="Q4_0")
    good = _logits(path)
    cached = weight_cache.cache_file(model_fingerprint(path))
    whole = cached.read_bytes()
    if damage == "truncated":
        cached.write_bytes(whole[: len(whole) * 2 // 3])
    elif damage == "header":
        cached.write_bytes(b"\xff" * 64 + whole[64:])
    else:
        lm = load_model(path)
        from mlx.utils import tree_flatten

        params = dict(tree_flatten(lm.model.parameters()))
        fingerprint = lm.fingerprint
        if damage == "other model":
            fingerprint = "sha256:" + "0" * 64
        else:
            params.pop(sorted(params)[0])
        mx.save_safetensors(str(cached), params, metadata={"format": weight_cache.FORMAT, "fingerprint": fingerprint})
    damaged = cached.read_bytes()
    np.testing.assert_array_equal(_logits(path), good)
    assert cached.is_file() and cached.read_bytes() != damaged  # rebuilt from the GGUF
    np.testing.assert_array_equal(_logits(path), good)


def test_an_unwritable_cache_folder_only_costs_the_conversion(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("VERDICT_CACHE_DIR", str(blocker))
    path, _ = write_gguf(tmp_path / "m.Q8_0.gguf", "qwen3", quant="Q8_0")
    np.testing.assert_array_equal(_logits(path), _logits(path))
