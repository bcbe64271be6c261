"""What the runtime reads from a model's metadata: architecture allow-list, tokenizer spellings,
fingerprints, presets, and the fixed date in chat templates."""
import hashlib
import json

import gguf
import numpy as np
import pytest

from engine.runtime.loading import ModelError, load_model
from engine.model.tokenizer import Tokenizer
from tinymodels import write_gguf, write_mlx_folder


def _metadata_only_gguf(path, arch, **extra):
    writer = gguf.GGUFWriter(str(path), arch)
    for key, value in extra.items():
        writer.add_string(key, value)
    writer.add_tensor("token_embd.weight", np.zeros((8, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.parametrize("arch", ["phi3", "gemma2", "granite", "mamba"])
def test_other_gguf_architectures_are_refused_by_name(tmp_path, arch):
    path = _metadata_only_gguf(tmp_path / f"{arch}.gguf", arch)
    with pytest.raises(ModelError, match=rf"architecture '{arch}' is not supported.*supported: llama, qwen2, qwen3, gemma3"):
        load_model(path)


def test_other_mlx_architectures_and_forward_extras_are_refused(tmp_path):
    folder = write_mlx_folder(tmp_path / "g", "llama")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "gemma2"}))
    with pytest.raises(ModelError, match="'gemma2' is not supported .*sliding-window"):
        load_model(folder)
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "gemma3"}))
    with pytest.raises(ModelError, match="'gemma3' is not supported .*multimodal"):
        load_model(folder)
    (folder / "config.json").write_text(json.dumps({**config, "final_logit_softcapping": 30.0}))
    with pytest.raises(ModelError, match="final_logit_softcapping=30.0 is not supported"):
        load_model(folder)
    (folder / "config.json").write_text(json.dumps({**config, "sliding_window": 512}))
    with pytest.raises(ModelError, match="sliding-window attention \\(512\\)"):
        load_model(folder)


# --- tokenizer metadata --------------------------------------------------------------------

TEXT = "It's 12345 apples\n\nand  2 pears!"


def _tokenizer(tmp_path, pre, model="gpt2"):
    path, _ = write_gguf(tmp_path / f"{pre}.gguf", "llama", quant="F32", pre=pre, tokenizer_model=model)
    from engine.model.gguf_file import read_header

    return Tokenizer.from_gguf_metadata(read_header(path).metadata)


def _pieces(tok, text=TEXT):
    return tok.backend.pre_tokenizer.pre_tokenize_str(text)


@pytest.mark.parametrize("alias, family", [
    ("llama-v3", "llama-bpe"), ("llama3", "llama-bpe"), ("deepseek-r1-qwen", "qwen2"),
    ("gpt-2", "phi-2"), ("smollm", "starcoder"), ("default", "default"),
])
def test_llama_cpp_pre_tokenizer_aliases_split_alike(tmp_path, alias, family):
    assert _pieces(_tokenizer(tmp_path, alias)) == _pieces(_tokenizer(tmp_path, family))


def test_pre_tokenizer_families_differ_where_llama_cpp_differs(tmp_path):
    digits = {pre: [p for p, _ in _pieces(_tokenizer(tmp_path, pre), "x 12345")] for pre in
              ("gpt-2", "smollm", "llama3", "qwen2")}
    assert digits == {
        "gpt-2": ["x", "Ġ12345"],
        "smollm": ["x", "Ġ", "1", "2", "3", "4", "5"],
        "llama3": ["x", "Ġ", "123", "45"],
        "qwen2": ["x", "Ġ", "1", "2", "3", "4", "5"],
    }


def test_unknown_pre_tokenizer_and_sentencepiece_are_refused(tmp_path):
    with pytest.raises(Exception, match="pre-tokenizer 'made-up' is not supported .*supported: .*llama-bpe"):
        _tokenizer(tmp_path, "made-up")
    path, _ = write_gguf(tmp_path / "spm.gguf", "llama", quant="F32", tokenizer_model="llama")
    with pytest.raises(ModelError, match="SentencePiece tokenizer with add_space_prefix \\(Llama 2, Mistral\\) is not supported"):
        load_model(path)


def test_llama3_family_adds_bos_unless_the_file_says(tmp_path):
    assert _tokenizer(tmp_path, "llama-bpe").add_bos is False  # write_gguf writes add_bos_token = False
    from engine.model.gguf_file import read_header

    path, _ = write_gguf(tmp_path / "l3.gguf", "llama", quant="F32", pre="llama-bpe")
    meta = dict(read_header(path).metadata)
    del meta["tokenizer.ggml.add_bos_token"]
    assert Tokenizer.from_gguf_metadata(meta).add_bos is True
    meta["tokenizer.ggml.pre"] = "qwen2"
    assert Tokenizer.from_gguf_metadata(meta).add_bos is False


def test_chat_templates_get_a_fixed_date(tmp_path):
    tok = _tokenizer(tmp_path, "llama-bpe")
    tok.__init__(tok.backend, chat_template="Today Date: {{ strftime_now('%d %b %Y') }}|{{ messages[0]['content'] }}")
    assert tok.render_chat([{"role": "user", "content": "hi"}]) == "Today Date: 26 Jul 2024|hi"


# --- fingerprints and presets --------------------------------------------------------------

def test_file_fingerprint_is_its_sha256_computed_once(tmp_path, monkeypatch, tiny_gguf):
    monkeypatch.setenv("VERDICT_CACHE_DIR", str(tmp_path / "cache"))
    lm = load_model(tiny_gguf)
    assert lm.fingerprint == "sha256:" + hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()
    cache = json.loads((tmp_path / "cache" / "fingerprints.json").read_text())
    assert list(cache.values()) == [lm.fingerprint.split(":")[1]]
    copy = tmp_path / "renamed.gguf"
    copy.write_bytes(tiny_gguf.read_bytes())
    other, _ = write_gguf(tmp_path / tiny_gguf.name, "qwen2", seed=7)  # same name, other weights
    assert load_model(copy).fingerprint == lm.fingerprint
    assert load_model(other).fingerprint != lm.fingerprint


def test_hub_snapshot_folder_is_named_and_fingerprinted_by_its_repo_and_commit(tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    folder = tmp_path / "hub" / "models--Qwen--Qwen3-Reranker-0.6B" / "snapshots" / commit
    write_mlx_folder(folder, "qwen3")
    lm = load_model(folder)
    assert lm.name == "Qwen3-Reranker-0.6B"
    assert lm.fingerprint == f"hf:Qwen/Qwen3-Reranker-0.6B@{commit}"
    assert lm.preset == "qwen3-reranker"
    from engine import Classifier
    from engine.runtime.local import LocalBackend

    assert Classifier(LocalBackend(lm)).layout.name == "qwen3-reranker"


def test_reranker_preset_read_from_gguf_metadata(tmp_path):
    path, _ = write_gguf(tmp_path / "model.gguf", "qwen3", quant="Q8_0", name="Qwen3 Reranker 0.6B")
    assert load_model(path).preset == "qwen3-reranker"
    plain, _ = write_gguf(tmp_path / "plain.gguf", "qwen3", quant="Q8_0")
    assert load_model(plain).preset is None
