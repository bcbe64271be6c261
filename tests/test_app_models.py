"""The app's model chooser, offscreen: models on disk grouped by source (unsupported ones greyed
with the reason), a recommended model downloaded from the local test hub with progress and
Cancel, and the first-launch offer on a Mac."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hubserver import FakeHub
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox
from test_models_list import HF_VARS, write_foreign_gguf
from tinymodels import write_gguf, write_mlx_folder

from app.model_box import ModelBox
from app.settings import Settings
from engine.model.recommended import RECOMMENDED

RERANKER = RECOMMENDED[0]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("made")
    gguf, _ = write_gguf(root / "Tiny-Q8_0.gguf", "qwen2", quant="Q8_0")
    return {"gguf": gguf, "gemma": write_foreign_gguf(root / "gemma.gguf", "gemma2"),
            "mlx": write_mlx_folder(root / "mlx", "qwen3", quantize_bits=4)}


@pytest.fixture
def home(tmp_path, made, monkeypatch):
    """A HOME with two LM Studio models (one refused) and an empty Hugging Face cache."""
    for key in HF_VARS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("VERDICT_CACHE_DIR", str(tmp_path / "verdict-cache"))
    lms = tmp_path / ".lmstudio" / "models"
    (lms / "acme" / "Tiny-GGUF").mkdir(parents=True)
    shutil.copyfile(made["gguf"], lms / "acme" / "Tiny-GGUF" / "Tiny-Q8_0.gguf")
    (lms / "google" / "gemma-2-GGUF").mkdir(parents=True)
    shutil.copyfile(made["gemma"], lms / "google" / "gemma-2-GGUF" / "gemma-2-F16.gguf")
    return tmp_path


@pytest.fixture
def hub(made, home, monkeypatch):
    with FakeHub() as hub:
        hub.add_folder(RERANKER.repo, made["mlx"])
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        yield hub


def test_models_are_grouped_by_source_and_refused_ones_are_greyed(qtbot, home):
    from app.model_chooser import ModelChooser

    chooser = ModelChooser()
    qtbot.addWidget(chooser)
    with qtbot.waitSignal(chooser.listed, timeout=180_000):
        chooser.open()
    groups = [chooser.tree.topLevelItem(i).text(0) for i in range(chooser.tree.topLevelItemCount())]
    assert groups == ["Recommended", "Built in", "LM Studio"]
    assert [chooser.tree.topLevelItem(0).child(i).text(0) for i in range(len(RECOMMENDED))] == [
        r.title for r in RECOMMENDED]
    assert "download 330 MB" in chooser.item_named(RERANKER.title).text(1)
    gemma = chooser.item_named("google/gemma-2-GGUF/gemma-2-F16.gguf")
    assert not gemma.flags() & Qt.ItemFlag.ItemIsEnabled
    assert "architecture 'gemma2' is not supported" in gemma.text(1)
    default = chooser.tree.topLevelItem(1).child(0)
    assert not default.flags() & Qt.ItemFlag.ItemIsEnabled and "fetch-default" in default.text(1)
    chooser.tree.setCurrentItem(gemma)
    assert not chooser.use_button.isEnabled()

    tiny = chooser.item_named("acme/Tiny-GGUF/Tiny-Q8_0.gguf")
    assert tiny.text(1).startswith("GGUF · qwen2 · Q8_0")
    chooser.tree.setCurrentItem(tiny)
    assert chooser.use_button.isEnabled()
    with qtbot.waitSignal(chooser.modelChosen, timeout=180_000) as chosen:
        qtbot.mouseClick(chooser.use_button, Qt.MouseButton.LeftButton)
    assert chosen.args == [str(home / ".lmstudio" / "models" / "acme" / "Tiny-GGUF" / "Tiny-Q8_0.gguf")]


def test_recommended_download_with_progress_cancel_and_the_reranker_preset(qtbot, home, hub, made):
    from app.model_chooser import ModelChooser

    chooser = ModelChooser()
    qtbot.addWidget(chooser)
    with qtbot.waitSignal(chooser.listed, timeout=180_000):
        chooser.open()
    chooser.tree.setCurrentItem(chooser.item_named(RERANKER.title))

    hub.faults[(RERANKER.repo, "config.json")] = ["hold"]  # the first file waits until we have cancelled
    qtbot.mouseClick(chooser.use_button, Qt.MouseButton.LeftButton)  # asks first
    assert chooser.download_task is None and chooser.use_button.text() == "Download"
    qtbot.mouseClick(chooser.use_button, Qt.MouseButton.LeftButton)
    assert chooser.progress.isVisible() and not chooser.use_button.isEnabled()
    qtbot.waitUntil(hub.held.is_set, timeout=180_000)
    qtbot.mouseClick(chooser.cancel_button, Qt.MouseButton.LeftButton)
    hub.gate.set()
    qtbot.waitUntil(lambda: chooser.download_task is None, timeout=180_000)
    assert chooser.status.text() == "Download cancelled." and chooser.isVisible()
    assert not chooser.progress.isVisible() and chooser.use_button.isEnabled()
    blobs = home / ".cache" / "huggingface" / "hub" / ("models--" + RERANKER.repo.replace("/", "--")) / "blobs"
    assert (list(blobs.iterdir()) if blobs.exists() else []) == []

    seen = []
    chooser.progress.valueChanged.connect(seen.append)
    with qtbot.waitSignal(chooser.modelChosen, timeout=180_000) as chosen:
        qtbot.mouseClick(chooser.use_button, Qt.MouseButton.LeftButton)
        qtbot.mouseClick(chooser.use_button, Qt.MouseButton.LeftButton)  # Download
    folder = Path(chosen.args[0])
    assert folder.parent == blobs.parent / "snapshots" and folder.name == hub.commits[RERANKER.repo]
    assert (folder / "model.safetensors").read_bytes() == (made["mlx"] / "model.safetensors").read_bytes()
    assert seen and seen[-1] == 1000 and not chooser.isVisible()

    from engine import Classifier

    clf = Classifier.load(folder)  # a snapshot folder named by its commit gets the repo's name ...
    assert clf.model_name == RERANKER.repo.split("/")[1]
    assert clf.layout.name == RERANKER.layout == "qwen3-reranker"  # ... so the reranker gets its preset


def test_the_recommended_model_is_offered_once_on_a_mac(qtbot, home, hub, tmp_path):
    settings = Settings(tmp_path / "settings.ini")
    box = ModelBox()
    qtbot.addWidget(box)
    assert box.offer_recommended_once(settings, platform="linux") is None and not settings.recommended_offered
    offer = box.offer_recommended_once(settings, platform="darwin")
    assert offer is not None and offer.isVisible() and "Qwen3-Reranker-0.6B" in offer.text()
    assert box.offer_recommended_once(settings, platform="darwin") is None  # once
    assert Settings(tmp_path / "settings.ini").recommended_offered  # also after a relaunch

    with qtbot.waitSignal(box.modelChosen, timeout=180_000) as chosen:
        qtbot.mouseClick(offer.button(QMessageBox.StandardButton.Yes), Qt.MouseButton.LeftButton)
    assert Path(chosen.args[0], "config.json").is_file()
    assert "/models--mlx-community--Qwen3-Reranker-0.6B-4bit/snapshots/" in chosen.args[0]


def test_the_chooser_marks_the_model_in_use_asks_before_downloading_and_says_offline_plainly(
        qtbot, home, hub):
    from app.model_chooser import IN_USE, ModelChooser

    tiny = home / ".lmstudio" / "models" / "acme" / "Tiny-GGUF" / "Tiny-Q8_0.gguf"
    chooser = ModelChooser(current=str(tiny))
    qtbot.addWidget(chooser)
    with qtbot.waitSignals([chooser.listed, chooser.reached], timeout=180_000):
        chooser.open()
    assert chooser.unreachable == "" and chooser.item_named(RERANKER.title).text(1).startswith("download 330 MB")
    marked = [item.text(0) for item in chooser.items() if item.text(1).startswith(IN_USE)]
    assert marked == ["acme/Tiny-GGUF/Tiny-Q8_0.gguf"]

    chooser.tree.setCurrentItem(chooser.item_named(RERANKER.title))
    qtbot.mouseClick(chooser.use_button, Qt.MouseButton.LeftButton)
    assert chooser.download_task is None and "Download Qwen3-Reranker" in chooser.status.text()
    assert "330 MB" in chooser.status.text() and chooser.use_button.text() == "Download"
    chooser.tree.setCurrentItem(chooser.item_named("acme/Tiny-GGUF/Tiny-Q8_0.gguf"))  # changed its mind
    assert chooser.use_button.text() == "Use Model"
    chooser.tree.setCurrentItem(chooser.item_named(RERANKER.title))
    qtbot.mouseClick(chooser.use_button, Qt.MouseButton.LeftButton)
    hub.__exit__(None, None, None)  # the network goes away after the chooser opened
    qtbot.mouseClick(chooser.use_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: chooser.download_task is None, timeout=180_000)
    sentence = chooser.status.text()
    assert sentence.startswith("Could not reach Hugging Face") and "Error" not in sentence and "[Errno" not in sentence
    assert "Connect" in chooser.status.toolTip()  # the technical reason, for whoever asks


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:  # a port nobody listens on: a real refused connection
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("how", ["closed port", "HF_HUB_OFFLINE"])
def test_the_chooser_offers_no_download_when_the_hub_does_not_answer(qtbot, home, monkeypatch, how):
    from app.model_chooser import DOWNLOADS_OFF_SENTENCE, OFFLINE_SENTENCE, ModelChooser

    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    if how == "HF_HUB_OFFLINE":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    chooser = ModelChooser()
    qtbot.addWidget(chooser)
    with qtbot.waitSignals([chooser.listed, chooser.reached], timeout=180_000):
        chooser.open()
    item = chooser.item_named(RERANKER.title)
    assert not item.flags() & Qt.ItemFlag.ItemIsEnabled and "needs a connection to Hugging Face" in item.text(1)
    chooser.tree.setCurrentItem(item)
    assert not chooser.use_button.isEnabled()
    chooser.use(item)  # double-clicked anyway: nothing starts
    assert chooser.download_task is None
    assert chooser.status.text() == (DOWNLOADS_OFF_SENTENCE if how == "HF_HUB_OFFLINE" else OFFLINE_SENTENCE)
    if how == "closed port":
        assert "Connection refused" in chooser.status.toolTip()  # the technical reason, in the tooltip
    tiny = chooser.item_named("acme/Tiny-GGUF/Tiny-Q8_0.gguf")  # what is on disk is still offered
    chooser.tree.setCurrentItem(tiny)
    assert chooser.use_button.isEnabled()
