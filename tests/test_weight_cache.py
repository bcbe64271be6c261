"""The CPU float32 weights of a GGUF (VERDICT_FLOAT32_WEIGHTS=1), kept in the cache folder: read
back on the next start with the same logits, rebuilt when the file is truncated, damaged or another
model's, and the least recently used files evicted past the folder's limits."""
import os
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
    monkeypatch.setenv("VERDICT_FLOAT32_WEIGHTS", "1")
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
    inode = cached.stat().st_ino
    second = _logits(path)
    assert cached.stat().st_ino == inode  # read, not written again (a rewrite replaces the file)
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
    monkeypatch.setenv("VERDICT_FLOAT32_WEIGHTS", "1")
    path, _ = write_gguf(tmp_path / "m.Q8_0.gguf", "qwen3", quant="Q8_0")
    np.testing.assert_array_equal(_logits(path), _logits(path))


def test_without_float32_weights_nothing_is_converted_or_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("VERDICT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("VERDICT_FLOAT32_WEIGHTS", raising=False)
    path, _ = write_gguf(tmp_path / "m.Q4_1.gguf", "llama", quant="Q4_1")
    _logits(path)
    assert not (tmp_path / "cache" / "weights").exists()


def _models(tmp_path, count):
    return [write_gguf(tmp_path / f"m{i}.Q8_0.gguf", "llama", quant="Q8_0", seed=i)[0] for i in range(count)]


def test_the_least_recently_used_files_are_evicted_past_the_count(tmp_path, cache_folder, monkeypatch):
    monkeypatch.setattr(weight_cache, "KEEP_FILES", 2)
    first, second, third = _models(tmp_path, 3)
    files = [weight_cache.cache_file(model_fingerprint(p)) for p in (first, second, third)]
    load_model(first)
    load_model(second)
    os.utime(files[0], ns=(1, 1))  # long unused ...
    os.utime(files[1], ns=(2, 2))
    load_model(first)  # ... until read again now: the second is now the least recently used
    assert files[0].stat().st_mtime_ns > files[1].stat().st_mtime_ns
    load_model(third)
    assert [f.is_file() for f in files] == [True, False, True]


def test_a_size_cap_keeps_the_file_just_written_and_drops_older_ones(tmp_path, cache_folder, monkeypatch):
    first, second = _models(tmp_path, 2)
    load_model(first)
    old = weight_cache.cache_file(model_fingerprint(first))
    size = old.stat().st_size
    monkeypatch.setattr(weight_cache, "KEEP_BYTES", size + size // 2)  # room for one file, not two
    stranger = old.parent / ".m.cpu-float32.safetensors.tmp"  # another process's file being written
    stranger.write_bytes(b"x" * 10)
    load_model(second)
    assert not old.exists() and weight_cache.cache_file(model_fingerprint(second)).is_file()
    assert stranger.is_file()
    monkeypatch.setattr(weight_cache, "KEEP_BYTES", 1)  # smaller than any file: the new one still stays
    old.unlink(missing_ok=True)
    load_model(first)
    assert old.is_file() and not weight_cache.cache_file(model_fingerprint(second)).exists()
