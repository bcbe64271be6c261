"""Model loading: MLX folders and GGUF files of every supported architecture and tensor type."""
import mlx.core as mx
import numpy as np
import pytest

from engine.runtime.loading import ModelError, load_model
from engine.runtime.local import LocalBackend
from tinymodels import write_gguf, write_mlx_folder

PROMPT = "<|im_start|>user\nIs the document yes or no? Answer.<|im_end|>\n<|im_start|>assistant\n"


def _last_logits(lm, ids):
    return LocalBackend(lm).logits_for_ids(ids)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3"])
@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("quant", ["F32", "F16", "Q8_0", "Q4_0", "Q4_1"])
def test_gguf_matches_the_float_model_it_encodes(tmp_path, arch, tie, quant):
    path, reference = write_gguf(tmp_path / f"m.{quant}.gguf", arch, tie=tie, quant=quant)
    lm = load_model(path)
    assert lm.model_type == arch
    ids = lm.tokenizer.encode(PROMPT)
    assert ids[0] == 1 and 2 in ids  # <|im_start|> and <|im_end|> parsed as control tokens
    ours = _last_logits(lm, ids)
    expected = np.array(reference(mx.array([ids]))[0, -1].astype(mx.float32))
    np.testing.assert_allclose(ours, expected, atol=1e-4)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3", "gemma3_text"])
@pytest.mark.parametrize("bits", [None, 4, 8])
def test_mlx_folder_loads_and_scores(tmp_path, arch, bits):
    """Against stock mlx-lm's forward; Gemma 3's prompts are held to its sliding window (24 here),
    inside which its local layer sees every key."""
    from mlx_lm.utils import load_model as mlx_lm_load

    folder = write_mlx_folder(tmp_path / arch, arch, quantize_bits=bits)
    lm = load_model(folder)
    assert lm.compute_dtype == mx.float32  # CPU backend
    assert lm.context_length == (24 if arch == "gemma3_text" else 2048)
    ids = lm.tokenizer.encode(PROMPT)[: lm.context_length]
    assert len(ids) >= 20
    reference, _ = mlx_lm_load(folder)
    expected = np.array(reference(mx.array([ids]))[0, -1].astype(mx.float32))
    np.testing.assert_allclose(_last_logits(lm, ids), expected, atol=1e-3)


def test_rope_frequency_factors_of_llama3_files(tmp_path):
    """`rope_freqs` divides each RoPE frequency: factors of 1 change nothing, others do."""
    half = 8  # head_dim 16
    plain, reference = write_gguf(tmp_path / "plain.gguf", "llama", quant="F32")
    ones, _ = write_gguf(tmp_path / "ones.gguf", "llama", quant="F32",
                         extra_tensors={"rope_freqs.weight": np.ones(half, dtype=np.float32)})
    scaled, _ = write_gguf(tmp_path / "scaled.gguf", "llama", quant="F32",
                           extra_tensors={"rope_freqs.weight": np.linspace(1, 8, half).astype(np.float32)})
    ids = load_model(plain).tokenizer.encode(PROMPT)
    base = _last_logits(load_model(plain), ids)
    np.testing.assert_allclose(_last_logits(load_model(ones), ids), base, atol=1e-4)
    assert np.abs(_last_logits(load_model(scaled), ids) - base).max() > 1e-3


def test_unsupported_architecture_is_named(tmp_path):
    import gguf

    path = tmp_path / "phi.gguf"
    writer = gguf.GGUFWriter(str(path), "phi2")
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelError, match=r"'phi2' is not supported; supported: llama, qwen2, qwen3"):
        load_model(path)


def test_missing_and_wrong_paths_say_what_to_do(tmp_path):
    with pytest.raises(ModelError, match="model not found"):
        load_model(tmp_path / "nope.gguf")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelError, match="expected an MLX model folder or a GGUF file"):
        load_model(tmp_path / "weights.bin")
    with pytest.raises(ModelError, match="no config.json"):
        load_model(tmp_path)


def test_missing_default_model_gives_one_clear_line(tmp_path, monkeypatch):
    from engine.model import sources as models

    monkeypatch.setenv("VERDICT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(models, "resources_dir", lambda: tmp_path / "resources")
    with pytest.raises(ModelError, match="verdict models fetch-default"):
        models.find_default_model()
