"""`verdict models list` and `--model NAME|PATH` over the places users keep models, built as the
apps build them under a temporary HOME: the Hugging Face cache (filled by a real download from
the local test hub), LM Studio's models folder and Ollama's manifests + blobs."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hubserver import FakeHub
from tinymodels import write_gguf, write_mlx_folder

QUESTION = "Is it about money?"
HF_VARS = ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME", "HF_HUB_OFFLINE", "OLLAMA_MODELS",
           "HF_ENDPOINT")


def write_foreign_gguf(path: Path, arch: str) -> Path:
    """A GGUF of an architecture Verdict refuses (header and one tensor are enough to list it)."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(f"tiny-{arch}")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def ollama_store(root: Path, name: str, tag: str, blob_source: Path | None, per_tensor: bool = False) -> Path:
    """Ollama's layout: manifests/registry.ollama.ai/library/<name>/<tag> -> blobs/sha256-<hex>."""
    layers = []
    blob = None
    if blob_source is not None:
        digest = hashlib.sha256(blob_source.read_bytes()).hexdigest()
        blob = root / "blobs" / f"sha256-{digest}"
        blob.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(blob_source, blob)
        layers.append({"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}",
                       "size": blob.stat().st_size})
    if per_tensor:
        layers.append({"mediaType": "application/vnd.ollama.image.tensor", "digest": "sha256:" + "0" * 64, "size": 1})
    layers.append({"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "1" * 64, "size": 10})
    manifest = root / "manifests" / "registry.ollama.ai" / "library" / name / tag
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"schemaVersion": 2, "layers": layers}), encoding="utf-8")
    return blob


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A HOME with models in the HF cache, LM Studio and Ollama, as their apps leave them."""
    home = tmp_path_factory.mktemp("home")
    made = tmp_path_factory.mktemp("made")
    q4, _ = write_gguf(made / "tiny-Q4_1.gguf", "qwen2", quant="Q4_1")
    q8, _ = write_gguf(made / "tiny-Q8_0.gguf", "llama", quant="Q8_0", seed=2)
    mlx = write_mlx_folder(made / "mlx", "qwen3", quantize_bits=4)
    gemma = write_foreign_gguf(made / "gemma.gguf", "gemma2")

    lms = home / ".lmstudio" / "models"
    (lms / "lmstudio-community" / "Tiny-GGUF").mkdir(parents=True)
    shutil.copyfile(q8, lms / "lmstudio-community" / "Tiny-GGUF" / "Tiny-Q8_0.gguf")
    shutil.copytree(mlx, lms / "mlx-community" / "Tiny-4bit")
    (lms / "bartowski" / "gemma-2-GGUF").mkdir(parents=True)
    shutil.copyfile(gemma, lms / "bartowski" / "gemma-2-GGUF" / "gemma-2-F16.gguf")

    ollama = home / ".ollama" / "models"
    ollama_store(ollama, "tiny", "latest", q4)
    ollama_store(ollama, "newformat", "1b", None, per_tensor=True)

    saved = {k: os.environ.pop(k) for k in HF_VARS if k in os.environ}
    old_home = os.environ["HOME"]
    os.environ["HOME"] = str(home)
    try:
        with FakeHub() as hub:
            hub.add_repo("acme/tiny-GGUF", {"tiny-Q4_1.gguf": q4.read_bytes(), "README.md": b"x"})
            hub.add_folder("acme/tiny-4bit", mlx)
            os.environ["HF_ENDPOINT"] = hub.endpoint
            from engine.model import hub as hf

            hf.download("acme/tiny-GGUF:Q4_1")  # in process: the env is read per download
            hf.download("acme/tiny-4bit")
    finally:
        os.environ.pop("HF_ENDPOINT", None)
        os.environ["HOME"] = old_home
        os.environ.update(saved)
    return home


@pytest.fixture
def in_home(home, monkeypatch):
    for key in HF_VARS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(home))
    return home


def run_cli(home: Path, *args, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in HF_VARS}
    clean.update(HOME=str(home), HF_HUB_OFFLINE="1", **env)
    return subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)], check=False, env=clean,
                          capture_output=True, text=True, timeout=300)


def test_models_list_json_shows_every_source(home):
    done = run_cli(home, "models", "list", "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert all(set(row) == {"name", "source", "path", "format", "quant", "size_bytes", "architecture", "supported",
                            "reason"} for row in rows.values())
    lms = rows["lmstudio-community/Tiny-GGUF/Tiny-Q8_0.gguf"]
    assert (lms["source"], lms["format"], lms["quant"], lms["architecture"], lms["supported"]) == (
        "lmstudio", "gguf", "Q8_0", "llama", True)
    assert lms["size_bytes"] == Path(lms["path"]).stat().st_size
    assert rows["mlx-community/Tiny-4bit"]["format"] == "mlx" and rows["mlx-community/Tiny-4bit"]["quant"] == "4-bit"
    assert rows["mlx-community/Tiny-4bit"]["architecture"] == "qwen3"
    gemma = rows["bartowski/gemma-2-GGUF/gemma-2-F16.gguf"]
    assert gemma["supported"] is False and "architecture 'gemma2' is not supported" in gemma["reason"]
    assert gemma["quant"] == "F16"
    ollama = rows["tiny:latest"]
    assert ollama["source"] == "ollama" and ollama["architecture"] == "qwen2" and ollama["quant"] == "Q4_1"
    assert Path(ollama["path"]).name.startswith("sha256-") and Path(ollama["path"]).suffix == ""
    assert rows["newformat:1b"]["supported"] is False and "per-tensor" in rows["newformat:1b"]["reason"]
    hf_gguf, hf_mlx = rows["acme/tiny-GGUF:Q4_1"], rows["acme/tiny-4bit"]
    assert hf_gguf["source"] == hf_mlx["source"] == "hf"
    assert "/models--acme--tiny-GGUF/snapshots/" in hf_gguf["path"] and hf_mlx["format"] == "mlx"
    assert rows["SmolLM2-135M-Instruct.Q4_1"]["source"] == "default"

    table = run_cli(home, "models", "list")
    assert table.returncode == 0
    for title in ("Built in:", "Hugging Face cache:", "LM Studio:", "Ollama:"):
        assert title in table.stdout
    assert "unsupported: architecture 'gemma2'" in table.stdout


def test_model_accepts_an_ollama_blob_path_and_listed_names(home, tmp_path):
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"id": "a", "text": "Pay the invoice."}\n', encoding="utf-8")
    blob = next((home / ".ollama" / "models" / "blobs").iterdir())
    by_path = run_cli(home, "classify", "-q", QUESTION, "--model", blob, "--jsonl-in", docs)
    assert by_path.returncode == 0, by_path.stderr
    by_name = run_cli(home, "classify", "-q", QUESTION, "--model", "tiny:latest", "--jsonl-in", docs)
    by_hf_name = run_cli(home, "classify", "-q", QUESTION, "--model", "acme/tiny-GGUF:Q4_1", "--jsonl-in", docs)
    margins = [json.loads(d.stdout)["raw_margin"] for d in (by_path, by_name, by_hf_name)]
    assert margins[0] == margins[1] == margins[2]  # one Q4_1 file in three places
    refused = run_cli(home, "classify", "-q", QUESTION, "--model", "bartowski/gemma-2-GGUF/gemma-2-F16.gguf", "-")
    assert refused.returncode == 2 and "gemma2" in refused.stderr and refused.stderr.count("\n") == 1


def test_lmstudio_home_pointer_and_downloads_folder(in_home, tmp_path):
    from engine.model import catalog

    assert catalog.lmstudio_models_dir() == in_home / ".lmstudio" / "models"
    elsewhere = tmp_path / "lms-home"
    (elsewhere / "models").mkdir(parents=True)
    (in_home / ".lmstudio-home-pointer").write_text(str(elsewhere) + "\n")
    try:
        assert catalog.lmstudio_models_dir() == elsewhere / "models"
        assert [e for e in catalog.find_lmstudio()] == []
        downloads = tmp_path / "big-disk"
        shutil.copytree(in_home / ".lmstudio" / "models" / "lmstudio-community", downloads / "lmstudio-community")
        (elsewhere / "settings.json").write_text(json.dumps({"downloadsFolder": str(downloads)}))
        assert [e.name for e in catalog.find_lmstudio()] == ["lmstudio-community/Tiny-GGUF/Tiny-Q8_0.gguf"]
    finally:
        (in_home / ".lmstudio-home-pointer").unlink()


def test_ollama_models_env_and_gguf_by_magic_not_suffix(in_home, tmp_path, monkeypatch):
    from engine.model import catalog
    from engine.model.gguf_file import is_gguf

    store = tmp_path / "ollama"
    monkeypatch.setenv("OLLAMA_MODELS", str(store))
    assert list(catalog.find_ollama()) == []
    source = next((in_home / ".ollama" / "models" / "blobs").iterdir())
    ollama_store(store, "other", "q8", source)
    (entry,) = catalog.find_ollama()
    assert entry.name == "other:q8" and is_gguf(entry.path)
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"PK\x03\x04 not a gguf at all")
    assert not is_gguf(fake)
    described = catalog.describe(catalog.ModelEntry("fake", "lmstudio", str(fake), "gguf"), ("llama",))
    assert described.supported is False and "no GGUF magic" in described.reason
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(source.read_bytes()[:2000])  # the header is cut inside the vocabulary
    described = catalog.describe(catalog.ModelEntry("broken", "lmstudio", str(broken), "gguf"), ("llama",))
    assert described.supported is False and "past the end of the file" in described.reason
