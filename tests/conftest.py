"""Shared fixtures: tiny random models written to disk, the real default model, headless Qt."""
from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Saved probes and calibrators of the user's own runs must not leak into tests, nor tests into them.
os.environ["VERDICT_DATA_DIR"] = tempfile.mkdtemp(prefix="verdict-test-data-")
sys.path.insert(0, str(Path(__file__).parent))

from engine.runtime import device

device.start()  # the fast BLAS before anything imports MLX, as loading a model does
from engine.folders import cache_dir  # noqa: E402

# The same for the cache: each tiny model the suite writes would leave its weights in ~/.cache. The
# downloaded models (the default one, fetched by `make test`) stay in view.
_user_models = cache_dir() / "models"
os.environ["VERDICT_CACHE_DIR"] = tempfile.mkdtemp(prefix="verdict-test-cache-")
if _user_models.is_dir():
    os.symlink(_user_models, Path(os.environ["VERDICT_CACHE_DIR"]) / "models")
atexit.register(shutil.rmtree, os.environ["VERDICT_DATA_DIR"], ignore_errors=True)
atexit.register(shutil.rmtree, os.environ["VERDICT_CACHE_DIR"], ignore_errors=True)
import pytest  # noqa: E402

from tinymodels import write_gguf, write_mlx_folder  # noqa: E402


@pytest.fixture(scope="session")
def qapp_cls():
    """pytest-qt creates the app's own QApplication subclass for every test module, whichever runs
    first, so QFileOpenEvent routing is tested for real and never skipped for test order."""
    from app.application import VerdictApplication

    return VerdictApplication


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random llama model as an MLX-format folder (4-bit quantized)."""
    return write_mlx_folder(tmp_path_factory.mktemp("models") / "tiny-llama", "llama", quantize_bits=4)


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory) -> Path:
    """A tiny random qwen2 model as a GGUF file with Q8_0 tensors."""
    path, _ = write_gguf(tmp_path_factory.mktemp("gguf") / "tiny-qwen2.Q8_0.gguf", "qwen2", quant="Q8_0")
    return path


@pytest.fixture(scope="session")
def default_model_path() -> Path:
    """The embedded default model (SmolLM2-135M-Instruct Q4_1); `make test` fetches it first."""
    from engine.model.sources import ModelError, find_default_model

    try:
        return find_default_model()
    except ModelError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def default_classifier(default_model_path):
    from engine import Classifier

    return Classifier.load(default_model_path)


@pytest.fixture(scope="session")
def tiny_classifier(tiny_model_dir):
    from engine import Classifier

    return Classifier.load(tiny_model_dir)


# --- the desktop window (tests/test_app*.py) ------------------------------------------------------
@pytest.fixture
def dialog_calls(monkeypatch):
    """Every call of the one replaceable error dialog (none should happen unless a model fails)."""
    from app import dialogs

    calls = []
    monkeypatch.setattr(dialogs, "show_error", lambda parent, title, text, details="": calls.append((title, text, details)))
    return calls


@pytest.fixture
def make_window(qtbot, tmp_path, tiny_model_dir, dialog_calls):
    """Open a window on a session in tmp_path (same data folder and settings for every call,
    so calling it again after close() is a relaunch)."""
    from app.session_store import DB_FILE, SessionStore
    from app.settings import Settings
    from app.window import MainWindow

    def make(model=tiny_model_dir, data_dir=None):
        data_dir = Path(data_dir or tmp_path / "data")
        window = MainWindow(Settings(tmp_path / "settings.ini"), SessionStore(data_dir / DB_FILE),
                            model=str(model) if model else None)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        qtbot.waitUntil(lambda: not window.controller.loading, timeout=180_000)
        return window

    return make


# Tests that load the default model, open a real window or start a process are `slow`:
# `make test-fast` leaves them out (`make test` runs everything).
_SLOW_FIXTURES = {"default_classifier", "default_model_path", "qtbot", "make_window", "engine_clf"}
_SLOW_FILES = {"test_remote.py", "test_remote_faults.py", "test_cli.py", "test_cli_robust.py", "test_resume.py",
               "test_pipeline.py", "test_app_bench.py", "test_bench.py", "test_general_fit.py", "test_hub.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or item.path.name in _SLOW_FILES:
            item.add_marker(pytest.mark.slow)
