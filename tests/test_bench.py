"""`verdict bench` end to end on a tiny model: its tables and the cold-start figure."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_bench_reports_the_cold_start_of_a_new_process(tiny_model_dir, tmp_path):
    figures = tmp_path / "bench.json"
    command = [sys.executable, "-m", "engine.cli", "bench", "--model", str(tiny_model_dir), "--documents", "3",
               "--baseline-docs", "1", "--doc-tokens", "24", "--scenario", "short", "--curve-lengths", "32",
               "--curve-tokens", "32", "--cold-starts", "2", "--table-rows", "3000", "--json", str(figures)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "cold start (`verdict classify` of one short document in a new process, 2 runs)" in done.stdout
    assert "one short question  (c) engine" in done.stdout
    cold = json.loads(figures.read_text())["cold_start"]
    assert len(cold) == 2
    # A new Python process that loads a model takes time and memory: real figures, not placeholders.
    assert all(c["seconds"] > 0.1 and 20 < c["peak_rss_mib"] < 4096 for c in cold), cold
    table = json.loads(figures.read_text())["table_intake"]
    assert table["rows"] == 3000 and 10 < table["peak_rss_mib"] < 4096  # every row read, in a real process
    assert "a table of 3,000 rows read as `--table-in` reads it" in done.stdout


def test_a_failing_cold_start_is_reported_not_hidden(tmp_path):
    from engine.cli.bench import cold_start

    missing = tmp_path / "no-such-model.gguf"
    try:
        cold_start(str(missing), runs=1)
    except RuntimeError as exc:
        assert "verdict classify failed" in str(exc) and "no-such-model" in str(exc)
    else:
        raise AssertionError("a cold start of a missing model did not fail")


LLAMA_SERVER = os.environ.get("VERDICT_LLAMA_SERVER", "")  # a llama-server binary built from llama.cpp


def run_bench(model, tmp_path, env_extra):
    figures = tmp_path / "bench.json"
    command = [sys.executable, "-m", "engine.cli", "bench", "--model", str(model), "--documents", "3",
               "--baseline-docs", "2", "--doc-tokens", "24", "--scenario", "short", "--scenario", "probe",
               "--scenario", "five",
               "--curve-lengths", "32", "--curve-tokens", "32", "--cold-starts", "0", "--table-rows", "0", "--json", str(figures)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env=dict(os.environ, **env_extra))
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, json.loads(figures.read_text())


def test_without_llama_server_the_comparison_is_one_line_saying_why(tiny_gguf, tmp_path):
    out, figures = run_bench(tiny_gguf, tmp_path, {"VERDICT_LLAMA_SERVER": str(tmp_path / "no-such-binary")})
    assert "llama.cpp comparison: skipped (no llama-server (set VERDICT_LLAMA_SERVER" in out
    assert figures["llama_cpp"] is None
    # a tiny model has no general probe: the probe-only scenario says so and has no row
    assert "short, probe only: skipped (no probe on a hidden layer decides for this model" in out
    assert {r["scenario"] for r in figures["results"]} == {"one short question", "five questions"}


@pytest.mark.skipif(not (LLAMA_SERVER and Path(LLAMA_SERVER).exists()),
                    reason="no llama-server binary at $VERDICT_LLAMA_SERVER")
def test_bench_compares_with_llama_server_on_the_same_gguf_for_one_and_five_questions(tiny_gguf, tmp_path):
    out, figures = run_bench(tiny_gguf, tmp_path, {})
    assert ("llama.cpp (llama-server, the same GGUF and prompt tokens, one at a time, 2 documents, a fresh server "
            "per scenario):") in out, out[-1500:]
    rows = {r["scenario"]: r for r in figures["llama_cpp"]}
    assert set(rows) == {"one short question", "five questions"}
    engine = {r["scenario"]: r["docs_per_second"] for r in figures["results"] if r["method"] == "(c) engine"}
    for name, row in rows.items():
        assert row["documents"] == 2 and row["seconds"] > 0
        assert abs(row["engine_ratio"] - engine[name] / row["docs_per_second"]) < 1e-9 * row["engine_ratio"]
        assert f"{row['engine_ratio']:4.2f}x" in out
    # five questions read every document again (a server that kept the first scenario's prompts would
    # evaluate only the questions' tails), and no more than all five prompts
    assert rows["one short question"]["evaluated_tokens"] < rows["five questions"]["evaluated_tokens"] \
        <= rows["five questions"]["prompt_tokens"]
    assert figures["compute"]["llama_cpp_gflops"] > 0


def test_the_generate_baseline_makes_mlx_lm_tokens_without_importing_transformers(tiny_gguf):
    """The (b) baseline's greedy loop gives the tokens mlx-lm's own `generate_step` gives, and
    leaves transformers (which `mlx_lm.generate` imports) out of the bench's process."""
    code = (
        "import sys\n"
        "from engine import Classifier\n"
        "from engine.cli.bench import generate_greedy\n"
        f"clf = Classifier.load({str(tiny_gguf)!r})\n"
        "ids = clf.encoder.encode('Is it about files?', 'A tool that copies files.').all\n"
        "ours = generate_greedy(clf.backend.lm.model, ids, 12, set())\n"
        "assert 'transformers' not in sys.modules\n"
        "import mlx.core as mx\n"
        "from mlx_lm.generate import generate_step\n"
        "theirs = [int(t) for (t, _), _n in zip(generate_step(mx.array(ids), clf.backend.lm.model, max_tokens=12), range(12))]\n"
        "assert len(ours) == 12 and ours == theirs, (ours, theirs)\n"
        "print('same')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0 and "same" in done.stdout, done.stderr[-3000:]


def _config_multiply_adds(config: dict) -> int:
    """Multiply-adds a token in a llama-style config's linear layers, from its sizes alone."""
    d, ff, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    q = config["num_attention_heads"] * config["head_dim"]
    kv = config["num_key_value_heads"] * config["head_dim"]
    return layers * (d * q + 2 * d * kv + q * d + 3 * d * ff)


def test_the_work_a_token_takes_is_counted_from_the_models_layers_as_its_config_sizes_them(tiny_model_dir, tiny_gguf):
    """`verdict bench`'s GFLOP/s rest on the multiply-adds a prompt token takes below the head: for
    float, MLX-quantized and GGUF-loaded models alike, the count the config's sizes give."""
    from engine import Classifier
    from engine.cli.bench import linear_multiply_adds
    from tinymodels import build_model, model_config

    model, config = build_model("llama")
    assert linear_multiply_adds(model) == _config_multiply_adds(config)
    quantized = Classifier.load(str(tiny_model_dir)).backend.lm.model
    assert linear_multiply_adds(quantized) == _config_multiply_adds(
        json.loads((tiny_model_dir / "config.json").read_text()))
    assert linear_multiply_adds(Classifier.load(str(tiny_gguf)).backend.lm.model) == _config_multiply_adds(
        model_config("qwen2"))


def test_bench_reports_the_engines_rate_of_work_against_a_gemm_of_the_same_blas(tiny_gguf, tmp_path):
    out, figures = run_bench(tiny_gguf, tmp_path, {"VERDICT_LLAMA_SERVER": str(tmp_path / "no-such-binary")})
    from tinymodels import model_config

    compute = figures["compute"]
    assert compute["multiply_adds_per_token"] == _config_multiply_adds(model_config("qwen2"))
    assert compute["gemm_gflops"] > 0 and compute["engine_gflops"] > 0 and compute["llama_cpp_gflops"] is None
    assert f"{compute['multiply_adds_per_token'] / 1e6:.1f} M multiply-adds a prompt token" in out
