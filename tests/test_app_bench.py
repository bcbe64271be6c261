"""`verdict bench --app` drives the real window in its own process and reports every wait it
promises, the refit after labels included (no timing is asserted: the figures are for the
report, not the suite)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_app_reports_launch_and_ask_figures(tiny_model_dir, tmp_path):
    out = tmp_path / "figures.json"
    command = [sys.executable, "-m", "engine.cli", "bench", "--app", "--model", str(tiny_model_dir),
               "--json", str(out)]
    user_data = tmp_path / "user-data"
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen",
                               "VERDICT_DATA_DIR": str(user_data)})
    assert done.returncode == 0, done.stderr
    figures = json.loads(out.read_text())
    for name in ("launch_to_first_row_s", "cold_ask_to_first_verdict_s", "warm_ask_to_first_verdict_s",
                 "warm_ask_to_all_verdicts_s", "long_to_verdict_s"):
        assert figures[name] > 0, name
        assert f"  {name}" in done.stdout
    assert figures["documents"] == len(list((ROOT / "resources" / "samples").iterdir()))
    assert figures["warm_ask_to_first_verdict_s"] <= figures["warm_ask_to_all_verdicts_s"]
    for name in ("cold_ask_to_progress_s", "warm_ask_to_progress_s", "long_to_progress_s",
                 "label_to_calls_updated_s", "label_to_refit_applied_s"):
        assert figures[name] >= 0, name
    assert figures["labels_given"] >= 4  # 2 yes and 2 no at least: the calibrator was refit
    assert figures["refit_rescored_documents"] == 0  # from the kept answers and states alone
    assert not user_data.exists()  # the calibrators it fitted went to its own throw-away folder


def test_bench_app_refuses_a_folder_without_files(tmp_path):
    done = subprocess.run([sys.executable, "-m", "app.bench", "--docs", str(tmp_path)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "not a folder with files" in done.stderr
