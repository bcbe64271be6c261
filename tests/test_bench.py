"""`verdict bench` end to end on a tiny model: its tables and the cold-start figure."""
import json
import subprocess
import sys
from pathlib import Path

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
