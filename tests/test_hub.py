"""`--model org/repo[:QUANT]` and `verdict models pull`, end to end: the real CLI in a subprocess
(huggingface_hub reads HF_ENDPOINT/HF_HOME/HF_HUB_OFFLINE at import) against a local hub served
over real sockets (tests/hubserver.py), with the files landing in a real Hugging Face cache."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hubserver import FakeHub
from tinymodels import write_gguf, write_mlx_folder

REPO = "acme/tiny-qwen2-GGUF"
MLX_REPO = "acme/tiny-llama-4bit"
QUESTION = "Is it about money?"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The files a fake GGUF repo (Q4_1 and Q8_0) and a fake MLX repo serve."""
    root = tmp_path_factory.mktemp("served")
    q4, _ = write_gguf(root / "tiny-qwen2-Q4_1.gguf", "qwen2", quant="Q4_1")
    q8, _ = write_gguf(root / "tiny-qwen2-Q8_0.gguf", "qwen2", quant="Q8_0", seed=1)
    mlx = write_mlx_folder(root / "mlx", "llama", quantize_bits=4)
    return {"q4": q4, "q8": q8, "mlx": mlx}


@pytest.fixture
def hub(served):
    with FakeHub() as hub:
        hub.add_repo(REPO, {"tiny-qwen2-Q4_1.gguf": served["q4"].read_bytes(),
                            "tiny-qwen2-Q8_0.gguf": served["q8"].read_bytes(),
                            "README.md": b"# tiny\n", ".gitattributes": b"*.gguf filter=lfs\n"})
        hub.add_folder(MLX_REPO, served["mlx"])
        yield hub


@pytest.fixture
def docs(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"id": "a", "text": "Your invoice of $120 is overdue."}\n'
                    '{"id": "b", "text": "Bake the cookies for 12 minutes."}\n', encoding="utf-8")
    return path


def hub_env(hub: FakeHub, home: Path, offline: bool = False) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN")}
    env.update(HF_ENDPOINT=hub.endpoint, HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1")
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return env


def run_cli(env: dict, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)], check=False, env=env,
                          capture_output=True, text=True, timeout=300)


def margins(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr
    return {row["id"]: row["raw_margin"] for row in map(json.loads, done.stdout.splitlines())}


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def cached_file(home: Path, repo: str, commit: str, name: str) -> Path:
    return home / "hub" / ("models--" + repo.replace("/", "--")) / "snapshots" / commit / name


def test_gguf_tag_downloads_into_the_hf_cache_scores_and_works_offline(hub, served, docs, tmp_path):
    home = tmp_path / "hf"
    online = run_cli(hub_env(hub, home), "classify", "-q", QUESTION, "--model", f"{REPO}:q4_1", "--jsonl-in", docs)
    got = margins(online)
    local = margins(run_cli(hub_env(hub, home), "classify", "-q", QUESTION, "--model", served["q4"], "--jsonl-in", docs))
    assert got == local  # the downloaded file is the served Q4_1 model
    target = cached_file(home, REPO, hub.commits[REPO], "tiny-qwen2-Q4_1.gguf")
    assert sha256(target) == sha256(served["q4"])
    assert hub.content_gets("tiny-qwen2-Q4_1.gguf") == [None] and hub.content_gets("tiny-qwen2-Q8_0.gguf") == []
    assert f"downloading {REPO}:q4_1" in online.stderr and str(target) in online.stderr

    hub.requests.clear()
    offline = run_cli(hub_env(hub, home, offline=True), "classify", "-q", QUESTION, "--model", f"{REPO}:Q4_1",
                      "--jsonl-in", docs)
    assert margins(offline) == got and hub.requests == []  # from the cache, no request at all
    missing = run_cli(hub_env(hub, home, offline=True), "models", "pull", f"{REPO}:Q8_0")
    assert missing.returncode == 2 and "available: Q4_1" in missing.stderr


def test_an_interrupted_download_restarts_and_a_failed_one_leaves_nothing_behind(hub, served, tmp_path):
    home = tmp_path / "hf"
    name = "tiny-qwen2-Q8_0.gguf"
    hub.faults[(REPO, name)] = ["drop"]  # the connection closes halfway through the file
    done = run_cli(hub_env(hub, home), "models", "pull", f"{REPO}:Q8_0")
    assert done.returncode == 0, done.stderr
    assert sha256(done.stdout.strip()) == sha256(served["q8"])
    assert len(hub.content_gets(name)) == 2  # one cut short, one whole

    home2 = tmp_path / "hf2"
    hub.faults[(REPO, name)] = ["error"]  # the server fails outright: this run fails ...
    failed = run_cli(hub_env(hub, home2), "models", "pull", f"{REPO}:Q8_0")
    assert failed.returncode == 2
    errors = [line for line in failed.stderr.splitlines() if line.startswith("verdict: error:")]
    assert len(errors) == 1 and name in errors[0] and "Traceback" not in failed.stderr
    blobs = home2 / "hub" / ("models--" + REPO.replace("/", "--")) / "blobs"
    assert (list(blobs.iterdir()) if blobs.exists() else []) == []  # no partial file kept
    again = run_cli(hub_env(hub, home2), "models", "pull", f"{REPO}:Q8_0")  # ... and the next one succeeds
    assert again.returncode == 0, again.stderr
    assert sha256(again.stdout.strip()) == sha256(served["q8"])


def test_mlx_repo_pull_then_offline_classify(hub, served, docs, tmp_path):
    home = tmp_path / "hf"
    pulled = run_cli(hub_env(hub, home), "models", "pull", MLX_REPO)
    assert pulled.returncode == 0, pulled.stderr
    folder = Path(pulled.stdout.strip())
    assert folder == cached_file(home, MLX_REPO, hub.commits[MLX_REPO], "")
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert sha256(folder / name) == sha256(served["mlx"] / name)
    hub.requests.clear()
    offline = run_cli(hub_env(hub, home, offline=True), "classify", "-q", QUESTION, "--model", MLX_REPO,
                      "--jsonl-in", docs)
    local = run_cli(hub_env(hub, home), "classify", "-q", QUESTION, "--model", served["mlx"], "--jsonl-in", docs)
    assert margins(offline) == margins(local) and hub.requests == []


def test_unknown_repo_and_tag_are_one_line_errors(hub, tmp_path):
    env = hub_env(hub, tmp_path / "hf")
    nope = run_cli(env, "models", "pull", "acme/nothing-here:Q4_0")
    assert nope.returncode == 2 and nope.stderr.count("\n") == 1
    assert "acme/nothing-here was not found" in nope.stderr
    typo = run_cli(env, "classify", "-q", QUESTION, "--model", "modles/tiny.gguf", "-")
    assert typo.returncode == 2 and typo.stderr.count("\n") == 1
    assert ("model not found: modles/tiny.gguf is no local path or listed model, "
            "and modles/tiny.gguf was not found") in typo.stderr
    tag = run_cli(env, "classify", "-q", QUESTION, "--model", f"{REPO}:Q5_K_M", "-")
    assert tag.returncode == 2 and tag.stderr.count("\n") == 1
    assert "no GGUF file for 'Q5_K_M'; available: Q4_1, Q8_0" in tag.stderr


def test_progress_bar_on_a_terminal(hub, served, tmp_path):
    from terminal import on_a_terminal

    ran = []
    shown = on_a_terminal(lambda fd: ran.append(subprocess.run(
        [sys.executable, "-m", "engine.cli", "models", "pull", f"{REPO}:Q4_1"], env=hub_env(hub, tmp_path / "hf"),
        stdout=subprocess.PIPE, stderr=fd, text=True, timeout=300)))
    done = ran[0]
    assert done.returncode == 0
    from tqdm import tqdm

    size = tqdm.format_sizeof(served["q4"].stat().st_size)  # tqdm's bar, in bytes: every byte counted once
    assert f"{REPO}:Q4_1: 100%" in shown and f"{size}/{size}" in shown


def test_the_hub_bar_is_tqdm_and_counts_xet_bytes_once():
    """huggingface_hub drives `tqdm_class` as a tqdm (any of its methods) and, for Xet downloads,
    reports network bytes too: written bytes are what the download counts, once."""
    from types import SimpleNamespace

    from huggingface_hub.utils._xet_progress_reporting import XetDownloadProgressReporter
    from tqdm import tqdm

    from engine.model.hub import _Sink

    seen = []
    bar_class = _Sink(1000, lambda done, total: seen.append((done, total)), None).bar_class()
    assert issubclass(bar_class, tqdm)
    reporter = XetDownloadProgressReporter(reconstruction_desc="f.gguf", total=1000, log_level=30,
                                           tqdm_class=bar_class)
    for written, received in ((100, 400), (600, 900), (1000, 1000)):
        reporter.update_progress(SimpleNamespace(total_bytes_completed=written, total_transfer_bytes_completed=received,
                                                 total_bytes=1000, total_bytes_completion_rate=None,
                                                 total_transfer_bytes_completion_rate=None))
    reporter.close()
    assert seen == [(100, 1000), (600, 1000), (1000, 1000)]
    bar = bar_class(total=10, initial=4)  # a resumed file: its bytes on disk count
    bar.set_description("x")
    bar.refresh()
    bar.reset(total=10)
    bar.close()
    assert seen[-1] == (1004, 1000)
