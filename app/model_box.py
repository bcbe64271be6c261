"""The model in use, and a menu to open another: the chooser (models on disk, recommended
downloads), the default, an MLX folder or a .gguf file."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMenu, QMessageBox, QToolButton, QVBoxLayout, QWidget

from app import dialogs


class ModelBox(QWidget):
    """Shows the model's name; :attr:`modelChosen` carries the path picked (None: the default)."""

    modelChosen = Signal(object)  # str path, or None for the embedded default

    def __init__(self, directory: callable = lambda: "", parent=None) -> None:
        super().__init__(parent)
        self._directory = directory  # where the file dialogs start
        caption = QLabel("MODEL")
        caption.setObjectName("Caption")
        self.label = QLabel("…")
        self.label.setTextFormat(Qt.TextFormat.PlainText)  # a model's name is a file name, not markup
        self.label.setObjectName("ModelName")
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.menu = QMenu("Model", self)
        self.chooser = None  # the open ModelChooser, if any
        self.current_path: Optional[str] = None  # the model in use ('' the default; None: none yet)
        self.offer_box: Optional[QMessageBox] = None  # the first-launch offer, once shown
        self.choose_action = QAction("Choose a Model…", self)
        self.choose_action.triggered.connect(lambda: self.open_chooser())
        self.menu.addAction(self.choose_action)
        self.menu.addSeparator()
        self.default_action = QAction("Default Model (SmolLM2-135M)", self)
        self.default_action.triggered.connect(lambda: self.modelChosen.emit(None))
        self.folder_action = QAction("MLX Model Folder…", self)
        self.folder_action.triggered.connect(self.choose_folder)
        self.file_action = QAction("GGUF Model File…", self)
        self.file_action.triggered.connect(self.choose_file)
        self.menu.addAction(self.default_action)
        self.menu.addSeparator()
        self.menu.addAction(self.folder_action)
        self.menu.addAction(self.file_action)
        self.button = QToolButton()
        self.button.setText("Change ▾")
        self.button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.button.setToolTip("Use another model: an MLX folder or a .gguf file")
        self.button.setMenu(self.menu)
        row = QHBoxLayout()
        row.setSpacing(6)
        row.addWidget(self.label)
        row.addWidget(self.button)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(caption)
        layout.addLayout(row)
        layout.addStretch(1)

    def show_loading(self, path: str) -> None:
        self.label.setText(f"Loading {Path(path).name if path else 'the default model'}…")
        self.label.setToolTip(path)

    def show_model(self, name: str, path: str = "") -> None:
        """``name`` of the model in use ('' when none), ``path`` ('' for the default)."""
        self.current_path = path if name else None
        self.label.setText(name or "No model")
        self.label.setToolTip(path or ("The embedded default model" if name else ""))

    def choose_folder(self) -> None:
        path = dialogs.choose_folder(self, self._directory(), "Open an MLX Model Folder")
        if path:
            self.modelChosen.emit(path)

    def choose_file(self) -> None:
        path = dialogs.choose_model_file(self, self._directory())
        if path:
            self.modelChosen.emit(path)

    def open_chooser(self, download=None):
        """Open the model chooser (models on disk, recommended downloads); with a `Recommended`
        model, start downloading it at once. Returns the dialog."""
        from app.model_chooser import ModelChooser

        if self.chooser is None:
            self.chooser = ModelChooser(self.window(), current=self.current_path)
            self.chooser.modelChosen.connect(self.modelChosen.emit)
            self.chooser.finished.connect(self._chooser_closed)
        self.chooser.open()
        if download is not None:
            self.chooser.download(download)
        return self.chooser

    def _chooser_closed(self) -> None:
        self.chooser.deleteLater()
        self.chooser = None

    def offer_recommended_once(self, settings, platform: str = sys.platform) -> Optional[QMessageBox]:
        """On a Mac's first launch, offer the recommended model once (the default keeps working
        offline). Returns the question box, or None when there is nothing to offer."""
        from engine.model.recommended import RECOMMENDED

        if platform != "darwin" or settings.recommended_offered:
            return None
        settings.recommended_offered = True
        rec = RECOMMENDED[0]
        size = f" ({rec.size_bytes / 1e6:.0f} MB)" if rec.size_bytes else ""
        box = QMessageBox(QMessageBox.Icon.Question, "A better model for Verdict",
                          f"Download {rec.title}{size} from Hugging Face?",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self.window())
        box.setInformativeText(f"It is {rec.note}. The built-in model keeps working offline; "
                               "you can download it later with Model ▸ Choose a Model….")
        box.button(QMessageBox.StandardButton.Yes).setText("Download")
        box.button(QMessageBox.StandardButton.No).setText("Not Now")
        box.accepted.connect(lambda: self.open_chooser(download=rec))
        box.open()
        self.offer_box = box
        return box
