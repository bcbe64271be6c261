"""The GPU's configuration of the default model (quantized weights, float16 compute), forced on the
CPU with ``VERDICT_FORCE_GPU_CONFIG=1``, against the float32 CPU path: same margins and general-probe
probabilities within tolerances taken from measurement (largest differences seen on these six
documents: 0.0008 in margin, 0.0002 in probability). Each configuration loads in its own process,
with its own data and cache folders, so nothing one computed is read back by the other."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # two processes load the default model; float16 on the CPU takes ~1 minute

ROOT = Path(__file__).resolve().parents[1]
MARGIN_TOLERANCE = 0.002
PROBABILITY_TOLERANCE = 0.001


def run_child(mode: str, model: Path, tmp_path: Path, **env_extra: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), VERDICT_DATA_DIR=str(tmp_path / mode / "data"),
               VERDICT_CACHE_DIR=str(tmp_path / mode / "cache"), **env_extra)
    if mode == "cpu-float32":
        env.pop("VERDICT_FORCE_GPU_CONFIG", None)
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_config_margins.py"), mode, str(model)],
                          capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_gpu_configuration_matches_float32_path(tmp_path, default_model_path):
    reference = run_child("cpu-float32", default_model_path, tmp_path)
    gpu = run_child("gpu-config", default_model_path, tmp_path, VERDICT_FORCE_GPU_CONFIG="1")
    assert reference["dtype"] == "mlx.core.float32"
    assert gpu["dtype"] == "mlx.core.float16"  # the override took effect: the GPU's preparation ran
    assert len(gpu["margins"]) == len(reference["margins"]) == 6
    margin_diff = [abs(a - b) for a, b in zip(gpu["margins"], reference["margins"])]
    probability_diff = [abs(a - b) for a, b in zip(gpu["probabilities"], reference["probabilities"])]
    assert max(margin_diff) > 0  # two different computations, not one path run twice
    assert max(margin_diff) <= MARGIN_TOLERANCE, (margin_diff, gpu, reference)
    assert max(probability_diff) <= PROBABILITY_TOLERANCE, (probability_diff, gpu, reference)
    # the ranking the margins give is the same
    assert sorted(range(6), key=gpu["margins"].__getitem__) == sorted(range(6), key=reference["margins"].__getitem__)
